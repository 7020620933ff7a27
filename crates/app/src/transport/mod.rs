//! The transport: one request loop that never waits (event_loop.rs) over a
//! bound socket (listener.rs), serving a `Service` (service.rs) within
//! bounds (limits.rs), with a pool of workers for blocking calls (pool.rs),
//! requests and replies as the app sees them (http.rs), and the one parser
//! of Host headers and URLs (host.rs). The only layer that names tiny_http.

pub mod event_loop;
pub mod host;
pub mod http;
pub mod limits;
pub mod listener;
pub mod pool;
pub mod service;
