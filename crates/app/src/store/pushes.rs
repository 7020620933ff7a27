//! Pushes from WeChat seen lately, with the reply each got: WeChat retries a
//! push it got no answer to (docs/wechat.md §7), and a retry must get the very
//! reply the first delivery got without being acted on twice.

use crate::store::backend::SavedReply;
use crate::store::expiring::{Expires, Expiring};

/// Pushes remembered for recognising retries (WeChat retries within 15 s).
const SEEN_TTL: i64 = 60;
/// With their replies (a few hundred bytes each): a few MB at most, and only
/// signed pushes (from WeChat, or whoever holds WXAUTH_TOKEN) add one.
const SEEN_CAP: usize = 10_000;

/// Pushes seen lately with the reply each got, to answer WeChat's retries
/// the same without acting twice.
pub struct SeenPushes {
    /// By retry key. Every push lives SEEN_TTL, so the oldest expire first
    /// and sweeping from the oldest end forgets every expired one.
    seen: Expiring<String, Seen>,
    acted: usize,
}

struct Seen {
    expires: i64,
    content_type: Box<str>,
    body: Box<[u8]>,
}

impl Expires for Seen {
    fn expires(&self) -> i64 {
        self.expires
    }
}

impl Default for SeenPushes {
    fn default() -> SeenPushes {
        SeenPushes {
            seen: Expiring::new(SEEN_CAP),
            acted: 0,
        }
    }
}

impl SeenPushes {
    /// The reply `key`'s first delivery got, if it came within SEEN_TTL.
    pub fn reply_to(&mut self, key: &str, now: i64) -> Option<SavedReply> {
        self.seen.sweep_oldest(now);
        let seen = self.seen.get(key, now)?;
        Some(SavedReply {
            content_type: seen.content_type.to_string(),
            body: seen.body.to_vec(),
        })
    }

    /// Records that the push `key` was acted on and answered with `reply`.
    pub fn remember(&mut self, key: String, reply: &SavedReply, now: i64) {
        self.acted += 1;
        self.seen.sweep_oldest(now);
        let seen = Seen {
            expires: now + SEEN_TTL,
            content_type: reply.content_type.as_str().into(),
            body: reply.body.clone().into_boxed_slice(),
        };
        self.seen.insert(key, seen);
    }

    /// How many pushes were acted on (retries not counted).
    pub fn acted(&self) -> usize {
        self.acted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_get_the_first_reply_and_are_forgotten_after_a_while() {
        let mut seen = SeenPushes::default();
        assert!(seen.reply_to("k", 0).is_none());
        let reply = SavedReply {
            content_type: "text/xml; charset=utf-8".into(),
            body: b"<xml>1</xml>".to_vec(),
        };
        seen.remember("k".into(), &reply, 0);
        let again = seen.reply_to("k", 10).unwrap();
        assert_eq!(again, reply);
        assert!(seen.reply_to("k", SEEN_TTL + 1).is_none());
        for i in 0..(SEEN_CAP + 10) {
            seen.remember(i.to_string(), &reply, SEEN_TTL + 2);
        }
        assert!(seen.seen.len() <= SEEN_CAP && seen.seen.queue_len() <= SEEN_CAP);
        assert_eq!(seen.acted(), SEEN_CAP + 11);
    }
}
