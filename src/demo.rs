//! Demo mode's wiring: starts the built-in simulator beside the app and points
//! the app at it. With `main.rs`, the only code that names the simulator, so
//! it can never answer in production by accident.

use std::io;
use std::net::SocketAddr;
use wxauth_app::config::Config;
use wxauth_app::transport::host;
use wxauth_app::transport::listener::{Listener, Running};
use wxauth_sim::{self as sim, PushTarget, SimConfig, WebApp};

/// The secret `wxauth sim` accepts when none is configured. It guards nothing:
/// the simulator is a stand-in for WeChat on loopback.
pub const SIM_DEFAULT_SECRET: &str = "demo-secret";

/// What the simulator should expect of the app configured by `config`
/// (`wxauth sim`, or a real-mode app; `start_sim` adds the demo's hosts).
pub fn sim_config(config: &Config, secret: &str) -> SimConfig {
    SimConfig {
        appid: config.appid.clone(),
        secret: secret.to_string(),
        app_name: "wxauth 演示公众号".to_string(),
        domain: config.public_host(),
        demo_app: None,
        push_target: None,
        // The website app (WXAUTH_WEB_APPID, or the demo's): its 授权回调域 is
        // the same host as the account's 网页授权域名, wxauth's own.
        web_app: config.web.as_ref().map(|web| WebApp {
            appid: web.appid.clone(),
            secret: web.secret.expose().to_string(),
            domain: config.public_host(),
        }),
    }
}

/// Binds the simulator at `config.sim_listen`, starts it on its own thread and
/// points `config` at it. `app` is where the app is actually bound.
pub fn start_sim(config: &mut Config, app: SocketAddr) -> io::Result<Running> {
    let listener =
        Listener::bind_with_timeout(&config.sim_listen.to_string(), config.client_timeout)?;
    config.bind_demo(app, listener.local_addr());
    let secret = config.secret.expose().to_string();
    let mut sim_config = sim_config(config, &secret);
    // The app follows the host each browser used (site.rs): every host it
    // listens on is its own, and the simulator calls back to any of them.
    sim_config.demo_app = config.follow_host.then_some(config.listen);
    // The simulator's page pushes to the demo's /wechat with its token and
    // key, which stay in this process: the page never sees them.
    sim_config.push_target = config.endpoint.as_ref().map(|endpoint| PushTarget {
        url: format!("http://{}{}/wechat", host::reachable(app), config.prefix),
        token: endpoint.token.expose().to_string(),
        aes_key: endpoint.aes_keys.first().map(|k| k.expose().to_string()),
    });
    Ok(sim::start(listener, sim_config))
}
