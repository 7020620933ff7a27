//! The Official Account's message endpoint, `/wechat`, answered only when
//! WXAUTH_TOKEN is set: WeChat's server verification (GET) and the signed
//! XML it pushes for messages and events (POST), in plaintext, or encrypted
//! in safe and compat mode (docs/wechat.md §10). A subscribe or a "登录"
//! message is answered with the login link; anything else with `success`.
//! WeChat retries a push it got no answer to, three times: a retry gets the
//! very reply the first delivery got (the login link is most needed exactly
//! when the first answer was lost), and is acted on once.

use crate::config::{MessageEndpoint, MsgMode};
use crate::log;
use crate::metrics;
use crate::random;
use crate::store::backend::SavedReply;
use crate::transport::http::{Reply, Req};
use crate::web::app::{App, Step};
use crate::web::error::AppError;
use crate::wechat::encryption::{open, seal_reply, MessageKey, Refusal, Signed};
use crate::wechat::message::{fields, signature_ok, Message};

/// GET /wechat: WeChat checks that this server knows the token. The same in
/// every mode: an Official Account's echostr is never encrypted.
pub fn verify(app: &mut App, req: &Req) -> Result<Reply, AppError> {
    let endpoint = app.config().endpoint.clone().ok_or(AppError::NotFound)?;
    if !signed(endpoint.token.expose(), req, app.now()) {
        return Ok(Reply::text(403, "invalid signature\n"));
    }
    Ok(Reply::text(200, req.query("echostr").unwrap_or("")))
}

/// POST /wechat: a signed message or event. Its answer is chosen first
/// (`act_on` changes nothing), then recorded for its retries: a retry, on
/// this instance or another sharing the store, gets the first delivery's
/// reply and is not acted on again. The record holds the reply before
/// encryption; each delivery of an encrypted push seals it afresh.
pub fn receive(app: &mut App, req: &Req) -> Step {
    let now = app.now();
    let endpoint = app.config().endpoint.as_ref().ok_or(AppError::NotFound)?;
    // The signature is checked before the body is even parsed.
    if !signed(endpoint.token.expose(), req, now) {
        metrics::push_refused("signature");
        return Ok(Reply::text(403, "invalid signature\n").into());
    }
    let read = read(endpoint, app.message_keys(), &app.config().appid, req);
    let (msg, sealing) = match read {
        Ok(push) => push,
        Err(refused) => {
            log::warn(&format!("wechat: push refused: {}", refused.reason));
            metrics::push_refused(refused.metric);
            return Ok(Reply::text(refused.status, refused.body).into());
        }
    };
    let key = msg.retry_key();
    let metric_kind = match msg.msg_type.as_str() {
        "event" => msg.event.clone(),
        other => other.to_string(),
    };
    let reply = act_on(app, &msg, now);
    let saved = SavedReply {
        content_type: reply
            .header("content-type")
            .unwrap_or("text/plain")
            .to_string(),
        body: reply.body,
    };
    let kind = match sealing {
        Some(_) => format!("{} (encrypted)", msg.kind()),
        None => msg.kind(),
    };
    let from = msg.from;
    let first_delivery = saved.clone();
    app.with_store(
        req,
        move |store, now| match store.push_reply(&key, now)? {
            Some(first) => Ok(Some(first)),
            None => store.remember_push(&key, saved, now),
        },
        move |app, first| {
            let answer = match first {
                Some(first) => {
                    log::debug(&format!("wechat: retry of {kind} from {from}"));
                    first
                }
                None => {
                    log::info(&format!("wechat: {kind} from {from}"));
                    metrics::push_acted(&metric_kind);
                    first_delivery
                }
            };
            Ok(deliver(answer, sealing.as_ref(), app.now()).into())
        },
    )
}

/// How an encrypted push's reply is sealed: with the key that opened it.
struct Sealing {
    key: MessageKey,
    token: String,
    appid: String,
}

/// A push refused: what WeChat is answered, and why, for the log.
struct Refused {
    status: u16,
    body: &'static str,
    reason: String,
    /// Its reason in the metrics (metrics::PUSH_REFUSALS).
    metric: &'static str,
}

/// A push refused as malformed; `counted_as` gives another reason.
fn refused(status: u16, body: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        status,
        body,
        reason: reason.into(),
        metric: "malformed",
    }
}

impl Refused {
    fn counted_as(mut self, metric: &'static str) -> Refused {
        self.metric = metric;
        self
    }
}

