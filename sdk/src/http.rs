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
