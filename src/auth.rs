//! The OAuth dance: `login` sends the browser to WeChat, `callback` takes the
//! code back and makes a session, `logout` ends it.

use crate::app::{App, Step, BROWSER_COOKIE, SESSION_COOKIE};
use crate::config::Scope;
use crate::error::AppError;
use crate::http::{Reply, Req};
use crate::random::{self, constant_time_eq};
use crate::scan;
use crate::server::Outcome;
use crate::session::{Session, StoredUser, Tokens, ID_LEN, LOGIN_TTL};
use crate::wechat::{Grant, WechatClient, WechatError, WechatUser};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use std::sync::Arc;

/// Where a login lands when it was not asked to go anywhere else.
const DEFAULT_NEXT: &str = "/profile";
/// WeChat's codes are 32 characters; anything far longer is not one.
const MAX_CODE: usize = 256;

/// GET /login[?next=/path]: inside WeChat, a fresh state bound to this
/// browser, then 302 to WeChat. Elsewhere WeChat's authorize page only says
/// 请在微信客户端打开链接, so the browser gets a QR code to scan with WeChat
/// instead (scan.rs); `direct=1` skips it (the demo's "continue here").
pub fn login(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let next = req
        .query("next")
        .and_then(local_path)
        .unwrap_or_else(|| DEFAULT_NEXT.to_string());
    if !scan::in_wechat(req) && req.query("direct") != Some("1") {
        return scan::qr_page(app, req, &next);
    }
    Ok(begin(app, req, &next))
}

/// This browser's id: kept across logins so two tabs logging in at once both work.
pub fn browser_id(req: &Req) -> String {
    match req.cookie(BROWSER_COOKIE) {
        Some(id) if random::is_token(id, ID_LEN) => id.to_string(),
        _ => random::token(ID_LEN),
    }
}

/// Starts a login that lands on `next` (a checked local path): 302 to WeChat.
pub fn begin(app: &mut App, req: &Req, next: &str) -> Reply {
    let browser = browser_id(req);
    let state = app.logins.begin(&browser, next, app.clock.now());
    let url = app
        .wechat
        .authorize_url(&app.config.redirect_uri(), app.config.scope, &state);
    let cookie = app.cookie(BROWSER_COOKIE, &browser, LOGIN_TTL as u64);
    Reply::redirect(302, &url).with_cookie(&cookie)
}

/// GET /callback?code=C&state=T: WeChat sends the browser back here. Every
/// check runs here, on the loop, before any call; the code exchange (and the
/// profile) then run on a worker as one job, and `logged_in` finishes the
/// login on the loop when they come back.
pub fn callback(app: &mut App, req: &Req) -> Step {
    let now = app.clock.now();
    // The state is checked before any upstream call: a forged or replayed
    // callback costs nothing, and a code carried to another browser is refused.
    let state = req.query("state").unwrap_or("");
    let login = app.logins.get(state, now).ok_or(AppError::BadState)?;
    if !constant_time_eq(&login.browser, req.cookie(BROWSER_COOKIE).unwrap_or("")) {
        return Err(AppError::BadState);
    }
    let next = login.next.clone();
    if let Some(sid) = login.session.clone() {
        // A reload, or WeChat's double callback (a second code, same state):
        // the first code was exchanged already; a code is exchanged once.
        let reply = Reply::redirect(302, &next);
        return Ok(match app.sessions.get(&sid, now) {
            Some(_) => reply.with_cookie(&app.session_cookie(&sid)),
            None => reply,
        }
        .into());
    }
    let code = match req.query("code") {
        Some(code) if !code.is_empty() => code.to_string(),
        _ => {
            app.logins.remove(state);
            return Err(AppError::Declined { next });
        }
    };
    if code.len() > MAX_CODE {
        app.logins.remove(state);
        return Err(AppError::BadRequest);
    }
    let state = state.to_string();
    let old_session = req.cookie(SESSION_COOKIE).map(str::to_string);
    let (wechat, scope) = (Arc::clone(&app.wechat), app.config.scope);
    // Keyed by the state: a reload or WeChat's second callback that arrives
    // while this exchange is out waits for it (server.rs), then is handled
    // again and finds the login completed; no second code is exchanged.
    let key = format!("login:{state}");
    let job = app.call(
        req,
        move || exchange(&wechat, scope, &code),
        move |app, answer| logged_in(app, &state, &next, old_session, answer),
    );
    Ok(Outcome::Wait(job.keyed(key)))
}

