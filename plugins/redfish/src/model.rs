//! The parts of Redfish resources the adapter reads, as serde types. Everything is optional
//! and scalar fields are lenient (a value of the wrong type reads as absent), so a BMC that
//! omits or garbles a field leaves it unknown instead of failing the whole resource.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A field that is absent, null or of the wrong type reads as `None`.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// A list whose absent, null or malformed value reads as empty.
fn lenient_list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(match value {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// A reference to another resource.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Link {
    /// Its path, e.g. `/redfish/v1/Systems/1`.
    #[serde(rename = "@odata.id", default, deserialize_with = "lenient")]
    pub id: Option<String>,
}

/// `/redfish/v1/`: where the collections are.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceRoot {
    /// The systems collection.
    #[serde(rename = "Systems", default, deserialize_with = "lenient")]
    pub systems: Option<Link>,
}

/// Any resource collection.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Collection {
    /// Its members.
    #[serde(rename = "Members", default, deserialize_with = "lenient_list")]
    pub members: Vec<Link>,
}

impl Collection {
    /// The members' paths.
    pub fn paths(&self) -> Vec<String> {
        self.members
            .iter()
            .filter_map(|m| m.id.clone())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// A `ComputerSystem`: one machine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComputerSystem {
    /// Its own path.
    #[serde(rename = "@odata.id", default, deserialize_with = "lenient")]
    pub odata_id: Option<String>,
    /// `Name`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    /// `Manufacturer`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub manufacturer: Option<String>,
    /// `Model`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    /// `SerialNumber`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub serial_number: Option<String>,
    /// `On`, `Off`, `PoweringOn`, `PoweringOff`, `Paused`.
    #[serde(default, deserialize_with = "lenient")]
    pub power_state: Option<String>,
    /// `ProcessorSummary`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub processor_summary: Option<ProcessorSummary>,
    /// `MemorySummary`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub memory_summary: Option<MemorySummary>,
    /// `Processors`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub processors: Option<Link>,
    /// `EthernetInterfaces`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub ethernet_interfaces: Option<Link>,
    /// `Storage`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub storage: Option<Link>,
    /// `SimpleStorage`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub simple_storage: Option<Link>,
    /// `VirtualMedia`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub virtual_media: Option<Link>,
    /// `Boot`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub boot: Option<Boot>,
    /// `Actions`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub actions: Option<SystemActions>,
    /// `Links`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub links: Option<SystemLinks>,
}

/// `ProcessorSummary` (sushy's fake driver gives only `Status`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessorSummary {
    /// Physical processors.
    #[serde(default, deserialize_with = "lenient")]
    pub count: Option<u32>,
    /// `Model`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
}

/// `MemorySummary` (sushy's fake driver gives only `Status`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MemorySummary {
    /// GiB, possibly fractional.
    #[serde(rename = "TotalSystemMemoryGiB", default, deserialize_with = "lenient")]
    pub total_gib: Option<f64>,
}

/// The boot override and what the BMC allows in it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Boot {
    /// `BootSourceOverrideTarget`, when reported.
    #[serde(
        rename = "BootSourceOverrideTarget",
        default,
        deserialize_with = "lenient"
    )]
    pub target: Option<String>,
    /// `BootSourceOverrideEnabled`, when reported.
    #[serde(
        rename = "BootSourceOverrideEnabled",
        default,
        deserialize_with = "lenient"
    )]
    pub enabled: Option<String>,
    /// `UEFI` or `Legacy`.
    #[serde(
        rename = "BootSourceOverrideMode",
        default,
        deserialize_with = "lenient"
    )]
    pub mode: Option<String>,
    /// `BootSourceOverrideTarget@Redfish.AllowableValues`, when reported.
    #[serde(
        rename = "BootSourceOverrideTarget@Redfish.AllowableValues",
        default,
        deserialize_with = "lenient"
    )]
    pub allowed_targets: Option<Vec<String>>,
    /// `BootSourceOverrideEnabled@Redfish.AllowableValues`, when reported.
    #[serde(
        rename = "BootSourceOverrideEnabled@Redfish.AllowableValues",
        default,
        deserialize_with = "lenient"
    )]
    pub allowed_enabled: Option<Vec<String>>,
}

/// A system's actions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SystemActions {
    /// `#ComputerSystem.Reset`, when reported.
    #[serde(
        rename = "#ComputerSystem.Reset",
        default,
        deserialize_with = "lenient"
    )]
    pub reset: Option<Action>,
}

