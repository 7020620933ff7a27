//! The HTTP layer, over raw sockets: every request a client can send gets a
//! correct answer, and nothing it sends makes the server deaf. One test per
//! kind of request (SECURITY.md lists them); every read has a deadline, every
//! answer is checked by its exact status line, and after each attack the
//! server still answers and a session made before still works.

use crate::adversarial::{stack_with_victim, still_fine};
use crate::support::{start_with, url_param, Browser, Stack};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The longest any one connect, read or write may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// How soon a client must be served that a stalled or idle one would hold
/// up until its timeout (10 s by default, 30 s where a test says so): far
/// inside either, with room for a loaded 2-core CI.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A raw client connection that keeps what it read past one answer, so
/// pipelined answers are read one by one.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One answer off the wire.
struct Answer {
    /// The status line, e.g. "HTTP/1.1 200 OK".
    status: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(200).collect();
        write!(f, "{} {:?} {body:?}", self.status, self.headers)
    }
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect on loopback");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends bytes. A failed write is not the test's business: the answer
    /// (or its absence) is.
    fn send(&mut self, bytes: &[u8]) -> &mut Raw {
        let _ = self.stream.write_all(bytes);
        self
    }

    /// Reads more into the buffer; Err says why nothing came.
    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("closed".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(format!("no answer within {DEADLINE:?}"))
            }
            Err(e) => Err(format!("{:?}", e.kind())),
        }
    }

    /// The next answer (a 1xx included), or why there was none.
    fn answer(&mut self) -> Result<Answer, String> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill()
                .map_err(|why| format!("{why} (after {} bytes)", self.buf.len()))?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        self.buf.drain(..head_end + 4);
        let length = if status.starts_with("HTTP/1.1 1") {
            0
        } else {
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse::<usize>().expect("a numeric Content-Length"));
            length.unwrap_or_else(|| panic!("an answer without Content-Length: {head}"))
        };
        while self.buf.len() < length {
            self.fill()
                .map_err(|why| format!("{why} in the body of {status}"))?;
        }
        let body = self.buf.drain(..length).collect();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// True when the server closes the connection (within the deadline)
    /// without sending anything more.
    fn closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        match self.fill() {
            Ok(()) => false,
            Err(why) => why == "closed" || why.contains("Reset"),
        }
    }
}

