//! The shared store: `Backend` over Redis, so that several instances behind
//! one proxy share sessions, spent states, scan records and pushes seen.
//!
//! Called only from workers (it blocks, briefly): each worker thread keeps
//! its own connection, opened when first needed. Every wait is short (500 ms
//! to connect, 500 ms a read or write), a connection Redis closed while idle
//! is replaced once, and after a failure no thread tries to connect again
//! for a while (100 ms, doubling to 2 s), so a Redis that is down answers
//! `StoreDown` at once instead of costing each request a timeout.
//!
//! Keys, under the namespace (`wxauth` by default):
//! - `s:{id}` a session: `1`, the refresh token's keyed digest (64 hex
//!   characters, for the compare-and-set), then the session sealed
//!   (sealed.rs) under a key derived from the cookie's own secret.
//! - `spent:{nonce}` a spent login state: `E` exchanging, `F` failed, or `L`
//!   and the session cookie it landed on, sealed under a key derived from
//!   the browser id, which lives only in that browser's login cookie.
//! - `scan:{nonce}` a scan record, a hash: `phone` and `sid` as SHA-256
//!   digests, `status`, `expires`, and once confirmed `sealed`, the
//!   session for the desktop sealed under a key derived from the ticket.
//! - `push:{sha256 of the retry key}` the reply a push got.
//! - `key` the key login states are signed with, the same on every instance.
//! - `lock:{name}`, and whatever `set_value` writes.
//!
//! So a copy of Redis alone holds no WeChat token and nothing that logs
//! anyone in. Each record's expiry in the app clock's time (kept in the
//! record, or for a spent state its state's issue time) is checked on
//! reading, as the memory store does (the tests advance that clock);
//! Redis' own TTL, set from the same expiry, clears the record away.
//!
//! A session cookie is `{id}.{secret}`: 22 and 43 base62 characters from
//! the OS CSPRNG (about 131 and 256 bits); the secret never reaches Redis.
//!
//! Needs Redis 6.0 or later (SET … KEEPTTL).

use crate::log;
use crate::metrics;
use crate::random;
use crate::store::backend::{
    Backend, Claimed, Decided, Found, Replaced, SavedReply, ScanStatus, ScanView, SpentState,
    StoreDown, Stored,
};
use crate::store::logins::{Checked, LOGIN_TTL};
use crate::store::sealed::{self, SealKey};
use crate::store::sessions::Session;
use ::redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult, Script};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

/// Longest wait for a connection, and for one read or write on it.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, no connection is tried for this long, doubling with
/// each further failure up to BACKOFF_MAX; a success resets it.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A session cookie's id and secret, in base62 characters.
pub const ID_LEN: usize = 22;
pub const SECRET_LEN: usize = 43;
/// Pushes are remembered this long (WeChat retries within 15 s), as in pushes.rs.
const PUSH_TTL: i64 = 60;
/// Version byte in front of a stored session.
const SESSION_V1: u8 = b'1';
/// Hex characters of a digest.
const DIGEST_LEN: usize = 64;

/// A Redis-backed store. Clones share the connection settings and the
/// backoff; connections belong to the threads that use them.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    namespace: String,
    session_ttl: i64,
    health: Mutex<Health>,
    /// Connections opened so far (the tests watch replacements).
    connects: AtomicU64,
}

/// Whether Redis answered lately, shared by every thread.
struct Health {
    /// No connection is tried before this.
    retry_at: Option<Instant>,
    /// The wait after the next failure.
    backoff: Duration,
    /// The last outcome was a failure: logged once per change.
    down: bool,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisStore")
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// This thread's connection to each store in use (one, outside tests).
    /// The weak reference names the store and lets a dropped store's
    /// connection go.
    static CONNECTIONS: RefCell<Vec<(Weak<Inner>, Connection)>> = const { RefCell::new(Vec::new()) };
}

/// The connection this thread holds to `inner`, taken out while in use.
fn take_connection(inner: &Arc<Inner>) -> Option<Connection> {
    CONNECTIONS
        .try_with(|cell| {
            let mut list = cell.borrow_mut();
            list.retain(|(store, _)| store.strong_count() > 0);
            let at = list
                .iter()
                .position(|(store, _)| std::ptr::eq(store.as_ptr(), Arc::as_ptr(inner)))?;
            Some(list.swap_remove(at).1)
        })
        .ok()
        .flatten()
}

/// Keeps a connection that still works for this thread's next call.
fn keep_connection(inner: &Arc<Inner>, connection: Connection) {
    let _ =
        CONNECTIONS.try_with(|cell| cell.borrow_mut().push((Arc::downgrade(inner), connection)));
}

