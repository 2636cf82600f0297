//! Typed calls of the remote program: procedure numbers, the protocol's "nonnull" handle
//! structures, and one small function per call over [`Client::call_typed`], each argument
//! and reply structure laid out exactly as `remote_protocol.x` (libvirt 9.0) has it; the
//! structure's name is in each function's documentation.

use std::io::{Read, Write};

use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError};
use crate::{Client, Result, STRING_MAX, Uuid};

/// `REMOTE_PROC_*` numbers used here (`enum remote_procedure`).
pub mod procedure {
    #![allow(missing_docs)]
    pub const CONNECT_OPEN: i32 = 1;
    pub const CONNECT_CLOSE: i32 = 2;
    pub const CONNECT_GET_VERSION: i32 = 4;
    pub const CONNECT_GET_CAPABILITIES: i32 = 7;
    pub const DOMAIN_CREATE: i32 = 9;
    pub const DOMAIN_CREATE_XML: i32 = 10;
    pub const DOMAIN_DEFINE_XML: i32 = 11;
    pub const DOMAIN_DESTROY: i32 = 12;
    pub const DOMAIN_GET_XML_DESC: i32 = 14;
    pub const DOMAIN_GET_INFO: i32 = 16;
    pub const DOMAIN_LOOKUP_BY_NAME: i32 = 23;
    pub const DOMAIN_LOOKUP_BY_UUID: i32 = 24;
    pub const DOMAIN_RESUME: i32 = 28;
    pub const DOMAIN_SHUTDOWN: i32 = 33;
    pub const DOMAIN_SUSPEND: i32 = 34;
    pub const DOMAIN_UNDEFINE: i32 = 35;
    pub const CONNECT_GET_HOSTNAME: i32 = 59;
    pub const AUTH_LIST: i32 = 66;
    pub const STORAGE_POOL_DEFINE_XML: i32 = 77;
    pub const STORAGE_POOL_CREATE: i32 = 78;
    pub const STORAGE_POOL_DESTROY: i32 = 80;
    pub const STORAGE_POOL_UNDEFINE: i32 = 82;
    pub const STORAGE_POOL_REFRESH: i32 = 83;
    pub const STORAGE_POOL_LOOKUP_BY_NAME: i32 = 84;
    pub const STORAGE_VOL_CREATE_XML: i32 = 93;
    pub const STORAGE_VOL_DELETE: i32 = 94;
    pub const STORAGE_VOL_LOOKUP_BY_NAME: i32 = 95;
    pub const STORAGE_VOL_GET_INFO: i32 = 98;
    pub const STORAGE_VOL_GET_XML_DESC: i32 = 99;
    pub const STORAGE_VOL_GET_PATH: i32 = 100;
    pub const STORAGE_VOL_CREATE_XML_FROM: i32 = 125;
    pub const CONNECT_GET_LIB_VERSION: i32 = 157;
    pub const DOMAIN_ATTACH_DEVICE_FLAGS: i32 = 160;
    pub const DOMAIN_DETACH_DEVICE_FLAGS: i32 = 161;
    pub const DOMAIN_ABORT_JOB: i32 = 164;
    pub const DOMAIN_SNAPSHOT_CREATE_XML: i32 = 185;
    pub const DOMAIN_SNAPSHOT_GET_XML_DESC: i32 = 186;
    pub const DOMAIN_SNAPSHOT_LOOKUP_BY_NAME: i32 = 189;
    pub const DOMAIN_REVERT_TO_SNAPSHOT: i32 = 192;
    pub const DOMAIN_SNAPSHOT_DELETE: i32 = 193;
    pub const DOMAIN_CREATE_WITH_FLAGS: i32 = 196;
    pub const DOMAIN_GET_STATE: i32 = 212;
    pub const DOMAIN_UNDEFINE_FLAGS: i32 = 231;
    pub const DOMAIN_DESTROY_FLAGS: i32 = 234;
    pub const DOMAIN_BLOCK_JOB_ABORT: i32 = 237;
    pub const DOMAIN_GET_BLOCK_INFO: i32 = 194;
    pub const DOMAIN_GET_BLOCK_JOB_INFO: i32 = 238;
    pub const DOMAIN_BLOCK_PULL: i32 = 240;
    pub const DOMAIN_SHUTDOWN_FLAGS: i32 = 258;
    pub const CONNECT_LIST_ALL_DOMAINS: i32 = 273;
    pub const DOMAIN_LIST_ALL_SNAPSHOTS: i32 = 274;
    pub const CONNECT_LIST_ALL_STORAGE_POOLS: i32 = 281;
    pub const STORAGE_POOL_LIST_ALL_VOLUMES: i32 = 282;
    pub const DOMAIN_BLOCK_COMMIT: i32 = 290;
    pub const DOMAIN_CHECKPOINT_CREATE_XML: i32 = 411;
    pub const DOMAIN_CHECKPOINT_GET_XML_DESC: i32 = 412;
    pub const DOMAIN_LIST_ALL_CHECKPOINTS: i32 = 413;
    pub const DOMAIN_CHECKPOINT_LOOKUP_BY_NAME: i32 = 415;
    pub const DOMAIN_CHECKPOINT_DELETE: i32 = 417;
    pub const DOMAIN_BACKUP_BEGIN: i32 = 421;
    pub const DOMAIN_BACKUP_GET_XML_DESC: i32 = 422;
}

/// `QEMU_PROC_*` numbers of [`crate::QEMU_PROGRAM`] (`enum qemu_procedure`).
pub mod qemu_procedure {
    #![allow(missing_docs)]
    pub const DOMAIN_MONITOR_COMMAND: i32 = 1;
}

