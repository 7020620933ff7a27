//! The simulator's Official Account side, over HTTP: base access_tokens
//! (cgi-bin/token, cgi-bin/stable_token), the custom menu, and `/sim/push`
//! delivering signed XML to a tiny loopback receiver standing in for the app.

use crate::sim_harness::{start, Resp, TestSim, APPID, OPENID_0, SECRET};
use sha1::{Digest, Sha1};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wxauth_app::transport::http::parse_query;

/// The app's WXAUTH_TOKEN in these tests.
const TOKEN: &str = "wxauthMessageToken42";
impl TestSim {
    fn fetch_token(&self) -> String {
        let resp = self.get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
        ));
        assert_eq!(resp.status, 200, "{}", resp.text());
        let v = resp.json();
        assert_eq!(v["expires_in"], 7200, "{v}");
        let token = v["access_token"].as_str().expect("a token").to_string();
        assert!(token.starts_with("simBT_"), "{token}");
        token
    }

    fn stable_token(&self, force_refresh: bool) -> serde_json::Value {
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": APPID,
            "secret": SECRET,
            "force_refresh": force_refresh,
        });
        let resp = self.post_body("/cgi-bin/stable_token", &body.to_string());
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("content-type"), Some("text/plain"));
        resp.json()
    }

    fn menu_get(&self, token: &str) -> Resp {
        self.get(&format!("/cgi-bin/menu/get?access_token={token}"))
    }

    fn menu_create(&self, token: &str, menu: &str) -> Resp {
        self.post_body(&format!("/cgi-bin/menu/create?access_token={token}"), menu)
    }

    /// A token still works: menu/get answers 46003 (no menu), not 40001 or 42001.
    fn assert_token_works(&self, token: &str) {
        self.menu_get(token).assert_errcode(46003);
    }

    /// Pushes; answers the JSON report.
    fn push(&self, form: &[(&str, &str)]) -> serde_json::Value {
        let resp = self.post("/sim/push", form);
        assert_eq!(resp.status, 200, "push {form:?}: {}", resp.text());
        resp.json()
    }
}

/// WeChat's signature, computed here independently of the simulator.
fn wechat_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort();
    Sha1::digest(parts.concat().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    /// e.g. `POST /wechat?signature=… HTTP/1.1`
    request_line: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn path(&self) -> &str {
        let target = self.request_line.split(' ').nth(1).unwrap_or("");
        target.split('?').next().unwrap_or("")
    }

    fn query(&self, name: &str) -> String {
        let target = self.request_line.split(' ').nth(1).unwrap_or("");
        let query = target.split_once('?').map_or("", |(_, q)| q);
        parse_query(query)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {}", self.request_line))
    }

    /// Does the signature verify with `token`?
    fn verifies_with(&self, token: &str) -> bool {
        let expected = wechat_signature(token, &self.query("timestamp"), &self.query("nonce"));
        self.query("signature") == expected
    }
}

