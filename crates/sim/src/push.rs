//! `/sim/push`: WeChat's side of the 服务器配置 URL. Builds a message or an
//! event as plaintext-mode XML, signs it with the app's token and POSTs it to
//! the app (docs/wechat.md §7); in compat and safe mode (§10) encrypts it as
//! WeChat does and checks the app's encrypted reply as WeChat would. Talks to
//! loopback only, and never to the simulator itself: the loop would wait on
//! its own call.
//!
//! The signature, the CDATA and the cipher are the app's own
//! (wxauth_app::wechat::message and ::encryption), whose tests pin them to
//! WeChat's definition and published vectors: one implementation, checked
//! against WeChat rather than against itself.

use super::{users, Sim, SimConfig};
use minijinja::context;
use minijinja::value::{Serde, Value};
use std::time::Duration;
use wxauth_app::clock::Clock;
use wxauth_app::random;
use wxauth_app::transport::http::{encode_query, Reply, Req};
use wxauth_app::wechat::encryption::{msg_signature, open_reply, MessageKey};
use wxauth_app::wechat::message::{cdata_field, fields, signature_of};

/// WeChat gives the app 5 seconds to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// WeChat tries a message 3 more times; a few more is allowed for tests, no
/// more than that: each send may hold the single-threaded loop 5 seconds.
const MAX_REPEAT: u32 = 5;
/// How much of each answer is kept for the report.
const MAX_ANSWER: u64 = 64 * 1024;
/// The `to` of a push when none is given: the account's original ID.
const DEFAULT_TO: &str = "gh_simulated0000";
/// WeChat's sample position (Guangzhou), used when a LOCATION push gives none.
const DEFAULT_LOCATION: [&str; 3] = ["23.137466", "113.352425", "119.385040"];
/// The appid `wrong_appid=1` puts in the ciphertext: another account's.
const OTHER_APPID: &str = "wx0123456789abcdef";
/// The second choice when the simulator itself is configured with OTHER_APPID.
const OTHER_APPID_2: &str = "wxfedcba9876543210";
/// How far an encrypted reply's TimeStamp may be from the simulator's clock,
/// in seconds: the skew the app allows a push (wechat/message.rs).
const MAX_REPLY_SKEW: i64 = 300;

/// What one `/sim/push` asks for, checked before anything is sent.
#[derive(Debug)]
struct Push {
    url: String,
    token: String,
    message: Message,
    repeat: u32,
    bad_signature: bool,
    mode: Mode,
}

/// 明文模式, or one of the two that encrypt (docs/wechat.md §10).
#[derive(Debug)]
enum Mode {
    Plain,
    /// 兼容模式: the plaintext fields and the Encrypt element; either kind
    /// of reply is fine.
    Compat(Encryption),
    /// 安全模式: only ToUserName and Encrypt; the reply must be encrypted.
    Safe(Encryption),
}

/// How a compat or safe push is encrypted.
#[derive(Debug)]
struct Encryption {
    key: MessageKey,
    /// The appid inside the ciphertext (and expected inside the reply's).
    appid: String,
    /// Sign the Encrypt element with a wrong token.
    bad_msg_signature: bool,
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Compat(_) => "compat",
            Mode::Safe(_) => "safe",
        }
    }

    /// What the simulator's page calls it.
    fn label(&self) -> &'static str {
        match self {
            Mode::Plain => "明文模式",
            Mode::Compat(_) => "兼容模式",
            Mode::Safe(_) => "安全模式",
        }
    }

    fn encryption(&self) -> Option<&Encryption> {
        match self {
            Mode::Plain => None,
            Mode::Compat(e) | Mode::Safe(e) => Some(e),
        }
    }
}

/// One message or event, as WeChat would push it.
#[derive(Debug, PartialEq)]
struct Message {
    to: String,
    from: String,
    create_time: i64,
    kind: Kind,
}

#[derive(Debug, PartialEq)]
enum Kind {
    /// A follow; `key` is the scene of the QR code scanned, if any.
    Subscribe {
        key: Option<String>,
        ticket: String,
    },
    Unsubscribe,
    /// A follower scanned a QR code with this scene.
    Scan {
        key: String,
        ticket: String,
    },
    Location {
        position: [String; 3],
    },
    Click {
        key: String,
    },
    View {
        url: String,
    },
    Text {
        content: String,
        msgid: u64,
    },
}

/// What a push puts in its body: the XML, and when encrypted the Encrypt
/// element inside it. Made once: WeChat's retries send the same body.
#[derive(Debug)]
struct Wire {
    body: String,
    encrypt: Option<String>,
}

/// What WeChat would make of the app's answer to an encrypted push.
#[derive(Debug, PartialEq)]
enum ReplyCheck {
    /// Encrypted, signed with the token and holding the push's appid: the
    /// reply's XML and its TimeStamp.
    Opened { xml: String, timestamp: String },
    /// A plaintext reply, which compat mode allows (公众号回复明文或密文均可).
    Plaintext { xml: String },
    /// What WeChat would refuse it for.
    Refused(String),
}

/// How the answer is given: JSON for tests and curl, a page for the form
/// on the simulator's own page (`view=page`).
#[derive(Clone, Copy, PartialEq)]
enum View {
    Json,
    Page,
}

/// `POST /sim/push` (form body): sends the message `repeat` times and
/// answers `{"sent", "mode", "answers": [{"status", "body", "reply"?}...],
/// "xml", "encrypt"?}`; 400 with `{"error"}` when a field is wrong or the
/// url is not the app on loopback. With `view=page`, the same as a page.
pub(super) fn push(sim: &mut Sim, req: &Req) -> Reply {
    let form = req.form();
    let view = View::of(&form);
    let push = match parse(&form, sim.clock.now(), &sim.config)
        .and_then(|push| not_self(&push.url, req.header("host")).map(|()| push))
    {
        Ok(push) => push,
        Err(error) => return refuse(sim, view, &error),
    };
    let report = deliver(&push, &sim.clock);
    match view {
        View::Json => Reply::json(&report).with_header("Cache-Control", "no-store"),
        View::Page => page(sim, &push.mode, &report, ""),
    }
}

