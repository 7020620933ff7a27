//! The whole login over HTTP against the simulator: both scopes, declining,
//! reloads and WeChat's double callback, snapshot users, logout, token refresh.

use crate::support::{start, start_with, Browser};

#[test]
fn userinfo_login_lands_on_the_profile_with_the_users_data() {
    let stack = start();
    let mut browser = Browser::new();
    let authorize = browser.start_login(&stack, None);
    assert!(authorize.starts_with(&format!(
        "{}/connect/oauth2/authorize?appid=",
        stack.sim_url
    )));
    assert!(authorize.ends_with("#wechat_redirect"));
    let callback = browser.consent(&authorize, 0, true);
    assert!(
        callback.starts_with(&stack.url("/callback?code=")),
        "{callback}"
    );
    let done = browser.get(&callback);
    assert_eq!(done.status, 302);
    assert_eq!(done.location(), "/profile");
    let set_cookie = done.header("set-cookie").expect("a session cookie");
    assert!(set_cookie.starts_with("wxauth_session="));
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/")
    );
    assert!(
        !set_cookie.contains("Secure"),
        "demo runs on http: {set_cookie}"
    );

    let profile = browser.get(&stack.url("/profile"));
    assert_eq!(profile.status, 200);
    assert!(profile.body.contains("熊猫🐼小明"), "emoji nickname intact");
    assert!(profile.body.contains("<dt>性别</dt><dd>男</dd>"));
    assert!(
        profile.body.contains("https://thirdwx.qlogo.cn/"),
        "avatar served over https"
    );
    assert!(!profile.body.contains("http://thirdwx.qlogo.cn/"));
    assert_eq!(profile.header("cache-control"), Some("no-store"));

    let home = browser.get(&stack.url("/"));
    assert!(home.body.contains("欢迎, 熊猫🐼小明"), "{}", home.body);
    assert!(home.body.contains("href=\"/profile\""));
    assert_eq!(stack.calls("access_token"), 1);
    assert_eq!(stack.calls("userinfo"), 1);
}

#[test]
fn base_scope_logs_in_silently_with_only_the_openid() {
    let stack = start_with(&[("WXAUTH_SCOPE", "snsapi_base")]);
    let mut browser = Browser::new();
    let authorize = browser.start_login(&stack, None);
    assert!(authorize.contains("&scope=snsapi_base&state="));
    let redirect = browser.get(&authorize);
    assert_eq!(redirect.status, 302, "no consent page with snsapi_base");
    let done = browser.get(redirect.location());
    assert_eq!(done.status, 302);
    let me = browser.get(&stack.url("/api/me"));
    assert_eq!(me.status, 200);
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert!(me["openid"].as_str().is_some_and(|o| o.len() > 10), "{me}");
    assert!(
        me.get("nickname").is_none(),
        "no profile with snsapi_base: {me}"
    );
    let profile = browser.get(&stack.url("/profile"));
    assert_eq!(profile.status, 200);
    assert!(profile.body.contains(me["openid"].as_str().unwrap()));
    assert_eq!(
        stack.calls("userinfo"),
        0,
        "no sns/userinfo call with snsapi_base"
    );
}

#[test]
fn declining_on_the_consent_page_is_a_403_with_a_way_back() {
    let stack = start();
    let mut browser = Browser::new();
    let authorize = browser.start_login(&stack, Some("/profile"));
    let callback = browser.consent(&authorize, 0, false);
    assert!(!callback.contains("code="), "{callback}");
    let page = browser.get(&callback);
    assert_eq!(page.status, 403);
    assert!(page.body.contains("授权已取消"), "{}", page.body);
    assert!(
        page.body.contains("login?next=%2Fprofile"),
        "a retry link: {}",
        page.body
    );
    assert_eq!(stack.calls("access_token"), 0);
    assert!(!browser.jar.contains_key("wxauth_session"));
}

#[test]
fn next_is_kept_for_local_paths_and_dropped_for_anything_else() {
    let stack = start();
    for (next, lands) in [
        ("/some/page?x=1", "/some/page?x=1"),
        ("//evil.example", "/profile"),
        ("/\\evil.example", "/profile"),
        ("https://evil.example/", "/profile"),
        ("/\t/evil.example", "/profile"),
        ("javascript:alert(1)", "/profile"),
    ] {
        let mut browser = Browser::new();
        let authorize = browser.start_login(&stack, Some(next));
        let callback = browser.consent(&authorize, 0, true);
        let done = browser.get(&callback);
        assert_eq!(done.status, 302);
        assert_eq!(done.location(), lands, "next = {next:?}");
    }
}

