//! The endpoint's settings and secrets, read once per call and checked before any request.
//!
//! - `url` (required): the BMC's base, `http://HOST[:PORT]` (a trailing `/` or
//!   `/redfish/v1` is tolerated).
//! - `timeout` (optional): the host's own per-call deadline (`30s`, `500ms`, bare seconds;
//!   the host reads the same key). Power calls wait for the asked state a little less than
//!   that, so the adapter can say which state the machine is stuck in before the host cuts
//!   the call off.
//! - secrets `username` and `password` (required): HTTP Basic. Never in a message or a log.

use tidemark_sdk::{AdapterError, AdapterResult};

use crate::base64;

/// The host's call deadline when the endpoint sets no `timeout` (its `DEFAULT_CALL_TIMEOUT`).
const HOST_DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Where the BMC is, how long power calls wait, and the credentials.
#[derive(Clone)]
pub struct Settings {
    /// `scheme://authority`, what every `@odata.id` path is joined to.
    pub origin: String,
    /// The service root's URL, `…/redfish/v1/`.
    pub service_root: String,
    /// How long a power call waits for the state it asked for, in milliseconds.
    pub power_wait_ms: u64,
    /// `Basic …`, built once; kept out of `Debug`.
    authorization: String,
}

/// Never shows the credentials.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("origin", &self.origin)
            .field("service_root", &self.service_root)
            .field("power_wait_ms", &self.power_wait_ms)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads and checks the settings through `setting` and `secret` (the SDK's in the
    /// component, a map in tests): `invalid` naming the key when one is missing or malformed.
    pub fn read(
        setting: impl Fn(&str) -> Option<String>,
        secret: impl Fn(&str) -> Option<String>,
    ) -> AdapterResult<Settings> {
        let url = setting("url")
            .ok_or_else(|| AdapterError::Invalid("endpoint setting 'url' is required".into()))?;
        let (origin, base) = parse_base(&url)?;
        let timeout_ms = match setting("timeout") {
            None => HOST_DEFAULT_TIMEOUT_MS,
            Some(raw) => parse_duration_ms(&raw).ok_or_else(|| {
                AdapterError::Invalid(format!(
                    "endpoint setting 'timeout' has a malformed value '{raw}': expected e.g. 60, 60s, 2m"
                ))
            })?,
        };
        let username = secret("username").ok_or_else(|| {
            AdapterError::Invalid("endpoint secret 'username' is required".into())
        })?;
        let password = secret("password").ok_or_else(|| {
            AdapterError::Invalid("endpoint secret 'password' is required".into())
        })?;
        Ok(Settings {
            origin,
            service_root: format!("{base}/redfish/v1/"),
            power_wait_ms: power_wait(timeout_ms),
            authorization: format!(
                "Basic {}",
                base64::encode(format!("{username}:{password}").as_bytes())
            ),
        })
    }

    /// The `Authorization` header's value.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }
}

/// The power wait inside a call deadline of `timeout_ms`, counted from the call's start: it
/// ends 1 s before the deadline, so the adapter can still say which state the machine is stuck
/// in before the host stops the call (half the deadline when that is under 2 s).
fn power_wait(timeout_ms: u64) -> u64 {
    if timeout_ms >= 2_000 {
        timeout_ms - 1_000
    } else {
        timeout_ms / 2
    }
}

/// `(origin, base without trailing '/' or '/redfish/v1')` of the `url` setting.
fn parse_base(url: &str) -> AdapterResult<(String, String)> {
    let bad = |why: &str| {
        AdapterError::Invalid(format!(
            "endpoint setting 'url' has a malformed value '{url}': {why}"
        ))
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains spaces or control characters"));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("expected http://HOST[:PORT] or https://HOST[:PORT]"))?;
    let scheme_len = url.len() - rest.len();
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if authority_len == 0 {
        return Err(bad("no host"));
    }
    if rest[authority_len..].starts_with(['?', '#']) {
        return Err(bad("a query or fragment has no place in a BMC's base URL"));
    }
    let origin = url[..scheme_len + authority_len].to_string();
    let mut base = url.trim_end_matches('/');
    if let Some(stripped) = base.strip_suffix("/redfish/v1") {
        base = stripped;
    }
    Ok((origin, base.to_string()))
}

/// The host's duration grammar: digits then `ms`, `s` (or nothing), `m` or `h`.
fn parse_duration_ms(raw: &str) -> Option<u64> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let ms = match unit {
        "ms" => Some(number),
        "s" | "" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    }?;
    (ms > 0).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_host_reads_them() {
        assert_eq!(parse_duration_ms("60"), Some(60_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(parse_duration_ms("0"), None);
        assert_eq!(power_wait(30_000), 29_000);
        assert_eq!(power_wait(5_000), 4_000);
        assert_eq!(power_wait(1_000), 500);
    }

    #[test]
    fn the_base_tolerates_a_trailing_slash_and_the_service_path() {
        for url in [
            "http://127.0.0.1:18000",
            "http://127.0.0.1:18000/",
            "http://127.0.0.1:18000/redfish/v1/",
        ] {
            let (origin, base) = parse_base(url).unwrap();
            assert_eq!(origin, "http://127.0.0.1:18000");
            assert_eq!(base, "http://127.0.0.1:18000");
        }
        assert!(parse_base("ftp://x").is_err());
        assert!(parse_base("http://").is_err());
        assert!(parse_base("http://a b").is_err());
    }
}
