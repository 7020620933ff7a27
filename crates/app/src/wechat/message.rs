//! The Official Account's message protocol (plaintext mode; docs/wechat.md
//! §7): the signature WeChat puts on every push, the XML of a push, and the
//! XML of a passive reply. Pure: no request, no state, no clock.
//!
//! The simulator signs its pushes and writes their CDATA with `signature_of`
//! and `cdata_field` from here, so the two sides cannot drift apart; the
//! tests below pin both to WeChat's definition with digests written out,
//! not to each other.

use crate::random::constant_time_eq;
use quick_xml::events::Event;
use quick_xml::Reader;
use sha1::{Digest, Sha1};
use std::collections::HashMap;

/// How far a push's timestamp may be from our clock, in seconds.
const MAX_SKEW: i64 = 300;
/// More fields than any WeChat message has.
const MAX_FIELDS: usize = 64;

/// WeChat's signature check: sha1 over [token, timestamp, nonce] sorted and
/// joined, in lowercase hex; and a timestamp close to now, so a captured push
/// cannot be replayed later.
pub fn signature_ok(token: &str, signature: &str, timestamp: &str, nonce: &str, now: i64) -> bool {
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

/// The signature WeChat computes for these three strings: lowercase hex
/// SHA-1 of token, timestamp and nonce, sorted as strings (not as numbers)
/// and concatenated. Which string plays which part does not matter.
pub fn signature_of(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1(&mut [token, timestamp, nonce])
}

/// WeChat's one signing rule: lowercase hex SHA-1 of the strings sorted
/// bytewise and concatenated. Three of them sign a push's query, four (with
/// the Encrypt element) an encrypted body (wechat/encryption.rs).
pub fn sorted_sha1(parts: &mut [&str]) -> String {
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
    /// None for anything else, or without the fields every push has.
    pub fn parse(body: &[u8]) -> Option<Message> {
        Message::from_fields(fields(body)?)
    }

    /// The message a push's fields describe (`fields`); None without the
    /// fields every push has.
    pub fn from_fields(mut fields: HashMap<String, String>) -> Option<Message> {
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
    pub fn retry_key(&self) -> String {
        if self.msg_id.is_empty() {
            format!("{}|{}|{}", self.from, self.create_time, self.event)
        } else {
            format!("id|{}", self.msg_id)
        }
    }

    /// A short description for the log: "subscribe (qrscene_1)", "text".
    pub fn kind(&self) -> String {
        match (self.msg_type.as_str(), self.event_key.is_empty()) {
            ("event", true) => self.event.clone(),
            ("event", false) => format!("{} ({})", self.event, self.event_key),
            (other, _) => other.to_string(),
        }
    }

    /// A passive text reply: to the user who wrote, from the account.
    pub fn text_reply(&self, content: &str, now: i64) -> String {
        format!(
            "<xml>{}{}<CreateTime>{now}</CreateTime>{}{}</xml>",
            cdata_field("ToUserName", &self.from),
            cdata_field("FromUserName", &self.to),
            cdata_field("MsgType", "text"),
            cdata_field("Content", content)
        )
    }
}

/// The text fields of WeChat's XML, `<xml><Field>value</Field>…</xml>`, by
/// element name: a push in any mode, the envelope of an encrypted one
/// (`Encrypt`), an encrypted reply (`MsgSignature`…). None for anything
/// else. quick-xml expands no DTD and no entity but XML's five and
/// character references, and a DOCTYPE is refused, so XXE and entity
/// expansion cannot happen.
pub fn fields(body: &[u8]) -> Option<HashMap<String, String>> {
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
    (saw_root && depth == 0).then_some(fields)
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

/// Text as CDATA; a `]]>` inside is split across two sections, the only
/// way XML allows.
pub fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// `<Name><![CDATA[value]]></Name>`: a text field as WeChat writes it, in
/// pushes and in passive replies alike. `name` is one of WeChat's element
/// names, written as given.
pub fn cdata_field(name: &str, value: &str) -> String {
    format!("<{name}>{}</{name}>", cdata(value))
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
    fn the_signature_matches_digests_written_out() {
        // docs/wechat.md §7 has no test vector from WeChat, so these are worked
        // by hand from its rule: sort as strings, concatenate, SHA-1, lowercase
        // hex. The digests are written out (`printf %s 14093043481855117226token
        // | sha1sum` gives the first): the app and the simulator, which both
        // sign with `signature_of`, are held to the rule, not to each other.
        // "1409304348" < "1855117226" < "token": digits sort before letters.
        let expected = "2ceff8d3da86be8cb069e96cac96156258e6e8c4";
        assert_eq!(signature_of("token", "1409304348", "1855117226"), expected);
        assert_eq!(signature_of("1855117226", "token", "1409304348"), expected);
        // Sorted as strings, not numbers: "10" < "9" < "tok", so "109tok".
        assert_eq!(
            signature_of("tok", "9", "10"),
            "59ecfd8262ae7e11477209ad564f63ef30926f7a"
        );
        assert!(signature_ok(
            "token",
            &expected.to_uppercase(),
            "1409304348",
            "1855117226",
            1409304348
        ));
        assert!(!signature_ok(
            "token",
            expected,
            "1409304348",
            "1855117226",
            1409304348 + 301
        ));
    }

    #[test]
    fn a_cdata_field_is_written_as_wechat_writes_it() {
        assert_eq!(
            cdata_field("EventKey", "qrscene_7"),
            "<EventKey><![CDATA[qrscene_7]]></EventKey>"
        );
        assert_eq!(
            cdata_field("Content", "a]]>b"),
            "<Content><![CDATA[a]]]]><![CDATA[>b]]></Content>"
        );
        assert_eq!(
            cdata_field("EventKey", ""),
            "<EventKey><![CDATA[]]></EventKey>"
        );
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
}
