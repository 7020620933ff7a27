//! Test fixtures: the app and the simulator on free loopback ports, and a
//! `Browser` (a ureq agent with redirects off and its own cookie jar).

use std::collections::BTreeMap;
use std::time::Duration;
use wxauth::demo;
use wxauth_app::config::{Config, RawConfig};
use wxauth_app::transport::listener::{Listener, Running};
use wxauth_app::web::service::{self as app, AppHandle};

/// The app and its simulator, as demo mode wires them. Dropping stops both.
pub struct Stack {
    pub app: AppHandle,
    pub app_url: String,
    pub sim_url: String,
    /// The appsecret the app and the simulator share: must never be shown.
    pub secret: String,
    _sim: Running,
}

/// A stack with the test defaults (1 s upstream timeout, quiet logs).
pub fn start() -> Stack {
    start_with(&[])
}

/// A stack with extra WXAUTH_* settings.
pub fn start_with(settings: &[(&str, &str)]) -> Stack {
    let env = settings_with(settings);
    let raw = RawConfig::from_env_and_args(env, &[]).expect("test settings parse");
    let mut config = Config::from_raw(&raw).expect("test settings are valid");
    wxauth_app::log::set_level(&config.log);
    // WXAUTH_LISTEN: 127.0.0.1:0 unless a test asks for 0.0.0.0:0.
    let listener = Listener::bind_with_timeout(&config.listen.to_string(), config.client_timeout)
        .expect("bind the app");
    let sim = demo::start_sim(&mut config, listener.local_addr()).expect("start the simulator");
    let secret = config.secret.expose().to_string();
    let sim_url = config.open_base.clone();
    let app = app::start(listener, config).expect("start the app");
    Stack {
        app_url: format!("http://{}", app.addr),
        app,
        sim_url,
        secret,
        _sim: sim,
    }
}

/// Real mode (an appid, a secret, a public URL) against a simulator started
/// on its own, as `wxauth sim` and `wxauth serve` would run side by side.
/// `{app}` in a setting's value is the app's own URL (`http://127.0.0.1:PORT`):
/// `("WXAUTH_PUBLIC_URL", "{app}/wx")` serves it under a path prefix.
pub fn start_real(settings: &[(&str, &str)]) -> Stack {
    start_real_with(settings, |_| {})
}

/// `start_real`, with the simulator's configuration changed by `adjust`
/// (WeChat knowing a secret other than the app's, say).
pub fn start_real_with(
    settings: &[(&str, &str)],
    adjust: impl FnOnce(&mut wxauth_sim::SimConfig),
) -> Stack {
    let sim_listener = Listener::bind("127.0.0.1:0").expect("bind the simulator");
    let sim_url = format!("http://{}", sim_listener.local_addr());
    let listener = Listener::bind("127.0.0.1:0").expect("bind the app");
    let app_url = format!("http://{}", listener.local_addr());
    let secret = "test-secret-9f8e7d6c5b4a";
    let mut env = settings_with(&[
        ("WXAUTH_DEMO", "0"),
        ("WXAUTH_APPID", "wx000000000000test"),
        ("WXAUTH_SECRET", secret),
        ("WXAUTH_PUBLIC_URL", &app_url),
        ("WXAUTH_OPEN_BASE", &sim_url),
        ("WXAUTH_API_BASE", &sim_url),
    ]);
    for (k, v) in settings {
        env.insert(k.to_string(), v.replace("{app}", &app_url));
    }
    let raw = RawConfig::from_env_and_args(env, &[]).expect("test settings parse");
    let config = Config::from_raw(&raw).expect("test settings are valid");
    let mut sim_config = demo::sim_config(&config, secret);
    adjust(&mut sim_config);
    let sim = wxauth_sim::start(sim_listener, sim_config);
    let app = app::start(listener, config).expect("start the app");
    Stack {
        app_url,
        app,
        sim_url,
        secret: secret.to_string(),
        _sim: sim,
    }
}

