//! DNS records of DNS endpoints, outside jobs: what `tidemark dns …` and `/v1/dns` offer (an
//! operator checking or fixing the record a cut-over repoints). The cut-over itself uses the
//! same port inside its job.

use crate::engine::ports::{Dns, Endpoints};
use crate::model::{AdapterKind, DnsRecord, RecordKind, fqdn};
use crate::refusal::Refusal;

use super::machines::listed;

/// A session on a DNS endpoint; an unknown one is a not-found refusal naming the DNS
/// endpoints there are.
pub async fn session(endpoints: &dyn Endpoints, endpoint: &str) -> anyhow::Result<Box<dyn Dns>> {
    let known = endpoints.names_of(AdapterKind::Dns);
    if !known.iter().any(|n| n == endpoint) {
        return Err(Refusal::not_found(format!(
            "no DNS endpoint '{endpoint}' (DNS endpoints: {})",
            listed(&known)
        )));
    }
    endpoints.dns(endpoint).await
}

/// The zones the endpoint may change.
pub async fn zones(endpoints: &dyn Endpoints, endpoint: &str) -> anyhow::Result<Vec<String>> {
    Ok(session(endpoints, endpoint).await?.list_zones().await?)
}

/// The record, or a not-found refusal naming it.
pub async fn get(
    endpoints: &dyn Endpoints,
    endpoint: &str,
    zone: &str,
    name: &str,
    kind: RecordKind,
) -> anyhow::Result<DnsRecord> {
    let mut session = session(endpoints, endpoint).await?;
    session
        .get_record(zone, &fqdn(name), kind)
        .await?
        .ok_or_else(|| {
            Refusal::not_found(format!(
                "endpoint {endpoint} has no {kind} record {}",
                fqdn(name)
            ))
        })
}

/// Makes the record exactly these values and TTL; answers it as the server then holds it.
/// Values are checked here too, so a bad one is refused before the adapter is asked.
pub async fn set(
    endpoints: &dyn Endpoints,
    endpoint: &str,
    zone: &str,
    record: DnsRecord,
) -> anyhow::Result<DnsRecord> {
    // The endpoint first: an unknown one is not-found whatever the values.
    let mut session = session(endpoints, endpoint).await?;
    check_values(&record)?;
    let record = DnsRecord {
        name: fqdn(&record.name),
        ..record
    };
    session.upsert_record(zone, &record).await?;
    session
        .get_record(zone, &record.name, record.kind)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "endpoint {endpoint} accepted the {} record {} but does not report it afterwards",
                record.kind,
                record.name
            )
        })
}

/// Removes the record (one that is not there is removed already).
pub async fn delete(
    endpoints: &dyn Endpoints,
    endpoint: &str,
    zone: &str,
    name: &str,
    kind: RecordKind,
) -> anyhow::Result<()> {
    let mut session = session(endpoints, endpoint).await?;
    Ok(session.delete_record(zone, &fqdn(name), kind).await?)
}

/// Refuses values that are not of the record's kind (the rules every DNS adapter applies
/// too, from `dns-names`: addresses for A and AAAA, one host name for CNAME, at least one
/// value) and a TTL under one second, before any adapter sees them.
pub fn check_values(record: &DnsRecord) -> anyhow::Result<()> {
    if record.ttl == 0 {
        return Err(Refusal::invalid(format!(
            "{} record {}: the TTL must be at least 1 second",
            record.kind, record.name
        )));
    }
    let kind = match record.kind {
        RecordKind::A => dns_names::Kind::A,
        RecordKind::Aaaa => dns_names::Kind::Aaaa,
        RecordKind::Cname => dns_names::Kind::Cname,
    };
    dns_names::check_values(&record.name, kind, &record.values)
        .map_err(|refused| Refusal::invalid(refused.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordKind, values: &[&str]) -> DnsRecord {
        DnsRecord {
            name: "db.example.com.".into(),
            kind,
            values: values.iter().map(|v| v.to_string()).collect(),
            ttl: 60,
        }
    }

    #[test]
    fn values_must_be_of_their_kind() {
        assert!(check_values(&record(RecordKind::A, &["192.0.2.1", "192.0.2.2"])).is_ok());
        assert!(check_values(&record(RecordKind::Aaaa, &["2001:db8::1"])).is_ok());
        assert!(check_values(&record(RecordKind::Cname, &["web.example.com."])).is_ok());
        for (kind, values, says) in [
            (RecordKind::A, &["2001:db8::1"][..], "not an IPv4"),
            (RecordKind::A, &[][..], "no value"),
            (RecordKind::Aaaa, &["192.0.2.1"][..], "not an IPv6"),
            (
                RecordKind::Cname,
                &["a.example.", "b.example."][..],
                "one target",
            ),
            (RecordKind::Cname, &["bad name!"][..], "not a host name"),
        ] {
            let error = check_values(&record(kind, values)).unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
        }
        let mut zero = record(RecordKind::A, &["192.0.2.1"]);
        zero.ttl = 0;
        assert!(check_values(&zero).unwrap_err().to_string().contains("TTL"));
    }
}
