//! The settings: one table of every WXAUTH_* variable, its default and its
//! help line, and whether a flag gives it too (named after the variable);
//! reading them from the environment; "did you mean" for a name that is not
//! one.

use std::collections::HashMap;

/// One setting: its variable, how the command line gives it, its default and
/// its help line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// WXAUTH_ and the name in capitals, e.g. WXAUTH_PUBLIC_URL.
    pub var: &'static str,
    pub flag: Flag,
    /// What an unset or empty variable means ("" for nothing).
    pub default: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
}

/// How the command line gives a setting. The flag's name is the variable's
/// (`Setting::flag_name`), so a new setting has its flag with nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// `--name VALUE` or `--name=VALUE`.
    Value,
    /// `--name` alone means 1; `--name=0` turns it off.
    Switch,
    /// No flag: a command line is visible to every user of the machine
    /// (ps), so a secret comes from the environment or a file only.
    EnvOnly,
}

impl Setting {
    /// The flag, made from the variable's name (WXAUTH_PUBLIC_URL:
    /// `--public-url`); None for a setting of the environment only.
    pub fn flag_name(&self) -> Option<String> {
        (self.flag != Flag::EnvOnly).then(|| format!("--{}", self.long_name()))
    }

    /// The name after `--`, whether or not there is such a flag.
    pub(super) fn long_name(&self) -> String {
        self.var
            .trim_start_matches("WXAUTH_")
            .to_ascii_lowercase()
            .replace('_', "-")
    }
}

const fn value(var: &'static str, default: &'static str, help: &'static str) -> Setting {
    Setting {
        var,
        flag: Flag::Value,
        default,
        help,
    }
}

const fn switch(var: &'static str, default: &'static str, help: &'static str) -> Setting {
    Setting {
        var,
        flag: Flag::Switch,
        default,
        help,
    }
}

const fn env_only(var: &'static str, default: &'static str, help: &'static str) -> Setting {
    Setting {
        var,
        flag: Flag::EnvOnly,
        default,
        help,
    }
}

/// Every setting. The one place defaults live; `--help` is printed from it,
/// and the command line reads its flags from it.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    value("WXAUTH_LISTEN", "127.0.0.1:8080", "address the app binds"),
    value("WXAUTH_APPID", "", "Official Account appid (unset: demo mode)"),
    env_only("WXAUTH_SECRET", "", "appsecret (environment only)"),
    value("WXAUTH_SECRET_FILE", "", "file holding the appsecret"),
    value("WXAUTH_WEB_APPID", "", "website app (开放平台 网站应用): desktop QR login"),
    env_only("WXAUTH_WEB_SECRET", "", "the website app's appsecret (environment only)"),
    value("WXAUTH_WEB_SECRET_FILE", "", "file holding the website app's appsecret"),
    value("WXAUTH_PUBLIC_URL", "", "external base URL; callback = URL/callback"),
    value("WXAUTH_SCOPE", "snsapi_userinfo", "snsapi_userinfo or snsapi_base"),
    value("WXAUTH_LANG", "zh_CN", "sns/userinfo lang: zh_CN, zh_TW, en"),
    value("WXAUTH_OPEN_BASE", "https://open.weixin.qq.com", "authorize page base"),
    value("WXAUTH_API_BASE", "https://api.weixin.qq.com", "server API base"),
    value("WXAUTH_SESSION_TTL", "604800", "session lifetime, seconds"),
    value("WXAUTH_MAX_SESSIONS", "100000", "sessions kept; oldest evicted"),
    value("WXAUTH_SESSION_FILE", "", "sessions saved here at shutdown"),
    env_only("WXAUTH_REDIS_URL", "", "redis[s]://…: state shared by instances (env only)"),
    switch("WXAUTH_DEMO", "0", "1: run the built-in WeChat simulator"),
    value("WXAUTH_SIM_LISTEN", "LISTEN's IP:8081", "simulator address (demo)"),
    value("WXAUTH_TEMPLATES", "", "directory overriding the templates"),
    value("WXAUTH_UPSTREAM_TIMEOUT", "8", "whole WeChat call, seconds"),
    value("WXAUTH_CONNECT_TIMEOUT", "3", "connecting to WeChat, seconds"),
    value("WXAUTH_CLIENT_TIMEOUT", "10", "idle or slow client cut off, seconds"),
    value("WXAUTH_UPSTREAM_WORKERS", "64", "WeChat calls made at once, at most"),
    value("WXAUTH_UPSTREAM_PER_CLIENT", "8", "one client's requests waiting on WeChat"),
    value("WXAUTH_TRUSTED_PROXIES", "127.0.0.1,::1", "peers whose X-Real-IP is the client"),
    value("WXAUTH_LOG", "info", "off, error, warn, info, debug"),
    value("WXAUTH_METRICS_LISTEN", "", "address for GET /metrics (Prometheus); unset: none"),
    env_only("WXAUTH_TOKEN", "", "服务器配置 Token: enables /wechat (env only)"),
    env_only("WXAUTH_ENCODING_AES_KEY", "", "EncodingAESKey: encrypted pushes (env only)"),
    env_only("WXAUTH_ENCODING_AES_KEY_PREV", "", "the previous EncodingAESKey, while rotating"),
    value("WXAUTH_MSG_MODE", "", "plain, compat or safe (default: compat with a key)"),
    value("WXAUTH_ALLOW", "", "file of allowed openids/unionids (/auth/check)"),
    value("WXAUTH_CONTROL_SOCKET", "", "unix socket for `wxauth revoke` (mode 0600)"),
    value("WXAUTH_JS_DOMAINS", "PUBLIC_URL's host", "hosts whose pages get wx.config"),
];

