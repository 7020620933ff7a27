//! Reading each kind of value a setting holds: addresses, numbers, lists,
//! URLs, and the secret, which never prints itself. Each reader adds a line
//! to the problems for a bad value and goes on, so that every problem is
//! reported at once.

use super::settings::RawConfig;
use crate::transport::host::{self, HttpUrl};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// A secret that never prints itself.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that must send it (wechat/client.rs).
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

/// An address to bind; `localhost:8080`, what people write, is loopback
/// without a lookup.
pub(super) fn socket_addr(p: &mut Vec<String>, raw: &RawConfig, var: &str) -> SocketAddr {
    let value = raw.get_or_default(var);
    host::listen_address(value).unwrap_or_else(|| {
        p.push(format!(
            "{var}: {value:?} is not an address like 127.0.0.1:8080"
        ));
        SocketAddr::from(([127, 0, 0, 1], 0))
    })
}

/// A comma-separated list of IP addresses (an empty value is an empty list).
pub(super) fn ip_list(p: &mut Vec<String>, raw: &RawConfig, var: &str) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for item in raw.get_or_default(var).split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        match item.parse() {
            Ok(ip) => ips.push(ip),
            Err(_) => p.push(format!("{var}: {item:?} is not an IP address")),
        }
    }
    ips
}

/// A number from `min` to `max`.
pub(super) fn number(p: &mut Vec<String>, raw: &RawConfig, var: &str, min: f64, max: f64) -> f64 {
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

/// An http(s) base URL: scheme, host, optional port and path prefix; no
/// query, and nothing but visible ASCII. The scheme in lower case, as
/// `Config::secure_cookies` reads it.
pub(super) fn base_url(p: &mut Vec<String>, raw: &RawConfig, var: &str) -> String {
    let value = raw.get_or_default(var).trim_end_matches('/');
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && HttpUrl::parse(value).is_some()
        && !value.contains(['?', '#', '\\'])
        && value.chars().all(|c| c.is_ascii_graphic());
    if !ok {
        p.push(format!(
            "{var}: {value:?} is not a URL like https://wx.example.com"
        ));
    }
    value.to_string()
}

/// A path prefix goes into links, Location headers, cookie paths and
/// nginx's location: segments of unreserved characters only, none empty,
/// none `.` or `..` (an empty one would make `//host` links).
pub(super) fn prefix_ok(prefix: &str) -> bool {
    prefix.is_empty()
        || prefix.strip_prefix('/').is_some_and(|path| {
            path.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            })
        })
}

/// WXAUTH_SECRET, else WXAUTH_SECRET_FILE, else `$CREDENTIALS_DIRECTORY/wxauth_secret`
/// (systemd LoadCredential=). A trailing newline in a file is not part of the secret.
/// Where a secret may come from: its variable, its file's variable, and
/// its systemd credential's name (in `$CREDENTIALS_DIRECTORY`).
#[derive(Clone, Copy)]
pub(super) struct SecretNames {
    pub inline: &'static str,
    pub file: &'static str,
    pub credential: &'static str,
}

/// The Official Account's appsecret.
pub(super) const OA_SECRET: SecretNames = SecretNames {
    inline: "WXAUTH_SECRET",
    file: "WXAUTH_SECRET_FILE",
    credential: "wxauth_secret",
};

/// The website app's appsecret.
pub(super) const WEB_SECRET: SecretNames = SecretNames {
    inline: "WXAUTH_WEB_SECRET",
    file: "WXAUTH_WEB_SECRET_FILE",
    credential: "wxauth_web_secret",
};

pub(super) fn read_secret(
    p: &mut Vec<String>,
    raw: &RawConfig,
    names: SecretNames,
) -> Option<Secret> {
    let SecretNames {
        inline: inline_var,
        file: file_var,
        credential,
    } = names;
    let inline = raw.get(inline_var);
    let file = raw.get(file_var).map(PathBuf::from).or_else(|| {
        let dir = raw.get("CREDENTIALS_DIRECTORY")?;
        let path = PathBuf::from(dir).join(credential);
        path.exists().then_some(path)
    });
    match (inline, file) {
        (Some(_), Some(_)) if raw.get(file_var).is_some() => {
            p.push(format!(
                "{file_var}: set either it or {inline_var}, not both"
            ));
            None
        }
        (Some(s), _) => Some(Secret::new(s.trim().to_string())),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => Some(Secret::new(s.trim().to_string())),
            Ok(_) => {
                p.push(format!("{file_var}: {} is empty", path.display()));
                None
            }
            Err(e) => {
                p.push(format!("{file_var}: cannot read {}: {e}", path.display()));
                None
            }
        },
        (None, None) => None,
    }
}
