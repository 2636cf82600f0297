//! The four calls of the `dns` contract on the [`Api`]: which hosted zone a name lives in,
//! reading one record set exactly, and the checks Route 53 leaves to its clients or that
//! moto does not make (a CNAME beside other data), so a change is refused before it is sent.

use tidemark_sdk::{AdapterError, AdapterResult, DnsRecord, RecordKind};

use super::api::Api;
use super::xml::{HostedZone, RecordSet};

/// How many sets of one name one page asks for: more than any name here holds.
const SETS_OF_A_NAME: u32 = 100;
/// Pages of one name's sets before giving up on a list that does not move on.
const MAX_PAGES: usize = 20;

/// The account's zones, fully qualified, each once (a public and a private zone may share
/// a name).
pub fn list_zones(api: &Api) -> AdapterResult<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for zone in api.zones()? {
        if !names.contains(&zone.name) {
            names.push(zone.name);
        }
    }
    Ok(names)
}

/// The record `name` `kind` in `zone`, `None` when there is none.
pub fn get(
    api: &Api,
    zone: &str,
    name: &str,
    kind: RecordKind,
) -> AdapterResult<Option<DnsRecord>> {
    let (name, zone) = locate(api, zone, name)?;
    let Some(set) = exact(api, &zone, &name, kind)? else {
        return Ok(None);
    };
    let ttl = plain(&set, &zone)?;
    Ok(Some(DnsRecord {
        name,
        kind,
        values: set.values,
        ttl,
    }))
}

/// Makes the record exactly `entry` with one `UPSERT`, after refusing what Route 53 would
/// refuse (or moto would wrongly accept): a CNAME beside any other set of its name, an
/// address beside a CNAME, and replacing an alias or routing-policy set.
pub fn upsert(api: &Api, zone: &str, entry: &DnsRecord) -> AdapterResult<()> {
    let name = dns_names::normalise(&entry.name)?;
    let values = dns_names::check_values(&name, dns_names::Kind::from(entry.kind), &entry.values)?;
    let (name, zone) = locate(api, zone, &name)?;
    let rtype = dns_names::Kind::from(entry.kind).rtype();
    let existing = sets_named(api, &zone, &name)?;
    if let Some(same) = existing.iter().find(|s| s.rtype == rtype) {
        plain(same, &zone).map_err(|e| match e {
            AdapterError::Unsupported(m) => AdapterError::Conflict(m),
            other => other,
        })?;
    }
    if let Some(why) = conflict(&name, entry.kind, &existing) {
        return Err(AdapterError::Conflict(format!(
            "{why} (zone {} of {})",
            zone.name,
            api.holder()
        )));
    }
    api.change(&zone, "UPSERT", &name, rtype, entry.ttl, &values)
}

/// Removes the record: Route 53's `DELETE` must repeat the set's current TTL and values, so
/// the set is read first; one that is not there is already removed. A `DELETE` refused
/// because the set went away meanwhile (another session, a retried request) succeeds too.
pub fn delete(api: &Api, zone: &str, name: &str, kind: RecordKind) -> AdapterResult<()> {
    let (name, zone) = locate(api, zone, name)?;
    let Some(set) = exact(api, &zone, &name, kind)? else {
        return Ok(());
    };
    let ttl = plain(&set, &zone).map_err(|e| match e {
        AdapterError::Unsupported(m) => AdapterError::Conflict(m),
        other => other,
    })?;
    let rtype = dns_names::Kind::from(kind).rtype();
    match api.change(&zone, "DELETE", &name, rtype, ttl, &set.values) {
        Err(AdapterError::Invalid(m)) | Err(AdapterError::NotFound(m)) => {
            match exact(api, &zone, &name, kind)? {
                None => Ok(()),
                Some(_) => Err(AdapterError::Invalid(m)),
            }
        }
        other => other,
    }
}

