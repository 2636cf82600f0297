//! The PowerDNS HTTP API's JSON (4.x, `/api/v1`), only the fields the adapter reads or
//! writes, and parsing that turns a body of the wrong shape into an error saying so. Checked
//! against a real PowerDNS 4.7.3 (`testdata/` holds its answers).

use serde::{Deserialize, Serialize};
use tidemark_sdk::{AdapterError, AdapterResult};

/// One zone of `GET /servers/{server}/zones`.
#[derive(Debug, Clone, Deserialize)]
pub struct ZoneSummary {
    /// Fully qualified name, e.g. `example.com.`.
    pub name: String,
    /// The id the zone's URL uses (the name, `/` escaped as `=2F`); absent in old servers.
    #[serde(default)]
    pub id: Option<String>,
}

/// A zone of `GET /servers/{server}/zones/{id}`, with its rrsets.
#[derive(Debug, Clone, Deserialize)]
pub struct Zone {
    /// Its rrsets (possibly only those asked for with `rrset_name`/`rrset_type`).
    #[serde(default)]
    pub rrsets: Vec<RrSet>,
}

/// All records of one name and type.
#[derive(Debug, Clone, Deserialize)]
pub struct RrSet {
    /// Fully qualified owner name.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, …
    #[serde(rename = "type")]
    pub rtype: String,
    /// Seconds.
    pub ttl: u32,
    /// The records, disabled ones included.
    #[serde(default)]
    pub records: Vec<Record>,
}

/// One record of an rrset.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Record {
    /// The value in zone-file form (`192.0.2.1`, `target.example.com.`).
    pub content: String,
    /// A disabled record is stored but not served.
    #[serde(default)]
    pub disabled: bool,
}

/// The body of `PATCH /servers/{server}/zones/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct Patch {
    /// The changes, applied together.
    pub rrsets: Vec<Change>,
}

/// One rrset change: `REPLACE` makes the rrset exactly `records`, `DELETE` removes it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Fully qualified owner name.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Seconds; only for `REPLACE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// `REPLACE` or `DELETE`.
    pub changetype: &'static str,
    /// The new records; only for `REPLACE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<Record>>,
}

impl Patch {
    /// Makes the rrset `name`/`rtype` exactly `values` with `ttl`, all enabled.
    pub fn replace(name: &str, rtype: &str, ttl: u32, values: &[String]) -> Patch {
        let records = values
            .iter()
            .map(|v| Record {
                content: v.clone(),
                disabled: false,
            })
            .collect();
        Patch {
            rrsets: vec![Change {
                name: name.to_string(),
                rtype: rtype.to_string(),
                ttl: Some(ttl),
                changetype: "REPLACE",
                records: Some(records),
            }],
        }
    }

    /// Removes the rrset `name`/`rtype` (PowerDNS answers 204 when there is none).
    pub fn delete(name: &str, rtype: &str) -> Patch {
        Patch {
            rrsets: vec![Change {
                name: name.to_string(),
                rtype: rtype.to_string(),
                ttl: None,
                changetype: "DELETE",
                records: None,
            }],
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a patch of strings and numbers serialises")
    }
}

/// The error body PowerDNS sends with 4xx/5xx answers of the API.
#[derive(Debug, Clone, Deserialize)]
struct ErrorBody {
    error: String,
}

/// Parses the zone list; a body of another shape is `internal` saying what was wrong.
pub fn parse_zones(body: &[u8]) -> AdapterResult<Vec<ZoneSummary>> {
    parse(body, "the zone list")
}

/// Parses one zone; a body of another shape is `internal` naming the zone.
pub fn parse_zone(body: &[u8], zone: &str) -> AdapterResult<Zone> {
    parse(body, &format!("zone {zone}"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> AdapterResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        let shape = if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
            "JSON of an unexpected shape"
        } else {
            "a body that is not JSON"
        };
        AdapterError::Internal(format!(
            "PowerDNS answered {what} with {shape} ({e}): {}",
            snippet(body)
        ))
    })
}

/// What an error answer says: its `error` field, else its text (shortened), else `no body`.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(ErrorBody { error }) = serde_json::from_slice(body) {
        return error;
    }
    let text = snippet(body);
    if text.is_empty() {
        "no body".into()
    } else {
        text
    }
}

/// At most 200 characters of a body, on one line, for messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /api/v1/servers/localhost/zones` of a PowerDNS 4.7.3 with three zones.
    const ZONES: &[u8] = include_bytes!("testdata/zones.json");
    /// `GET /api/v1/servers/localhost/zones/tidemark.test.` of the same server.
    const ZONE: &[u8] = include_bytes!("testdata/zone.json");

    #[test]
    fn a_real_zone_list_parses() {
        let zones = parse_zones(ZONES).unwrap();
        let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(
            names,
            ["tidemark.test.", "sub.tidemark.test.", "other.example."]
        );
        assert_eq!(zones[1].id.as_deref(), Some("sub.tidemark.test."));
    }

    #[test]
    fn a_real_zone_parses_with_its_rrsets() {
        let zone = parse_zone(ZONE, "tidemark.test.").unwrap();
        let a = zone
            .rrsets
            .iter()
            .find(|r| r.name == "db.tidemark.test." && r.rtype == "A")
            .unwrap();
        assert_eq!(a.ttl, 60);
        assert_eq!(
            a.records,
            [
                Record {
                    content: "192.0.2.7".into(),
                    disabled: false
                },
                Record {
                    content: "192.0.2.8".into(),
                    disabled: true
                }
            ]
        );
        let cname = zone.rrsets.iter().find(|r| r.rtype == "CNAME").unwrap();
        assert_eq!(cname.records[0].content, "db.tidemark.test.");
        assert!(zone.rrsets.iter().any(|r| r.rtype == "SOA"));
    }

    #[test]
    fn garbage_is_internal_saying_what_was_wrong() {
        for (body, says) in [
            (&b"<html>oops</html>"[..], "not JSON"),
            (b"", "not JSON"),
            (b"{\"zones\": []}", "unexpected shape"),
            (b"[{\"id\": 1}]", "unexpected shape"),
        ] {
            match parse_zones(body) {
                Err(AdapterError::Internal(m)) => {
                    assert!(m.contains(says) && m.contains("zone list"), "{m}")
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
        match parse_zone(br#"{"name": "x.", "rrsets": [{"name": "a.x."}]}"#, "x.") {
            Err(AdapterError::Internal(m)) => assert!(m.contains("zone x."), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn patches_are_what_powerdns_takes() {
        let replace = Patch::replace("db.x.", "A", 60, &["192.0.2.1".into()]);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&replace.to_json()).unwrap(),
            serde_json::json!({"rrsets": [{"name": "db.x.", "type": "A", "ttl": 60,
                "changetype": "REPLACE", "records": [{"content": "192.0.2.1", "disabled": false}]}]})
        );
        let delete = Patch::delete("db.x.", "CNAME");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&delete.to_json()).unwrap(),
            serde_json::json!({"rrsets": [{"name": "db.x.", "type": "CNAME", "changetype": "DELETE"}]})
        );
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(br#"{"error": "RRset a.x. IN A: Conflicts with pre-existing RRset"}"#),
            "RRset a.x. IN A: Conflicts with pre-existing RRset"
        );
        assert_eq!(error_message(b"Not Found"), "Not Found");
        assert_eq!(error_message(b""), "no body");
        assert!(error_message(&[b'x'; 500]).chars().count() <= 201);
    }
}
