//! The account's own API, as opposed to a user's: the base access_token,
//! cached, and the custom menu. `wxauth menu` uses it.
//!
//! The base token has a daily quota, and each cgi-bin/token fetch invalidates
//! the previous token after a short overlap, so it is fetched once per
//! expiry and kept (docs/wechat.md §8). cgi-bin/stable_token is preferred: other
//! systems using the same appid cannot invalidate it.
//!
//! The menu the app builds and checks here is judged by the simulator with
//! rules of its own, on purpose (see `validate_menu`).

use crate::clock::Clock;
use crate::transport::http::encode_query;
use crate::wechat::client::{WechatClient, WechatError};
use crate::wechat::errcode::*;
use serde_json::{json, Value};

/// Refresh this long before WeChat's expiry, so no call starts with a dying token.
const REFRESH_AHEAD: i64 = 300;

/// The cached base access_token. Never shown, never logged.
#[derive(Default)]
pub struct BaseToken {
    token: Option<(String, i64)>,
    /// Where instances sharing a store keep it (WXAUTH_REDIS_URL).
    shelf: Option<Box<dyn TokenShelf + Send>>,
    /// How many times a token was fetched (tests, and the log).
    pub fetches: u32,
}

/// Where the instances that share a store keep the base token, so that
/// they use one token and only one of them fetches it at a time (stable
/// token: docs/wechat.md §8). Implemented by the Redis store; a shelf that
/// cannot answer is passed by (each instance then fetches its own, which
/// stable_token makes the same token anyway).
pub trait TokenShelf {
    /// The token kept, and when it expires.
    fn read(&self) -> Option<(String, i64)>;
    /// Keeps `token` until `expires`.
    fn write(&self, token: &str, expires: i64, now: i64);
    /// Forgets `token`, if it is still the one kept (WeChat called it stale:
    /// a newer one another instance kept is left alone).
    fn forget(&self, token: &str);
    /// Takes the shelf's lock for a fetch, waiting a little for another
    /// holder; whatever it returns releases it when dropped.
    fn lock(&self) -> Box<dyn std::any::Any>;
}

impl BaseToken {
    /// A cache whose token is shared through `shelf`.
    pub fn shared(shelf: Box<dyn TokenShelf + Send>) -> BaseToken {
        BaseToken {
            shelf: Some(shelf),
            ..BaseToken::default()
        }
    }

    /// The current token, fetched only when there is none or it is about to
    /// expire. With a shelf: the shelf's, else fetched under its lock after
    /// looking again (another instance may have fetched meanwhile).
    pub fn get(&mut self, client: &WechatClient, now: i64) -> Result<String, WechatError> {
        let fresh = |kept: &Option<(String, i64)>| {
            kept.as_ref()
                .filter(|(_, expires)| now < expires - REFRESH_AHEAD)
                .map(|(token, _)| token.clone())
        };
        if let Some(token) = fresh(&self.token) {
            return Ok(token);
        }
        let _lock = match &self.shelf {
            Some(shelf) => {
                if let Some(token) = fresh(&shelf.read()) {
                    self.token = shelf.read();
                    return Ok(token);
                }
                let lock = shelf.lock();
                let kept = shelf.read();
                if let Some(token) = fresh(&kept) {
                    self.token = kept;
                    return Ok(token);
                }
                Some(lock)
            }
            None => None,
        };
        let (token, expires_in) = fetch(client)?;
        self.fetches += 1;
        self.token = Some((token.clone(), now + expires_in));
        if let Some(shelf) = &self.shelf {
            shelf.write(&token, now + expires_in, now);
        }
        Ok(token)
    }

    /// Runs `call` with the token; if WeChat says the token is stale
    /// (40001, 42001, 40014), fetches a new one and tries once more.
    pub fn with<T>(
        &mut self,
        client: &WechatClient,
        clock: &Clock,
        call: impl Fn(&str) -> Result<T, WechatError>,
    ) -> Result<T, WechatError> {
        let token = self.get(client, clock.now())?;
        match call(&token) {
            Err(e) if e.is_stale_token() => {
                self.token = None;
                if let Some(shelf) = &self.shelf {
                    shelf.forget(&token);
                }
                let token = self.get(client, clock.now())?;
                call(&token)
            }
            other => other,
        }
    }
}

