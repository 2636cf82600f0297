//! Reading and writing a VM's device as its guest would: a virtual disk through the
//! hypervisor's data path, a mapped LUN through the array that owns its WWN.

use anyhow::{anyhow, bail};

use super::discover::lun_owner;
use super::ports::{DataPath, Endpoints, ReaderHandle, WriterHandle};
use crate::catalog::{Catalog, MAPPED_LUN, VmRecord};

/// Bytes per data-path call: large enough to amortize the call, small enough to avoid the
/// copies that make ≥ 4 MiB chunks slower through the component boundary.
pub const IO_CHUNK: usize = 1 << 20;

/// Where a device's bytes are reached.
#[derive(Debug, Clone)]
pub enum DeviceTarget {
    /// A virtual disk of a VM, through its hypervisor endpoint.
    Disk {
        endpoint: String,
        vm_ref: String,
        device_ref: String,
        capacity: u64,
    },
    /// A LUN, through the array endpoint that owns it.
    Lun {
        endpoint: String,
        wwn: String,
        capacity: u64,
    },
}

impl DeviceTarget {
    /// Device size in bytes.
    pub fn capacity(&self) -> u64 {
        match self {
            DeviceTarget::Disk { capacity, .. } | DeviceTarget::Lun { capacity, .. } => *capacity,
        }
    }
}

/// Finds the device of `vm` at `mount` and who serves its bytes.
pub async fn locate(
    catalog: &Catalog,
    endpoints: &dyn Endpoints,
    vm: &VmRecord,
    mount: &str,
) -> anyhow::Result<DeviceTarget> {
    let device = vm
        .devices
        .iter()
        .find(|d| d.mount_point == mount)
        .ok_or_else(|| {
            let mounts: Vec<&str> = vm.devices.iter().map(|d| d.mount_point.as_str()).collect();
            anyhow!(
                "VM {} has no device at {mount} (it has: {})",
                vm.name,
                mounts.join(", ")
            )
        })?;
    if device.kind == MAPPED_LUN {
        let wwn = device
            .wwn
            .clone()
            .ok_or_else(|| anyhow!("catalog: LUN at {mount} has no WWN"))?;
        let endpoint = lun_owner(catalog, endpoints, &wwn).await?;
        Ok(DeviceTarget::Lun {
            endpoint,
            wwn,
            capacity: device.capacity,
        })
    } else {
        Ok(DeviceTarget::Disk {
            endpoint: vm.endpoint.clone(),
            vm_ref: vm.vm_ref.clone(),
            device_ref: device.device_ref.clone(),
            capacity: device.capacity,
        })
    }
}

fn check_range(target: &DeviceTarget, offset: u64, length: u64) -> anyhow::Result<()> {
    let end = offset
        .checked_add(length)
        .ok_or_else(|| anyhow!("offset + length overflows"))?;
    if end > target.capacity() {
        bail!(
            "range {offset}..{end} is past the end of the device ({} bytes)",
            target.capacity()
        );
    }
    Ok(())
}

/// Opens a device for reading through whoever serves its bytes; the session lives as long
/// as the reader is used.
pub async fn open_reader(
    endpoints: &dyn Endpoints,
    target: &DeviceTarget,
) -> anyhow::Result<(Box<dyn DataPath>, ReaderHandle)> {
    Ok(match target {
        DeviceTarget::Disk {
            endpoint,
            vm_ref,
            device_ref,
            ..
        } => {
            let mut hv = endpoints.hypervisor(endpoint).await?;
            let r = hv.open_reader(vm_ref, device_ref, None).await?;
            (hv, r)
        }
        DeviceTarget::Lun { endpoint, wwn, .. } => {
            let mut sa = endpoints.storage_array(endpoint).await?;
            let r = sa.open_reader(wwn, None).await?;
            (sa, r)
        }
    })
}

/// Opens a device for writing through whoever serves its bytes.
pub async fn open_writer(
    endpoints: &dyn Endpoints,
    target: &DeviceTarget,
) -> anyhow::Result<(Box<dyn DataPath>, WriterHandle)> {
    Ok(match target {
        DeviceTarget::Disk {
            endpoint,
            vm_ref,
            device_ref,
            ..
        } => {
            let mut hv = endpoints.hypervisor(endpoint).await?;
            let w = hv.open_writer(vm_ref, device_ref).await?;
            (hv, w)
        }
        DeviceTarget::Lun { endpoint, wwn, .. } => {
            let mut sa = endpoints.storage_array(endpoint).await?;
            let w = sa.open_writer(wwn).await?;
            (sa, w)
        }
    })
}

/// Reads exactly `length` bytes at `offset` from an open reader.
pub async fn read_exact(
    session: &mut dyn DataPath,
    reader: &ReaderHandle,
    offset: u64,
    length: u64,
) -> anyhow::Result<Vec<u8>> {
    let bytes = session.read(reader, offset, length).await?;
    if bytes.len() as u64 != length {
        bail!(
            "short read at {offset}: asked {length} bytes, got {}",
            bytes.len()
        );
    }
    Ok(bytes)
}

/// Writes `data` at `offset` and flushes.
pub async fn write(
    endpoints: &dyn Endpoints,
    target: &DeviceTarget,
    offset: u64,
    data: &[u8],
) -> anyhow::Result<()> {
    check_range(target, offset, data.len() as u64)?;
    let (mut session, writer) = open_writer(endpoints, target).await?;
    let mut at = offset;
    for chunk in data.chunks(IO_CHUNK) {
        session.write(&writer, at, chunk).await?;
        at += chunk.len() as u64;
    }
    session.flush(&writer).await?;
    session.close_writer(writer).await?;
    Ok(())
}

/// Reads `length` bytes at `offset`.
pub async fn read(
    endpoints: &dyn Endpoints,
    target: &DeviceTarget,
    offset: u64,
    length: u64,
) -> anyhow::Result<Vec<u8>> {
    check_range(target, offset, length)?;
    let (mut session, reader) = open_reader(endpoints, target).await?;
    let mut out = Vec::with_capacity(length as usize);
    let end = offset + length;
    let mut at = offset;
    while at < end {
        let want = (end - at).min(IO_CHUNK as u64);
        out.extend_from_slice(&read_exact(session.as_mut(), &reader, at, want).await?);
        at += want;
    }
    session.close_reader(reader).await?;
    Ok(out)
}
