//! The data path: a disk's bytes over NBD, never through a directory grant.
//!
//! An image nothing runs on (a snapshot's frozen layer, the disk of a domain that is off)
//! is opened by a **proxy**: a transient, diskless domain started paused with
//! `AUTODESTROY`, so it lives exactly as long as the reader's or writer's libvirt
//! connection (a crashed adapter leaves nothing running). Through libvirt's QEMU monitor
//! passthrough the proxy's QEMU adds the image as a block node (read-only for a reader),
//! starts its NBD server on a free port of the `nbd` setting and exports the node, with
//! `qemu:allocation-depth` so a reader can tell which layer of the chain holds each
//! cluster. The disk of a running domain is exported read-only by the domain's own QEMU
//! (its active node, libvirt's `libvirt-N-format`); writing a running domain's disk is a
//! `conflict` (its virtio device does not share writes).
//!
//! Changed extents come from the chain, as on the qsd array: what the layers above the
//! `since` snapshot's frozen image hold changed after it; when that image is not under what
//! is read (a revert branched it away), `unsupported`, and the host reads everything.

use std::time::Duration;

use libvirt_rpc::{Domain, flags};
use nbd_client::device::{ALLOCATION_DEPTH, BASE_ALLOCATION, NbdDevice};
use serde_json::{Value, json};
use tidemark_sdk::records::random_hex;
use tidemark_sdk::{AdapterError, AdapterResult, DeviceRead, DeviceWrite, Extent};

use crate::conn::Conn;
use crate::xml::{MetaSnapshot, esc};

/// Names of proxy domains start so (they are not VMs: inventory leaves them out).
pub const PROXY_PREFIX: &str = "tm-proxy-";
/// The block node a proxy opens its image as.
pub const NODE: &str = "tm-io";

/// A transient, diskless domain started paused that lives as long as `conn`
/// (`AUTODESTROY`): the QEMU that opens an image nothing runs on.
pub fn start_proxy(conn: &mut Conn) -> AdapterResult<Domain> {
    let name = format!("{PROXY_PREFIX}{}", random_hex(12));
    let xml = format!(
        "<domain type='qemu'><name>{}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>\
         <devices><memballoon model='none'/></devices></domain>",
        esc(&name)
    );
    conn.client
        .domain_create_xml(&xml, flags::create::PAUSED | flags::create::AUTODESTROY)
        .map_err(conn.err(&format!("starting proxy domain {name}")))
}

/// Stops a proxy at once (QMP `quit`: a destroy waits over a second for QEMU to go);
/// what is left goes with the connection (`AUTODESTROY`).
pub fn stop_proxy(c: &mut Conn, dom: &Domain) {
    // QEMU exits before it answers: the monitor's EOF is the expected outcome.
    let _ = qmp(c, dom, "quit", json!({}));
    c.abandoned = true;
}

/// Opens the qcow2 image at `path` (and its chain) in proxy `dom` as block node `node`.
/// QEMU's image locks arbitrate: an image another QEMU writes (a running domain, a writer's
/// proxy) is `conflict`, as is, for a writable open, one another QEMU reads as a backing
/// image.
pub fn open_node(
    c: &mut Conn,
    dom: &Domain,
    node: &str,
    path: &str,
    writable: bool,
) -> AdapterResult<()> {
    qmp(
        c,
        dom,
        "blockdev-add",
        json!({
            "driver": "qcow2",
            "node-name": node,
            "read-only": !writable,
            "file": {"driver": "file", "filename": path},
        }),
    )
    .map(|_| ())
    .map_err(|e| match e {
        AdapterError::Internal(m) if m.contains("lock") => {
            AdapterError::Conflict(format!("image {path} is in use: {m}"))
        }
        other => other,
    })
}