/// The status line of the first answer to `request` on a new connection,
/// or what happened instead ("closed", "no answer within 5s", ...).
fn status(addr: SocketAddr, request: &[u8]) -> String {
    match Raw::connect(addr).send(request).answer() {
        Ok(answer) => answer.status,
        Err(why) => why,
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// An ordinary reply of the app, whose security headers every reply must carry.
fn reference(addr: SocketAddr) -> Answer {
    let answer = Raw::connect(addr).send(HEALTHZ).answer().unwrap();
    assert_eq!(answer.status, "HTTP/1.1 200 OK");
    answer
}

/// A reply the HTTP layer wrote itself: the exact status line, the same
/// security headers as `reference`, `Connection: close` and a short text body.
fn assert_parser_reply(answer: &Answer, status_line: &str, reference: &Answer) {
    assert_eq!(answer.status, status_line, "{answer:?}");
    for name in [
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
        "cache-control",
    ] {
        let expected = reference.header(name).expect("the reference has it");
        assert_eq!(
            answer.header(name),
            Some(expected),
            "{name} on {status_line}"
        );
    }
    assert_eq!(answer.header("connection"), Some("close"), "{status_line}");
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{answer:?}"
    );
    assert!(
        !answer.body.is_empty() && answer.body.len() < 200,
        "a short body: {answer:?}"
    );
}

/// Sends `request` on a new connection and expects exactly one parser reply
/// with `status_line`, then the connection closed: nothing after the bad part
/// of the request is ever answered.
fn refused_and_closed(
    addr: SocketAddr,
    request: impl AsRef<[u8]>,
    status_line: &str,
    reference: &Answer,
) {
    let mut raw = Raw::connect(addr);
    raw.send(request.as_ref());
    let answer = raw
        .answer()
        .unwrap_or_else(|why| panic!("{status_line} expected, got: {why}"));
    assert_parser_reply(&answer, status_line, reference);
    assert!(
        raw.closed(),
        "closed after {status_line}; then came {:?}",
        raw.answer()
    );
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

const BAD_REQUEST: &str = "HTTP/1.1 400 Bad Request";

/// Sends a logout `POST` whose head and body are `framed`, with `HEALTHZ`
/// right behind it on the same connection: both are answered, in order, and
/// nothing else (the body was framed exactly, none of it read as a request).
fn logout_then_healthz(addr: SocketAddr, framed: &str) {
    let mut raw = Raw::connect(addr);
    let mut request = format!("POST /logout HTTP/1.1\r\nHost: x\r\n{framed}").into_bytes();
    request.extend_from_slice(HEALTHZ);
    raw.send(&request);
    let statuses: Vec<String> = (0..2)
        .map(|_| raw.answer().map(|a| a.status).unwrap_or_else(|e| e))
        .collect();
    assert_eq!(statuses, ["HTTP/1.1 303 See Other", "HTTP/1.1 200 OK"]);
    assert!(raw.closed());
}

#[test]
fn http2_and_other_unsupported_versions_get_505_and_free_their_thread() {
    let (stack, mut victim) = stack_with_victim(&[("WXAUTH_CLIENT_TIMEOUT", "30")]);
    let addr = stack.app.addr;
    let reference = reference(addr);
    for request in [
        &b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"[..],
        // What `curl --http2-prior-knowledge` opens with.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/0.9\r\n\r\n",
    ] {
        refused_and_closed(
            addr,
            request,
            "HTTP/1.1 505 HTTP Version Not Supported",
            &reference,
        );
    }
    // More of them than there are connection threads (400), one after the
    // other, each left open by its client: each 505 frees its thread at once,
    // or the last ones would find none.
    let mut held = Vec::new();
    for i in 0..410 {
        let mut raw = Raw::connect(addr);
        raw.send(b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n");
        let status = raw.answer().map(|a| a.status);
        assert_eq!(
            status.as_deref(),
            Ok("HTTP/1.1 505 HTTP Version Not Supported"),
            "HTTP/2.0 connection {i}"
        );
        held.push(raw);
    }
    for (i, raw) in held.iter_mut().enumerate() {
        assert!(raw.closed(), "HTTP/2.0 connection {i} left open");
    }
    assert_eq!(status(addr, HEALTHZ), "HTTP/1.1 200 OK");
    drop(held);
    // Malformed versions are a bad request line.
    for request in [
        &b"GET /healthz HTTP/1\r\nHost: x\r\n\r\n"[..],
        b"GET /healthz http/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/11.1\r\nHost: x\r\n\r\n",
        b"GET /healthz\r\nHost: x\r\n\r\n",
    ] {
        refused_and_closed(addr, request, BAD_REQUEST, &reference);
    }
    still_fine(&stack, &mut victim);
}

#[test]
fn a_chunked_body_is_decoded_and_never_read_as_a_request() {
    let (stack, mut victim) = stack_with_victim(&[]);
    let addr = stack.app.addr;
    let reference = reference(addr);

    // The case: "chunked", and a body that is a request.
    let request =
        format!("POST /logout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{SMUGGLED}");
    refused_and_closed(addr, &request, BAD_REQUEST, &reference);

    // A request well inside a well-formed chunk is body, and the request
    // after the last chunk is the next one.
    logout_then_healthz(
        addr,
        &format!(
            "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
            SMUGGLED.len()
        ),
    );

    // Bad chunks: 400, and nothing after them is read.
    for body in [
        "zz\r\nabc\r\n0\r\n\r\n",
        "0x3\r\nabc\r\n0\r\n\r\n",
        "+3\r\nabc\r\n0\r\n\r\n",
        "-3\r\nabc\r\n0\r\n\r\n",
        " 3\r\nabc\r\n0\r\n\r\n",
        "\r\nabc\r\n0\r\n\r\n",
        "3\r\nabcXY0\r\n\r\n",
        "fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "3 abc\r\nabc\r\n0\r\n\r\n",
    ] {
        let request = format!(
            "POST /logout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}{SMUGGLED}"
        );
        refused_and_closed(addr, &request, BAD_REQUEST, &reference);
    }

    // Framing that cannot be trusted (chunked not last, or twice): 400; a
    // coding we do not implement before chunked: 501.
    for (framing, status_line) in [
        ("Transfer-Encoding: chunked, gzip\r\n", BAD_REQUEST),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            BAD_REQUEST,
        ),
        ("Transfer-Encoding: gzip\r\n", BAD_REQUEST),
        (
            "Transfer-Encoding: gzip, chunked\r\n",
            "HTTP/1.1 501 Not Implemented",
        ),
    ] {
        let request =
            format!("POST /logout HTTP/1.1\r\nHost: x\r\n{framing}\r\n0\r\n\r\n{SMUGGLED}");
        refused_and_closed(addr, &request, status_line, &reference);
    }
    let request =
        format!("POST /logout HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}");
    refused_and_closed(addr, &request, BAD_REQUEST, &reference);

    // More than 64 KiB of chunks: 413.
    let chunk = format!("4000\r\n{}\r\n", "a".repeat(0x4000));
    let request = format!(
        "POST /logout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(5)
    );
    refused_and_closed(addr, &request, "HTTP/1.1 413 Payload Too Large", &reference);
    still_fine(&stack, &mut victim);
}

/// The simulator's consent form for a login `browser` has started: the
/// simulator's address and the urlencoded form that allows it as user 0.
fn consent_form(stack: &Stack, browser: &mut Browser) -> (SocketAddr, String) {
    let authorize = browser.start_login(stack, None);
    let get = |k: &str| url_param(&authorize, k);
    let fields = [
        ("appid", get("appid")),
        ("redirect_uri", get("redirect_uri")),
        ("response_type", "code".to_string()),
        ("scope", get("scope")),
        ("state", get("state")),
        ("user", "0".to_string()),
        ("action", "allow".to_string()),
    ];
    let form: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", wxauth_app::transport::http::encode_component(v)))
        .collect();
    let sim = stack.sim_url.trim_start_matches("http://").parse().unwrap();
    (sim, form.join("&"))
}

/// Ends a login with the callback the simulator's confirm answered: the
/// browser is logged in as test user 0.
fn finish_login(stack: &Stack, browser: &mut Browser, confirm: &Answer) {
    assert_eq!(confirm.status, "HTTP/1.1 302 Found", "{confirm:?}");
    let callback = confirm.header("location").unwrap().to_string();
    assert!(
        callback.starts_with(&format!("{}/callback?code=", stack.app_url)),
        "{callback}"
    );
    assert_eq!(browser.get(&callback).status, 302);
    let me = browser.get(&stack.url("/api/me"));
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(me.body.contains("熊猫🐼小明"));
}

#[test]
fn a_chunked_form_is_decoded() {
    let stack = crate::support::start();
    let mut browser = Browser::new();
    let (sim, form) = consent_form(&stack, &mut browser);
    // In three chunks, one with a chunk extension, and a trailer.
    let (a, rest) = form.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    let body = format!(
        "{:x}\r\n{a}\r\n{:X};name=value\r\n{b}\r\n{:x}\r\n{c}\r\n0\r\nX-Trailer: 1\r\n\r\n",
        a.len(),
        b.len(),
        c.len()
    );
    let mut raw = Raw::connect(sim);
    raw.send(
        format!(
            "POST /connect/oauth2/authorize/confirm HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Transfer-Encoding: chunked\r\n\r\n{body}"
        )
        .as_bytes(),
    );
    let confirm = raw.answer().unwrap();
    finish_login(&stack, &mut browser, &confirm);
}

#[test]
fn malformed_or_conflicting_content_length_gets_400_and_close() {
    let (stack, mut victim) = stack_with_victim(&[]);
    let addr = stack.app.addr;
    let reference = reference(addr);
    for value in [
        "+3",
        "0x3",
        "3 3",
        "3, 3",
        "-1",
        "abc",
        "",
        "99999999999999999999999",
    ] {
        let request = format!(
            "POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\nabc{SMUGGLED}"
        );
        refused_and_closed(addr, &request, BAD_REQUEST, &reference);
    }
    for framing in [
        "Content-Length: 3\r\nContent-Length: 30\r\n",
        "Content-Length: 3\r\nContent-Length: 3\r\n",
        "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    ] {
        let request = format!("POST /logout HTTP/1.1\r\nHost: x\r\n{framing}\r\nabc{SMUGGLED}");
        refused_and_closed(addr, &request, BAD_REQUEST, &reference);
    }
    // A good length frames the body exactly: the next request is the next one.
    logout_then_healthz(addr, "Content-Length: 3\r\n\r\nabc");
    // Over 64 KiB: 413, and the body is never waited for.
    refused_and_closed(
        addr,
        b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\nabc",
        "HTTP/1.1 413 Payload Too Large",
        &reference,
    );
    still_fine(&stack, &mut victim);
}

#[test]
fn non_ascii_header_values_are_served_normally() {
    let (stack, mut victim) = stack_with_victim(&[]);
    let addr = stack.app.addr;
    let session = victim.jar["wxauth_session"].clone();
    // A parent domain's Chinese cookie next to ours: the session still counts.
    let mut request = b"GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: name=".to_vec();
    request.extend_from_slice("张三".as_bytes());
    request.extend_from_slice(
        format!("; wxauth_session={session}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let answer = Raw::connect(addr).send(&request).answer().unwrap();
    assert_eq!(answer.status, "HTTP/1.1 200 OK");
    assert!(String::from_utf8_lossy(&answer.body).contains("熊猫🐼小明"));
    // The same cookie alone, and latin-1 bytes (not UTF-8) in User-Agent and Referer.
    let mut pages: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut cookie = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: name=".to_vec();
    cookie.extend_from_slice("张三".as_bytes());
    cookie.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    pages.push(("HTTP/1.1 200 OK", cookie));
    pages.push((
        "HTTP/1.1 200 OK",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0 (Caf\xe9)\r\nConnection: close\r\n\r\n"
            .to_vec(),
    ));
    pages.push((
        "HTTP/1.1 302 Found",
        b"GET /login HTTP/1.1\r\nHost: x\r\nUser-Agent: MicroMessenger\r\nReferer: http://example.com/\xe9t\xe9\xff\r\nConnection: close\r\n\r\n"
            .to_vec(),
    ));
    for (expected, request) in pages {
        assert_eq!(
            status(addr, &request),
            expected,
            "{}",
            String::from_utf8_lossy(&request)
        );
    }
    still_fine(&stack, &mut victim);
}

#[test]
fn an_overlong_request_line_gets_414_and_an_overlong_header_431() {
    let (stack, mut victim) = stack_with_victim(&[]);
    let addr = stack.app.addr;
    let reference = reference(addr);
    let request = format!(
        "GET /?{} HTTP/1.1\r\nHost: x\r\n\r\n{SMUGGLED}",
        "a".repeat(100_000)
    );
    refused_and_closed(addr, &request, "HTTP/1.1 414 URI Too Long", &reference);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n{SMUGGLED}",
        "b".repeat(17 * 1024)
    );
    refused_and_closed(
        addr,
        &request,
        "HTTP/1.1 431 Request Header Fields Too Large",
        &reference,
    );
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n{SMUGGLED}",
        (0..101)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect::<String>()
    );
    refused_and_closed(
        addr,
        &request,
        "HTTP/1.1 431 Request Header Fields Too Large",
        &reference,
    );
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n{SMUGGLED}",
        (0..5)
            .map(|i| format!("X-{i}: {}\r\n", "c".repeat(10_000)))
            .collect::<String>()
    );
    refused_and_closed(
        addr,
        &request,
        "HTTP/1.1 431 Request Header Fields Too Large",
        &reference,
    );
    still_fine(&stack, &mut victim);
}

#[test]
fn expect_100_continue_gets_a_100_and_the_body_is_read() {
    let stack = crate::support::start();
    let mut browser = Browser::new();
    let (sim, form) = consent_form(&stack, &mut browser);
    let mut raw = Raw::connect(sim);
    raw.send(
        format!(
            "POST /connect/oauth2/authorize/confirm HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            form.len()
        )
        .as_bytes(),
    );
    let interim = raw.answer().unwrap();
    assert_eq!(interim.status, "HTTP/1.1 100 Continue", "{interim:?}");
    raw.send(form.as_bytes());
    let confirm = raw.answer().unwrap();
    finish_login(&stack, &mut browser, &confirm);

    // A client that is told to continue and never does holds up no one.
    let addr = stack.app.addr;
    let mut stalled = Raw::connect(addr);
    stalled.send(
        b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(stalled.answer().unwrap().status, "HTTP/1.1 100 Continue");
    let started = Instant::now();
    assert_eq!(status(addr, HEALTHZ), "HTTP/1.1 200 OK");
    assert_eq!(
        browser.get(&stack.url("/api/me")).status,
        200,
        "a session made before"
    );
    assert!(started.elapsed() < PROMPTLY);

    // Nothing to continue for a body over the limit, and an expectation we
    // cannot meet.
    let reference = reference(addr);
    refused_and_closed(
        addr,
        b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
        "HTTP/1.1 413 Payload Too Large",
        &reference,
    );
    refused_and_closed(
        addr,
        b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: the-moon\r\n\r\n",
        "HTTP/1.1 417 Expectation Failed",
        &reference,
    );
}

#[test]
fn an_upgrade_request_with_a_body_holds_up_no_one() {
    // Its body is read like any other: the raw socket was once handed to
    // the loop as the body, to read until this client closed.
    let (stack, mut victim) = stack_with_victim(&[("WXAUTH_CLIENT_TIMEOUT", "30")]);
    let addr = stack.app.addr;
    let started = Instant::now();
    let mut upgrade = Raw::connect(addr);
    upgrade.send(
        b"POST /logout HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Content-Length: 3\r\n\r\nabc",
    );
    let status_line = upgrade.answer().map(|a| a.status);
    assert_eq!(status_line.as_deref(), Ok("HTTP/1.1 303 See Other"));
    assert!(upgrade.closed(), "nothing follows an upgrade request");
    assert_eq!(status(addr, HEALTHZ), "HTTP/1.1 200 OK");
    assert!(started.elapsed() < PROMPTLY);
    still_fine(&stack, &mut victim);
}

#[test]
fn http_1_1_without_one_host_header_is_a_bad_request() {
    let (stack, mut victim) = stack_with_victim(&[]);
    let addr = stack.app.addr;
    let reference = reference(addr);
    for request in [
        &b"GET /healthz HTTP/1.1\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        b"GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        refused_and_closed(addr, request, BAD_REQUEST, &reference);
    }
    // HTTP/1.0 has no Host requirement.
    assert_eq!(
        status(addr, b"GET /healthz HTTP/1.0\r\n\r\n"),
        "HTTP/1.0 200 OK"
    );
    still_fine(&stack, &mut victim);
}

#[test]
fn lines_ending_in_a_bare_lf_are_answered() {
    let (stack, mut victim) = stack_with_victim(&[("WXAUTH_CLIENT_TIMEOUT", "30")]);
    let addr = stack.app.addr;
    let started = Instant::now();
    let mut raw = Raw::connect(addr);
    raw.send(b"GET /healthz HTTP/1.1\nHost: x\n\n");
    assert_eq!(raw.answer().unwrap().status, "HTTP/1.1 200 OK");
    raw.send(b"POST /logout HTTP/1.1\r\nHost: x\nContent-Length: 3\r\n\nabc");
    assert_eq!(raw.answer().unwrap().status, "HTTP/1.1 303 See Other");
    raw.send(b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n");
    assert_eq!(raw.answer().unwrap().status, "HTTP/1.1 200 OK");
    assert!(raw.closed());
    assert!(started.elapsed() < PROMPTLY);
    // A CR not followed by LF ends nothing: 400.
    let reference = reference(addr);
    refused_and_closed(
        addr,
        b"GET /healthz HTTP/1.1\rHost: x\r\n\r\n",
        BAD_REQUEST,
        &reference,
    );
    refused_and_closed(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
        BAD_REQUEST,
        &reference,
    );
    still_fine(&stack, &mut victim);
}

#[test]
fn idle_kept_alive_connections_give_way_to_a_new_one() {
    // A long client timeout: only giving way can free a thread in time.
    let (stack, mut victim) = stack_with_victim(&[("WXAUTH_CLIENT_TIMEOUT", "30")]);
    let addr = stack.app.addr;
    let mut idle = Vec::new();
    for i in 0..450 {
        let mut raw = Raw::connect(addr);
        raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let status = raw.answer().map(|a| a.status);
        assert_eq!(
            status.as_deref(),
            Ok("HTTP/1.1 200 OK"),
            "kept-alive connection {i}"
        );
        idle.push(raw);
    }
    let started = Instant::now();
    assert_eq!(status(addr, HEALTHZ), "HTTP/1.1 200 OK");
    let took = started.elapsed();
    assert!(took < PROMPTLY, "answered in {took:?}");
    // The longest idle gave way (closed by the server); the newest was kept.
    assert!(idle[0].closed(), "the oldest idle connection was closed");
    let newest = idle.last_mut().unwrap();
    newest.send(HEALTHZ);
    assert_eq!(newest.answer().unwrap().status, "HTTP/1.1 200 OK");
    still_fine(&stack, &mut victim);
}

#[test]
fn half_sent_requests_get_new_connections_a_503_until_they_go() {
    let (stack, mut victim) = stack_with_victim(&[("WXAUTH_CLIENT_TIMEOUT", "30")]);
    let addr = stack.app.addr;
    let reference = reference(addr);
    let slow: Vec<Raw> = (0..450)
        .map(|_| {
            let mut raw = Raw::connect(addr);
            raw.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            raw
        })
        .collect();
    let mut raw = Raw::connect(addr);
    raw.send(HEALTHZ);
    let answer = raw
        .answer()
        .unwrap_or_else(|why| panic!("a 503 expected, got: {why}"));
    assert_parser_reply(&answer, "HTTP/1.1 503 Service Unavailable", &reference);
    assert!(raw.closed());
    drop(slow);
    // Served again as soon as they are gone, long before their timeout.
    let started = Instant::now();
    loop {
        let status = status(addr, HEALTHZ);
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(
            started.elapsed() < PROMPTLY,
            "still {status} after the slow clients left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    still_fine(&stack, &mut victim);
}

#[test]
fn two_thousand_connections_at_once_are_each_answered_or_refused_with_503() {
    let stack = start_with(&[("WXAUTH_CLIENT_TIMEOUT", "30")]);
    let addr = stack.app.addr;
    let reference = reference(addr);
    // Every other one sends its request at once, the rest once all are
    // open: the server meets both kept-alive connections (which can give
    // way) and connections that have sent nothing yet (which cannot).
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut all: Vec<Raw> = (0..2000)
        .map(|i| {
            let mut raw = Raw::connect(addr);
            if i % 2 == 0 {
                raw.send(request);
            }
            raw
        })
        .collect();
    for raw in all.iter_mut().skip(1).step_by(2) {
        raw.send(request);
    }
    let (mut served, mut refused) = (0, 0);
    for (i, raw) in all.iter_mut().enumerate() {
        match raw.answer() {
            Ok(answer) if answer.status == "HTTP/1.1 200 OK" => served += 1,
            Ok(answer) => {
                assert_parser_reply(&answer, "HTTP/1.1 503 Service Unavailable", &reference);
                refused += 1;
            }
            Err(why) => panic!("connection {i} of 2000: {why}"),
        }
    }
    assert_eq!(served + refused, 2000);
    assert!(served >= 400, "served {served}, refused {refused}");
    drop(all);
    assert_eq!(status(addr, HEALTHZ), "HTTP/1.1 200 OK");
}

#[test]
fn every_reply_of_the_http_layer_carries_the_security_headers() {
    let stack = start_with(&[("WXAUTH_CLIENT_TIMEOUT", "1")]);
    let addr = stack.app.addr;
    let reference = reference(addr);
    for (request, status_line) in [
        (&b"NONSENSE\r\n\r\n"[..], BAD_REQUEST),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            BAD_REQUEST,
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n",
            BAD_REQUEST,
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
            BAD_REQUEST,
        ),
        (
            b"GET /\xe5\xbc\xa0 HTTP/1.1\r\nHost: x\r\n\r\n",
            BAD_REQUEST,
        ),
        (
            b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
            "HTTP/1.1 413 Payload Too Large",
        ),
        (
            b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: x\r\n\r\n",
            "HTTP/1.1 417 Expectation Failed",
        ),
        (
            b"POST /logout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br, chunked\r\n\r\n",
            "HTTP/1.1 501 Not Implemented",
        ),
        (
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            "HTTP/1.1 505 HTTP Version Not Supported",
        ),
        // Half a request, then silence past the 1 s client timeout.
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            "HTTP/1.1 408 Request Timeout",
        ),
    ] {
        refused_and_closed(addr, request, status_line, &reference);
    }
}
