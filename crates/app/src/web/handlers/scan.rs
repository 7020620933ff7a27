//! Scan to log in on a desktop browser. WeChat's authorize page works only
//! inside WeChat, so /login elsewhere shows a QR code for a ticket.
//!
//! 1. Desktop, GET /login: a signed ticket, stored nowhere (like a login
//!    state, store/logins.rs): it carries its time, the desktop's browser and OS
//!    (from its User-Agent) and IP, and a binding to the desktop's login
//!    cookie, which also holds its `next`.
//! 2. Phone, GET /login/scan?t=T: the normal WeChat login, landing on the
//!    confirmation page. Only that real login creates a `Scan` record (T →
//!    this phone's browser and session): memory is bounded by real logins.
//! 3. Phone, GET /login/scan/confirm: what it is about to log in, with
//!    确认登录 / 取消 forms; only a POST from that page (same origin, a token
//!    bound to this phone's session and this ticket) decides. No GET ever
//!    completes a ticket.
//! 4. Desktop, GET /login/ticket (static/scan.js polls it): pending →
//!    scanned → done (a session of its own, once) or cancelled; told only to
//!    the browser the ticket is bound to.

use crate::store::backend::{Claimed, Decided, Found, ScanStatus};
use crate::store::logins;
use crate::store::signed::Key;
use crate::store::tickets::{agent, Ticket, TICKET_TTL};
use crate::transport::http::{encode_component, Reply, Req};
use crate::transport::service::Outcome;
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use minijinja::{context, Value};
use serde_json::json;
use std::sync::Arc;

/// Where the phone lands after its login (under the site's path prefix).
pub const CONFIRM: &str = "/login/scan/confirm";

/// True for WeChat's in-app browser.
pub fn in_wechat(req: &Req) -> bool {
    req.header("user-agent")
        .is_some_and(|ua| ua.contains("MicroMessenger"))
}

/// The QR page for /login outside WeChat. Stores nothing.
pub fn desktop_qr_page(app: &mut App, req: &Req, next: &str) -> Step {
    let mut cookie = app.login_cookie_of(req);
    let ua = req.header("user-agent").unwrap_or("");
    let fallback = app.default_next();
    let next = logins::fit(next, &fallback).to_string();
    let ticket = Ticket::issue(
        app.key(),
        &mut cookie,
        &next,
        agent(ua),
        req.client,
        app.now(),
    );
    let (site, follow, listen) = (
        app.site().url.clone(),
        app.config().follow_host,
        app.config().listen,
    );
    // Drawing the code takes a millisecond or two of CPU, and finding the LAN
    // address asks the system: a worker does both, so a flood of QR pages is
    // bounded like any call (per client, and the queue), never on the loop.
    let draw = move || {
        // The phone opens the site where this browser sees it; in a demo
        // bound to every address, a desktop on loopback shows the LAN
        // address, which the phone can reach (the desktop's poll needs no
        // shared host).
        let phone_site = if follow {
            let lan = crate::web::site::lan_addresses(listen.ip());
            crate::web::site::for_phone(&site, listen, &lan)
        } else {
            site
        };
        let scan_url = format!("{phone_site}/login/scan?t={ticket}");
        let svg = crate::qr::svg(&scan_url);
        (ticket, scan_url, svg)
    };
    let show = move |app: &mut App, (ticket, scan_url, svg): (String, String, String)| {
        let refresh_url = app.login_url(&next);
        let direct_url = format!("{refresh_url}&direct=1");
        let poll_url = app.path("/login/ticket");
        // Our own drawing of a URL we built: no user data, safe to inline.
        let svg = Value::from_safe_string(svg);
        let ctx = context! {
            ticket, scan_url, direct_url, refresh_url, poll_url, next,
            ttl_minutes => TICKET_TTL / 60, qr_svg => svg,
        };
        let page = app.page("scan_desktop.html", ctx)?;
        Ok(page.with_cookie(&app.login_cookie(&cookie)).into())
    };
    Ok(Outcome::Wait(app.call(req, draw, show)))
}

