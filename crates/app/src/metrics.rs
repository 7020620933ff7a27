//! What the app has done, counted for Prometheus (WXAUTH_METRICS_LISTEN):
//! one process-wide table of atomics, written with relaxed stores from the
//! loop and the workers (no lock, no allocation), and read only when
//! /metrics is asked for (`render`, text exposition format 0.0.4).
//!
//! No label value comes from a request: every label is an entry of a table
//! fixed here (or the route table, given once by the app's loop), and a
//! value outside the table is counted as `other`.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Routes counted by name, at most (the app has about twenty).
pub const MAX_ROUTES: usize = 48;
/// The route index of an asset under /static/.
pub const STATIC: usize = MAX_ROUTES;
/// The route index of anything that is not a route (404s, the prefix itself).
pub const OTHER: usize = MAX_ROUTES + 1;
const ROUTE_SLOTS: usize = MAX_ROUTES + 2;
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Histogram bounds, in seconds, and the same in nanoseconds for the hot path.
const BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BOUNDS_NS: [u64; 13] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Which app a login is for.
pub const LOGIN_APPS: [&str; 2] = ["account", "website"];
/// Why a callback ended without a session (`errcode_N` are counted apart).
pub const FAIL_REASONS: [&str; 8] = [
    "declined",
    "snapshot",
    "timeout",
    "upstream",
    "bad_state",
    "store",
    "errcode_other",
    "other",
];
/// Errcodes counted by number: at most this many distinct ones, each an
/// entry of wechat/errcode.rs's table (its position is the slot).
pub const ERRCODE_SLOTS: usize = 64;
/// WeChat's endpoints, by the path after the API base; a path under one of
/// them (`cgi-bin/menu/create`) counts as it.
pub const ENDPOINTS: [&str; 9] = [
    "sns/oauth2/access_token",
    "sns/oauth2/refresh_token",
    "sns/userinfo",
    "sns/auth",
    "cgi-bin/token",
    "cgi-bin/stable_token",
    "cgi-bin/menu",
    "cgi-bin/ticket/getticket",
    "other",
];
/// How a WeChat call ended.
pub const OUTCOMES: [&str; 6] = [
    "ok",
    "errcode",
    "timeout",
    "transport",
    "status",
    "bad_answer",
];
/// Pushes acted on: the event's name, or the message's type.
pub const PUSH_KINDS: [&str; 8] = [
    "subscribe",
    "unsubscribe",
    "SCAN",
    "LOCATION",
    "CLICK",
    "VIEW",
    "text",
    "other",
];
/// Why a push was refused.
pub const PUSH_REFUSALS: [&str; 6] = [
    "signature",
    "msg_signature",
    "decrypt",
    "appid",
    "plaintext_in_safe_mode",
    "malformed",
];

/// Durations: cumulative at render; stored per bucket (the last is +Inf).
struct Histogram {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BOUNDS.len() + 1],
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS
            .iter()
            .position(|bound| ns <= *bound)
            .unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }
}

/// A gauge no one has set yet is not shown.
const UNSET: u64 = u64::MAX;

struct Metrics {
    requests: [[AtomicU64; CLASSES.len()]; ROUTE_SLOTS],
    request_seconds: Histogram,
    logins_started: [AtomicU64; LOGIN_APPS.len()],
    logins_completed: [AtomicU64; LOGIN_APPS.len()],
    logins_failed: [AtomicU64; FAIL_REASONS.len()],
    /// Per errcode slot: the errcode, and its count.
    failed_errcodes: [(AtomicI64, AtomicU64); ERRCODE_SLOTS],
    calls: [[AtomicU64; OUTCOMES.len()]; ENDPOINTS.len()],
    call_seconds: [Histogram; ENDPOINTS.len()],
    in_flight: AtomicU64,
    queued: AtomicU64,
    /// Memory mode only (`UNSET` with Redis, where this instance cannot count them).
    sessions: AtomicU64,
    pending_logins: AtomicU64,
    pushes: [AtomicU64; PUSH_KINDS.len()],
    pushes_refused: [AtomicU64; PUSH_REFUSALS.len()],
    redis_up: AtomicU64,
    start_time: AtomicU64,
    started: AtomicBool,
}