#[test]
fn a_reloaded_callback_continues_without_a_second_exchange() {
    let stack = start();
    let mut browser = Browser::new();
    let authorize = browser.start_login(&stack, Some("/where"));
    let callback = browser.consent(&authorize, 0, true);
    assert_eq!(browser.get(&callback).location(), "/where");
    let session = browser.jar["wxauth_session"].clone();
    let again = browser.get(&callback);
    assert_eq!(again.status, 302, "{}", again.body);
    assert_eq!(again.location(), "/where");
    assert_eq!(
        browser.jar["wxauth_session"], session,
        "same session after a reload"
    );
    assert_eq!(stack.calls("access_token"), 1, "a code is exchanged once");
}

#[test]
fn wechats_double_callback_logs_in_once() {
    let stack = start();
    stack.control(&[("double_callback", "1")]);
    let mut browser = Browser::new();
    let authorize = browser.start_login(&stack, None);
    let first = browser.consent(&authorize, 0, true);
    let callbacks = stack.sim_state()["callbacks"].clone();
    let urls: Vec<&str> = callbacks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(urls.len(), 2, "two codes for one state: {urls:?}");
    assert_ne!(urls[0], urls[1]);
    assert!(urls.contains(&first.as_str()));
    let second = urls.iter().find(|u| **u != first).unwrap().to_string();
    assert_eq!(browser.get(&first).location(), "/profile");
    let again = browser.get(&second);
    assert_eq!(
        again.status, 302,
        "the second callback is not an error: {}",
        again.body
    );
    assert_eq!(again.location(), "/profile");
    assert_eq!(stack.calls("access_token"), 1);
    assert_eq!(browser.get(&stack.url("/profile")).status, 200);
}

#[test]
fn a_snapshot_page_user_gets_no_session_and_no_userinfo_call() {
    let stack = start();
    stack.control(&[("snapshot", "1")]);
    let mut browser = Browser::new();
    let page = browser.login_as(&stack, 0);
    assert_eq!(page.status, 403);
    assert!(page.body.contains("请在微信中打开"), "{}", page.body);
    assert!(!browser.jar.contains_key("wxauth_session"));
    assert_eq!(stack.calls("access_token"), 1);
    assert_eq!(stack.calls("userinfo"), 0);
    assert_eq!(browser.get(&stack.url("/api/me")).status, 401);
}

#[test]
fn logout_ends_the_session_on_the_server() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    let stolen = browser.jar["wxauth_session"].clone();
    let out = browser.post(&stack.url("/logout"), &[]);
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/");
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert!(!browser.jar.contains_key("wxauth_session"));
    let home = browser.get(&stack.url("/"));
    assert!(home.body.contains("游客"));
    // The old cookie, replayed, is worth nothing.
    let mut thief = Browser::new();
    thief.jar.insert("wxauth_session".into(), stolen);
    assert_eq!(thief.get(&stack.url("/api/me")).status, 401);
    assert_eq!(thief.get(&stack.url("/profile")).status, 302);
}

#[test]
fn refresh_after_wechat_says_the_token_expired() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    // WeChat's clock moves past the 7200 s token; ours does not know yet.
    stack.control(&[("advance", "7300")]);
    let resp = browser.post(&stack.url("/profile/refresh"), &[]);
    assert_eq!(resp.status, 303, "{}", resp.body);
    assert_eq!(resp.location(), "/profile");
    assert_eq!(stack.calls("refresh_token"), 1, "42001 → refresh");
    assert_eq!(
        stack.calls("userinfo"),
        3,
        "login, the 42001 attempt, the retry"
    );
    assert_eq!(browser.get(&stack.url("/profile")).status, 200);
}

#[test]
fn refresh_when_our_own_clock_says_the_token_expired() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    stack.app.clock.advance(7300);
    stack.control(&[("advance", "7300")]);
    let resp = browser.post(&stack.url("/profile/refresh"), &[]);
    assert_eq!(resp.status, 303);
    assert_eq!(stack.calls("refresh_token"), 1);
    assert_eq!(
        stack.calls("userinfo"),
        2,
        "refreshed before calling: no failed attempt"
    );
}

