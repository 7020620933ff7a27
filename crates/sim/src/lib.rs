//! The WeChat simulator: open.weixin.qq.com (authorize, consent) and
//! api.weixin.qq.com (sns/*, cgi-bin token, menu and jsapi_ticket) on one
//! loopback port, plus `/sim/*` controls for tests and demos, pushes of
//! signed events to the app, and the client side of the JS-SDK (`wx.config`). Behaves like WeChat (see docs/wechat.md) so that code that works here
//! works there. Single-threaded; never imported by the app's modules.

mod authorize;
mod base_token;
mod cgi;
mod control;
mod faults;
mod jssdk;
mod link;
mod menu;
mod push;
mod qrconnect;
mod sns;
mod state;
mod ticket;
mod users;

use base_token::BaseTokens;
use faults::{Endpoint, Faults};
use minijinja::value::{Serde, Value};
use minijinja::{context, Environment, UndefinedBehavior};
use state::Store;
use std::collections::VecDeque;
use std::time::Duration;
use ticket::JsapiTickets;
use wxauth_app::clock::Clock;
use wxauth_app::log;
use wxauth_app::transport::http::{Method, Reply, Req};
use wxauth_app::transport::listener::{Listener, Running};
use wxauth_app::transport::service::{Job, Outcome, Service};

/// Who the simulator pretends to be for.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub appid: String,
    pub secret: String,
    /// Name of the Official Account shown on the consent page, e.g. "wxauth 演示".
    pub app_name: String,
    /// The 网页授权域名: a host name only (no scheme, no port, no path), e.g. "127.0.0.1".
    pub domain: String,
    /// Demo mode: where the app is bound. It follows the host the browser
    /// used (site.rs), so a callback to any host it listens on there (and
    /// only those) is accepted besides `domain`. None for `wxauth sim`.
    pub demo_app: Option<std::net::SocketAddr>,
    /// Demo mode: where `/sim/push` sends by default, so the simulator's
    /// page can push to the demo app without its secrets reaching the
    /// browser. None for `wxauth sim` and tests, which name them per push.
    pub push_target: Option<PushTarget>,
    /// The Open Platform website app (网站应用) whose QR login
    /// (`/connect/qrconnect`, scope snsapi_login) the simulator plays too.
    /// None: qrconnect refuses every link, as WeChat does for an appid
    /// without snsapi_login.
    pub web_app: Option<WebApp>,
}

/// An Open Platform website app: its own credentials, apart from the
/// Official Account's. Debug hides the secret.
#[derive(Clone)]
pub struct WebApp {
    /// The website app's own appid (not the Official Account's).
    pub appid: String,
    /// The website app's own AppSecret.
    pub secret: String,
    /// Its 授权回调域: a host name only (no scheme, no port, no path). In
    /// demo mode the demo app's hosts are accepted too, as for `domain`.
    pub domain: String,
}

impl std::fmt::Debug for WebApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebApp")
            .field("appid", &self.appid)
            .field("secret", &"****")
            .field("domain", &self.domain)
            .finish()
    }
}

/// The demo app's message endpoint and the secrets demo mode made up for
/// it: `/sim/push` fills in `url`, `token` and `aes_key` from here when a
/// push leaves them out. Never shown on a page; Debug hides the secrets.
#[derive(Clone)]
pub struct PushTarget {
    /// The demo app's `/wechat` URL on loopback.
    pub url: String,
    /// The app's WXAUTH_TOKEN.
    pub token: String,
    /// The app's EncodingAESKey, when demo mode gave it one (safe and
    /// compat pushes need it).
    pub aes_key: Option<String>,
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTarget")
            .field("url", &self.url)
            .field("token", &"****")
            .field("aes_key", &self.aes_key.as_ref().map(|_| "****"))
            .finish()
    }
}

/// The simulator's state: one instance serves one loop, so no locks.
pub struct Sim {
    config: SimConfig,
    env: Environment<'static>,
    /// The simulator's own clock; `/sim/control advance=` moves it.
    clock: Clock,
    store: Store,
    /// The account's base access_tokens (cgi-bin), apart from the sns ones.
    base_tokens: BaseTokens,
    /// The custom menu as sent to cgi-bin/menu/create, checked JSON.
    menu: Option<String>,
    /// The JS-SDK's jsapi_tickets (cgi-bin/ticket/getticket).
    jsapi_tickets: JsapiTickets,
    faults: Faults,
    /// API calls per `faults::Endpoint`, failed ones included.
    calls: [u64; Endpoint::COUNT],
    /// Every callback URL that carried a code, oldest first.
    callbacks: VecDeque<String>,
    double_callback: bool,
    snapshot: bool,
    /// Milliseconds every API answer is held back (`latency=`), like
    /// WeChat's real round trip from a VPS.
    latency: u64,
    /// How long the answer being built is held back (latency plus a `slow`
    /// fault): a worker sleeps, so other requests go on meanwhile.
    delay: u64,
}