/// The app's message endpoint, reduced to what these tests need: records
/// every request, checks nothing, answers 200 "success". Stops on drop.
struct Receiver {
    url: String,
    got: mpsc::Receiver<Received>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let url = format!("http://{}/wechat", listener.local_addr().expect("addr"));
        let (tx, got) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(received) = serve_one(stream) {
                            let _ = tx.send(received);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver {
            url,
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// The next request, waiting at most 10 seconds.
    fn next(&self) -> Received {
        self.got
            .recv_timeout(Duration::from_secs(10))
            .expect("the simulator pushed within 10 s")
    }

    /// Asserts nothing more arrives within a short while.
    fn assert_quiet(&self) {
        if let Ok(extra) = self.got.recv_timeout(Duration::from_millis(200)) {
            panic!("unexpected push: {extra:?}");
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (Content-Length body), answers "success", closes.
fn serve_one(stream: TcpStream) -> Option<Received> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = reader.into_inner();
    let answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\nConnection: close\r\n\r\nsuccess";
    stream.write_all(answer.as_bytes()).ok()?;
    Some(Received {
        request_line: request_line.trim_end().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The text of `<Name>…</Name>` in WeChat's XML, CDATA unwrapped.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let inner = &xml[start..end];
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .to_string(),
    )
}

fn el(xml: &str, name: &str) -> String {
    element(xml, name).unwrap_or_else(|| panic!("no <{name}> in {xml}"))
}

/// Name and value pairs: form fields, or XML elements and their text.
type Pairs = &'static [(&'static str, &'static str)];

/// A menu of every shape: plain buttons and one with sub buttons.
const MENU: &str = r#"{"button":[{"type":"view","name":"登录","url":"http://127.0.0.1:8080/login"},{"name":"更多","sub_button":[{"type":"click","name":"赞一下","key":"V1001_GOOD"},{"type":"view","name":"资料","url":"https://example.com/me"}]},{"type":"click","name":"帮助","key":"HELP"}]}"#;

#[test]
fn base_token_fetch_and_its_errors() {
    let sim = start();
    let resp = sim.get(&format!(
        "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
    ));
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert!(!resp.text().contains(SECRET));
    let first = sim.fetch_token();
    let bad = |query: &str, errcode: i64| {
        let resp = sim.get(&format!("/cgi-bin/token?{query}"));
        resp.assert_errcode(errcode);
        assert!(!resp.text().contains("simBT_"), "{}", resp.text());
    };
    bad(
        &format!("grant_type=client_credential&appid=wxNOPE&secret={SECRET}"),
        40013,
    );
    bad(
        &format!("grant_type=client_credential&appid={APPID}&secret=wrong"),
        40125,
    );
    bad(
        &format!("grant_type=authorization_code&appid={APPID}&secret={SECRET}"),
        40002,
    );
    bad(&format!("appid={APPID}&secret={SECRET}"), 40002);
    let v = sim.get("/cgi-bin/token?grant_type=client_credential&appid=x&secret=wrong");
    assert!(v.json()["errmsg"]
        .as_str()
        .is_some_and(|m| m.starts_with("invalid appid")));
    let v = sim.get(&format!(
        "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret=wrong"
    ));
    assert!(v.json()["errmsg"]
        .as_str()
        .is_some_and(|m| m.starts_with("invalid appsecret")));
    // A fault answers instead, once; the token fetched before stays good.
    sim.control(&[("fault", "token:errcode:45009")]);
    bad(
        &format!("grant_type=client_credential&appid={APPID}&secret={SECRET}"),
        45009,
    );
    sim.assert_token_works(&first);
    sim.control(&[("fault", "token:html")]);
    let html = sim.get(&format!(
        "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
    ));
    assert_eq!(html.status, 502);
    let state = sim.state();
    assert_eq!(state["calls"]["token"], 10, "{state}");
    assert_eq!(state["calls"]["access_token"], 0, "{state}");
    assert_eq!(state["calls"]["menu_get"], 1, "{state}");
    assert_eq!(state["stored"]["base_tokens"], 2, "{state}");
}

#[test]
fn a_second_token_fetch_keeps_the_old_one_for_300_seconds() {
    let sim = start();
    let old = sim.fetch_token();
    let new = sim.fetch_token();
    assert_ne!(old, new);
    sim.assert_token_works(&old);
    // 290 rather than 299: real seconds pass during the test too.
    sim.control(&[("advance", "290")]);
    sim.assert_token_works(&old);
    sim.assert_token_works(&new);
    sim.control(&[("advance", "10")]);
    let resp = sim.menu_get(&old);
    resp.assert_errcode(40001);
    assert!(resp.json()["errmsg"].as_str().is_some_and(
        |m| m.starts_with("invalid credential, access_token is invalid or not latest")
    ));
    sim.assert_token_works(&new);
    sim.menu_get("simBT_neverIssued").assert_errcode(40001);
}

#[test]
fn stable_token_is_the_same_until_forced() {
    let sim = start();
    let first = sim.stable_token(false);
    let token = first["access_token"].as_str().expect("a token").to_string();
    assert!(token.starts_with("simBT_"));
    assert_eq!(first["expires_in"], 7200);
    sim.control(&[("advance", "60")]);
    let again = sim.stable_token(false);
    assert_eq!(again["access_token"], token.as_str());
    // The seconds left, as WeChat answers for a token it hands out again.
    let left = again["expires_in"].as_i64().expect("a number");
    assert!((7130..=7140).contains(&left), "{again}");
    // A cgi-bin/token fetch does not replace the stable token.
    sim.fetch_token();
    assert_eq!(sim.stable_token(false)["access_token"], token.as_str());
    let forced = sim.stable_token(true);
    let forced_token = forced["access_token"].as_str().expect("a token");
    assert_ne!(forced_token, token);
    assert_eq!(forced["expires_in"], 7200);
    sim.assert_token_works(&token);
    sim.control(&[("advance", "300")]);
    sim.menu_get(&token).assert_errcode(40001);
    sim.assert_token_works(forced_token);
    assert_eq!(sim.stable_token(false)["access_token"], forced_token);

    let bodies = [
        ("grant_type=client_credential".to_string(), 47001),
        (String::new(), 47001),
        ("[]".to_string(), 47001),
        (
            r#"{"grant_type":"client_credential","appid":"wxNOPE","secret":"x"}"#.to_string(),
            40013,
        ),
        (
            format!(r#"{{"grant_type":"client_credential","appid":"{APPID}","secret":"x"}}"#),
            40125,
        ),
        (
            format!(r#"{{"grant_type":"password","appid":"{APPID}","secret":"{SECRET}"}}"#),
            40002,
        ),
        (
            format!(
                r#"{{"grant_type":"client_credential","appid":"{APPID}","secret":"{SECRET}","force_refresh":"yes"}}"#
            ),
            47001,
        ),
    ];
    for (body, errcode) in &bodies {
        let resp = sim.post_body("/cgi-bin/stable_token", body);
        resp.assert_errcode(*errcode);
        assert!(!resp.text().contains("simBT_"), "{body}");
    }
    sim.control(&[("fault", "stable_token:errcode:-1")]);
    let v = sim.stable_token(false);
    assert_eq!(v["errcode"], -1, "{v}");
    let state = sim.state();
    assert_eq!(state["calls"]["stable_token"], 13, "{state}");
    assert_eq!(state["calls"]["token"], 1, "{state}");
}

#[test]
fn base_tokens_expire_after_two_hours() {
    let sim = start();
    let token = sim.fetch_token();
    let stable = sim.stable_token(false)["access_token"]
        .as_str()
        .expect("a token")
        .to_string();
    sim.control(&[("advance", "7190")]);
    sim.assert_token_works(&token);
    sim.control(&[("advance", "11")]);
    let resp = sim.menu_get(&token);
    resp.assert_errcode(42001);
    assert!(resp.json()["errmsg"]
        .as_str()
        .is_some_and(|m| m.starts_with("access_token expired")));
    sim.menu_get(&stable).assert_errcode(42001);
    // The expired stable token is replaced by a new one on the next call.
    let renewed = sim.stable_token(false);
    assert_ne!(renewed["access_token"], stable.as_str());
    assert_eq!(renewed["expires_in"], 7200);
}

#[test]
fn menu_create_get_and_delete() {
    let sim = start();
    let token = sim.fetch_token();
    sim.menu_get(&token).assert_errcode(46003);
    assert!(sim.menu_get(&token).text().contains("menu no exist"));
    sim.menu_create(&token, MENU).assert_ok();
    let got = sim.menu_get(&token);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("text/plain"));
    // The menu comes back as WeChat shows it: every button, leaves and sub
    // buttons too, with a `sub_button` list (empty where it had none).
    let shown = got.json();
    let sent: serde_json::Value = serde_json::from_str(MENU).unwrap();
    let buttons = shown["menu"]["button"].as_array().unwrap();
    assert_eq!(buttons.len(), sent["button"].as_array().unwrap().len());
    for (button, sent) in buttons.iter().zip(sent["button"].as_array().unwrap()) {
        assert!(button["sub_button"].is_array(), "{button}");
        assert_eq!(button["name"], sent["name"]);
        for sub in button["sub_button"].as_array().unwrap() {
            assert_eq!(sub["sub_button"], serde_json::json!([]), "{sub}");
        }
    }
    assert_eq!(
        shown["menu"]["button"][1]["sub_button"][0]["key"],
        "V1001_GOOD"
    );
    assert_eq!(sim.state()["stored"]["menu"], true);
    // A new menu replaces the old one.
    let small = r#"{"button":[{"type":"click","name":"帮助","key":"HELP"}]}"#;
    sim.menu_create(&token, small).assert_ok();
    assert_eq!(
        sim.menu_get(&token).text(),
        r#"{"menu":{"button":[{"type":"click","name":"帮助","key":"HELP","sub_button":[]}]}}"#
    );
    let deleted = sim.get(&format!("/cgi-bin/menu/delete?access_token={token}"));
    deleted.assert_ok();
    sim.menu_get(&token).assert_errcode(46003);
    assert_eq!(sim.state()["stored"]["menu"], false);
    // Deleting no menu is still ok, as on WeChat.
    sim.get(&format!("/cgi-bin/menu/delete?access_token={token}"))
        .assert_ok();
    // Faults apply per endpoint.
    sim.control(&[("fault", "menu_create:errcode:45009"), ("times", "2")]);
    sim.menu_create(&token, MENU).assert_errcode(45009);
    sim.menu_create(&token, MENU).assert_errcode(45009);
    sim.menu_create(&token, MENU).assert_ok();
    sim.control(&[("fault", "menu_get:garbage")]);
    assert!(serde_json::from_slice::<serde_json::Value>(&sim.menu_get(&token).body).is_err());
    sim.control(&[("fault", "menu_delete:status:503")]);
    let resp = sim.get(&format!("/cgi-bin/menu/delete?access_token={token}"));
    assert_eq!(resp.status, 503);
    assert_eq!(
        sim.state()["stored"]["menu"],
        true,
        "a fault changes nothing"
    );
    let state = sim.state();
    assert_eq!(state["calls"]["menu_create"], 5, "{state}");
    assert_eq!(state["calls"]["menu_get"], 6, "{state}");
    assert_eq!(state["calls"]["menu_delete"], 3, "{state}");
    // Wrong methods are 405.
    let resp = sim.get(&format!("/cgi-bin/menu/create?access_token={token}"));
    assert_eq!((resp.status, resp.header("allow")), (405, Some("POST")));
}

#[test]
fn menu_validation_answers_wechats_errcodes() {
    let sim = start();
    let token = sim.fetch_token();
    let click = r#"{"type":"click","name":"赞","key":"K"}"#;
    let subs = |n: usize| vec![click; n].join(",");
    let cases: Vec<(String, i64)> = vec![
        (format!(r#"{{"button":[{}]}}"#, subs(4)), 40016),
        (r#"{"button":[]}"#.into(), 40016),
        (
            format!(
                r#"{{"button":[{{"name":"更多","sub_button":[{}]}}]}}"#,
                subs(6)
            ),
            40023,
        ),
        // 18 bytes: six Chinese characters, one more than fits.
        (
            r#"{"button":[{"type":"click","name":"一二三四五六","key":"K"}]}"#.into(),
            40018,
        ),
        (
            format!(
                r#"{{"button":[{{"name":"更多","sub_button":[{{"type":"click","name":"{}","key":"K"}}]}}]}}"#,
                "长".repeat(21)
            ),
            40025,
        ),
        (
            r#"{"button":[{"type":"tap","name":"赞","key":"K"}]}"#.into(),
            40017,
        ),
        (
            r#"{"button":[{"name":"更多","sub_button":[{"type":"tap","name":"赞"}]}]}"#.into(),
            40024,
        ),
        // A view button without url: WeChat's code depends on the level.
        (
            r#"{"button":[{"type":"view","name":"登录"}]}"#.into(),
            40020,
        ),
        (
            r#"{"button":[{"name":"更多","sub_button":[{"type":"view","name":"登录"}]}]}"#.into(),
            40027,
        ),
        (
            r#"{"button":[{"type":"view","name":"登录","url":"127.0.0.1/login"}]}"#.into(),
            40055,
        ),
        (r#"{"button":[{"type":"click","name":"赞"}]}"#.into(), 40019),
        (
            r#"{"button":[{"name":"更多","sub_button":[{"type":"click","name":"赞","key":""}]}]}"#
                .into(),
            40026,
        ),
        (r#"{"button":[{"type":"click""#.into(), 47001),
        ("button=1".into(), 47001),
    ];
    for (menu, errcode) in &cases {
        let resp = sim.menu_create(&token, menu);
        assert_eq!(resp.json()["errcode"], *errcode, "{menu}: {}", resp.text());
        resp.assert_errcode(*errcode);
    }
    // Nothing refused was stored.
    sim.menu_get(&token).assert_errcode(46003);
    let msg = sim.menu_create(&token, &cases[0].0).json();
    assert!(msg["errmsg"]
        .as_str()
        .is_some_and(|m| m.starts_with("invalid button size")));
}

#[test]
fn menu_calls_need_a_live_base_token() {
    let sim = start();
    sim.post_body("/cgi-bin/menu/create", MENU)
        .assert_errcode(41001);
    sim.menu_create("simBT_forged", MENU).assert_errcode(40001);
    sim.menu_get("").assert_errcode(41001);
    sim.get("/cgi-bin/menu/delete?access_token=nope")
        .assert_errcode(40001);
    // A web-authorization (sns) access_token is not a base token.
    let confirm = sim.post(
        "/connect/oauth2/authorize/confirm",
        &[
            ("appid", APPID),
            ("redirect_uri", "http://127.0.0.1:8080/callback"),
            ("scope", "snsapi_userinfo"),
            ("state", "st4te"),
            ("user", "0"),
            ("action", "allow"),
        ],
    );
    assert_eq!(confirm.status, 302, "{}", confirm.text());
    let location = confirm.header("location").expect("a redirect");
    let pairs = parse_query(location.split_once('?').expect("a query").1);
    let code = &pairs.iter().find(|(k, _)| k == "code").expect("a code").1;
    let tokens = sim
        .get(&format!(
            "/sns/oauth2/access_token?appid={APPID}&secret={SECRET}&code={code}&grant_type=authorization_code"
        ))
        .json();
    let web_token = tokens["access_token"].as_str().expect("an sns token");
    sim.menu_create(web_token, MENU).assert_errcode(40001);
    assert_eq!(sim.state()["stored"]["menu"], false);
}

#[test]
fn push_delivers_each_kind_signed() {
    let sim = start();
    let app = Receiver::start();
    let now = sim.state()["now"].as_i64().expect("the sim clock");
    // (kind, extra form fields, expected XML elements)
    let kinds: &[(&str, Pairs, Pairs)] = &[
        (
            "subscribe",
            &[("key", "123")],
            &[
                ("MsgType", "event"),
                ("Event", "subscribe"),
                ("EventKey", "qrscene_123"),
            ],
        ),
        (
            "subscribe",
            &[],
            &[
                ("MsgType", "event"),
                ("Event", "subscribe"),
                ("EventKey", ""),
            ],
        ),
        (
            "unsubscribe",
            &[],
            &[("MsgType", "event"), ("Event", "unsubscribe")],
        ),
        (
            "SCAN",
            &[("key", "456")],
            &[("MsgType", "event"), ("Event", "SCAN"), ("EventKey", "456")],
        ),
        (
            "LOCATION",
            &[],
            &[
                ("MsgType", "event"),
                ("Event", "LOCATION"),
                ("Latitude", "23.137466"),
                ("Longitude", "113.352425"),
                ("Precision", "119.385040"),
            ],
        ),
        (
            "LOCATION",
            &[
                ("latitude", "39.9"),
                ("longitude", "116.4"),
                ("precision", "30.0"),
            ],
            &[
                ("Latitude", "39.9"),
                ("Longitude", "116.4"),
                ("Precision", "30.0"),
            ],
        ),
        (
            "CLICK",
            &[("key", "V1001_GOOD")],
            &[
                ("MsgType", "event"),
                ("Event", "CLICK"),
                ("EventKey", "V1001_GOOD"),
            ],
        ),
        (
            "VIEW",
            &[("key", "http://127.0.0.1:8080/login?a=1&b=2")],
            &[
                ("MsgType", "event"),
                ("Event", "VIEW"),
                ("EventKey", "http://127.0.0.1:8080/login?a=1&b=2"),
            ],
        ),
        (
            "text",
            &[("content", "登录"), ("msgid", "23456789012345678")],
            &[
                ("MsgType", "text"),
                ("Content", "登录"),
                ("MsgId", "23456789012345678"),
            ],
        ),
    ];
    for (kind, extra, expected) in kinds {
        let mut form = vec![("url", app.url.as_str()), ("token", TOKEN), ("kind", *kind)];
        form.extend_from_slice(extra);
        let report = sim.push(&form);
        assert_eq!(report["sent"], 1, "{report}");
        assert_eq!(report["answers"][0]["status"], 200, "{report}");
        assert_eq!(report["answers"][0]["body"], "success", "{report}");
        let xml = report["xml"].as_str().expect("the xml sent").to_string();
        let got = app.next();
        assert_eq!(got.body, xml);
        assert!(
            got.request_line.starts_with("POST /wechat?"),
            "{}",
            got.request_line
        );
        assert_eq!(got.path(), "/wechat");
        assert!(got
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/xml")));
        assert!(got.verifies_with(TOKEN), "{kind}: {}", got.request_line);
        assert_eq!(got.query("openid"), OPENID_0);
        assert!(got.query("nonce").bytes().all(|b| b.is_ascii_digit()));
        assert!(xml.starts_with("<xml><ToUserName><![CDATA[gh_simulated0000]]></ToUserName>"));
        assert!(xml.ends_with("</xml>"));
        assert_eq!(el(&xml, "FromUserName"), OPENID_0);
        let created: i64 = el(&xml, "CreateTime").parse().expect("a number");
        assert!((now..now + 60).contains(&created), "{xml}");
        assert_eq!(got.query("timestamp"), created.to_string());
        for (name, value) in *expected {
            assert_eq!(el(&xml, name), *value, "{kind}: {xml}");
        }
        if *kind == "text" {
            assert!(element(&xml, "Event").is_none(), "{xml}");
        }
        if *kind == "SCAN" || (*kind == "subscribe" && !extra.is_empty()) {
            assert!(el(&xml, "Ticket").starts_with("gQ"), "{xml}");
        }
    }
    // Explicit from, to and create_time; a url with a query of its own.
    let url = format!("{}?app=1", app.url);
    let report = sim.push(&[
        ("url", url.as_str()),
        ("token", TOKEN),
        ("kind", "text"),
        ("from", "oOtherUser"),
        ("to", "gh_0123456789ab"),
        ("create_time", "1700000000"),
        ("content", "你好"),
    ]);
    let xml = report["xml"].as_str().expect("xml");
    assert_eq!(
        &xml[..xml.find("<MsgType>").expect("MsgType")],
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oOtherUser]]></FromUserName><CreateTime>1700000000</CreateTime>"
    );
    assert!(el(xml, "MsgId").parse::<u64>().is_ok(), "{xml}");
    let got = app.next();
    assert_eq!(got.query("app"), "1");
    assert_eq!(got.query("timestamp"), "1700000000");
    assert_eq!(got.query("openid"), "oOtherUser");
    assert!(got.verifies_with(TOKEN));
    app.assert_quiet();
}

#[test]
fn push_repeat_sends_the_same_message_again() {
    let sim = start();
    let app = Receiver::start();
    let report = sim.push(&[
        ("url", app.url.as_str()),
        ("token", TOKEN),
        ("kind", "text"),
        ("content", "登录"),
        ("repeat", "3"),
    ]);
    assert_eq!(report["sent"], 3, "{report}");
    let answers = report["answers"].as_array().expect("answers");
    assert_eq!(answers.len(), 3);
    assert!(answers
        .iter()
        .all(|a| a["status"] == 200 && a["body"] == "success"));
    let got: Vec<Received> = (0..3).map(|_| app.next()).collect();
    for one in &got {
        assert_eq!(one.body, got[0].body);
        assert_eq!(one.body, report["xml"].as_str().expect("xml"));
        assert!(one.verifies_with(TOKEN));
        assert_eq!(one.query("timestamp"), got[0].query("timestamp"));
    }
    app.assert_quiet();
}

#[test]
fn push_with_a_bad_signature_does_not_verify() {
    let sim = start();
    let app = Receiver::start();
    let report = sim.push(&[
        ("url", app.url.as_str()),
        ("token", TOKEN),
        ("kind", "subscribe"),
        ("bad_signature", "1"),
    ]);
    assert_eq!(report["sent"], 1);
    let got = app.next();
    assert_eq!(got.query("signature").len(), 40);
    assert!(!got.verifies_with(TOKEN), "{}", got.request_line);
    assert_eq!(el(&got.body, "Event"), "subscribe");
}

#[test]
fn push_talks_to_loopback_only_and_never_to_itself() {
    let sim = start();
    let app = Receiver::start();
    let own = format!("http://127.0.0.1:{}/sim/state", sim.port);
    let away = app.url.replace("127.0.0.1", "localhost");
    let tls = app.url.replace("http://", "https://");
    let sneaky = format!("http://127.0.0.1@example.com:{}/", sim.port);
    for url in [
        "http://example.com/wechat",
        "http://10.0.0.1/wechat",
        away.as_str(),
        tls.as_str(),
        sneaky.as_str(),
        "http://127.0.0.1.example.com/wechat",
        own.as_str(),
        "",
    ] {
        let resp = sim.post(
            "/sim/push",
            &[("url", url), ("token", TOKEN), ("kind", "subscribe")],
        );
        assert_eq!(resp.status, 400, "{url}: {}", resp.text());
        assert!(resp.json()["error"].is_string(), "{url}");
    }
    for form in [
        vec![("url", app.url.as_str()), ("kind", "subscribe")],
        vec![
            ("url", app.url.as_str()),
            ("token", TOKEN),
            ("kind", "follow"),
        ],
        vec![
            ("url", app.url.as_str()),
            ("token", TOKEN),
            ("kind", "text"),
            ("repeat", "99"),
        ],
        vec![
            ("url", app.url.as_str()),
            ("token", TOKEN),
            ("kind", "text"),
            ("nope", "1"),
        ],
    ] {
        assert_eq!(sim.post("/sim/push", &form).status, 400, "{form:?}");
    }
    app.assert_quiet();
    // A loopback port where nothing listens: reported, not fatal.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{closed}/wechat");
    let report = sim.push(&[
        ("url", url.as_str()),
        ("token", TOKEN),
        ("kind", "CLICK"),
        ("key", "K"),
    ]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report["sent"], 1);
    assert_eq!(report["answers"][0]["status"], 0, "{report}");
    assert!(report["answers"][0]["error"].is_string(), "{report}");
}

#[test]
fn the_index_page_mentions_the_account_endpoints() {
    let sim = start();
    let page = sim.get("/").text();
    for path in [
        "/cgi-bin/token",
        "/cgi-bin/stable_token",
        "/cgi-bin/menu/create",
        "/sim/push",
    ] {
        assert!(page.contains(path), "{path} not on the index page");
    }
}
