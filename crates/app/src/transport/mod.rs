//! The transport: one request loop that never waits (server.rs), the worker
//! pool that runs blocking calls for it (pool.rs), and requests and replies
//! as the app sees them (http.rs). The only layer that names tiny_http.

pub mod http;
pub mod pool;
pub mod server;
