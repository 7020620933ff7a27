//! The control socket: how `wxauth revoke` reaches the running server. A
//! unix socket (WXAUTH_CONTROL_SOCKET, mode 0600), not a TCP port: only the
//! service's user (and root) can connect, never another local user and
//! never the network. One line in, one line out:
//! `revoke OPENID|UNIONID` → `revoked N sessions` or `error: …`.
//!
//! The server side reads the line on its own thread and hands the work to
//! the loop as a command (`AppCommand::Revoke`), which answers on a channel.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use wxauth_app::log;
use wxauth_app::transport::listener::Commander;
use wxauth_app::web::service::AppCommand;

/// How long one client may take to send its line, and the loop to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than any openid or unionid.
const MAX_LINE: usize = 256;

/// The socket, removed when dropped (at a clean stop).
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (a stale socket left by a crash is replaced; a live one is
/// an error: another wxauth is running there), makes it 0600, and answers
/// on a thread of its own.
pub fn serve(path: &Path, commander: Commander) -> io::Result<ControlSocket> {
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another wxauth answers there",
        ));
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &commander) {
                    log::warn(&format!("control socket: {e}"));
                }
            }
        })?;
    Ok(ControlSocket {
        path: path.to_path_buf(),
    })
}

/// One client: its line, the loop's answer.
fn answer(stream: UnixStream, commander: &Commander) -> io::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take_limit()).read_line(&mut line)?;
    let reply = match parse(&line) {
        Ok(who) => {
            let (reply, answered) = mpsc::channel();
            let command = AppCommand::Revoke {
                who: who.to_string(),
                reply,
            };
            if commander.send(Box::new(command)) {
                answered
                    .recv_timeout(TIMEOUT)
                    .unwrap_or_else(|_| "error: no answer from the server in 10 s".into())
            } else {
                "error: the server is stopping".into()
            }
        }
        Err(why) => format!("error: {why}"),
    };
    (&stream).write_all(format!("{reply}\n").as_bytes())
}

/// `revoke WHO`, WHO an openid or unionid: printable ASCII, no spaces.
fn parse(line: &str) -> Result<&str, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let who = line
        .strip_prefix("revoke ")
        .ok_or("the only command is `revoke OPENID|UNIONID`")?;
    if who.is_empty() || who.len() > 128 || !who.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("not an openid or unionid".into());
    }
    Ok(who)
}

/// `wxauth revoke WHO`: asks the server at `path`, returns its answer.
pub fn revoke(path: &Path, who: &str) -> Result<String, String> {
    parse(&format!("revoke {who}"))?;
    let stream = UnixStream::connect(path)
        .map_err(|e| format!("cannot reach the server at {}: {e}", path.display()))?;
    stream
        .set_read_timeout(Some(TIMEOUT + Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    (&stream)
        .write_all(format!("revoke {who}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("no answer: {e}"))?;
    let line = line.trim().to_string();
    match line.strip_prefix("error: ") {
        Some(why) => Err(why.to_string()),
        None if line.is_empty() => Err("no answer".into()),
        None => Ok(line),
    }
}

/// A reader that gives at most `MAX_LINE` bytes: a client cannot make the
/// control thread buffer without end.
trait TakeLimit: io::Read + Sized {
    fn take_limit(self) -> io::Take<Self> {
        self.take(MAX_LINE as u64)
    }
}

impl<R: io::Read> TakeLimit for R {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_revoke_with_an_identifier_is_taken() {
        assert_eq!(parse("revoke oSim0abc\n"), Ok("oSim0abc"));
        for bad in [
            "",
            "revoke \n",
            "revoke a b\n",
            "shutdown\n",
            "revoke \u{7f}x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&format!("revoke {}", "x".repeat(129))).is_err());
    }
}
