//! Scan to log in on a desktop browser. WeChat's authorize page works only
//! inside WeChat, so /login elsewhere shows a QR code for a ticket.
//!
//! 1. Desktop, GET /login: a signed ticket, stored nowhere (like a login
//!    state, login.rs): it carries its time, the desktop's browser and OS
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

use crate::random;
use crate::store::logins::{self, ByNonce, Checked, LoginCookie, NONCE_LEN};
use crate::store::sessions::Session;
use crate::store::signed::{self, Key, TAG_LEN, TIME_LEN};
use crate::transport::http::{encode_component, Reply, Req};
use crate::transport::server::Outcome;
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use crate::web::handlers::login::{begin, default_next};
use minijinja::{context, Value};
use serde_json::json;
use std::net::{IpAddr, Ipv6Addr};

/// A ticket must be scanned within this many seconds of being shown.
pub const TICKET_TTL: i64 = 120;
/// A phone that opened the code in time may take this much longer over its
/// WeChat login before the ticket is refused.
const LOGIN_GRACE: i64 = 60;
/// A scan record lives this long from its creation: past the last moment its
/// ticket could be scanned, so a ticket once decided cannot be scanned afresh.
const SCAN_TTL: i64 = TICKET_TTL + LOGIN_GRACE;
/// Scan records kept at most; each takes a real WeChat login to make.
const MAX_SCANS: usize = 10_000;
/// Characters of the IP address (as a u128, IPv4 mapped into IPv6).
const IP_LEN: usize = 22;
/// Length of a ticket: nonce, time, browser and OS, IP, binding, tag.
pub const TICKET_LEN: usize = NONCE_LEN + TIME_LEN + 2 + IP_LEN + TAG_LEN + TAG_LEN;
/// Where the phone lands after its login (under the site's path prefix).
const CONFIRM: &str = "/login/scan/confirm";

/// True for WeChat's in-app browser.
pub fn in_wechat(req: &Req) -> bool {
    req.header("user-agent")
        .is_some_and(|ua| ua.contains("MicroMessenger"))
}

/// A ticket whose tag checked out: genuine, but not yet known to be this
/// browser's (`bound_next`) or still in time.
struct Ticket<'a> {
    nonce: &'a str,
    issued: i64,
    /// Browser and OS codes (`agent`).
    browser: char,
    os: char,
    ip: Option<IpAddr>,
    bind: &'a str,
}

impl<'a> Ticket<'a> {
    /// A fresh ticket for the browser of `cookie`; `cookie` remembers `next`.
    fn issue(
        key: &Key,
        cookie: &mut LoginCookie,
        next: &str,
        agent: [char; 2],
        ip: Option<IpAddr>,
        now: i64,
    ) -> String {
        let nonce = random::token(NONCE_LEN);
        let issued = signed::time(now);
        let agent: String = agent.iter().collect();
        let ip = signed::base62(ip_number(ip), IP_LEN);
        let bind = key.tag("ticket-browser", &[&nonce, &cookie.browser, next]);
        let tag = key.tag("ticket", &[&nonce, &issued, &agent, &ip, &bind]);
        cookie.remember(&nonce, next);
        format!("{nonce}{issued}{agent}{ip}{bind}{tag}")
    }

    /// Reads a ticket; None unless its tag is ours.
    fn parse(key: &Key, text: &'a str) -> Option<Ticket<'a>> {
        if text.len() != TICKET_LEN || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let (nonce, rest) = text.split_at(NONCE_LEN);
        let (issued, rest) = rest.split_at(TIME_LEN);
        let (agent, rest) = rest.split_at(2);
        let (ip, rest) = rest.split_at(IP_LEN);
        let (bind, tag) = rest.split_at(TAG_LEN);
        if !key.verify("ticket", &[nonce, issued, agent, ip, bind], tag) {
            return None;
        }
        let mut agent = agent.chars();
        Some(Ticket {
            nonce,
            issued: signed::untime(issued)?,
            browser: agent.next()?,
            os: agent.next()?,
            ip: ip_of(signed::unbase62(ip)?),
            bind,
        })
    }

    /// The `next` of the desktop this ticket was shown to, if one of the
    /// login cookies sent (each tried) is that desktop's.
    fn bound_next<'c>(
        &self,
        key: &Key,
        cookies: impl IntoIterator<Item = &'c str>,
    ) -> Option<String> {
        cookies.into_iter().find_map(|value| {
            let cookie = LoginCookie::parse(value)?;
            let next = cookie.next_of(self.nonce)?;
            key.verify(
                "ticket-browser",
                &[self.nonce, &cookie.browser, next],
                self.bind,
            )
            .then(|| next.to_string())
        })
    }