impl RedisStore {
    /// A store at `url` (redis:// or rediss://), its keys under
    /// `namespace:`, sessions living `session_ttl` seconds. Reads the URL
    /// only: nothing connects until the first call.
    pub fn open(url: &str, namespace: &str, session_ttl: i64) -> Result<RedisStore, String> {
        // The URL is not repeated in errors: it may carry a password.
        let tls = url.starts_with("rediss://");
        if !(tls || url.starts_with("redis://")) {
            return Err("the Redis URL must start with redis:// or rediss://".into());
        }
        if namespace.is_empty() || namespace.contains(|c: char| c.is_whitespace()) {
            return Err("the Redis namespace must be a word".into());
        }
        if tls {
            // The connector builds its TLS settings from the process's
            // default provider; the one already in the tree (ureq's) is it.
            // An error means one is installed already, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = Client::open(url)
            .map_err(|e| format!("the Redis URL does not parse ({})", describe(&e)))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                namespace: namespace.to_string(),
                session_ttl,
                health: Mutex::new(Health {
                    retry_at: None,
                    backoff: BACKOFF_FIRST,
                    down: false,
                }),
                connects: AtomicU64::new(0),
            }),
        })
    }

    /// Runs `f` with this store as the backend (on a worker thread: it blocks).
    pub fn with_backend<T>(&self, f: impl FnOnce(&mut dyn Backend) -> T) -> T {
        f(&mut self.clone())
    }

    /// The key login states are signed with, the same on every instance:
    /// `candidate` (hex) if none was stored yet, else the one stored. Call
    /// once at start, before serving.
    pub fn shared_key(&self, candidate_hex: &str) -> Result<String, StoreDown> {
        let key = self.key("key", "");
        self.run(|con| {
            ::redis::cmd("SET")
                .arg(&key)
                .arg(candidate_hex)
                .arg("NX")
                .query::<::redis::Value>(con)?;
            ::redis::cmd("GET").arg(&key).query::<Option<String>>(con)
        })?
        .ok_or_else(|| StoreDown("redis: the shared key vanished".into()))
    }

    /// A lock held until the `Lock` is dropped or `ttl_ms` ran out: None
    /// when someone else holds it.
    pub fn lock(&self, name: &str, ttl_ms: u64) -> Stored<Option<Lock>> {
        let key = self.key("lock", name);
        let value = random::token(ID_LEN);
        let taken = self.run(|con| {
            ::redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms.max(1))
                .query::<Option<String>>(con)
        })?;
        Ok(taken.map(|_| Lock {
            store: self.clone(),
            key,
            value,
        }))
    }

    /// The text stored under `{namespace}:{key}`, if any.
    pub fn get_value(&self, key: &str) -> Stored<Option<String>> {
        let key = format!("{}:{key}", self.inner.namespace);
        self.run(|con| ::redis::cmd("GET").arg(&key).query(con))
    }

    /// Stores `value` under `{namespace}:{key}` for `ttl_secs` seconds.
    pub fn set_value(&self, key: &str, value: &str, ttl_secs: u64) -> Stored<()> {
        let key = format!("{}:{key}", self.inner.namespace);
        self.run(|con| {
            ::redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("EX")
                .arg(ttl_secs.max(1))
                .query(con)
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        if id.is_empty() {
            format!("{}:{kind}", self.inner.namespace)
        } else {
            format!("{}:{kind}:{id}", self.inner.namespace)
        }
    }

    /// Runs `op` on this thread's connection. An error that leaves the
    /// connection unusable drops it; when that connection had served before
    /// and the error says it was closed under us (Redis' `timeout` closes
    /// idle ones), `op` runs once more on a fresh one. A timeout is not
    /// retried: the command may have run.
    fn run<T>(&self, mut op: impl FnMut(&mut Connection) -> RedisResult<T>) -> Stored<T> {
        let inner = &self.inner;
        let (mut con, mut fresh) = match take_connection(inner) {
            Some(con) => (con, false),
            None => (self.connect()?, true),
        };
        loop {
            match op(&mut con) {
                Ok(value) => {
                    keep_connection(inner, con);
                    self.went_well();
                    return Ok(value);
                }
                Err(e) if answered(&e) && con.is_open() => {
                    // Redis answered, with an error: it is up, and the
                    // connection is in step.
                    keep_connection(inner, con);
                    self.went_well();
                    return Err(StoreDown(format!("redis: {}", describe(&e))));
                }
                Err(e) => {
                    drop(con);
                    if !fresh && e.is_connection_dropped() && !e.is_timeout() {
                        con = self.connect()?;
                        fresh = true;
                        continue;
                    }
                    return Err(self.went_wrong(&e));
                }
            }
        }
    }

    /// A new connection, unless one failed too lately to try again. When
    /// the wait is over, one thread tries while the others keep answering
    /// at once: a Redis that does not answer costs one request the timeout.
    fn connect(&self) -> Stored<Connection> {
        let inner = &self.inner;
        {
            let mut health = inner.health.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = health.retry_at {
                let now = Instant::now();
                if now < at {
                    return Err(StoreDown("redis: unavailable (retrying shortly)".into()));
                }
                // This call tries; `went_well` or `went_wrong` settles it.
                health.retry_at = Some(now + CONNECT_TIMEOUT + IO_TIMEOUT);
            }
        }
        inner.connects.fetch_add(1, Ordering::Relaxed);
        let opened = inner
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .and_then(|con| {
                con.set_read_timeout(Some(IO_TIMEOUT))?;
                con.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(con)
            });
        opened.map_err(|e| self.went_wrong(&e))
    }

    /// Redis answered: the backoff resets, and a recovery is logged once.
    fn went_well(&self) {
        metrics::redis_up(true);
        let mut health = self.inner.health.lock().unwrap_or_else(|e| e.into_inner());
        health.retry_at = None;
        health.backoff = BACKOFF_FIRST;
        if health.down {
            health.down = false;
            log::info("redis: back");
        }
    }

    /// Redis did not answer: no connection is tried for a while, and the
    /// first failure after a success is logged (never a key or a value).
    fn went_wrong(&self, e: &RedisError) -> StoreDown {
        let what = describe(e);
        metrics::redis_up(false);
        let mut health = self.inner.health.lock().unwrap_or_else(|e| e.into_inner());
        health.retry_at = Some(Instant::now() + health.backoff);
        health.backoff = (health.backoff * 2).min(BACKOFF_MAX);
        if !health.down {
            health.down = true;
            log::warn(&format!("redis: unavailable: {what}"));
        }
        StoreDown(format!("redis: {what}"))
    }

    /// The id, the key to open its value with, and its Redis key, of a
    /// session cookie's value.
    fn session_parts<'a>(&self, cookie: &'a str) -> Option<(&'a str, &'a str, String)> {
        let (id, secret) = cookie.split_once('.')?;
        (random::is_token(id, ID_LEN) && random::is_token(secret, SECRET_LEN))
            .then(|| (id, secret, self.key("s", id)))
    }

    /// A session as stored: version, the refresh token's digest, sealed.
    fn session_value(id: &str, secret: &str, session: &Session) -> Vec<u8> {
        let plain = serde_json::to_vec(session).expect("a session serializes");
        let mut value = Vec::with_capacity(1 + DIGEST_LEN + plain.len() + 28);
        value.push(SESSION_V1);
        value.extend_from_slice(refresh_digest(secret, session.tokens.refresh_token()).as_bytes());
        value.extend_from_slice(&sealed::seal(&session_key(secret), id.as_bytes(), &plain));
        value
    }
}

/// The key a session is sealed under: from the cookie's secret only.
fn session_key(secret: &str) -> SealKey {
    sealed::derive("wxauth-session", &[secret.as_bytes()])
}

/// What the compare-and-set compares: a digest of the refresh token keyed
/// with the cookie's secret, so Redis learns nothing of the token.
fn refresh_digest(secret: &str, refresh_token: &str) -> String {
    sealed::hex(&sealed::derive(
        "wxauth-refresh",
        &[secret.as_bytes(), refresh_token.as_bytes()],
    ))
}

/// The key a landed state's session cookie is sealed under: the browser id
/// is in that browser's login cookie, never in Redis.
fn spent_key(login: &Checked) -> SealKey {
    sealed::derive(
        "wxauth-spent",
        &[login.browser.as_bytes(), login.nonce.as_bytes()],
    )
}

/// The key a confirmed scan's session is sealed under: the ticket's text is
/// known to the phone and the desktop only.
fn scan_key(ticket: &str) -> SealKey {
    sealed::derive("wxauth-scan", &[ticket.as_bytes()])
}

/// What a scan record keeps of the phone's browser id and of its session
/// cookie (which holds the session's secret): digests, compared as such.
/// `ScanView::mine` is the comparison of the asking session's digest.
pub fn scan_digest(value: &str) -> String {
    sealed::digest_hex(value.as_bytes())
}

/// Milliseconds from `now` to `expires`, at least one second.
fn millis_until(expires: i64, now: i64) -> i64 {
    (expires - now).max(1) * 1000
}

/// Errors that Redis itself sent: the connection is still in step.
fn answered(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(_) | ErrorKind::Extension | ErrorKind::UnexpectedReturnType
    )
}

/// What went wrong, in words that hold no key, value or URL.
fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_connection_dropped() {
        "connection lost".into()
    } else {
        match e.code() {
            Some(code) => format!("{} ({code})", e.category()),
            None => e.category().to_string(),
        }
    }
}

