//! wxauth's service: WeChat Official Account web authorization (网页授权)
//! over one request loop. Layers, each a folder, each using only the ones
//! below it (ARCHITECTURE.md):
//!
//! - `web`: the app's state, the route table, handlers by area, pages;
//! - `store`: sessions, login states, scan tickets, pushes seen, the session file;
//! - `wechat`: the client for WeChat's APIs and its message protocol;
//! - `config`: settings from the environment and flags;
//! - `transport`: the request loop, HTTP, the worker pool;
//! - `clock`, `random`, `log`, `metrics`: leaves every layer may use.
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod log;
pub mod metrics;
pub mod qr;
pub mod random;
pub mod store;
pub mod transport;
pub mod web;
pub mod wechat;
