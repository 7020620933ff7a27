//! Every URL the app answers, in one table, and the dispatch over it:
//! 404 for an unknown path, 405 with `Allow` for a known path and the wrong
//! method, 403 for a POST another site sent.

use crate::log;
use crate::metrics;
use crate::transport::http::{Method, Reply, Req};
use crate::transport::service::Outcome;
use crate::web::app::{App, Step};
use crate::web::assets;
use crate::web::error::AppError;
use crate::web::handlers::{gateway, json, jssdk, login, profile, scan, wechat_endpoint};
use std::sync::OnceLock;

/// A handler: parse, check, change state, reply.
pub enum Handler {
    /// Answers at once from the app's state.
    Now(fn(&mut App, &Req) -> Result<Reply, AppError>),
    /// May need a worker: a call to WeChat (`App::call`), or a store outside
    /// the process (`App::with_store`); the loop finishes the request when
    /// it comes back. With the memory store and no call, it answers at once.
    Calls(fn(&mut App, &Req) -> Step),
}
use Handler::{Calls, Now};

/// The routes. `/static/...` is matched before this table.
pub const ROUTES: &[(Method, &str, Handler)] = &[
    (Method::Get, "/", Calls(profile::home)),
    (Method::Get, "/login", Calls(login::login)),
    (Method::Get, "/login/scan", Calls(scan::phone_scanned)),
    (
        Method::Get,
        "/login/scan/confirm",
        Calls(scan::phone_confirm_page),
    ),
    (
        Method::Post,
        "/login/scan/confirm",
        Calls(scan::phone_confirms),
    ),
    (
        Method::Post,
        "/login/scan/cancel",
        Calls(scan::phone_cancels),
    ),
    (Method::Get, "/login/ticket", Calls(scan::desktop_poll)),
    (Method::Get, "/callback", Calls(login::callback)),
    (Method::Get, "/profile", Calls(profile::profile)),
    (
        Method::Post,
        "/profile/refresh",
        Calls(profile::profile_refresh),
    ),
    (Method::Post, "/logout", Calls(login::logout)),
    (Method::Get, "/api/me", Calls(json::me)),
    (Method::Get, "/healthz", Calls(json::healthz)),
    // The gateway for nginx's auth_request (scripts/nginx-gateway.conf).
    (Method::Get, "/auth/check", Calls(gateway::check)),
    (Method::Get, "/auth/start", Now(gateway::start)),
    (Method::Get, "/auth/denied", Calls(gateway::denied)),
    // wx.config for the account's pages (JS-SDK).
    (Method::Get, "/jssdk/config", Calls(jssdk::config)),
    // Demo mode only: wxauth-jssdk.js on a page, against the simulator.
    (Method::Get, "/jssdk/example", Now(jssdk::example)),
    // Only when WXAUTH_TOKEN is set; 404 otherwise.
    (Method::Get, "/wechat", Now(wechat_endpoint::verify)),
    (Method::Post, "/wechat", Calls(wechat_endpoint::receive)),
];

/// POST routes other sites may call: WeChat's server pushes, which carry no
/// browser's cookies and are authenticated by their signature (handlers/wechat_endpoint.rs).
const SERVER_TO_SERVER: &[&str] = &["/wechat"];

/// The routes' paths, in the table's order (a path may come twice, once a
/// method): the metrics count requests by them (metrics.rs).
pub fn paths() -> &'static [&'static str] {
    static PATHS: OnceLock<Vec<&'static str>> = OnceLock::new();
    PATHS.get_or_init(|| ROUTES.iter().map(|(_, path, _)| *path).collect())
}

/// Which route a request's path is, for the metrics: its first index in
/// `ROUTES`, `metrics::STATIC` for an asset, `metrics::OTHER` for anything
/// else (never a name taken from the request).
pub fn metric_route(app: &App, path: &str) -> usize {
    let local = match app.local_path(path) {
        Some(local) => local,
        None if path == "/healthz" => path,
        None => return metrics::OTHER,
    };
    if local.starts_with("/static/") {
        return metrics::STATIC;
    }
    ROUTES
        .iter()
        .position(|(_, route, _)| *route == local)
        .unwrap_or(metrics::OTHER)
}

