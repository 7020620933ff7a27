//! The session file and its journal, through the real binary: a kill -9
//! loses no session and brings back no logout, a session file left behind
//! never outranks the journal after it, and a stop that cannot save says so
//! in its exit status and leaves no partial copy of the tokens.

use crate::cli::{start_demo, terminate, Demo};
use crate::support::Browser;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// The binary in demo mode with a session file (`cli::start_demo`), killed
/// when the test ends however it ends.
struct Server {
    demo: Demo,
    app: String,
}

impl Server {
    /// Starts the binary with WXAUTH_SESSION_FILE=`file`, once it has said
    /// where the app and the simulator are.
    fn start(file: &Path) -> Server {
        let demo = start_demo(&[("WXAUTH_SESSION_FILE", file.to_str().unwrap())]);
        let app = demo.app.clone();
        Server { demo, app }
    }

    fn log(&self) -> Vec<String> {
        self.demo.log()
    }

    /// A browser logged in here as test user `user`.
    fn logged_in(&self, user: usize) -> Browser {
        self.demo.logged_in(user)
    }

    /// /api/me's status for this browser: 200 logged in, 401 not.
    fn me(&self, browser: &mut Browser) -> u16 {
        browser.get(&format!("{}/api/me", self.app)).status
    }

    /// kill -9, and the exit.
    fn kill(mut self) {
        self.demo.child.0.kill().expect("kill -9");
        self.demo.child.0.wait().expect("wait");
    }

    /// SIGTERM, and the exit status (within 10 s).
    fn stop(&mut self) -> ExitStatus {
        terminate(&mut self.demo.child)
    }
}

/// A fresh directory for one test, and the session file's path in it.
fn session_file(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("wxauth-durable-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessions.json");
    (dir, file)
}

fn journal_of(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", file.display()))
}

/// Longer than the journal takes to make a change durable (100 ms).
fn let_the_journal_sync() {
    std::thread::sleep(Duration::from_millis(400));
}

#[test]
fn a_kill_9_loses_no_session_and_brings_back_no_logout() {
    let (dir, file) = session_file("kill");
    let first = Server::start(&file);
    let mut kept = first.logged_in(0);
    let mut logged_out = first.logged_in(3);
    let stale = logged_out.jar["wxauth_session"].clone();
    logged_out.post(&format!("{}/logout", first.app), &[]);
    let_the_journal_sync();
    first.kill();

    let second = Server::start(&file);
    assert_eq!(second.me(&mut kept), 200, "the session survived kill -9");
    logged_out.jar.insert("wxauth_session".into(), stale);
    assert_eq!(
        second.me(&mut logged_out),
        401,
        "the logout survived kill -9"
    );
    assert!(
        second
            .log()
            .iter()
            .any(|l| l.contains("restored 1 session from") && l.contains(".journal")),
        "{:?}",
        second.log()
    );
    let mode = std::fs::metadata(journal_of(&file))
        .expect("a journal beside the file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "it holds tokens");
    // And once more: what the second process restored is in its own journal.
    second.kill();
    let third = Server::start(&file);
    assert_eq!(third.me(&mut kept), 200);
    assert_eq!(third.me(&mut logged_out), 401);
    drop(third);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_session_file_left_behind_never_brings_back_a_logout() {
    let (dir, file) = session_file("left");
    let mut first = Server::start(&file);
    let mut stays = first.logged_in(0);
    let mut leaves = first.logged_in(3);
    assert_eq!(first.stop().code(), Some(0));
    // What a start that could not remove the file after reading it would leave.
    let left_behind = std::fs::read(&file).expect("saved at the stop");

    let second = Server::start(&file);
    let sid = leaves.jar["wxauth_session"].clone();
    leaves.post(&format!("{}/logout", second.app), &[]);
    // Answered after the start-up: the file was read by then.
    assert!(!file.exists(), "the file is consumed at start");
    let_the_journal_sync();
    second.kill();
    std::fs::write(&file, left_behind).unwrap();

    let third = Server::start(&file);
    leaves.jar.insert("wxauth_session".into(), sid);
    assert_eq!(third.me(&mut leaves), 401, "the logout stays a logout");
    assert_eq!(third.me(&mut stays), 200, "the other session stays");
    drop(third);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_stop_that_cannot_save_exits_non_zero_and_leaves_no_partial_file() {
    let (dir, file) = session_file("nosave");
    let temp = dir.join(".sessions.json.tmp");
    // First the rename fails (a directory where the file goes): the temp
    // file was written whole, tokens and all, and must go. Then the temp
    // file cannot even be created (a directory in its place).
    for (obstacle, what) in [(&file, "the file"), (&temp, "the temp file")] {
        let mut server = Server::start(&file);
        let mut browser = server.logged_in(0);
        std::fs::create_dir_all(obstacle.join("in-the-way")).unwrap();
        let status = server.stop();
        assert_eq!(status.code(), Some(1), "{what}: {:?}", server.log());
        let complaints: Vec<String> = server
            .log()
            .into_iter()
            .filter(|l| l.starts_with("stderr: "))
            .collect();
        assert_eq!(complaints.len(), 1, "one line: {complaints:?}");
        assert!(
            complaints[0].contains("cannot save sessions to"),
            "{complaints:?}"
        );
        assert!(!temp.is_file(), "{what}: no partial copy of the tokens");
        assert!(!file.is_file());
        std::fs::remove_dir_all(obstacle).unwrap();
        // The journal still holds them: the next start loses nothing.
        let again = Server::start(&file);
        assert_eq!(again.me(&mut browser), 200, "{what}");
        drop(again);
    }
    std::fs::remove_dir_all(&dir).ok();
}
