//! A bound socket, and the loop serving it on the calling thread (`run`,
//! the binary) or on a thread of its own (`spawn`: tests, the simulator in
//! demo mode), with the handles that stop it.

use crate::log;
use crate::transport::event_loop::{serve, Event};
use crate::transport::http::SECURITY_HEADERS;
use crate::transport::limits::{Limits, CLIENT_TIMEOUT};
use crate::transport::service::Service;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

    /// A handle that gives the loop's service commands from another thread
    /// (a signal, the control socket): `Service::command` runs them.
    pub fn commander(&self) -> Commander {
        Commander {
            events: self.events.0.clone(),
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

/// Sends commands to a loop's service (`Listener::commander`).
#[derive(Clone)]
pub struct Commander {
    events: mpsc::Sender<Event>,
}

impl Commander {
    /// Queues `command` for the service; false when the loop is gone.
    pub fn send(&self, command: Box<dyn std::any::Any + Send>) -> bool {
        self.events.send(Event::Command(command)).is_ok()
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
