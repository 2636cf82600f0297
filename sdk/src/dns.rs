//! The trait a DNS adapter implements, and its glue to the generated exports.

use std::marker::PhantomData;

use crate::adapter_info;
use crate::bindings::world::exports::tidemark::adapter::{adapter, dns};
use crate::{About, AdapterInfo, AdapterResult};

pub use dns::{DnsRecord, RecordKind};

/// A DNS service as Tidemark sees it: the records a cut-over repoints. Each function is one
/// call of the contract's `dns` interface (`wit/since_v0.3.0/dns.wit`). `upsert_record` and
/// `delete_record` state what the record must be afterwards, so repeating one is harmless.
pub trait Dns {
    /// Vendor, version and capabilities.
    fn about() -> About;
    /// Zones the endpoint may change, fully qualified.
    fn list_zones() -> AdapterResult<Vec<String>>;
    /// The record of that name and kind in `zone`, `None` when there is none.
    fn get_record(zone: String, name: String, kind: RecordKind)
    -> AdapterResult<Option<DnsRecord>>;
    /// Makes the record exactly `entry`.
    fn upsert_record(zone: String, entry: DnsRecord) -> AdapterResult<()>;
    /// Removes the record; one that is not there is already removed.
    fn delete_record(zone: String, name: String, kind: RecordKind) -> AdapterResult<()>;
}

/// Connects a [`Dns`] to the generated exports; used by [`crate::export_dns!`].
pub struct DnsExports<T>(PhantomData<T>);

impl<T: Dns> adapter::Guest for DnsExports<T> {
    fn info() -> AdapterInfo {
        adapter_info(T::about())
    }
}

impl<T: Dns + 'static> dns::Guest for DnsExports<T> {
    fn list_zones() -> AdapterResult<Vec<String>> {
        T::list_zones()
    }
    fn get_record(
        zone: String,
        name: String,
        kind: RecordKind,
    ) -> AdapterResult<Option<DnsRecord>> {
        T::get_record(zone, name, kind)
    }
    fn upsert_record(zone: String, entry: DnsRecord) -> AdapterResult<()> {
        T::upsert_record(zone, entry)
    }
    fn delete_record(zone: String, name: String, kind: RecordKind) -> AdapterResult<()> {
        T::delete_record(zone, name, kind)
    }
}
