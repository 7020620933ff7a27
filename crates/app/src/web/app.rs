//! The app: its state (configuration, sessions, the signing key and spent
//! login states, scan records, the WeChat client, templates, clock) and the
//! `Service` the request loop calls. Every error becomes a page here, and
//! every reply gets the security headers.

use crate::clock::Clock;
use crate::config::Config;
use crate::log;
use crate::store::journal::{Journal, SpentStates};
use crate::store::logins::{self, Checked, LoginCookie, Logins, LOGIN_TTL};
use crate::store::pushes::SeenPushes;
use crate::store::session_file;
use crate::store::sessions::{Session, SessionStore};
use crate::store::signed::Key;
use crate::store::tickets::Scans;
use crate::transport::http::{Cookie, Reply, Req, SECURITY_HEADERS};
use crate::transport::service::{Job, Outcome};
use crate::web::error::AppError;
use crate::web::render;
use crate::web::site::Site;
use crate::wechat::client::{WechatClient, WechatError};
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
/// (login.rs); login states and QR tickets are bound to it.
pub const LOGIN_COOKIE: &str = "wxauth_login";
/// The same two with an https public URL at the root path (`Config::host_cookies`).
const HOST_SESSION_COOKIE: &str = "__Host-wxauth_session";
const HOST_LOGIN_COOKIE: &str = "__Host-wxauth_login";

/// Everything a handler may read or change, through the methods below (the
/// fields are private: a handler cannot swap a store, the templates, the
/// cookie names or the site). Owned by the single loop: no locks.
pub struct App {
    config: Config,
    sessions: SessionStore,
    /// The signing key and the login states already spent.
    logins: Logins,
    /// Where changes to sessions and spent states go, with a session file
    /// (journal.rs); off without one.
    journal: Journal,
    /// Shared with the workers that make the calls (one ureq agent).
    wechat: Arc<WechatClient>,
    templates: Environment<'static>,
    clock: Clock,
    /// Pushes from WeChat seen lately, to recognise its retries.
    pushes: SeenPushes,
    /// Scan-to-login tickets scanned by a logged-in phone.
    scans: Scans,
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
    /// fails on a broken template override, or when the session file's
    /// directory can be neither written nor cleared (session_file::open).
    /// A bad session file is reported and skipped: the server starts empty.
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
        let mut app = App {
            sessions: SessionStore::new(config.session_ttl, config.max_sessions),
            // Replaced by the saved key, if the session file has one.
            logins: Logins::new(Key::random()),
            journal: Journal::off(),
            wechat: Arc::new(WechatClient::new(&config)),
            templates,
            clock,
            pushes: SeenPushes::default(),
            scans: Scans::default(),
            session_cookie_name,
            login_cookie_name,
            site: Arc::clone(&configured),
            configured,
            told_outside_prefix: false,
            next_sweep: 0,
            counters: Arc::default(),
            config,
        };
        if let Some(path) = app.config.session_file.clone() {
            let opened = session_file::open(
                &path,
                &mut app.sessions,
                &mut app.logins,
                app.config.max_sessions,
                app.clock.clone(),
            )?;
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
            app.journal = opened.journal;
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

    /// The WeChat client, for a worker's call.
    pub fn wechat(&self) -> Arc<WechatClient> {
        Arc::clone(&self.wechat)
    }

    /// The key login states and scan tickets are signed with.
    pub fn key(&self) -> &Key {
        self.logins.key()
    }

    /// The login states spent.
    pub fn logins(&self) -> &Logins {
        &self.logins
    }

    /// The login states spent, to record a callback's progress (each
    /// change journaled).
    pub fn logins_mut(&mut self) -> SpentStates<'_> {
        SpentStates::new(&mut self.logins, &mut self.journal)
    }

