//! The data path of any session: reader and writer resources.

use async_trait::async_trait;

use super::session::{Interface, Session, guest_call};
use crate::contract::Extent;
use crate::engine::ports::{CallResult, DataPath, ReaderHandle, WriterHandle};

#[async_trait]
impl DataPath for Session {
    async fn reader_size(&mut self, reader: &ReaderHandle) -> CallResult<u64> {
        guest_call!(plain self, Interface::DataPath, data_path, "device-reader.size", |g, store| g
            .device_reader()
            .call_size(store, reader.0))
    }

    async fn read(
        &mut self,
        reader: &ReaderHandle,
        offset: u64,
        length: u64,
    ) -> CallResult<Vec<u8>> {
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-reader.read",
            |g, store| g.device_reader().call_read(store, reader.0, offset, length)
        )
    }

    async fn allocated_extents(&mut self, reader: &ReaderHandle) -> CallResult<Vec<Extent>> {
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-reader.allocated-extents",
            |g, store| g.device_reader().call_allocated_extents(store, reader.0)
        )
    }

    async fn changed_extents(
        &mut self,
        reader: &ReaderHandle,
        since: &str,
    ) -> CallResult<Vec<Extent>> {
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-reader.changed-extents",
            |g, store| g
                .device_reader()
                .call_changed_extents(store, reader.0, since)
        )
    }

    async fn close_reader(&mut self, reader: ReaderHandle) -> CallResult<()> {
        self.arm("device-reader.drop", Interface::DataPath)?;
        let outcome = reader.0.resource_drop_async(&mut self.store).await;
        self.settle_plain("device-reader.drop", outcome)
    }

    async fn writer_size(&mut self, writer: &WriterHandle) -> CallResult<u64> {
        guest_call!(plain self, Interface::DataPath, data_path, "device-writer.size", |g, store| g
            .device_writer()
            .call_size(store, writer.0))
    }

    async fn write(&mut self, writer: &WriterHandle, offset: u64, data: &[u8]) -> CallResult<()> {
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-writer.write",
            |g, store| g.device_writer().call_write(store, writer.0, offset, data)
        )
    }

    async fn flush(&mut self, writer: &WriterHandle) -> CallResult<()> {
        guest_call!(
            self,
            Interface::DataPath,
            data_path,
            "device-writer.flush",
            |g, store| g.device_writer().call_flush(store, writer.0)
        )
    }

    async fn close_writer(&mut self, writer: WriterHandle) -> CallResult<()> {
        self.arm("device-writer.drop", Interface::DataPath)?;
        let outcome = writer.0.resource_drop_async(&mut self.store).await;
        self.settle_plain("device-writer.drop", outcome)
    }
}
