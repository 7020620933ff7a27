//! Property tests for every parser that sees untrusted bytes: query strings
//! and percent-decoding, cookies, the `next` check (with an open-redirect
//! corpus and a real URL parser as the judge), WeChat's JSON answers, and
//! the session file. Properties: never panics, never lets a browser off
//! site, round-trips where it should.

use proptest::prelude::*;
use serde_json::{json, Value};
use wxauth_app::store::logins::Logins;
use wxauth_app::store::sessions::SessionStore;
use wxauth_app::store::signed::Key;
use wxauth_app::transport::http::{
    encode_component, encode_query, parse_cookies, parse_query, Req,
};
use wxauth_app::web::handlers::login::local_path;
use wxauth_app::wechat::client::{parse_answer, repair, WechatUser};

/// Where a kept `next` must lead: judged by the WHATWG URL parser that
/// browsers implement, not by our own idea of a path.
fn stays_on_site(kept: &str) -> bool {
    let base = url::Url::parse("https://app.example/login").unwrap();
    match base.join(kept) {
        Ok(target) => {
            target.scheme() == "https"
                && target.host_str() == Some("app.example")
                && target.port().is_none()
        }
        Err(_) => false,
    }
}

fn check_next(next: &str) {
    if let Some(kept) = local_path(next) {
        assert!(
            stays_on_site(&kept),
            "{next:?} was kept as {kept:?}, which leaves the site"
        );
        assert!(!kept.contains(['\r', '\n', '\\']), "{kept:?}");
        assert!(
            kept.is_ascii(),
            "a Location header value is ASCII: {kept:?}"
        );
    }
}

/// Decodes the corpus' escapes: \t \n \r \0 and \xNN (bytes, read as UTF-8);
/// any other backslash is itself.
fn unescape(line: &str) -> String {
    let raw = line.as_bytes();
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let escape = if raw[i] == b'\\' {
            raw.get(i + 1).copied()
        } else {
            None
        };
        let (byte, width) = match escape {
            Some(b't') => (b'\t', 2),
            Some(b'n') => (b'\n', 2),
            Some(b'r') => (b'\r', 2),
            Some(b'0') => (0, 2),
            Some(b'x') if i + 4 <= raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 2..i + 4]).expect("ASCII hex");
                (u8::from_str_radix(hex, 16).expect("\\xNN in the corpus"), 4)
            }
            _ => (raw[i], 1),
        };
        bytes.push(byte);
        i += width;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn the_open_redirect_corpus_never_leaves_the_site() {
    let corpus = include_str!("../data/openredirects.txt");
    let mut count = 0;
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let next = unescape(line);
        check_next(&next);
        // The same value as it arrives in a real query string, percent-encoded.
        let req = Req::fake(
            "GET",
            &format!("/login?next={}", encode_component(&next)),
            &[],
        );
        assert_eq!(req.query("next"), Some(next.as_str()));
        count += 1;
    }
    assert!(count >= 50, "{count} corpus entries");
    // And the judge itself is not lenient.
    assert!(!stays_on_site("//evil.example"));
    assert!(!stays_on_site("/\\evil.example"));
    assert!(stays_on_site("/profile?x=1"));
}

