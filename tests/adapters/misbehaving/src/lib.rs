//! A hypervisor adapter that misbehaves on purpose, to prove the host's sandbox holds.
//!
//! The endpoint setting `behavior` picks what `list-hosts` does:
//! `loop` (spins forever), `alloc` (allocates without bound), `trap` (panics),
//! `escape` (tries to read files outside its data dir), `nonsense` (`get-vm` and `list-vms`
//! return malformed VMs), `tcp` (connects to the setting `target`, sends a line, and names
//! its one host after the line it gets back), `http` (GETs the setting `url`; the host is
//! named `STATUS BODY`), `secret` (reads the secret named by the setting `secret`; the host
//! is named `none` or `fnv:HASH` of its value, so a test can check it without printing it),
//! anything else (behaves: one host named `ok`).
//! Test-only: never shipped with the product.

use tidemark_sdk::{
    About, AdapterError, AdapterResult, Device, DeviceBacking, DeviceRead, DeviceWrite, Hardware,
    HostInfo, LunMapping, MappedLun, MappingMode, NewDisk, Nic, PowerState, SnapshotRef, VmInfo,
    VmSpec,
};

struct Misbehaving;

fn unsupported<T>() -> AdapterResult<T> {
    Err(AdapterError::Unsupported(
        "the misbehaving test adapter only lists".into(),
    ))
}

fn behavior() -> String {
    tidemark_sdk::setting_or("behavior", "none")
}

/// Tries to read paths outside `/data`; Ok with what leaked if any read succeeds.
fn try_escape() -> AdapterResult<Vec<HostInfo>> {
    let mut refused = Vec::new();
    for path in [
        "/etc/passwd",
        "/data/../../etc/passwd",
        "../etc/passwd",
        "/proc/self/environ",
    ] {
        match std::fs::read(path) {
            Ok(bytes) => {
                return Ok(vec![HostInfo {
                    id: "ESCAPED".into(),
                    name: format!("read {} bytes of {path}", bytes.len()),
                    cpus: None,
                    memory: None,
                    free_capacity: None,
                }]);
            }
            Err(e) => refused.push(format!("{path}: {e}")),
        }
    }
    Err(AdapterError::Denied(format!(
        "sandbox held: {}",
        refused.join("; ")
    )))
}

/// One host named `name`: how the probing behaviours report what they found.
fn named(name: String) -> AdapterResult<Vec<HostInfo>> {
    Ok(vec![HostInfo {
        id: "probe".into(),
        name,
        cpus: None,
        memory: None,
        free_capacity: None,
    }])
}

fn tcp_probe() -> AdapterResult<Vec<HostInfo>> {
    use std::io::{BufRead as _, Write as _};
    let target = tidemark_sdk::required_setting("target")?;
    let mut stream = tidemark_sdk::net::connect(&target, std::time::Duration::from_secs(5))?;
    stream
        .write_all(b"ping\n")
        .map_err(|e| AdapterError::Transient(format!("writing to {target}: {e}")))?;
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| AdapterError::Transient(format!("reading from {target}: {e}")))?;
    named(line.trim().to_string())
}

fn http_probe() -> AdapterResult<Vec<HostInfo>> {
    let url = tidemark_sdk::required_setting("url")?;
    let answer = tidemark_sdk::http::request("GET", &url, &[("accept", "text/plain")], &[])?;
    named(format!("{} {}", answer.status, answer.text().trim()))
}

/// FNV-1a, 64 bits: enough for a test to recognise a value it knows.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn secret_probe() -> AdapterResult<Vec<HostInfo>> {
    let name = tidemark_sdk::setting_or("secret", "token");
    named(match tidemark_sdk::secret(&name) {
        None => "none".into(),
        Some(value) => format!("fnv:{:016x}", fnv(value.as_bytes())),
    })
}