/// List limits of `remote_protocol.x`.
pub mod limits {
    /// `REMOTE_DOMAIN_LIST_MAX`.
    pub const DOMAIN_LIST_MAX: u32 = 16384;
    /// `REMOTE_STORAGE_POOL_LIST_MAX`.
    pub const STORAGE_POOL_LIST_MAX: u32 = 16384;
    /// `REMOTE_STORAGE_VOL_LIST_MAX`.
    pub const STORAGE_VOL_LIST_MAX: u32 = 16384;
    /// `REMOTE_DOMAIN_SNAPSHOT_LIST_MAX`.
    pub const DOMAIN_SNAPSHOT_LIST_MAX: u32 = 16384;
    /// `REMOTE_DOMAIN_CHECKPOINT_LIST_MAX`.
    pub const DOMAIN_CHECKPOINT_LIST_MAX: u32 = 16384;
    /// `REMOTE_AUTH_TYPE_LIST_MAX`.
    pub const AUTH_TYPE_LIST_MAX: u32 = 20;
}

/// `REMOTE_AUTH_NONE` in `REMOTE_PROC_AUTH_LIST`'s answer.
pub const AUTH_NONE: i32 = 0;

/// Flags of the calls (values of libvirt's public enums).
pub mod flags {
    /// `virConnectListAllDomainsFlags`.
    pub mod list_domains {
        #![allow(missing_docs)]
        pub const ACTIVE: u32 = 1 << 0;
        pub const INACTIVE: u32 = 1 << 1;
        pub const PERSISTENT: u32 = 1 << 2;
        pub const TRANSIENT: u32 = 1 << 3;
        pub const RUNNING: u32 = 1 << 4;
        pub const PAUSED: u32 = 1 << 5;
        pub const SHUTOFF: u32 = 1 << 6;
    }
    /// `virDomainCreateFlags`.
    pub mod create {
        #![allow(missing_docs)]
        pub const PAUSED: u32 = 1 << 0;
        pub const AUTODESTROY: u32 = 1 << 1;
    }
    /// `virDomainUndefineFlagsValues`.
    pub mod undefine {
        #![allow(missing_docs)]
        pub const MANAGED_SAVE: u32 = 1 << 0;
        pub const SNAPSHOTS_METADATA: u32 = 1 << 1;
        pub const NVRAM: u32 = 1 << 2;
        pub const CHECKPOINTS_METADATA: u32 = 1 << 4;
    }
    /// `virDomainDeviceModifyFlags` (attach/detach).
    pub mod device {
        #![allow(missing_docs)]
        pub const CURRENT: u32 = 0;
        pub const LIVE: u32 = 1 << 0;
        pub const CONFIG: u32 = 1 << 1;
    }
    /// `virDomainXMLFlags`.
    pub mod xml {
        #![allow(missing_docs)]
        pub const SECURE: u32 = 1 << 0;
        pub const INACTIVE: u32 = 1 << 1;
        pub const UPDATE_CPU: u32 = 1 << 2;
        pub const MIGRATABLE: u32 = 1 << 3;
    }
    /// `virDomainSnapshotCreateFlags`.
    pub mod snapshot_create {
        #![allow(missing_docs)]
        pub const REDEFINE: u32 = 1 << 0;
        pub const CURRENT: u32 = 1 << 1;
        pub const NO_METADATA: u32 = 1 << 2;
        pub const HALT: u32 = 1 << 3;
        pub const DISK_ONLY: u32 = 1 << 4;
        pub const REUSE_EXT: u32 = 1 << 5;
        pub const QUIESCE: u32 = 1 << 6;
        pub const ATOMIC: u32 = 1 << 7;
        pub const LIVE: u32 = 1 << 8;
    }
    /// `virDomainSnapshotDeleteFlags` (and `virDomainCheckpointDeleteFlags`, the same bits).
    pub mod snapshot_delete {
        #![allow(missing_docs)]
        pub const CHILDREN: u32 = 1 << 0;
        pub const METADATA_ONLY: u32 = 1 << 1;
        pub const CHILDREN_ONLY: u32 = 1 << 2;
    }
    /// `virDomainBlockCommitFlags`.
    pub mod block_commit {
        #![allow(missing_docs)]
        pub const SHALLOW: u32 = 1 << 0;
        pub const DELETE: u32 = 1 << 1;
        pub const ACTIVE: u32 = 1 << 2;
        pub const RELATIVE: u32 = 1 << 3;
        pub const BANDWIDTH_BYTES: u32 = 1 << 4;
    }
    /// `virDomainBlockJobAbortFlags`.
    pub mod block_job_abort {
        #![allow(missing_docs)]
        pub const ASYNC: u32 = 1 << 0;
        pub const PIVOT: u32 = 1 << 1;
    }
    /// `virStorageVolDeleteFlags`.
    pub mod vol_delete {
        #![allow(missing_docs)]
        pub const NORMAL: u32 = 0;
        pub const ZEROED: u32 = 1 << 0;
        pub const WITH_SNAPSHOTS: u32 = 1 << 1;
    }
}

fn string(d: &mut Decoder<'_>, what: &'static str) -> Result<String, XdrError> {
    d.string(what, STRING_MAX)
}

/// A domain (`remote_nonnull_domain`): name, UUID and id (-1 while it is not running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: Uuid,
    /// Its id while running, else -1.
    pub id: i32,
}

impl XdrEncode for Domain {
    fn encode(&self, e: &mut Encoder) {
        e.string(&self.name).put(&self.uuid).int(self.id);
    }
}

impl XdrDecode for Domain {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            name: string(d, "domain name")?,
            uuid: Uuid::decode(d)?,
            id: d.int("domain id")?,
        })
    }
}

/// Smallest `remote_nonnull_domain` on the wire (empty name).
const DOMAIN_MIN: usize = 4 + 16 + 4;

/// A storage pool (`remote_nonnull_storage_pool`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoragePool {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: Uuid,
}

