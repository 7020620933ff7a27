//! Configuration: `RawConfig` collects strings from the environment and the
//! command line (a flag overrides its WXAUTH_* twin); `Config::from_raw`
//! validates all of it at once and derives what follows (demo mode,
//! redirect_uri, Secure cookies). Nothing here binds a socket.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting: (environment variable, flag, default, help line). The one
/// place defaults live; `--help` is printed from it.
#[rustfmt::skip]
pub const SETTINGS: &[(&str, &str, &str, &str)] = &[
    ("WXAUTH_LISTEN", "--listen", "127.0.0.1:8080", "address the app binds"),
    ("WXAUTH_APPID", "--appid", "", "Official Account appid (unset: demo mode)"),
    ("WXAUTH_SECRET", "", "", "appsecret (environment only)"),
    ("WXAUTH_SECRET_FILE", "--secret-file", "", "file holding the appsecret"),
    ("WXAUTH_PUBLIC_URL", "--public-url", "", "external base URL; callback = URL/callback"),
    ("WXAUTH_SCOPE", "--scope", "snsapi_userinfo", "snsapi_userinfo or snsapi_base"),
    ("WXAUTH_LANG", "--lang", "zh_CN", "sns/userinfo lang: zh_CN, zh_TW, en"),
    ("WXAUTH_OPEN_BASE", "--open-base", "https://open.weixin.qq.com", "authorize page base"),
    ("WXAUTH_API_BASE", "--api-base", "https://api.weixin.qq.com", "server API base"),
    ("WXAUTH_SESSION_TTL", "--session-ttl", "604800", "session lifetime, seconds"),
    ("WXAUTH_MAX_SESSIONS", "--max-sessions", "100000", "sessions kept; oldest evicted"),
    ("WXAUTH_SESSION_FILE", "--session-file", "", "sessions saved here at shutdown"),
    ("WXAUTH_DEMO", "--demo", "0", "1: run the built-in WeChat simulator"),
    ("WXAUTH_SIM_LISTEN", "--sim-listen", "127.0.0.1:8081", "simulator address (demo)"),
    ("WXAUTH_TEMPLATES", "--templates", "", "directory overriding the templates"),
    ("WXAUTH_UPSTREAM_TIMEOUT", "--upstream-timeout", "8", "whole WeChat call, seconds"),
    ("WXAUTH_CONNECT_TIMEOUT", "--connect-timeout", "3", "connecting to WeChat, seconds"),
    ("WXAUTH_CLIENT_TIMEOUT", "--client-timeout", "10", "idle or slow client cut off, seconds"),
    ("WXAUTH_LOG", "--log", "info", "off, error, warn, info, debug"),
    ("WXAUTH_TOKEN", "", "", "服务器配置 Token: enables /wechat (env only)"),
    ("WXAUTH_ALLOW", "--allow", "", "file of allowed openids/unionids (/auth/check)"),
];

/// The appid the simulator answers to in demo mode.
pub const DEMO_APPID: &str = "wx0000000000demo";

/// A secret that never prints itself.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that must send it (wechat.rs).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(unset)" } else { "****" })
    }
}

/// Every problem found in the configuration, one line each. main exits 2.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

/// Which OAuth scope the login asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    /// Silent: only the openid.
    #[serde(rename = "snsapi_base")]
    Base,
    /// Consent page; the profile comes from sns/userinfo.
    #[serde(rename = "snsapi_userinfo")]
    Userinfo,
}

impl Scope {
    /// WeChat's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::Userinfo => "snsapi_userinfo",
        }
    }
}

/// Settings as strings, before validation. Keys are the WXAUTH_* names.
#[derive(Debug, Default, Clone)]
pub struct RawConfig(pub HashMap<String, String>);

impl RawConfig {
    /// Takes WXAUTH_* variables from `env`, then flags from `args` (without the
    /// program name and subcommand). Both `--flag value` and `--flag=value` work.
    pub fn from_env_and_args(
        env: impl IntoIterator<Item = (String, String)>,
        args: &[String],
    ) -> Result<RawConfig, ConfigError> {
        let mut map: HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("WXAUTH_") || k == "CREDENTIALS_DIRECTORY")
            .collect();
        let mut problems = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let Some((var, ..)) = SETTINGS.iter().find(|s| !s.1.is_empty() && s.1 == flag) else {
                problems.push(format!("{flag}: unknown option (see --help)"));
                continue;
            };
            let value = if flag == "--demo" {
                inline.or(Some("1".to_string()))
            } else {
                inline.or_else(|| args.next().cloned())
            };
            match value {
                Some(v) => {
                    map.insert(var.to_string(), v);
                }
                None => problems.push(format!("{flag}: needs a value")),
            }
        }
        if problems.is_empty() {
            Ok(RawConfig(map))
        } else {
            Err(ConfigError(problems))
        }
    }

    fn get(&self, var: &str) -> Option<&str> {
        self.0
            .get(var)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }

    fn get_or_default(&self, var: &str) -> &str {
        self.get(var).unwrap_or_else(|| {
            SETTINGS
                .iter()
                .find(|s| s.0 == var)
                .map(|s| s.2)
                .expect("every variable read has a row in SETTINGS")
        })
    }
}