static METRICS: Metrics = Metrics {
    requests: [const { [const { AtomicU64::new(0) }; CLASSES.len()] }; ROUTE_SLOTS],
    request_seconds: Histogram::new(),
    logins_started: [const { AtomicU64::new(0) }; LOGIN_APPS.len()],
    logins_completed: [const { AtomicU64::new(0) }; LOGIN_APPS.len()],
    logins_failed: [const { AtomicU64::new(0) }; FAIL_REASONS.len()],
    failed_errcodes: [const { (AtomicI64::new(0), AtomicU64::new(0)) }; ERRCODE_SLOTS],
    calls: [const { [const { AtomicU64::new(0) }; OUTCOMES.len()] }; ENDPOINTS.len()],
    call_seconds: [const { Histogram::new() }; ENDPOINTS.len()],
    in_flight: AtomicU64::new(0),
    queued: AtomicU64::new(0),
    sessions: AtomicU64::new(UNSET),
    pending_logins: AtomicU64::new(UNSET),
    pushes: [const { AtomicU64::new(0) }; PUSH_KINDS.len()],
    pushes_refused: [const { AtomicU64::new(0) }; PUSH_REFUSALS.len()],
    redis_up: AtomicU64::new(UNSET),
    start_time: AtomicU64::new(0),
    started: AtomicBool::new(false),
};

/// The route table's paths, by index (duplicates allowed: a path's first
/// index is the one counted). Given once, by the app's loop.
static ROUTES: OnceLock<&'static [&'static str]> = OnceLock::new();

/// The app's loop starts: its routes (at most `MAX_ROUTES`; the rest count
/// as `other`) and the start time. Only the first call counts.
pub fn app_started(routes: &'static [&'static str]) {
    let _ = ROUTES.set(routes);
    if !METRICS.started.swap(true, Relaxed) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        METRICS.start_time.store(now, Relaxed);
    }
}

/// A request answered: its route's index (`app_started`'s table, `STATIC`
/// or `OTHER`), its status and how long it took. The hot path: a few
/// relaxed additions.
pub fn record_request(route: usize, status: u16, elapsed: Duration) {
    let route = if route < ROUTE_SLOTS { route } else { OTHER };
    let class = usize::from(status / 100).clamp(2, 5) - 2;
    METRICS.requests[route][class].fetch_add(1, Relaxed);
    METRICS.request_seconds.observe(elapsed);
}

/// A browser sent to WeChat to log in (`website`: the website app's QR login).
pub fn login_started(website: bool) {
    METRICS.logins_started[usize::from(website)].fetch_add(1, Relaxed);
}

/// A login made a session.
pub fn login_completed(website: bool) {
    METRICS.logins_completed[usize::from(website)].fetch_add(1, Relaxed);
}

/// A callback ended without a session, for `reason` (one of `FAIL_REASONS`,
/// else `other`).
pub fn login_failed(reason: &str) {
    METRICS.logins_failed[slot(&FAIL_REASONS, reason)].fetch_add(1, Relaxed);
}

/// A callback ended on WeChat's errcode `code`; `named` is its position in
/// wechat/errcode.rs's table, None for a code not named there.
pub fn login_failed_errcode(named: Option<usize>, code: i64) {
    match named.filter(|slot| *slot < ERRCODE_SLOTS) {
        Some(slot) => {
            let (errcode, count) = &METRICS.failed_errcodes[slot];
            errcode.store(code, Relaxed);
            count.fetch_add(1, Relaxed);
        }
        None => login_failed("errcode_other"),
    }
}

/// A WeChat call to `path` (after the API base, e.g. "/sns/userinfo")
/// ended with `outcome` (one of `OUTCOMES`) after `elapsed`.
pub fn wechat_call(path: &str, outcome: &str, elapsed: Duration) {
    let endpoint = endpoint_of(path);
    let outcome = slot(&OUTCOMES, outcome);
    METRICS.calls[endpoint][outcome].fetch_add(1, Relaxed);
    METRICS.call_seconds[endpoint].observe(elapsed);
}