/// The base token of `appid`, or its jsapi_ticket, kept in Redis for every
/// instance (`wechat::account::TokenShelf`): sealed under a key derived
/// from the appsecret, which Redis never sees, so what Redis holds is no
/// token and no ticket.
pub struct TokenShelf {
    store: RedisStore,
    appid: String,
    key: SealKey,
    /// "token" or "ticket": the record's name is `{what}:{appid}`.
    what: &'static str,
}

impl TokenShelf {
    /// The base access_token's shelf.
    pub fn new(store: RedisStore, appid: &str, secret: &str) -> TokenShelf {
        TokenShelf {
            store,
            appid: appid.to_string(),
            key: sealed::derive("wxauth-base-token", &[appid.as_bytes(), secret.as_bytes()]),
            what: "token",
        }
    }

    /// The jsapi_ticket's shelf, sealed under a key of its own.
    pub fn jsapi_ticket(store: RedisStore, appid: &str, secret: &str) -> TokenShelf {
        TokenShelf {
            store,
            appid: appid.to_string(),
            key: sealed::derive(
                "wxauth-jsapi-ticket",
                &[appid.as_bytes(), secret.as_bytes()],
            ),
            what: "ticket",
        }
    }

    fn name(&self) -> String {
        format!("{}:{}", self.what, self.appid)
    }
}

impl TokenShelf {
    /// The stored text and what it holds.
    fn kept(&self) -> Option<(String, String, i64)> {
        let kept = self.store.get_value(&self.name()).ok()??;
        let (expires, sealed) = kept.split_once(':')?;
        let sealed = sealed::from_hex(sealed)?;
        let token = sealed::open(&self.key, self.appid.as_bytes(), &sealed)?;
        let (token, expires) = (String::from_utf8(token).ok()?, expires.parse().ok()?);
        Some((kept, token, expires))
    }
}

impl crate::wechat::account::TokenShelf for TokenShelf {
    fn read(&self) -> Option<(String, i64)> {
        self.kept().map(|(_, token, expires)| (token, expires))
    }

    fn write(&self, token: &str, expires: i64, now: i64) {
        let sealed = sealed::seal(&self.key, self.appid.as_bytes(), token.as_bytes());
        let value = format!("{expires}:{}", sealed::hex(&sealed));
        let _ = self
            .store
            .set_value(&self.name(), &value, (expires - now).max(1) as u64);
    }

    fn forget(&self, token: &str) {
        // Compare-and-delete on the stored text: a newer token another
        // instance kept meanwhile stays.
        if let Some((stored, _, _)) = self.kept().filter(|(_, kept, _)| kept == token) {
            let key = format!("{}:{}", self.store.inner.namespace, self.name());
            let _ = self
                .store
                .run(|con| UNLOCK.key(&key).arg(&stored).invoke::<i64>(con));
        }
    }

    fn lock(&self) -> Box<dyn std::any::Any> {
        // A fetch takes a few WeChat calls: 10 s covers it; waiting longer
        // than 3 s for another holder, fetch anyway (stable_token gives the
        // same token to both, getticket the same ticket).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            match self.store.lock(&self.name(), 10_000) {
                Ok(Some(lock)) => return Box::new(lock),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    if self.read().is_some() {
                        return Box::new(());
                    }
                }
                _ => return Box::new(()),
            }
        }
    }
}

/// A lock taken with `RedisStore::lock`, released when dropped (if it is
/// still ours: past its TTL another holder's is left alone).
pub struct Lock {
    store: RedisStore,
    key: String,
    value: String,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self
            .store
            .run(|con| UNLOCK.key(&self.key).arg(&self.value).invoke::<i64>(con));
    }
}

static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

/// Writes back a refreshed session if it still holds the refresh token it
/// was read with. ARGV: the old token's digest, the new value. Returns 1
/// when written, 2 when the session holds other tokens, 0 when it is gone.
static SESSION_REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
if string.sub(v, 1, 1) ~= '1' or string.sub(v, 2, 65) ~= ARGV[1] then
  return 2
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1",
    )
});

/// A phone's login made a scan record, or renewed its own while undecided.
/// ARGV: phone digest, sid digest, expires, now, milliseconds to live.
static SCAN_RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HMGET', KEYS[1], 'phone', 'status', 'expires')
if not r[3] or tonumber(r[3]) <= tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'phone', ARGV[1], 'sid', ARGV[2], 'status', 'scanned',
    'expires', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 'new'
end
if r[1] == ARGV[1] and r[2] == 'scanned' then
  redis.call('HSET', KEYS[1], 'sid', ARGV[2])
  return 'again'
end
return 'kept'",
    )
});

/// The phone decides. ARGV: sid digest, now, 'confirmed' or 'cancelled',
/// the sealed session (confirmed only).
static SCAN_DECIDE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HMGET', KEYS[1], 'sid', 'status', 'expires')
if not r[3] or tonumber(r[3]) <= tonumber(ARGV[2]) then return 'gone' end
if r[1] ~= ARGV[1] then return 'notyours' end
if r[2] ~= 'scanned' then return 'already' end
if ARGV[3] == 'confirmed' then
  redis.call('HSET', KEYS[1], 'status', 'confirmed', 'sealed', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'status', 'cancelled')
end
return 'now'",
    )
});

/// The desktop's poll takes a confirmed session, once. ARGV: now.
static SCAN_CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HMGET', KEYS[1], 'status', 'sealed', 'expires')
if not r[3] or tonumber(r[3]) <= tonumber(ARGV[1]) then return {'pending'} end
if r[1] == 'confirmed' then
  redis.call('HSET', KEYS[1], 'status', 'claimed')
  redis.call('HDEL', KEYS[1], 'sealed')
  return {'session', r[2] or ''}
end
if r[1] == 'claimed' then return {'gone'} end
return {r[1] or 'gone'}",
    )
});

/// Records a push's reply unless a live one is recorded; returns that one.
/// ARGV: the value, seconds to live, now.
static PUSH_REMEMBER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('GET', KEYS[1])
if old then
  local e = tonumber(string.match(old, '^(%d+)\n'))
  if e and e > tonumber(ARGV[3]) then return old end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false",
    )
});

/// A push's reply as stored: expiry, content type, body.
fn push_value(reply: &SavedReply, expires: i64) -> Vec<u8> {
    let mut value = format!("{expires}\n{}\n", reply.content_type).into_bytes();
    value.extend_from_slice(&reply.body);
    value
}

/// A stored push reply, if it is one and still live.
fn read_push(value: &[u8], now: i64) -> Option<SavedReply> {
    let mut parts = value.splitn(3, |&b| b == b'\n');
    let expires: i64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let content_type = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let body = parts.next()?.to_vec();
    (expires > now).then_some(SavedReply { content_type, body })
}

fn status_of(text: &[u8]) -> Option<ScanStatus> {
    Some(match text {
        b"scanned" => ScanStatus::Scanned,
        b"confirmed" => ScanStatus::Confirmed,
        b"cancelled" => ScanStatus::Cancelled,
        b"claimed" => ScanStatus::Claimed,
        _ => return None,
    })
}

