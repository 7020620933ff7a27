//! Two instances sharing one Redis (WXAUTH_REDIS_URL), as behind nginx with
//! no sticky sessions: whatever one instance does, the other sees; Redis
//! going away is a 503 within a second, never a logout, and its return is
//! noticed by itself. Real redis-server, started by the test.

use crate::mp::{signed_query, text, TOKEN};
use crate::redis_server::{durable_redis_server, redis_server, RedisServer};
use crate::support::{settings_with, start_real, Browser, Stack};
use std::time::{Duration, Instant};
use wxauth_app::config::{Config, RawConfig};
use wxauth_app::transport::listener::Listener;
use wxauth_app::web::service::{self as app, AppHandle};

/// Instance A (with the simulator, as `Stack`) and instance B, same
/// configuration, same Redis. B's PUBLIC_URL is A's: one site.
struct Pair {
    a: Stack,
    b: AppHandle,
}

impl Pair {
    fn b_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.b.addr)
    }
}

fn pair(redis: &RedisServer) -> Pair {
    pair_with(redis, &[])
}

/// `pair`, both instances with `extra` settings too.
fn pair_with(redis: &RedisServer, extra: &[(&str, &str)]) -> Pair {
    let url = redis.url();
    let mut settings = vec![("WXAUTH_REDIS_URL", url.as_str()), ("WXAUTH_TOKEN", TOKEN)];
    settings.extend_from_slice(extra);
    let a = start_real(&settings);
    let mut env = settings_with(&[
        ("WXAUTH_DEMO", "0"),
        ("WXAUTH_APPID", "wx000000000000test"),
        ("WXAUTH_SECRET", a.secret.as_str()),
        ("WXAUTH_PUBLIC_URL", a.app_url.as_str()),
        ("WXAUTH_OPEN_BASE", a.sim_url.as_str()),
        ("WXAUTH_API_BASE", a.sim_url.as_str()),
    ]);
    for (k, v) in &settings {
        env.insert(k.to_string(), v.to_string());
    }
    let raw = RawConfig::from_env_and_args(env, &[]).expect("settings parse");
    let config = Config::from_raw(&raw).expect("settings are valid");
    let listener = Listener::bind("127.0.0.1:0").expect("bind B");
    let b = app::start(listener, config).expect("start B");
    Pair { a, b }
}

#[test]
fn a_login_on_one_instance_is_served_by_the_other_and_a_logout_on_either_ends_it() {
    let Some(redis) = redis_server() else { return };
    let pair = pair(&redis);
    let mut browser = Browser::new();
    assert_eq!(browser.login_as(&pair.a, 0).status, 302);
    for url in [pair.a.url("/api/me"), pair.b_url("/api/me")] {
        let me = browser.get(&url);
        assert_eq!(me.status, 200, "{url}: {}", me.body);
        assert!(me.body.contains("oSim0"), "{}", me.body);
    }
    let check = browser.get(&pair.b_url("/auth/check"));
    assert_eq!(check.status, 204);
    assert!(check.header("x-wechat-openid").is_some());
    // A copy of the cookie, as a second tab or a stolen one would hold it.
    let mut copy = Browser::new();
    copy.jar = browser.jar.clone();
    // B serves the same site as A (behind nginx both are its origin).
    let origin = crate::support::origin_of(&pair.a.app_url);
    let out = browser.post_with(&pair.b_url("/logout"), &[], &[("Origin", &origin)]);
    assert_eq!(out.status, 303);
    for url in [pair.a.url("/api/me"), pair.b_url("/api/me")] {
        assert_eq!(copy.get(&url).status, 401, "{url}: logged out everywhere");
    }
}

