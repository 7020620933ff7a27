//! The Official Account side over HTTP: /wechat's verification and pushes
//! (signed by the test itself, and by the simulator's push), and the menu
//! commands and the base-token cache against the simulator.

use crate::support::{start_real, start_with, Browser, Stack};
use sha1::{Digest, Sha1};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const TOKEN: &str = "wxauthTestToken9";

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// WeChat's signature, computed here independently of the app's code.
fn sign(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort();
    Sha1::digest(parts.concat().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn signed_query(token: &str, timestamp: i64) -> String {
    let (ts, nonce) = (timestamp.to_string(), "271828".to_string());
    format!(
        "signature={}&timestamp={ts}&nonce={nonce}&openid=oSim0PandaXiaoMingEmoji00001",
        sign(token, &ts, &nonce)
    )
}

fn event(kind: &str, key: &str, create_time: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\
         <FromUserName><![CDATA[oSim0PandaXiaoMingEmoji00001]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{kind}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>"
    )
}

pub(crate) fn text(content: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\
         <FromUserName><![CDATA[oSim3EmptyProfileAfter202104]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>",
        now()
    )
}

fn push(stack: &Stack, body: &str) -> crate::support::Resp {
    let url = stack.url(&format!("/wechat?{}", signed_query(TOKEN, now())));
    Browser::new().post_raw(&url, "text/xml", body.as_bytes())
}

fn with_token() -> Stack {
    start_with(&[("WXAUTH_TOKEN", TOKEN)])
}

#[test]
fn server_verification_answers_echostr_only_to_a_valid_fresh_signature() {
    let stack = with_token();
    let mut browser = Browser::new();
    let ok = browser.get(&stack.url(&format!(
        "/wechat?{}&echostr=5837397749381",
        signed_query(TOKEN, now())
    )));
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, "5837397749381");
    for query in [
        signed_query("someOtherToken", now()),
        signed_query(TOKEN, now() - 600),
        signed_query(TOKEN, now() + 600),
        "timestamp=1&nonce=2".to_string(),
        String::new(),
    ] {
        let resp = browser.get(&stack.url(&format!("/wechat?{query}&echostr=1")));
        assert_eq!(resp.status, 403, "{query}");
        assert_eq!(
            resp.body, "invalid signature\n",
            "{query}: echostr is not echoed"
        );
    }
}

#[test]
fn without_a_token_there_is_no_message_endpoint() {
    // Real mode: the demo makes up a token of its own.
    let stack = start_real(&[]);
    let mut browser = Browser::new();
    assert_eq!(
        browser
            .get(&stack.url(&format!("/wechat?{}&echostr=1", signed_query(TOKEN, now()))))
            .status,
        404
    );
    assert_eq!(push(&stack, &event("subscribe", "", now())).status, 404);
}

#[test]
fn a_subscribe_is_answered_with_the_login_link_to_the_right_user() {
    let stack = with_token();
    for key in ["", "qrscene_123"] {
        let resp = push(&stack, &event("subscribe", key, now() - (key.len() as i64)));
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert!(resp.header("content-type").unwrap().contains("xml"));
        let reply = wxauth_app::wechat::message::Message::parse(resp.body.as_bytes())
            .expect("a valid passive reply");
        assert_eq!(
            reply.to, "oSim0PandaXiaoMingEmoji00001",
            "back to the subscriber"
        );
        assert_eq!(reply.from, "gh_0123456789ab", "from the account");
        assert_eq!(reply.msg_type, "text");
        assert!(
            reply.content.contains(&format!("{}/login", stack.app_url)),
            "{}",
            reply.content
        );
        assert!(resp.body.contains("<CreateTime>"));
    }
}

#[test]
fn every_other_event_is_acknowledged_with_success() {
    let stack = with_token();
    let t = now();
    for (i, (kind, key)) in [
        ("unsubscribe", ""),
        ("SCAN", "123"),
        ("CLICK", "V1001_PROFILE"),
        ("VIEW", "https://wx.example.com/login"),
    ]
    .iter()
    .enumerate()
    {
        let resp = push(&stack, &event(kind, key, t + i as i64));
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (200, "success"),
            "{kind}"
        );
    }
    let location = format!(
        "<xml><ToUserName>gh_1</ToUserName><FromUserName>oU1</FromUserName><CreateTime>{t}</CreateTime>\
         <MsgType>event</MsgType><Event>LOCATION</Event><Latitude>23.137466</Latitude>\
         <Longitude>113.352425</Longitude><Precision>119.385040</Precision></xml>"
    );
    assert_eq!(push(&stack, &location).body, "success");
}

