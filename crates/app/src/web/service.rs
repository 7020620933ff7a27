//! The `Service` the request loop calls: each request is routed
//! (routes.rs) and its handler's step finished into a reply (app.rs). The
//! top of the web layer: it uses the state and the route table, and nothing
//! below names it.

use crate::clock::Clock;
use crate::config::Config;
use crate::transport::http::{Reply, Req};
use crate::transport::listener::{Commander, Listener, Running};
use crate::transport::service::{Outcome, Service};
use crate::web::app::{with_security_headers, App, Counters, Stats};
use crate::web::error::AppError;
use crate::web::routes;
use std::any::Any;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};

/// What an operator tells the running app (`Commander::send`), handled on
/// the loop between requests.
pub enum AppCommand {
    /// SIGHUP: WXAUTH_ALLOW's file, read again and valid.
    Allow(HashSet<String>),
    /// `wxauth revoke WHO`: end every session of the user whose openid or
    /// unionid is WHO; the answer, one line, goes back on `reply`.
    Revoke {
        who: String,
        reply: mpsc::Sender<String>,
    },
}

impl Service for App {
    fn name(&self) -> &'static str {
        "app"
    }

    fn handle(&mut self, req: &Req) -> Outcome<App> {
        self.start(req);
        let step = routes::dispatch(self, req);
        self.finish(&req.path, step)
    }

    fn command(&mut self, command: Box<dyn Any + Send>) {
        match command.downcast::<AppCommand>().map(|c| *c) {
            Ok(AppCommand::Allow(allow)) => self.set_allow(allow),
            Ok(AppCommand::Revoke { who, reply }) => self.revoke(who, reply),
            Err(_) => crate::log::error("app: a command of an unknown kind"),
        }
    }

    fn error_reply(&mut self, status: u16) -> Reply {
        let err = match status {
            400 => AppError::BadRequest,
            413 | 414 | 431 => AppError::TooLarge(status),
            503 => AppError::Busy,
            _ => AppError::Internal(format!("status {status}")),
        };
        self.start_without_request();
        with_security_headers(self.error_reply_for("", &err), false)
    }

    fn metric_routes(&self) -> Option<&'static [&'static str]> {
        Some(routes::paths())
    }

    fn metric_route(&self, path: &str) -> usize {
        routes::metric_route(self, path)
    }
}

/// The app serving on its own thread (tests, embedding). Dropping it stops it.
pub struct AppHandle {
    _running: Running,
    /// Where the app listens.
    pub addr: SocketAddr,
    /// The app's clock; `advance` it to expire tokens and sessions.
    pub clock: Clock,
    counters: Arc<Counters>,
    commander: Commander,
}

impl AppHandle {
    /// What the app holds, as of its last request.
    pub fn stats(&self) -> Stats {
        self.counters.read()
    }

    /// Gives the app a command, as SIGHUP and the control socket do.
    pub fn command(&self, command: AppCommand) -> bool {
        self.commander.send(Box::new(command))
    }
}

/// Starts the app on `listener` on its own thread.
pub fn start(listener: Listener, config: Config) -> Result<AppHandle, String> {
    let clock = Clock::new();
    let app = App::new(config, clock.clone())?;
    let counters = app.counters();
    let addr = listener.local_addr();
    let listener = listener.with_limits(app.config().limits());
    let commander = listener.commander();
    Ok(AppHandle {
        commander,
        _running: listener.spawn(app),
        addr,
        clock,
        counters,
    })
}
