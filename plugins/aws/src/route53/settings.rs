//! The endpoint's settings and secrets, checked once per call with errors naming the setting:
//!
//! - `url` — the API's origin (default `https://route53.amazonaws.com`; tests point it at a
//!   moto `http://127.0.0.1:PORT`); a trailing slash is tolerated;
//! - `region` — the region requests are signed for (default `us-east-1`, where Route 53's
//!   global endpoint signs);
//! - secrets `access-key-id` and `secret-access-key` (required) and `session-token` (for
//!   temporary credentials), never shown in any message.

use tidemark_sdk::{AdapterError, AdapterResult};

use crate::sigv4::Credentials;

/// Route 53's global endpoint.
pub const DEFAULT_URL: &str = "https://route53.amazonaws.com";
/// Where Route 53 requests are signed.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Everything a call needs to reach and sign for the API, parsed; `Debug` hides the secrets.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The API's origin without a trailing slash, e.g. `https://route53.amazonaws.com`.
    pub base: String,
    /// The origin's authority (`HOST[:PORT]`), which is the `Host` signed and sent.
    pub host: String,
    /// The signing region.
    pub region: String,
    /// The access key.
    pub credentials: Credentials,
}

impl Settings {
    /// Reads the endpoint's settings and secrets from the host.
    pub fn read() -> AdapterResult<Settings> {
        Settings::parse(
            tidemark_sdk::setting("url"),
            tidemark_sdk::setting("region"),
            tidemark_sdk::secret("access-key-id"),
            tidemark_sdk::secret("secret-access-key"),
            tidemark_sdk::secret("session-token"),
        )
    }

    /// Checks the raw values; separate from [`Settings::read`] so it runs without a host.
    pub fn parse(
        url: Option<String>,
        region: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    ) -> AdapterResult<Settings> {
        let url = given(url).unwrap_or_else(|| DEFAULT_URL.to_string());
        let base = url.trim_end_matches('/').to_string();
        let host = match base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
        {
            Some(a) if !a.is_empty() && !a.contains(['/', '?', '#', ' ', '@']) => a.to_string(),
            _ => {
                return Err(AdapterError::Invalid(format!(
                    "endpoint setting 'url' has a malformed value '{url}': expected \
                     https://HOST[:PORT] (default {DEFAULT_URL})"
                )));
            }
        };
        let region = given(region).unwrap_or_else(|| DEFAULT_REGION.to_string());
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(AdapterError::Invalid(format!(
                "endpoint setting 'region' has a malformed value '{region}': expected a region \
                 such as {DEFAULT_REGION}"
            )));
        }
        let access_key_id = secret(access_key_id, "access-key-id", "the access key id")?;
        let secret_access_key = secret(
            secret_access_key,
            "secret-access-key",
            "the secret access key",
        )?;
        let session_token = match given(session_token) {
            None => None,
            Some(t) => Some(header_safe(t, "session-token")?),
        };
        Ok(Settings {
            base,
            host,
            region,
            credentials: Credentials {
                access_key_id,
                secret_access_key,
                session_token,
            },
        })
    }

    /// Every secret of the endpoint, for scrubbing messages.
    pub fn secrets(&self) -> Vec<&str> {
        let c = &self.credentials;
        let mut all = vec![c.access_key_id.as_str(), c.secret_access_key.as_str()];
        all.extend(c.session_token.as_deref());
        all
    }
}

/// A value that was given and is not blank, trimmed.
fn given(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A required secret, trimmed, or `invalid` naming it (never its value).
fn secret(value: Option<String>, name: &str, what: &str) -> AdapterResult<String> {
    let value = given(value).ok_or_else(|| {
        AdapterError::Invalid(format!(
            "endpoint secret '{name}' is required: {what} of an IAM user allowed to change \
             Route 53 (--secret {name}=@FILE)"
        ))
    })?;
    header_safe(value, name)
}

/// `value` if it can go into a header (the key id and the token do).
fn header_safe(value: String, name: &str) -> AdapterResult<String> {
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(AdapterError::Invalid(format!(
            "endpoint secret '{name}' holds control characters; it cannot be sent"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn defaults_are_route53s_global_endpoint_signed_in_us_east_1() {
        let got = Settings::parse(None, None, s("AKID\n"), s("sekrit"), None).unwrap();
        assert_eq!(got.base, DEFAULT_URL);
        assert_eq!(got.host, "route53.amazonaws.com");
        assert_eq!(got.region, "us-east-1");
        assert_eq!(got.credentials.access_key_id, "AKID");
        assert!(got.credentials.session_token.is_none());
        let got = Settings::parse(
            s("http://127.0.0.1:5055/"),
            s("cn-northwest-1"),
            s("a"),
            s("b"),
            s(" tok "),
        )
        .unwrap();
        assert_eq!(
            (got.base.as_str(), got.host.as_str(), got.region.as_str()),
            ("http://127.0.0.1:5055", "127.0.0.1:5055", "cn-northwest-1")
        );
        assert_eq!(got.credentials.session_token.as_deref(), Some("tok"));
        assert_eq!(got.secrets(), ["a", "b", "tok"]);
    }

    #[test]
    fn missing_or_malformed_values_are_invalid_naming_the_setting() {
        for (url, region, key, secret, says) in [
            (s("route53.amazonaws.com"), None, s("k"), s("s"), "'url'"),
            (s("https://"), None, s("k"), s("s"), "'url'"),
            (s("https://h/x"), None, s("k"), s("s"), "'url'"),
            (None, s("US East"), s("k"), s("s"), "'region'"),
            (None, None, None, s("s"), "'access-key-id' is required"),
            (
                None,
                None,
                s("k"),
                s(" "),
                "'secret-access-key' is required",
            ),
            (None, None, s("k\u{7}x"), s("s"), "control characters"),
        ] {
            match Settings::parse(url, region, key, secret, None) {
                Err(AdapterError::Invalid(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{says}: {other:?}"),
            }
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let got =
            Settings::parse(None, None, s("AKIDSECRET1"), s("very-secret"), s("tok9")).unwrap();
        let shown = format!("{got:?}");
        for secret in ["AKIDSECRET1", "very-secret", "tok9"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
