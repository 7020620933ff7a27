//! Asking WeChat about a user again, later, with the tokens their login
//! got: the access_token lives 2 hours and the refresh_token 30 days
//! (docs/wechat.md §3), so a call may first need a new access_token. The
//! profile refresh (web/handlers/profile.rs) runs `ask_again` on a worker
//! with a copy of the session's tokens and writes back what it returns.
//! Knows nothing of sessions: tokens in, tokens and an answer out.

use crate::config::Scope;
use crate::wechat::client::{WechatClient, WechatError, WechatUser};
use crate::wechat::errcode::REFRESH_TOKEN_EXPIRED;

/// A user's tokens as a worker holds them, copied out of their session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub access_token: String,
    pub refresh_token: String,
    /// When the access_token expires by our clock (a minute early).
    pub access_expires: i64,
    /// When the refresh_token expires by our clock.
    pub refresh_expires: i64,
}

/// What `ask_again` brings back: tokens it renewed on the way, and the answer.
#[derive(Debug)]
pub struct Fresh {
    /// The tokens after a refresh, if one succeeded; None if none was made.
    pub renewed: Option<Held>,
    /// The profile (snsapi_userinfo), or None when sns/auth said the token
    /// is good (snsapi_base, which may not read the profile).
    pub answer: Result<Option<WechatUser>, WechatError>,
}

/// Calls WeChat for `openid` with the access_token: sns/userinfo, or sns/auth
/// with snsapi_base. The token is refreshed first when our clock says it
/// expired, and refreshed and the call retried once when WeChat says it is
/// stale (42001, 40001, 40014): at most four calls. Blocks: run it on a worker.
pub fn ask_again(
    wechat: &WechatClient,
    scope: Scope,
    openid: &str,
    mut held: Held,
    now: i64,
) -> Fresh {
    let mut renewed = None;
    let call = |token: &str| match scope {
        Scope::Userinfo | Scope::Login => wechat.userinfo(token, openid).map(Some),
        Scope::Base => wechat.check(token, openid).map(|_| None),
    };
    let mut refresh = |held: &mut Held| -> Result<(), WechatError> {
        renew(wechat, openid, held, now)?;
        renewed = Some(held.clone());
        Ok(())
    };
    let answer = (|| {
        if held.access_expires <= now {
            refresh(&mut held)?;
        }
        match call(&held.access_token) {
            Err(e) if e.is_stale_token() => {
                refresh(&mut held)?;
                call(&held.access_token)
            }
            other => other,
        }
    })();
    Fresh { renewed, answer }
}

/// Swaps the access_token for a new one via the refresh_token.
fn renew(
    wechat: &WechatClient,
    openid: &str,
    held: &mut Held,
    now: i64,
) -> Result<(), WechatError> {
    if held.refresh_expires <= now {
        // Our own clock says WeChat would answer 42002; spare the call.
        return Err(WechatError::Api {
            errcode: REFRESH_TOKEN_EXPIRED,
            errmsg: "refresh_token expired".into(),
        });
    }
    let grant = wechat.refresh(&held.refresh_token)?;
    if grant.openid != openid {
        return Err(WechatError::BadAnswer(
            "refresh answer is for another openid".into(),
        ));
    }
    held.access_token = grant.access_token;
    // WeChat's refresh keeps the refresh_token and its 30 days from the first grant.
    if !grant.refresh_token.is_empty() {
        held.refresh_token = grant.refresh_token;
    }
    held.access_expires = now + (grant.expires_in - 60).max(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawConfig};

    #[test]
    fn a_refresh_token_our_clock_says_expired_ends_it_without_a_call() {
        // The API base is a port nothing listens on: a call would fail as
        // Transport, not as the errcode below.
        let env = [
            ("WXAUTH_APPID", "wx1234567890abcdef"),
            ("WXAUTH_SECRET", "s"),
            ("WXAUTH_PUBLIC_URL", "https://wx.example.com"),
            ("WXAUTH_API_BASE", "http://127.0.0.1:9"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::from_raw(&RawConfig::from_env_and_args(env, &[]).unwrap()).unwrap();
        let held = Held {
            access_token: "A".into(),
            refresh_token: "R".into(),
            access_expires: 100,
            refresh_expires: 100,
        };
        let fresh = ask_again(
            &WechatClient::new(&config),
            Scope::Userinfo,
            "o1",
            held,
            100,
        );
        assert_eq!(fresh.renewed, None);
        let error = fresh.answer.unwrap_err();
        assert!(error.is_dead_grant());
        assert_eq!(
            error,
            WechatError::Api {
                errcode: 42002,
                errmsg: "refresh_token expired".into()
            }
        );
    }
}
