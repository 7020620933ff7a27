//! The website app's QR login (开放平台 网站应用, qrconnect, snsapi_login)
//! over HTTP against the simulator: a desktop goes to WeChat's QR page, the
//! code is exchanged with the website app's own appid and secret, and one
//! person is one user across both apps by unionid.

use crate::support::{start_real, start_real_with, url_param, Browser, Resp, Stack};

const DESKTOP_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36";
const WEB_APPID: &str = "wx00000000000web1";
const WEB_SECRET: &str = "web-secret-1a2b3c4d5e6f";

fn website_stack() -> Stack {
    start_real(&[
        ("WXAUTH_WEB_APPID", WEB_APPID),
        ("WXAUTH_WEB_SECRET", WEB_SECRET),
    ])
}

fn desktop() -> Browser {
    let mut browser = Browser::new();
    browser.user_agent = DESKTOP_UA.into();
    browser
}

/// The simulator's qrconnect page, then its demo button: `user` scans and
/// confirms on the phone (or declines). Returns the callback URL.
fn scan_and_confirm(browser: &mut Browser, qrconnect: &str, user: usize, allow: bool) -> String {
    let page = browser.get(qrconnect);
    assert_eq!(page.status, 200, "qrconnect page: {}", page.body);
    assert!(page.body.contains("<svg"), "a QR code on WeChat's page");
    let base = qrconnect.split("/connect/").next().unwrap();
    let fields = ["appid", "redirect_uri", "scope", "state"].map(|k| url_param(qrconnect, k));
    let user = user.to_string();
    let form = [
        ("appid", fields[0].as_str()),
        ("redirect_uri", fields[1].as_str()),
        ("response_type", "code"),
        ("scope", fields[2].as_str()),
        ("state", fields[3].as_str()),
        ("user", user.as_str()),
        ("action", if allow { "allow" } else { "deny" }),
    ];
    let resp = browser.post(&format!("{base}/connect/qrconnect/confirm"), &form);
    assert_eq!(resp.status, 302, "confirm: {}", resp.body);
    resp.location().to_string()
}

/// A desktop's whole website login as test user `user`: the callback's answer.
fn website_login(stack: &Stack, browser: &mut Browser, user: usize) -> Resp {
    let login = browser.get(&stack.url("/login"));
    assert_eq!(login.status, 302, "{}", login.body);
    let callback = scan_and_confirm(browser, login.location(), user, true);
    browser.get(&callback)
}

fn me(stack: &Stack, browser: &mut Browser) -> serde_json::Value {
    let resp = browser.get(&stack.url("/api/me"));
    assert_eq!(resp.status, 200, "{}", resp.body);
    serde_json::from_str(&resp.body).unwrap()
}

