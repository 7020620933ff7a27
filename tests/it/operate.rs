//! An operator acting on a running server, through the real binary: SIGHUP
//! reads WXAUTH_ALLOW again (a broken file keeps the old list), and
//! `wxauth revoke` ends every session of one user, and only of that user,
//! through the control socket. Also the store's side with Redis.

use crate::cli::{start_demo, wxauth_command, Demo};
use crate::support::Browser;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wxauth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check(demo: &Demo, browser: &mut Browser) -> u16 {
    browser.get(&format!("{}/auth/check", demo.app)).status
}

fn hup(demo: &Demo) {
    let pid = demo.child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
}

/// Waits (at most 10 s) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reads_the_allow_list_again_and_a_broken_one_keeps_the_old() {
    let dir = scratch("reload");
    let allow = dir.join("allow");
    std::fs::write(
        &allow,
        "oSim0PandaXiaoMingEmoji00001\noSim3EmptyProfileAfter202104\n",
    )
    .unwrap();
    let demo = start_demo(&[("WXAUTH_ALLOW", allow.to_str().unwrap())]);
    let (mut panda, mut other) = (demo.logged_in(0), demo.logged_in(3));
    assert_eq!(check(&demo, &mut panda), 204);
    assert_eq!(check(&demo, &mut other), 204);
    // The panda is taken off the list: refused at the next check, the other not.
    std::fs::write(&allow, "oSim3EmptyProfileAfter202104\n").unwrap();
    hup(&demo);
    eventually("the panda refused", || check(&demo, &mut panda) == 403);
    assert_eq!(check(&demo, &mut other), 204);
    assert!(demo
        .log()
        .iter()
        .any(|l| l.contains("WXAUTH_ALLOW reloaded: 1 entries")));
    // A file that cannot be read: the list read before stays, one line says why.
    std::fs::remove_file(&allow).unwrap();
    hup(&demo);
    eventually("the reason logged", || {
        demo.log().iter().any(|l| {
            l.contains("SIGHUP: WXAUTH_ALLOW") && l.contains("keeping the list read before")
        })
    });
    assert_eq!(check(&demo, &mut other), 204);
    assert_eq!(check(&demo, &mut panda), 403);
    // Still serving after both.
    assert_eq!(
        Browser::new().get(&format!("{}/healthz", demo.app)).status,
        200
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn revoke(socket: &std::path::Path, who: &str) -> (i32, String, String) {
    let out = wxauth_command()
        .args(["revoke", who])
        .env("WXAUTH_CONTROL_SOCKET", socket)
        .env("WXAUTH_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn revoke_ends_every_session_of_that_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("revoke");
    let socket = dir.join("control.sock");
    let demo = start_demo(&[("WXAUTH_CONTROL_SOCKET", socket.to_str().unwrap())]);
    // Bound once the app is built, just after the URLs are printed.
    eventually("the control socket", || socket.exists());
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the service's user may connect");
    // A second wxauth pointed at the same socket does not take it over.
    let mut second = start_demo(&[("WXAUTH_CONTROL_SOCKET", socket.to_str().unwrap())]);
    let status = crate::cli::wait_for_exit(&mut second.child);
    assert_eq!(status.code(), Some(1), "{:?}", second.log());
    assert!(
        second
            .log()
            .iter()
            .any(|l| l.contains("another wxauth answers there")),
        "{:?}",
        second.log()
    );
    // The panda on two devices, another user on a third.
    let (mut phone, mut tablet, mut other) =
        (demo.logged_in(0), demo.logged_in(0), demo.logged_in(3));
    let (code, out, err) = revoke(&socket, "oSim0PandaXiaoMingEmoji00001");
    assert_eq!((code, out.as_str()), (0, "revoked 2 sessions"), "{err}");
    assert_eq!(check(&demo, &mut phone), 401);
    assert_eq!(check(&demo, &mut tablet), 401);
    assert_eq!(check(&demo, &mut other), 204, "another user is untouched");
    // By unionid too; a user with none left: 0.
    let mut again = demo.logged_in(0);
    assert_eq!(
        revoke(&socket, "oSimUnion0PandaXiaoMing00001").1,
        "revoked 1 session"
    );
    assert_eq!(check(&demo, &mut again), 401);
    assert_eq!(revoke(&socket, "oSimNobody").1, "revoked 0 sessions");
    // Junk is refused, and the server goes on.
    let (code, _, err) = revoke(&socket, "a b");
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = revoke(&dir.join("nothing.sock"), "oSim3");
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the server"), "{err}");
    assert_eq!(check(&demo, &mut other), 204);
    drop(demo);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn revoke_without_a_socket_says_where_to_point_it() {
    let out = wxauth_command()
        .args(["revoke", "oSim0"])
        .env_remove("WXAUTH_CONTROL_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WXAUTH_CONTROL_SOCKET is unset"));
}
