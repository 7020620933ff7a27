//! What makes an authorize link acceptable, checked as strictly as WeChat
//! does: parameter order, encoding, the 网页授权域名, state. The website
//! app's qrconnect link goes through the same checks with its own appid,
//! scope and 授权回调域. Pure functions; the handlers in authorize.rs and
//! qrconnect.rs turn a `Refusal` into WeChat's error page.

use super::state::Scope;
use super::{SimConfig, WebApp};
use wxauth_app::transport::host;
use wxauth_app::transport::host::HttpUrl;
use wxauth_app::transport::http::Req;
use wxauth_app::wechat::errcode::{
    APPID_EMPTY, INVALID_APPID, REDIRECT_URI_DOMAIN_MISMATCH, REDIRECT_URI_EMPTY, SCOPE_EMPTY,
    SCOPE_NOT_ALLOWED, STATE_EMPTY,
};

/// Why a link is refused: WeChat's errcode where it has one, and its text.
/// Texts with an errcode are WeChat's own (docs/wechat.md §6), so they
/// live here next to their codes, not in the template.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub errcode: Option<i64>,
    pub message: &'static str,
    /// A line under the message that is the simulator's, not WeChat's:
    /// what to change in its configuration.
    pub hint: Option<&'static str>,
}

const fn refusal(errcode: i64, message: &'static str) -> Refusal {
    Refusal {
        errcode: Some(errcode),
        message,
        hint: None,
    }
}

/// A refusal WeChat shows without an errcode.
const fn plain(message: &'static str) -> Refusal {
    Refusal {
        errcode: None,
        message,
        hint: None,
    }
}

const NO_APPID: Refusal = refusal(APPID_EMPTY, "appid不能为空");
const BAD_APPID: Refusal = refusal(INVALID_APPID, "appid 无效 (invalid appid)");
const NO_REDIRECT_URI: Refusal = refusal(REDIRECT_URI_EMPTY, "redirect_uri不能为空");
const NO_SCOPE: Refusal = refusal(SCOPE_EMPTY, "scope不能为空");
const BAD_SCOPE: Refusal = refusal(SCOPE_NOT_ALLOWED, "此公众号并没有这些scope的权限");
const DOMAIN_MISMATCH: Refusal = refusal(
    REDIRECT_URI_DOMAIN_MISMATCH,
    "redirect_uri域名与后台配置不一致",
);
const NO_STATE: Refusal = refusal(STATE_EMPTY, "state不能为空");
// WeChat has no errcode for these: it just refuses to open the link.
pub(super) const BAD_ORDER: Refusal =
    plain("链接参数顺序错误：必须依次为 appid、redirect_uri、response_type、scope、state");
pub(super) const BAD_RESPONSE_TYPE: Refusal = plain("response_type 参数错误：必须为 code");
pub(super) const BAD_REDIRECT_URI: Refusal = plain("redirect_uri 参数错误");
pub(super) const NOT_ENCODED: Refusal = plain("redirect_uri 参数错误：必须经过 urlEncode 编码");
pub(super) const BAD_STATE: Refusal = plain("state 参数错误：只能包含 a-zA-Z0-9，最多 128 字节");
pub(super) const BAD_USER: Refusal = plain("请选择一个测试用户");
pub(super) const BAD_ACTION: Refusal = plain("请点击“允许”或“拒绝”");

/// What WeChat's qrconnect page says when the appid has no snsapi_login:
/// an Official Account's appid, or a website app without 微信登录.
pub(super) const SCOPE_ERROR: Refusal = plain("Scope 参数错误或没有 Scope 权限");
/// The same page when the simulator plays no website app at all.
pub(super) const NO_WEB_APP: Refusal = Refusal {
    hint: Some("微信模拟器没有配置网站应用（SimConfig 的 web_app 未设置），无法扫码登录"),
    ..SCOPE_ERROR
};

/// The parameters WeChat's strict link pattern wants, in this order.
const REQUIRED_ORDER: [&str; 5] = ["appid", "redirect_uri", "response_type", "scope", "state"];
/// What may follow `state` (docs/wechat.md §1), each at most once.
const OPTIONAL: &[&str] = &["connect_redirect", "forcePopup", "forceSnapShot"];
/// What may follow `state` in a qrconnect link (§3.1: `lang`, cn or en).
const QR_OPTIONAL: &[&str] = &["lang"];

