//! The real binary: exit codes, --help, --version, check-config, and demo
//! mode printing both URLs and serving a login end to end.

use crate::support::Browser;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_wxauth");

/// Runs the binary to completion with only the given WXAUTH_* variables.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXAUTH_")) {
        cmd.env_remove(key);
    }
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
fn check_config_prints_the_effective_configuration_with_the_secret_masked() {
    let dir = std::env::temp_dir().join(format!("wxauth-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "file-secret-123\n").unwrap();
    let out = run(
        &["check-config", "--scope", "snsapi_base"],
        &[
            ("WXAUTH_APPID", "wx1234567890"),
            ("WXAUTH_SECRET_FILE", secret_file.to_str().unwrap()),
            ("WXAUTH_PUBLIC_URL", "https://wx.example.com/"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("mode                = real WeChat"), "{text}");
    assert!(
        text.contains("redirect_uri        = https://wx.example.com/callback"),
        "{text}"
    );
    assert!(
        text.contains("WXAUTH_SCOPE        = snsapi_base"),
        "the flag overrides: {text}"
    );
    assert!(text.contains("WXAUTH_SECRET       = ****"));
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
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real binary in demo mode on free ports, with extra environment.
/// Returns it with the app's and the simulator's URLs, as it printed them.
fn start_demo(env: &[(&str, &str)]) -> (Running, String, String) {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXAUTH_")) {
        cmd.env_remove(key);
    }
    let child = cmd
        .env("WXAUTH_LISTEN", "127.0.0.1:0")
        .env("WXAUTH_SIM_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start wxauth");
    let mut child = Running(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("[wxauth] {line}");
            // Keep reading after the test stops listening: the pipe stays open.
            let _ = tx.send(line);
        }
    });
    let (mut app, mut sim) = (None, None);
    while app.is_none() || sim.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("demo mode prints the app and simulator URLs within 10 s");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(String::from);
        if line.trim_start().starts_with("app:") {
            app = url;
        } else if line.trim_start().starts_with("simulator:") {
            sim = url;
        }
    }
    (child, app.unwrap(), sim.unwrap())
}

/// Sends SIGTERM and waits (at most 10 s) for the exit status.
fn terminate(child: &mut Running) -> std::process::ExitStatus {
    let pid = child.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success());
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
    let (_child, app, sim) = start_demo(&[]);
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

    let (mut first, app, _sim) = start_demo(&file_env);
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
        terminate(&mut first).code(),
        Some(0),
        "a clean exit on SIGTERM"
    );
    let mode = std::fs::metadata(&file)
        .expect("the session file was written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A new process, a new port: the same cookie still shows the profile.
    let (_second, app, _sim) = start_demo(&file_env);
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
fn a_corrupt_session_file_is_reported_and_the_server_starts_empty() {
    let dir = std::env::temp_dir().join(format!("wxauth-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessions.json");
    std::fs::write(&file, "{ this is not json").unwrap();
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXAUTH_")) {
        cmd.env_remove(key);
    }
    let child = cmd
        .env("WXAUTH_LISTEN", "127.0.0.1:0")
        .env("WXAUTH_SIM_LISTEN", "127.0.0.1:0")
        .env("WXAUTH_SESSION_FILE", &file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wxauth");
    let mut child = Running(child);
    let (stdout, stderr) = (
        child.0.stdout.take().unwrap(),
        child.0.stderr.take().unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let out_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(format!("stderr: {line}"));
        }
    });
    let (mut complaint, mut app) = (None, None);
    while complaint.is_none() || app.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("start-up output");
        if line.starts_with("stderr: ") {
            complaint = Some(line);
        } else if line.trim_start().starts_with("app:") {
            app = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(String::from);
        }
    }
    let complaint = complaint.unwrap();
    assert!(
        complaint.contains("session file") && complaint.contains("starting with no sessions"),
        "{complaint}"
    );
    assert_eq!(
        Browser::new()
            .get(&format!("{}/healthz", app.unwrap()))
            .status,
        200
    );
    assert_eq!(terminate(&mut child).code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXAUTH_")) {
        cmd.env_remove(key);
    }
    let child = cmd
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
