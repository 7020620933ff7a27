//! Scan to log in on a desktop browser: the QR page, the phone's login and
//! its confirmation, the desktop's poll; and the attacks on it: a link sent
//! to a logged-in user, another phone, a replayed, tokenless or cross-site
//! POST, another browser polling, an expired ticket.

use crate::support::{attribute, start, start_real, Browser, Resp, Stack};

const DESKTOP: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36";

fn desktop() -> Browser {
    let mut browser = Browser::new();
    browser.user_agent = DESKTOP.into();
    browser
}

/// Opens /login on a desktop browser; returns the ticket and the QR's URL.
fn qr(stack: &Stack, desktop: &mut Browser) -> (String, String) {
    let page = desktop.get(&stack.url("/login?next=%2Fapi%2Fme&via=scan"));
    assert_eq!(page.status, 200, "outside WeChat /login is the QR page");
    assert!(
        page.body
            .contains("<svg class=\"qr\" role=\"img\" aria-label=\"登录二维码\""),
        "{}",
        page.body
    );
    assert!(desktop.jar.contains_key("wxauth_login"));
    let ticket = attribute(&page.body, "data-ticket");
    assert_eq!(
        ticket.len(),
        wxauth_app::store::tickets::TICKET_LEN,
        "{ticket}"
    );
    assert!(ticket.bytes().all(|b| b.is_ascii_alphanumeric()));
    let scan_url = format!("{}/login/scan?t={ticket}", stack.app_url);
    (ticket, scan_url)
}

/// The hidden token of the confirmation page's forms.
fn token_of(page: &Resp) -> String {
    let token = attribute(&page.body, "name=\"token\" value");
    assert_eq!(token.len(), 22, "{token}");
    token
}

fn status(stack: &Stack, browser: &mut Browser, ticket: &str) -> (u16, String) {
    let resp = browser.get(&stack.url(&format!("/login/ticket?t={ticket}")));
    let json: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    (
        resp.status,
        json["status"].as_str().unwrap_or("").to_string(),
    )
}

/// The phone (inside WeChat) scans and logs in as test user `user`; returns
/// the page it lands on (the confirmation page, for a phone that may confirm).
fn phone_scans(stack: &Stack, phone: &mut Browser, scan_url: &str, user: usize) -> Resp {
    let authorize = phone.get(scan_url);
    assert_eq!(authorize.status, 302, "{}", authorize.body);
    let callback = phone.consent(authorize.location(), user, true);
    let back = phone.get(&callback);
    assert_eq!(back.status, 302, "{}", back.body);
    assert!(
        back.location().starts_with("/login/scan/confirm?t="),
        "{}",
        back.location()
    );
    phone.get(&stack.url(back.location()))
}

fn decide(stack: &Stack, phone: &mut Browser, what: &str, ticket: &str, token: &str) -> Resp {
    phone.post(
        &stack.url(&format!("/login/scan/{what}")),
        &[("t", ticket), ("token", token)],
    )
}

/// The status of the phone's `decide`.
fn decided(stack: &Stack, phone: &mut Browser, what: &str, ticket: &str, token: &str) -> u16 {
    decide(stack, phone, what, ticket, token).status
}

/// A desktop showing a ticket, and a phone (test user 0) that scanned it and
/// was shown the confirmation page with its token.
struct Scanned {
    pc: Browser,
    ticket: String,
    scan_url: String,
    phone: Browser,
    token: String,
}

fn scanned(stack: &Stack) -> Scanned {
    let mut pc = desktop();
    let (ticket, scan_url) = qr(stack, &mut pc);
    let mut phone = Browser::new();
    let page = phone_scans(stack, &mut phone, &scan_url, 0);
    assert_eq!(page.status, 200, "{}", page.body);
    let token = token_of(&page);
    Scanned {
        pc,
        ticket,
        scan_url,
        phone,
        token,
    }
}

