//! The bounds the loop keeps: request sizes, calls in flight and queued,
//! requests per client, the stop's grace period, the client timeout; and who
//! the client is (behind a trusted proxy, its X-Real-IP).

use crate::transport::http::Req;
use std::net::IpAddr;
use std::time::Duration;

/// The longest request target we read (path and query), in bytes.
pub const MAX_URL: usize = 8 * 1024;
/// The largest header block we accept, in bytes.
pub const MAX_HEADERS: usize = 16 * 1024;
/// The largest request body we read, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
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

/// Who sent the request: the socket's peer, or, when the peer is a trusted
/// proxy (nginx on loopback), the address it puts in X-Real-IP.
pub(super) fn client_address(req: &Req, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    match req.header("x-real-ip").map(|v| v.trim().parse::<IpAddr>()) {
        Some(Ok(ip)) => Some(ip),
        _ => Some(peer),
    }
}
