//! Safe mode (安全模式) and compat mode (兼容模式): the encryption WeChat puts
//! around a push's XML and wants around a passive reply (docs/wechat.md §10).
//! Pure: no request, no state, no clock; the random bytes and nonce of a
//! reply are passed in.
//!
//! The key is the console's EncodingAESKey, 43 letters and digits: base64 of
//! 32 bytes without its `=`. AES-256-CBC, the IV the key's first 16 bytes,
//! no cipher padding: the plaintext is `random(16) ‖ len(msg) as u32 BE ‖
//! msg ‖ appid`, padded by hand PKCS#7-style to a multiple of **32** bytes
//! (a full block of 32 × 0x20 when it is already aligned). A 1..=16 padding
//! check rejects about half of WeChat's real messages.
//!
//! The simulator encrypts its pushes and checks the app's replies with this
//! module; its tests pin it to Tencent's published vector and to vectors
//! worked with another implementation, so the two sides cannot agree on a
//! mistake. An SDK written by others checks it too (scripts/test-sdk-crypto.sh).

use crate::config::message_endpoint::is_encoding_aes_key;
use crate::random::constant_time_eq;
use crate::wechat::message::{cdata_field, fields, sorted_sha1};
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use std::fmt;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// WeChat pads to 32-byte blocks, not AES's 16.
const BLOCK: usize = 32;
/// The random bytes and the length before the message.
const HEADER: usize = 16 + 4;
/// Bigger than any push WeChat sends (the body limit is 64 KiB).
const MAX_ENCRYPT: usize = 64 * 1024;

/// The console's EncodingAESKey: 43 letters and digits, the last one's low
/// bits spare. Most keys WeChat makes have them set (Tencent's sample key
/// ends in `G`), so the decoder must not insist they are zero; a strict
/// decoder refuses three keys in four.
const KEY_DECODER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A message key: the 32 bytes of an EncodingAESKey. Never printed.
#[derive(Clone)]
pub struct MessageKey([u8; 32]);

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageKey(****)")
    }
}

/// What decrypting one Encrypt element gave.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// The message's bytes: a push's XML.
    pub message: Vec<u8>,
    /// The appid after it, as sent.
    pub appid: Vec<u8>,
}

/// Why an Encrypt element was refused, in words for the log. None of them
/// carries the key or the plaintext.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `msg_signature` missing, or not sha1 of token, timestamp, nonce and
    /// the Encrypt element.
    MsgSignature,
    /// Not base64, or not whole AES blocks.
    NotCiphertext,
    /// The padding is wrong: with a good msg_signature, a wrong key.
    Padding,
    /// The length inside points past the end.
    Length,
    /// The appid inside is another account's.
    AppId { found: String, expected: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MsgSignature => f.write_str("msg_signature does not match"),
            Refusal::NotCiphertext => {
                f.write_str("Encrypt is not base64 of whole AES blocks (not WeChat's)")
            }
            Refusal::Padding => f.write_str(
                "key does not decrypt (padding invalid): check WXAUTH_ENCODING_AES_KEY against \
                 the console's EncodingAESKey",
            ),
            Refusal::Length => f.write_str(
                "key does not decrypt (length invalid): check WXAUTH_ENCODING_AES_KEY against \
                 the console's EncodingAESKey",
            ),
            Refusal::AppId { found, expected } => {
                write!(f, "appid in message is {found}, expected {expected}")
            }
        }
    }
}

impl MessageKey {
    /// The key an EncodingAESKey stands for; None unless it is 43 letters
    /// and digits (every such string is 32 bytes).
    pub fn from_encoding_aes_key(encoded: &str) -> Option<MessageKey> {
        if !is_encoding_aes_key(encoded) {
            return None;
        }
        let bytes = KEY_DECODER.decode(encoded).ok()?;
        Some(MessageKey(bytes.try_into().ok()?))
    }