#[test]
fn a_desktop_logs_in_once_the_phone_confirms() {
    let stack = start();
    let mut pc = desktop();
    let (ticket, scan_url) = qr(&stack, &mut pc);
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "pending".into()));
    let mut phone = Browser::new();
    let page = phone_scans(&stack, &mut phone, &scan_url, 0);
    assert_eq!(page.status, 200, "{}", page.body);
    // What it is about to log in, and as whom.
    for shown in [
        "确认在电脑上登录",
        "熊猫🐼小明",
        "Chrome · Linux",
        "127.0.0.1",
        "北京时间",
        "action=\"/login/scan/confirm\"",
        "action=\"/login/scan/cancel\"",
        "确认登录",
        "取消",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "scanned".into()));
    // Nothing happens until the phone posts the form.
    assert!(!pc.jar.contains_key("wxauth_session"));
    let token = token_of(&page);
    let done = decide(&stack, &mut phone, "confirm", &ticket, &token);
    assert_eq!(done.status, 303, "{}", done.body);
    let shown = phone.get(&stack.url(done.location()));
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("已在电脑上登录"), "{}", shown.body);
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

/// The attack of issue 11: the attacker's desktop shows ticket T and sends
/// its links to a logged-in user, who opens them (a chat message is enough).
#[test]
fn links_opened_by_a_logged_in_stranger_never_log_in_the_attackers_desktop() {
    let stack = start();
    let mut attacker = desktop();
    let (ticket, scan_url) = qr(&stack, &mut attacker);
    let mut victim = Browser::new();
    assert_eq!(victim.login_as(&stack, 0).status, 302);
    // The old one-tap link is gone.
    let old = victim.get(&stack.url(&format!("/login/scan/done?t={ticket}")));
    assert_eq!(old.status, 404);
    // The confirmation page, for a phone that never scanned T: scan first.
    let confirm = victim.get(&stack.url(&format!("/login/scan/confirm?t={ticket}")));
    assert_eq!(confirm.status, 302);
    assert_eq!(confirm.location(), format!("/login/scan?t={ticket}"));
    assert_eq!(
        status(&stack, &mut attacker, &ticket),
        (200, "pending".into())
    );
    // Even followed all the way through WeChat, GETs only show the question.
    let page = phone_scans(&stack, &mut victim, &scan_url, 0);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("确认在电脑上登录"));
    for _ in 0..3 {
        let again = victim.get(&stack.url(&format!("/login/scan/confirm?t={ticket}")));
        assert_eq!(again.status, 200);
        assert!(again.body.contains("确认在电脑上登录"));
        assert_eq!(
            status(&stack, &mut victim, &ticket),
            (403, "forbidden".into())
        );
    }
    assert_eq!(
        status(&stack, &mut attacker, &ticket),
        (200, "scanned".into())
    );
    assert!(!attacker.jar.contains_key("wxauth_session"));
    assert_eq!(attacker.get(&stack.url("/api/me")).status, 401);
    // The victim says no: the attacker's page learns just that.
    let token = token_of(&page);
    assert_eq!(decided(&stack, &mut victim, "cancel", &ticket, &token), 303);
    assert_eq!(
        status(&stack, &mut attacker, &ticket),
        (200, "cancelled".into())
    );
    let page = victim.get(&stack.url(&format!("/login/scan/confirm?t={ticket}")));
    assert!(page.body.contains("已取消登录"), "{}", page.body);
    // Cancelled is final: confirming now, or scanning again, changes nothing.
    assert_eq!(
        decided(&stack, &mut victim, "confirm", &ticket, &token),
        409
    );
    assert_eq!(victim.get(&scan_url).status, 410);
    assert_eq!(
        status(&stack, &mut attacker, &ticket),
        (200, "cancelled".into())
    );
    assert_eq!(attacker.get(&stack.url("/api/me")).status, 401);
}