/// GET /login/scan?t=T: the phone (inside WeChat) scanned the code; it logs
/// in as usual and lands on the confirmation page. Stores nothing: the
/// record comes with the login (`Backend::record_scan`).
pub fn phone_scanned(app: &mut App, req: &Req) -> Step {
    let text = req.query("t").unwrap_or("").to_string();
    let now = app.now();
    let Some(nonce) = Ticket::parse(app.key(), &text)
        .filter(|ticket| ticket.scannable(now))
        .map(|ticket| ticket.nonce.to_string())
    else {
        return Ok(phone_page(app, "expired", 410)?.into());
    };
    let req_copy = req.clone();
    app.with_store(
        req,
        move |store, now| store.scan(&nonce, "", now),
        move |app, scan| {
            // In time, and not decided yet (a phone may scan again until then).
            if scan.is_some_and(|scan| scan.status != ScanStatus::Scanned) {
                return Ok(phone_page(app, "expired", 410)?.into());
            }
            let confirm = format!("{}?t={text}", app.path(CONFIRM));
            Ok(app.authorize_redirect(&req_copy, &confirm).into())
        },
    )
}

/// The token the confirmation page's forms carry: bound to this phone's
/// session and this ticket, so a form built anywhere else is worthless.
fn form_token(key: &Key, ticket: &Ticket, sid: &str) -> String {
    key.tag("scan-confirm", &[ticket.nonce, sid])
}

/// GET /login/scan/confirm?t=T: the phone, logged in, is asked to confirm.
/// Shows; never decides.
pub fn phone_confirm_page(app: &mut App, req: &Req) -> Step {
    let text = req.query("t").unwrap_or("").to_string();
    let start_over = Reply::redirect(
        302,
        &format!("{}?t={}", app.path("/login/scan"), encode_component(&text)),
    );
    let nonce = Ticket::parse(app.key(), &text).map(|t| t.nonce.to_string());
    let cookies = app.session_cookies(req);
    app.with_store(
        req,
        move |store, now| {
            let found = store.session(&cookies, now)?;
            let scan = match (&found, nonce) {
                (Some(found), Some(nonce)) => store.scan(&nonce, &found.cookie, now)?,
                _ => None,
            };
            Ok((found, scan))
        },
        move |app, (found, scan)| {
            let Some(Found {
                cookie: sid,
                session,
            }) = found
            else {
                // The phone's login did not stick (WeChat's browser lost the cookie): start over.
                return Ok(start_over.into());
            };
            let now = app.now();
            let key = app.key();
            let Some(ticket) = Ticket::parse(key, &text) else {
                return Ok(phone_page(app, "expired", 410)?.into());
            };
            let Some(scan) = scan else {
                // Never scanned by a logged-in phone (a link sent round): scan it first.
                return Ok(match ticket.scannable(now) {
                    true => start_over,
                    false => phone_page(app, "expired", 410)?,
                }
                .into());
            };
            if !scan.mine {
                return Ok(phone_page(app, "taken", 409)?.into());
            }
            let outcome = match scan.status {
                ScanStatus::Scanned => None,
                ScanStatus::Confirmed | ScanStatus::Claimed => Some("confirmed"),
                ScanStatus::Cancelled => Some("cancelled"),
            };
            if let Some(state) = outcome {
                return Ok(phone_page(app, state, 200)?.into());
            }
            let user = &session.user;
            let issued = ticket.issued;
            let desktop = context! {
                browser => ticket.browser.to_string(),
                os => ticket.os.to_string(),
                ip => ticket.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                // WeChat's users read Beijing time; the page says so.
                shown_at => clock_time(issued + 8 * 3600),
                ago => (now - issued).max(0),
            };
            let ctx = context! {
                ticket => text.clone(),
                token => form_token(key, &ticket, &sid),
                nickname => user.nickname(),
                openid => user.openid(),
                desktop,
            };
            Ok(phone_page_with(app, "confirm", 200, ctx)?.into())
        },
    )
}

