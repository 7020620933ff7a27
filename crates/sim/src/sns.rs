//! The api.weixin.qq.com side: sns/oauth2/access_token, sns/oauth2/refresh_token,
//! sns/userinfo and sns/auth, for the Official Account and the website app
//! alike (each with its own secret, codes and openids). Answers like WeChat: HTTP 200, `text/plain`, a
//! JSON body even for errors (docs/wechat.md §6), unless a
//! fault armed through `/sim/control` says otherwise. `serve` is shared with
//! the cgi-bin side (cgi.rs).

use super::faults::{Endpoint, Fault};
use super::state::{self, Grant, Issued, ACCESS_TTL};
use super::{users, Sim};
use serde::Serialize;
use wxauth_app::random;
use wxauth_app::transport::http::{Reply, Req};
use wxauth_app::wechat::errcode::{
    API_UNAUTHORIZED, INVALID_APPID, INVALID_GRANT_TYPE, INVALID_OPENID, INVALID_SECRET,
    MISSING_ACCESS_TOKEN, MISSING_APPID, MISSING_CODE, MISSING_OPENID, MISSING_REFRESH_TOKEN,
    MISSING_SECRET, SYSTEM_BUSY,
};

/// What the `huge` fault pads an answer to: past the 10 MiB that HTTP
/// clients such as ureq read by default.
const HUGE_BYTES: usize = 10 * 1024 * 1024 + 1024;

/// The body of one API answer, before any fault is applied.
pub(super) type Body = Vec<u8>;

/// `GET /sns/oauth2/access_token`: a code for tokens.
pub(super) fn access_token(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::AccessToken, exchange)
}

/// `GET /sns/oauth2/refresh_token`: a refresh_token for a new access_token.
pub(super) fn refresh_token(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::RefreshToken, refresh)
}

/// `GET /sns/userinfo`: the profile behind an snsapi_userinfo token.
pub(super) fn userinfo(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::Userinfo, profile)
}

/// `GET /sns/auth`: is this token still good for this openid?
pub(super) fn auth(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::Auth, check)
}

/// Counts the call, applies an armed fault, else answers normally.
pub(super) fn serve(
    sim: &mut Sim,
    req: &Req,
    endpoint: Endpoint,
    answer: fn(&mut Sim, &Req) -> Body,
) -> Reply {
    sim.calls[endpoint.index()] += 1;
    sim.delay = sim.latency;
    let fault = match sim.faults.take(endpoint) {
        Some(fault) => fault,
        None => return text_plain(200, answer(sim, req)),
    };
    match fault {
        // Nothing happens upstream: the call is refused before it starts.
        Fault::Errcode(n) => text_plain(200, error_body(n)),
        // The answer is made now and held back by a worker (Sim::handle):
        // the simulator keeps answering other calls meanwhile, as WeChat does.
        Fault::Slow(ms) => {
            sim.delay += ms;
            text_plain(200, answer(sim, req))
        }
        Fault::Html => Reply::with_body(502, "text/html", BAD_GATEWAY.as_bytes().to_vec()),
        Fault::Garbage => text_plain(200, b"\xff\xfe<not json> upstream said: }{".to_vec()),
        // The call took effect (a code is used up) but the answer was cut:
        // the worst case for a client, which cannot simply retry.
        Fault::Truncated => {
            let mut body = answer(sim, req);
            body.truncate(body.len() / 2);
            text_plain(200, body)
        }
        Fault::Huge => text_plain(200, pad(answer(sim, req))),
        Fault::BadTypes => text_plain(200, bad_types(endpoint).to_string().into_bytes()),
        Fault::Status(code) => Reply::empty(code),
    }
}

const BAD_GATEWAY: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// WeChat labels its JSON `text/plain` (docs/wechat.md §6): clients must not insist
/// on `application/json`.
pub(super) fn text_plain(status: u16, body: Body) -> Reply {
    Reply::with_body(status, "text/plain", body)
}

/// `{"errcode":N,"errmsg":"..., rid: ..."}`; WeChat appends a request id.
pub(super) fn error_body(errcode: i64) -> Body {
    let rid = [8, 8, 8]
        .map(|n| random::token(n).to_ascii_lowercase())
        .join("-");
    let errmsg = format!("{}, rid: {rid}", state::errmsg(errcode));
    serde_json::json!({ "errcode": errcode, "errmsg": errmsg })
        .to_string()
        .into_bytes()
}