impl Backend for RedisStore {
    fn session(&mut self, cookies: &[String], now: i64) -> Stored<Option<Found>> {
        for cookie in cookies {
            let Some((id, secret, key)) = self.session_parts(cookie) else {
                continue;
            };
            let value: Option<Vec<u8>> =
                self.run(|con| ::redis::cmd("GET").arg(&key).query(con))?;
            // Missing, not ours, or sealed under another secret: not this one.
            let found = value
                .filter(|v| v.len() > 1 + DIGEST_LEN && v[0] == SESSION_V1)
                .and_then(|v| {
                    sealed::open(&session_key(secret), id.as_bytes(), &v[1 + DIGEST_LEN..])
                })
                .and_then(|plain| serde_json::from_slice::<Session>(&plain).ok())
                .filter(|session| session.expires > now);
            if let Some(session) = found {
                return Ok(Some(Found {
                    cookie: cookie.clone(),
                    session: std::sync::Arc::new(session),
                }));
            }
        }
        Ok(None)
    }

    fn create_session(&mut self, mut session: Session, now: i64) -> Stored<String> {
        session.expires = now + self.inner.session_ttl;
        let (id, secret) = (random::token(ID_LEN), random::token(SECRET_LEN));
        let value = Self::session_value(&id, &secret, &session);
        let key = self.key("s", &id);
        let ttl = (session.expires - now).max(1);
        // The user's sessions by id, for `revoke_user`: under digests of the
        // openid and unionid, so Redis holds no identifier in the clear.
        let indexes: Vec<String> = [Some(session.openid()), session.user.unionid()]
            .into_iter()
            .flatten()
            .map(|who| self.key("who", &sealed::digest_hex(who.as_bytes())))
            .collect();
        self.run(|con| {
            let mut pipe = ::redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("EX")
                .arg(ttl)
                .ignore();
            for index in &indexes {
                pipe.cmd("SADD").arg(index).arg(&id).ignore();
                // Every session lives as long from its creation: the
                // newest one's TTL covers the whole set.
                pipe.cmd("EXPIRE").arg(index).arg(ttl).ignore();
            }
            pipe.query::<()>(con)
        })?;
        Ok(format!("{id}.{secret}"))
    }

    fn revoke_user(&mut self, who: &str) -> Stored<usize> {
        let index = self.key("who", &sealed::digest_hex(who.as_bytes()));
        let ids: Vec<String> = self.run(|con| {
            ::redis::cmd("SMEMBERS")
                .arg(&index)
                .query::<Vec<String>>(con)
        })?;
        let keys: Vec<String> = ids
            .iter()
            .filter(|id| random::is_token(id, ID_LEN))
            .map(|id| self.key("s", id))
            .collect();
        let ended: usize = self
            .run(|con| {
                let mut pipe = ::redis::pipe();
                for key in &keys {
                    pipe.cmd("DEL").arg(key);
                }
                pipe.cmd("DEL").arg(&index).ignore();
                pipe.query::<Vec<usize>>(con)
            })?
            .into_iter()
            .sum();
        Ok(ended)
    }

    fn end_sessions(&mut self, cookies: &[String]) -> Stored<()> {
        let keys: Vec<String> = cookies
            .iter()
            .filter_map(|cookie| Some(self.session_parts(cookie)?.2))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.run(|con| ::redis::cmd("DEL").arg(&keys).query::<()>(con))
    }

    fn replace_session(
        &mut self,
        cookie: &str,
        refresh_token: &str,
        session: Session,
        _now: i64,
    ) -> Stored<Replaced> {
        let Some((id, secret, key)) = self.session_parts(cookie) else {
            return Ok(Replaced::Gone);
        };
        let old = refresh_digest(secret, refresh_token);
        let value = Self::session_value(id, secret, &session);
        let answer = self.run(|con| {
            SESSION_REPLACE
                .key(&key)
                .arg(&old)
                .arg(&value)
                .invoke::<i64>(con)
        })?;
        Ok(match answer {
            1 => Replaced::Written,
            2 => Replaced::Changed,
            _ => Replaced::Gone,
        })
    }

    fn spent(&mut self, login: &Checked, now: i64) -> Stored<Option<SpentState>> {
        if now >= login.issued + LOGIN_TTL {
            return Ok(None);
        }
        let key = self.key("spent", &login.nonce);
        let value: Option<Vec<u8>> = self.run(|con| ::redis::cmd("GET").arg(&key).query(con))?;
        Ok(value.map(|value| match value.split_first() {
            Some((b'E', _)) => SpentState::Exchanging,
            Some((b'L', sealed)) => sealed::open(&spent_key(login), login.nonce.as_bytes(), sealed)
                .and_then(|plain| String::from_utf8(plain).ok())
                // Unreadable here: the login cannot land where it did.
                .map_or(SpentState::Failed, SpentState::Landed),
            _ => SpentState::Failed,
        }))
    }

    fn spend(&mut self, login: &Checked, now: i64) -> Stored<bool> {
        let key = self.key("spent", &login.nonce);
        let ttl = millis_until(login.issued + LOGIN_TTL, now);
        let set: Option<String> = self.run(|con| {
            ::redis::cmd("SET")
                .arg(&key)
                .arg("E")
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query(con)
        })?;
        Ok(set.is_some())
    }

    fn complete(&mut self, login: &Checked, cookie: &str, _now: i64) -> Stored<()> {
        let key = self.key("spent", &login.nonce);
        let mut value = b"L".to_vec();
        value.extend_from_slice(&sealed::seal(
            &spent_key(login),
            login.nonce.as_bytes(),
            cookie.as_bytes(),
        ));
        self.run(|con| {
            ::redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("XX")
                .arg("KEEPTTL")
                .query::<::redis::Value>(con)
        })?;
        Ok(())
    }

    fn unspend(&mut self, login: &Checked) -> Stored<()> {
        let key = self.key("spent", &login.nonce);
        self.run(|con| ::redis::cmd("DEL").arg(&key).query(con))
    }

    fn fail(&mut self, login: &Checked, _now: i64) -> Stored<()> {
        let key = self.key("spent", &login.nonce);
        self.run(|con| {
            ::redis::cmd("SET")
                .arg(&key)
                .arg("F")
                .arg("XX")
                .arg("KEEPTTL")
                .query::<::redis::Value>(con)
        })?;
        Ok(())
    }

    fn scan(&mut self, nonce: &str, sid: &str, now: i64) -> Stored<Option<ScanView>> {
        let key = self.key("scan", nonce);
        let mut record: HashMap<String, Vec<u8>> =
            self.run(|con| ::redis::cmd("HGETALL").arg(&key).query(con))?;
        let mut field = |name: &str| record.remove(name).unwrap_or_default();
        let expires = String::from_utf8(field("expires"))
            .ok()
            .and_then(|e| e.parse::<i64>().ok());
        if expires.is_none_or(|e| e <= now) {
            return Ok(None);
        }
        let Some(status) = status_of(&field("status")) else {
            return Ok(None);
        };
        // Only a digest of the phone's session cookie is kept (the cookie
        // holds the session's key): the asking session's is compared.
        let mine = !sid.is_empty() && field("sid") == scan_digest(sid).into_bytes();
        Ok(Some(ScanView { mine, status }))
    }

