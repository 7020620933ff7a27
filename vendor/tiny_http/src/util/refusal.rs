//! wxauth patch: the replies tiny_http writes on its own (a request it
//! refuses, a connection it has no thread for), and closing a connection
//! after one without losing it.

use std::io::ErrorKind;
use std::net::Shutdown;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use httpdate::HttpDate;

use crate::common::{Header, StatusCode};
use crate::connection::Connection;

/// How long a closing connection is read from (and its bytes thrown away)
/// after its last reply, so that the client reads the reply before the close.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes thrown away so, per connection.
const LINGER_BYTES: usize = 1024 * 1024;
/// Connections lingering at once; past that one is closed right after its
/// reply.
const MAX_LINGERING: usize = 1024;

/// Builds the replies tiny_http writes itself: the status, the headers the
/// application gave (its security headers), `Connection: close`, and a short
/// text body.
pub struct OwnReplies {
    headers: Vec<u8>,
}

impl OwnReplies {
    pub fn new(headers: &[Header]) -> OwnReplies {
        let mut bytes = Vec::new();
        for header in headers {
            bytes.extend_from_slice(header.field.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(header.value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        OwnReplies { headers: bytes }
    }

    /// The whole reply, ready to write.
    pub fn bytes(&self, status: u16) -> Vec<u8> {
        let reason = StatusCode(status).default_reason_phrase();
        let body = format!("{} {}\n", status, reason);
        let mut reply = format!(
            "HTTP/1.1 {} {}\r\nServer: tiny-http (Rust)\r\nDate: {}\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             Connection: close\r\n",
            status,
            reason,
            HttpDate::from(std::time::SystemTime::now()),
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(&self.headers);
        reply.extend_from_slice(b"\r\n");
        reply.extend_from_slice(body.as_bytes());
        reply
    }
}

/// Closes connections with care, on a thread of its own that handles many at
/// once without blocking: a connection no thread can take gets its 503
/// there, and a connection whose thread has answered a refused request is
/// handed over, so that thread is free at once.
///
/// The client may still be sending (the rest of a 100 KB request line, a
/// body, its request after the 503): closing a socket with unread data makes
/// the kernel send a reset, which can destroy the reply before the client
/// has read it (RFC 9112 9.6). So the write side is shut (the client sees
/// the end of the reply) and what still comes is read and thrown away until
/// the client closes, for at most LINGER and LINGER_BYTES.
pub struct Refuser {
    replies: Arc<OwnReplies>,
    queue: Option<SyncSender<(Arc<Connection>, bool)>>,
}

impl Refuser {
    pub fn start(replies: Arc<OwnReplies>) -> Refuser {
        let (queue, refused) = sync_channel(MAX_LINGERING);
        let thread_replies = Arc::clone(&replies);
        let spawned = thread::Builder::new()
            .name("tiny-http-refuser".into())
            .spawn(move || close_all(refused, &thread_replies));
        Refuser {
            replies,
            queue: spawned.ok().map(|_| queue),
        }
    }

    /// Answers `connection` with a 503 and closes it.
    pub fn refuse(&self, connection: Arc<Connection>) {
        self.hand_over(connection, true);
    }

    /// Closes `connection`, whose last reply is written (and whose other
    /// handles will not shut its read side).
    pub fn close(&self, connection: Arc<Connection>) {
        self.hand_over(connection, false);
    }

    fn hand_over(&self, connection: Arc<Connection>, with_503: bool) {
        let connection = match &self.queue {
            Some(queue) => match queue.try_send((connection, with_503)) {
                Ok(()) => return,
                Err(TrySendError::Full((c, _))) | Err(TrySendError::Disconnected((c, _))) => c,
            },
            None => connection,
        };
        // No room to linger: the reply, then the close.
        if connection.set_nonblocking(true).is_ok() {
            if with_503 {
                let _ = connection.write_shared(&self.replies.bytes(503));
            }
            let _ = connection.shutdown(Shutdown::Write);
        }
    }
}

/// The refuser's thread: writes a 503 where one is due (a new socket's send
/// buffer takes it whole), shuts the write side, and reads from each
/// connection until the client closes or LINGER is over.
fn close_all(handed_over: Receiver<(Arc<Connection>, bool)>, replies: &OwnReplies) {
    const TICK: Duration = Duration::from_millis(20);
    let mut lingering: Vec<(Arc<Connection>, Instant, usize)> = Vec::new();
    loop {
        let first = if lingering.is_empty() {
            match handed_over.recv() {
                Ok(connection) => Some(connection),
                Err(_) => return,
            }
        } else {
            match handed_over.recv_timeout(TICK) {
                Ok(connection) => Some(connection),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        for (connection, with_503) in first.into_iter().chain(handed_over.try_iter()) {
            if connection.set_nonblocking(true).is_err() {
                continue;
            }
            if with_503 {
                let _ = connection.write_shared(&replies.bytes(503));
            }
            let _ = connection.shutdown(Shutdown::Write);
            if lingering.len() < MAX_LINGERING {
                lingering.push((connection, Instant::now() + LINGER, 0));
            }
        }
        let now = Instant::now();
        lingering.retain_mut(|(connection, until, thrown)| {
            now < *until && *thrown < LINGER_BYTES && still_sending(connection, thrown)
        });
    }
}

/// Throws away what the client has sent so far; false once it has closed.
fn still_sending(connection: &Connection, thrown: &mut usize) -> bool {
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match connection.read_shared(&mut buf) {
            Ok(0) => return false,
            Ok(n) => *thrown += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    true
}
