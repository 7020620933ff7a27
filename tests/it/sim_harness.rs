//! The harness the simulator's own tests share: one simulator on a free
//! loopback port, and a client that keeps bodies as raw bytes (some of the
//! simulator's answers are deliberately not UTF-8).

use std::time::Duration;
use wxauth_app::transport::listener::{Listener, Running};
use wxauth_sim::{self as sim, SimConfig};

pub const APPID: &str = "wx5f3e1b2c4d6a7e80";
pub const SECRET: &str = "simTestSecret0123456789abcdefABC";
/// Test user 0: emoji nickname, unionid.
pub const OPENID_0: &str = "oSim0PandaXiaoMingEmoji00001";

/// One simulator on its own thread; dropping it stops the thread.
pub struct TestSim {
    _running: Running,
    pub base: String,
    pub port: u16,
    agent: ureq::Agent,
}

/// One answer, body as raw bytes.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location in a {} answer: {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts a WeChat API error: HTTP 200, text/plain, this errcode.
    pub fn assert_errcode(&self, errcode: i64) {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("text/plain"));
        let v = self.json();
        assert_eq!(v["errcode"], errcode, "{v}");
        assert!(v["errmsg"].is_string(), "{v}");
    }

    /// Asserts `{"errcode":0,"errmsg":"ok"}`.
    pub fn assert_ok(&self) {
        self.assert_errcode(0);
        assert_eq!(self.json()["errmsg"], "ok");
    }
}

/// A simulator for APPID/SECRET with the callback domain 127.0.0.1.
pub fn start() -> TestSim {
    let listener = Listener::bind("127.0.0.1:0").expect("bind a free loopback port");
    let config = SimConfig {
        appid: APPID.into(),
        secret: SECRET.into(),
        app_name: "wxauth 测试".into(),
        domain: "127.0.0.1".into(),
        demo_app: None,
        push_target: None,
        web_app: None,
    };
    let running = sim::start(listener, config);
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    TestSim {
        base: format!("http://{}", running.addr),
        port: running.addr.port(),
        _running: running,
        agent,
    }
}

impl TestSim {
    pub fn get(&self, path: &str) -> Resp {
        self.get_with_cookie(path, None)
    }

    pub fn get_with_cookie(&self, path: &str, cookie: Option<&str>) -> Resp {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(cookie) = cookie {
            req = req.header("Cookie", cookie);
        }
        read(req.call().unwrap_or_else(|e| panic!("GET {path}: {e}")))
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        let url = format!("{}{path}", self.base);
        let resp = self.agent.post(&url).send_form(form.iter().copied());
        read(resp.unwrap_or_else(|e| panic!("POST {path}: {e}")))
    }

    /// POST a JSON body.
    pub fn post_body(&self, path: &str, body: &str) -> Resp {
        let url = format!("{}{path}", self.base);
        let resp = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body);
        read(resp.unwrap_or_else(|e| panic!("POST {path}: {e}")))
    }

    pub fn control(&self, form: &[(&str, &str)]) -> serde_json::Value {
        let resp = self.post("/sim/control", form);
        assert_eq!(resp.status, 200, "control {form:?}: {}", resp.text());
        resp.json()
    }

    pub fn state(&self) -> serde_json::Value {
        self.get("/sim/state").json()
    }
}

fn read(mut resp: ureq::http::Response<ureq::Body>) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(20 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}