#[test]
fn a_phone_that_did_not_scan_the_ticket_cannot_confirm_it() {
    let stack = start();
    let Scanned {
        mut pc,
        ticket,
        scan_url,
        mut phone,
        token,
    } = scanned(&stack);
    // Another phone scans the same code: the first phone keeps it.
    let mut other = Browser::new();
    let taken = phone_scans(&stack, &mut other, &scan_url, 3);
    assert_eq!(taken.status, 409);
    assert!(
        taken.body.contains("二维码已被其他手机扫描"),
        "{}",
        taken.body
    );
    assert!(!taken.body.contains("name=\"token\""));
    // Neither it nor a phone that never scanned can use the first phone's form.
    let mut stranger = Browser::new();
    stranger.login_as(&stack, 1);
    for intruder in [&mut other, &mut stranger] {
        let resp = decide(&stack, intruder, "confirm", &ticket, &token);
        assert_eq!(resp.status, 403, "{}", resp.body);
        assert!(resp.body.contains("无法确认登录"));
    }
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "scanned".into()));
    // The phone that scanned it still can.
    assert_eq!(decided(&stack, &mut phone, "confirm", &ticket, &token), 303);
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "done".into()));
    assert!(pc
        .get(&stack.url("/api/me"))
        .body
        .contains("oSim0PandaXiaoMingEmoji00001"));
}

#[test]
fn a_post_without_the_pages_token_or_from_another_site_is_refused() {
    let stack = start();
    let Scanned {
        mut pc,
        ticket,
        scan_url: _,
        mut phone,
        token,
    } = scanned(&stack);
    let url = stack.url("/login/scan/confirm");
    for form in [
        vec![("t", ticket.as_str())],
        vec![("t", ticket.as_str()), ("token", "")],
        vec![("t", ticket.as_str()), ("token", "AAAAAAAAAAAAAAAAAAAAAA")],
    ] {
        let resp = phone.post(&url, &form);
        assert_eq!(resp.status, 403, "{form:?}");
    }
    // The right form, sent by another site's page.
    // Bytes no page of ours sends as the ticket.
    for bad in [
        "",
        "<script>",
        &"A".repeat(wxauth_app::store::tickets::TICKET_LEN),
        "é",
    ] {
        assert_eq!(
            decided(&stack, &mut phone, "confirm", bad, &token),
            410,
            "{bad}"
        );
    }
    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Origin", "null"), ("Sec-Fetch-Site", "same-site")],
    ] {
        let form = [("t", ticket.as_str()), ("token", token.as_str())];
        let resp = phone.post_with(&url, &form, &headers);
        assert_eq!(resp.status, 403, "{headers:?}");
        assert!(resp.body.contains("请求来自其他网站"), "{}", resp.body);
    }
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "scanned".into()));
    assert!(!pc.jar.contains_key("wxauth_session"));
    // A browser that says same-origin without an Origin is one of ours.
    let form = [("t", ticket.as_str()), ("token", token.as_str())];
    let same = phone.post_with(&url, &form, &[("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(same.status, 303, "{}", same.body);
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "done".into()));
}

#[test]
fn a_replayed_confirmation_gives_nothing_more() {
    let stack = start();
    let Scanned {
        mut pc,
        ticket,
        scan_url,
        mut phone,
        token,
    } = scanned(&stack);
    assert_eq!(decided(&stack, &mut phone, "confirm", &ticket, &token), 303);
    let replay = decide(&stack, &mut phone, "confirm", &ticket, &token);
    assert_eq!(replay.status, 409);
    assert!(replay.body.contains("这次登录已处理过"), "{}", replay.body);
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "done".into()));
    let sessions = stack.app.stats().sessions;
    // After the claim: the replay, a cancel, a rescan all change nothing.
    assert_eq!(decided(&stack, &mut phone, "confirm", &ticket, &token), 409);
    assert_eq!(decided(&stack, &mut phone, "cancel", &ticket, &token), 409);
    assert_eq!(phone.get(&scan_url).status, 410);
    assert_eq!(status(&stack, &mut pc, &ticket).0, 410, "dead once claimed");
    assert_eq!(stack.app.stats().sessions, sessions, "no second session");
}

