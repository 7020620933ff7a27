//! The app's state (configuration, the store, the signing key, the WeChat
//! client, templates, clock) behind the methods handlers need: the store
//! through `with_store` (store/backend.rs), WeChat through `call`. Every
//! error becomes a page here (`finish`), and every reply gets the security
//! headers; web/service.rs is the `Service` the loop calls.

use crate::clock::Clock;
use crate::config::{Config, Scope};
use crate::log;
use crate::metrics;
use crate::store::backend::{Backend, Found, Stored};
use crate::store::journal::Journal;
use crate::store::links::Links;
use crate::store::logins::{self, LoginCookie, Logins, LOGIN_TTL};
use crate::store::memory::Memory;
use crate::store::pushes::SeenPushes;
use crate::store::redis::{RedisStore, TokenShelf};
use crate::store::session_file;
use crate::store::sessions::SessionStore;
use crate::store::signed::Key;
use crate::store::tickets::Scans;
use crate::transport::http::{Cookie, Reply, Req, SECURITY_HEADERS};
use crate::transport::service::{Job, Outcome};
use crate::web::error::AppError;
use crate::web::render;
use crate::web::site::Site;
use crate::wechat::account::BaseToken;
use crate::wechat::client::{WechatClient, WechatError};
use crate::wechat::encryption::MessageKey;
use crate::wechat::errcode;
use crate::wechat::jsapi::{JsapiCaches, JsapiTicket};
use minijinja::context;
use minijinja::Environment;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a handler or a call's continuation gives the loop: a reply, a call
/// to make on a worker, or an error that becomes a page.
pub type Step = Result<Outcome<App>, AppError>;

/// The cookie holding the session id.
pub const SESSION_COOKIE: &str = "wxauth_session";
/// The login cookie: the browser's id and the `next` of its logins under way
/// (store/logins.rs); login states and QR tickets are bound to it.
pub const LOGIN_COOKIE: &str = "wxauth_login";
/// The same two with an https public URL at the root path (`Config::host_cookies`).
const HOST_SESSION_COOKIE: &str = "__Host-wxauth_session";
const HOST_LOGIN_COOKIE: &str = "__Host-wxauth_login";

/// Everything a handler may read or change, through the methods below (the
/// fields are private: a handler cannot swap a store, the templates, the
/// cookie names or the site). Owned by the single loop: no locks.
pub struct App {
    config: Config,
    /// Where sessions, spent states, scan records and pushes seen live.
    store: Store,
    /// The key login states and scan tickets are signed with.
    key: Key,
    /// Shared with the workers that make the calls (one ureq agent).
    wechat: Arc<WechatClient>,
    /// The website app's client (WXAUTH_WEB_APPID), for QR logins' codes.
    web_wechat: Option<Arc<WechatClient>>,
    /// /wechat's EncodingAESKeys, decoded once: current, then previous.
    message_keys: Vec<MessageKey>,
    templates: Environment<'static>,
    clock: Clock,
    /// The session cookie's name (`__Host-` prefixed on https at the root).
    session_cookie_name: &'static str,
    /// The login cookie's name, likewise.
    login_cookie_name: &'static str,
    /// Where the browser of the request in hand reaches us (site.rs): set
    /// for each request before its handler runs, and again before a call's
    /// continuation runs. Links, redirect_uri and the origin check read it.
    site: Arc<Site>,
    /// The configured site, shared by every request that does not follow its Host.
    configured: Arc<Site>,
    /// A request outside the path prefix was logged once (a proxy that strips it).
    told_outside_prefix: bool,
    next_sweep: i64,
    counters: Arc<Counters>,
    /// The base token and the jsapi_ticket for /jssdk/config; None while a
    /// worker is fetching with them (`fetch_jsapi_ticket`).
    jsapi: Option<JsapiCaches>,
    /// After a failed ticket fetch: its error, answered until this time
    /// without asking WeChat again (a page reloaded in a loop must not
    /// spend the account's daily quota).
    jsapi_failed: Option<(WechatError, i64)>,
}

