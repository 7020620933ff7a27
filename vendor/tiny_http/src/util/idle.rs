//! wxauth patch: the kept-alive connections whose threads wait for a next
//! request, so that one can give way when the server needs its thread.

use std::collections::BTreeMap;
use std::net::Shutdown;
use std::sync::{Arc, Mutex};

use crate::connection::Connection;

/// Connections waiting, between two requests, for the first byte of the
/// next one, oldest first.
#[derive(Default)]
pub struct IdleConnections {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    waiting: BTreeMap<u64, Arc<Connection>>,
}

impl IdleConnections {
    /// Counts `connection` as idle until `leave` with the returned ticket.
    pub fn enter(&self, connection: &Arc<Connection>) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let ticket = inner.next;
        inner.next += 1;
        inner.waiting.insert(ticket, Arc::clone(connection));
        ticket
    }

    /// No longer idle (a request began, or the connection ended).
    pub fn leave(&self, ticket: u64) {
        self.inner.lock().unwrap().waiting.remove(&ticket);
    }

    /// Ends the connection idle for longest: its read side is shut, so its
    /// thread sees the end of the stream, lets the connection go and is
    /// free for another. Any reply still due on it is still written. False
    /// when no connection is idle.
    pub fn evict_oldest(&self) -> bool {
        let mut inner = self.inner.lock().unwrap();
        match inner.waiting.pop_first() {
            Some((_, connection)) => {
                let _ = connection.shutdown(Shutdown::Read);
                true
            }
            None => false,
        }
    }
}
