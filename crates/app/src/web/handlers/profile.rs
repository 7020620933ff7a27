//! HTML handlers: home, profile, and the profile refresh that re-fetches the
//! user from WeChat with the stored tokens. Keeping the token alive on the
//! way (refresh, retry) is WeChat's business: wechat/refresh.rs.

use crate::store::sessions::{Session, StoredUser, Tokens};
use crate::transport::host::HttpUrl;
use crate::transport::http::{Reply, Req};
use crate::transport::service::Outcome;
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use crate::wechat::refresh::{self, Fresh, Held};
use minijinja::{context, Value};

/// GET /: a welcome for the logged-in user, "游客" and a login link otherwise.
/// Inside WeChat the page does not ask to be opened in WeChat.
pub fn home(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let user = app.current(req).map(|(_, s)| user_view(s));
    let in_wechat = crate::web::handlers::scan::in_wechat(req);
    app.page("home.html", context! { user, in_wechat })
}

/// GET /profile: the stored profile; not logged in → /login?next=/profile.
pub fn profile(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let Some((_, session)) = app.current(req) else {
        return Ok(Reply::redirect(302, &app.login_url(&app.path("/profile"))));
    };
    let ctx = context! { user => user_view(session), scope => session.scope.as_str() };
    app.page("profile.html", ctx)
}

/// POST /profile/refresh: asks WeChat again (sns/userinfo, or sns/auth with
/// snsapi_base), then 303 back to /profile. A grant WeChat no longer honours
/// ends the session and sends the user to log in again. The calls (up to
/// four: refresh, call, refresh, retry; `refresh::ask_again`) run on a
/// worker as one job with a copy of the session's tokens; `refreshed` writes
/// the outcome back.
pub fn profile_refresh(app: &mut App, req: &Req) -> Step {
    let Some((sid, session)) = app.current(req) else {
        return Ok(Reply::redirect(303, &app.login_url(&app.path("/profile"))).into());
    };
    let held = Held {
        access_token: session.tokens.access_token().to_string(),
        refresh_token: session.tokens.refresh_token().to_string(),
        access_expires: session.tokens.access_expires,
        refresh_expires: session.tokens.refresh_expires,
    };
    let (openid, scope) = (session.openid().to_string(), session.scope);
    let (wechat, now) = (app.wechat(), app.now());
    let started_with = held.refresh_token.clone();
    let job = app.call(
        req,
        move || refresh::ask_again(&wechat, scope, &openid, held, now),
        move |app, fresh| refreshed(app, &sid, &started_with, fresh),
    );
    Ok(Outcome::Wait(job))
}

/// Back on the loop. The session may have ended (logout) or been given
/// other tokens while the calls were out: nothing is written into a session
/// that is gone, and tokens are written only over the ones the calls began
/// with.
fn refreshed(app: &mut App, sid: &str, started_with: &str, fresh: Fresh) -> Step {
    let (profile, again) = (app.path("/profile"), app.login_url(&app.path("/profile")));
    let Some(session) = app.session_mut(sid) else {
        return Ok(Reply::redirect(303, &again).into());
    };
    let unchanged = session.tokens.refresh_token() == started_with;
    if let (Some(held), true) = (&fresh.renewed, unchanged) {
        session.tokens = Tokens::new(
            &held.access_token,
            &held.refresh_token,
            held.access_expires,
            held.refresh_expires,
        );
    }
    match fresh.answer {
        Ok(Some(user)) => {
            let old_unionid = session.user.unionid().map(str::to_string);
            session.user = StoredUser::from(user);
            session.user.keep_unionid(old_unionid.as_deref());
            Ok(Reply::redirect(303, &profile).into())
        }
        Ok(None) => Ok(Reply::redirect(303, &profile).into()),
        Err(error) if error.is_dead_grant() && unchanged => {
            app.end_session(sid);
            let cleared = app.session_cookie_cleared();
            Ok(Reply::redirect(303, &again).with_cookie(&cleared).into())
        }
        Err(error) => Err(AppError::Upstream {
            error,
            next: profile,
        }),
    }
}

/// What the templates see of a session. No token ever goes in here.
fn user_view(session: &Session) -> Value {
    let u = &session.user;
    // Since late 2021 WeChat gives web pages no sex or region: the page
    // explains the blanks only when there are some.
    let withheld = u.sex() == 0 || u.province().is_empty() || u.city().is_empty();
    context! {
        withheld,
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
    let shown = HttpUrl::parse(url).is_some_and(|u| {
        u.is_https() && u.port().is_none() && u.authority().host().ends_with(".qlogo.cn")
    });
    if shown {
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
