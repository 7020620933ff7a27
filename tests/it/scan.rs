//! Scan to log in on a desktop browser: the QR page, the phone's login, the
//! desktop's poll, and tickets that expire, are used once, and belong to the
//! browser that asked for them.

use crate::support::{start, start_real, Browser, Stack};

const DESKTOP: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36";

fn desktop() -> Browser {
    let mut browser = Browser::new();
    browser.user_agent = DESKTOP.into();
    browser
}

/// Opens /login on a desktop browser; returns the ticket and the QR's URL.
fn qr(stack: &Stack, desktop: &mut Browser) -> (String, String) {
    let page = desktop.get(&stack.url("/login?next=%2Fapi%2Fme"));
    assert_eq!(page.status, 200, "outside WeChat /login is the QR page");
    assert!(
        page.body
            .contains("<svg class=\"qr\" role=\"img\" aria-label=\"登录二维码\""),
        "{}",
        page.body
    );
    assert!(desktop.jar.contains_key("wxauth_login"));
    let ticket = page
        .body
        .split("data-ticket=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(ticket.len() >= 22 && ticket.bytes().all(|b| b.is_ascii_alphanumeric()));
    let scan_url = format!("{}/login/scan?t={ticket}", stack.app_url);
    (ticket, scan_url)
}

fn status(stack: &Stack, browser: &mut Browser, ticket: &str) -> (u16, String) {
    let resp = browser.get(&stack.url(&format!("/login/ticket?t={ticket}")));
    let json: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    (
        resp.status,
        json["status"].as_str().unwrap_or("").to_string(),
    )
}

/// The phone (inside WeChat) scans and logs in as test user `user`.
fn phone_scans(
    stack: &Stack,
    phone: &mut Browser,
    scan_url: &str,
    user: usize,
) -> crate::support::Resp {
    let authorize = phone.get(scan_url);
    assert_eq!(authorize.status, 302, "{}", authorize.body);
    let callback = phone.consent(authorize.location(), user, true);
    let back = phone.get(&callback);
    assert_eq!(back.status, 302);
    assert!(
        back.location().starts_with("/login/scan/done?t="),
        "{}",
        back.location()
    );
    phone.get(&stack.url(back.location()))
}

#[test]
fn a_desktop_logs_in_by_scanning_with_a_phone() {
    let stack = start();
    let mut pc = desktop();
    let (ticket, scan_url) = qr(&stack, &mut pc);
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "pending".into()));
    let mut phone = Browser::new();
    let done = phone_scans(&stack, &mut phone, &scan_url, 0);
    assert_eq!(done.status, 200);
    assert!(done.body.contains("已在电脑上登录"), "{}", done.body);
    // The desktop's next poll brings its own session.
    let claim = pc.get(&stack.url(&format!("/login/ticket?t={ticket}")));
    assert_eq!(claim.status, 200);
    assert!(
        claim.body.contains("\"status\":\"done\"") && claim.body.contains("\"next\":\"/api/me\""),
        "{}",
        claim.body
    );
    let pc_session = pc.jar["wxauth_session"].clone();
    assert_ne!(
        pc_session, phone.jar["wxauth_session"],
        "a session of its own"
    );
    let me = pc.get(&stack.url("/api/me"));
    assert_eq!(me.status, 200);
    assert!(me.body.contains("oSim0PandaXiaoMingEmoji00001"));
    // Used once: asking again finds nothing.
    assert_eq!(status(&stack, &mut pc, &ticket).0, 410);
    // The phone stays logged in too; logging out on one leaves the other.
    phone.post(&stack.url("/logout"), &[]);
    assert_eq!(pc.get(&stack.url("/api/me")).status, 200);
}

#[test]
fn the_desktop_sees_the_scan_before_the_phone_confirms() {
    let stack = start();
    let mut pc = desktop();
    let (ticket, scan_url) = qr(&stack, &mut pc);
    let mut phone = Browser::new();
    assert_eq!(phone.get(&scan_url).status, 302);
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "scanned".into()));
}

#[test]
fn a_ticket_cannot_be_claimed_by_another_browser() {
    let stack = start();
    let mut pc = desktop();
    let (ticket, scan_url) = qr(&stack, &mut pc);
    let mut phone = Browser::new();
    phone_scans(&stack, &mut phone, &scan_url, 0);
    let mut thief = desktop();
    thief.get(&stack.url("/login")); // a browser id of its own
    assert_eq!(
        status(&stack, &mut thief, &ticket),
        (403, "forbidden".into())
    );
    assert_eq!(
        status(&stack, &mut phone, &ticket),
        (403, "forbidden".into())
    );
    assert!(!thief.jar.contains_key("wxauth_session"));
    // The rightful browser still gets it.
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "done".into()));
}

#[test]
fn tickets_expire_after_two_minutes() {
    let stack = start();
    let mut pc = desktop();
    let (ticket, scan_url) = qr(&stack, &mut pc);
    stack.app.clock.advance(121);
    assert_eq!(status(&stack, &mut pc, &ticket), (410, "expired".into()));
    let mut phone = Browser::new();
    let page = phone.get(&scan_url);
    assert_eq!(page.status, 410);
    assert!(page.body.contains("二维码已过期"));
    assert_eq!(
        status(&stack, &mut pc, "NoSuchTicket0123456789abcdefABCD").0,
        410
    );
}

#[test]
fn a_phone_that_lost_its_session_starts_over() {
    let stack = start();
    let mut pc = desktop();
    let (ticket, _) = qr(&stack, &mut pc);
    let resp = Browser::new().get(&stack.url(&format!("/login/scan/done?t={ticket}")));
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), format!("/login/scan?t={ticket}"));
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "pending".into()));
}

#[test]
fn demo_mode_offers_to_continue_in_this_browser_and_real_mode_does_not() {
    let stack = start();
    let mut pc = desktop();
    let page = pc.get(&stack.url("/login"));
    assert!(page.body.contains("在本浏览器中继续"));
    let direct = pc.get(&stack.url("/login?next=%2Fprofile&direct=1"));
    assert_eq!(direct.status, 302);
    assert!(direct
        .location()
        .starts_with(&format!("{}/connect/oauth2/authorize?", stack.sim_url)));
    let real = start_real(&[]);
    let page = desktop().get(&real.url("/login"));
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("在本浏览器中继续"));
    assert!(page.body.contains("<svg class=\"qr\""));
}
