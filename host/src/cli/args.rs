//! Command-line arguments (clap). Malformed values are usage errors (exit 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::MappingMode;
use crate::names::check_mount_point;
use crate::units::parse_size;

/// Protects and moves virtual machines, including physically mapped array LUNs.
#[derive(Debug, Parser)]
#[command(name = "tidemark", version, about)]
pub struct Cli {
    /// Data directory (catalog, endpoints' data, adapters). Default: $TIDEMARK_DATA_DIR,
    /// else the XDG data directory.
    #[arg(long, global = true, env = "TIDEMARK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The API server to send every command to (token in TIDEMARK_TOKEN). Without it, a
    /// server that owns the data directory is used if one runs; else the command runs
    /// embedded on the data directory.
    #[arg(long, global = true, env = "TIDEMARK_SERVER")]
    pub server: Option<String>,
    /// `text` for people, `json` for one machine-readable document on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Builds a lab, snapshots a VM with a physically mapped LUN, overwrites, reverts, compares.
    Demo,
    /// The bundled lab: file-backed hypervisor and array.
    #[command(subcommand)]
    Lab(LabCommand),
    /// VMs in the catalog.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Snapshots every device of a VM into one recovery point.
    Snapshot {
        vm: String,
        /// Only check the request and show the steps it would take; record nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Recovery points of a VM.
    Points { vm: String },
    /// Reverts a VM in place to a recovery point.
    Revert {
        vm: String,
        point: String,
        /// Only check the request and show the steps it would take; record nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Jobs, newest first.
    Jobs,
    /// One job with its steps (`job ID`), or cancel a running one (`job cancel ID`): it
    /// stops before its next step and compensates.
    Job {
        /// A job id, or `cancel`.
        id_or_action: String,
        /// With `cancel`: the job to cancel.
        id: Option<String>,
    },
    /// Continues every unfinished job (after a crash), or finishes compensating it.
    Resume,
    /// What the adapters themselves report: hosts, VMs, LUNs, snapshots.
    Inventory {
        /// Only this endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        /// Record the VMs the hypervisors report in the catalog (how Tidemark learns of
        /// VMs) instead of only showing what the adapters have.
        #[arg(long)]
        refresh: bool,
    },
    /// Differences between the catalog and the adapters; exit 1 if any.
    Reconcile,
    /// Configured endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Loaded adapters (embedded and from <data-dir>/adapters); the same as `adapter list`.
    Adapters,
    /// Adapters: added, listed and removed while the server runs; `adapter test FILE.wasm`
    /// runs the conformance suite.
    #[command(subcommand)]
    Adapter(AdapterCommand),
    /// Copies a recovery point into the copy store through a proxy VM (without POINT:
    /// snapshots first). Only what changed since the device's previous copy is read.
    Copy {
        vm: String,
        point: Option<String>,
        /// Hypervisor host of the proxy VM that reads the snapshots.
        #[arg(long, default_value = crate::engine::DEFAULT_PROXY_HOST)]
        proxy_host: String,
        /// Only check the request and show the steps it would take; record nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Recovery points of a VM that have copies, with sizes and stored bytes; or upkeep of
    /// the copy store itself (`copies upgrade`, `copies rebuild-index`).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Copies {
        #[command(subcommand)]
        store: Option<StoreCommand>,
        /// The VM whose copies to list.
        #[arg(required = true)]
        vm: Option<String>,
    },
    /// Restores a recovery point from its copies as a new VM (or, with --device, one
    /// device of the existing VM in place).
    Restore {
        vm: String,
        point: String,
        /// Hypervisor host for the new VM.
        #[arg(long, required_unless_present = "device")]
        host: Option<String>,
        /// Name of the new VM (default: <VM>-restored).
        #[arg(long = "as")]
        as_name: Option<String>,
        /// Array endpoint for the new LUNs (default: each LUN's original array).
        #[arg(long)]
        array: Option<String>,
        /// Restore only the device at this mount point, in place, into the VM itself.
        #[arg(long, value_parser = mount_point, conflicts_with_all = ["host", "as_name", "array"])]
        device: Option<String>,
        /// Only check the request and show the steps it would take; record nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-reads, decrypts and re-hashes every chunk of a point's copies (or of all); exit 1
    /// if anything is damaged.
    Verify {
        point: Option<String>,
        #[arg(long, conflicts_with = "point")]
        all: bool,
    },
    /// Deletes snapshots and copies beyond what the policy keeps.
    Expire {
        /// Keep the snapshots of the newest N points per VM.
        #[arg(long)]
        keep_snapshots: Option<usize>,
        /// Keep the copies of the newest N points per VM.
        #[arg(long)]
        keep_copies: Option<usize>,
        /// Delete copies older than D days.
        #[arg(long)]
        keep_days: Option<u64>,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Frees copy-store chunks no copy references and rewrites mostly dead packs (safe
    /// while copies run).
    Gc {
        /// Rewrite packs whose live share is below PERCENT (0-100; default: the server's
        /// `gc_repack_below`, 50 unless configured).
        #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
        repack_below: Option<u8>,
    },
    /// Runs the HTTP admin API (HTTPS with tls.cert + tls.key; plain HTTP on loopback
    /// only); resumes unfinished jobs at start. Settings: flag > environment > file > default.
    Serve {
        /// Address to listen on (default 127.0.0.1:7480, or `listen` in the config file, or
        /// $TIDEMARK_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// A TOML configuration file (unknown keys are refused).
        #[arg(long, env = "TIDEMARK_CONFIG")]
        config: Option<PathBuf>,
        /// Prints the effective configuration as TOML and exits.
        #[arg(long)]
        print_config: bool,
    },
    /// Bearer tokens for the admin API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The catalog itself: `catalog recover --from-copies` after `catalog.sqlite` was lost.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Physical machines behind BMC endpoints: inventory, power, boot override, virtual media.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Records of DNS endpoints (what a cut-over repoints).
    #[command(subcommand)]
    Dns(DnsCommand),
}

/// Physical machines, each named `ENDPOINT:SYSTEM`.
#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// The machines of every machine endpoint.
    List,
    /// What the BMC reports of a machine (unknown fields say so).
    Show {
        /// ENDPOINT:SYSTEM
        machine: String,
    },
    /// Powers a machine on, off or resets it, and waits until the BMC reports the state.
    Power {
        /// ENDPOINT:SYSTEM
        machine: String,
        /// on, off or reset.
        action: String,
        /// With off: cut power at once instead of asking the OS to shut down.
        #[arg(long)]
        force: bool,
    },
    /// Inserts an image (a URL the BMC can fetch) as virtual media, or ejects it.
    Media {
        /// ENDPOINT:SYSTEM
        machine: String,
        /// insert or eject.
        action: String,
        /// The image URL (for insert).
        url: Option<String>,
    },
    /// Boots from a device next time (none, pxe, cd, hdd, usb, bios-setup).
    Boot {
        /// ENDPOINT:SYSTEM
        machine: String,
        device: String,
        /// Until changed, instead of the next boot only.
        #[arg(long)]
        continuous: bool,
    },
}

/// DNS records, by endpoint, name and kind (A, AAAA, CNAME).
#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// The zones an endpoint may change.
    Zones { endpoint: String },
    /// A record as the server holds it.
    Get {
        endpoint: String,
        name: String,
        kind: String,
        /// The zone (default: the longest zone of the server holding the name).
        #[arg(long)]
        zone: Option<String>,
    },
    /// Makes a record exactly these values.
    Set {
        endpoint: String,
        name: String,
        kind: String,
        /// Addresses (A, AAAA) or the one target name (CNAME).
        #[arg(required = true)]
        values: Vec<String>,
        /// Seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u32,
        /// The zone (default: the longest zone of the server holding the name).
        #[arg(long)]
        zone: Option<String>,
    },
    /// Removes a record (one that is not there is removed already).
    Delete {
        endpoint: String,
        name: String,
        kind: String,
        /// The zone (default: the longest zone of the server holding the name).
        #[arg(long)]
        zone: Option<String>,
    },
}

/// Upkeep of the catalog.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Records the VMs, recovery points and copy refs the copy store's manifests describe
    /// and the catalog lacks; what the catalog has is kept (safe to run again).
    Recover {
        /// Rebuild from the copy store (the only source so far).
        #[arg(long, required = true)]
        from_copies: bool,
    },
}

/// Upkeep of the copy store itself.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Migrates a copy store of an older format in place (safe to run again after a crash).
    Upgrade,
    /// Rebuilds the chunk index from the pack headers (after index objects were lost).
    RebuildIndex,
    /// The copy store's key (key-file mode): keep a second copy of it away from this machine.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// The copy store's key.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Writes the key file to FILE (a new file, mode 0600; on a local data directory only,
    /// never over the API); copies stop warning that the key exists only here.
    Export {
        /// Where to write it; refused if it exists.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Adds an adapter component (or a new version of one); usable at once, also by a
    /// running server. Its name is the file's stem unless `--name` gives one.
    Add {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Every loaded version with its contract, sha256 and the endpoints using it.
    List,
    /// Removes an adapter, every version or NAME@VERSION; refused while an endpoint uses it.
    Remove { adapter: String },
    /// Writes a new adapter project that builds offline and passes the conformance suite
    /// as generated (a file-backed implementation to replace).
    New {
        /// The crate name: lower-case letters, digits and '-'.
        name: String,
        /// storage-array (hypervisor later).
        #[arg(long, default_value = "storage-array")]
        kind: String,
        /// rust (python later).
        #[arg(long, default_value = "rust")]
        lang: String,
        /// A Tidemark checkout whose sdk/ to use instead of the embedded copy.
        #[arg(long, value_name = "CHECKOUT")]
        sdk: Option<PathBuf>,
        /// Where to create the project directory (default: here).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Runs the conformance suite against an adapter file (a hypervisor, storage array, DNS service or machine BMC)
    /// in a private, temporary data directory; exit 1 naming every failed check, 2 when the
    /// file is not a loadable adapter.
    Test(AdapterTest),
}

#[derive(Debug, Args)]
pub struct AdapterTest {
    /// The adapter component to test.
    #[arg(required_unless_present = "list")]
    pub file: Option<PathBuf>,
    /// key=value for the adapter's endpoint, repeatable.
    #[arg(long = "setting", value_parser = setting_arg)]
    pub settings: Vec<(String, String)>,
    /// http=HOST[:PORT], tcp=HOST:PORT or data-dir=PATH for the adapter's endpoint,
    /// repeatable (a private data directory is granted if it asks for one).
    #[arg(long = "grant", value_parser = grant_arg)]
    pub grants: Vec<String>,
    /// NAME=@FILE or NAME=env:VAR, a secret for the adapter's endpoint, repeatable.
    #[arg(long = "secret", value_parser = SecretArg)]
    pub secrets: Vec<(String, String)>,
    /// For a hypervisor: the storage array its mapped LUNs live on, an adapter file or an
    /// endpoint of the data directory. Without it the mapped-LUN checks are skipped.
    #[arg(long)]
    pub array: Option<String>,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Prints every check (id, kind, tags, claim) and runs nothing.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Creates a token and shows it once (only its hash is stored).
    Create {
        /// admin, operator or viewer.
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
        /// A unique name (default: the role and a random suffix).
        #[arg(long)]
        name: Option<String>,
    },
    /// Token names and roles.
    List,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Configures the lab endpoints `lab-hypervisor` and `lab-array`.
    Init,
    /// Lab VMs.
    #[command(subcommand)]
    Vm(LabVmCommand),
    /// Writes a file into a VM's device, as its guest would.
    Write {
        vm: String,
        #[arg(value_parser = mount_point)]
        mount: String,
        #[arg(long, value_parser = size)]
        offset: u64,
        #[arg(long)]
        file: PathBuf,
    },
    /// Powers a lab VM on or off.
    Power {
        vm: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Reads bytes of a VM's device, as its guest would (to stdout, or --out).
    Read {
        vm: String,
        #[arg(value_parser = mount_point)]
        mount: String,
        #[arg(long, value_parser = size)]
        offset: u64,
        #[arg(long, value_parser = size)]
        length: u64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LabVmCommand {
    /// Creates a VM with virtual disks and LUNs (created on the array, exposed, mapped).
    Create(CreateVm),
}

#[derive(Debug, Args)]
pub struct CreateVm {
    pub name: String,
    /// Hypervisor host, e.g. esx-a.
    #[arg(long)]
    pub host: String,
    /// A virtual disk: MOUNT=SIZE, e.g. C:=1GiB.
    #[arg(long = "disk", value_parser = disk_arg)]
    pub disks: Vec<(String, u64)>,
    /// A LUN: MOUNT=SIZE:physical|virtual, e.g. D:=2GiB:physical.
    #[arg(long = "lun", value_parser = lun_arg)]
    pub luns: Vec<(String, u64, MappingMode)>,
    /// Hypervisor endpoint.
    #[arg(long, default_value = "lab-hypervisor")]
    pub hypervisor: String,
    /// Array endpoint for the LUNs.
    #[arg(long, default_value = "lab-array")]
    pub array: String,
    /// Virtual CPUs (unknown when not given).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub cpus: Option<u32>,
    /// Memory, e.g. 4GiB (unknown when not given).
    #[arg(long, value_parser = memory_arg)]
    pub memory: Option<u64>,
    /// A NIC: MAC@NETWORK, e.g. 52:54:00:12:34:56@prod; repeatable.
    #[arg(long = "nic", value_parser = nic_arg)]
    pub nics: Vec<crate::model::Nic>,
    /// bios or uefi (unknown when not given).
    #[arg(long)]
    pub firmware: Option<crate::model::Firmware>,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Every VM.
    List,
    /// One VM with its devices.
    Show { vm: String },
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Adds an endpoint of a loaded adapter.
    Add {
        name: String,
        #[arg(long)]
        adapter: String,
        /// key=value, repeatable. Reserved: timeout (30s), memory (256MiB).
        #[arg(long = "setting", value_parser = setting_arg)]
        settings: Vec<(String, String)>,
        /// What its sandbox may reach, repeatable: http=HOST[:PORT], tcp=HOST:PORT,
        /// data-dir (its private directory) or data-dir=PATH (a directory it shares with
        /// the system behind it, e.g. qsd's images). Nothing is granted unless given here.
        #[arg(long = "grant", value_parser = grant_arg)]
        grants: Vec<String>,
        /// NAME=@FILE or NAME=env:VAR, repeatable: a secret its adapter reads through
        /// host.secret, stored encrypted and never shown. The value is read here, by the
        /// command, and sent to the server (one trailing newline of a file is dropped).
        #[arg(long = "secret", value_parser = SecretArg)]
        secrets: Vec<(String, String)>,
    },
    /// Sets or removes secrets of an endpoint; sessions opened afterwards use the new
    /// values (no restart).
    Secret {
        name: String,
        /// NAME=@FILE or NAME=env:VAR, repeatable.
        #[arg(value_parser = SecretArg, required_unless_present = "remove")]
        secrets: Vec<(String, String)>,
        /// A secret to remove, repeatable.
        #[arg(long = "remove", value_name = "NAME")]
        remove: Vec<String>,
    },
    /// Every endpoint (credential-like settings redacted).
    List,
    /// Removes an endpoint nothing depends on (its data directory is kept).
    Remove { name: String },
    /// Opens a session and asks the adapter what it has; exit 1 if that fails.
    Test { name: String },
}

fn size(raw: &str) -> Result<u64, String> {
    parse_size(raw)
}

fn mount_point(raw: &str) -> Result<String, String> {
    check_mount_point(raw).map(|_| raw.to_string())
}

fn split_mount(raw: &str) -> Result<(String, &str), String> {
    // A drive mount contains ':' itself, so split on the last '=' before the size.
    let (mount, rest) = raw
        .split_once('=')
        .ok_or_else(|| format!("'{raw}': expected MOUNT=SIZE"))?;
    check_mount_point(mount)?;
    Ok((mount.to_string(), rest))
}

fn memory_arg(raw: &str) -> Result<u64, String> {
    let bytes = parse_size(raw)?;
    if bytes < (1 << 20) {
        return Err(format!("'{raw}': a VM needs at least 1MiB of memory"));
    }
    Ok(bytes)
}

/// `MAC@NETWORK`: six hex pairs, colon separated, and a network name.
fn nic_arg(raw: &str) -> Result<crate::model::Nic, String> {
    let (mac, network) = raw
        .split_once('@')
        .ok_or_else(|| format!("'{raw}': expected MAC@NETWORK, e.g. 52:54:00:12:34:56@prod"))?;
    crate::names::check_mac(mac).map_err(|e| format!("'{raw}': {e}"))?;
    if network.is_empty() || network.len() > 64 {
        return Err(format!(
            "'{raw}': a network name must have 1 to 64 characters"
        ));
    }
    Ok(crate::model::Nic {
        mac: mac.to_ascii_lowercase(),
        network: network.to_string(),
        model: None,
    })
}

fn disk_arg(raw: &str) -> Result<(String, u64), String> {
    let (mount, size_text) = split_mount(raw)?;
    Ok((mount, positive(parse_size(size_text)?, raw)?))
}

fn lun_arg(raw: &str) -> Result<(String, u64, MappingMode), String> {
    let (mount, rest) = split_mount(raw)?;
    let (size_text, mode) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("'{raw}': expected MOUNT=SIZE:physical or MOUNT=SIZE:virtual"))?;
    let mode = match mode {
        "physical" => MappingMode::Physical,
        "virtual" => MappingMode::Virtual,
        other => {
            return Err(format!(
                "'{raw}': mapping mode '{other}' must be physical or virtual"
            ));
        }
    };
    Ok((mount, positive(parse_size(size_text)?, raw)?, mode))
}

fn positive(size: u64, raw: &str) -> Result<u64, String> {
    if size == 0 || !size.is_multiple_of(512) {
        return Err(format!(
            "'{raw}': size must be a positive multiple of 512 bytes"
        ));
    }
    Ok(size)
}

fn grant_arg(raw: &str) -> Result<String, String> {
    crate::model::capabilities::Grants::parse(&[raw.to_string()])?;
    Ok(raw.trim().to_string())
}

/// `NAME=@FILE` or `NAME=env:VAR`, resolved here, by the command: the server never reads
/// files or its environment for secrets. A literal value is refused (it would sit in the
/// shell's history and in `ps`). Its errors never repeat the argument (clap's own
/// "invalid value '…'" would, so this is a parser of its own, not a function).
#[derive(Clone)]
struct SecretArg;

impl clap::builder::TypedValueParser for SecretArg {
    type Value = (String, String);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let refuse = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{message}\n"),
            )
            .with_cmd(cmd)
        };
        let raw = value
            .to_str()
            .ok_or_else(|| refuse("a --secret is not UTF-8".into()))?;
        secret_arg(raw).map_err(refuse)
    }
}

fn secret_arg(raw: &str) -> Result<(String, String), String> {
    let (name, source) = raw
        .split_once('=')
        .ok_or("a secret is NAME=@FILE or NAME=env:VAR")?;
    crate::model::capabilities::check_secret_name(name)?;
    let value = if let Some(path) = source.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("secret {name}: cannot read {path}: {e}"))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        text.strip_suffix('\r').unwrap_or(text).to_string()
    } else if let Some(var) = source.strip_prefix("env:") {
        std::env::var(var)
            .map_err(|_| format!("secret {name}: the environment variable {var} is not set"))?
    } else {
        return Err(format!(
            "secret {name}: give the value as @FILE or env:VAR, not on the command line \
             (where the shell's history and ps would keep it)"
        ));
    };
    if value.is_empty() {
        return Err(format!("secret {name}: the value is empty"));
    }
    Ok((name.to_string(), value))
}

fn setting_arg(raw: &str) -> Result<(String, String), String> {
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("'{raw}': expected key=value"))?;
    if key.is_empty() {
        return Err(format!("'{raw}': empty setting key"));
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_and_lun_arguments() {
        assert_eq!(disk_arg("C:=1GiB"), Ok(("C:".into(), 1 << 30)));
        assert_eq!(disk_arg("/data=64MiB"), Ok(("/data".into(), 64 << 20)));
        assert_eq!(
            lun_arg("D:=2GiB:physical"),
            Ok(("D:".into(), 2 << 30, MappingMode::Physical))
        );
        assert!(
            lun_arg("D:=2GiB:sideways")
                .unwrap_err()
                .contains("sideways")
        );
        assert!(disk_arg("C:=12XB").unwrap_err().contains("12XB"));
        assert!(disk_arg("C=1GiB").unwrap_err().contains("mount point"));
        assert!(disk_arg("C:=0").is_err());
    }
}
