//! The simulator alone, over HTTP: the authorize link checks, the consent
//! page, codes, tokens, userinfo, the control switches and every fault kind.
//! Each test starts its own simulator on a free loopback port.

use crate::sim_harness::{start, Resp, TestSim, APPID, OPENID_0, SECRET};
use std::time::{Duration, Instant};
use wxauth_app::transport::http::encode_component;

const CALLBACK: &str = "http://127.0.0.1:8080/callback";

/// Test user 0: emoji nickname, unionid. 1: HTML nickname, sex "2".
/// 2: broken JSON. 3: empty post-2021 profile.
const OPENID_3: &str = "oSim3EmptyProfileAfter202104";

impl TestSim {
    /// Allows `scope` as test user `user` on the consent form; returns the code.
    fn code(&self, user: usize, scope: &str) -> String {
        let resp = self.confirm(user, scope, "st4te", "allow");
        assert_eq!(resp.status, 302, "{}", resp.text());
        let query = resp.location().split_once('?').expect("a query").1;
        let pairs = wxauth_app::transport::http::parse_query(query);
        let code = pairs.iter().find(|(k, _)| k == "code").expect("a code");
        code.1.clone()
    }

    fn confirm(&self, user: usize, scope: &str, state: &str, action: &str) -> Resp {
        let user = user.to_string();
        self.post(
            "/connect/oauth2/authorize/confirm",
            &[
                ("appid", APPID),
                ("redirect_uri", CALLBACK),
                ("scope", scope),
                ("state", state),
                ("user", &user),
                ("action", action),
            ],
        )
    }

    fn exchange(&self, code: &str) -> Resp {
        self.get(&format!(
            "/sns/oauth2/access_token?appid={APPID}&secret={SECRET}&code={code}&grant_type=authorization_code"
        ))
    }

    /// A successful code exchange for `user` and `scope`.
    fn tokens(&self, user: usize, scope: &str) -> serde_json::Value {
        let resp = self.exchange(&self.code(user, scope));
        assert_eq!(resp.status, 200);
        let v = resp.json();
        assert!(v["access_token"].is_string(), "{v}");
        v
    }

    fn userinfo(&self, tokens: &serde_json::Value, lang: &str) -> Resp {
        let (token, openid) = (str_of(&tokens["access_token"]), str_of(&tokens["openid"]));
        self.get(&format!(
            "/sns/userinfo?access_token={token}&openid={openid}&lang={lang}"
        ))
    }
}

