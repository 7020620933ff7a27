//! Integration tests: the app and the simulator on free loopback ports,
//! driven over HTTP. One test crate (tests/it) so it links once.

mod adversarial;
mod browser;
mod callback;
mod cli;
mod durable;
mod flow;
mod gateway;
mod hosts;
mod http_layer;
mod jssdk;
mod jssdk_page;
mod layers;
mod metrics;
mod mp;
mod operate;
mod pages;
mod prefix;
mod props;
mod redis_server;
mod safe_mode;
mod scan;
mod security;
mod shared;
mod sim;
mod sim_harness;
mod sim_mp;
mod support;
mod waiting;
mod website;