#[test]
fn a_callback_reloaded_on_the_other_instance_lands_on_the_same_session() {
    let Some(redis) = redis_server() else { return };
    let pair = pair(&redis);
    let mut browser = Browser::new();
    let authorize = browser.start_login(&pair.a, None);
    let callback = browser.consent(&authorize, 0, true);
    let first = browser.get(&callback);
    assert_eq!(first.status, 302, "{}", first.body);
    let path_and_query = callback.splitn(4, '/').nth(3).expect("a path");
    let again = browser.get(&pair.b_url(&format!("/{path_and_query}")));
    assert_eq!(again.status, 302, "{}", again.body);
    assert_eq!(again.location(), first.location());
    let cookie = |r: &crate::support::Resp| {
        r.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
    };
    assert!(cookie(&first).is_some());
    assert_eq!(cookie(&first), cookie(&again), "the same session on both");
    assert_eq!(pair.a.calls("access_token"), 1, "one code exchanged");
}

#[test]
fn a_push_retried_on_the_other_instance_gets_the_same_reply_and_is_acted_on_once() {
    let Some(redis) = redis_server() else { return };
    let pair = pair(&redis);
    let body = text("登录", 7_700_000_001);
    let query = signed_query(TOKEN, crate::mp::now());
    let first = Browser::new().post_raw(
        &pair.a.url(&format!("/wechat?{query}")),
        "text/xml",
        body.as_bytes(),
    );
    let retry = Browser::new().post_raw(
        &pair.b_url(&format!("/wechat?{query}")),
        "text/xml",
        body.as_bytes(),
    );
    assert_eq!(first.status, 200);
    assert!(first.body.contains("/login"), "{}", first.body);
    assert_eq!(retry.status, 200);
    assert_eq!(
        retry.body, first.body,
        "the first delivery's reply, byte for byte"
    );
}

#[test]
fn no_token_or_session_key_is_stored_in_redis_in_the_clear() {
    let Some(redis) = redis_server() else { return };
    let pair = pair(&redis);
    let mut browser = Browser::new();
    assert_eq!(browser.login_as(&pair.a, 0).status, 302);
    let cookie = browser.jar.values().cloned().collect::<Vec<_>>().join(" ");
    let dump = redis.dump();
    assert!(dump.contains("wxauth:"), "keys are namespaced: {dump}");
    for secret in ["simAT_", "simRT_", pair.a.secret.as_str()] {
        assert!(!dump.contains(secret), "{secret} in Redis: {dump}");
    }
    for part in cookie.split(['.', ' ', '!', ':']).filter(|p| p.len() >= 20) {
        // The session id is a key's name; the session's own key never is.
        if !redis.keys().iter().any(|k| k.ends_with(part)) {
            assert!(!dump.contains(part), "a cookie secret in Redis: {part}");
        }
    }
}

#[test]
fn redis_down_is_a_503_within_a_second_and_no_logout_and_service_returns_with_it() {
    let Some(mut redis) = durable_redis_server() else {
        return;
    };
    let pair = pair(&redis);
    let mut browser = Browser::new();
    assert_eq!(browser.login_as(&pair.a, 0).status, 302);
    assert_eq!(browser.get(&pair.a.url("/healthz")).status, 200);
    redis.stop();
    for url in [pair.a.url("/healthz"), pair.b_url("/healthz")] {
        let started = Instant::now();
        let health = browser.get(&url);
        // Generous: the store gives up within about a second.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{url} took {:?}",
            started.elapsed()
        );
        assert_eq!(health.status, 503, "{}", health.body);
        assert!(
            health.body.contains("\"status\":\"unavailable\""),
            "{}",
            health.body
        );
        assert!(health.body.contains("\"redis\""), "{}", health.body);
    }
    let page = browser.get(&pair.a.url("/profile"));
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("服务暂时不可用"), "{}", page.body);
    let api = browser.get(&pair.b_url("/api/me"));
    assert_eq!(api.status, 503, "{}", api.body);
    assert!(api.body.contains("unavailable"), "{}", api.body);
    // The cookie was not cleared by the failure.
    assert!(page.header("set-cookie").is_none());
    redis.start();
    // The service answers again by itself, within its backoff, and the
    // session is there: Redis kept it on disk, and wxauth never dropped it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if browser.get(&pair.b_url("/healthz")).status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not return with Redis"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(browser.get(&pair.a.url("/api/me")).status, 200);
    assert_eq!(browser.get(&pair.b_url("/auth/check")).status, 204);
}

