//! Configuration: `RawConfig` collects strings from the environment and the
//! command line (a flag overrides its WXAUTH_* twin); `Config::from_raw`
//! validates all of it at once and derives what follows (demo mode,
//! redirect_uri, Secure cookies). Nothing here binds a socket.
//!
//! - settings.rs: the one table of settings, and reading the environment;
//! - flags.rs: the command line, a flag for each setting;
//! - values.rs: reading each kind of value, and the secret;
//! - allow_list.rs: the WXAUTH_ALLOW file.

mod allow_list;
mod flags;
pub mod message_endpoint;
mod settings;
mod values;

pub use allow_list::read_allow_list;
pub use flags::{Command, CommandLine};
pub use message_endpoint::{MessageEndpoint, MsgMode};
pub use settings::{parse_switch, ConfigError, Flag, RawConfig, Setting, SETTINGS};
pub use values::Secret;

use crate::transport::host::{self, HttpUrl};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use values::{
    base_url, ip_list, number, prefix_ok, read_secret, socket_addr, OA_SECRET, WEB_SECRET,
};

/// The appid the simulator answers to in demo mode.
pub const DEMO_APPID: &str = "wx0000000000demo";

/// Which OAuth scope the login asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    /// Silent: only the openid.
    #[serde(rename = "snsapi_base")]
    Base,
    /// Consent page; the profile comes from sns/userinfo.
    #[serde(rename = "snsapi_userinfo")]
    Userinfo,
    /// The website app's QR login (qrconnect): a login through WXAUTH_WEB_APPID,
    /// with the profile from sns/userinfo. Never the Official Account's scope.
    #[serde(rename = "snsapi_login")]
    Login,
}

impl Scope {
    /// WeChat's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::Userinfo => "snsapi_userinfo",
            Scope::Login => "snsapi_login",
        }
    }

    /// True for a login through the website app (snsapi_login).
    pub fn is_website(self) -> bool {
        self == Scope::Login
    }
}

/// An Open Platform 网站应用 (website app): its own appid and secret, for
/// WeChat's QR login on a desktop (qrconnect, snsapi_login).
#[derive(Clone, Debug)]
pub struct WebApp {
    pub appid: String,
    pub secret: Secret,
}

/// The website app the simulator stands in for in demo mode.
pub const DEMO_WEB_APPID: &str = "wx00000000webdemo";

/// The validated configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub appid: String,
    pub secret: Secret,
    /// Without a trailing slash. In real mode never derived from a request's
    /// Host header; in demo mode without WXAUTH_PUBLIC_URL a request may
    /// replace it with the host it was sent to (web/site.rs, `follow_host`).
    pub public_url: String,
    /// PUBLIC_URL's path: "" at the root, else like "/wx". wxauth serves its
    /// routes under it, and every link, redirect and cookie path carries it.
    pub prefix: String,
    /// Demo mode with no WXAUTH_PUBLIC_URL: pages follow the host the
    /// browser used when the demo listens there (web/site.rs).
    pub follow_host: bool,
    pub scope: Scope,
    /// WXAUTH_WEB_APPID and its secret: a desktop browser's /login goes to
    /// WeChat's QR login for this website app. Demo mode makes one up.
    pub web: Option<WebApp>,
    pub lang: String,
    pub open_base: String,
    pub api_base: String,
    pub session_ttl: u64,
    pub max_sessions: usize,
    /// Where sessions are saved at shutdown and loaded at start; None keeps them in memory only.
    pub session_file: Option<PathBuf>,
    /// The shared store (WXAUTH_REDIS_URL): a secret, as it may carry a password.
    pub redis_url: Option<Secret>,
    pub demo: bool,
    pub sim_listen: SocketAddr,
    pub templates: Option<PathBuf>,
    pub upstream_timeout: Duration,
    pub connect_timeout: Duration,
    /// A browser's connection is closed after this long without a byte either way.
    pub client_timeout: Duration,
    /// Worker threads for WeChat calls, at most (the loop never makes one itself).
    pub upstream_workers: usize,
    /// Requests of one client address waiting on WeChat at once, at most.
    pub upstream_per_client: usize,
    /// Peers (nginx) whose X-Real-IP header names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// /wechat's token, keys and mode (服务器配置); None: no /wechat.
    pub endpoint: Option<MessageEndpoint>,
    /// WXAUTH_JS_DOMAINS: the hosts (JS接口安全域名) whose pages /jssdk/config
    /// signs for, lowercase; PUBLIC_URL's host by default.
    pub js_domains: Vec<String>,
    /// WXAUTH_ALLOW's file, read again on SIGHUP.
    pub allow_file: Option<PathBuf>,
    /// WXAUTH_CONTROL_SOCKET: where the running server takes `wxauth revoke`.
    pub control_socket: Option<PathBuf>,
    /// WXAUTH_ALLOW: who /auth/check lets through; None lets every logged-in user.
    pub allow: Option<std::collections::HashSet<String>>,
    pub log: String,
    /// WXAUTH_METRICS_LISTEN: a listener of its own for GET /metrics; None: no metrics served.
    pub metrics_listen: Option<SocketAddr>,
    /// Settings that work but are probably wrong: printed at start and by check-config.
    pub warnings: Vec<String>,
}