#[test]
fn a_desktop_goes_to_wechats_qr_login_with_the_exact_link() {
    let stack = website_stack();
    let mut browser = desktop();
    let resp = browser.get(&stack.url("/login?next=%2Fapi%2Fme"));
    assert_eq!(resp.status, 302, "{}", resp.body);
    let location = resp.location();
    let state = url_param(location, "state");
    assert_eq!(state.len(), 50);
    let redirect_uri = wxauth_app::transport::http::encode_component(&stack.url("/callback"));
    assert_eq!(
        location,
        format!(
            "{}/connect/qrconnect?appid={WEB_APPID}&redirect_uri={redirect_uri}&response_type=code&scope=snsapi_login&state={state}#wechat_redirect",
            stack.sim_url
        )
    );
    // Bound to this browser, like every state.
    assert!(resp.header("set-cookie").unwrap().contains("wxauth_login="));
    // Inside WeChat: the Official Account's web authorization, as before.
    let inside = Browser::new().get(&stack.url("/login"));
    assert!(
        inside
            .location()
            .contains("/connect/oauth2/authorize?appid=wx000000000000test&"),
        "{}",
        inside.location()
    );
    // wxauth's own scan page stays a choice.
    let own = browser.get(&stack.url("/login?via=scan"));
    assert_eq!(own.status, 200);
    assert!(own.body.contains("data-ticket"), "{}", own.body);
    // Without a website app, a desktop gets the own scan page.
    let plain = start_real(&[]);
    let page = desktop().get(&plain.url("/login"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-ticket"));
}

#[test]
fn a_website_login_is_exchanged_with_the_website_apps_credentials() {
    let stack = website_stack();
    let mut browser = desktop();
    let landed = website_login(&stack, &mut browser, 0);
    assert_eq!(landed.status, 302, "{}", landed.body);
    assert_eq!(landed.location(), "/profile");
    let user = me(&stack, &mut browser);
    let openid = user["openid"].as_str().unwrap();
    assert!(
        openid.starts_with("oWeb"),
        "the website app's own openid: {user}"
    );
    assert!(
        user["unionid"].as_str().is_some_and(|u| !u.is_empty()),
        "{user}"
    );
    let profile = browser.get(&stack.url("/profile"));
    assert!(
        profile.body.contains("OpenID（网站应用）"),
        "{}",
        profile.body
    );
    assert!(profile.body.contains("snsapi_login"));
    // The gateway carries who it is.
    let check = browser.get(&stack.url("/auth/check"));
    assert_eq!(check.status, 204);
    assert_eq!(check.header("x-wechat-openid"), Some(openid));
    assert_eq!(check.header("x-wechat-unionid"), user["unionid"].as_str());
    // A refresh uses the website app too.
    let origin = crate::support::origin_of(&stack.app_url);
    let refreshed = browser.post_with(&stack.url("/profile/refresh"), &[], &[("Origin", &origin)]);
    assert_eq!(refreshed.status, 303, "{}", refreshed.body);
    assert_eq!(me(&stack, &mut browser)["openid"], openid);
}

#[test]
fn one_person_through_both_apps_is_one_user() {
    let stack = website_stack();
    // On the phone, through the Official Account.
    let mut phone = Browser::new();
    assert_eq!(phone.login_as(&stack, 0).status, 302);
    let on_phone = me(&stack, &mut phone);
    // On the desktop, through the website app.
    let mut browser = desktop();
    assert_eq!(website_login(&stack, &mut browser, 0).status, 302);
    let on_desktop = me(&stack, &mut browser);
    assert_ne!(
        on_phone["openid"], on_desktop["openid"],
        "openids are per app"
    );
    assert_eq!(on_phone["unionid"], on_desktop["unionid"], "one unionid");
    // The desktop's profile shows both openids.
    let profile = browser.get(&stack.url("/profile")).body;
    assert!(
        profile.contains(on_phone["openid"].as_str().unwrap()),
        "{profile}"
    );
    assert!(profile.contains(on_desktop["openid"].as_str().unwrap()));
    // A user without a unionid stands alone.
    let mut lone = desktop();
    assert_eq!(website_login(&stack, &mut lone, 3).status, 302);
    let alone = me(&stack, &mut lone);
    assert!(alone.get("unionid").is_none(), "{alone}");
    assert!(!browser.get(&stack.url("/profile")).body.contains("oSim3"));
}

#[test]
fn a_state_carried_to_another_browser_is_refused_before_any_call() {
    let stack = website_stack();
    let mut browser = desktop();
    let login = browser.get(&stack.url("/login"));
    let callback = scan_and_confirm(&mut browser, login.location(), 0, true);
    let before = stack.calls("access_token");
    let stranger = desktop().get(&callback);
    assert_eq!(stranger.status, 400, "{}", stranger.body);
    assert_eq!(stack.calls("access_token"), before, "no upstream call");
    // Declined on the phone: the cancelled page, no call.
    let mut other = desktop();
    let login = other.get(&stack.url("/login"));
    let declined = scan_and_confirm(&mut other, login.location(), 0, false);
    let page = other.get(&declined);
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(stack.calls("access_token"), before);
}

#[test]
fn the_official_accounts_secret_on_a_website_code_is_wechats_error() {
    // A website app configured with the Official Account's secret (a
    // copy-paste mistake): WeChat, which knows the website's own, refuses
    // the exchange; the page says so.
    let stack = start_real_with(
        &[
            ("WXAUTH_WEB_APPID", WEB_APPID),
            ("WXAUTH_WEB_SECRET", "test-secret-9f8e7d6c5b4a"),
        ],
        |sim| sim.web_app.as_mut().unwrap().secret = WEB_SECRET.into(),
    );
    let mut browser = desktop();
    let resp = website_login(&stack, &mut browser, 0);
    assert_eq!(resp.status, 502, "{}", resp.body);
    assert!(resp.body.contains("40125"), "{}", resp.body);
}

#[test]
fn half_a_website_app_is_a_configuration_error() {
    for env in [
        [("WXAUTH_WEB_APPID", WEB_APPID), ("WXAUTH_LOG", "info")],
        [("WXAUTH_WEB_SECRET", WEB_SECRET), ("WXAUTH_LOG", "info")],
    ] {
        let out = crate::cli::wxauth_command()
            .arg("check-config")
            .env("WXAUTH_APPID", "wx1234567890abcdef")
            .env("WXAUTH_SECRET", "s3cret")
            .env("WXAUTH_PUBLIC_URL", "https://wx.example.com")
            .envs(env)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("WXAUTH_WEB_APPID and WXAUTH_WEB_SECRET"),
            "{err}"
        );
        assert!(!err.contains(WEB_SECRET));
    }
    let out = crate::cli::wxauth_command()
        .arg("check-config")
        .env("WXAUTH_APPID", "wx1234567890abcdef")
        .env("WXAUTH_SECRET", "s3cret")
        .env("WXAUTH_PUBLIC_URL", "https://wx.example.com")
        .env("WXAUTH_WEB_APPID", "wx1234567890abcdef")
        .env("WXAUTH_WEB_SECRET", WEB_SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the Official Account's appid"));
}