/// True when `path` is one of the app's routes or assets (at the root).
pub fn is_route(path: &str) -> bool {
    path.starts_with("/static/") || ROUTES.iter().any(|(_, p, _)| *p == path)
}

/// Finds the handler for `req` and runs it. HEAD is served as GET (tiny_http drops the body).
///
/// With a path prefix (PUBLIC_URL `https://example.com/wx`) every route is
/// served under it (`/wx/login`), the prefix itself is sent to `/wx/`, and
/// anything else is 404 but `/healthz`, which monitors on the machine ask
/// at the root.
pub fn dispatch(app: &mut App, req: &Req) -> Step {
    let method = match req.method {
        Method::Head => Method::Get,
        m => m,
    };
    let path = match app.local_path(&req.path) {
        Some("") => return Ok(Reply::redirect(302, &app.path("/")).into()),
        Some(path) => path,
        None if req.path == "/healthz" => "/healthz",
        None => {
            outside_prefix(app, &req.path);
            return Err(AppError::NotFound);
        }
    };
    if let Some(name) = path.strip_prefix("/static/") {
        let (content_type, bytes) = assets::find(name).ok_or(AppError::NotFound)?;
        if method != Method::Get {
            return Err(AppError::MethodNotAllowed {
                allow: "GET, HEAD".into(),
            });
        }
        return Ok(Reply::with_body(200, content_type, bytes.to_vec()).into());
    }
    let mut allowed = Vec::new();
    for (route_method, route, handler) in ROUTES {
        if *route == path {
            if *route_method == method {
                if method == Method::Post && !SERVER_TO_SERVER.contains(route) {
                    same_origin(app, req)?;
                }
                return match handler {
                    Now(handler) => handler(app, req).map(Outcome::Reply),
                    Calls(handler) => handler(app, req),
                };
            }
            allowed.push(route_method.as_str());
            if *route_method == Method::Get {
                allowed.push("HEAD");
            }
        }
    }
    if allowed.is_empty() {
        Err(AppError::NotFound)
    } else {
        Err(AppError::MethodNotAllowed {
            allow: allowed.join(", "),
        })
    }
}

/// Refuses a POST another site made a browser send. `Origin` must be the
/// site's origin: the public URL's, or in demo mode the host the browser
/// used when the demo listens there (site.rs; never just any Host, which a
/// DNS name rebound to us would bring along). A browser that writes `Origin: null` (privacy
/// contexts, redirects) or none is judged by `Sec-Fetch-Site`, which must say
/// same-origin. With neither header the client is not a browser (curl, a
/// script): allowed, as every browser in use sends one of the two on a
/// cross-site POST, and SameSite=Lax keeps our cookies off such a POST anyway.
fn same_origin(app: &App, req: &Req) -> Result<(), AppError> {
    let fetch_site = req.header("sec-fetch-site");
    match req.header("origin").map(str::trim) {
        Some(origin) if origin != "null" => {
            if origin.to_ascii_lowercase() == app.site().origin() {
                return Ok(());
            }
            Err(AppError::CrossSite)
        }
        _ => match fetch_site {
            Some("same-origin") => Ok(()),
            None if req.header("origin").is_none() => Ok(()),
            _ => Err(AppError::CrossSite),
        },
    }
}

/// Logs, once, a request for one of our routes without the prefix: the
/// proxy in front most likely strips it (`proxy_pass` with a URI part).
fn outside_prefix(app: &mut App, path: &str) {
    if !is_route(path) || !app.first_outside_prefix() {
        return;
    }
    log::warn(&format!(
        "{path}: outside {prefix}, the path of WXAUTH_PUBLIC_URL, where wxauth serves \
         its pages; a proxy in front must pass the path as it is (nginx: `proxy_pass \
         http://127.0.0.1:8080;` with no path after the address)",
        prefix = app.config().prefix
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_counter_of_its_own() {
        assert!(
            ROUTES.len() <= metrics::MAX_ROUTES,
            "raise metrics::MAX_ROUTES"
        );
        assert_eq!(paths().len(), ROUTES.len());
    }
}
