//! DNS calls through a session (contract 0.3.0 and later).

use async_trait::async_trait;

use super::bindings::Interface;
use super::session::{Session, guest_call};
use super::translate::FromHost;
use crate::engine::ports::{CallResult, Dns};
use crate::model::{DnsRecord, RecordKind};

const DNS: Interface = Interface::Dns;

#[async_trait]
impl Dns for Session {
    fn endpoint(&self) -> &str {
        self.endpoint_name()
    }
    async fn list_zones(&mut self) -> CallResult<Vec<String>> {
        guest_call!(since v0_3 self, DNS, dns, "list-zones", |g, s| g.call_list_zones(s))
    }
    async fn get_record(
        &mut self,
        zone: &str,
        name: &str,
        kind: RecordKind,
    ) -> CallResult<Option<DnsRecord>> {
        guest_call!(since v0_3 self, DNS, dns, "get-record", |g, s| g
            .call_get_record(s, zone, name, FromHost::from_host(&kind)))
    }
    async fn upsert_record(&mut self, zone: &str, record: &DnsRecord) -> CallResult<()> {
        guest_call!(since v0_3 self, DNS, dns, "upsert-record", |g, s| g
            .call_upsert_record(s, zone, &FromHost::from_host(record)))
    }
    async fn delete_record(&mut self, zone: &str, name: &str, kind: RecordKind) -> CallResult<()> {
        guest_call!(since v0_3 self, DNS, dns, "delete-record", |g, s| g
            .call_delete_record(s, zone, name, FromHost::from_host(&kind)))
    }
}