/// The validated configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub appid: String,
    pub secret: Secret,
    /// Without a trailing slash; never derived from a request's Host header.
    pub public_url: String,
    pub scope: Scope,
    pub lang: String,
    pub open_base: String,
    pub api_base: String,
    pub session_ttl: u64,
    pub max_sessions: usize,
    /// Where sessions are saved at shutdown and loaded at start; None keeps them in memory only.
    pub session_file: Option<PathBuf>,
    pub demo: bool,
    pub sim_listen: SocketAddr,
    pub templates: Option<PathBuf>,
    pub upstream_timeout: Duration,
    pub connect_timeout: Duration,
    /// A browser's connection is closed after this long without a byte either way.
    pub client_timeout: Duration,
    /// The 服务器配置 Token WeChat signs its pushes with; None: no /wechat.
    pub token: Option<Secret>,
    /// WXAUTH_ALLOW: who /auth/check lets through; None lets every logged-in user.
    pub allow: Option<std::collections::HashSet<String>>,
    pub log: String,
}

impl Config {
    /// Validates `raw`, collecting every problem rather than stopping at the first.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let mut p = Vec::new();
        let listen = socket_addr(&mut p, raw, "WXAUTH_LISTEN");
        let sim_listen = socket_addr(&mut p, raw, "WXAUTH_SIM_LISTEN");
        let secret = read_secret(&mut p, raw);
        let appid = raw.get("WXAUTH_APPID").map(str::to_string);
        let forced_demo = match raw.get_or_default("WXAUTH_DEMO") {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            other => {
                p.push(format!("WXAUTH_DEMO: {other:?} is not 0 or 1"));
                false
            }
        };
        let demo = forced_demo || (appid.is_none() && secret.is_none());
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
            if id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                p.push(format!(
                    "WXAUTH_APPID: {id:?} is not an appid (letters and digits)"
                ));
            }
        }
        let sim_url = format!("http://{sim_listen}");
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
            None if demo => format!("http://{listen}"),
            None => {
                p.push("WXAUTH_PUBLIC_URL: required when WXAUTH_APPID is set (e.g. https://wx.example.com)".into());
                String::new()
            }
        };
        let scope = match raw.get_or_default("WXAUTH_SCOPE") {
            "snsapi_userinfo" => Scope::Userinfo,
            "snsapi_base" => Scope::Base,
            other => {
                p.push(format!(
                    "WXAUTH_SCOPE: {other:?} is not snsapi_userinfo or snsapi_base"
                ));
                Scope::Userinfo
            }
        };
        let lang = raw.get_or_default("WXAUTH_LANG").to_string();
        if !["zh_CN", "zh_TW", "en"].contains(&lang.as_str()) {
            p.push(format!("WXAUTH_LANG: {lang:?} is not zh_CN, zh_TW or en"));
        }
        let session_ttl = number(&mut p, raw, "WXAUTH_SESSION_TTL", 60.0, 366.0 * 86400.0) as u64;
        let max_sessions = number(&mut p, raw, "WXAUTH_MAX_SESSIONS", 1.0, 1e8) as usize;
        let upstream = number(&mut p, raw, "WXAUTH_UPSTREAM_TIMEOUT", 0.05, 60.0);
        let connect = number(&mut p, raw, "WXAUTH_CONNECT_TIMEOUT", 0.05, 60.0);
        let client = number(&mut p, raw, "WXAUTH_CLIENT_TIMEOUT", 0.1, 3600.0);
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
        let token = raw.get("WXAUTH_TOKEN").map(|t| Secret::new(t.to_string()));
        if let Some(t) = &token {
            let t = t.expose();
            if !(3..=32).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
                p.push("WXAUTH_TOKEN: 3 to 32 letters and digits, as WeChat requires".into());
            }
        }
        let allow = raw.get("WXAUTH_ALLOW").and_then(|file| {
            crate::gateway::read_allow_list(Path::new(file))
                .map_err(|e| p.push(format!("WXAUTH_ALLOW: {e}")))
                .ok()
        });
        let log = raw.get_or_default("WXAUTH_LOG").to_string();
        if let Err(e) = crate::log::parse_level(&log) {
            p.push(format!("WXAUTH_LOG: {e}"));
        }
        if !p.is_empty() {
            return Err(ConfigError(p));
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
            scope,
            lang,
            open_base,
            api_base,
            session_ttl,
            max_sessions,
            session_file,
            demo,
            sim_listen,
            templates: raw.get("WXAUTH_TEMPLATES").map(PathBuf::from),
            upstream_timeout: Duration::from_secs_f64(upstream),
            connect_timeout: Duration::from_secs_f64(connect.min(upstream)),
            client_timeout: Duration::from_secs_f64(client),
            token,
            allow,
            log,
        })
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
        self.public_url
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.contains('/'))
    }

    /// The origin of the public URL (`https://wx.example.com`, port only when
    /// not the scheme's default), as browsers write it in an `Origin` header.
    pub fn public_origin(&self) -> String {
        origin_of(&self.public_url)
    }

    /// In demo mode, points the app at the simulator and a defaulted public URL
    /// at the app as actually bound (either may have been asked for port 0).
    pub fn bind_demo(&mut self, app: SocketAddr, sim: SocketAddr) {
        if self.public_url == format!("http://{}", self.listen) {
            self.public_url = format!("http://{app}");
        }
        self.listen = app;
        self.sim_listen = sim;
        self.open_base = format!("http://{sim}");
        self.api_base = format!("http://{sim}");
    }

    /// The effective configuration on one line (the start-up log line), secret masked.
    pub fn summary(&self) -> String {
        let file = self.session_file.as_ref().map(|p| p.display().to_string());
        format!(
            "mode={} appid={} secret={} public_url={} scope={} lang={} open_base={} api_base={} \
             session_ttl={} max_sessions={} session_file={} upstream_timeout={}s connect_timeout={}s \
             client_timeout={}s log={}",
            if self.demo { "demo" } else { "real" },
            self.appid,
            self.secret,
            self.public_url,
            self.scope.as_str(),
            self.lang,
            self.open_base,
            self.api_base,
            self.session_ttl,
            self.max_sessions,
            file.as_deref().unwrap_or("none"),
            self.upstream_timeout.as_secs_f64(),
            self.connect_timeout.as_secs_f64(),
            self.client_timeout.as_secs_f64(),
            self.log,
        )
    }

    /// The host part of PUBLIC_URL: the 网页授权域名 WeChat must be told.
    pub fn public_host(&self) -> String {
        host_of(&self.public_url)
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.demo {
            "demo (built-in WeChat simulator)"
        } else {
            "real WeChat"
        };
        writeln!(f, "mode                = {mode}")?;
        writeln!(f, "WXAUTH_LISTEN       = {}", self.listen)?;
        writeln!(f, "WXAUTH_APPID        = {}", self.appid)?;
        writeln!(f, "WXAUTH_SECRET       = {}", self.secret)?;
        writeln!(f, "WXAUTH_PUBLIC_URL   = {}", self.public_url)?;
        writeln!(f, "redirect_uri        = {}", self.redirect_uri())?;
        writeln!(f, "WXAUTH_SCOPE        = {}", self.scope.as_str())?;
        writeln!(f, "WXAUTH_LANG         = {}", self.lang)?;
        writeln!(f, "WXAUTH_OPEN_BASE    = {}", self.open_base)?;
        writeln!(f, "WXAUTH_API_BASE     = {}", self.api_base)?;
        writeln!(f, "WXAUTH_SESSION_TTL  = {}", self.session_ttl)?;
        writeln!(f, "WXAUTH_MAX_SESSIONS = {}", self.max_sessions)?;
        let file = self.session_file.as_ref().map(|p| p.display().to_string());
        writeln!(
            f,
            "WXAUTH_SESSION_FILE = {}",
            file.as_deref().unwrap_or("(memory only)")
        )?;
        if self.demo {
            writeln!(f, "WXAUTH_SIM_LISTEN   = {}", self.sim_listen)?;
        }
        let templates = self.templates.as_ref().map(|p| p.display().to_string());
        writeln!(
            f,
            "WXAUTH_TEMPLATES    = {}",
            templates.as_deref().unwrap_or("(embedded)")
        )?;
        writeln!(
            f,
            "WXAUTH_UPSTREAM_TIMEOUT = {}s",
            self.upstream_timeout.as_secs_f64()
        )?;
        writeln!(
            f,
            "WXAUTH_CONNECT_TIMEOUT  = {}s",
            self.connect_timeout.as_secs_f64()
        )?;
        write!(f, "WXAUTH_LOG          = {}", self.log)
    }
}

