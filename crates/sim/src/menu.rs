//! What cgi-bin/menu/create accepts, checked as WeChat does: button counts,
//! types, and the sizes of names, keys and urls, with WeChat's errcodes (top
//! level and sub buttons have codes of their own; docs/wechat.md §9). Pure:
//! body in, verdict out.
//!
//! Separate from the app's own menu check (crates/app/src/wechat/account.rs)
//! on purpose, unlike the push signature and CDATA, which the simulator takes
//! from the app: the simulator stands in for WeChat and must judge a menu the
//! way WeChat does, whatever the app builds or believes. Sharing the app's
//! rules would let it agree with the app's mistakes. Only the errcodes'
//! numbers are shared (wxauth_app::wechat::errcode): names, not rules.

use serde_json::Value;
use wxauth_app::wechat::errcode::{
    DATA_FORMAT_ERROR, EMPTY_POST_DATA, INVALID_BUTTON_KEY_SIZE, INVALID_BUTTON_NAME_SIZE,
    INVALID_BUTTON_SIZE, INVALID_BUTTON_TYPE, INVALID_BUTTON_URL_DOMAIN, INVALID_BUTTON_URL_SIZE,
    INVALID_SUB_BUTTON_KEY_SIZE, INVALID_SUB_BUTTON_NAME_SIZE, INVALID_SUB_BUTTON_SIZE,
    INVALID_SUB_BUTTON_TYPE, INVALID_SUB_BUTTON_URL_DOMAIN, INVALID_SUB_BUTTON_URL_SIZE,
};

/// At most 3 top-level buttons, each with at most 5 sub buttons.
const MAX_BUTTONS: usize = 3;
const MAX_SUB_BUTTONS: usize = 5;
/// Limits in bytes of UTF-8: a top-level name holds 5 Chinese characters.
const MAX_NAME: usize = 16;
const MAX_SUB_NAME: usize = 60;
const MAX_KEY: usize = 128;
const MAX_URL: usize = 1024;

/// Every button type WeChat knows. The app's own check (account.rs) keeps
/// its list too, on purpose (see the top of this file).
const TYPES: &[&str] = &[
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "media_id",
    "article_id",
    "article_view_limited",
    "miniprogram",
];

/// Types whose press pushes an event carrying the button's `key`: the key
/// is required ("click等点击类型必须").
const KEYED: &[&str] = &[
    "click",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
];

/// The errcodes of one level: WeChat tells a top-level button's faults
/// from a sub button's.
struct Codes {
    max_name: usize,
    name: i64,
    kind: i64,
    key: i64,
    url_size: i64,
    url_domain: i64,
}

const TOP: Codes = Codes {
    max_name: MAX_NAME,
    name: INVALID_BUTTON_NAME_SIZE,
    kind: INVALID_BUTTON_TYPE,
    key: INVALID_BUTTON_KEY_SIZE,
    url_size: INVALID_BUTTON_URL_SIZE,
    url_domain: INVALID_BUTTON_URL_DOMAIN,
};

const SUB: Codes = Codes {
    max_name: MAX_SUB_NAME,
    name: INVALID_SUB_BUTTON_NAME_SIZE,
    kind: INVALID_SUB_BUTTON_TYPE,
    key: INVALID_SUB_BUTTON_KEY_SIZE,
    url_size: INVALID_SUB_BUTTON_URL_SIZE,
    url_domain: INVALID_SUB_BUTTON_URL_DOMAIN,
};

/// Checks a menu/create body; Ok is the JSON text to store (as sent, only
/// trimmed, so menu/get gives back the caller's own field order).
pub fn validate(body: &[u8]) -> Result<String, i64> {
    let text = std::str::from_utf8(body)
        .map_err(|_| DATA_FORMAT_ERROR)?
        .trim();
    if text.is_empty() {
        return Err(EMPTY_POST_DATA);
    }
    let menu: Value = serde_json::from_str(text).map_err(|_| DATA_FORMAT_ERROR)?;
    let buttons = match menu.as_object().ok_or(DATA_FORMAT_ERROR)?.get("button") {
        None => return Err(INVALID_BUTTON_SIZE),
        Some(buttons) => buttons.as_array().ok_or(DATA_FORMAT_ERROR)?,
    };
    if buttons.is_empty() || buttons.len() > MAX_BUTTONS {
        return Err(INVALID_BUTTON_SIZE);
    }
    for button in buttons {
        top_button(button)?;
    }
    Ok(text.to_string())
}