    /// True while the ticket may be scanned.
    fn scannable(&self, now: i64) -> bool {
        signed::fresh(self.issued, now, TICKET_TTL)
    }

    /// The nonce as a map key.
    fn id(&self) -> [u8; NONCE_LEN] {
        self.nonce
            .as_bytes()
            .try_into()
            .expect("parse checked the length")
    }
}

fn ip_number(ip: Option<IpAddr>) -> u128 {
    match ip {
        Some(IpAddr::V4(v4)) => u128::from(v4.to_ipv6_mapped()),
        Some(IpAddr::V6(v6)) => u128::from(v6),
        None => 0,
    }
}

fn ip_of(n: u128) -> Option<IpAddr> {
    let v6 = Ipv6Addr::from(n);
    match v6.to_ipv4_mapped() {
        _ if n == 0 => None,
        Some(v4) => Some(IpAddr::V4(v4)),
        None => Some(IpAddr::V6(v6)),
    }
}

/// The browser and OS of a User-Agent, as one code each (the template names
/// them): nothing the client wrote reaches the phone's page but these.
pub fn agent(ua: &str) -> [char; 2] {
    let has = |words: &[&str]| words.iter().any(|w| ua.contains(w));
    let browser = if has(&["MicroMessenger"]) {
        'w'
    } else if has(&["Edg/", "Edge/", "EdgA/", "EdgiOS/"]) {
        'e'
    } else if has(&["OPR/", "Opera"]) {
        'o'
    } else if has(&["Firefox/", "FxiOS/"]) {
        'f'
    } else if has(&["Chrome/", "CriOS/", "Chromium/"]) {
        'c'
    } else if has(&["Safari/"]) {
        's'
    } else {
        'x'
    };
    let os = if has(&["Windows"]) {
        'w'
    } else if has(&["Android"]) {
        'a'
    } else if has(&["iPhone", "iPad", "iPod"]) {
        'i'
    } else if has(&["Macintosh", "Mac OS X"]) {
        'm'
    } else if has(&["CrOS"]) {
        'c'
    } else if has(&["Linux", "X11"]) {
        'l'
    } else {
        'x'
    };
    [browser, os]
}

/// What became of a scanned ticket.
enum Status {
    /// The phone logged in and sees the confirmation page.
    Scanned,
    /// The phone confirmed: the desktop's next poll gets a copy of this.
    Confirmed(Box<Session>),
    /// The phone cancelled.
    Cancelled,
    /// The desktop took its session: the ticket is dead.
    Claimed,
}

/// A ticket scanned by a logged-in phone.
struct Scan {
    /// The phone's browser id (login cookie), so it may scan again.
    phone: String,
    /// The phone's session: only it may confirm or cancel.
    sid: String,
    status: Status,
    expires: i64,
}

/// Scan records, by ticket nonce.
pub struct Scans(ByNonce<Scan>);

impl Default for Scans {
    fn default() -> Scans {
        Scans(ByNonce::new(MAX_SCANS))
    }
}

impl Scans {
    fn get(&self, id: &[u8; NONCE_LEN], now: i64) -> Option<&Scan> {
        self.0.get(id).filter(|s| s.expires > now)
    }

    fn get_mut(&mut self, id: &[u8; NONCE_LEN], now: i64) -> Option<&mut Scan> {
        self.0.get_mut(id).filter(|s| s.expires > now)
    }

    fn insert(&mut self, id: [u8; NONCE_LEN], scan: Scan) {
        self.0.insert(id, scan);
    }