fn socket_addr(p: &mut Vec<String>, raw: &RawConfig, var: &str) -> SocketAddr {
    let value = raw.get_or_default(var);
    value.parse().unwrap_or_else(|_| {
        p.push(format!(
            "{var}: {value:?} is not an address like 127.0.0.1:8080"
        ));
        SocketAddr::from(([127, 0, 0, 1], 0))
    })
}

fn number(p: &mut Vec<String>, raw: &RawConfig, var: &str, min: f64, max: f64) -> f64 {
    let value = raw.get_or_default(var);
    match value.parse::<f64>() {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            p.push(format!(
                "{var}: {value:?} is not a number from {min} to {max}"
            ));
            min
        }
    }
}

/// An http(s) base URL: scheme, host, optional port and path prefix; no query.
fn base_url(p: &mut Vec<String>, raw: &RawConfig, var: &str) -> String {
    let value = raw.get_or_default(var).trim_end_matches('/');
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        !host.is_empty()
            && !r.contains(['?', '#', ' ', '\\'])
            && !host.contains('@')
            && r.chars().all(|c| c.is_ascii_graphic())
    });
    if !ok {
        p.push(format!(
            "{var}: {value:?} is not a URL like https://wx.example.com"
        ));
    }
    value.to_string()
}

/// The origin of an http(s) URL: scheme and authority, lower-cased, the
/// default port (80 for http, 443 for https) left out, as in `Origin`.
pub fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split('/').next().unwrap_or("").to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(&authority);
    format!("{scheme}://{authority}")
}