/// [`open_node`], trying again while the image is in use, up to `wait`: another QEMU
/// may be just going (a proxy that quit), or a snapshot holding the image for a moment.
pub fn open_node_waiting(
    c: &mut Conn,
    dom: &Domain,
    node: &str,
    path: &str,
    writable: bool,
    wait: Duration,
) -> AdapterResult<()> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match open_node(c, dom, node, path, writable) {
            Err(AdapterError::Conflict(m)) if std::time::Instant::now() < deadline => {
                tidemark_sdk::log::debug(&format!("waiting for {path}: {m}"));
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(AdapterError::Conflict(m)) => {
                return Err(AdapterError::Conflict(format!(
                    "{m}; still in use after {:.1} s",
                    wait.as_secs_f64()
                )));
            }
            other => return other,
        }
    }
}

/// How long a reader or writer waits for an image another QEMU holds.
const OPEN_WAIT: Duration = Duration::from_secs(5);

/// Holds `images` open for writing in a new proxy until [`stop_proxy`], waiting (up to the
/// endpoint's timeout) while another QEMU uses one: a snapshot or revert of a domain that
/// is off takes its disks' tops so, and a writer's proxy can neither be writing them nor
/// open them meanwhile.
pub fn hold(c: &mut Conn, images: &[String]) -> AdapterResult<Domain> {
    let proxy = start_proxy(c)?;
    let wait = c.settings.timeout;
    for (i, path) in images.iter().enumerate() {
        if let Err(e) = open_node_waiting(c, &proxy, &format!("tm-hold{i}"), path, true, wait) {
            stop_proxy(c, &proxy);
            return Err(match e {
                AdapterError::Conflict(m) => AdapterError::Transient(m),
                other => other,
            });
        }
    }
    Ok(proxy)
}

/// One QMP command through the monitor passthrough: its `return`, or the QMP error as
/// `internal` naming the domain and the command.
pub fn qmp(c: &mut Conn, dom: &Domain, command: &str, arguments: Value) -> AdapterResult<Value> {
    let text = json!({"execute": command, "arguments": arguments}).to_string();
    let answer = c
        .client
        .qemu_monitor_command(dom, &text)
        .map_err(c.err(&format!("QMP {command} on domain {}", dom.name)))?;
    let v: Value = serde_json::from_str(&answer).map_err(|e| {
        AdapterError::Internal(format!(
            "QMP {command} on domain {}: the answer is not JSON ({e}): {answer:.200}",
            dom.name
        ))
    })?;
    if let Some(err) = v.get("error") {
        return Err(AdapterError::Internal(format!(
            "QMP {command} on domain {}: {}",
            dom.name,
            err.get("desc")
                .and_then(Value::as_str)
                .unwrap_or("(no description)")
        )));
    }
    Ok(v.get("return").cloned().unwrap_or(Value::Null))
}

/// Where an export serves: an NBD server on the first free port of the `nbd` setting, or
/// `None` when the domain's QEMU runs one already (another reader of a running domain, or
/// one that died): its exports share it, and the reader finds its port by connecting.
fn start_server(c: &mut Conn, dom: &Domain) -> AdapterResult<Option<String>> {
    let (host, ports) = c.settings.nbd()?;
    let mut last = String::new();
    for port in ports {
        let addr = json!({"type": "inet", "data": {"host": host, "port": port.to_string()}});
        match qmp(c, dom, "nbd-server-start", json!({ "addr": addr })) {
            Ok(_) => return Ok(Some(format!("{host}:{port}"))),
            Err(AdapterError::Internal(m)) if m.contains("already running") => return Ok(None),
            Err(AdapterError::Internal(m)) => last = m,
            Err(e) => return Err(e),
        }
    }
    Err(AdapterError::Transient(format!(
        "no free port in endpoint setting 'nbd' for an NBD server of domain {}: {last}",
        dom.name
    )))
}