/// The push in the body, as the mode takes it: the message, and for an
/// encrypted push how to seal its reply. Encrypted means `encrypt_type=aes`
/// or an Encrypt element; compat mode's body carries the plaintext fields
/// too, and only the encrypted copy is read.
fn read(
    endpoint: &MessageEndpoint,
    keys: &[MessageKey],
    appid: &str,
    req: &Req,
) -> Result<(Message, Option<Sealing>), Refused> {
    let mut body = fields(&req.body).ok_or_else(|| {
        refused(
            400,
            "malformed message\n",
            "body is not WeChat's XML (<xml><Field>…</Field></xml>)",
        )
    })?;
    let encrypt = body.remove("Encrypt");
    let encrypted = match req.query("encrypt_type") {
        None | Some("") | Some("raw") => encrypt.is_some(),
        Some("aes") => true,
        Some(other) => {
            return Err(refused(
                400,
                "unknown encrypt_type\n",
                format!("encrypt_type={other:?}: only aes is WeChat's"),
            ))
        }
    };
    if !encrypted {
        if endpoint.mode == MsgMode::Safe {
            return Err(refused(
                400,
                "plaintext push refused\n",
                "plaintext push, and WXAUTH_MSG_MODE=safe takes encrypted pushes only (is the \
                 console still on 明文模式?)",
            )
            .counted_as("plaintext_in_safe_mode"));
        }
        let msg = Message::from_fields(body).ok_or_else(|| {
            refused(
                400,
                "malformed message\n",
                "no ToUserName, FromUserName or MsgType",
            )
        })?;
        return Ok((msg, None));
    }
    if endpoint.mode == MsgMode::Plain {
        // Compat mode's body still carries the plaintext fields, and WeChat
        // takes a plaintext reply to it; safe mode's carries none.
        if let Some(msg) = Message::from_fields(body) {
            log::debug(
                "wechat: the push is encrypted too (兼容模式); answered in plaintext, as \
                 WXAUTH_MSG_MODE=plain: set WXAUTH_ENCODING_AES_KEY to answer encrypted",
            );
            return Ok((msg, None));
        }
        let why = if endpoint.aes_keys.is_empty() {
            "no WXAUTH_ENCODING_AES_KEY is set"
        } else {
            "WXAUTH_MSG_MODE=plain"
        };
        return Err(refused(
            400,
            "encrypted push refused\n",
            format!(
                "encrypted push (the console is on 安全模式), and {why}: set \
                 WXAUTH_ENCODING_AES_KEY to the console's EncodingAESKey"
            ),
        )
        .counted_as("decrypt"));
    }
    let encrypt = encrypt.ok_or_else(|| {
        refused(
            400,
            "malformed message\n",
            "encrypt_type=aes but no Encrypt element",
        )
    })?;
    let token = endpoint.token.expose();
    let signed = Signed {
        token,
        timestamp: req.query("timestamp").unwrap_or(""),
        nonce: req.query("nonce").unwrap_or(""),
        msg_signature: req.query("msg_signature").unwrap_or(""),
    };
    let (xml, which) = open(keys, appid, &signed, &encrypt).map_err(|refusal| {
        let (status, body, metric) = match refusal {
            Refusal::MsgSignature => (403, "invalid msg_signature\n", "msg_signature"),
            Refusal::AppId { .. } => (400, "cannot decrypt\n", "appid"),
            _ => (400, "cannot decrypt\n", "decrypt"),
        };
        refused(status, body, format!("encrypted push: {refusal}")).counted_as(metric)
    })?;
    if which > 0 {
        log::debug("wechat: the push opened with WXAUTH_ENCODING_AES_KEY_PREV");
    }
    let msg = Message::parse(&xml).ok_or_else(|| {
        refused(
            400,
            "malformed message\n",
            "encrypted push: the decrypted message is not a push",
        )
    })?;
    let sealing = Sealing {
        key: keys[which].clone(),
        token: token.to_string(),
        appid: appid.to_string(),
    };
    Ok((msg, Some(sealing)))
}

/// The answer as sent: an XML reply to an encrypted push is sealed in
/// WeChat's envelope, with fresh random bytes and nonce, TimeStamp in
/// seconds; `success` (nothing to say) stays as it is in every mode.
fn deliver(answer: SavedReply, sealing: Option<&Sealing>, now: i64) -> Reply {
    let xml = std::str::from_utf8(&answer.body)
        .ok()
        .filter(|body| body.starts_with("<xml>"));
    match (sealing, xml) {
        (Some(s), Some(xml)) => {
            let sealed = seal_reply(
                &s.key,
                &s.token,
                &s.appid,
                xml,
                now,
                &random::digits_nonce(),
                random::bytes(),
            );
            Reply::with_body(200, "text/xml; charset=utf-8", sealed.into_bytes())
        }
        _ => Reply::with_body(200, &answer.content_type, answer.body),
    }
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
