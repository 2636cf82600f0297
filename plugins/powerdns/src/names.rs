//! Names, zones and values as PowerDNS wants them, checked before anything is sent: names in
//! lower case and fully qualified, the zone a name lives in, values canonical for their kind.
//! Pure functions, so every rule is tested without a server.

use std::net::{Ipv4Addr, Ipv6Addr};

use tidemark_sdk::{AdapterError, AdapterResult, RecordKind};

/// The longest name DNS allows, without the final dot.
const MAX_NAME: usize = 253;

/// The record type as PowerDNS spells it.
pub fn rtype(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::A => "A",
        RecordKind::Aaaa => "AAAA",
        RecordKind::Cname => "CNAME",
    }
}

/// A record name or CNAME target in lower case with its final dot: the contract accepts names
/// with or without it, PowerDNS wants it (`is not canonical` otherwise). Labels are letters,
/// digits, `-` and `_`, 1–63 bytes; a first label `*` (a wildcard) is allowed.
pub fn normalise(name: &str) -> AdapterResult<String> {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower.strip_suffix('.').unwrap_or(&lower);
    let bad = |why: &str| {
        Err(AdapterError::Invalid(format!(
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

/// A zone name as the server lists it, for comparing: lower case with the final dot. Not
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

/// The zone `name` lives in, as an index into `zones` (normalised with [`zone_key`]).
///
/// With `given` empty the longest zone holding the name is chosen; none is `not-found`
/// naming the name. With a zone given it must be one of the server's (`not-found`), hold the
/// name (`invalid`), and no longer zone of the server may hold it too (`invalid`: that
/// record belongs to the child zone, and writing it in the parent would be shadowed).
pub fn choose_zone(
    zones: &[String],
    given: &str,
    name: &str,
    server: &str,
) -> AdapterResult<usize> {
    let longest = zones
        .iter()
        .enumerate()
        .filter(|(_, z)| within(name, z))
        .max_by_key(|(_, z)| z.len())
        .map(|(i, _)| i);
    let given = given.trim();
    if given.is_empty() {
        return longest.ok_or_else(|| {
            AdapterError::NotFound(format!(
                "no zone of PowerDNS server '{server}' holds {name} (zones: {})",
                listed(zones)
            ))
        });
    }
    let given = zone_key(given);
    let Some(at) = zones.iter().position(|z| *z == given) else {
        return Err(AdapterError::NotFound(format!(
            "zone {given} is not on PowerDNS server '{server}' (zones: {})",
            listed(zones)
        )));
    };
    if !within(name, &given) {
        return Err(AdapterError::Invalid(format!(
            "{name} is outside zone {given} (names are fully qualified)"
        )));
    }
    match longest {
        Some(child) if child != at => Err(AdapterError::Invalid(format!(
            "{name} belongs to zone {}, which PowerDNS server '{server}' holds below {given}: a \
             record for it in {given} would not be served; name zone {} instead",
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

/// The values as PowerDNS will hold them, or `invalid` saying which one is wrong: addresses
/// of the kind for A and AAAA (in canonical form, so a read-back matches), exactly one host
/// name for CNAME (fully qualified), at least one value. Duplicates are dropped: an rrset
/// holds each value once, and PowerDNS refuses a repeated one.
pub fn check_values(name: &str, kind: RecordKind, values: &[String]) -> AdapterResult<Vec<String>> {
    let what = rtype(kind);
    let bad = |why: String| {
        Err(AdapterError::Invalid(format!(
            "{what} record {name}: {why}"
        )))
    };
    if values.is_empty() {
        return bad("no value given".into());
    }
    if kind == RecordKind::Cname && values.len() != 1 {
        return bad(format!("a CNAME names one target, not {}", values.len()));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let raw = value.trim();
        let canonical = match kind {
            RecordKind::A => raw.parse::<Ipv4Addr>().ok().map(|a| a.to_string()),
            RecordKind::Aaaa => raw.parse::<Ipv6Addr>().ok().map(|a| a.to_string()),
            RecordKind::Cname => normalise(raw).ok().filter(|n| !n.starts_with("*.")),
        };
        let Some(canonical) = canonical else {
            let wanted = match kind {
                RecordKind::A => "an IPv4 address",
                RecordKind::Aaaa => "an IPv6 address",
                RecordKind::Cname => "a host name",
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

    fn zones(z: &[&str]) -> Vec<String> {
        z.iter().map(|z| zone_key(z)).collect()
    }

    fn invalid(r: AdapterResult<impl std::fmt::Debug>) -> String {
        match r {
            Err(AdapterError::Invalid(m)) => m,
            other => panic!("expected invalid, got {other:?}"),
        }
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
        assert_eq!(
            choose_zone(&z, "", "db.example.com.", "localhost").unwrap(),
            0
        );
        assert_eq!(
            choose_zone(&z, "", "db.sub.example.com.", "localhost").unwrap(),
            1
        );
        assert_eq!(
            choose_zone(&z, " ", "sub.example.com.", "localhost").unwrap(),
            1
        );
        assert_eq!(choose_zone(&z, "", "other.org.", "localhost").unwrap(), 2);
        match choose_zone(&z, "", "db.nowhere.net.", "localhost") {
            Err(AdapterError::NotFound(m)) => {
                assert!(
                    m.contains("db.nowhere.net.") && m.contains("sub.example.com."),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            choose_zone(&[], "", "db.example.com.", "localhost"),
            Err(AdapterError::NotFound(m)) if m.contains("none")
        ));
    }

    #[test]
    fn a_given_zone_must_exist_hold_the_name_and_not_be_a_parent_of_its_zone() {
        let z = zones(&["example.com.", "sub.example.com."]);
        assert_eq!(
            choose_zone(&z, "Example.com", "db.example.com.", "localhost").unwrap(),
            0
        );
        assert_eq!(
            choose_zone(&z, "sub.example.com.", "x.sub.example.com.", "l").unwrap(),
            1
        );
        match choose_zone(&z, "nope.invalid.", "www.nope.invalid.", "localhost") {
            Err(AdapterError::NotFound(m)) => assert!(m.contains("nope.invalid."), "{m}"),
            other => panic!("{other:?}"),
        }
        let m = invalid(choose_zone(
            &z,
            "example.com.",
            "db.elsewhere.invalid.",
            "l",
        ));
        assert!(m.contains("outside zone example.com."), "{m}");
        let m = invalid(choose_zone(&z, "sub.example.com.", "db.example.com.", "l"));
        assert!(m.contains("outside"), "{m}");
        let m = invalid(choose_zone(&z, "example.com.", "x.sub.example.com.", "l"));
        assert!(m.contains("belongs to zone sub.example.com."), "{m}");
        let m = invalid(choose_zone(&z, "example.com.", "sub.example.com.", "l"));
        assert!(m.contains("belongs to zone sub.example.com."), "{m}");
    }

    #[test]
    fn values_must_be_of_their_kind_and_come_back_canonical() {
        let v = |vs: &[&str]| vs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let n = "db.example.com.";
        assert_eq!(
            check_values(
                n,
                RecordKind::A,
                &v(&["192.0.2.1", " 192.0.2.2", "192.0.2.1"])
            )
            .unwrap(),
            v(&["192.0.2.1", "192.0.2.2"])
        );
        assert_eq!(
            check_values(n, RecordKind::Aaaa, &v(&["2001:DB8:0:0::10"])).unwrap(),
            v(&["2001:db8::10"])
        );
        assert_eq!(
            check_values(n, RecordKind::Cname, &v(&["Web.Example.com"])).unwrap(),
            v(&["web.example.com."])
        );
        for (kind, values, says) in [
            (RecordKind::A, v(&[]), "no value"),
            (
                RecordKind::A,
                v(&["not-an-address"]),
                "'not-an-address' is not an IPv4",
            ),
            (RecordKind::A, v(&["2001:db8::1"]), "not an IPv4"),
            (RecordKind::A, v(&["192.0.2.01"]), "not an IPv4"),
            (RecordKind::Aaaa, v(&["192.0.2.1"]), "not an IPv6"),
            (
                RecordKind::Cname,
                v(&["a.example.", "b.example."]),
                "one target, not 2",
            ),
            (RecordKind::Cname, v(&["bad name!"]), "not a host name"),
            (RecordKind::Cname, v(&["*.example.com."]), "not a host name"),
            (RecordKind::Cname, v(&[]), "no value"),
        ] {
            let m = invalid(check_values(n, kind, &values));
            assert!(m.contains(says) && m.contains(n), "{values:?}: {m}");
        }
    }
}