/// Stops a running domain's NBD server once no export uses it (another reader's stays).
fn stop_idle_server(c: &mut Conn, dom: &Domain) {
    if qmp(c, dom, "query-block-exports", json!({}))
        .is_ok_and(|e| e.as_array().is_none_or(Vec::is_empty))
    {
        let _ = qmp(c, dom, "nbd-server-stop", json!({}));
    }
}

/// An image exported over NBD by a proxy or a running domain, until dropped.
struct Export {
    conn: Conn,
    dom: Domain,
    /// A proxy we started (destroyed at the end), not a running VM.
    proxy: bool,
    id: String,
}

/// A connection to an export: a disk's (ended when dropped, after the connection: fields
/// drop in order) or a SAN's.
pub struct Link {
    device: NbdDevice,
    export: Option<Box<Export>>,
}

impl Export {
    /// Starts a paused proxy exporting the image at `path`.
    fn proxy(mut conn: Conn, path: &str, writable: bool) -> AdapterResult<Link> {
        let dom = start_proxy(&mut conn)?;
        match open_node_waiting(&mut conn, &dom, NODE, path, writable, OPEN_WAIT) {
            Ok(()) => Self::serve(conn, dom, true, NODE, writable),
            Err(e) => {
                stop_proxy(&mut conn, &dom);
                Err(e)
            }
        }
    }

    /// Exports the disk of running domain `dom` whose live source has libvirt index
    /// `index`, read-only, from its active node.
    fn running(conn: Conn, dom: Domain, index: u32) -> AdapterResult<Link> {
        Self::serve(conn, dom, false, &format!("libvirt-{index}-format"), false)
    }

    fn serve(
        mut conn: Conn,
        dom: Domain,
        proxy: bool,
        node: &str,
        writable: bool,
    ) -> AdapterResult<Link> {
        let result = (|| {
            let address = start_server(&mut conn, &dom)?;
            // The export's id is also its NBD name: unique, so readers of one running
            // domain never meet.
            let id = format!("tm-{}", random_hex(8));
            qmp(
                &mut conn,
                &dom,
                "block-export-add",
                json!({
                    "type": "nbd", "id": id, "node-name": node, "name": id,
                    "writable": writable, "allocation-depth": true,
                }),
            )?;
            let timeout = conn.settings.timeout;
            let device = match address {
                Some(address) => NbdDevice::connect(&address, &id, &[ALLOCATION_DEPTH], timeout)?,
                None => {
                    // The server another export started: the port that knows our export.
                    let (host, ports) = conn.settings.nbd()?;
                    ports
                        .iter()
                        .find_map(|p| {
                            let at = format!("{host}:{p}");
                            NbdDevice::connect(&at, &id, &[ALLOCATION_DEPTH], timeout).ok()
                        })
                        .ok_or_else(|| {
                            AdapterError::Transient(format!(
                                "domain {} runs an NBD server on none of the ports of setting \
                                 'nbd'",
                                dom.name
                            ))
                        })?
                }
            };
            Ok((id, device))
        })();
        match result {
            Ok((id, device)) => Ok(Link {
                device,
                export: Some(Box::new(Export {
                    conn,
                    dom,
                    proxy,
                    id,
                })),
            }),
            Err(e) => {
                if proxy {
                    stop_proxy(&mut conn, &dom);
                } else {
                    stop_idle_server(&mut conn, &dom);
                }
                Err(e)
            }
        }
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        let (c, dom) = (&mut self.conn, &self.dom);
        if self.proxy {
            // QEMU's quit closes every node, flushing what it still caches of the image.
            stop_proxy(c, dom);
        } else {
            let _ = qmp(
                c,
                dom,
                "block-export-del",
                json!({"id": self.id, "mode": "hard"}),
            );
            stop_idle_server(c, dom);
        }
    }
}

/// What a reader reads.
pub enum ReadTarget<'a> {
    /// A qcow2 image nothing runs on.
    Image(&'a str),
    /// A disk of a running domain: its live source's libvirt index.
    Running(Domain, u32),
    /// An NBD export (a mapped LUN on the SAN): address and export name.
    Nbd(String, String),
}

