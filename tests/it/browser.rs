//! The pages as a person sees them: headless Chromium (Debian's package),
//! driven over the DevTools protocol, with a phone viewport and a WeChat
//! User-Agent, through demo mode. Each run writes screenshots to
//! target/screenshots/ (scripts/screenshots.sh copies them to docs/).
//!
//! Without Chromium these tests say so and pass, unless WXAUTH_E2E=1 (set by
//! .ci/run, which installs it): then a missing browser is a failure.

use crate::support::{start, Stack};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

const PHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                        (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI Language/zh_CN";

/// One headless Chromium with one page, spoken to over the DevTools protocol.
struct Chrome {
    child: Child,
    profile: PathBuf,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// Events received while waiting for answers, oldest first.
    events: Vec<Value>,
}

impl Chrome {
    /// The window's size; `mobile` for a phone's viewport rules.
    fn screen(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
    }

    /// A desktop browser (Chrome on Linux) with a window of this size.
    fn as_desktop(&mut self, width: u32, height: u32) {
        self.screen(width, height, false);
        self.call(
            "Network.setUserAgentOverride",
            json!({ "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36" }),
        );
    }

    /// Starts Chromium, or None when it is not installed (and not required).
    fn launch() -> Option<Chrome> {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if !PathBuf::from(&binary).exists() {
            assert!(
                std::env::var("WXAUTH_E2E").as_deref() != Ok("1"),
                "WXAUTH_E2E=1 but no Chromium at {binary}"
            );
            eprintln!("browser tests skipped: no Chromium at {binary} (apt-get install chromium)");
            return None;
        }
        let profile = std::env::temp_dir().join(format!(
            "wxauth-chrome-{}-{}",
            std::process::id(),
            wxauth_app::random::token(8)
        ));
        std::fs::create_dir_all(&profile).unwrap();
        // The flags a machine without network needs: no background traffic at all.
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Chromium");
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Some(port) = text.lines().next().filter(|p| !p.is_empty()) {
                    break port.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let targets: Value = agent
            .get(&format!("http://127.0.0.1:{port}/json/list"))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map(|body| serde_json::from_str(&body).expect("DevTools lists its targets as JSON"))
            .expect("DevTools answers /json/list");
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap().to_string();
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools websocket");
        let mut chrome = Chrome {
            child,
            profile,
            ws,
            next_id: 0,
            events: Vec::new(),
        };
        chrome.call("Page.enable", json!({}));
        chrome.screen(390, 844, true);
        chrome.call(
            "Network.setUserAgentOverride",
            json!({ "userAgent": PHONE_UA }),
        );
        Some(chrome)
    }

    /// Sends a command and waits (at most 15 s) for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(msg)).expect("send to Chromium");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            assert!(Instant::now() < deadline, "{method}: no answer in 15 s");
            let msg = self.ws.read().unwrap_or_else(|e| panic!("{method}: {e}"));
            let Message::Text(text) = msg else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
            self.events.push(value);
        }
    }

    /// Waits (at most 15 s) for the page to finish loading.
    fn wait_for_load(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self
            .events
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            assert!(Instant::now() < deadline, "the page did not load in 15 s");
            let msg = self.ws.read().expect("read from Chromium");
            if let Message::Text(text) = msg {
                self.events.push(serde_json::from_str(&text).unwrap());
            }
        }
        self.events.clear();
    }

    fn navigate(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for_load();
    }

    /// Taps an element that leads to another page, and waits for that page.
    fn tap(&mut self, selector: &str) {
        self.events.clear();
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
            json!(selector)
        ));
        assert_eq!(
            found,
            json!(true),
            "nothing to tap at {selector} on {}",
            self.url()
        );
        self.wait_for_load();
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }

    fn url(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Saves a PNG of the page under target/screenshots/NAME.png.
    fn screenshot(&mut self, name: &str) {
        let result = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let data = result["data"].as_str().expect("screenshot data");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), base64_decode(data)).unwrap();
    }

    /// The accessibility and layout checks every page of ours must pass.
    fn check_page(&mut self, page: &str) {
        let report = self.eval(CHECKS);
        assert_eq!(report["lang"], "zh-CN", "{page}: html lang");
        assert_eq!(
            report["imagesWithoutAlt"], 0,
            "{page}: images without alt text: {report}"
        );
        assert_eq!(
            report["unlabelledControls"], 0,
            "{page}: unlabelled buttons or links: {report}"
        );
        let contrast = report["minContrast"].as_f64().unwrap();
        assert!(
            contrast >= 4.5,
            "{page}: text contrast {contrast:.2} below 4.5:1: {report}"
        );
        let tap = report["minTapHeight"].as_f64().unwrap();
        assert!(
            tap >= 44.0,
            "{page}: a tap target is {tap}px tall: {report}"
        );
        assert_eq!(
            report["overflowX"], false,
            "{page}: wider than the phone: {report}"
        );
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Runs in the page: lang, alt texts, labels, the lowest text contrast
/// (WCAG formula, against the nearest opaque background), the smallest tap
/// target, and horizontal overflow.
const CHECKS: &str = r#"(() => {
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  let minContrast = 21, lowest = '';
  for (const el of document.querySelectorAll('h1, h2, p, dt, dd, a, button, span, li')) {
    if (!el.innerText || !el.innerText.trim() || el.offsetParent === null) continue;
    const fg = lum(rgb(getComputedStyle(el).color).slice(0, 3)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < minContrast) {
      minContrast = ratio;
      lowest = `${el.tagName.toLowerCase()}.${el.className}: ${el.innerText.trim().slice(0, 20)}`;
    }
  }
  const controls = [...document.querySelectorAll('button, a.btn')];
  return {
    lang: document.documentElement.lang,
    imagesWithoutAlt: [...document.images].filter(i => !i.alt || !i.alt.trim()).length,
    unlabelledControls: controls.filter(c => !(c.innerText || c.getAttribute('aria-label') || '').trim()).length,
    minContrast,
    lowest,
    minTapHeight: Math.min(...controls.map(c => c.getBoundingClientRect().height), 1000),
    overflowX: document.documentElement.scrollWidth > window.innerWidth,
  };
})()"#;

