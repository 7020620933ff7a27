//! The one request loop, shared by the app and the simulator: reads each
//! request within size limits into a `Req`, asks the service for a `Reply`
//! (a panic becomes a 500 and the loop goes on), writes it, logs one line.
//! The only file that names tiny_http.

use crate::http::{Method, Reply, Req, SECURITY_HEADERS};
use crate::log;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
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

/// Something the loop serves: the app or the simulator.
pub trait Service {
    /// A short name for the access log ("app", "sim").
    fn name(&self) -> &'static str;
    /// Answers one request. Must not block longer than an upstream timeout.
    fn handle(&mut self, req: &Req) -> Reply;
    /// The answer when `handle` panicked or a request broke a limit (status 4xx/5xx).
    fn error_reply(&mut self, status: u16) -> Reply;
}

/// How long a client may take over one read or write before its connection
/// is closed, unless configured otherwise (WXAUTH_CLIENT_TIMEOUT).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listener, not yet serving.
pub struct Listener {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
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
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server
            .server_addr()
            .to_ip()
            .expect("bound to an IP address")
    }

    /// A handle that ends `run` from another thread (a signal handler).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            server: Arc::clone(&self.server),
            stopping: Arc::clone(&self.stopping),
        }
    }

    /// Serves on the calling thread until `Stopper::stop`: the request in
    /// hand is finished, then this returns Ok. An Err means tiny_http
    /// stopped accepting connections on its own: the process should exit
    /// non-zero so that its supervisor restarts it.
    pub fn run(self, service: &mut dyn Service) -> Result<(), String> {
        let ended = serve(&self.server, service);
        if self.stopping.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(format!(
                "the listener stopped accepting connections: {ended}"
            ))
        }
    }

    /// Serves on a new thread; dropping the handle stops it.
    pub fn spawn<S: Service + Send + 'static>(self, mut service: S) -> Running {
        let addr = self.local_addr();
        let loop_server = Arc::clone(&self.server);
        let thread = std::thread::Builder::new()
            .name(service.name().to_string())
            .spawn(move || drop(serve(&loop_server, &mut service)))
            .expect("spawning the server thread at start-up");
        Running {
            server: self.server,
            thread: Some(thread),
            addr,
        }
    }
}

/// Stops a `Listener::run` loop: no new request is taken after the current one.
#[derive(Clone)]
pub struct Stopper {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
}

impl Stopper {
    /// Asks the loop to stop.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
    }
}

/// A loop running on its own thread. Dropping it stops the loop and waits.
pub struct Running {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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

/// Serves until tiny_http has no more requests to give; returns why.
fn serve(server: &tiny_http::Server, service: &mut dyn Service) -> io::Error {
    let reaper = Reaper::start(service.name());
    loop {
        let mut request = match server.recv() {
            Ok(request) => request,
            Err(why) => return why,
        };
        let started = Instant::now();
        let method = Method::parse(request.method().as_str());
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let (read, body_done) = read_request(&mut request, method);
        let reply = match read {
            Ok(req) => match catch_unwind(AssertUnwindSafe(|| service.handle(&req))) {
                Ok(reply) => reply,
                Err(_) => {
                    log::error(&format!("{}: handler panicked on {}", service.name(), path));
                    service.error_reply(500)
                }
            },
            Err(status) => service.error_reply(status),
        };
        let status = reply.status;
        if body_done {
            if let Err(e) = request.respond(to_response(reply)) {
                log::debug(&format!(
                    "{}: writing the reply failed: {e}",
                    service.name()
                ));
            }
        } else {
            reaper.respond(request, to_response(reply));
        }
        log::access(service.name(), method, &path, status, started.elapsed());
    }
}

/// Answers requests whose body was left unread, on a thread of its own.
/// Responding drops tiny_http's body reader, which drains the rest of the
/// body (at most 64 KiB: vendor/tiny_http/PATCHES.md) and would block the
/// loop on a client that announced a body and stalled.
struct Reaper(Option<mpsc::Sender<(tiny_http::Request, Response)>>);

type Response = tiny_http::Response<io::Cursor<Vec<u8>>>;

impl Reaper {
    fn start(name: &str) -> Reaper {
        let (tx, rx) = mpsc::channel::<(tiny_http::Request, Response)>();
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-reaper"))
            .spawn(move || {
                for (request, response) in rx {
                    let _ = request.respond(response);
                }
            });
        Reaper(spawned.ok().map(|_| tx))
    }

    fn respond(&self, request: tiny_http::Request, response: Response) {
        match &self.0 {
            Some(tx) => {
                let _ = tx.send((request, response));
            }
            // No thread could be had: answer here rather than not at all.
            None => {
                let _ = request.respond(response);
            }
        }
    }
}

/// Reads the request within the limits; a broken limit is the error status.
/// Also says whether nothing of the body is left unread on the socket.
///
/// Only a body tiny_http has already read on the connection's own thread is
/// taken: reading one here could block the loop on a client that stalls.
/// tiny_http reads every body it hands over (at most 64 KiB, with a
/// `Content-Length` or chunked, after its `100 Continue` when one was asked
/// for) and refuses larger ones itself (see vendor/tiny_http/PATCHES.md); a
/// chunked body arrives decoded, with its decoded length.
fn read_request(request: &mut tiny_http::Request, method: Method) -> (Result<Req, u16>, bool) {
    let declared = request.body_length();
    let url = request.url().to_string();
    let buffered = declared.is_some_and(|n| n <= MAX_BODY);
    let mut body_done = declared.is_none_or(|n| n == 0);
    if url.len() > MAX_URL {
        return (Err(414), body_done);
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
        .sum();
    if header_bytes > MAX_HEADERS {
        return (Err(431), body_done);
    }
    if declared.is_some_and(|n| n > MAX_BODY) {
        return (Err(413), body_done);
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
            return (Err(400), body_done);
        }
        body_done = true;
    } else if buffered {
        // A body on a GET and the like is in memory too; dropping it costs nothing.
        body_done = true;
    }
    let mut req = Req::new(method, &url, headers, body);
    req.peer = request.remote_addr().copied();
    (Ok(req), body_done)
}

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
