//! The gateway endpoints nginx's auth_request calls: /auth/check,
//! /auth/start and /auth/denied, with and without an allow-list.

use crate::support::{start, start_with, Browser};

#[test]
fn auth_check_says_who_is_logged_in_and_nothing_otherwise() {
    let stack = start();
    let mut browser = Browser::new();
    assert_eq!(browser.get(&stack.url("/auth/check")).status, 401);
    browser.login_as(&stack, 0);
    let check = browser.get(&stack.url("/auth/check"));
    assert_eq!(check.status, 204);
    assert!(check.body.is_empty());
    assert_eq!(
        check.header("x-wechat-openid"),
        Some("oSim0PandaXiaoMingEmoji00001")
    );
    assert_eq!(
        check.header("x-wechat-unionid"),
        Some("oSimUnion0PandaXiaoMing00001")
    );
    let nickname = check.header("x-wechat-nickname").unwrap();
    assert!(nickname.is_ascii(), "percent-encoded: {nickname}");
    let decoded = wxauth_app::transport::http::parse_query(&format!("n={nickname}"));
    assert_eq!(decoded[0].1, "熊猫🐼小明");
    assert_eq!(check.header("cache-control"), Some("no-store"));
    // A user without a unionid gets no X-WeChat-UnionID header at all.
    let mut other = Browser::new();
    other.login_as(&stack, 3);
    let check = other.get(&stack.url("/auth/check"));
    assert_eq!(check.status, 204);
    assert_eq!(check.header("x-wechat-unionid"), None);
    // After logout: 401 again.
    browser.post(&stack.url("/logout"), &[]);
    assert_eq!(browser.get(&stack.url("/auth/check")).status, 401);
}

#[test]
fn an_html_or_newline_nickname_cannot_break_the_headers() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 1);
    let check = browser.get(&stack.url("/auth/check"));
    assert_eq!(check.status, 204);
    let nickname = check.header("x-wechat-nickname").unwrap();
    assert!(
        !nickname.contains(['<', '>', '"', ' ', '\r', '\n']),
        "{nickname}"
    );
}