#[test]
fn the_same_phone_may_scan_again_before_it_decides() {
    let stack = start();
    let mut pc = desktop();
    let (ticket, scan_url) = qr(&stack, &mut pc);
    let mut phone = Browser::new();
    let first = token_of(&phone_scans(&stack, &mut phone, &scan_url, 0));
    let second = token_of(&phone_scans(&stack, &mut phone, &scan_url, 0));
    assert_ne!(first, second, "the token follows the phone's new session");
    assert_eq!(decided(&stack, &mut phone, "confirm", &ticket, &first), 403);
    assert_eq!(
        decided(&stack, &mut phone, "confirm", &ticket, &second),
        303
    );
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "done".into()));
}

#[test]
fn the_desktop_is_shown_by_name_and_address_never_as_it_wrote_itself() {
    let stack = start();
    let mut pc = desktop();
    pc.user_agent = "<script>alert(1)</script> Windows".into();
    let page = pc.get_with(
        &stack.url("/login?via=scan"),
        &[
            ("X-Real-IP", "<b>198.51.100.9</b>"),
            ("X-Forwarded-For", "10.0.0.1, 198.51.100.7"),
        ],
    );
    let ticket = attribute(&page.body, "data-ticket");
    let mut phone = Browser::new();
    let scan_url = stack.url(&format!("/login/scan?t={ticket}"));
    let shown = phone_scans(&stack, &mut phone, &scan_url, 0);
    assert!(
        shown.body.contains("未知浏览器 · Windows"),
        "{}",
        shown.body
    );
    assert!(!shown.body.contains("script") && !shown.body.contains("<b>"));
    assert!(
        shown.body.contains(">127.0.0.1<"),
        "an unparsable address falls back to the peer: {}",
        shown.body
    );
    assert!(
        !shown.body.contains("198.51.100.7"),
        "X-Forwarded-For is not read"
    );
    // Behind our nginx (a trusted proxy), the X-Real-IP it set is the one shown.
    let page = pc.get_with(
        &stack.url("/login?via=scan"),
        &[
            ("X-Real-IP", "198.51.100.9"),
            ("X-Forwarded-For", "198.51.100.7"),
        ],
    );
    let ticket = attribute(&page.body, "data-ticket");
    let scan_url = stack.url(&format!("/login/scan?t={ticket}"));
    let shown = phone_scans(&stack, &mut Browser::new(), &scan_url, 0);
    assert!(shown.body.contains(">198.51.100.9<"), "{}", shown.body);
}

#[test]
fn a_ticket_cannot_be_claimed_by_another_browser() {
    let stack = start();
    let Scanned {
        mut pc,
        ticket,
        scan_url: _,
        mut phone,
        token,
    } = scanned(&stack);
    assert_eq!(decided(&stack, &mut phone, "confirm", &ticket, &token), 303);
    let mut thief = desktop();
    thief.get(&stack.url("/login?via=scan")); // a browser id of its own
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
    assert!(page.body.contains("二维码已失效"));
    assert_eq!(
        status(&stack, &mut pc, "NoSuchTicket0123456789abcdefABCD").0,
        410
    );
    // Scanned but never confirmed: it dies too.
    let (ticket, scan_url) = qr(&stack, &mut pc);
    let token = token_of(&phone_scans(&stack, &mut phone, &scan_url, 0));
    stack.app.clock.advance(181);
    assert_eq!(status(&stack, &mut pc, &ticket), (410, "expired".into()));
    assert_eq!(decided(&stack, &mut phone, "confirm", &ticket, &token), 410);
}

#[test]
fn a_phone_that_lost_its_session_starts_over() {
    let stack = start();
    let mut pc = desktop();
    let (ticket, _) = qr(&stack, &mut pc);
    let resp = Browser::new().get(&stack.url(&format!("/login/scan/confirm?t={ticket}")));
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), format!("/login/scan?t={ticket}"));
    assert_eq!(status(&stack, &mut pc, &ticket), (200, "pending".into()));
}

#[test]
fn demo_mode_offers_to_continue_in_this_browser_and_real_mode_does_not() {
    let stack = start();
    let mut pc = desktop();
    let page = pc.get(&stack.url("/login?via=scan"));
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
