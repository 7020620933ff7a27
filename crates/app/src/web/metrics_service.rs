//! WXAUTH_METRICS_LISTEN: a listener of its own, never the public one,
//! answering `GET /metrics` with the exposition text (metrics.rs) and 404
//! to anything else. A `Service` with no state and no calls: its loop only
//! reads the atomics, so a scrape never waits on the app's loop.

use crate::metrics;
use crate::transport::http::{Method, Reply, Req};
use crate::transport::listener::{Listener, Running};
use crate::transport::service::{Outcome, Service};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Prometheus' text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers /metrics.
pub struct MetricsService;

impl Service for MetricsService {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn handle(&mut self, req: &Req) -> Outcome<MetricsService> {
        match (req.method, req.path.as_str()) {
            (Method::Get | Method::Head, "/metrics") => {
                Reply::with_body(200, CONTENT_TYPE, metrics::render().into_bytes())
                    .with_header("Cache-Control", "no-store")
                    .into()
            }
            _ => self.error_reply(404).into(),
        }
    }

    fn error_reply(&mut self, status: u16) -> Reply {
        let text = match status {
            404 => "not found: only GET /metrics is served here\n",
            _ => "error\n",
        };
        Reply::text(status, text)
    }
}

/// Binds `addr` and serves /metrics on a thread of its own until the
/// handle is dropped. A scraper that stalls is cut off after `timeout`.
pub fn start(addr: SocketAddr, timeout: Duration) -> io::Result<Running> {
    let listener = Listener::bind_with_timeout(&addr.to_string(), timeout)?;
    Ok(listener.spawn(MetricsService))
}
