//! JSON over HTTP to the BMC with Basic auth, through the small [`Io`] seam so tests feed
//! captured answers and a fake clock. Joins `@odata.id` paths to the BMC's origin, follows
//! redirects on that origin only (sushy-tools answers a system's name with 307 to its UUID,
//! and the SDK's client does not follow them), maps statuses to errors and parses answers
//! without ever panicking on garbage.

use serde::de::DeserializeOwned;
use serde_json::Value;
use tidemark_sdk::http::Response;
use tidemark_sdk::{AdapterError, AdapterResult};

use crate::errors;
use crate::settings::Settings;

/// How many redirects one request follows.
const MAX_REDIRECTS: usize = 3;

/// The SDK's seam to the world (HTTP, clock, sleep, log); tests put a fake behind it.
pub use tidemark_sdk::http::{Io, LogLevel as Level};

/// A BMC session: settings plus the [`Io`] to reach it.
pub struct Client<'a> {
    /// The endpoint's checked settings.
    pub settings: Settings,
    /// How requests, time and logs get out.
    pub io: &'a dyn Io,
}

impl<'a> Client<'a> {
    /// A client on `settings` through `io`.
    pub fn new(settings: Settings, io: &'a dyn Io) -> Self {
        Client { settings, io }
    }

    /// The absolute URL of `path` (an `@odata.id`, a `Location`, or an absolute URL on the
    /// BMC's origin). An absolute URL elsewhere is refused, so credentials never leave the BMC.
    pub fn url_of(&self, path: &str) -> AdapterResult<String> {
        let origin = &self.settings.origin;
        if path.starts_with("http://") || path.starts_with("https://") {
            let same = path
                .strip_prefix(origin.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if same {
                return Ok(path.to_string());
            }
            return Err(AdapterError::Internal(format!(
                "the BMC pointed at {path}, off its own origin {origin}; not following it with the endpoint's credentials"
            )));
        }
        if path.starts_with('/') {
            Ok(format!("{origin}{path}"))
        } else {
            Err(AdapterError::Internal(format!(
                "the BMC gave '{path}' where a resource path was expected"
            )))
        }
    }

    /// Sends `method` to `path` (following same-origin redirects) and answers the final
    /// response whatever its status.
    fn exchange(&self, method: &str, path: &str, body: Option<&Value>) -> AdapterResult<Response> {
        let payload = match body {
            Some(v) => serde_json::to_vec(v)
                .map_err(|e| AdapterError::Internal(format!("encoding a request body: {e}")))?,
            None => Vec::new(),
        };
        let mut url = self.url_of(path)?;
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = vec![
                ("authorization", self.settings.authorization()),
                ("accept", "application/json"),
                ("odata-version", "4.0"),
            ];
            if body.is_some() {
                headers.push(("content-type", "application/json"));
            }
            let answer = self.io.send(method, &url, &headers, &payload)?;
            let redirect = matches!(answer.status, 307 | 308)
                || (method == "GET" && matches!(answer.status, 301..=303));
            match (redirect, answer.header("location")) {
                (true, Some(location)) => {
                    let next = self.url_of(location.trim())?;
                    self.io.log(
                        Level::Debug,
                        &format!("{method} {url}: HTTP {} to {next}", answer.status),
                    );
                    url = next;
                }
                _ => return Ok(answer),
            }
        }
        Err(AdapterError::Internal(format!(
            "{method} {path}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// The resource at `path` as `T`; any status but 2xx is an error about `what`.
    pub fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> AdapterResult<T> {
        let answer = self.exchange("GET", path, None)?;
        if !(200..300).contains(&answer.status) {
            return Err(errors::from_status(answer.status, what, &answer.body));
        }
        parse(&answer.body, path, what)
    }

    /// The resource at `path` if the BMC reports it. 404, 405, 500 and 501 (sushy-tools
    /// answers Processors and SimpleStorage 501, and Storage 500 when it has none) and a
    /// garbled answer mean "not reported" and are logged; refused credentials and a busy
    /// BMC stay errors.
    pub fn get_optional<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> AdapterResult<Option<T>> {
        let answer = self.exchange("GET", path, None)?;
        match answer.status {
            200..=299 => match parse(&answer.body, path, what) {
                Ok(value) => Ok(Some(value)),
                Err(e) => {
                    self.io
                        .log(Level::Warn, &format!("{e}; treating it as not reported"));
                    Ok(None)
                }
            },
            404 | 405 | 500 | 501 => {
                self.io.log(
                    Level::Debug,
                    &format!(
                        "GET {path}: HTTP {}: {}; {what} is not reported",
                        answer.status,
                        errors::message(&answer.body)
                    ),
                );
                Ok(None)
            }
            status => Err(errors::from_status(status, what, &answer.body)),
        }
    }

    /// POSTs `body` to `path` (an action); any status but 2xx is an error about `what`.
    pub fn post(&self, path: &str, body: &Value, what: &str) -> AdapterResult<()> {
        self.send_body("POST", path, body, what)
    }

    /// PATCHes `path` with `body`; any status but 2xx is an error about `what`.
    pub fn patch(&self, path: &str, body: &Value, what: &str) -> AdapterResult<()> {
        self.send_body("PATCH", path, body, what)
    }

    fn send_body(&self, method: &str, path: &str, body: &Value, what: &str) -> AdapterResult<()> {
        let answer = self.exchange(method, path, Some(body))?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(errors::from_status(answer.status, what, &answer.body))
        }
    }

    /// Logs a warning.
    pub fn warn(&self, message: &str) {
        self.io.log(Level::Warn, message);
    }
}

/// `body` as `T`, or an `internal` error naming the resource: never a panic.
fn parse<T: DeserializeOwned>(body: &[u8], path: &str, what: &str) -> AdapterResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        AdapterError::Internal(format!(
            "the BMC answered GET {path} ({what}) with malformed JSON: {e}"
        ))
    })
}
