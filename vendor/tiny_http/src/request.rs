use std::io::Error as IoError;
use std::io::{self, BufRead, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use std::sync::mpsc::Sender;

use crate::{HTTPVersion, Header, Method, Response, StatusCode};

/// wxauth patch: the largest body read (with a `Content-Length` or chunked);
/// a larger one is refused with 413 before it is read.
const MAX_BODY: usize = 64 * 1024;
/// wxauth patch: the longest chunk-size or trailer line of a chunked body.
const MAX_CHUNK_LINE: usize = 4096;
/// wxauth patch: the most trailer lines after a chunked body.
const MAX_TRAILERS: usize = 100;

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // wxauth patch: if Some, the response is not written by the thread that
    // calls `respond` but handed to the connection's own thread, which writes it.
    responder: Option<Sender<Responder>>,
}

/// wxauth patch: a response ready to be written, run by the connection's thread.
pub(crate) type Responder = Box<dyn FnOnce() + Send + 'static>;

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),

    /// wxauth patch: the request is refused with this status (400, 413,
    /// 501): its body cannot be framed, or is too large, and the connection
    /// must close.
    Refused(u16),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
#[allow(clippy::too_many_arguments)]
pub fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    mut source_data: R,
    mut writer: W,
) -> Result<Request, RequestCreationError>
where
    R: BufRead + Send + 'static,
    W: Write + Send + 'static,
{
    // wxauth patch: the body's framing, strictly (RFC 9112 6). The published
    // version took the first Content-Length as Rust parses a number ("+3"
    // was 3), ignored one it could not parse and any second one, let
    // Transfer-Encoding win over Content-Length, and left a chunked body for
    // the application to read: one it did not read was parsed as the next
    // request (request smuggling). Now: at most one Transfer-Encoding,
    // chunked last, only with HTTP/1.1 and never with a Content-Length (400;
    // another coding before chunked: 501); at most one Content-Length, all
    // digits (400), at most MAX_BODY (413).
    let values = |name: &'static str| -> Vec<&str> {
        headers
            .iter()
            .filter(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
            .collect()
    };
    let transfer_encodings = values("Transfer-Encoding");
    let content_lengths = values("Content-Length");
    let chunked = match transfer_encodings.as_slice() {
        [] => false,
        [codings] => {
            if version < HTTPVersion(1, 1) || !content_lengths.is_empty() {
                return Err(RequestCreationError::Refused(400));
            }
            let codings: Vec<&str> = codings.split(',').map(str::trim).collect();
            if !codings
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case("chunked"))
            {
                return Err(RequestCreationError::Refused(400));
            }
            if codings.len() > 1 {
                return Err(RequestCreationError::Refused(501));
            }
            true
        }
        _ => return Err(RequestCreationError::Refused(400)),
    };
    let content_length = match content_lengths.as_slice() {
        [] => None,
        [value] if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
            match value.parse::<usize>() {
                Ok(length) => Some(length),
                Err(_) => return Err(RequestCreationError::Refused(400)),
            }
        }
        _ => return Err(RequestCreationError::Refused(400)),
    };
    if content_length.is_some_and(|length| length > MAX_BODY) {
        return Err(RequestCreationError::Refused(413));
    }

    // true if the client sent a `Expect: 100-continue` header
    let expects_continue = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Expect"))
            .map(|h| h.value.as_str())
        {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            _ => return Err(RequestCreationError::ExpectationFailed),
        }
    };

    // wxauth patch: the whole body is read here, on the connection's own
    // thread, before the request is handed to the application, so that a
    // client that announces a body and stalls holds up only its own
    // connection (the published version read at most 1 KiB here and left the
    // rest to the application). A client that asked to be told first
    // (`Expect: 100-continue`, HTTP/1.1) gets its `100 Continue` here too;
    // HTTP/1.0 has no 100 (RFC 9110 10.1.1). A request with `Connection:
    // upgrade` is read like any other: the published version handed the
    // application the raw socket as its body, to read until the client
    // closed. (The connection still ends after it, see client.rs.)
    let mut body_length = content_length;
    let has_body = chunked || content_length.is_some_and(|length| length > 0);
    if expects_continue && has_body && version >= HTTPVersion(1, 1) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    let body = if chunked {
        let body = read_chunked(&mut source_data)?;
        body_length = Some(body.len());
        body
    } else {
        let content_length = content_length.unwrap_or(0);
        let mut buffer = vec![0; content_length];
        let mut offset = 0;

        while offset != content_length {
            let read = source_data.read(&mut buffer[offset..])?;
            if read == 0 {
                // the socket returned EOF, but we were before the expected content-length
                // aborting
                let info = "Connection has been closed before we received enough data";
                let err = IoError::new(ErrorKind::ConnectionAborted, info);
                return Err(RequestCreationError::CreationIoError(err));
            }

            offset += read;
        }
        buffer
    };
    let reader = if body.is_empty() {
        Box::new(io::empty()) as Box<dyn Read + Send + 'static>
    } else {
        Box::new(Cursor::new(body)) as Box<dyn Read + Send + 'static>
    };

    Ok(Request {
        data_reader: Some(reader),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
        method,
        path,
        http_version: version,
        headers,
        body_length,
        // wxauth patch: sent above when needed.
        responder: None,
    })
}