impl XdrEncode for StoragePool {
    fn encode(&self, e: &mut Encoder) {
        e.string(&self.name).put(&self.uuid);
    }
}

impl XdrDecode for StoragePool {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            name: string(d, "pool name")?,
            uuid: Uuid::decode(d)?,
        })
    }
}

/// A storage volume (`remote_nonnull_storage_vol`): its pool's name, its name, its key
/// (the path, for `dir` pools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageVol {
    /// The pool's name.
    pub pool: String,
    /// Its name in the pool.
    pub name: String,
    /// Its key.
    pub key: String,
}

impl XdrEncode for StorageVol {
    fn encode(&self, e: &mut Encoder) {
        e.string(&self.pool).string(&self.name).string(&self.key);
    }
}

impl XdrDecode for StorageVol {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            pool: string(d, "volume pool")?,
            name: string(d, "volume name")?,
            key: string(d, "volume key")?,
        })
    }
}

/// A snapshot (`remote_nonnull_domain_snapshot`): its name and its domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSnapshot {
    /// Its name.
    pub name: String,
    /// Its domain.
    pub dom: Domain,
}

impl XdrEncode for DomainSnapshot {
    fn encode(&self, e: &mut Encoder) {
        e.string(&self.name).put(&self.dom);
    }
}

impl XdrDecode for DomainSnapshot {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            name: string(d, "snapshot name")?,
            dom: Domain::decode(d)?,
        })
    }
}

/// A checkpoint (`remote_nonnull_domain_checkpoint`): its name and its domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainCheckpoint {
    /// Its name.
    pub name: String,
    /// Its domain.
    pub dom: Domain,
}

impl XdrEncode for DomainCheckpoint {
    fn encode(&self, e: &mut Encoder) {
        e.string(&self.name).put(&self.dom);
    }
}

impl XdrDecode for DomainCheckpoint {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            name: string(d, "checkpoint name")?,
            dom: Domain::decode(d)?,
        })
    }
}

/// `virDomainState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    /// No state.
    NoState,
    /// Running.
    Running,
    /// Blocked on a resource.
    Blocked,
    /// Paused.
    Paused,
    /// Being shut down.
    Shutdown,
    /// Shut off.
    Shutoff,
    /// Crashed.
    Crashed,
    /// Suspended by guest power management.
    PmSuspended,
    /// A value this client does not know.
    Other(i32),
}

impl From<i32> for DomainState {
    fn from(v: i32) -> Self {
        match v {
            0 => Self::NoState,
            1 => Self::Running,
            2 => Self::Blocked,
            3 => Self::Paused,
            4 => Self::Shutdown,
            5 => Self::Shutoff,
            6 => Self::Crashed,
            7 => Self::PmSuspended,
            v => Self::Other(v),
        }
    }
}

/// `remote_domain_get_info_ret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// `unsigned char state`.
    pub state: DomainState,
    /// Maximum memory, KiB.
    pub max_mem: u64,
    /// Current memory, KiB.
    pub memory: u64,
    /// `unsigned short nrVirtCpu`.
    pub nr_virt_cpu: u32,
    /// CPU time used, ns.
    pub cpu_time: u64,
}

impl XdrDecode for DomainInfo {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            state: DomainState::from(d.int("info state")?),
            max_mem: d.uhyper("info maxMem")?,
            memory: d.uhyper("info memory")?,
            nr_virt_cpu: d.uint("info nrVirtCpu")?,
            cpu_time: d.uhyper("info cpuTime")?,
        })
    }
}

/// `remote_domain_get_block_job_info_ret` when a job was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockJobInfo {
    /// `virDomainBlockJobType` (1 pull, 2 copy, 3 commit, 4 active commit, 5 backup).
    pub kind: i32,
    /// Bandwidth limit.
    pub bandwidth: u64,
    /// Progress so far.
    pub cur: u64,
    /// Progress at the end.
    pub end: u64,
}

/// `remote_domain_get_block_info_ret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// Bytes allocated in the image.
    pub allocation: u64,
    /// The guest-visible size, bytes.
    pub capacity: u64,
    /// The image's host size, bytes.
    pub physical: u64,
}

/// `remote_storage_vol_get_info_ret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageVolInfo {
    /// `virStorageVolType` (`char type`; 0 file, 1 block, 2 dir, 3 network, ...).
    pub kind: i32,
    /// Capacity, bytes.
    pub capacity: u64,
    /// Allocation, bytes.
    pub allocation: u64,
}

/// The argument structures, as tuples of their fields.
struct Args<F: Fn(&mut Encoder)>(F);

impl<F: Fn(&mut Encoder)> XdrEncode for Args<F> {
    fn encode(&self, e: &mut Encoder) {
        (self.0)(e)
    }
}

/// A reply read by a closure.
struct Reply<T>(T);

/// Declares `struct R(T)` decoded by `body` (a reply structure read field by field).
macro_rules! reply {
    ($t:ty, |$d:ident| $body:expr) => {
        struct R($t);
        impl XdrDecode for R {
            fn decode($d: &mut Decoder<'_>) -> Result<Self, XdrError> {
                Ok(R($body))
            }
        }
    };
}

impl<T: XdrDecode> XdrDecode for Reply<T> {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        T::decode(d).map(Reply)
    }
}

/// A reply that is one string (`remote_*_ret { remote_nonnull_string ...; }`).
struct Str(String);

impl XdrDecode for Str {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        string(d, "string").map(Str)
    }
}

impl<S: Read + Write> Client<S> {
    fn void(&mut self, procedure: i32, args: impl Fn(&mut Encoder)) -> Result<()> {
        self.call_typed::<_, ()>(procedure, &Args(args))
    }

