//! What each route shows: pages for guests and users, /api/me, /healthz,
//! static assets, 404 and 405, and the repaired and escaped nicknames.

use crate::support::{start, Browser};
use wxauth_app::web::routes::ROUTES;

#[test]
fn a_guest_sees_the_login_link() {
    let stack = start();
    let mut browser = Browser::new();
    let home = browser.get(&stack.url("/"));
    assert_eq!(home.status, 200);
    assert!(home
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // A full-width comma, as Chinese is written.
    assert!(home.body.contains("你好，游客"), "{}", home.body);
    assert!(home.body.contains("href=\"/login\""), "{}", home.body);
    assert!(home.body.contains("<html lang=\"zh-CN\">"));
    assert!(home.body.contains("演示模式"), "demo mode says so");
}

#[test]
fn profile_and_refresh_send_a_guest_to_login() {
    let stack = start();
    let mut browser = Browser::new();
    let profile = browser.get(&stack.url("/profile"));
    assert_eq!(profile.status, 302);
    assert_eq!(profile.location(), "/login?next=%2Fprofile");
    let refresh = browser.post(&stack.url("/profile/refresh"), &[]);
    assert_eq!(refresh.status, 303);
    let me = browser.get(&stack.url("/api/me"));
    assert_eq!(me.status, 401);
    assert_eq!(me.body, r#"{"error":"unauthenticated"}"#);
    assert!(me
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
}

#[test]
fn api_me_returns_wechats_fields_with_an_https_avatar() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    let me = browser.get(&stack.url("/api/me"));
    assert_eq!(me.status, 200);
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["nickname"], "熊猫🐼小明");
    assert_eq!(me["sex"], 1);
    assert!(me["headimgurl"]
        .as_str()
        .unwrap()
        .starts_with("https://thirdwx.qlogo.cn/"));
    assert!(me["openid"].as_str().unwrap().starts_with('o'));
    assert!(me["unionid"].is_string());
    assert!(me["privilege"].is_array());
    for secret in ["access_token", "refresh_token", "secret"] {
        assert!(me.get(secret).is_none(), "{secret} in /api/me");
    }
}

#[test]
fn an_html_nickname_arrives_escaped() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 1);
    for path in ["/", "/profile"] {
        let page = browser.get(&stack.url(path));
        assert_eq!(page.status, 200);
        assert!(
            !page.body.contains("<script>alert"),
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains("&lt;script&gt;alert"), "{path}");
        assert!(!page.body.contains("<b>粗</b>"));
    }
    let profile = browser.get(&stack.url("/profile"));
    assert!(
        profile.body.contains("<dt>性别</dt><dd>女</dd>"),
        "sex sent as the string \"2\""
    );
    let me: serde_json::Value =
        serde_json::from_str(&browser.get(&stack.url("/api/me")).body).unwrap();
    assert_eq!(me["sex"], 2);
    assert!(
        me["nickname"].as_str().unwrap().starts_with("<script>"),
        "JSON keeps the text as sent"
    );
}

#[test]
fn a_nickname_with_raw_control_characters_is_repaired_the_same_everywhere() {
    let stack = start();
    let mut browser = Browser::new();
    let done = browser.login_as(&stack, 2);
    assert_eq!(
        done.status, 302,
        "broken JSON from WeChat still logs in: {}",
        done.body
    );
    let me: serde_json::Value =
        serde_json::from_str(&browser.get(&stack.url("/api/me")).body).unwrap();
    let nickname = me["nickname"].as_str().unwrap().to_string();
    assert!(!nickname.is_empty());
    assert!(!nickname.chars().any(char::is_control), "{nickname:?}");
    let profile = browser.get(&stack.url("/profile"));
    assert!(
        profile.body.contains(&nickname),
        "page and /api/me agree on {nickname:?}"
    );
    // The city came with one cut-off UTF-8 byte; what lossy decoding made of
    // it (U+FFFD) is shown nowhere.
    assert_eq!(me["city"], "杭州", "{me}");
    assert!(!me.to_string().contains('\u{FFFD}'), "{me}");
    assert!(profile.body.contains("<dd>杭州</dd>"), "{}", profile.body);
    assert!(!profile.body.contains('\u{FFFD}'));
}

#[test]
fn inside_wechat_the_home_page_does_not_ask_to_be_opened_in_wechat() {
    let stack = start();
    let mut browser = Browser::new();
    let inside = browser.get(&stack.url("/"));
    assert!(browser.user_agent.contains("MicroMessenger"));
    assert!(
        !inside.body.contains("请在微信中打开本页"),
        "{}",
        inside.body
    );
    assert!(inside.body.contains("登录只读取你的公开资料"));
    browser.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36".into();
    let outside = browser.get(&stack.url("/"));
    assert!(
        outside.body.contains("请在微信中打开本页"),
        "{}",
        outside.body
    );
}

#[test]
fn the_note_on_withheld_sex_and_region_shows_only_when_they_are_missing() {
    let note = "自 2021 年底起";
    let stack = start();
    // 男, 广东, 深圳: nothing withheld, nothing to explain.
    let mut full = Browser::new();
    full.login_as(&stack, 0);
    let page = full.get(&stack.url("/profile")).body;
    assert!(
        page.contains("<dd>深圳</dd>") && !page.contains(note),
        "{page}"
    );
    // Sex 0, no region: the blanks are explained.
    let mut empty = Browser::new();
    empty.login_as(&stack, 3);
    let page = empty.get(&stack.url("/profile")).body;
    assert!(page.contains(note), "{page}");
    // A sex but no province (user 4): explained too.
    let mut partial = Browser::new();
    partial.login_as(&stack, 4);
    assert!(partial.get(&stack.url("/profile")).body.contains(note));
}