    fn record_scan(
        &mut self,
        nonce: &str,
        phone: &str,
        sid: &str,
        expires: i64,
        now: i64,
    ) -> Stored<()> {
        let key = self.key("scan", nonce);
        let (phone, sid) = (scan_digest(phone), scan_digest(sid));
        self.run(|con| {
            SCAN_RECORD
                .key(&key)
                .arg(&phone)
                .arg(&sid)
                .arg(expires)
                .arg(now)
                .arg(millis_until(expires, now))
                .invoke::<String>(con)
        })?;
        Ok(())
    }

    fn decide(
        &mut self,
        nonce: &str,
        ticket: &str,
        sid: &str,
        confirmed: Option<Session>,
        now: i64,
    ) -> Stored<Decided> {
        let key = self.key("scan", nonce);
        let sid = scan_digest(sid);
        let (status, sealed) = match &confirmed {
            Some(session) => {
                let plain = serde_json::to_vec(session).expect("a session serializes");
                let sealed = sealed::seal(&scan_key(ticket), nonce.as_bytes(), &plain);
                ("confirmed", sealed)
            }
            None => ("cancelled", Vec::new()),
        };
        let outcome: String = self.run(|con| {
            SCAN_DECIDE
                .key(&key)
                .arg(&sid)
                .arg(now)
                .arg(status)
                .arg(&sealed)
                .invoke(con)
        })?;
        Ok(match outcome.as_str() {
            "now" => Decided::Now,
            "already" => Decided::Already,
            "notyours" => Decided::NotYours,
            _ => Decided::Gone,
        })
    }

    fn claim(&mut self, nonce: &str, ticket: &str, now: i64) -> Stored<Claimed> {
        let key = self.key("scan", nonce);
        let answer: Vec<Vec<u8>> = self.run(|con| SCAN_CLAIM.key(&key).arg(now).invoke(con))?;
        Ok(match answer.first().map(Vec::as_slice) {
            Some(b"pending") => Claimed::Pending,
            Some(b"scanned") => Claimed::Scanned,
            Some(b"cancelled") => Claimed::Cancelled,
            Some(b"session") => answer
                .get(1)
                .and_then(|sealed| sealed::open(&scan_key(ticket), nonce.as_bytes(), sealed))
                .and_then(|plain| serde_json::from_slice::<Session>(&plain).ok())
                // Claimed, but not openable with this ticket: nothing to give.
                .map_or(Claimed::Gone, |session| Claimed::Session(Box::new(session))),
            _ => Claimed::Gone,
        })
    }

    fn push_reply(&mut self, key: &str, now: i64) -> Stored<Option<SavedReply>> {
        let key = self.key("push", &scan_digest(key));
        let value: Option<Vec<u8>> = self.run(|con| ::redis::cmd("GET").arg(&key).query(con))?;
        Ok(value.and_then(|v| read_push(&v, now)))
    }

    fn remember_push(
        &mut self,
        key: &str,
        reply: SavedReply,
        now: i64,
    ) -> Stored<Option<SavedReply>> {
        let key = self.key("push", &scan_digest(key));
        let value = push_value(&reply, now + PUSH_TTL);
        let first: Option<Vec<u8>> = self.run(|con| {
            PUSH_REMEMBER
                .key(&key)
                .arg(&value)
                .arg(PUSH_TTL)
                .arg(now)
                .invoke(con)
        })?;
        Ok(first.and_then(|v| read_push(&v, now)))
    }

    fn ping(&mut self) -> Stored<()> {
        self.run(|con| ::redis::cmd("PING").query::<String>(con).map(drop))
    }

