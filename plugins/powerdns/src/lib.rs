//! A DNS adapter on PowerDNS's HTTP API (4.x, `/api/v1`): A, AAAA and CNAME records in the
//! zones of one PowerDNS server, reached over outgoing HTTP with the API key as a secret.
//!
//! Every call lists the server's zones first, so a record's zone is always one the server
//! has: the one the host names, or with none named the longest holding the record. A record
//! is an rrset; `upsert` replaces it whole (`REPLACE`), `delete` removes it (`DELETE`), and
//! PowerDNS applies both atomically, so repeating either changes nothing more. Settings: see
//! [`settings`].

mod api;
mod settings;
mod wire;

use tidemark_sdk::{About, AdapterResult, DnsRecord, RecordKind};

use api::{Api, ServerZone};
use dns_names::{Kind, check_values, choose_zone, normalise};
use wire::Patch;

/// The PowerDNS adapter.
pub struct PowerDns;

/// The API, the normalised record name and the zone it lives in: what every record call
/// needs before it sends anything about the record.
fn locate(zone: &str, name: &str) -> AdapterResult<(Api, String, ServerZone)> {
    let name = normalise(name)?;
    let api = Api::open()?;
    let zone = in_zone(&api, zone, &name)?;
    Ok((api, name, zone))
}

/// The server zone `name` lives in (see [`dns_names::choose_zone`]).
fn in_zone(api: &Api, zone: &str, name: &str) -> AdapterResult<ServerZone> {
    let zones = api.zones()?;
    let keys: Vec<String> = zones.iter().map(|z| z.name.clone()).collect();
    let at = choose_zone(
        &keys,
        zone,
        name,
        &format!("PowerDNS server '{}'", api.server()),
    )?;
    Ok(zones[at].clone())
}

impl tidemark_sdk::Dns for PowerDns {
    fn about() -> About {
        About {
            vendor: "PowerDNS".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                "record-a".into(),
                "record-aaaa".into(),
                "record-cname".into(),
                "zone-discovery".into(),
            ],
        }
    }

    fn list_zones() -> AdapterResult<Vec<String>> {
        Ok(Api::open()?.zones()?.into_iter().map(|z| z.name).collect())
    }

    fn get_record(
        zone: String,
        name: String,
        kind: RecordKind,
    ) -> AdapterResult<Option<DnsRecord>> {
        let (api, name, zone) = locate(&zone, &name)?;
        let held = api.zone(&zone, &name, Kind::from(kind).rtype())?;
        Ok(held
            .rrsets
            .into_iter()
            .find(|r| {
                r.rtype.eq_ignore_ascii_case(Kind::from(kind).rtype())
                    && r.name.eq_ignore_ascii_case(&name)
            })
            .and_then(|r| {
                let values: Vec<String> = r
                    .records
                    .into_iter()
                    .filter(|rec| !rec.disabled)
                    .map(|rec| rec.content)
                    .collect();
                (!values.is_empty()).then_some(DnsRecord {
                    name,
                    kind,
                    values,
                    ttl: r.ttl,
                })
            }))
    }

    fn upsert_record(zone: String, entry: DnsRecord) -> AdapterResult<()> {
        let name = normalise(&entry.name)?;
        let values = check_values(&name, entry.kind.into(), &entry.values)?;
        let (api, name, zone) = locate(&zone, &name)?;
        api.patch(
            &zone,
            &Patch::replace(&name, Kind::from(entry.kind).rtype(), entry.ttl, &values),
        )
    }

    fn delete_record(zone: String, name: String, kind: RecordKind) -> AdapterResult<()> {
        let (api, name, zone) = locate(&zone, &name)?;
        api.patch(&zone, &Patch::delete(&name, Kind::from(kind).rtype()))
    }
}

tidemark_sdk::export_dns!(PowerDns);
tidemark_sdk::manifest!(r#"{"http": ["*"], "secrets": ["api-key"]}"#);