/// The test defaults (demo mode, port 0, 1 s upstream timeouts, quiet
/// logs) with `settings` over them.
pub fn settings_with(settings: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("WXAUTH_DEMO", "1"),
        ("WXAUTH_LISTEN", "127.0.0.1:0"),
        ("WXAUTH_SIM_LISTEN", "127.0.0.1:0"),
        ("WXAUTH_UPSTREAM_TIMEOUT", "1"),
        ("WXAUTH_CONNECT_TIMEOUT", "1"),
        ("WXAUTH_LOG", "error"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in settings {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

impl Stack {
    /// A URL on the app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.app_url, path)
    }

    /// Changes the simulator's behaviour: `control(&[("fault", "userinfo:html")])`.
    pub fn control(&self, fields: &[(&str, &str)]) -> serde_json::Value {
        let resp = Browser::new().post(&format!("{}/sim/control", self.sim_url), fields);
        assert_eq!(resp.status, 200, "sim control {fields:?}: {}", resp.body);
        serde_json::from_str(&resp.body).expect("sim control answers JSON")
    }

    /// Has the simulator push a signed message at the app (`/sim/push`).
    pub fn push(&self, fields: &[(&str, &str)]) -> serde_json::Value {
        let resp = Browser::new().post(&format!("{}/sim/push", self.sim_url), fields);
        assert_eq!(resp.status, 200, "sim push {fields:?}: {}", resp.body);
        serde_json::from_str(&resp.body).expect("sim push answers JSON")
    }

    /// The simulator's counters and recorded callbacks.
    pub fn sim_state(&self) -> serde_json::Value {
        let resp = Browser::new().get(&format!("{}/sim/state", self.sim_url));
        serde_json::from_str(&resp.body).expect("sim state is JSON")
    }

    /// How often the simulator's `endpoint` was called (access_token, userinfo, …).
    pub fn calls(&self, endpoint: &str) -> i64 {
        self.sim_state()["calls"][endpoint]
            .as_i64()
            .expect("a call counter")
    }
}

/// `http://host:port` of a URL.
pub fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("an absolute URL");
    format!("{scheme}://{}", rest.split('/').next().unwrap_or(""))
}

/// One HTTP answer, body read as text.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The Location header, which the test expects to be there.
    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location in a {} answer: {}", self.status, self.body))
    }

    /// Everything a browser would see, for leak checks.
    pub fn everything(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        format!("{}\n{}", headers.join("\n"), self.body)
    }
}