/// Code → grant → (with snsapi_userinfo) profile. Runs on a worker: it
/// touches no state, only WeChat.
fn exchange(
    wechat: &WechatClient,
    scope: Scope,
    code: &str,
) -> Result<(Grant, Option<WechatUser>), WechatError> {
    let grant = wechat.exchange_code(code)?;
    // A Moments snapshot page gives a virtual openid: not this user. No
    // userinfo call (WECHAT.md, snapshot-page users); `logged_in` refuses it.
    if grant.is_snapshotuser || scope == Scope::Base {
        return Ok((grant, None));
    }
    let user = wechat.userinfo(&grant.access_token, &grant.openid)?;
    Ok((grant, Some(user)))
}

/// Back on the loop after the exchange: the session, or the error page.
/// Whatever happened, this state's code is spent: a retry is a new login.
fn logged_in(
    app: &mut App,
    state: &str,
    next: &str,
    old_session: Option<String>,
    answer: Result<(Grant, Option<WechatUser>), WechatError>,
) -> Step {
    let (grant, user) = match answer {
        Ok(answer) => answer,
        Err(error) => {
            app.logins.remove(state);
            let next = next.to_string();
            return Err(AppError::Upstream { error, next });
        }
    };
    if grant.is_snapshotuser {
        app.logins.remove(state);
        let next = next.to_string();
        return Err(AppError::Snapshot { next });
    }
    let user = match user {
        Some(mut user) => {
            user.unionid = user.unionid.take().or_else(|| grant.unionid.clone());
            user
        }
        // snsapi_base: WeChat says only who it is.
        None => WechatUser {
            openid: grant.openid.clone(),
            unionid: grant.unionid.clone(),
            ..WechatUser::default()
        },
    };
    let now = app.clock.now();
    let session = Session {
        tokens: Tokens::from_grant(&grant, now),
        scope: app.config.scope,
        user: StoredUser::from(user),
        expires: 0,
    };
    // One browser, one session: a session id it held before is ended, never promoted.
    if let Some(old) = old_session {
        app.sessions.remove(&old);
    }
    let sid = app.sessions.create(session, now);
    app.logins.complete(state, &sid);
    Ok(Reply::redirect(302, next)
        .with_cookie(&app.session_cookie(&sid))
        .into())
}

/// POST /logout: ends the session on the server, clears the cookie, 303 home.
pub fn logout(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    if let Some(id) = req.cookie(SESSION_COOKIE) {
        app.sessions.remove(id);
    }
    Ok(Reply::redirect(303, "/").with_cookie(&app.cookie(SESSION_COOKIE, "", 0)))
}

/// Characters written percent-encoded when `next` goes back into a Location
/// header: controls, space, quotes, angle brackets and everything non-ASCII.
const LOCATION: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');

/// `next` if it is a path on this site, else None. Refuses anything a browser
/// could read as another origin: `//host`, `/\host`, backslashes anywhere
/// (browsers treat them as slashes) and control characters (browsers strip
/// tabs and newlines, so `/\t/host` would become `//host`).
pub fn local_path(next: &str) -> Option<String> {
    let rest = next.strip_prefix('/')?;
    if rest.starts_with('/') || next.contains('\\') || next.chars().any(char::is_control) {
        return None;
    }
    if next.len() > 1024 {
        return None;
    }
    Some(utf8_percent_encode(next, LOCATION).to_string())
}

#[cfg(test)]
mod tests {
    use super::local_path;

    fn check(next: &str, kept: Option<&str>) {
        assert_eq!(local_path(next).as_deref(), kept, "next = {next:?}");
    }

    #[test]
    fn local_paths_are_kept() {
        check("/", Some("/"));
        check("/profile", Some("/profile"));
        check("/a/b?c=d&e=f#g", Some("/a/b?c=d&e=f#g"));
        check("/文章", Some("/%E6%96%87%E7%AB%A0"));
        check("/a b\"<x>", Some("/a%20b%22%3Cx%3E"));
        check("/%2F%2Fevil.com", Some("/%2F%2Fevil.com"));
    }

    #[test]
    fn off_site_targets_are_refused() {
        for next in [
            "",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "/\\/evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "http:/evil.com",
            "evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r\nSet-Cookie: x=1",
            "/a\\b",
            " /x",
            "javascript:alert(1)",
        ] {
            check(next, None);
        }
    }
}