fn base64_decode(data: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            _ => 63,
        }
    };
    let bytes: Vec<u8> = data
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | value(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn sim_page(stack: &Stack, chrome: &mut Chrome) -> bool {
    chrome.url().starts_with(&stack.sim_url)
}

#[test]
fn a_phone_logs_in_sees_its_profile_and_logs_out() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    chrome.navigate(&stack.url("/"));
    assert!(chrome.text().contains("游客"), "{}", chrome.text());
    chrome.check_page("home (guest)");
    chrome.screenshot("home-guest");

    chrome.tap("a[href='/login']");
    assert!(
        sim_page(&stack, &mut chrome),
        "on WeChat's (the simulator's) consent page"
    );
    assert!(chrome.text().contains("允许"));
    chrome.screenshot("consent");

    chrome.tap("button[value='allow']");
    assert_eq!(chrome.url(), stack.url("/profile"));
    let text = chrome.text();
    for shown in [
        "熊猫🐼小明",
        "oSim0PandaXiaoMingEmoji00001",
        "男",
        "广东",
        "深圳",
        "中国",
        "chinaunicom",
    ] {
        assert!(text.contains(shown), "{shown} on the profile: {text}");
    }
    let avatar = chrome.eval("(() => { const i = document.querySelector('img.avatar'); return i ? [i.alt, i.getBoundingClientRect().width] : null; })()");
    assert!(
        avatar[0].as_str().is_some_and(|alt| !alt.is_empty()),
        "avatar alt: {avatar}"
    );
    assert!(
        avatar[1].as_f64().unwrap() >= 40.0,
        "avatar is visible: {avatar}"
    );
    chrome.check_page("profile");
    chrome.screenshot("profile");

    chrome.tap("form[action='/logout'] button");
    assert_eq!(chrome.url(), stack.url("/"));
    assert!(chrome.text().contains("游客"));
}

