//! What Route 53's error answers mean in the contract's errors, read from the error code in
//! the body first and the HTTP status second, and every message scrubbed of the secrets.

use tidemark_sdk::AdapterError;

use super::xml::{ErrorBody, parse_error};

/// Codes that mean the credentials or their rights were refused.
const DENIED: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "InvalidSignatureException",
    "ExpiredToken",
    "RequestExpired",
    "NotAuthorized",
];

/// Codes worth sending the request again for.
const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
];

/// Codes of a request Route 53 found wrong.
const INVALID: &[&str] = &[
    "InvalidChangeBatch",
    "InvalidInput",
    "InvalidArgument",
    "InvalidDomainName",
];

/// Codes of something that does not exist.
const NOT_FOUND: &[&str] = &["NoSuchHostedZone", "HostedZoneNotFound", "NoSuchChange"];

/// Whether an answer is worth sending again at once (throttled, busy, failing): every
/// request the adapter sends states its end result, so repeating one is harmless.
pub fn retried(status: u16, body: &[u8]) -> bool {
    if status == 429 || (500..=599).contains(&status) {
        return true;
    }
    status == 400 && parse_error(body).is_some_and(|e| TRANSIENT.contains(&e.code.as_str()))
}

/// The contract's error for a non-2xx answer about `what` (e.g. `zone tidemark.test. of
/// Route 53`) to `request` (`GET URL`):
///
/// - `SignatureDoesNotMatch`, `InvalidClientTokenId`, `AccessDenied`, … or HTTP 401/403:
///   `denied`, naming the secrets to check, never their values;
/// - `NoSuchHostedZone` or HTTP 404: `not-found`;
/// - `InvalidChangeBatch`, `InvalidInput`: `conflict` when Route 53 says the record
///   conflicts with or already exists, else `invalid`;
/// - `Throttling`, `PriorRequestNotComplete`, HTTP 429 and 5xx: `transient`;
/// - anything else: `internal`, with the status and what the body starts with.
pub fn from_answer(status: u16, body: &[u8], what: &str, request: &str) -> AdapterError {
    let said = parse_error(body);
    let code = said.as_ref().map(|e| e.code.as_str()).unwrap_or("");
    let text = describe(status, said.as_ref(), body);
    if DENIED.contains(&code) || (said.is_none() && matches!(status, 401 | 403)) {
        return AdapterError::Denied(format!(
            "Route 53 refused the credentials for {what} ({text}): check the endpoint's \
             secrets 'access-key-id' and 'secret-access-key' (and 'session-token'), the \
             user's permissions and the host's clock"
        ));
    }
    if NOT_FOUND.contains(&code) || (said.is_none() && status == 404) {
        return AdapterError::NotFound(format!("{what} does not exist ({text})"));
    }
    if INVALID.contains(&code) {
        let lower = text.to_ascii_lowercase();
        return if lower.contains("conflict") || lower.contains("already exists") {
            AdapterError::Conflict(format!("Route 53 refused the change in {what}: {text}"))
        } else {
            AdapterError::Invalid(format!("Route 53 refused the request for {what}: {text}"))
        };
    }
    if TRANSIENT.contains(&code) || status == 429 || (500..=599).contains(&status) {
        return AdapterError::Transient(format!(
            "Route 53 is busy or failing for {what} ({request}): {text}"
        ));
    }
    AdapterError::Internal(format!(
        "Route 53 answered {what} unexpectedly ({request}): {text}"
    ))
}

/// `HTTP 403 SignatureDoesNotMatch: message`, or the status and the body's start when the
/// body is not an error document.
fn describe(status: u16, said: Option<&ErrorBody>, body: &[u8]) -> String {
    match said {
        Some(e) if e.message.is_empty() => format!("HTTP {status} {}", e.code),
        Some(e) => format!("HTTP {status} {}: {}", e.code, e.message),
        None => {
            let start: String = String::from_utf8_lossy(body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(120)
                .collect();
            if start.is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                format!("HTTP {status}, a body that is no Route 53 error: '{start}'")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHAT: &str = "zone tidemark.test. of Route 53";
    const REQ: &str = "GET http://127.0.0.1:1/2013-04-01/hostedzone/Z1/rrset";

    fn error(status: u16, body: &[u8]) -> AdapterError {
        from_answer(status, body, WHAT, REQ)
    }

    fn aws(code: &str, message: &str) -> Vec<u8> {
        format!(
            "<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error>\
             <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>r</RequestId></ErrorResponse>"
        )
        .into_bytes()
    }

    #[test]
    fn refused_credentials_are_denied_naming_the_secrets_to_check() {
        for body in [
            &include_bytes!("../testdata/route53/error_signature.xml")[..],
            &include_bytes!("../testdata/route53/error_unknown_key.xml")[..],
            &aws("AccessDenied", "User is not authorized")[..],
            b"",
        ] {
            match error(403, body) {
                AdapterError::Denied(m) => {
                    assert!(m.contains("'secret-access-key'") && m.contains(WHAT), "{m}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            error(400, &aws("IncompleteSignature", "x")),
            AdapterError::Denied(_)
        ));
    }

    #[test]
    fn missing_zones_conflicts_and_bad_requests() {
        let missing = error(
            404,
            include_bytes!("../testdata/route53/error_no_such_zone.xml"),
        );
        assert!(
            matches!(&missing, AdapterError::NotFound(m) if m.contains("NoSuchHostedZone")),
            "{missing:?}"
        );
        let conflict = error(
            400,
            b"<InvalidChangeBatch><Messages><Message>RRSet of type CNAME with DNS name a. is \
              not permitted because a conflicting RRSet of type A with the same DNS name \
              already exists in zone b.</Message></Messages></InvalidChangeBatch>",
        );
        assert!(
            matches!(conflict, AdapterError::Conflict(_)),
            "{conflict:?}"
        );
        assert!(matches!(
            error(
                400,
                &aws(
                    "InvalidChangeBatch",
                    "Tried to create resource record set [name='a.', type='A'] but it already exists"
                )
            ),
            AdapterError::Conflict(_)
        ));
        let invalid = error(
            400,
            include_bytes!("../testdata/route53/error_invalid_input.xml"),
        );
        assert!(
            matches!(&invalid, AdapterError::Invalid(m) if m.contains("InvalidInput")),
            "{invalid:?}"
        );
    }

    #[test]
    fn throttling_and_failing_servers_are_transient_and_retried() {
        for (status, body) in [
            (400, aws("Throttling", "Rate exceeded")),
            (400, aws("PriorRequestNotComplete", "wait")),
            (
                500,
                include_bytes!("../testdata/route53/error_500.html").to_vec(),
            ),
            (503, Vec::new()),
            (429, Vec::new()),
        ] {
            assert!(
                matches!(error(status, &body), AdapterError::Transient(_)),
                "{status}"
            );
            assert!(retried(status, &body), "{status}");
        }
        assert!(!retried(400, &aws("InvalidInput", "x")));
        assert!(!retried(403, b""));
        assert!(!retried(200, b""));
    }

    #[test]
    fn anything_else_is_internal_showing_what_came() {
        match error(302, b"<html><body>moved</body></html>") {
            AdapterError::Internal(m) => {
                assert!(m.contains("302") && m.contains("<html>"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error(400, &aws("SomethingNew", "")),
            AdapterError::Internal(m) if m.contains("SomethingNew")
        ));
    }
}
