//! Values the server can check later without having stored them: a tag,
//! HMAC-SHA256 under a key only the server holds, truncated to 128 bits and
//! written in [A-Za-z0-9] like every other token here. What the values mean
//! (login states, scan tickets) lives in logins.rs and tickets.rs.

use crate::random::constant_time_eq;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Characters of a tag: 128 bits in base62.
pub const TAG_LEN: usize = 22;
/// Characters of a time (Unix seconds) in base62: good until the year 3770.
pub const TIME_LEN: usize = 6;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The server's signing key: random at first start, then kept in the session
/// file (session_file.rs) so that logins under way survive a restart. Never shown,
/// never logged: `Debug` prints `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// A fresh key from the OS CSPRNG.
    pub fn random() -> Key {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        Key(key)
    }

    /// The key as 64 hex digits, for the session file only.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads `to_hex`'s form back.
    pub fn from_hex(text: &str) -> Option<Key> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Key(key))
    }

    /// The tag of `parts` for one purpose (`domain`). Each part goes in with
    /// its length first, so no two different lists of parts read the same.
    pub fn tag(&self, domain: &str, parts: &[&str]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in std::iter::once(domain).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let first: [u8; 16] = digest[..16].try_into().expect("SHA-256 has 32 bytes");
        base62(u128::from_be_bytes(first), TAG_LEN)
    }

    /// True when `tag` is the tag of `parts`; compared in constant time.
    pub fn verify(&self, domain: &str, parts: &[&str], tag: &str) -> bool {
        constant_time_eq(&self.tag(domain, parts), tag)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// `n` in base62, most significant digit first, padded to `width` (which
/// must be wide enough: 22 digits hold any u128).
pub fn base62(mut n: u128, width: usize) -> String {
    let mut digits = vec![ALPHABET[0]; width];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    debug_assert_eq!(n, 0, "base62: {width} digits are too few");
    String::from_utf8(digits).expect("the alphabet is ASCII")
}

/// Reads `base62`'s form back; None for any other character or an overflow.
pub fn unbase62(text: &str) -> Option<u128> {
    text.bytes().try_fold(0u128, |n, b| {
        let digit = ALPHABET.iter().position(|&a| a == b)? as u128;
        n.checked_mul(62)?.checked_add(digit)
    })
}

/// A time in Unix seconds, as TIME_LEN characters.
pub fn time(t: i64) -> String {
    base62(t.max(0) as u128, TIME_LEN)
}

/// Reads `time`'s form back.
pub fn untime(text: &str) -> Option<i64> {
    (text.len() == TIME_LEN).then_some(())?;
    i64::try_from(unbase62(text)?).ok()
}

/// True while `issued` (a time from `time`) is less than `ttl` seconds old.
/// One more than a minute ahead is forged or from a clock set back: refused.
pub fn fresh(issued: i64, now: i64, ttl: i64) -> bool {
    now - issued < ttl && issued <= now + 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_fresh_until_its_ttl_and_never_from_well_ahead() {
        assert!(fresh(1000, 1000, 120) && fresh(1000, 1119, 120));
        assert!(!fresh(1000, 1120, 120));
        assert!(fresh(1060, 1000, 120), "a minute ahead: clocks differ");
        assert!(!fresh(1061, 1000, 120));
    }

    #[test]
    fn base62_round_trips_at_fixed_width() {
        for n in [0u128, 1, 61, 62, 1_700_000_000, u128::MAX] {
            let text = base62(n, TAG_LEN);
            assert_eq!(text.len(), TAG_LEN);
            assert_eq!(unbase62(&text), Some(n), "{text}");
        }
        assert_eq!(untime(&time(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(untime("abc"), None);
        assert_eq!(unbase62("a-b"), None);
        assert_eq!(unbase62(&"z".repeat(30)), None, "overflow is refused");
    }

    #[test]
    fn a_tag_depends_on_the_key_the_domain_and_every_part() {
        let key = Key::random();
        let tag = key.tag("state", &["a", "b"]);
        assert_eq!(tag.len(), TAG_LEN);
        assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(key.verify("state", &["a", "b"], &tag));
        assert!(!key.verify("ticket", &["a", "b"], &tag));
        assert!(
            !key.verify("state", &["ab", ""], &tag),
            "parts are length-prefixed"
        );
        assert!(!key.verify("state", &["a", "c"], &tag));
        assert!(!Key::random().verify("state", &["a", "b"], &tag));
    }

    #[test]
    fn the_key_survives_its_hex_form_and_never_prints() {
        let key = Key::random();
        assert_eq!(Key::from_hex(&key.to_hex()), Some(key.clone()));
        assert_eq!(Key::from_hex("zz"), None);
        assert_eq!(Key::from_hex(&"é".repeat(32)), None);
        assert_eq!(format!("{key:?}"), "****");
    }
}