/// The host of an http(s) URL, without port.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_string();
    }
    authority.split(':').next().unwrap_or("").to_string()
}

/// WXAUTH_SECRET, else WXAUTH_SECRET_FILE, else `$CREDENTIALS_DIRECTORY/wxauth_secret`
/// (systemd LoadCredential=). A trailing newline in a file is not part of the secret.
fn read_secret(p: &mut Vec<String>, raw: &RawConfig) -> Option<Secret> {
    let inline = raw.get("WXAUTH_SECRET");
    let file = raw
        .get("WXAUTH_SECRET_FILE")
        .map(PathBuf::from)
        .or_else(|| {
            let dir = raw.get("CREDENTIALS_DIRECTORY")?;
            let path = PathBuf::from(dir).join("wxauth_secret");
            path.exists().then_some(path)
        });
    match (inline, file) {
        (Some(_), Some(_)) if raw.get("WXAUTH_SECRET_FILE").is_some() => {
            p.push("WXAUTH_SECRET_FILE: set either it or WXAUTH_SECRET, not both".into());
            None
        }
        (Some(s), _) => Some(Secret::new(s.trim().to_string())),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => Some(Secret::new(s.trim().to_string())),
            Ok(_) => {
                p.push(format!("WXAUTH_SECRET_FILE: {} is empty", path.display()));
                None
            }
            Err(e) => {
                p.push(format!(
                    "WXAUTH_SECRET_FILE: cannot read {}: {e}",
                    path.display()
                ));
                None
            }
        },
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::from_raw(&RawConfig::from_env_and_args(env, &[])?)
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
    fn appid_without_secret_and_secret_without_appid_are_errors() {
        let e = config(&[("WXAUTH_APPID", "wx123")]).unwrap_err();
        assert!(e.0.iter().any(|l| l.starts_with("WXAUTH_SECRET:")), "{e:?}");
        let e = config(&[("WXAUTH_SECRET", "s")]).unwrap_err();
        assert!(e.0.iter().any(|l| l.starts_with("WXAUTH_APPID:")), "{e:?}");
    }

    #[test]
    fn real_mode_needs_a_public_url_and_reports_every_problem() {
        let e = config(&[
            ("WXAUTH_APPID", "wx123"),
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
            ("WXAUTH_APPID", "wx123"),
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
        assert_eq!(c.public_origin(), "https://wx.example.com");
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
            ("WXAUTH_APPID", "wx123"),
            ("WXAUTH_PUBLIC_URL", "https://wx.example.com"),
            ("CREDENTIALS_DIRECTORY", dir.to_str().unwrap()),
        ])
        .unwrap();
        assert!(!c.demo);
        assert_eq!(c.secret.expose(), "cred-secret");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_session_file_in_a_missing_directory_is_an_error() {
        let e = config(&[("WXAUTH_SESSION_FILE", "/nonexistent-dir/s.json")]).unwrap_err();
        assert!(e.0[0].starts_with("WXAUTH_SESSION_FILE:"), "{e:?}");
    }

    #[test]
    fn origin_drops_the_path_and_the_default_port() {
        assert_eq!(
            origin_of("https://WX.example.com:443/app"),
            "https://wx.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin_of("http://h:80"), "http://h");
        assert_eq!(origin_of("https://h:8443"), "https://h:8443");
    }

    #[test]
    fn host_of_strips_scheme_port_and_path() {
        assert_eq!(host_of("https://a.b.c:8443/x"), "a.b.c");
        assert_eq!(host_of("http://[::1]:80/"), "::1");
        assert_eq!(host_of("http://h"), "h");
    }
}