    fn text(&mut self, procedure: i32, args: impl Fn(&mut Encoder)) -> Result<String> {
        self.call_typed::<_, Str>(procedure, &Args(args))
            .map(|s| s.0)
    }

    fn typed<T: XdrDecode>(&mut self, procedure: i32, args: impl Fn(&mut Encoder)) -> Result<T> {
        self.call_typed::<_, Reply<T>>(procedure, &Args(args))
            .map(|r| r.0)
    }

    // ----- connection -----

    /// `REMOTE_PROC_AUTH_LIST` → `remote_auth_list_ret { remote_auth_type types<20>; }`.
    pub fn auth_list(&mut self) -> Result<Vec<i32>> {
        reply!(Vec<i32>, |d| d.array(
            "auth types",
            limits::AUTH_TYPE_LIST_MAX,
            4,
            |d| d.int("auth type")
        )?);
        self.call_typed::<_, R>(procedure::AUTH_LIST, &())
            .map(|r| r.0)
    }

    /// `REMOTE_PROC_CONNECT_OPEN`, `remote_connect_open_args { remote_string name;
    /// unsigned int flags; }` (flags: 1 = read-only).
    pub fn connect_open(&mut self, name: Option<&str>, flags: u32) -> Result<()> {
        self.void(procedure::CONNECT_OPEN, |e| {
            e.opt_string(name).uint(flags);
        })
    }

    /// `REMOTE_PROC_CONNECT_CLOSE` (no arguments, no reply): libvirtd keeps the TCP
    /// connection open after it; drop the client to close it.
    pub fn connect_close(&mut self) -> Result<()> {
        self.void(procedure::CONNECT_CLOSE, |_| {})
    }

    /// `REMOTE_PROC_CONNECT_GET_VERSION` → `unsigned hyper hv_ver` (the hypervisor's
    /// version, major * 1,000,000 + minor * 1,000 + release).
    pub fn get_version(&mut self) -> Result<u64> {
        self.typed::<U64>(procedure::CONNECT_GET_VERSION, |_| {})
            .map(|v| v.0)
    }

    /// `REMOTE_PROC_CONNECT_GET_LIB_VERSION` → `unsigned hyper lib_ver` (libvirt's).
    pub fn get_lib_version(&mut self) -> Result<u64> {
        self.typed::<U64>(procedure::CONNECT_GET_LIB_VERSION, |_| {})
            .map(|v| v.0)
    }

    /// `REMOTE_PROC_CONNECT_GET_HOSTNAME` → `remote_nonnull_string hostname`.
    pub fn get_hostname(&mut self) -> Result<String> {
        self.text(procedure::CONNECT_GET_HOSTNAME, |_| {})
    }

    /// `REMOTE_PROC_CONNECT_GET_CAPABILITIES` → `remote_nonnull_string capabilities`
    /// (the capabilities XML).
    pub fn get_capabilities(&mut self) -> Result<String> {
        self.text(procedure::CONNECT_GET_CAPABILITIES, |_| {})
    }

    // ----- domains -----

    /// `REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS`, `remote_connect_list_all_domains_args {
    /// int need_results; unsigned int flags; }` → `{ remote_nonnull_domain domains<>;
    /// unsigned int ret; }` ([`flags::list_domains`]; 0 lists all).
    pub fn list_all_domains(&mut self, flags: u32) -> Result<Vec<Domain>> {
        reply!(Vec<Domain>, |d| {
            let list = d.array(
                "domains",
                limits::DOMAIN_LIST_MAX,
                DOMAIN_MIN,
                Domain::decode,
            )?;
            d.uint("domain count")?;
            list
        });
        self.call_typed::<_, R>(
            procedure::CONNECT_LIST_ALL_DOMAINS,
            &Args(|e: &mut Encoder| {
                e.int(1).uint(flags);
            }),
        )
        .map(|r| r.0)
    }

    /// `REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME`, `{ remote_nonnull_string name; }` → `{ dom }`.
    pub fn domain_lookup_by_name(&mut self, name: &str) -> Result<Domain> {
        self.typed(procedure::DOMAIN_LOOKUP_BY_NAME, |e| {
            e.string(name);
        })
    }

    /// `REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID`, `{ remote_uuid uuid; }` → `{ dom }`.
    pub fn domain_lookup_by_uuid(&mut self, uuid: &Uuid) -> Result<Domain> {
        self.typed(procedure::DOMAIN_LOOKUP_BY_UUID, |e| {
            e.put(uuid);
        })
    }

    /// `REMOTE_PROC_DOMAIN_DEFINE_XML`, `{ remote_nonnull_string xml; }` → `{ dom }`.
    pub fn domain_define_xml(&mut self, xml: &str) -> Result<Domain> {
        self.typed(procedure::DOMAIN_DEFINE_XML, |e| {
            e.string(xml);
        })
    }