    /// The live session with this id.
    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id, self.clock.now())
    }

    /// The live session with this id, to update it (journaled as it is
    /// when the request is finished).
    pub fn session_mut(&mut self, id: &str) -> Option<&mut Session> {
        self.journal.touch(id);
        self.sessions.get_mut(id, self.clock.now())
    }

    /// Stores a session under a fresh id (never one the browser sent).
    pub fn create_session(&mut self, session: Session) -> String {
        let id = self.sessions.create(session, self.clock.now());
        self.journal.touch(&id);
        id
    }

    /// Ends one session.
    pub fn end_session(&mut self, id: &str) {
        self.sessions.remove(id);
        self.journal.touch(id);
    }

    /// The scan records.
    pub fn scans(&self) -> &Scans {
        &self.scans
    }

    /// The scan records to change, and the key their tickets are signed with.
    pub fn scans_mut(&mut self) -> (&mut Scans, &Key) {
        (&mut self.scans, self.logins.key())
    }

    /// Records a phone's scan if this login was one (`Scans::after_login`):
    /// `confirm` is where a phone's login for a ticket lands.
    pub fn record_scan(&mut self, confirm: &str, login: &Checked, sid: &str) {
        let now = self.clock.now();
        self.scans
            .after_login(self.logins.key(), confirm, login, sid, now);
    }

    /// The pushes from WeChat seen lately.
    pub fn pushes(&mut self) -> &mut SeenPushes {
        &mut self.pushes
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
        let Some(path) = &self.config.session_file else {
            return true;
        };
        let journaled = self.journal.is_on();
        let generation = self.journal.close(&self.sessions);
        match session_file::save_after(path, generation, &self.sessions, &self.logins) {
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
        let mut cookie = self.login_cookie_of(req);
        let fallback = self.default_next();
        let next = logins::fit(next, &fallback);
        let state = self.logins.begin(&mut cookie, next, self.clock.now());
        let site = &self.site;
        let url = self.wechat.authorize_url(
            &site.open_base,
            &site.redirect_uri(),
            self.config.scope,
            &state,
        );
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

    /// The session cookie's id and its live session, if the browser has one.
    /// Every session cookie sent is tried: one planted before ours (a longer
    /// Path, a sibling subdomain without `__Host-`) is not taken blindly.
    pub fn current(&self, req: &Req) -> Option<(String, &Session)> {
        let now = self.clock.now();
        req.cookies_named(self.session_cookie_name)
            .find_map(|id| Some((id.to_string(), self.sessions.get(id, now)?)))
    }

    /// Ends every session the browser sent (logout; a login in that browser).
    pub fn end_sessions(&mut self, req: &Req) {
        let ids: Vec<String> = self.session_ids(req).map(str::to_string).collect();
        for id in ids {
            self.sessions.remove(&id);
            self.journal.touch(&id);
        }
    }

    /// Every session id the browser sent (to end them all at logout or login).
    pub fn session_ids<'a>(&'a self, req: &'a Req) -> impl Iterator<Item = &'a str> + 'a {
        req.cookies_named(self.session_cookie_name)
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
            _ => reply,
        }
    }

    /// Expired sessions and logins go at most once a minute, between requests.
    fn sweep(&mut self) {
        let now = self.clock.now();
        if now >= self.next_sweep {
            self.sessions.sweep(now);
            self.logins.sweep(now);
            self.scans.sweep(now);
            self.next_sweep = now + 60;
        }
    }
}

impl App {
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
                match &err {
                    AppError::Upstream { error, .. } => log::warn(&format!("{path}: {error}")),
                    AppError::Internal(detail) => log::error(&format!("{path}: {detail}")),
                    _ => {}
                }
                Outcome::Reply(with_security_headers(
                    self.error_reply_for(path, &err),
                    false,
                ))
            }
        };
        // The sessions this request changed go to the journal.
        self.journal.flush(&self.sessions);
        self.counters
            .sessions
            .store(self.sessions.len(), Ordering::Relaxed);
        let counters = &self.counters;
        counters.spent.store(self.logins.len(), Ordering::Relaxed);
        counters.scans.store(self.scans.len(), Ordering::Relaxed);
        counters
            .pushes
            .store(self.pushes.acted(), Ordering::Relaxed);
        outcome
    }
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
pub(crate) fn with_security_headers(reply: Reply, is_static: bool) -> Reply {
    let cache = if is_static {
        "public, max-age=3600"
    } else {
        "no-store"
    };
    SECURITY_HEADERS
        .iter()
        .fold(reply, |reply, (name, value)| reply.with_header(name, value))
        .with_header("Cache-Control", cache)
}
