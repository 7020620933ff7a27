//! The Official Account's message endpoint, `/wechat`, answered only when
//! WXAUTH_TOKEN is set: WeChat's server verification (GET) and the signed
//! XML it pushes for messages and events (POST, plaintext mode). A subscribe
//! or a "登录" message is answered with the login link; anything else with
//! `success`. WeChat retries a push it got no answer to, three times: a retry
//! gets the very reply the first delivery got (the login link is most needed
//! exactly when the first answer was lost), and is acted on once.

use crate::log;
use crate::random::constant_time_eq;
use crate::transport::http::{Reply, Req};
use crate::web::app::App;
use crate::web::error::AppError;
use quick_xml::events::Event;
use quick_xml::Reader;
use sha1::{Digest, Sha1};
use std::collections::{HashMap, VecDeque};

/// How far a push's timestamp may be from our clock, in seconds.
const MAX_SKEW: i64 = 300;
/// Pushes remembered for recognising retries (WeChat retries within 15 s).
const SEEN_TTL: i64 = 60;
/// With their replies (a few hundred bytes each): a few MB at most, and only
/// signed pushes (from WeChat, or whoever holds WXAUTH_TOKEN) add one.
const SEEN_CAP: usize = 10_000;
/// More fields than any WeChat message has.
const MAX_FIELDS: usize = 64;

/// GET /wechat: WeChat checks that this server knows the token.
pub fn verify(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let token = app.config.token.clone().ok_or(AppError::NotFound)?;
    if !signed(token.expose(), req, app.clock.now()) {
        return Ok(Reply::text(403, "invalid signature\n"));
    }
    Ok(Reply::text(200, req.query("echostr").unwrap_or("")))
}

/// POST /wechat: a signed message or event.
pub fn receive(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let token = app.config.token.clone().ok_or(AppError::NotFound)?;
    let now = app.clock.now();
    // The signature is checked before the body is even parsed.
    if !signed(token.expose(), req, now) {
        return Ok(Reply::text(403, "invalid signature\n"));
    }
    let Some(msg) = Message::parse(&req.body) else {
        return Ok(Reply::text(400, "malformed message\n"));
    };
    let key = msg.retry_key();
    if let Some(reply) = app.pushes.reply_to(&key, now) {
        log::debug(&format!(
            "wechat: retry of {} from {}",
            msg.kind(),
            msg.from
        ));
        return Ok(reply);
    }
    log::info(&format!("wechat: {} from {}", msg.kind(), msg.from));
    let reply = act_on(app, &msg, now);
    app.pushes.remember(key, &reply, now);
    Ok(reply)
}

/// What a push makes us do, once: here, choose the answer.
fn act_on(app: &App, msg: &Message, now: i64) -> Reply {
    let login = format!("{}/login", app.config.public_url);
    let wants_login = match (msg.msg_type.as_str(), msg.event.as_str()) {
        ("event", "subscribe") => true,
        ("text", _) => {
            ["登录", "登陆", "login"].contains(&msg.content.trim().to_lowercase().as_str())
        }
        _ => false,
    };
    if !wants_login {
        return Reply::text(200, "success");
    }
    let text = format!("欢迎！点击登录，查看你的资料：{login}");
    Reply::with_body(
        200,
        "text/xml; charset=utf-8",
        msg.text_reply(&text, now).into_bytes(),
    )
}

/// WeChat's signature: sha1 over [token, timestamp, nonce] sorted and joined,
/// in lowercase hex; and a timestamp close to now, so a captured push cannot
/// be replayed later.
fn signed(token: &str, req: &Req, now: i64) -> bool {
    let (Some(signature), Some(timestamp), Some(nonce)) = (
        req.query("signature"),
        req.query("timestamp"),
        req.query("nonce"),
    ) else {
        return false;
    };
    let Ok(when) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - when).abs() > MAX_SKEW {
        return false;
    }
    constant_time_eq(
        &signature.to_ascii_lowercase(),
        &signature_of(token, timestamp, nonce),
    )
}