/// How many callback URLs `/sim/state` remembers.
const MAX_CALLBACKS: usize = 100;

const TEMPLATES: &[(&str, &str)] = &[
    ("consent.html", include_str!("../templates/consent.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("push.html", include_str!("../templates/push.html")),
    (
        "qrconnect.html",
        include_str!("../templates/qrconnect.html"),
    ),
];

type Handler = fn(&mut Sim, &Req) -> Reply;

/// Every URL the simulator answers; the only list of them.
const ROUTES: &[(Method, &str, Handler)] = &[
    (Method::Get, "/", index),
    (Method::Get, "/sim", index),
    // Browsers ask for it on every page; a 404 in the console helps no one.
    (Method::Get, "/favicon.ico", favicon),
    (
        Method::Get,
        "/connect/oauth2/authorize",
        authorize::authorize,
    ),
    (
        Method::Post,
        "/connect/oauth2/authorize/confirm",
        authorize::confirm,
    ),
    (Method::Get, "/connect/qrconnect", qrconnect::qrconnect),
    (
        Method::Post,
        "/connect/qrconnect/confirm",
        qrconnect::confirm,
    ),
    (Method::Get, "/sns/oauth2/access_token", sns::access_token),
    (Method::Get, "/sns/oauth2/refresh_token", sns::refresh_token),
    (Method::Get, "/sns/userinfo", sns::userinfo),
    (Method::Get, "/sns/auth", sns::auth),
    (Method::Get, "/cgi-bin/token", cgi::token),
    (Method::Post, "/cgi-bin/stable_token", cgi::stable_token),
    (Method::Post, "/cgi-bin/menu/create", cgi::menu_create),
    (Method::Get, "/cgi-bin/menu/get", cgi::menu_get),
    (Method::Get, "/cgi-bin/menu/delete", cgi::menu_delete),
    (Method::Get, "/cgi-bin/ticket/getticket", cgi::getticket),
    (Method::Get, "/sim/jssdk/check", jssdk::check),
    (Method::Get, "/sim/jweixin.js", jssdk::jweixin),
    (Method::Post, "/sim/control", control::control),
    (Method::Get, "/sim/state", control::state),
    (Method::Post, "/sim/push", push::push),
];

impl Sim {
    /// A simulator for `config`, with fresh stores and its own clock.
    pub fn new(config: SimConfig) -> Sim {
        let mut env = Environment::new();
        // A typo in a template fails a test instead of rendering a blank.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("embedded sim templates parse; see the render tests");
        }
        Sim {
            config,
            env,
            clock: Clock::new(),
            store: Store::new(),
            base_tokens: BaseTokens::new(),
            menu: None,
            jsapi_tickets: JsapiTickets::new(),
            faults: Faults::default(),
            calls: [0; Endpoint::COUNT],
            callbacks: VecDeque::new(),
            double_callback: false,
            snapshot: false,
            latency: 0,
            delay: 0,
        }
    }

    /// Renders a page; a template error is logged and becomes a plain 500.
    fn render(&self, name: &str, ctx: Value) -> Reply {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => Reply::html(html).with_header("Cache-Control", "no-store"),
            Err(e) => {
                log::error(&format!("sim: rendering {name}: {e:#}"));
                Reply::text(500, "sim: template error\n")
            }
        }
    }

    /// WeChat's grey error page for the browser side (the authorize link).
    fn error_page(&self, status: u16, errcode: Option<i64>, message: &str) -> Reply {
        self.grey_page(status, errcode, message, None)
    }

    /// The grey error page for a refused link or form, with the
    /// simulator's hint when it has one.
    fn refusal_page(&self, refusal: &link::Refusal) -> Reply {
        self.grey_page(400, refusal.errcode, refusal.message, refusal.hint)
    }

    fn grey_page(
        &self,
        status: u16,
        errcode: Option<i64>,
        message: &str,
        hint: Option<&str>,
    ) -> Reply {
        let ctx = context! {
            app_name => self.config.app_name.as_str(),
            errcode => errcode.map(|c| c.to_string()).unwrap_or_default(),
            message => message,
            hint => hint.unwrap_or_default(),
        };
        self.render("error.html", ctx).with_status(status)
    }

    /// The website app, if `appid` is its appid.
    fn web_app_of(&self, appid: &str) -> Option<&WebApp> {
        self.config
            .web_app
            .as_ref()
            .filter(|web| web.appid == appid)
    }

    /// Remembers a callback URL for `/sim/state`, dropping the oldest.
    fn record_callback(&mut self, url: String) {
        if self.callbacks.len() >= MAX_CALLBACKS {
            self.callbacks.pop_front();
        }
        self.callbacks.push_back(url);
    }

    fn not_found(&self, req: &Req) -> Reply {
        let api = ["/sns/", "/cgi-bin/", "/sim/"]
            .iter()
            .any(|p| req.path.starts_with(p));
        if api {
            Reply::json(&serde_json::json!({ "error": "not found" })).with_status(404)
        } else {
            self.error_page(404, None, "页面不存在")
        }
    }
}

