//! Logins under way, stored nowhere until they prove something.
//!
//! The state sent to WeChat is `nonce · issued · tag`, 50 characters of
//! [A-Za-z0-9]: the tag (HMAC under the server's key, signed.rs) covers the
//! nonce, the time, the browser id and `next`, which ride in the browser's own
//! login cookie (HttpOnly), keyed by nonce. A /login therefore stores nothing,
//! and its state works only in the browser that began it, for 10 minutes.
//! Stored: one `Spent` record per state whose callback reached the code
//! exchange (a code is exchanged once per state; a reload or WeChat's second
//! callback lands where the first did), until the state expires. Only a
//! callback carrying a valid state and its browser's cookie can add one.

use crate::random;
use crate::store::expiring::{Expires, Expiring};
use crate::store::signed::{self, Key, TAG_LEN, TIME_LEN};
use crate::transport::http::encode_component;
use percent_encoding::percent_decode_str;

/// A login must come back from WeChat within this many seconds.
pub const LOGIN_TTL: i64 = 600;
/// Length of a browser id (≈190 bits).
pub const BROWSER_LEN: usize = 32;
/// Length of a state's nonce: 131 bits from the OS CSPRNG.
pub const NONCE_LEN: usize = 22;
/// Length of a state: nonce, time, tag.
pub const STATE_LEN: usize = NONCE_LEN + TIME_LEN + TAG_LEN;
/// Logins (and QR tickets) whose `next` one login cookie remembers: enough
/// for a few tabs logging in at once.
const MAX_ENTRIES: usize = 4;
/// Browsers keep a cookie of up to 4096 bytes, name and attributes included.
const MAX_VALUE: usize = 3000;
/// A `next` longer than this once encoded gives way to the default.
const MAX_NEXT: usize = 1800;
/// Spent states kept at most. Each costs a WeChat call to make, and lives at
/// most 10 minutes; past the cap the oldest go first (a reload of that login
/// then meets WeChat's 40163 instead of landing: no harm done).
const MAX_SPENT: usize = 100_000;

/// What the login cookie holds: this browser's id, and the `next` of its
/// latest logins (and QR tickets) by nonce, newest first. Written
/// `BROWSER!NONCE:NEXT!NONCE:NEXT`, NEXT percent-encoded, so the value needs
/// no quoting. Nothing in it is trusted until a tag over it checks out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginCookie {
    pub browser: String,
    entries: Vec<(String, String)>,
}

impl Default for LoginCookie {
    fn default() -> Self {
        LoginCookie::new()
    }
}

impl LoginCookie {
    /// A cookie for a browser we have not seen: a fresh random id.
    pub fn new() -> LoginCookie {
        LoginCookie {
            browser: random::token(BROWSER_LEN),
            entries: Vec::new(),
        }
    }

    /// Reads a cookie value; None if it is not one of ours. Bad entries are skipped.
    pub fn parse(value: &str) -> Option<LoginCookie> {
        let mut parts = value.split('!');
        let browser = parts.next()?;
        if !random::is_token(browser, BROWSER_LEN) {
            return None;
        }
        let entries = parts
            .filter_map(|entry| {
                let (nonce, next) = entry.split_once(':')?;
                random::is_token(nonce, NONCE_LEN).then_some(())?;
                let next = percent_decode_str(next).decode_utf8().ok()?;
                Some((nonce.to_string(), next.into_owned()))
            })
            .take(MAX_ENTRIES)
            .collect();
        Some(LoginCookie {
            browser: browser.to_string(),
            entries,
        })
    }

    /// The `next` remembered for `nonce`.
    pub fn next_of(&self, nonce: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == nonce)
            .map(|(_, next)| next.as_str())
    }

    /// Remembers `next` for `nonce`, forgetting the oldest entries beyond the
    /// count or the size a browser keeps.
    pub fn remember(&mut self, nonce: &str, next: &str) {
        self.entries
            .insert(0, (nonce.to_string(), next.to_string()));
        self.entries.truncate(MAX_ENTRIES);
        while self.entries.len() > 1 && self.value().len() > MAX_VALUE {
            self.entries.pop();
        }
    }

    /// The cookie value.
    pub fn value(&self) -> String {
        let mut value = self.browser.clone();
        for (nonce, next) in &self.entries {
            value.push('!');
            value.push_str(nonce);
            value.push(':');
            value.push_str(&encode_component(next));
        }
        value
    }
}