/// A link (or a consent form) that passed every check.
#[derive(Debug)]
pub(super) struct Link {
    /// Percent-decoded.
    pub redirect_uri: String,
    pub scope: Scope,
    pub state: String,
    /// `forcePopup=true`: show the consent page even for snsapi_base.
    pub force_popup: bool,
    /// `forceSnapShot=true`: a snapshot-page grant.
    pub snapshot: bool,
}

/// Checks an authorize link in the order WeChat reports problems.
pub(super) fn check_link(config: &SimConfig, req: &Req) -> Result<Link, Refusal> {
    check_appid(config, req.query("appid"))?;
    let redirect_uri = non_empty(req.query("redirect_uri")).ok_or(NO_REDIRECT_URI)?;
    let scope = non_empty(req.query("scope")).ok_or(NO_SCOPE)?;
    if !order_ok(&req.raw_query, OPTIONAL) {
        return Err(BAD_ORDER);
    }
    if req.query("response_type") != Some("code") {
        return Err(BAD_RESPONSE_TYPE);
    }
    let scope = Scope::parse(scope).ok_or(BAD_SCOPE)?;
    if !encoded(&req.raw_query) {
        return Err(NOT_ENCODED);
    }
    check_redirect_uri(redirect_uri, config)?;
    let state = check_state(req.query("state"))?;
    Ok(Link {
        redirect_uri: redirect_uri.to_string(),
        scope,
        state: state.to_string(),
        force_popup: req.query("forcePopup") == Some("true"),
        snapshot: req.query("forceSnapShot") == Some("true"),
    })
}

/// The same checks for the consent form (which has no order to keep).
pub(super) fn check_form(config: &SimConfig, form: &[(String, String)]) -> Result<Link, Refusal> {
    check_appid(config, field(form, "appid"))?;
    let redirect_uri = non_empty(field(form, "redirect_uri")).ok_or(NO_REDIRECT_URI)?;
    let scope = non_empty(field(form, "scope")).ok_or(NO_SCOPE)?;
    let scope = Scope::parse(scope).ok_or(BAD_SCOPE)?;
    check_redirect_uri(redirect_uri, config)?;
    let state = check_state(field(form, "state"))?;
    Ok(Link {
        redirect_uri: redirect_uri.to_string(),
        scope,
        state: state.to_string(),
        force_popup: false,
        snapshot: field(form, "snapshot") == Some("1"),
    })
}

/// A qrconnect link that passed every check.
#[derive(Debug)]
pub(super) struct QrLink {
    /// The website app's appid.
    pub appid: String,
    /// Percent-decoded.
    pub redirect_uri: String,
    pub state: String,
}

/// Checks a qrconnect link: first whose it is (the website app's, for
/// snsapi_login), then the same rules as an authorize link's, against the
/// website app's 授权回调域.
pub(super) fn check_qr_link(config: &SimConfig, req: &Req) -> Result<QrLink, Refusal> {
    let web = check_qr_app(config, |name| req.query(name))?;
    if !order_ok(&req.raw_query, QR_OPTIONAL) {
        return Err(BAD_ORDER);
    }
    if !encoded(&req.raw_query) {
        return Err(NOT_ENCODED);
    }
    check_qr_rest(config, web, |name| req.query(name))
}

/// The same checks for the confirm form (which has no order to keep).
pub(super) fn check_qr_form(
    config: &SimConfig,
    form: &[(String, String)],
) -> Result<QrLink, Refusal> {
    let web = check_qr_app(config, |name| field(form, name))?;
    check_qr_rest(config, web, |name| field(form, name))
}

/// The website app the link is for: WeChat names no other problem while
/// the appid or the scope is wrong.
fn check_qr_app<'c, 'v>(
    config: &'c SimConfig,
    get: impl Fn(&str) -> Option<&'v str>,
) -> Result<&'c WebApp, Refusal> {
    let web = config.web_app.as_ref().ok_or(NO_WEB_APP)?;
    if get("appid") != Some(web.appid.as_str()) || get("scope") != Some("snsapi_login") {
        return Err(SCOPE_ERROR);
    }
    Ok(web)
}