    /// The Encrypt element for `message` from `appid`, as base64.
    pub fn encrypt(&self, message: &[u8], appid: &str, random: [u8; 16]) -> String {
        let len = HEADER + message.len() + appid.len();
        let pad = BLOCK - len % BLOCK;
        let mut buf = Vec::with_capacity(len + pad);
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&(message.len() as u32).to_be_bytes());
        buf.extend_from_slice(message);
        buf.extend_from_slice(appid.as_bytes());
        buf.resize(len + pad, pad as u8);
        let cipher = Encryptor::new(&self.0.into(), &self.iv().into());
        let sealed = cipher
            .encrypt_padded_mut::<NoPadding>(&mut buf, len + pad)
            .expect("the buffer is whole blocks: padded to 32 bytes above");
        STANDARD.encode(sealed)
    }

    /// The message and appid inside an Encrypt element. Checks the padding
    /// and the length; the appid is the caller's to check (`open`).
    pub fn decrypt(&self, encrypt: &str) -> Result<Opened, Refusal> {
        if encrypt.len() > MAX_ENCRYPT {
            return Err(Refusal::NotCiphertext);
        }
        let mut buf = STANDARD
            .decode(encrypt.trim())
            .map_err(|_| Refusal::NotCiphertext)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(Refusal::NotCiphertext);
        }
        let cipher = Decryptor::new(&self.0.into(), &self.iv().into());
        let plain = cipher
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| Refusal::NotCiphertext)?;
        // The last byte says how many bytes of padding, each of that value.
        let pad = *plain.last().ok_or(Refusal::Padding)? as usize;
        if !(1..=BLOCK).contains(&pad)
            || pad > plain.len()
            || plain[plain.len() - pad..]
                .iter()
                .any(|&b| b as usize != pad)
        {
            return Err(Refusal::Padding);
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < HEADER {
            return Err(Refusal::Length);
        }
        let len = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
        let end = HEADER.checked_add(len).ok_or(Refusal::Length)?;
        if end > body.len() {
            return Err(Refusal::Length);
        }
        Ok(Opened {
            message: body[HEADER..end].to_vec(),
            appid: body[end..].to_vec(),
        })
    }

    /// The IV: the key's first 16 bytes, as WeChat does.
    fn iv(&self) -> [u8; 16] {
        self.0[..16].try_into().expect("16 of 32 bytes")
    }
}

/// `msg_signature`: sha1 over token, timestamp, nonce and the Encrypt
/// element, sorted and joined (the query's `signature` without Encrypt).
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sorted_sha1(&mut [token, timestamp, nonce, encrypt])
}

/// An encrypted push's content: the message that decrypts under the first
/// of `keys` that works (current, then previous), and which key that was,
/// to answer with the same one (WeChat's advice while rotating the key).
/// The msg_signature is checked before anything is decrypted.
pub fn open(
    keys: &[MessageKey],
    appid: &str,
    signed: &Signed,
    encrypt: &str,
) -> Result<(Vec<u8>, usize), Refusal> {
    let expected = msg_signature(signed.token, signed.timestamp, signed.nonce, encrypt);
    if !constant_time_eq(&signed.msg_signature.to_ascii_lowercase(), &expected) {
        return Err(Refusal::MsgSignature);
    }
    let mut first = None;
    for (i, key) in keys.iter().enumerate() {
        let refusal = match key.decrypt(encrypt) {
            Ok(opened) if opened.appid == appid.as_bytes() => return Ok((opened.message, i)),
            Ok(opened) => Refusal::AppId {
                found: printable(&opened.appid),
                expected: appid.to_string(),
            },
            Err(refusal) => refusal,
        };
        // Under the wrong key, the current one's reason is the one to tell.
        first.get_or_insert(refusal);
    }
    Err(first.unwrap_or(Refusal::Padding))
}

/// What signs an encrypted push: the token and the query's timestamp,
/// nonce and msg_signature.
pub struct Signed<'a> {
    pub token: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub msg_signature: &'a str,
}

