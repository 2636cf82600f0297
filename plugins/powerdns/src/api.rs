//! Requests to the PowerDNS API and what their statuses mean in the contract's errors. The
//! key goes only into the `X-API-Key` header; every message is scrubbed of it all the same.

use tidemark_sdk::http::{self, Response};
use tidemark_sdk::{AdapterError, AdapterResult};

use crate::settings::Settings;
use crate::wire::{self, Patch, Zone};
use dns_names::zone_key;

/// A zone of the server: its normalised name (for comparing) and the id its URL uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerZone {
    /// Lower case with the final dot.
    pub name: String,
    /// As the server gave it (`id`, else its name).
    pub id: String,
}

/// The API of one endpoint's PowerDNS server.
pub struct Api {
    settings: Settings,
}

impl Api {
    /// Reads the endpoint's settings; nothing is sent yet.
    pub fn open() -> AdapterResult<Api> {
        Ok(Api {
            settings: Settings::read()?,
        })
    }

    /// The server id, for messages.
    pub fn server(&self) -> &str {
        &self.settings.server
    }

    /// The server's zones, in the server's order.
    pub fn zones(&self) -> AdapterResult<Vec<ServerZone>> {
        let path = format!("/servers/{}/zones", segment(&self.settings.server));
        let what = format!("PowerDNS server '{}'", self.settings.server);
        let answer = self.send("GET", &path, None, &what)?;
        Ok(wire::parse_zones(&answer.body)?
            .into_iter()
            .map(|z| ServerZone {
                name: zone_key(&z.name),
                id: z.id.unwrap_or(z.name),
            })
            .collect())
    }

    /// Zone `zone` with the rrsets of `name` and `rtype` (the server is asked to filter; the
    /// caller filters again, since older servers ignore the filter and send them all).
    pub fn zone(&self, zone: &ServerZone, name: &str, rtype: &str) -> AdapterResult<Zone> {
        let path = format!(
            "{}?rrset_name={}&rrset_type={}",
            self.zone_path(zone),
            segment(name),
            segment(rtype)
        );
        let answer = self.send("GET", &path, None, &self.zone_what(zone))?;
        wire::parse_zone(&answer.body, &zone.name)
    }

    /// Applies `patch` to `zone`.
    pub fn patch(&self, zone: &ServerZone, patch: &Patch) -> AdapterResult<()> {
        let body = patch.to_json();
        self.send(
            "PATCH",
            &self.zone_path(zone),
            Some(&body),
            &self.zone_what(zone),
        )?;
        Ok(())
    }

    fn zone_path(&self, zone: &ServerZone) -> String {
        format!(
            "/servers/{}/zones/{}",
            segment(&self.settings.server),
            segment(&zone.id)
        )
    }

    fn zone_what(&self, zone: &ServerZone) -> String {
        format!(
            "zone {} of PowerDNS server '{}'",
            zone.name, self.settings.server
        )
    }

    /// One request; a 2xx answer, or the error its status means for `what`.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        what: &str,
    ) -> AdapterResult<Response> {
        let url = format!("{}/api/v1{path}", self.settings.base);
        let mut headers = vec![
            ("X-API-Key", self.settings.api_key.as_str()),
            ("Accept", "application/json"),
        ];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let scrub = |e| tidemark_sdk::scrubbed(e, &[&self.settings.api_key]);
        let mut attempt = 0;
        loop {
            let answer =
                http::request(method, &url, &headers, body.unwrap_or_default()).map_err(scrub)?;
            attempt += 1;
            if retried(answer.status) && attempt < ATTEMPTS {
                std::thread::sleep(backoff(attempt));
                continue;
            }
            check_status(
                answer.status,
                &answer.body,
                what,
                &format!("{method} {url}"),
            )
            .map_err(scrub)?;
            return Ok(answer);
        }
    }
}

/// How many times a request is sent while the server answers 5xx or 429.
const ATTEMPTS: u32 = 6;

/// Whether an answer is worth sending the request again at once: every request here is
/// idempotent (a read, or a `REPLACE`/`DELETE` stating the end state), and PowerDNS on its
/// sqlite back end answers 500 "database is locked" when two writes meet, which a moment
/// later succeeds. Longer outages still end as `transient` for the host's own retries.
fn retried(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// The pause before attempt `attempt + 1`: 25 ms doubling, under 1 s in all.
fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(25 << (attempt - 1).min(4))
}