impl Config {
    /// Validates `raw`, collecting every problem rather than stopping at the first.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let mut p = Vec::new();
        let listen = socket_addr(&mut p, raw, "WXAUTH_LISTEN");
        // Beside the app by default, on the same address: a demo bound to
        // 0.0.0.0 for a phone on the network must have its WeChat there too.
        let sim_listen = match raw.get("WXAUTH_SIM_LISTEN") {
            Some(_) => socket_addr(&mut p, raw, "WXAUTH_SIM_LISTEN"),
            None => SocketAddr::new(listen.ip(), 8081),
        };
        let secret = read_secret(&mut p, raw, OA_SECRET);
        let web_secret = read_secret(&mut p, raw, WEB_SECRET);
        let appid = raw.get("WXAUTH_APPID").map(str::to_string);
        let demo_switch = raw.get("WXAUTH_DEMO").map(|v| {
            parse_switch(v).unwrap_or_else(|| {
                p.push(format!(
                    "WXAUTH_DEMO: {v:?} is not 1 or 0 (true/false, yes/no, on/off)"
                ));
                false
            })
        });
        let unconfigured = appid.is_none() && secret.is_none();
        let demo = demo_switch.unwrap_or(unconfigured);
        if unconfigured && demo_switch == Some(false) {
            p.push("WXAUTH_DEMO=0 (real WeChat) needs WXAUTH_APPID and a secret".into());
        }
        // Under systemd, a missing account most likely means the env file
        // was not loaded: a public server must not quietly start the demo.
        let service = raw.get("INVOCATION_ID").is_some() || raw.get("JOURNAL_STREAM").is_some();
        if unconfigured && demo_switch.is_none() && service {
            p.push(
                "WXAUTH_APPID: not set, and this is a service start (systemd): is \
                 EnvironmentFile= loaded? Set WXAUTH_DEMO=1 to run the demo as a service"
                    .into(),
            );
        }
        if !demo {
            match (&appid, &secret) {
                (None, _) => p.push("WXAUTH_APPID: required when a secret is set".into()),
                (_, None) => p.push(
                    "WXAUTH_SECRET: required when WXAUTH_APPID is set (or WXAUTH_SECRET_FILE)"
                        .into(),
                ),
                _ => {}
            }
        }
        if let Some(id) = &appid {
            // WeChat's appids (test accounts' too) are "wx" and 16 letters or digits.
            let shaped = id.len() == 18
                && id.starts_with("wx")
                && id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !shaped {
                p.push(format!(
                    "WXAUTH_APPID: {id:?} does not look like an appid (wx and 16 letters or \
                     digits, e.g. wx1234567890abcdef; the console's 开发 → 基本配置 shows it)"
                ));
            }
        }
        let sim_url = format!("http://{}", host::reachable(sim_listen));
        let (open_base, api_base) = if demo {
            (sim_url.clone(), sim_url)
        } else {
            (
                base_url(&mut p, raw, "WXAUTH_OPEN_BASE"),
                base_url(&mut p, raw, "WXAUTH_API_BASE"),
            )
        };
        let public_url = match raw.get("WXAUTH_PUBLIC_URL") {
            Some(_) => base_url(&mut p, raw, "WXAUTH_PUBLIC_URL"),
            None if demo => format!("http://{}", host::reachable(listen)),
            None => {
                p.push("WXAUTH_PUBLIC_URL: required when WXAUTH_APPID is set (e.g. https://wx.example.com)".into());
                String::new()
            }
        };
        let prefix = HttpUrl::parse(&public_url)
            .map_or("", |url| url.path())
            .to_string();
        if !prefix_ok(&prefix) {
            p.push(format!(
                "WXAUTH_PUBLIC_URL: path {prefix:?}: a prefix is segments of letters, digits \
                 and - . _ ~ (e.g. https://example.com/wx)"
            ));
        }
        let follow_host = demo && raw.get("WXAUTH_PUBLIC_URL").is_none();
        let scope = match raw.get_or_default("WXAUTH_SCOPE") {
            "snsapi_userinfo" => Scope::Userinfo,
            "snsapi_base" => Scope::Base,
            "snsapi_login" => {
                p.push(
                    "WXAUTH_SCOPE: snsapi_login is a website app's scope, not the Official \
                     Account's: set WXAUTH_WEB_APPID and its secret for WeChat's QR login"
                        .into(),
                );
                Scope::Userinfo
            }
            other => {
                p.push(format!(
                    "WXAUTH_SCOPE: {other:?} is not snsapi_userinfo or snsapi_base"
                ));
                Scope::Userinfo
            }
        };
        let web_appid = raw.get("WXAUTH_WEB_APPID").map(str::to_string);
        if web_appid.is_some() != web_secret.is_some() {
            p.push(
                "WXAUTH_WEB_APPID and WXAUTH_WEB_SECRET (or WXAUTH_WEB_SECRET_FILE): the website \
                 app needs both, or neither"
                    .into(),
            );
        }
        if let (Some(web), Some(oa)) = (&web_appid, &appid) {
            if web == oa {
                p.push(
                    "WXAUTH_WEB_APPID: the Official Account's appid; QR login needs the website \
                     app's own (open.weixin.qq.com → 网站应用)"
                        .into(),
                );
            }
        }
        let lang = raw.get_or_default("WXAUTH_LANG").to_string();
        if !["zh_CN", "zh_TW", "en"].contains(&lang.as_str()) {
            p.push(format!("WXAUTH_LANG: {lang:?} is not zh_CN, zh_TW or en"));
        }
        let session_ttl = number(&mut p, raw, "WXAUTH_SESSION_TTL", 60.0, 366.0 * 86400.0) as u64;
        let max_sessions = number(&mut p, raw, "WXAUTH_MAX_SESSIONS", 1.0, 1e8) as usize;
        let upstream = number(&mut p, raw, "WXAUTH_UPSTREAM_TIMEOUT", 0.05, 60.0);
        let connect = number(&mut p, raw, "WXAUTH_CONNECT_TIMEOUT", 0.05, 60.0);
        let client = number(&mut p, raw, "WXAUTH_CLIENT_TIMEOUT", 0.1, 3600.0);
        let upstream_workers = number(&mut p, raw, "WXAUTH_UPSTREAM_WORKERS", 1.0, 1024.0) as usize;
        let upstream_per_client =
            number(&mut p, raw, "WXAUTH_UPSTREAM_PER_CLIENT", 1.0, 100_000.0) as usize;
        let trusted_proxies = ip_list(&mut p, raw, "WXAUTH_TRUSTED_PROXIES");
        let session_file = raw.get("WXAUTH_SESSION_FILE").map(PathBuf::from);
        if let Some(file) = &session_file {
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                p.push(format!(
                    "WXAUTH_SESSION_FILE: directory {} does not exist",
                    dir.display()
                ));
            }
        }
        let redis_url = raw
            .get("WXAUTH_REDIS_URL")
            .map(|u| Secret::new(u.to_string()));
        if let Some(url) = &redis_url {
            if redis_address(url.expose()).is_none() {
                p.push(
                    "WXAUTH_REDIS_URL: want redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://… (TLS)"
                        .into(),
                );
            }
            if session_file.is_some() {
                p.push(
                    "WXAUTH_SESSION_FILE: not with WXAUTH_REDIS_URL, where sessions already \
                     survive any restart"
                        .into(),
                );
            }
        }
        let endpoint = message_endpoint::read(&mut p, raw, demo);
        let js_domains = match raw.get("WXAUTH_JS_DOMAINS") {
            Some(list) => js_domains(&mut p, list),
            None => HttpUrl::parse(&public_url)
                .map(|url| vec![url.authority().host().to_ascii_lowercase()])
                .unwrap_or_default(),
        };
        let allow = raw.get("WXAUTH_ALLOW").and_then(|file| {
            read_allow_list(Path::new(file))
                .map_err(|e| p.push(format!("WXAUTH_ALLOW: {e}")))
                .ok()
        });
        let log = raw.get_or_default("WXAUTH_LOG").to_string();
        if let Err(e) = crate::log::parse_level(&log) {
            p.push(format!("WXAUTH_LOG: {e}"));
        }
        let metrics_listen = metrics_listen(&mut p, raw, listen);
        if !p.is_empty() {
            return Err(ConfigError(p));
        }
        let mut warnings = endpoint
            .as_ref()
            .map(MessageEndpoint::warnings)
            .unwrap_or_default();
        let port = HttpUrl::parse(&public_url).and_then(|url| url.port());
        if let (false, Some(port)) = (demo, port.filter(|p| *p != 80 && *p != 443)) {
            warnings.push(format!(
                "WXAUTH_PUBLIC_URL: port {port}: WeChat calls back only on 80 (http) or 443 \
                 (https); put nginx in front and use a URL without a port"
            ));
        }
        if follow_host && listen.ip().is_unspecified() && !sim_listen.ip().is_unspecified() {
            warnings.push(format!(
                "WXAUTH_SIM_LISTEN={sim_listen}: a phone cannot reach the simulator there; use \
                 0.0.0.0:{} (as the app does) to log in from a phone",
                sim_listen.port()
            ));
        }
        if let Some(addr) = metrics_listen.filter(|addr| !addr.ip().is_loopback()) {
            warnings.push(format!(
                "WXAUTH_METRICS_LISTEN={addr}: not a loopback address; anyone who reaches it \
                 sees your traffic's shape (use 127.0.0.1, or a firewall)"
            ));
        }
        if demo {
            for var in ["WXAUTH_OPEN_BASE", "WXAUTH_API_BASE"] {
                if raw.get(var).is_some() {
                    warnings.push(format!(
                        "{var}: ignored in demo mode: the built-in simulator stands in for \
                         WeChat (at WXAUTH_SIM_LISTEN); to use another, set WXAUTH_APPID and \
                         a secret"
                    ));
                }
            }
        }
        Ok(Config {
            listen,
            appid: appid
                .filter(|_| !demo)
                .unwrap_or_else(|| DEMO_APPID.to_string()),
            // Demo mode makes up a secret shared only with the in-process simulator.
            secret: secret
                .filter(|_| !demo)
                .unwrap_or_else(|| Secret::new(crate::random::token(32))),
            public_url,
            prefix,
            follow_host,
            scope,
            // Demo mode's website app is the simulator's, with the made-up secret.
            web: match (web_appid, web_secret) {
                _ if demo => Some(WebApp {
                    appid: DEMO_WEB_APPID.to_string(),
                    secret: Secret::new(crate::random::token(32)),
                }),
                (Some(appid), Some(secret)) => Some(WebApp { appid, secret }),
                _ => None,
            },
            lang,
            open_base,
            api_base,
            session_ttl,
            max_sessions,
            session_file,
            redis_url,
            demo,
            sim_listen,
            templates: raw.get("WXAUTH_TEMPLATES").map(PathBuf::from),
            upstream_timeout: Duration::from_secs_f64(upstream),
            connect_timeout: Duration::from_secs_f64(connect.min(upstream)),
            client_timeout: Duration::from_secs_f64(client),
            upstream_workers,
            upstream_per_client,
            trusted_proxies,
            endpoint,
            js_domains,
            allow_file: raw.get("WXAUTH_ALLOW").map(PathBuf::from),
            control_socket: raw.get("WXAUTH_CONTROL_SOCKET").map(PathBuf::from),
            allow,
            log,
            metrics_listen,
            warnings,
        })
    }

    /// The loop's bounds on WeChat calls. The queue holds four calls per
    /// worker (past that: 503). A stop gives calls under way time for a
    /// login's two calls, at most 15 s: under the unit's TimeoutStopSec=20s.
    pub fn limits(&self) -> crate::transport::limits::Limits {
        let grace =
            (self.upstream_timeout * 2 + Duration::from_secs(1)).min(Duration::from_secs(15));
        crate::transport::limits::Limits {
            workers: self.upstream_workers,
            queue: 4 * self.upstream_workers,
            per_client: self.upstream_per_client,
            trusted_proxies: self.trusted_proxies.clone(),
            grace,
        }
    }

    /// WeChat sends the browser back here: PUBLIC_URL + `/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.public_url)
    }

    /// Cookies carry Secure exactly when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Cookie names take the `__Host-` prefix with an https public URL at the
    /// root path: browsers then refuse the name from anything but this host,
    /// over https, with Path=/ and no Domain, so a sibling subdomain cannot
    /// plant one. Under a path prefix the site shares its host with others,
    /// and the plain names are kept.
    pub fn host_cookies(&self) -> bool {
        self.secure_cookies() && self.prefix.is_empty()
    }

    /// In demo mode, points the app at the simulator and a defaulted public URL
    /// at the app as actually bound (either may have been asked for port 0).
    /// An address bound on every interface is reached here over loopback.
    pub fn bind_demo(&mut self, app: SocketAddr, sim: SocketAddr) {
        if self.follow_host {
            self.public_url = format!("http://{}", host::reachable(app));
        }
        self.listen = app;
        self.sim_listen = sim;
        self.open_base = format!("http://{}", host::reachable(sim));
        self.api_base = self.open_base.clone();
    }

    /// The effective configuration on one line (the start-up log line), secret masked.
    pub fn summary(&self) -> String {
        let file = self.session_file.as_ref().map(|p| p.display().to_string());
        // The Redis URL without its password.
        let redis = self
            .redis_url
            .as_ref()
            .and_then(|u| redis_address(u.expose()));
        format!(
            "mode={} appid={} secret={} web_appid={} public_url={} scope={} lang={} open_base={} \
             api_base={} \
             session_ttl={} max_sessions={} session_file={} redis={} wechat={} \
             upstream_timeout={}s connect_timeout={}s client_timeout={}s log={}",
            if self.demo { "demo" } else { "real" },
            self.appid,
            self.secret,
            self.web.as_ref().map_or("none", |web| web.appid.as_str()),
            self.public_url,
            self.scope.as_str(),
            self.lang,
            self.open_base,
            self.api_base,
            self.session_ttl,
            self.max_sessions,
            file.as_deref().unwrap_or("none"),
            redis.as_deref().unwrap_or("none"),
            // The message endpoint's mode and how many keys; never a key.
            self.endpoint
                .as_ref()
                .map_or("off".to_string(), |e| match e.aes_keys.len() {
                    0 => e.mode.as_str().to_string(),
                    n => format!("{} aes_keys={n}", e.mode.as_str()),
                }),
            self.upstream_timeout.as_secs_f64(),
            self.connect_timeout.as_secs_f64(),
            self.client_timeout.as_secs_f64(),
            self.log,
        )
    }

    /// The host part of PUBLIC_URL: the 网页授权域名 WeChat must be told.
    pub fn public_host(&self) -> String {
        HttpUrl::parse(&self.public_url).map_or_else(String::new, |url| url.authority().host())
    }
}

