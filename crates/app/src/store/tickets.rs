//! Scan-to-login tickets (web/handlers/scan.rs has the flow): the signed
//! ticket a desktop shows as a QR code, stored nowhere, and the record a
//! phone's real WeChat login makes when it scanned one. Records are bounded
//! by real logins and expire with the ticket.

use crate::random;
use crate::store::expiring::{Expires, Expiring};
use crate::store::logins::{Checked, LoginCookie, NONCE_LEN};
use crate::store::sessions::Session;
use crate::store::signed::{self, Key, TAG_LEN, TIME_LEN};
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

/// A ticket whose tag checked out: genuine, but not yet known to be this
/// browser's (`bound_next`) or still in time.
pub struct Ticket<'a> {
    pub nonce: &'a str,
    pub issued: i64,
    /// Browser and OS codes (`agent`).
    pub browser: char,
    pub os: char,
    pub ip: Option<IpAddr>,
    bind: &'a str,
}

impl<'a> Ticket<'a> {
    /// A fresh ticket for the browser of `cookie`; `cookie` remembers `next`.
    pub fn issue(
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
    pub fn parse(key: &Key, text: &'a str) -> Option<Ticket<'a>> {
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
    pub fn bound_next<'c>(
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
    pub fn scannable(&self, now: i64) -> bool {
        signed::fresh(self.issued, now, TICKET_TTL)
    }

    /// The nonce as a map key.
    pub fn id(&self) -> [u8; NONCE_LEN] {
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
pub enum Status {
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
pub struct Scan {
    /// The phone's browser id (login cookie), so it may scan again.
    pub phone: String,
    /// The phone's session: only it may confirm or cancel.
    pub sid: String,
    pub status: Status,
    pub expires: i64,
}

impl Expires for Scan {
    fn expires(&self) -> i64 {
        self.expires
    }
}

/// Scan records, by ticket nonce.
pub struct Scans(Expiring<[u8; NONCE_LEN], Scan>);

impl Default for Scans {
    fn default() -> Scans {
        Scans(Expiring::new(MAX_SCANS))
    }
}

impl Scans {
    pub fn get(&self, id: &[u8; NONCE_LEN], now: i64) -> Option<&Scan> {
        self.0.get(id, now)
    }

    pub fn get_mut(&mut self, id: &[u8; NONCE_LEN], now: i64) -> Option<&mut Scan> {
        self.0.get_mut(id, now)
    }

    pub fn insert(&mut self, id: [u8; NONCE_LEN], scan: Scan) {
        self.0.insert(id, scan);
    }

    /// Drops expired records.
    pub fn sweep(&mut self, now: i64) {
        self.0.sweep(now);
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

/// Called by the callback once a login succeeded: if it was a phone's login
/// for a ticket (its `next` is the confirmation page, `confirm`, for that
/// ticket, still in time), the ticket's nonce and when its scan record
/// expires. The record itself is made by the store (`Backend::record_scan`):
/// the only place one is made, so each costs a real WeChat login.
pub fn scanned_ticket(
    key: &Key,
    confirm: &str,
    login: &Checked,
    now: i64,
) -> Option<(String, i64)> {
    let text = login
        .next
        .strip_prefix(confirm)
        .and_then(|q| q.strip_prefix("?t="))?;
    let ticket = Ticket::parse(key, text)?;
    if !signed::fresh(ticket.issued, now, SCAN_TTL) {
        return None;
    }
    Some((ticket.nonce.to_string(), now + SCAN_TTL))
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
}
