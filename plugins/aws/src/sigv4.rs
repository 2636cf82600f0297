//! AWS Signature Version 4, written from the specification and shared by every AWS adapter
//! of this crate: the canonical request, the string to sign, the signing key derived from the
//! secret and the credential scope, and the headers that carry the result (`x-amz-date`,
//! `x-amz-content-sha256` where asked for, `x-amz-security-token` with temporary
//! credentials, `authorization`). The time comes from the caller, so signing is a pure
//! function and the published test vectors check it byte for byte.
//!
//! Paths follow the rules of every service but S3: normalised (no `.`, `..` or empty
//! segments) and URI-encoded once more for the canonical request. Query parameters are given
//! decoded; [`canonical_query`] is both what is signed and what the URL must carry.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The one algorithm this module signs with.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An access key, possibly temporary. `Debug` shows only the key id's first characters, so
/// no log or message can carry a secret.
#[derive(Clone)]
pub struct Credentials {
    /// `AKIA…` (or `ASIA…` for temporary credentials).
    pub access_key_id: String,
    /// The secret half; only ever fed into HMAC.
    pub secret_access_key: String,
    /// The session token of temporary credentials, sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &"<secret>")
            .field("secret_access_key", &"<secret>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<secret>"),
            )
            .finish()
    }
}

/// Where a signature is valid: the region and service of the credential scope.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// E.g. `us-east-1` (Route 53 always signs there).
    pub region: &'a str,
    /// The signing name, e.g. `route53`, `ec2`.
    pub service: &'a str,
}

/// One request as it will be sent, the part of it a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The `Host` the request is sent with: the URL's authority, `HOST[:PORT]`.
    pub host: &'a str,
    /// The path as sent, e.g. `/2013-04-01/hostedzone`.
    pub path: &'a str,
    /// Query parameters, decoded; the URL must carry [`canonical_query`] of them.
    pub query: &'a [(String, String)],
    /// Headers sent besides `Host` and the ones signing adds; all are signed.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

/// How a service wants its requests signed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Send and sign `x-amz-content-sha256` (S3 and EBS require it; Route 53 accepts it,
    /// and moto needs it to check a GET, see `route53::api`).
    pub content_sha256: bool,
}

/// A signature and the headers that carry it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Headers to add to the request (lower-case names): `x-amz-date`, then
    /// `x-amz-content-sha256` and `x-amz-security-token` where they apply, then
    /// `authorization`.
    pub headers: Vec<(String, String)>,
    /// The canonical request that was signed (no secret in it), for tests and debugging.
    pub canonical_request: String,
    /// The string to sign (no secret in it), for tests and debugging.
    pub string_to_sign: String,
}

/// Signs `request` for `scope` with `credentials` at `amz_date` (`YYYYMMDDTHHMMSSZ`, see
/// [`amz_date`]).
pub fn sign(
    request: &Request,
    credentials: &Credentials,
    scope: Scope,
    amz_date: &str,
    options: Options,
) -> Signed {
    let payload_hash = hex(&Sha256::digest(request.body));
    let mut added: Vec<(String, String)> = vec![("x-amz-date".into(), amz_date.into())];
    if options.content_sha256 {
        added.push(("x-amz-content-sha256".into(), payload_hash.clone()));
    }
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token".into(), token.clone()));
    }
    let mut all: Vec<(String, String)> = vec![("host".into(), request.host.into())];
    all.extend(request.headers.iter().cloned());
    all.extend(added.iter().cloned());
    let (canonical_headers, signed_headers) = canonical_headers(&all);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_path(request.path),
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        payload_hash
    );
    let date = &amz_date[..amz_date.len().min(8)];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let key = signing_key(&credentials.secret_access_key, date, scope);
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    added.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, \
             Signature={signature}",
            credentials.access_key_id
        ),
    ));
    Signed {
        headers: added,
        canonical_request,
        string_to_sign,
    }
}

/// The key of one day, region and service: HMAC chained from `AWS4` + the secret.
pub fn signing_key(secret: &str, date: &str, scope: Scope) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `ms` since the Unix epoch as SigV4 writes time: `YYYYMMDDTHHMMSSZ`, UTC.
pub fn amz_date(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Query parameters encoded and sorted by key, then value: what is signed, and what the
/// URL must carry after its `?` so the server sees the same.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The path normalised (RFC 3986 dot segments and empty segments removed, a final `/`
/// kept) with each segment URI-encoded: the canonical URI of every service but S3.
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| uri_encode(s, true))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Headers lower-cased, values trimmed with inner runs of spaces collapsed, repeated names
/// joined with `,`, sorted: (the canonical header block, the signed-header list).
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut sorted: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.trim().to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in sorted {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let block: String = merged.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let names = merged
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (block, names)
}

