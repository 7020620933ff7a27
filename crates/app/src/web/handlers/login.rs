//! The OAuth dance: `login` sends the browser to WeChat, `callback` takes the
//! code back and makes a session, `logout` ends it. States are signed and
//! stored nowhere until spent (store/logins.rs).

use crate::config::Scope;
use crate::metrics;
use crate::store::backend::{Backend, SpentState, Stored};
use crate::store::logins::{self, Checked};
use crate::store::sessions::{Session, StoredUser, Tokens};
use crate::store::tickets;
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
/// 请在微信客户端打开链接: with a website app (WXAUTH_WEB_APPID) the browser
/// goes to WeChat's own QR login (qrconnect), else it gets wxauth's QR code
/// to scan with WeChat (scan.rs), which `via=scan` asks for either way.
/// `direct=1` skips both (the demo's "continue here").
pub fn login(app: &mut App, req: &Req) -> Step {
    let next = req
        .query("next")
        .and_then(local_path)
        .unwrap_or_else(|| app.default_next());
    if !scan::in_wechat(req) && req.query("direct") != Some("1") {
        if app.has_website_app() && req.query("via") != Some("scan") {
            return Ok(app.website_redirect(req, &next).into());
        }
        return scan::desktop_qr_page(app, req, &next);
    }
    Ok(app.authorize_redirect(req, &next).into())
}

/// GET /callback?code=C&state=T: WeChat sends the browser back here. The
/// state is checked first, on the loop, with no store and no upstream call;
/// then the store says whether it was spent (and spends it: `before`), the
/// code exchange (and the profile) run on a worker as one job (`exchange`),
/// and `after_exchange` stores the session and answers.
pub fn callback(app: &mut App, req: &Req) -> Step {
    let now = app.now();
    let state = req.query("state").unwrap_or("");
    let host = req
        .header("host")
        .filter(|h| !site::same_host(&app.site().url, h));
    let Some(login) = logins::check(app.key(), state, app.login_cookies(req), now) else {
        return Err(match host {
            Some(host) => wrong_host(app, host, false),
            None => AppError::BadState,
        });
    };
    if let Some(host) = host {
        wrong_host(app, host, true);
    }
    let code = match req.query("code") {
        Some(code) if code.len() > MAX_CODE => Err(AppError::BadRequest),
        Some(code) if !code.is_empty() => Ok(code.to_string()),
        _ => Err(AppError::Declined {
            next: login.next.clone(),
        }),
    };
    let spend = code.is_ok();
    let checked = login.clone();
    let req_copy = req.clone();
    app.with_store(
        req,
        move |store, now| before(store, &checked, spend, now),
        move |app, before| match before {
            Before::Landed(cookie) => {
                let reply = Reply::redirect(302, &login.next);
                Ok(match cookie {
                    Some(cookie) => reply.with_cookie(&app.session_cookie(&cookie)),
                    None => reply,
                }
                .into())
            }
            // That exchange failed: a retry is a new login.
            Before::Failed => Err(AppError::BadState),
            // This state's exchange is under way: wait for it (transport/event_loop.rs),
            // then handle this request again; it lands where that one does.
            // With a shared store it may be another instance's: a worker
            // watches the record instead.
            Before::Exchanging if app.shares_store() => {
                let watched = login.clone();
                app.with_store(
                    &req_copy,
                    move |store, now| wait_for_exchange(store, &watched, now),
                    move |app, cookie| match cookie {
                        Some(cookie) => Ok(Reply::redirect(302, &login.next)
                            .with_cookie(&app.session_cookie(&cookie))
                            .into()),
                        None => Err(AppError::BadState),
                    },
                )
            }
            Before::Exchanging => Ok(Outcome::Join(exchange_key(&login))),
            Before::Unspent => Err(code.err().unwrap_or(AppError::BadState)),
            Before::Spent => exchange_on_worker(app, &req_copy, login, code?),
        },
    )
}

/// What the store says of a checked state.
enum Before {
    /// Spent already and landed: the session's cookie, if it is still live.
    Landed(Option<String>),
    /// Spent already, and its exchange failed.
    Failed,
    /// Spent already; its code is being exchanged.
    Exchanging,
    /// Not spent, and not to be (no usable code).
    Unspent,
    /// Spent now, by this request: exchange its code.
    Spent,
}

/// The store's side of the callback's checks: a reload, or WeChat's double
/// callback (a second code, same state), finds the state spent; a code is
/// exchanged once. Spending is one operation, so two requests racing (on
/// one instance or two) cannot both win.
fn before(store: &mut dyn Backend, login: &Checked, spend: bool, now: i64) -> Stored<Before> {
    loop {
        match store.spent(login, now)? {
            Some(SpentState::Exchanging) => return Ok(Before::Exchanging),
            Some(SpentState::Failed) => return Ok(Before::Failed),
            Some(SpentState::Landed(cookie)) => {
                let live = store.session(std::slice::from_ref(&cookie), now)?;
                return Ok(Before::Landed(live.map(|found| found.cookie)));
            }
            None if !spend => return Ok(Before::Unspent),
            // Whatever happens next, this state's code is spent: a retry is
            // a new login. Lost the race: look again.
            None => {
                if store.spend(login, now)? {
                    return Ok(Before::Spent);
                }
            }
        }
    }
}