/// Variables outside WXAUTH_* that configuration reads: systemd's
/// credentials directory, and its marks of a service start (non-interactive).
const FROM_THE_ENVIRONMENT: [&str; 3] =
    ["CREDENTIALS_DIRECTORY", "INVOCATION_ID", "JOURNAL_STREAM"];

/// WXAUTH_* variables that are not settings but may be set around wxauth:
/// the test suite's switch for its real-browser tests.
const IGNORED: [&str; 1] = ["WXAUTH_E2E"];

/// What people write for a setting that has another name here.
const SYNONYMS: &[(&str, &str)] = &[
    ("PORT", "WXAUTH_LISTEN"),
    ("HOST", "WXAUTH_LISTEN"),
    ("BIND", "WXAUTH_LISTEN"),
    ("ADDR", "WXAUTH_LISTEN"),
    ("ADDRESS", "WXAUTH_LISTEN"),
    ("APP_ID", "WXAUTH_APPID"),
    ("APPSECRET", "WXAUTH_SECRET"),
    ("APP_SECRET", "WXAUTH_SECRET"),
    ("URL", "WXAUTH_PUBLIC_URL"),
    ("BASE_URL", "WXAUTH_PUBLIC_URL"),
    ("DOMAIN", "WXAUTH_PUBLIC_URL"),
    ("LOG_LEVEL", "WXAUTH_LOG"),
    ("SESSION_FILE_PATH", "WXAUTH_SESSION_FILE"),
    ("REDIS", "WXAUTH_REDIS_URL"),
    ("REDIS_URL", "WXAUTH_REDIS_URL"),
];

/// Every problem found in the configuration, one line each. main exits 2.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

/// Settings as strings, before validation. Keys are the WXAUTH_* names.
#[derive(Debug, Default, Clone)]
pub struct RawConfig(pub HashMap<String, String>);

impl RawConfig {
    /// Takes the WXAUTH_* variables (and the few others configuration
    /// reads) from `env`, with a line for each WXAUTH_* variable that is no
    /// setting, sorted.
    pub(super) fn from_env(
        env: impl IntoIterator<Item = (String, String)>,
    ) -> (RawConfig, Vec<String>) {
        let map: HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("WXAUTH_") || FROM_THE_ENVIRONMENT.contains(&k.as_str()))
            .collect();
        // A typo in an env file (WXAUTH_PORT=9000) would otherwise be ignored
        // without a word, and the server would run with the default.
        let mut problems: Vec<String> = map
            .keys()
            .filter(|k| k.starts_with("WXAUTH_") && setting(k).is_none())
            .filter(|k| !IGNORED.contains(&k.as_str()))
            .map(|k| unknown_variable(k))
            .collect();
        problems.sort();
        (RawConfig(map), problems)
    }

    /// The value of `var`, if set and not empty.
    pub(super) fn get(&self, var: &str) -> Option<&str> {
        self.0
            .get(var)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }

    /// The value of `var`, else its default from `SETTINGS`.
    pub(super) fn get_or_default(&self, var: &str) -> &str {
        self.get(var).unwrap_or_else(|| {
            setting(var)
                .map(|s| s.default)
                .expect("every variable read has a row in SETTINGS")
        })
    }
}

/// The row of `var`.
fn setting(var: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.var == var)
}

/// "WXAUTH_PORT: unknown variable; did you mean WXAUTH_LISTEN?"
fn unknown_variable(var: &str) -> String {
    let bare = var.trim_start_matches("WXAUTH_");
    let meant = SYNONYMS
        .iter()
        .find(|(said, _)| *said == bare)
        .map(|(_, meant)| *meant)
        .or_else(|| closest(var, SETTINGS.iter().map(|s| s.var), 4));
    match meant {
        Some(name) => format!("{var}: unknown variable; did you mean {name}? (see --help)"),
        None => format!("{var}: unknown variable (see --help for the settings)"),
    }
}

/// The name nearest to `word` within `max` edits (the first of equals in
/// alphabetical order), for "did you mean".
pub(super) fn closest<'a, S: AsRef<str> + Ord + 'a>(
    word: &str,
    names: impl Iterator<Item = S>,
    max: usize,
) -> Option<S> {
    names
        .map(|name| (edit_distance(word, name.as_ref()), name))
        .filter(|(d, _)| *d <= max)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A yes/no setting: 1/0, true/false, yes/no, on/off, in any case.
pub fn parse_switch(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_is_named_after_its_variable() {
        let flag = |var: &str| setting(var).and_then(Setting::flag_name);
        assert_eq!(flag("WXAUTH_PUBLIC_URL").as_deref(), Some("--public-url"));
        assert_eq!(
            flag("WXAUTH_UPSTREAM_PER_CLIENT").as_deref(),
            Some("--upstream-per-client")
        );
        assert_eq!(flag("WXAUTH_DEMO").as_deref(), Some("--demo"));
        // Secrets: the environment or a file, never the command line.
        assert_eq!(flag("WXAUTH_SECRET"), None);
        assert_eq!(flag("WXAUTH_TOKEN"), None);
        assert_eq!(flag("WXAUTH_SECRET_FILE").as_deref(), Some("--secret-file"));
        for s in SETTINGS {
            assert!(s.var.starts_with("WXAUTH_"), "{}", s.var);
            assert!(
                s.var[7..]
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{}",
                s.var
            );
        }
    }

    #[test]
    fn the_closest_name_is_within_reach() {
        let names = ["WXAUTH_LISTEN", "WXAUTH_LOG"];
        assert_eq!(
            closest("WXAUTH_LISTN", names.into_iter(), 4),
            Some("WXAUTH_LISTEN")
        );
        assert_eq!(closest("QQQQQQQQQQ", names.into_iter(), 4), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