/// The contract's error for a non-2xx answer about `what` (e.g. `zone example.com. of
/// PowerDNS server 'localhost'`) to `request`, carrying PowerDNS's own message:
///
/// - 401, 403: `denied` (the key is wrong or lacks rights);
/// - 404: `not-found` (the zone or the server id);
/// - 409, and 422 "Conflicts with pre-existing RRset" (a CNAME beside other data):
///   `conflict`;
/// - 400 and other 422s: `invalid` (PowerDNS refused the content);
/// - 429 and 5xx: `transient` with the status (a busy or failing server);
/// - anything else: `internal` with the status.
pub fn check_status(status: u16, body: &[u8], what: &str, request: &str) -> AdapterResult<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let said = wire::error_message(body);
    Err(match status {
        401 | 403 => AdapterError::Denied(format!(
            "PowerDNS refused the API key for {what} (HTTP {status} on {request}): check the \
             endpoint's secret 'api-key' and the server's api-key"
        )),
        404 => AdapterError::NotFound(format!("{what} does not exist (HTTP 404 on {request})")),
        409 => AdapterError::Conflict(format!("PowerDNS refused the change in {what}: {said}")),
        422 if said.contains("Conflicts with pre-existing") => {
            AdapterError::Conflict(format!("PowerDNS refused the change in {what}: {said}"))
        }
        400 | 422 => {
            AdapterError::Invalid(format!("PowerDNS refused the request for {what}: {said}"))
        }
        429 | 500..=599 => AdapterError::Transient(format!(
            "PowerDNS answered HTTP {status} for {what} ({request}): {said}"
        )),
        _ => AdapterError::Internal(format!(
            "PowerDNS answered HTTP {status} for {what} ({request}): {said}"
        )),
    })
}

/// `text` percent-encoded for one path segment or query value: unreserved characters and
/// `=` (PowerDNS's own escape in zone ids, `=2F` for `/`) stay, everything else is `%XX`.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHAT: &str = "zone example.com. of PowerDNS server 'localhost'";
    const REQ: &str = "PATCH http://127.0.0.1:1/api/v1/servers/localhost/zones/example.com.";

    fn status(code: u16, body: &str) -> AdapterError {
        check_status(code, body.as_bytes(), WHAT, REQ).unwrap_err()
    }

    #[test]
    fn success_is_any_2xx() {
        for code in [200, 201, 204] {
            assert!(check_status(code, b"", WHAT, REQ).is_ok());
        }
    }

    #[test]
    fn statuses_map_to_the_contract() {
        assert!(
            matches!(status(401, "Unauthorized"), AdapterError::Denied(m) if m.contains("api-key"))
        );
        assert!(matches!(status(403, ""), AdapterError::Denied(_)));
        assert!(
            matches!(status(404, "Not Found"), AdapterError::NotFound(m) if m.contains("example.com.") && m.contains("404"))
        );
        let conflict = status(
            422,
            r#"{"error": "RRset db.example.com. IN CNAME: Conflicts with pre-existing RRset"}"#,
        );
        assert!(
            matches!(&conflict, AdapterError::Conflict(m) if m.contains("Conflicts with pre-existing RRset")),
            "{conflict:?}"
        );
        assert!(matches!(
            status(422, r#"{"error": "RRset x.other. IN A: Name is out of zone"}"#),
            AdapterError::Invalid(m) if m.contains("out of zone")
        ));
        assert!(
            matches!(status(400, "{\"error\": \"bad\"}"), AdapterError::Invalid(m) if m.contains("bad"))
        );
        assert!(matches!(status(409, ""), AdapterError::Conflict(_)));
        for code in [429, 500, 502, 503] {
            assert!(
                matches!(status(code, "<html>busy</html>"), AdapterError::Transient(m) if m.contains(&code.to_string()) && m.contains("busy"))
            );
        }
        assert!(matches!(status(302, ""), AdapterError::Internal(m) if m.contains("302")));
    }

    #[test]
    fn busy_answers_are_retried_briefly() {
        assert!(retried(500) && retried(503) && retried(429));
        assert!(!retried(404) && !retried(422) && !retried(204));
        let total: u128 = (1..ATTEMPTS).map(|a| backoff(a).as_millis()).sum();
        assert!(total < 1000, "{total} ms");
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("example.com."), "example.com.");
        assert_eq!(
            segment("0=2F26.2.0.192.in-addr.arpa."),
            "0=2F26.2.0.192.in-addr.arpa."
        );
        assert_eq!(segment("*.a b/c"), "%2A.a%20b%2Fc");
    }
}
