//! A site under a path prefix (WXAUTH_PUBLIC_URL `http://127.0.0.1:PORT/wx`):
//! every route is served under /wx, and nothing the app sends a browser
//! (links, assets, forms, redirects, `next`, the QR code and its poll, the
//! gateway's redirects, error pages' buttons) leaves it. Outside it only
//! /healthz answers. scripts/test-prefix.sh runs the same behind nginx.

use crate::support::{attribute, qr_holds, start_real, Browser, Resp, Stack};

fn stack() -> Stack {
    start_real(&[("WXAUTH_PUBLIC_URL", "{app}/wx")])
}

/// Every `href`, `src` and `action` in a page.
fn links(body: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in [
        "href=\"",
        "src=\"",
        "action=\"",
        "data-poll=\"",
        "data-next=\"",
    ] {
        for part in body.split(attr).skip(1) {
            found.push(part.split('"').next().unwrap_or("").to_string());
        }
    }
    found
}

/// Asserts every link of a page stays under /wx (or is the site's own
/// absolute URL under it, or an avatar on WeChat's host).
fn all_under_prefix(stack: &Stack, page: &Resp) {
    let site = stack.url("/wx/");
    let found = links(&page.body);
    assert!(!found.is_empty(), "no links in {}", page.body);
    for link in found {
        let ok = link.starts_with("/wx/")
            || link.starts_with(&site)
            || link.starts_with("https://thirdwx.qlogo.cn/");
        assert!(ok, "{link:?} leaves the prefix: {}", page.body);
    }
}

/// The simulator's consent, then the callback: returns the callback's answer.
fn consent_and_callback(
    stack: &Stack,
    browser: &mut Browser,
    authorize: &str,
    user: usize,
) -> Resp {
    assert!(
        authorize.contains("&redirect_uri=http%3A%2F%2F127.0.0.1%3A")
            && authorize.contains("%2Fwx%2Fcallback&"),
        "{authorize}"
    );
    let callback = browser.consent(authorize, user, true);
    assert!(
        callback.starts_with(&stack.url("/wx/callback?")),
        "{callback}"
    );
    browser.get(&callback)
}

#[test]
fn a_whole_login_under_a_prefix_stays_under_it() {
    let stack = stack();
    let mut browser = Browser::new();
    let home = browser.get(&stack.url("/wx/"));
    assert_eq!(home.status, 200, "{}", home.body);
    all_under_prefix(&stack, &home);
    let css = browser.get(&stack.url("/wx/static/style.css"));
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(css.header("cache-control"), Some("public, max-age=3600"));
    // The stylesheet's own image is relative: under /wx/static/ too.
    assert!(
        !css.body.contains("url(\"/"),
        "an absolute url() in the CSS"
    );

    let login = browser.get(&stack.url("/wx/login"));
    assert_eq!(login.status, 302);
    let cookie = login.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with("wxauth_login=") && cookie.contains("; Path=/wx;"),
        "{cookie}"
    );
    let done = consent_and_callback(&stack, &mut browser, login.location(), 0);
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), "/wx/profile");
    // The session is the host's: the gateway asks /wx/auth/check from the
    // protected app's pages, outside the prefix.
    let session = done.header("set-cookie").unwrap();
    assert!(
        session.starts_with("wxauth_session=") && session.contains("; Path=/;"),
        "{session}"
    );

    let profile = browser.get(&stack.url("/wx/profile"));
    assert_eq!(profile.status, 200);
    assert!(profile.body.contains("熊猫🐼小明"));
    all_under_prefix(&stack, &profile);
    let home = browser.get(&stack.url("/wx/"));
    all_under_prefix(&stack, &home);
    let origin = crate::support::origin_of(&stack.app_url);
    let refreshed = browser.post_with(
        &stack.url("/wx/profile/refresh"),
        &[],
        &[("Origin", &origin)],
    );
    assert_eq!(
        (refreshed.status, refreshed.location()),
        (303, "/wx/profile")
    );
    assert_eq!(browser.get(&stack.url("/wx/api/me")).status, 200);
    let out = browser.post_with(&stack.url("/wx/logout"), &[], &[("Origin", &origin)]);
    assert_eq!((out.status, out.location()), (303, "/wx/"));
    assert_eq!(browser.get(&stack.url("/wx/api/me")).status, 401);
}

#[test]
fn outside_the_prefix_only_healthz_answers() {
    let stack = stack();
    let mut browser = Browser::new();
    for path in [
        "/",
        "/login",
        "/profile",
        "/callback",
        "/static/style.css",
        "/wxyz",
        "/wx.css",
    ] {
        let resp = browser.get(&stack.url(path));
        assert_eq!(resp.status, 404, "{path}");
        all_under_prefix(&stack, &resp);
    }
    assert_eq!(browser.get(&stack.url("/healthz")).status, 200);
    assert_eq!(browser.get(&stack.url("/wx/healthz")).status, 200);
    let bare = browser.get(&stack.url("/wx"));
    assert_eq!((bare.status, bare.location()), (302, "/wx/"));
}

