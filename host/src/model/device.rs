//! What a device of a VM is: the one place virtual disks and mapped LUNs are told apart.

use serde::{Deserialize, Serialize};

/// How a LUN is presented to a VM: `physical` passes SCSI through (the hypervisor cannot
/// snapshot it), `virtual` lets the hypervisor virtualise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MappingMode {
    /// (Journals written before the host had its own types spelt it `Physical`.)
    #[serde(alias = "Physical")]
    Physical,
    #[serde(alias = "Virtual")]
    Virtual,
}

impl MappingMode {
    /// The name used in records, JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            MappingMode::Physical => "physical",
            MappingMode::Virtual => "virtual",
        }
    }

    /// Reads a stored name; anything else is an error naming it.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        match text {
            "physical" => Ok(MappingMode::Physical),
            "virtual" => Ok(MappingMode::Virtual),
            other => anyhow::bail!("unknown mapping mode '{other}' (physical or virtual)"),
        }
    }
}

impl std::fmt::Display for MappingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a device of a VM is: a virtual disk the hypervisor owns, or an array LUN mapped
/// into the VM. The one place the kinds are told apart, so no code compares kind names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A virtual disk; `id` is the hypervisor's id of the device within its VM.
    VirtualDisk { id: String },
    /// A LUN, by WWN, mapped physically or virtually.
    MappedLun { wwn: String, mode: MappingMode },
}

impl Device {
    /// Record and JSON name of a virtual disk.
    pub const VIRTUAL_DISK: &'static str = "virtual-disk";
    /// Record and JSON name of a mapped LUN.
    pub const MAPPED_LUN: &'static str = "mapped-lun";

    /// The kind's record and JSON name.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Device::VirtualDisk { .. } => Self::VIRTUAL_DISK,
            Device::MappedLun { .. } => Self::MAPPED_LUN,
        }
    }

    /// The WWN, for a mapped LUN.
    pub fn wwn(&self) -> Option<&str> {
        match self {
            Device::MappedLun { wwn, .. } => Some(wwn),
            Device::VirtualDisk { .. } => None,
        }
    }

    /// The mapping mode, for a mapped LUN.
    pub fn mode(&self) -> Option<MappingMode> {
        match self {
            Device::MappedLun { mode, .. } => Some(*mode),
            Device::VirtualDisk { .. } => None,
        }
    }

    /// Reads the stored columns of a device (`kind`, `wwn`, `mode`); `id` names a virtual
    /// disk. A LUN without a WWN or with an unknown mode, or an unknown kind, is an error.
    pub fn from_columns(
        kind: &str,
        id: &str,
        wwn: Option<&str>,
        mode: Option<&str>,
    ) -> anyhow::Result<Self> {
        match kind {
            Self::VIRTUAL_DISK => Ok(Device::VirtualDisk { id: id.to_string() }),
            Self::MAPPED_LUN => {
                let wwn = wwn
                    .filter(|w| !w.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("mapped LUN {id} has no WWN"))?;
                let mode = MappingMode::parse(mode.unwrap_or(""))
                    .map_err(|e| anyhow::anyhow!("mapped LUN {wwn}: {e}"))?;
                Ok(Device::MappedLun {
                    wwn: wwn.to_string(),
                    mode,
                })
            }
            other => anyhow::bail!(
                "unknown device kind '{other}' of {id} ({} or {})",
                Self::VIRTUAL_DISK,
                Self::MAPPED_LUN
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_and_bad_ones_are_named() {
        let lun = Device::from_columns("mapped-lun", "dev-1", Some("naa.6001"), Some("physical"))
            .unwrap();
        assert_eq!(lun.wwn(), Some("naa.6001"));
        assert_eq!(lun.mode(), Some(MappingMode::Physical));
        assert_eq!(lun.kind_name(), "mapped-lun");
        let disk = Device::from_columns("virtual-disk", "dev-0", None, None).unwrap();
        assert_eq!(disk, Device::VirtualDisk { id: "dev-0".into() });
        let e = Device::from_columns("mapped-lun", "dev-1", None, Some("virtual")).unwrap_err();
        assert!(e.to_string().contains("no WWN"), "{e}");
        let e = Device::from_columns("mapped-lun", "d", Some("naa.1"), Some("odd")).unwrap_err();
        assert!(e.to_string().contains("odd"), "{e}");
        let e = Device::from_columns("tape", "d", None, None).unwrap_err();
        assert!(e.to_string().contains("tape"), "{e}");
    }
}
