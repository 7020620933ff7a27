//! Faults the control endpoint can arm on the API side: errcodes, slowness,
//! broken proxies, bodies that are not (or not quite) JSON. Each fault is
//! armed for the next N calls of one endpoint, then disarms itself.

/// The API endpoints a fault (and a call counter) can apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    AccessToken,
    RefreshToken,
    Userinfo,
    Auth,
    /// cgi-bin/token, the account's base access_token.
    Token,
    StableToken,
    MenuCreate,
    MenuGet,
    MenuDelete,
    /// cgi-bin/ticket/getticket, the JS-SDK's jsapi_ticket.
    Getticket,
}

impl Endpoint {
    /// How many endpoints there are: the length of per-endpoint arrays.
    pub const COUNT: usize = 10;

    /// Every endpoint, in the order `/sim/state` lists them.
    pub const ALL: [Endpoint; Endpoint::COUNT] = [
        Endpoint::AccessToken,
        Endpoint::RefreshToken,
        Endpoint::Userinfo,
        Endpoint::Auth,
        Endpoint::Token,
        Endpoint::StableToken,
        Endpoint::MenuCreate,
        Endpoint::MenuGet,
        Endpoint::MenuDelete,
        Endpoint::Getticket,
    ];

    /// The name used in `fault=ENDPOINT:KIND` and in `/sim/state`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::AccessToken => "access_token",
            Endpoint::RefreshToken => "refresh_token",
            Endpoint::Userinfo => "userinfo",
            Endpoint::Auth => "auth",
            Endpoint::Token => "token",
            Endpoint::StableToken => "stable_token",
            Endpoint::MenuCreate => "menu_create",
            Endpoint::MenuGet => "menu_get",
            Endpoint::MenuDelete => "menu_delete",
            Endpoint::Getticket => "getticket",
        }
    }

    /// Position in per-endpoint arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// What goes wrong on an armed call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `{"errcode":N,"errmsg":...}` instead of the answer; nothing else happens.
    Errcode(i64),
    /// Sleeps this many milliseconds, then answers normally.
    Slow(u64),
    /// HTTP 502 with an HTML body, like a broken proxy in front of WeChat.
    Html,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// HTTP 200 with the first half of the real answer (the call took effect).
    Truncated,
    /// HTTP 200 with the real answer padded past 10 MiB.
    Huge,
    /// HTTP 200 with JSON whose fields have the wrong types.
    BadTypes,
    /// This HTTP status with an empty body.
    Status(u16),
}

/// The longest `slow:MS` (and `latency=MS`) accepted.
pub const MAX_SLOW_MS: u64 = 60_000;

impl Fault {
    /// Reads the KIND part of `fault=ENDPOINT:KIND`.
    fn parse(kind: &str) -> Result<Fault, String> {
        let (name, arg) = match kind.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (kind, None),
        };
        let fault = match (name, arg) {
            ("errcode", Some(n)) => Fault::Errcode(
                n.parse()
                    .map_err(|_| format!("errcode:{n}: not an integer"))?,
            ),
            ("slow", Some(ms)) => match ms.parse::<u64>() {
                Ok(ms) if ms <= MAX_SLOW_MS => Fault::Slow(ms),
                _ => return Err(format!("slow:{ms}: want 0..={MAX_SLOW_MS} ms")),
            },
            ("status", Some(code)) => match code.parse::<u16>() {
                // 1xx would leave the client waiting for a real answer.
                Ok(code) if (200..=599).contains(&code) => Fault::Status(code),
                _ => return Err(format!("status:{code}: want 200..=599")),
            },
            ("html", None) => Fault::Html,
            ("garbage", None) => Fault::Garbage,
            ("truncated", None) => Fault::Truncated,
            ("huge", None) => Fault::Huge,
            ("badtypes", None) => Fault::BadTypes,
            _ => return Err(format!("unknown fault kind {kind:?}")),
        };
        Ok(fault)
    }

    /// The KIND text again, for `/sim/state`.
    pub fn describe(&self) -> String {
        match self {
            Fault::Errcode(n) => format!("errcode:{n}"),
            Fault::Slow(ms) => format!("slow:{ms}"),
            Fault::Html => "html".into(),
            Fault::Garbage => "garbage".into(),
            Fault::Truncated => "truncated".into(),
            Fault::Huge => "huge".into(),
            Fault::BadTypes => "badtypes".into(),
            Fault::Status(code) => format!("status:{code}"),
        }
    }
}

