//! The settings of the message endpoint, `/wechat` (服务器配置): the token
//! WeChat signs with, the EncodingAESKey of safe and compat mode, and which
//! pushes are taken (docs/wechat.md §7 and §10).

use super::{RawConfig, Secret};
use std::fmt;

/// Which pushes /wechat takes: WXAUTH_MSG_MODE, after the console's
/// 消息加解密方式.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgMode {
    /// 明文模式: plaintext pushes; an encrypted-only push is refused.
    Plain,
    /// 兼容模式: encrypted pushes are decrypted and answered encrypted;
    /// plaintext ones still answered in plaintext (an account part-way
    /// through switching).
    Compat,
    /// 安全模式: encrypted pushes only. A plaintext push is refused: no
    /// request can talk the endpoint down to plaintext.
    Safe,
}

impl MsgMode {
    fn parse(value: &str) -> Option<MsgMode> {
        match value {
            "plain" => Some(MsgMode::Plain),
            "compat" => Some(MsgMode::Compat),
            "safe" => Some(MsgMode::Safe),
            _ => None,
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgMode::Plain => "plain",
            MsgMode::Compat => "compat",
            MsgMode::Safe => "safe",
        }
    }
}

/// /wechat's configuration; the endpoint exists only with a token.
#[derive(Clone, Debug)]
pub struct MessageEndpoint {
    /// The 服务器配置 Token WeChat signs its pushes with.
    pub token: Secret,
    /// The EncodingAESKeys an encrypted push is tried with, in order: the
    /// current one, then the previous one (WeChat's advice while rotating).
    /// Each is 43 letters and digits, checked here.
    pub aes_keys: Vec<Secret>,
    pub mode: MsgMode,
    /// Demo mode made the token and key up (none was set): nobody outside
    /// knows them, and the simulator's page pushes with them.
    pub made_up: bool,
}

/// Reads the endpoint's settings, adding each problem to `p`. Demo mode with
/// no token makes up a token and a key, so that the simulator's page can
/// show encrypted pushes.
pub(super) fn read(p: &mut Vec<String>, raw: &RawConfig, demo: bool) -> Option<MessageEndpoint> {
    let key = |var: &str, p: &mut Vec<String>| {
        let value = raw.get(var)?;
        if !is_encoding_aes_key(value) {
            p.push(format!(
                "{var}: 43 letters and digits, as the console shows it (服务器配置 → \
                 消息加解密密钥); this one has {} characters",
                value.chars().count()
            ));
        }
        Some(Secret::new(value.to_string()))
    };
    let current = key("WXAUTH_ENCODING_AES_KEY", p);
    let previous = key("WXAUTH_ENCODING_AES_KEY_PREV", p);
    if previous.is_some() && current.is_none() {
        p.push(
            "WXAUTH_ENCODING_AES_KEY_PREV: only beside WXAUTH_ENCODING_AES_KEY (the current key)"
                .into(),
        );
    }
    let mode = raw.get("WXAUTH_MSG_MODE").map(|value| {
        MsgMode::parse(value).unwrap_or_else(|| {
            p.push(format!(
                "WXAUTH_MSG_MODE: {value:?} is not plain, compat or safe"
            ));
            MsgMode::Plain
        })
    });
    let token = raw.get("WXAUTH_TOKEN").map(|t| Secret::new(t.to_string()));
    if let Some(t) = &token {
        let t = t.expose();
        if !(3..=32).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            p.push("WXAUTH_TOKEN: 3 to 32 letters and digits, as WeChat requires".into());
        }
    }
    let Some(token) = token else {
        if current.is_some() || mode.is_some() {
            if demo {
                p.push(
                    "WXAUTH_ENCODING_AES_KEY / WXAUTH_MSG_MODE: in demo mode, only with \
                     WXAUTH_TOKEN (without one the demo makes up all three)"
                        .into(),
                );
            } else {
                p.push(
                    "WXAUTH_ENCODING_AES_KEY / WXAUTH_MSG_MODE: /wechat needs WXAUTH_TOKEN \
                     too (服务器配置 → 令牌)"
                        .into(),
                );
            }
            return None;
        }
        return demo.then(|| MessageEndpoint {
            token: Secret::new(crate::random::token(32)),
            aes_keys: vec![Secret::new(crate::random::token(43))],
            mode: MsgMode::Compat,
            made_up: true,
        });
    };
    let mode = mode.unwrap_or(match current {
        Some(_) => MsgMode::Compat,
        None => MsgMode::Plain,
    });
    if mode != MsgMode::Plain && current.is_none() {
        p.push(format!(
            "WXAUTH_MSG_MODE={}: needs WXAUTH_ENCODING_AES_KEY (服务器配置 → 消息加解密密钥)",
            mode.as_str()
        ));
    }
    Some(MessageEndpoint {
        token,
        aes_keys: current.into_iter().chain(previous).collect(),
        mode,
        made_up: false,
    })
}

/// What the console shows as an EncodingAESKey: 43 letters and digits, which
/// always decode to 32 bytes (wechat/encryption.rs decodes them).
pub fn is_encoding_aes_key(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl MessageEndpoint {
    /// Settings that work but are probably not meant.
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.mode == MsgMode::Plain && !self.aes_keys.is_empty() {
            warnings.push(
                "WXAUTH_MSG_MODE=plain: WXAUTH_ENCODING_AES_KEY is set but unused; encrypted \
                 pushes are refused (use compat or safe)"
                    .into(),
            );
        }
        if let [current, previous] = self.aes_keys.as_slice() {
            if current.expose() == previous.expose() {
                warnings.push(
                    "WXAUTH_ENCODING_AES_KEY_PREV: the same as WXAUTH_ENCODING_AES_KEY".into(),
                );
            }
        }
        warnings
    }

    /// check-config's rows for the endpoint; no secret is shown.
    pub(super) fn rows(this: Option<&MessageEndpoint>) -> Vec<(&'static str, String)> {
        let Some(endpoint) = this else {
            return vec![("WXAUTH_TOKEN", "(unset: no /wechat)".into())];
        };
        let shown = |secret: &Secret| {
            if endpoint.made_up {
                "(made up for the demo)".to_string()
            } else {
                secret.to_string()
            }
        };
        let mut rows = vec![("WXAUTH_TOKEN", shown(&endpoint.token))];
        rows.push((
            "WXAUTH_ENCODING_AES_KEY",
            endpoint
                .aes_keys
                .first()
                .map_or("(unset: plaintext pushes only)".into(), shown),
        ));
        if let Some(previous) = endpoint.aes_keys.get(1) {
            rows.push(("WXAUTH_ENCODING_AES_KEY_PREV", shown(previous)));
        }
        rows.push(("WXAUTH_MSG_MODE", endpoint.mode.to_string()));
        rows
    }
}

impl fmt::Display for MsgMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MsgMode::Plain => "plain (明文模式: plaintext pushes)",
            MsgMode::Compat => "compat (兼容模式: encrypted pushes answered encrypted, plaintext ones in plaintext)",
            MsgMode::Safe => "safe (安全模式: encrypted pushes only)",
        })
    }
}