fn str_of(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// An authorize link in WeChat's order, with `tail` appended.
fn authorize(scope: &str, state: &str, tail: &str) -> String {
    format!(
        "/connect/oauth2/authorize?appid={APPID}&redirect_uri={}&response_type=code&scope={scope}&state={state}{tail}",
        encode_component(CALLBACK)
    )
}

/// Asserts WeChat's grey error page: 400, HTML, the errcode and the message shown.
fn assert_refused(resp: &Resp, errcode: Option<i64>, message: &str) {
    let page = resp.text();
    assert_eq!(resp.status, 400, "{page}");
    assert!(resp
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(page.contains(message), "{message} not in {page}");
    if let Some(errcode) = errcode {
        assert!(
            page.contains(&format!("错误码：<span class=\"errcode\">{errcode}</span>")),
            "{page}"
        );
    }
    assert!(resp.header("location").is_none());
}

#[test]
fn authorize_refuses_links_out_of_order() {
    let sim = start();
    let swapped = format!(
        "/connect/oauth2/authorize?appid={APPID}&response_type=code&redirect_uri={}&scope=snsapi_base&state=abc",
        encode_component(CALLBACK)
    );
    assert_refused(&sim.get(&swapped), None, "链接参数顺序错误");
    let extra = authorize("snsapi_base", "abc", "&lang=zh_CN");
    assert_refused(&sim.get(&extra), None, "链接参数顺序错误");
    // The optional WeChat parameters may follow state.
    let ok = authorize("snsapi_base", "abc", "&connect_redirect=1");
    assert_eq!(sim.get(&ok).status, 302);
}

#[test]
fn authorize_refuses_a_redirect_uri_outside_the_domain() {
    let sim = start();
    for uri in ["http://localhost:8080/callback", "http://evil.127.0.0.1/cb"] {
        let link = authorize("snsapi_base", "abc", "")
            .replace(&encode_component(CALLBACK), &encode_component(uri));
        assert_refused(
            &sim.get(&link),
            Some(10003),
            "redirect_uri域名与后台配置不一致",
        );
    }
    let raw = authorize("snsapi_base", "abc", "").replace(&encode_component(CALLBACK), CALLBACK);
    assert_refused(&sim.get(&raw), None, "urlEncode");
}

#[test]
fn authorize_refuses_bad_scopes_states_and_appids() {
    let sim = start();
    let link = authorize("snsapi_login", "abc", "");
    assert_refused(
        &sim.get(&link),
        Some(10005),
        "此公众号并没有这些scope的权限",
    );
    assert_refused(
        &sim.get(&authorize("snsapi_base", "", "")),
        Some(10013),
        "state不能为空",
    );
    assert_refused(
        &sim.get(&authorize("snsapi_base", "a%2Db", "")),
        None,
        "state 参数错误",
    );
    let foreign = authorize("snsapi_base", "abc", "").replace(APPID, "wx0000000000000000");
    assert_refused(&sim.get(&foreign), Some(40013), "appid");
    assert_refused(
        &sim.get("/connect/oauth2/authorize"),
        Some(10012),
        "appid不能为空",
    );
    let no_uri = format!("/connect/oauth2/authorize?appid={APPID}");
    assert_refused(&sim.get(&no_uri), Some(10011), "redirect_uri不能为空");
    let token = authorize("snsapi_base", "abc", "").replace("=code", "=token");
    assert_refused(&sim.get(&token), None, "response_type");
}

#[test]
fn consent_page_lists_the_users_with_nicknames_escaped() {
    let sim = start();
    let page = sim.get(&authorize("snsapi_userinfo", "abc", ""));
    assert_eq!(page.status, 200);
    let html = page.text();
    for fragment in [
        "wxauth 测试",
        "获得你的公开信息（昵称、头像等）",
        "熊猫🐼小明",
        "&lt;script&gt;alert(&quot;xss&quot;)&lt;&#x2f;script&gt;&amp;&lt;b&gt;粗&lt;&#x2f;b&gt;",
        "action=\"/connect/oauth2/authorize/confirm\"",
        "value=\"allow\">允许",
        "value=\"deny\">拒绝",
        "name=\"state\" value=\"abc\"",
        "<html lang=\"zh-CN\">",
        "name=\"viewport\"",
    ] {
        assert!(html.contains(fragment), "{fragment} not in {html}");
    }
    assert!(!html.contains("<script>"));
    assert!(!html.contains('\u{1}'), "control characters are not shown");
    // forcePopup shows the page even for snsapi_base.
    let popup = sim.get(&authorize("snsapi_base", "abc", "&forcePopup=true"));
    assert_eq!(popup.status, 200);
    assert!(popup.text().contains("允许"));
}

#[test]
fn allow_redirects_with_a_code_and_the_state() {
    let sim = start();
    let resp = sim.confirm(1, "snsapi_userinfo", "xyz123", "allow");
    assert_eq!(resp.status, 302);
    let location = resp.location();
    assert!(
        location.starts_with(&format!("{CALLBACK}?code=")),
        "{location}"
    );
    assert!(location.ends_with("&state=xyz123"), "{location}");
    let cookie = resp
        .header("set-cookie")
        .expect("the chosen user is remembered");
    assert!(cookie.starts_with("sim_user=1;"), "{cookie}");
    let state = sim.state();
    assert_eq!(state["callbacks"][0], location);
    // A redirect_uri with a query gets `&`.
    let resp = sim.post(
        "/connect/oauth2/authorize/confirm",
        &[
            ("appid", APPID),
            ("redirect_uri", "http://127.0.0.1:8080/callback?x=1"),
            ("scope", "snsapi_base"),
            ("state", "s"),
            ("user", "0"),
            ("action", "allow"),
        ],
    );
    assert!(resp
        .location()
        .starts_with("http://127.0.0.1:8080/callback?x=1&code="));
}

#[test]
fn deny_redirects_with_the_state_and_no_code() {
    let sim = start();
    let resp = sim.confirm(0, "snsapi_userinfo", "xyz123", "deny");
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), format!("{CALLBACK}?state=xyz123"));
    assert_eq!(sim.state()["callbacks"], serde_json::json!([]));
    let resp = sim.confirm(0, "snsapi_userinfo", "xyz123", "maybe");
    assert_eq!(resp.status, 400);
    let resp = sim.confirm(99, "snsapi_userinfo", "xyz123", "allow");
    assert_eq!(resp.status, 400);
}

