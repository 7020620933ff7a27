//! The one request loop, shared by the app and the simulator. tiny_http's
//! threads read each request; the loop turns it into a `Req` and asks the
//! service for an `Outcome`: a reply, or a blocking call for the worker pool
//! whose result comes back to the loop as an event, where the service
//! finishes the request. The loop never waits: not on WeChat, not on a
//! client (replies are written by each connection's own thread). The only
//! file that names tiny_http.

use crate::log;
use crate::transport::http::{Method, Reply, Req, SECURITY_HEADERS};
use crate::transport::pool::{Finished, Pool, Work};
use socket2::{Domain, Protocol, Socket, Type};
use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest request target we read (path and query), in bytes.
pub const MAX_URL: usize = 8 * 1024;
/// The largest header block we accept, in bytes.
pub const MAX_HEADERS: usize = 16 * 1024;
/// The largest request body we read, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
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

type Resume<S> = Box<dyn FnOnce(&mut S, Box<dyn Any + Send>) -> Outcome<S>>;
type Abandon<S> = Box<dyn FnOnce(&mut S, bool)>;

/// A blocking call (run by a worker) and what to do with its result (run by
/// the loop, with the service's state).
pub struct Job<S> {
    key: Option<String>,
    work: Work,
    resume: Resume<S>,
    abandon: Option<Abandon<S>>,
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

/// How the loop bounds the work it takes on.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Worker threads for blocking calls, at most.
    pub workers: usize,
    /// Calls waiting for a worker, at most; past that a request gets 503.
    pub queue: usize,
    /// Requests of one client address waiting on calls, at most.
    pub per_client: usize,
    /// Peers whose `X-Real-IP` names the client (nginx in front).
    pub trusted_proxies: Vec<IpAddr>,
    /// How long a stop waits for calls under way before answering them 503.
    pub grace: Duration,
}

/// The defaults serve the simulator: its one client is the app (whose
/// workers all come from one address), so no per-client bound. The app's
/// own limits come from its configuration (`Config::limits`).
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            workers: 256,
            queue: 1024,
            per_client: usize::MAX,
            trusted_proxies: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            grace: Duration::from_secs(10),
        }
    }
}

/// How long a client may take over one read or write before its connection
/// is closed, unless configured otherwise (WXAUTH_CLIENT_TIMEOUT).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the loop reads from its one channel.
enum Event {
    /// A request, read within tiny_http's limits on its connection's thread.
    Request(tiny_http::Request),
    /// A worker finished call `id`.
    Done(u64, Finished),
    /// Stop taking requests; wait at most this long for calls under way.
    Stop(Duration),
    /// tiny_http stopped giving requests (its accept thread ended).
    Ended(io::Error),
}

/// A bound listener, not yet serving.
pub struct Listener {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    events: (mpsc::Sender<Event>, mpsc::Receiver<Event>),
    limits: Limits,
}

impl Listener {
    /// Binds `addr` (e.g. "127.0.0.1:0") with the default client timeout.
    pub fn bind(addr: &str) -> io::Result<Listener> {
        Listener::bind_with_timeout(addr, CLIENT_TIMEOUT)
    }

    /// Binds `addr`. tiny_http sets no socket options, so a client that
    /// stops sending or reading would hold its connection thread for ever:
    /// the timeouts (and TCP_NODELAY) go on the listening socket, and Linux
    /// gives every accepted socket the listener's options.
    pub fn bind_with_timeout(addr: &str, timeout: Duration) -> io::Result<Listener> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // A restart can bind again while the old connections sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        // tiny_http writes a reply's head and body separately; with Nagle's
        // algorithm the body then waits for the client's delayed ACK (40 ms
        // on Linux) on every kept-alive request. Inherited like the timeouts.
        socket.set_tcp_nodelay(true)?;
        let server = tiny_http::Server::from_listener_with_headers(
            TcpListener::from(socket),
            None,
            &layer_reply_headers(),
        )
        .map_err(io::Error::other)?;
        Ok(Listener {
            server: Arc::new(server),
            stopping: Arc::new(AtomicBool::new(false)),
            events: mpsc::channel(),
            limits: Limits::default(),
        })
    }

    /// Sets the bounds on blocking calls (the defaults suit the simulator).
    pub fn with_limits(mut self, limits: Limits) -> Listener {
        self.limits = limits;
        self
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server
            .server_addr()
            .to_ip()
            .expect("bound to an IP address")
    }

    /// A handle that stops `run` from another thread (a signal handler).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            events: self.events.0.clone(),
            stopping: Arc::clone(&self.stopping),
            grace: self.limits.grace,
        }
    }

    /// Serves on the calling thread until `Stopper::stop`: requests that
    /// come meanwhile get 503, calls under way get up to the grace period to
    /// finish, then this returns Ok. An Err means tiny_http stopped accepting
    /// connections on its own: the process should exit non-zero so that its
    /// supervisor restarts it.
    pub fn run<S: Service>(self, service: &mut S) -> Result<(), String> {
        let ended = serve(self.server, self.events, &self.limits, service);
        match ended {
            Some(why) if !self.stopping.load(Ordering::SeqCst) => {
                Err(format!("the listener stopped accepting connections: {why}"))
            }
            _ => Ok(()),
        }
    }

    /// Serves on a new thread; dropping the handle stops it at once.
    pub fn spawn<S: Service + Send>(self, mut service: S) -> Running {
        let addr = self.local_addr();
        let stop = self.events.0.clone();
        let thread = std::thread::Builder::new()
            .name(service.name().to_string())
            .spawn(move || drop(serve(self.server, self.events, &self.limits, &mut service)))
            .expect("spawning the server thread at start-up");
        Running {
            stop,
            thread: Some(thread),
            addr,
        }
    }
}

