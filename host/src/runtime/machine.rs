//! Machine (BMC) calls through a session (contract 0.3.0 and later).

use async_trait::async_trait;

use super::bindings::Interface;
use super::session::{Session, guest_call};
use super::translate::FromHost;
use crate::engine::ports::{CallResult, Machine};
use crate::model::{BootDevice, MachineInventory};

const M: Interface = Interface::Machine;

#[async_trait]
impl Machine for Session {
    fn endpoint(&self) -> &str {
        self.endpoint_name()
    }
    async fn list_machines(&mut self) -> CallResult<Vec<String>> {
        guest_call!(since v0_3 self, M, machine, "list-machines", |g, s| g
            .call_list_machines(s))
    }
    async fn get_inventory(&mut self, machine_id: &str) -> CallResult<MachineInventory> {
        guest_call!(since v0_3 self, M, machine, "get-inventory", |g, s| g
            .call_get_inventory(s, machine_id))
    }
    async fn power_on(&mut self, machine_id: &str) -> CallResult<()> {
        guest_call!(since v0_3 self, M, machine, "power-on", |g, s| g
            .call_power_on(s, machine_id))
    }
    async fn power_off(&mut self, machine_id: &str, force: bool) -> CallResult<()> {
        guest_call!(since v0_3 self, M, machine, "power-off", |g, s| g
            .call_power_off(s, machine_id, force))
    }
    async fn reset(&mut self, machine_id: &str) -> CallResult<()> {
        guest_call!(since v0_3 self, M, machine, "reset", |g, s| g.call_reset(s, machine_id))
    }
    async fn set_boot_override(
        &mut self,
        machine_id: &str,
        device: BootDevice,
        once: bool,
    ) -> CallResult<()> {
        guest_call!(since v0_3 self, M, machine, "set-boot-override", |g, s| g
            .call_set_boot_override(s, machine_id, FromHost::from_host(&device), once))
    }
    async fn insert_media(&mut self, machine_id: &str, image_url: &str) -> CallResult<()> {
        guest_call!(since v0_3 self, M, machine, "insert-media", |g, s| g
            .call_insert_media(s, machine_id, image_url))
    }
    async fn eject_media(&mut self, machine_id: &str) -> CallResult<()> {
        guest_call!(since v0_3 self, M, machine, "eject-media", |g, s| g
            .call_eject_media(s, machine_id))
    }
}
