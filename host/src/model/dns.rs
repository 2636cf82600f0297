//! DNS records as the engine speaks of them: what a cut-over repoints, whatever server holds
//! the zone.

use serde::{Deserialize, Serialize};

/// The record types Tidemark changes (an enum in the API's schema, so that clients and
/// fuzzers know the three names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum RecordKind {
    #[serde(rename = "A")]
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
}

impl RecordKind {
    /// Every kind, for messages.
    pub const ALL: [RecordKind; 3] = [RecordKind::A, RecordKind::Aaaa, RecordKind::Cname];
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::A => "A",
            RecordKind::Aaaa => "AAAA",
            RecordKind::Cname => "CNAME",
        })
    }
}

impl std::str::FromStr for RecordKind {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.to_string().eq_ignore_ascii_case(raw))
            .ok_or_else(|| format!("record kind must be A, AAAA or CNAME, not '{raw}'"))
    }
}

/// One record set: a name, a kind, its values and TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Fully qualified (`db.example.com.`).
    pub name: String,
    pub kind: RecordKind,
    /// Addresses (A, AAAA) or the one target name (CNAME).
    pub values: Vec<String>,
    /// Seconds.
    pub ttl: u32,
}

/// `name` fully qualified: lower case with the final dot, as adapters answer names.
pub fn fqdn(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_in_any_case_and_names_get_their_dot() {
        assert_eq!("aaaa".parse::<RecordKind>(), Ok(RecordKind::Aaaa));
        assert_eq!("CNAME".parse::<RecordKind>(), Ok(RecordKind::Cname));
        assert!("MX".parse::<RecordKind>().unwrap_err().contains("'MX'"));
        assert_eq!(fqdn("Db.Example.com"), "db.example.com.");
        assert_eq!(fqdn("db.example.com."), "db.example.com.");
    }
}
