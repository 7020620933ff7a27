//! Talks to WeChat: builds the authorize URL and makes the server-to-server
//! calls (code exchange, refresh, sns/userinfo, sns/auth) over one ureq agent
//! with hard timeouts. Distrusts every answer. Knows nothing about browsers,
//! cookies or sessions; the only file that names ureq.

use crate::config::{Config, Scope, Secret, WebApp};
use crate::metrics;
use crate::transport::http::{encode_component, encode_query};
use crate::wechat::errcode::{
    ACCESS_TOKEN_EXPIRED, INVALID_ACCESS_TOKEN, INVALID_CREDENTIAL, INVALID_REFRESH_TOKEN,
    REFRESH_TOKEN_EXPIRED, SYSTEM_BUSY, TOKENS_REVOKED,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Answers larger than this are refused: WeChat's are a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// Why a WeChat call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WechatError {
    /// WeChat answered `{"errcode":N,"errmsg":"..."}` with N ≠ 0.
    Api { errcode: i64, errmsg: String },
    /// No complete answer within the configured timeout.
    Timeout,
    /// Could not connect, or the connection broke.
    Transport(String),
    /// An HTTP status other than 200 (WeChat answers errors with 200).
    Status(u16),
    /// A body that is not the JSON we expect, or too large.
    BadAnswer(String),
    /// An openid or unionid that is not printable ASCII: it would reach the
    /// gateway's headers and our pages, so the login is refused.
    BadIdentity(&'static str),
}

impl WechatError {
    /// True for the errcodes that mean "this access_token is no good, refresh it".
    pub fn is_stale_token(&self) -> bool {
        matches!(
            self,
            WechatError::Api {
                errcode: ACCESS_TOKEN_EXPIRED | INVALID_CREDENTIAL | INVALID_ACCESS_TOKEN,
                ..
            }
        )
    }

    /// True for the errcodes that mean the refresh_token (or the whole grant) is dead.
    pub fn is_dead_grant(&self) -> bool {
        matches!(
            self,
            WechatError::Api {
                errcode: INVALID_REFRESH_TOKEN | REFRESH_TOKEN_EXPIRED | TOKENS_REVOKED,
                ..
            }
        )
    }
}

impl fmt::Display for WechatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WechatError::Api { errcode, errmsg } => write!(f, "wechat errcode {errcode}: {errmsg}"),
            WechatError::Timeout => f.write_str("wechat call timed out"),
            WechatError::Transport(why) => write!(f, "wechat unreachable: {why}"),
            WechatError::Status(code) => write!(f, "wechat answered http status {code}"),
            WechatError::BadAnswer(why) => write!(f, "wechat answer not understood: {why}"),
            WechatError::BadIdentity(field) => write!(f, "wechat sent an unusable {field}"),
        }
    }
}

impl From<ureq::Error> for WechatError {
    // Built from the error's kind, never its Display: a message could carry the
    // request URL, and ours hold the appsecret or an access_token.
    fn from(e: ureq::Error) -> WechatError {
        match e {
            ureq::Error::Timeout(_) => WechatError::Timeout,
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                WechatError::Timeout
            }
            ureq::Error::Io(io) => WechatError::Transport(format!("i/o error: {}", io.kind())),
            ureq::Error::ConnectionFailed => WechatError::Transport("connection failed".into()),
            ureq::Error::HostNotFound => WechatError::Transport("host not found".into()),
            ureq::Error::StatusCode(code) => WechatError::Status(code),
            ureq::Error::BodyExceedsLimit(_) => WechatError::BadAnswer("answer too large".into()),
            ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
                WechatError::BadAnswer("unexpected redirect".into())
            }
            ureq::Error::RequireHttpsOnly(_) => WechatError::Transport("https required".into()),
            _ => WechatError::Transport("request failed".into()),
        }
    }
}

/// The answer to a code exchange or a refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub openid: String,
    pub scope: String,
    pub unionid: Option<String>,
    /// WeChat's snapshot-page virtual account: not a real user, never log it in.
    pub is_snapshotuser: bool,
}

