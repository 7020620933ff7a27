//! JSON handlers: `/api/me` (the stored user, WeChat's field names) and `/healthz`.

use crate::config::Scope;
use crate::transport::http::{Reply, Req};
use crate::web::app::App;
use crate::web::error::AppError;
use serde_json::json;

/// GET /api/me: the logged-in user as sns/userinfo named the fields, or 401.
pub fn me(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let Some((_, session)) = app.current(req) else {
        return Ok(Reply::json(&json!({ "error": "unauthenticated" })).with_status(401));
    };
    let user = &session.user;
    let body = match session.scope {
        // Serialized through WechatUser: WeChat's field names.
        Scope::Userinfo => {
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

/// GET /healthz: the loop is serving.
pub fn healthz(_app: &mut App, _req: &Req) -> Result<Reply, AppError> {
    Ok(Reply::json(&json!({ "status": "ok" })))
}