#[test]
fn instances_share_one_base_token_fetched_once_and_kept_sealed() {
    use wxauth_app::store::redis::{RedisStore, TokenShelf};
    use wxauth_app::wechat::account::{menu_show, BaseToken};
    let Some(redis) = redis_server() else { return };
    let stack = start_real(&[]);
    let env = [
        ("WXAUTH_APPID", "wx000000000000test"),
        ("WXAUTH_SECRET", stack.secret.as_str()),
        ("WXAUTH_PUBLIC_URL", "https://wx.example.com"),
        ("WXAUTH_API_BASE", stack.sim_url.as_str()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = Config::from_raw(&RawConfig::from_env_and_args(env, &[]).unwrap()).unwrap();
    let client = wxauth_app::wechat::client::WechatClient::new(&config);
    let clock = wxauth_app::clock::Clock::new();
    let shelf = || {
        let store = RedisStore::open(&redis.url(), "wxauth", 3600).expect("a Redis URL");
        Box::new(TokenShelf::new(
            store,
            &config.appid,
            config.secret.expose(),
        ))
    };
    // Two instances, each with its own cache.
    let (mut one, mut two) = (BaseToken::shared(shelf()), BaseToken::shared(shelf()));
    for _ in 0..5 {
        let _ = menu_show(&client, &mut one, &clock);
        let _ = menu_show(&client, &mut two, &clock);
    }
    assert_eq!(stack.calls("stable_token"), 1, "one fetch for both");
    assert_eq!((one.fetches, two.fetches), (1, 0));
    assert_eq!(stack.calls("menu_get"), 10);
    let dump = redis.dump();
    assert!(dump.contains("wxauth:token:wx000000000000test"), "{dump}");
    assert!(
        !dump.contains("simBT_") && !dump.contains("access_token"),
        "{dump}"
    );
    // WeChat calls the token stale (40001) on one instance: it is dropped
    // from the shelf, fetched once more (never forced), and the other
    // instance takes the new one from the shelf.
    stack.control(&[("fault", "menu_get:errcode:40001")]);
    let _ = menu_show(&client, &mut one, &clock);
    assert_eq!(stack.calls("stable_token"), 2);
    clock.advance(7200);
    stack.control(&[("advance", "7200")]);
    let _ = menu_show(&client, &mut two, &clock);
    let _ = menu_show(&client, &mut one, &clock);
    assert_eq!(
        stack.calls("stable_token"),
        3,
        "after expiry, one fetch again for both"
    );
}

#[test]
fn scan_to_log_in_works_with_the_desktop_on_one_instance_and_the_phone_on_the_other() {
    let Some(redis) = redis_server() else { return };
    let pair = pair(&redis);
    let origin = crate::support::origin_of(&pair.a.app_url);
    let mut desktop = Browser::new();
    desktop.user_agent =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36".into();
    let page = desktop.get(&pair.a.url("/login?next=%2Fapi%2Fme"));
    assert_eq!(page.status, 200);
    let ticket = crate::support::attribute(&page.body, "data-ticket");
    let poll = |desktop: &mut Browser, url: String| {
        let resp = desktop.get(&url);
        let json: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
        (
            resp.status,
            json["status"].as_str().unwrap_or("").to_string(),
        )
    };
    let on_b = format!("/login/ticket?t={ticket}");
    assert_eq!(
        poll(&mut desktop, pair.b_url(&on_b)),
        (200, "pending".into())
    );

    // The phone scans through B; WeChat sends it back to the site (A).
    let mut phone = Browser::new();
    let authorize = phone.get(&pair.b_url(&format!("/login/scan?t={ticket}")));
    assert_eq!(authorize.status, 302, "{}", authorize.body);
    let callback = phone.consent(authorize.location(), 0, true);
    let back = phone.get(&callback);
    assert_eq!(back.status, 302, "{}", back.body);
    assert!(back.location().starts_with("/login/scan/confirm?t="));
    let confirm = phone.get(&pair.b_url(back.location()));
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert_eq!(
        poll(&mut desktop, pair.a.url(&on_b)),
        (200, "scanned".into())
    );
    let token = crate::support::attribute(&confirm.body, "name=\"token\" value");
    let decided = phone.post_with(
        &pair.a.url("/login/scan/confirm"),
        &[("t", ticket.as_str()), ("token", token.as_str())],
        &[("Origin", &origin)],
    );
    assert_eq!(decided.status, 303, "{}", decided.body);

    // The desktop's poll on B takes the session, once; it works on A.
    assert_eq!(poll(&mut desktop, pair.b_url(&on_b)), (200, "done".into()));
    assert_eq!(poll(&mut desktop, pair.a.url(&on_b)).0, 410, "claimed once");
    let me = desktop.get(&pair.a.url("/api/me"));
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(me.body.contains("oSim0"), "{}", me.body);
}

#[test]
fn an_anonymous_visitor_costs_redis_nothing_and_is_served_while_it_is_down() {
    let Some(mut redis) = redis_server() else {
        return;
    };
    let pair = pair(&redis);
    redis.stop();
    // No session cookie: nothing to look up, so no store is asked. nginx's
    // auth_request asks /auth/check for every anonymous visitor.
    let mut stranger = Browser::new();
    assert_eq!(stranger.get(&pair.b_url("/auth/check")).status, 401);
    assert_eq!(stranger.get(&pair.a.url("/")).status, 200);
    assert_eq!(stranger.get(&pair.a.url("/api/me")).status, 401);
    let profile = stranger.get(&pair.b_url("/profile"));
    assert_eq!(profile.status, 302, "{}", profile.body);
}

#[test]
fn instances_share_one_jsapi_ticket_fetched_once_and_kept_sealed() {
    let Some(redis) = redis_server() else { return };
    let pair = pair(&redis);
    let page = wxauth_app::transport::http::encode_component("http://127.0.0.1/a?b=1");
    let path = format!("/jssdk/config?url={page}");
    let mut signatures = Vec::new();
    for url in [
        pair.a.url(&path),
        pair.b_url(&path),
        pair.a.url(&path),
        pair.b_url(&path),
    ] {
        let resp = Browser::new().get(&url);
        assert_eq!(resp.status, 200, "{url}: {}", resp.body);
        let json: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
        signatures.push(json);
    }
    assert_eq!(pair.a.calls("getticket"), 1, "one fetch for both instances");
    assert_eq!(pair.a.calls("stable_token"), 1);
    // Each instance's signature passes WeChat's check.
    for config in &signatures {
        let query = wxauth_app::transport::http::encode_query(&[
            ("appId", config["appId"].as_str().unwrap()),
            ("timestamp", &config["timestamp"].to_string()),
            ("nonceStr", config["nonceStr"].as_str().unwrap()),
            ("signature", config["signature"].as_str().unwrap()),
            ("url", "http://127.0.0.1/a?b=1"),
        ]);
        let check = Browser::new().get(&format!("{}/sim/jssdk/check?{query}", pair.a.sim_url));
        assert!(check.body.contains("config:ok"), "{}", check.body);
    }
    // Kept as expiry and sealed bytes: no ticket in Redis.
    let dump = redis.dump();
    let line = dump
        .lines()
        .find(|l| l.contains("wxauth:ticket:wx000000000000test"))
        .unwrap_or_else(|| panic!("no ticket record in {dump}"));
    let value = line.split_once('=').unwrap().1;
    let (expires, sealed) = value.split_once(':').expect("expiry:sealed");
    assert!(expires.parse::<i64>().is_ok(), "{line}");
    assert!(sealed.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
}

#[test]
fn one_person_through_both_apps_on_two_instances_is_one_user_and_redis_holds_no_openid() {
    let Some(redis) = redis_server() else { return };
    let pair = pair_with(
        &redis,
        &[
            ("WXAUTH_WEB_APPID", "wx00000000000web1"),
            ("WXAUTH_WEB_SECRET", "web-secret-1a2b3c"),
        ],
    );
    // The phone through the Official Account on A.
    let mut phone = Browser::new();
    assert_eq!(phone.login_as(&pair.a, 0).status, 302);
    // The desktop through the website app, its callback served by B.
    let mut desktop = Browser::new();
    desktop.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0".into();
    let login = desktop.get(&pair.a.url("/login"));
    let qrconnect = login.location().to_string();
    assert!(
        qrconnect.contains("/connect/qrconnect?appid=wx00000000000web1&"),
        "{qrconnect}"
    );
    let base = qrconnect.split("/connect/").next().unwrap().to_string();
    let field = |k: &str| crate::support::url_param(&qrconnect, k);
    let (appid, redirect_uri, state) = (field("appid"), field("redirect_uri"), field("state"));
    let confirmed = desktop.post(
        &format!("{base}/connect/qrconnect/confirm"),
        &[
            ("appid", appid.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("response_type", "code"),
            ("scope", "snsapi_login"),
            ("state", state.as_str()),
            ("user", "0"),
            ("action", "allow"),
        ],
    );
    let callback = confirmed.location().to_string();
    let path = callback.splitn(4, '/').nth(3).unwrap();
    assert_eq!(desktop.get(&pair.b_url(&format!("/{path}"))).status, 302);
    let profile = desktop.get(&pair.b_url("/profile")).body;
    assert!(
        profile.contains("oWeb0PandaXiaoMingEmoji00001"),
        "{profile}"
    );
    assert!(
        profile.contains("oSim0PandaXiaoMingEmoji00001"),
        "the account's openid, linked on A: {profile}"
    );
    let dump = redis.dump();
    assert!(dump.contains("wxauth:u:"), "{dump}");
    assert!(
        !dump.contains("oWeb0") && !dump.contains("oSim0") && !dump.contains("oSimUnion0"),
        "{dump}"
    );
}

#[test]
fn a_revoke_on_one_instance_ends_that_users_sessions_on_both() {
    use wxauth_app::web::service::AppCommand;
    let Some(redis) = redis_server() else { return };
    let pair = pair(&redis);
    let (mut phone, mut tablet, mut other) = (Browser::new(), Browser::new(), Browser::new());
    for (browser, user) in [(&mut phone, 0), (&mut tablet, 0), (&mut other, 3)] {
        assert_eq!(browser.login_as(&pair.a, user).status, 302);
    }
    let dump = redis.dump();
    assert!(dump.contains("wxauth:who:"), "{dump}");
    assert!(
        !dump.contains("oSim0PandaXiaoMingEmoji00001"),
        "no openid in the clear: {dump}"
    );
    let (reply, answer) = std::sync::mpsc::channel();
    assert!(pair.b.command(AppCommand::Revoke {
        who: "oSim0PandaXiaoMingEmoji00001".into(),
        reply,
    }));
    let answer = answer
        .recv_timeout(Duration::from_secs(5))
        .expect("an answer");
    assert_eq!(answer, "revoked 2 sessions");
    for url in [pair.a.url("/api/me"), pair.b_url("/api/me")] {
        assert_eq!(phone.get(&url).status, 401, "{url}");
        assert_eq!(tablet.get(&url).status, 401, "{url}");
        assert_eq!(
            other.get(&url).status,
            200,
            "{url}: another user is untouched"
        );
    }
}