/// Where the app's state lives.
enum Store {
    /// In this process (the default). Boxed: the stores are large and the
    /// variant is chosen once.
    Memory(Box<Memory>),
    /// In Redis, shared by every instance that uses the same URL.
    Redis(RedisStore),
}

/// The signing key every instance sharing `redis` uses: the first one's.
/// Asked once at start (the loop is not serving yet); Redis may take a few
/// seconds to come up beside wxauth, so it is asked again for up to 10 s.
fn shared_key(redis: &RedisStore, candidate: &Key) -> Result<Key, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match redis.shared_key(&candidate.to_hex()) {
            Ok(hex) => {
                return Key::from_hex(&hex)
                    .ok_or_else(|| "WXAUTH_REDIS_URL: the stored signing key is not one".into())
            }
            Err(down) if std::time::Instant::now() >= deadline => {
                return Err(format!("WXAUTH_REDIS_URL: Redis does not answer: {down}"))
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(250)),
        }
    }
}

/// How much the app holds, published by the loop after every request so
/// that other threads can read it without a lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    sessions: AtomicUsize,
    spent: AtomicUsize,
    scans: AtomicUsize,
    pushes: AtomicUsize,
}

impl Counters {
    /// A reading.
    pub(crate) fn read(&self) -> Stats {
        Stats {
            sessions: self.sessions.load(Ordering::Relaxed),
            spent: self.spent.load(Ordering::Relaxed),
            scans: self.scans.load(Ordering::Relaxed),
            pushes: self.pushes.load(Ordering::Relaxed),
        }
    }
}

/// A reading of `Counters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Live sessions stored.
    pub sessions: usize,
    /// Login states spent (their callback reached the code exchange). A
    /// login under way that has not come back costs nothing and is not counted.
    pub spent: usize,
    /// Scan tickets scanned by a logged-in phone.
    pub scans: usize,
    /// Pushes from WeChat acted on (retries not counted).
    pub pushes: usize,
}

impl App {
    /// Builds the app, restores saved sessions and starts their journal;
    /// fails on a broken template override, when the session file's
    /// directory can be neither written nor cleared (session_file::open),
    /// or when WXAUTH_REDIS_URL's Redis does not answer within 10 s. A bad
    /// session file is reported and skipped: the server starts empty.
    pub fn new(config: Config, clock: Clock) -> Result<App, String> {
        let mut templates = render::environment(config.templates.as_deref())
            .map_err(|e| format!("WXAUTH_TEMPLATES: {e}"))?;
        templates.add_global("demo", config.demo);
        // Every link in the templates starts with it: "" at the root, "/wx".
        templates.add_global("base", config.prefix.clone());
        // The simulator as the browser reaches it; `page` gives each demo
        // page its own (the host may differ from request to request).
        templates.add_global("sim_url", "");
        let configured = Arc::new(Site::configured(&config));
        let (session_cookie_name, login_cookie_name) = if config.host_cookies() {
            (HOST_SESSION_COOKIE, HOST_LOGIN_COOKIE)
        } else {
            (SESSION_COOKIE, LOGIN_COOKIE)
        };
        let key = Key::random();
        let (store, key) = match &config.redis_url {
            None => {
                let memory = Memory {
                    sessions: SessionStore::new(config.session_ttl, config.max_sessions),
                    // Replaced by the saved key, if the session file has one.
                    logins: Logins::new(key.clone()),
                    scans: Scans::default(),
                    pushes: SeenPushes::default(),
                    links: Links::new(config.session_ttl, config.max_sessions),
                    journal: Journal::off(),
                };
                (Store::Memory(Box::new(memory)), key)
            }
            Some(url) => {
                let redis = RedisStore::open(url.expose(), "wxauth", config.session_ttl as i64)?;
                let key = shared_key(&redis, &key)?;
                (Store::Redis(redis), key)
            }
        };
        let mut app = App {
            store,
            key,
            wechat: Arc::new(WechatClient::new(&config)),
            web_wechat: config
                .web
                .as_ref()
                .map(|web| Arc::new(WechatClient::for_website(&config, web))),
            // Configuration checked each is 43 letters and digits, which
            // always decode.
            message_keys: config
                .endpoint
                .iter()
                .flat_map(|endpoint| &endpoint.aes_keys)
                .filter_map(|key| MessageKey::from_encoding_aes_key(key.expose()))
                .collect(),
            templates,
            clock,
            session_cookie_name,
            login_cookie_name,
            site: Arc::clone(&configured),
            configured,
            told_outside_prefix: false,
            next_sweep: 0,
            counters: Arc::default(),
            jsapi: None,
            jsapi_failed: None,
            config,
        };
        app.jsapi = Some(app.new_jsapi_caches());
        if let (Some(path), Store::Memory(memory)) =
            (app.config.session_file.clone(), &mut app.store)
        {
            let opened = session_file::open(
                &path,
                &mut memory.sessions,
                &mut memory.logins,
                app.config.max_sessions,
                app.clock.clone(),
            )?;
            app.key = memory.logins.key().clone();
            match opened.restored {
                // No file: a first start; nothing to say.
                Ok(None) => {}
                Ok(Some((n, from))) => log::info(&format!(
                    "restored {} from {}",
                    count(n, "session"),
                    from.display()
                )),
                Err(e) => log::error(&format!("session file: {e}; starting with no sessions")),
            }
            memory.journal = opened.journal;
        }
        Ok(app)
    }

