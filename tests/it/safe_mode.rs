//! Safe mode (安全模式) and compat mode (兼容模式) over HTTP: encrypted pushes
//! as WeChat sends them, and the app's encrypted replies opened as WeChat
//! opens them. The cipher itself is pinned to published vectors in
//! wechat/encryption.rs, and checked against an SDK written by others in
//! scripts/test-sdk-crypto.sh.

use crate::mp::{now, signed_query, text, TOKEN};
use crate::support::{start_real, start_with, Browser, Resp, Stack};
use wxauth_app::config::DEMO_APPID;
use wxauth_app::wechat::encryption::{msg_signature, open_reply, MessageKey};
use wxauth_app::wechat::message::{fields, Message};

pub(crate) const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const OLD_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";

fn key(encoded: &str) -> MessageKey {
    MessageKey::from_encoding_aes_key(encoded).unwrap()
}

fn subscribe() -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\
         <FromUserName><![CDATA[oSim0PandaXiaoMingEmoji00001]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey></xml>",
        now()
    )
}

/// How a test shapes an encrypted push.
#[derive(Clone, Copy)]
enum Body {
    /// 安全模式: ToUserName and Encrypt only.
    Safe,
    /// 兼容模式: the plaintext fields and Encrypt.
    Compat,
}

/// An encrypted push of `xml` under `key` with `appid` inside, as WeChat
/// sends it: query with signature, encrypt_type=aes and msg_signature.
fn push_encrypted(stack: &Stack, xml: &str, key_text: &str, appid: &str, body: Body) -> Resp {
    let encrypt = key(key_text).encrypt(xml.as_bytes(), appid, [7; 16]);
    let (query, timestamp, nonce) = query_parts();
    let url = stack.url(&format!(
        "/wechat?{query}&encrypt_type=aes&msg_signature={}",
        msg_signature(TOKEN, &timestamp, &nonce, &encrypt)
    ));
    let encrypt_field = format!("<Encrypt><![CDATA[{encrypt}]]></Encrypt>");
    let body = match body {
        Body::Safe => format!(
            "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>{encrypt_field}</xml>"
        ),
        Body::Compat => xml.replace("</xml>", &format!("{encrypt_field}</xml>")),
    };
    Browser::new().post_raw(&url, "text/xml", body.as_bytes())
}

/// The signed query of a push now, with its timestamp and nonce.
fn query_parts() -> (String, String, String) {
    let query = signed_query(TOKEN, now());
    let part = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_string()
    };
    let (timestamp, nonce) = (part("timestamp"), part("nonce"));
    (query, timestamp, nonce)
}

fn push_plain(stack: &Stack, xml: &str) -> Resp {
    let url = stack.url(&format!("/wechat?{}", signed_query(TOKEN, now())));
    Browser::new().post_raw(&url, "text/xml", xml.as_bytes())
}

fn app_with(mode: &str, keys: &[(&str, &str)]) -> Stack {
    let mut settings = vec![("WXAUTH_TOKEN", TOKEN), ("WXAUTH_MSG_MODE", mode)];
    settings.extend_from_slice(keys);
    start_with(&settings)
}

/// The reply inside an encrypted answer, checked as WeChat checks it.
fn opened(resp: &Resp, key_text: &str) -> Message {
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.header("content-type").unwrap().contains("xml"));
    let (xml, timestamp) = open_reply(&key(key_text), TOKEN, DEMO_APPID, resp.body.as_bytes())
        .unwrap_or_else(|e| panic!("{e}: {}", resp.body));
    // Seconds, not milliseconds, and now.
    assert_eq!(timestamp.len(), 10, "{timestamp}");
    assert!((timestamp.parse::<i64>().unwrap() - now()).abs() < 60);
    Message::parse(xml.as_bytes()).expect("a passive reply")
}

