//! wxauth: WeChat Official Account web authorization (网页授权) in one binary.
//! The app (handlers over one request loop) and the WeChat simulator that
//! stands in for WeChat in demo mode and in tests.
#![forbid(unsafe_code)]

pub mod account;
pub mod api;
pub mod app;
pub mod assets;
pub mod auth;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod gateway;
pub mod http;
pub mod log;
pub mod login;
pub mod mp;
pub mod packed;
pub mod pages;
pub mod persist;
pub mod pool;
pub mod random;
pub mod render;
pub mod routes;
pub mod scan;
pub mod server;
pub mod session;
pub mod signed;
pub mod sim;
pub mod site;
pub mod wechat;