#[test]
fn a_login_text_gets_the_link_and_other_text_gets_success() {
    let stack = with_token();
    let resp = push(&stack, &text("登录", 6_000_000_001));
    assert!(
        resp.body.contains(&format!("{}/login", stack.app_url)),
        "{}",
        resp.body
    );
    assert!(resp
        .body
        .contains("<ToUserName><![CDATA[oSim3EmptyProfileAfter202104]]></ToUserName>"));
    assert_eq!(push(&stack, &text("你好", 6_000_000_002)).body, "success");
}

#[test]
fn a_push_retried_three_times_gets_three_identical_replies_and_is_acted_on_once() {
    let stack = with_token();
    let body = event("subscribe", "", now());
    let first = push(&stack, &body);
    assert!(first.body.starts_with("<xml>"), "{}", first.body);
    assert!(first.body.contains(&format!("{}/login", stack.app_url)));
    // WeChat retries only when it did not get the first answer: the retry
    // must carry the login link again, byte for byte.
    for _ in 0..3 {
        let retry = push(&stack, &body);
        assert_eq!(
            (retry.status, retry.body.as_str()),
            (200, first.body.as_str())
        );
        assert_eq!(retry.header("content-type"), first.header("content-type"));
    }
    assert_eq!(stack.app.stats().pushes, 1, "acted on once");
    let message = text("登录", 6_000_000_009);
    let first = push(&stack, &message);
    assert!(first.body.starts_with("<xml>"));
    assert_eq!(push(&stack, &message).body, first.body, "same MsgId");
    // A push answered `success` is answered `success` again.
    let other = text("你好", 6_000_000_010);
    assert_eq!(push(&stack, &other).body, "success");
    assert_eq!(push(&stack, &other).body, "success");
    assert_eq!(stack.app.stats().pushes, 3);
}

#[test]
fn unsigned_malformed_and_oversized_pushes_are_refused() {
    let stack = with_token();
    let body = event("subscribe", "", now());
    let unsigned = Browser::new().post_raw(&stack.url("/wechat"), "text/xml", body.as_bytes());
    assert_eq!(unsigned.status, 403);
    let forged = stack.url(&format!("/wechat?{}", signed_query("notTheToken", now())));
    assert_eq!(
        Browser::new()
            .post_raw(&forged, "text/xml", body.as_bytes())
            .status,
        403
    );
    for bad in [
        "not xml at all",
        "<xml><ToUserName>a</ToUserName>",
        "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><FromUserName>&x;</FromUserName></xml>",
        "<!DOCTYPE lol [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]><xml><ToUserName>&b;</ToUserName></xml>",
        "<xml></xml>",
    ] {
        assert_eq!(push(&stack, bad).status, 400, "{bad}");
    }
    let huge = format!("<xml><Content>{}</Content></xml>", "a".repeat(70 * 1024));
    assert_eq!(push(&stack, &huge).status, 413);
    assert_eq!(Browser::new().get(&stack.url("/healthz")).status, 200);
}