/// A browser: follows nothing by itself, keeps cookies (one jar for the whole
/// host, as browsers do across ports), and remembers everything it saw.
pub struct Browser {
    agent: ureq::Agent,
    pub jar: BTreeMap<String, String>,
    pub user_agent: String,
    /// Every answer's headers and body, for "no secret ever reached the browser".
    pub seen: String,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Browser {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Browser {
            agent,
            jar: BTreeMap::new(),
            user_agent: "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50".into(),
            seen: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// GET `url` (a fragment is dropped, as a browser does).
    pub fn get(&mut self, url: &str) -> Resp {
        self.get_with(url, &[])
    }

    /// GET with extra headers.
    pub fn get_with(&mut self, url: &str, headers: &[(&str, &str)]) -> Resp {
        let url = url.split('#').next().expect("split yields one part");
        let mut req = self.agent.get(url).header("User-Agent", &self.user_agent);
        if !self.jar.is_empty() {
            req = req.header("Cookie", &self.cookie_header());
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.read(resp)
    }

    /// POST a form from a page of the same site, as a browser does it: with
    /// the `Origin` of `url`.
    pub fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Resp {
        let origin = origin_of(url);
        self.post_with(url, form, &[("Origin", &origin)])
    }

    /// POST a form with exactly these extra headers (no Origin unless given).
    pub fn post_with(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.agent.post(url).header("User-Agent", &self.user_agent);
        if !self.jar.is_empty() {
            req = req.header("Cookie", &self.cookie_header());
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let resp = req
            .send_form(form.iter().copied())
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        self.read(resp)
    }

    /// POST a raw body with the given content type.
    pub fn post_raw(&mut self, url: &str, content_type: &str, body: &[u8]) -> Resp {
        let resp = self
            .agent
            .post(url)
            .header("Content-Type", content_type)
            .send(body)
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        self.read(resp)
    }

    fn read(&mut self, mut resp: ureq::http::Response<ureq::Body>) -> Resp {
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        for (_, value) in headers.iter().filter(|(n, _)| n == "set-cookie") {
            let pair = value.split(';').next().unwrap_or("");
            if let Some((name, val)) = pair.split_once('=') {
                if value.contains("Max-Age=0") {
                    self.jar.remove(name);
                } else {
                    self.jar.insert(name.to_string(), val.to_string());
                }
            }
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(20 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let resp = Resp {
            status,
            headers,
            body,
        };
        self.seen.push_str(&resp.everything());
        resp
    }

    /// GET /login and return WeChat's (the simulator's) authorize URL.
    pub fn start_login(&mut self, stack: &Stack, next: Option<&str>) -> String {
        let path = match next {
            Some(next) => format!(
                "/login?next={}",
                wxauth_app::transport::http::encode_component(next)
            ),
            None => "/login".to_string(),
        };
        let resp = self.get(&stack.url(&path));
        assert_eq!(resp.status, 302, "{}", resp.body);
        resp.location().to_string()
    }

    /// Walks WeChat's side: the consent page, then 允许 (or 拒绝) for test user
    /// `user`. Returns the callback URL WeChat sends the browser to.
    pub fn consent(&mut self, authorize_url: &str, user: usize, allow: bool) -> String {
        let page = self.get(authorize_url);
        if page.status == 302 {
            // snsapi_base: WeChat redirects without asking.
            return page.location().to_string();
        }
        assert_eq!(page.status, 200, "consent page: {}", page.body);
        let [appid, redirect_uri, scope, state] =
            ["appid", "redirect_uri", "scope", "state"].map(|k| url_param(authorize_url, k));
        let base = authorize_url.split("/connect/").next().unwrap();
        let user = user.to_string();
        let form = [
            ("appid", appid.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("response_type", "code"),
            ("scope", scope.as_str()),
            ("state", state.as_str()),
            ("user", user.as_str()),
            ("action", if allow { "allow" } else { "deny" }),
        ];
        let resp = self.post(&format!("{base}/connect/oauth2/authorize/confirm"), &form);
        assert!(
            matches!(resp.status, 302 | 303),
            "confirm: {} {}",
            resp.status,
            resp.body
        );
        resp.location().to_string()
    }

    /// The whole login as test user `user`: returns the callback's answer.
    pub fn login_as(&mut self, stack: &Stack, user: usize) -> Resp {
        let authorize = self.start_login(stack, None);
        let callback = self.consent(&authorize, user, true);
        self.get(&callback)
    }
}

/// True when a page's QR code (scan to log in) holds `url`: the page's SVG
/// is drawn the same way as one made here for `url`. (Outside demo mode the
/// link appears nowhere else on the page.)
pub fn qr_holds(body: &str, url: &str) -> bool {
    let svg = qrcode::QrCode::new(url.as_bytes())
        .expect("a URL fits a QR code")
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    // What follows the opening tag: the drawing itself.
    let drawing = svg
        .split_once("<svg")
        .and_then(|(_, rest)| rest.split_once('>'));
    drawing.is_some_and(|(_, inner)| body.contains(inner))
}

/// The value of the first `name="…"` attribute (or `data-ticket="…"`) in `html`.
pub fn attribute(html: &str, name: &str) -> String {
    html.split(&format!("{name}=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// The query parameters of an authorize URL (or any URL), decoded, without its fragment.
pub fn url_params(url: &str) -> Vec<(String, String)> {
    let query = url
        .split('#')
        .next()
        .and_then(|u| u.split_once('?'))
        .map_or("", |(_, q)| q);
    wxauth_app::transport::http::parse_query(query)
}

/// One parameter of `url_params`, or "" when it is absent.
pub fn url_param(url: &str, key: &str) -> String {
    url_params(url)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// A loopback port free a moment ago (for a server that must be told its
/// port before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