impl Sim {
    fn route(&mut self, req: &Req) -> Reply {
        let mut allowed: Vec<&str> = Vec::new();
        for (method, path, handler) in ROUTES {
            if *path != req.path {
                continue;
            }
            if *method == req.method {
                return handler(self, req);
            }
            allowed.push(method.as_str());
        }
        if allowed.is_empty() {
            return self.not_found(req);
        }
        Reply::text(405, "method not allowed\n").with_header("Allow", &allowed.join(", "))
    }
}

impl Service for Sim {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn handle(&mut self, req: &Req) -> Outcome<Sim> {
        self.delay = 0;
        let reply = self.route(req);
        match std::mem::take(&mut self.delay) {
            0 => reply.into(),
            // The answer is ready; a worker holds it back, the loop goes on.
            ms => Outcome::Wait(Job::new(
                move || std::thread::sleep(Duration::from_millis(ms)),
                move |_: &mut Sim, ()| reply.into(),
            )),
        }
    }

    fn error_reply(&mut self, status: u16) -> Reply {
        // Plain text: this runs after a panic or a broken size limit, when
        // the less that can go wrong, the better.
        Reply::text(status, &format!("sim: error {status}\n"))
    }
}

/// Serves the simulator on its own thread (demo mode, tests). Dropping the Running stops it.
pub fn start(listener: Listener, config: SimConfig) -> Running {
    listener.spawn(Sim::new(config))
}

/// `GET /favicon.ico`: the app's icon (an SVG, which browsers take here too),
/// embedded from the app's assets rather than asked of the app's web layer.
fn favicon(_sim: &mut Sim, _req: &Req) -> Reply {
    const ICON: &[u8] = include_bytes!("../../app/static/favicon.svg");
    Reply::with_body(200, "image/svg+xml", ICON.to_vec())
        .with_header("Cache-Control", "public, max-age=86400")
}