impl View {
    /// Read before the rest of the form, so that a refusal comes the way
    /// the answer would have; `parse` checks the value itself.
    fn of(form: &[(String, String)]) -> View {
        match form.iter().any(|(n, v)| n == "view" && v == "page") {
            true => View::Page,
            false => View::Json,
        }
    }
}

fn refuse(sim: &Sim, view: View, error: &str) -> Reply {
    match view {
        View::Json => Reply::json(&serde_json::json!({ "error": error })).with_status(400),
        View::Page => page(sim, &Mode::Plain, &serde_json::Value::Null, error).with_status(400),
    }
}

/// The report as the simulator's page shows it. The token and the key are
/// not in the report, so they cannot reach the page.
fn page(sim: &Sim, mode: &Mode, report: &serde_json::Value, error: &str) -> Reply {
    let ctx = context! {
        app_name => sim.config.app_name.as_str(),
        error => error,
        mode => mode.name(),
        mode_label => mode.label(),
        report => Value::from(Serde(report)),
    };
    sim.render("push.html", ctx)
}

/// Sends the push `repeat` times; the report of what was sent and answered.
fn deliver(push: &Push, clock: &Clock) -> serde_json::Value {
    let wire = push.wire();
    let agent = agent();
    let answers: Vec<_> = (0..push.repeat)
        .map(|_| send(&agent, push, &wire, clock))
        .collect();
    let mut report = serde_json::json!({
        "sent": answers.len(),
        "mode": push.mode.name(),
        "answers": answers,
        "xml": push.message.xml(),
    });
    if let Some(encrypt) = &wire.encrypt {
        report["encrypt"] = encrypt.as_str().into();
    }
    report
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .http_status_as_error(false)
        // Loopback only: never through an HTTP(S)_PROXY of the environment.
        .proxy(None)
        .build()
        .into()
}

/// One signed POST. A new nonce each time, like a retry; same body and
/// timestamp. An encrypted push's answer is checked as WeChat would.
fn send(agent: &ureq::Agent, push: &Push, wire: &Wire, clock: &Clock) -> serde_json::Value {
    let nonce = random::digits_nonce();
    let glue = if push.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{glue}{}", push.url, push.query(wire, &nonce));
    let sent = agent
        .post(&url)
        .header("Content-Type", "text/xml")
        .send(&wire.body);
    let mut answer = match sent {
        Ok(answer) => answer,
        Err(e) => return serde_json::json!({ "status": 0, "body": "", "error": e.to_string() }),
    };
    let status = answer.status().as_u16();
    let body = match answer
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
    {
        Ok(body) => body,
        Err(e) => {
            return serde_json::json!({ "status": status, "body": "", "error": e.to_string() })
        }
    };
    let mut report =
        serde_json::json!({ "status": status, "body": String::from_utf8_lossy(&body) });
    // WeChat reads the body of a 200 only: anything else is a failed push.
    if status == 200 {
        if let Some(check) = check_reply(push, &body, clock.now()) {
            report["reply"] = check.json();
        }
    }
    report
}

impl Push {
    /// The body to send: the plaintext XML, or in safe mode ToUserName and
    /// Encrypt only, or in compat mode both. Fresh random bytes from the OS
    /// CSPRNG before the message, as WeChat's are.
    fn wire(&self) -> Wire {
        let Some(encryption) = self.mode.encryption() else {
            return Wire {
                body: self.message.xml(),
                encrypt: None,
            };
        };
        let encrypt = encryption.key.encrypt(
            self.message.xml().as_bytes(),
            &encryption.appid,
            random::bytes(),
        );
        let shown = match self.mode {
            Mode::Safe(_) => cdata_field("ToUserName", &self.message.to),
            _ => self.message.elements(),
        };
        Wire {
            body: format!("<xml>{shown}{}</xml>", cdata_field("Encrypt", &encrypt)),
            encrypt: Some(encrypt),
        }
    }

    /// The query WeChat puts on a push: signature, timestamp, nonce and
    /// openid; encrypted, also encrypt_type=aes and msg_signature.
    fn query(&self, wire: &Wire, nonce: &str) -> String {
        let timestamp = self.message.create_time.to_string();
        // A wrong token signs what a test wants refused; nothing else changes.
        let token_for = |bad: bool| match bad {
            true => random::token(32),
            false => self.token.clone(),
        };
        let signature = signature_of(&token_for(self.bad_signature), &timestamp, nonce);
        let mut pairs = vec![
            ("signature", signature),
            ("timestamp", timestamp.clone()),
            ("nonce", nonce.to_string()),
            ("openid", self.message.from.clone()),
        ];
        if let (Some(encryption), Some(encrypt)) = (self.mode.encryption(), &wire.encrypt) {
            let token = token_for(encryption.bad_msg_signature);
            pairs.push(("encrypt_type", "aes".to_string()));
            pairs.push((
                "msg_signature",
                msg_signature(&token, &timestamp, nonce, encrypt),
            ));
        }
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        encode_query(&pairs)
    }
}

/// What WeChat would make of `body`, the app's 200 answer to `push`; None
/// for a plaintext push, and for `success` or nothing, which mean "no
/// reply" in every mode.
fn check_reply(push: &Push, body: &[u8], now: i64) -> Option<ReplyCheck> {
    let encryption = push.mode.encryption()?;
    let text = String::from_utf8_lossy(body);
    if matches!(text.trim(), "" | "success") {
        return None;
    }
    let Some(elements) = fields(body) else {
        return Some(ReplyCheck::Refused("not WeChat's XML".into()));
    };
    if !elements.contains_key("Encrypt") {
        return Some(match push.mode {
            Mode::Safe(_) => ReplyCheck::Refused("safe mode wants an encrypted reply".into()),
            _ => ReplyCheck::Plaintext {
                xml: text.into_owned(),
            },
        });
    }
    let opened = open_reply(&encryption.key, &push.token, &encryption.appid, body).and_then(
        |(xml, timestamp)| {
            timestamp_ok(&timestamp, now)?;
            Ok(ReplyCheck::Opened { xml, timestamp })
        },
    );
    Some(opened.unwrap_or_else(ReplyCheck::Refused))
}

