//! The endpoint's settings and secret, checked once per call with errors naming the setting:
//!
//! - `url` (required) — the PowerDNS webserver's base, `http://HOST:PORT` or `https://…`;
//!   a trailing slash is tolerated;
//! - `server` — the PowerDNS server id in the API's paths (default `localhost`);
//! - secret `api-key` (required) — sent as `X-API-Key`, never shown in any message.

use tidemark_sdk::{AdapterError, AdapterResult};

/// Everything a call needs to reach the API, parsed.
#[derive(Clone)]
pub struct Settings {
    /// The API's base without a trailing slash, e.g. `http://127.0.0.1:8081`.
    pub base: String,
    /// The server id, e.g. `localhost`.
    pub server: String,
    /// The API key; kept out of `Debug` so no log or message can carry it.
    pub api_key: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base", &self.base)
            .field("server", &self.server)
            .field("api_key", &"<secret>")
            .finish()
    }
}

impl Settings {
    /// Reads the endpoint's settings and secret from the host.
    pub fn read() -> AdapterResult<Settings> {
        Settings::parse(
            tidemark_sdk::setting("url"),
            tidemark_sdk::setting("server"),
            tidemark_sdk::secret("api-key"),
        )
    }

    /// Checks the raw values; separate from [`Settings::read`] so it runs without a host.
    pub fn parse(
        url: Option<String>,
        server: Option<String>,
        api_key: Option<String>,
    ) -> AdapterResult<Settings> {
        let url = url
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                AdapterError::Invalid(
                    "endpoint setting 'url' is required: the PowerDNS API's base, e.g. \
                     http://127.0.0.1:8081"
                        .into(),
                )
            })?;
        let base = url.trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"));
        match rest {
            Some(authority) if !authority.is_empty() && !authority.contains(['?', '#', ' ']) => {}
            _ => {
                return Err(AdapterError::Invalid(format!(
                    "endpoint setting 'url' has a malformed value '{url}': expected \
                     http://HOST[:PORT] or https://HOST[:PORT]"
                )));
            }
        }
        let server = server
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        if !server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(AdapterError::Invalid(format!(
                "endpoint setting 'server' has a malformed value '{server}': expected a \
                 PowerDNS server id such as 'localhost'"
            )));
        }
        let api_key = api_key
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                AdapterError::Invalid(
                    "endpoint secret 'api-key' is required: the PowerDNS API key \
                     (--secret api-key=@FILE)"
                        .into(),
                )
            })?;
        if api_key.bytes().any(|b| b.is_ascii_control()) {
            return Err(AdapterError::Invalid(
                "endpoint secret 'api-key' holds control characters; it cannot be sent as a \
                 header"
                    .into(),
            ));
        }
        Ok(Settings {
            base,
            server,
            api_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn a_trailing_slash_is_tolerated_and_the_server_defaults_to_localhost() {
        let got = Settings::parse(s("http://127.0.0.1:18081/"), None, s("k\n")).unwrap();
        assert_eq!(got.base, "http://127.0.0.1:18081");
        assert_eq!(got.server, "localhost");
        assert_eq!(got.api_key, "k");
        let got = Settings::parse(s("https://dns.example"), s("ns2"), s("k")).unwrap();
        assert_eq!(
            (got.base.as_str(), got.server.as_str()),
            ("https://dns.example", "ns2")
        );
    }

    #[test]
    fn missing_or_malformed_values_are_invalid_naming_the_setting() {
        for (url, server, key, says) in [
            (None, None, s("k"), "'url' is required"),
            (s("127.0.0.1:8081"), None, s("k"), "'url' has a malformed"),
            (s("http://"), None, s("k"), "'url' has a malformed"),
            (s("http://h"), s("a/b"), s("k"), "'server'"),
            (s("http://h"), None, None, "'api-key' is required"),
            (s("http://h"), None, s("  "), "'api-key' is required"),
        ] {
            match Settings::parse(url, server, key) {
                Err(AdapterError::Invalid(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{says}: {other:?}"),
            }
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let got = Settings::parse(s("http://h"), None, s("very-secret")).unwrap();
        assert!(!format!("{got:?}").contains("very-secret"));
    }
}
