//! The app: its state (configuration, sessions, logins under way, the WeChat
//! client, templates, clock) and the `Service` the request loop calls. Every
//! error becomes a page here, and every reply gets the security headers.

use crate::clock::Clock;
use crate::config::Config;
use crate::error::AppError;
use crate::http::{Cookie, Reply, Req, SECURITY_HEADERS};
use crate::mp::SeenPushes;
use crate::scan::Tickets;
use crate::server::{Listener, Running, Service};
use crate::session::{LoginStates, Session, SessionStore};
use crate::wechat::{WechatClient, WechatError};
use crate::{log, persist, render, routes};
use minijinja::context;
use minijinja::Environment;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The cookie holding the session id.
pub const SESSION_COOKIE: &str = "wxauth_session";
/// The cookie naming the browser a login began in (binds the OAuth state to it).
pub const BROWSER_COOKIE: &str = "wxauth_login";
/// Logins under way kept at most; a /login flood evicts the oldest.
const MAX_LOGINS: usize = 10_000;

/// Everything a handler may read or change. Owned by the single loop: no locks.
pub struct App {
    pub config: Config,
    pub sessions: SessionStore,
    pub logins: LoginStates,
    pub wechat: WechatClient,
    pub templates: Environment<'static>,
    pub clock: Clock,
    /// Pushes from WeChat seen lately, to recognise its retries.
    pub pushes: SeenPushes,
    /// Scan-to-login tickets under way (desktop browsers).
    pub tickets: Tickets,
    next_sweep: i64,
    counters: Arc<Counters>,
}

/// How much the app holds, published by the loop after every request so
/// that other threads can read it without a lock.
#[derive(Debug, Default)]
struct Counters {
    sessions: AtomicUsize,
    logins: AtomicUsize,
}

/// A reading of `Counters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Live sessions stored.
    pub sessions: usize,
    /// Logins under way (OAuth states waiting for their callback).
    pub logins: usize,
}

impl App {
    /// Builds the app and restores saved sessions; fails only on a broken
    /// template override. A bad session file is reported and skipped: the
    /// server always starts.
    pub fn new(config: Config, clock: Clock) -> Result<App, String> {
        let mut templates = render::environment(config.templates.as_deref())?;
        templates.add_global("demo", config.demo);
        let sim_url = if config.demo {
            config.open_base.clone()
        } else {
            String::new()
        };
        templates.add_global("sim_url", sim_url);
        let mut app = App {
            sessions: SessionStore::new(config.session_ttl, config.max_sessions),
            logins: LoginStates::new(MAX_LOGINS),
            wechat: WechatClient::new(&config),
            templates,
            clock,
            pushes: SeenPushes::default(),
            tickets: Tickets::default(),
            next_sweep: 0,
            counters: Arc::default(),
            config,
        };
        if let Some(path) = app.config.session_file.clone() {
            let now = app.clock.now();
            match persist::load(&path, &mut app.sessions, &mut app.logins, now) {
                Ok(n) => log::info(&format!("restored {n} sessions from {}", path.display())),
                Err(e) => log::error(&format!("session file: {e}; starting with no sessions")),
            }
        }
        Ok(app)
    }

    /// Writes the sessions to WXAUTH_SESSION_FILE, if one is configured.
    /// Called once, after the loop has stopped.
    pub fn save_sessions(&self) {
        let Some(path) = &self.config.session_file else {
            return;
        };
        match persist::save(path, &self.sessions, &self.logins) {
            Ok(n) => log::info(&format!("saved {n} sessions to {}", path.display())),
            Err(e) => log::error(&format!("cannot save sessions to {}: {e}", path.display())),
        }
    }

    /// Renders a page. `demo` and `sim_url` are template globals (set once in
    /// `new`); contexts are minijinja values built directly, because going
    /// through serde_json or merging maps cost more than the rendering.
    pub fn page(&self, name: &str, ctx: minijinja::Value) -> Result<Reply, AppError> {
        render::render(&self.templates, name, ctx)
            .map(Reply::html)
            .map_err(AppError::Internal)
    }

    /// The session cookie's id and its live session, if the browser has one.
    pub fn current(&self, req: &Req) -> Option<(String, &Session)> {
        let id = req.cookie(SESSION_COOKIE)?;
        let session = self.sessions.get(id, self.clock.now())?;
        Some((id.to_string(), session))
    }

    /// A cookie with the app's fixed attributes (Secure when PUBLIC_URL is https).
    pub fn cookie(&self, name: &'static str, value: &str, max_age: u64) -> Cookie {
        Cookie {
            name,
            value: value.to_string(),
            max_age,
            secure: self.config.secure_cookies(),
        }
    }

    /// The session cookie for `id`.
    pub fn session_cookie(&self, id: &str) -> Cookie {
        self.cookie(SESSION_COOKIE, id, self.config.session_ttl)
    }

    fn error_reply_for(&self, req_path: &str, err: &AppError) -> Reply {
        let status = err.status();
        let reply = if req_path.starts_with("/api/") {
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
            let ctx = context! {
                status, kind => err.kind(), retry_url => err.retry_url(), errcode, errmsg, openid,
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
            self.tickets.sweep(now);
            self.next_sweep = now + 60;
        }
    }
}

impl Service for App {
    fn name(&self) -> &'static str {
        "app"
    }

    fn handle(&mut self, req: &Req) -> Reply {
        self.sweep();
        let reply = match routes::dispatch(self, req) {
            Ok(reply) => reply,
            Err(err) => {
                match &err {
                    AppError::Upstream { error, .. } => {
                        log::warn(&format!("{}: {error}", req.path))
                    }
                    AppError::Internal(detail) => log::error(&format!("{}: {detail}", req.path)),
                    _ => {}
                }
                self.error_reply_for(&req.path, &err)
            }
        };
        self.counters
            .sessions
            .store(self.sessions.len(), Ordering::Relaxed);
        self.counters
            .logins
            .store(self.logins.len(), Ordering::Relaxed);
        with_security_headers(reply, req.path.starts_with("/static/"))
    }

    fn error_reply(&mut self, status: u16) -> Reply {
        let err = match status {
            400 => AppError::BadRequest,
            413 | 414 | 431 => AppError::TooLarge(status),
            _ => AppError::Internal(format!("status {status}")),
        };
        with_security_headers(self.error_reply_for("", &err), false)
    }
}

/// Headers on every reply (`http::SECURITY_HEADERS`), and how long it may be cached.
fn with_security_headers(reply: Reply, is_static: bool) -> Reply {
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

/// The app serving on its own thread (tests, embedding). Dropping it stops it.
pub struct AppHandle {
    _running: Running,
    /// Where the app listens.
    pub addr: SocketAddr,
    /// The app's clock; `advance` it to expire tokens and sessions.
    pub clock: Clock,
    counters: Arc<Counters>,
}

impl AppHandle {
    /// How many sessions and logins the app holds, as of its last request.
    pub fn stats(&self) -> Stats {
        Stats {
            sessions: self.counters.sessions.load(Ordering::Relaxed),
            logins: self.counters.logins.load(Ordering::Relaxed),
        }
    }
}

/// Starts the app on `listener` on its own thread.
pub fn start(listener: Listener, config: Config) -> Result<AppHandle, String> {
    let clock = Clock::new();
    let app = App::new(config, clock.clone())?;
    let counters = Arc::clone(&app.counters);
    let addr = listener.local_addr();
    Ok(AppHandle {
        _running: listener.spawn(app),
        addr,
        clock,
        counters,
    })
}
