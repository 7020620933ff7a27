//! What the loop serves and what a handler answers: `Service` (the app, the
//! simulator), `Outcome` (a reply now, a blocking call for a worker, or a
//! wait for a call already under way) and `Job` (the call and its
//! continuation).

use crate::transport::http::{Reply, Req};
use crate::transport::pool::Work;
use std::any::Any;

/// Something the loop serves: the app or the simulator. It owns its state,
/// and only the loop's thread ever touches it, so there are no locks.
pub trait Service: 'static {
    /// A short name for the access log and thread names ("app", "sim").
    fn name(&self) -> &'static str;
    /// Answers one request, or hands back a call for a worker (`Outcome::Wait`).
    /// Runs on the loop: it must not block on anything (a socket, WeChat, a sleep).
    fn handle(&mut self, req: &Req) -> Outcome<Self>
    where
        Self: Sized;
    /// The answer when a handler panicked, a request broke a limit, or the
    /// loop cannot take a call (503: busy, or stopping). Status 4xx or 5xx.
    fn error_reply(&mut self, status: u16) -> Reply;
    /// An operator's command (`Commander::send`: a reloaded allow-list, a
    /// revocation), run on the loop like a request. Must not block either.
    fn command(&mut self, command: Box<dyn Any + Send>) {
        let _ = command;
    }
    /// The route table's paths, for the service whose requests and calls
    /// the metrics count (the app; metrics.rs). None, the default: this
    /// service is not counted (the simulator).
    fn metric_routes(&self) -> Option<&'static [&'static str]> {
        None
    }
    /// Which entry of `metric_routes` answers `path` (a request's path, the
    /// prefix included), or `metrics::STATIC` or `metrics::OTHER`.
    fn metric_route(&self, _path: &str) -> usize {
        crate::metrics::OTHER
    }
}

/// What a handler (or a call's continuation) decided.
pub enum Outcome<S> {
    /// Answer now.
    Reply(Reply),
    /// Run a blocking call on a worker, then continue on the loop.
    Wait(Job<S>),
    /// Park this request until the call holding `key` is finished, then
    /// handle it again from the start (a reload joining a login's exchange).
    /// With no such call under way it is answered 503.
    Join(String),
}

impl<S> From<Reply> for Outcome<S> {
    fn from(reply: Reply) -> Outcome<S> {
        Outcome::Reply(reply)
    }
}

pub(super) type Resume<S> = Box<dyn FnOnce(&mut S, Box<dyn Any + Send>) -> Outcome<S>>;
pub(super) type Abandon<S> = Box<dyn FnOnce(&mut S, bool)>;

/// A blocking call (run by a worker) and what to do with its result (run by
/// the loop, with the service's state).
pub struct Job<S> {
    pub(super) key: Option<String>,
    pub(super) work: Work,
    pub(super) resume: Resume<S>,
    pub(super) abandon: Option<Abandon<S>>,
}

impl<S: 'static> Job<S> {
    /// `work` runs on a worker thread and may block (within its own
    /// timeouts); `resume` gets its result back on the loop.
    pub fn new<T: Send + 'static>(
        work: impl FnOnce() -> T + Send + 'static,
        resume: impl FnOnce(&mut S, T) -> Outcome<S> + 'static,
    ) -> Job<S> {
        Job {
            key: None,
            abandon: None,
            work: Box::new(move || Box::new(work()) as Box<dyn Any + Send>),
            resume: Box::new(move |service, result| match result.downcast::<T>() {
                Ok(result) => resume(service, *result),
                Err(_) => unreachable!("a job's result has the type its work returns"),
            }),
        }
    }

    /// Names the call: while it is under way, another request whose handler
    /// asks for a call with the same key waits for this one instead (and is
    /// then handled again) rather than making a second call.
    pub fn keyed(mut self, key: String) -> Job<S> {
        self.key = Some(key);
        self
    }

    /// What to undo when the continuation will never run: `f(service,
    /// false)` when the job was refused before its work began (503: no room),
    /// `f(service, true)` when its work may have run (it panicked, or the
    /// loop stopped before it came back). Runs on the loop.
    pub fn on_abandon(mut self, f: impl FnOnce(&mut S, bool) + 'static) -> Job<S> {
        self.abandon = Some(Box::new(f));
        self
    }
}