/// A reply's TimeStamp: Unix seconds (10 digits, not milliseconds) near
/// the simulator's clock.
fn timestamp_ok(timestamp: &str, now: i64) -> Result<(), String> {
    if timestamp.len() != 10 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "TimeStamp {timestamp:?} is not Unix seconds (10 digits; 13 are milliseconds)"
        ));
    }
    let skew = timestamp
        .parse::<i64>()
        .map_or(i64::MAX, |t| (t - now).abs());
    if skew > MAX_REPLY_SKEW {
        return Err(format!(
            "TimeStamp {timestamp} is {skew} s from the simulator's clock ({now}); \
             at most {MAX_REPLY_SKEW} s"
        ));
    }
    Ok(())
}

impl ReplyCheck {
    /// `{"ok": true, "xml", "timestamp"}`, `{"ok": true, "plaintext": true,
    /// "xml"}` or `{"ok": false, "error"}`.
    fn json(&self) -> serde_json::Value {
        match self {
            ReplyCheck::Opened { xml, timestamp } => {
                serde_json::json!({ "ok": true, "xml": xml, "timestamp": timestamp })
            }
            ReplyCheck::Plaintext { xml } => {
                serde_json::json!({ "ok": true, "plaintext": true, "xml": xml })
            }
            ReplyCheck::Refused(error) => serde_json::json!({ "ok": false, "error": error }),
        }
    }
}

fn random_u64() -> u64 {
    u64::from_le_bytes(random::bytes())
}

impl Message {
    /// The plaintext-mode XML, element for element as WeChat writes it.
    fn xml(&self) -> String {
        format!("<xml>{}</xml>", self.elements())
    }

    /// The elements inside `<xml>`: compat mode sends them beside Encrypt.
    fn elements(&self) -> String {
        let mut x = String::new();
        cdata(&mut x, "ToUserName", &self.to);
        cdata(&mut x, "FromUserName", &self.from);
        plain(&mut x, "CreateTime", &self.create_time.to_string());
        if let Kind::Text { content, msgid } = &self.kind {
            cdata(&mut x, "MsgType", "text");
            cdata(&mut x, "Content", content);
            plain(&mut x, "MsgId", &msgid.to_string());
        } else {
            cdata(&mut x, "MsgType", "event");
        }
        match &self.kind {
            Kind::Text { .. } => {}
            Kind::Subscribe { key, ticket } => {
                cdata(&mut x, "Event", "subscribe");
                // A follow from a QR code carries its scene and ticket; a
                // plain one an empty EventKey, as WeChat sends it.
                match key {
                    Some(key) => {
                        cdata(&mut x, "EventKey", &format!("qrscene_{key}"));
                        cdata(&mut x, "Ticket", ticket);
                    }
                    None => cdata(&mut x, "EventKey", ""),
                }
            }
            Kind::Unsubscribe => {
                cdata(&mut x, "Event", "unsubscribe");
                cdata(&mut x, "EventKey", "");
            }
            Kind::Scan { key, ticket } => {
                cdata(&mut x, "Event", "SCAN");
                cdata(&mut x, "EventKey", key);
                cdata(&mut x, "Ticket", ticket);
            }
            Kind::Location { position } => {
                cdata(&mut x, "Event", "LOCATION");
                for (name, value) in ["Latitude", "Longitude", "Precision"].iter().zip(position) {
                    plain(&mut x, name, value);
                }
            }
            Kind::Click { key } => {
                cdata(&mut x, "Event", "CLICK");
                cdata(&mut x, "EventKey", key);
            }
            Kind::View { url } => {
                cdata(&mut x, "Event", "VIEW");
                cdata(&mut x, "EventKey", url);
            }
        }
        x
    }
}

/// `<Name><![CDATA[value]]></Name>` for text, as WeChat writes it.
fn cdata(x: &mut String, name: &str, value: &str) {
    x.push_str(&cdata_field(name, value));
}

/// `<Name>value</Name>` for numbers, which WeChat writes bare.
fn plain(x: &mut String, name: &str, value: &str) {
    x.push_str(&format!("<{name}>{value}</{name}>"));
}

/// Reads the form; every field is checked, unknown ones are refused.
/// `config` gives the appid to encrypt with and, in demo mode, the url,
/// token and key a push leaves out. No error repeats the token or the key.
fn parse(form: &[(String, String)], now: i64, config: &SimConfig) -> Result<Push, String> {
    let get = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    const FIELDS: &[&str] = &[
        "url",
        "token",
        "kind",
        "from",
        "to",
        "key",
        "content",
        "latitude",
        "longitude",
        "precision",
        "create_time",
        "msgid",
        "repeat",
        "bad_signature",
        "mode",
        "aes_key",
        "appid",
        "wrong_appid",
        "bad_msg_signature",
        "view",
    ];
    for (i, (name, _)) in form.iter().enumerate() {
        if !FIELDS.contains(&name.as_str()) {
            return Err(format!("unknown field {name:?}"));
        }
        if form[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("field {name:?} given twice"));
        }
    }
    let target = config.push_target.as_ref();
    let url = get("url")
        .filter(|u| !u.is_empty())
        .or(target.map(|t| t.url.as_str()))
        .ok_or("url: required (the app's message URL)")?;
    loopback_port(url)?;
    // Checked again after the default: a target's token may be empty too.
    let token = get("token")
        .filter(|t| !t.is_empty())
        .or(target.map(|t| t.token.as_str()))
        .filter(|t| !t.is_empty())
        .ok_or("token: required (the app's WXAUTH_TOKEN)")?;
    if let Some(view) = get("view").filter(|v| !matches!(*v, "json" | "page")) {
        return Err(format!("view={view}: want json or page"));
    }
    let mode = parse_mode(&get, config)?;
    let key = get("key").unwrap_or("");
    // WeChat's tickets are long base64; only their presence matters here.
    let ticket = || format!("gQ{}", random::token(94));
    let kind = match get("kind").unwrap_or("") {
        "subscribe" => Kind::Subscribe {
            key: (!key.is_empty()).then(|| key.to_string()),
            ticket: ticket(),
        },
        "unsubscribe" => Kind::Unsubscribe,
        "SCAN" => Kind::Scan {
            key: key.to_string(),
            ticket: ticket(),
        },
        "LOCATION" => {
            let mut position = DEFAULT_LOCATION.map(String::from);
            for (i, name) in ["latitude", "longitude", "precision"].iter().enumerate() {
                if let Some(value) = get(name) {
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| format!("{name}={value}: want a number"))?;
                    position[i] = value.to_string();
                }
            }
            Kind::Location { position }
        }
        "CLICK" => Kind::Click {
            key: key.to_string(),
        },
        "VIEW" => Kind::View {
            url: key.to_string(),
        },
        "text" => Kind::Text {
            content: get("content").unwrap_or("").to_string(),
            msgid: match get("msgid") {
                Some(id) => id
                    .parse()
                    .map_err(|_| format!("msgid={id}: want a 64-bit number"))?,
                // Below 2^63: apps that read it as a signed number still can.
                None => random_u64() >> 1,
            },
        },
        other => {
            return Err(format!(
                "kind={other}: want subscribe, unsubscribe, SCAN, LOCATION, CLICK, VIEW or text"
            ))
        }
    };
    let create_time = match get("create_time") {
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|t| *t >= 0)
            .ok_or_else(|| format!("create_time={t}: want Unix seconds"))?,
        None => now,
    };
    let repeat = match get("repeat") {
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_REPEAT).contains(n))
            .ok_or_else(|| format!("repeat={n}: want 1..={MAX_REPEAT}"))?,
        None => 1,
    };
    let bad_signature = flag(&get, "bad_signature")?;
    let default_from = users::USERS.first().map_or("", |u| u.openid);
    let from = get("from")
        .filter(|f| !f.is_empty())
        .unwrap_or(default_from);
    let to = get("to").filter(|t| !t.is_empty()).unwrap_or(DEFAULT_TO);
    Ok(Push {
        url: url.to_string(),
        token: token.to_string(),
        message: Message {
            to: to.to_string(),
            from: from.to_string(),
            create_time,
            kind,
        },
        repeat,
        bad_signature,
        mode,
    })
}