/// Reads `ENDPOINT:KIND`, e.g. `userinfo:errcode:45011` or `auth:slow:3000`.
pub fn parse_spec(spec: &str) -> Result<(Endpoint, Fault), String> {
    let (endpoint, kind) = spec
        .split_once(':')
        .ok_or_else(|| format!("fault {spec:?}: want ENDPOINT:KIND"))?;
    let endpoint = Endpoint::parse(endpoint).ok_or_else(|| {
        let names: Vec<_> = Endpoint::ALL.iter().map(|e| e.name()).collect();
        format!("fault {spec:?}: endpoint is one of {}", names.join(", "))
    })?;
    Ok((endpoint, Fault::parse(kind)?))
}

/// The armed faults, at most one per endpoint.
#[derive(Debug, Default)]
pub struct Faults {
    armed: [Option<(Fault, u32)>; Endpoint::COUNT],
}

impl Faults {
    /// Arms `fault` for the next `times` calls of `endpoint`, replacing any other.
    pub fn arm(&mut self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.armed[endpoint.index()] = (times > 0).then_some((fault, times));
    }

    /// Disarms everything.
    pub fn clear(&mut self) {
        self.armed = Default::default();
    }

    /// The fault for this call of `endpoint`, if one is armed; counts it down.
    pub fn take(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let slot = &mut self.armed[endpoint.index()];
        let (fault, left) = slot.as_mut()?;
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            *slot = None;
        }
        Some(fault)
    }

    /// `{"userinfo": {"fault": "errcode:45011", "remaining": 2}, ...}` for armed ones.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for endpoint in Endpoint::ALL {
            if let Some((fault, left)) = &self.armed[endpoint.index()] {
                map.insert(
                    endpoint.name().to_string(),
                    serde_json::json!({ "fault": fault.describe(), "remaining": left }),
                );
            }
        }
        serde_json::Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_endpoint_and_kind() {
        assert_eq!(
            parse_spec("userinfo:errcode:45011"),
            Ok((Endpoint::Userinfo, Fault::Errcode(45011)))
        );
        assert_eq!(
            parse_spec("access_token:errcode:-1"),
            Ok((Endpoint::AccessToken, Fault::Errcode(-1)))
        );
        assert_eq!(
            parse_spec("auth:slow:1500"),
            Ok((Endpoint::Auth, Fault::Slow(1500)))
        );
        assert_eq!(
            parse_spec("refresh_token:status:503"),
            Ok((Endpoint::RefreshToken, Fault::Status(503)))
        );
        assert_eq!(
            parse_spec("stable_token:errcode:40001"),
            Ok((Endpoint::StableToken, Fault::Errcode(40001)))
        );
        assert_eq!(
            parse_spec("getticket:errcode:45009"),
            Ok((Endpoint::Getticket, Fault::Errcode(45009)))
        );
        for endpoint in Endpoint::ALL {
            let spec = format!("{}:garbage", endpoint.name());
            assert_eq!(parse_spec(&spec), Ok((endpoint, Fault::Garbage)));
            assert_eq!(Endpoint::ALL[endpoint.index()], endpoint);
        }
        for kind in ["html", "garbage", "truncated", "huge", "badtypes"] {
            let (_, fault) = parse_spec(&format!("auth:{kind}")).expect(kind);
            assert_eq!(fault.describe(), kind);
        }
        for bad in [
            "",
            "auth",
            "cgi:html",
            "auth:html:1",
            "auth:slow:x",
            "auth:slow:999999",
            "auth:status:100",
            "auth:errcode:",
            "auth:nope",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fault_applies_the_given_number_of_times() {
        let mut f = Faults::default();
        f.arm(Endpoint::Auth, Fault::Garbage, 2);
        assert_eq!(f.take(Endpoint::Userinfo), None);
        assert_eq!(f.take(Endpoint::Auth), Some(Fault::Garbage));
        assert_eq!(f.to_json()["auth"]["remaining"], 1);
        assert_eq!(f.take(Endpoint::Auth), Some(Fault::Garbage));
        assert_eq!(f.take(Endpoint::Auth), None);
        f.arm(Endpoint::Auth, Fault::Html, 5);
        f.clear();
        assert_eq!(f.take(Endpoint::Auth), None);
    }
}