/// The stored menu as `menu/get` shows it: WeChat answers with its own key
/// order and adds `"sub_button":[]` to every button that has none, leaves
/// and sub buttons too (code reading `sub_button` unconditionally works
/// there, so it must work here).
pub(super) fn as_wechat_shows_it(stored: &str) -> String {
    let Ok(menu) = serde_json::from_str::<Value>(stored) else {
        return stored.to_string();
    };
    let buttons: Vec<String> = menu["button"]
        .as_array()
        .map(|b| b.iter().map(shown_button).collect())
        .unwrap_or_default();
    format!("{{\"button\":[{}]}}", buttons.join(","))
}

/// One button with WeChat's key order, then any other keys, then `sub_button`.
fn shown_button(button: &Value) -> String {
    const ORDER: [&str; 8] = [
        "type",
        "name",
        "key",
        "url",
        "media_id",
        "appid",
        "pagepath",
        "article_id",
    ];
    let Some(fields) = button.as_object() else {
        return button.to_string();
    };
    let known = ORDER.iter().filter_map(|k| fields.get(*k).map(|v| (*k, v)));
    let others = fields
        .iter()
        .filter(|(k, _)| !ORDER.contains(&k.as_str()) && k.as_str() != "sub_button")
        .map(|(k, v)| (k.as_str(), v));
    let mut parts: Vec<String> = known
        .chain(others)
        .map(|(k, v)| format!("{}:{v}", Value::from(k)))
        .collect();
    let subs: Vec<String> = fields
        .get("sub_button")
        .and_then(Value::as_array)
        .map(|subs| subs.iter().map(shown_button).collect())
        .unwrap_or_default();
    parts.push(format!("\"sub_button\":[{}]", subs.join(",")));
    format!("{{{}}}", parts.join(","))
}

/// A top-level button: a parent of sub buttons, or a button of its own.
fn top_button(button: &Value) -> Result<(), i64> {
    let button = button.as_object().ok_or(DATA_FORMAT_ERROR)?;
    let subs = match button.get("sub_button") {
        None => None,
        Some(subs) => Some(subs.as_array().ok_or(DATA_FORMAT_ERROR)?),
    };
    match subs {
        Some(subs) if !subs.is_empty() => {
            name(button, &TOP)?;
            if subs.len() > MAX_SUB_BUTTONS {
                return Err(INVALID_SUB_BUTTON_SIZE);
            }
            subs.iter().try_for_each(|sub| {
                let sub = sub.as_object().ok_or(DATA_FORMAT_ERROR)?;
                leaf(sub, &SUB)
            })
        }
        // menu/get answers `"sub_button":[]` on plain buttons, so an empty
        // list next to a type is fine: a menu read back can be sent again.
        _ if button.contains_key("type") => leaf(button, &TOP),
        Some(_) => Err(INVALID_SUB_BUTTON_SIZE),
        None => Err(TOP.kind),
    }
}

/// A button that does something itself: name, known type, key or url.
fn leaf(button: &serde_json::Map<String, Value>, codes: &Codes) -> Result<(), i64> {
    name(button, codes)?;
    let kind = button
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| TYPES.contains(t))
        .ok_or(codes.kind)?;
    if KEYED.contains(&kind) {
        let key = button.get("key").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(codes.key);
        }
    }
    if kind == "view" {
        let url = button.get("url").and_then(Value::as_str).unwrap_or("");
        if url.is_empty() || url.len() > MAX_URL {
            return Err(codes.url_size);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(codes.url_domain);
        }
    }
    Ok(())
}

