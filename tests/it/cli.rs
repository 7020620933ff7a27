//! The real binary: exit codes, --help, --version, check-config, and demo
//! mode printing both URLs and serving a login end to end.

use crate::support::Browser;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_wxauth");

/// The binary, with none of this process's WXAUTH_* variables.
pub fn wxauth_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXAUTH_")) {
        cmd.env_remove(key);
    }
    cmd
}

/// Runs the binary to completion with only the given WXAUTH_* variables.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = wxauth_command();
    cmd.args(args);
    cmd.envs(env.iter().copied());
    cmd.output().expect("run wxauth")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn invalid_configuration_exits_2_with_one_line_per_problem() {
    let out = run(
        &["check-config"],
        &[
            ("WXAUTH_APPID", "wx123"),
            ("WXAUTH_SCOPE", "bogus"),
            ("WXAUTH_LANG", "fr"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let lines: Vec<String> = stderr(&out).lines().map(String::from).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("wxauth: WXAUTH_SECRET:")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("wxauth: WXAUTH_PUBLIC_URL:")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("wxauth: WXAUTH_SCOPE:")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("wxauth: WXAUTH_LANG:")),
        "{lines:?}"
    );
    // serve refuses the same way, before binding anything.
    let out = run(&[], &[("WXAUTH_SECRET", "s")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("WXAUTH_APPID"));
    let out = run(&["--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn typos_in_the_configuration_are_caught_with_a_suggestion() {
    let out = run(&["check-config"], &[("WXAUTH_PORT", "9000")]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "wxauth: WXAUTH_PORT: unknown variable; did you mean WXAUTH_LISTEN? (see --help)"
    );
    let out = run(&["--secret", "x"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("visible to every user"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &["check-config", "--public-url", "--listen", "0.0.0.0:80"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--public-url: needs a value"),
        "{}",
        stderr(&out)
    );
    // systemd started it, and the env file with the appid was not loaded.
    let out = run(&["check-config"], &[("INVOCATION_ID", "0123abcd")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("EnvironmentFile"), "{}", stderr(&out));
    // A port WeChat will not call back: it works, with a warning.
    let real = [
        ("WXAUTH_APPID", "wx1234567890abcdef"),
        ("WXAUTH_SECRET", "s3cret-value"),
        ("WXAUTH_PUBLIC_URL", "https://wx.example.com:8443"),
        ("WXAUTH_LISTEN", "localhost:18080"),
    ];
    let out = run(&["check-config"], &real);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: WXAUTH_PUBLIC_URL: port 8443"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("127.0.0.1:18080"), "{}", stdout(&out));
}

#[test]
fn check_config_prints_the_effective_configuration_with_the_secret_masked() {
    let dir = std::env::temp_dir().join(format!("wxauth-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "file-secret-123\n").unwrap();
    let out = run(
        &["check-config", "--scope", "snsapi_base"],
        &[
            ("WXAUTH_APPID", "wx1234567890abcdef"),
            ("WXAUTH_SECRET_FILE", secret_file.to_str().unwrap()),
            ("WXAUTH_PUBLIC_URL", "https://wx.example.com/"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.split(' ').next() == Some(name))
            .and_then(|l| l.split_once(" = "))
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert_eq!(value("mode"), "real WeChat");
    assert_eq!(value("redirect_uri"), "https://wx.example.com/callback");
    assert_eq!(value("WXAUTH_SCOPE"), "snsapi_base", "the flag overrides");
    assert_eq!(value("WXAUTH_SECRET"), "****");
    assert!(!text.contains("file-secret-123"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn help_and_version() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for word in [
        "serve",
        "sim",
        "check-config",
        "WXAUTH_PUBLIC_URL",
        "--listen",
    ] {
        assert!(text.contains(word), "{word} in --help");
    }
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "help fits 80 columns"
    );
    let out = run(&["--version"], &[]);
    assert_eq!(
        stdout(&out).trim(),
        format!("wxauth {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Kills the child when the test ends, however it ends.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real binary in demo mode, as started by `start_demo`.
pub(crate) struct Demo {
    pub(crate) child: Running,
    pub(crate) app: String,
    pub(crate) sim: String,
    /// Every line it printed so far; stderr lines start with "stderr: ".
    log: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// A browser (in WeChat) logged in here as test user `user`.
    pub(crate) fn logged_in(&self, user: usize) -> Browser {
        let mut browser = Browser::new();
        let login = browser.get(&format!("{}/login", self.app));
        let callback = browser.consent(login.location(), user, true);
        assert_eq!(browser.get(&callback).status, 302);
        assert_eq!(browser.get(&format!("{}/api/me", self.app)).status, 200);
        browser
    }
}

/// The real binary in demo mode on free ports, with extra environment, once
/// it has printed the app's and the simulator's URLs.
pub(crate) fn start_demo(env: &[(&str, &str)]) -> Demo {
    start_binary(env, true)
}

/// The real binary with extra environment (`demo`: it prints the app's and
/// the simulator's URLs; otherwise `app` is where it says it listens).
fn start_binary(env: &[(&str, &str)], demo: bool) -> Demo {
    let child = wxauth_command()
        .env("WXAUTH_LISTEN", "127.0.0.1:0")
        .env("WXAUTH_SIM_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wxauth");
    let mut child = Running(child);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    for (stream, prefix) in [
        (Box::new(stdout) as Box<dyn std::io::Read + Send>, ""),
        (Box::new(stderr), "stderr: "),
    ] {
        let (tx, log) = (tx.clone(), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                println!("[wxauth] {prefix}{line}");
                log.lock().unwrap().push(format!("{prefix}{line}"));
                // Keep reading after the test stops listening: the pipe stays open.
                let _ = tx.send(line);
            }
        });
    }
    let (mut app, mut sim) = (None, if demo { None } else { Some(String::new()) });
    while app.is_none() || sim.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("wxauth says where it listens (demo mode: both URLs) within 10 s");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(String::from);
        if !demo {
            app = line
                .split_once(" listening on ")
                .and_then(|(_, rest)| rest.split(": ").next())
                .map(|addr| format!("http://{addr}"));
        } else if line.trim_start().starts_with("app:") {
            app = url;
        } else if line.trim_start().starts_with("simulator:") {
            sim = url;
        }
    }
    Demo {
        child,
        app: app.unwrap(),
        sim: sim.unwrap(),
        log,
    }
}

/// Sends SIGTERM and waits (at most 10 s) for the exit status.
pub(crate) fn terminate(child: &mut Running) -> std::process::ExitStatus {
    send_sigterm(child);
    wait_for_exit(child)
}

fn send_sigterm(child: &Running) {
    let pid = child.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success());
}

/// Waits (at most 10 s) for the exit status.
pub(crate) fn wait_for_exit(child: &mut Running) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait for wxauth") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wxauth did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn demo_mode_prints_both_urls_and_a_browser_can_log_in() {
    let demo = start_demo(&[]);
    let (app, sim) = (&demo.app, &demo.sim);
    let mut browser = Browser::new();
    assert_eq!(browser.get(&format!("{app}/healthz")).status, 200);
    let login = browser.get(&format!("{app}/login"));
    assert!(login
        .location()
        .starts_with(&format!("{sim}/connect/oauth2/authorize?")));
    let callback = browser.consent(login.location(), 0, true);
    assert_eq!(browser.get(&callback).status, 302);
    let profile = browser.get(&format!("{app}/profile"));
    assert_eq!(profile.status, 200);
    assert!(profile.body.contains("熊猫🐼小明"));
}

#[test]
fn a_restart_with_sigterm_keeps_the_sessions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("wxauth-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessions.json");
    let file_env = [("WXAUTH_SESSION_FILE", file.to_str().unwrap())];

    let mut first = start_demo(&file_env);
    assert!(
        !first.log().iter().any(|l| l.contains("restored")),
        "no file yet, nothing restored to speak of: {:?}",
        first.log()
    );
    let app = first.app.clone();
    let mut browser = Browser::new();
    let login = browser.get(&format!("{app}/login"));
    let callback = browser.consent(login.location(), 0, true);
    assert_eq!(browser.get(&callback).status, 302);
    let mut logged_out = Browser::new();
    let login = logged_out.get(&format!("{app}/login"));
    let callback = logged_out.consent(login.location(), 3, true);
    logged_out.get(&callback);
    let stale = logged_out.jar["wxauth_session"].clone();
    logged_out.post(&format!("{app}/logout"), &[]);

    assert_eq!(
        terminate(&mut first.child).code(),
        Some(0),
        "a clean exit on SIGTERM"
    );
    let saved = first.log().iter().any(|l| l.contains("saved 1 session to"));
    assert!(saved, "{:?}", first.log());
    let mode = std::fs::metadata(&file)
        .expect("the session file was written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A new process, a new port: the same cookie still shows the profile.
    let second = start_demo(&file_env);
    let app = second.app.clone();
    let profile = browser.get(&format!("{app}/profile"));
    assert_eq!(profile.status, 200);
    assert!(profile.body.contains("熊猫🐼小明"));
    logged_out.jar.insert("wxauth_session".into(), stale);
    assert_eq!(
        logged_out.get(&format!("{app}/api/me")).status,
        401,
        "a logout survives the restart"
    );
    assert!(!file.exists(), "the file is consumed at start");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_login_under_way_survives_a_restart_with_sigterm() {
    let dir = std::env::temp_dir().join(format!("wxauth-underway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessions.json");
    // The same ports on both sides of the restart: the URLs WeChat holds stay good.
    let (app_port, sim_port) = (
        crate::support::free_port().to_string(),
        crate::support::free_port().to_string(),
    );
    let listen = format!("127.0.0.1:{app_port}");
    let sim_listen = format!("127.0.0.1:{sim_port}");
    let env = [
        ("WXAUTH_SESSION_FILE", file.to_str().unwrap()),
        ("WXAUTH_LISTEN", listen.as_str()),
        ("WXAUTH_SIM_LISTEN", sim_listen.as_str()),
    ];
    let mut first = start_demo(&env);
    let app = first.app.clone();
    // One login completed before the restart, one only begun.
    let mut done = Browser::new();
    let login = done.get(&format!("{app}/login?next=%2Fdone"));
    let completed = done.consent(login.location(), 0, true);
    assert_eq!(done.get(&completed).location(), "/done");
    let mut underway = Browser::new();
    let authorize = underway
        .get(&format!("{app}/login?next=%2Funderway"))
        .location()
        .to_string();
    assert_eq!(terminate(&mut first.child).code(), Some(0));

    let second = start_demo(&env);
    assert_eq!(second.app, app);
    // The state issued before the restart checks out after it (the key was kept).
    let callback = underway.consent(&authorize, 3, true);
    let landed = underway.get(&callback);
    assert_eq!(landed.status, 302, "{}", landed.body);
    assert_eq!(landed.location(), "/underway");
    assert_eq!(underway.get(&format!("{app}/api/me")).status, 200);
    // And a state spent before it is still spent: a reload lands without
    // a second exchange (which the new simulator would refuse with 40029).
    let again = done.get(&completed);
    assert_eq!(again.status, 302, "{}", again.body);
    assert_eq!(again.location(), "/done");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_sigterm_lets_a_login_under_way_finish_and_turns_new_requests_away() {
    let dir = std::env::temp_dir().join(format!("wxauth-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessions.json");
    let mut demo = start_demo(&[
        ("WXAUTH_SESSION_FILE", file.to_str().unwrap()),
        ("WXAUTH_UPSTREAM_TIMEOUT", "5"),
    ]);
    let (app, sim) = (demo.app.clone(), demo.sim.clone());
    let mut browser = Browser::new();
    let login = browser.get(&format!("{app}/login"));
    let callback = browser.consent(login.location(), 0, true);
    // Each WeChat call takes 1 s: the login is under way for 2 s.
    let control = format!("{sim}/sim/control");
    assert_eq!(
        Browser::new().post(&control, &[("latency", "1000")]).status,
        200
    );
    let mut tab = Browser::new();
    tab.jar = browser.jar.clone();
    let waiting = std::thread::spawn(move || tab.get(&callback));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let calls = || {
        let state = Browser::new().get(&format!("{sim}/sim/state")).body;
        let state: serde_json::Value = serde_json::from_str(&state).unwrap();
        state["calls"]["access_token"].as_i64().unwrap()
    };
    while calls() < 1 {
        assert!(std::time::Instant::now() < deadline, "the exchange began");
        std::thread::sleep(Duration::from_millis(20));
    }
    send_sigterm(&demo.child);
    std::thread::sleep(Duration::from_millis(300));
    let turned_away = Browser::new().get(&format!("{app}/healthz"));
    assert_eq!(turned_away.status, 503, "a new request while stopping");
    assert!(turned_away.header("retry-after").is_some());
    let finished = waiting.join().expect("the callback thread");
    assert_eq!(
        finished.status, 302,
        "the login under way completed: {}",
        finished.body
    );
    assert_eq!(finished.location(), "/profile");
    assert_eq!(wait_for_exit(&mut demo.child).code(), Some(0));
    let saved = demo.log().iter().any(|l| l.contains("saved 1 session to"));
    assert!(
        saved,
        "the login that finished while stopping was saved: {:?}",
        demo.log()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_corrupt_session_file_is_reported_and_the_server_starts_empty() {
    let dir = std::env::temp_dir().join(format!("wxauth-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessions.json");
    std::fs::write(&file, "{ this is not json").unwrap();
    let mut demo = start_demo(&[("WXAUTH_SESSION_FILE", file.to_str().unwrap())]);
    assert_eq!(
        Browser::new().get(&format!("{}/healthz", demo.app)).status,
        200
    );
    let complaints = || -> Vec<String> {
        demo.log()
            .into_iter()
            .filter(|l| l.starts_with("stderr: "))
            .collect()
    };
    // The line is printed before the server answers, but read from the pipe
    // by another thread: wait for it, then for anything more that might follow.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while complaints().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let complaints = complaints();
    assert_eq!(complaints.len(), 1, "one line: {complaints:?}");
    assert!(
        complaints[0].contains("session file")
            && complaints[0].contains("starting with no sessions"),
        "{complaints:?}"
    );
    assert_eq!(terminate(&mut demo.child).code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    let child = wxauth_command()
        .env("WXAUTH_LISTEN", "127.0.0.1:0")
        .env("WXAUTH_SIM_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wxauth");
    let mut child = Running(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        // Read up to the app's URL, then close the pipe, as a restarting journald would.
        for line in lines.by_ref().map_while(Result::ok) {
            if line.trim_start().starts_with("app:") {
                let _ = tx.send(line);
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the app's URL");
    let app = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(100));
    let mut browser = Browser::new();
    for _ in 0..5 {
        assert_eq!(browser.get(&format!("{app}/healthz")).status, 200);
    }
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "still running with nobody reading its log"
    );
}

#[test]
fn logs_carry_the_errcode_and_never_a_code_state_or_token() {
    let demo = start_demo(&[]);
    let mut browser = Browser::new();
    // One good login, then one WeChat refuses.
    let login = browser.get(&format!("{}/login?next=%2Fsecret-path%3Fx%3D1", demo.app));
    let callback = browser.consent(login.location(), 0, true);
    browser.get(&callback);
    let control = format!("{}/sim/control", demo.sim);
    assert_eq!(
        Browser::new()
            .post(&control, &[("fault", "access_token:errcode:40029")])
            .status,
        200
    );
    let mut other = Browser::new();
    let login = other.get(&format!("{}/login", demo.app));
    let refused = other.consent(login.location(), 0, true);
    assert_eq!(other.get(&refused).status, 502);
    std::thread::sleep(Duration::from_millis(200));
    let log = demo.log();
    let text = log.join("\n");
    assert!(
        log.iter().any(|l| l.starts_with("app GET /callback 302 ")),
        "{text}"
    );
    assert!(
        log.iter().any(|l| l.starts_with("app GET /callback 502 ")),
        "{text}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("stderr: warn:") && l.contains("40029")),
        "a warning with the errcode: {text}"
    );
    let (first_code, state) = {
        let q = callback.split_once('?').unwrap().1;
        let pairs = wxauth_app::transport::http::parse_query(q);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).unwrap().1.clone();
        (get("code"), get("state"))
    };
    for secret in [
        first_code.as_str(),
        state.as_str(),
        "code=",
        "state=",
        "simAT_",
        "simRT_",
        "secret-path",
    ] {
        assert!(!text.contains(secret), "{secret:?} in the log:\n{text}");
    }
    assert!(text.contains("secret=****"));
}

#[test]
fn check_config_catches_a_broken_template_override() {
    let dir = std::env::temp_dir().join(format!("wxauth-tpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("home.html"), "{% if %}broken").unwrap();
    let out = run(
        &["check-config"],
        &[("WXAUTH_TEMPLATES", dir.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("wxauth: WXAUTH_TEMPLATES: template home.html"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.join("home.html"),
        "{% extends \"base.html\" %}{% block content %}自定义首页{% endblock %}",
    )
    .unwrap();
    let out = run(
        &["check-config"],
        &[("WXAUTH_TEMPLATES", dir.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_demo_on_every_address_prints_the_addresses_a_phone_can_use() {
    let demo = start_demo(&[
        ("WXAUTH_LISTEN", "0.0.0.0:0"),
        ("WXAUTH_SIM_LISTEN", "0.0.0.0:0"),
    ]);
    // Where this machine opens it: loopback, never 0.0.0.0.
    assert!(demo.app.starts_with("http://127.0.0.1:"), "{}", demo.app);
    assert!(demo.sim.starts_with("http://127.0.0.1:"), "{}", demo.sim);
    let port = demo.app.rsplit_once(':').unwrap().1.to_string();
    let log = demo.log();
    let text = log.join("\n");
    assert!(!text.contains("http://0.0.0.0"), "{text}");
    // Where a phone opens it: each address the machine has on the network
    // (here as the app finds them; the test never connects to one).
    let lan = wxauth_app::web::site::lan_addresses("0.0.0.0".parse().unwrap());
    for ip in &lan {
        let line = format!("phone:     http://{ip}:{port}");
        assert!(
            log.iter().any(|l| l.contains(&line)),
            "{line:?} in:\n{text}"
        );
    }
    if lan.is_empty() {
        assert!(text.contains("no network address found"), "{text}");
    }
    let mut browser = Browser::new();
    let login = browser.get(&format!("{}/login", demo.app));
    let callback = browser.consent(login.location(), 0, true);
    assert_eq!(browser.get(&callback).status, 302);

    // A simulator kept on loopback is one a phone cannot reach: said at start.
    let cramped = start_demo(&[("WXAUTH_LISTEN", "0.0.0.0:0")]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        cramped
            .log()
            .iter()
            .any(|l| l.starts_with("stderr: wxauth: warning: WXAUTH_SIM_LISTEN=127.0.0.1:")),
        "{:?}",
        cramped.log()
    );
    // On loopback (the default) it says how to let a phone in.
    let local = start_demo(&[]);
    assert!(
        local
            .log()
            .iter()
            .any(|l| l.contains("WXAUTH_LISTEN=0.0.0.0:")),
        "{:?}",
        local.log()
    );
}

#[test]
fn real_mode_says_in_the_log_when_a_callback_fails_on_another_host() {
    let port = crate::support::free_port();
    let public = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let server = start_binary(
        &[
            ("WXAUTH_LISTEN", &listen),
            ("WXAUTH_APPID", "wx000000000000test"),
            ("WXAUTH_SECRET", "test-secret-9f8e7d6c5b4a"),
            ("WXAUTH_PUBLIC_URL", &public),
            // Never called: a callback's state is checked first.
            ("WXAUTH_API_BASE", "http://127.0.0.1:9"),
            ("WXAUTH_OPEN_BASE", "http://127.0.0.1:9"),
        ],
        false,
    );
    assert_eq!(server.app, public);
    let mut browser = Browser::new();
    let host = format!("localhost:{port}");
    let callback = format!("{public}/callback?code=CODE123&state=STATE456");
    let page = browser.get_with(&callback, &[("Host", &host)]);
    assert_eq!(page.status, 400);
    assert!(page.body.contains(&format!(">{public}/<")), "{}", page.body);
    // On the site's own host a bad state is only that.
    assert_eq!(browser.get(&callback).status, 400);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    let text = log.join("\n");
    let warned: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("stderr: warn: /callback:"))
        .collect();
    assert_eq!(warned.len(), 1, "one warning, for the other host:\n{text}");
    assert!(
        warned[0].contains(&format!("Host \"{host}\""))
            && warned[0].contains(&format!("open the site at {public}/")),
        "{text}"
    );
    assert!(
        !text.contains("CODE123") && !text.contains("STATE456"),
        "{text}"
    );
}