    /// `REMOTE_PROC_DOMAIN_UNDEFINE_FLAGS`, `{ dom; unsigned int flags; }`
    /// ([`flags::undefine`]).
    pub fn domain_undefine(&mut self, dom: &Domain, flags: u32) -> Result<()> {
        self.void(procedure::DOMAIN_UNDEFINE_FLAGS, |e| {
            e.put(dom).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_CREATE`, `{ dom; }`: starts a defined domain.
    pub fn domain_create(&mut self, dom: &Domain) -> Result<()> {
        self.void(procedure::DOMAIN_CREATE, |e| {
            e.put(dom);
        })
    }

    /// `REMOTE_PROC_DOMAIN_CREATE_WITH_FLAGS`, `{ dom; unsigned int flags; }` → `{ dom }`
    /// (with its new id; [`flags::create`], e.g. `PAUSED`).
    pub fn domain_create_with_flags(&mut self, dom: &Domain, flags: u32) -> Result<Domain> {
        self.typed(procedure::DOMAIN_CREATE_WITH_FLAGS, |e| {
            e.put(dom).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_CREATE_XML`, `{ remote_nonnull_string xml_desc; unsigned int
    /// flags; }` → `{ dom }`: starts a transient domain ([`flags::create`]; with
    /// `AUTODESTROY` it lives only as long as this connection).
    pub fn domain_create_xml(&mut self, xml: &str, flags: u32) -> Result<Domain> {
        self.typed(procedure::DOMAIN_CREATE_XML, |e| {
            e.string(xml).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_SUSPEND`, `{ dom; }`: pauses every vCPU.
    pub fn domain_suspend(&mut self, dom: &Domain) -> Result<()> {
        self.void(procedure::DOMAIN_SUSPEND, |e| {
            e.put(dom);
        })
    }

    /// `REMOTE_PROC_DOMAIN_RESUME`, `{ dom; }`: lets a paused domain run again.
    pub fn domain_resume(&mut self, dom: &Domain) -> Result<()> {
        self.void(procedure::DOMAIN_RESUME, |e| {
            e.put(dom);
        })
    }

    /// `QEMU_PROC_DOMAIN_MONITOR_COMMAND` of the QEMU program, `{ dom; remote_nonnull_string
    /// cmd; unsigned int flags; }` → `{ remote_nonnull_string result; }`: one QMP command
    /// (a JSON object) passed through to the domain's monitor, its JSON answer back. A
    /// QMP error is an answer here (`{"error": …}`), not an [`crate::Error`].
    pub fn qemu_monitor_command(&mut self, dom: &Domain, qmp: &str) -> Result<String> {
        self.call_program_typed::<_, Str>(
            crate::QEMU_PROGRAM,
            qemu_procedure::DOMAIN_MONITOR_COMMAND,
            &Args(|e: &mut Encoder| {
                e.put(dom).string(qmp).uint(0);
            }),
        )
        .map(|s| s.0)
    }

    /// `REMOTE_PROC_DOMAIN_DESTROY`, `{ dom; }`: pulls the plug.
    pub fn domain_destroy(&mut self, dom: &Domain) -> Result<()> {
        self.void(procedure::DOMAIN_DESTROY, |e| {
            e.put(dom);
        })
    }

    /// `REMOTE_PROC_DOMAIN_SHUTDOWN`, `{ dom; }`: asks the guest (ACPI) to shut down.
    pub fn domain_shutdown(&mut self, dom: &Domain) -> Result<()> {
        self.void(procedure::DOMAIN_SHUTDOWN, |e| {
            e.put(dom);
        })
    }

    /// `REMOTE_PROC_DOMAIN_GET_XML_DESC`, `{ dom; unsigned int flags; }` → `{ xml }`
    /// ([`flags::xml`]).
    pub fn domain_get_xml_desc(&mut self, dom: &Domain, flags: u32) -> Result<String> {
        self.text(procedure::DOMAIN_GET_XML_DESC, |e| {
            e.put(dom).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_GET_INFO`, `{ dom; }` → `remote_domain_get_info_ret`.
    pub fn domain_get_info(&mut self, dom: &Domain) -> Result<DomainInfo> {
        self.typed(procedure::DOMAIN_GET_INFO, |e| {
            e.put(dom);
        })
    }

    /// `REMOTE_PROC_DOMAIN_GET_STATE`, `{ dom; unsigned int flags; }` → `{ int state;
    /// int reason; }`.
    pub fn domain_get_state(&mut self, dom: &Domain) -> Result<(DomainState, i32)> {
        reply!((DomainState, i32), |d| (
            DomainState::from(d.int("state")?),
            d.int("state reason")?
        ));
        self.call_typed::<_, R>(
            procedure::DOMAIN_GET_STATE,
            &Args(|e: &mut Encoder| {
                e.put(dom).uint(0);
            }),
        )
        .map(|r| r.0)
    }

    /// `REMOTE_PROC_DOMAIN_GET_BLOCK_INFO`, `{ dom; remote_nonnull_string path; unsigned
    /// int flags; }` → `{ unsigned hyper allocation; unsigned hyper capacity; unsigned hyper
    /// physical; }`: `path` is a disk's source or target dev; inactive domains too (libvirt
    /// reads a local image's header).
    pub fn domain_get_block_info(&mut self, dom: &Domain, path: &str) -> Result<BlockInfo> {
        reply!(BlockInfo, |d| BlockInfo {
            allocation: d.uhyper("block allocation")?,
            capacity: d.uhyper("block capacity")?,
            physical: d.uhyper("block physical")?,
        });
        self.call_typed::<_, R>(
            procedure::DOMAIN_GET_BLOCK_INFO,
            &Args(|e: &mut Encoder| {
                e.put(dom).string(path).uint(0);
            }),
        )
        .map(|r| r.0)
    }

    /// `REMOTE_PROC_DOMAIN_ATTACH_DEVICE_FLAGS`, `{ dom; remote_nonnull_string xml;
    /// unsigned int flags; }` ([`flags::device`]).
    pub fn domain_attach_device(&mut self, dom: &Domain, xml: &str, flags: u32) -> Result<()> {
        self.void(procedure::DOMAIN_ATTACH_DEVICE_FLAGS, |e| {
            e.put(dom).string(xml).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_DETACH_DEVICE_FLAGS`, `{ dom; xml; flags; }`. A live detach
    /// returns once requested; the guest must acknowledge the unplug.
    pub fn domain_detach_device(&mut self, dom: &Domain, xml: &str, flags: u32) -> Result<()> {
        self.void(procedure::DOMAIN_DETACH_DEVICE_FLAGS, |e| {
            e.put(dom).string(xml).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_ABORT_JOB`, `{ dom; }`: ends the domain's job (e.g. a
    /// pull-mode backup).
    pub fn domain_abort_job(&mut self, dom: &Domain) -> Result<()> {
        self.void(procedure::DOMAIN_ABORT_JOB, |e| {
            e.put(dom);
        })
    }

    // ----- snapshots -----

    /// `REMOTE_PROC_DOMAIN_SNAPSHOT_CREATE_XML`, `{ dom; remote_nonnull_string xml_desc;
    /// unsigned int flags; }` → `{ snap }` ([`flags::snapshot_create`]).
    pub fn snapshot_create_xml(
        &mut self,
        dom: &Domain,
        xml: &str,
        flags: u32,
    ) -> Result<DomainSnapshot> {
        self.typed(procedure::DOMAIN_SNAPSHOT_CREATE_XML, |e| {
            e.put(dom).string(xml).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_LIST_ALL_SNAPSHOTS`, `{ dom; int need_results; unsigned int
    /// flags; }` → `{ remote_nonnull_domain_snapshot snapshots<>; int ret; }`.
    pub fn list_all_snapshots(&mut self, dom: &Domain, flags: u32) -> Result<Vec<DomainSnapshot>> {
        reply!(Vec<DomainSnapshot>, |d| {
            let list = d.array(
                "snapshots",
                limits::DOMAIN_SNAPSHOT_LIST_MAX,
                4 + DOMAIN_MIN,
                DomainSnapshot::decode,
            )?;
            d.int("snapshot count")?;
            list
        });
        self.call_typed::<_, R>(
            procedure::DOMAIN_LIST_ALL_SNAPSHOTS,
            &Args(|e: &mut Encoder| {
                e.put(dom).int(1).uint(flags);
            }),
        )
        .map(|r| r.0)
    }

    /// `REMOTE_PROC_DOMAIN_SNAPSHOT_LOOKUP_BY_NAME`, `{ dom; name; unsigned int flags; }`
    /// → `{ snap }`.
    pub fn snapshot_lookup_by_name(&mut self, dom: &Domain, name: &str) -> Result<DomainSnapshot> {
        self.typed(procedure::DOMAIN_SNAPSHOT_LOOKUP_BY_NAME, |e| {
            e.put(dom).string(name).uint(0);
        })
    }

    /// `REMOTE_PROC_DOMAIN_SNAPSHOT_GET_XML_DESC`, `{ snap; unsigned int flags; }` →
    /// `{ xml }`.
    pub fn snapshot_get_xml_desc(&mut self, snap: &DomainSnapshot, flags: u32) -> Result<String> {
        self.text(procedure::DOMAIN_SNAPSHOT_GET_XML_DESC, |e| {
            e.put(snap).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_SNAPSHOT_DELETE`, `{ snap; unsigned int flags; }`
    /// ([`flags::snapshot_delete`]; external snapshots in 9.0 can only lose their
    /// metadata, `METADATA_ONLY`).
    pub fn snapshot_delete(&mut self, snap: &DomainSnapshot, flags: u32) -> Result<()> {
        self.void(procedure::DOMAIN_SNAPSHOT_DELETE, |e| {
            e.put(snap).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_REVERT_TO_SNAPSHOT`, `{ snap; unsigned int flags; }` (libvirt
    /// 9.0 refuses it for external snapshots).
    pub fn snapshot_revert(&mut self, snap: &DomainSnapshot, flags: u32) -> Result<()> {
        self.void(procedure::DOMAIN_REVERT_TO_SNAPSHOT, |e| {
            e.put(snap).uint(flags);
        })
    }

    // ----- checkpoints and backups -----

    /// `REMOTE_PROC_DOMAIN_CHECKPOINT_CREATE_XML`, `{ dom; xml_desc; flags; }` →
    /// `{ checkpoint }`.
    pub fn checkpoint_create_xml(
        &mut self,
        dom: &Domain,
        xml: &str,
        flags: u32,
    ) -> Result<DomainCheckpoint> {
        self.typed(procedure::DOMAIN_CHECKPOINT_CREATE_XML, |e| {
            e.put(dom).string(xml).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_CHECKPOINT_LOOKUP_BY_NAME`, `{ dom; name; flags; }` →
    /// `{ checkpoint }`.
    pub fn checkpoint_lookup_by_name(
        &mut self,
        dom: &Domain,
        name: &str,
    ) -> Result<DomainCheckpoint> {
        self.typed(procedure::DOMAIN_CHECKPOINT_LOOKUP_BY_NAME, |e| {
            e.put(dom).string(name).uint(0);
        })
    }

    /// `REMOTE_PROC_DOMAIN_LIST_ALL_CHECKPOINTS`, `{ dom; need_results; flags; }` →
    /// `{ remote_nonnull_domain_checkpoint checkpoints<>; int ret; }`.
    pub fn list_all_checkpoints(
        &mut self,
        dom: &Domain,
        flags: u32,
    ) -> Result<Vec<DomainCheckpoint>> {
        reply!(Vec<DomainCheckpoint>, |d| {
            let list = d.array(
                "checkpoints",
                limits::DOMAIN_CHECKPOINT_LIST_MAX,
                4 + DOMAIN_MIN,
                DomainCheckpoint::decode,
            )?;
            d.int("checkpoint count")?;
            list
        });
        self.call_typed::<_, R>(
            procedure::DOMAIN_LIST_ALL_CHECKPOINTS,
            &Args(|e: &mut Encoder| {
                e.put(dom).int(1).uint(flags);
            }),
        )
        .map(|r| r.0)
    }

    /// `REMOTE_PROC_DOMAIN_CHECKPOINT_GET_XML_DESC`, `{ checkpoint; flags; }` → `{ xml }`.
    pub fn checkpoint_get_xml_desc(&mut self, cp: &DomainCheckpoint, flags: u32) -> Result<String> {
        self.text(procedure::DOMAIN_CHECKPOINT_GET_XML_DESC, |e| {
            e.put(cp).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_CHECKPOINT_DELETE`, `{ checkpoint; flags; }`
    /// ([`flags::snapshot_delete`] bits).
    pub fn checkpoint_delete(&mut self, cp: &DomainCheckpoint, flags: u32) -> Result<()> {
        self.void(procedure::DOMAIN_CHECKPOINT_DELETE, |e| {
            e.put(cp).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_BACKUP_BEGIN`, `{ dom; remote_nonnull_string backup_xml;
    /// remote_string checkpoint_xml; unsigned int flags; }`.
    pub fn backup_begin(
        &mut self,
        dom: &Domain,
        backup_xml: &str,
        checkpoint_xml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        self.void(procedure::DOMAIN_BACKUP_BEGIN, |e| {
            e.put(dom)
                .string(backup_xml)
                .opt_string(checkpoint_xml)
                .uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_BACKUP_GET_XML_DESC`, `{ dom; flags; }` → `{ xml }`.
    pub fn backup_get_xml_desc(&mut self, dom: &Domain) -> Result<String> {
        self.text(procedure::DOMAIN_BACKUP_GET_XML_DESC, |e| {
            e.put(dom).uint(0);
        })
    }

    // ----- block jobs -----

    /// `REMOTE_PROC_DOMAIN_GET_BLOCK_JOB_INFO`, `{ dom; remote_nonnull_string path;
    /// unsigned int flags; }` → `{ int found; int type; unsigned hyper bandwidth, cur,
    /// end; }`: `None` when no job runs on `disk`.
    pub fn block_job_info(&mut self, dom: &Domain, disk: &str) -> Result<Option<BlockJobInfo>> {
        reply!(Option<BlockJobInfo>, |d| {
            let found = d.int("block job found")?;
            let info = BlockJobInfo {
                kind: d.int("block job type")?,
                bandwidth: d.uhyper("block job bandwidth")?,
                cur: d.uhyper("block job cur")?,
                end: d.uhyper("block job end")?,
            };
            (found == 1).then_some(info)
        });
        self.call_typed::<_, R>(
            procedure::DOMAIN_GET_BLOCK_JOB_INFO,
            &Args(|e: &mut Encoder| {
                e.put(dom).string(disk).uint(0);
            }),
        )
        .map(|r| r.0)
    }

    /// `REMOTE_PROC_DOMAIN_BLOCK_COMMIT`, `{ dom; remote_nonnull_string disk;
    /// remote_string base; remote_string top; unsigned hyper bandwidth; unsigned int
    /// flags; }` ([`flags::block_commit`]; an `ACTIVE` commit ends with
    /// [`Client::block_job_abort`] and `PIVOT`).
    pub fn block_commit(
        &mut self,
        dom: &Domain,
        disk: &str,
        base: Option<&str>,
        top: Option<&str>,
        bandwidth: u64,
        flags: u32,
    ) -> Result<()> {
        self.void(procedure::DOMAIN_BLOCK_COMMIT, |e| {
            e.put(dom)
                .string(disk)
                .opt_string(base)
                .opt_string(top)
                .uhyper(bandwidth)
                .uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_BLOCK_PULL`, `{ dom; path; unsigned hyper bandwidth; flags; }`.
    pub fn block_pull(
        &mut self,
        dom: &Domain,
        disk: &str,
        bandwidth: u64,
        flags: u32,
    ) -> Result<()> {
        self.void(procedure::DOMAIN_BLOCK_PULL, |e| {
            e.put(dom).string(disk).uhyper(bandwidth).uint(flags);
        })
    }

    /// `REMOTE_PROC_DOMAIN_BLOCK_JOB_ABORT`, `{ dom; path; flags; }`
    /// ([`flags::block_job_abort`]).
    pub fn block_job_abort(&mut self, dom: &Domain, disk: &str, flags: u32) -> Result<()> {
        self.void(procedure::DOMAIN_BLOCK_JOB_ABORT, |e| {
            e.put(dom).string(disk).uint(flags);
        })
    }

    // ----- storage pools -----

    /// `REMOTE_PROC_STORAGE_POOL_DEFINE_XML`, `{ xml; flags; }` → `{ pool }`.
    pub fn storage_pool_define_xml(&mut self, xml: &str, flags: u32) -> Result<StoragePool> {
        self.typed(procedure::STORAGE_POOL_DEFINE_XML, |e| {
            e.string(xml).uint(flags);
        })
    }

    /// `REMOTE_PROC_STORAGE_POOL_CREATE`, `{ pool; flags; }`: starts a defined pool.
    pub fn storage_pool_create(&mut self, pool: &StoragePool, flags: u32) -> Result<()> {
        self.void(procedure::STORAGE_POOL_CREATE, |e| {
            e.put(pool).uint(flags);
        })
    }

    /// `REMOTE_PROC_STORAGE_POOL_LOOKUP_BY_NAME`, `{ name; }` → `{ pool }`.
    pub fn storage_pool_lookup_by_name(&mut self, name: &str) -> Result<StoragePool> {
        self.typed(procedure::STORAGE_POOL_LOOKUP_BY_NAME, |e| {
            e.string(name);
        })
    }

    /// `REMOTE_PROC_CONNECT_LIST_ALL_STORAGE_POOLS`, `{ need_results; flags; }` →
    /// `{ remote_nonnull_storage_pool pools<>; unsigned int ret; }`.
    pub fn list_all_storage_pools(&mut self, flags: u32) -> Result<Vec<StoragePool>> {
        reply!(Vec<StoragePool>, |d| {
            let list = d.array(
                "pools",
                limits::STORAGE_POOL_LIST_MAX,
                4 + 16,
                StoragePool::decode,
            )?;
            d.uint("pool count")?;
            list
        });
        self.call_typed::<_, R>(
            procedure::CONNECT_LIST_ALL_STORAGE_POOLS,
            &Args(|e: &mut Encoder| {
                e.int(1).uint(flags);
            }),
        )
        .map(|r| r.0)
    }

    /// `REMOTE_PROC_STORAGE_POOL_REFRESH`, `{ pool; flags; }`.
    pub fn storage_pool_refresh(&mut self, pool: &StoragePool) -> Result<()> {
        self.void(procedure::STORAGE_POOL_REFRESH, |e| {
            e.put(pool).uint(0);
        })
    }

    /// `REMOTE_PROC_STORAGE_POOL_DESTROY`, `{ pool; }`: stops it (volumes stay).
    pub fn storage_pool_destroy(&mut self, pool: &StoragePool) -> Result<()> {
        self.void(procedure::STORAGE_POOL_DESTROY, |e| {
            e.put(pool);
        })
    }

    /// `REMOTE_PROC_STORAGE_POOL_UNDEFINE`, `{ pool; }`.
    pub fn storage_pool_undefine(&mut self, pool: &StoragePool) -> Result<()> {
        self.void(procedure::STORAGE_POOL_UNDEFINE, |e| {
            e.put(pool);
        })
    }

    // ----- storage volumes -----

    /// `REMOTE_PROC_STORAGE_VOL_CREATE_XML`, `{ pool; xml; flags; }` → `{ vol }`.
    pub fn storage_vol_create_xml(
        &mut self,
        pool: &StoragePool,
        xml: &str,
        flags: u32,
    ) -> Result<StorageVol> {
        self.typed(procedure::STORAGE_VOL_CREATE_XML, |e| {
            e.put(pool).string(xml).uint(flags);
        })
    }

    /// `REMOTE_PROC_STORAGE_VOL_CREATE_XML_FROM`, `{ pool; xml; remote_nonnull_storage_vol
    /// clonevol; flags; }` → `{ vol }`: a new volume holding a copy of `clone`.
    pub fn storage_vol_create_xml_from(
        &mut self,
        pool: &StoragePool,
        xml: &str,
        clone: &StorageVol,
        flags: u32,
    ) -> Result<StorageVol> {
        self.typed(procedure::STORAGE_VOL_CREATE_XML_FROM, |e| {
            e.put(pool).string(xml).put(clone).uint(flags);
        })
    }

    /// `REMOTE_PROC_STORAGE_VOL_LOOKUP_BY_NAME`, `{ pool; name; }` → `{ vol }`.
    pub fn storage_vol_lookup_by_name(
        &mut self,
        pool: &StoragePool,
        name: &str,
    ) -> Result<StorageVol> {
        self.typed(procedure::STORAGE_VOL_LOOKUP_BY_NAME, |e| {
            e.put(pool).string(name);
        })
    }

    /// `REMOTE_PROC_STORAGE_VOL_GET_PATH`, `{ vol; }` → `{ remote_nonnull_string name; }`.
    pub fn storage_vol_get_path(&mut self, vol: &StorageVol) -> Result<String> {
        self.text(procedure::STORAGE_VOL_GET_PATH, |e| {
            e.put(vol);
        })
    }

    /// `REMOTE_PROC_STORAGE_VOL_GET_INFO`, `{ vol; }` → `{ char type; unsigned hyper
    /// capacity; unsigned hyper allocation; }`.
    pub fn storage_vol_get_info(&mut self, vol: &StorageVol) -> Result<StorageVolInfo> {
        reply!(StorageVolInfo, |d| StorageVolInfo {
            kind: d.int("volume type")?,
            capacity: d.uhyper("volume capacity")?,
            allocation: d.uhyper("volume allocation")?,
        });
        self.call_typed::<_, R>(
            procedure::STORAGE_VOL_GET_INFO,
            &Args(|e: &mut Encoder| {
                e.put(vol);
            }),
        )
        .map(|r| r.0)
    }

    /// `REMOTE_PROC_STORAGE_VOL_GET_XML_DESC`, `{ vol; flags; }` → `{ xml }`.
    pub fn storage_vol_get_xml_desc(&mut self, vol: &StorageVol) -> Result<String> {
        self.text(procedure::STORAGE_VOL_GET_XML_DESC, |e| {
            e.put(vol).uint(0);
        })
    }

    /// `REMOTE_PROC_STORAGE_VOL_DELETE`, `{ vol; flags; }` ([`flags::vol_delete`]).
    pub fn storage_vol_delete(&mut self, vol: &StorageVol, flags: u32) -> Result<()> {
        self.void(procedure::STORAGE_VOL_DELETE, |e| {
            e.put(vol).uint(flags);
        })
    }

    /// `REMOTE_PROC_STORAGE_POOL_LIST_ALL_VOLUMES`, `{ pool; need_results; flags; }` →
    /// `{ remote_nonnull_storage_vol vols<>; unsigned int ret; }`.
    pub fn list_all_volumes(&mut self, pool: &StoragePool) -> Result<Vec<StorageVol>> {
        reply!(Vec<StorageVol>, |d| {
            let list = d.array(
                "volumes",
                limits::STORAGE_VOL_LIST_MAX,
                12,
                StorageVol::decode,
            )?;
            d.uint("volume count")?;
            list
        });
        self.call_typed::<_, R>(
            procedure::STORAGE_POOL_LIST_ALL_VOLUMES,
            &Args(|e: &mut Encoder| {
                e.put(pool).int(1).uint(0);
            }),
        )
        .map(|r| r.0)
    }
}

/// A reply that is one `unsigned hyper`.
struct U64(u64);

impl XdrDecode for U64 {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        d.uhyper("unsigned hyper").map(U64)
    }
}