fn name(button: &serde_json::Map<String, Value>, codes: &Codes) -> Result<(), i64> {
    let name = button.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() || name.len() > codes.max_name {
        return Err(codes.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(menu: Value, expected: Result<(), i64>) {
        let got = validate(menu.to_string().as_bytes()).map(|_| ());
        assert_eq!(got, expected, "{menu}");
    }

    fn click(name: &str) -> Value {
        json!({ "type": "click", "name": name, "key": "K" })
    }

    #[test]
    fn menu_get_shows_every_button_with_a_sub_button_list() {
        let body = r#"{"button":[{"name":"登录","url":"https://a.example/login","type":"view"},
            {"name":"更多","sub_button":[{"type":"click","name":"赞","key":"V1001_GOOD"}]}]}"#;
        let shown: Value = serde_json::from_str(&as_wechat_shows_it(body)).unwrap();
        assert_eq!(
            shown,
            json!({"button": [
                {"type": "view", "name": "登录", "url": "https://a.example/login", "sub_button": []},
                {"name": "更多", "sub_button": [
                    {"type": "click", "name": "赞", "key": "V1001_GOOD", "sub_button": []}]}]})
        );
        assert!(as_wechat_shows_it(body).starts_with(r#"{"button":[{"type":"view","name":"登录""#));
        // What menu/get shows can be sent back to menu/create as it is.
        assert!(validate(as_wechat_shows_it(body).as_bytes()).is_ok());
    }

    #[test]
    fn a_typical_menu_is_kept_as_sent() {
        let body = r#" {"button":[{"type":"view","name":"登录","url":"https://a.example/login"},
            {"name":"更多","sub_button":[{"type":"click","name":"赞","key":"V1001_GOOD"}]},
            {"type":"miniprogram","name":"小程序","url":"http://x","appid":"wx1","pagepath":"p"}]}"#;
        assert_eq!(validate(body.as_bytes()), Ok(body.trim().to_string()));
    }

    #[test]
    fn counts_are_checked() {
        check(json!({ "button": [] }), Err(40016));
        check(json!({}), Err(40016));
        let four = vec![click("a"); 4];
        check(json!({ "button": four }), Err(40016));
        let six = vec![click("a"); 6];
        check(
            json!({ "button": [{ "name": "更多", "sub_button": six }] }),
            Err(40023),
        );
        check(
            json!({ "button": [{ "name": "更多", "sub_button": [] }] }),
            Err(40023),
        );
        let mut plain = click("a");
        plain["sub_button"] = json!([]);
        check(json!({ "button": [plain] }), Ok(()));
    }

    #[test]
    fn names_types_keys_and_urls_have_their_codes() {
        check(json!({ "button": [click("一二三四五六")] }), Err(40018));
        check(json!({ "button": [click("一二三四五")] }), Ok(()));
        check(json!({ "button": [click("")] }), Err(40018));
        let sub = |b: Value| json!({ "button": [{ "name": "更多", "sub_button": [b] }] });
        check(sub(click(&"长".repeat(21))), Err(40025));
        check(sub(click(&"长".repeat(20))), Ok(()));
        check(
            json!({ "button": [{ "type": "tap", "name": "a" }] }),
            Err(40017),
        );
        check(json!({ "button": [{ "name": "a" }] }), Err(40017));
        check(sub(json!({ "type": "tap", "name": "a" })), Err(40024));
        check(
            json!({ "button": [{ "type": "click", "name": "a" }] }),
            Err(40019),
        );
        let long_key = "k".repeat(129);
        check(
            json!({ "button": [{ "type": "click", "name": "a", "key": long_key }] }),
            Err(40019),
        );
        check(
            sub(json!({ "type": "scancode_push", "name": "a" })),
            Err(40026),
        );
        check(
            json!({ "button": [{ "type": "view", "name": "a" }] }),
            Err(40020),
        );
        check(sub(json!({ "type": "view", "name": "a" })), Err(40027));
        let long_url = format!("https://a.example/{}", "x".repeat(1024));
        check(
            sub(json!({ "type": "view", "name": "a", "url": long_url })),
            Err(40027),
        );
        check(
            json!({ "button": [{ "type": "view", "name": "a", "url": "a.example" }] }),
            Err(40055),
        );
        check(
            sub(json!({ "type": "view", "name": "a", "url": "ftp://a" })),
            Err(40054),
        );
    }

    #[test]
    fn bodies_that_are_not_a_menu_are_format_errors() {
        assert_eq!(validate(b""), Err(EMPTY_POST_DATA));
        assert_eq!(validate(b"{\"button\":["), Err(DATA_FORMAT_ERROR));
        assert_eq!(validate(b"\xff"), Err(DATA_FORMAT_ERROR));
        assert_eq!(validate(b"[1]"), Err(DATA_FORMAT_ERROR));
        assert_eq!(validate(br#"{"button":{}}"#), Err(DATA_FORMAT_ERROR));
        assert_eq!(validate(br#"{"button":[1]}"#), Err(DATA_FORMAT_ERROR));
    }
}