#[test]
fn a_phone_that_declines_gets_a_way_back_and_an_error_is_explained() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    chrome.navigate(&stack.url("/"));
    chrome.tap("a[href='/login']");
    chrome.tap("button[value='deny']");
    let text = chrome.text();
    assert!(
        text.contains("授权已取消") && text.contains("重新授权"),
        "{text}"
    );
    chrome.check_page("declined");
    chrome.screenshot("error-declined");
    // 重新授权 starts a new login at once.
    chrome.tap("a.btn-primary");
    assert!(sim_page(&stack, &mut chrome));

    stack.control(&[("fault", "access_token:errcode:40029")]);
    chrome.tap("button[value='allow']");
    let text = chrome.text();
    assert!(
        text.contains("40029") && text.contains("重新授权"),
        "{text}"
    );
    chrome.check_page("wechat error");
    chrome.screenshot("error-wechat");
}

#[test]
fn the_simulator_shows_wechats_error_for_a_wrong_callback_domain() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    let wrong = wxauth_app::transport::http::encode_component("https://evil.example/callback");
    chrome.navigate(&format!(
        "{}/connect/oauth2/authorize?appid={}&redirect_uri={wrong}&response_type=code&scope=snsapi_userinfo&state=abc#wechat_redirect",
        stack.sim_url,
        wxauth_app::config::DEMO_APPID
    ));
    let text = chrome.text();
    assert!(
        text.contains("10003") && text.contains("redirect_uri域名与后台配置不一致"),
        "{text}"
    );
    chrome.screenshot("sim-error-10003");
}

#[test]
fn a_desktop_browser_logs_in_by_scanning_the_qr_code() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    chrome.as_desktop(1024, 760);
    // The demo has a website app: wxauth's own QR page is the other choice.
    chrome.navigate(&stack.url("/login?via=scan"));
    assert!(chrome.text().contains("微信扫码登录"));
    let box_size = chrome.eval("(() => { const s = document.querySelector('svg.qr'); const r = s.getBoundingClientRect(); return [r.width, r.height]; })()");
    assert!(
        box_size[0].as_f64().unwrap() >= 150.0,
        "the QR code is drawn: {box_size}"
    );
    chrome.check_page("scan (desktop)");
    chrome.screenshot("scan-desktop");
    let ticket = chrome.eval("document.getElementById('scan-status').dataset.ticket");
    let scan_url = format!(
        "{}/login/scan?t={}",
        stack.app_url,
        ticket.as_str().unwrap()
    );
    // The phone, with its own cookies, scans and logs in.
    let mut phone = crate::support::Browser::new();
    let authorize = phone.get(&scan_url);
    let callback = phone.consent(authorize.location(), 0, true);
    let back = phone.get(&callback);
    let confirm = phone.get(&stack.url(back.location()));
    assert!(
        confirm.body.contains("确认在电脑上登录"),
        "{}",
        confirm.body
    );
    // The desktop page says so by itself (static/scan.js), and waits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !chrome.text().contains("已扫码，请在手机上确认") {
        assert!(Instant::now() < deadline, "{}", chrome.text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let token = confirm
        .body
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let decided = phone.post(
        &stack.url("/login/scan/confirm"),
        &[("t", ticket.as_str().unwrap()), ("token", &token)],
    );
    assert_eq!(decided.status, 303, "{}", decided.body);
    // Then it moves on.
    chrome.events.clear();
    chrome.wait_for_load();
    assert_eq!(chrome.url(), stack.url("/profile"));
    assert!(chrome.text().contains("熊猫🐼小明"));
}

