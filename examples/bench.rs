//! The benchmark's client side, for what wrk cannot do: whole logins
//! (/login → the simulator's consent page and 允许 → /callback → /profile),
//! seeding many sessions, and start-up time. `scripts/bench.sh` drives it;
//! it talks to loopback only.
//!
//! Usage:
//!   bench cookie  APP SIM                    one login, prints its session cookie
//!   bench logins  APP SIM THREADS SECONDS    complete logins for a while: count and rate
//!   bench seed    APP SIM THREADS COUNT      COUNT complete logins, as fast as possible
//!   bench startup ADDR RUNS -- BIN [ARGS]    spawn BIN RUNS times, time until ADDR serves /healthz
//!   bench storm   APP SIM BROWSERS SECONDS COOKIE
//!                 BROWSERS log in over and over while a logged-in probe (COOKIE)
//!                 asks /auth/check every 20 ms: logins/s and the probe's latency

use std::panic::AssertUnwindSafe;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str { args.get(i).map(String::as_str).unwrap_or_else(|| usage()) };
    match arg(0) {
        "cookie" => println!("{}", Client::new(arg(1), arg(2)).login()),
        "logins" => {
            let (threads, seconds) = (number(arg(3)), number(arg(4)));
            let deadline = Instant::now() + Duration::from_secs(seconds as u64);
            let done = run(arg(1), arg(2), threads, |_| Instant::now() < deadline);
            println!(
                "logins={done} seconds={seconds} rate={:.0}",
                done as f64 / seconds as f64
            );
        }
        "seed" => {
            let (threads, count) = (number(arg(3)), number(arg(4)));
            let next = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            let done = run(arg(1), arg(2), threads, move |_| {
                next.fetch_add(1, Ordering::Relaxed) < count
            });
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "logins={done} seconds={seconds:.1} rate={:.0}",
                done as f64 / seconds
            );
        }
        "startup" => startup(arg(1), number(arg(2)), &args[4..]),
        "storm" => storm(arg(1), arg(2), number(arg(3)), number(arg(4)), arg(5)),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: bench cookie|logins|seed|startup ... (see the source)");
    std::process::exit(2)
}

fn number(s: &str) -> usize {
    s.parse().unwrap_or_else(|_| usage())
}

/// The login storm: `browsers` clients log in over and over for `seconds`,
/// each from its own address (X-Real-IP, as nginx would send it), while a
/// logged-in probe asks /auth/check every 20 ms on its own connection.
fn storm(app: &str, sim: &str, browsers: usize, seconds: usize, cookie: &str) {
    // A server that freezes makes requests time out (10 s): counted as
    // failures, not a crash of the benchmark, so a slow server still gets
    // its figures. The panic messages would only repeat that.
    std::panic::set_hook(Box::new(|_| {}));
    let attempt = |f: &mut dyn FnMut()| std::panic::catch_unwind(AssertUnwindSafe(f)).is_ok();
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let (done, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (mut probe_ms, mut probe_failed) = (Vec::new(), 0);
    std::thread::scope(|scope| {
        for b in 0..browsers {
            let (done, failed) = (&done, &failed);
            scope.spawn(move || {
                let mut client = Client::new(app, sim);
                client.real_ip = format!("10.9.{}.{}", b / 250, b % 250 + 1);
                while Instant::now() < deadline {
                    if attempt(&mut || drop(client.login())) {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let probe = Client::new(app, sim);
        let check = format!("{app}/auth/check");
        while Instant::now() < deadline {
            let started = Instant::now();
            let answered = attempt(&mut || {
                let status = probe.get(&check, cookie).status().as_u16();
                assert_eq!(status, 204, "the probe's session answers /auth/check");
            });
            probe_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            probe_failed += usize::from(!answered);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let _ = std::panic::take_hook();
    probe_ms.sort_by(f64::total_cmp);
    let at = |q: f64| probe_ms[((probe_ms.len() - 1) as f64 * q) as usize];
    let logins = done.into_inner();
    println!(
        "logins={logins} rate={:.1} failed={} probes={} probe_failed={probe_failed} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        logins as f64 / seconds as f64,
        failed.into_inner(),
        probe_ms.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Runs logins on `threads` threads while `more` says so; returns how many completed.
fn run(app: &str, sim: &str, threads: usize, more: impl Fn(usize) -> bool + Send + Sync) -> usize {
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (done, more) = (&done, &more);
            scope.spawn(move || {
                let mut client = Client::new(app, sim);
                while more(t) {
                    client.login();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.into_inner()
}

/// One browser: its own connections and cookies.
struct Client {
    agent: ureq::Agent,
    app: String,
    sim: String,
    login_cookie: String,
    /// Sent as X-Real-IP when set: this client's address behind nginx.
    real_ip: String,
}

impl Client {
    fn new(app: &str, sim: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Client {
            agent,
            app: app.into(),
            sim: sim.into(),
            login_cookie: String::new(),
            real_ip: String::new(),
        }
    }

    /// A complete login; returns the session cookie (`wxauth_session=…`).
    fn login(&mut self) -> String {
        let resp = self.get(&format!("{}/login", self.app), "");
        let authorize = location(&resp).split('#').next().unwrap_or("").to_string();
        if let Some(cookie) = set_cookie(&resp, "wxauth_login") {
            self.login_cookie = cookie;
        }
        let consent = self.get(&authorize, "");
        assert_eq!(consent.status().as_u16(), 200, "the consent page");
        let query = authorize.split_once('?').map(|(_, q)| q).unwrap_or("");
        let params = wxauth_app::transport::http::parse_query(query);
        let param = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let form = [
            ("appid", param("appid")),
            ("redirect_uri", param("redirect_uri")),
            ("response_type", "code"),
            ("scope", param("scope")),
            ("state", param("state")),
            ("user", "0"),
            ("action", "allow"),
        ];
        let confirm = self
            .agent
            .post(&format!("{}/connect/oauth2/authorize/confirm", self.sim))
            .send_form(form)
            .expect("the simulator answers");
        let callback = location(&confirm);
        let done = self.get(&callback, &self.login_cookie.clone());
        assert_eq!(done.status().as_u16(), 302, "the callback");
        let session = set_cookie(&done, "wxauth_session").expect("a session cookie");
        let profile = self.get(&format!("{}/profile", self.app), &session);
        assert_eq!(profile.status().as_u16(), 200, "the profile");
        session
    }

    fn get(&self, url: &str, cookie: &str) -> ureq::http::Response<ureq::Body> {
        // A phone inside WeChat: elsewhere /login shows a QR code instead.
        let mut req = self
            .agent
            .get(url)
            .header("User-Agent", "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50");
        if !cookie.is_empty() {
            req = req.header("Cookie", cookie);
        }
        if !self.real_ip.is_empty() {
            req = req.header("X-Real-IP", &self.real_ip);
        }
        let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let _ = resp.body_mut().read_to_vec();
        resp
    }
}

fn location(resp: &ureq::http::Response<ureq::Body>) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in a {} answer", resp.status()))
        .to_string()
}

fn set_cookie(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_string())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

/// Spawns the command `runs` times and reports how long until `addr` answers /healthz.
fn startup(addr: &str, runs: usize, command: &[String]) {
    let (bin, args) = command.split_first().unwrap_or_else(|| usage());
    let url = format!("http://{addr}/healthz");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(200)))
        .build()
        .into();
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the server");
        loop {
            if agent.get(&url).call().is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no answer within 10 s"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "startup_ms_median={:.1} startup_ms_min={:.1} runs={runs}",
        times[runs / 2],
        times[0]
    );
}