#[test]
fn a_dead_refresh_token_ends_the_session_and_sends_the_user_to_login() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    stack.control(&[("advance", &(31 * 86400).to_string())]);
    let resp = browser.post(&stack.url("/profile/refresh"), &[]);
    assert_eq!(resp.status, 303, "{}", resp.body);
    assert!(resp.location().starts_with("/login"), "{}", resp.location());
    assert_eq!(browser.get(&stack.url("/api/me")).status, 401);
}

#[test]
fn a_refresh_that_fails_upstream_keeps_the_session() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    stack.control(&[("fault", "userinfo:errcode:-1")]);
    let resp = browser.post(&stack.url("/profile/refresh"), &[]);
    assert_eq!(resp.status, 502);
    assert!(resp.body.contains("-1"), "{}", resp.body);
    assert_eq!(
        browser.get(&stack.url("/api/me")).status,
        200,
        "session survives"
    );
}

#[test]
fn a_second_login_replaces_the_session_id() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    let first = browser.jar["wxauth_session"].clone();
    browser.login_as(&stack, 3);
    let second = browser.jar["wxauth_session"].clone();
    assert_ne!(first, second);
    let mut old = Browser::new();
    old.jar.insert("wxauth_session".into(), first);
    assert_eq!(
        old.get(&stack.url("/api/me")).status,
        401,
        "the replaced session is gone"
    );
}

#[test]
fn a_stale_token_answer_refreshes_and_retries_once() {
    for errcode in ["42001", "40001", "40014"] {
        let stack = start();
        let mut browser = Browser::new();
        browser.login_as(&stack, 0);
        stack.control(&[("fault", &format!("userinfo:errcode:{errcode}"))]);
        let resp = browser.post(&stack.url("/profile/refresh"), &[]);
        assert_eq!(resp.status, 303, "{errcode}: {}", resp.body);
        assert_eq!(resp.location(), "/profile");
        assert_eq!(stack.calls("refresh_token"), 1, "{errcode}");
        assert_eq!(
            stack.calls("userinfo"),
            3,
            "{errcode}: login, the failed call, one retry"
        );
    }
}

#[test]
fn a_refused_refresh_ends_the_session() {
    for errcode in ["40030", "42002"] {
        let stack = start();
        let mut browser = Browser::new();
        browser.login_as(&stack, 0);
        stack.control(&[("fault", "userinfo:errcode:42001")]);
        stack.control(&[("fault", &format!("refresh_token:errcode:{errcode}"))]);
        let resp = browser.post(&stack.url("/profile/refresh"), &[]);
        assert_eq!(resp.status, 303, "{errcode}");
        assert_eq!(resp.location(), "/login?next=%2Fprofile");
        assert_eq!(browser.get(&stack.url("/api/me")).status, 401, "{errcode}");
    }
}

#[test]
fn a_session_ends_after_its_ttl() {
    let stack = start_with(&[("WXAUTH_SESSION_TTL", "600")]);
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    assert!(browser.jar.contains_key("wxauth_session"));
    stack.app.clock.advance(599);
    assert_eq!(browser.get(&stack.url("/api/me")).status, 200);
    stack.app.clock.advance(2);
    assert_eq!(browser.get(&stack.url("/api/me")).status, 401);
    assert_eq!(browser.get(&stack.url("/profile")).status, 302);
}

#[test]
fn the_oldest_session_is_evicted_past_the_cap() {
    let stack = start_with(&[("WXAUTH_MAX_SESSIONS", "2")]);
    let mut browsers: Vec<Browser> = (0..3).map(|_| Browser::new()).collect();
    for browser in browsers.iter_mut() {
        browser.login_as(&stack, 0);
    }
    let statuses: Vec<u16> = browsers
        .iter_mut()
        .map(|b| b.get(&stack.url("/api/me")).status)
        .collect();
    assert_eq!(statuses, [401, 200, 200]);
}

#[test]
fn two_tabs_logging_in_at_once_each_land_where_they_began() {
    let stack = start();
    let mut browser = Browser::new();
    let first = browser.start_login(&stack, Some("/tab/one"));
    let second = browser.start_login(&stack, Some("/tab/two"));
    let first = browser.consent(&first, 0, true);
    let second = browser.consent(&second, 0, true);
    assert_eq!(browser.get(&second).location(), "/tab/two");
    assert_eq!(browser.get(&first).location(), "/tab/one");
    assert_eq!(stack.calls("access_token"), 2);
    assert_eq!(browser.get(&stack.url("/api/me")).status, 200);
}