#[test]
fn a_phone_confirms_a_desktop_login_with_the_pages_own_form() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    // The desktop, here without a browser of its own.
    let mut desktop = crate::support::Browser::new();
    desktop.user_agent =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15".into();
    let page = desktop.get(&stack.url("/login?via=scan"));
    let ticket = crate::support::attribute(&page.body, "data-ticket");
    let poll = stack.url(&format!("/login/ticket?t={ticket}"));
    // The phone is the real browser: it scans, logs in, and is asked.
    chrome.navigate(&stack.url(&format!("/login/scan?t={ticket}")));
    chrome.tap("button[value='allow']");
    let text = chrome.text();
    assert!(
        text.contains("确认在电脑上登录") && text.contains("Safari · macOS"),
        "{text}"
    );
    chrome.check_page("scan confirmation (phone)");
    chrome.screenshot("scan-confirm");
    assert!(desktop.get(&poll).body.contains("scanned"));
    // 确认登录: a same-origin form post from the page, as the browser sends it.
    chrome.tap("form[action='/login/scan/confirm'] button");
    let text = chrome.text();
    assert!(text.contains("已在电脑上登录"), "{text}");
    chrome.check_page("scan confirmed (phone)");
    let done = desktop.get(&poll);
    assert!(done.body.contains("\"status\":\"done\""), "{}", done.body);
    assert_eq!(desktop.get(&stack.url("/api/me")).status, 200);
}

/// The bottom edge of every button and button-like link on the page, and
/// the window's height.
const BUTTON_BOTTOMS: &str = r#"(() => ({
  bottoms: [...document.querySelectorAll('.actions .btn')].map(b => b.getBoundingClientRect().bottom),
  height: window.innerHeight,
  scrolled: window.scrollY,
}))()"#;

#[test]
fn the_profiles_buttons_are_in_view_on_a_desktop_screen() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    chrome.as_desktop(1280, 800);
    // The full profile, then the post-2021 one (its note makes it longer).
    for (user, shot) in [(0, Some("profile-desktop")), (3, None)] {
        chrome.navigate(&stack.url("/login?direct=1"));
        assert!(sim_page(&stack, &mut chrome), "{}", chrome.url());
        chrome.eval(&format!(
            "document.querySelector(\"input[name='user'][value='{user}']\").click()"
        ));
        chrome.tap("button[value='allow']");
        assert_eq!(chrome.url(), stack.url("/profile"));
        let seen = chrome.eval(BUTTON_BOTTOMS);
        let bottoms = seen["bottoms"].as_array().unwrap();
        assert_eq!(bottoms.len(), 3, "刷新资料, 退出登录, 返回首页: {seen}");
        let height = seen["height"].as_f64().unwrap();
        for bottom in bottoms {
            assert!(
                bottom.as_f64().unwrap() <= height,
                "user {user}: a button below the fold at 1280×800: {seen}"
            );
        }
        chrome.check_page("profile (desktop)");
        if let Some(name) = shot {
            chrome.screenshot(name);
        }
    }
}

#[test]
fn a_long_nickname_wraps_on_a_narrow_phone() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    chrome.screen(320, 640, true);
    chrome.navigate(&stack.url("/login"));
    assert!(sim_page(&stack, &mut chrome), "{}", chrome.url());
    // WeChat's (the simulator's) consent page lists every test user.
    let widths = chrome.eval(
        r#"(() => ({
          page: document.documentElement.scrollWidth,
          window: window.innerWidth,
          right: Math.max(...[...document.querySelectorAll('.nick')].map(n => n.getBoundingClientRect().right)),
        }))()"#,
    );
    let window = widths["window"].as_f64().unwrap();
    assert!(
        widths["page"].as_f64().unwrap() <= window && widths["right"].as_f64().unwrap() <= window,
        "a nickname runs off the consent page: {widths}"
    );
    chrome.screenshot("consent-narrow");
    chrome.eval("document.querySelector(\"input[name='user'][value='5']\").click()");
    chrome.tap("button[value='allow']");
    assert_eq!(chrome.url(), stack.url("/profile"));
    assert!(chrome.text().contains("Supercalifragilistic"));
    chrome.check_page("profile (long nickname, 320 px)");
    chrome.navigate(&stack.url("/"));
    chrome.check_page("home (long nickname, 320 px)");
}

