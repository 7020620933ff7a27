//! A real redis-server (Debian's) for the tests, on a free loopback port,
//! with no persistence, in a directory of its own; stopped (and its
//! directory removed) when dropped. Without redis-server the tests that
//! need it are skipped, unless WXAUTH_REDIS_TESTS=1 (CI) makes that a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    /// Persistence: none, or an append-only file written at every command.
    durable: bool,
    child: Option<Child>,
}

/// A redis-server, or None (and a note) when the machine has none and CI
/// did not ask for it.
pub fn redis_server() -> Option<RedisServer> {
    start_server(false)
}

/// One that keeps what it was told across a kill (appendfsync always).
pub fn durable_redis_server() -> Option<RedisServer> {
    start_server(true)
}

fn start_server(durable: bool) -> Option<RedisServer> {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("WXAUTH_REDIS_TESTS").as_deref() != Ok("1"),
            "WXAUTH_REDIS_TESTS=1 but redis-server is not installed (apt-get install redis-server)"
        );
        eprintln!("redis-server not installed: skipping");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = std::env::temp_dir().join(format!("wxauth-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for redis");
    let mut server = RedisServer {
        port,
        dir,
        durable,
        child: None,
    };
    server.start();
    Some(server)
}

impl RedisServer {
    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again) on its port and waits until it answers PING.
    pub fn start(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(match self.durable {
                true => ["--appendonly", "yes", "--appendfsync", "always"],
                false => ["--appendonly", "no", "--appendfsync", "no"],
            })
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL: no goodbye to its clients) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One command over RESP, its first line of answer (`+PONG`, `$12`, …)
    /// or for a bulk string its value; None when the server is not there.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = format!("*{}\r\n", args.len());
        for arg in args {
            out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(out.as_bytes()).ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 65536];
        // A bulk answer may come in pieces: read until its length is in.
        loop {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            let Some((head, rest)) = text.split_once("\r\n") else {
                continue;
            };
            match head.strip_prefix('$').map(|l| l.parse::<i64>()) {
                Some(Ok(len)) if len >= 0 && rest.len() < len as usize + 2 => continue,
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, rest) = text.split_once("\r\n")?;
        Some(match head.strip_prefix('$') {
            Some(len) if len != "-1" => rest.trim_end_matches("\r\n").to_string(),
            _ => head.to_string(),
        })
    }

    /// Every key, and its value when it is a string (for "no token in the clear").
    pub fn dump(&self) -> String {
        let mut all = String::new();
        let keys = self.keys();
        for key in keys {
            all.push_str(&key);
            all.push('=');
            all.push_str(&self.command(&["GET", &key]).unwrap_or_default());
            all.push('\n');
        }
        all
    }

    /// Every key (KEYS *: a test database is small).
    pub fn keys(&self) -> Vec<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("redis is up");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("a timeout");
        stream
            .write_all(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n")
            .expect("write");
        let mut answer = Vec::new();
        let mut buf = [0u8; 65536];
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(n) = stream.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answer)
            .split("\r\n")
            .skip(1)
            .filter(|l| !l.starts_with('$') && !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