/// Why a set `kind` cannot be written at `name` beside `existing` (the sets of the zone
/// listed from `name` on), or `None`. Route 53 refuses a CNAME beside any other set of its
/// name and an address beside a CNAME; moto accepts both, so the adapter checks itself.
pub fn conflict(name: &str, kind: RecordKind, existing: &[RecordSet]) -> Option<String> {
    let same: Vec<&RecordSet> = existing.iter().filter(|s| s.name == name).collect();
    match kind {
        RecordKind::Cname => {
            let others: Vec<&str> = same
                .iter()
                .filter(|s| s.rtype != "CNAME")
                .map(|s| s.rtype.as_str())
                .collect();
            (!others.is_empty()).then(|| {
                format!(
                    "a CNAME {name} cannot be written beside its {} set(s): a CNAME must be the \
                     only data of its name",
                    others.join(", ")
                )
            })
        }
        RecordKind::A | RecordKind::Aaaa => {
            let rtype = dns_names::Kind::from(kind).rtype();
            same.iter().find(|s| s.rtype == "CNAME").map(|c| {
                format!(
                    "{name} is a CNAME (to {}); an {rtype} record cannot be written beside it",
                    c.values.join(", ")
                )
            })
        }
    }
}

/// The normalised name and the hosted zone it lives in (see `dns_names::choose_zone`). A
/// zone name the account holds twice (a public and a private zone) is a `conflict`: which of
/// them a change is meant for cannot be told from a name.
fn locate(api: &Api, zone: &str, name: &str) -> AdapterResult<(String, HostedZone)> {
    let name = dns_names::normalise(name)?;
    let zones = api.zones()?;
    let mut keys: Vec<String> = Vec::new();
    for z in &zones {
        if !keys.contains(&z.name) {
            keys.push(z.name.clone());
        }
    }
    let at = dns_names::choose_zone(&keys, zone, &name, &api.holder())?;
    let held: Vec<&HostedZone> = zones.iter().filter(|z| z.name == keys[at]).collect();
    match held.as_slice() {
        [one] => Ok((name, (*one).clone())),
        many => Err(AdapterError::Conflict(format!(
            "{} holds zone {} {} times (hosted zones {}); Tidemark cannot tell which one {name} \
             is meant for",
            api.holder(),
            keys[at],
            many.len(),
            many.iter()
                .map(|z| format!("{}{}", z.id, if z.private { " private" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The set `name` `kind` if it exists: Route 53 lists from the name and type asked for on,
/// so the first set answered is another one when that set does not exist.
fn exact(
    api: &Api,
    zone: &HostedZone,
    name: &str,
    kind: RecordKind,
) -> AdapterResult<Option<RecordSet>> {
    let rtype = dns_names::Kind::from(kind).rtype();
    let page = api.sets(zone, name, Some(rtype), 1)?;
    Ok(page
        .sets
        .into_iter()
        .next()
        .filter(|s| s.name == name && s.rtype == rtype))
}

/// Every set of `name`, all pages of it.
fn sets_named(api: &Api, zone: &HostedZone, name: &str) -> AdapterResult<Vec<RecordSet>> {
    let mut all = Vec::new();
    let mut rtype: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = api.sets(zone, name, rtype.as_deref(), SETS_OF_A_NAME)?;
        all.extend(page.sets.into_iter().filter(|s| s.name == name));
        match page.next {
            Some((next, t)) if next == name && Some(&t) != rtype.as_ref() => rtype = Some(t),
            _ => return Ok(all),
        }
    }
    Ok(all)
}

/// The TTL of a plain set, the only kind Tidemark reads and writes; an alias or a
/// routing-policy set (weighted, failover, …) is `unsupported`, naming what it is.
fn plain(set: &RecordSet, zone: &HostedZone) -> AdapterResult<u32> {
    let managed = |what: String| {
        Err(AdapterError::Unsupported(format!(
            "{} {} in zone {} is {what}; Tidemark changes plain record sets only, change it in \
             Route 53 itself",
            set.rtype, set.name, zone.name
        )))
    };
    if let Some(target) = &set.alias {
        return managed(format!("an alias to {target}"));
    }
    if let Some(id) = &set.set_identifier {
        return managed(format!("a routing-policy set ('{id}')"));
    }
    match set.ttl {
        Some(ttl) => Ok(ttl),
        None => managed("a set without a TTL".into()),
    }
}
