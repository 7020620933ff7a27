use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::{HTTPVersion, Header, HeaderField, Method};
use crate::connection::Connection;
use crate::util::{IdleConnections, OwnReplies, RefinedTcpStream, Refuser};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// wxauth patch: the longest request line read, in bytes (longer: 414).
const MAX_REQUEST_LINE: usize = 16 * 1024;
/// wxauth patch: the longest header line read, in bytes (longer: 431).
const MAX_HEADER_LINE: usize = 16 * 1024;
/// wxauth patch: the most header lines read for one request (more: 431).
const MAX_HEADER_COUNT: usize = 100;
/// wxauth patch: the most header bytes read for one request (more: 431).
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// wxauth patch: empty lines skipped before a request line (RFC 9112 2.2).
const MAX_EMPTY_LINES: usize = 4;

/// wxauth patch: what every connection of a server shares: the connections
/// idle between two requests, the replies tiny_http writes itself, and the
/// thread that closes connections with care.
pub struct Shared {
    pub idle: IdleConnections,
    pub replies: Arc<OwnReplies>,
    pub refuser: Refuser,
}

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // wxauth patch: a handle on the socket itself (None over TLS), to end
    // the connection when idle and to close it with care after a refusal.
    control: Option<Arc<Connection>>,

    // wxauth patch: see `Shared`.
    shared: Arc<Shared>,

    // wxauth patch: a request has been read on this connection.
    served: bool,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    /// wxauth patch: the request is answered with this status (400, 413,
    /// 414, 417, 431, 501, 505) and the connection closed: where the next
    /// request would start cannot be known.
    Refuse(u16),
    /// wxauth patch: the connection ended, or timed out, before a request began.
    Gone,
    ReadIoError(IoError),
}

/// wxauth patch: why a line could not be read.
pub(crate) enum LineError {
    TooLong,
    Malformed,
    Io(IoError),
}

impl LineError {
    /// The read error, `too_long` being the status for a line over its limit.
    fn refusal(self, too_long: u16) -> ReadError {
        match self {
            LineError::TooLong => ReadError::Refuse(too_long),
            LineError::Malformed => ReadError::Refuse(400),
            LineError::Io(e) => ReadError::ReadIoError(e),
        }
    }
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        control: Option<Arc<Connection>>,
        shared: Arc<Shared>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            control,
            shared,
            served: false,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// wxauth patch: waits for the first byte of the next request. A
    /// kept-alive connection (one that has had a request) with nothing
    /// buffered waits as idle: when the server has no thread for a new
    /// connection, the connection idle for longest is ended to make room
    /// (`IdleConnections::evict_oldest`), and this read sees the end.
    fn wait_for_request(&mut self) -> Result<(), ReadError> {
        let ticket = match &self.control {
            Some(control) if self.served && self.next_header_source.buffered() == Some(0) => {
                Some(self.shared.idle.enter(control))
            }
            _ => None,
        };
        let waited = self.next_header_source.wait_for_data();
        if let Some(ticket) = ticket {
            self.shared.idle.leave(ticket);
        }
        match waited {
            Ok(true) => Ok(()),
            _ => Err(ReadError::Gone),
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        self.wait_for_request()?;

        // wxauth patch: the request line, after at most a few empty lines.
        let mut line = Vec::new();
        for _ in 0..=MAX_EMPTY_LINES {
            line = read_line(&mut self.next_header_source, MAX_REQUEST_LINE)
                .map_err(|e| e.refusal(414))?;
            if !line.is_empty() {
                break;
            }
        }
        let (method, path, version) = parse_request_line(&line)?;

        // wxauth patch: header lines, bounded in length, number and total
        // size (431 past any of them).
        let mut headers = Vec::new();
        let mut header_bytes = 0;
        loop {
            let line = read_line(&mut self.next_header_source, MAX_HEADER_LINE)
                .map_err(|e| e.refusal(431))?;
            if line.is_empty() {
                break;
            }
            header_bytes += line.len() + 2;
            if headers.len() >= MAX_HEADER_COUNT || header_bytes > MAX_HEADER_BYTES {
                return Err(ReadError::Refuse(431));
            }
            headers.push(parse_header_line(&line).ok_or(ReadError::Refuse(400))?);
        }

        // wxauth patch: an HTTP/1.1 request has exactly one Host header, and
        // no request has two (RFC 9112 3.2: 400 otherwise).
        let hosts = headers.iter().filter(|h| h.field.equiv("Host")).count();
        if hosts > 1 || (hosts == 0 && version >= HTTPVersion(1, 1)) {
            return Err(ReadError::Refuse(400));
        }

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version,
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => ReadError::Refuse(417),
                request::RequestCreationError::Refused(status) => ReadError::Refuse(status),
            }
        })?;

        self.served = true;

        // return the request
        Ok(request)
    }

    /// wxauth patch: answers with one of tiny_http's own replies (after any
    /// reply still due on this connection) and ends the connection. With
    /// `linger`, the socket is handed to the refuser's thread to be closed
    /// with care (see `util::Refuser`) and this thread is free at once. The
    /// published version wrote a bare status line, no headers and no body,
    /// and for HTTP/2.0 waited for ever on a writer it could not have.
    fn refuse(&mut self, status: u16, linger: bool) {
        let mut writer = self.sink.next().unwrap();
        let reply = self.shared.replies.bytes(status);
        let _ = writer.write_all(&reply).and_then(|_| writer.flush());
        drop(writer);
        if let (true, Some(control)) = (linger, self.control.take()) {
            match self.next_header_source.get_mut() {
                Some(reader) => {
                    reader.keep_read_side_open();
                    self.shared.refuser.close(control);
                }
                // Still held by a request being answered: closed as it is.
                None => drop(control),
            }
        }
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        let rq = match self.read() {
            Ok(rq) => rq,

            // wxauth patch: every refusal is answered, then the connection
            // closed with care (see `util::Refuser`).
            Err(ReadError::Refuse(status)) => {
                self.refuse(status, true);
                return None;
            }

            // wxauth patch: a request begun and not finished in time gets a
            // 408 (the socket's timeout shows as WouldBlock on Unix, which the
            // published version did not recognise); a connection idle
            // between requests is closed without a word.
            Err(ReadError::ReadIoError(ref err))
                if matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
            {
                self.refuse(408, false);
                return None;
            }

            Err(ReadError::ReadIoError(_)) | Err(ReadError::Gone) => return None,
        };

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // returning the request
        Some(rq)
    }
}