/// One action: where to POST it and what its parameter allows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Action {
    /// `Target`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub target: Option<String>,
    /// `ResetType@Redfish.AllowableValues`, when reported.
    #[serde(
        rename = "ResetType@Redfish.AllowableValues",
        default,
        deserialize_with = "lenient"
    )]
    pub allowed_reset_types: Option<Vec<String>>,
    /// Where the allowable values are when they are not inline.
    #[serde(rename = "@Redfish.ActionInfo", default, deserialize_with = "lenient")]
    pub action_info: Option<String>,
}

/// An `ActionInfo`: the parameters of an action.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionInfo {
    /// `Parameters`, when reported.
    #[serde(rename = "Parameters", default, deserialize_with = "lenient_list")]
    pub parameters: Vec<Parameter>,
}

/// One parameter of an `ActionInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Parameter {
    /// `Name`, when reported.
    #[serde(rename = "Name", default, deserialize_with = "lenient")]
    pub name: Option<String>,
    /// `AllowableValues`, when reported.
    #[serde(rename = "AllowableValues", default, deserialize_with = "lenient")]
    pub allowable: Option<Vec<String>>,
}

/// A system's links.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SystemLinks {
    /// Its managers (BMCs).
    #[serde(rename = "ManagedBy", default, deserialize_with = "lenient_list")]
    pub managed_by: Vec<Link>,
}

/// A `Manager` (the BMC itself).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Manager {
    /// `VirtualMedia`, when reported.
    #[serde(rename = "VirtualMedia", default, deserialize_with = "lenient")]
    pub virtual_media: Option<Link>,
}

/// An `EthernetInterface`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EthernetInterface {
    /// `Id`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    /// `MACAddress`, when reported.
    #[serde(rename = "MACAddress", default, deserialize_with = "lenient")]
    pub mac: Option<String>,
    /// `PermanentMACAddress`, when reported.
    #[serde(rename = "PermanentMACAddress", default, deserialize_with = "lenient")]
    pub permanent_mac: Option<String>,
    /// `SpeedMbps`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub speed_mbps: Option<u32>,
}

/// A `Processor`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Processor {
    /// `CPU`, `GPU`, `FPGA`, …
    #[serde(default, deserialize_with = "lenient")]
    pub processor_type: Option<String>,
    /// `Model`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    /// `TotalCores`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub total_cores: Option<u32>,
    /// `TotalThreads`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub total_threads: Option<u32>,
}

/// A `Storage` subsystem: its drives.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Storage {
    /// `Drives`, when reported.
    #[serde(rename = "Drives", default, deserialize_with = "lenient_list")]
    pub drives: Vec<Link>,
}

/// A `Drive`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Drive {
    /// `Id`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    /// `CapacityBytes`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub capacity_bytes: Option<u64>,
    /// `Model`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    /// `SerialNumber`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub serial_number: Option<String>,
}

/// A `SimpleStorage` controller: its devices, where there is no `Storage`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SimpleStorage {
    /// `Devices`, when reported.
    #[serde(rename = "Devices", default, deserialize_with = "lenient_list")]
    pub devices: Vec<SimpleDevice>,
}

/// A device of a `SimpleStorage`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SimpleDevice {
    /// `Name`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    /// `Model`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    /// `CapacityBytes`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub capacity_bytes: Option<u64>,
}

/// A `VirtualMedia` device.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualMedia {
    /// `@odata.id`, when reported.
    #[serde(rename = "@odata.id", default, deserialize_with = "lenient")]
    pub odata_id: Option<String>,
    /// `Id`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    /// `CD`, `DVD`, `Floppy`, `USBStick`.
    #[serde(default, deserialize_with = "lenient")]
    pub media_types: Option<Vec<String>>,
    /// `Image`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub image: Option<String>,
    /// `Inserted`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub inserted: Option<bool>,
    /// `Actions`, when reported.
    #[serde(default, deserialize_with = "lenient")]
    pub actions: Option<MediaActions>,
}

/// A virtual media device's actions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MediaActions {
    /// `#VirtualMedia.InsertMedia`, when reported.
    #[serde(
        rename = "#VirtualMedia.InsertMedia",
        default,
        deserialize_with = "lenient"
    )]
    pub insert: Option<Action>,
    /// `#VirtualMedia.EjectMedia`, when reported.
    #[serde(
        rename = "#VirtualMedia.EjectMedia",
        default,
        deserialize_with = "lenient"
    )]
    pub eject: Option<Action>,
}