#[test]
fn base_scope_redirects_at_once_as_the_remembered_user() {
    let sim = start();
    let resp = sim.get(&authorize("snsapi_base", "abc", ""));
    assert_eq!(resp.status, 302);
    let code = resp
        .location()
        .split("code=")
        .nth(1)
        .and_then(|r| r.split('&').next());
    let tokens = sim.exchange(code.expect("a code")).json();
    assert_eq!(tokens["openid"], OPENID_0);
    assert_eq!(tokens["scope"], "snsapi_base");
    let resp = sim.get_with_cookie(&authorize("snsapi_base", "abc", ""), Some("sim_user=3"));
    let code = resp
        .location()
        .split("code=")
        .nth(1)
        .and_then(|r| r.split('&').next());
    let tokens = sim.exchange(code.expect("a code")).json();
    assert_eq!(tokens["openid"], OPENID_3);
    assert!(tokens.get("unionid").is_none(), "user 3 has no unionid");
}

#[test]
fn a_code_is_exchanged_once_for_tokens() {
    let sim = start();
    let code = sim.code(0, "snsapi_userinfo");
    let resp = sim.exchange(&code);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    let v = resp.json();
    assert!(str_of(&v["access_token"]).starts_with("simAT_"));
    assert!(str_of(&v["refresh_token"]).starts_with("simRT_"));
    assert_eq!(v["expires_in"], 7200);
    assert_eq!(v["openid"], OPENID_0);
    assert_eq!(v["scope"], "snsapi_userinfo");
    assert_eq!(v["unionid"], "oSimUnion0PandaXiaoMing00001");
    assert!(v.get("is_snapshotuser").is_none());
    sim.exchange(&code).assert_errcode(40163);
}

#[test]
fn code_exchange_errors_use_wechat_errcodes() {
    let sim = start();
    sim.exchange("nosuchcode").assert_errcode(40029);
    let code = sim.code(0, "snsapi_base");
    let wrong_secret = format!(
        "/sns/oauth2/access_token?appid={APPID}&secret=nope&code={code}&grant_type=authorization_code"
    );
    sim.get(&wrong_secret).assert_errcode(40125);
    let wrong_appid = format!(
        "/sns/oauth2/access_token?appid=wx0&secret={SECRET}&code={code}&grant_type=authorization_code"
    );
    sim.get(&wrong_appid).assert_errcode(40013);
    let no_code = format!(
        "/sns/oauth2/access_token?appid={APPID}&secret={SECRET}&grant_type=authorization_code"
    );
    sim.get(&no_code).assert_errcode(41008);
    let grant_type =
        format!("/sns/oauth2/access_token?appid={APPID}&secret={SECRET}&code={code}&grant_type=x");
    sim.get(&grant_type).assert_errcode(40002);
    // None of those used the code up.
    assert_eq!(sim.exchange(&code).status, 200);
}

#[test]
fn a_code_expires_after_five_minutes() {
    let sim = start();
    let code = sim.code(0, "snsapi_userinfo");
    sim.control(&[("advance", "301")]);
    sim.exchange(&code).assert_errcode(42003);
}

#[test]
fn userinfo_returns_each_test_user_as_wechat_would() {
    let sim = start();
    let v = sim
        .userinfo(&sim.tokens(0, "snsapi_userinfo"), "zh_CN")
        .json();
    assert_eq!(v["nickname"], "熊猫🐼小明");
    assert_eq!(v["sex"], 1);
    assert_eq!(
        (v["province"].as_str(), v["city"].as_str()),
        (Some("广东"), Some("深圳"))
    );
    assert!(str_of(&v["headimgurl"]).starts_with("http://thirdwx.qlogo.cn/"));
    assert_eq!(v["privilege"], serde_json::json!(["chinaunicom"]));
    assert!(v["unionid"].is_string());
    let en = sim.userinfo(&sim.tokens(0, "snsapi_userinfo"), "en").json();
    assert_eq!(en["province"], "Guangdong");
    let tw = sim
        .userinfo(&sim.tokens(0, "snsapi_userinfo"), "zh_TW")
        .json();
    assert_eq!(tw["province"], "廣東");

    let v = sim
        .userinfo(&sim.tokens(1, "snsapi_userinfo"), "zh_CN")
        .json();
    assert_eq!(v["sex"], "2", "sex as a string, as seen in the wild");
    assert_eq!(v["nickname"], "<script>alert(\"xss\")</script>&<b>粗</b>");

    let resp = sim.userinfo(&sim.tokens(2, "snsapi_userinfo"), "zh_CN");
    assert_eq!(resp.status, 200);
    assert!(
        resp.body.contains(&0x01) && resp.body.contains(&0x1f),
        "raw control characters"
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&resp.body).is_err());
    assert!(
        std::str::from_utf8(&resp.body).is_err(),
        "one broken UTF-8 byte"
    );

    let v = sim
        .userinfo(&sim.tokens(3, "snsapi_userinfo"), "zh_CN")
        .json();
    assert_eq!(v["sex"], 0);
    assert_eq!(
        (v["province"].as_str(), v["headimgurl"].as_str()),
        (Some(""), Some(""))
    );
    assert_eq!(v["privilege"], serde_json::json!([]));
    assert!(v.get("unionid").is_none());
}