impl fmt::Display for Config {
    /// Every setting, one per line, aligned: what check-config prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: Duration| format!("{}s", d.as_secs_f64());
        let or = |v: Option<String>, none: &str| v.unwrap_or_else(|| none.to_string());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let proxies: Vec<String> = self
            .trusted_proxies
            .iter()
            .map(|ip| ip.to_string())
            .collect();
        let mode = if self.demo {
            "demo (built-in WeChat simulator)"
        } else {
            "real WeChat"
        };
        let mut rows: Vec<(&str, String)> = vec![
            ("mode", mode.to_string()),
            ("WXAUTH_LISTEN", self.listen.to_string()),
            ("WXAUTH_APPID", self.appid.clone()),
            ("WXAUTH_SECRET", self.secret.to_string()),
            (
                "WXAUTH_PUBLIC_URL",
                if self.follow_host {
                    format!(
                        "{} (or the host the browser used, where the demo listens)",
                        self.public_url
                    )
                } else {
                    self.public_url.clone()
                },
            ),
            ("redirect_uri", self.redirect_uri()),
            ("WXAUTH_SCOPE", self.scope.as_str().to_string()),
            (
                "WXAUTH_WEB_APPID",
                self.web.as_ref().map_or(
                    "(unset: desktops scan wxauth's own QR code)".into(),
                    |web| web.appid.clone(),
                ),
            ),
            (
                "WXAUTH_WEB_SECRET",
                self.web
                    .as_ref()
                    .map_or("(unset)".into(), |web| web.secret.to_string()),
            ),
            ("WXAUTH_LANG", self.lang.clone()),
            ("WXAUTH_OPEN_BASE", self.open_base.clone()),
            ("WXAUTH_API_BASE", self.api_base.clone()),
            ("WXAUTH_SESSION_TTL", format!("{}s", self.session_ttl)),
            ("WXAUTH_MAX_SESSIONS", self.max_sessions.to_string()),
            (
                "WXAUTH_SESSION_FILE",
                or(path(&self.session_file), "(memory only)"),
            ),
            (
                "WXAUTH_REDIS_URL",
                match &self.redis_url {
                    Some(url) => redis_address(url.expose()).unwrap_or_default(),
                    None => "(unset: state in this process)".to_string(),
                },
            ),
        ];
        if self.demo {
            rows.push(("WXAUTH_SIM_LISTEN", self.sim_listen.to_string()));
        }
        rows.extend([
            ("WXAUTH_TEMPLATES", or(path(&self.templates), "(embedded)")),
            ("WXAUTH_UPSTREAM_TIMEOUT", secs(self.upstream_timeout)),
            ("WXAUTH_CONNECT_TIMEOUT", secs(self.connect_timeout)),
            ("WXAUTH_CLIENT_TIMEOUT", secs(self.client_timeout)),
            ("WXAUTH_UPSTREAM_WORKERS", self.upstream_workers.to_string()),
            (
                "WXAUTH_UPSTREAM_PER_CLIENT",
                self.upstream_per_client.to_string(),
            ),
            ("WXAUTH_TRUSTED_PROXIES", proxies.join(",")),
            (
                "WXAUTH_ALLOW",
                self.allow
                    .as_ref()
                    .map_or("(unset: every logged-in user)".into(), |a| {
                        format!("{} entries", a.len())
                    }),
            ),
            ("WXAUTH_JS_DOMAINS", self.js_domains.join(",")),
            (
                "WXAUTH_CONTROL_SOCKET",
                or(path(&self.control_socket), "(unset: no `wxauth revoke`)"),
            ),
            ("WXAUTH_LOG", self.log.clone()),
            (
                "WXAUTH_METRICS_LISTEN",
                self.metrics_listen
                    .map_or("(unset: no /metrics)".into(), |addr| {
                        format!("{addr} (GET /metrics)")
                    }),
            ),
        ]);
        let at = rows.len() - 3;
        rows.splice(at..at, MessageEndpoint::rows(self.endpoint.as_ref()));
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (i, (name, value)) in rows.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{name:<width$} = {value}")?;
        }
        Ok(())
    }
}