/// wxauth patch: reads one line, as bytes, straight from `source`'s
/// buffer. A line ends at LF, with or without a CR before it (RFC 9112 2.2
/// lets a recipient take a bare LF for a line end; the published version
/// waited for CRLF and so never answered a client that sent LF alone). A CR
/// anywhere else is malformed. At most `limit` bytes: the published version
/// read lines without bound (upstream issue 56), so a client sending bytes
/// with no newline could exhaust memory. For request and header lines, and
/// a chunked body's framing.
pub(crate) fn read_line<R: BufRead>(source: &mut R, limit: usize) -> Result<Vec<u8>, LineError> {
    let mut line = Vec::new();
    source
        .by_ref()
        .take(limit as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(LineError::Io)?;
    if line.pop() != Some(b'\n') {
        if line.len() >= limit {
            return Err(LineError::TooLong);
        }
        let eof = IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF");
        return Err(LineError::Io(eof));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.contains(&b'\r') {
        return Err(LineError::Malformed);
    }
    Ok(line)
}

/// wxauth patch: a token character (RFC 9110 5.6.2): what methods and header
/// names are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a "HTTP/1.1" string.
///
/// wxauth patch: `HTTP/` DIGIT `.` DIGIT, or the line is malformed (400);
/// 1.0 and 1.1 are served, any other version gets 505 and the connection
/// closed. The published version took HTTP/2.0 and 3.0 in and then hung.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    match version.as_bytes() {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major - b'0', minor - b'0') {
                (1, 0) => Ok(HTTPVersion(1, 0)),
                (1, 1) => Ok(HTTPVersion(1, 1)),
                _ => Err(ReadError::Refuse(505)),
            }
        }
        _ => Err(ReadError::Refuse(400)),
    }
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
///
/// wxauth patch: strictly `method SP target SP version`, in ASCII, the
/// method a token and the target free of control characters (400
/// otherwise). The published version trimmed the line and ignored anything
/// after a third word.
fn parse_request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), ReadError> {
    let line = std::str::from_utf8(line)
        .ok()
        .filter(|l| l.is_ascii())
        .ok_or(ReadError::Refuse(400))?;
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(ReadError::Refuse(400)),
    };
    if method.is_empty()
        || !method.bytes().all(is_tchar)
        || target.is_empty()
        || target.bytes().any(|b| b.is_ascii_control())
    {
        return Err(ReadError::Refuse(400));
    }
    let version = parse_http_version(version)?;
    let method = method.parse().map_err(|_| ReadError::Refuse(400))?;
    Ok((method, target.to_owned(), version))
}

/// wxauth patch: parses a header line, as bytes: the name a token, the value
/// without the spaces around it, taken as UTF-8 with anything invalid
/// replaced (see `Header::value`). A value holding NUL is refused (RFC 9110
/// 5.5). None when the line is not a header.
fn parse_header_line(line: &[u8]) -> Option<Header> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    let value = &value[start..end];
    if value.contains(&0) {
        return None;
    }
    Some(Header {
        field: HeaderField::from_bytes(name).ok()?,
        value: String::from_utf8_lossy(value).into_owned(),
    })
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line(b"GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line(b"GET /hello").is_err());
        assert!(super::parse_request_line(b"qsd qsd qsd").is_err());
    }
}
