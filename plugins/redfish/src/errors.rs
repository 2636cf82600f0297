//! HTTP statuses and Redfish error bodies as the contract's errors, so the host retries what
//! is worth retrying and the operator reads what the BMC said. Credentials never appear: a
//! refusal of them says only which call was refused.

use serde_json::Value;
use tidemark_sdk::AdapterError;

/// The error for an answer of `status` to `what` (a phrase such as "machine 'x'" or
/// "ResetType On on machine 'x'"), with the BMC's own message where it gave one.
pub fn from_status(status: u16, what: &str, body: &[u8]) -> AdapterError {
    match status {
        401 | 403 => AdapterError::Denied(format!(
            "the BMC refused the endpoint's credentials for {what} (HTTP {status})"
        )),
        404 => AdapterError::NotFound(format!("{what} was not found on the BMC")),
        400 | 422 => AdapterError::Invalid(format!(
            "the BMC refused {what} as invalid: {}",
            message(body)
        )),
        405 | 501 => AdapterError::Unsupported(format!(
            "the BMC does not support {what}: {}",
            message(body)
        )),
        409 | 412 => AdapterError::Conflict(format!(
            "the BMC refused {what} in its present state: {}",
            message(body)
        )),
        429 | 500..=599 => AdapterError::Transient(format!(
            "the BMC failed {what} (HTTP {status}): {}",
            message(body)
        )),
        _ => AdapterError::Internal(format!(
            "the BMC answered {what} with unexpected HTTP {status}: {}",
            message(body)
        )),
    }
}

/// What a Redfish error body says: `error.message` and the messages of
/// `@Message.ExtendedInfo`, else the start of the body as text.
pub fn message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let error = &value["error"];
        let mut parts: Vec<String> = Vec::new();
        if let Some(m) = error["message"].as_str() {
            parts.push(m.to_string());
        }
        for info in error["@Message.ExtendedInfo"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(m) = info["Message"].as_str()
                && !parts.iter().any(|p| p == m)
            {
                parts.push(m.to_string());
            }
        }
        if parts.is_empty()
            && let Some(code) = error["code"].as_str()
        {
            parts.push(code.to_string());
        }
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "no message".into();
    }
    let mut short: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        short.push('…');
    }
    short
}