    /// Drops expired records.
    pub fn sweep(&mut self, now: i64) {
        self.0.retain(|s| s.expires > now);
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The QR page for /login outside WeChat. Stores nothing.
pub fn qr_page(app: &mut App, req: &Req, next: &str) -> Step {
    let mut cookie = app.login_cookie_of(req);
    let ua = req.header("user-agent").unwrap_or("");
    let fallback = default_next(app);
    let next = logins::fit(next, &fallback).to_string();
    let ticket = Ticket::issue(
        app.logins.key(),
        &mut cookie,
        &next,
        agent(ua),
        req.client,
        app.clock.now(),
    );
    let (site, follow, listen) = (
        app.site.url.clone(),
        app.config.follow_host,
        app.config.listen,
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
        let svg = qr_svg(&scan_url);
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
        let page = app.page("scan.html", ctx)?;
        Ok(page.with_cookie(&app.login_cookie(&cookie)).into())
    };
    Ok(Outcome::Wait(app.call(req, draw, show)))
}

/// The QR code as an inline SVG element.
fn qr_svg(url: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(url.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    // Inline in HTML: no XML declaration, and a name for screen readers.
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen(
        "<svg",
        "<svg class=\"qr\" role=\"img\" aria-label=\"登录二维码\"",
        1,
    )
}

/// GET /login/scan?t=T: the phone (inside WeChat) scanned the code; it logs
/// in as usual and lands on the confirmation page. Stores nothing: the
/// record comes with the login (`after_login`).
pub fn scan(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let text = req.query("t").unwrap_or("");
    let now = app.clock.now();
    // In time, and not decided yet (a phone may scan again until then).
    let open = Ticket::parse(app.logins.key(), text).is_some_and(|ticket| {
        ticket.scannable(now)
            && app
                .scans
                .get(&ticket.id(), now)
                .is_none_or(|scan| matches!(scan.status, Status::Scanned))
    });
    if !open {
        return phone_page(app, "expired", 410);
    }
    let confirm = format!("{}?t={text}", app.path(CONFIRM));
    Ok(begin(app, req, &confirm))
}

/// Called by the callback once a login succeeded: if it was a phone's login
/// for a ticket, that phone has now scanned it. The only place a scan record
/// is made, so each costs a real WeChat login. A ticket another phone
/// scanned first stays that phone's.
pub fn after_login(app: &mut App, login: &Checked, sid: &str, now: i64) {
    let confirm = app.path(CONFIRM);
    let Some(text) = login
        .next
        .strip_prefix(&confirm)
        .and_then(|q| q.strip_prefix("?t="))
    else {
        return;
    };
    let Some(ticket) = Ticket::parse(app.logins.key(), text) else {
        return;
    };
    if !signed::fresh(ticket.issued, now, SCAN_TTL) {
        return;
    }
    let id = ticket.id();
    match app.scans.get_mut(&id, now) {
        None => app.scans.insert(
            id,
            Scan {
                phone: login.browser.clone(),
                sid: sid.to_string(),
                status: Status::Scanned,
                expires: now + SCAN_TTL,
            },
        ),
        // The same phone scanning again: its new session takes over.
        Some(scan) if scan.phone == login.browser && matches!(scan.status, Status::Scanned) => {
            scan.sid = sid.to_string();
        }
        Some(_) => {}
    }
}

/// The token the confirmation page's forms carry: bound to this phone's
/// session and this ticket, so a form built anywhere else is worthless.
fn form_token(key: &Key, ticket: &Ticket, sid: &str) -> String {
    key.tag("scan-confirm", &[ticket.nonce, sid])
}

/// GET /login/scan/confirm?t=T: the phone, logged in, is asked to confirm.
/// Shows; never decides.
pub fn confirm_page(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let text = req.query("t").unwrap_or("").to_string();
    let now = app.clock.now();
    let start_over = Reply::redirect(
        302,
        &format!("{}?t={}", app.path("/login/scan"), encode_component(&text)),
    );
    let Some((sid, session)) = app.current(req) else {
        // The phone's login did not stick (WeChat's browser lost the cookie): start over.
        return Ok(start_over);
    };
    let key = app.logins.key();
    let Some(ticket) = Ticket::parse(key, &text) else {
        return phone_page(app, "expired", 410);
    };
    let Some(scan) = app.scans.get(&ticket.id(), now) else {
        // Never scanned by a logged-in phone (a link sent round): scan it first.
        return match ticket.scannable(now) {
            true => Ok(start_over),
            false => phone_page(app, "expired", 410),
        };
    };
    if scan.sid != sid {
        return phone_page(app, "taken", 409);
    }
    let outcome = match scan.status {
        Status::Scanned => None,
        Status::Confirmed(_) | Status::Claimed => Some("confirmed"),
        Status::Cancelled => Some("cancelled"),
    };
    if let Some(state) = outcome {
        return phone_page(app, state, 200);
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
    phone_page_with(app, "confirm", 200, ctx)
}

/// "HH:MM:SS" of a Unix time.
fn clock_time(t: i64) -> String {
    let s = t.rem_euclid(86400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// POST /login/scan/confirm: the phone confirms; the desktop's next poll
/// gets a session for this phone's user.
pub fn confirm(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    decide(app, req, true)
}

/// POST /login/scan/cancel: the phone refuses; the desktop shows 已取消.
pub fn cancel(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    decide(app, req, false)
}

/// The two forms' handler. Same origin is checked before (routes.rs); here:
/// this phone's session, the record of its own scan, the page's token, and
/// a ticket not decided yet. Then 303 back to the page, which shows the outcome.
fn decide(app: &mut App, req: &Req, confirmed: bool) -> Result<Reply, AppError> {
    let form = req.form();
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let (text, token) = (field("t"), field("token"));
    let now = app.clock.now();
    let Some((sid, session)) = app.current(req) else {
        return phone_page(app, "denied", 403);
    };
    // What the desktop will get, copied only when it is to get it.
    let session = confirmed.then(|| Box::new(session.clone()));
    let key = app.logins.key();
    let Some(ticket) = Ticket::parse(key, text) else {
        return phone_page(app, "expired", 410);
    };
    let id = ticket.id();
    let Some(scan) = app.scans.get_mut(&id, now) else {
        return phone_page(app, "expired", 410);
    };
    if scan.sid != sid || !key.verify("scan-confirm", &[ticket.nonce, &sid], token) {
        return phone_page(app, "denied", 403);
    }
    if !matches!(scan.status, Status::Scanned) {
        // Decided once already (a replayed post): nothing changes.
        return phone_page(app, "decided", 409);
    }
    scan.status = match session {
        Some(session) => Status::Confirmed(session),
        None => Status::Cancelled,
    };
    let back = format!("{}?t={}", app.path(CONFIRM), encode_component(text));
    Ok(Reply::redirect(303, &back))
}

/// GET /login/ticket?t=T: the desktop page asks how its ticket is doing.
/// Only the browser the ticket is bound to learns anything about it.
pub fn status(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let text = req.query("t").unwrap_or("");
    let now = app.clock.now();
    let answer =
        |status: &str, code: u16| Reply::json(&json!({ "status": status })).with_status(code);
    let key = app.logins.key();
    let Some(ticket) = Ticket::parse(key, text) else {
        return Ok(answer("expired", 410));
    };
    let Some(next) = ticket.bound_next(key, req.cookies_named(app.login_cookie_name)) else {
        return Ok(answer("forbidden", 403));
    };
    let Some(scan) = app.scans.get_mut(&ticket.id(), now) else {
        return Ok(match ticket.scannable(now) {
            true => answer("pending", 200),
            false => answer("expired", 410),
        });
    };
    // Taking the session claims the ticket; any other status is put back.
    let session = match std::mem::replace(&mut scan.status, Status::Claimed) {
        Status::Confirmed(session) => session,
        Status::Scanned => {
            scan.status = Status::Scanned;
            return Ok(answer("scanned", 200));
        }
        Status::Cancelled => {
            scan.status = Status::Cancelled;
            return Ok(answer("cancelled", 200));
        }
        // Used once: asking again finds nothing.
        Status::Claimed => return Ok(answer("expired", 410)),
    };
    // The desktop gets a session of its own; one it held before is ended.
    app.end_sessions(req);
    let sid = app.sessions.create(*session, now);
    Ok(Reply::json(&json!({ "status": "done", "next": next }))
        .with_cookie(&app.session_cookie(&sid)))
}

/// The phone's page: `state` is confirm, confirmed, cancelled, expired,
/// taken (another phone scanned it), denied or decided.
fn phone_page(app: &App, state: &str, status: u16) -> Result<Reply, AppError> {
    phone_page_with(app, state, status, Value::UNDEFINED)
}

/// `phone_page` with more for the template.
fn phone_page_with(app: &App, state: &str, status: u16, extra: Value) -> Result<Reply, AppError> {
    let ctx = context! { state, ..extra };
    Ok(app.page("scan_done.html", ctx)?.with_status(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_carries_the_desktop_and_is_bound_to_its_browser() {
        let key = Key::random();
        let mut cookie = LoginCookie::new();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let text = Ticket::issue(&key, &mut cookie, "/next", ['c', 'w'], Some(ip), 1000);
        assert_eq!(text.len(), TICKET_LEN);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        let ticket = Ticket::parse(&key, &text).unwrap();
        assert_eq!((ticket.browser, ticket.os, ticket.ip), ('c', 'w', Some(ip)));
        assert_eq!(ticket.issued, 1000);
        assert!(ticket.scannable(1000 + TICKET_TTL - 1) && !ticket.scannable(1000 + TICKET_TTL));
        let value = cookie.value();
        assert_eq!(
            ticket.bound_next(&key, [value.as_str()]).as_deref(),
            Some("/next")
        );
        let other = LoginCookie::new().value();
        assert_eq!(ticket.bound_next(&key, [other.as_str()]), None);
        // Any changed character breaks it, the shown IP included.
        for at in [0, 25, 29, 45, 60, TICKET_LEN - 1] {
            let mut forged = text.clone().into_bytes();
            forged[at] = if forged[at] == b'7' { b'8' } else { b'7' };
            let forged = String::from_utf8(forged).unwrap();
            assert!(Ticket::parse(&key, &forged).is_none(), "changed at {at}");
        }
        assert!(Ticket::parse(&Key::random(), &text).is_none());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let text = Ticket::issue(&key, &mut cookie, "/", ['x', 'x'], Some(v6), 0);
        assert_eq!(Ticket::parse(&key, &text).unwrap().ip, Some(v6));
        let text = Ticket::issue(&key, &mut cookie, "/", ['x', 'x'], None, 0);
        assert_eq!(Ticket::parse(&key, &text).unwrap().ip, None);
    }

    #[test]
    fn user_agents_become_codes() {
        for (ua, codes) in [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0", ['e', 'w']),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15", ['s', 'm']),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", ['f', 'l']),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36", ['c', 'l']),
            ("<script>alert(1)</script>", ['x', 'x']),
            ("", ['x', 'x']),
        ] {
            assert_eq!(agent(ua), codes, "{ua}");
        }
    }

    #[test]
    fn scan_records_are_capped() {
        let mut scans = Scans::default();
        for i in 0..MAX_SCANS + 5 {
            let id: [u8; NONCE_LEN] = format!("{i:0>22}").as_bytes().try_into().unwrap();
            let scan = Scan {
                phone: String::new(),
                sid: String::new(),
                status: Status::Scanned,
                expires: 10,
            };
            scans.insert(id, scan);
        }
        assert_eq!(scans.len(), MAX_SCANS);
        scans.sweep(10);
        assert!(scans.is_empty());
    }

    #[test]
    fn the_qr_code_is_an_inline_svg_with_a_label() {
        let svg = qr_svg("https://wx.example.com/login/scan?t=abc");
        assert!(
            svg.starts_with("<svg class=\"qr\" role=\"img\" aria-label=\"登录二维码\""),
            "{svg:.80}"
        );
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
    }
}