#[test]
fn the_demo_logs_in_at_localhost_in_a_real_browser() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    // The address people type, not the one the demo is bound to: the login
    // cookie is set for localhost, and the callback comes back to localhost.
    let site = format!("http://localhost:{}", stack.app.addr.port());
    chrome.navigate(&format!("{site}/"));
    chrome.tap("a[href='/login']");
    assert!(sim_page(&stack, &mut chrome), "{}", chrome.url());
    chrome.tap("button[value='allow']");
    assert_eq!(chrome.url(), format!("{site}/profile"), "{}", chrome.text());
    assert!(chrome.text().contains("熊猫🐼小明"), "{}", chrome.text());
    chrome.tap("form[action='/logout'] button");
    assert_eq!(chrome.url(), format!("{site}/"));
}

#[test]
fn a_desktop_logs_in_by_scanning_under_a_path_prefix() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = crate::support::start_real(&[("WXAUTH_PUBLIC_URL", "{app}/wx")]);
    chrome.as_desktop(1024, 760);
    chrome.navigate(&stack.url("/wx/login"));
    assert!(chrome.text().contains("微信扫码登录"), "{}", chrome.text());
    // The stylesheet (and so the layout) came from under the prefix.
    let styled = chrome.eval("getComputedStyle(document.querySelector('.qr-box')).width");
    assert_eq!(styled, json!("220px"), "style.css under /wx/static/");
    let ticket = chrome.eval("document.getElementById('scan-status').dataset.ticket");
    let ticket = ticket.as_str().unwrap().to_string();
    let mut phone = crate::support::Browser::new();
    let authorize = phone.get(&stack.url(&format!("/wx/login/scan?t={ticket}")));
    let callback = phone.consent(authorize.location(), 0, true);
    let back = phone.get(&callback);
    let confirm = phone.get(&stack.url(back.location()));
    let token = confirm
        .body
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // static/scan.js polls under the prefix and says so on the page.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !chrome.text().contains("已扫码，请在手机上确认") {
        assert!(Instant::now() < deadline, "{}", chrome.text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let decided = phone.post(
        &stack.url("/wx/login/scan/confirm"),
        &[("t", &ticket), ("token", &token)],
    );
    assert_eq!(decided.status, 303, "{}", decided.body);
    chrome.events.clear();
    chrome.wait_for_load();
    assert_eq!(chrome.url(), stack.url("/wx/profile"));
    assert!(chrome.text().contains("熊猫🐼小明"));
    chrome.check_page("profile under /wx/");
}

/// What the JS-SDK example page's status says once it has left "正在调用
/// wx.config…" (at most 20 s: the helper's own deadline for WeChat is 15 s).
fn jssdk_status(chrome: &mut Chrome) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = chrome.eval("document.getElementById('jssdk-status').textContent");
        let status = status.as_str().unwrap_or("").to_string();
        if !status.starts_with("正在调用") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the status still says {status:?} after 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Taps the example page's wx.checkJsApi button and waits (at most 10 s)