    fn link_openid(
        &mut self,
        unionid: &str,
        website: bool,
        openid: &str,
        _now: i64,
    ) -> Stored<Option<String>> {
        // Keyed by the unionid's digest, each openid sealed under a key
        // derived from the unionid: Redis alone ties no openid to a person.
        let key = self.key("u", &sealed::digest_hex(unionid.as_bytes()));
        let seal_key = sealed::derive("wxauth-link", &[unionid.as_bytes()]);
        let (mine, other) = if website { ("w", "a") } else { ("a", "w") };
        let sealed_openid =
            sealed::hex(&sealed::seal(&seal_key, mine.as_bytes(), openid.as_bytes()));
        let ttl = self.inner.session_ttl.max(1);
        let found: Option<String> = self.run(|con| {
            let (found, (), ()): (Option<String>, (), ()) = ::redis::pipe()
                .cmd("HGET")
                .arg(&key)
                .arg(other)
                .cmd("HSET")
                .arg(&key)
                .arg(mine)
                .arg(&sealed_openid)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(ttl)
                .ignore()
                .query(con)
                .map(|(found,): (Option<String>,)| (found, (), ()))?;
            Ok(found)
        })?;
        Ok(found.and_then(|text| {
            let opened = sealed::open(&seal_key, other.as_bytes(), &sealed::from_hex(&text)?)?;
            String::from_utf8(opened).ok()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scope;
    use crate::store::sessions::{StoredUser, Tokens};
    use crate::wechat::client::WechatUser;
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::thread::sleep;

    const ACCESS: &str = "ACCESSxTOKENx7f3a9c";
    const REFRESH: &str = "REFRESHxTOKENx2b8e41";

    /// A redis-server of our own on a free loopback port, killed (by its
    /// PID) when dropped. Without a redis-server the tests skip, unless
    /// WXAUTH_REDIS_TESTS=1 asks for them (CI): then they fail.
    struct Server {
        child: Option<Child>,
        port: u16,
        dir: PathBuf,
    }

    fn required() -> bool {
        std::env::var("WXAUTH_REDIS_TESTS").is_ok_and(|v| v == "1")
    }

    impl Server {
        fn start() -> Option<Server> {
            for _ in 0..3 {
                let port = TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free loopback port")
                    .port();
                match Server::start_on(port) {
                    Ok(server) => return Some(server),
                    Err(None) => {
                        assert!(
                            !required(),
                            "WXAUTH_REDIS_TESTS=1 but redis-server is not installed \
                             (apt-get install redis-server)"
                        );
                        eprintln!("redis-server not installed: Redis tests skipped");
                        return None;
                    }
                    // The port was taken in the meantime: another one.
                    Err(Some(_)) => continue,
                }
            }
            panic!("redis-server did not start on three ports");
        }

        /// Err(None): no redis-server; Err(Some(why)): it did not come up.
        fn start_on(port: u16) -> Result<Server, Option<String>> {
            static COUNT: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "wxauth-redis-{}-{port}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("a temporary folder");
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(None);
                }
                Err(e) => panic!("redis-server did not start: {e}"),
            };
            let mut server = Server {
                child: Some(child),
                port,
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if server.raw().is_some() {
                    return Ok(server);
                }
                if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                    return Err(Some(format!("redis-server exited: {status}")));
                }
                sleep(Duration::from_millis(20));
            }
            server.kill();
            Err(Some("redis-server did not answer PING within 5 s".into()))
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/", self.port)
        }

        fn store(&self) -> RedisStore {
            RedisStore::open(&self.url(), "wxauth", 3600).expect("the URL parses")
        }

        /// A plain connection of the test's own, if the server answers PING.
        fn raw(&self) -> Option<Connection> {
            let client = Client::open(self.url()).ok()?;
            let mut con = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .ok()?;
            con.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            ::redis::cmd("PING").query::<String>(&mut con).ok()?;
            Some(con)
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        /// A new server on the same port (after `kill`).
        fn restart(&mut self) {
            self.kill();
            let fresh = Server::start_on(self.port).expect("redis-server restarts on its port");
            let _ = std::fs::remove_dir_all(&self.dir);
            *self = fresh;
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn session(openid: &str) -> Session {
        Session {
            scope: Scope::Base,
            user: StoredUser::from(WechatUser {
                openid: openid.into(),
                ..WechatUser::default()
            }),
            tokens: Tokens::new(ACCESS, REFRESH, 0, 0),
            expires: 0,
            other_openid: None,
        }
    }

    fn login(now: i64) -> Checked {
        Checked {
            nonce: random::token(22),
            browser: random::token(32),
            next: "/".into(),
            issued: now,
            website: false,
        }
    }

    /// Every key's raw bytes (strings and hashes).
    fn dump(con: &mut Connection) -> Vec<(String, Vec<u8>)> {
        let keys: Vec<String> = ::redis::cmd("KEYS").arg("*").query(con).unwrap();
        let mut out = Vec::new();
        for key in keys {
            let kind: String = ::redis::cmd("TYPE").arg(&key).query(con).unwrap();
            let bytes = match kind.as_str() {
                "string" => ::redis::cmd("GET").arg(&key).query(con).unwrap(),
                "hash" => {
                    let fields: Vec<Vec<u8>> =
                        ::redis::cmd("HGETALL").arg(&key).query(con).unwrap();
                    fields.concat()
                }
                "set" => {
                    let members: Vec<Vec<u8>> =
                        ::redis::cmd("SMEMBERS").arg(&key).query(con).unwrap();
                    members.concat()
                }
                other => panic!("{key} is a {other}"),
            };
            out.push((key, bytes));
        }
        out
    }

    fn one(cookie: &str) -> Vec<String> {
        vec![cookie.to_string()]
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    fn ttl(con: &mut Connection, key: &str) -> i64 {
        ::redis::cmd("TTL").arg(key).query(con).unwrap()
    }

    #[test]
    fn sessions_are_created_found_and_ended_and_redis_holds_no_token() {
        let Some(server) = Server::start() else {
            return;
        };
        let mut store = server.store();
        let mut raw = server.raw().unwrap();
        let now = 1_000_000;
        let cookie = store.create_session(session("o1"), now).unwrap();
        let (id, secret) = cookie.split_once('.').unwrap();
        assert!(random::is_token(id, ID_LEN) && random::is_token(secret, SECRET_LEN));

        let found = store
            .session(&["junk".into(), cookie.clone()], now + 1)
            .unwrap()
            .expect("found by the second cookie");
        assert_eq!(found.cookie, cookie);
        assert_eq!(found.session.openid(), "o1");
        assert_eq!(found.session.expires, now + 3600);
        assert_eq!(found.session.tokens.refresh_token(), REFRESH);
        // Past its expiry on the app's clock it is gone, whatever Redis holds.
        assert!(store.session(&one(&cookie), now + 3600).unwrap().is_none());

        // The right id with another secret finds nothing, and is no error.
        let wrong = format!("{id}.{}", random::token(SECRET_LEN));
        assert!(store.session(&[wrong], now).unwrap().is_none());
        assert!(store
            .session(&[format!("{id}.short"), id.to_string()], now)
            .unwrap()
            .is_none());

        // Redis holds neither token, nor the cookie's secret.
        let key = format!("wxauth:s:{id}");
        let records = dump(&mut raw);
        assert!(records.iter().any(|(k, _)| *k == key), "{records:?}");
        for (key, bytes) in &records {
            for secret_text in [ACCESS, REFRESH, secret] {
                assert!(!contains(bytes, secret_text), "{key} shows a secret");
                assert!(!key.contains(secret_text));
            }
        }
        let left = ttl(&mut raw, &key);
        assert!((3590..=3600).contains(&left), "TTL {left}");

        let other = store.create_session(session("o2"), now).unwrap();
        store
            .end_sessions(&[cookie.clone(), "junk".into()])
            .unwrap();
        assert!(store.session(&one(&cookie), now).unwrap().is_none());
        assert!(store.session(&[other], now).unwrap().is_some());
        store.end_sessions(&[]).unwrap();
    }

    #[test]
    fn a_refreshed_session_is_written_back_only_over_the_one_it_was_read_as() {
        let Some(server) = Server::start() else {
            return;
        };
        let mut store = server.store();
        let mut raw = server.raw().unwrap();
        let now = 1_000_000;
        let cookie = store.create_session(session("o1"), now).unwrap();
        let key = format!("wxauth:s:{}", cookie.split_once('.').unwrap().0);
        let mut refreshed = std::sync::Arc::unwrap_or_clone(
            store.session(&one(&cookie), now).unwrap().unwrap().session,
        );
        refreshed.tokens = Tokens::new("A2", "R2", 5, 6);

        // A stale refresh token loses; the matching one wins, TTL kept.
        assert_eq!(
            store
                .replace_session(&cookie, "R-old", refreshed.clone(), now)
                .unwrap(),
            Replaced::Changed
        );
        ::redis::cmd("EXPIRE")
            .arg(&key)
            .arg(1234)
            .query::<()>(&mut raw)
            .unwrap();
        assert_eq!(
            store
                .replace_session(&cookie, REFRESH, refreshed.clone(), now)
                .unwrap(),
            Replaced::Written
        );
        let now_held = store.session(&one(&cookie), now).unwrap().unwrap();
        assert_eq!(now_held.session.tokens.access_token(), "A2");
        assert!((1230..=1234).contains(&ttl(&mut raw, &key)));
        // A second refresh from the same old read loses.
        assert_eq!(
            store
                .replace_session(&cookie, REFRESH, refreshed.clone(), now)
                .unwrap(),
            Replaced::Changed
        );
        // After a logout nothing is written back.
        store.end_sessions(std::slice::from_ref(&cookie)).unwrap();
        assert_eq!(
            store
                .replace_session(&cookie, "R2", refreshed.clone(), now)
                .unwrap(),
            Replaced::Gone
        );
        assert!(store.session(&one(&cookie), now).unwrap().is_none());
        // Nor under a cookie whose secret is not the session's.
        let cookie = store.create_session(session("o3"), now).unwrap();
        let id = cookie.split_once('.').unwrap().0;
        let forged = format!("{id}.{}", random::token(SECRET_LEN));
        assert_ne!(
            store
                .replace_session(&forged, REFRESH, refreshed, now)
                .unwrap(),
            Replaced::Written
        );
        assert_eq!(
            store
                .replace_session("junk", REFRESH, session("x"), now)
                .unwrap(),
            Replaced::Gone
        );
    }

    #[test]
    fn a_state_is_spent_once_and_its_landing_reads_only_with_the_browser_id() {
        let Some(server) = Server::start() else {
            return;
        };
        let mut store = server.store();
        let mut raw = server.raw().unwrap();
        let now = 1_000_000;
        let state = login(now - 100);
        assert_eq!(store.spent(&state, now).unwrap(), None);
        assert!(store.spend(&state, now).unwrap());
        assert!(!store.spend(&state, now).unwrap(), "spent already");
        assert_eq!(
            store.spent(&state, now).unwrap(),
            Some(SpentState::Exchanging)
        );
        let key = format!("wxauth:spent:{}", state.nonce);
        let left: i64 = ::redis::cmd("PTTL").arg(&key).query(&mut raw).unwrap();
        assert!((499_000..=500_000).contains(&left), "PTTL {left}");

        let cookie = format!("{}.{}", random::token(ID_LEN), random::token(SECRET_LEN));
        store.complete(&state, &cookie, now).unwrap();
        assert_eq!(
            store.spent(&state, now).unwrap(),
            Some(SpentState::Landed(cookie.clone()))
        );
        let left: i64 = ::redis::cmd("PTTL").arg(&key).query(&mut raw).unwrap();
        assert!(left > 490_000, "KEEPTTL: {left}");
        for (key, bytes) in dump(&mut raw) {
            assert!(
                !contains(&bytes, &cookie) && !contains(&bytes, &state.browser),
                "{key}"
            );
        }
        // Another browser id (as a copy of Redis alone would have to guess).
        let mut other = state.clone();
        other.browser = random::token(32);
        assert_eq!(store.spent(&other, now).unwrap(), Some(SpentState::Failed));
        // Past the state's ten minutes it is no longer spent.
        assert_eq!(store.spent(&state, now - 100 + LOGIN_TTL).unwrap(), None);

        let failing = login(now);
        store.fail(&failing, now).unwrap();
        assert_eq!(
            store.spent(&failing, now).unwrap(),
            None,
            "XX: nothing to fail"
        );
        assert!(store.spend(&failing, now).unwrap());
        store.fail(&failing, now).unwrap();
        assert_eq!(
            store.spent(&failing, now).unwrap(),
            Some(SpentState::Failed)
        );

        let refused = login(now);
        assert!(store.spend(&refused, now).unwrap());
        store.unspend(&refused).unwrap();
        assert_eq!(store.spent(&refused, now).unwrap(), None);
        assert!(store.spend(&refused, now).unwrap());
        // A state at the end of its life still gets a second's record.
        let late = login(now - LOGIN_TTL);
        assert!(store.spend(&late, now).unwrap());
        let left: i64 = ::redis::cmd("PTTL")
            .arg(format!("wxauth:spent:{}", late.nonce))
            .query(&mut raw)
            .unwrap();
        assert!((1..=1000).contains(&left), "PTTL {left}");
    }

    #[test]
    fn a_scan_is_recorded_decided_by_its_phone_and_claimed_once() {
        let Some(server) = Server::start() else {
            return;
        };
        let mut store = server.store();
        let mut raw = server.raw().unwrap();
        let now = 1_000_000;
        let nonce = random::token(22);
        let ticket = format!("{nonce}{}", random::token(100));
        let (phone, sid) = (random::token(32), random::token(40));
        assert!(store.scan(&nonce, &sid, now).unwrap().is_none());
        assert!(matches!(
            store.claim(&nonce, &ticket, now).unwrap(),
            Claimed::Pending
        ));
        assert_eq!(
            store.decide(&nonce, &ticket, &sid, None, now).unwrap(),
            Decided::Gone
        );

        store
            .record_scan(&nonce, &phone, "sid-0", now + 180, now)
            .unwrap();
        // The same phone again while undecided: its new session takes over.
        store
            .record_scan(&nonce, &phone, &sid, now + 180, now)
            .unwrap();
        // Another phone: the ticket stays the first one's.
        let thief = random::token(40);
        store
            .record_scan(&nonce, &random::token(32), &thief, now + 180, now)
            .unwrap();
        let view = store.scan(&nonce, &sid, now).unwrap().unwrap();
        assert_eq!(view.status, ScanStatus::Scanned);
        assert!(view.mine, "the phone's own session sees its record");
        assert!(!store.scan(&nonce, &thief, now).unwrap().unwrap().mine);
        assert!(!store.scan(&nonce, "", now).unwrap().unwrap().mine);
        let key = format!("wxauth:scan:{nonce}");
        let left: i64 = ::redis::cmd("PTTL").arg(&key).query(&mut raw).unwrap();
        assert!((179_000..=180_000).contains(&left), "PTTL {left}");
        assert!(matches!(
            store.claim(&nonce, &ticket, now).unwrap(),
            Claimed::Scanned
        ));

        assert_eq!(
            store
                .decide(&nonce, &ticket, &thief, Some(session("x")), now)
                .unwrap(),
            Decided::NotYours
        );
        assert_eq!(
            store
                .decide(&nonce, &ticket, &sid, Some(session("o1")), now)
                .unwrap(),
            Decided::Now
        );
        assert_eq!(
            store.decide(&nonce, &ticket, &sid, None, now).unwrap(),
            Decided::Already
        );
        assert_eq!(
            store.scan(&nonce, &sid, now).unwrap().unwrap().status,
            ScanStatus::Confirmed
        );
        // Once confirmed, the phone cannot take the ticket over again.
        store
            .record_scan(&nonce, &phone, "sid-9", now + 180, now)
            .unwrap();
        assert!(store.scan(&nonce, &sid, now).unwrap().unwrap().mine);
        assert!(!store.scan(&nonce, "sid-9", now).unwrap().unwrap().mine);
        for (key, bytes) in dump(&mut raw) {
            for secret in [
                ACCESS,
                REFRESH,
                sid.as_str(),
                phone.as_str(),
                ticket.as_str(),
            ] {
                assert!(!contains(&bytes, secret), "{key} shows a secret");
            }
        }

        match store.claim(&nonce, &ticket, now).unwrap() {
            Claimed::Session(session) => {
                assert_eq!(session.openid(), "o1");
                assert_eq!(session.tokens.access_token(), ACCESS);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.claim(&nonce, &ticket, now).unwrap(),
            Claimed::Gone
        ));
        assert_eq!(
            store.scan(&nonce, &sid, now).unwrap().unwrap().status,
            ScanStatus::Claimed
        );
        // Expired on the app's clock: a record no more.
        assert!(store.scan(&nonce, &sid, now + 180).unwrap().is_none());

        // A cancelled ticket stays cancelled for the desktop.
        let nonce = random::token(22);
        store
            .record_scan(&nonce, &phone, &sid, now + 180, now)
            .unwrap();
        assert_eq!(
            store.decide(&nonce, "t", &sid, None, now).unwrap(),
            Decided::Now
        );
        assert!(matches!(
            store.claim(&nonce, "t", now).unwrap(),
            Claimed::Cancelled
        ));
        assert!(matches!(
            store.claim(&nonce, "t", now).unwrap(),
            Claimed::Cancelled
        ));
    }

    #[test]
    fn a_push_is_acted_on_once_across_instances() {
        let Some(server) = Server::start() else {
            return;
        };
        let now = 1_000_000;
        let reply = |n: usize| SavedReply {
            content_type: "text/xml; charset=utf-8".into(),
            body: format!("<xml>{n}\n\u{0}</xml>").into_bytes(),
        };
        assert_eq!(server.store().push_reply("k", now).unwrap(), None);
        let racers: Vec<_> = (0..8)
            .map(|n| {
                let mut store = server.store();
                std::thread::spawn(move || (n, store.remember_push("k", reply(n), now).unwrap()))
            })
            .collect();
        let outcomes: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<usize> = outcomes
            .iter()
            .filter(|(_, first)| first.is_none())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        for (_, first) in &outcomes {
            if let Some(first) = first {
                assert_eq!(*first, reply(winners[0]));
            }
        }
        let mut store = server.store();
        assert_eq!(
            store.push_reply("k", now + 59).unwrap(),
            Some(reply(winners[0]))
        );
        assert_eq!(store.push_reply("k", now + 60).unwrap(), None);
        // Past its minute on the app's clock, a new delivery is new.
        assert_eq!(store.remember_push("k", reply(99), now + 60).unwrap(), None);
        let mut raw = server.raw().unwrap();
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg("wxauth:push:*")
            .query(&mut raw)
            .unwrap();
        assert_eq!(keys, [format!("wxauth:push:{}", scan_digest("k"))]);
        assert!((59..=60).contains(&ttl(&mut raw, &keys[0])));
    }

    #[test]
    fn the_signing_key_locks_and_values_are_shared() {
        let Some(server) = Server::start() else {
            return;
        };
        let (a, b) = (server.store(), server.store());
        assert_eq!(a.shared_key("aa11").unwrap(), "aa11");
        assert_eq!(b.shared_key("bb22").unwrap(), "aa11", "the first one stays");

        let held = a.lock("token:wx1", 10_000).unwrap().expect("free");
        assert!(b.lock("token:wx1", 10_000).unwrap().is_none());
        drop(held);
        let held = b.lock("token:wx1", 10_000).unwrap().expect("released");
        // A lock that ran out and was taken by another is not released by
        // its first holder.
        let mut raw = server.raw().unwrap();
        ::redis::cmd("SET")
            .arg("wxauth:lock:token:wx1")
            .arg("someone else")
            .query::<()>(&mut raw)
            .unwrap();
        drop(held);
        let still: Option<String> = ::redis::cmd("GET")
            .arg("wxauth:lock:token:wx1")
            .query(&mut raw)
            .unwrap();
        assert_eq!(still.as_deref(), Some("someone else"));

        assert_eq!(a.get_value("token:wx1").unwrap(), None);
        a.set_value("token:wx1", "T 123", 60).unwrap();
        assert_eq!(b.get_value("token:wx1").unwrap().as_deref(), Some("T 123"));
        assert!((59..=60).contains(&ttl(&mut raw, "wxauth:token:wx1")));
    }

    #[test]
    fn a_dead_redis_answers_store_down_at_once_and_service_returns() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let mut store = server.store();
        let now = 1_000_000;
        let cookie = store.create_session(session("o1"), now).unwrap();
        server.kill();

        let started = Instant::now();
        let down = store.session(std::slice::from_ref(&cookie), now);
        assert!(matches!(down, Err(StoreDown(_))), "{down:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        // The backoff: no connection is tried, from any thread.
        let started = Instant::now();
        assert!(store.ping().is_err());
        let other = store.clone();
        assert!(std::thread::spawn(move || other.clone().ping().is_err())
            .join()
            .unwrap());
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );

        server.restart();
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.ping().is_err() {
            assert!(Instant::now() < deadline, "service did not return");
            sleep(Duration::from_millis(50));
        }
        // A new Redis: the old session is gone (no error), new ones work.
        assert!(store.session(&one(&cookie), now).unwrap().is_none());
        let cookie = store.create_session(session("o2"), now).unwrap();
        assert!(store.session(&one(&cookie), now).unwrap().is_some());
    }

    #[test]
    fn a_redis_that_never_answers_costs_one_call_the_timeout() {
        // Connections complete in the kernel's backlog; nothing ever answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/", silent.local_addr().unwrap());
        let store = RedisStore::open(&url, "wxauth", 1).unwrap();
        let started = Instant::now();
        assert!(store.clone().ping().is_err());
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
        sleep(BACKOFF_FIRST + Duration::from_millis(50));
        // The wait is over: one call tries (and waits), the others answer at once.
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let mut store = store.clone();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    assert!(store.ping().is_err());
                    started.elapsed()
                })
            })
            .collect();
        let took: Vec<Duration> = calls.into_iter().map(|c| c.join().unwrap()).collect();
        let waited = took
            .iter()
            .filter(|t| **t >= Duration::from_millis(300))
            .count();
        assert_eq!(waited, 1, "{took:?}");
    }