/// "HH:MM:SS" of a Unix time.
fn clock_time(t: i64) -> String {
    let s = t.rem_euclid(86400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// POST /login/scan/confirm: the phone confirms; the desktop's next poll
/// gets a session for this phone's user.
pub fn phone_confirms(app: &mut App, req: &Req) -> Step {
    decide(app, req, true)
}

/// POST /login/scan/cancel: the phone refuses; the desktop shows 已取消.
pub fn phone_cancels(app: &mut App, req: &Req) -> Step {
    decide(app, req, false)
}

/// The two forms' handler. Same origin is checked before (routes.rs); here:
/// this phone's session, the page's token (bound to the session and the
/// ticket), then the store records the decision if the record is this
/// phone's and undecided. Then 303 back to the page, which shows the outcome.
fn decide(app: &mut App, req: &Req, confirmed: bool) -> Step {
    let form = req.form();
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    let (text, token) = (field("t"), field("token"));
    let nonce = Ticket::parse(app.key(), &text).map(|t| t.nonce.to_string());
    let cookies = app.session_cookies(req);
    let key = app.key().clone();
    let back = format!("{}?t={}", app.path(CONFIRM), encode_component(&text));
    app.with_store(
        req,
        move |store, now| {
            let Some(Found {
                cookie: sid,
                session,
            }) = store.session(&cookies, now)?
            else {
                return Ok(None);
            };
            let Some(nonce) = nonce else {
                return Ok(Some(Decided::Gone));
            };
            let Some(scan) = store.scan(&nonce, &sid, now)? else {
                return Ok(Some(Decided::Gone));
            };
            if !scan.mine || !key.verify("scan-confirm", &[&nonce, &sid], &token) {
                return Ok(Some(Decided::NotYours));
            }
            // What the desktop will get, copied only when it is to get it.
            let session = confirmed.then(|| Arc::unwrap_or_clone(session));
            store.decide(&nonce, &text, &sid, session, now).map(Some)
        },
        move |app, decided| {
            Ok(match decided {
                None | Some(Decided::NotYours) => phone_page(app, "denied", 403)?,
                Some(Decided::Gone) => phone_page(app, "expired", 410)?,
                // Decided once already (a replayed post): nothing changes.
                Some(Decided::Already) => phone_page(app, "decided", 409)?,
                Some(Decided::Now) => Reply::redirect(303, &back),
            }
            .into())
        },
    )
}

/// GET /login/ticket?t=T: the desktop page asks how its ticket is doing.
/// Only the browser the ticket is bound to learns anything about it.
pub fn desktop_poll(app: &mut App, req: &Req) -> Step {
    let text = req.query("t").unwrap_or("").to_string();
    let now = app.now();
    let key = app.key();
    let Some(ticket) = Ticket::parse(key, &text) else {
        return Ok(answer("expired", 410).into());
    };
    let Some(next) = ticket.bound_next(key, app.login_cookies(req)) else {
        return Ok(answer("forbidden", 403).into());
    };
    let (nonce, scannable) = (ticket.nonce.to_string(), ticket.scannable(now));
    // The desktop gets a session of its own; one it held before is ended.
    let old_sessions = app.session_cookies(req);
    app.with_store(
        req,
        move |store, now| {
            let claimed = store.claim(&nonce, &text, now)?;
            let Claimed::Session(session) = claimed else {
                return Ok(Err(claimed));
            };
            store.end_sessions(&old_sessions)?;
            store.create_session(*session, now).map(Ok)
        },
        move |app, claimed| {
            Ok(match claimed {
                Ok(sid) => Reply::json(&json!({ "status": "done", "next": next }))
                    .with_cookie(&app.session_cookie(&sid)),
                Err(Claimed::Pending) if scannable => answer("pending", 200),
                Err(Claimed::Scanned) => answer("scanned", 200),
                Err(Claimed::Cancelled) => answer("cancelled", 200),
                // Used once, or out of time: asking again finds nothing.
                Err(_) => answer("expired", 410),
            }
            .into())
        },
    )
}

/// The desktop poll's JSON answer.
fn answer(status: &str, code: u16) -> Reply {
    Reply::json(&json!({ "status": status })).with_status(code)
}

/// The phone's page: `state` is confirm, confirmed, cancelled, expired,
/// taken (another phone scanned it), denied or decided.
fn phone_page(app: &App, state: &str, status: u16) -> Result<Reply, AppError> {
    phone_page_with(app, state, status, Value::UNDEFINED)
}

/// `phone_page` with more for the template.
fn phone_page_with(app: &App, state: &str, status: u16, extra: Value) -> Result<Reply, AppError> {
    let ctx = context! { state, ..extra };
    Ok(app.page("scan_phone.html", ctx)?.with_status(status))
}