/// for the answer it lists.
fn check_js_api(chrome: &mut Chrome) -> String {
    chrome.eval("document.getElementById('jssdk-check').click()");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = chrome.eval("document.getElementById('jssdk-result').innerText");
        let listed = listed.as_str().unwrap_or("").to_string();
        if listed.contains("checkJsApi:") {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "no wx.checkJsApi answer in 10 s: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_jssdk_example_page_configures_wx_with_the_simulator() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    // The home page of the demo leads there.
    chrome.navigate(&stack.url("/"));
    chrome.tap("a[href='/jssdk/example']");
    assert_eq!(chrome.url(), stack.url("/jssdk/example"));
    // The simulator's jweixin.js asks the simulator whether the signature
    // wxauth made holds for this page.
    assert_eq!(jssdk_status(&mut chrome), "wx.config: ok");
    let ok = chrome.eval("document.getElementById('jssdk-status').classList.contains('ok')");
    assert_eq!(ok, json!(true));
    let listed = check_js_api(&mut chrome);
    assert!(
        listed.contains("scanQRCode：可用") && listed.contains("checkJsApi:ok"),
        "{listed}"
    );
    chrome.check_page("jssdk example");
    chrome.screenshot("jssdk-example");
    // A link shared in WeChat comes back with a query, and a single-page
    // app's route follows `#`: the URL signed is the page's without `#…`.
    chrome.navigate(&stack.url("/jssdk/example?from=singlemessage&isappinstalled=0#/x"));
    assert_eq!(
        jssdk_status(&mut chrome),
        "wx.config: ok",
        "{}",
        chrome.text()
    );
}

/// Runs before the example page's own scripts: records what the helper
/// (static/wxauth-jssdk.js) logs, fetches and hands wx.config, and does what
/// the URL's #fragment asks: `answer` (and `status`) stand in for
/// /jssdk/config's answer, `wx` for WeChat's script ("ready", or the errMsg
/// wx.error hands over). The fragment is neither sent nor signed.
const JSSDK_STUBS: &str = r#"(() => {
  const plan = new URLSearchParams(location.hash.slice(1));
  const seen = (window.__seen = { errors: [], fetched: [], config: null });
  const log = console.error.bind(console);
  console.error = (...args) => { seen.errors.push(args.join(" ")); log(...args); };
  addEventListener("unhandledrejection", (e) => seen.errors.push("unhandled: " + e.reason));
  const realFetch = window.fetch.bind(window);
  window.fetch = (url, init) => {
    seen.fetched.push(String(url));
    if (!plan.has("answer")) return realFetch(url, init);
    return Promise.resolve(new Response(plan.get("answer"), {
      status: Number(plan.get("status") || 200),
      headers: { "Content-Type": "application/json" },
    }));
  };
  if (!plan.has("wx")) return;
  const outcome = plan.get("wx"), readies = [], failures = [];
  window.wx = {
    config(config) {
      seen.config = config;
      setTimeout(() => outcome === "ready"
        ? readies.forEach((f) => f())
        : failures.forEach((f) => f({ errMsg: outcome })), 50);
    },
    ready(f) { readies.push(f); },
    error(f) { failures.push(f); },
    checkJsApi({ jsApiList, success }) {
      const checkResult = {};
      jsApiList.forEach((name) => { checkResult[name] = true; });
      setTimeout(() => success({ checkResult, errMsg: "checkJsApi:ok" }));
    },
  };
})()"#;

/// A `#fragment` for `JSSDK_STUBS`.
fn plan(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", wxauth_app::transport::http::encode_component(v)))
        .collect();
    format!("#{}", pairs.join("&"))
}

/// What `JSSDK_STUBS` saw on the page.
fn seen(chrome: &mut Chrome) -> Value {
    chrome.eval("window.__seen")
}

/// The URL the helper should ask for a page at `page` (without `#`).
fn config_url(base: &str, page: &str) -> String {
    format!(
        "{base}/jssdk/config?url={}",
        wxauth_app::transport::http::encode_component(page)
    )
}