/// Strings built from the characters open redirects are made of.
fn redirect_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/"),
            Just("\\"),
            Just("."),
            Just(":"),
            Just("@"),
            Just("%"),
            Just("%2f"),
            Just("%5c"),
            Just("\t"),
            Just("\n"),
            Just("\r"),
            Just(" "),
            Just("?"),
            Just("#"),
            Just("evil"),
            Just("example"),
            Just("https"),
            Just("javascript"),
            Just("\u{3000}"),
            Just("\u{ff0f}"),
            Just("\u{0}"),
            Just("\u{7f}"),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn next_never_leaves_the_site_for_redirect_like_input(next in redirect_like()) {
        check_next(&next);
    }

    #[test]
    fn next_never_leaves_the_site_for_any_string(next in any::<String>()) {
        check_next(&next);
    }

    #[test]
    fn next_keeps_plain_local_paths(path in "/[a-z0-9_-]{1,10}(/[a-z0-9_-]{1,10}){0,3}(\\?[a-z]=[0-9]{1,3})?") {
        prop_assert_eq!(local_path(&path), Some(path.clone()));
    }

    #[test]
    fn query_parsing_never_panics(query in any::<String>()) {
        let _ = parse_query(&query);
        let req = Req::fake("GET", &format!("/x?{query}"), &[]);
        let _ = req.query("next");
    }

    #[test]
    fn percent_decoding_survives_broken_escapes(query in "([a-z%=&+]|%[0-9a-fA-F]{0,2}|%[g-z]{2}){0,40}") {
        let _ = parse_query(&query);
    }

    #[test]
    fn query_values_round_trip(pairs in proptest::collection::vec(("\\PC{1,12}", "\\PC{0,20}"), 0..6)) {
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let encoded = encode_query(&borrowed);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_graphic()));
        prop_assert_eq!(parse_query(&encoded), pairs);
    }

    #[test]
    fn cookie_parsing_never_panics(header in any::<String>()) {
        let _ = parse_cookies(&header);
    }

    #[test]
    fn cookies_round_trip(cookies in proptest::collection::vec(("[A-Za-z0-9_]{1,16}", "[A-Za-z0-9]{0,40}"), 0..8)) {
        let header = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        prop_assert_eq!(parse_cookies(&header), cookies);
    }

    #[test]
    fn wechat_answers_never_panic_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(value) = parse_answer(&body) {
            let _ = WechatUser::from_value(value);
        }
    }

    #[test]
    fn wechat_answers_never_panic_on_arbitrary_json(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        if let Ok(value) = parse_answer(&body) {
            let _ = WechatUser::from_value(value);
        }
    }

    #[test]
    fn repair_leaves_valid_json_alone(value in json_value()) {
        let text = serde_json::to_string(&value).unwrap();
        prop_assert_eq!(repair(text.as_bytes()), text);
    }

    #[test]
    fn any_truncation_of_a_real_answer_is_an_error_not_a_panic(cut in 0usize..400) {
        let body = userinfo_body("熊猫🐼小明");
        let cut = cut.min(body.len());
        let _ = parse_answer(&body[..cut]).and_then(WechatUser::from_value);
    }

    #[test]
    fn raw_control_characters_in_a_nickname_are_dropped(
        nickname in "[a-z\\u{4e00}-\\u{4e10}\\u{1f600}-\\u{1f610}\\u{0}-\\u{1f}]{0,30}"
    ) {
        // Written into the body as WeChat does it: raw, unescaped.
        let body = format!("{{\"openid\":\"o1\",\"nickname\":\"{nickname}\",\"sex\":1}}");
        let user = WechatUser::from_value(parse_answer(body.as_bytes()).unwrap()).unwrap();
        let expected: String = nickname.chars().filter(|c| !c.is_control()).collect();
        prop_assert_eq!(user.nickname, expected);
    }

    #[test]
    fn fields_of_the_wrong_type_are_tolerated(sex in json_value(), privilege in json_value(), openid in json_value()) {
        let value = json!({"openid": openid, "sex": sex, "privilege": privilege});
        let user = WechatUser::from_value(value).unwrap();
        let expected_sex = match &sex {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            Value::String(s) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        prop_assert_eq!(user.sex, expected_sex);
        let expected_privilege: Vec<String> = match &privilege {
            Value::Array(items) => items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        prop_assert_eq!(user.privilege, expected_privilege);
        let expected_openid = match &openid {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => String::new(),
        };
        prop_assert_eq!(user.openid, expected_openid);
    }

    #[test]
    fn the_session_file_loader_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let dir = std::env::temp_dir().join(format!("wxauth-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("s-{}.json", body.len()));
        std::fs::write(&path, &body).unwrap();
        let (mut sessions, mut logins) = (
            SessionStore::new(100, 10),
            Logins::new(Key::random()),
        );
        let _ = wxauth_app::store::session_file::load(&path, &mut sessions, &mut logins, 0);
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn a_huge_answer_is_parsed_or_refused_without_trouble() {
    let body = userinfo_body(&"长".repeat(200_000));
    let user = WechatUser::from_value(parse_answer(&body).unwrap()).unwrap();
    assert_eq!(user.nickname.chars().count(), 200_000);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(
        parse_answer(deep.as_bytes()).is_err(),
        "serde_json's depth limit, no stack overflow"
    );
}

fn userinfo_body(nickname: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "openid": "oSim0PandaXiaoMingEmoji00001", "nickname": nickname, "sex": 1,
        "province": "广东", "city": "深圳", "country": "中国",
        "headimgurl": "http://thirdwx.qlogo.cn/mmopen/x/132", "privilege": ["chinaunicom"],
        "unionid": "u1"
    }))
    .unwrap()
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("openid".to_string()),
                    Just("nickname".to_string()),
                    Just("sex".to_string()),
                    Just("errcode".to_string()),
                    Just("errmsg".to_string()),
                    Just("privilege".to_string()),
                    Just("unionid".to_string()),
                    Just("headimgurl".to_string()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
