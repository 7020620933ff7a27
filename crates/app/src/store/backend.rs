//! The seam between the app and where its state lives. Every read and
//! write a handler makes goes through `Backend`: the memory backend
//! (memory.rs) answers on the loop at once, the Redis backend (redis.rs)
//! on a worker, so the handlers are written once, as continuations
//! (`App::with_store`), and the loop waits on neither.
//!
//! Values cross the seam by value: a backend hands out copies, never
//! references into its own storage, because Redis has none to give.
//! Every operation that two instances could race on is one call here, so
//! that the Redis backend can make it atomic (SET NX, a compare-and-set
//! script): spending a state, deciding and claiming a scan, acting on a
//! push, writing back a refreshed session.

use crate::store::logins::Checked;
use crate::store::sessions::Session;
use std::fmt;
use std::sync::Arc;

/// The store could not answer (Redis down, timed out, or refused): the
/// request gets a 503, and nothing is concluded from it (a session that
/// could not be read is not a session that does not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDown(pub String);

impl fmt::Display for StoreDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a store operation gives back.
pub type Stored<T> = Result<T, StoreDown>;

/// A live session, found by one of the cookie values a browser sent.
#[derive(Clone, Debug)]
pub struct Found {
    /// The session cookie's value that found it (the id; with Redis, the
    /// id and the session's own key).
    pub cookie: String,
    /// Shared with the store that holds it: reading a session copies no
    /// profile or token (a request holds it only until answered).
    pub session: Arc<Session>,
}

/// A spent login state, as the callback needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpentState {
    /// Its code is being exchanged (by this instance or another).
    Exchanging,
    /// Its login made this session (the cookie's value).
    Landed(String),
    /// Its exchange failed: a retry is a new login.
    Failed,
}

/// A scan record as the handlers see it.
#[derive(Clone, Debug)]
pub struct ScanView {
    /// The record is the asking session's: the phone that scanned it (only
    /// it may confirm or cancel). A backend outside the process keeps only
    /// a hash of the session cookie, so the comparison is the backend's.
    pub mine: bool,
    pub status: ScanStatus,
}

/// What became of a scanned ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStatus {
    /// The phone logged in and sees the confirmation page.
    Scanned,
    /// The phone confirmed; the desktop has not taken its session yet.
    Confirmed,
    /// The phone cancelled.
    Cancelled,
    /// The desktop took its session: the ticket is dead.
    Claimed,
}

/// The phone's decision, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// Recorded now.
    Now,
    /// Decided once already (a replayed post): nothing changed.
    Already,
    /// The record belongs to another phone's session.
    NotYours,
    /// No such record (expired, or never scanned).
    Gone,
}

/// What the desktop's poll finds.
#[derive(Clone, Debug)]
pub enum Claimed {
    /// Nobody scanned the ticket yet.
    Pending,
    Scanned,
    Cancelled,
    /// Expired, or claimed already.
    Gone,
    /// Confirmed: the copy of the phone's session the desktop now owns
    /// (the claim is made: asking again finds `Gone`).
    Session(Box<Session>),
}

/// What became of a refreshed session written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replaced {
    Written,
    /// Another refresh gave it other tokens meanwhile: left as it is.
    Changed,
    /// It ended meanwhile (a logout): not brought back.
    Gone,
}

/// A reply to a push, kept to answer WeChat's retries with the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedReply {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Where sessions, spent states, scan records and pushes seen live.
///
/// `now` is the app clock's time, passed in so that tests can advance it
/// and both backends expire alike.
pub trait Backend: Send {
    /// The first live session among `cookies` (every session cookie the
    /// browser sent is tried: one planted before ours is not taken blindly).
    fn session(&mut self, cookies: &[String], now: i64) -> Stored<Option<Found>>;
    /// Remembers that the person of `unionid` is `openid` on the website app
    /// (`website`) or the Official Account, and answers their openid on the
    /// other one when a login there was seen: one person, one user.
    fn link_openid(
        &mut self,
        unionid: &str,
        website: bool,
        openid: &str,
        now: i64,
    ) -> Stored<Option<String>>;
    /// Stores a session under a fresh id and returns its cookie's value. A
    /// login always gets a new id: one planted before login is never promoted.
    fn create_session(&mut self, session: Session, now: i64) -> Stored<String>;
    /// Ends these sessions (logout; a new login in the same browser).
    fn end_sessions(&mut self, cookies: &[String]) -> Stored<()>;
    /// Ends every session of the user whose openid or unionid is `who`
    /// (an operator's `wxauth revoke`), and says how many there were.
    fn revoke_user(&mut self, who: &str) -> Stored<usize>;
    /// Writes back a session whose tokens were refreshed, only if it still
    /// exists and still holds `refresh_token` (a logout or another refresh
    /// in the meantime wins).
    fn replace_session(
        &mut self,
        cookie: &str,
        refresh_token: &str,
        session: Session,
        now: i64,
    ) -> Stored<Replaced>;

    /// The record of a checked login state already spent, if any.
    fn spent(&mut self, login: &Checked, now: i64) -> Stored<Option<SpentState>>;
    /// Marks a state as spent before its code is exchanged. False when it
    /// was spent already (another request, maybe on another instance, won).
    fn spend(&mut self, login: &Checked, now: i64) -> Stored<bool>;
    /// Records the session a spent state's login made.
    fn complete(&mut self, login: &Checked, cookie: &str, now: i64) -> Stored<()>;
    /// Forgets a spend whose exchange never started (no room for the call).
    fn unspend(&mut self, login: &Checked) -> Stored<()>;
    /// Records that a spent state's exchange failed.
    fn fail(&mut self, login: &Checked, now: i64) -> Stored<()>;

    /// The scan record of a ticket (by its nonce), as seen by the session
    /// whose cookie is `sid` ("" for none).
    fn scan(&mut self, nonce: &str, sid: &str, now: i64) -> Stored<Option<ScanView>>;
    /// A phone's login for a ticket made session `sid`: the phone has
    /// scanned it. A new record, or the same phone scanning again (its new
    /// session takes over while undecided); a ticket another phone
    /// scanned first stays that phone's.
    fn record_scan(
        &mut self,
        nonce: &str,
        phone: &str,
        sid: &str,
        expires: i64,
        now: i64,
    ) -> Stored<()>;
    /// The phone with session `sid` decides: `Some(session)` confirms (the
    /// desktop will get a copy of it), `None` cancels. `ticket` is the
    /// ticket's whole text, which only the phone and the desktop hold: a
    /// backend that keeps the copy outside the process seals it with a key
    /// derived from it, so the record alone reveals no token.
    fn decide(
        &mut self,
        nonce: &str,
        ticket: &str,
        sid: &str,
        confirmed: Option<Session>,
        now: i64,
    ) -> Stored<Decided>;
    /// The desktop's poll: a confirmed ticket's session is taken, once.
    /// `ticket` as for `decide`.
    fn claim(&mut self, nonce: &str, ticket: &str, now: i64) -> Stored<Claimed>;

    /// The reply a push's first delivery got, if it came lately.
    fn push_reply(&mut self, key: &str, now: i64) -> Stored<Option<SavedReply>>;
    /// Records that the push `key` was acted on and answered with `reply`.
    /// When another delivery got there first (on another instance), its
    /// reply is returned and this one is not recorded.
    fn remember_push(
        &mut self,
        key: &str,
        reply: SavedReply,
        now: i64,
    ) -> Stored<Option<SavedReply>>;

    /// Whether the store answers (for /healthz).
    fn ping(&mut self) -> Stored<()>;
}