/// `text` with every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`
/// (upper-case hex); `/` too when `slash` is set.
pub fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (b == b'/' && !slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const WHEN: &str = "20150830T123600Z";

    /// One vector of the suite: its files, by name.
    struct Vector {
        name: &'static str,
        context: &'static str,
        request: &'static str,
        canonical: &'static str,
        string_to_sign: &'static str,
        signed: &'static str,
    }

    macro_rules! vector {
        ($name:literal) => {
            Vector {
                name: $name,
                context: include_str!(concat!("testdata/sigv4/", $name, "/context.json")),
                request: include_str!(concat!("testdata/sigv4/", $name, "/request.txt")),
                canonical: include_str!(concat!(
                    "testdata/sigv4/",
                    $name,
                    "/header-canonical-request.txt"
                )),
                string_to_sign: include_str!(concat!(
                    "testdata/sigv4/",
                    $name,
                    "/header-string-to-sign.txt"
                )),
                signed: include_str!(concat!(
                    "testdata/sigv4/",
                    $name,
                    "/header-signed-request.txt"
                )),
            }
        };
    }

    const VECTORS: &[Vector] = &[
        vector!("get-vanilla"),
        vector!("get-vanilla-query-order-key-case"),
        vector!("get-vanilla-query-order-encoded"),
        vector!("get-vanilla-query-unreserved"),
        vector!("get-vanilla-utf8-query"),
        vector!("get-vanilla-with-session-token"),
        vector!("get-utf8"),
        vector!("get-space-normalized"),
        vector!("get-slashes-normalized"),
        vector!("post-vanilla"),
        vector!("post-vanilla-query"),
        vector!("post-header-key-sort"),
        vector!("post-x-www-form-urlencoded"),
    ];

    fn percent_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// A request of the suite's `request.txt` form: (method, host, path, query, headers, body).
    #[allow(clippy::type_complexity)]
    fn parse_request(
        text: &str,
    ) -> (
        String,
        String,
        String,
        Vec<(String, String)>,
        Vec<(String, String)>,
        Vec<u8>,
    ) {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let first = lines.next().unwrap();
        let (method, rest) = first.split_once(' ').unwrap();
        let target = rest.rsplit_once(' ').unwrap().0;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let mut host = String::new();
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').unwrap();
            if name.eq_ignore_ascii_case("host") {
                host = value.to_string();
            } else {
                headers.push((name.to_string(), value.to_string()));
            }
        }
        (
            method.into(),
            host,
            path.into(),
            query,
            headers,
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn the_published_test_suite_signs_byte_for_byte() {
        for v in VECTORS {
            let context: serde_json::Value = serde_json::from_str(v.context).unwrap();
            assert_eq!(context["timestamp"], "2015-08-30T12:36:00Z", "{}", v.name);
            let credentials = Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: SECRET.into(),
                session_token: context["credentials"]["token"].as_str().map(String::from),
            };
            let (method, host, path, query, headers, body) = parse_request(v.request);
            let request = Request {
                method: &method,
                host: &host,
                path: &path,
                query: &query,
                headers: &headers,
                body: &body,
            };
            let options = Options {
                content_sha256: context["sign_body"] == true,
            };
            let scope = Scope {
                region: "us-east-1",
                service: "service",
            };
            let signed = sign(&request, &credentials, scope, WHEN, options);
            assert_eq!(signed.canonical_request, v.canonical, "{}", v.name);
            assert_eq!(signed.string_to_sign, v.string_to_sign, "{}", v.name);
            let wanted = v
                .signed
                .lines()
                .find_map(|l| l.strip_prefix("Authorization:"))
                .unwrap();
            let got = &signed.headers.last().unwrap();
            assert_eq!(got.0, "authorization", "{}", v.name);
            assert_eq!(got.1, wanted, "{}", v.name);
        }
    }

    /// The example of AWS's "Create a signed AWS API request" guide (IAM ListUsers).
    #[test]
    fn the_iam_list_users_example_of_the_documentation() {
        let credentials = Credentials {
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
            session_token: None,
        };
        let scope = Scope {
            region: "us-east-1",
            service: "iam",
        };
        assert_eq!(
            hex(&signing_key(SECRET, "20150830", scope)),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let query = [
            ("Version".to_string(), "2010-05-08".to_string()),
            ("Action".to_string(), "ListUsers".to_string()),
        ];
        let headers = [(
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        )];
        let request = Request {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let signed = sign(&request, &credentials, scope, WHEN, Options::default());
        assert_eq!(
            hex(&Sha256::digest(signed.canonical_request.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            signed.headers.last().unwrap().1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn signing_adds_the_headers_the_service_wants_in_order() {
        let credentials = Credentials {
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
            session_token: Some("tok".into()),
        };
        let request = Request {
            method: "GET",
            host: "127.0.0.1:5000",
            path: "/2013-04-01/hostedzone",
            query: &[],
            headers: &[],
            body: b"",
        };
        let scope = Scope {
            region: "us-east-1",
            service: "route53",
        };
        let signed = sign(
            &request,
            &credentials,
            scope,
            WHEN,
            Options {
                content_sha256: true,
            },
        );
        let names: Vec<&str> = signed.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-amz-date",
                "x-amz-content-sha256",
                "x-amz-security-token",
                "authorization"
            ]
        );
        assert!(
            signed.headers[3].1.contains(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
            )
        );
        assert!(!format!("{credentials:?}").contains(SECRET));
        assert!(!format!("{signed:?}").contains(SECRET));
    }

    #[test]
    fn time_is_written_as_sigv4_wants_it() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160_000), WHEN);
        assert_eq!(amz_date(951_825_600_000), "20000229T120000Z");
        assert_eq!(amz_date(4_102_444_799_999), "20991231T235959Z");
    }

    #[test]
    fn queries_are_encoded_and_sorted_for_the_url_too() {
        let q = |pairs: &[(&str, &str)]| {
            canonical_query(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            q(&[
                ("type", "A"),
                ("name", "*.tidemark.test."),
                ("maxitems", "1")
            ]),
            "maxitems=1&name=%2A.tidemark.test.&type=A"
        );
        assert_eq!(q(&[("marker", "ab==/+")]), "marker=ab%3D%3D%2F%2B");
        assert_eq!(q(&[]), "");
    }
}
