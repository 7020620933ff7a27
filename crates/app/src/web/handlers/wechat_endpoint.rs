//! The Official Account's message endpoint, `/wechat`, answered only when
//! WXAUTH_TOKEN is set: WeChat's server verification (GET) and the signed
//! XML it pushes for messages and events (POST, plaintext mode). A subscribe
//! or a "登录" message is answered with the login link; anything else with
//! `success`. WeChat retries a push it got no answer to, three times: a retry
//! gets the very reply the first delivery got (the login link is most needed
//! exactly when the first answer was lost), and is acted on once.

use crate::log;
use crate::store::backend::SavedReply;
use crate::transport::http::{Reply, Req};
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use crate::wechat::message::{signature_ok, Message};

/// GET /wechat: WeChat checks that this server knows the token.
pub fn verify(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let token = app.config().token.clone().ok_or(AppError::NotFound)?;
    if !signed(token.expose(), req, app.now()) {
        return Ok(Reply::text(403, "invalid signature\n"));
    }
    Ok(Reply::text(200, req.query("echostr").unwrap_or("")))
}

/// POST /wechat: a signed message or event. Its answer is chosen first
/// (`act_on` changes nothing), then recorded for its retries: a retry, on
/// this instance or another sharing the store, gets the first delivery's
/// reply and is not acted on again.
pub fn receive(app: &mut App, req: &Req) -> Step {
    let token = app.config().token.clone().ok_or(AppError::NotFound)?;
    let now = app.now();
    // The signature is checked before the body is even parsed.
    if !signed(token.expose(), req, now) {
        return Ok(Reply::text(403, "invalid signature\n").into());
    }
    let Some(msg) = Message::parse(&req.body) else {
        return Ok(Reply::text(400, "malformed message\n").into());
    };
    let key = msg.retry_key();
    let reply = act_on(app, &msg, now);
    let saved = SavedReply {
        content_type: reply
            .header("content-type")
            .unwrap_or("text/plain")
            .to_string(),
        body: reply.body.clone(),
    };
    let (kind, from) = (msg.kind(), msg.from);
    app.with_store(
        req,
        move |store, now| match store.push_reply(&key, now)? {
            Some(first) => Ok(Some(first)),
            None => store.remember_push(&key, saved, now),
        },
        move |_, first| {
            Ok(match first {
                Some(first) => {
                    log::debug(&format!("wechat: retry of {kind} from {from}"));
                    Reply::with_body(200, &first.content_type, first.body)
                }
                None => {
                    log::info(&format!("wechat: {kind} from {from}"));
                    reply
                }
            }
            .into())
        },
    )
}

/// What a push makes us do, once: here, choose the answer.
fn act_on(app: &App, msg: &Message, now: i64) -> Reply {
    let login = format!("{}/login", app.config().public_url);
    let wants_login = match (msg.msg_type.as_str(), msg.event.as_str()) {
        ("event", "subscribe") => true,
        ("text", _) => {
            ["登录", "登陆", "login"].contains(&msg.content.trim().to_lowercase().as_str())
        }
        _ => false,
    };
    if !wants_login {
        return Reply::text(200, "success");
    }
    let text = format!("欢迎！点击登录，查看你的资料：{login}");
    Reply::with_body(
        200,
        "text/xml; charset=utf-8",
        msg.text_reply(&text, now).into_bytes(),
    )
}
/// The query's signature, checked against the token (wechat/message.rs).
fn signed(token: &str, req: &Req, now: i64) -> bool {
    let (Some(signature), Some(timestamp), Some(nonce)) = (
        req.query("signature"),
        req.query("timestamp"),
        req.query("nonce"),
    ) else {
        return false;
    };
    signature_ok(token, signature, timestamp, nonce, now)
}
