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

/// How long a refused connection is read from (and its bytes thrown away)
/// after the reply, so that the client reads the reply before the close.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes thrown away so.
const LINGER_BYTES: usize = 1024 * 1024;
/// Connections lingering on the refuser's thread at once; past that a
/// refused connection is closed right after its reply.
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

/// Closes a connection whose reply has just been written, on the calling
/// thread. The client may still be sending (the rest of a 100 KB request
/// line, a body): closing a socket with unread data makes the kernel send a
/// reset, which can destroy the reply before the client has read it. So the
/// write side is shut (the client sees the end of the reply), and what still
/// comes is read and thrown away until the client closes, for at most
/// LINGER and LINGER_BYTES.
pub fn linger(connection: &Connection) {
    let _ = connection.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut buf = [0u8; 4096];
    let mut thrown = 0;
    while thrown < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || connection.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match connection.read_shared(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => thrown += n,
        }
    }
}

/// Answers connections the server has no thread for with a 503, on a thread
/// of its own that lingers over many connections at once (non-blocking).
pub struct Refuser {
    replies: Arc<OwnReplies>,
    queue: Option<SyncSender<Arc<Connection>>>,
}

impl Refuser {
    pub fn start(replies: Arc<OwnReplies>) -> Refuser {
        let (queue, refused) = sync_channel(MAX_LINGERING);
        let thread_replies = Arc::clone(&replies);
        let spawned = thread::Builder::new()
            .name("tiny-http-refuser".into())
            .spawn(move || refuse_all(refused, &thread_replies));
        Refuser {
            replies,
            queue: spawned.ok().map(|_| queue),
        }
    }

    /// Answers `connection` with a 503 and closes it.
    pub fn refuse(&self, connection: Arc<Connection>) {
        let connection = match &self.queue {
            Some(queue) => match queue.try_send(connection) {
                Ok(()) => return,
                Err(TrySendError::Full(c)) | Err(TrySendError::Disconnected(c)) => c,
            },
            None => connection,
        };
        // No room to linger: the reply, then the close.
        if connection.set_nonblocking(true).is_ok() {
            let _ = connection.write_shared(&self.replies.bytes(503));
            let _ = connection.shutdown(Shutdown::Write);
        }
    }
}

/// The refuser's thread: writes the reply to each new connection (a new
/// socket's send buffer takes it whole), shuts its write side, and reads
/// from it until the client closes or LINGER is over.
fn refuse_all(refused: Receiver<Arc<Connection>>, replies: &OwnReplies) {
    const TICK: Duration = Duration::from_millis(20);
    let mut lingering: Vec<(Arc<Connection>, Instant)> = Vec::new();
    loop {
        let first = if lingering.is_empty() {
            match refused.recv() {
                Ok(connection) => Some(connection),
                Err(_) => return,
            }
        } else {
            match refused.recv_timeout(TICK) {
                Ok(connection) => Some(connection),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        for connection in first.into_iter().chain(refused.try_iter()) {
            if connection.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = connection.write_shared(&replies.bytes(503));
            let _ = connection.shutdown(Shutdown::Write);
            if lingering.len() < MAX_LINGERING {
                lingering.push((connection, Instant::now() + LINGER));
            }
        }
        let now = Instant::now();
        lingering.retain(|(connection, until)| now < *until && still_sending(connection));
    }
}

/// Throws away what the client has sent so far; false once it has closed.
fn still_sending(connection: &Connection) -> bool {
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match connection.read_shared(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    true
}
