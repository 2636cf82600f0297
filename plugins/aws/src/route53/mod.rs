//! A DNS adapter on Amazon Route 53 (`aws-route53.wasm`): A, AAAA and CNAME records in the
//! account's hosted zones, private ones included, over Route 53's REST XML API, every
//! request signed with [`crate::sigv4`] and the access key as secrets.
//!
//! Every call lists the hosted zones first, so a record's zone is always one the account
//! has: the one the host names, or with none named the longest holding the record
//! ([`records`]). `upsert` is one `UPSERT`; `delete` reads the set first, since Route 53's
//! `DELETE` must repeat its TTL and values. Both state the end result, so repeating either
//! changes nothing more. Settings: see [`settings`]. Tested against moto 5.2.5, whose gaps
//! are handled where they bite ([`api`], [`records`]).

pub mod api;
pub mod errors;
pub mod names;
pub mod records;
pub mod settings;
pub mod xml;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod tests;

use tidemark_sdk::{About, AdapterResult, DnsRecord, RecordKind};

use api::Api;
use settings::Settings;

/// The Route 53 adapter.
pub struct Route53;

/// Runs `f` on the API of this endpoint's settings.
fn with_api<T>(f: impl FnOnce(&Api) -> AdapterResult<T>) -> AdapterResult<T> {
    f(&Api::new(Settings::read()?, &tidemark_sdk::http::Wasi))
}

impl tidemark_sdk::Dns for Route53 {
    fn about() -> About {
        About {
            vendor: "Amazon Web Services".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                "route53".into(),
                "record-a".into(),
                "record-aaaa".into(),
                "record-cname".into(),
                "zone-discovery".into(),
            ],
        }
    }

    fn list_zones() -> AdapterResult<Vec<String>> {
        with_api(records::list_zones)
    }

    fn get_record(
        zone: String,
        name: String,
        kind: RecordKind,
    ) -> AdapterResult<Option<DnsRecord>> {
        with_api(|api| records::get(api, &zone, &name, kind))
    }

    fn upsert_record(zone: String, entry: DnsRecord) -> AdapterResult<()> {
        with_api(|api| records::upsert(api, &zone, &entry))
    }

    fn delete_record(zone: String, name: String, kind: RecordKind) -> AdapterResult<()> {
        with_api(|api| records::delete(api, &zone, &name, kind))
    }
}

tidemark_sdk::export_dns!(Route53);
tidemark_sdk::manifest!(
    r#"{"http": ["*"], "secrets": ["access-key-id", "secret-access-key", "session-token"]}"#
);