/// A passive reply in WeChat's envelope: `<xml><Encrypt/><MsgSignature/>
/// <TimeStamp/><Nonce/></xml>`, TimeStamp in seconds (capital S).
pub fn seal_reply(
    key: &MessageKey,
    token: &str,
    appid: &str,
    reply: &str,
    timestamp: i64,
    nonce: &str,
    random: [u8; 16],
) -> String {
    let encrypt = key.encrypt(reply.as_bytes(), appid, random);
    let timestamp = timestamp.to_string();
    let signature = msg_signature(token, &timestamp, nonce, &encrypt);
    format!(
        "<xml>{}{}<TimeStamp>{timestamp}</TimeStamp>{}</xml>",
        cdata_field("Encrypt", &encrypt),
        cdata_field("MsgSignature", &signature),
        cdata_field("Nonce", nonce),
    )
}

/// An encrypted reply, checked and opened as WeChat does: its MsgSignature
/// over its own TimeStamp and Nonce, then the Encrypt element under `key`
/// with `appid` inside. Returns the reply's XML and its TimeStamp. The
/// simulator uses it on the app's answers.
pub fn open_reply(
    key: &MessageKey,
    token: &str,
    appid: &str,
    body: &[u8],
) -> Result<(String, String), String> {
    let mut f = fields(body).ok_or("not WeChat's XML")?;
    let mut take = |name: &str| f.remove(name).ok_or(format!("no {name} element"));
    let (encrypt, signature, timestamp, nonce) = (
        take("Encrypt")?,
        take("MsgSignature")?,
        take("TimeStamp")?,
        take("Nonce")?,
    );
    let signed = Signed {
        token,
        timestamp: &timestamp,
        nonce: &nonce,
        msg_signature: &signature,
    };
    let (message, _) =
        open(std::slice::from_ref(key), appid, &signed, &encrypt).map_err(|r| r.to_string())?;
    let xml = String::from_utf8(message).map_err(|_| "the reply is not UTF-8".to_string())?;
    Ok((xml, timestamp))
}

