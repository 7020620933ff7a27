//! The site as the browser reaches it. Demo mode follows the host the
//! browser used when the demo listens there (localhost, 127.0.0.1, any of
//! the machine's addresses when bound to 0.0.0.0), so a login begun on one
//! host comes back to it; a Host naming anything else changes nothing. Real
//! mode never follows the Host, and a callback that fails on another host
//! says where to open the site. Loopback only: "another address of the
//! machine" is 127.0.0.2.

use crate::support::{
    attribute, origin_of, qr_holds, start, start_real, start_with, url_param, Browser, Resp, Stack,
};
use std::collections::{BTreeMap, HashMap};

/// A browser that keeps cookies per host, as browsers do: a cookie set on
/// `localhost` is not sent to `127.0.0.1`. `localhost` is reached at
/// 127.0.0.1 with the name in the Host header (no name lookup).
struct Visitor {
    browser: Browser,
    jars: HashMap<String, BTreeMap<String, String>>,
}

/// `host:port` of an absolute URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or("")
}

impl Visitor {
    fn new() -> Visitor {
        Visitor {
            browser: Browser::new(),
            jars: HashMap::new(),
        }
    }

    /// A desktop browser (the QR page on /login).
    fn desktop() -> Visitor {
        let mut v = Visitor::new();
        v.browser.user_agent =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36".into();
        v
    }

    /// Runs `f` with this host's cookie jar, on the URL as the socket sees it.
    fn at<T>(&mut self, url: &str, f: impl FnOnce(&mut Browser, &str, &str) -> T) -> T {
        let host = authority(url).to_string();
        let name = host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n);
        let jar = self.jars.remove(name).unwrap_or_default();
        self.browser.jar = jar;
        let connect = url.replacen("//localhost:", "//127.0.0.1:", 1);
        let out = f(&mut self.browser, &connect, &host);
        self.jars
            .insert(name.to_string(), std::mem::take(&mut self.browser.jar));
        out
    }

    fn get(&mut self, url: &str) -> Resp {
        self.at(url, |b, connect, host| {
            b.get_with(connect, &[("Host", host)])
        })
    }

    /// A form post from a page of the same site (its Origin).
    fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Resp {
        let origin = origin_of(url);
        self.at(url, |b, connect, host| {
            b.post_with(connect, form, &[("Host", host), ("Origin", &origin)])
        })
    }

    /// WeChat's (the simulator's) side of a login: 允许 as test user 0.
    fn consent(&mut self, authorize: &str) -> String {
        self.at(authorize, |b, connect, _| b.consent(connect, 0, true))
    }
}

/// The redirect_uri an authorize URL carries, decoded.
fn redirect_uri(authorize: &str) -> String {
    let uri = url_param(authorize, "redirect_uri");
    assert!(!uri.is_empty(), "a redirect_uri in {authorize}");
    uri
}

/// A whole login begun at `site` (`http://host:port`): /login, WeChat,
/// the callback, the profile. Checks each step stays on `site`.
fn log_in_at(visitor: &mut Visitor, site: &str, sim: &str) {
    let home = visitor.get(&format!("{site}/"));
    assert_eq!(home.status, 200, "{site}: {}", home.body);
    let login = visitor.get(&format!("{site}/login"));
    assert_eq!(login.status, 302, "{site}: {}", login.body);
    let authorize = login.location().to_string();
    assert!(
        authorize.starts_with(&format!("{sim}/connect/oauth2/authorize?")),
        "{site}: WeChat should be the simulator at {sim}: {authorize}"
    );
    assert_eq!(redirect_uri(&authorize), format!("{site}/callback"));
    let callback = visitor.consent(&authorize);
    assert!(
        callback.starts_with(&format!("{site}/callback?")),
        "{callback}"
    );
    let done = visitor.get(&callback);
    assert_eq!(done.status, 302, "{site}: the callback: {}", done.body);
    assert_eq!(done.location(), "/profile");
    let profile = visitor.get(&format!("{site}/profile"));
    assert_eq!(profile.status, 200, "{site}");
    assert!(
        profile.body.contains("熊猫🐼小明"),
        "{site}: {}",
        profile.body
    );
    // A form on that page posts with that origin: the site's own.
    let out = visitor.post(&format!("{site}/profile/refresh"), &[]);
    assert_eq!(out.status, 303, "{site}: {}", out.body);
}