/// The access_token answer, fields in WeChat's order.
#[derive(Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    expires_in: i64,
    refresh_token: &'a str,
    openid: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_snapshotuser: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unionid: Option<&'a str>,
}

fn token_body(sim: &Sim, issued: &Issued) -> Body {
    let Some(user) = users::get(issued.grant.user) else {
        return error_body(SYSTEM_BUSY);
    };
    let snapshot = issued.grant.snapshot;
    let answer = TokenAnswer {
        access_token: &issued.access_token,
        expires_in: ACCESS_TTL,
        refresh_token: &issued.refresh_token,
        openid: &openid(sim, &issued.grant),
        scope: issued.grant.scope.as_str(),
        is_snapshotuser: snapshot.then_some(1),
        // A snapshot user is virtual: no real unionid to give away.
        unionid: if snapshot { None } else { user.unionid },
    };
    serde_json::to_vec(&answer).unwrap_or_else(|_| error_body(SYSTEM_BUSY))
}

/// The openid a grant's tokens belong to: each app has its own.
fn openid(sim: &Sim, grant: &Grant) -> String {
    if grant.snapshot {
        return users::SNAPSHOT_OPENID.to_string();
    }
    let Some(user) = users::get(grant.user) else {
        return String::new();
    };
    if sim.web_app_of(&grant.appid).is_some() {
        users::web_openid(user)
    } else {
        user.openid.to_string()
    }
}

/// The appid of an sns call (the Official Account's or the website app's)
/// and, for the code exchange, that app's secret.
fn check_app(sim: &Sim, req: &Req, with_secret: bool) -> Result<(), i64> {
    let appid = req.query("appid").filter(|a| !a.is_empty());
    let secret = match appid.and_then(|a| sim.web_app_of(a)) {
        Some(web) => &web.secret,
        None => {
            check_appid(sim, appid)?;
            &sim.config.secret
        }
    };
    if with_secret {
        check_secret_of(secret, req.query("secret"))?;
    }
    Ok(())
}

/// An appid as sent (query or JSON body): missing 41002, foreign 40013.
pub(super) fn check_appid(sim: &Sim, appid: Option<&str>) -> Result<(), i64> {
    match appid.filter(|a| !a.is_empty()) {
        None => Err(MISSING_APPID),
        Some(appid) if appid != sim.config.appid => Err(INVALID_APPID),
        Some(_) => Ok(()),
    }
}

/// The Official Account's secret as sent: missing 41004, wrong 40125.
pub(super) fn check_secret(sim: &Sim, secret: Option<&str>) -> Result<(), i64> {
    check_secret_of(&sim.config.secret, secret)
}

/// A secret as sent, against the app's `expected` one: missing 41004,
/// wrong 40125.
fn check_secret_of(expected: &str, secret: Option<&str>) -> Result<(), i64> {
    match secret.filter(|s| !s.is_empty()) {
        None => Err(MISSING_SECRET),
        Some(s) if !random::constant_time_eq(s, expected) => Err(INVALID_SECRET),
        Some(_) => Ok(()),
    }
}

fn exchange(sim: &mut Sim, req: &Req) -> Body {
    let now = sim.clock.now();
    let result = check_app(sim, req, true).and_then(|()| {
        if req.query("grant_type") != Some("authorization_code") {
            return Err(INVALID_GRANT_TYPE);
        }
        let code = req
            .query("code")
            .filter(|c| !c.is_empty())
            .ok_or(MISSING_CODE)?;
        // The snapshot switch counts whether it was on at consent or now.
        if sim.snapshot {
            sim.store.mark_snapshot(code);
        }
        // A code is the app's that it was issued for: another app's is
        // unknown here (40029), even with that app's right secret.
        sim.store
            .redeem_code(req.query("appid").unwrap_or_default(), code, now)
    });
    result.map_or_else(error_body, |issued| token_body(sim, &issued))
}

fn refresh(sim: &mut Sim, req: &Req) -> Body {
    let now = sim.clock.now();
    let result = check_app(sim, req, false).and_then(|()| {
        if req.query("grant_type") != Some("refresh_token") {
            return Err(INVALID_GRANT_TYPE);
        }
        let token = req
            .query("refresh_token")
            .filter(|t| !t.is_empty())
            .ok_or(MISSING_REFRESH_TOKEN)?;
        sim.store
            .refresh(req.query("appid").unwrap_or_default(), token, now)
    });
    result.map_or_else(error_body, |issued| token_body(sim, &issued))
}

