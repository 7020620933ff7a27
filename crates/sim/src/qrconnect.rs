//! The Open Platform website app's QR login on open.weixin.qq.com:
//! `/connect/qrconnect` shows the 微信登录 page with a QR code, and since
//! nobody scans it here, one button per test user plays the phone
//! (scan and confirm, or refuse). Links are checked by link.rs; the codes
//! are the website app's and are exchanged on the sns side (sns.rs).

use super::authorize::{callback_url, redirect_with_codes};
use super::link::{self, field, QrLink};
use super::state::{Grant, Scope};
use super::{users, Sim};
use minijinja::context;
use minijinja::value::{Serde, Value};
use wxauth_app::random;
use wxauth_app::transport::http::{Reply, Req};

/// `GET /connect/qrconnect`: the 微信登录 page for a valid link, else
/// WeChat's grey error page. (`#wechat_redirect` never reaches a server.)
pub(super) fn qrconnect(sim: &mut Sim, req: &Req) -> Reply {
    match link::check_qr_link(&sim.config, req) {
        Ok(link) => login_page(sim, &link),
        Err(refusal) => sim.refusal_page(&refusal),
    }
}

/// `POST /connect/qrconnect/confirm`: what the "phone" did. The link is
/// checked again, as the page's hidden fields may have been edited.
pub(super) fn confirm(sim: &mut Sim, req: &Req) -> Reply {
    let form = req.form();
    let link = match link::check_qr_form(&sim.config, &form) {
        Ok(link) => link,
        Err(refusal) => return sim.refusal_page(&refusal),
    };
    match field(&form, "action") {
        // WeChat's older documented behaviour: back with the state only.
        Some("deny") => Reply::redirect(
            302,
            &callback_url(&link.redirect_uri, &[("state", &link.state)]),
        ),
        Some("allow") => match field(&form, "user").and_then(|u| u.parse::<usize>().ok()) {
            Some(user) if users::get(user).is_some() => login(sim, &link, user),
            _ => sim.refusal_page(&link::BAD_USER),
        },
        _ => sim.refusal_page(&link::BAD_ACTION),
    }
}

/// One code for the website app (no double callback: that is the
/// Official Account's quirk) and the redirect back with it.
fn login(sim: &mut Sim, link: &QrLink, user: usize) -> Reply {
    let grant = Grant {
        appid: link.appid.clone(),
        user,
        scope: Scope::Login,
        snapshot: false,
    };
    redirect_with_codes(sim, &grant, &link.redirect_uri, &link.state, 1)
}