fn port(stack: &Stack) -> u16 {
    stack.app.addr.port()
}

#[test]
fn the_demo_logs_in_on_localhost_and_on_127_0_0_1() {
    let stack = start();
    let sim_port = authority(&stack.sim_url)
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    for host in ["localhost", "127.0.0.1"] {
        let mut visitor = Visitor::new();
        let site = format!("http://{host}:{}", port(&stack));
        // The simulator is bound to 127.0.0.1: the browser is sent there.
        log_in_at(&mut visitor, &site, &format!("http://127.0.0.1:{sim_port}"));
        assert!(
            visitor
                .jars
                .get(host)
                .is_some_and(|j| j.contains_key("wxauth_session")),
            "the session cookie is {host}'s"
        );
    }
}

#[test]
fn a_demo_on_every_address_logs_in_on_each_of_them() {
    let stack = start_with(&[
        ("WXAUTH_LISTEN", "0.0.0.0:0"),
        ("WXAUTH_SIM_LISTEN", "0.0.0.0:0"),
    ]);
    let sim_port = authority(&stack.sim_url)
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    for (host, sim_host) in [
        ("127.0.0.1", "127.0.0.1"),
        // Another address of this machine (a phone on the LAN, in real life):
        // the simulator is sent to it too, where the phone can reach it.
        ("127.0.0.2", "127.0.0.2"),
        ("localhost", "127.0.0.1"),
    ] {
        let mut visitor = Visitor::new();
        let site = format!("http://{host}:{}", port(&stack));
        log_in_at(
            &mut visitor,
            &site,
            &format!("http://{sim_host}:{sim_port}"),
        );
        // The desktop's QR code holds an address the phone can open: these
        // are all loopback, which on a phone is the phone itself, so the
        // machine's LAN address when it has one (the test never opens it).
        let lan = wxauth_app::web::site::lan_addresses("0.0.0.0".parse().unwrap());
        let phone = match lan.first() {
            Some(ip) => format!("http://{}", std::net::SocketAddr::new(*ip, port(&stack))),
            None => site.clone(),
        };
        let qr = Visitor::desktop()
            .get(&format!("{site}/login?via=scan"))
            .body;
        let ticket = attribute(&qr, "data-ticket");
        let scan_url = format!("{phone}/login/scan?t={ticket}");
        assert!(
            qr_holds(&qr, &scan_url),
            "{host}: the QR code holds {scan_url}"
        );
    }
}