/// stable_token first; cgi-bin/token if that endpoint fails for a reason
/// other than the credentials themselves.
fn fetch(client: &WechatClient) -> Result<(String, i64), WechatError> {
    let (appid, secret) = client.credentials();
    let body = json!({
        "grant_type": "client_credential", "appid": appid, "secret": secret.expose(),
        "force_refresh": false,
    });
    let answer = match client.post_json("/cgi-bin/stable_token", "", &body) {
        Ok(answer) => answer,
        Err(
            e @ WechatError::Api {
                errcode:
                    INVALID_APPID | INVALID_SECRET | INVALID_IP | MISSING_APPID | MISSING_SECRET,
                ..
            },
        ) => return Err(e),
        Err(_) => {
            let query = encode_query(&[
                ("grant_type", "client_credential"),
                ("appid", appid),
                ("secret", secret.expose()),
            ]);
            client.get("/cgi-bin/token", &query)?
        }
    };
    let token = answer["access_token"].as_str().unwrap_or("").to_string();
    if token.is_empty() {
        return Err(WechatError::BadAnswer(
            "token answer without access_token".into(),
        ));
    }
    Ok((token, answer["expires_in"].as_i64().unwrap_or(7200)))
}

/// The menu `wxauth menu create` makes without a file: one view button that
/// opens our /login (which starts a bound login inside WeChat), not WeChat's
/// authorize URL: that URL would carry a state no browser started, which our
/// callback rightly refuses. Under a path prefix, both carry it.
pub fn default_menu(public_url: &str) -> Value {
    let prefix = crate::transport::host::HttpUrl::parse(public_url).map_or("", |url| url.path());
    let next = crate::transport::http::encode_component(&format!("{prefix}/profile"));
    json!({ "button": [
        { "type": "view", "name": "我的资料", "url": format!("{public_url}/login?next={next}") }
    ]})
}

/// Types WeChat accepts for a button.
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

/// Checks a menu as WeChat would, with WeChat's errcodes and wording, so a
/// mistake is caught before a call that counts against the daily quota.
/// The simulator judges menus with rules of its own (crates/sim/src/menu.rs),
/// on purpose: it stands in for WeChat, so a mistake in these rules shows up
/// against it instead of being agreed with.
pub fn validate_menu(menu: &Value) -> Result<(), WechatError> {
    let fail = |errcode: i64, errmsg: &str| {
        Err(WechatError::Api {
            errcode,
            errmsg: errmsg.to_string(),
        })
    };
    let Some(buttons) = menu["button"].as_array() else {
        return fail(
            DATA_FORMAT_ERROR,
            "data format error: a menu is {\"button\":[...]}",
        );
    };
    if buttons.is_empty() || buttons.len() > 3 {
        return fail(INVALID_BUTTON_SIZE, "invalid button size (1 to 3 buttons)");
    }
    for button in buttons {
        let name = button["name"].as_str().unwrap_or("");
        if name.is_empty() || name.len() > 16 {
            return fail(
                INVALID_BUTTON_NAME_SIZE,
                "invalid button name size (1 to 16 bytes)",
            );
        }
        match button["sub_button"].as_array() {
            Some(subs) if !subs.is_empty() || button.get("type").is_none() => {
                if subs.is_empty() || subs.len() > 5 {
                    return fail(
                        INVALID_SUB_BUTTON_SIZE,
                        "invalid sub button size (1 to 5 sub buttons)",
                    );
                }
                for sub in subs {
                    let name = sub["name"].as_str().unwrap_or("");
                    if name.is_empty() || name.len() > 60 {
                        return fail(
                            INVALID_SUB_BUTTON_NAME_SIZE,
                            "invalid sub button name size (1 to 60 bytes)",
                        );
                    }
                    check_action(sub, INVALID_SUB_BUTTON_TYPE)?;
                }
            }
            _ => check_action(button, INVALID_BUTTON_TYPE)?,
        }
    }
    Ok(())
}

/// A button's type and what the type needs (a url for view, a key for click
/// and the other event types). WeChat's codes differ for sub buttons.
fn check_action(button: &Value, bad_type: i64) -> Result<(), WechatError> {
    let fail = |errcode: i64, errmsg: &str| {
        Err(WechatError::Api {
            errcode,
            errmsg: errmsg.to_string(),
        })
    };
    let sub = bad_type == INVALID_SUB_BUTTON_TYPE;
    let kind = button["type"].as_str().unwrap_or("");
    if !TYPES.contains(&kind) {
        return fail(
            bad_type,
            if sub {
                "invalid sub button type"
            } else {
                "invalid button type"
            },
        );
    }
    let url = button["url"].as_str().unwrap_or("");
    if kind == "view" {
        if url.is_empty() || url.len() > 1024 {
            let (code, msg) = if sub {
                (INVALID_SUB_BUTTON_URL_SIZE, "invalid sub button url size")
            } else {
                (INVALID_BUTTON_URL_SIZE, "invalid button url size")
            };
            return fail(code, &format!("{msg} (1 to 1024 bytes)"));
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            let (code, msg) = if sub {
                (
                    INVALID_SUB_BUTTON_URL_DOMAIN,
                    "invalid sub button url domain",
                )
            } else {
                (INVALID_BUTTON_URL_DOMAIN, "invalid button url domain")
            };
            return fail(code, &format!("{msg} (http:// or https://)"));
        }
    }
    let needs_key = matches!(
        kind,
        "click"
            | "scancode_push"
            | "scancode_waitmsg"
            | "pic_sysphoto"
            | "pic_photo_or_album"
            | "pic_weixin"
            | "location_select"
    );
    let key = button["key"].as_str().unwrap_or("");
    if needs_key && (key.is_empty() || key.len() > 128) {
        let (code, msg) = if sub {
            (INVALID_SUB_BUTTON_KEY_SIZE, "invalid sub button key size")
        } else {
            (INVALID_BUTTON_KEY_SIZE, "invalid button key size")
        };
        return fail(code, &format!("{msg} (1 to 128 bytes)"));
    }
    Ok(())
}