#[test]
fn userinfo_refuses_bad_expired_foreign_and_base_tokens() {
    let sim = start();
    let base = sim.tokens(0, "snsapi_base");
    sim.userinfo(&base, "zh_CN").assert_errcode(48001);
    let tokens = sim.tokens(0, "snsapi_userinfo");
    let token = str_of(&tokens["access_token"]);
    sim.get(&format!(
        "/sns/userinfo?access_token={token}&openid={OPENID_3}"
    ))
    .assert_errcode(40003);
    sim.get(&format!(
        "/sns/userinfo?access_token=simAT_x&openid={OPENID_0}"
    ))
    .assert_errcode(40014);
    assert_eq!(sim.userinfo(&tokens, "zh_CN").status, 200);
    sim.control(&[("advance", "7201")]);
    sim.userinfo(&tokens, "zh_CN").assert_errcode(42001);
}

#[test]
fn refresh_gives_a_new_access_token_for_thirty_days() {
    let sim = start();
    let tokens = sim.tokens(0, "snsapi_userinfo");
    let refresh_token = str_of(&tokens["refresh_token"]);
    let refresh = format!(
        "/sns/oauth2/refresh_token?appid={APPID}&grant_type=refresh_token&refresh_token={refresh_token}"
    );
    sim.control(&[("advance", "7201")]);
    sim.userinfo(&tokens, "zh_CN").assert_errcode(42001);
    let resp = sim.get(&refresh);
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    let fresh = resp.json();
    assert_ne!(fresh["access_token"], tokens["access_token"]);
    assert_eq!(fresh["refresh_token"], tokens["refresh_token"]);
    assert_eq!(
        (fresh["expires_in"].as_i64(), fresh["openid"].as_str()),
        (Some(7200), Some(OPENID_0))
    );
    assert_eq!(sim.userinfo(&fresh, "zh_CN").status, 200);
    assert!(sim.userinfo(&fresh, "zh_CN").json()["nickname"].is_string());
    sim.get(&refresh.replace(refresh_token, "simRT_nope"))
        .assert_errcode(40030);
    sim.control(&[("advance", "2592000")]);
    sim.get(&refresh).assert_errcode(42002);
}

#[test]
fn sns_auth_checks_a_token_against_its_openid() {
    let sim = start();
    let tokens = sim.tokens(0, "snsapi_base");
    let token = str_of(&tokens["access_token"]);
    let ok = sim.get(&format!("/sns/auth?access_token={token}&openid={OPENID_0}"));
    ok.assert_errcode(0);
    assert_eq!(ok.json()["errmsg"], "ok");
    sim.get(&format!("/sns/auth?access_token={token}&openid={OPENID_3}"))
        .assert_errcode(40003);
    sim.get(&format!("/sns/auth?access_token=nope&openid={OPENID_0}"))
        .assert_errcode(40014);
    sim.control(&[("advance", "7200")]);
    sim.get(&format!("/sns/auth?access_token={token}&openid={OPENID_0}"))
        .assert_errcode(42001);
}

#[test]
fn errcode_faults_answer_wechat_errors_for_the_given_count() {
    let sim = start();
    let state = sim.control(&[("fault", "access_token:errcode:45011"), ("times", "2")]);
    assert_eq!(state["faults"]["access_token"]["remaining"], 2);
    let code = sim.code(0, "snsapi_base");
    sim.exchange(&code).assert_errcode(45011);
    let v = sim.exchange(&code).json();
    assert!(str_of(&v["errmsg"]).starts_with("api minute-quota reach limit"));
    // The faults did not touch the code: it still works once.
    assert_eq!(sim.exchange(&code).json()["openid"], OPENID_0);
    sim.control(&[
        ("fault", "userinfo:errcode:-1"),
        ("fault", "auth:errcode:42007"),
    ]);
    let tokens = sim.tokens(0, "snsapi_userinfo");
    sim.userinfo(&tokens, "zh_CN").assert_errcode(-1);
    let token = str_of(&tokens["access_token"]);
    sim.get(&format!("/sns/auth?access_token={token}&openid={OPENID_0}"))
        .assert_errcode(42007);
}

