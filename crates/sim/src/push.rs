//! `/sim/push`: WeChat's side of the 服务器配置 URL. Builds a message or an
//! event as plaintext-mode XML, signs it with the app's token and POSTs it to
//! the app (docs/wechat.md §7). Talks to loopback
//! only, and never to the simulator itself: the loop would wait on its own call.
//!
//! The signature and the CDATA are the app's own (wxauth_app::wechat::message),
//! whose tests pin them to WeChat's definition: one implementation, checked
//! against WeChat rather than against itself.

use super::{users, Sim};
use std::time::Duration;
use wxauth_app::random;
use wxauth_app::transport::http::{encode_query, Reply, Req};
use wxauth_app::wechat::message::{cdata_field, signature_of};

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

/// What one `/sim/push` asks for, checked before anything is sent.
#[derive(Debug, PartialEq)]
struct Push {
    url: String,
    token: String,
    message: Message,
    repeat: u32,
    bad_signature: bool,
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

/// `POST /sim/push` (form body): sends the message `repeat` times and
/// answers `{"sent", "answers": [{"status", "body"}...], "xml"}`; 400 with
/// `{"error"}` when a field is wrong or the url is not the app on loopback.
pub(super) fn push(sim: &mut Sim, req: &Req) -> Reply {
    let push = match parse(&req.form(), sim.clock.now()) {
        Ok(push) => push,
        Err(error) => return refuse(&error),
    };
    if let Err(error) = not_self(&push.url, req.header("host")) {
        return refuse(&error);
    }
    let xml = push.message.xml();
    let agent = agent();
    let answers: Vec<_> = (0..push.repeat)
        .map(|_| send(&agent, &push, &xml))
        .collect();
    Reply::json(&serde_json::json!({
        "sent": answers.len(),
        "answers": answers,
        "xml": xml,
    }))
    .with_header("Cache-Control", "no-store")
}

fn refuse(error: &str) -> Reply {
    Reply::json(&serde_json::json!({ "error": error })).with_status(400)
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

/// One signed POST. A new nonce each time, like a retry; same body and timestamp.
fn send(agent: &ureq::Agent, push: &Push, xml: &str) -> serde_json::Value {
    let timestamp = push.message.create_time.to_string();
    let nonce = nonce();
    let token = if push.bad_signature {
        random::token(32)
    } else {
        push.token.clone()
    };
    let query = encode_query(&[
        ("signature", &signature_of(&token, &timestamp, &nonce)),
        ("timestamp", &timestamp),
        ("nonce", &nonce),
        ("openid", &push.message.from),
    ]);
    let glue = if push.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{glue}{query}", push.url);
    let sent = agent
        .post(&url)
        .header("Content-Type", "text/xml")
        .send(xml);
    let mut answer = match sent {
        Ok(answer) => answer,
        Err(e) => return serde_json::json!({ "status": 0, "body": "", "error": e.to_string() }),
    };
    let status = answer.status().as_u16();
    match answer
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
    {
        Ok(body) => {
            serde_json::json!({ "status": status, "body": String::from_utf8_lossy(&body) })
        }
        Err(e) => serde_json::json!({ "status": status, "body": "", "error": e.to_string() }),
    }
}

fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    u64::from_le_bytes(buf)
}

/// A nonce of digits, like WeChat's (up to 10 of them).
fn nonce() -> String {
    (random_u64() % 10_000_000_000).to_string()
}

impl Message {
    /// The plaintext-mode XML, element for element as WeChat writes it.
    fn xml(&self) -> String {
        let mut x = String::from("<xml>");
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
        x.push_str("</xml>");
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
fn parse(form: &[(String, String)], now: i64) -> Result<Push, String> {
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
    ];
    for (i, (name, _)) in form.iter().enumerate() {
        if !FIELDS.contains(&name.as_str()) {
            return Err(format!("unknown field {name:?}"));
        }
        if form[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("field {name:?} given twice"));
        }
    }
    let url = get("url").ok_or("url: required (the app's message URL)")?;
    loopback_port(url)?;
    let token = get("token")
        .filter(|t| !t.is_empty())
        .ok_or("token: required (the app's WXAUTH_TOKEN)")?;
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
    let bad_signature = match get("bad_signature") {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(format!("bad_signature={other}: want 1 or 0")),
    };
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
    })
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
        parse(&form(&pairs), 1)
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
        assert!(parse(&form(&[("url", "http://127.0.0.1/"), ("kind", "text")]), 1).is_err());
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
}