    #[test]
    fn a_connection_redis_closed_while_idle_is_replaced() {
        let Some(server) = Server::start() else {
            return;
        };
        let mut raw = server.raw().unwrap();
        ::redis::cmd("CONFIG")
            .arg("SET")
            .arg("timeout")
            .arg(1)
            .query::<()>(&mut raw)
            .unwrap();
        let mut store = server.store();
        store.ping().unwrap();
        assert_eq!(store.inner.connects.load(Ordering::Relaxed), 1);
        // Redis counts idle time in whole seconds: wait until it closed ours.
        sleep(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            // Ours is the one whose last command was a PING (a fresh
            // connection of the test's own is in CLIENT LIST).
            let mut look = server.raw().unwrap();
            let clients: String = ::redis::cmd("CLIENT").arg("LIST").query(&mut look).unwrap();
            if !clients.contains("cmd=ping") {
                break;
            }
            assert!(Instant::now() < deadline, "Redis kept the idle connection");
            sleep(Duration::from_millis(100));
        }
        let cookie = store.create_session(session("o1"), 0).unwrap();
        assert_eq!(
            store.inner.connects.load(Ordering::Relaxed),
            2,
            "the idle connection was closed and replaced"
        );
        assert!(store.session(&one(&cookie), 1).unwrap().is_some());
    }

    #[test]
    fn a_store_is_shared_between_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<RedisStore>();
    }

    #[test]
    fn urls_are_checked_and_tls_fails_cleanly_against_a_plain_server() {
        assert!(RedisStore::open("http://127.0.0.1/", "wxauth", 1).is_err());
        assert!(
            RedisStore::open("redis://:pw@127.0.0.1:notaport/", "wxauth", 1)
                .is_err_and(|e| !e.contains("pw"))
        );
        assert!(RedisStore::open("redis://127.0.0.1/", "", 1).is_err());
        assert!(RedisStore::open("rediss://redis.example.com:6380/2", "wxauth", 1).is_ok());
        let Some(server) = Server::start() else {
            return;
        };
        let url = format!("rediss://127.0.0.1:{}/", server.port);
        let mut store = RedisStore::open(&url, "wxauth", 1).unwrap();
        let started = Instant::now();
        let down = store.ping();
        assert!(matches!(down, Err(StoreDown(_))), "{down:?}");
        assert!(started.elapsed() < Duration::from_millis(1500));
        let mut store = server.store();
        store.ping().unwrap();
    }
}