/// Creates the menu (after checking it locally).
pub fn menu_create(
    client: &WechatClient,
    cache: &mut BaseToken,
    clock: &Clock,
    menu: &Value,
) -> Result<(), WechatError> {
    validate_menu(menu)?;
    cache.with(client, clock, |token| {
        client.post_json(
            "/cgi-bin/menu/create",
            &encode_query(&[("access_token", token)]),
            menu,
        )
    })?;
    Ok(())
}

/// The current menu, as WeChat returns it.
pub fn menu_show(
    client: &WechatClient,
    cache: &mut BaseToken,
    clock: &Clock,
) -> Result<Value, WechatError> {
    cache.with(client, clock, |token| {
        client.get(
            "/cgi-bin/menu/get",
            &encode_query(&[("access_token", token)]),
        )
    })
}

/// Deletes the menu.
pub fn menu_delete(
    client: &WechatClient,
    cache: &mut BaseToken,
    clock: &Clock,
) -> Result<(), WechatError> {
    cache.with(client, clock, |token| {
        client.get(
            "/cgi-bin/menu/delete",
            &encode_query(&[("access_token", token)]),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errcode(menu: Value) -> i64 {
        match validate_menu(&menu) {
            Err(WechatError::Api { errcode, .. }) => errcode,
            other => panic!("{menu}: {other:?}"),
        }
    }

    #[test]
    fn the_default_menu_is_valid_and_goes_through_login() {
        let menu = default_menu("https://wx.example.com");
        assert!(validate_menu(&menu).is_ok());
        assert_eq!(
            menu["button"][0]["url"],
            "https://wx.example.com/login?next=%2Fprofile"
        );
        let menu = default_menu("https://example.com/wx");
        assert_eq!(
            menu["button"][0]["url"],
            "https://example.com/wx/login?next=%2Fwx%2Fprofile"
        );
    }

    #[test]
    fn menus_are_checked_with_wechats_errcodes() {
        let view = json!({"type": "view", "name": "a", "url": "https://x"});
        assert_eq!(errcode(json!({"button": []})), 40016);
        assert_eq!(errcode(json!({"button": [view, view, view, view]})), 40016);
        assert_eq!(
            errcode(
                json!({"button": [{"type": "view", "name": "一二三四五六", "url": "https://x"}]})
            ),
            40018
        );
        assert_eq!(
            errcode(json!({"button": [{"type": "dance", "name": "a"}]})),
            40017
        );
        assert_eq!(
            errcode(json!({"button": [{"type": "view", "name": "a"}]})),
            40020
        );
        let sub = |b: Value| json!({"button": [{"name": "a", "sub_button": [b]}]});
        assert_eq!(errcode(sub(json!({"type": "view", "name": "b"}))), 40027);
        assert_eq!(errcode(sub(json!({"type": "click", "name": "b"}))), 40026);
        assert_eq!(
            errcode(sub(json!({"type": "view", "name": "b", "url": "x"}))),
            40054
        );
        assert_eq!(
            errcode(json!({"button": [{"type": "scancode_push", "name": "a"}]})),
            40019
        );
        assert_eq!(
            errcode(json!({"button": [{"type": "view", "name": "a", "url": "ftp://x"}]})),
            40055
        );
        assert_eq!(
            errcode(json!({"button": [{"type": "click", "name": "a"}]})),
            40019
        );
        assert_eq!(
            errcode(
                json!({"button": [{"name": "a", "sub_button": [view, view, view, view, view, view]}]})
            ),
            40023
        );
        assert_eq!(
            errcode(json!({"button": [{"name": "a", "sub_button": [{"type": "x", "name": "b"}]}]})),
            40024
        );
        assert_eq!(errcode(json!({"nope": 1})), 47001);
        assert!(validate_menu(&json!({"button": [{"name": "菜单", "sub_button": [view]}, {"type": "click", "name": "b", "key": "K"}]})).is_ok());
    }
}
