//! Outgoing HTTP over `wasi:http`, for adapters whose endpoint is granted `http=HOST[:PORT]`
//! (and whose manifest asks for it). The host sends the request; a destination that was not
//! granted answers `denied`. Blocking and buffered: an adapter call is one request/answer
//! exchange with a management API, not a stream.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::{AdapterError, AdapterResult};

/// How much a log line matters, as the host's log has it.
pub use crate::bindings::host_imports::LogLevel;

/// What an adapter on an HTTP API needs from outside: requests, the clock, sleeping and the
/// log. Its logic takes an `&dyn Io`, so native tests drive it with a fake fed captured
/// answers (or a plain std client against a real server) and the component with [`Wasi`].
pub trait Io {
    /// Sends one request, answering whatever the status (see [`request`]).
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> AdapterResult<Response>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Waits `ms` milliseconds (between polls, before a retry).
    fn sleep_ms(&self, ms: u64);
    /// Logs `message` into the host's log (never a secret).
    fn log(&self, level: LogLevel, message: &str);
}

/// The component's [`Io`]: `wasi:http` through [`request`], the WASI clock, a thread sleep
/// and the host's log.
pub struct Wasi;

impl Io for Wasi {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> AdapterResult<Response> {
        request(method, url, headers, body)
    }
    fn now_ms(&self) -> u64 {
        crate::now_ms()
    }
    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    fn log(&self, level: LogLevel, message: &str) {
        crate::bindings::host_imports::log(level, message);
    }
}

/// An [`Io`] on `std::net` for an adapter's native tests against a real server (the
/// component uses [`Wasi`]): HTTP/1.1 over a fresh connection per request
/// (`Connection: close`), plain `http://` only, logs to stderr.
#[cfg(not(target_arch = "wasm32"))]
pub struct StdIo;

#[cfg(not(target_arch = "wasm32"))]
impl Io for StdIo {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> AdapterResult<Response> {
        let rest = url.strip_prefix("http://").expect("a plain http:// URL");
        let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let transient = |e: std::io::Error| AdapterError::Transient(format!("{url}: {e}"));
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(authority).map_err(transient)?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .map_err(transient)?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(transient)?;
        stream.write_all(body).map_err(transient)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(transient)?;
        parse_answer(&answer).ok_or_else(|| AdapterError::Internal(format!("{url}: not HTTP")))
    }
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    fn log(&self, level: LogLevel, message: &str) {
        eprintln!("{level:?}: {message}");
    }
}

/// Status, headers and body of a whole HTTP/1.1 answer (chunked bodies decoded).
#[cfg(not(target_arch = "wasm32"))]
fn parse_answer(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case(b"chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).ok()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(end + 2..end + 2 + size)?);
            rest = rest.get(end + 4 + size..)?;
        }
        body = out;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// An HTTP answer, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method url` with `headers` and `body`; the answer whatever its status (callers
/// decide what a 4xx means). `url` is `http://HOST[:PORT]/PATH?QUERY` or `https://…`.
/// A refused destination is `denied`; one that cannot be reached, `transient`.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> AdapterResult<Response> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(AdapterError::Invalid(format!(
            "{url}: expected an http:// or https:// URL"
        )));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| AdapterError::Invalid(format!("header {name}: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    let refused = |what: &str| AdapterError::Invalid(format!("{url}: bad {what}"));
    outgoing
        .set_method(&method)
        .map_err(|()| refused("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| refused("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| refused("host"))?;
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| refused("path"))?;
    let outgoing_body = outgoing
        .body()
        .map_err(|()| internal(url, "the request body was taken twice"))?;
    // Sent before the body is written: the host buffers little of a body ahead of sending.
    let pending =
        outgoing_handler::handle(outgoing, None).map_err(|e| http_error(url, authority, e))?;
    {
        let stream = outgoing_body
            .write()
            .map_err(|()| internal(url, "the request body stream was taken twice"))?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| internal(url, &format!("writing the request body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing_body, None).map_err(|e| http_error(url, authority, e))?;
    pending.subscribe().block();
    let answer = pending
        .get()
        .ok_or_else(|| internal(url, "no answer after waiting for it"))?
        .map_err(|()| internal(url, "the answer was taken twice"))?
        .map_err(|e| http_error(url, authority, e))?;
    let status = answer.status();
    let headers = answer.headers().entries();
    let incoming = answer
        .consume()
        .map_err(|()| internal(url, "the answer body was taken twice"))?;
    let body = read_body(url, &incoming)?;
    drop(answer);
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn read_body(url: &str, incoming: &IncomingBody) -> AdapterResult<Vec<u8>> {
    let stream = incoming
        .stream()
        .map_err(|()| internal(url, "the answer body stream was taken twice"))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(StreamError::Closed) => return Ok(body),
            Err(e) => {
                return Err(AdapterError::Transient(format!(
                    "{url}: reading the answer: {e:?}"
                )));
            }
        }
    }
}

fn internal(url: &str, what: &str) -> AdapterError {
    AdapterError::Internal(format!("{url}: {what}"))
}

/// A wasi:http error as the host's callers understand it.
fn http_error(url: &str, authority: &str, error: ErrorCode) -> AdapterError {
    match error {
        ErrorCode::HttpRequestDenied => AdapterError::Denied(format!(
            "HTTP to {authority} was refused by the sandbox: not granted to this endpoint"
        )),
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete
        | ErrorCode::HttpResponseTimeout => AdapterError::Transient(format!("{url}: {error:?}")),
        // hyper reports a connection dropped before or during the answer this way, as well
        // as an answer that is not HTTP at all: both are the server's trouble, worth a retry.
        ErrorCode::HttpProtocolError => AdapterError::Transient(format!(
            "{url}: the server closed the connection or answered something that is not HTTP \
             ({error:?})"
        )),
        other => AdapterError::Internal(format!("{url}: {other:?}")),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_whole_or_chunked() {
        let plain = parse_answer(b"HTTP/1.1 403 FORBIDDEN\r\nContent-Length: 2\r\n\r\nno").unwrap();
        assert_eq!((plain.status, plain.body.as_slice()), (403, &b"no"[..]));
        let chunked = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, b"abcde");
        assert!(parse_answer(b"garbage").is_none());
    }
}