#[test]
fn safe_and_compat_replies_open_to_the_plaintext_reply() {
    let plain = start_with(&[("WXAUTH_TOKEN", TOKEN)]);
    let compat = app_with("compat", &[("WXAUTH_ENCODING_AES_KEY", KEY)]);
    let safe = app_with("safe", &[("WXAUTH_ENCODING_AES_KEY", KEY)]);
    // The plaintext reply's link is the plain stack's; compare the rest.
    let greeting = |m: &Message| m.content.split('：').next().unwrap().to_string();
    for (name, xml) in [
        ("subscribe", subscribe()),
        ("登录", text("登录", 7_000_000_001)),
    ] {
        let expected = Message::parse(push_plain(&plain, &xml).body.as_bytes()).unwrap();
        for (mode, stack, body) in [
            ("compat", &compat, Body::Compat),
            ("compat", &compat, Body::Safe),
            ("safe", &safe, Body::Safe),
        ] {
            let resp = push_encrypted(stack, &xml, KEY, DEMO_APPID, body);
            let fields = fields(resp.body.as_bytes()).unwrap();
            let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
            names.sort();
            assert_eq!(
                names,
                ["Encrypt", "MsgSignature", "Nonce", "TimeStamp"],
                "{mode} {name}: {}",
                resp.body
            );
            let reply = opened(&resp, KEY);
            assert_eq!(
                (
                    reply.to.as_str(),
                    reply.from.as_str(),
                    reply.msg_type.as_str()
                ),
                (
                    expected.to.as_str(),
                    expected.from.as_str(),
                    expected.msg_type.as_str()
                ),
                "{mode} {name}"
            );
            assert_eq!(greeting(&reply), greeting(&expected), "{mode} {name}");
            assert!(
                reply.content.ends_with(&format!("{}/login", stack.app_url)),
                "{mode} {name}: {}",
                reply.content
            );
        }
    }
}

#[test]
fn nothing_to_say_is_success_even_in_safe_mode() {
    let stack = app_with("safe", &[("WXAUTH_ENCODING_AES_KEY", KEY)]);
    let resp = push_encrypted(
        &stack,
        &text("你好", 7_000_000_002),
        KEY,
        DEMO_APPID,
        Body::Safe,
    );
    assert_eq!((resp.status, resp.body.as_str()), (200, "success"));
}