/// response_type, redirect_uri and state of a qrconnect link or form. A
/// wrong callback host is "redirect_uri 参数错误" there, without errcode.
fn check_qr_rest<'v>(
    config: &SimConfig,
    web: &WebApp,
    get: impl Fn(&str) -> Option<&'v str>,
) -> Result<QrLink, Refusal> {
    if get("response_type") != Some("code") {
        return Err(BAD_RESPONSE_TYPE);
    }
    let redirect_uri = non_empty(get("redirect_uri")).ok_or(BAD_REDIRECT_URI)?;
    let url = HttpUrl::parse(redirect_uri).ok_or(BAD_REDIRECT_URI)?;
    if !on_domain(&url, &web.domain, config) {
        return Err(BAD_REDIRECT_URI);
    }
    let state = check_state(get("state"))?;
    Ok(QrLink {
        appid: web.appid.clone(),
        redirect_uri: redirect_uri.to_string(),
        state: state.to_string(),
    })
}

fn check_appid(config: &SimConfig, appid: Option<&str>) -> Result<(), Refusal> {
    match non_empty(appid) {
        None => Err(NO_APPID),
        Some(appid) if appid == config.appid => Ok(()),
        Some(_) => Err(BAD_APPID),
    }
}

fn check_state(state: Option<&str>) -> Result<&str, Refusal> {
    let state = non_empty(state).ok_or(NO_STATE)?;
    if state.len() > 128 || !state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(BAD_STATE);
    }
    Ok(state)
}

/// A raw `:` or `/` means the app forgot to encode redirect_uri, which
/// WeChat refuses even when the decoded value would be fine.
fn encoded(raw_query: &str) -> bool {
    !raw_value(raw_query, "redirect_uri").is_some_and(|v| v.contains([':', '/', '?']))
}

/// True when the raw query has exactly appid, redirect_uri, response_type,
/// scope, state in that order, then only `optional` keys, each at most once.
///
/// A link with no `state` at all passes here and is refused by the state
/// check with 10013 (state不能为空), the same answer as `state=`: WeChat's
/// document calls state optional, but its error table has 10013, and that
/// is what SDKs that leave out an empty state get.
fn order_ok(raw_query: &str, optional: &[&str]) -> bool {
    let keys: Vec<&str> = raw_query
        .split('&')
        .map(|part| part.split_once('=').map_or(part, |(k, _)| k))
        .collect();
    let without_state = REQUIRED_ORDER.len() - 1;
    let required = if keys.get(without_state) == Some(&"state") {
        REQUIRED_ORDER.len()
    } else {
        without_state
    };
    if keys.len() < required || keys[..required] != REQUIRED_ORDER[..required] {
        return false;
    }
    let rest = &keys[required..];
    rest.iter()
        .enumerate()
        .all(|(i, k)| optional.contains(k) && !rest[..i].contains(k))
}

