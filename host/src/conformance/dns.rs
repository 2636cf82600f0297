//! DNS adapters: zones, records that read back as written, replacement rather than
//! addition, deletes that stay idempotent, refusals of values not of their kind and of a
//! CNAME beside addresses, and nothing left behind. Records are named with the run's prefix
//! in the endpoint's first zone and remembered, so the sweep removes exactly them.

use crate::model::{DnsRecord, RecordKind};

use super::support::{Kind, refused};
use super::{Check, Cx, Res, Why, check, claim};

/// TTL of the records the suite writes.
const TTL: u32 = 120;

impl Cx {
    /// The zone the suite writes in: the endpoint's first (fails when it has none).
    pub async fn zone(&mut self) -> Result<String, Why> {
        let mut d = self.dns().await?;
        let zones = d.list_zones().await?;
        zones
            .into_iter()
            .next()
            .ok_or_else(|| Why::Fail("list-zones answered no zone to write test records in".into()))
    }

    /// A record name of this run in `zone`, remembered for the sweep (every kind).
    pub fn record_name(&mut self, zone: &str) -> String {
        let name = format!("{}.{zone}", self.name("rec"));
        for kind in RecordKind::ALL {
            self.records.push((zone.to_string(), name.clone(), kind));
        }
        name
    }
}

fn record(name: &str, kind: RecordKind, values: &[&str]) -> DnsRecord {
    DnsRecord {
        name: name.to_string(),
        kind,
        values: values.iter().map(|v| v.to_string()).collect(),
        ttl: TTL,
    }
}

