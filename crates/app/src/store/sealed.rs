//! Sealing for what the shared store keeps outside the process: AES-256-GCM
//! under a key that Redis never sees (it rides in a cookie, or is derived
//! from a secret only the browsers involved hold), so a copy of Redis alone
//! logs nobody in and shows no WeChat token.
//!
//! A sealed value is a 12-byte random nonce followed by the ciphertext and
//! its 16-byte tag. The associated data binds it to the record it belongs
//! to (a session id, a state's nonce): moved under another key, it no
//! longer opens.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};

/// Bytes of the random nonce in front of each sealed value.
pub const NONCE_BYTES: usize = 12;
/// Bytes AES-GCM's tag adds.
const TAG_BYTES: usize = 16;

/// An AES-256 key.
pub type SealKey = [u8; 32];

/// A key derived from text: SHA-256 over a label and each part, each
/// preceded by its length so that no two lists of parts run together.
pub fn derive(label: &str, parts: &[&[u8]]) -> SealKey {
    let mut hash = Sha256::new();
    for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
        hash.update((part.len() as u32).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// SHA-256 of `text`, in lower-case hex: what the store keeps in place of a
/// secret it must only compare.
pub fn digest_hex(text: &[u8]) -> String {
    hex(&Sha256::digest(text))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// `hex`'s inverse; None for anything else.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `plain` sealed under `key`, bound to `aad`: nonce, then ciphertext and tag.
pub fn seal(key: &SealKey, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).expect("the OS random source is available");
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("AES-GCM seals any length the store keeps");
    let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// What `seal` sealed, if `sealed` was sealed under `key` with `aad` and
/// is unchanged; None otherwise (a wrong key is no error: it is not ours).
pub fn open(key: &SealKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_BYTES);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: rest, aad })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_binding() {
        let key = derive("test", &[b"a", b"b"]);
        let sealed = seal(&key, b"id1", b"the secret");
        assert_eq!(sealed.len(), NONCE_BYTES + 10 + TAG_BYTES);
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(
            open(&key, b"id1", &sealed).as_deref(),
            Some(&b"the secret"[..])
        );
        assert_eq!(open(&key, b"id2", &sealed), None, "bound to its record");
        assert_eq!(open(&derive("test", &[b"a", b"c"]), b"id1", &sealed), None);
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(open(&key, b"id1", &flipped), None);
        assert_eq!(open(&key, b"id1", &sealed[..20]), None);
        assert_ne!(
            seal(&key, b"id1", b"x"),
            seal(&key, b"id1", b"x"),
            "fresh nonces"
        );
    }

    #[test]
    fn derived_keys_keep_their_parts_apart() {
        assert_ne!(derive("l", &[b"ab", b"c"]), derive("l", &[b"a", b"bc"]));
        assert_ne!(derive("l", &[b"a"]), derive("m", &[b"a"]));
        assert_eq!(derive("l", &[b"a"]), derive("l", &[b"a"]));
        assert_eq!(
            digest_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