/// A sns/userinfo profile with WeChat's field names, as /api/me shows it.
/// Every field is optional and leniently typed: WeChat's answers vary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WechatUser {
    #[serde(default, deserialize_with = "lenient_string")]
    pub openid: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub nickname: String,
    /// 1 male, 2 female, 0 unknown; WeChat sends a number or a string.
    #[serde(default, deserialize_with = "lenient_sex")]
    pub sex: i64,
    #[serde(default, deserialize_with = "lenient_string")]
    pub province: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub city: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub country: String,
    /// Always https once parsed (see `https_avatar`); empty when there is none.
    #[serde(default, deserialize_with = "lenient_string")]
    pub headimgurl: String,
    #[serde(default, deserialize_with = "lenient_strings")]
    pub privilege: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub unionid: Option<String>,
    /// Fields WeChat may add later, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl WechatUser {
    /// Parses a userinfo answer and tidies it: control characters out of the
    /// text fields, and U+FFFD out of those shown to people (what `repair`
    /// leaves of broken UTF-8: "杭州" rather than "杭州�"), headimgurl on https.
    pub fn from_value(value: Value) -> Result<WechatUser, WechatError> {
        let mut user: WechatUser = serde_json::from_value(value)
            .map_err(|_| WechatError::BadAnswer("userinfo has an unexpected shape".into()))?;
        for field in [
            &mut user.nickname,
            &mut user.province,
            &mut user.city,
            &mut user.country,
            &mut user.headimgurl,
        ] {
            field.retain(|c| !c.is_control());
        }
        for field in [
            &mut user.nickname,
            &mut user.province,
            &mut user.city,
            &mut user.country,
        ] {
            field.retain(|c| c != char::REPLACEMENT_CHARACTER);
        }
        user.headimgurl = https_avatar(&user.headimgurl);
        Ok(user)
    }
}

/// Refuses an openid or unionid that is empty, longer than any WeChat sends
/// (28 characters today), or anything but printable ASCII. These go into the
/// gateway's X-WeChat-OpenID / X-WeChat-UnionID headers, where a control
/// character could split a header and a non-ASCII byte would be dropped;
/// removing characters would change who the user is, so the login is refused.
pub fn identity(field: &'static str, value: &str) -> Result<(), WechatError> {
    let printable = value.bytes().all(|b| b.is_ascii_graphic());
    if value.is_empty() || value.len() > 128 || !printable {
        return Err(WechatError::BadIdentity(field));
    }
    Ok(())
}

/// `http://thirdwx.qlogo.cn/...` → `https://...`; WeChat's avatar hosts serve both.
pub fn https_avatar(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_string(),
    }
}

/// One client for the whole process: connection reuse, fixed timeouts.
pub struct WechatClient {
    agent: ureq::Agent,
    appid: String,
    secret: Secret,
    api_base: String,
    lang: String,
}

impl WechatClient {
    /// Builds the client from the configuration.
    pub fn new(config: &Config) -> WechatClient {
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(Some(config.upstream_timeout))
            .timeout_connect(Some(config.connect_timeout))
            // A redirect from WeChat's API is never legitimate; following one
            // would send the secret somewhere else.
            .max_redirects(0)
            .http_status_as_error(false)
            .https_only(config.api_base.starts_with("https://"))
            .user_agent(concat!("wxauth/", env!("CARGO_PKG_VERSION")))
            .build();
        WechatClient {
            agent: agent_config.into(),
            appid: config.appid.clone(),
            secret: config.secret.clone(),
            api_base: config.api_base.clone(),
            lang: config.lang.clone(),
        }
    }

    /// A client for the website app (WXAUTH_WEB_APPID): the same agent
    /// settings, its own appid and secret, for qrconnect logins' codes.
    pub fn for_website(config: &Config, web: &WebApp) -> WechatClient {
        let mut client = WechatClient::new(config);
        client.appid = web.appid.clone();
        client.secret = web.secret.clone();
        client
    }