/// The value of `key` as sent, before percent-decoding.
fn raw_value<'a>(raw_query: &'a str, key: &str) -> Option<&'a str> {
    raw_query.split('&').find_map(|part| {
        part.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

/// The 网页授权域名 rule: the host must equal the configured domain exactly
/// (no subdomains, no parent domain). WeChat also calls back only on ports
/// 80 and 443; the sim ignores the port because the demo runs on 8080.
/// In demo mode the app answers on every host it listens on (localhost, a
/// LAN address), following the browser: a plain http callback to one of
/// those, on the app's port, is the demo's own and is accepted too. Nothing
/// else is: the simulator never sends a browser to a host of the link's
/// choosing.
fn check_redirect_uri(uri: &str, config: &SimConfig) -> Result<(), Refusal> {
    // Read as the app reads its own URLs: `http://127.0.0.1@evil.example/`,
    // a classic way to fake the host, is no URL at all.
    let url = HttpUrl::parse(uri).ok_or(BAD_REDIRECT_URI)?;
    if on_our_domain(&url, config) {
        Ok(())
    } else {
        Err(DOMAIN_MISMATCH)
    }
}

/// The domain rule above, for a URL already read: its host is the
/// configured domain (any port), or in demo mode a plain http host and
/// port the demo app listens on. The JS-SDK's 「JS接口安全域名」 check
/// (jssdk.rs) applies the same rule to page URLs.
pub(super) fn on_our_domain(url: &HttpUrl, config: &SimConfig) -> bool {
    on_domain(url, &config.domain, config)
}

/// The same rule for another configured `domain` (the website app's
/// 授权回调域): demo mode's hosts are accepted there too.
fn on_domain(url: &HttpUrl, domain: &str, config: &SimConfig) -> bool {
    if url.authority().host().eq_ignore_ascii_case(domain) {
        return true;
    }
    let plain = !url.is_https();
    config
        .demo_app
        .is_some_and(|app| plain && host::listened(app, url.authority()).is_some())
}

pub(super) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "http%3A%2F%2F127.0.0.1%3A8080%2Fcallback";

    fn check(query: &str) -> Result<Link, Refusal> {
        let config = crate::tests::sim().config;
        check_link(
            &config,
            &Req::fake("GET", &format!("/connect/oauth2/authorize?{query}"), &[]),
        )
    }

    fn link(tail: &str) -> String {
        format!("appid=wxSIMAPPID0000001&redirect_uri={CB}&response_type=code&scope=snsapi_userinfo&state=abc{tail}")
    }

    #[test]
    fn parameter_order_is_strict() {
        assert!(order_ok(
            "appid=a&redirect_uri=b&response_type=code&scope=s&state=t",
            OPTIONAL
        ));
        assert!(order_ok(
            "appid=a&redirect_uri=b&response_type=code&scope=s&state=t&forcePopup=true&connect_redirect=1",
            OPTIONAL
        ));
        // No state: in order; the state check then answers 10013.
        assert!(order_ok(
            "appid=a&redirect_uri=b&response_type=code&scope=s",
            OPTIONAL
        ));
        for bad in [
            "redirect_uri=b&appid=a&response_type=code&scope=s&state=t",
            "appid=a&redirect_uri=b&response_type=code&state=t&scope=s",
            "appid=a&redirect_uri=b&response_type=code&scope=s&x=1",
            "appid=a&redirect_uri=b&response_type=code&scope=s&state=t&x=1",
            "appid=a&redirect_uri=b&response_type=code&scope=s&state=t&state=u",
            "appid=a&redirect_uri=b&response_type=code&scope=s&state=t&forcePopup=true&forcePopup=true",
            "",
        ] {
            assert!(!order_ok(bad, OPTIONAL), "{bad}");
        }
        assert_eq!(
            check(&format!("scope=snsapi_base&{}", link(""))).err(),
            Some(BAD_ORDER)
        );
    }

    #[test]
    fn links_are_checked_in_wechat_order() {
        assert!(check(&link("")).is_ok());
        assert!(check(&link("&connect_redirect=1&forcePopup=true")).is_ok_and(|l| l.force_popup));
        assert_eq!(check("redirect_uri=x").err(), Some(NO_APPID));
        assert_eq!(check("appid=wxOTHER").err(), Some(BAD_APPID));
        assert_eq!(
            check("appid=wxSIMAPPID0000001&scope=x").err(),
            Some(NO_REDIRECT_URI)
        );
        assert_eq!(
            check(&link("").replace("snsapi_userinfo", "")).err(),
            Some(NO_SCOPE)
        );
        assert_eq!(
            check(&link("").replace("=code", "=token")).err(),
            Some(BAD_RESPONSE_TYPE)
        );
        assert_eq!(
            check(&link("").replace("snsapi_userinfo", "snsapi_login")).err(),
            Some(BAD_SCOPE)
        );
        let raw = link("").replace(CB, "http://127.0.0.1:8080/callback");
        assert_eq!(check(&raw).err(), Some(NOT_ENCODED));
        let other = link("").replace("127.0.0.1", "localhost");
        assert_eq!(check(&other).err(), Some(DOMAIN_MISMATCH));
        assert_eq!(
            check(&link("").replace("state=abc", "state=")).err(),
            Some(NO_STATE)
        );
        // No state at all: the same answer, not a parameter-order error.
        assert_eq!(
            check(&link("").replace("&state=abc", "")).err(),
            Some(NO_STATE)
        );
        assert_eq!(
            check(&link("&connect_redirect=1").replace("&state=abc", "")).err(),
            Some(NO_STATE)
        );
        assert_eq!(
            check(&link("").replace("state=abc", "state=a-b")).err(),
            Some(BAD_STATE)
        );
        let long = "a".repeat(129);
        assert_eq!(
            check(&link("").replace("abc", &long)).err(),
            Some(BAD_STATE)
        );
        assert!(check(&link("").replace("abc", &long[..128])).is_ok());
    }

    fn config(domain: &str, demo_app: Option<&str>) -> SimConfig {
        SimConfig {
            domain: domain.into(),
            demo_app: demo_app.map(|a| a.parse().unwrap()),
            ..crate::tests::sim().config
        }
    }

    #[test]
    fn redirect_uri_host_must_equal_the_domain() {
        let sim = config("127.0.0.1", None);
        let ok = |uri: &str| check_redirect_uri(uri, &sim);
        assert_eq!(ok("http://127.0.0.1:8080/callback"), Ok(()));
        assert_eq!(ok("HTTPS://127.0.0.1/cb?x=1"), Ok(()));
        assert_eq!(ok("http://127.0.0.1"), Ok(()));
        assert_eq!(ok("http://127.0.0.2/cb"), Err(DOMAIN_MISMATCH));
        assert_eq!(ok("http://127.0.0.1.evil.example/cb"), Err(DOMAIN_MISMATCH));
        assert_eq!(ok("http://evil.example\\@127.0.0.1/"), Err(DOMAIN_MISMATCH));
        assert_eq!(ok("http://127.0.0.1@evil.example/"), Err(BAD_REDIRECT_URI));
        assert_eq!(ok("127.0.0.1/callback"), Err(BAD_REDIRECT_URI));
        assert_eq!(ok("ftp://127.0.0.1/"), Err(BAD_REDIRECT_URI));
        assert_eq!(ok("http://127.0.0.1:80x/"), Err(BAD_REDIRECT_URI));
        assert_eq!(ok("http:///cb"), Err(BAD_REDIRECT_URI));
        assert_eq!(ok("http://127.0.0.1:99999/"), Err(BAD_REDIRECT_URI));
        assert_eq!(ok("http://[::1]x:8080/"), Err(BAD_REDIRECT_URI));
        assert_eq!(ok("http://[127.0.0.1]/"), Err(BAD_REDIRECT_URI));
        // An IPv6 domain is written without brackets (Authority::host).
        let v6 = config("::1", None);
        assert_eq!(
            check_redirect_uri("http://[::1]:8080/callback", &v6),
            Ok(())
        );
        assert_eq!(
            check_redirect_uri("http://[::2]:8080/callback", &v6),
            Err(DOMAIN_MISMATCH)
        );
        let qq = config("www.qq.com", None);
        let www = |uri: &str| check_redirect_uri(uri, &qq);
        assert_eq!(www("https://www.qq.com/a/b"), Ok(()));
        assert_eq!(www("https://pay.qq.com/"), Err(DOMAIN_MISMATCH));
        assert_eq!(www("https://qq.com/"), Err(DOMAIN_MISMATCH));
    }

    #[test]
    fn in_demo_mode_a_callback_to_any_host_the_app_listens_on_is_accepted() {
        // The app on every address, port 8080; the configured domain 127.0.0.1.
        let sim = config("127.0.0.1", Some("0.0.0.0:8080"));
        let ok = |uri: &str| check_redirect_uri(uri, &sim);
        assert_eq!(ok("http://localhost:8080/callback"), Ok(()));
        assert_eq!(ok("http://127.0.0.2:8080/callback"), Ok(()));
        assert_eq!(
            ok("http://127.0.0.1:9999/callback"),
            Ok(()),
            "the domain, any port"
        );
        for foreign in [
            "http://localhost:9999/callback",
            "http://127.0.0.2:9999/callback",
            "https://localhost:8080/callback",
            "http://evil.example:8080/callback",
            "http://203.0.113.9:8080/callback",
            "http://localhost:8080@evil.example/callback",
        ] {
            assert_ne!(ok(foreign), Ok(()), "{foreign}");
        }
        // The app on loopback only: a LAN address is not the demo's.
        let lo = config("127.0.0.1", Some("127.0.0.1:8080"));
        assert_eq!(
            check_redirect_uri("http://127.0.0.2:8080/", &lo),
            Err(DOMAIN_MISMATCH)
        );
        assert_eq!(check_redirect_uri("http://localhost:8080/", &lo), Ok(()));
        // `wxauth sim` (not demo mode): the domain and nothing else.
        let strict = config("127.0.0.1", None);
        assert_eq!(
            check_redirect_uri("http://localhost:8080/", &strict),
            Err(DOMAIN_MISMATCH)
        );
    }
}

#[cfg(test)]
mod qr_tests {
    use super::*;

    const CB: &str = "https%3A%2F%2Fwww.example.com%2Flogin%2Fqr%2Fcallback";

    fn web_config() -> SimConfig {
        crate::qrconnect::tests::web_sim().config
    }

    fn check(config: &SimConfig, query: &str) -> Result<QrLink, Refusal> {
        check_qr_link(
            config,
            &Req::fake("GET", &format!("/connect/qrconnect?{query}"), &[]),
        )
    }

    fn qr_link(appid: &str, scope: &str) -> String {
        format!("appid={appid}&redirect_uri={CB}&response_type=code&scope={scope}&state=xyz")
    }

    const WEB: &str = crate::qrconnect::tests::WEB_APPID;

    #[test]
    fn a_good_link_passes_with_or_without_lang() {
        let config = web_config();
        let link = check(&config, &qr_link(WEB, "snsapi_login")).expect("ok");
        assert_eq!(link.appid, WEB);
        assert_eq!(
            link.redirect_uri,
            "https://www.example.com/login/qr/callback"
        );
        assert_eq!(link.state, "xyz");
        assert!(check(&config, &(qr_link(WEB, "snsapi_login") + "&lang=en")).is_ok());
        // The Official Account's extras are not qrconnect's.
        let extra = qr_link(WEB, "snsapi_login") + "&forcePopup=true";
        assert_eq!(check(&config, &extra).err(), Some(BAD_ORDER));
    }

    #[test]
    fn the_official_accounts_appid_or_another_scope_is_a_scope_error() {
        let config = web_config();
        for query in [
            qr_link(&config.appid, "snsapi_login"),
            qr_link(WEB, "snsapi_userinfo"),
            qr_link(WEB, "snsapi_base"),
            qr_link("", "snsapi_login"),
            qr_link(WEB, ""),
        ] {
            assert_eq!(check(&config, &query).err(), Some(SCOPE_ERROR), "{query}");
        }
    }

    #[test]
    fn without_a_website_app_every_link_is_refused_with_a_hint() {
        let config = crate::tests::sim().config;
        let refusal = check(&config, &qr_link(WEB, "snsapi_login")).err();
        assert_eq!(refusal, Some(NO_WEB_APP));
        assert_eq!(NO_WEB_APP.message, SCOPE_ERROR.message);
        assert!(NO_WEB_APP.hint.is_some_and(|h| h.contains("web_app")));
    }

    #[test]
    fn the_callback_must_be_on_the_websites_domain() {
        let config = web_config();
        let link = qr_link(WEB, "snsapi_login");
        // The Official Account's domain is not the website app's.
        let oa = link.replace("www.example.com", "127.0.0.1%3A8080");
        assert_eq!(check(&config, &oa).err(), Some(BAD_REDIRECT_URI));
        let sub = link.replace("www.example.com", "evil.www.example.com");
        assert_eq!(check(&config, &sub).err(), Some(BAD_REDIRECT_URI));
        let raw = link.replace(CB, "https://www.example.com/cb");
        assert_eq!(check(&config, &raw).err(), Some(NOT_ENCODED));
        let empty = link.replace(CB, "");
        assert_eq!(check(&config, &empty).err(), Some(BAD_REDIRECT_URI));
        // Demo mode: the demo app's own hosts, as for the Official Account.
        let demo = SimConfig {
            demo_app: Some("127.0.0.1:8080".parse().unwrap()),
            ..web_config()
        };
        let local = link.replace(
            "https%3A%2F%2Fwww.example.com",
            "http%3A%2F%2Flocalhost%3A8080",
        );
        assert!(check(&demo, &local).is_ok());
        let elsewhere = local.replace("8080", "9999");
        assert_eq!(check(&demo, &elsewhere).err(), Some(BAD_REDIRECT_URI));
    }

    #[test]
    fn order_response_type_and_state_are_checked_as_for_authorize() {
        let config = web_config();
        let link = qr_link(WEB, "snsapi_login");
        let swapped = format!(
            "redirect_uri={CB}&appid={WEB}&response_type=code&scope=snsapi_login&state=xyz"
        );
        assert_eq!(check(&config, &swapped).err(), Some(BAD_ORDER));
        let token = link.replace("=code", "=token");
        assert_eq!(check(&config, &token).err(), Some(BAD_RESPONSE_TYPE));
        let dash = link.replace("state=xyz", "state=x-y");
        assert_eq!(check(&config, &dash).err(), Some(BAD_STATE));
        let none = link.replace("&state=xyz", "");
        assert_eq!(check(&config, &none).err(), Some(NO_STATE));
    }
}