/// The signature WeChat computes for these three strings.
pub fn signature_of(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    let digest = Sha1::digest(parts.concat().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a push says, WeChat's field names lower-cased.
#[derive(Debug, Default, PartialEq)]
pub struct Message {
    pub to: String,
    pub from: String,
    pub create_time: String,
    pub msg_type: String,
    pub event: String,
    pub event_key: String,
    pub content: String,
    pub msg_id: String,
}

impl Message {
    /// Parses plaintext-mode XML: `<xml><Field>value</Field>…</xml>`. Returns
    /// None for anything else. quick-xml expands no DTD and no entity but
    /// XML's five and character references, and a DOCTYPE is refused, so
    /// XXE and entity expansion cannot happen.
    pub fn parse(body: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(body).ok()?;
        let mut reader = Reader::from_str(text);
        let mut fields: HashMap<String, String> = HashMap::new();
        let (mut depth, mut field, mut value, mut saw_root) =
            (0usize, None::<String>, String::new(), false);
        loop {
            match reader.read_event().ok()? {
                Event::Start(start) => {
                    depth += 1;
                    let name = start.name().as_ref().to_string();
                    match depth {
                        1 if name == "xml" => saw_root = true,
                        2 => {
                            field = Some(name);
                            value.clear();
                        }
                        // Nested elements (ArticleCount items and the like): ignored.
                        _ if depth > 2 => {}
                        _ => return None,
                    }
                }
                Event::End(_) => {
                    if depth == 2 {
                        if let Some(name) = field.take() {
                            fields.insert(name, std::mem::take(&mut value));
                            if fields.len() > MAX_FIELDS {
                                return None;
                            }
                        }
                    }
                    depth = depth.checked_sub(1)?;
                }
                Event::Empty(_) => {}
                Event::Text(t) if depth == 2 => value.push_str(&t.into_inner()),
                Event::CData(c) if depth == 2 => value.push_str(&c.into_inner()),
                Event::GeneralRef(r) if depth == 2 => value.push(resolve(&r)?),
                Event::GeneralRef(r) => {
                    resolve(&r)?;
                }
                Event::DocType(_) => return None,
                Event::Eof => break,
                _ => {}
            }
        }
        if !saw_root || depth != 0 {
            return None;
        }
        let mut take = |name: &str| fields.remove(name).unwrap_or_default();
        let msg = Message {
            to: take("ToUserName"),
            from: take("FromUserName"),
            create_time: take("CreateTime"),
            msg_type: take("MsgType"),
            event: take("Event"),
            event_key: take("EventKey"),
            content: take("Content"),
            msg_id: take("MsgId"),
        };
        (!msg.from.is_empty() && !msg.to.is_empty() && !msg.msg_type.is_empty()).then_some(msg)
    }

    /// What identifies WeChat's retries of this push (docs/wechat.md §7): MsgId for
    /// messages, FromUserName + CreateTime for events.
    fn retry_key(&self) -> String {
        if self.msg_id.is_empty() {
            format!("{}|{}|{}", self.from, self.create_time, self.event)
        } else {
            format!("id|{}", self.msg_id)
        }
    }

    /// A short description for the log: "subscribe (qrscene_1)", "text".
    fn kind(&self) -> String {
        match (self.msg_type.as_str(), self.event_key.is_empty()) {
            ("event", true) => self.event.clone(),
            ("event", false) => format!("{} ({})", self.event, self.event_key),
            (other, _) => other.to_string(),
        }
    }

    /// A passive text reply: to the user who wrote, from the account.
    pub fn text_reply(&self, content: &str, now: i64) -> String {
        format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName>\
             <CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content>{}</Content></xml>",
            cdata(&self.from),
            cdata(&self.to),
            cdata(content)
        )
    }
}

/// XML's five entities and character references; anything else is refused.
fn resolve(r: &quick_xml::events::BytesRef) -> Option<char> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c);
    }
    match r.as_ref() {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// Text as CDATA; a `]]>` inside is split across two sections.
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// Pushes seen lately with the reply each got, to answer WeChat's retries
/// the same without acting twice.
#[derive(Default)]
pub struct SeenPushes {
    seen: HashMap<String, Seen>,
    order: VecDeque<String>,
    acted: usize,
}

struct Seen {
    at: i64,
    content_type: Box<str>,
    body: Box<[u8]>,
}

impl SeenPushes {
    /// The reply `key`'s first delivery got, if it came within SEEN_TTL.
    pub fn reply_to(&mut self, key: &str, now: i64) -> Option<Reply> {
        self.forget_old(now);
        let seen = self.seen.get(key)?;
        Some(Reply::with_body(
            200,
            &seen.content_type,
            seen.body.to_vec(),
        ))
    }

    /// Records that the push `key` was acted on and answered with `reply`.
    pub fn remember(&mut self, key: String, reply: &Reply, now: i64) {
        self.acted += 1;
        self.forget_old(now);
        while self.order.len() >= SEEN_CAP {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        let seen = Seen {
            at: now,
            content_type: reply.header("content-type").unwrap_or("text/plain").into(),
            body: reply.body.clone().into_boxed_slice(),
        };
        if self.seen.insert(key.clone(), seen).is_none() {
            self.order.push_back(key);
        }
    }

    /// How many pushes were acted on (retries not counted).
    pub fn acted(&self) -> usize {
        self.acted
    }

    fn forget_old(&mut self, now: i64) {
        while let Some(oldest) = self.order.front() {
            if self.seen.get(oldest).is_some_and(|s| now - s.at < SEEN_TTL) {
                break;
            }
            let oldest = self.order.pop_front().expect("front exists");
            self.seen.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_wechats() {
        // sorted: "1409304348" < "1409659813" < "token"? digits sort before letters.
        let sig = signature_of("token", "1409304348", "1409659813");
        let mut expected = Sha1::new();
        expected.update(b"14093043481409659813token");
        let expected: String = expected
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sig, expected);
        assert_eq!(sig.len(), 40);
    }

    #[test]
    fn a_subscribe_event_parses() {
        let xml = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oU1]]></FromUserName>\
                    <CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>\
                    <Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_7]]></EventKey></xml>";
        let msg = Message::parse(xml).unwrap();
        assert_eq!((msg.to.as_str(), msg.from.as_str()), ("gh_1", "oU1"));
        assert_eq!(
            (msg.msg_type.as_str(), msg.event.as_str()),
            ("event", "subscribe")
        );
        assert_eq!(msg.event_key, "qrscene_7");
        assert_eq!(msg.kind(), "subscribe (qrscene_7)");
    }

    #[test]
    fn entities_beyond_xmls_five_and_doctypes_are_refused() {
        assert!(Message::parse(b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><FromUserName>&e;</FromUserName></xml>").is_none());
        assert!(Message::parse(b"<xml><ToUserName>a</ToUserName><FromUserName>&e;</FromUserName><MsgType>text</MsgType></xml>").is_none());
        let ok = Message::parse(b"<xml><ToUserName>a</ToUserName><FromUserName>o&amp;&#x41;</FromUserName><MsgType>text</MsgType></xml>").unwrap();
        assert_eq!(ok.from, "o&A");
    }

    #[test]
    fn malformed_input_is_refused_not_panicked_on() {
        for body in [
            &b""[..],
            b"<xml>",
            b"<xml></yml>",
            b"not xml",
            b"<other><a>1</a></other>",
            b"\xff\xfe",
            b"<xml><a>1</a></xml><xml>",
        ] {
            assert!(
                Message::parse(body).is_none(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_reply_goes_back_to_the_sender_and_survives_cdata_breakers() {
        let msg = Message {
            to: "gh_1".into(),
            from: "oU1".into(),
            msg_type: "text".into(),
            ..Message::default()
        };
        let reply = msg.text_reply("a]]>b", 5);
        assert!(reply.starts_with(
            "<xml><ToUserName><![CDATA[oU1]]></ToUserName><FromUserName><![CDATA[gh_1]]>"
        ));
        assert!(
            reply.contains("<Content><![CDATA[a]]]]><![CDATA[>b]]></Content>"),
            "{reply}"
        );
        let back = Message::parse(reply.as_bytes()).unwrap();
        assert_eq!(back.content, "a]]>b");
    }

    #[test]
    fn retries_get_the_first_reply_and_are_forgotten_after_a_while() {
        let mut seen = SeenPushes::default();
        assert!(seen.reply_to("k", 0).is_none());
        let reply = Reply::with_body(200, "text/xml; charset=utf-8", b"<xml>1</xml>".to_vec());
        seen.remember("k".into(), &reply, 0);
        let again = seen.reply_to("k", 10).unwrap();
        assert_eq!(again.body, reply.body);
        assert_eq!(
            again.header("content-type"),
            Some("text/xml; charset=utf-8")
        );
        assert!(seen.reply_to("k", SEEN_TTL + 1).is_none());
        for i in 0..(SEEN_CAP + 10) {
            seen.remember(i.to_string(), &reply, SEEN_TTL + 2);
        }
        assert!(seen.seen.len() <= SEEN_CAP && seen.order.len() <= SEEN_CAP);
        assert_eq!(seen.acted(), SEEN_CAP + 11);
    }
}