/// The `ENDPOINTS` entry `path` is, or is under; else `other`.
fn endpoint_of(path: &str) -> usize {
    let path = path.trim_start_matches('/');
    ENDPOINTS
        .iter()
        .position(|e| {
            path.strip_prefix(e)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .unwrap_or(ENDPOINTS.len() - 1)
}

/// The app's worker pool took a call into its queue.
pub fn call_queued() {
    METRICS.queued.fetch_add(1, Relaxed);
}

/// A worker took a queued call and runs it.
pub fn call_running() {
    let _ = METRICS
        .queued
        .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    METRICS.in_flight.fetch_add(1, Relaxed);
}

/// A worker finished a call.
pub fn call_done() {
    let _ = METRICS
        .in_flight
        .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
}

/// What the memory store holds, after a request.
pub fn set_held(sessions: usize, pending_logins: usize) {
    METRICS.sessions.store(sessions as u64, Relaxed);
    METRICS.pending_logins.store(pending_logins as u64, Relaxed);
}

/// A push from WeChat acted on (retries not counted): `kind` is its event's
/// name or its message type (one of `PUSH_KINDS`, else `other`).
pub fn push_acted(kind: &str) {
    METRICS.pushes[slot(&PUSH_KINDS, kind)].fetch_add(1, Relaxed);
}

/// A push refused, for `reason` (one of `PUSH_REFUSALS`; else `malformed`).
pub fn push_refused(reason: &str) {
    let at = PUSH_REFUSALS
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(PUSH_REFUSALS.len() - 1);
    METRICS.pushes_refused[at].fetch_add(1, Relaxed);
}

/// Redis answered (true) or did not (false).
pub fn redis_up(up: bool) {
    METRICS.redis_up.store(u64::from(up), Relaxed);
}

/// `name`'s position in `table`, or the last entry's (`other`).
fn slot(table: &[&str], name: &str) -> usize {
    table
        .iter()
        .position(|entry| *entry == name)
        .unwrap_or(table.len() - 1)
}

/// The exposition text (format 0.0.4), for GET /metrics.
pub fn render() -> String {
    let mut out = Exposition(String::with_capacity(16 * 1024));
    let m = &METRICS;
    out.family(
        "wxauth_build_info",
        "gauge",
        "The running version; always 1.",
    );
    out.sample(
        "wxauth_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    out.family(
        "wxauth_start_time_seconds",
        "gauge",
        "When the app's loop started, in unix seconds.",
    );
    out.sample("wxauth_start_time_seconds", &[], m.start_time.load(Relaxed));
    render_requests(&mut out);
    let name = "wxauth_request_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time from reading a request to handing its reply over, calls to WeChat included.",
    );
    out.histogram(name, &[], &m.request_seconds);
    render_logins(&mut out);
    render_calls(&mut out);
    out.family(
        "wxauth_calls_in_flight",
        "gauge",
        "Blocking calls (WeChat, Redis) a worker is running.",
    );
    out.sample("wxauth_calls_in_flight", &[], m.in_flight.load(Relaxed));
    out.family(
        "wxauth_calls_queued",
        "gauge",
        "Blocking calls waiting for a worker.",
    );
    out.sample("wxauth_calls_queued", &[], m.queued.load(Relaxed));
    out.gauge_if_set(
        "wxauth_sessions",
        "Live sessions held (memory store only; absent with Redis, shared by every instance).",
        &m.sessions,
    );
    out.gauge_if_set(
        "wxauth_pending_logins",
        "Login states spent in their last 10 minutes: callbacks being exchanged or kept to \
         answer a reload (memory store only; a login not yet back is stored nowhere).",
        &m.pending_logins,
    );
    out.counters(
        "wxauth_pushes_total",
        "Pushes from WeChat to /wechat acted on (retries not counted), by event or message type.",
        "kind",
        &PUSH_KINDS,
        &m.pushes,
    );
    out.counters(
        "wxauth_pushes_refused_total",
        "Pushes to /wechat refused, by reason.",
        "reason",
        &PUSH_REFUSALS,
        &m.pushes_refused,
    );
    out.gauge_if_set(
        "wxauth_redis_up",
        "1 when the last Redis command was answered, 0 when Redis did not answer (with WXAUTH_REDIS_URL only).",
        &m.redis_up,
    );
    out.0
}

fn render_requests(out: &mut Exposition) {
    let name = "wxauth_requests_total";
    out.family(
        name,
        "counter",
        "Requests answered, by route (the route table's path, /static, or other) and status class; a route is shown once it has answered.",
    );
    let routes = ROUTES.get().copied().unwrap_or(&[]);
    let named = routes.iter().take(MAX_ROUTES).enumerate();
    for (index, route) in named {
        // A path's first index is the one counted.
        if routes[..index].contains(route) {
            continue;
        }
        out.route(name, route, &METRICS.requests[index]);
    }
    out.route(name, "/static", &METRICS.requests[STATIC]);
    out.route(name, "other", &METRICS.requests[OTHER]);
}

fn render_logins(out: &mut Exposition) {
    let m = &METRICS;
    out.counters(
        "wxauth_logins_started_total",
        "Browsers sent to WeChat to log in, by app (the Official Account's, or the website app's QR login).",
        "app",
        &LOGIN_APPS,
        &m.logins_started,
    );
    out.counters(
        "wxauth_logins_completed_total",
        "Logins that made a session, by app.",
        "app",
        &LOGIN_APPS,
        &m.logins_completed,
    );
    let name = "wxauth_logins_failed_total";
    out.counters(
        name,
        "Callbacks that ended without a session, by reason (errcode_N: WeChat's errcode N, shown once seen).",
        "reason",
        &FAIL_REASONS,
        &m.logins_failed,
    );
    for (errcode, count) in &m.failed_errcodes {
        let count = count.load(Relaxed);
        if count > 0 {
            let reason = format!("errcode_{}", errcode.load(Relaxed));
            out.sample(name, &[("reason", &reason)], count);
        }
    }
}

fn render_calls(out: &mut Exposition) {
    let m = &METRICS;
    let name = "wxauth_wechat_calls_total";
    out.family(
        name,
        "counter",
        "Calls to WeChat's API, by endpoint and outcome.",
    );
    // An endpoint is shown once it has been called.
    let called = |endpoint: usize| m.calls[endpoint].iter().any(|c| c.load(Relaxed) > 0);
    for (i, (endpoint, outcomes)) in ENDPOINTS.iter().zip(&m.calls).enumerate() {
        if !called(i) {
            continue;
        }
        for (outcome, count) in OUTCOMES.iter().zip(outcomes) {
            out.sample(
                name,
                &[("endpoint", endpoint), ("outcome", outcome)],
                count.load(Relaxed),
            );
        }
    }
    let name = "wxauth_wechat_call_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time a call to WeChat's API took, answer read, by endpoint.",
    );
    for (i, (endpoint, histogram)) in ENDPOINTS.iter().zip(&m.call_seconds).enumerate() {
        if called(i) {
            out.histogram(name, &[("endpoint", endpoint)], histogram);
        }
    }
}

