//! wxauth as a login gateway in front of another web app, through nginx's
//! `auth_request`: `/auth/check` answers whether the browser is logged in
//! (and allowed), with the identity in headers nginx passes upstream;
//! `/auth/start` begins a login that returns to the page first asked for;
//! `/auth/denied` tells a user outside the allow-list their openid.
//! Cheap on purpose: nginx calls /auth/check on every upstream request.

use crate::store::backend::Found;
use crate::transport::http::{encode_component, Reply, Req};
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use crate::web::handlers::login::local_path;

/// GET /auth/check: 204 with X-WeChat-OpenID, X-WeChat-UnionID (when known)
/// and X-WeChat-Nickname (percent-encoded UTF-8) for a live session of an
/// allowed user; 403 for a user outside WXAUTH_ALLOW; 401 otherwise.
pub fn check(app: &mut App, req: &Req) -> Step {
    app.with_session(req, |app, found| Ok(identity(app, found).into()))
}

/// The answer to /auth/check for the session found.
fn identity(app: &App, found: Option<Found>) -> Reply {
    let Some(Found { session, .. }) = found else {
        return Reply::empty(401);
    };
    // Every stored identity fits a header: logins refuse any other
    // (wechat::client), and so does loading a session file (store/session_file.rs).
    let user = &session.user;
    if !allowed(app, user.openid(), user.unionid()) {
        return Reply::empty(403);
    }
    let mut reply = Reply::empty(204)
        .with_header("X-WeChat-OpenID", user.openid())
        .with_header("X-WeChat-Nickname", &encode_component(user.nickname()));
    if let Some(unionid) = user.unionid() {
        reply = reply.with_header("X-WeChat-UnionID", unionid);
    }
    reply
}

/// GET /auth/start: nginx sends an anonymous visitor here (its 401 handler),
/// with the page they asked for in X-Original-URI; they go to the site's
/// /login, and come back there. The value is checked like any `next`: a
/// path on this host, which under a prefix is the protected app's, beside
/// wxauth's.
pub fn start(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let next = req
        .header("x-original-uri")
        .and_then(local_path)
        .unwrap_or_else(|| "/".to_string());
    Ok(Reply::redirect(302, &app.login_url(&next)))
}

/// GET /auth/denied: the page nginx shows (its 403 handler) to a logged-in
/// user outside the allow-list, with the openid an admin needs to add them.
pub fn denied(app: &mut App, req: &Req) -> Step {
    app.with_session(req, |app, found| {
        let Some(Found { session, .. }) = found else {
            return Ok(Reply::redirect(302, &app.path("/login")).into());
        };
        Err(AppError::NotAllowed {
            openid: session.user.openid().to_string(),
        })
    })
}

fn allowed(app: &App, openid: &str, unionid: Option<&str>) -> bool {
    match &app.config().allow {
        None => true,
        Some(list) => list.contains(openid) || unionid.is_some_and(|u| list.contains(u)),
    }
}