fn login_page(sim: &Sim, link: &QrLink) -> Reply {
    let users: Vec<_> = users::USERS
        .iter()
        .enumerate()
        .map(|(i, u)| {
            serde_json::json!({
                "index": i,
                "nickname": users::display_nickname(u),
            })
        })
        .collect();
    // Our own drawing of a URL we made up: no user data, safe to inline.
    let qr = Value::from_safe_string(wxauth_app::qr::svg(&format!(
        "https://open.weixin.qq.com/connect/confirm?uuid={}",
        random::token(16)
    )));
    let ctx = context! {
        app_name => sim.config.app_name.as_str(),
        appid => link.appid.as_str(),
        redirect_uri => link.redirect_uri.as_str(),
        state => link.state.as_str(),
        qr_svg => qr,
        users => Value::from(Serde(users)),
    };
    sim.render("qrconnect.html", ctx)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::tests::{post_form, sim};
    use crate::{SimConfig, WebApp};
    use wxauth_app::wechat::errcode::{
        CODE_EXPIRED, CODE_USED, INVALID_CODE, INVALID_REFRESH_TOKEN, INVALID_SECRET,
    };

    pub(crate) const WEB_APPID: &str = "wxWEBAPPID0000001";
    const WEB_SECRET: &str = "websecretNotForPages";
    const CB: &str = "https%3A%2F%2Fwww.example.com%2Flogin%2Fqr%2Fcallback";
    const CALLBACK: &str = "https://www.example.com/login/qr/callback";

    /// The test simulator plus a website app on www.example.com.
    pub(crate) fn web_sim() -> Sim {
        Sim::new(SimConfig {
            web_app: Some(WebApp {
                appid: WEB_APPID.into(),
                secret: WEB_SECRET.into(),
                domain: "www.example.com".into(),
            }),
            ..sim().config
        })
    }

    fn link() -> String {
        format!("/connect/qrconnect?appid={WEB_APPID}&redirect_uri={CB}&response_type=code&scope=snsapi_login&state=xyz")
    }

    fn body(reply: &Reply) -> String {
        String::from_utf8_lossy(&reply.body).into_owned()
    }

    fn confirm_form(extra: &str) -> Req {
        let body = format!("appid={WEB_APPID}&redirect_uri={CB}&response_type=code&scope=snsapi_login&state=xyz&{extra}");
        post_form("/connect/qrconnect/confirm", &body)
    }

    /// The code of a redirect to the callback, which must carry state=xyz.
    fn code_of(reply: &Reply) -> String {
        assert_eq!(reply.status, 302, "{}", body(reply));
        let location = reply.header("Location").expect("Location");
        let query = location
            .strip_prefix(&format!("{CALLBACK}?"))
            .unwrap_or_else(|| panic!("{location}"));
        let (code, state) = query.split_once('&').expect("code and state");
        assert_eq!(state, "state=xyz");
        code.strip_prefix("code=").expect("code first").to_string()
    }

    fn scan(s: &mut Sim, user: usize) -> String {
        code_of(&s.route(&confirm_form(&format!("user={user}&action=allow"))))
    }

    fn api(s: &mut Sim, url: &str) -> serde_json::Value {
        let r = s.route(&Req::fake("GET", url, &[]));
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).expect("JSON")
    }

    fn exchange(s: &mut Sim, appid: &str, secret: &str, code: &str) -> serde_json::Value {
        api(
            s,
            &format!("/sns/oauth2/access_token?appid={appid}&secret={secret}&code={code}&grant_type=authorization_code"),
        )
    }

    #[test]
    fn the_page_shows_a_qr_code_and_one_button_per_user_escaped() {
        let mut s = web_sim();
        let r = s.route(&Req::fake("GET", &link(), &[]));
        assert_eq!(r.status, 200);
        let html = body(&r);
        for part in [
            "<title>微信登录</title>",
            "<svg class=\"qr\"",
            "使用微信扫一扫登录",
            "「wxauth 演示」",
            "演示：模拟手机扫码",
            "<form method=\"post\" action=\"/connect/qrconnect/confirm\">",
            "name=\"redirect_uri\" value=\"https:&#x2f;&#x2f;www.example.com&#x2f;login&#x2f;qr&#x2f;callback\"",
            "name=\"scope\" value=\"snsapi_login\"",
            "name=\"user\" value=\"5\"",
            "&lt;script&gt;alert(&quot;xss&quot;)&lt;&#x2f;script&gt;",
            "在手机上拒绝",
        ] {
            assert!(html.contains(part), "{part} not in {html}");
        }
        assert_eq!(
            html.matches("扫码并确认</button>").count(),
            users::USERS.len()
        );
        assert!(!html.contains("<script>") && !html.contains(WEB_SECRET));
        assert!(!html.contains("<script"), "no script at all: {html}");
    }

    #[test]
    fn refused_links_get_the_grey_page() {
        let mut s = web_sim();
        let oa = link().replace(WEB_APPID, "wxSIMAPPID0000001");
        let r = s.route(&Req::fake("GET", &oa, &[]));
        assert_eq!(r.status, 400);
        assert!(body(&r).contains("Scope 参数错误或没有 Scope 权限"));
        let other = link().replace("www.example.com", "evil.example");
        assert!(body(&s.route(&Req::fake("GET", &other, &[]))).contains("redirect_uri 参数错误"));
        // No website app: the same words and the simulator's hint.
        let r = sim().route(&Req::fake("GET", &link(), &[]));
        assert_eq!(r.status, 400);
        let html = body(&r);
        assert!(html.contains("Scope 参数错误或没有 Scope 权限") && html.contains("web_app"));
    }

    #[test]
    fn allow_calls_back_with_a_code_and_the_state_deny_with_the_state_only() {
        let mut s = web_sim();
        let code = scan(&mut s, 0);
        assert_eq!(code.len(), 32);
        let state: serde_json::Value =
            serde_json::from_slice(&s.route(&Req::fake("GET", "/sim/state", &[])).body).unwrap();
        assert_eq!(
            state["callbacks"][0],
            format!("{CALLBACK}?code={code}&state=xyz")
        );
        let r = s.route(&confirm_form("action=deny"));
        assert_eq!(r.status, 302);
        assert_eq!(
            r.header("Location"),
            Some(&*format!("{CALLBACK}?state=xyz"))
        );
        // No user, a user who is not there, no action: refused.
        for extra in ["action=allow", "user=99&action=allow", "user=0"] {
            assert_eq!(s.route(&confirm_form(extra)).status, 400, "{extra}");
        }
    }

    #[test]
    fn the_confirm_form_is_checked_again() {
        let mut s = web_sim();
        let evil = CB.replace("www.example.com", "evil.example");
        let tampered = format!("appid={WEB_APPID}&redirect_uri={evil}&response_type=code&scope=snsapi_login&state=xyz&user=0&action=allow");
        let r = s.route(&post_form("/connect/qrconnect/confirm", &tampered));
        assert_eq!(r.status, 400);
        assert!(body(&r).contains("redirect_uri 参数错误"));
        let oa = format!("appid=wxSIMAPPID0000001&redirect_uri={CB}&response_type=code&scope=snsapi_login&state=xyz&user=0&action=allow");
        let r = s.route(&post_form("/connect/qrconnect/confirm", &oa));
        assert!(body(&r).contains("Scope 参数错误"));
        // Nothing was issued.
        assert_eq!(s.store.sizes().0, 0);
    }

    #[test]
    fn a_website_code_gives_the_website_openid_and_the_shared_unionid() {
        let mut s = web_sim();
        let code = scan(&mut s, 0);
        let user = &users::USERS[0];
        let v = exchange(&mut s, WEB_APPID, WEB_SECRET, &code);
        assert_eq!(v["openid"], "oWeb0PandaXiaoMingEmoji00001", "{v}");
        assert_eq!(v["openid"], users::web_openid(user));
        assert_eq!(v["unionid"], user.unionid.unwrap());
        assert_eq!(v["scope"], "snsapi_login");
        assert_eq!(v["expires_in"], 7200);
        // Used once: 40163.
        let again = exchange(&mut s, WEB_APPID, WEB_SECRET, &code);
        assert_eq!(again["errcode"], CODE_USED);
        // userinfo and auth for the website token: the website openid.
        let token = v["access_token"].as_str().unwrap();
        let openid = v["openid"].as_str().unwrap();
        let info = api(
            &mut s,
            &format!("/sns/userinfo?access_token={token}&openid={openid}"),
        );
        assert_eq!(info["openid"], openid, "{info}");
        assert_eq!(info["unionid"], user.unionid.unwrap());
        let ok = api(
            &mut s,
            &format!("/sns/auth?access_token={token}&openid={openid}"),
        );
        assert_eq!(ok["errcode"], 0);
        // The Official Account's openid is not this token's.
        let oa = api(
            &mut s,
            &format!("/sns/auth?access_token={token}&openid={}", user.openid),
        );
        assert_ne!(oa["errcode"], 0);
        // Refresh with the website appid, not the Official Account's.
        let rt = v["refresh_token"].as_str().unwrap();
        let url = |appid: &str| {
            format!("/sns/oauth2/refresh_token?appid={appid}&grant_type=refresh_token&refresh_token={rt}")
        };
        let fresh = api(&mut s, &url(WEB_APPID));
        assert_eq!(
            (&fresh["openid"], &fresh["scope"]),
            (&v["openid"], &v["scope"])
        );
        assert_eq!(
            api(&mut s, &url("wxSIMAPPID0000001"))["errcode"],
            INVALID_REFRESH_TOKEN
        );
        // The call counter counts website exchanges with the rest.
        assert_eq!(s.calls[crate::faults::Endpoint::AccessToken.index()], 2);
    }

    #[test]
    fn a_user_without_unionid_has_none_on_the_website_either() {
        let mut s = web_sim();
        let code = scan(&mut s, 3);
        let v = exchange(&mut s, WEB_APPID, WEB_SECRET, &code);
        assert_eq!(v["openid"], "oWeb3EmptyProfileAfter202104");
        assert!(v.get("unionid").is_none(), "{v}");
    }

    #[test]
    fn a_website_code_wants_the_website_app_and_its_secret() {
        let mut s = web_sim();
        let code = scan(&mut s, 0);
        let oa = exchange(&mut s, "wxSIMAPPID0000001", "simsecret", &code);
        assert_eq!(oa["errcode"], INVALID_CODE, "{oa}");
        let wrong = exchange(&mut s, WEB_APPID, "simsecret", &code);
        assert_eq!(wrong["errcode"], INVALID_SECRET, "{wrong}");
        // Neither failure used the code up.
        let v = exchange(&mut s, WEB_APPID, WEB_SECRET, &code);
        assert!(v["access_token"].is_string(), "{v}");
    }

    #[test]
    fn a_website_code_lives_ten_minutes() {
        let mut s = web_sim();
        let code = scan(&mut s, 0);
        s.clock.advance(601);
        let v = exchange(&mut s, WEB_APPID, WEB_SECRET, &code);
        assert_eq!(v["errcode"], CODE_EXPIRED, "{v}");
        // One that is 5 minutes old still works: an Official Account code would not.
        let code = scan(&mut s, 0);
        s.clock.advance(301);
        assert!(exchange(&mut s, WEB_APPID, WEB_SECRET, &code)["access_token"].is_string());
    }

    #[test]
    fn an_official_account_code_is_not_the_websites() {
        let mut s = web_sim();
        let authorize = "/connect/oauth2/authorize?appid=wxSIMAPPID0000001&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&response_type=code&scope=snsapi_base&state=s";
        let r = s.route(&Req::fake("GET", authorize, &[]));
        let location = r.header("Location").expect("redirect").to_string();
        let code = location
            .split("code=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let v = exchange(&mut s, WEB_APPID, WEB_SECRET, code);
        assert_eq!(v["errcode"], INVALID_CODE, "{v}");
        let v = exchange(&mut s, "wxSIMAPPID0000001", "simsecret", code);
        assert_eq!(v["openid"], users::USERS[0].openid, "{v}");
    }

    #[test]
    fn the_index_page_shows_the_website_app_but_not_its_secret() {
        let html = body(&web_sim().route(&Req::fake("GET", "/sim", &[])));
        for part in [
            "/connect/qrconnect?appid=",
            WEB_APPID,
            "www.example.com",
            "oWeb0PandaXiaoMingEmoji00001",
        ] {
            assert!(html.contains(part), "{part} not in {html}");
        }
        assert!(!html.contains(WEB_SECRET));
        let html = body(&sim().route(&Req::fake("GET", "/sim", &[])));
        assert!(html.contains("未配置") && !html.contains("oWeb0"));
        let debug = format!("{:?}", web_sim().config);
        assert!(
            debug.contains(WEB_APPID) && !debug.contains(WEB_SECRET),
            "{debug}"
        );
    }
}