/// WXAUTH_METRICS_LISTEN: an address of its own, never the app's (the
/// public listener must not answer /metrics).
fn metrics_listen(p: &mut Vec<String>, raw: &RawConfig, app: SocketAddr) -> Option<SocketAddr> {
    raw.get("WXAUTH_METRICS_LISTEN")?;
    let addr = socket_addr(p, raw, "WXAUTH_METRICS_LISTEN");
    let overlaps = addr.ip() == app.ip() || addr.ip().is_unspecified() || app.ip().is_unspecified();
    if addr.port() != 0 && addr.port() == app.port() && overlaps {
        p.push(format!(
            "WXAUTH_METRICS_LISTEN: {addr} is WXAUTH_LISTEN's address; metrics need a port of \
             their own, never the public one (e.g. 127.0.0.1:9101)"
        ));
    }
    Some(addr)
}

/// WXAUTH_JS_DOMAINS: host names as the console takes them (JS接口安全域名:
/// no scheme, no port, no path), comma-separated.
fn js_domains(p: &mut Vec<String>, list: &str) -> Vec<String> {
    let mut hosts = Vec::new();
    for host in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let plain = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !host.starts_with(['.', '-'])
            && !host.ends_with(['.', '-']);
        if plain {
            hosts.push(host.to_ascii_lowercase());
        } else {
            p.push(format!(
                "WXAUTH_JS_DOMAINS: {host:?}: a host name only, as in the console's \
                 JS接口安全域名 (no scheme, port or path)"
            ));
        }
    }
    if hosts.is_empty() && p.is_empty() {
        p.push("WXAUTH_JS_DOMAINS: empty; leave it unset for PUBLIC_URL's host".into());
    }
    hosts
}