/// `GET /` and `/sim`: what this is, the users, the switches (for demos).
fn index(sim: &mut Sim, _req: &Req) -> Reply {
    let users: Vec<_> = users::USERS
        .iter()
        .enumerate()
        .map(|(i, u)| {
            serde_json::json!({
                "index": i,
                "openid": u.openid,
                "web_openid": users::web_openid(u),
                "nickname": users::display_nickname(u),
                "unionid": u.unionid.unwrap_or(""),
                "note": u.note,
            })
        })
        .collect();
    let ctx = context! {
        app_name => sim.config.app_name.as_str(),
        appid => sim.config.appid.as_str(),
        domain => sim.config.domain.as_str(),
        demo_hosts => sim.config.demo_app.is_some(),
        // The website app's appid and domain; never its secret.
        web_app => sim.config.web_app.as_ref().map(|web| context! {
            appid => web.appid.as_str(),
            domain => web.domain.as_str(),
        }),
        // Only whether there is a target and a key: never the secrets.
        push_target => sim.config.push_target.is_some(),
        push_encrypted => sim.config.push_target.as_ref().is_some_and(|t| t.aes_key.is_some()),
        users => Value::from(Serde(users)),
        state => Value::from(Serde(control::state_json(sim))),
    };
    sim.render("index.html", ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sim() -> Sim {
        Sim::new(SimConfig {
            appid: "wxSIMAPPID0000001".into(),
            secret: "simsecret".into(),
            app_name: "wxauth 演示".into(),
            domain: "127.0.0.1".into(),
            demo_app: None,
            push_target: None,
            web_app: None,
        })
    }

    #[test]
    fn every_template_renders() {
        let mut s = sim();
        let page = s.route(&Req::fake("GET", "/", &[]));
        assert_eq!(page.status, 200);
        let page = s.error_page(400, Some(10003), "redirect_uri域名与后台配置不一致");
        assert!(String::from_utf8_lossy(&page.body).contains("10003"));
    }

    /// A form POST to `path`, as a browser sends it.
    pub(super) fn post_form(path: &str, body: &str) -> Req {
        let headers = vec![(
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        )];
        Req::new(Method::Post, path, headers, body.as_bytes().to_vec())
    }

    /// A loopback port where nothing listens.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    fn demo_sim(aes_key: Option<&str>) -> Sim {
        Sim::new(SimConfig {
            push_target: Some(PushTarget {
                url: format!("http://127.0.0.1:{}/wechat", closed_port()),
                token: "demoTokenNotForPages".into(),
                aes_key: aes_key.map(String::from),
            }),
            ..sim().config
        })
    }

    const DEMO_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn the_push_form_is_on_the_index_page_in_demo_mode_only() {
        let page = |s: &mut Sim| {
            let r = s.route(&Req::fake("GET", "/sim", &[]));
            assert_eq!(r.status, 200);
            String::from_utf8(r.body).unwrap()
        };
        let html = page(&mut sim());
        assert!(html.contains("mode=safe") && html.contains("bad_msg_signature=1"));
        assert!(!html.contains("向演示应用推送"), "{html}");
        let html = page(&mut demo_sim(Some(DEMO_KEY)));
        for part in [
            "向演示应用推送",
            "<form method=\"post\" action=\"/sim/push\">",
            "name=\"view\" value=\"page\"",
            "name=\"content\" value=\"登录\"",
            "<option value=\"subscribe\">",
            "<option value=\"safe\">安全</option>",
            "<option value=\"compat\">兼容</option>",
        ] {
            assert!(html.contains(part), "{part} not in {html}");
        }
        assert!(!html.contains("demoTokenNotForPages") && !html.contains(DEMO_KEY));
        // Without a key only plaintext can be pushed.
        let html = page(&mut demo_sim(None));
        assert!(html.contains("向演示应用推送") && !html.contains("value=\"safe\""));
    }

    #[test]
    fn the_push_form_answers_with_a_page() {
        // Nothing listens at the target: the page still tells what was sent.
        let mut s = demo_sim(Some(DEMO_KEY));
        let r = s.route(&post_form(
            "/sim/push",
            "kind=text&content=%E7%99%BB%E5%BD%95&mode=safe&view=page",
        ));
        assert_eq!(
            (r.status, r.header("Content-Type")),
            (200, Some("text/html; charset=utf-8"))
        );
        let html = String::from_utf8(r.body).unwrap();
        for part in [
            "安全模式",
            "&lt;Content&gt;&lt;![CDATA[登录]]&gt;",
            "Encrypt 元素",
            "没有连上应用",
            "href=\"/sim\"",
        ] {
            assert!(html.contains(part), "{part} not in {html}");
        }
        assert!(!html.contains("demoTokenNotForPages") && !html.contains(DEMO_KEY));
        // A wrong field: an error page, not JSON.
        let r = s.route(&post_form("/sim/push", "kind=tap&view=page"));
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("没有推送"));
        // The JSON answer for the same push.
        let r = s.route(&post_form("/sim/push", "kind=subscribe&mode=compat"));
        assert_eq!(r.status, 200);
        let report: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(report["mode"], "compat");
        assert!(
            report["encrypt"].is_string() && report["xml"].is_string(),
            "{report}"
        );
        assert_eq!(report["answers"][0]["status"], 0, "{report}");
    }

    #[test]
    fn the_index_page_documents_the_js_sdk_and_counts_live_tickets() {
        let mut s = sim();
        s.jsapi_tickets.get("wxSIMAPPID0000001", s.clock.now());
        let r = s.route(&Req::fake("GET", "/sim", &[]));
        let html = String::from_utf8(r.body).unwrap();
        for part in [
            "/cgi-bin/ticket/getticket?access_token=…&amp;type=jsapi",
            "/sim/jssdk/check?appId=",
            "/sim/jweixin.js",
            "有效的 jsapi_ticket：1 个",
            "<code>getticket</code> 0",
        ] {
            assert!(html.contains(part), "{part} not in {html}");
        }
    }

    #[test]
    fn the_favicon_is_served() {
        let r = sim().route(&Req::fake("GET", "/favicon.ico", &[]));
        assert_eq!(
            (r.status, r.header("Content-Type")),
            (200, Some("image/svg+xml"))
        );
        assert!(String::from_utf8_lossy(&r.body).contains("<svg"));
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        let mut s = sim();
        assert_eq!(s.route(&Req::fake("GET", "/nope", &[])).status, 404);
        assert_eq!(s.route(&Req::fake("GET", "/sns/nope", &[])).status, 404);
        let r = s.route(&Req::fake("GET", "/sim/control", &[]));
        assert_eq!((r.status, r.header("Allow")), (405, Some("POST")));
    }
}