/// Bytes from a message for a log line: printable ASCII kept, the rest
/// escaped, at most 64 characters.
fn printable(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes).escape_debug().collect();
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vector A of docs/wechat.md §10: Tencent's sample (in WxJava's tests).
    const TENCENT_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const TENCENT_APPID: &str = "wxb11529c136998cb6";
    const TENCENT_RANDOM: &[u8; 16] = b"aaaabbbbccccdddd";
    const TENCENT_ENCRYPT: &str =
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==";

    fn tencent_key() -> MessageKey {
        MessageKey::from_encoding_aes_key(TENCENT_KEY).unwrap()
    }

    #[test]
    fn tencents_sample_vector_encrypts_and_decrypts() {
        let key = tencent_key();
        assert_eq!(
            key.encrypt("我是中文abcd123".as_bytes(), TENCENT_APPID, *TENCENT_RANDOM),
            TENCENT_ENCRYPT
        );
        let opened = key.decrypt(TENCENT_ENCRYPT).unwrap();
        assert_eq!(opened.message, "我是中文abcd123".as_bytes());
        assert_eq!(opened.appid, TENCENT_APPID.as_bytes());
    }

    #[test]
    fn a_push_worked_with_another_implementation_opens_with_its_msg_signature() {
        // Vector C of docs/wechat.md §10 (key, appid and random of A; token
        // pamtest, timestamp 1409304348, nonce xxxxxx).
        let xml = "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1409304348</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>";
        let encrypt = "jn1L23DB+6ELqJ+6bruv2xf/eKxTtT4F/PcyPDk9tHV34s/AoM47C3xQFsekt1w6xtbUv9DGPy2BnxaTkrr4517AUG1RCxjSflgZHWMJ7jG3qtpdx2sFSbZO0g6WUDNqd2QB2hEr4ZGB82dtNL0ycjW63opIhCBRR3n+tGSr/k8qCOIGe/df8OUuYd2YMtYh+cGf8sMoST12iICYzo/TdiXPuDGvyY4EV0JZyVGJHafhId5KjgleHwvbvKuQgEglcFkP3Wa7YDdOwU/kWZ8Q2SFx87iHj9LJ6EBsUcL6Y1YOzXOYx2ASp48M12FJy0Vrk9iENmp1spg6hvmNQ4/dnh0IFagIdr2DosFZsmVOSRWdD9SD/f2UoZLvseCzPW4S";
        let key = tencent_key();
        assert_eq!(
            key.encrypt(xml.as_bytes(), TENCENT_APPID, *TENCENT_RANDOM),
            encrypt
        );
        assert_eq!(
            msg_signature("pamtest", "1409304348", "xxxxxx", encrypt),
            "2138b057451219438f0884b9ea34c3c281cfd244"
        );
        let signed = Signed {
            token: "pamtest",
            timestamp: "1409304348",
            nonce: "xxxxxx",
            msg_signature: "2138B057451219438F0884B9EA34C3C281CFD244",
        };
        let (message, which) = open(&[key], TENCENT_APPID, &signed, encrypt).unwrap();
        assert_eq!((message.as_slice(), which), (xml.as_bytes(), 0));
    }

    #[test]
    fn a_message_that_fills_the_block_gets_a_whole_block_of_padding() {
        // Vector C's full-block case: 16 + 4 + 26 + 18 = 64 bytes, so 32
        // bytes of 0x20 follow and the ciphertext is 96 bytes.
        let encrypt = "jn1L23DB+6ELqJ+6bruv24kfnRA9CJ8qXRQfcTjuspbcu/BSVDHix6RSI3nK3z+fMd03dqZ5HIPCrQNNDa2xYd47apRHAo9FEf57/GQVWffqnF3WzheksoIGmk00BgBc";
        let key = tencent_key();
        assert_eq!(
            key.encrypt(
                b"abcdefghijklmnopqrstuvwxyz",
                TENCENT_APPID,
                *TENCENT_RANDOM
            ),
            encrypt
        );
        assert_eq!(STANDARD.decode(encrypt).unwrap().len(), 96);
        assert_eq!(
            key.decrypt(encrypt).unwrap().message,
            b"abcdefghijklmnopqrstuvwxyz"
        );
    }

    #[test]
    fn wechatpys_vector_decrypts() {
        // Vector B of docs/wechat.md §10: wechatpy's tests (pad = 1).
        let key = MessageKey::from_encoding_aes_key("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR")
            .unwrap();
        let encrypt = "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=";
        let signed = Signed {
            token: "123456",
            timestamp: "1411525903",
            nonce: "461056294",
            msg_signature: "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        };
        let (message, _) = open(&[key], "wx49f0ab532d5d035a", &signed, encrypt).unwrap();
        let text = String::from_utf8(message).unwrap();
        assert!(
            text.contains("<Content><![CDATA[test]]></Content>"),
            "{text}"
        );
        assert!(text.contains("messense"), "{text}");
    }

    #[test]
    fn wechatpys_reply_vector_seals_byte_for_byte() {
        // Vector B's reply: wechatpy forces the random to "1234567890123456"
        // and expects this envelope (its tests' test_encrypt_message).
        let key = MessageKey::from_encoding_aes_key("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR")
            .unwrap();
        let reply = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
        let sealed = seal_reply(
            &key,
            "123456",
            "wx49f0ab532d5d035a",
            reply,
            1411525903,
            "461056294",
            *b"1234567890123456",
        );
        assert!(sealed.contains("<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>"), "{sealed}");
        assert!(
            sealed.contains(
                "<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>"
            ),
            "{sealed}"
        );
    }

    #[test]
    fn every_padding_length_round_trips() {
        let key = tencent_key();
        // appid of 18 bytes: 16 + 4 + 18 = 38, so messages of 0..32 bytes
        // cover every padding from 1 to 32.
        let mut pads = std::collections::BTreeSet::new();
        for n in 0..BLOCK {
            let message = vec![b'x'; n];
            let encrypt = key.encrypt(&message, TENCENT_APPID, crate::random::bytes());
            let raw = STANDARD.decode(&encrypt).unwrap();
            assert_eq!(raw.len() % BLOCK, 0);
            pads.insert(BLOCK - (HEADER + n + TENCENT_APPID.len()) % BLOCK);
            let opened = key.decrypt(&encrypt).unwrap();
            assert_eq!(opened.message, message);
            assert_eq!(opened.appid, TENCENT_APPID.as_bytes());
        }
        assert_eq!(pads, (1..=BLOCK).collect());
    }

    #[test]
    fn tampering_is_refused_for_what_it_is() {
        let key = tencent_key();
        let open_with = |appid: &str, encrypt: &str, sig: &str| {
            let signed = Signed {
                token: "pamtest",
                timestamp: "1409304348",
                nonce: "xxxxxx",
                msg_signature: sig,
            };
            open(std::slice::from_ref(&key), appid, &signed, encrypt)
        };
        let sign = |encrypt: &str| msg_signature("pamtest", "1409304348", "xxxxxx", encrypt);
        let good_sig = sign(TENCENT_ENCRYPT);
        assert!(open_with(TENCENT_APPID, TENCENT_ENCRYPT, &good_sig).is_ok());
        // A changed msg_signature, or none.
        let mut bad_sig = good_sig.clone().into_bytes();
        bad_sig[0] = if bad_sig[0] == b'0' { b'1' } else { b'0' };
        let bad_sig = String::from_utf8(bad_sig).unwrap();
        for sig in [bad_sig.as_str(), ""] {
            assert_eq!(
                open_with(TENCENT_APPID, TENCENT_ENCRYPT, sig),
                Err(Refusal::MsgSignature)
            );
        }
        // A changed ciphertext under the old msg_signature: refused before
        // any decryption.
        let mut raw = STANDARD.decode(TENCENT_ENCRYPT).unwrap();
        let n = raw.len();
        raw[n - 20] ^= 0x55;
        let tampered = STANDARD.encode(&raw);
        assert_eq!(
            open_with(TENCENT_APPID, &tampered, &good_sig),
            Err(Refusal::MsgSignature)
        );
        // Signed afresh, as one who knows the token could: the changed
        // block's padding no longer reads.
        assert_eq!(
            open_with(TENCENT_APPID, &tampered, &sign(&tampered)),
            Err(Refusal::Padding)
        );
        // Not base64, or not whole blocks.
        for junk in ["%%%%", "AAAA", ""] {
            assert_eq!(
                open_with(TENCENT_APPID, junk, &sign(junk)),
                Err(Refusal::NotCiphertext),
                "{junk:?}"
            );
        }
        // Another account's message.
        let refused = open_with("wx0000000000000000", TENCENT_ENCRYPT, &good_sig).unwrap_err();
        assert_eq!(
            refused,
            Refusal::AppId {
                found: TENCENT_APPID.into(),
                expected: "wx0000000000000000".into()
            }
        );
        assert_eq!(
            refused.to_string(),
            "appid in message is wxb11529c136998cb6, expected wx0000000000000000"
        );
    }

    #[test]
    fn a_wrong_key_then_the_previous_key() {
        let current =
            MessageKey::from_encoding_aes_key("ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut")
                .unwrap();
        let previous = tencent_key();
        let sig = msg_signature("pamtest", "1409304348", "xxxxxx", TENCENT_ENCRYPT);
        let signed = Signed {
            token: "pamtest",
            timestamp: "1409304348",
            nonce: "xxxxxx",
            msg_signature: &sig,
        };
        // The wrong key alone: refused as a key that does not decrypt.
        let alone = open(
            std::slice::from_ref(&current),
            TENCENT_APPID,
            &signed,
            TENCENT_ENCRYPT,
        )
        .unwrap_err();
        assert!(
            matches!(alone, Refusal::Padding | Refusal::Length),
            "{alone:?}"
        );
        assert!(alone.to_string().contains("WXAUTH_ENCODING_AES_KEY"));
        // With the previous key behind it: opens, and says the second key did.
        let (message, which) = open(
            &[current, previous],
            TENCENT_APPID,
            &signed,
            TENCENT_ENCRYPT,
        )
        .unwrap();
        assert_eq!(
            (message.as_slice(), which),
            ("我是中文abcd123".as_bytes(), 1)
        );
    }

    #[test]
    fn a_sealed_reply_opens_as_wechat_opens_it() {
        let key = tencent_key();
        let reply = "<xml><Content><![CDATA[你好]]></Content></xml>";
        let sealed = seal_reply(
            &key,
            "pamtest",
            TENCENT_APPID,
            reply,
            1409304348,
            "1234",
            *TENCENT_RANDOM,
        );
        assert!(
            sealed.contains("<TimeStamp>1409304348</TimeStamp>"),
            "{sealed}"
        );
        let (xml, timestamp) =
            open_reply(&key, "pamtest", TENCENT_APPID, sealed.as_bytes()).unwrap();
        assert_eq!((xml.as_str(), timestamp.as_str()), (reply, "1409304348"));
        // Another token: its MsgSignature does not hold.
        assert_eq!(
            open_reply(&key, "other", TENCENT_APPID, sealed.as_bytes()),
            Err("msg_signature does not match".to_string())
        );
    }

    /// What safe mode costs the loop per push: open (msg_signature,
    /// decrypt) and seal a reply, for a subscribe of WeChat's size.
    /// `cargo test --release -p wxauth-app safe_mode_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn safe_mode_cost() {
        let key = tencent_key();
        let push = "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oSim0PandaXiaoMingEmoji00001]]></FromUserName><CreateTime>1409304348</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey></xml>";
        let reply = "<xml><ToUserName><![CDATA[oSim0PandaXiaoMingEmoji00001]]></ToUserName><FromUserName><![CDATA[gh_0123456789ab]]></FromUserName><CreateTime>1409304348</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[欢迎！点击登录，查看你的资料：https://wx.example.com/login]]></Content></xml>";
        let encrypt = key.encrypt(push.as_bytes(), TENCENT_APPID, *TENCENT_RANDOM);
        let sig = msg_signature("pamtest", "1409304348", "xxxxxx", &encrypt);
        let signed = Signed {
            token: "pamtest",
            timestamp: "1409304348",
            nonce: "xxxxxx",
            msg_signature: &sig,
        };
        let keys = [key];
        let n = 100_000;
        let started = std::time::Instant::now();
        for _ in 0..n {
            let (message, which) = open(&keys, TENCENT_APPID, &signed, &encrypt).unwrap();
            std::hint::black_box(message);
            let sealed = seal_reply(
                &keys[which],
                "pamtest",
                TENCENT_APPID,
                reply,
                1409304348,
                "1234567890",
                *TENCENT_RANDOM,
            );
            std::hint::black_box(sealed);
        }
        let each = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("safe mode: open + seal {each:.2} µs per push ({n} pushes)");
    }

    #[test]
    fn keys_are_43_letters_and_digits_and_never_printed() {
        assert!(MessageKey::from_encoding_aes_key(&TENCENT_KEY[..42]).is_none());
        assert!(MessageKey::from_encoding_aes_key(&format!("{TENCENT_KEY}=")).is_none());
        assert!(
            MessageKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF+")
                .is_none()
        );
        // Every last letter decodes, whatever its spare bits.
        for last in ('A'..='Z').chain('a'..='z').chain('0'..='9') {
            let key = format!("{}{last}", &TENCENT_KEY[..42]);
            assert!(MessageKey::from_encoding_aes_key(&key).is_some(), "{key}");
        }
        assert_eq!(format!("{:?}", tencent_key()), "MessageKey(****)");
    }
}