/// Stops a `Listener::run` loop.
pub struct Stopper {
    events: mpsc::Sender<Event>,
    stopping: Arc<AtomicBool>,
    grace: Duration,
}

impl Stopper {
    /// Asks the loop to stop: no new request is taken, calls under way get
    /// the grace period to finish.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.events.send(Event::Stop(self.grace));
    }
}

/// A loop running on its own thread. Dropping it stops the loop and waits.
pub struct Running {
    stop: mpsc::Sender<Event>,
    thread: Option<JoinHandle<()>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Running {
    /// Stops the loop and waits for it, at most 10 s: a loop that cannot
    /// stop (a bug) is left behind rather than hanging its owner.
    fn drop(&mut self) {
        let _ = self.stop.send(Event::Stop(Duration::ZERO));
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            log::error("a server loop did not stop within 10 s; left running");
        }
    }
}

/// The headers of the replies tiny_http writes on its own (a request it
/// refuses: 400, 408, 413, 414, 417, 431, 501, 505; a connection it has no
/// thread for: 503), which never reach a `Service`: the same security
/// headers as every other reply, and never cached.
fn layer_reply_headers() -> Vec<tiny_http::Header> {
    SECURITY_HEADERS
        .iter()
        .chain([("Cache-Control", "no-store")].iter())
        .filter_map(|(name, value)| tiny_http::Header::from_bytes(*name, *value).ok())
        .collect()
}

/// A request the loop holds while its call is under way.
struct Parked {
    request: tiny_http::Request,
    req: Req,
    started: Instant,
}

/// A request parked on its call, and what to do when the call comes back
/// (or never does).
struct Waiting<S> {
    parked: Parked,
    resume: Resume<S>,
    key: Option<String>,
    abandon: Option<Abandon<S>>,
}

/// The loop's own state: what is parked, on which call, for whom.
struct Loop<'a, S: Service> {
    service: &'a mut S,
    limits: &'a Limits,
    pool: Pool,
    /// Call id → the request waiting for it and how to finish it.
    waiting: HashMap<u64, Waiting<S>>,
    /// Key → the call under way that holds it.
    keys: HashMap<String, u64>,
    /// Key → requests waiting for that call, to be handled again after it.
    joined: HashMap<String, Vec<Parked>>,
    /// Client address → its requests parked (waiting or joined).
    per_client: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// Serves until stopped or until tiny_http has no more requests to give
/// (then returns why).
fn serve<S: Service>(
    server: Arc<tiny_http::Server>,
    (events_tx, events): (mpsc::Sender<Event>, mpsc::Receiver<Event>),
    limits: &Limits,
    service: &mut S,
) -> Option<io::Error> {
    let name = service.name();
    // Requests come straight from tiny_http's connection threads into the
    // loop's one channel, where the workers' results and the stop arrive too
    // (vendor/tiny_http/PATCHES.md). Sent after the loop is gone, a request
    // is dropped and tiny_http answers it 500 on its connection's thread.
    let deliver = events_tx.clone();
    server.deliver_to(move |request| {
        let _ = deliver.send(match request {
            Ok(request) => Event::Request(request),
            Err(why) => Event::Ended(why),
        });
    });
    // Workers send on the same channel (`Sender` is `Sync`: no lock).
    let report = Arc::new(move |id, finished| {
        let _ = events_tx.send(Event::Done(id, finished));
    });
    let mut state = Loop {
        service,
        limits,
        pool: Pool::new(name, limits.workers, limits.queue, report),
        waiting: HashMap::new(),
        keys: HashMap::new(),
        joined: HashMap::new(),
        per_client: HashMap::new(),
        next_id: 0,
    };
    state.run(&events)
}