    /// The URL the browser is sent to, on `open_base` (WXAUTH_OPEN_BASE, or
    /// the demo's simulator as the browser reaches it). WeChat matches it with
    /// a strict pattern: the parameters in exactly this order, redirect_uri
    /// fully encoded, and `#wechat_redirect` at the end even on a 302
    /// (docs/wechat.md §1).
    pub fn authorize_url(
        &self,
        open_base: &str,
        redirect_uri: &str,
        scope: Scope,
        state: &str,
    ) -> String {
        // The website app's QR login has a page of its own, same parameters
        // in the same order (docs/wechat.md §12).
        let page = match scope {
            Scope::Login => "qrconnect",
            Scope::Base | Scope::Userinfo => "oauth2/authorize",
        };
        format!(
            "{}/connect/{page}?appid={}&redirect_uri={}&response_type=code&scope={}&state={}#wechat_redirect",
            open_base,
            encode_component(&self.appid),
            encode_component(redirect_uri),
            scope.as_str(),
            encode_component(state),
        )
    }

    /// Exchanges a code (single use, 5 minutes) for a grant.
    pub fn exchange_code(&self, code: &str) -> Result<Grant, WechatError> {
        let query = encode_query(&[
            ("appid", &self.appid),
            ("secret", self.secret.expose()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ]);
        grant_from(self.get("/sns/oauth2/access_token", &query)?)
    }

    /// Gets a new access_token with a refresh_token (which lives 30 days).
    pub fn refresh(&self, refresh_token: &str) -> Result<Grant, WechatError> {
        let query = encode_query(&[
            ("appid", &self.appid),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]);
        grant_from(self.get("/sns/oauth2/refresh_token", &query)?)
    }

    /// Fetches the profile. An answer for another openid is refused.
    pub fn userinfo(&self, access_token: &str, openid: &str) -> Result<WechatUser, WechatError> {
        let query = encode_query(&[
            ("access_token", access_token),
            ("openid", openid),
            ("lang", &self.lang),
        ]);
        let user = WechatUser::from_value(self.get("/sns/userinfo", &query)?)?;
        if user.openid != openid {
            return Err(WechatError::BadAnswer(
                "userinfo is for another openid".into(),
            ));
        }
        // The openid is the grant's, already checked (grant_from).
        if let Some(unionid) = &user.unionid {
            identity("unionid", unionid)?;
        }
        Ok(user)
    }

    /// Asks WeChat whether an access_token is still valid for this openid.
    pub fn check(&self, access_token: &str, openid: &str) -> Result<(), WechatError> {
        let query = encode_query(&[("access_token", access_token), ("openid", openid)]);
        self.get("/sns/auth", &query).map(|_| ())
    }

    /// The appid and secret, for the account API calls in account.rs.
    pub fn credentials(&self) -> (&str, &Secret) {
        (&self.appid, &self.secret)
    }

    /// GET `path?query` on the API base and parse the answer (account.rs).
    pub fn get(&self, path: &str, query: &str) -> Result<Value, WechatError> {
        let url = format!("{}{}?{}", self.api_base, path, query);
        counted(path, || read_answer(self.agent.get(&url).call()?))
    }

    /// POST a JSON body to `path?query` on the API base and parse the answer.
    pub fn post_json(&self, path: &str, query: &str, body: &Value) -> Result<Value, WechatError> {
        let url = format!("{}{}?{}", self.api_base, path, query);
        let bytes = serde_json::to_vec(body).expect("a serde_json::Value always serializes");
        counted(path, || {
            let response = self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(&bytes[..])?;
            read_answer(response)
        })
    }
}

/// Makes a call (request sent, answer read and parsed) and counts it in
/// the metrics under its endpoint (`path`, a fixed one of ours), with how it
/// ended and how long it took.
fn counted(
    path: &str,
    call: impl FnOnce() -> Result<Value, WechatError>,
) -> Result<Value, WechatError> {
    let started = std::time::Instant::now();
    let answer = call();
    let outcome = match &answer {
        Ok(_) => "ok",
        Err(WechatError::Api { .. }) => "errcode",
        Err(WechatError::Timeout) => "timeout",
        Err(WechatError::Transport(_)) => "transport",
        Err(WechatError::Status(_)) => "status",
        Err(WechatError::BadAnswer(_) | WechatError::BadIdentity(_)) => "bad_answer",
    };
    metrics::wechat_call(path, outcome, started.elapsed());
    answer
}

/// Reads an answer within the size limit: 200 and WeChat's JSON, or an error.
fn read_answer(mut response: ureq::http::Response<ureq::Body>) -> Result<Value, WechatError> {
    let status = response.status().as_u16();
    if status != 200 {
        return Err(WechatError::Status(status));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()?;
    parse_answer(&body)
}

/// Parses an answer whatever its Content-Type (WeChat says text/plain), after
/// repairing what WeChat gets wrong, and turns a non-zero errcode into an error.
pub fn parse_answer(body: &[u8]) -> Result<Value, WechatError> {
    let text = repair(body);
    let value: Value = serde_json::from_str(&text)
        .map_err(|_| WechatError::BadAnswer("answer is not JSON".into()))?;
    let Value::Object(map) = &value else {
        return Err(WechatError::BadAnswer("answer is not a JSON object".into()));
    };
    // An errcode that is there but unreadable counts as WeChat's -1: a
    // failure, to be retried.
    let errcode = map.get("errcode").map(|v| match v {
        Value::Number(n) => n.as_i64().unwrap_or(SYSTEM_BUSY),
        Value::String(s) => s.trim().parse().unwrap_or(SYSTEM_BUSY),
        _ => SYSTEM_BUSY,
    });
    match errcode {
        Some(0) | None => Ok(value),
        Some(errcode) => Err(WechatError::Api {
            errcode,
            errmsg: map
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect(),
        }),
    }
}

/// WeChat has sent nicknames with raw control characters and broken UTF-8
/// inside JSON strings (docs/wechat.md §6). Decode lossily and
/// drop raw control characters inside strings; escaped ones stay escaped.
pub fn repair(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            } else if c.is_control() && (c as u32) < 0x20 {
                continue;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

fn grant_from(value: Value) -> Result<Grant, WechatError> {
    let text = |key: &str| match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let grant = Grant {
        access_token: text("access_token"),
        expires_in: value
            .get("expires_in")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(7200),
        refresh_token: text("refresh_token"),
        openid: text("openid"),
        scope: text("scope"),
        unionid: Some(text("unionid")).filter(|s| !s.is_empty()),
        is_snapshotuser: matches!(value.get("is_snapshotuser"), Some(v) if v.as_i64() == Some(1) || v.as_str() == Some("1")),
    };
    if grant.access_token.is_empty() || grant.openid.is_empty() {
        return Err(WechatError::BadAnswer(
            "token answer without access_token or openid".into(),
        ));
    }
    identity("openid", &grant.openid)?;
    if let Some(unionid) = &grant.unionid {
        identity("unionid", unionid)?;
    }
    Ok(grant)
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

fn lenient_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(lenient_string(d)?).filter(|s| !s.is_empty()))
}

fn lenient_sex<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawConfig};

