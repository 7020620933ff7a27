//! Unguessable tokens from the OS CSPRNG, written in [A-Za-z0-9] so they fit
//! WeChat's `state` rules and a cookie value without escaping.

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A token of `len` base62 characters (each carries log2(62) ≈ 5.95 bits;
/// 32 characters are about 190 bits). Panics only if the OS has no CSPRNG,
/// which the server cannot run without anyway.
pub fn token(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).expect("the OS random source is available");
        // Rejection sampling: 248 = 4 * 62, so bytes below it map uniformly.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[(b % 62) as usize] as char);
        }
    }
    out
}

/// `N` bytes from the OS CSPRNG (safe mode's 16 random bytes before each
/// encrypted reply).
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf
}

/// A nonce of decimal digits, like WeChat's (up to 10 of them): pushes'
/// query and encrypted replies carry one.
pub fn digits_nonce() -> String {
    (u64::from_le_bytes(bytes::<8>()) % 10_000_000_000).to_string()
}

/// True when `s` looks like a token this module made: `len` base62 characters.
pub fn is_token(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Compares two secrets without stopping at the first difference.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_base62_of_the_asked_length_and_differ() {
        let a = token(32);
        let b = token(32);
        assert!(is_token(&a, 32) && is_token(&b, 32));
        assert_ne!(a, b);
        assert_eq!(token(0), "");
        assert_eq!(token(200).len(), 200);
    }

    #[test]
    fn every_character_of_the_alphabet_appears() {
        let sample = token(20_000);
        for &c in ALPHABET {
            assert!(sample.contains(c as char), "{} never drawn", c as char);
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
