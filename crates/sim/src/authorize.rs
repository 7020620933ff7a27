//! The open.weixin.qq.com side: the authorize link, the consent page and the
//! redirect back with a code. Links are checked by link.rs; refusals become
//! WeChat's grey error page.

use super::link::{self, field, Link};
use super::state::{Grant, Scope};
use super::{users, Sim};
use minijinja::context;
use minijinja::value::{Serde, Value};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use wxauth_app::transport::http::{encode_query, Cookie, Reply, Req};

/// The cookie, on the simulator's origin, that remembers which test user
/// this browser last chose: snsapi_base logs in as that user without asking.
const USER_COOKIE: &str = "sim_user";

/// `GET /connect/oauth2/authorize`: the consent page, or for snsapi_base a
/// redirect with a code at once. (`#wechat_redirect` never reaches a server,
/// and unlike WeChat the sim opens outside the WeChat client: demos use a
/// desktop browser.)
pub(super) fn authorize(sim: &mut Sim, req: &Req) -> Reply {
    let link = match link::check_link(&sim.config, req) {
        Ok(link) => link,
        Err(refusal) => return sim.refusal_page(&refusal),
    };
    let current = current_user(req);
    if link.scope == Scope::Userinfo || link.force_popup {
        return consent_page(sim, &link, current);
    }
    grant(sim, &link, current)
}

/// `POST /connect/oauth2/authorize/confirm`: the consent form's answer.
pub(super) fn confirm(sim: &mut Sim, req: &Req) -> Reply {
    let form = req.form();
    let link = match link::check_form(&sim.config, &form) {
        Ok(link) => link,
        Err(refusal) => return sim.refusal_page(&refusal),
    };
    let user = match field(&form, "user").and_then(|u| u.parse::<usize>().ok()) {
        Some(user) if users::get(user).is_some() => user,
        _ => return sim.refusal_page(&link::BAD_USER),
    };
    match field(&form, "action") {
        // Declined: WeChat still calls back, with the state and no code.
        Some("deny") => Reply::redirect(
            302,
            &callback_url(&link.redirect_uri, &[("state", &link.state)]),
        ),
        Some("allow") => grant(sim, &link, user).with_cookie(&Cookie {
            name: USER_COOKIE,
            value: user.to_string(),
            max_age: 30 * 24 * 3600,
            secure: false,
            path: "/".into(),
        }),
        _ => sim.refusal_page(&link::BAD_ACTION),
    }
}

/// `redirect_uri` plus parameters: `?` or `&` as needed, and before any
/// `#fragment`, which is where WeChat puts them for single-page apps.
pub(super) fn callback_url(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let (base, fragment) = match redirect_uri.find('#') {
        Some(i) => redirect_uri.split_at(i),
        None => (redirect_uri, ""),
    };
    let sep = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with(['?', '&']) => "",
        Some(_) => "&",
    };
    // The decoded redirect_uri may hold spaces or non-ASCII; a Location
    // header must not, so those go out percent-encoded.
    const UNSAFE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>');
    let url = format!("{base}{sep}{}{fragment}", encode_query(params));
    utf8_percent_encode(&url, UNSAFE).to_string()
}

/// Issues the code(s) for `user` and redirects to the callback with the first.
fn grant(sim: &mut Sim, link: &Link, user: usize) -> Reply {
    let grant = Grant {
        appid: sim.config.appid.clone(),
        user,
        scope: link.scope,
        snapshot: link.snapshot || sim.snapshot,
    };
    // WeChat's known double callback: two codes for one state (docs/wechat.md §2,
    // `connect_redirect`). The browser follows the first; a test replays
    // the second from `/sim/state`.
    let count = if sim.double_callback { 2 } else { 1 };
    redirect_with_codes(sim, &grant, &link.redirect_uri, &link.state, count)
}

/// Issues `count` codes for `grant`, remembers each callback URL for
/// `/sim/state` and redirects to the first.
pub(super) fn redirect_with_codes(
    sim: &mut Sim,
    grant: &Grant,
    redirect_uri: &str,
    state: &str,
    count: usize,
) -> Reply {
    let now = sim.clock.now();
    let mut first = None;
    for _ in 0..count {
        let code = sim.store.issue_code(grant.clone(), now);
        let url = callback_url(redirect_uri, &[("code", &code), ("state", state)]);
        sim.record_callback(url.clone());
        first.get_or_insert(url);
    }
    Reply::redirect(302, &first.unwrap_or_default())
}

fn consent_page(sim: &Sim, link: &Link, current: usize) -> Reply {
    let users: Vec<_> = users::USERS
        .iter()
        .enumerate()
        .map(|(i, u)| {
            serde_json::json!({
                "index": i,
                "nickname": users::display_nickname(u),
                "openid": u.openid,
                "checked": i == current,
            })
        })
        .collect();
    let ctx = context! {
        app_name => sim.config.app_name.as_str(),
        app_initial => sim.config.app_name.chars().next().map(String::from).unwrap_or_default(),
        appid => sim.config.appid.as_str(),
        redirect_uri => link.redirect_uri.as_str(),
        scope => link.scope.as_str(),
        userinfo => link.scope == Scope::Userinfo,
        state => link.state.as_str(),
        snapshot => if link.snapshot { "1" } else { "" },
        users => Value::from(Serde(users)),
    };
    sim.render("consent.html", ctx)
}

/// The user this browser chose last (user 0 if none or unknown).
fn current_user(req: &Req) -> usize {
    req.cookie(USER_COOKIE)
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&i| users::get(i).is_some())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_add_parameters_before_the_fragment() {
        let p = [("code", "C"), ("state", "T")];
        assert_eq!(
            callback_url("http://h/cb", &p),
            "http://h/cb?code=C&state=T"
        );
        assert_eq!(
            callback_url("http://h/cb?x=1", &p),
            "http://h/cb?x=1&code=C&state=T"
        );
        assert_eq!(
            callback_url("http://h/cb?", &p),
            "http://h/cb?code=C&state=T"
        );
        assert_eq!(
            callback_url("http://h/#/app", &p),
            "http://h/?code=C&state=T#/app"
        );
        assert_eq!(
            callback_url("http://h/a b/你", &[("state", "T")]),
            "http://h/a%20b/%E4%BD%A0?state=T"
        );
    }
}
