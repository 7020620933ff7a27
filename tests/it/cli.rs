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

#[test]
fn demo_mode_prints_both_urls_and_a_browser_can_log_in() {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXAUTH_")) {
        cmd.env_remove(key);
    }
    let child = cmd
        .env("WXAUTH_LISTEN", "127.0.0.1:0")
        .env("WXAUTH_SIM_LISTEN", "127.0.0.1:0")
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
            if tx.send(line).is_err() {
                break;
            }
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
    let (app, sim) = (app.unwrap(), sim.unwrap());
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