impl<S: Service> Loop<'_, S> {
    fn run(&mut self, events: &mpsc::Receiver<Event>) -> Option<io::Error> {
        let mut deadline: Option<Instant> = None;
        loop {
            let event = match deadline {
                None => match events.recv() {
                    Ok(event) => event,
                    Err(_) => return None,
                },
                Some(deadline) => {
                    if self.waiting.is_empty() && self.joined.is_empty() {
                        return None;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    match events.recv_timeout(left) {
                        Ok(event) => event,
                        Err(_) => {
                            self.give_up();
                            return None;
                        }
                    }
                }
            };
            match event {
                Event::Request(request) if deadline.is_some() => self.refuse(request, 503),
                Event::Request(request) => self.on_request(request),
                Event::Done(id, finished) => self.on_done(id, finished),
                Event::Stop(grace) => {
                    let until = Instant::now() + grace;
                    deadline = Some(deadline.map_or(until, |d| d.min(until)));
                }
                Event::Ended(why) if deadline.is_none() => {
                    self.give_up();
                    return Some(why);
                }
                Event::Ended(_) => {}
            }
        }
    }

    fn on_request(&mut self, mut request: tiny_http::Request) {
        let started = Instant::now();
        let method = Method::parse(request.method().as_str());
        match read_request(&mut request, method) {
            Ok(mut req) => {
                req.client = client_address(&req, &self.limits.trusted_proxies);
                let outcome = self.guarded(|service| service.handle(&req));
                let parked = Parked {
                    request,
                    req,
                    started,
                };
                self.settle(parked, outcome, false);
            }
            Err(status) => {
                let reply = self.service.error_reply(status);
                let path = request.url().split('?').next().unwrap_or("").to_string();
                answer(self.service.name(), request, method, &path, started, reply);
            }
        }
    }

    /// Runs service code on the loop; a panic becomes a 500 and the loop goes on.
    fn guarded(&mut self, f: impl FnOnce(&mut S) -> Outcome<S>) -> Outcome<S> {
        match catch_unwind(AssertUnwindSafe(|| f(self.service))) {
            Ok(outcome) => outcome,
            Err(_) => {
                log::error(&format!("{}: handler panicked", self.service.name()));
                Outcome::Reply(self.service.error_reply(500))
            }
        }
    }

    /// Carries out an outcome for a request. `counted`: the request is
    /// already counted against its client (it was parked before).
    fn settle(&mut self, parked: Parked, outcome: Outcome<S>, counted: bool) {
        let client = parked.req.client;
        match outcome {
            Outcome::Reply(reply) => {
                if counted {
                    self.uncount(client);
                }
                self.reply(parked, reply);
            }
            Outcome::Wait(job) => {
                if !counted && self.client_is_full(client) {
                    log::warn(&format!(
                        "{}: {} has {} requests waiting on calls; 503",
                        self.service.name(),
                        client.map_or("?".to_string(), |c| c.to_string()),
                        self.limits.per_client
                    ));
                    return self.refuse_job(parked, job.abandon, counted);
                }
                // Another call holds the key: this one is dropped unstarted
                // (not abandoned: the request is handled again after it).
                if let Some(key) = job.key.as_ref().filter(|k| self.keys.contains_key(*k)) {
                    let key = key.clone();
                    self.park_joined(parked, key, counted);
                    return;
                }
                if self.pool.is_full() {
                    log::warn(&format!(
                        "{}: {} calls under way or queued; 503",
                        self.service.name(),
                        self.pool.in_pool()
                    ));
                    return self.refuse_job(parked, job.abandon, counted);
                }
                let id = self.next_id;
                self.next_id += 1;
                if !self.pool.submit(id, job.work) {
                    return self.refuse_job(parked, job.abandon, counted);
                }
                if !counted {
                    self.count(client);
                }
                if let Some(key) = &job.key {
                    self.keys.insert(key.clone(), id);
                }
                let waiting = Waiting {
                    parked,
                    resume: job.resume,
                    key: job.key,
                    abandon: job.abandon,
                };
                self.waiting.insert(id, waiting);
            }
            Outcome::Join(key) if self.keys.contains_key(&key) => {
                if !counted && self.client_is_full(client) {
                    return self.busy(parked);
                }
                self.park_joined(parked, key, counted);
            }
            Outcome::Join(_) => {
                if counted {
                    self.uncount(client);
                }
                self.busy(parked);
            }
        }
    }

    /// No room for a job: its work never starts; 503.
    fn refuse_job(&mut self, parked: Parked, abandon: Option<Abandon<S>>, counted: bool) {
        if counted {
            self.uncount(parked.req.client);
        }
        self.abandon(abandon, false);
        self.busy(parked);
    }

    /// Runs a job's `on_abandon` (a panic there is logged, the loop goes on).
    fn abandon(&mut self, abandon: Option<Abandon<S>>, ran: bool) {
        if let Some(abandon) = abandon {
            let service = &mut *self.service;
            if catch_unwind(AssertUnwindSafe(|| abandon(service, ran))).is_err() {
                log::error(&format!(
                    "{}: abandoning a call panicked",
                    self.service.name()
                ));
            }
        }
    }

    fn park_joined(&mut self, parked: Parked, key: String, counted: bool) {
        if !counted {
            self.count(parked.req.client);
        }
        self.joined.entry(key).or_default().push(parked);
    }

    fn on_done(&mut self, id: u64, finished: Finished) {
        let Some(Waiting {
            parked,
            resume,
            key,
            abandon,
        }) = self.waiting.remove(&id)
        else {
            return;
        };
        self.pool.finished();
        // The key is free before the continuation runs: it may start a new
        // call under the same key, which the joined requests then wait for.
        let joined = key.and_then(|key| {
            self.keys.remove(&key);
            self.joined.remove(&key)
        });
        let outcome = match finished {
            Ok(result) => self.guarded(|service| resume(service, result)),
            Err(()) => {
                log::error(&format!(
                    "{}: a call panicked on {}",
                    self.service.name(),
                    parked.req.path
                ));
                self.abandon(abandon, true);
                Outcome::Reply(self.service.error_reply(500))
            }
        };
        self.settle(parked, outcome, true);
        for parked in joined.into_iter().flatten() {
            self.uncount(parked.req.client);
            let outcome = self.guarded(|service| service.handle(&parked.req));
            self.settle(parked, outcome, false);
        }
    }

    fn client_is_full(&self, client: Option<IpAddr>) -> bool {
        client.is_some_and(|c| {
            self.per_client.get(&c).copied().unwrap_or(0) >= self.limits.per_client
        })
    }

    fn count(&mut self, client: Option<IpAddr>) {
        if let Some(c) = client {
            *self.per_client.entry(c).or_insert(0) += 1;
        }
    }

    fn uncount(&mut self, client: Option<IpAddr>) {
        if let Some(c) = client {
            if let Some(n) = self.per_client.get_mut(&c) {
                *n -= 1;
                if *n == 0 {
                    self.per_client.remove(&c);
                }
            }
        }
    }

    fn busy(&mut self, parked: Parked) {
        let reply = self
            .service
            .error_reply(503)
            .with_header("Retry-After", "1");
        self.reply(parked, reply);
    }

    fn refuse(&mut self, request: tiny_http::Request, status: u16) {
        let method = Method::parse(request.method().as_str());
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let reply = self
            .service
            .error_reply(status)
            .with_header("Retry-After", "5");
        answer(
            self.service.name(),
            request,
            method,
            &path,
            Instant::now(),
            reply,
        );
    }

    fn reply(&mut self, parked: Parked, reply: Reply) {
        let Parked {
            request,
            req,
            started,
        } = parked;
        answer(
            self.service.name(),
            request,
            req.method,
            &req.path,
            started,
            reply,
        );
    }

    /// The stop's grace period is over (or tiny_http ended): whatever still
    /// waits on a call is answered 503. The calls' results are dropped.
    fn give_up(&mut self) {
        let waiting: Vec<Waiting<S>> = self.waiting.drain().map(|(_, w)| w).collect();
        let mut parked_all = Vec::new();
        for waiting in waiting {
            self.abandon(waiting.abandon, true);
            parked_all.push(waiting.parked);
        }
        let joined: Vec<Parked> = self.joined.drain().flat_map(|(_, v)| v).collect();
        for parked in parked_all.into_iter().chain(joined) {
            log::warn(&format!(
                "{}: stopping; {} still waited on a call: 503",
                self.service.name(),
                parked.req.path
            ));
            self.busy(parked);
        }
        self.keys.clear();
        self.per_client.clear();
    }
}