#[test]
fn the_jssdk_helper_says_in_words_what_went_wrong() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    chrome.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": JSSDK_STUBS }),
    );
    // The simulator's stand-in never loads: each case brings its own wx, or none.
    chrome.call("Network.enable", json!({}));
    chrome.call(
        "Network.setBlockedURLs",
        json!({ "urls": ["*/sim/jweixin.js"] }),
    );
    let errors = |seen: &Value| seen["errors"].as_array().unwrap().clone();

    // No WeChat script before the helper.
    chrome.navigate(&stack.url("/jssdk/example?case=no-wx"));
    let missing = "wxauth: window.wx is missing: include jweixin-1.6.0.js before wxauth-jssdk.js";
    assert_eq!(jssdk_status(&mut chrome), missing);
    let seen_now = seen(&mut chrome);
    assert_eq!(errors(&seen_now), [json!(missing)], "one console line");
    let state = chrome.eval("[document.getElementById('jssdk-status').className, document.getElementById('jssdk-check').disabled]");
    assert_eq!(state, json!(["scan-status jssdk-status failed", true]));

    // wxauth refuses the URL (400): its reason, as the server wrote it.
    let page = stack.url("/jssdk/example?case=amp&amp;x=1");
    chrome.navigate(&format!("{page}{}", plan(&[("wx", "ready")])));
    let status = jssdk_status(&mut chrome);
    assert!(
        status.starts_with("wxauth: url: holds &amp;, an HTML-escaped &"),
        "{status}"
    );
    let seen_now = seen(&mut chrome);
    assert_eq!(
        seen_now["fetched"],
        json!([config_url(&stack.app_url, &page)])
    );
    assert_eq!(errors(&seen_now), [json!(status)]);

    // WeChat refuses the signature: both URLs side by side.
    let signed = json!({
        "appId": "wx0000000000demo", "timestamp": 1_700_000_000, "nonceStr": "n0nce",
        "signature": "0123456789abcdef0123456789abcdef01234567", "url": "http://signed.example/a",
    })
    .to_string();
    let page = stack.url("/jssdk/example?case=signature");
    chrome.navigate(&format!(
        "{page}{}",
        plan(&[("answer", &signed), ("wx", "config:invalid signature")])
    ));
    let status = jssdk_status(&mut chrome);
    assert_eq!(
        status,
        format!(
            "wxauth: wx.config: invalid signature: the URL signed was http://signed.example/a; \
             this page is {page}. Check http/https behind your proxy, that the page's own URL \
             (not the API's) was signed, no &amp;, and on iOS single-page apps the landing URL"
        )
    );
    assert_eq!(errors(&seen(&mut chrome)), [json!(status)]);
    chrome.check_page("jssdk example (refused)");
    chrome.screenshot("jssdk-example-error");

    // WeChat refuses the domain.
    chrome.navigate(&format!(
        "{}{}",
        stack.url("/jssdk/example?case=domain"),
        plan(&[("answer", &signed), ("wx", "config:invalid url domain")])
    ));
    let host = stack.app_url.trim_start_matches("http://");
    assert_eq!(
        jssdk_status(&mut chrome),
        format!(
            "wxauth: wx.config: invalid url domain: {host} is not in the account's JS接口安全域名 \
             (公众号设置 → 功能设置), or not in WXAUTH_JS_DOMAINS; only ports 80 and 443"
        )
    );

    // No jsapi_ticket from WeChat: its errcode, or that it did not answer.
    for (case, status, answer, said) in [
        (
            "errcode",
            "502",
            r#"{"error":"wechat_error","errcode":40164}"#,
            "wxauth: WeChat did not give a jsapi_ticket (errcode 40164)",
        ),
        (
            "timeout",
            "504",
            r#"{"error":"upstream_timeout"}"#,
            "wxauth: WeChat did not give a jsapi_ticket (no answer in time)",
        ),
    ] {
        chrome.navigate(&format!(
            "{}{}",
            stack.url(&format!("/jssdk/example?case={case}")),
            plan(&[("answer", answer), ("status", status), ("wx", "ready")])
        ));
        let shown = jssdk_status(&mut chrome);
        assert!(shown.starts_with(said), "{case}: {shown}");
    }

    // Accepted: wx.config got the signed fields and the page's API list,
    // for the page's URL without its fragment; the button asks checkJsApi.
    let page = stack.url("/jssdk/example?from=singlemessage&case=ok");
    chrome.navigate(&format!(
        "{page}{}",
        plan(&[("answer", &signed), ("wx", "ready")])
    ));
    assert_eq!(jssdk_status(&mut chrome), "wx.config: ok");
    let seen_now = seen(&mut chrome);
    assert_eq!(
        seen_now["fetched"],
        json!([config_url(&stack.app_url, &page)])
    );
    assert_eq!(
        seen_now["config"],
        json!({
            "debug": false, "appId": "wx0000000000demo", "timestamp": 1_700_000_000,
            "nonceStr": "n0nce", "signature": "0123456789abcdef0123456789abcdef01234567",
            "jsApiList": ["updateAppMessageShareData", "updateTimelineShareData", "scanQRCode"],
        })
    );
    assert_eq!(errors(&seen_now), Vec::<Value>::new());
    let listed = check_js_api(&mut chrome);
    assert!(listed.contains("updateTimelineShareData：可用"), "{listed}");
    // A single-page app after a route change: configure() signs the new URL.
    chrome.eval(
        "history.pushState(null, '', '/jssdk/example?route=2#/y'); wxauthJssdk.configure(); 0",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen(&mut chrome)["fetched"].as_array().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "configure() fetched nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        seen(&mut chrome)["fetched"][1],
        json!(config_url(
            &stack.app_url,
            &stack.url("/jssdk/example?route=2")
        ))
    );
}