/// Reads a disk, a snapshot, or a mapped LUN.
pub struct DiskReader {
    link: Link,
    /// The chain read, top first (empty for a LUN).
    chain: Vec<String>,
    /// The VM's snapshots when opened (a `since` must be one of them).
    snapshots: Vec<MetaSnapshot>,
    /// The disk, for messages and to tell another disk's snapshot.
    dev: String,
}

impl DiskReader {
    /// Opens `target` on `conn` (which the reader keeps: a proxy lives as long as it).
    pub fn open(
        conn: Conn,
        target: ReadTarget<'_>,
        chain: Vec<String>,
        snapshots: Vec<MetaSnapshot>,
        dev: &str,
    ) -> AdapterResult<DiskReader> {
        let link = match target {
            ReadTarget::Image(path) => Export::proxy(conn, path, false)?,
            ReadTarget::Running(dom, index) => Export::running(conn, dom, index)?,
            ReadTarget::Nbd(address, export) => {
                let timeout = conn.settings.timeout;
                Link {
                    device: NbdDevice::connect(&address, &export, &[BASE_ALLOCATION], timeout)?,
                    export: None,
                }
            }
        };
        Ok(DiskReader {
            link,
            chain,
            snapshots,
            dev: dev.to_string(),
        })
    }
}

impl DeviceRead for DiskReader {
    fn size(&self) -> u64 {
        self.link.device.size()
    }

    fn read(&mut self, offset: u64, length: u64) -> AdapterResult<Vec<u8>> {
        self.link.device.read(offset, length)
    }

    fn allocated_extents(&mut self) -> AdapterResult<Vec<Extent>> {
        if self.link.export.is_some() {
            self.link.device.allocated_in_chain()
        } else {
            // A SAN's export: base:allocation flag 1 is a hole.
            self.link
                .device
                .extents_where(BASE_ALLOCATION, |f| f & 1 == 0)
        }
    }

    fn changed_extents(&mut self, since: &str) -> AdapterResult<Vec<Extent>> {
        let Some(snap) = self.snapshots.iter().find(|s| s.id == since) else {
            return Err(AdapterError::NotFound(format!(
                "no snapshot {since:?} of the VM this reader reads"
            )));
        };
        if snap.dev != self.dev {
            return Err(AdapterError::Unsupported(format!(
                "snapshot {since} is of disk {}, not {}",
                snap.dev, self.dev
            )));
        }
        self.link
            .device
            .changed_above(&self.chain, &snap.layer)
            .unwrap_or_else(|| {
                Err(AdapterError::Unsupported(format!(
                    "snapshot {since} is no longer under what this reader reads (the disk was \
                     reverted since); read it all"
                )))
            })
    }
}

/// Writes a disk of a domain that is off (or a mapped LUN on the SAN).
pub struct DiskWriter {
    link: Link,
    what: String,
}

impl DiskWriter {
    /// A writer of the image at `path` through a proxy, `what` naming the disk.
    pub fn image(conn: Conn, path: &str, what: String) -> AdapterResult<DiskWriter> {
        Ok(DiskWriter {
            link: Export::proxy(conn, path, true)?,
            what,
        })
    }

    /// A writer of a SAN export.
    pub fn lun(address: &str, export: &str, timeout: Duration) -> AdapterResult<DiskWriter> {
        Ok(DiskWriter {
            link: Link {
                device: NbdDevice::connect(address, export, &[], timeout)?,
                export: None,
            },
            what: format!("LUN {export}"),
        })
    }
}

impl DeviceWrite for DiskWriter {
    fn size(&self) -> u64 {
        self.link.device.size()
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> AdapterResult<()> {
        self.link.device.write(offset, data, &self.what)
    }

    fn flush(&mut self) -> AdapterResult<()> {
        self.link.device.flush()
    }
}
