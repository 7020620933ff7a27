//! Scan to log in on a desktop browser. WeChat's authorize page works only
//! inside WeChat, so /login elsewhere shows a QR code for a one-time ticket.
//! The phone that scans it runs the normal login, then hands its user to the
//! ticket; the desktop page, polling /login/ticket, gets a session of its own.
//! Tickets are random, single use, live 2 minutes, and are claimed only by
//! the browser that asked for them (its browser-id cookie).

use crate::app::{App, BROWSER_COOKIE};
use crate::auth::{begin, browser_id};
use crate::error::AppError;
use crate::http::{Reply, Req};
use crate::random::{self, constant_time_eq};
use crate::session::{Session, ID_LEN, LOGIN_TTL};
use minijinja::{context, Value};
use serde_json::json;
use std::collections::{HashMap, VecDeque};

/// A ticket must be scanned and claimed within this many seconds.
pub const TICKET_TTL: i64 = 120;
const MAX_TICKETS: usize = 10_000;

/// True for WeChat's in-app browser.
pub fn in_wechat(req: &Req) -> bool {
    req.header("user-agent")
        .is_some_and(|ua| ua.contains("MicroMessenger"))
}

/// One QR code's ticket.
pub struct Ticket {
    browser: String,
    next: String,
    created: i64,
    scanned: bool,
    /// The phone's session, once it logged in: the desktop gets a copy.
    confirmed: Option<Box<Session>>,
}

/// Tickets under way, bounded like the other stores.
#[derive(Default)]
pub struct Tickets {
    map: HashMap<String, Ticket>,
    order: VecDeque<String>,
}

impl Tickets {
    fn issue(&mut self, browser: &str, next: &str, now: i64) -> String {
        while self.map.len() >= MAX_TICKETS {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.map.remove(&oldest);
                }
                None => break,
            }
        }
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order.retain(|t| map.contains_key(t));
        }
        let id = random::token(ID_LEN);
        self.order.push_back(id.clone());
        let ticket = Ticket {
            browser: browser.to_string(),
            next: next.to_string(),
            created: now,
            scanned: false,
            confirmed: None,
        };
        self.map.insert(id.clone(), ticket);
        id
    }

    fn live(&mut self, id: &str, now: i64) -> Option<&mut Ticket> {
        self.map
            .get_mut(id)
            .filter(|t| now - t.created < TICKET_TTL)
    }

    /// Drops expired tickets.
    pub fn sweep(&mut self, now: i64) {
        self.map.retain(|_, t| now - t.created < TICKET_TTL);
    }

    /// How many tickets are under way.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The QR page for /login outside WeChat.
pub fn qr_page(app: &mut App, req: &Req, next: &str) -> Result<Reply, AppError> {
    let browser = browser_id(req);
    let ticket = app.tickets.issue(&browser, next, app.clock.now());
    let scan_url = format!("{}/login/scan?t={ticket}", app.config.public_url);
    let direct_url = format!(
        "/login?next={}&direct=1",
        crate::http::encode_component(next)
    );
    // Our own drawing of a URL we built: no user data, safe to inline.
    let svg = Value::from_safe_string(qr_svg(&scan_url));
    let ctx =
        context! { ticket, scan_url, direct_url, ttl_minutes => TICKET_TTL / 60, qr_svg => svg };
    let cookie = app.cookie(BROWSER_COOKIE, &browser, LOGIN_TTL as u64);
    Ok(app.page("scan.html", ctx)?.with_cookie(&cookie))
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
/// in as usual and comes back to /login/scan/done.
pub fn scan(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let id = req.query("t").unwrap_or("");
    let now = app.clock.now();
    let Some(ticket) = app.tickets.live(id, now) else {
        return ticket_page(app, "expired", 410);
    };
    ticket.scanned = true;
    let done = format!("/login/scan/done?t={id}");
    Ok(begin(app, req, &done))
}

/// GET /login/scan/done?t=T: the phone is logged in; its user goes to the ticket.
pub fn done(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let id = req.query("t").unwrap_or("").to_string();
    let Some((_, session)) = app.current(req) else {
        // The phone's login did not stick (WeChat's browser lost the cookie): start over.
        return Ok(Reply::redirect(302, &format!("/login/scan?t={id}")));
    };
    let session = Box::new(session.clone());
    let now = app.clock.now();
    match app.tickets.live(&id, now) {
        Some(ticket) if ticket.confirmed.is_none() => {
            ticket.confirmed = Some(session);
            ticket_page(app, "confirmed", 200)
        }
        Some(_) => ticket_page(app, "confirmed", 200),
        None => ticket_page(app, "expired", 410),
    }
}

/// GET /login/ticket?t=T: the desktop page asks how its ticket is doing.
/// Only the browser that asked for the ticket learns anything about it.
pub fn status(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let id = req.query("t").unwrap_or("").to_string();
    let now = app.clock.now();
    let browser = req.cookie(BROWSER_COOKIE).unwrap_or("").to_string();
    let Some(ticket) = app.tickets.live(&id, now) else {
        return Ok(Reply::json(&json!({ "status": "expired" })).with_status(410));
    };
    if !constant_time_eq(&ticket.browser, &browser) {
        return Ok(Reply::json(&json!({ "status": "forbidden" })).with_status(403));
    }
    let Some(session) = ticket.confirmed.take() else {
        let state = if ticket.scanned { "scanned" } else { "pending" };
        return Ok(Reply::json(&json!({ "status": state })));
    };
    // Single use: the ticket is gone once claimed; the desktop gets its own session.
    let next = ticket.next.clone();
    app.tickets.map.remove(&id);
    let sid = app.sessions.create(*session, now);
    Ok(Reply::json(&json!({ "status": "done", "next": next }))
        .with_cookie(&app.session_cookie(&sid)))
}

fn ticket_page(app: &App, state: &str, status: u16) -> Result<Reply, AppError> {
    Ok(app
        .page("scan_done.html", context! { state })?
        .with_status(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_expire_and_are_capped() {
        let mut tickets = Tickets::default();
        let t = tickets.issue("b", "/", 0);
        assert!(tickets.live(&t, TICKET_TTL - 1).is_some());
        assert!(tickets.live(&t, TICKET_TTL).is_none());
        for _ in 0..MAX_TICKETS + 5 {
            tickets.issue("b", "/", 0);
        }
        assert!(tickets.len() <= MAX_TICKETS);
        tickets.sweep(TICKET_TTL);
        assert!(tickets.is_empty());
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
