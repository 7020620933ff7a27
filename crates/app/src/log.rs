//! Log lines for journald: access lines on stdout, problems on stderr.
//! The level comes from WXAUTH_LOG (error, warn, info, debug; off silences all).
//! Callers pass paths without query strings and never a secret or token.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

static LEVEL: AtomicU8 = AtomicU8::new(INFO);
/// Set when stdout/stderr go to journald (systemd sets JOURNAL_STREAM):
/// lines then start with a syslog priority, `<3>` error … `<7>` debug, so
/// `journalctl -p warning` finds the warnings.
static JOURNAL: AtomicBool = AtomicBool::new(false);

const OFF: u8 = 0;
const ERROR: u8 = 1;
const WARN: u8 = 2;
const INFO: u8 = 3;
const DEBUG: u8 = 4;

/// Checks a level name; config.rs reports an unknown one.
pub fn parse_level(name: &str) -> Result<u8, String> {
    match name {
        "off" => Ok(OFF),
        "error" => Ok(ERROR),
        "warn" => Ok(WARN),
        "info" => Ok(INFO),
        "debug" => Ok(DEBUG),
        _ => Err(format!(
            "unknown log level {name:?} (off, error, warn, info, debug)"
        )),
    }
}

/// Sets the process-wide level by name (already checked by config.rs), and
/// notes whether the output goes to journald.
pub fn set_level(name: &str) {
    if let Ok(level) = parse_level(name) {
        LEVEL.store(level, Ordering::Relaxed);
    }
    JOURNAL.store(
        std::env::var_os("JOURNAL_STREAM").is_some(),
        Ordering::Relaxed,
    );
}

/// The syslog priority prefix for journald, or nothing on a terminal.
fn priority(syslog: &'static str) -> &'static str {
    if JOURNAL.load(Ordering::Relaxed) {
        syslog
    } else {
        ""
    }
}

fn enabled(level: u8) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

/// One line per request: who served it, method, path (no query), status, duration.
pub fn access(service: &str, method: &str, path: &str, status: u16, took: Duration) {
    if enabled(INFO) {
        out(&format!(
            "{}{service} {} {} {status} {:.1}ms",
            priority("<6>"),
            method,
            printable(path),
            took.as_secs_f64() * 1000.0
        ));
    }
}

/// Something worth a look, e.g. a WeChat errcode.
pub fn warn(msg: &str) {
    if enabled(WARN) {
        err(&format!("{}warn: {}", priority("<4>"), printable(msg)));
    }
}

/// Something that broke.
pub fn error(msg: &str) {
    if enabled(ERROR) {
        err(&format!("{}error: {}", priority("<3>"), printable(msg)));
    }
}

/// Start-up facts and the like.
pub fn info(msg: &str) {
    if enabled(INFO) {
        out(&format!("{}{}", priority("<6>"), printable(msg)));
    }
}

/// Detail for debugging.
pub fn debug(msg: &str) {
    if enabled(DEBUG) {
        err(&format!("{}debug: {}", priority("<7>"), printable(msg)));
    }
}

/// Writes a line to stdout. Unlike `println!`, never panics: a closed pipe
/// (journald restarting, a reader gone) must not take the server down.
pub fn out(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Writes a line to stderr; never panics.
pub fn err(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Keeps request-controlled text on one line and of bounded length.
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}
