//! The one request loop, shared by the app and the simulator. tiny_http's
//! threads read each request; the loop turns it into a `Req` and asks the
//! service for an `Outcome`: a reply, or a blocking call for the worker pool
//! whose result comes back to the loop as an event, where the service
//! finishes the request. The loop never waits: not on WeChat, not on a
//! client (replies are written by each connection's own thread). Requests
//! come as tiny_http's and leave as `Req`; replies go back as tiny_http's.

use crate::log;
use crate::metrics;
use crate::transport::http::{Method, Reply, Req};
use crate::transport::limits::{client_address, Limits, MAX_BODY, MAX_HEADERS, MAX_URL};
use crate::transport::pool::{Finished, Pool};
use crate::transport::service::{Abandon, Outcome, Resume, Service};
use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What the loop reads from its one channel.
pub(super) enum Event {
    /// A request, read within tiny_http's limits on its connection's thread.
    Request(tiny_http::Request),
    /// A worker finished call `id`.
    Done(u64, Finished),
    /// Stop taking requests; wait at most this long for calls under way.
    Stop(Duration),
    /// tiny_http stopped giving requests (its accept thread ended).
    Ended(io::Error),
    /// An operator's command for the service (`Commander`), handled on the
    /// loop between requests, like one.
    Command(Box<dyn Any + Send>),
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
    /// This service's requests are counted (metrics.rs): the app's.
    counted: bool,
}

/// Serves until stopped or until tiny_http has no more requests to give
/// (then returns why).
pub(super) fn serve<S: Service>(
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
    let routes = service.metric_routes();
    if let Some(routes) = routes {
        metrics::app_started(routes);
    }
    let mut state = Loop {
        service,
        limits,
        pool: Pool::new(name, limits.workers, limits.queue, report).counted(routes.is_some()),
        waiting: HashMap::new(),
        keys: HashMap::new(),
        joined: HashMap::new(),
        per_client: HashMap::new(),
        next_id: 0,
        counted: routes.is_some(),
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
                Event::Command(command) => {
                    let service = &mut *self.service;
                    if catch_unwind(AssertUnwindSafe(|| service.command(command))).is_err() {
                        log::error(&format!("{}: a command panicked", self.service.name()));
                    }
                }
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
                let route = self.metric_route(&path);
                answer(
                    self.service.name(),
                    request,
                    (method, &path, route),
                    started,
                    reply,
                );
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
        let route = self.metric_route(&path);
        answer(
            self.service.name(),
            request,
            (method, &path, route),
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
        let route = self.metric_route(&req.path);
        answer(
            self.service.name(),
            request,
            (req.method, &req.path, route),
            started,
            reply,
        );
    }

    /// The route the metrics count `path` under; None when this service
    /// is not counted.
    fn metric_route(&self, path: &str) -> Option<usize> {
        self.counted.then(|| self.service.metric_route(path))
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
/// it writes it, so this never blocks), writes the access line and counts
/// the request under its route (when the service is counted).
fn answer(
    name: &str,
    request: tiny_http::Request,
    (method, path, route): (Method, &str, Option<usize>),
    started: Instant,
    reply: Reply,
) {
    let status = reply.status;
    if let Err(e) = request.respond(to_response(reply)) {
        log::debug(&format!("{name}: handing the reply over failed: {e}"));
    }
    let elapsed = started.elapsed();
    log::access(name, method.as_str(), path, status, elapsed);
    if let Some(route) = route {
        metrics::record_request(route, status, elapsed);
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
    use crate::transport::listener::Listener;
    use crate::transport::service::Job;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
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