/// `mode=plain|compat|safe` and what encrypting needs: `aes_key` (or demo
/// mode's), the appid (`appid=`, `wrong_appid=1`, or the simulator's own)
/// and `bad_msg_signature`. Those are refused with mode=plain, where they
/// would silently do nothing.
fn parse_mode<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    config: &'a SimConfig,
) -> Result<Mode, String> {
    let mode = get("mode").unwrap_or("plain");
    if mode == "plain" {
        for name in ["aes_key", "appid", "wrong_appid", "bad_msg_signature"] {
            if get(name).is_some() {
                return Err(format!("{name}: only with mode=compat or mode=safe"));
            }
        }
        return Ok(Mode::Plain);
    }
    if !matches!(mode, "compat" | "safe") {
        return Err(format!("mode={mode}: want plain, compat or safe"));
    }
    let target_key = config
        .push_target
        .as_ref()
        .and_then(|t| t.aes_key.as_deref());
    let aes_key = get("aes_key")
        .filter(|k| !k.is_empty())
        .or(target_key)
        .ok_or_else(|| format!("aes_key: required with mode={mode} (the app's EncodingAESKey)"))?;
    let key = MessageKey::from_encoding_aes_key(aes_key)
        .ok_or("aes_key: not an EncodingAESKey (want 43 letters and digits)")?;
    let appid = match (get("appid"), flag(get, "wrong_appid")?) {
        (Some(_), true) => return Err("appid and wrong_appid=1: give one of them".into()),
        (Some(appid), false) => {
            let fits =
                (1..=64).contains(&appid.len()) && appid.bytes().all(|b| b.is_ascii_graphic());
            if !fits {
                return Err(format!(
                    "appid={appid}: want 1 to 64 printable ASCII characters"
                ));
            }
            appid.to_string()
        }
        (None, true) if config.appid == OTHER_APPID => OTHER_APPID_2.to_string(),
        (None, true) => OTHER_APPID.to_string(),
        (None, false) => config.appid.clone(),
    };
    let encryption = Encryption {
        key,
        appid,
        bad_msg_signature: flag(get, "bad_msg_signature")?,
    };
    Ok(match mode {
        "safe" => Mode::Safe(encryption),
        _ => Mode::Compat(encryption),
    })
}

/// A `name=1` switch; absent or 0 is off.
fn flag<'a>(get: &impl Fn(&str) -> Option<&'a str>, name: &str) -> Result<bool, String> {
    match get(name) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(format!("{name}={other}: want 1 or 0")),
    }
}

/// The port of `url` if it is plain http to 127.0.0.1 or [::1]: the
/// simulator pushes to an app on this machine, nowhere else.
fn loopback_port(url: &str) -> Result<u16, String> {
    let refused = || format!("url={url}: want http://127.0.0.1[:PORT]/… or http://[::1][:PORT]/…");
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.contains('#') {
        return Err(refused());
    }
    let rest = url.strip_prefix("http://").ok_or_else(refused)?;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let port = ["127.0.0.1", "[::1]"]
        .iter()
        .find_map(|host| authority.strip_prefix(host))
        .ok_or_else(refused)?;
    match port {
        "" => Ok(80),
        port => port
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(refused),
    }
}