    fn client() -> WechatClient {
        let env = [
            ("WXAUTH_APPID", "wx1234567890abcdef"),
            ("WXAUTH_SECRET", "s"),
            ("WXAUTH_PUBLIC_URL", "https://wx.example.com"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        WechatClient::new(
            &Config::from_raw(&RawConfig::from_env_and_args(env, &[]).unwrap()).unwrap(),
        )
    }

    #[test]
    fn authorize_url_has_wechats_exact_order_and_encoding() {
        let url = client().authorize_url(
            "https://open.weixin.qq.com",
            "https://wx.example.com/callback?a=1&b=#x",
            Scope::Userinfo,
            "Abc123",
        );
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1234567890abcdef\
             &redirect_uri=https%3A%2F%2Fwx.example.com%2Fcallback%3Fa%3D1%26b%3D%23x\
             &response_type=code&scope=snsapi_userinfo&state=Abc123#wechat_redirect"
        );
        assert!(client()
            .authorize_url("https://o", "https://h/callback", Scope::Base, "S")
            .contains("&scope=snsapi_base&state=S#wechat_redirect"));
    }

    #[test]
    fn errcode_becomes_a_typed_error() {
        let e = parse_answer(br#"{"errcode":40029,"errmsg":"invalid code"}"#).unwrap_err();
        assert_eq!(
            e,
            WechatError::Api {
                errcode: 40029,
                errmsg: "invalid code".into()
            }
        );
        assert_eq!(e.to_string(), "wechat errcode 40029: invalid code");
        assert!(parse_answer(br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(WechatError::Api {
            errcode: 42001,
            errmsg: String::new()
        }
        .is_stale_token());
        assert!(WechatError::Api {
            errcode: 40030,
            errmsg: String::new()
        }
        .is_dead_grant());
    }

    #[test]
    fn non_json_and_non_objects_are_bad_answers() {
        for body in [&b"<html>502</html>"[..], b"", b"[1,2]", b"{\"a\":", b"null"] {
            assert!(
                matches!(parse_answer(body), Err(WechatError::BadAnswer(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn raw_control_characters_and_broken_utf8_are_repaired() {
        let body = b"{\"openid\":\"o1\",\"nickname\":\"a\x01b\x1fc\xe5\",\"city\":\"\xe6\x9d\xad\xe5\xb7\x9e\xff\xfe\",\n\"sex\":\"2\"}";
        let user = WechatUser::from_value(parse_answer(body).unwrap()).unwrap();
        assert_eq!(user.nickname, "abc");
        // What lossy decoding made of the broken bytes is not shown either.
        assert_eq!(user.city, "杭州");
        assert_eq!(user.sex, 2);
        // An escaped control character is valid JSON; it is still removed from the text field.
        let user =
            WechatUser::from_value(parse_answer(br#"{"nickname":"x\u0007y"}"#).unwrap()).unwrap();
        assert_eq!(user.nickname, "xy");
    }

    #[test]
    fn userinfo_is_lenient_keeps_unknown_fields_and_serves_avatar_over_https() {
        let body = r#"{"openid":123,"nickname":"熊猫🐼","sex":1,"privilege":"x","headimgurl":"http://thirdwx.qlogo.cn/a/132","newfield":{"k":1}}"#;
        let user = WechatUser::from_value(parse_answer(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(user.openid, "123");
        assert_eq!(user.nickname, "熊猫🐼");
        assert_eq!(user.sex, 1);
        assert!(user.privilege.is_empty());
        assert_eq!(user.headimgurl, "https://thirdwx.qlogo.cn/a/132");
        assert_eq!(user.unionid, None);
        let json = serde_json::to_value(&user).unwrap();
        assert_eq!(json["newfield"]["k"], 1);
        assert!(json.get("unionid").is_none());
    }

    #[test]
    fn grant_needs_token_and_openid_and_flags_snapshot_users() {
        let g = grant_from(serde_json::json!({
            "access_token":"A","expires_in":7200,"refresh_token":"R","openid":"O",
            "scope":"snsapi_base","is_snapshotuser":1
        }))
        .unwrap();
        assert!(g.is_snapshotuser);
        assert_eq!(g.unionid, None);
        assert!(grant_from(serde_json::json!({"openid":"O"})).is_err());
    }

    #[test]
    fn identities_with_control_or_non_ascii_characters_are_refused() {
        for (openid, unionid) in [
            ("o1\r\nX-Injected: 1", None),
            ("o1\u{7}", None),
            ("o 1", None),
            ("o中文", None),
            ("o1", Some("u1\n")),
            ("o1", Some("u\u{85}1")),
        ] {
            let answer = serde_json::json!({
                "access_token": "A", "openid": openid, "unionid": unionid.unwrap_or("")
            });
            assert!(
                matches!(grant_from(answer), Err(WechatError::BadIdentity(_))),
                "{openid:?} {unionid:?}"
            );
        }
        assert!(identity("openid", "oSim0PandaXiaoMingEmoji00001").is_ok());
        assert!(identity("openid", "").is_err());
    }
}