/// wxauth patch: reads a chunked body (RFC 9112 7.1) to its end: chunk sizes
/// in hex digits only (an extension after `;` ignored), each chunk followed by
/// its line end, trailers read and dropped. Anything else is a bad request
/// (400), more than MAX_BODY in all is 413.
fn read_chunked<R: BufRead>(source: &mut R) -> Result<Vec<u8>, RequestCreationError> {
    let bad = || RequestCreationError::Refused(400);
    let mut body = Vec::new();
    loop {
        let line = read_body_line(source)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let rest = &line[digits..];
        let rest_start = rest
            .iter()
            .position(|b| *b != b' ' && *b != b'\t')
            .unwrap_or(rest.len());
        if digits == 0
            || digits > 16
            || !(rest[rest_start..].is_empty() || rest[rest_start] == b';')
        {
            return Err(bad());
        }
        let size = std::str::from_utf8(&line[..digits])
            .ok()
            .and_then(|d| u64::from_str_radix(d, 16).ok())
            .ok_or_else(bad)?;
        if size == 0 {
            for _ in 0..MAX_TRAILERS {
                if read_body_line(source)?.is_empty() {
                    return Ok(body);
                }
            }
            return Err(bad());
        }
        if size > (MAX_BODY - body.len()) as u64 {
            return Err(RequestCreationError::Refused(413));
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        source.read_exact(&mut body[start..]).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                IoError::new(
                    ErrorKind::ConnectionAborted,
                    "the chunked body was cut short",
                )
            } else {
                e
            }
        })?;
        if !read_body_line(source)?.is_empty() {
            return Err(bad());
        }
    }
}

/// wxauth patch: one line of a chunked body's framing, ended by LF with or
/// without CR (as request lines are), without its end.
fn read_body_line<R: BufRead>(source: &mut R) -> Result<Vec<u8>, RequestCreationError> {
    use crate::client::{read_line, LineError};
    read_line(source, MAX_CHUNK_LINE).map_err(|e| match e {
        LineError::TooLong | LineError::Malformed => RequestCreationError::Refused(400),
        LineError::Io(e) if e.kind() == ErrorKind::ConnectionAborted => IoError::new(
            ErrorKind::ConnectionAborted,
            "the chunked body was cut short",
        )
        .into(),
        LineError::Io(e) => e.into(),
    })
}

impl Request {
    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// If you call this on a non-websocket request, tiny-http will wait until this `Stream` object
    ///  is destroyed before continuing to read or write on the socket. Therefore you should always
    ///  destroy it as soon as possible.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        response
            .raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                false,
                Some(protocol),
            )
            .ok(); // TODO: unused result

        self.response_writer.as_mut().unwrap().flush().ok(); // TODO: unused result

        Box::new(CustomStream::new(
            self.extract_reader_impl(),
            self.extract_writer_impl(),
        ))
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # extern crate rustc_serialize;
    /// # extern crate tiny_http;
    /// # use rustc_serialize::json::Json;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    ///     let json: Json = content.parse().unwrap();
    /// }
    /// # }
    /// ```
    ///
    /// wxauth patch: a `100 Continue` the client asked for has already been
    /// sent, and the body read, on the connection's thread.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        self.data_reader.as_mut().unwrap()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        self.extract_writer_impl()
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Extract the body `Reader` object from the Request.
    ///
    /// This may only be called once on a single request.
    fn extract_reader_impl(&mut self) -> Box<dyn Read + Send + 'static> {
        use std::mem;

        assert!(self.data_reader.is_some());

        let mut reader = None;
        mem::swap(&mut self.data_reader, &mut reader);
        reader.unwrap()
    }

    /// Sends a response to this request.
    ///
    /// wxauth patch: on a connection accepted by `Server`, the response is
    /// handed to the connection's own thread, which writes it (and drops the
    /// rest of the request body) there: the caller never waits on the client,
    /// however slowly it reads. Hence `Send + 'static`.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read + Send + 'static,
    {
        if let Some(responder) = self.responder.take() {
            self.hand_over(responder, response);
            return Ok(());
        }
        self.respond_impl(response)
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();

        let do_not_send_body = self.method == Method::Head;

        Self::ignore_client_closing_errors(response.raw_print(
            writer.by_ref(),
            self.http_version.clone(),
            &self.headers,
            do_not_send_body,
            None,
        ))?;

        Self::ignore_client_closing_errors(writer.flush())
    }

    /// wxauth patch: packs the writer, the unread body and the response into
    /// one closure for the connection's thread. The body reader goes with it
    /// so that draining what the client still sends happens there too.
    fn hand_over<R>(&mut self, responder: Sender<Responder>, response: Response<R>)
    where
        R: Read + Send + 'static,
    {
        let mut writer = self.extract_writer_impl();
        let reader = self.data_reader.take();
        let version = self.http_version.clone();
        let headers = std::mem::take(&mut self.headers);
        let do_not_send_body = self.method == Method::Head;
        let write = move || {
            let _ = response.raw_print(writer.by_ref(), version, &headers, do_not_send_body, None);
            let _ = writer.flush();
            // The writer first: dropping it lets a later response go out.
            drop(writer);
            drop(reader);
        };
        // The connection's thread holds the receiver until it has run this.
        let _ = responder.send(Box::new(write));
    }

    pub(crate) fn with_responder(mut self, responder: Sender<Responder>) -> Self {
        self.responder = Some(responder);
        self
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            // wxauth patch: answered by the connection's thread, like `respond`.
            if let Some(responder) = self.responder.take() {
                self.hand_over(responder, response);
                return;
            }
            let _ = self.respond_impl(response); // ignoring any potential error
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
