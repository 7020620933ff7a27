//! The account's jsapi_tickets (cgi-bin/ticket/getticket), with WeChat's
//! trap: while the current ticket has more than `RENEW_WINDOW` seconds left,
//! every call hands back that same ticket and says `expires_in: 7200` again,
//! although its life counts from its first issue (WECHAT-ROUND2 §2.4). Only
//! in its last `RENEW_WINDOW` seconds does a call issue a new one; the old
//! one keeps working until its own expiry. Pure: time comes in as an argument.

use std::collections::HashMap;
use wxauth_app::random;

/// A ticket lives 2 hours from its issue.
pub const TICKET_TTL: i64 = 7200;
/// In its last this many seconds a ticket is replaced by the next call.
pub const RENEW_WINDOW: i64 = 300;
/// Prefix that makes tickets easy to grep for in leak checks.
pub const TICKET_PREFIX: &str = "simJT_";
/// WeChat's tickets are 86 characters long; so are ours, prefix included.
const TICKET_LEN: usize = 86;

#[derive(Debug)]
struct Issued {
    ticket: String,
    issued: i64,
}

impl Issued {
    /// Seconds it has left at `now` (0 or less: dead).
    fn left(&self, now: i64) -> i64 {
        self.issued + TICKET_TTL - now
    }
}

/// The live tickets of every appid.
#[derive(Debug, Default)]
pub struct JsapiTickets {
    /// Per appid, oldest first. Dead ones are dropped on every call, so a
    /// list holds at most two: the current ticket and the one it replaced.
    by_appid: HashMap<String, Vec<Issued>>,
}

impl JsapiTickets {
    /// No tickets yet.
    pub fn new() -> JsapiTickets {
        JsapiTickets::default()
    }

    /// What getticket hands out for `appid` at `now`: the current ticket
    /// while it has more than `RENEW_WINDOW` seconds left, else a new one.
    /// Either way WeChat answers `expires_in: TICKET_TTL`.
    pub fn get(&mut self, appid: &str, now: i64) -> String {
        let live = self.by_appid.entry(appid.to_string()).or_default();
        live.retain(|t| t.left(now) > 0);
        if let Some(current) = live.last().filter(|t| t.left(now) > RENEW_WINDOW) {
            return current.ticket.clone();
        }
        let ticket = new_ticket();
        live.push(Issued {
            ticket: ticket.clone(),
            issued: now,
        });
        ticket
    }

    /// The tickets of `appid` still valid at `now`, oldest first.
    pub fn valid<'a>(&'a self, appid: &str, now: i64) -> impl Iterator<Item = &'a str> + 'a {
        self.by_appid
            .get(appid)
            .into_iter()
            .flatten()
            .filter(move |t| t.left(now) > 0)
            .map(|t| t.ticket.as_str())
    }

    /// How many tickets are valid at `now`, every appid together.
    pub fn live(&self, now: i64) -> usize {
        self.by_appid
            .values()
            .flatten()
            .filter(|t| t.left(now) > 0)
            .count()
    }
}

/// Letters and digits, like most of WeChat's (which also hold `-` and `_`).
fn new_ticket() -> String {
    format!(
        "{TICKET_PREFIX}{}",
        random::token(TICKET_LEN - TICKET_PREFIX.len())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;
    const APPID: &str = "wxA";

    fn valid(t: &JsapiTickets, now: i64) -> Vec<String> {
        t.valid(APPID, now).map(String::from).collect()
    }

    #[test]
    fn the_same_ticket_comes_back_while_it_has_more_than_five_minutes() {
        let mut t = JsapiTickets::new();
        let first = t.get(APPID, T0);
        assert!(first.starts_with(TICKET_PREFIX) && first.len() == TICKET_LEN);
        assert_eq!(t.get(APPID, T0 + 1), first);
        assert_eq!(t.get(APPID, T0 + TICKET_TTL - RENEW_WINDOW - 1), first);
        assert_eq!(valid(&t, T0 + 100), vec![first.clone()]);
        assert_eq!(t.live(T0 + 100), 1);
        // Another appid has tickets of its own.
        assert_ne!(t.get("wxB", T0), first);
        assert_eq!(t.live(T0 + 100), 2);
    }

    #[test]
    fn in_its_last_five_minutes_a_call_issues_a_new_one_and_both_work() {
        let mut t = JsapiTickets::new();
        let first = t.get(APPID, T0);
        let renew = T0 + TICKET_TTL - RENEW_WINDOW;
        let second = t.get(APPID, renew);
        assert_ne!(second, first);
        assert_eq!(valid(&t, renew), vec![first.clone(), second.clone()]);
        assert_eq!(t.live(renew), 2);
        // From now on the new one is handed out.
        assert_eq!(t.get(APPID, renew + 1), second);
        // The old one dies at its own expiry, not earlier.
        assert_eq!(valid(&t, T0 + TICKET_TTL - 1).len(), 2);
        assert_eq!(valid(&t, T0 + TICKET_TTL), vec![second.clone()]);
        assert_eq!(t.live(T0 + TICKET_TTL), 1);
    }

    #[test]
    fn no_call_in_the_window_means_a_gap() {
        let mut t = JsapiTickets::new();
        let first = t.get(APPID, T0);
        assert!(valid(&t, T0 + TICKET_TTL).is_empty());
        assert_eq!(t.live(T0 + TICKET_TTL), 0);
        let later = t.get(APPID, T0 + TICKET_TTL + 10);
        assert_ne!(later, first);
        assert_eq!(valid(&t, T0 + TICKET_TTL + 10), vec![later]);
        assert!(t.valid("wxNone", T0).next().is_none());
    }
}
