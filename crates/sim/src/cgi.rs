//! The api.weixin.qq.com cgi-bin side an Official Account server uses: its
//! base access_token (cgi-bin/token, cgi-bin/stable_token), the custom
//! menu (create, get, delete) and the JS-SDK's jsapi_ticket (getticket).
//! Answers and faults as on the sns side (sns.rs).

use super::base_token::Granted;
use super::faults::Endpoint;
use super::sns::{check_appid, check_secret, error_body, serve, Body};
use super::state::INVALID_ARGS;
use super::ticket::TICKET_TTL;
use super::{menu, Sim};
use serde_json::Value;
use wxauth_app::transport::http::{Reply, Req};
use wxauth_app::wechat::errcode::{
    DATA_FORMAT_ERROR, INVALID_GRANT_TYPE, MENU_NO_EXIST, MISSING_ACCESS_TOKEN,
};

/// `GET /cgi-bin/token`: a new base token on every call.
pub(super) fn token(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::Token, fetch)
}

/// `POST /cgi-bin/stable_token`: the current stable token, or a new one.
pub(super) fn stable_token(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::StableToken, fetch_stable)
}

/// `POST /cgi-bin/menu/create`: checks and stores a menu.
pub(super) fn menu_create(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::MenuCreate, create)
}

/// `GET /cgi-bin/menu/get`: the stored menu as it was sent.
pub(super) fn menu_get(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::MenuGet, get)
}

/// `GET /cgi-bin/menu/delete`: forgets the menu (ok also when there is none).
pub(super) fn menu_delete(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::MenuDelete, delete)
}

/// `GET /cgi-bin/ticket/getticket?access_token=…&type=jsapi`: the
/// account's jsapi_ticket, the same one while it has more than 5 minutes
/// left (ticket.rs).
pub(super) fn getticket(sim: &mut Sim, req: &Req) -> Reply {
    serve(sim, req, Endpoint::Getticket, jsapi_ticket)
}

const OK: &[u8] = br#"{"errcode":0,"errmsg":"ok"}"#;

fn granted_body(granted: &Granted) -> Body {
    serde_json::json!({
        "access_token": granted.access_token,
        "expires_in": granted.expires_in,
    })
    .to_string()
    .into_bytes()
}

fn client_credential(grant_type: Option<&str>) -> Result<(), i64> {
    match grant_type {
        Some("client_credential") => Ok(()),
        _ => Err(INVALID_GRANT_TYPE),
    }
}

fn fetch(sim: &mut Sim, req: &Req) -> Body {
    let checked = check_appid(sim, req.query("appid"))
        .and_then(|()| check_secret(sim, req.query("secret")))
        .and_then(|()| client_credential(req.query("grant_type")));
    match checked {
        Ok(()) => granted_body(&sim.base_tokens.fetch(sim.clock.now())),
        Err(errcode) => error_body(errcode),
    }
}

fn fetch_stable(sim: &mut Sim, req: &Req) -> Body {
    // Unlike cgi-bin/token, the arguments come as a JSON body.
    let args = match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(args)) => args,
        _ => return error_body(DATA_FORMAT_ERROR),
    };
    let field = |name: &str| args.get(name).and_then(Value::as_str);
    let force_refresh = match args.get("force_refresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(force)) => *force,
        Some(_) => return error_body(DATA_FORMAT_ERROR),
    };
    let checked = check_appid(sim, field("appid"))
        .and_then(|()| check_secret(sim, field("secret")))
        .and_then(|()| client_credential(field("grant_type")));
    match checked {
        Ok(()) => {
            let now = sim.clock.now();
            granted_body(&sim.base_tokens.fetch_stable(force_refresh, now))
        }
        Err(errcode) => error_body(errcode),
    }
}

/// The `?access_token=` of a cgi-bin call must be a live base token (either
/// chain); a web-authorization token is unknown here (40001).
fn base_token(sim: &mut Sim, req: &Req) -> Result<(), i64> {
    let token = req
        .query("access_token")
        .filter(|t| !t.is_empty())
        .ok_or(MISSING_ACCESS_TOKEN)?;
    let now = sim.clock.now();
    sim.base_tokens.check(token, now)
}

fn create(sim: &mut Sim, req: &Req) -> Body {
    match base_token(sim, req).and_then(|()| menu::validate(&req.body)) {
        Ok(menu) => {
            sim.menu = Some(menu);
            OK.to_vec()
        }
        Err(errcode) => error_body(errcode),
    }
}