#[test]
fn transport_faults_break_the_answer_in_each_way() {
    let sim = start();
    let tokens = sim.tokens(0, "snsapi_userinfo");
    let userinfo = |sim: &TestSim| sim.userinfo(&tokens, "zh_CN");

    sim.control(&[("fault", "userinfo:html")]);
    let resp = userinfo(&sim);
    assert_eq!(resp.status, 502);
    assert!(resp
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(resp.text().contains("502 Bad Gateway"));

    sim.control(&[("fault", "userinfo:garbage")]);
    let resp = userinfo(&sim);
    assert_eq!(resp.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&resp.body).is_err());

    sim.control(&[("fault", "userinfo:status:503")]);
    let resp = userinfo(&sim);
    assert_eq!((resp.status, resp.body.len()), (503, 0));

    sim.control(&[("fault", "userinfo:badtypes")]);
    let v = userinfo(&sim).json();
    assert!(v["openid"].is_number() && v["privilege"].is_string(), "{v}");

    sim.control(&[("fault", "userinfo:huge")]);
    let resp = userinfo(&sim);
    assert!(
        resp.body.len() > 10 * 1024 * 1024,
        "{} bytes",
        resp.body.len()
    );
    assert_eq!(resp.json()["nickname"], "熊猫🐼小明");

    // Each fault applied once: the next call is normal again.
    assert_eq!(userinfo(&sim).json()["openid"], OPENID_0);
}

#[test]
fn a_truncated_answer_still_uses_the_code_up() {
    let sim = start();
    sim.control(&[("fault", "access_token:truncated")]);
    let code = sim.code(0, "snsapi_userinfo");
    let resp = sim.exchange(&code);
    assert_eq!(resp.status, 200);
    assert!(resp.text().starts_with("{\"access_token\":\"simAT_"));
    assert!(serde_json::from_slice::<serde_json::Value>(&resp.body).is_err());
    sim.exchange(&code).assert_errcode(40163);
}

#[test]
fn a_slow_fault_delays_the_answer_then_answers_normally() {
    let sim = start();
    sim.control(&[("fault", "auth:slow:400")]);
    let tokens = sim.tokens(0, "snsapi_base");
    let token = str_of(&tokens["access_token"]);
    let started = Instant::now();
    let resp = sim.get(&format!("/sns/auth?access_token={token}&openid={OPENID_0}"));
    assert!(started.elapsed() >= Duration::from_millis(400));
    resp.assert_errcode(0);
}

#[test]
fn fault_clear_and_reset_disarm_everything() {
    let sim = start();
    sim.control(&[
        ("fault", "userinfo:html"),
        ("fault", "auth:garbage"),
        ("times", "5"),
    ]);
    let state = sim.control(&[("fault", "clear")]);
    assert_eq!(state["faults"], serde_json::json!({}));
    sim.control(&[
        ("fault", "auth:html"),
        ("double_callback", "1"),
        ("snapshot", "1"),
    ]);
    let state = sim.control(&[("reset", "1")]);
    assert_eq!(state["faults"], serde_json::json!({}));
    assert_eq!(
        (
            state["double_callback"].as_bool(),
            state["snapshot"].as_bool()
        ),
        (Some(false), Some(false))
    );
    for bad in [
        [("fault", "nowhere:html")],
        [("fault", "auth:explode")],
        [("advance", "-1")],
        [("times", "0")],
        [("bogus", "1")],
    ] {
        let resp = sim.post("/sim/control", &bad);
        assert_eq!(resp.status, 400, "{bad:?}");
        assert!(resp.json()["error"].is_string());
    }
}

#[test]
fn double_callback_issues_two_codes_for_one_state() {
    let sim = start();
    let state = sim.control(&[("double_callback", "1")]);
    assert_eq!(state["double_callback"], true);
    let resp = sim.confirm(0, "snsapi_userinfo", "twice", "allow");
    let callbacks = sim.state()["callbacks"].clone();
    let callbacks: Vec<&str> = callbacks
        .as_array()
        .expect("a list")
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(callbacks.len(), 2);
    assert_eq!(
        resp.location(),
        callbacks[0],
        "the browser follows the first"
    );
    assert_ne!(callbacks[0], callbacks[1]);
    for url in &callbacks {
        assert!(url.ends_with("&state=twice"), "{url}");
        let code = url
            .split("code=")
            .nth(1)
            .and_then(|r| r.split('&').next())
            .expect("a code");
        assert_eq!(sim.exchange(code).json()["openid"], OPENID_0);
    }
}

