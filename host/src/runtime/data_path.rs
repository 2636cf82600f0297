//! The data path of any session: reader and writer resources.

use async_trait::async_trait;

use super::bindings::Interface;
use super::session::{Session, guest_call};
use crate::model::Extent;
use wasmtime::component::ResourceAny;

use crate::engine::ports::{
    CallError, CallErrorKind, CallResult, DataPath, Handle, ReaderHandle, WriterHandle,
};

/// The Wasm resource behind a handle this runtime opened; a handle from elsewhere is an error.
fn resource(session: &Session, handle: &Handle, what: &'static str) -> CallResult<ResourceAny> {
    handle
        .get::<ResourceAny>()
        .copied()
        .ok_or_else(|| CallError {
            endpoint: session.endpoint_name().to_string(),
            call: what,
            kind: CallErrorKind::Host(format!("a {what} handle that this session did not open")),
        })
}

#[async_trait]
impl DataPath for Session {
    async fn reader_size(&mut self, reader: &ReaderHandle) -> CallResult<u64> {
        let r = resource(self, &reader.0, "device-reader")?;
        guest_call!(plain self, Interface::DataPath, data_path, "device-reader.size", |g, store| g
            .device_reader()
            .call_size(store, r))
    }

    async fn read(
        &mut self,
        reader: &ReaderHandle,
        offset: u64,
        length: u64,
    ) -> CallResult<Vec<u8>> {
        let r = resource(self, &reader.0, "device-reader")?;
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-reader.read",
            |g, store| g.device_reader().call_read(store, r, offset, length)
        )
    }

    async fn allocated_extents(&mut self, reader: &ReaderHandle) -> CallResult<Vec<Extent>> {
        let r = resource(self, &reader.0, "device-reader")?;
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-reader.allocated-extents",
            |g, store| g.device_reader().call_allocated_extents(store, r)
        )
    }

    async fn changed_extents(
        &mut self,
        reader: &ReaderHandle,
        since: &str,
    ) -> CallResult<Vec<Extent>> {
        let r = resource(self, &reader.0, "device-reader")?;
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-reader.changed-extents",
            |g, store| g.device_reader().call_changed_extents(store, r, since)
        )
    }

    async fn close_reader(&mut self, reader: ReaderHandle) -> CallResult<()> {
        let r = resource(self, &reader.0, "device-reader")?;
        self.arm("device-reader.drop", Interface::DataPath)?;
        let outcome = r.resource_drop_async(&mut self.store).await;
        self.settle_plain("device-reader.drop", outcome)
    }

    async fn writer_size(&mut self, writer: &WriterHandle) -> CallResult<u64> {
        let w = resource(self, &writer.0, "device-writer")?;
        guest_call!(plain self, Interface::DataPath, data_path, "device-writer.size", |g, store| g
            .device_writer()
            .call_size(store, w))
    }

    async fn write(&mut self, writer: &WriterHandle, offset: u64, data: &[u8]) -> CallResult<()> {
        let w = resource(self, &writer.0, "device-writer")?;
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-writer.write",
            |g, store| g.device_writer().call_write(store, w, offset, data)
        )
    }

    async fn flush(&mut self, writer: &WriterHandle) -> CallResult<()> {
        let w = resource(self, &writer.0, "device-writer")?;
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-writer.flush",
            |g, store| g.device_writer().call_flush(store, w)
        )
    }

    async fn close_writer(&mut self, writer: WriterHandle) -> CallResult<()> {
        let w = resource(self, &writer.0, "device-writer")?;
        self.arm("device-writer.drop", Interface::DataPath)?;
        let outcome = w.resource_drop_async(&mut self.store).await;
        self.settle_plain("device-writer.drop", outcome)
    }
}