#[test]
fn a_foreign_host_is_never_followed_in_demo_mode() {
    let stack = start();
    let app = port(&stack);
    let configured = format!("http://127.0.0.1:{app}");
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{app}"),
        // DNS rebinding: a name pointed at the demo is another origin.
        format!("rebind.evil.example:{app}"),
        // Not an address the demo listens on (it is bound to 127.0.0.1).
        format!("127.0.0.2:{app}"),
        format!("127.0.0.1:{}", app.wrapping_add(1)),
        format!("127.0.0.1:{app}@evil.example"),
    ] {
        let mut browser = Browser::new();
        let login = browser.get_with(&stack.url("/login"), &[("Host", &host)]);
        assert_eq!(login.status, 302, "{host}");
        let authorize = login.location();
        assert!(authorize.starts_with(&stack.sim_url), "{host}: {authorize}");
        assert_eq!(
            redirect_uri(authorize),
            format!("{configured}/callback"),
            "{host}"
        );
        browser.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0".into();
        let qr = browser.get_with(&stack.url("/login?via=scan"), &[("Host", &host)]);
        assert!(
            qr.body.contains(&format!("{configured}/login/scan?t=")),
            "{host}"
        );
        assert!(!qr.body.contains("evil.example") && !qr.body.contains("127.0.0.2"));
    }
    // A page on a rebound name cannot post to the demo as if it were it.
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    let host = format!("rebind.evil.example:{app}");
    let origin = format!("http://{host}");
    let logout = browser.post_with(
        &stack.url("/logout"),
        &[],
        &[("Host", &host), ("Origin", &origin)],
    );
    assert_eq!(logout.status, 403, "{}", logout.body);
    assert_eq!(
        browser.get(&stack.url("/api/me")).status,
        200,
        "still logged in"
    );
    // The simulator sends no browser to a host the demo does not listen on.
    let wrong =
        wxauth_app::transport::http::encode_component(&format!("http://127.0.0.2:{app}/callback"));
    let link = format!(
        "{}/connect/oauth2/authorize?appid={}&redirect_uri={wrong}&response_type=code&scope=snsapi_userinfo&state=abc",
        stack.sim_url,
        wxauth_app::config::DEMO_APPID
    );
    let page = Browser::new().get(&link);
    assert!(page.body.contains("10003"), "{}", page.body);
}

#[test]
fn real_mode_never_follows_the_host() {
    let stack = start_real(&[]);
    let app = port(&stack);
    for host in [format!("localhost:{app}"), format!("evil.example:{app}")] {
        let mut browser = Browser::new();
        let login = browser.get_with(&stack.url("/login"), &[("Host", &host)]);
        assert_eq!(
            redirect_uri(login.location()),
            stack.url("/callback"),
            "{host}"
        );
        assert!(login.location().starts_with(&stack.sim_url));
        browser.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0".into();
        let qr = browser.get_with(&stack.url("/login?via=scan"), &[("Host", &host)]);
        let ticket = attribute(&qr.body, "data-ticket");
        let scan_url = stack.url(&format!("/login/scan?t={ticket}"));
        assert!(
            qr_holds(&qr.body, &scan_url),
            "{host}: the QR code holds {scan_url}"
        );
        // Nor is a post from the host the request names taken as our own.
        let mut user = Browser::new();
        user.login_as(&stack, 0);
        let origin = format!("http://{host}");
        let logout = user.post_with(
            &stack.url("/logout"),
            &[],
            &[("Host", &host), ("Origin", &origin)],
        );
        assert_eq!(logout.status, 403, "{host}");
    }
}

#[test]
fn a_callback_that_fails_on_another_host_says_where_to_open_the_site() {
    // PUBLIC_URL is http://127.0.0.1:PORT; the visitor began at localhost.
    let stack = start_real(&[]);
    let app = port(&stack);
    let mut visitor = Visitor::new();
    let login = visitor.get(&format!("http://localhost:{app}/login"));
    let callback = visitor.consent(login.location());
    // WeChat sends the browser to PUBLIC_URL, where there is no login
    // cookie: a plain bad state there (the host is the site's own).
    assert!(callback.starts_with(&stack.url("/callback?")), "{callback}");
    let there = visitor.get(&callback);
    assert_eq!(there.status, 400);
    // The same callback arriving on a host other than PUBLIC_URL's, without
    // its login: the page names the site's address and links to it.
    let elsewhere = callback.replace("127.0.0.1", "localhost");
    let mut stranger = Visitor::new();
    let page = stranger.get(&elsewhere);
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("请从本站的地址打开"), "{}", page.body);
    let site = stack.url("/");
    assert!(
        page.body.contains(&format!("href=\"{site}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!(">{site}<")), "{}", page.body);
    // With its login cookie the same callback on the other host works (a
    // proxy that does not pass Host on): the log says so, the user is in.
    let worked = visitor.get(&elsewhere);
    assert_eq!(worked.status, 302, "{}", worked.body);
    assert_eq!(worked.location(), "/profile");
}
