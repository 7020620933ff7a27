//! HTML handlers: home, profile, and the profile refresh that re-fetches the
//! user from WeChat with the stored tokens. Keeping the token alive on the
//! way (refresh, retry) is WeChat's business: wechat/refresh.rs.

use crate::store::backend::{Found, Replaced};
use crate::store::sessions::{Session, StoredUser, Tokens};
use crate::transport::host::HttpUrl;
use crate::transport::http::{Reply, Req};
use crate::transport::service::Outcome;
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use crate::wechat::refresh::{self, Fresh, Held};
use minijinja::{context, Value};
use std::sync::Arc;

/// GET /: a welcome for the logged-in user, "游客" and a login link otherwise.
/// Inside WeChat the page does not ask to be opened in WeChat.
pub fn home(app: &mut App, req: &Req) -> Step {
    let in_wechat = crate::web::handlers::scan::in_wechat(req);
    app.with_session(req, move |app, found| {
        let user = found.map(|found| user_view(&found.session));
        Ok(app.page("home.html", context! { user, in_wechat })?.into())
    })
}

/// GET /profile: the stored profile; not logged in → /login?next=/profile.
pub fn profile(app: &mut App, req: &Req) -> Step {
    app.with_session(req, |app, found| {
        let Some(Found { session, .. }) = found else {
            return Ok(Reply::redirect(302, &app.login_url(&app.path("/profile"))).into());
        };
        let ctx = context! { user => user_view(&session), scope => session.scope.as_str() };
        Ok(app.page("profile.html", ctx)?.into())
    })
}

/// POST /profile/refresh: asks WeChat again (sns/userinfo, or sns/auth with
/// snsapi_base), then 303 back to /profile. A grant WeChat no longer honours
/// ends the session and sends the user to log in again. The calls (up to
/// four: refresh, call, refresh, retry; `refresh::ask_again`) run on a
/// worker as one job with a copy of the session's tokens; `refreshed` writes
/// the outcome back.
pub fn profile_refresh(app: &mut App, req: &Req) -> Step {
    let req_copy = req.clone();
    app.with_session(req, move |app, found| {
        let Some(Found { cookie, session }) = found else {
            return Ok(Reply::redirect(303, &app.login_url(&app.path("/profile"))).into());
        };
        let held = Held {
            access_token: session.tokens.access_token().to_string(),
            refresh_token: session.tokens.refresh_token().to_string(),
            access_expires: session.tokens.access_expires,
            refresh_expires: session.tokens.refresh_expires,
        };
        let (openid, scope) = (session.openid().to_string(), session.scope);
        let (wechat, now) = (app.wechat_for(scope), app.now());
        let resume = req_copy.clone();
        let job = app.call(
            &req_copy,
            move || refresh::ask_again(&wechat, scope, &openid, held, now),
            move |app, fresh| {
                let session = Arc::unwrap_or_clone(session);
                refreshed(app, &resume, cookie, session, fresh)
            },
        );
        Ok(Outcome::Wait(job))
    })
}

/// Back on the loop with WeChat's answer: the session copy the calls began
/// with, updated, is written back only over a session that still exists
/// and still holds the refresh token they began with (`replace_session`),
/// so a logout or another refresh in the meantime wins; a grant WeChat no
/// longer honours ends the session.
fn refreshed(app: &mut App, req: &Req, cookie: String, held: Session, fresh: Fresh) -> Step {
    let profile = app.path("/profile");
    let started_with = held.tokens.refresh_token().to_string();
    let mut session = held;
    if let Some(renewed) = &fresh.renewed {
        session.tokens = Tokens::new(
            &renewed.access_token,
            &renewed.refresh_token,
            renewed.access_expires,
            renewed.refresh_expires,
        );
    }
    match fresh.answer {
        Ok(user) => {
            if let Some(user) = user {
                let old_unionid = session.user.unionid().map(str::to_string);
                session.user = StoredUser::from(user);
                session.user.keep_unionid(old_unionid.as_deref());
            }
            app.with_store(
                req,
                move |store, now| store.replace_session(&cookie, &started_with, session, now),
                move |app, replaced| {
                    Ok(match replaced {
                        Replaced::Written | Replaced::Changed => Reply::redirect(303, &profile),
                        // Logged out meanwhile: it stays so.
                        Replaced::Gone => Reply::redirect(303, &app.login_url(&profile)),
                    }
                    .into())
                },
            )
        }
        Err(error) if error.is_dead_grant() => app.with_store(
            req,
            move |store, _| store.end_sessions(&[cookie]),
            |app, ()| {
                let again = app.login_url(&app.path("/profile"));
                let cleared = app.session_cookie_cleared();
                Ok(Reply::redirect(303, &again).with_cookie(&cleared).into())
            },
        ),
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
        // Which app this openid is of, and the same person's on the other.
        website => session.scope.is_website(),
        other_openid => session.other_openid.as_deref().unwrap_or(""),
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