/// The grant of `access_token` if the token is live and belongs to `openid`.
fn token_for(sim: &mut Sim, req: &Req) -> Result<Grant, i64> {
    let now = sim.clock.now();
    let token = req
        .query("access_token")
        .filter(|t| !t.is_empty())
        .ok_or(MISSING_ACCESS_TOKEN)?;
    let grant = sim.store.check_access(token, now)?;
    let asked = req
        .query("openid")
        .filter(|o| !o.is_empty())
        .ok_or(MISSING_OPENID)?;
    if asked != openid(sim, &grant) {
        return Err(INVALID_OPENID);
    }
    Ok(grant)
}

fn profile(sim: &mut Sim, req: &Req) -> Body {
    let grant = match token_for(sim, req) {
        Ok(grant) => grant,
        Err(errcode) => return error_body(errcode),
    };
    // An snsapi_base token identifies the user but may not read the profile.
    if !grant.scope.reads_profile() {
        return error_body(API_UNAUTHORIZED);
    }
    if grant.snapshot {
        return users::snapshot_userinfo_body();
    }
    match users::get(grant.user) {
        Some(user) => {
            let openid = openid(sim, &grant);
            users::userinfo_body(user, &openid, users::Lang::parse(req.query("lang")))
        }
        None => error_body(SYSTEM_BUSY),
    }
}

fn check(sim: &mut Sim, req: &Req) -> Body {
    match token_for(sim, req) {
        Ok(_) => br#"{"errcode":0,"errmsg":"ok"}"#.to_vec(),
        Err(errcode) => error_body(errcode),
    }
}

/// The answer with a padding field added before its closing brace, so it
/// stays valid JSON: a client must refuse it for its size, not its syntax.
fn pad(mut body: Body) -> Body {
    if body.last() == Some(&b'}') {
        body.pop();
        let fill = HUGE_BYTES.saturating_sub(body.len());
        body.extend_from_slice(b",\"padding\":\"");
        body.resize(body.len() + fill, b'x');
        body.extend_from_slice(b"\"}");
    }
    body
}

/// Plausible field names with the wrong types, per endpoint.
fn bad_types(endpoint: Endpoint) -> serde_json::Value {
    match endpoint {
        Endpoint::AccessToken | Endpoint::RefreshToken => serde_json::json!({
            "access_token": 1234567890,
            "expires_in": "7200",
            "refresh_token": ["simRT_"],
            "openid": 1234567890123456_i64,
            "scope": { "snsapi_userinfo": true },
            "unionid": false,
        }),
        Endpoint::Userinfo => serde_json::json!({
            "openid": 1234567890123456_i64,
            "nickname": ["熊猫"],
            "sex": "male",
            "province": 1,
            "city": null,
            "country": {},
            "headimgurl": 42,
            "privilege": "chinaunicom",
            "unionid": 7,
        }),
        Endpoint::Auth | Endpoint::MenuCreate | Endpoint::MenuDelete => {
            serde_json::json!({ "errcode": "0", "errmsg": 0 })
        }
        Endpoint::Token | Endpoint::StableToken => serde_json::json!({
            "access_token": 1234567890,
            "expires_in": "7200",
        }),
        Endpoint::MenuGet => serde_json::json!({
            "menu": { "button": { "name": 1, "type": ["click"] } },
        }),
        Endpoint::Getticket => serde_json::json!({
            "errcode": "0",
            "errmsg": 0,
            "ticket": 1234567890,
            "expires_in": "7200",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_answers_stay_json_and_pass_ten_mib() {
        let body = pad(br#"{"a":1}"#.to_vec());
        assert!(body.len() >= HUGE_BYTES);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("still JSON");
        assert_eq!(v["a"], 1);
    }

    #[test]
    fn errors_carry_wechat_errmsg_and_a_request_id() {
        let v: serde_json::Value = serde_json::from_slice(&error_body(40029)).expect("JSON");
        assert_eq!(v["errcode"], 40029);
        assert!(v["errmsg"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid code, rid: ")));
    }
}