/// `next`, or `fallback` when `next` is too long to ride in the login cookie.
pub fn fit<'a>(next: &'a str, fallback: &'a str) -> &'a str {
    if encode_component(next).len() > MAX_NEXT {
        fallback
    } else {
        next
    }
}

/// A state that checked out: its parts, as the callback needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub nonce: String,
    pub browser: String,
    pub next: String,
    pub issued: i64,
    /// Begun for the website app's QR login (qrconnect): its code is that
    /// app's, exchanged with that app's appid and secret.
    pub website: bool,
}

/// What a state's tag is made for: the Official Account's login, or the
/// website app's. The state looks the same; only the right tag checks out,
/// so a state cannot be carried from one app's callback to the other's code.
fn purpose(website: bool) -> &'static str {
    if website {
        "web-state"
    } else {
        "state"
    }
}

/// A state whose callback reached the code exchange.
#[derive(Clone, Copy, Debug)]
pub struct Spent {
    /// The session the exchange made; None while it runs or after it failed.
    session: Option<[u8; BROWSER_LEN]>,
    /// True while the exchange is under way (on a worker).
    exchanging: bool,
    /// When the state itself expires: the record is useless after that.
    pub expires: i64,
}

impl Spent {
    /// True while the code exchange for this state is under way: a reload
    /// waits for it rather than failing.
    pub fn exchanging(&self) -> bool {
        self.exchanging
    }

    /// The session id the login made, if it succeeded.
    pub fn session(&self) -> Option<&str> {
        self.session
            .as_ref()
            .map(|id| std::str::from_utf8(id).expect("session ids are ASCII"))
    }
}

impl Expires for Spent {
    fn expires(&self) -> i64 {
        self.expires
    }
}

/// A nonce as a map key: its characters, inline (no heap).
type Nonce = [u8; NONCE_LEN];

/// The key states are signed with, and the states already spent.
pub struct Logins {
    key: Key,
    spent: Expiring<Nonce, Spent>,
}

fn nonce_bytes(nonce: &str) -> Option<Nonce> {
    random::is_token(nonce, NONCE_LEN).then(|| nonce.as_bytes().try_into().expect("NONCE_LEN"))
}

/// A fresh state for the browser of `cookie`, landing on `next`;
/// `cookie` remembers `next` and must be sent back with the redirect.
pub fn begin(key: &Key, cookie: &mut LoginCookie, next: &str, now: i64) -> String {
    begin_for(key, cookie, next, now, false)
}

/// `begin`, for the website app's QR login when `website`.
pub fn begin_for(
    key: &Key,
    cookie: &mut LoginCookie,
    next: &str,
    now: i64,
    website: bool,
) -> String {
    let nonce = random::token(NONCE_LEN);
    let issued = signed::time(now);
    let tag = key.tag(purpose(website), &[&nonce, &issued, &cookie.browser, next]);
    cookie.remember(&nonce, next);
    format!("{nonce}{issued}{tag}")
}

/// The login `state` belongs to, if one of the login cookies the browser
/// sent (`cookies`, each tried) is the one it was issued to, and it is
/// less than 10 minutes old. Touches nothing: safe before any upstream call.
pub fn check<'a>(
    key: &Key,
    state: &str,
    cookies: impl IntoIterator<Item = &'a str>,
    now: i64,
) -> Option<Checked> {
    if state.len() != STATE_LEN || !state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (nonce, rest) = state.split_at(NONCE_LEN);
    let (issued_text, tag) = rest.split_at(TIME_LEN);
    let issued = signed::untime(issued_text)?;
    if !signed::fresh(issued, now, LOGIN_TTL) {
        return None;
    }
    cookies.into_iter().find_map(|value| {
        let cookie = LoginCookie::parse(value)?;
        let next = cookie.next_of(nonce)?;
        let parts = [nonce, issued_text, cookie.browser.as_str(), next];
        let website = [false, true]
            .into_iter()
            .find(|website| key.verify(purpose(*website), &parts, tag))?;
        Some(Checked {
            nonce: nonce.to_string(),
            browser: cookie.browser.clone(),
            next: next.to_string(),
            issued,
            website,
        })
    })
}