fn get(sim: &mut Sim, req: &Req) -> Body {
    if let Err(errcode) = base_token(sim, req) {
        return error_body(errcode);
    }
    match &sim.menu {
        Some(menu) => format!("{{\"menu\":{}}}", menu::as_wechat_shows_it(menu)).into_bytes(),
        None => error_body(MENU_NO_EXIST),
    }
}

fn delete(sim: &mut Sim, req: &Req) -> Body {
    match base_token(sim, req) {
        Ok(()) => {
            sim.menu = None;
            OK.to_vec()
        }
        Err(errcode) => error_body(errcode),
    }
}

fn jsapi_ticket(sim: &mut Sim, req: &Req) -> Body {
    let checked = base_token(sim, req).and_then(|()| match req.query("type") {
        Some("jsapi") => Ok(()),
        // WeChat also knows type=wx_card (card tickets): not simulated.
        _ => Err(INVALID_ARGS),
    });
    if let Err(errcode) = checked {
        return error_body(errcode);
    }
    let ticket = sim.jsapi_tickets.get(&sim.config.appid, sim.clock.now());
    // expires_in is always the full life, even for a ticket handed back
    // again: WeChat's trap, reproduced (ticket.rs). Fields in WeChat's order.
    format!(
        r#"{{"errcode":0,"errmsg":"ok","ticket":{},"expires_in":{TICKET_TTL}}}"#,
        Value::from(ticket)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control;
    use crate::tests::sim;
    use wxauth_app::transport::http::Method;

    fn json(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).expect("JSON")
    }

    fn post(s: &mut Sim, url: &str, body: &str) -> Value {
        let mut req = Req::fake("POST", url, &[]);
        req.body = body.as_bytes().to_vec();
        json(&s.route(&req))
    }

    #[test]
    fn a_base_token_opens_the_menu_api() {
        let mut s = sim();
        let url =
            "/cgi-bin/token?grant_type=client_credential&appid=wxSIMAPPID0000001&secret=simsecret";
        let t = json(&s.route(&Req::fake("GET", url, &[])));
        let token = t["access_token"].as_str().expect("a token").to_string();
        let menu = r#"{"button":[{"type":"click","name":"赞","key":"GOOD"}]}"#;
        let create = format!("/cgi-bin/menu/create?access_token={token}");
        assert_eq!(post(&mut s, &create, menu)["errcode"], 0);
        let get = format!("/cgi-bin/menu/get?access_token={token}");
        let got = s.route(&Req::fake("GET", &get, &[]));
        // As WeChat shows it: every button gains an empty sub_button list.
        assert_eq!(
            String::from_utf8_lossy(&got.body),
            r#"{"menu":{"button":[{"type":"click","name":"赞","key":"GOOD","sub_button":[]}]}}"#
        );
        assert_eq!(
            post(&mut s, "/cgi-bin/menu/create?access_token=x", menu)["errcode"],
            40001
        );
        assert_eq!(post(&mut s, "/cgi-bin/menu/create", menu)["errcode"], 41001);
        assert_eq!(
            post(&mut s, "/cgi-bin/stable_token", "grant_type=x")["errcode"],
            47001
        );
    }

    /// A fresh base token from cgi-bin/token.
    fn base_token_of(s: &mut Sim) -> String {
        let url =
            "/cgi-bin/token?grant_type=client_credential&appid=wxSIMAPPID0000001&secret=simsecret";
        json(&s.route(&Req::fake("GET", url, &[])))["access_token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    fn getticket(s: &mut Sim, token: &str, kind: &str) -> Value {
        let url = format!("/cgi-bin/ticket/getticket?access_token={token}&type={kind}");
        let reply = s.route(&Req::fake("GET", &url, &[]));
        assert_eq!(
            (reply.status, reply.header("Content-Type")),
            (200, Some("text/plain"))
        );
        json(&reply)
    }

    fn valid_tickets(s: &Sim) -> Vec<String> {
        let now = s.clock.now();
        s.jsapi_tickets
            .valid("wxSIMAPPID0000001", now)
            .map(String::from)
            .collect()
    }

    #[test]
    fn getticket_gives_the_same_ticket_for_a_full_7200_while_it_lives() {
        let mut s = sim();
        let token = base_token_of(&mut s);
        let first = getticket(&mut s, &token, "jsapi");
        assert_eq!(first["errcode"], 0);
        assert_eq!(first["errmsg"], "ok");
        assert_eq!(first["expires_in"], 7200);
        let ticket = first["ticket"].as_str().expect("a ticket").to_string();
        assert_eq!(ticket.len(), 86);
        let raw = s.route(&Req::fake(
            "GET",
            &format!("/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"),
            &[],
        ));
        assert_eq!(
            String::from_utf8(raw.body).unwrap(),
            format!(r#"{{"errcode":0,"errmsg":"ok","ticket":"{ticket}","expires_in":7200}}"#)
        );
        // Two hours minus five minutes and a second later, with another
        // base token: the same ticket, "7200 s" again (WeChat's trap).
        s.clock.advance(TICKET_TTL - 301);
        let token = base_token_of(&mut s);
        let again = getticket(&mut s, &token, "jsapi");
        assert_eq!(
            (again["ticket"].as_str(), again["expires_in"].as_i64()),
            (Some(ticket.as_str()), Some(7200))
        );
        assert_eq!(control::state_json(&s)["stored"]["jsapi_tickets"], 1);
        assert_eq!(s.calls[Endpoint::Getticket.index()], 3);
        assert_eq!(control::state_json(&s)["calls"]["getticket"], 3);
    }

    #[test]
    fn in_the_last_five_minutes_a_new_ticket_comes_and_the_old_still_works() {
        let mut s = sim();
        let token = base_token_of(&mut s);
        let old = getticket(&mut s, &token, "jsapi")["ticket"].clone();
        s.clock.advance(TICKET_TTL - 300);
        let token = base_token_of(&mut s);
        let new = getticket(&mut s, &token, "jsapi");
        assert_ne!(new["ticket"], old);
        assert_eq!(new["expires_in"], 7200);
        assert_eq!(
            valid_tickets(&s),
            vec![old.as_str().unwrap(), new["ticket"].as_str().unwrap()]
        );
        assert_eq!(control::state_json(&s)["stored"]["jsapi_tickets"], 2);
        assert_eq!(getticket(&mut s, &token, "jsapi")["ticket"], new["ticket"]);
        // The old one dies at its own expiry.
        s.clock.advance(300);
        assert_eq!(valid_tickets(&s), vec![new["ticket"].as_str().unwrap()]);
        assert_eq!(control::state_json(&s)["stored"]["jsapi_tickets"], 1);
    }

    #[test]
    fn getticket_wants_a_live_base_token_and_type_jsapi() {
        let mut s = sim();
        let stale = base_token_of(&mut s);
        assert_eq!(getticket(&mut s, "simBT_nope", "jsapi")["errcode"], 40001);
        assert_eq!(getticket(&mut s, "", "jsapi")["errcode"], 41001);
        let wrong = getticket(&mut s, &stale, "wx_card");
        assert_eq!(wrong["errcode"], INVALID_ARGS);
        assert!(wrong["errmsg"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid args")));
        let url = format!("/cgi-bin/ticket/getticket?access_token={stale}");
        assert_eq!(
            json(&s.route(&Req::fake("GET", &url, &[])))["errcode"],
            INVALID_ARGS
        );
        // Replaced more than five minutes ago: not latest.
        base_token_of(&mut s);
        s.clock.advance(300);
        assert_eq!(getticket(&mut s, &stale, "jsapi")["errcode"], 40001);
        let token = base_token_of(&mut s);
        s.clock.advance(7200);
        assert_eq!(getticket(&mut s, &token, "jsapi")["errcode"], 42001);
        // No ticket was issued by any of these.
        assert_eq!(control::state_json(&s)["stored"]["jsapi_tickets"], 0);
        assert_eq!(control::state_json(&s)["calls"]["getticket"], 6);
    }

    #[test]
    fn a_fault_fails_getticket_once() {
        let mut s = sim();
        let token = base_token_of(&mut s);
        let arm = Req::new(
            Method::Post,
            "/sim/control",
            vec![(
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            )],
            b"fault=getticket:errcode:45009".to_vec(),
        );
        assert_eq!(s.route(&arm).status, 200);
        let failed = getticket(&mut s, &token, "jsapi");
        assert_eq!(failed["errcode"], 45009);
        assert!(failed["ticket"].is_null());
        assert_eq!(control::state_json(&s)["stored"]["jsapi_tickets"], 0);
        assert_eq!(getticket(&mut s, &token, "jsapi")["errcode"], 0);
        assert_eq!(control::state_json(&s)["calls"]["getticket"], 2);
    }
}
