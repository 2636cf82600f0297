//! The CLI's side of the API: JSON requests with the bearer token, the API's error shape
//! turned into a plain error, and following a job's event stream (resuming it with
//! `Last-Event-ID` if the connection drops) until the job ends.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// One API server and the token to use with it.
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// One Server-Sent Event.
#[derive(Debug, Default, Clone)]
pub struct ServerEvent {
    pub id: Option<String>,
    pub kind: String,
    pub data: Value,
}

impl Api {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:7480`), trusting the public
    /// web roots and, for HTTPS to a server with its own CA, the certificates in `ca` (PEM).
    pub fn new(base: &str, token: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("server URL '{base}' must start with http:// or https://");
        }
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading the CA certificate {}", ca.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} holds no PEM certificate", ca.display()))?;
            if certificates.is_empty() {
                bail!("{} holds no PEM certificate", ca.display());
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().context("making the HTTP client")?;
        Ok(Self {
            base,
            token: token.to_string(),
            http,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    /// `PUT path` with `length` raw bytes streamed from `body` (not JSON); the JSON answer.
    pub async fn put_bytes(
        &self,
        path: &str,
        body: reqwest::Body,
        length: u64,
    ) -> anyhow::Result<Value> {
        self.send_bytes(Method::PUT, path, "application/octet-stream", body, length)
            .await
    }

    /// `METHOD path` with a body of `length` bytes of `content_type`; the JSON answer.
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: reqwest::Body,
        length: u64,
    ) -> anyhow::Result<Value> {
        let request = self
            .request(method.clone(), path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(body);
        let response = self.send(request, &method, path).await?;
        json_answer(response, &method, path).await
    }

    /// `GET path` answered with raw bytes: the response, whose body the caller reads as it
    /// arrives.
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.send(self.request(Method::GET, path), &Method::GET, path)
            .await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends a request; an answer that is not a success becomes the API's error message.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        method: &Method,
        path: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let doc = json_answer(response, method, path)
            .await
            .unwrap_or(Value::Null);
        Err(failure(status, &doc, method, path))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = self.send(request, &method, path).await?;
        json_answer(response, &method, path).await
    }

    fn unreachable(&self, error: reqwest::Error) -> anyhow::Error {
        anyhow!(
            "cannot reach the Tidemark server at {}: {} (is `tidemark serve` running? for HTTPS with a private CA set TIDEMARK_CA_CERT)",
            self.base,
            root_cause(&error)
        )
    }

    /// Follows a job's events until it ends, calling `on_event` for each; reconnects (from
    /// the last event id) if the connection drops. Returns the job's final record.
    pub async fn follow(
        &self,
        job: &str,
        mut on_event: impl FnMut(&ServerEvent),
    ) -> anyhow::Result<Value> {
        let mut last_id: Option<String> = None;
        let mut failures = 0u32;
        loop {
            match self.stream_events(job, &mut last_id, &mut on_event).await {
                Ok(true) => return self.get(&format!("/v1/jobs/{job}")).await,
                Ok(false) => {}
                Err(e) if failures < 30 => {
                    tracing::debug!("event stream of job {job} broke: {e:#}; reconnecting");
                }
                Err(e) => return Err(e.context(format!("following job {job}"))),
            }
            failures += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Reads the event stream once; whether the job's `end` event arrived.
    async fn stream_events(
        &self,
        job: &str,
        last_id: &mut Option<String>,
        on_event: &mut impl FnMut(&ServerEvent),
    ) -> anyhow::Result<bool> {
        let mut request = self
            .http
            .get(format!("{}/v1/jobs/{job}/events", self.base))
            .bearer_auth(&self.token);
        if let Some(id) = last_id.as_deref() {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if !status.is_success() {
            let doc: Value = response.json().await.unwrap_or(Value::Null);
            return Err(failure(status, &doc, &Method::GET, "events"));
        }
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let Some(event) = parse_event(&block) else {
                    continue;
                };
                if event.id.is_some() {
                    last_id.clone_from(&event.id);
                }
                on_event(&event);
                if event.kind == "end" {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// An answer's JSON body (null when it has none, or none that parses).
async fn json_answer(
    response: reqwest::Response,
    method: &Method,
    path: &str,
) -> anyhow::Result<Value> {
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer to {method} {path}"))?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// One `id:` / `event:` / `data:` block; comments (keep-alives) give `None`.
fn parse_event(block: &str) -> Option<ServerEvent> {
    let mut event = ServerEvent::default();
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            event.id = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("event:") {
            event.kind = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if event.kind.is_empty() && data.is_empty() {
        return None;
    }
    event.data = serde_json::from_str(&data).unwrap_or(json!(data));
    Some(event)
}

/// The API's error shape as an error for people: its message (the API's wording is
/// written for them), with the status for anything unexpected.
fn failure(status: StatusCode, doc: &Value, method: &Method, path: &str) -> anyhow::Error {
    match doc["message"].as_str() {
        Some(message) => anyhow!("{message}"),
        None => anyhow!("{method} {path} answered {status}"),
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_events() {
        let e = parse_event("id: 3.ended\nevent: step\ndata: {\"seq\":3}\n\n").unwrap();
        assert_eq!(e.id.as_deref(), Some("3.ended"));
        assert_eq!(e.kind, "step");
        assert_eq!(e.data["seq"], 3);
        assert!(parse_event(": keep-alive\n\n").is_none());
    }
}