    /// The configuration (read-only: it never changes while serving).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The app clock's time, in unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Where the browser of the request in hand reaches us (site.rs).
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// /wechat's EncodingAESKeys, current first (wechat/encryption.rs).
    pub fn message_keys(&self) -> &[MessageKey] {
        &self.message_keys
    }

    /// The key login states and scan tickets are signed with.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Runs `op` against the store, then `then` with its answer. The memory
    /// store answers at once, on the loop; a store outside the process is
    /// asked by a worker (`App::call`), and `then` runs when it has
    /// answered. A store that cannot answer is a 503, never "no session".
    pub fn with_store<T: Send + 'static>(
        &mut self,
        req: &Req,
        op: impl FnOnce(&mut dyn Backend, i64) -> Stored<T> + Send + 'static,
        then: impl FnOnce(&mut App, T) -> Step + 'static,
    ) -> Step {
        let now = self.clock.now();
        let answered = |app: &mut App, answer: Stored<T>| match answer {
            Ok(answer) => then(app, answer),
            Err(down) => Err(AppError::StoreDown(down.0)),
        };
        match &mut self.store {
            Store::Memory(memory) => {
                let answer = op(memory.as_mut(), now);
                answered(self, answer)
            }
            Store::Redis(redis) => {
                let redis = redis.clone();
                let work = move || redis.with_backend(|store| op(store, now));
                Ok(Outcome::Wait(self.call(req, work, answered)))
            }
        }
    }

    /// True when the store is shared with other instances: a login under
    /// way may be another instance's.
    pub fn shares_store(&self) -> bool {
        matches!(self.store, Store::Redis(_))
    }

    /// Runs `op` against the store with no request waiting on it: undoing a
    /// spend when a call was refused or lost. Its failure is logged.
    pub fn store_aside(
        &mut self,
        op: impl FnOnce(&mut dyn Backend, i64) -> Stored<()> + Send + 'static,
    ) {
        let now = self.clock.now();
        match &mut self.store {
            Store::Memory(memory) => {
                if let Err(down) = op(memory.as_mut(), now) {
                    log::warn(&format!("store: {down}"));
                }
            }
            Store::Redis(redis) => {
                // Rare (a call refused for room, or lost): on a thread of its
                // own, a few at a time; past that the record simply expires.
                static ASIDE: AtomicUsize = AtomicUsize::new(0);
                if ASIDE.fetch_add(1, Ordering::SeqCst) >= 8 {
                    ASIDE.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                let redis = redis.clone();
                let spawned = std::thread::Builder::new()
                    .name("store-aside".into())
                    .spawn(move || {
                        if let Err(down) = redis.with_backend(|store| op(store, now)) {
                            log::warn(&format!("store: {down}"));
                        }
                        ASIDE.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    ASIDE.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// SIGHUP's allow-list: /auth/check judges by it from the next request.
    pub fn set_allow(&mut self, allow: std::collections::HashSet<String>) {
        log::info(&format!("WXAUTH_ALLOW reloaded: {} entries", allow.len()));
        self.config.allow = Some(allow);
    }

    /// Ends every session of `who` (an openid or unionid) and answers on
    /// `reply` how many. In memory at once, on the loop (a pass over the
    /// sessions); in Redis on a thread of its own, never on the loop.
    pub fn revoke(&mut self, who: String, reply: std::sync::mpsc::Sender<String>) {
        let answer = |who: &str, ended: Stored<usize>| match ended {
            Ok(n) => {
                log::info(&format!("revoked {} of {who}", count(n, "session")));
                format!("revoked {}", count(n, "session"))
            }
            Err(down) => {
                log::warn(&format!("revoke: store: {down}"));
                format!("error: the store did not answer ({down}); nothing revoked")
            }
        };
        match &mut self.store {
            Store::Memory(memory) => {
                let ended = memory.revoke_user(&who);
                memory.journal_changes();
                let _ = reply.send(answer(&who, ended));
            }
            Store::Redis(redis) => {
                let redis = redis.clone();
                let spawned = std::thread::Builder::new()
                    .name("revoke".into())
                    .spawn(move || {
                        let ended = redis.with_backend(|store| store.revoke_user(&who));
                        let _ = reply.send(answer(&who, ended));
                    });
                if spawned.is_err() {
                    log::warn("revoke: no thread for it");
                }
            }
        }
    }

    /// The browser's live session, if any (every session cookie it sent is
    /// tried), then `then` with it.
    pub fn with_session(
        &mut self,
        req: &Req,
        then: impl FnOnce(&mut App, Option<Found>) -> Step + 'static,
    ) -> Step {
        let cookies = self.session_cookies(req);
        // No session cookie, nothing to look up: an anonymous visitor (whom
        // nginx's auth_request sends to /auth/check on every page) costs no
        // worker and no store round trip.
        if cookies.is_empty() {
            return then(self, None);
        }
        self.with_store(req, move |store, now| store.session(&cookies, now), then)
    }

    /// The login cookies the browser sent (each is tried: one planted
    /// before ours is not taken blindly).
    pub fn login_cookies<'a>(&self, req: &'a Req) -> impl Iterator<Item = &'a str> + 'a {
        req.cookies_named(self.login_cookie_name)
    }

    /// What the app holds, as other threads may read it.
    pub(crate) fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// Writes the sessions to WXAUTH_SESSION_FILE, if one is configured,
    /// after the journal has written what it was sent; the journal goes once
    /// the file is written. Called once, after the loop has stopped. False
    /// (said in one line) when the file could not be written.
    pub fn save_sessions(&mut self) -> bool {
        let (Some(path), Store::Memory(memory)) = (&self.config.session_file, &mut self.store)
        else {
            return true;
        };
        let journaled = memory.journal.is_on();
        let generation = memory.journal.close(&memory.sessions);
        match session_file::save_after(path, generation, &memory.sessions, &memory.logins) {
            Ok(n) => {
                log::info(&format!(
                    "saved {} to {}",
                    count(n, "session"),
                    path.display()
                ));
                true
            }
            Err(e) => {
                let kept = if journaled {
                    "; the journal beside it keeps them for the next start"
                } else {
                    ""
                };
                log::error(&format!(
                    "cannot save sessions to {}: {e}{kept}",
                    path.display()
                ));
                false
            }
        }
    }

    /// Renders a page. `demo` and `base` are template globals (set once in
    /// `new`); contexts are minijinja values built directly, because going
    /// through serde_json cost more than the rendering. Only demo pages get
    /// one merged value more: the simulator's URL for this browser.
    pub fn page(&self, name: &str, ctx: minijinja::Value) -> Result<Reply, AppError> {
        let ctx = if self.config.demo {
            context! { sim_url => self.site.open_base.as_str(), ..ctx }
        } else {
            ctx
        };
        render::render(&self.templates, name, ctx)
            .map(Reply::html)
            .map_err(AppError::Internal)
    }

    /// A path of the site: `p` ("/profile") under the prefix ("/wx/profile").
    pub fn path(&self, p: &str) -> String {
        format!("{}{p}", self.config.prefix)
    }

    /// Where a login lands when it was not asked to go anywhere else: the
    /// profile, under the site's path prefix.
    pub fn default_next(&self) -> String {
        self.path("/profile")
    }

    /// Starts a login that lands on `next` (a checked local path): 302 to WeChat.
    /// Stores nothing: the state is signed, and `next` rides in the login cookie.
    /// WeChat (or the simulator, as this browser reaches it) is asked to send
    /// the browser back to the site it is on (`App::site`).
    pub fn authorize_redirect(&mut self, req: &Req, next: &str) -> Reply {
        let scope = self.config.scope;
        self.redirect_to_wechat(req, next, scope)
    }

    /// True when a website app is configured: desktops log in on WeChat's
    /// own QR page (qrconnect).
    pub fn has_website_app(&self) -> bool {
        self.web_wechat.is_some()
    }

    /// A fresh state for the website app, then 302 to WeChat's QR login
    /// (qrconnect); the callback is the same /callback.
    pub fn website_redirect(&mut self, req: &Req, next: &str) -> Reply {
        self.redirect_to_wechat(req, next, Scope::Login)
    }

    /// The client whose app a login of `scope` belongs to: the website
    /// app's for snsapi_login, the Official Account's otherwise.
    pub fn wechat_for(&self, scope: Scope) -> Arc<WechatClient> {
        match (&self.web_wechat, scope) {
            (Some(web), Scope::Login) => Arc::clone(web),
            _ => Arc::clone(&self.wechat),
        }
    }

    fn redirect_to_wechat(&mut self, req: &Req, next: &str, scope: Scope) -> Reply {
        let mut cookie = self.login_cookie_of(req);
        let fallback = self.default_next();
        let next = logins::fit(next, &fallback);
        let now = self.clock.now();
        let state = logins::begin_for(&self.key, &mut cookie, next, now, scope.is_website());
        let site = &self.site;
        let url = self.wechat_for(scope).authorize_url(
            &site.open_base,
            &site.redirect_uri(),
            scope,
            &state,
        );
        metrics::login_started(scope.is_website());
        Reply::redirect(302, &url).with_cookie(&self.login_cookie(&cookie))
    }

    /// The site's /login, carrying `next` (a path on the site's host).
    pub fn login_url(&self, next: &str) -> String {
        crate::web::error::login_url(&self.config.prefix, next)
    }

    /// The site for `req` (site.rs): the configured one unless demo mode
    /// follows the host the browser used.
    fn site_of(&self, req: &Req) -> Arc<Site> {
        if !self.config.follow_host {
            return Arc::clone(&self.configured);
        }
        let site = Site::of(&self.config, req);
        if site == *self.configured {
            Arc::clone(&self.configured)
        } else {
            Arc::new(site)
        }
    }

    /// Before a request's handler: expired records go (now and then), and
    /// the site is the one this request reaches.
    pub(crate) fn start(&mut self, req: &Req) {
        self.sweep();
        self.site = self.site_of(req);
    }

    /// Before an error page for a request that was never read (or broke a
    /// limit): there is no Host to follow, so the configured site.
    pub(crate) fn start_without_request(&mut self) {
        self.site = Arc::clone(&self.configured);
    }

    /// `path` without the site's path prefix ("" for the prefix itself);
    /// None when it lies outside.
    pub fn local_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let prefix = self.config.prefix.as_str();
        if prefix.is_empty() {
            return Some(path);
        }
        path.strip_prefix(prefix)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// True the first time it is asked: a request outside the path prefix
    /// is logged once (routes.rs).
    pub fn first_outside_prefix(&mut self) -> bool {
        !std::mem::replace(&mut self.told_outside_prefix, true)
    }

    /// Every session cookie the browser sent (each is tried: one planted
    /// before ours, by a longer Path or a sibling subdomain, is not taken
    /// blindly; all are ended at logout and at a new login).
    pub fn session_cookies(&self, req: &Req) -> Vec<String> {
        req.cookies_named(self.session_cookie_name)
            .map(str::to_string)
            .collect()
    }

    /// The login cookie the browser sent that we can read (the first such),
    /// or a fresh one with a new browser id.
    pub fn login_cookie_of(&self, req: &Req) -> LoginCookie {
        req.cookies_named(self.login_cookie_name)
            .find_map(LoginCookie::parse)
            .unwrap_or_default()
    }

    /// The Set-Cookie for a login cookie; it lives as long as a login does.
    /// Its path is the site's prefix: only the site's own pages (/login, the
    /// callback, the QR poll) read it, so pages of other apps on the same
    /// host never receive it.
    pub fn login_cookie(&self, cookie: &LoginCookie) -> Cookie {
        let path = if self.config.prefix.is_empty() {
            "/"
        } else {
            &self.config.prefix
        };
        self.cookie(self.login_cookie_name, &cookie.value(), LOGIN_TTL as u64)
            .with_path(path)
    }

    /// A cookie with the app's fixed attributes (Secure when PUBLIC_URL is
    /// https), for the whole host (Path=/): the session cookie must reach
    /// /auth/check from the pages of the app behind the gateway, which lie
    /// outside a prefix. (A path is no wall between pages of one origin
    /// anyway: any of them can fetch the site's pages with the cookie.)
    pub fn cookie(&self, name: &'static str, value: &str, max_age: u64) -> Cookie {
        Cookie {
            name,
            value: value.to_string(),
            max_age,
            secure: self.config.secure_cookies(),
            path: "/".to_string(),
        }
    }

    /// The session cookie for `id`.
    pub fn session_cookie(&self, id: &str) -> Cookie {
        self.cookie(self.session_cookie_name, id, self.config.session_ttl)
    }

    /// The Set-Cookie that deletes the session cookie.
    pub fn session_cookie_cleared(&self) -> Cookie {
        self.cookie(self.session_cookie_name, "", 0)
    }

    pub(crate) fn error_reply_for(&self, req_path: &str, err: &AppError) -> Reply {
        let status = err.status();
        let reply = if self
            .local_path(req_path)
            .unwrap_or(req_path)
            .starts_with("/api/")
            || self
                .local_path(req_path)
                .unwrap_or(req_path)
                .starts_with("/jssdk/")
        {
            Reply::json(&json!({ "error": err.kind() })).with_status(status)
        } else {
            let (errcode, errmsg) = match err {
                AppError::Upstream {
                    error: WechatError::Api { errcode, errmsg },
                    ..
                } => (Some(*errcode), Some(errmsg.as_str())),
                _ => (None, None),
            };
            let openid = match err {
                AppError::NotAllowed { openid } => Some(openid.as_str()),
                _ => None,
            };
            let site_url = match err {
                AppError::WrongHost { site } => Some(site.as_str()),
                _ => None,
            };
            let ctx = context! {
                status, kind => err.kind(), retry_url => err.retry_url(&self.config.prefix),
                errcode, errmsg, openid, site_url,
            };
            match self.page("error.html", ctx) {
                Ok(page) => page.with_status(status),
                Err(e) => {
                    log::error(&format!("error page: {e:?}"));
                    Reply::text(status, "error")
                }
            }
        };
        match err {
            AppError::MethodNotAllowed { allow } => reply.with_header("Allow", allow),
            AppError::StoreDown(_) => reply.with_header("Retry-After", "1"),
            _ => reply,
        }
    }

    /// Expired sessions and logins go at most once a minute, between requests.
    fn sweep(&mut self) {
        let now = self.clock.now();
        if now >= self.next_sweep {
            if let Store::Memory(memory) = &mut self.store {
                memory.sweep(now);
            }
            self.next_sweep = now + 60;
        }
    }
}

/// The key of the one jsapi_ticket fetch under way: a request that needs the
/// ticket meanwhile waits for it.
const JSAPI_FETCH: &str = "jsapi_ticket";
/// How long a failed ticket fetch is answered from memory.
const JSAPI_FAILED_FOR: i64 = 1;

impl App {
    /// The jsapi_ticket to sign with now, when one is ready (no call).
    pub fn jsapi_ticket(&self) -> Option<String> {
        let now = self.clock.now();
        self.jsapi.as_ref()?.ticket.ready(now).map(str::to_string)
    }

    /// Fetches the jsapi_ticket on a worker, then `then` with it. One fetch
    /// at a time: a request that needs the ticket meanwhile waits for that
    /// fetch and is then handled again. A fetch that failed less than a
    /// second ago is answered with its error.
    pub fn fetch_jsapi_ticket(
        &mut self,
        req: &Req,
        then: impl FnOnce(&mut App, Result<String, WechatError>) -> Step + 'static,
    ) -> Step {
        let now = self.clock.now();
        if let Some((error, until)) = &self.jsapi_failed {
            if now < *until {
                let error = error.clone();
                return then(self, Err(error));
            }
        }
        let Some(mut caches) = self.jsapi.take() else {
            return Ok(Outcome::Join(JSAPI_FETCH.into()));
        };
        let (client, clock) = (Arc::clone(&self.wechat), self.clock.clone());
        let work = move || {
            let fetched = caches.fetch(&client, &clock);
            (caches, fetched)
        };
        let job = self.call(req, work, move |app: &mut App, (caches, fetched)| {
            app.jsapi = Some(caches);
            app.jsapi_failed = match &fetched {
                Err(e) => Some((e.clone(), app.clock.now() + JSAPI_FAILED_FOR)),
                Ok(_) => None,
            };
            then(app, fetched)
        });
        // Refused for room, or lost: the caches start afresh.
        let job = job
            .keyed(JSAPI_FETCH.into())
            .on_abandon(|app: &mut App, _| app.jsapi = Some(app.new_jsapi_caches()));
        Ok(Outcome::Wait(job))
    }

    /// Empty caches, shared with the other instances through Redis when
    /// the store is.
    fn new_jsapi_caches(&self) -> JsapiCaches {
        match &self.store {
            Store::Memory(_) => JsapiCaches::default(),
            Store::Redis(redis) => {
                let (appid, secret) = (&self.config.appid, self.config.secret.expose());
                JsapiCaches {
                    base: BaseToken::shared(Box::new(TokenShelf::new(
                        redis.clone(),
                        appid,
                        secret,
                    ))),
                    ticket: JsapiTicket::shared(Box::new(TokenShelf::jsapi_ticket(
                        redis.clone(),
                        appid,
                        secret,
                    ))),
                }
            }
        }
    }

    /// A blocking call (WeChat) for a worker; `then` finishes the request on
    /// the loop with its result, and what it returns is finished like any
    /// handler's answer (error pages, security headers).
    pub fn call<T: Send + 'static>(
        &self,
        req: &Req,
        work: impl FnOnce() -> T + Send + 'static,
        then: impl FnOnce(&mut App, T) -> Step + 'static,
    ) -> Job<App> {
        let path = req.path.clone();
        // The continuation runs after other requests have been handled:
        // it gets back the site of the request it finishes.
        let site = Arc::clone(&self.site);
        Job::new(work, move |app: &mut App, result| {
            app.site = site;
            let step = then(app, result);
            app.finish(&path, step)
        })
    }

    /// Turns a handler's step into what the loop carries out: an error
    /// becomes its page (logged once, here), a reply gets the security
    /// headers, a call goes out as it is.
    pub(crate) fn finish(&mut self, path: &str, step: Step) -> Outcome<App> {
        let outcome = match step {
            Ok(Outcome::Reply(reply)) => {
                let local = self.local_path(path).unwrap_or(path);
                Outcome::Reply(with_security_headers(reply, local.starts_with("/static/")))
            }
            Ok(other) => other,
            Err(err) => {
                if self.local_path(path) == Some("/callback") {
                    count_failed_login(&err);
                }
                match &err {
                    AppError::Upstream { error, .. } => log::warn(&format!("{path}: {error}")),
                    AppError::StoreDown(detail) => log::warn(&format!("{path}: store: {detail}")),
                    AppError::Internal(detail) => log::error(&format!("{path}: {detail}")),
                    _ => {}
                }
                Outcome::Reply(with_security_headers(
                    self.error_reply_for(path, &err),
                    false,
                ))
            }
        };
        if let Store::Memory(memory) = &mut self.store {
            // The sessions this request changed go to the journal.
            memory.journal_changes();
            let counters = &self.counters;
            let sessions = memory.sessions.len();
            counters.sessions.store(sessions, Ordering::Relaxed);
            counters.spent.store(memory.logins.len(), Ordering::Relaxed);
            counters.scans.store(memory.scans.len(), Ordering::Relaxed);
            counters
                .pushes
                .store(memory.pushes.acted(), Ordering::Relaxed);
            metrics::set_held(sessions, memory.logins.len());
        }
        outcome
    }
}

/// A callback that ended without a session, counted by why (every error
/// of a callback, its continuations' too, passes `App::finish` once).
fn count_failed_login(err: &AppError) {
    let reason = match err {
        AppError::Declined { .. } => "declined",
        AppError::Snapshot { .. } => "snapshot",
        AppError::Upstream {
            error: WechatError::Timeout,
            ..
        } => "timeout",
        AppError::Upstream {
            error: WechatError::Api { errcode, .. },
            ..
        } => {
            let named = errcode::NAMED.iter().position(|code| code == errcode);
            return metrics::login_failed_errcode(named, *errcode);
        }
        AppError::Upstream { .. } => "upstream",
        // A state that is not this browser's, spent, expired or on another
        // host, or a callback we cannot read (a code far too long).
        AppError::BadState | AppError::WrongHost { .. } | AppError::BadRequest => "bad_state",
        AppError::StoreDown(_) => "store",
        _ => "other",
    };
    metrics::login_failed(reason);
}

/// "1 session", "2 sessions".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Headers on every reply (`http::SECURITY_HEADERS`), and how long it may be cached.
/// A reply that brings its own Content-Security-Policy keeps it instead of
/// getting the strict one beside it (a browser enforces every policy sent,
/// so both would hold): only the demo's JS-SDK example page does
/// (handlers/jssdk.rs, `example`), to load the simulator's script.
pub(crate) fn with_security_headers(reply: Reply, is_static: bool) -> Reply {
    let cache = if is_static {
        "public, max-age=3600"
    } else {
        "no-store"
    };
    SECURITY_HEADERS
        .iter()
        .fold(reply, |reply, (name, value)| {
            if *name == "Content-Security-Policy" && reply.header(name).is_some() {
                reply
            } else {
                reply.with_header(name, value)
            }
        })
        .with_header("Cache-Control", cache)
}