#[test]
fn a_guest_under_a_prefix_is_sent_to_the_prefixed_login() {
    let stack = stack();
    let mut browser = Browser::new();
    let profile = browser.get(&stack.url("/wx/profile"));
    assert_eq!(profile.location(), "/wx/login?next=%2Fwx%2Fprofile");
    let me = browser.get(&stack.url("/wx/api/me"));
    assert_eq!(me.status, 401);
    assert_eq!(
        me.body, r#"{"error":"unauthenticated"}"#,
        "JSON under /wx/api/ too"
    );
    let missing = browser.get(&stack.url("/wx/nope"));
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("href=\"/wx/\""), "{}", missing.body);
}

#[test]
fn next_under_a_prefix_lands_where_it_says_and_only_on_this_host() {
    let stack = stack();
    for (next, lands) in [
        ("/wx/profile?tab=1", "/wx/profile?tab=1"),
        ("//evil.example/wx/", "/wx/profile"),
        ("https://evil.example/", "/wx/profile"),
    ] {
        let mut browser = Browser::new();
        let path = format!(
            "/wx/login?next={}",
            wxauth_app::transport::http::encode_component(next)
        );
        let login = browser.get(&stack.url(&path));
        let done = consent_and_callback(&stack, &mut browser, login.location(), 0);
        assert_eq!(done.location(), lands, "next={next}");
    }
}

#[test]
fn error_pages_under_a_prefix_link_back_under_it() {
    let stack = stack();
    let mut browser = Browser::new();
    let login = browser.get(&stack.url("/wx/login"));
    let declined_at = browser.consent(login.location(), 0, false);
    let declined = browser.get(&declined_at);
    assert_eq!(declined.status, 403);
    assert!(
        declined
            .body
            .contains("href=\"/wx/login?next=%2Fwx%2Fprofile\""),
        "{}",
        declined.body
    );
    all_under_prefix(&stack, &declined);
    let bad = browser.get(&stack.url("/wx/callback?code=x&state=y"));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("href=\"/wx/login\""), "{}", bad.body);
    all_under_prefix(&stack, &bad);
}

#[test]
fn scan_to_log_in_under_a_prefix() {
    let stack = stack();
    let mut desktop = Browser::new();
    desktop.user_agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0".into();
    let page = desktop.get(&stack.url("/wx/login?next=%2Fwx%2Fprofile"));
    assert_eq!(page.status, 200);
    all_under_prefix(&stack, &page);
    assert!(
        page.body.contains("data-poll=\"/wx/login/ticket\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("src=\"/wx/static/scan.js\""));
    let ticket = attribute(&page.body, "data-ticket");
    let scan_url = stack.url(&format!("/wx/login/scan?t={ticket}"));
    assert!(
        qr_holds(&page.body, &scan_url),
        "the QR code holds {scan_url}"
    );
    let unprefixed = stack.url(&format!("/login/scan?t={ticket}"));
    assert!(!qr_holds(&page.body, &unprefixed));
    let poll = stack.url(&format!("/wx/login/ticket?t={ticket}"));
    assert_eq!(desktop.get(&poll).body, r#"{"status":"pending"}"#);

    let mut phone = Browser::new();
    let scan = phone.get(&stack.url(&format!("/wx/login/scan?t={ticket}")));
    let back = consent_and_callback(&stack, &mut phone, scan.location(), 0);
    let confirm_at = back.location().to_string();
    assert!(
        confirm_at.starts_with("/wx/login/scan/confirm?t="),
        "{confirm_at}"
    );
    let confirm = phone.get(&stack.url(&confirm_at));
    assert!(
        confirm.body.contains("确认在电脑上登录"),
        "{}",
        confirm.body
    );
    all_under_prefix(&stack, &confirm);
    assert!(confirm.body.contains("action=\"/wx/login/scan/confirm\""));
    let token = confirm
        .body
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let decided = phone.post(
        &stack.url("/wx/login/scan/confirm"),
        &[("t", &ticket), ("token", token)],
    );
    assert_eq!(decided.status, 303, "{}", decided.body);
    assert!(decided.location().starts_with("/wx/login/scan/confirm?t="));
    let done = desktop.get(&poll);
    assert_eq!(done.body, r#"{"next":"/wx/profile","status":"done"}"#);
    assert_eq!(desktop.get(&stack.url("/wx/api/me")).status, 200);
}

#[test]
fn the_gateway_under_a_prefix_sends_people_through_the_prefixed_login() {
    let stack = stack();
    let mut browser = Browser::new();
    // The protected app's page is outside the prefix, and that is where
    // the login returns.
    let start = browser.get_with(
        &stack.url("/wx/auth/start"),
        &[("X-Original-URI", "/reports?year=2026")],
    );
    assert_eq!(start.location(), "/wx/login?next=%2Freports%3Fyear%3D2026");
    assert_eq!(browser.get(&stack.url("/wx/auth/check")).status, 401);
    let denied = browser.get(&stack.url("/wx/auth/denied"));
    assert_eq!(denied.location(), "/wx/login");
    let login = browser.get(&stack.url(start.location()));
    let done = consent_and_callback(&stack, &mut browser, login.location(), 0);
    assert_eq!(done.location(), "/reports?year=2026");
    let check = browser.get(&stack.url("/wx/auth/check"));
    assert_eq!(check.status, 204);
    assert_eq!(
        check.header("x-wechat-openid"),
        Some("oSim0PandaXiaoMingEmoji00001")
    );
}