/// Runs `wxauth menu …` against the stack's simulator, as the stack's app is configured.
fn menu(stack: &Stack, args: &[&str]) -> (i32, String, String) {
    let out = crate::cli::wxauth_command()
        .arg("menu")
        .args(args)
        .env("WXAUTH_APPID", "wx000000000000test")
        .env("WXAUTH_SECRET", &stack.secret)
        .env("WXAUTH_PUBLIC_URL", "https://wx.example.com")
        .env("WXAUTH_API_BASE", &stack.sim_url)
        .env("WXAUTH_OPEN_BASE", &stack.sim_url)
        .output()
        .expect("run wxauth menu");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn menu_create_show_and_delete_against_the_simulator() {
    let stack = start_real(&[]);
    let (code, out, err) = menu(&stack, &["create"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, shown, err) = menu(&stack, &["show"]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("menu show prints JSON");
    let button = &shown["menu"]["button"][0];
    assert_eq!(button["name"], "我的资料");
    assert_eq!(button["type"], "view");
    assert_eq!(
        button["url"], "https://wx.example.com/login?next=%2Fprofile",
        "through /login, not the authorize URL"
    );
    assert_eq!(menu(&stack, &["delete"]).0, 0);
    let (code, _, err) = menu(&stack, &["show"]);
    assert_eq!(code, 1);
    assert!(err.contains("46003"), "{err}");
    assert!(
        !err.contains(&stack.secret) && !err.contains("simBT_"),
        "no secret or token in the output: {err}"
    );
}

#[test]
fn an_invalid_menu_file_is_refused_before_any_call_to_wechat() {
    let stack = start_real(&[]);
    let dir = std::env::temp_dir().join(format!("wxauth-menu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("menu.json");
    std::fs::write(
        &file,
        r#"{"button":[{"type":"view","name":"这个名字实在太长了","url":"https://x"}]}"#,
    )
    .unwrap();
    let (code, _, err) = menu(&stack, &["create", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("40018") && err.contains("invalid button name size"),
        "{err}"
    );
    assert_eq!(stack.calls("menu_create"), 0);
    assert_eq!(
        stack.calls("stable_token") + stack.calls("token"),
        0,
        "no token fetched for nothing"
    );
    // A file WeChat itself refuses (here: a click button without key) reports WeChat's words too.
    std::fs::write(&file, r#"{"button":[{"type":"click","name":"点我"}]}"#).unwrap();
    let (code, _, err) = menu(&stack, &["create", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("40019"), "{err}");
    let (code, _, err) = menu(&stack, &["create", "/nonexistent/menu.json"]);
    assert_eq!(code, 1, "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_base_token_is_fetched_once_for_many_calls_and_again_after_expiry() {
    use wxauth_app::wechat::account::{menu_show, BaseToken};
    let stack = start_real(&[]);
    let env = [
        ("WXAUTH_APPID", "wx000000000000test"),
        ("WXAUTH_SECRET", stack.secret.as_str()),
        ("WXAUTH_PUBLIC_URL", "https://wx.example.com"),
        ("WXAUTH_API_BASE", stack.sim_url.as_str()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = wxauth_app::config::Config::from_raw(
        &wxauth_app::config::RawConfig::from_env_and_args(env, &[]).unwrap(),
    )
    .unwrap();
    let client = wxauth_app::wechat::client::WechatClient::new(&config);
    let clock = wxauth_app::clock::Clock::new();
    let mut cache = BaseToken::default();
    for _ in 0..10 {
        // 46003 (no menu yet) is fine: the call was made with a token.
        let _ = menu_show(&client, &mut cache, &clock);
    }
    assert_eq!(cache.fetches, 1);
    assert_eq!(
        stack.calls("stable_token"),
        1,
        "stable_token is preferred, fetched once"
    );
    assert_eq!(stack.calls("menu_get"), 10);
    // Past expiry on both clocks: fetched once more.
    clock.advance(7200);
    stack.control(&[("advance", "7200")]);
    let _ = menu_show(&client, &mut cache, &clock);
    let _ = menu_show(&client, &mut cache, &clock);
    assert_eq!(stack.calls("stable_token"), 2);
    // WeChat says the token is no good (40001): refetched once, the call retried once.
    stack.control(&[("fault", "menu_get:errcode:40001")]);
    let _ = menu_show(&client, &mut cache, &clock);
    assert_eq!(stack.calls("stable_token"), 3);
    assert_eq!(stack.calls("menu_get"), 14);
}

#[test]
fn the_simulator_pushes_signed_events_that_the_app_answers() {
    let stack = with_token();
    let url = stack.url("/wechat");
    let pushed = stack.push(&[
        ("url", &url),
        ("token", TOKEN),
        ("kind", "subscribe"),
        ("key", "42"),
    ]);
    assert_eq!(pushed["answers"][0]["status"], 200, "{pushed}");
    let body = pushed["answers"][0]["body"].as_str().unwrap();
    assert!(body.contains(&format!("{}/login", stack.app_url)), "{body}");
    let retried = stack.push(&[
        ("url", &url),
        ("token", TOKEN),
        ("kind", "text"),
        ("content", "登录"),
        ("repeat", "3"),
    ]);
    let bodies: Vec<&str> = retried["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies[0].starts_with("<xml>") && bodies[1] == bodies[0] && bodies[2] == bodies[0],
        "{bodies:?}"
    );
    let forged = stack.push(&[
        ("url", &url),
        ("token", TOKEN),
        ("kind", "CLICK"),
        ("key", "K"),
        ("bad_signature", "1"),
    ]);
    assert_eq!(forged["answers"][0]["status"], 403);
}
