//! Why a request failed. Handlers return `AppError`; `app.rs` is the one
//! place that logs it (once) and turns it into a status and the error page
//! (or JSON under /api/). The Chinese text lives in templates/error.html.

use crate::transport::http::encode_component;
use crate::wechat::client::WechatError;

/// A failed request.
#[derive(Debug)]
pub enum AppError {
    /// 400: a request we cannot make sense of.
    BadRequest,
    /// 400: the OAuth state is missing, unknown, expired, reused or from another browser.
    BadState,
    /// 400: a callback that failed on a host other than the site's: the
    /// login began at another address, whose cookie this host never sees.
    /// `site` is the URL to open the site at.
    WrongHost { site: String },
    /// 403: the user pressed 拒绝 on WeChat's consent page.
    Declined { next: String },
    /// 403: a Moments snapshot-page user (WeChat's virtual account).
    Snapshot { next: String },
    /// 404.
    NotFound,
    /// 405, with the methods the path does take.
    MethodNotAllowed { allow: String },
    /// 413, 414 or 431: a request over the size limits (transport/limits.rs).
    TooLarge(u16),
    /// 403 from the gateway: logged in, but not on WXAUTH_ALLOW.
    NotAllowed { openid: String },
    /// 403: a POST whose Origin (or Sec-Fetch-Site) says another site sent it.
    CrossSite,
    /// 502, or 504 for a timeout: WeChat failed or answered an errcode.
    Upstream { error: WechatError, next: String },
    /// 503: too many calls to WeChat under way (or stopping); try again shortly.
    Busy,
    /// 503: the shared store (Redis) does not answer. The detail is logged,
    /// never shown; nothing is concluded from it (no one is logged out).
    StoreDown(String),
    /// 500: a bug or a broken template. The detail is logged, never shown.
    Internal(String),
}

impl AppError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AppError::BadRequest | AppError::BadState | AppError::WrongHost { .. } => 400,
            AppError::Declined { .. }
            | AppError::Snapshot { .. }
            | AppError::NotAllowed { .. }
            | AppError::CrossSite => 403,
            AppError::NotFound => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::TooLarge(status) => *status,
            AppError::Upstream {
                error: WechatError::Timeout,
                ..
            } => 504,
            AppError::Upstream { .. } => 502,
            AppError::Busy | AppError::StoreDown(_) => 503,
            AppError::Internal(_) => 500,
        }
    }

    /// The `kind` error.html switches on.
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::BadRequest => "bad_request",
            AppError::BadState => "bad_state",
            AppError::WrongHost { .. } => "wrong_host",
            AppError::Declined { .. } => "declined",
            AppError::Snapshot { .. } => "snapshot",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::TooLarge(_) => "too_large",
            AppError::NotAllowed { .. } => "not_allowed",
            AppError::CrossSite => "cross_site",
            AppError::Upstream {
                error: WechatError::Api { .. },
                ..
            } => "wechat_error",
            AppError::Upstream {
                error: WechatError::Timeout,
                ..
            } => "upstream_timeout",
            AppError::Upstream {
                error: WechatError::BadIdentity(_),
                ..
            } => "bad_identity",
            AppError::Upstream { .. } => "upstream_error",
            AppError::Busy => "busy",
            AppError::StoreDown(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// Where the page's one button goes: a new login that returns to where the
    /// user was headed, or home; `base` is the site's path prefix.
    pub fn retry_url(&self, base: &str) -> String {
        match self {
            AppError::Declined { next }
            | AppError::Snapshot { next }
            | AppError::Upstream { next, .. } => login_url(base, next),
            AppError::BadState => format!("{base}/login"),
            // On this host the login cannot succeed: the site's own address.
            AppError::WrongHost { site } => format!("{site}/"),
            _ => format!("{base}/"),
        }
    }
}

/// `BASE/login`, carrying `next` when there is one.
pub fn login_url(base: &str, next: &str) -> String {
    if next.is_empty() {
        format!("{base}/login")
    } else {
        format!("{base}/login?next={}", encode_component(next))
    }
}
