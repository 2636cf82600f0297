//! Names, zones and values as DNS adapters check them before anything is sent: names in
//! lower case and fully qualified, the zone a name lives in, values canonical for their
//! kind. Pure functions of their input with no SDK dependency unless the `contract` feature
//! asks for the conversions to the contract's types, so they build for the host and for
//! `wasm32-wasip2` alike and every rule is tested without a server.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[cfg(feature = "contract")]
mod contract;

/// The longest name DNS allows, without the final dot.
const MAX_NAME: usize = 253;

/// The record kinds the `dns` contract knows; adapters map the contract's enum onto it so
/// this crate needs no bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// One target host name.
    Cname,
}

impl Kind {
    /// The record type as DNS servers and their APIs spell it (`A`, `AAAA`, `CNAME`).
    pub fn rtype(self) -> &'static str {
        match self {
            Kind::A => "A",
            Kind::Aaaa => "AAAA",
            Kind::Cname => "CNAME",
        }
    }
}

/// Why a name, value or zone was refused; the message says what was wrong and is meant for
/// the operator as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The input is malformed or outside the zone (the contract's `invalid`).
    Invalid(String),
    /// The zone does not exist where the adapter looked (the contract's `not-found`).
    NotFound(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Invalid(m) | NameError::NotFound(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for NameError {}

/// A record name or CNAME target in lower case with its final dot: the contract accepts names
/// with or without it, servers want it. Labels are letters, digits, `-` and `_`, 1–63 bytes;
/// a first label `*` (a wildcard) is allowed.
pub fn normalise(name: &str) -> Result<String, NameError> {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower.strip_suffix('.').unwrap_or(&lower);
    let bad = |why: &str| {
        Err(NameError::Invalid(format!(
            "'{name}' is not a DNS name: {why}"
        )))
    };
    if bare.is_empty() {
        return bad("it is empty");
    }
    if bare.len() > MAX_NAME {
        return bad("longer than 253 characters");
    }
    for (i, label) in bare.split('.').enumerate() {
        if label.is_empty() {
            return bad("it has an empty label");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if i == 0 && label == "*" {
            continue;
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("labels hold only letters, digits, '-' and '_'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    Ok(format!("{bare}."))
}

/// A zone name as a server lists it, for comparing: lower case with the final dot. Not
/// checked like a record name, since a server's zones may use forms (`0/26.2.0.192.in-addr.
/// arpa.`) no record name here would.
pub fn zone_key(zone: &str) -> String {
    let lower = zone.trim().to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

/// Whether fully qualified `name` is `zone` or below it (both normalised).
pub fn within(name: &str, zone: &str) -> bool {
    zone == "." || name == zone || name.ends_with(&format!(".{zone}"))
}

/// The zone `name` lives in, as an index into `zones` (normalised with [`zone_key`], each
/// once). `holder` says whose zones they are in messages (`PowerDNS server 'localhost'`).
///
/// With `given` empty the longest zone holding the name is chosen; none is `NotFound`
/// naming the name. With a zone given it must be one of `zones` (`NotFound`), hold the
/// name (`Invalid`), and no longer zone may hold it too (`Invalid`: that record belongs to
/// the child zone, and writing it in the parent would be shadowed).
pub fn choose_zone(
    zones: &[String],
    given: &str,
    name: &str,
    holder: &str,
) -> Result<usize, NameError> {
    let longest = zones
        .iter()
        .enumerate()
        .filter(|(_, z)| within(name, z))
        .max_by_key(|(_, z)| z.len())
        .map(|(i, _)| i);
    let given = given.trim();
    if given.is_empty() {
        return longest.ok_or_else(|| {
            NameError::NotFound(format!(
                "no zone of {holder} holds {name} (zones: {})",
                listed(zones)
            ))
        });
    }
    let given = zone_key(given);
    let Some(at) = zones.iter().position(|z| *z == given) else {
        return Err(NameError::NotFound(format!(
            "zone {given} is not on {holder} (zones: {})",
            listed(zones)
        )));
    };
    if !within(name, &given) {
        return Err(NameError::Invalid(format!(
            "{name} is outside zone {given} (names are fully qualified)"
        )));
    }
    match longest {
        Some(child) if child != at => Err(NameError::Invalid(format!(
            "{name} belongs to zone {}, which {holder} holds below {given}: a record for it in \
             {given} would not be served; name zone {} instead",
            zones[child], zones[child]
        ))),
        _ => Ok(at),
    }
}

/// Zones for a message, `none` when there are none.
fn listed(zones: &[String]) -> String {
    if zones.is_empty() {
        "none".into()
    } else {
        zones.join(", ")
    }
}

/// The values as a server will hold them, or `Invalid` saying which one is wrong: addresses
/// of the kind for A and AAAA (in canonical form, so a read-back matches), exactly one host
/// name for CNAME (fully qualified, not a wildcard), at least one value. Duplicates are
/// dropped: a record set holds each value once, and servers refuse a repeated one.
pub fn check_values(name: &str, kind: Kind, values: &[String]) -> Result<Vec<String>, NameError> {
    let what = kind.rtype();
    let bad = |why: String| Err(NameError::Invalid(format!("{what} record {name}: {why}")));
    if values.is_empty() {
        return bad("no value given".into());
    }
    if kind == Kind::Cname && values.len() != 1 {
        return bad(format!("a CNAME names one target, not {}", values.len()));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let raw = value.trim();
        let canonical = match kind {
            Kind::A => raw.parse::<Ipv4Addr>().ok().map(|a| a.to_string()),
            Kind::Aaaa => raw.parse::<Ipv6Addr>().ok().map(|a| a.to_string()),
            Kind::Cname => normalise(raw).ok().filter(|n| !n.starts_with("*.")),
        };
        let Some(canonical) = canonical else {
            let wanted = match kind {
                Kind::A => "an IPv4 address",
                Kind::Aaaa => "an IPv6 address",
                Kind::Cname => "a host name",
            };
            return bad(format!("'{value}' is not {wanted}"));
        };
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLDER: &str = "PowerDNS server 'localhost'";

    fn zones(z: &[&str]) -> Vec<String> {
        z.iter().map(|z| zone_key(z)).collect()
    }

    fn invalid(r: Result<impl std::fmt::Debug, NameError>) -> String {
        match r {
            Err(NameError::Invalid(m)) => m,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn record_types_are_spelled_as_servers_spell_them() {
        assert_eq!(
            [Kind::A.rtype(), Kind::Aaaa.rtype(), Kind::Cname.rtype()],
            ["A", "AAAA", "CNAME"]
        );
    }

    #[test]
    fn names_are_lower_case_and_fully_qualified() {
        assert_eq!(normalise("DB.Example.COM").unwrap(), "db.example.com.");
        assert_eq!(normalise(" db.example.com. ").unwrap(), "db.example.com.");
        assert_eq!(
            normalise("_sip._tcp.example.com").unwrap(),
            "_sip._tcp.example.com."
        );
        assert_eq!(normalise("*.example.com.").unwrap(), "*.example.com.");
        for (bad, says) in [
            ("", "empty"),
            (".", "empty"),
            ("a..b", "empty label"),
            ("bad name!.example", "only letters"),
            ("-a.example", "starts or ends"),
            ("a.*.example", "only letters"),
        ] {
            let m = invalid(normalise(bad));
            assert!(m.contains(says), "{bad:?}: {m}");
        }
        assert!(normalise(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(normalise(&["abc"; 70].join(".")).is_err());
    }

    #[test]
    fn zone_keys_and_containment() {
        assert_eq!(zone_key("Example.COM"), "example.com.");
        assert!(within("example.com.", "example.com."));
        assert!(within("a.b.example.com.", "example.com."));
        assert!(!within("badexample.com.", "example.com."));
        assert!(!within("com.", "example.com."));
        assert!(within("anything.", "."));
    }

    #[test]
    fn without_a_zone_the_longest_holding_the_name_is_chosen() {
        let z = zones(&["example.com.", "sub.example.com.", "other.org"]);
        assert_eq!(choose_zone(&z, "", "db.example.com.", HOLDER).unwrap(), 0);
        assert_eq!(
            choose_zone(&z, "", "db.sub.example.com.", HOLDER).unwrap(),
            1
        );
        assert_eq!(choose_zone(&z, " ", "sub.example.com.", HOLDER).unwrap(), 1);
        assert_eq!(choose_zone(&z, "", "other.org.", HOLDER).unwrap(), 2);
        match choose_zone(&z, "", "db.nowhere.net.", HOLDER) {
            Err(NameError::NotFound(m)) => {
                assert!(
                    m.contains("db.nowhere.net.")
                        && m.contains("sub.example.com.")
                        && m.contains(HOLDER),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            choose_zone(&[], "", "db.example.com.", HOLDER),
            Err(NameError::NotFound(m)) if m.contains("none")
        ));
    }

    #[test]
    fn a_given_zone_must_exist_hold_the_name_and_not_be_a_parent_of_its_zone() {
        let z = zones(&["example.com.", "sub.example.com."]);
        assert_eq!(
            choose_zone(&z, "Example.com", "db.example.com.", HOLDER).unwrap(),
            0
        );
        assert_eq!(
            choose_zone(&z, "sub.example.com.", "x.sub.example.com.", HOLDER).unwrap(),
            1
        );
        match choose_zone(&z, "nope.invalid.", "www.nope.invalid.", HOLDER) {
            Err(NameError::NotFound(m)) => assert!(m.contains("nope.invalid."), "{m}"),
            other => panic!("{other:?}"),
        }
        let m = invalid(choose_zone(
            &z,
            "example.com.",
            "db.elsewhere.invalid.",
            HOLDER,
        ));
        assert!(m.contains("outside zone example.com."), "{m}");
        let m = invalid(choose_zone(
            &z,
            "sub.example.com.",
            "db.example.com.",
            HOLDER,
        ));
        assert!(m.contains("outside"), "{m}");
        let m = invalid(choose_zone(
            &z,
            "example.com.",
            "x.sub.example.com.",
            HOLDER,
        ));
        assert!(m.contains("belongs to zone sub.example.com."), "{m}");
        let m = invalid(choose_zone(&z, "example.com.", "sub.example.com.", HOLDER));
        assert!(m.contains("belongs to zone sub.example.com."), "{m}");
    }

    #[test]
    fn values_must_be_of_their_kind_and_come_back_canonical() {
        let v = |vs: &[&str]| vs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let n = "db.example.com.";
        assert_eq!(
            check_values(n, Kind::A, &v(&["192.0.2.1", " 192.0.2.2", "192.0.2.1"])).unwrap(),
            v(&["192.0.2.1", "192.0.2.2"])
        );
        assert_eq!(
            check_values(n, Kind::Aaaa, &v(&["2001:DB8:0:0::10"])).unwrap(),
            v(&["2001:db8::10"])
        );
        assert_eq!(
            check_values(n, Kind::Cname, &v(&["Web.Example.com"])).unwrap(),
            v(&["web.example.com."])
        );
        for (kind, values, says) in [
            (Kind::A, v(&[]), "no value"),
            (
                Kind::A,
                v(&["not-an-address"]),
                "'not-an-address' is not an IPv4",
            ),
            (Kind::A, v(&["2001:db8::1"]), "not an IPv4"),
            (Kind::A, v(&["192.0.2.01"]), "not an IPv4"),
            (Kind::Aaaa, v(&["192.0.2.1"]), "not an IPv6"),
            (
                Kind::Cname,
                v(&["a.example.", "b.example."]),
                "one target, not 2",
            ),
            (Kind::Cname, v(&["bad name!"]), "not a host name"),
            (Kind::Cname, v(&["*.example.com."]), "not a host name"),
            (Kind::Cname, v(&[]), "no value"),
        ] {
            let m = invalid(check_values(n, kind, &values));
            assert!(m.contains(says) && m.contains(n), "{values:?}: {m}");
        }
    }

    #[test]
    fn errors_display_their_message() {
        assert_eq!(NameError::NotFound("gone".into()).to_string(), "gone");
    }
}