#[test]
fn safe_mode_refuses_plaintext_and_compat_mode_takes_it() {
    let safe = app_with("safe", &[("WXAUTH_ENCODING_AES_KEY", KEY)]);
    let resp = push_plain(&safe, &subscribe());
    assert_eq!(resp.status, 400, "no downgrade: {}", resp.body);
    assert!(!resp.body.contains("login"));
    // A compat body without encrypt_type=aes is still encrypted: its
    // Encrypt element is there, and no msg_signature signs it.
    let encrypt = key(KEY).encrypt(subscribe().as_bytes(), DEMO_APPID, [1; 16]);
    let sneaky = subscribe().replace(
        "</xml>",
        &format!("<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
    );
    assert_eq!(push_plain(&safe, &sneaky).status, 403);
    let compat = app_with("compat", &[("WXAUTH_ENCODING_AES_KEY", KEY)]);
    let resp = push_plain(&compat, &subscribe());
    assert_eq!(resp.status, 200);
    let reply =
        Message::parse(resp.body.as_bytes()).expect("a plaintext reply to a plaintext push");
    assert!(reply.content.contains("/login"));
}

#[test]
fn a_forged_or_foreign_encrypted_push_is_refused() {
    let stack = app_with("safe", &[("WXAUTH_ENCODING_AES_KEY", KEY)]);
    let xml = subscribe();
    let encrypt = key(KEY).encrypt(xml.as_bytes(), DEMO_APPID, [2; 16]);
    let body = format!("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    let (query, timestamp, nonce) = query_parts();
    let good = msg_signature(TOKEN, &timestamp, &nonce, &encrypt);
    let post = |query: &str, body: &str| {
        Browser::new().post_raw(
            &stack.url(&format!("/wechat?{query}")),
            "text/xml",
            body.as_bytes(),
        )
    };
    assert_eq!(
        post(
            &format!("{query}&encrypt_type=aes&msg_signature={good}"),
            &body
        )
        .status,
        200
    );
    // msg_signature missing, wrong, or over another ciphertext.
    let other = msg_signature(TOKEN, &timestamp, &nonce, &encrypt.replace('A', "B"));
    for q in [
        format!("{query}&encrypt_type=aes"),
        format!("{query}&encrypt_type=aes&msg_signature={}", "0".repeat(40)),
        format!("{query}&encrypt_type=aes&msg_signature={other}"),
    ] {
        assert_eq!(post(&q, &body).status, 403, "{q}");
    }
    // The query's signature is checked first, whatever the body.
    let forged = signed_query("notTheToken", now());
    assert_eq!(
        post(
            &format!("{forged}&encrypt_type=aes&msg_signature={good}"),
            &body
        )
        .status,
        403
    );
    // Another account's message, or another key: 400.
    assert_eq!(
        push_encrypted(&stack, &xml, KEY, "wx0000000000other", Body::Safe).status,
        400
    );
    assert_eq!(
        push_encrypted(&stack, &xml, OLD_KEY, DEMO_APPID, Body::Safe).status,
        400
    );
    // Bytes no SDK sends: not base64, not whole blocks, no Encrypt, another encrypt_type.
    for junk in ["%%%%", "AAAA", ""] {
        let body = format!("<xml><ToUserName>a</ToUserName><Encrypt>{junk}</Encrypt></xml>");
        let sig = msg_signature(TOKEN, &timestamp, &nonce, junk);
        assert_eq!(
            post(
                &format!("{query}&encrypt_type=aes&msg_signature={sig}"),
                &body
            )
            .status,
            400,
            "{junk:?}"
        );
    }
    assert_eq!(
        post(
            &format!("{query}&encrypt_type=aes&msg_signature={good}"),
            "<xml><ToUserName>a</ToUserName></xml>"
        )
        .status,
        400
    );
    assert_eq!(
        post(
            &format!("{query}&encrypt_type=des&msg_signature={good}"),
            &body
        )
        .status,
        400
    );
    // A decrypted message that is no push.
    let not_a_push = key(KEY).encrypt(b"<xml><a>1</a></xml>", DEMO_APPID, [3; 16]);
    let sig = msg_signature(TOKEN, &timestamp, &nonce, &not_a_push);
    let body = format!("<xml><ToUserName>a</ToUserName><Encrypt>{not_a_push}</Encrypt></xml>");
    assert_eq!(
        post(
            &format!("{query}&encrypt_type=aes&msg_signature={sig}"),
            &body
        )
        .status,
        400
    );
    assert_eq!(
        stack.app.stats().pushes,
        1,
        "only the good push was acted on"
    );
    assert_eq!(Browser::new().get(&stack.url("/healthz")).status, 200);
}

#[test]
fn while_rotating_the_previous_key_opens_and_answers() {
    let stack = app_with(
        "safe",
        &[
            ("WXAUTH_ENCODING_AES_KEY", KEY),
            ("WXAUTH_ENCODING_AES_KEY_PREV", OLD_KEY),
        ],
    );
    for key_text in [KEY, OLD_KEY] {
        let resp = push_encrypted(&stack, &subscribe(), key_text, DEMO_APPID, Body::Safe);
        let reply = opened(&resp, key_text);
        assert!(reply.content.contains("/login"));
        // Answered with the key that opened it, not the other one.
        let other = if key_text == KEY { OLD_KEY } else { KEY };
        assert!(open_reply(&key(other), TOKEN, DEMO_APPID, resp.body.as_bytes()).is_err());
    }
}

#[test]
fn a_retried_encrypted_push_gets_the_same_reply_and_is_acted_on_once() {
    let stack = app_with("safe", &[("WXAUTH_ENCODING_AES_KEY", KEY)]);
    let xml = text("登录", 7_000_000_003);
    let first = push_encrypted(&stack, &xml, KEY, DEMO_APPID, Body::Safe);
    let first_reply = opened(&first, KEY);
    let mut envelopes = vec![first.body.clone()];
    for _ in 0..3 {
        let retry = push_encrypted(&stack, &xml, KEY, DEMO_APPID, Body::Safe);
        let reply = opened(&retry, KEY);
        assert_eq!(reply, first_reply, "the same reply, CreateTime included");
        envelopes.push(retry.body);
    }
    assert_eq!(stack.app.stats().pushes, 1, "acted on once");
    // Each delivery is sealed afresh: new random bytes and nonce.
    let encrypts: std::collections::HashSet<String> = envelopes
        .iter()
        .map(|e| fields(e.as_bytes()).unwrap()["Encrypt"].clone())
        .collect();
    assert_eq!(encrypts.len(), envelopes.len());
}

#[test]
fn plain_mode_answers_compat_pushes_in_plaintext_and_refuses_safe_ones() {
    let stack = start_real(&[("WXAUTH_TOKEN", TOKEN)]);
    let xml = subscribe();
    // 兼容模式 with no key here: the plaintext copy is read; WeChat takes a plaintext reply.
    let resp = push_encrypted(&stack, &xml, KEY, "wx0000000000real", Body::Compat);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(Message::parse(resp.body.as_bytes())
        .unwrap()
        .content
        .contains("/login"));
    // 安全模式 with no key here: nothing to read.
    let resp = push_encrypted(&stack, &xml, KEY, "wx0000000000real", Body::Safe);
    assert_eq!(resp.status, 400);
}

#[test]
fn the_simulator_pushes_in_every_mode_and_checks_the_encrypted_replies() {
    // The demo's own token and key, made up: the simulator pushes with them
    // and the test never learns them.
    let demo = start_with(&[]);
    for mode in ["plain", "compat", "safe"] {
        let pushed = demo.push(&[("kind", "text"), ("content", "登录"), ("mode", mode)]);
        let answer = &pushed["answers"][0];
        assert_eq!(answer["status"], 200, "{mode}: {pushed}");
        if mode == "plain" {
            assert!(
                answer["body"].as_str().unwrap().contains("/login"),
                "{pushed}"
            );
            assert!(answer.get("reply").is_none());
        } else {
            assert_eq!(answer["reply"]["ok"], true, "{mode}: {pushed}");
            assert!(
                answer["reply"]["xml"].as_str().unwrap().contains("/login"),
                "{pushed}"
            );
            assert!(answer["body"].as_str().unwrap().contains("<Encrypt>"));
        }
    }
    // Retries in safe mode: the same reply each time, acted on once.
    let before = demo.app.stats().pushes;
    let retried = demo.push(&[("kind", "subscribe"), ("mode", "safe"), ("repeat", "3")]);
    let replies: Vec<&str> = retried["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["reply"]["xml"].as_str().unwrap())
        .collect();
    assert_eq!(replies.len(), 3);
    assert!(replies.iter().all(|r| *r == replies[0]), "{replies:?}");
    assert_eq!(demo.app.stats().pushes, before + 1);
    // What the simulator's page shows after its form.
    let page = Browser::new().post(
        &format!("{}/sim/push", demo.sim_url),
        &[
            ("kind", "text"),
            ("content", "登录"),
            ("mode", "safe"),
            ("view", "page"),
        ],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("MsgSignature 正确"), "{}", page.body);
}

#[test]
fn the_simulator_tells_a_safe_app_from_a_plain_push_and_a_wrong_key() {
    let stack = start_real(&[
        ("WXAUTH_TOKEN", TOKEN),
        ("WXAUTH_ENCODING_AES_KEY", KEY),
        ("WXAUTH_MSG_MODE", "safe"),
    ]);
    let url = stack.url("/wechat");
    let push = |extra: &[(&str, &str)]| {
        let mut fields = vec![
            ("url", url.as_str()),
            ("token", TOKEN),
            ("kind", "subscribe"),
        ];
        fields.extend_from_slice(extra);
        stack.push(&fields)
    };
    let appid = "wx000000000000test"; // start_real's
    assert_eq!(push(&[])["answers"][0]["status"], 400, "plaintext refused");
    let ok = push(&[("mode", "safe"), ("aes_key", KEY), ("appid", appid)]);
    assert_eq!(ok["answers"][0]["reply"]["ok"], true, "{ok}");
    let wrong_key = push(&[("mode", "safe"), ("aes_key", OLD_KEY), ("appid", appid)]);
    assert_eq!(wrong_key["answers"][0]["status"], 400, "{wrong_key}");
    let wrong_appid = push(&[("mode", "safe"), ("aes_key", KEY), ("wrong_appid", "1")]);
    assert_eq!(wrong_appid["answers"][0]["status"], 400, "{wrong_appid}");
    let bad_sig = push(&[
        ("mode", "compat"),
        ("aes_key", KEY),
        ("appid", appid),
        ("bad_msg_signature", "1"),
    ]);
    assert_eq!(bad_sig["answers"][0]["status"], 403, "{bad_sig}");
}