#[test]
fn the_allow_list_lets_in_only_those_named() {
    let dir = std::env::temp_dir().join(format!("wxauth-allow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("allow.txt");
    // User 3 by openid; user 0 by unionid; user 1 not at all.
    std::fs::write(
        &file,
        "# admins\noSim3EmptyProfileAfter202104\n\n  oSimUnion0PandaXiaoMing00001  \n",
    )
    .unwrap();
    let stack = start_with(&[("WXAUTH_ALLOW", file.to_str().unwrap())]);
    for (user, status) in [(3, 204), (0, 204), (1, 403)] {
        let mut browser = Browser::new();
        browser.login_as(&stack, user);
        assert_eq!(
            browser.get(&stack.url("/auth/check")).status,
            status,
            "user {user}"
        );
    }
    let mut outsider = Browser::new();
    outsider.login_as(&stack, 1);
    let page = outsider.get(&stack.url("/auth/denied"));
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("无权访问") && page.body.contains("oSim1ScriptNicknameXss000002"),
        "{}",
        page.body
    );
    // The app's own pages still say who you are.
    assert_eq!(outsider.get(&stack.url("/profile")).status, 200);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn auth_start_sends_a_visitor_to_login_and_back_to_the_page_asked_for() {
    let stack = start();
    let mut browser = Browser::new();
    let resp = browser.get_with(
        &stack.url("/auth/start"),
        &[("X-Original-URI", "/app/report?year=2026&q=a b")],
    );
    assert_eq!(resp.status, 302);
    let login = resp.location().to_string();
    assert!(login.starts_with("/login?next="), "{login}");
    let authorize = browser.get(&stack.url(&login)).location().to_string();
    let callback = browser.consent(&authorize, 0, true);
    assert_eq!(
        browser.get(&callback).location(),
        "/app/report?year=2026&q=a%20b"
    );
    for hostile in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
    ] {
        let resp =
            Browser::new().get_with(&stack.url("/auth/start"), &[("X-Original-URI", hostile)]);
        assert_eq!(resp.location(), "/login?next=%2F", "{hostile}");
    }
    assert_eq!(
        Browser::new().get(&stack.url("/auth/start")).location(),
        "/login?next=%2F"
    );
}

/// Routes of wxauth that scripts/nginx-gateway.conf leaves to the protected
/// app, and why: the app's home page is the app's; /healthz is for monitoring
/// wxauth directly; /auth/check is nginx's internal subrequest; the JS-SDK
/// example page and its script exist in demo mode only.
const NOT_ROUTED: &[&str] = &[
    "/",
    "/healthz",
    "/auth/check",
    "/jssdk/example",
    "/static/jssdk-example.js",
];

#[test]
fn the_nginx_gateway_sends_every_route_of_wxauth_to_wxauth() {
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/nginx-gateway.conf"
    ))
    .unwrap();
    let (line, block) = conf
        .split("location ~ ^/(")
        .nth(1)
        .and_then(|rest| rest.split_once(")$ {"))
        .expect("one regex location for wxauth's routes");
    let routed: Vec<String> = line
        .split('|')
        .map(|p| format!("/{}", p.replace("\\.", ".")))
        .collect();
    let assets = wxauth_app::web::assets::names().map(|name| format!("/static/{name}"));
    let wanted: Vec<String> = wxauth_app::web::routes::ROUTES
        .iter()
        .map(|(_, path, _)| path.to_string())
        .chain(assets)
        .filter(|path| !NOT_ROUTED.contains(&path.as_str()))
        .collect();
    for path in &wanted {
        assert!(
            routed.contains(path),
            "{path} does not reach wxauth through the gateway"
        );
    }
    for path in &routed {
        assert!(
            wanted.contains(path),
            "{path} is routed to wxauth but wxauth has no such route"
        );
    }
    // Longer than a callback's two WeChat calls at WXAUTH_UPSTREAM_TIMEOUT's 8 s.
    let block = block.split('}').next().unwrap();
    let timeout: u64 = block
        .split("proxy_read_timeout ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .expect("a proxy_read_timeout in seconds");
    assert!(timeout > 2 * 8 + 5, "proxy_read_timeout {timeout}s");
    // The protected app gets the Cookie header without wxauth's cookies (its
    // location is the TLS server's `location /`, the file's last; port 80's
    // sends to https).
    let app = conf.rsplit("location / {").next().unwrap();
    assert!(
        app.contains("proxy_set_header Cookie $app_cookie;"),
        "{app}"
    );
}

#[test]
fn a_saved_identity_a_header_cannot_carry_is_left_behind_at_start() {
    use wxauth_app::store::sessions::{Session, SessionStore, StoredUser, Tokens};
    // Logins refuse such an openid; a session file from before could hold one.
    let dir = std::env::temp_dir().join(format!("wxauth-badid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessions.json");
    let mut sessions = SessionStore::new(3600, 10);
    let user = wxauth_app::wechat::client::WechatUser {
        openid: "oBad\r\nX-Injected: 1".into(),
        ..Default::default()
    };
    let session = Session {
        scope: wxauth_app::config::Scope::Base,
        user: StoredUser::from(user),
        tokens: Tokens::new("A", "R", i64::MAX, i64::MAX),
        expires: 0,
        other_openid: None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sid = sessions.create(session, now);
    let logins = wxauth_app::store::logins::Logins::new(wxauth_app::store::signed::Key::random());
    wxauth_app::store::session_file::save(&file, &sessions, &logins).unwrap();
    let stack = start_with(&[("WXAUTH_SESSION_FILE", file.to_str().unwrap())]);
    let mut browser = Browser::new();
    browser.jar.insert("wxauth_session".into(), sid);
    let check = browser.get(&stack.url("/auth/check"));
    assert_eq!(check.status, 401, "nginx must not let this through");
    // Published after each request: this reading follows the check.
    assert_eq!(
        stack.app.stats().sessions,
        0,
        "the session was not restored"
    );
    assert_eq!(check.header("x-wechat-openid"), None);
    assert_eq!(check.header("x-injected"), None, "{:?}", check.headers);
    std::fs::remove_dir_all(&dir).ok();
}
