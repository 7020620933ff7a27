//! wxauth: WeChat Official Account web authorization (网页授权) in one binary.
//! The app (handlers over one request loop) and the WeChat simulator that
//! stands in for WeChat in demo mode and in tests.
#![forbid(unsafe_code)]

pub mod clock;
pub mod http;
pub mod log;
pub mod random;
pub mod server;
pub mod sim;
