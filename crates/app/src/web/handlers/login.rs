//! The OAuth dance: `login` sends the browser to WeChat, `callback` takes the
//! code back and makes a session, `logout` ends it. States are signed and
//! stored nowhere until spent (login.rs).

use crate::config::Scope;
use crate::store::logins::Checked;
use crate::store::sessions::{Session, StoredUser, Tokens};
use crate::transport::http::{Reply, Req};
use crate::transport::service::Outcome;
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use crate::web::handlers::scan;
use crate::wechat::client::{Grant, WechatClient, WechatError, WechatUser};
use crate::{log, web::site};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// WeChat's codes are 32 characters; anything far longer is not one.
const MAX_CODE: usize = 256;

/// GET /login[?next=/path]: inside WeChat, a fresh state bound to this
/// browser, then 302 to WeChat. Elsewhere WeChat's authorize page only says
/// 请在微信客户端打开链接, so the browser gets a QR code to scan with WeChat
/// instead (scan.rs); `direct=1` skips it (the demo's "continue here").
pub fn login(app: &mut App, req: &Req) -> Step {
    let next = req
        .query("next")
        .and_then(local_path)
        .unwrap_or_else(|| app.default_next());
    if !scan::in_wechat(req) && req.query("direct") != Some("1") {
        return scan::desktop_qr_page(app, req, &next);
    }
    Ok(app.authorize_redirect(req, &next).into())
}

/// GET /callback?code=C&state=T: WeChat sends the browser back here. Every
/// check runs on the loop before any call (`before_exchange`); the code
/// exchange (and the profile) then run on a worker as one job (`exchange`),
/// and `after_exchange` finishes the login on the loop when they come back.
pub fn callback(app: &mut App, req: &Req) -> Step {
    let (login, code) = match before_exchange(app, req)? {
        Before::Landed(reply) => return Ok(reply.into()),
        Before::Join(key) => return Ok(Outcome::Join(key)),
        Before::Exchange { login, code } => (login, code),
    };
    let (wechat, scope) = (app.wechat(), app.config().scope);
    let old_sessions: Vec<String> = app.session_ids(req).map(str::to_string).collect();
    let key = exchange_key(&login);
    let unspent = login.clone();
    let job = app
        .call(
            req,
            move || exchange(&wechat, scope, &code),
            move |app, answer| after_exchange(app, &login, old_sessions, answer),
        )
        // Refused for want of room (503), the code never went to WeChat:
        // the state is unspent, so tapping 重试 exchanges it. If the call
        // may have run (a panic, a stop), the state stays spent and a
        // reload is refused: a retry is a new login.
        .on_abandon(move |app: &mut App, ran| match ran {
            false => app.logins_mut().unspend(&unspent),
            true => app.logins_mut().fail(&unspent),
        });
    // Keyed by the state: a reload or WeChat's second callback that arrives
    // while this exchange is out waits for it (server.rs), then is handled
    // again and lands where this login does; no second code is exchanged.
    Ok(Outcome::Wait(job.keyed(key)))
}

/// The name of a state's code exchange while it is under way.
fn exchange_key(login: &Checked) -> String {
    format!("login:{}", login.nonce)
}

/// What the callback does once its state has been checked.
enum Before {
    /// Nothing more to ask WeChat: this reply is the answer.
    Landed(Reply),
    /// This state's exchange is under way: wait for it, then look again.
    Join(String),
    /// Exchange `code`; the state is marked spent already.
    Exchange { login: Checked, code: String },
}

