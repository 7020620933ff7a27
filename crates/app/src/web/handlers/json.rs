//! JSON handlers: `/api/me` (the stored user, WeChat's field names) and `/healthz`.

use crate::config::Scope;
use crate::store::backend::Found;
use crate::transport::http::{Reply, Req};
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use serde_json::json;

/// GET /api/me: the logged-in user as sns/userinfo named the fields, or 401.
pub fn me(app: &mut App, req: &Req) -> Step {
    app.with_session(req, |_, found| me_of(found).map(Into::into))
}

/// /api/me's answer for the session found.
fn me_of(found: Option<Found>) -> Result<Reply, AppError> {
    let Some(Found { session, .. }) = found else {
        return Ok(Reply::json(&json!({ "error": "unauthenticated" })).with_status(401));
    };
    let user = &session.user;
    let body = match session.scope {
        // Serialized through WechatUser: WeChat's field names.
        Scope::Userinfo | Scope::Login => {
            serde_json::to_value(user).map_err(|e| AppError::Internal(e.to_string()))?
        }
        // snsapi_base: WeChat told us only who it is.
        Scope::Base => match user.unionid() {
            Some(unionid) => json!({ "openid": user.openid(), "unionid": unionid }),
            None => json!({ "openid": user.openid() }),
        },
    };
    Ok(Reply::json(&body))
}

/// GET /healthz: the loop is serving, and the store answers: 503
/// `{"status":"unavailable","redis":"…"}` while a shared store does not.
pub fn healthz(app: &mut App, req: &Req) -> Step {
    app.with_store(
        req,
        |store, _| Ok(store.ping()),
        |_, ping| {
            Ok(match ping {
                Ok(()) => Reply::json(&json!({ "status": "ok" })),
                Err(down) => Reply::json(&json!({ "status": "unavailable", "redis": down.0 }))
                    .with_status(503)
                    .with_header("Retry-After", "1"),
            }
            .into())
        },
    )
}