impl Logins {
    /// No login spent yet; states signed with `key`.
    pub fn new(key: Key) -> Logins {
        Logins {
            key,
            spent: Expiring::new(MAX_SPENT),
        }
    }

    /// The signing key (scan tickets use it too; the session file keeps it).
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// `begin` with this key.
    pub fn begin(&self, cookie: &mut LoginCookie, next: &str, now: i64) -> String {
        begin(&self.key, cookie, next, now)
    }

    /// `check` with this key.
    pub fn check<'a>(
        &self,
        state: &str,
        cookies: impl IntoIterator<Item = &'a str>,
        now: i64,
    ) -> Option<Checked> {
        check(&self.key, state, cookies, now)
    }

    /// The record of a checked state already spent, if any.
    pub fn spent(&self, login: &Checked, now: i64) -> Option<&Spent> {
        self.spent.get(&nonce_bytes(&login.nonce)?, now)
    }

    /// Marks a checked state as spent: its code is being exchanged, and no
    /// other code will be for it. Call before the exchange.
    pub fn spend(&mut self, login: &Checked, now: i64) {
        let Some(nonce) = nonce_bytes(&login.nonce) else {
            return;
        };
        let spent = Spent {
            session: None,
            exchanging: true,
            expires: (login.issued + LOGIN_TTL).max(now),
        };
        self.spent.insert(nonce, spent);
    }

    /// Records the session a spent state's login made.
    pub fn complete(&mut self, login: &Checked, session: &str) {
        let (Some(nonce), Ok(id)) = (nonce_bytes(&login.nonce), session.as_bytes().try_into())
        else {
            return;
        };
        if let Some(spent) = self.spent.stored_mut(&nonce) {
            spent.session = Some(id);
            spent.exchanging = false;
        }
    }

    /// Forgets that a state was spent: its exchange was refused before its
    /// code went anywhere (the server had no room for the call).
    pub fn unspend(&mut self, login: &Checked) {
        if let Some(nonce) = nonce_bytes(&login.nonce) {
            self.spent.remove(&nonce);
        }
    }

    /// Records that a spent state's exchange failed: the state stays spent,
    /// and a reload is refused (a retry is a new login).
    pub fn fail(&mut self, login: &Checked) {
        let Some(nonce) = nonce_bytes(&login.nonce) else {
            return;
        };
        if let Some(spent) = self.spent.stored_mut(&nonce) {
            spent.exchanging = false;
        }
    }

    /// Drops records of expired states.
    pub fn sweep(&mut self, now: i64) {
        self.spent.sweep(now);
    }

    /// How many spent states are remembered.
    pub fn len(&self) -> usize {
        self.spent.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.spent.is_empty()
    }

    /// Every record, oldest first (for the session file): nonce, session, expiry.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>, i64)> {
        self.spent.iter().map(|(nonce, spent)| {
            let nonce = std::str::from_utf8(nonce).expect("nonces are ASCII");
            (nonce, spent.session(), spent.expires)
        })
    }

    /// Puts back a saved record, unless it has expired.
    pub fn restore(&mut self, nonce: &str, session: Option<&str>, expires: i64, now: i64) {
        let Some(key) = nonce_bytes(nonce) else {
            return;
        };
        let session = match session.map(|s| s.as_bytes().try_into()) {
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return,
            None => None,
        };
        if expires > now && !self.spent.is_full() && !self.spent.contains_key(&key) {
            let spent = Spent {
                session,
                exchanging: false,
                expires,
            };
            self.spent.insert(key, spent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins() -> Logins {
        Logins::new(Key::random())
    }

    #[test]
    fn a_state_checks_out_only_with_its_own_browsers_cookie_for_ten_minutes() {
        let logins = logins();
        let mut cookie = LoginCookie::new();
        let state = logins.begin(&mut cookie, "/where?x=1", 1000);
        assert_eq!(state.len(), STATE_LEN);
        assert!(state.bytes().all(|b| b.is_ascii_alphanumeric()));
        let value = cookie.value();
        let checked = logins.check(&state, [value.as_str()], 1000).unwrap();
        assert_eq!(checked.next, "/where?x=1");
        assert_eq!(checked.browser, cookie.browser);
        assert!(logins
            .check(&state, [value.as_str()], 1000 + LOGIN_TTL - 1)
            .is_some());
        assert!(logins
            .check(&state, [value.as_str()], 1000 + LOGIN_TTL)
            .is_none());
        // Another browser, even one that copies the entry under its own id.
        let mut other = LoginCookie::parse(&value).unwrap();
        other.browser = LoginCookie::new().browser;
        assert!(logins
            .check(&state, [other.value().as_str()], 1000)
            .is_none());
        // A next changed in the cookie breaks the tag.
        let tampered = value.replace("%2Fwhere", "%2Fthere");
        assert!(logins.check(&state, [tampered.as_str()], 1000).is_none());
        // Another server's key.
        assert!(Logins::new(Key::random())
            .check(&state, [value.as_str()], 1000)
            .is_none());
    }

    #[test]
    fn every_login_cookie_sent_is_tried() {
        let logins = logins();
        let mut cookie = LoginCookie::new();
        let state = logins.begin(&mut cookie, "/", 0);
        let planted = LoginCookie::new().value();
        let value = cookie.value();
        let cookies = [planted.as_str(), "junk", value.as_str()];
        assert!(logins.check(&state, cookies, 1).is_some());
    }

    #[test]
    fn forged_and_malformed_states_are_refused() {
        let logins = logins();
        let mut cookie = LoginCookie::new();
        let state = logins.begin(&mut cookie, "/", 0);
        let value = cookie.value();
        let mut flipped = state.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        for bad in [
            String::new(),
            "x".repeat(STATE_LEN),
            String::from_utf8(flipped).unwrap(),
            format!("{state}A"),
            state[..STATE_LEN - 1].to_string(),
            state.replace(&state[..2], "!!"),
        ] {
            assert!(logins.check(&bad, [value.as_str()], 1).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_cookie_keeps_the_latest_logins_within_a_browsers_size_limit() {
        let logins = logins();
        let mut cookie = LoginCookie::new();
        let states: Vec<String> = (0..6)
            .map(|i| logins.begin(&mut cookie, &format!("/tab/{i}"), 0))
            .collect();
        let value = cookie.value();
        assert!(logins.check(&states[5], [value.as_str()], 1).is_some());
        assert!(logins.check(&states[2], [value.as_str()], 1).is_some());
        assert!(
            logins.check(&states[1], [value.as_str()], 1).is_none(),
            "only four kept"
        );
        let long = format!("/{}", "文".repeat(150));
        assert!(encode_component(&long).len() <= MAX_NEXT);
        for _ in 0..4 {
            logins.begin(&mut cookie, &long, 0);
        }
        assert!(cookie.value().len() <= MAX_VALUE);
        assert_eq!(
            fit(&format!("/{}", "文".repeat(400)), "/profile"),
            "/profile"
        );
        assert_eq!(LoginCookie::parse(&cookie.value()), Some(cookie));
    }

    #[test]
    fn a_spent_state_remembers_its_session_until_it_expires() {
        let mut logins = logins();
        let mut cookie = LoginCookie::new();
        let state = logins.begin(&mut cookie, "/", 100);
        let checked = logins
            .check(&state, [cookie.value().as_str()], 100)
            .unwrap();
        assert!(logins.spent(&checked, 100).is_none());
        logins.spend(&checked, 100);
        assert_eq!(logins.spent(&checked, 101).unwrap().session(), None);
        let sid = random::token(BROWSER_LEN);
        logins.complete(&checked, &sid);
        assert_eq!(
            logins.spent(&checked, 101).unwrap().session(),
            Some(sid.as_str())
        );
        assert_eq!(logins.len(), 1);
        logins.sweep(100 + LOGIN_TTL);
        assert!(logins.is_empty());
    }

    #[test]
    fn spent_states_are_capped() {
        let mut logins = logins();
        let checked = |i: usize| Checked {
            nonce: format!("{i:0>22}"),
            browser: String::new(),
            next: String::new(),
            issued: 0,
            website: false,
        };
        for i in 0..MAX_SPENT + 10 {
            logins.spend(&checked(i), 0);
        }
        assert_eq!(logins.len(), MAX_SPENT);
        assert!(
            logins.spent(&checked(0), 1).is_none(),
            "the oldest went first"
        );
        assert!(logins.spent(&checked(MAX_SPENT + 9), 1).is_some());
        assert!(logins.spent.queue_len() <= MAX_SPENT + 64 + 1);
    }
}