#[test]
fn snapshot_grants_carry_the_flag_and_a_virtual_openid() {
    let sim = start();
    assert_eq!(sim.control(&[("snapshot", "1")])["snapshot"], true);
    let v = sim.tokens(0, "snsapi_userinfo");
    assert_eq!(v["is_snapshotuser"], 1);
    assert_ne!(v["openid"], OPENID_0);
    assert!(v.get("unionid").is_none());
    let profile = sim.userinfo(&v, "zh_CN").json();
    assert_eq!(profile["openid"], v["openid"]);
    assert_eq!(profile["nickname"], "微信用户");
    sim.control(&[("snapshot", "0")]);
    assert!(sim
        .tokens(0, "snsapi_userinfo")
        .get("is_snapshotuser")
        .is_none());
    // Turning the switch on between consent and exchange counts too.
    let code = sim.code(1, "snsapi_userinfo");
    sim.control(&[("snapshot", "1")]);
    assert_eq!(sim.exchange(&code).json()["is_snapshotuser"], 1);
    sim.control(&[("snapshot", "0")]);
    // forceSnapShot=true in the link asks for the same.
    let resp = sim.get(&authorize("snsapi_base", "abc", "&forceSnapShot=true"));
    let code = resp
        .location()
        .split("code=")
        .nth(1)
        .and_then(|r| r.split('&').next());
    assert_eq!(
        sim.exchange(code.expect("a code")).json()["is_snapshotuser"],
        1
    );
}

#[test]
fn state_counts_every_api_call_including_failed_ones() {
    let sim = start();
    let state = sim.state();
    assert!(state["now"].is_i64());
    assert_eq!(
        state["calls"],
        serde_json::json!({"access_token": 0, "refresh_token": 0, "userinfo": 0, "auth": 0,
            "token": 0, "stable_token": 0, "menu_create": 0, "menu_get": 0, "menu_delete": 0,
            "getticket": 0})
    );
    sim.exchange("nope");
    sim.control(&[("fault", "userinfo:status:500")]);
    sim.get("/sns/userinfo?access_token=x&openid=y");
    sim.get("/sns/oauth2/refresh_token?appid=x");
    let before = sim.state()["now"].as_i64().unwrap_or(0);
    let state = sim.control(&[("advance", "100")]);
    assert!(state["now"].as_i64().unwrap_or(0) >= before + 100);
    assert_eq!(
        state["calls"],
        serde_json::json!({"access_token": 1, "refresh_token": 1, "userinfo": 1, "auth": 0,
            "token": 0, "stable_token": 0, "menu_create": 0, "menu_get": 0, "menu_delete": 0,
            "getticket": 0})
    );
}

#[test]
fn index_page_and_unknown_routes() {
    let sim = start();
    for path in ["/", "/sim"] {
        let page = sim.get(path);
        assert_eq!(page.status, 200);
        let html = page.text();
        assert!(html.contains("微信模拟器") && html.contains(OPENID_0) && html.contains(APPID));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(!html.contains(SECRET));
    }
    assert_eq!(sim.get("/nope").status, 404);
    assert_eq!(sim.get("/sns/nope").status, 404);
    let resp = sim.get("/sim/control");
    assert_eq!((resp.status, resp.header("allow")), (405, Some("POST")));
    let resp = sim.post("/sns/userinfo", &[]);
    assert_eq!((resp.status, resp.header("allow")), (405, Some("GET")));
}

#[test]
fn secrets_and_tokens_never_reach_the_browser_side() {
    let sim = start();
    let tokens = sim.tokens(0, "snsapi_userinfo");
    let mut seen = String::new();
    for path in [
        "/",
        &authorize("snsapi_userinfo", "abc", ""),
        &authorize("snsapi_base", "abc", ""),
    ] {
        let resp = sim.get(path);
        seen.push_str(&resp.text());
        for (n, v) in &resp.headers {
            seen.push_str(&format!("{n}: {v}\n"));
        }
    }
    for secret in [SECRET, "simAT_", "simRT_", str_of(&tokens["access_token"])] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
}