/// Hands the reply to the connection's thread (vendor/tiny_http/PATCHES.md:
/// it writes it, so this never blocks) and writes the access line.
fn answer(
    name: &str,
    request: tiny_http::Request,
    method: Method,
    path: &str,
    started: Instant,
    reply: Reply,
) {
    let status = reply.status;
    if let Err(e) = request.respond(to_response(reply)) {
        log::debug(&format!("{name}: handing the reply over failed: {e}"));
    }
    log::access(name, method.as_str(), path, status, started.elapsed());
}

/// Who sent the request: the socket's peer, or, when the peer is a trusted
/// proxy (nginx on loopback), the address it puts in X-Real-IP.
fn client_address(req: &Req, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    match req.header("x-real-ip").map(|v| v.trim().parse::<IpAddr>()) {
        Some(Ok(ip)) => Some(ip),
        _ => Some(peer),
    }
}

/// Reads the request within the limits; a broken limit is the error status.
///
/// Only a body tiny_http has already read on the connection's own thread is
/// taken: reading one here could block the loop on a client that stalls.
/// tiny_http reads every body it hands over (at most 64 KiB, with a
/// `Content-Length` or chunked, after its `100 Continue` when one was asked
/// for) and refuses larger ones itself (see vendor/tiny_http/PATCHES.md); a
/// chunked body arrives decoded, with its decoded length.
fn read_request(request: &mut tiny_http::Request, method: Method) -> Result<Req, u16> {
    let declared = request.body_length();
    let url = request.url().to_string();
    let buffered = declared.is_some_and(|n| n <= MAX_BODY);
    if url.len() > MAX_URL {
        return Err(414);
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
        .sum();
    if header_bytes > MAX_HEADERS {
        return Err(431);
    }
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(413);
    }
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let mut body = Vec::new();
    if buffered && matches!(method, Method::Post | Method::Put | Method::Patch) {
        // Already in memory: this read cannot block.
        if request.as_reader().read_to_end(&mut body).is_err() {
            return Err(400);
        }
    }
    let mut req = Req::new(method, &url, headers, body);
    req.peer = request.remote_addr().copied();
    Ok(req)
}

