//! The `wxauth` command: `serve` (default), `sim`, `check-config`, `menu`
//! (the command line is read by `config::CommandLine`). Only
//! orchestrates; exit status 0 ok, 1 runtime failure, 2 bad configuration.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::process::ExitCode;
use wxauth::demo::{self, SIM_DEFAULT_SECRET};
use wxauth_app::clock::Clock;
use wxauth_app::config::{Command, CommandLine, Config, ConfigError, RawConfig, SETTINGS};
use wxauth_app::transport::listener::{Commander, Listener, Stopper};
use wxauth_app::web::app::App;
use wxauth_app::web::metrics_service;
use wxauth_app::web::service::AppCommand;
use wxauth_sim::Sim;

/// `println!` that never panics on a closed stdout (see `log::out`).
macro_rules! out {
    ($($arg:tt)*) => { wxauth_app::log::out(&format!($($arg)*)) };
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => { wxauth_app::log::err(&format!($($arg)*)) };
}

fn main() -> ExitCode {
    let line = CommandLine::parse(std::env::args_os().skip(1));
    if line.help {
        let _ = std::io::Write::write_all(&mut std::io::stdout(), help().as_bytes());
        return ExitCode::SUCCESS;
    }
    if line.version {
        out!("wxauth {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config = match RawConfig::from_env_and_command_line(std::env::vars(), &line)
        .and_then(|raw| Config::from_raw(&raw))
    {
        Ok(config) => config,
        Err(ConfigError(problems)) => {
            for problem in problems {
                err!("wxauth: {problem}");
            }
            return ExitCode::from(2);
        }
    };
    wxauth_app::log::set_level(&config.log);
    if matches!(line.command, Command::Serve | Command::CheckConfig) {
        for warning in &config.warnings {
            err!("wxauth: warning: {warning}");
        }
    }
    match line.command {
        Command::CheckConfig => {
            // Everything serve checks before binding, templates included.
            if let Err(e) = wxauth_app::web::render::environment(config.templates.as_deref()) {
                err!("wxauth: WXAUTH_TEMPLATES: {e}");
                return ExitCode::from(2);
            }
            out!("{config}");
            ExitCode::SUCCESS
        }
        Command::Sim => sim(config),
        Command::Menu => menu(config, &line.words),
        Command::Revoke => revoke(&config, &line.words),
        Command::Serve => serve(config),
    }
}

fn serve(mut config: Config) -> ExitCode {
    // Catch signals from the very start: one that arrives while starting up
    // stops the server as soon as its loop runs, rather than killing it.
    let signals = Signals::new([SIGTERM, SIGINT, SIGHUP]);
    let listener =
        match Listener::bind_with_timeout(&config.listen.to_string(), config.client_timeout) {
            Ok(listener) => listener,
            Err(e) => return fail(&format!("cannot listen on {}: {e}", config.listen)),
        };
    // The simulator's thread lives as long as this binding.
    let _sim = if config.demo {
        match demo::start_sim(&mut config, listener.local_addr()) {
            Ok(running) => Some(running),
            Err(e) => {
                return fail(&format!(
                    "cannot start the simulator on {}: {e}",
                    config.sim_listen
                ))
            }
        }
    } else {
        None
    };
    // GET /metrics on an address of its own, for as long as this binding lives.
    let metrics = config
        .metrics_listen
        .map(|addr| (addr, metrics_service::start(addr, config.client_timeout)));
    let _metrics = match metrics {
        Some((addr, Err(e))) => {
            return fail(&format!(
                "cannot listen on {addr} (WXAUTH_METRICS_LISTEN): {e}"
            ))
        }
        Some((_, Ok(running))) => {
            out!("metrics: http://{}/metrics", running.addr);
            Some(running)
        }
        None => None,
    };
    let bound = listener.local_addr();
    out!(
        "wxauth {} listening on {bound}: {}",
        env!("CARGO_PKG_VERSION"),
        config.summary()
    );
    if config.demo {
        demo_lines(&config, bound);
    }
    let mut app = match App::new(config, Clock::new()) {
        Ok(app) => app,
        // A broken template override, or a session file directory that can
        // be neither written nor cleared (the message names which).
        Err(e) => {
            err!("wxauth: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = listener.with_limits(app.config().limits());
    let commander = listener.commander();
    // `wxauth revoke` reaches the loop through this socket; removed at stop.
    let _control = match &app.config().control_socket {
        Some(path) => match wxauth::control::serve(path, commander.clone()) {
            Ok(socket) => Some(socket),
            Err(e) => {
                return fail(&format!(
                    "WXAUTH_CONTROL_SOCKET: cannot listen on {}: {e}",
                    path.display()
                ))
            }
        },
        None => None,
    };
    let allow_file = app.config().allow_file.clone();
    on_signals(signals, listener.stopper(), commander, allow_file);
    let ended = listener.run(&mut app);
    // The loop has answered every request it took: calls under way had the
    // grace period to finish, what was left got 503. Nothing changes now.
    let saved = app.save_sessions();
    match ended {
        Ok(()) if saved => {
            out!("wxauth stopped");
            ExitCode::SUCCESS
        }
        // The line saying why is written; the sessions may be lost, and
        // whoever stopped us should know.
        Ok(()) => ExitCode::from(1),
        // Up but deaf helps no one: exit non-zero so systemd restarts us.
        Err(e) => fail(&e),
    }
}

/// Where to open the demo: on this machine, and from a phone on the same
/// network when the app listens on every address (0.0.0.0 or ::).
fn demo_lines(config: &Config, bound: std::net::SocketAddr) {
    use wxauth_app::web::site;
    out!("demo mode: WeChat is simulated, no appid needed");
    out!(
        "  app:       {}   <- open this in a browser and log in",
        config.public_url
    );
    if !config.follow_host {
        // WXAUTH_PUBLIC_URL says where the demo is: no other address is offered.
    } else if bound.ip().is_unspecified() {
        let lan = site::lan_addresses(bound.ip());
        for ip in &lan {
            out!(
                "  phone:     http://{}   <- from a phone on the same network (Wi-Fi)",
                std::net::SocketAddr::new(*ip, bound.port())
            );
        }
        if lan.is_empty() {
            out!("  phone:     (no network address found: this machine is on no network)");
        }
    } else if bound.ip().is_loopback() {
        out!(
            "             (from a phone on the same network: WXAUTH_LISTEN=0.0.0.0:{})",
            bound.port()
        );
    }
    out!("  simulator: {}", config.open_base);
}

/// SIGTERM (systemd's stop) and SIGINT (Ctrl-C) stop the loop gracefully;
/// SIGHUP (`systemctl reload`) reads WXAUTH_ALLOW again: a valid file
/// replaces the list for the next request, a broken one keeps the old list
/// and says why in one line.
fn on_signals(
    signals: std::io::Result<Signals>,
    stopper: Stopper,
    commander: Commander,
    allow_file: Option<std::path::PathBuf>,
) {
    let mut signals = match signals {
        Ok(signals) => signals,
        Err(e) => {
            err!("wxauth: cannot handle signals ({e}); a stop will not save sessions");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    reload(allow_file.as_deref(), &commander);
                    continue;
                }
                out!("wxauth: signal {signal}, stopping: new requests get 503, calls under way may finish");
                stopper.stop();
                break;
            }
        });
    if let Err(e) = spawned {
        err!("wxauth: cannot watch for signals ({e}); a stop will not save sessions");
    }
}

/// SIGHUP: WXAUTH_ALLOW's file read again, here (not on the loop), and
/// handed to the loop only when valid.
fn reload(allow_file: Option<&std::path::Path>, commander: &Commander) {
    let Some(path) = allow_file else {
        out!("wxauth: SIGHUP: nothing to reload (WXAUTH_ALLOW is unset)");
        return;
    };
    match wxauth_app::config::read_allow_list(path) {
        Ok(allow) => {
            commander.send(Box::new(AppCommand::Allow(allow)));
        }
        Err(e) => err!("wxauth: SIGHUP: WXAUTH_ALLOW: {e}; keeping the list read before"),
    }
}

/// `wxauth revoke OPENID|UNIONID`: asks the running server, through
/// WXAUTH_CONTROL_SOCKET, to end every session of that user.
fn revoke(config: &Config, words: &[String]) -> ExitCode {
    let [who] = words else {
        err!("wxauth: revoke: one openid or unionid (wxauth revoke oAbC…)");
        return ExitCode::from(2);
    };
    let Some(path) = &config.control_socket else {
        err!("wxauth: revoke: WXAUTH_CONTROL_SOCKET is unset: it must name the running server's socket (the systemd unit's is /run/wxauth/control.sock)");
        return ExitCode::from(2);
    };
    match wxauth::control::revoke(path, who) {
        Ok(answer) => {
            out!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("revoke: {e}")),
    }
}

fn sim(config: Config) -> ExitCode {
    let listener =
        match Listener::bind_with_timeout(&config.sim_listen.to_string(), config.client_timeout) {
            Ok(listener) => listener,
            Err(e) => return fail(&format!("cannot listen on {}: {e}", config.sim_listen)),
        };
    let secret = if config.demo {
        SIM_DEFAULT_SECRET
    } else {
        config.secret.expose()
    };
    let mut sim_config = demo::sim_config(&config, secret);
    // Unconfigured, its website app takes the same known secret as its
    // Official Account, so code under test can use both.
    if let (true, Some(web)) = (config.demo, sim_config.web_app.as_mut()) {
        web.secret = SIM_DEFAULT_SECRET.to_string();
    }
    out!(
        "wxauth simulator on http://{} (appid {}, callback domain {}{})",
        listener.local_addr(),
        sim_config.appid,
        sim_config.domain,
        sim_config
            .web_app
            .as_ref()
            .map_or(String::new(), |web| format!("; website app {}", web.appid))
    );
    match listener.run(&mut Sim::new(sim_config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `wxauth menu create [FILE] | show | delete`: the account's custom menu.
fn menu(config: Config, words: &[String]) -> ExitCode {
    use wxauth_app::store::redis::{RedisStore, TokenShelf};
    use wxauth_app::wechat::account::{self, BaseToken};
    if config.demo {
        err!("wxauth: menu: needs WXAUTH_APPID and a secret (demo mode has no account; point WXAUTH_API_BASE at `wxauth sim` to try it)");
        return ExitCode::from(2);
    }
    let client = wxauth_app::wechat::client::WechatClient::new(&config);
    // With a shared store, every instance (and this command) uses one base
    // token, fetched by one of them at a time.
    let mut cache = match &config.redis_url {
        Some(url) => match RedisStore::open(url.expose(), "wxauth", config.session_ttl as i64) {
            Ok(store) => BaseToken::shared(Box::new(TokenShelf::new(
                store,
                &config.appid,
                config.secret.expose(),
            ))),
            Err(e) => return fail(&format!("menu: {e}")),
        },
        None => BaseToken::default(),
    };
    let clock = Clock::new();
    let result = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["create"] => {
            let menu = account::default_menu(&config.public_url);
            account::menu_create(&client, &mut cache, &clock, &menu)
                .map(|_| "menu created".to_string())
        }
        ["create", file] => match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        {
            Ok(menu) => account::menu_create(&client, &mut cache, &clock, &menu)
                .map(|_| "menu created".to_string()),
            Err(e) => return fail(&format!("menu create: {file}: {e}")),
        },
        ["show"] => account::menu_show(&client, &mut cache, &clock)
            .map(|menu| serde_json::to_string_pretty(&menu).unwrap_or_default()),
        ["delete"] => {
            account::menu_delete(&client, &mut cache, &clock).map(|_| "menu deleted".to_string())
        }
        _ => {
            err!("wxauth: usage: wxauth menu create [FILE] | menu show | menu delete");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("menu {}: {e}", words[0])),
    }
}

fn fail(msg: &str) -> ExitCode {
    err!("wxauth: {msg}");
    ExitCode::from(1)
}

fn help() -> String {
    let mut out = String::from(
        "wxauth: WeChat web authorization (网页授权) for an Official Account page\n\n\
         Usage: wxauth [serve|sim|check-config] [OPTIONS]\n\n\
         Commands:\n  \
         serve         run the app (default); no appid/secret = demo mode\n  \
         sim           run the WeChat simulator alone\n  \
         check-config  validate the configuration and print it (secret masked)\n  \
         menu create [FILE] | menu show | menu delete\n  \
         \x20             the account's custom menu (default: a 我的资料 button)\n  \
         revoke ID     end every session of an openid or unionid on the\n  \
         \x20             running server (through WXAUTH_CONTROL_SOCKET)\n\n\
         Options (each has an environment twin):\n",
    );
    for setting in SETTINGS {
        let flag = setting.flag_name();
        let flag = flag.as_deref().unwrap_or("(env only)");
        let default = match setting.default {
            "" => String::new(),
            default => format!(" [{default}]"),
        };
        out.push_str(&format!(
            "  {flag:<20} {}\n  {:<20} {}{default}\n",
            setting.var, "", setting.help
        ));
    }
    out.push_str("  -h, --help           this text\n  -V, --version        the version\n");
    out
}
