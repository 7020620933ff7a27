//! `/sim/control` and `/sim/state`: how tests and demos steer the simulator
//! (clock, switches, faults) and see what it did (call counters, callbacks).
//! Not part of WeChat; nothing here is reachable from the sns/* answers.

use super::faults::{self, Endpoint, Fault};
use super::Sim;
use wxauth_app::transport::http::{Reply, Req};

/// The longest jump `advance=` accepts: ten years, in seconds.
const MAX_ADVANCE: i64 = 10 * 365 * 24 * 3600;

/// Everything one control request asks for, checked before anything changes.
#[derive(Debug, Default)]
struct Changes {
    reset: bool,
    clear_faults: bool,
    faults: Vec<(Endpoint, Fault)>,
    times: Option<u32>,
    double_callback: Option<bool>,
    snapshot: Option<bool>,
    latency: Option<u64>,
    advance: i64,
}

/// `POST /sim/control` (form body, any subset of fields): applies them all,
/// or none if one is wrong (400 `{"error": ...}`); answers the state JSON.
pub(super) fn control(sim: &mut Sim, req: &Req) -> Reply {
    match parse(&req.form()) {
        Ok(changes) => {
            apply(sim, changes);
            state(sim, req)
        }
        Err(error) => Reply::json(&serde_json::json!({ "error": error })).with_status(400),
    }
}

/// `GET /sim/state`: the simulator's clock, counters, callbacks and switches.
pub(super) fn state(sim: &mut Sim, _req: &Req) -> Reply {
    Reply::json(&state_json(sim)).with_header("Cache-Control", "no-store")
}

/// The `/sim/state` document (also shown on the index page).
pub(super) fn state_json(sim: &Sim) -> serde_json::Value {
    let calls: serde_json::Map<String, serde_json::Value> = Endpoint::ALL
        .iter()
        .map(|e| (e.name().to_string(), sim.calls[e.index()].into()))
        .collect();
    let (codes, access_tokens, refresh_tokens) = sim.store.sizes();
    serde_json::json!({
        "now": sim.clock.now(),
        "calls": calls,
        "callbacks": sim.callbacks,
        "double_callback": sim.double_callback,
        "snapshot": sim.snapshot,
        "latency_ms": sim.latency,
        "faults": sim.faults.to_json(),
        "stored": {
            "codes": codes,
            "access_tokens": access_tokens,
            "refresh_tokens": refresh_tokens,
            "base_tokens": sim.base_tokens.len(),
            "menu": sim.menu.is_some(),
            "jsapi_tickets": sim.jsapi_tickets.live(sim.clock.now()),
        },
    })
}

fn parse(form: &[(String, String)]) -> Result<Changes, String> {
    let mut changes = Changes::default();
    for (name, value) in form {
        match name.as_str() {
            "advance" => {
                let secs = value
                    .parse::<i64>()
                    .ok()
                    .filter(|s| (0..=MAX_ADVANCE).contains(s))
                    .ok_or_else(|| format!("advance={value}: want 0..={MAX_ADVANCE} seconds"))?;
                changes.advance = changes.advance.saturating_add(secs);
            }
            "double_callback" => changes.double_callback = Some(switch(name, value)?),
            "latency" => match value.parse::<u64>() {
                Ok(ms) if ms <= faults::MAX_SLOW_MS => changes.latency = Some(ms),
                _ => {
                    return Err(format!(
                        "latency={value}: want 0..={} ms",
                        faults::MAX_SLOW_MS
                    ))
                }
            },
            "snapshot" => changes.snapshot = Some(switch(name, value)?),
            "reset" => changes.reset = switch(name, value)?,
            "fault" if value == "clear" => changes.clear_faults = true,
            "fault" => changes.faults.push(faults::parse_spec(value)?),
            "times" => {
                let times = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&t| t >= 1)
                    .ok_or_else(|| format!("times={value}: want a count of 1 or more"))?;
                changes.times = Some(times);
            }
            _ => return Err(format!("unknown field {name:?}")),
        }
    }
    if changes.advance > MAX_ADVANCE {
        return Err(format!(
            "advance: at most {MAX_ADVANCE} seconds per request"
        ));
    }
    Ok(changes)
}

fn switch(name: &str, value: &str) -> Result<bool, String> {
    wxauth_app::config::parse_switch(value).ok_or_else(|| format!("{name}={value}: want 1 or 0"))
}

/// Applies in a fixed order: reset and clear first, so that one request can
/// say "start over, then arm this".
fn apply(sim: &mut Sim, changes: Changes) {
    if changes.reset {
        // Codes, tokens and the clock stay: a reset between two steps of a
        // test must not invalidate what the first step got.
        sim.faults.clear();
        sim.double_callback = false;
        sim.snapshot = false;
        sim.latency = 0;
    }
    if let Some(ms) = changes.latency {
        sim.latency = ms;
    }
    if changes.clear_faults {
        sim.faults.clear();
    }
    let times = changes.times.unwrap_or(1);
    for (endpoint, fault) in changes.faults {
        sim.faults.arm(endpoint, fault, times);
    }
    if let Some(on) = changes.double_callback {
        sim.double_callback = on;
    }
    if let Some(on) = changes.snapshot {
        sim.snapshot = on;
    }
    if changes.advance > 0 {
        sim.clock.advance(changes.advance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_bad_field_changes_nothing() {
        assert!(parse(&form(&[("advance", "-5")])).is_err());
        assert!(parse(&form(&[("advance", "x")])).is_err());
        assert!(parse(&form(&[("snapshot", "yes please")])).is_err());
        assert!(parse(&form(&[("times", "0")])).is_err());
        assert!(parse(&form(&[("fault", "auth:nope")])).is_err());
        assert!(parse(&form(&[("advnace", "5")])).is_err());
    }

    #[test]
    fn changes_apply_together() {
        let mut sim = crate::tests::sim();
        let before = sim.clock.now();
        let changes = parse(&form(&[
            ("reset", "1"),
            ("fault", "userinfo:errcode:45011"),
            ("times", "2"),
            ("snapshot", "1"),
            ("advance", "301"),
        ]))
        .expect("valid");
        apply(&mut sim, changes);
        let state = state_json(&sim);
        assert_eq!(state["snapshot"], true);
        assert_eq!(state["faults"]["userinfo"]["remaining"], 2);
        assert!(state["now"].as_i64().unwrap_or(0) >= before + 301);
        apply(
            &mut sim,
            parse(&form(&[("fault", "clear")])).expect("valid"),
        );
        assert_eq!(state_json(&sim)["faults"], serde_json::json!({}));
    }
}