/// Everything the callback does before calling WeChat: the state is checked
/// here, first: a forged, foreign, expired or replayed callback costs no
/// upstream call, and a code carried to another browser is refused.
fn before_exchange(app: &mut App, req: &Req) -> Result<Before, AppError> {
    let now = app.now();
    let state = req.query("state").unwrap_or("");
    let cookies = app.login_cookies(req);
    let host = req
        .header("host")
        .filter(|h| !site::same_host(&app.site().url, h));
    let Some(login) = app.logins().check(state, cookies, now) else {
        return Err(match host {
            Some(host) => wrong_host(app, host, false),
            None => AppError::BadState,
        });
    };
    if let Some(host) = host {
        wrong_host(app, host, true);
    }
    if let Some(spent) = app.logins().spent(&login, now) {
        // A reload, or WeChat's double callback (a second code, same state):
        // the first code was exchanged already; a code is exchanged once.
        if spent.exchanging() {
            return Ok(Before::Join(exchange_key(&login)));
        }
        let Some(sid) = spent.session() else {
            // That exchange failed: a retry is a new login.
            return Err(AppError::BadState);
        };
        let reply = Reply::redirect(302, &login.next);
        return Ok(Before::Landed(match app.session(sid) {
            Some(_) => reply.with_cookie(&app.session_cookie(sid)),
            None => reply,
        }));
    }
    let code = match req.query("code") {
        Some(code) if !code.is_empty() => code,
        _ => return Err(AppError::Declined { next: login.next }),
    };
    if code.len() > MAX_CODE {
        return Err(AppError::BadRequest);
    }
    // Whatever happens next, this state's code is spent: a retry is a new login.
    app.logins_mut().spend(&login, now);
    Ok(Before::Exchange {
        code: code.to_string(),
        login,
    })
}

/// A callback on a host other than the site's: said in the log, and, when
/// its state was refused (`worked` false), on the page, with the address to
/// open the site at. The usual cause: the site was opened at another
/// address (an IP, a second name) than WXAUTH_PUBLIC_URL, the login cookie
/// stayed there, and WeChat came back here. One that worked anyway points
/// at a proxy that does not pass the Host header on.
fn wrong_host(app: &App, host: &str, worked: bool) -> AppError {
    let host: String = host.chars().take(100).collect();
    let site = app.site().url.clone();
    if worked {
        log::warn(&format!(
            "/callback: came with Host {host:?}, not the host of {site}; if a proxy is in \
             front, it must pass the Host header on (nginx: proxy_set_header Host $host)"
        ));
    } else {
        log::warn(&format!(
            "/callback: came with Host {host:?}, not the host of {site}, without the login \
             cookie: the login began at another address; people must open the site at {site}/"
        ));
    }
    AppError::WrongHost { site }
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
    // userinfo call (docs/wechat.md §5); `after_exchange` refuses it.
    if grant.is_snapshotuser || scope == Scope::Base {
        return Ok((grant, None));
    }
    let user = wechat.userinfo(&grant.access_token, &grant.openid)?;
    Ok((grant, Some(user)))
}

/// Back on the loop after WeChat answered: the session, the spent state's
/// record, a scan ticket the login was for, the cookie; or the error page.
fn after_exchange(
    app: &mut App,
    login: &Checked,
    old_sessions: Vec<String>,
    answer: Result<(Grant, Option<WechatUser>), WechatError>,
) -> Step {
    let session = match session_of(app, &login.next, answer) {
        Ok(session) => session,
        Err(err) => {
            app.logins_mut().fail(login);
            return Err(err);
        }
    };
    // One browser, one session: ids it held before are ended, never promoted.
    for id in old_sessions {
        app.end_session(&id);
    }
    let sid = app.create_session(session);
    app.logins_mut().complete(login, &sid);
    let confirm = app.path(scan::CONFIRM);
    app.record_scan(&confirm, login, &sid);
    Ok(Reply::redirect(302, &login.next)
        .with_cookie(&app.session_cookie(&sid))
        .into())
}

/// WeChat's answer as a session to store, or why there is none.
fn session_of(
    app: &App,
    next: &str,
    answer: Result<(Grant, Option<WechatUser>), WechatError>,
) -> Result<Session, AppError> {
    let next = next.to_string();
    let (grant, user) = answer.map_err(|error| AppError::Upstream {
        error,
        next: next.clone(),
    })?;
    if grant.is_snapshotuser {
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
    Ok(Session {
        tokens: Tokens::from_grant(&grant, app.now()),
        scope: app.config().scope,
        user: StoredUser::from(user),
        expires: 0,
    })
}

/// POST /logout: ends the session on the server (every session id the
/// browser sent), clears the cookie, 303 home.
pub fn logout(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    app.end_sessions(req);
    Ok(Reply::redirect(303, &app.path("/")).with_cookie(&app.session_cookie_cleared()))
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
