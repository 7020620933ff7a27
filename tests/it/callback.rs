//! /callback's refusals (state missing, forged, reused, foreign; codes reused
//! or expired) and every way the upstream can fail.

use crate::support::{start, start_real, start_with, Browser, Stack};

/// Logs in up to the point where WeChat sends the browser back: returns the callback URL.
fn callback_url(stack: &Stack, browser: &mut Browser) -> String {
    let authorize = browser.start_login(stack, None);
    browser.consent(&authorize, 0, true)
}

#[test]
fn a_missing_or_forged_state_is_refused_before_any_upstream_call() {
    let stack = start();
    let mut browser = Browser::new();
    for path in [
        "/callback",
        "/callback?code=abc",
        "/callback?code=abc&state=",
        "/callback?code=abc&state=forged0123456789forged0123456789",
        "/callback?code=abc&state=%00%FF",
    ] {
        let page = browser.get(&stack.url(path));
        assert_eq!(page.status, 400, "{path}");
        assert!(page.body.contains("重新授权"), "a one-tap retry: {path}");
    }
    assert_eq!(stack.calls("access_token"), 0);
}

#[test]
fn a_code_and_state_carried_to_another_browser_are_refused() {
    let stack = start();
    let mut victim = Browser::new();
    let callback = callback_url(&stack, &mut victim);
    // Login CSRF: the attacker's own code+state, opened in the victim's browser.
    let mut other = Browser::new();
    assert_eq!(other.get(&callback).status, 400);
    assert_eq!(
        stack.calls("access_token"),
        0,
        "refused with no upstream call"
    );
    // The browser that began the login still completes it.
    assert_eq!(victim.get(&callback).status, 302);
}

#[test]
fn a_used_state_is_refused_in_any_other_browser() {
    let stack = start();
    let mut browser = Browser::new();
    let callback = callback_url(&stack, &mut browser);
    assert_eq!(browser.get(&callback).status, 302);
    let mut other = Browser::new();
    assert_eq!(other.get(&callback).status, 400);
    assert_eq!(stack.calls("access_token"), 1);
}

#[test]
fn a_state_older_than_ten_minutes_is_refused() {
    let stack = start();
    let mut browser = Browser::new();
    let callback = callback_url(&stack, &mut browser);
    stack.app.clock.advance(601);
    assert_eq!(browser.get(&callback).status, 400);
    assert_eq!(stack.calls("access_token"), 0);
}

#[test]
fn a_code_used_before_is_wechats_40163() {
    let stack = start();
    let mut browser = Browser::new();
    let first = callback_url(&stack, &mut browser);
    assert_eq!(browser.get(&first).status, 302);
    let code = first
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    // A new login in the same browser, answered with the old code.
    let authorize = browser.start_login(&stack, None);
    let state = authorize
        .split("state=")
        .nth(1)
        .unwrap()
        .split(['&', '#'])
        .next()
        .unwrap();
    let page = browser.get(&stack.url(&format!("/callback?code={code}&state={state}")));
    assert_eq!(page.status, 502);
    assert!(page.body.contains("40163"), "{}", page.body);
}

#[test]
fn an_expired_code_is_wechats_42003() {
    let stack = start();
    let mut browser = Browser::new();
    let callback = callback_url(&stack, &mut browser);
    stack.control(&[("advance", "301")]);
    let page = browser.get(&callback);
    assert_eq!(page.status, 502);
    assert!(page.body.contains("42003"), "{}", page.body);
    // The state is spent: reloading gives the retry page, not a second exchange.
    assert_eq!(browser.get(&callback).status, 400);
    assert_eq!(stack.calls("access_token"), 1);
}

#[test]
fn every_wechat_errcode_is_a_502_page_showing_it() {
    for (endpoint, errcode) in [
        ("access_token", "40029"),
        ("access_token", "40125"),
        ("access_token", "40013"),
        ("access_token", "-1"),
        ("access_token", "45011"),
        ("userinfo", "48001"),
        ("userinfo", "40003"),
        ("userinfo", "42007"),
    ] {
        let stack = start();
        stack.control(&[("fault", &format!("{endpoint}:errcode:{errcode}"))]);
        let mut browser = Browser::new();
        let page = browser.login_as(&stack, 0);
        assert_eq!(page.status, 502, "{endpoint} {errcode}");
        assert!(
            page.body.contains(&format!("错误码 {errcode}")),
            "{endpoint} {errcode}: {}",
            page.body
        );
        assert!(!browser.jar.contains_key("wxauth_session"));
        assert!(page.body.contains("重新授权"));
    }
}

#[test]
fn an_upstream_slower_than_the_timeout_is_a_504_and_the_loop_goes_on() {
    let stack = start_with(&[("WXAUTH_UPSTREAM_TIMEOUT", "0.5")]);
    let mut logged_in = Browser::new();
    logged_in.login_as(&stack, 0);
    stack.control(&[("fault", "access_token:slow:1500")]);
    let mut browser = Browser::new();
    let page = browser.login_as(&stack, 0);
    assert_eq!(page.status, 504, "{}", page.body);
    assert!(page.body.contains("超时"));
    assert_eq!(
        logged_in.get(&stack.url("/api/me")).status,
        200,
        "existing sessions still work"
    );
    assert_eq!(browser.get(&stack.url("/healthz")).status, 200);
}

#[test]
fn upstream_answers_that_are_not_wechat_json_are_502() {
    const UNREADABLE: &str = "无法连接微信服务器";
    for (fault, shown) in [
        ("access_token:html", UNREADABLE),
        ("access_token:garbage", UNREADABLE),
        ("access_token:truncated", UNREADABLE),
        ("access_token:huge", UNREADABLE),
        ("access_token:status:500", UNREADABLE),
        // Wrong types are read leniently (an openid as a number); the token
        // that comes out is then refused by sns/userinfo: WeChat's errcode page.
        ("access_token:badtypes", "错误码 40014"),
        ("userinfo:html", UNREADABLE),
        ("userinfo:garbage", UNREADABLE),
        ("userinfo:truncated", UNREADABLE),
        ("userinfo:huge", UNREADABLE),
        // A profile for an openid that is not the token's: refused.
        ("userinfo:badtypes", UNREADABLE),
    ] {
        let stack = start();
        stack.control(&[("fault", fault)]);
        let mut browser = Browser::new();
        let page = browser.login_as(&stack, 0);
        assert_eq!(page.status, 502, "{fault}: {}", page.body);
        assert!(page.body.contains(shown), "{fault}: {}", page.body);
        assert!(!browser.jar.contains_key("wxauth_session"), "{fault}");
        assert_eq!(browser.get(&stack.url("/healthz")).status, 200);
    }
}

#[test]
fn an_unreachable_upstream_is_a_502() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let api = format!("http://{closed}");
    let stack = start_real(&[("WXAUTH_API_BASE", &api)]);
    let mut browser = Browser::new();
    let page = browser.login_as(&stack, 0);
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(page.body.contains("无法连接微信服务器"), "{}", page.body);
    assert_eq!(browser.get(&stack.url("/healthz")).status, 200);
}

#[test]
fn real_mode_runs_the_same_flow_against_a_separate_simulator() {
    let stack = start_real(&[]);
    let mut browser = Browser::new();
    let done = browser.login_as(&stack, 0);
    assert_eq!(done.status, 302, "{}", done.body);
    let me = browser.get(&stack.url("/api/me"));
    assert_eq!(me.status, 200);
    assert!(me.body.contains("熊猫🐼小明"));
    let home = browser.get(&stack.url("/"));
    assert!(
        !home.body.contains("演示模式"),
        "no demo badge in real mode"
    );
}