/// On a worker (a shared store only): waits, up to 10 s, for another
/// request's exchange of this state to end, and gives its session's cookie
/// (None if it failed or ended without one).
fn wait_for_exchange(store: &mut dyn Backend, login: &Checked, now: i64) -> Stored<Option<String>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match store.spent(login, now)? {
            Some(SpentState::Exchanging) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Some(SpentState::Landed(cookie)) => {
                let live = store.session(std::slice::from_ref(&cookie), now)?;
                return Ok(live.map(|found| found.cookie));
            }
            _ => return Ok(None),
        }
    }
}

/// The WeChat calls on a worker, keyed by the state: a reload or WeChat's
/// second callback that arrives meanwhile waits for this one (transport/event_loop.rs).
fn exchange_on_worker(app: &mut App, req: &Req, login: Checked, code: String) -> Step {
    // The state says whose code this is: the website app's or the account's.
    let scope = if login.website {
        Scope::Login
    } else {
        app.config().scope
    };
    let wechat = app.wechat_for(scope);
    let old_sessions = app.session_cookies(req);
    let key = exchange_key(&login);
    let unspent = login.clone();
    let path = req.clone();
    let job = app
        .call(
            req,
            move || exchange(&wechat, scope, &code),
            move |app, answer| after_exchange(app, &path, login, old_sessions, scope, answer),
        )
        // Refused for want of room (503), the code never went to WeChat:
        // the state is unspent, so tapping 重试 exchanges it. If the call
        // may have run (a panic, a stop), the state stays spent and a
        // reload is refused: a retry is a new login.
        .on_abandon(move |app: &mut App, ran| {
            app.store_aside(move |store, now| match ran {
                false => store.unspend(&unspent),
                true => store.fail(&unspent, now),
            })
        });
    Ok(Outcome::Wait(job.keyed(key)))
}

/// The name of a state's code exchange while it is under way.
fn exchange_key(login: &Checked) -> String {
    format!("login:{}", login.nonce)
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
/// record and a scan ticket the login was for go to the store; then the
/// cookie; or the error page.
fn after_exchange(
    app: &mut App,
    req: &Req,
    login: Checked,
    old_sessions: Vec<String>,
    scope: Scope,
    answer: Result<(Grant, Option<WechatUser>), WechatError>,
) -> Step {
    let session = match session_of(app, &login.next, scope, answer) {
        Ok(session) => session,
        Err(err) => {
            return app.with_store(
                req,
                move |store, now| store.fail(&login, now),
                move |_, ()| Err(err),
            );
        }
    };
    let confirm = app.path(scan::CONFIRM);
    let ticket = tickets::scanned_ticket(app.key(), &confirm, &login, app.now());
    let next = login.next.clone();
    app.with_store(
        req,
        move |store, now| {
            // One browser, one session: ids it held before are ended, never promoted.
            store.end_sessions(&old_sessions)?;
            let mut session = session;
            // One person, one user: the same unionid's openid on the other app.
            if let Some(unionid) = session.user.unionid() {
                let (website, openid) = (session.scope.is_website(), session.openid());
                session.other_openid = store.link_openid(unionid, website, openid, now)?;
            }
            let sid = store.create_session(session, now)?;
            store.complete(&login, &sid, now)?;
            if let Some((nonce, expires)) = ticket {
                store.record_scan(&nonce, &login.browser, &sid, expires, now)?;
            }
            Ok(sid)
        },
        move |app, sid| {
            metrics::login_completed(scope.is_website());
            Ok(Reply::redirect(302, &next)
                .with_cookie(&app.session_cookie(&sid))
                .into())
        },
    )
}

/// WeChat's answer as a session to store, or why there is none.
fn session_of(
    app: &App,
    next: &str,
    scope: Scope,
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
        scope,
        user: StoredUser::from(user),
        expires: 0,
        other_openid: None,
    })
}

/// POST /logout: ends the session on the server (every session id the
/// browser sent), clears the cookie, 303 home.
pub fn logout(app: &mut App, req: &Req) -> Step {
    let cookies = app.session_cookies(req);
    app.with_store(
        req,
        move |store, _| store.end_sessions(&cookies),
        |app, ()| {
            let cleared = app.session_cookie_cleared();
            Ok(Reply::redirect(303, &app.path("/"))
                .with_cookie(&cleared)
                .into())
        },
    )
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