/// The text being written.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        self.labels(labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)]) {
        if labels.is_empty() {
            return;
        }
        self.0.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{label}=\"{}\"", escape(value));
        }
        self.0.push('}');
    }

    fn counters(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &[&str],
        counts: &[AtomicU64],
    ) {
        self.family(name, "counter", help);
        for (value, count) in values.iter().zip(counts) {
            self.sample(name, &[(label, value)], count.load(Relaxed));
        }
    }

    /// A route's counts by class, when it has answered at all.
    fn route(&mut self, name: &str, route: &str, counts: &[AtomicU64; CLASSES.len()]) {
        let counts = counts.each_ref().map(|c| c.load(Relaxed));
        if counts.iter().all(|c| *c == 0) {
            return;
        }
        for (class, count) in CLASSES.iter().zip(counts) {
            self.sample(name, &[("route", route), ("class", class)], count);
        }
    }

    fn gauge_if_set(&mut self, name: &str, help: &str, gauge: &AtomicU64) {
        self.family(name, "gauge", help);
        let value = gauge.load(Relaxed);
        if value != UNSET {
            self.sample(name, &[], value);
        }
    }

    /// `_bucket`s, cumulative, up to `+Inf`, then `_sum` and `_count`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        let bounds = BOUNDS.iter().map(|b| b.to_string()).chain(["+Inf".into()]);
        for (le, count) in bounds.zip(&histogram.buckets) {
            cumulative += count.load(Relaxed);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        let sum = histogram.sum_ns.load(Relaxed) as f64 / 1e9;
        self.0.push_str(name);
        self.0.push_str("_sum");
        self.labels(labels);
        let _ = writeln!(self.0, " {sum}");
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// A label value as the format wants it: `\`, `"` and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_ends_in_inf() {
        let histogram = Histogram::new();
        for ms in [0, 3, 3, 40, 20_000] {
            histogram.observe(Duration::from_millis(ms));
        }
        let mut out = Exposition(String::new());
        out.family("t", "histogram", "help");
        out.histogram("t", &[("endpoint", "x")], &histogram);
        let text = out.0;
        assert!(
            text.starts_with("# HELP t help\n# TYPE t histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{endpoint=\"x\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{endpoint=\"x\",le=\"0.005\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{endpoint=\"x\",le=\"0.05\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{endpoint=\"x\",le=\"10\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{endpoint=\"x\",le=\"+Inf\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("t_sum{endpoint=\"x\"} 20.046\n"), "{text}");
        assert!(text.ends_with("t_count{endpoint=\"x\"} 5\n"), "{text}");
        // Never decreasing, bucket after bucket.
        let counts: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("t_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(counts.len(), BOUNDS.len() + 1);
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Exposition(String::new());
        out.family("t", "counter", "a \\ b\nc");
        out.sample("t", &[("route", "a\"b\\c\nd")], 7);
        assert_eq!(
            out.0,
            "# HELP t a \\\\ b\\nc\n# TYPE t counter\nt{route=\"a\\\"b\\\\c\\nd\"} 7\n"
        );
    }

    #[test]
    fn names_outside_the_tables_are_other() {
        assert_eq!(endpoint_of("/sns/userinfo"), 2);
        assert_eq!(endpoint_of("/cgi-bin/menu/create"), 6);
        assert_eq!(endpoint_of("/cgi-bin/tokens"), ENDPOINTS.len() - 1);
        assert_eq!(endpoint_of("/sns/oauth2/access_token"), 0);
        assert_eq!(slot(&PUSH_KINDS, "subscribe"), 0);
        assert_eq!(PUSH_KINDS[slot(&PUSH_KINDS, "XYZ")], "other");
        assert_eq!(FAIL_REASONS[slot(&FAIL_REASONS, "XYZ")], "other");
    }

    #[test]
    fn every_family_has_help_and_type_and_every_sample_a_family() {
        record_request(OTHER, 404, Duration::from_millis(2));
        let text = render();
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families.push(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|b| families.iter().any(|f| f == b))
                    .unwrap_or(name);
                assert_eq!(families.last().map(String::as_str), Some(base), "{line}");
            }
        }
        assert!(text.contains("wxauth_requests_total{route=\"other\",class=\"4xx\"}"));
    }

    /// The hot path's cost: `cargo test --release -p wxauth-app metrics_cost
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn metrics_cost() {
        let n = 10_000_000u32;
        let started = std::time::Instant::now();
        for i in 0..n {
            let elapsed = Duration::from_micros(u64::from(i % 20_000));
            record_request(std::hint::black_box(3), 200, std::hint::black_box(elapsed));
        }
        let per = started.elapsed().as_nanos() as f64 / f64::from(n);
        println!("record_request: {per:.1} ns per request ({n} requests)");
    }
}
