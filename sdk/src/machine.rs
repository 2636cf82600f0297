//! The trait a machine (BMC) adapter implements, and its glue to the generated exports.

use std::marker::PhantomData;

use crate::adapter_info;
use crate::bindings::world::exports::tidemark::adapter::{adapter, machine};
use crate::{About, AdapterInfo, AdapterResult};

pub use machine::{BootDevice, Cpu, Inventory, MachineDisk, MachineNic};

/// A physical machine's BMC as Tidemark sees it. Each function is one call of the contract's
/// `machine` interface (`wit/since_v0.3.0/machine.wit`). Every inventory field the BMC does
/// not report stays `None`: never invent one.
pub trait Machine {
    /// Vendor, version and capabilities.
    fn about() -> About;
    /// The machines (systems) behind the BMC, by id.
    fn list_machines() -> AdapterResult<Vec<String>>;
    /// What the BMC reports of one machine.
    fn get_inventory(machine_id: String) -> AdapterResult<Inventory>;
    /// Powers on; returns once the machine is on.
    fn power_on(machine_id: String) -> AdapterResult<()>;
    /// Powers off (`force`: at once; else the OS is asked to shut down).
    fn power_off(machine_id: String, force: bool) -> AdapterResult<()>;
    /// Restarts.
    fn reset(machine_id: String) -> AdapterResult<()>;
    /// Boots from `device` next time (`once`) or until changed.
    fn set_boot_override(machine_id: String, device: BootDevice, once: bool) -> AdapterResult<()>;
    /// Inserts the image at `image_url` as virtual media.
    fn insert_media(machine_id: String, image_url: String) -> AdapterResult<()>;
    /// Ejects virtual media.
    fn eject_media(machine_id: String) -> AdapterResult<()>;
}

/// Connects a [`Machine`] to the generated exports; used by [`crate::export_machine!`].
pub struct MachineExports<T>(PhantomData<T>);

impl<T: Machine> adapter::Guest for MachineExports<T> {
    fn info() -> AdapterInfo {
        adapter_info(T::about())
    }
}

impl<T: Machine + 'static> machine::Guest for MachineExports<T> {
    fn list_machines() -> AdapterResult<Vec<String>> {
        T::list_machines()
    }
    fn get_inventory(machine_id: String) -> AdapterResult<Inventory> {
        T::get_inventory(machine_id)
    }
    fn power_on(machine_id: String) -> AdapterResult<()> {
        T::power_on(machine_id)
    }
    fn power_off(machine_id: String, force: bool) -> AdapterResult<()> {
        T::power_off(machine_id, force)
    }
    fn reset(machine_id: String) -> AdapterResult<()> {
        T::reset(machine_id)
    }
    fn set_boot_override(machine_id: String, device: BootDevice, once: bool) -> AdapterResult<()> {
        T::set_boot_override(machine_id, device, once)
    }
    fn insert_media(machine_id: String, image_url: String) -> AdapterResult<()> {
        T::insert_media(machine_id, image_url)
    }
    fn eject_media(machine_id: String) -> AdapterResult<()> {
        T::eject_media(machine_id)
    }
}
