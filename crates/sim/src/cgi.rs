//! The api.weixin.qq.com cgi-bin side an Official Account server uses: its
//! base access_token (cgi-bin/token, cgi-bin/stable_token) and the custom
//! menu (create, get, delete). Answers and faults as on the sns side (api.rs).

use super::base_token::Granted;
use super::faults::Endpoint;
use super::sns::{check_appid, check_secret, error_body, serve, Body};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sim;

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
}