fn nonsense_vm() -> VmInfo {
    let lun = |wwn: &str| {
        DeviceBacking::MappedLun(MappedLun {
            wwn: wwn.into(),
            mode: MappingMode::Physical,
        })
    };
    VmInfo {
        id: "vm-nonsense".into(),
        name: "".into(),
        host_id: "".into(),
        power: PowerState::On,
        devices: vec![
            Device {
                id: "d1".into(),
                backing: lun("not-a-wwn"),
                capacity: 0,
                mount_point: "".into(),
                shared: false,
                labels: vec![],
            },
            Device {
                id: "d1".into(),
                backing: lun("naa.zz"),
                capacity: 1,
                mount_point: "C:".into(),
                shared: true,
                labels: vec![("".into(), "\u{0}".into())],
            },
        ],
        hardware: Hardware {
            cpus: Some(0),
            memory: Some(u64::MAX),
            firmware: None,
            nics: vec![Nic {
                mac: "not-a-mac".into(),
                network: "".into(),
                model: None,
            }],
            disk_bus: None,
            guest_os: None,
        },
    }
}

impl tidemark_sdk::Hypervisor for Misbehaving {
    fn about() -> About {
        About {
            vendor: "Tidemark tests".into(),
            version: "0.0.1".into(),
            capabilities: vec![],
        }
    }
    fn list_hosts() -> AdapterResult<Vec<HostInfo>> {
        match behavior().as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("misbehaving adapter panics on purpose"),
            "escape" => try_escape(),
            "tcp" => tcp_probe(),
            "http" => http_probe(),
            "secret" => secret_probe(),
            _ => Ok(vec![HostInfo {
                id: "ok".into(),
                name: "ok".into(),
                cpus: None,
                memory: None,
                free_capacity: None,
            }]),
        }
    }
    fn list_vms() -> AdapterResult<Vec<VmInfo>> {
        match behavior().as_str() {
            "nonsense" => Ok(vec![nonsense_vm()]),
            _ => Ok(vec![]),
        }
    }
    fn get_vm(vm_id: String) -> AdapterResult<VmInfo> {
        match behavior().as_str() {
            "nonsense" => Ok(nonsense_vm()),
            _ => Err(AdapterError::NotFound(format!("no VM {vm_id}"))),
        }
    }
    fn create_vm(_: VmSpec, _: String) -> AdapterResult<VmInfo> {
        unsupported()
    }
    fn delete_vm(_: String) -> AdapterResult<()> {
        unsupported()
    }
    fn power_on(_: String) -> AdapterResult<()> {
        unsupported()
    }
    fn power_off(_: String) -> AdapterResult<()> {
        unsupported()
    }
    fn add_disk(_: String, _: NewDisk, _: String) -> AdapterResult<Device> {
        unsupported()
    }
    fn map_lun(_: String, _: LunMapping, _: String) -> AdapterResult<Device> {
        unsupported()
    }
    fn unmap_lun(_: String, _: String) -> AdapterResult<()> {
        unsupported()
    }
    fn snapshot_disks(_: String, _: Vec<String>, _: String) -> AdapterResult<Vec<SnapshotRef>> {
        unsupported()
    }
    fn revert_disks(_: String, _: Vec<String>, _: String) -> AdapterResult<()> {
        unsupported()
    }
    fn delete_snapshot(_: String, _: String) -> AdapterResult<()> {
        unsupported()
    }
    fn list_snapshots(_: String) -> AdapterResult<Vec<SnapshotRef>> {
        unsupported()
    }
    fn open_reader(_: String, _: String, _: Option<String>) -> AdapterResult<Box<dyn DeviceRead>> {
        unsupported()
    }
    fn open_writer(_: String, _: String) -> AdapterResult<Box<dyn DeviceWrite>> {
        unsupported()
    }
}

tidemark_sdk::export_hypervisor!(Misbehaving);
tidemark_sdk::manifest!(
    r#"{"http": ["*"], "tcp": ["*:*"], "data-dir": true, "secrets": ["token"]}"#
);