/// Refuses a url on the port this request came in on: the single-threaded
/// simulator would wait 5 seconds on itself.
fn not_self(url: &str, host: Option<&str>) -> Result<(), String> {
    let Some(host) = host else { return Ok(()) };
    let own = match host.rsplit_once(':') {
        Some((_, port)) => port.parse::<u16>().unwrap_or(80),
        None => 80,
    };
    if loopback_port(url)? == own {
        return Err(format!("url={url}: that is the simulator itself"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A push of `kind` with `extra` fields, which replace the defaults.
    fn message(kind: &str, extra: &[(&str, &str)]) -> Result<Push, String> {
        let mut pairs = extra.to_vec();
        for default in [
            ("url", "http://127.0.0.1:8080/wechat"),
            ("token", "tok"),
            ("kind", kind),
            ("create_time", "1700000000"),
        ] {
            if !extra.iter().any(|(name, _)| *name == default.0) {
                pairs.push(default);
            }
        }
        parse(&form(&pairs), 1, &crate::tests::sim().config)
    }

    /// Tencent's sample EncodingAESKey (docs/wechat.md §10, vector A).
    const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn key() -> MessageKey {
        MessageKey::from_encoding_aes_key(AES_KEY).unwrap()
    }

    /// The simulator's configured appid, which encrypted pushes carry.
    fn appid() -> String {
        crate::tests::sim().config.appid
    }

    /// An encrypted push: `mode` with the sample key and `extra` fields.
    fn sealed(mode: &str, extra: &[(&str, &str)]) -> Push {
        let mut pairs = vec![("mode", mode), ("aes_key", AES_KEY)];
        pairs.extend_from_slice(extra);
        message("text", &pairs).expect("valid")
    }

    fn xml(kind: &str, extra: &[(&str, &str)]) -> String {
        message(kind, extra).expect("valid").message.xml()
    }

    /// (element, text) pairs inside `<xml>`, read back with a real parser.
    fn fields(xml: &str) -> Vec<(String, String)> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut out: Vec<(String, String)> = Vec::new();
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) if e.name().as_ref() != "xml" => {
                    let name = e.name().as_ref().to_string();
                    out.push((name, String::new()));
                }
                Event::CData(c) => out.last_mut().expect("inside").1 += &c.into_inner(),
                Event::Text(t) => {
                    if let Some(last) = out.last_mut() {
                        last.1 += &t.into_inner();
                    }
                }
                Event::Eof => return out,
                _ => {}
            }
        }
    }

    #[test]
    fn events_are_written_as_wechat_writes_them() {
        assert_eq!(
            xml("subscribe", &[("from", "oABC"), ("to", "gh_1"), ("key", "")]),
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oABC]]></FromUserName>\
             <CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>\
             <Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey></xml>"
        );
        let qr = xml("subscribe", &[("key", "123")]);
        assert!(qr.contains("<EventKey><![CDATA[qrscene_123]]></EventKey><Ticket><![CDATA[gQ"));
        let scan = fields(&xml("SCAN", &[("key", "123")]));
        assert_eq!(scan[4], ("Event".into(), "SCAN".into()));
        assert_eq!(scan[5], ("EventKey".into(), "123".into()));
        assert_eq!(scan[6].0, "Ticket");
        assert!(xml("LOCATION", &[]).contains(
            "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>"
        ));
        let view = fields(&xml("VIEW", &[("key", "https://a.example/x?y=1&z=2")]));
        assert_eq!(
            view[5],
            ("EventKey".into(), "https://a.example/x?y=1&z=2".into())
        );
        let text = fields(&xml("text", &[("content", "a]]>b<c>&"), ("msgid", "42")]));
        assert_eq!(text[3], ("MsgType".into(), "text".into()));
        assert_eq!(text[4], ("Content".into(), "a]]>b<c>&".into()));
        assert_eq!(text[5], ("MsgId".into(), "42".into()));
        assert_eq!(
            text[1],
            ("FromUserName".into(), users::USERS[0].openid.into())
        );
        assert_eq!(text[0], ("ToUserName".into(), DEFAULT_TO.into()));
    }

    #[test]
    fn bad_fields_are_refused() {
        for (kind, extra) in [
            ("tap", vec![]),
            ("text", vec![("msgid", "-1")]),
            ("text", vec![("repeat", "0")]),
            ("text", vec![("repeat", "6")]),
            ("text", vec![("create_time", "x")]),
            ("LOCATION", vec![("latitude", "north")]),
            ("text", vec![("bad_signature", "yes")]),
            ("text", vec![("colour", "red")]),
            ("text", vec![("to", "a"), ("to", "b")]),
        ] {
            assert!(message(kind, &extra).is_err(), "{kind} {extra:?}");
        }
        assert!(parse(
            &form(&[("url", "http://127.0.0.1/"), ("kind", "text")]),
            1,
            &crate::tests::sim().config
        )
        .is_err());
        assert_eq!(
            message("text", &[]).map(|p| p.message.create_time),
            Ok(1_700_000_000)
        );
    }

    #[test]
    fn only_loopback_urls_are_accepted() {
        assert_eq!(loopback_port("http://127.0.0.1:8080/wechat"), Ok(8080));
        assert_eq!(loopback_port("http://127.0.0.1/wechat?x=1"), Ok(80));
        assert_eq!(loopback_port("http://[::1]:9/w"), Ok(9));
        for url in [
            "https://127.0.0.1/",
            "http://localhost:8080/",
            "http://127.0.0.1.evil.example/",
            "http://127.0.0.1@evil.example/",
            "http://127.0.0.1:80@evil.example/",
            "http://example.com/?127.0.0.1",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1/#frag",
            "http://127.0.0.1/ x",
            "ftp://127.0.0.1/",
        ] {
            assert!(loopback_port(url).is_err(), "{url}");
        }
        assert!(not_self("http://127.0.0.1:8080/w", Some("127.0.0.1:8080")).is_err());
        assert!(not_self("http://127.0.0.1:8081/w", Some("127.0.0.1:8080")).is_ok());
        assert!(not_self("http://127.0.0.1/w", Some("127.0.0.1")).is_err());
    }

    /// A simulator whose demo target is `url` with token `demo-token`.
    fn demo_config(aes_key: Option<&str>) -> SimConfig {
        SimConfig {
            push_target: Some(crate::PushTarget {
                url: "http://127.0.0.1:9999/wechat".into(),
                token: "demo-token".into(),
                aes_key: aes_key.map(String::from),
            }),
            ..crate::tests::sim().config
        }
    }

    #[test]
    fn modes_and_keys_are_checked() {
        let plain = message("text", &[]).unwrap();
        assert!(matches!(plain.mode, Mode::Plain));
        assert!(matches!(sealed("safe", &[]).mode, Mode::Safe(_)));
        let compat = sealed("compat", &[]);
        let Mode::Compat(encryption) = &compat.mode else {
            panic!("{compat:?}")
        };
        assert_eq!(encryption.appid, appid());
        assert!(!encryption.bad_msg_signature);
        let refused = |extra: &[(&str, &str)]| message("text", extra).unwrap_err();
        for (extra, why) in [
            (vec![("mode", "secure")], "mode=secure"),
            (vec![("mode", "safe")], "aes_key: required"),
            (
                vec![("mode", "compat"), ("aes_key", "")],
                "aes_key: required",
            ),
            (
                vec![("mode", "plain"), ("aes_key", AES_KEY)],
                "aes_key: only",
            ),
            (vec![("aes_key", AES_KEY)], "aes_key: only"),
            (vec![("bad_msg_signature", "1")], "bad_msg_signature: only"),
            (vec![("wrong_appid", "1")], "wrong_appid: only"),
            (vec![("appid", "wx1")], "appid: only"),
            (vec![("view", "xml")], "view=xml"),
            (vec![("encrypt_type", "aes")], "unknown field"),
            (vec![("msg_signature", "x")], "unknown field"),
        ] {
            let error = refused(&extra);
            assert!(error.contains(why), "{extra:?}: {error}");
        }
        // A key that is not one is refused without being repeated.
        let short = &AES_KEY[..42];
        let plus = format!("{short}+");
        for bad in [short, plus.as_str(), "x"] {
            let error = refused(&[("mode", "safe"), ("aes_key", bad)]);
            assert!(error.contains("not an EncodingAESKey"), "{error}");
            assert!(!error.contains(bad), "{error}");
        }
        for (name, value) in [("bad_msg_signature", "yes"), ("wrong_appid", "2")] {
            let error = refused(&[("mode", "safe"), ("aes_key", AES_KEY), (name, value)]);
            assert!(error.contains("want 1 or 0"), "{error}");
        }
        assert!(message("text", &[("view", "page")]).is_ok());
        assert!(message("text", &[("view", "json")]).is_ok());
    }

    #[test]
    fn the_appid_inside_is_the_simulators_unless_asked_otherwise() {
        let appid_of = |extra: &[(&str, &str)]| match sealed("safe", extra).mode {
            Mode::Safe(e) => e.appid,
            other => panic!("{other:?}"),
        };
        assert_eq!(appid_of(&[]), appid());
        assert_eq!(appid_of(&[("wrong_appid", "1")]), OTHER_APPID);
        assert_eq!(appid_of(&[("appid", "wxAnotherOne")]), "wxAnotherOne");
        for extra in [
            vec![("appid", "wx1"), ("wrong_appid", "1")],
            vec![("appid", "")],
            vec![("appid", "wx 1")],
        ] {
            let mut pairs = vec![("mode", "safe"), ("aes_key", AES_KEY)];
            pairs.extend(extra.iter().copied());
            assert!(message("text", &pairs).is_err(), "{extra:?}");
        }
        // Never the simulator's own appid, even when it is OTHER_APPID.
        let config = SimConfig {
            appid: OTHER_APPID.into(),
            ..crate::tests::sim().config
        };
        let form = form(&[
            ("url", "http://127.0.0.1:8080/wechat"),
            ("token", "tok"),
            ("kind", "text"),
            ("mode", "safe"),
            ("aes_key", AES_KEY),
            ("wrong_appid", "1"),
        ]);
        match parse(&form, 1, &config).unwrap().mode {
            Mode::Safe(e) => assert_eq!(e.appid, OTHER_APPID_2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn demo_mode_fills_in_url_token_and_key() {
        let config = demo_config(Some(AES_KEY));
        let push = parse(&form(&[("kind", "text"), ("mode", "safe")]), 1, &config).unwrap();
        assert_eq!(push.url, "http://127.0.0.1:9999/wechat");
        assert_eq!(push.token, "demo-token");
        assert!(matches!(push.mode, Mode::Safe(_)));
        // What a push names wins over the defaults.
        let push = parse(
            &form(&[
                ("kind", "text"),
                ("url", "http://127.0.0.1:7/w"),
                ("token", "mine"),
            ]),
            1,
            &config,
        )
        .unwrap();
        assert_eq!(
            (push.url.as_str(), push.token.as_str()),
            ("http://127.0.0.1:7/w", "mine")
        );
        assert!(matches!(push.mode, Mode::Plain));
        // A plain push ignores the demo's key; an encrypted one needs a key.
        let keyless = demo_config(None);
        assert!(parse(&form(&[("kind", "text")]), 1, &keyless).is_ok());
        let error = parse(&form(&[("kind", "text"), ("mode", "compat")]), 1, &keyless).unwrap_err();
        assert!(error.contains("aes_key: required"), "{error}");
        // Without a target, url and token are still required.
        assert!(parse(&form(&[("kind", "text")]), 1, &crate::tests::sim().config).is_err());
        // The target's secrets never show in Debug.
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("demo-token") && !debug.contains(AES_KEY),
            "{debug}"
        );
    }

    /// The query's pairs for one send of `push` with nonce 12345.
    fn query(push: &Push, wire: &Wire) -> std::collections::HashMap<String, String> {
        wxauth_app::transport::http::parse_query(&push.query(wire, "12345"))
            .into_iter()
            .collect()
    }

    #[test]
    fn safe_bodies_hold_only_to_and_encrypt() {
        let push = sealed("safe", &[("content", "登录"), ("to", "gh_1")]);
        let wire = push.wire();
        let encrypt = wire.encrypt.clone().expect("encrypted");
        assert_eq!(
            fields(&wire.body),
            vec![
                ("ToUserName".to_string(), "gh_1".to_string()),
                ("Encrypt".to_string(), encrypt.clone()),
            ]
        );
        let opened = key().decrypt(&encrypt).unwrap();
        assert_eq!(opened.message, push.message.xml().as_bytes());
        assert_eq!(opened.appid, appid().as_bytes());
        // Fresh random bytes each time: the same message encrypts differently.
        assert_ne!(push.wire().encrypt, Some(encrypt));
    }

    #[test]
    fn compat_bodies_hold_the_plaintext_fields_and_encrypt() {
        let push = sealed("compat", &[("content", "hi"), ("wrong_appid", "1")]);
        let wire = push.wire();
        let encrypt = wire.encrypt.clone().expect("encrypted");
        let mut expected = fields(&push.message.xml());
        expected.push(("Encrypt".into(), encrypt.clone()));
        assert_eq!(fields(&wire.body), expected);
        assert_eq!(expected.len(), 7, "{expected:?}");
        let opened = key().decrypt(&encrypt).unwrap();
        assert_eq!(opened.message, push.message.xml().as_bytes());
        assert_eq!(opened.appid, OTHER_APPID.as_bytes());
        // Plain mode: the XML alone.
        let plain = message("text", &[]).unwrap();
        let wire = plain.wire();
        assert_eq!((wire.body, wire.encrypt), (plain.message.xml(), None));
    }

    #[test]
    fn the_query_signs_the_request_and_the_ciphertext() {
        let push = sealed("safe", &[]);
        let wire = push.wire();
        let encrypt = wire.encrypt.as_deref().unwrap();
        let q = query(&push, &wire);
        assert_eq!(q["timestamp"], "1700000000");
        assert_eq!(q["nonce"], "12345");
        assert_eq!(q["openid"], users::USERS[0].openid);
        assert_eq!(q["encrypt_type"], "aes");
        assert_eq!(q["signature"], signature_of("tok", "1700000000", "12345"));
        assert_eq!(
            q["msg_signature"],
            msg_signature("tok", "1700000000", "12345", encrypt)
        );
        assert_eq!(q.len(), 6, "{q:?}");
        // Each switch breaks only its own signature.
        let bad = sealed("safe", &[("bad_msg_signature", "1")]);
        let wire = bad.wire();
        let q = query(&bad, &wire);
        let encrypt = wire.encrypt.as_deref().unwrap();
        assert_ne!(
            q["msg_signature"],
            msg_signature("tok", "1700000000", "12345", encrypt)
        );
        assert_eq!(q["msg_signature"].len(), 40);
        assert_eq!(q["signature"], signature_of("tok", "1700000000", "12345"));
        let bad = sealed("compat", &[("bad_signature", "1")]);
        let wire = bad.wire();
        let q = query(&bad, &wire);
        assert_ne!(q["signature"], signature_of("tok", "1700000000", "12345"));
        let encrypt = wire.encrypt.as_deref().unwrap();
        assert_eq!(
            q["msg_signature"],
            msg_signature("tok", "1700000000", "12345", encrypt)
        );
        // Plain mode: neither encrypt_type nor msg_signature.
        let plain = message("text", &[]).unwrap();
        let q = query(&plain, &plain.wire());
        assert!(!q.contains_key("encrypt_type") && !q.contains_key("msg_signature"));
    }

    /// Bytes that base64 `text` stands for (standard alphabet, padded).
    fn decoded_len(text: &str) -> usize {
        text.len() / 4 * 3 - text.bytes().rev().take_while(|&b| b == b'=').count()
    }

    #[test]
    fn some_text_fills_the_block_and_gets_a_whole_block_of_padding() {
        // random(16) + length(4) + XML + appid, padded to 32: 32 contents
        // one byte apart hit every padding, 32 (a whole block) among them.
        let mut full_blocks = 0;
        for n in 0..32 {
            let content = "x".repeat(n);
            let push = sealed("safe", &[("content", &content), ("msgid", "42")]);
            let xml = push.message.xml();
            let plaintext = 16 + 4 + xml.len() + appid().len();
            let pad = 32 - plaintext % 32;
            let encrypt = push.wire().encrypt.unwrap();
            assert_eq!(decoded_len(&encrypt), plaintext + pad, "n={n}");
            let opened = key().decrypt(&encrypt).unwrap();
            assert_eq!(opened.message, xml.as_bytes(), "n={n}");
            assert_eq!(opened.appid, appid().as_bytes(), "n={n}");
            if pad == 32 {
                full_blocks += 1;
            }
        }
        assert_eq!(full_blocks, 1);
    }

    /// The app's encrypted answer to `push`: `reply` sealed with `token`
    /// and `appid` at `timestamp`.
    fn app_reply(token: &str, appid: &str, reply: &str, timestamp: i64) -> String {
        wxauth_app::wechat::encryption::seal_reply(
            &key(),
            token,
            appid,
            reply,
            timestamp,
            "987654321",
            random::bytes(),
        )
    }

    const NOW: i64 = 1_700_000_000;
    const REPLY: &str = "<xml><ToUserName><![CDATA[oUser]]></ToUserName><Content><![CDATA[登录 <a>]]></Content></xml>";

    #[test]
    fn an_encrypted_reply_is_checked_as_wechat_would() {
        let push = sealed("safe", &[]);
        let check = |body: &str| check_reply(&push, body.as_bytes(), NOW);
        assert_eq!(
            check(&app_reply("tok", &appid(), REPLY, NOW - 5)),
            Some(ReplyCheck::Opened {
                xml: REPLY.into(),
                timestamp: (NOW - 5).to_string()
            })
        );
        let refused = |body: &str| match check(body) {
            Some(ReplyCheck::Refused(error)) => error,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(&app_reply("another token", &appid(), REPLY, NOW)),
            "msg_signature does not match"
        );
        let error = refused(&app_reply("tok", OTHER_APPID, REPLY, NOW));
        assert!(
            error.contains("appid in message is wx0123456789abcdef"),
            "{error}"
        );
        let error = refused(&app_reply("tok", &appid(), REPLY, NOW * 1000));
        assert!(error.contains("not Unix seconds"), "{error}");
        let error = refused(&app_reply("tok", &appid(), REPLY, NOW - 301));
        assert!(
            error.contains("301 s from the simulator's clock"),
            "{error}"
        );
        assert_eq!(refused(REPLY), "safe mode wants an encrypted reply");
        assert_eq!(refused("hello"), "not WeChat's XML");
        let envelope = app_reply("tok", &appid(), REPLY, NOW).replace("MsgSignature", "Sig");
        assert_eq!(refused(&envelope), "no MsgSignature element");
        // "success" and nothing are no reply, in every mode.
        for nothing in ["success", "", " success\n"] {
            assert_eq!(check(nothing), None, "{nothing:?}");
        }
    }

    #[test]
    fn compat_mode_takes_either_reply_and_plain_mode_checks_none() {
        let push = sealed("compat", &[]);
        let check = |body: &str| check_reply(&push, body.as_bytes(), NOW);
        assert_eq!(
            check(REPLY),
            Some(ReplyCheck::Plaintext { xml: REPLY.into() })
        );
        assert!(matches!(
            check(&app_reply("tok", &appid(), REPLY, NOW)),
            Some(ReplyCheck::Opened { .. })
        ));
        let plain = message("text", &[]).unwrap();
        assert_eq!(check_reply(&plain, REPLY.as_bytes(), NOW), None);
        assert_eq!(check_reply(&plain, b"junk", NOW), None);
        // The report's shape for each.
        assert_eq!(
            ReplyCheck::Plaintext { xml: "x".into() }.json(),
            serde_json::json!({ "ok": true, "plaintext": true, "xml": "x" })
        );
        assert_eq!(
            ReplyCheck::Opened {
                xml: "x".into(),
                timestamp: "1".into()
            }
            .json(),
            serde_json::json!({ "ok": true, "xml": "x", "timestamp": "1" })
        );
        assert_eq!(
            ReplyCheck::Refused("e".into()).json(),
            serde_json::json!({ "ok": false, "error": "e" })
        );
    }

    /// A stand-in for the app in safe mode: answers one push on a loopback
    /// port, after checking it as the app would, with `reply` sealed.
    fn safe_app(reply: &'static str) -> (String, std::thread::JoinHandle<()>) {
        use std::io::{BufRead, BufReader, Read, Write};
        use wxauth_app::wechat::encryption::{open, Signed};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/wechat", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let app = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("no push within 10 s: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let target = line.split(' ').nth(1).unwrap().to_string();
            let mut length = 0;
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let q: std::collections::HashMap<_, _> =
                wxauth_app::transport::http::parse_query(target.split_once('?').unwrap().1)
                    .into_iter()
                    .collect();
            assert_eq!(q["encrypt_type"], "aes");
            let encrypt = wxauth_app::wechat::message::fields(&body).unwrap()["Encrypt"].clone();
            let signed = Signed {
                token: "tok",
                timestamp: &q["timestamp"],
                nonce: &q["nonce"],
                msg_signature: &q["msg_signature"],
            };
            let (xml, _) = open(&[key()], &appid(), &signed, &encrypt).unwrap();
            assert!(String::from_utf8(xml)
                .unwrap()
                .contains("<Content><![CDATA[登录]]>"));
            let sealed = app_reply("tok", &appid(), reply, q["timestamp"].parse().unwrap());
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sealed}",
                sealed.len()
            );
            (&stream).write_all(answer.as_bytes()).unwrap();
        });
        (url, app)
    }

    #[test]
    fn a_safe_push_is_delivered_and_its_reply_opened() {
        let (url, app) = safe_app(REPLY);
        let clock = Clock::new();
        let create_time = clock.now().to_string();
        let push = sealed(
            "safe",
            &[
                ("url", &url),
                ("content", "登录"),
                ("create_time", &create_time),
            ],
        );
        let report = deliver(&push, &clock);
        app.join().expect("the app saw a good push");
        assert_eq!(report["mode"], "safe");
        assert_eq!(report["sent"], 1);
        assert_eq!(report["xml"], push.message.xml());
        let encrypt = report["encrypt"].as_str().unwrap();
        assert_eq!(
            key().decrypt(encrypt).unwrap().message,
            push.message.xml().as_bytes()
        );
        let answer = &report["answers"][0];
        assert_eq!(answer["status"], 200, "{report}");
        assert_eq!(answer["reply"]["ok"], true, "{report}");
        assert_eq!(answer["reply"]["xml"], REPLY);
        assert_eq!(answer["reply"]["timestamp"], create_time.as_str());
        let text = report.to_string();
        assert!(
            !text.contains(AES_KEY) && !text.contains("\"tok\""),
            "{text}"
        );
    }

    /// A report as `deliver` makes it, for the page.
    fn report_with_every_answer() -> serde_json::Value {
        serde_json::json!({
            "sent": 4,
            "mode": "safe",
            "xml": "<xml><Content><![CDATA[<script>alert(1)</script>]]></Content></xml>",
            "encrypt": "QUJD+/==",
            "answers": [
                { "status": 200, "body": "<xml><Encrypt>…</Encrypt></xml>",
                  "reply": { "ok": true, "xml": "<xml><b>hi</b></xml>", "timestamp": "1700000000" } },
                { "status": 200, "body": "<xml/>",
                  "reply": { "ok": false, "error": "safe mode wants an encrypted reply" } },
                { "status": 200, "body": "<xml><Content>明</Content></xml>",
                  "reply": { "ok": true, "plaintext": true, "xml": "<xml><Content>明</Content></xml>" } },
                { "status": 200, "body": "success" },
                { "status": 403, "body": "<i>no</i>" },
                { "status": 0, "body": "", "error": "connection refused" },
            ],
        })
    }

    #[test]
    fn the_push_page_shows_everything_escaped_and_no_secret() {
        let sim = crate::Sim::new(demo_config(Some(AES_KEY)));
        let mode = sealed("safe", &[]).mode;
        let reply = page(&sim, &mode, &report_with_every_answer(), "");
        assert_eq!(reply.status, 200);
        let html = String::from_utf8(reply.body).unwrap();
        for shown in [
            "安全模式",
            "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;",
            "QUJD+&#x2f;==",
            "MsgSignature 正确，appid 正确，TimeStamp 1700000000",
            "&lt;b&gt;hi&lt;&#x2f;b&gt;",
            "回复不合格：safe mode wants an encrypted reply",
            "明文回复",
            "success 或空串",
            "HTTP 403",
            "&lt;i&gt;no&lt;&#x2f;i&gt;",
            "没有连上应用：connection refused",
            "href=\"/sim\"",
        ] {
            assert!(html.contains(shown), "{shown} not in {html}");
        }
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(!html.contains("demo-token") && !html.contains(AES_KEY));
        // A refusal is a page too, its message escaped.
        let reply = refuse(&sim, View::Page, "url=<x>: no");
        assert_eq!(reply.status, 400);
        let html = String::from_utf8(reply.body).unwrap();
        assert!(
            html.contains("没有推送：<span class=\"error\">url=&lt;x&gt;: no"),
            "{html}"
        );
        assert_eq!(
            refuse(&sim, View::Json, "e").header("Content-Type"),
            Some("application/json")
        );
    }
}