#[test]
fn error_pages_show_no_status_number() {
    let stack = start();
    let mut browser = Browser::new();
    let authorize = browser.start_login(&stack, None);
    let callback = browser.consent(&authorize, 0, false);
    let declined = browser.get(&callback);
    assert_eq!(declined.status, 403);
    let missing = browser.get(&stack.url("/nope"));
    let bad_state = browser.get(&stack.url("/callback?code=x&state=y"));
    for page in [&declined, &missing, &bad_state] {
        assert!(page.body.contains("class=\"msg-title\""), "{}", page.body);
        for number in ["HTTP 4", "HTTP 5", ">403<", ">404<", ">400<"] {
            assert!(!page.body.contains(number), "{number}: {}", page.body);
        }
    }
}

#[test]
fn a_post_2021_profile_shows_dashes_for_empty_fields() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 3);
    let profile = browser.get(&stack.url("/profile"));
    assert_eq!(profile.status, 200);
    // The sex row itself (the page's footnote mentions 未知 whatever the sex).
    assert!(
        profile.body.contains("<dt>性别</dt><dd>未知</dd>"),
        "sex 0: {}",
        profile.body
    );
    assert!(
        profile.body.matches('—').count() >= 5,
        "province, city, country, privilege, unionid: {}",
        profile.body
    );
    assert!(profile.body.contains("avatar.svg"), "placeholder avatar");
    let me: serde_json::Value =
        serde_json::from_str(&browser.get(&stack.url("/api/me")).body).unwrap();
    assert!(me.get("unionid").is_none());
    assert_eq!(me["sex"], 0);
}

#[test]
fn healthz_answers_json() {
    let stack = start();
    let resp = Browser::new().get(&stack.url("/healthz"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, r#"{"status":"ok"}"#);
}

#[test]
fn static_assets_have_their_content_types_and_nothing_else_is_served() {
    let stack = start();
    let mut browser = Browser::new();
    for (path, content_type) in [
        ("/static/style.css", "text/css"),
        ("/static/avatar.svg", "image/svg+xml"),
        ("/static/favicon.svg", "image/svg+xml"),
        ("/static/scan.js", "text/javascript"),
    ] {
        let resp = browser.get(&stack.url(path));
        assert_eq!(resp.status, 200, "{path}");
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        assert!(!resp.body.is_empty());
    }
    for path in [
        "/static/",
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/style.css/",
        "/static//etc/passwd",
        "/Cargo.toml",
        "/templates/base.html",
    ] {
        assert_eq!(browser.get(&stack.url(path)).status, 404, "{path}");
    }
}

#[test]
fn unknown_paths_are_a_404_page_and_wrong_methods_a_405_with_allow() {
    let stack = start();
    let mut browser = Browser::new();
    let missing = browser.get(&stack.url("/nope"));
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("页面不存在"));
    let get_logout = browser.get(&stack.url("/logout"));
    assert_eq!(get_logout.status, 405);
    assert_eq!(get_logout.header("allow"), Some("POST"));
    for (method, path, _) in ROUTES {
        if ROUTES.iter().filter(|(_, p, _)| p == path).count() > 1 {
            continue; // /wechat takes both GET and POST
        }
        // Every route refuses the other method with an Allow naming its own.
        let resp = match method {
            wxauth_app::transport::http::Method::Get => browser.post(&stack.url(path), &[]),
            _ => browser.get(&stack.url(path)),
        };
        assert_eq!(resp.status, 405, "{path}");
        assert!(
            resp.header("allow").unwrap().contains(method.as_str()),
            "{path}"
        );
    }
}

#[test]
fn every_reply_carries_the_security_headers() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    for path in [
        "/",
        "/profile",
        "/api/me",
        "/healthz",
        "/nope",
        "/login",
        "/static/style.css",
    ] {
        let resp = browser.get(&stack.url(path));
        let csp = resp.header("content-security-policy").unwrap();
        for directive in [
            "default-src 'none'",
            "img-src 'self' https://*.qlogo.cn",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("http://"),
            "{path}: {csp}"
        );
        assert_eq!(
            resp.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        // Not no-referrer: under it browsers send `Origin: null` on our own
        // form posts. same-origin still sends no Referer to anyone else.
        assert_eq!(
            resp.header("referrer-policy"),
            Some("same-origin"),
            "{path}"
        );
        assert_eq!(resp.header("x-frame-options"), Some("DENY"), "{path}");
        let cache = resp.header("cache-control").unwrap();
        if path.starts_with("/static/") {
            assert!(cache.starts_with("public"), "{path}: {cache}");
        } else {
            assert_eq!(cache, "no-store", "{path}");
        }
    }
}

#[test]
fn a_template_directory_overrides_only_the_files_it_has() {
    let dir = std::env::temp_dir().join(format!("wxauth-override-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("home.html"),
        "{% extends \"base.html\" %}{% block title %}首页{% endblock %}{% block content %}自定义首页 {{ user.nickname if user else \"游客\" }}{% endblock %}",
    )
    .unwrap();
    let stack = crate::support::start_with(&[("WXAUTH_TEMPLATES", dir.to_str().unwrap())]);
    let mut browser = Browser::new();
    assert!(browser
        .get(&stack.url("/"))
        .body
        .contains("自定义首页 游客"));
    assert!(
        browser.get(&stack.url("/nope")).body.contains("页面不存在"),
        "embedded error.html still used"
    );
    std::fs::remove_dir_all(&dir).ok();
}