type Response = tiny_http::Response<io::Cursor<Vec<u8>>>;

fn to_response(reply: Reply) -> Response {
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    for (name, value) in &reply.headers {
        // A value with CR or LF would split the header: tiny_http writes it raw.
        if value.contains(['\r', '\n']) {
            continue;
        }
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Mutex;

    /// A service whose calls panic (`/panic`) or take a while (`/slow`),
    /// recording how each abandoned call was abandoned.
    struct Calls {
        abandoned: Arc<Mutex<Vec<bool>>>,
    }

    impl Service for Calls {
        fn name(&self) -> &'static str {
            "test"
        }

        fn handle(&mut self, req: &Req) -> Outcome<Calls> {
            let record = Arc::clone(&self.abandoned);
            let job = match req.path.as_str() {
                "/panic" => Job::new(
                    || panic!("a bug in a call"),
                    |_: &mut Calls, ()| Reply::text(200, "never").into(),
                ),
                "/slow" => Job::new(
                    || std::thread::sleep(Duration::from_millis(800)),
                    |_: &mut Calls, ()| Reply::text(200, "slow").into(),
                ),
                _ => return Reply::text(200, "ok").into(),
            };
            Outcome::Wait(job.on_abandon(move |_, ran| record.lock().unwrap().push(ran)))
        }

        fn error_reply(&mut self, status: u16) -> Reply {
            Reply::text(status, "error")
        }
    }

    fn status(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.lines().next().unwrap_or("").to_string()
    }

    #[test]
    fn a_call_that_panics_or_finds_no_room_is_abandoned_and_answered() {
        let abandoned = Arc::new(Mutex::new(Vec::new()));
        let limits = Limits {
            workers: 1,
            queue: 0,
            ..Limits::default()
        };
        let listener = Listener::bind("127.0.0.1:0").unwrap().with_limits(limits);
        let addr = listener.local_addr();
        let _running = listener.spawn(Calls {
            abandoned: Arc::clone(&abandoned),
        });
        assert_eq!(status(addr, "/panic"), "HTTP/1.1 500 Internal Server Error");
        assert_eq!(*abandoned.lock().unwrap(), [true], "its work may have run");
        // One worker, no queue: a second call while the first runs gets 503.
        let slow = std::thread::spawn(move || status(addr, "/slow"));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(status(addr, "/slow"), "HTTP/1.1 503 Service Unavailable");
        assert_eq!(
            *abandoned.lock().unwrap(),
            [true, false],
            "its work never began"
        );
        assert_eq!(slow.join().unwrap(), "HTTP/1.1 200 OK");
        assert_eq!(status(addr, "/"), "HTTP/1.1 200 OK");
    }
}