#[test]
fn the_jssdk_helper_finds_wxauth_under_a_path_prefix() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    // The demo at a fixed public URL with a prefix (it follows no host then).
    let port = crate::support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let site = format!("http://{listen}/wx");
    let stack =
        crate::support::start_with(&[("WXAUTH_LISTEN", &listen), ("WXAUTH_PUBLIC_URL", &site)]);
    chrome.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": JSSDK_STUBS }),
    );
    chrome.call("Network.enable", json!({}));
    chrome.call(
        "Network.setBlockedURLs",
        json!({ "urls": ["*/sim/jweixin.js"] }),
    );
    // A URL wxauth refuses: its reason shows the helper asked /wx/jssdk/config.
    let page = format!("{site}/jssdk/example?case=prefix&amp;x=1");
    chrome.navigate(&format!("{page}{}", plan(&[("wx", "ready")])));
    let status = jssdk_status(&mut chrome);
    assert!(status.starts_with("wxauth: url: holds &amp;"), "{status}");
    assert_eq!(
        seen(&mut chrome)["fetched"],
        json!([config_url(&site, &page)])
    );
    assert!(stack.app_url.ends_with(&listen));
}

#[test]
fn a_desktop_logs_in_through_wechats_qr_login_of_the_website_app() {
    let Some(mut chrome) = Chrome::launch() else {
        return;
    };
    let stack = start();
    chrome.as_desktop(1024, 760);
    chrome.navigate(&stack.url("/login"));
    // The simulator's stand-in for open.weixin.qq.com/connect/qrconnect.
    assert!(
        chrome
            .url()
            .starts_with(&format!("{}/connect/qrconnect?", stack.sim_url)),
        "{}",
        chrome.url()
    );
    assert!(chrome.text().contains("微信登录"), "{}", chrome.text());
    chrome.screenshot("qrconnect-desktop");
    chrome.tap("form button.allow");
    assert_eq!(chrome.url(), stack.url("/profile"), "{}", chrome.text());
    let text = chrome.text();
    assert!(text.contains("OpenID（网站应用）"), "{text}");
    assert!(text.contains("oWeb0PandaXiaoMingEmoji00001"), "{text}");
    assert!(text.contains("熊猫🐼小明"), "{text}");
    chrome.screenshot("profile-website");
}
