//! HTML handlers: home, profile, and the profile refresh that re-fetches the
//! user from WeChat with the stored token (refreshing the token when needed).

use crate::app::App;
use crate::config::Scope;
use crate::error::{login_url, AppError};
use crate::http::{Reply, Req};
use crate::session::{Session, StoredUser, Tokens};
use crate::wechat::{WechatClient, WechatError};
use minijinja::{context, Value};

/// GET /: a welcome for the logged-in user, "游客" and a login link otherwise.
pub fn home(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let user = app.current(req).map(|(_, s)| user_view(s));
    app.page("home.html", context! { user })
}

/// GET /profile: the stored profile; not logged in → /login?next=/profile.
pub fn profile(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let Some((_, session)) = app.current(req) else {
        return Ok(Reply::redirect(302, &login_url("/profile")));
    };
    let ctx = context! { user => user_view(session), scope => session.scope.as_str() };
    app.page("profile.html", ctx)
}

/// POST /profile/refresh: asks WeChat again (sns/userinfo, or sns/auth with
/// snsapi_base), then 303 back to /profile. A grant WeChat no longer honours
/// ends the session and sends the user to log in again.
pub fn profile_refresh(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let Some((sid, session)) = app.current(req) else {
        return Ok(Reply::redirect(303, &login_url("/profile")));
    };
    let result = match session.scope {
        Scope::Userinfo => with_token(app, &sid, |w, token, openid| {
            w.userinfo(token, openid).map(Some)
        }),
        Scope::Base => with_token(app, &sid, |w, token, openid| {
            w.check(token, openid).map(|_| None)
        }),
    };
    match result {
        Ok(fresh) => {
            if let (Some(user), Some(session)) =
                (fresh, app.sessions.get_mut(&sid, app.clock.now()))
            {
                let old_unionid = session.user.unionid().map(str::to_string);
                session.user = StoredUser::from(user);
                session.user.keep_unionid(old_unionid.as_deref());
            }
            Ok(Reply::redirect(303, "/profile"))
        }
        Err(error) if error.is_dead_grant() => {
            app.sessions.remove(&sid);
            let cleared = app.session_cookie_cleared();
            Ok(Reply::redirect(303, &login_url("/profile")).with_cookie(&cleared))
        }
        Err(error) => Err(AppError::Upstream {
            error,
            next: "/profile".into(),
        }),
    }
}

/// Runs `call` with the session's access_token: refreshed first when our clock
/// says it expired, and refreshed and retried once when WeChat says it is stale
/// (42001, 40001, 40014).
fn with_token<T>(
    app: &mut App,
    sid: &str,
    call: impl Fn(&WechatClient, &str, &str) -> Result<T, WechatError>,
) -> Result<T, WechatError> {
    let now = app.clock.now();
    if token_of(app, sid)?.tokens.access_expires <= now {
        refresh(app, sid)?;
    }
    let session = token_of(app, sid)?;
    match call(&app.wechat, session.tokens.access_token(), session.openid()) {
        Err(e) if e.is_stale_token() => {
            refresh(app, sid)?;
            let session = token_of(app, sid)?;
            call(&app.wechat, session.tokens.access_token(), session.openid())
        }
        other => other,
    }
}

fn token_of<'a>(app: &'a App, sid: &str) -> Result<&'a Session, WechatError> {
    app.sessions
        .get(sid, app.clock.now())
        .ok_or_else(|| WechatError::BadAnswer("session ended during the call".into()))
}

/// Swaps the session's access_token for a new one via its refresh_token.
fn refresh(app: &mut App, sid: &str) -> Result<(), WechatError> {
    let now = app.clock.now();
    let session = token_of(app, sid)?;
    if session.tokens.refresh_expires <= now {
        // Our own clock says WeChat would answer 42002; spare the call.
        return Err(WechatError::Api {
            errcode: 42002,
            errmsg: "refresh_token expired".into(),
        });
    }
    let (refresh_token, openid) = (
        session.tokens.refresh_token().to_string(),
        session.openid().to_string(),
    );
    let grant = app.wechat.refresh(&refresh_token)?;
    if grant.openid != openid {
        return Err(WechatError::BadAnswer(
            "refresh answer is for another openid".into(),
        ));
    }
    if let Some(session) = app.sessions.get_mut(sid, now) {
        // WeChat's refresh keeps the refresh_token and its 30 days from the first grant.
        let refresh = if grant.refresh_token.is_empty() {
            refresh_token.as_str()
        } else {
            &grant.refresh_token
        };
        let access_expires = now + (grant.expires_in - 60).max(0);
        session.tokens = Tokens::new(
            &grant.access_token,
            refresh,
            access_expires,
            session.tokens.refresh_expires,
        );
    }
    Ok(())
}

/// What the templates see of a session. No token ever goes in here.
fn user_view(session: &Session) -> Value {
    let u = &session.user;
    context! {
        openid => u.openid(),
        nickname => u.nickname(),
        sex_label => match u.sex() { 1 => "男", 2 => "女", _ => "未知" },
        province => u.province(),
        city => u.city(),
        country => u.country(),
        privilege => u.privilege().map(Value::from).collect::<Vec<_>>(),
        unionid => u.unionid().unwrap_or(""),
        avatar => avatar(u.headimgurl()),
    }
}

/// The avatar to render: only https on WeChat's avatar hosts (the CSP allows
/// just those); anything else gets the placeholder ("").
fn avatar(url: &str) -> String {
    let host = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .unwrap_or("");
    if host.ends_with(".qlogo.cn") && !host.contains(['@', ':']) {
        url.to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::avatar;

    #[test]
    fn only_https_qlogo_avatars_are_rendered() {
        assert_eq!(
            avatar("https://thirdwx.qlogo.cn/mmopen/x/132"),
            "https://thirdwx.qlogo.cn/mmopen/x/132"
        );
        for url in [
            "",
            "http://thirdwx.qlogo.cn/x",
            "https://evil.com/x",
            "https://qlogo.cn.evil.com/x",
            "https://user@evil.com/.qlogo.cn",
            "https://x.qlogo.cn:8443/x",
            "javascript:alert(1)",
        ] {
            assert_eq!(avatar(url), "", "{url}");
        }
    }
}