/// A Redis URL as it may be shown: scheme, host, port and database, never
/// the user or password. None when it is not a redis:// or rediss:// URL
/// with a host.
pub fn redis_address(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "redis" | "rediss") {
        return None;
    }
    let host = parsed.host_str().filter(|h| !h.is_empty())?;
    let port = parsed.port().unwrap_or(6379);
    Some(format!(
        "{}://{host}:{port}{}",
        parsed.scheme(),
        parsed.path()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::from_raw(&RawConfig::from_env_and_args(env, &[])?)
    }

    fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
        config(pairs).expect_err("a configuration error").0
    }

    const REAL: [(&str, &str); 3] = [
        ("WXAUTH_APPID", "wx1234567890abcdef"),
        ("WXAUTH_SECRET", "s3cret"),
        ("WXAUTH_PUBLIC_URL", "https://wx.example.com"),
    ];

    #[test]
    fn an_unknown_variable_is_refused_with_the_closest_name() {
        let p = problems(&[("WXAUTH_PORT", "9000")]);
        assert_eq!(
            p,
            ["WXAUTH_PORT: unknown variable; did you mean WXAUTH_LISTEN? (see --help)"]
        );
        let p = problems(&[("WXAUTH_SESION_TTL", "60")]);
        assert!(p[0].contains("did you mean WXAUTH_SESSION_TTL?"), "{p:?}");
        let p = problems(&[("WXAUTH_QQQQQQQQQQQQ", "1")]);
        assert_eq!(
            p,
            ["WXAUTH_QQQQQQQQQQQQ: unknown variable (see --help for the settings)"]
        );
        // Not a setting, but the test suite's own switch: left alone.
        assert!(config(&[("WXAUTH_E2E", "1")]).is_ok());
    }

    #[test]
    fn an_appid_must_look_like_one() {
        for bad in [
            "wx123",
            "gh_1234567890abcd",
            "wx1234567890abcdef0",
            "wx12345678-0abcdef",
        ] {
            let mut pairs = REAL.to_vec();
            pairs[0] = ("WXAUTH_APPID", bad);
            let p = problems(&pairs);
            assert!(
                p.iter()
                    .any(|l| l.starts_with("WXAUTH_APPID:") && l.contains("wx and 16")),
                "{bad}: {p:?}"
            );
        }
        assert!(config(&REAL).is_ok());
    }

    #[test]
    fn a_public_url_on_a_port_wechat_does_not_call_is_a_warning() {
        let mut pairs = REAL.to_vec();
        pairs[2] = ("WXAUTH_PUBLIC_URL", "https://wx.example.com:8443/wx");
        let c = config(&pairs).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("port 8443"), "{:?}", c.warnings);
        for fine in [
            "https://wx.example.com:443",
            "http://wx.example.com:80/x",
            "https://[::1]",
        ] {
            pairs[2] = ("WXAUTH_PUBLIC_URL", fine);
            assert!(config(&pairs).unwrap().warnings.is_empty(), "{fine}");
        }
        // Demo mode runs on 8080 on purpose.
        assert!(config(&[]).unwrap().warnings.is_empty());
        // A port that is no port, or a host that is no host, is refused.
        for bad in [
            "https://wx.example.com:abc",
            "https://wx.example.com:",
            "https://wx.example.com:99999",
            "https://[wx.example.com]",
            "https://:443",
        ] {
            pairs[2] = ("WXAUTH_PUBLIC_URL", bad);
            let p = problems(&pairs);
            assert!(p[0].contains("is not a URL like"), "{bad}: {p:?}");
        }
    }

    #[test]
    fn localhost_means_loopback() {
        let c = config(&[("WXAUTH_LISTEN", "localhost:9090")]).unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 9090)));
        assert!(!problems(&[("WXAUTH_LISTEN", "example.com:80")]).is_empty());
    }

    #[test]
    fn switches_read_the_same_everywhere() {
        for on in ["1", "true", "TRUE", "yes", "on", "On"] {
            assert_eq!(parse_switch(on), Some(true), "{on}");
            assert!(config(&[("WXAUTH_DEMO", on)]).unwrap().demo, "{on}");
        }
        for off in ["0", "false", "no", "off", "OFF"] {
            assert_eq!(parse_switch(off), Some(false), "{off}");
        }
        assert_eq!(parse_switch("2"), None);
        assert!(problems(&[("WXAUTH_DEMO", "maybe")])[0].starts_with("WXAUTH_DEMO:"));
    }

    #[test]
    fn demo_off_or_a_service_start_without_an_account_is_refused() {
        let p = problems(&[("WXAUTH_DEMO", "0")]);
        assert!(p[0].contains("WXAUTH_DEMO=0"), "{p:?}");
        let p = problems(&[("INVOCATION_ID", "4e1d2a")]);
        assert!(p[0].contains("EnvironmentFile"), "{p:?}");
        // The demo as a service, on purpose.
        assert!(
            config(&[("INVOCATION_ID", "4e1d2a"), ("WXAUTH_DEMO", "1")])
                .unwrap()
                .demo
        );
        // Interactively, no configuration is the demo.
        assert!(config(&[]).unwrap().demo);
    }

    #[test]
    fn check_config_prints_every_setting_aligned() {
        let mut settings = REAL.to_vec();
        settings.extend([
            ("WXAUTH_TOKEN", "t0ken"),
            ("WXAUTH_ENCODING_AES_KEY", KEY),
            ("WXAUTH_ENCODING_AES_KEY_PREV", OLD_KEY),
        ]);
        let text = config(&settings).unwrap().to_string();
        let columns: Vec<usize> = text
            .lines()
            .map(|l| l.find(" = ").expect("name = value"))
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
        for Setting { var, .. } in SETTINGS {
            let shown = text.lines().any(|l| l.starts_with(var));
            // The secret's file, the demo switch and the simulator's address
            // are shown through what they lead to.
            let through_another = [
                "WXAUTH_SECRET_FILE",
                "WXAUTH_WEB_SECRET_FILE",
                "WXAUTH_DEMO",
                "WXAUTH_SIM_LISTEN",
            ]
            .contains(var);
            assert!(shown || through_another, "{var} missing from:\n{text}");
        }
        for secret in ["s3cret", "t0ken", KEY, OLD_KEY] {
            assert!(!text.contains(secret), "{secret} shown in:\n{text}");
        }
    }

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const OLD_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";

    #[test]
    fn the_message_mode_follows_the_key_and_never_runs_without_what_it_needs() {
        fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
            let mut settings = REAL.to_vec();
            settings.extend_from_slice(extra);
            settings
        }
        let endpoint = |extra: &[(&str, &str)]| config(&with(extra)).unwrap().endpoint;
        assert!(endpoint(&[]).is_none(), "no token, no /wechat");
        let plain = endpoint(&[("WXAUTH_TOKEN", "t0ken")]).unwrap();
        assert_eq!((plain.mode, plain.aes_keys.len()), (MsgMode::Plain, 0));
        let keyed =
            endpoint(&[("WXAUTH_TOKEN", "t0ken"), ("WXAUTH_ENCODING_AES_KEY", KEY)]).unwrap();
        assert_eq!(keyed.mode, MsgMode::Compat, "a key means compat by default");
        let rotating = endpoint(&[
            ("WXAUTH_TOKEN", "t0ken"),
            ("WXAUTH_ENCODING_AES_KEY", KEY),
            ("WXAUTH_ENCODING_AES_KEY_PREV", OLD_KEY),
            ("WXAUTH_MSG_MODE", "safe"),
        ])
        .unwrap();
        assert_eq!(rotating.mode, MsgMode::Safe);
        let keys: Vec<&str> = rotating.aes_keys.iter().map(|k| k.expose()).collect();
        assert_eq!(keys, [KEY, OLD_KEY], "current first");
        for (extra, expected) in [
            (
                &[
                    ("WXAUTH_TOKEN", "t0ken"),
                    ("WXAUTH_ENCODING_AES_KEY", &KEY[1..]),
                ][..],
                "43 letters and digits",
            ),
            (
                &[
                    ("WXAUTH_TOKEN", "t0ken"),
                    (
                        "WXAUTH_ENCODING_AES_KEY",
                        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF=",
                    ),
                ][..],
                "43 letters and digits",
            ),
            (
                &[("WXAUTH_TOKEN", "t0ken"), ("WXAUTH_MSG_MODE", "safe")][..],
                "needs WXAUTH_ENCODING_AES_KEY",
            ),
            (
                &[("WXAUTH_TOKEN", "t0ken"), ("WXAUTH_MSG_MODE", "aes")][..],
                "not plain, compat or safe",
            ),
            (
                &[
                    ("WXAUTH_TOKEN", "t0ken"),
                    ("WXAUTH_ENCODING_AES_KEY_PREV", KEY),
                ][..],
                "only beside",
            ),
            (
                &[("WXAUTH_ENCODING_AES_KEY", KEY)][..],
                "needs WXAUTH_TOKEN",
            ),
        ] {
            let p = problems(&with(extra));
            assert!(p.iter().any(|p| p.contains(expected)), "{extra:?}: {p:?}");
            assert!(
                !p.iter().any(|p| p.contains(KEY) || p.contains(&KEY[1..])),
                "{p:?}"
            );
        }
        let unused = config(&with(&[
            ("WXAUTH_TOKEN", "t0ken"),
            ("WXAUTH_ENCODING_AES_KEY", KEY),
            ("WXAUTH_MSG_MODE", "plain"),
        ]))
        .unwrap();
        assert!(
            unused.warnings.iter().any(|w| w.contains("set but unused")),
            "{:?}",
            unused.warnings
        );
    }

    #[test]
    fn a_website_app_needs_its_own_appid_and_secret() {
        let mut settings = REAL.to_vec();
        assert!(config(&settings).unwrap().web.is_none());
        settings.extend([
            ("WXAUTH_WEB_APPID", "wx00000000000web1"),
            ("WXAUTH_WEB_SECRET", "w3b"),
        ]);
        let web = config(&settings).unwrap().web.unwrap();
        assert_eq!(
            (web.appid.as_str(), web.secret.expose()),
            ("wx00000000000web1", "w3b")
        );
        let text = config(&settings).unwrap().to_string();
        assert!(
            text.contains("wx00000000000web1") && !text.contains("w3b"),
            "{text}"
        );
        for half in [
            ("WXAUTH_WEB_APPID", "wx00000000000web1"),
            ("WXAUTH_WEB_SECRET", "w3b"),
        ] {
            let mut settings = REAL.to_vec();
            settings.push(half);
            assert!(problems(&settings)[0].contains("needs both"), "{half:?}");
        }
        let mut settings = REAL.to_vec();
        settings.extend([
            ("WXAUTH_WEB_APPID", REAL[0].1),
            ("WXAUTH_WEB_SECRET", "w3b"),
        ]);
        assert!(problems(&settings)[0].contains("the Official Account's appid"));
        let mut settings = REAL.to_vec();
        settings.push(("WXAUTH_SCOPE", "snsapi_login"));
        assert!(problems(&settings)[0].contains("website app's scope"));
        // The demo has the simulator's.
        assert_eq!(config(&[]).unwrap().web.unwrap().appid, DEMO_WEB_APPID);
    }

    #[test]
    fn js_domains_are_public_urls_host_or_plain_host_names() {
        let c = config(&REAL).unwrap();
        assert_eq!(c.js_domains, ["wx.example.com"]);
        let mut settings = REAL.to_vec();
        settings.push(("WXAUTH_JS_DOMAINS", " M.Example.com, wx.example.com ,"));
        assert_eq!(
            config(&settings).unwrap().js_domains,
            ["m.example.com", "wx.example.com"]
        );
        for bad in [
            "https://m.example.com",
            "m.example.com:443",
            "m.example.com/a",
            ",",
            "-x.com",
        ] {
            let mut settings = REAL.to_vec();
            settings.push(("WXAUTH_JS_DOMAINS", bad));
            let p = problems(&settings);
            assert!(
                p.iter().any(|p| p.starts_with("WXAUTH_JS_DOMAINS")),
                "{bad}: {p:?}"
            );
        }
    }

    #[test]
    fn the_demo_makes_up_a_token_and_key_nobody_outside_knows() {
        let a = config(&[]).unwrap().endpoint.unwrap();
        let b = config(&[]).unwrap().endpoint.unwrap();
        assert!(a.made_up);
        assert_eq!(a.mode, MsgMode::Compat);
        assert_ne!(a.token.expose(), b.token.expose());
        assert_ne!(a.aes_keys[0].expose(), b.aes_keys[0].expose());
        assert!(message_endpoint::is_encoding_aes_key(
            a.aes_keys[0].expose()
        ));
        let text = config(&[]).unwrap().to_string();
        assert!(text.contains("(made up for the demo)"), "{text}");
        // A demo given a token keeps to it, in plaintext mode.
        let given = config(&[("WXAUTH_TOKEN", "t0ken")])
            .unwrap()
            .endpoint
            .unwrap();
        assert!(!given.made_up);
        assert_eq!(given.mode, MsgMode::Plain);
    }

    #[test]
    fn metrics_listen_on_an_address_of_their_own_and_say_when_it_is_not_loopback() {
        let c = config(&[]).unwrap();
        assert_eq!(c.metrics_listen, None);
        assert!(c.to_string().contains("WXAUTH_METRICS_LISTEN"));
        let c = config(&[("WXAUTH_METRICS_LISTEN", "127.0.0.1:9101")]).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9101".parse().unwrap()));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.to_string().contains("127.0.0.1:9101 (GET /metrics)"));
        for (app, metrics) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:8080", "0.0.0.0:8080"),
        ] {
            let p = problems(&[("WXAUTH_LISTEN", app), ("WXAUTH_METRICS_LISTEN", metrics)]);
            assert!(
                p.iter().any(|p| p.starts_with("WXAUTH_METRICS_LISTEN: ")),
                "{app} {metrics}: {p:?}"
            );
        }
        assert!(!problems(&[("WXAUTH_METRICS_LISTEN", "nowhere")]).is_empty());
        let c = config(&[("WXAUTH_METRICS_LISTEN", "0.0.0.0:9101")]).unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("anyone who reaches it sees your traffic's shape")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn nothing_set_means_demo_mode_on_loopback() {
        let c = config(&[]).unwrap();
        assert!(c.demo);
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.api_base, "http://127.0.0.1:8081");
        assert_eq!(c.redirect_uri(), "http://127.0.0.1:8080/callback");
        assert!(!c.secure_cookies());
    }

    #[test]
    fn a_demo_on_every_address_is_opened_over_loopback_with_its_simulator_beside_it() {
        let c = config(&[("WXAUTH_LISTEN", "0.0.0.0:8080")]).unwrap();
        assert_eq!(
            c.public_url, "http://127.0.0.1:8080",
            "never http://0.0.0.0"
        );
        assert_eq!(
            c.sim_listen.to_string(),
            "0.0.0.0:8081",
            "a phone reaches it too"
        );
        assert_eq!(c.open_base, "http://127.0.0.1:8081");
        assert!(c.follow_host);
        let c = config(&[("WXAUTH_LISTEN", "[::]:9000")]).unwrap();
        assert_eq!(c.public_url, "http://[::1]:9000");
        assert_eq!(c.sim_listen.to_string(), "[::]:8081");
        // Set, the simulator's address is taken as it is; and a public URL
        // set in demo mode is the truth: no host is followed.
        let c = config(&[
            ("WXAUTH_LISTEN", "0.0.0.0:8080"),
            ("WXAUTH_SIM_LISTEN", "127.0.0.1:9999"),
            ("WXAUTH_PUBLIC_URL", "http://192.0.2.7:8080"),
        ])
        .unwrap();
        assert_eq!(c.sim_listen.to_string(), "127.0.0.1:9999");
        assert!(!c.follow_host);
        assert!(
            !config(&REAL).unwrap().follow_host,
            "real mode never follows"
        );
        // A simulator kept on loopback behind an app on every address: said
        // by check-config as at start.
        let c = config(&[
            ("WXAUTH_LISTEN", "0.0.0.0:8080"),
            ("WXAUTH_SIM_LISTEN", "127.0.0.1:8081"),
        ])
        .unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("WXAUTH_SIM_LISTEN=127.0.0.1:8081: a phone cannot reach"),
            "{:?}",
            c.warnings
        );
        let c = config(&[("WXAUTH_LISTEN", "0.0.0.0:8080")]).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn open_and_api_bases_set_in_demo_mode_are_a_warning_not_silently_dropped() {
        let c = config(&[("WXAUTH_OPEN_BASE", "http://127.0.0.1:9")]).unwrap();
        assert_eq!(c.open_base, "http://127.0.0.1:8081", "the simulator");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("WXAUTH_OPEN_BASE: ignored in demo mode"),
            "{:?}",
            c.warnings
        );
        let mut pairs = REAL.to_vec();
        pairs.push(("WXAUTH_OPEN_BASE", "http://127.0.0.1:9"));
        assert!(config(&pairs).unwrap().warnings.is_empty());
    }

    #[test]
    fn a_path_prefix_is_read_from_the_public_url_and_checked() {
        let mut pairs = REAL.to_vec();
        for (url, prefix) in [
            ("https://example.com", ""),
            ("https://example.com/", ""),
            ("https://example.com/wx", "/wx"),
            ("https://example.com/wx/", "/wx"),
            ("https://example.com/a/b-c_d.e~f", "/a/b-c_d.e~f"),
        ] {
            pairs[2] = ("WXAUTH_PUBLIC_URL", url);
            assert_eq!(config(&pairs).unwrap().prefix, prefix, "{url}");
        }
        // Anything that would make a link leave the site or split a header.
        for url in [
            "https://example.com//wx",
            "https://example.com/wx//x",
            "https://example.com/./wx",
            "https://example.com/wx/..",
            "https://example.com/w%78",
            "https://example.com/wx;Path=/",
            "https://example.com/wx,x",
            "https://example.com/微信",
        ] {
            pairs[2] = ("WXAUTH_PUBLIC_URL", url);
            let p = problems(&pairs);
            assert!(
                p.iter().any(|l| l.starts_with("WXAUTH_PUBLIC_URL:")),
                "{url}: {p:?}"
            );
        }
    }

    #[test]
    fn appid_without_secret_and_secret_without_appid_are_errors() {
        let e = config(&[("WXAUTH_APPID", "wx1234567890abcdef")]).unwrap_err();
        assert!(e.0.iter().any(|l| l.starts_with("WXAUTH_SECRET:")), "{e:?}");
        let e = config(&[("WXAUTH_SECRET", "s")]).unwrap_err();
        assert!(e.0.iter().any(|l| l.starts_with("WXAUTH_APPID:")), "{e:?}");
    }

    #[test]
    fn real_mode_needs_a_public_url_and_reports_every_problem() {
        let e = config(&[
            ("WXAUTH_APPID", "wx1234567890abcdef"),
            ("WXAUTH_SECRET", "s"),
            ("WXAUTH_SCOPE", "snsapi_everything"),
            ("WXAUTH_LISTEN", "nowhere"),
        ])
        .unwrap_err();
        assert_eq!(e.0.len(), 3, "{e:?}");
    }

    #[test]
    fn real_mode_with_https_public_url() {
        let c = config(&[
            ("WXAUTH_APPID", "wx1234567890abcdef"),
            ("WXAUTH_SECRET", "s3cret"),
            ("WXAUTH_PUBLIC_URL", "https://wx.example.com/app/"),
        ])
        .unwrap();
        assert!(!c.demo);
        assert_eq!(c.redirect_uri(), "https://wx.example.com/app/callback");
        assert!(c.secure_cookies());
        assert!(
            !c.host_cookies(),
            "a path prefix keeps the plain cookie names"
        );
        assert!(config(&REAL).unwrap().host_cookies(), "https at the root");
        assert!(!config(&[]).unwrap().host_cookies(), "plain http");
        assert_eq!(
            HttpUrl::parse(&c.public_url).unwrap().origin(),
            "https://wx.example.com"
        );
        assert_eq!(c.public_host(), "wx.example.com");
        let shown = c.to_string();
        assert!(
            !shown.contains("s3cret") && shown.contains("****"),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn flags_override_the_environment() {
        let env = vec![("WXAUTH_LISTEN".to_string(), "127.0.0.1:1".to_string())];
        let args: Vec<String> = ["--listen", "127.0.0.1:2", "--scope=snsapi_base", "--demo"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = Config::from_raw(&RawConfig::from_env_and_args(env, &args).unwrap()).unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.scope, Scope::Base);
        assert!(c.demo);
        let bad = RawConfig::from_env_and_args(vec![], &["--bogus".to_string()]);
        assert!(bad.is_err());
    }

    #[test]
    fn the_secret_comes_from_systemd_credentials_when_nothing_else_is_set() {
        let dir = std::env::temp_dir().join(format!("wxauth-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("wxauth_secret"), "cred-secret\n").unwrap();
        let c = config(&[
            ("WXAUTH_APPID", "wx1234567890abcdef"),
            ("WXAUTH_PUBLIC_URL", "https://wx.example.com"),
            ("CREDENTIALS_DIRECTORY", dir.to_str().unwrap()),
        ])
        .unwrap();
        assert!(!c.demo);
        assert_eq!(c.secret.expose(), "cred-secret");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_redis_url_is_checked_and_shown_without_its_password() {
        assert_eq!(
            redis_address("redis://:s3cret@10.0.0.5:6380/2").as_deref(),
            Some("redis://10.0.0.5:6380/2")
        );
        assert_eq!(
            redis_address("rediss://user:pw@redis.example.com").as_deref(),
            Some("rediss://redis.example.com:6379")
        );
        for bad in ["", "http://h", "redis://", "redis:///0", "10.0.0.5:6379"] {
            assert_eq!(redis_address(bad), None, "{bad}");
        }
        let c = config(&[("WXAUTH_REDIS_URL", "redis://:s3cret@127.0.0.1:6379/0")]).unwrap();
        for shown in [c.to_string(), c.summary()] {
            assert!(shown.contains("redis://127.0.0.1:6379/0"), "{shown}");
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        let e = config(&[("WXAUTH_REDIS_URL", "http://127.0.0.1:6379")]).unwrap_err();
        assert!(e.0[0].starts_with("WXAUTH_REDIS_URL:"), "{e:?}");
    }

    #[test]
    fn a_session_file_in_a_missing_directory_is_an_error() {
        let e = config(&[("WXAUTH_SESSION_FILE", "/nonexistent-dir/s.json")]).unwrap_err();
        assert!(e.0[0].starts_with("WXAUTH_SESSION_FILE:"), "{e:?}");
    }
}