/// Writes `record`, reads it back and claims it holds exactly the values (in any order).
async fn round_trip(cx: &mut Cx, zone: &str, wanted: DnsRecord) -> Res {
    let mut d = cx.dns().await?;
    d.upsert_record(zone, &wanted).await?;
    let got = d.get_record(zone, &wanted.name, wanted.kind).await?;
    let Some(got) = got else {
        return Err(Why::Fail(format!(
            "get-record answered none right after upsert-record of {} {}",
            wanted.kind, wanted.name
        )));
    };
    let sorted = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_ascii_lowercase()).collect();
        v.sort();
        v
    };
    claim!(
        got.name == wanted.name && got.kind == wanted.kind,
        "get-record answered {} {} for {} {}",
        got.kind,
        got.name,
        wanted.kind,
        wanted.name
    );
    claim!(
        sorted(&got.values) == sorted(&wanted.values),
        "{} {} holds {:?} after upsert-record of {:?}",
        wanted.kind,
        wanted.name,
        got.values,
        wanted.values
    );
    claim!(
        got.ttl == wanted.ttl,
        "TTL {} read back as {}",
        wanted.ttl,
        got.ttl
    );
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "d.basic.zones",
        Dns,
        [Basic],
        Nothing,
        "list-zones answers at least one zone, every one fully qualified.",
        |cx| {
            let mut d = cx.dns().await?;
            let zones = d.list_zones().await?;
            claim!(!zones.is_empty(), "list-zones answered no zone");
            let bad: Vec<&String> = zones.iter().filter(|z| !z.ends_with('.')).collect();
            claim!(bad.is_empty(), "zones without the final dot: {bad:?}");
            Ok(())
        }
    ),
    check!(
        "d.basic.a",
        Dns,
        [Basic],
        Nothing,
        "An A record of two addresses reads back with both addresses and its TTL.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            round_trip(
                cx,
                &zone,
                record(&name, RecordKind::A, &["192.0.2.10", "192.0.2.11"]),
            )
            .await
        }
    ),
    check!(
        "d.basic.aaaa",
        Dns,
        [Basic],
        Nothing,
        "An AAAA record reads back as written.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            round_trip(
                cx,
                &zone,
                record(&name, RecordKind::Aaaa, &["2001:db8::10"]),
            )
            .await
        }
    ),
    check!(
        "d.basic.cname",
        Dns,
        [Basic],
        Nothing,
        "A CNAME record reads back naming its fully qualified target.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            let target = format!("target.{zone}");
            round_trip(cx, &zone, record(&name, RecordKind::Cname, &[&target])).await
        }
    ),
    check!(
        "d.basic.replace",
        Dns,
        [Basic],
        Nothing,
        "A second upsert-record replaces the values and TTL instead of adding to them.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            round_trip(cx, &zone, record(&name, RecordKind::A, &["192.0.2.20"])).await?;
            let mut second = record(&name, RecordKind::A, &["192.0.2.21"]);
            second.ttl = TTL + 60;
            round_trip(cx, &zone, second).await
        }
    ),
    check!(
        "d.basic.repeat",
        Dns,
        [Basic, Token],
        Nothing,
        "The same upsert-record twice leaves one record holding the values once.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            let wanted = record(&name, RecordKind::A, &["192.0.2.30"]);
            cx.dns().await?.upsert_record(&zone, &wanted).await?;
            round_trip(cx, &zone, wanted).await
        }
    ),
    check!(
        "d.basic.delete",
        Dns,
        [Basic],
        Nothing,
        "After delete-record get-record answers none, and deleting again succeeds.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            round_trip(cx, &zone, record(&name, RecordKind::A, &["192.0.2.40"])).await?;
            let mut d = cx.dns().await?;
            d.delete_record(&zone, &name, RecordKind::A).await?;
            let after = d.get_record(&zone, &name, RecordKind::A).await?;
            claim!(
                after.is_none(),
                "the record is still there after delete-record: {after:?}"
            );
            d.delete_record(&zone, &name, RecordKind::A).await?;
            Ok(())
        }
    ),
    check!(
        "d.basic.no-final-dot",
        Dns,
        [Basic],
        Nothing,
        "A name given without its final dot is the same record as with it.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            let mut d = cx.dns().await?;
            let short = name.trim_end_matches('.');
            d.upsert_record(&zone, &record(short, RecordKind::A, &["192.0.2.50"]))
                .await?;
            let got = d.get_record(&zone, &name, RecordKind::A).await?;
            claim!(
                got.as_ref().is_some_and(|r| r.name == name),
                "upsert of {short} read back under {name} as {got:?}"
            );
            Ok(())
        }
    ),
    check!(
        "d.lookup.absent",
        Dns,
        [Lookup],
        Nothing,
        "get-record of a name never written answers none, not an error.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            let got = cx
                .dns()
                .await?
                .get_record(&zone, &name, RecordKind::A)
                .await?;
            claim!(got.is_none(), "a record never written reads as {got:?}");
            Ok(())
        }
    ),
    check!(
        "d.lookup.unknown-zone",
        Dns,
        [Lookup],
        Nothing,
        "get-record in a zone the server does not have answers not-found.",
        |cx| {
            let zone = format!("{}.invalid.", cx.name("zone"));
            let name = format!("www.{zone}");
            let mut d = cx.dns().await?;
            refused(
                d.get_record(&zone, &name, RecordKind::A).await,
                &[Kind::NotFound],
                "get-record in an unknown zone",
            )
        }
    ),
    check!(
        "d.garbage.values",
        Dns,
        [Garbage],
        Nothing,
        "upsert-record of values not of the record's kind answers invalid and writes nothing.",
        |cx| {
            let zone = cx.zone().await?;
            let name = cx.record_name(&zone);
            let target = format!("a.{zone}");
            let other = format!("b.{zone}");
            let mut d = cx.dns().await?;
            for (kind, values) in [
                (RecordKind::A, vec!["not-an-address"]),
                (RecordKind::A, vec!["2001:db8::1"]),
                (RecordKind::A, vec![]),
                (RecordKind::Aaaa, vec!["192.0.2.1"]),
                (RecordKind::Cname, vec![target.as_str(), other.as_str()]),
            ] {
                refused(
                    d.upsert_record(&zone, &record(&name, kind, &values)).await,
                    &[Kind::Invalid],
                    &format!("upsert-record {kind} {values:?}"),
                )?;
                let left = d.get_record(&zone, &name, kind).await?;
                claim!(left.is_none(), "a refused upsert-record wrote {left:?}");
            }
            Ok(())
        }
    ),
    check!(
        "d.garbage.outside-zone",
        Dns,
        [Garbage],
        Nothing,
        "upsert-record of a name outside the zone answers invalid.",
        |cx| {
            let zone = cx.zone().await?;
            let outside = format!("{}.elsewhere.invalid.", cx.name("rec"));
            let mut d = cx.dns().await?;
            refused(
                d.upsert_record(&zone, &record(&outside, RecordKind::A, &["192.0.2.1"]))
                    .await,
                &[Kind::Invalid],
                "upsert-record of a name outside the zone",
            )
        }
    ),
    check!(
        "d.refusal.cname-beside-a",
        Dns,
        [Refusal],
        Nothing,
        "An A record where a CNAME of that name exists, and a CNAME where an A exists, answer conflict.",
        |cx| {
            let zone = cx.zone().await?;
            let (first, second) = (cx.record_name(&zone), cx.record_name(&zone));
            let target = format!("target.{zone}");
            let mut d = cx.dns().await?;
            d.upsert_record(&zone, &record(&first, RecordKind::Cname, &[&target]))
                .await?;
            refused(
                d.upsert_record(&zone, &record(&first, RecordKind::A, &["192.0.2.60"]))
                    .await,
                &[Kind::Conflict],
                "upsert-record A where a CNAME exists",
            )?;
            d.upsert_record(&zone, &record(&second, RecordKind::A, &["192.0.2.61"]))
                .await?;
            refused(
                d.upsert_record(&zone, &record(&second, RecordKind::Cname, &[&target]))
                    .await,
                &[Kind::Conflict],
                "upsert-record CNAME where an A exists",
            )
        }
    ),
    check!(
        "d.concurrency.two-sessions",
        Dns,
        [Concurrency],
        Nothing,
        "Two sessions writing different records at once both succeed and both records read back.",
        |cx| {
            let zone = cx.zone().await?;
            let (first, second) = (cx.record_name(&zone), cx.record_name(&zone));
            let (mut d1, mut d2) = (cx.dns().await?, cx.dns().await?);
            let (r1, r2) = (
                record(&first, RecordKind::A, &["192.0.2.70"]),
                record(&second, RecordKind::A, &["192.0.2.71"]),
            );
            let (a, b) = futures::join!(d1.upsert_record(&zone, &r1), d2.upsert_record(&zone, &r2));
            a?;
            b?;
            for r in [r1, r2] {
                let got = d1.get_record(&zone, &r.name, r.kind).await?;
                claim!(
                    got.is_some(),
                    "{} is missing after the concurrent upserts",
                    r.name
                );
            }
            Ok(())
        }
    ),
];

/// Removes every record this run may have written.
pub(super) async fn sweep(cx: &mut Cx) {
    if cx.records.is_empty() {
        return;
    }
    let Ok(mut d) = cx.dns().await else { return };
    for (zone, name, kind) in &cx.records {
        let _ = d.delete_record(zone, name, *kind).await;
    }
}

/// The run's records that exist now, as `NAME KIND` (empty before the run).
pub(super) async fn ours(
    cx: &mut Cx,
    into: &mut std::collections::BTreeSet<String>,
    errors: &mut Vec<String>,
) {
    if cx.records.is_empty() {
        return;
    }
    let mut d = match cx.dns().await {
        Ok(d) => d,
        Err(e) => return errors.push(format!("{e:?}")),
    };
    for (zone, name, kind) in &cx.records {
        match d.get_record(zone, name, *kind).await {
            Ok(Some(_)) => {
                into.insert(format!("{name} {kind}"));
            }
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
}

pub(super) const CLEANUP: &[Check] = &[check!(
    "d.cleanup.records",
    Dns,
    [Cleanup],
    Nothing,
    "After the run no record the suite wrote is left in any zone.",
    |cx| { super::cleanup::compare(cx, "DNS records", |i| &i.dns_records).await }
)];
