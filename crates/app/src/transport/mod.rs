//! The transport: one request loop that never waits (server.rs), the worker
//! pool that runs blocking calls for it (pool.rs), requests and replies as
//! the app sees them (http.rs), and hosts and URLs read one way for every
//! layer above (host.rs). The only layer that names tiny_http.

pub mod host;
pub mod http;
pub mod pool;
pub mod server;
