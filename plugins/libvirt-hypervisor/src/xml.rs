//! Domain XML: what a definition says (disks, NICs, hardware, Tidemark's metadata) and the
//! pieces the adapter writes into it. The adapter edits a definition by splicing byte
//! ranges of libvirt's own XML (roxmltree gives each element's range), so everything it
//! does not touch stays exactly as libvirt wrote it.

use std::ops::Range;

use tidemark_sdk::{AdapterError, AdapterResult, Firmware, MappingMode, Nic};

/// Tidemark's namespace in a domain's `<metadata>`.
pub const TM_NS: &str = "https://tidemark.dev/libvirt/1";
/// libosinfo's namespace (the guest OS hint virt-install keeps).
pub const OSINFO_NS: &str = "http://libosinfo.org/xmlns/libvirt/domain/1.0";

/// Escapes text for an XML attribute or element.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// What backs a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file (or a pool volume): its path.
    File(String),
    /// An NBD export: its name (the WWN for mapped LUNs) and server, if given.
    Nbd(String, Option<(String, u16)>),
    /// Anything else (a block device, another network protocol, an empty drive).
    Other(String),
}

/// One `<disk device='disk'>`.
#[derive(Debug, Clone)]
pub struct Disk {
    /// Target dev (`vda`): the device id.
    pub dev: String,
    pub bus: Option<String>,
    pub source: Source,
    pub serial: Option<String>,
    /// Whether it is `<readonly/>`.
    pub readonly: bool,
    /// libvirt's `index` of the source in a live definition: QEMU's node of the disk's
    /// top is `libvirt-<index>-format`.
    pub index: Option<u32>,
    /// The element's bytes in the XML.
    pub range: Range<usize>,
    /// The bytes of its `<source>` and of any `<backingStore>` child (what a source swap
    /// replaces).
    pub source_range: Option<Range<usize>>,
    pub backing_range: Option<Range<usize>>,
}

/// One `<tm:device>` of the metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaDevice {
    pub dev: String,
    pub mount: String,
    pub wwn: Option<String>,
    pub mode: Option<MappingMode>,
    /// `POOL/NAME` of a volume the adapter made (deleted with the VM).
    pub vol: Option<String>,
    pub capacity: Option<u64>,
    /// The token key of the call that made it.
    pub made_by: Option<String>,
}

/// One `<tm:snapshot>`: a disk's snapshot is the qcow2 image that was its top when the
/// snapshot was taken, frozen since (`layer`), the disk going on in a new overlay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaSnapshot {
    /// The snapshot id the contract hands out: `<token key>-<dev>`.
    pub id: String,
    pub dev: String,
    /// Path of the frozen image.
    pub layer: String,
    /// Milliseconds since the epoch.
    pub at: u64,
    /// The token key of the snapshot-disks call.
    pub made_by: String,
}

/// `<tm:devices>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The token key of the create-vm that made the domain.
    pub made_by: Option<String>,
    pub devices: Vec<MetaDevice>,
    pub snapshots: Vec<MetaSnapshot>,
    /// The adapter paused the domain to hold its writes (`quiesce`) and resumes it at
    /// `unquiesce`; a domain paused by someone else stays as it is.
    pub held: bool,
}

impl Meta {
    /// The metadata element as XML.
    pub fn to_xml(&self) -> String {
        let mut out = format!("<tm:devices xmlns:tm=\"{TM_NS}\"");
        if let Some(k) = &self.made_by {
            out.push_str(&format!(" made-by=\"{}\"", esc(k)));
        }
        if self.held {
            out.push_str(" held=\"1\"");
        }
        out.push('>');
        for d in &self.devices {
            out.push_str(&format!(
                "<tm:device dev=\"{}\" mount=\"{}\"",
                esc(&d.dev),
                esc(&d.mount)
            ));
            if let Some(w) = &d.wwn {
                out.push_str(&format!(" wwn=\"{}\"", esc(w)));
            }
            if let Some(m) = d.mode {
                out.push_str(&format!(" mode=\"{}\"", mode_name(m)));
            }
            if let Some(v) = &d.vol {
                out.push_str(&format!(" vol=\"{}\"", esc(v)));
            }
            if let Some(c) = d.capacity {
                out.push_str(&format!(" capacity=\"{c}\""));
            }
            if let Some(k) = &d.made_by {
                out.push_str(&format!(" made-by=\"{}\"", esc(k)));
            }
            out.push_str("/>");
        }
        for snap in &self.snapshots {
            out.push_str(&format!(
                "<tm:snapshot id=\"{}\" dev=\"{}\" layer=\"{}\" at=\"{}\" made-by=\"{}\"/>",
                esc(&snap.id),
                esc(&snap.dev),
                esc(&snap.layer),
                snap.at,
                esc(&snap.made_by)
            ));
        }
        out.push_str("</tm:devices>");
        out
    }

    /// The entry of target dev `dev`.
    pub fn device(&self, dev: &str) -> Option<&MetaDevice> {
        self.devices.iter().find(|d| d.dev == dev)
    }

    /// The snapshot with contract id `id`.
    pub fn snapshot(&self, id: &str) -> Option<&MetaSnapshot> {
        self.snapshots.iter().find(|s| s.id == id)
    }
}

pub fn mode_name(mode: MappingMode) -> &'static str {
    match mode {
        MappingMode::Physical => "physical",
        MappingMode::Virtual => "virtual",
    }
}

/// A parsed definition.
#[derive(Debug, Clone)]
pub struct Definition {
    pub disks: Vec<Disk>,
    pub meta: Meta,
    pub cpus: Option<u32>,
    pub memory: Option<u64>,
    pub firmware: Option<Firmware>,
    pub nics: Vec<Nic>,
    pub guest_os: Option<String>,
    /// Where `</devices>` starts.
    devices_close: usize,
    /// The `<tm:devices>` element, if any.
    meta_range: Option<Range<usize>>,
    /// Where `</metadata>` starts, if there is a `<metadata>` with a closing tag.
    metadata_close: Option<usize>,
    /// Where `</domain>` starts.
    domain_close: usize,
}

fn bytes(amount: u64, unit: &str) -> Option<u64> {
    let factor: u64 = match unit {
        "b" | "bytes" => 1,
        "KB" => 1000,
        "k" | "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "G" | "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "T" | "TiB" => 1 << 40,
        _ => return None,
    };
    amount.checked_mul(factor)
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace().is_none()
    })
}

fn close_tag(xml: &str, range: &Range<usize>, tag: &str) -> Option<usize> {
    let closing = format!("</{tag}>");
    xml[range.clone()]
        .ends_with(&closing)
        .then(|| range.end - closing.len())
}

fn parse_mode(text: &str) -> Option<MappingMode> {
    match text {
        "physical" => Some(MappingMode::Physical),
        "virtual" => Some(MappingMode::Virtual),
        _ => None,
    }
}

impl Definition {
    /// Parses domain `name`'s XML: `internal` naming the domain when it is not a domain
    /// definition.
    pub fn parse(name: &str, xml: &str) -> AdapterResult<Definition> {
        let bad = |why: String| {
            AdapterError::Internal(format!("the XML libvirt gave for domain {name} {why}"))
        };
        let doc =
            roxmltree::Document::parse(xml).map_err(|e| bad(format!("does not parse: {e}")))?;
        let root = doc.root_element();
        if root.tag_name().name() != "domain" {
            return Err(bad(format!(
                "has root <{}>, not <domain>",
                root.tag_name().name()
            )));
        }
        let domain_close = close_tag(xml, &root.range(), "domain")
            .ok_or_else(|| bad("has no </domain>".into()))?;
        let devices = child(root, "devices").ok_or_else(|| bad("has no <devices>".into()))?;
        let devices_close = close_tag(xml, &devices.range(), "devices")
            .ok_or_else(|| bad("has no </devices>".into()))?;
        let mut disks = Vec::new();
        for d in devices
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "disk")
        {
            if d.attribute("device").unwrap_or("disk") != "disk" {
                continue;
            }
            let Some(target) = child(d, "target") else {
                continue;
            };
            let Some(dev) = target.attribute("dev") else {
                continue;
            };
            let src = child(d, "source");
            let source = match (d.attribute("type").unwrap_or("file"), src) {
                ("file", Some(s)) if s.attribute("file").is_some() => {
                    Source::File(s.attribute("file").unwrap_or_default().to_string())
                }
                ("network", Some(s)) if s.attribute("protocol") == Some("nbd") => {
                    let server = child(s, "host").and_then(|h| {
                        let port = h.attribute("port").unwrap_or("10809").parse().ok()?;
                        Some((h.attribute("name")?.to_string(), port))
                    });
                    Source::Nbd(s.attribute("name").unwrap_or_default().to_string(), server)
                }
                (kind, _) => Source::Other(kind.to_string()),
            };
            disks.push(Disk {
                dev: dev.to_string(),
                bus: target.attribute("bus").map(str::to_string),
                source,
                serial: child(d, "serial")
                    .and_then(|s| s.text())
                    .map(|s| s.trim().to_string()),
                readonly: child(d, "readonly").is_some(),
                index: src
                    .and_then(|s| s.attribute("index"))
                    .and_then(|i| i.parse().ok()),
                range: d.range(),
                source_range: src.map(|s| s.range()),
                backing_range: child(d, "backingStore").map(|b| b.range()),
            });
        }

        let mut meta = Meta::default();
        let mut meta_range = None;
        let mut metadata_close = None;
        let mut guest_os = None;
        if let Some(md) = child(root, "metadata") {
            metadata_close = close_tag(xml, &md.range(), "metadata");
            for m in md.children().filter(|c| c.is_element()) {
                let tag = m.tag_name();
                if tag.namespace() == Some(TM_NS) && tag.name() == "devices" {
                    meta_range = Some(m.range());
                    meta.made_by = m.attribute("made-by").map(str::to_string);
                    meta.held = m.attribute("held") == Some("1");
                    for s in m
                        .children()
                        .filter(|c| c.is_element() && c.tag_name().name() == "snapshot")
                    {
                        meta.snapshots.push(MetaSnapshot {
                            id: s.attribute("id").unwrap_or_default().to_string(),
                            dev: s.attribute("dev").unwrap_or_default().to_string(),
                            layer: s.attribute("layer").unwrap_or_default().to_string(),
                            at: s.attribute("at").and_then(|a| a.parse().ok()).unwrap_or(0),
                            made_by: s.attribute("made-by").unwrap_or_default().to_string(),
                        });
                    }
                    for d in m
                        .children()
                        .filter(|c| c.is_element() && c.tag_name().name() == "device")
                    {
                        meta.devices.push(MetaDevice {
                            dev: d.attribute("dev").unwrap_or_default().to_string(),
                            mount: d.attribute("mount").unwrap_or_default().to_string(),
                            wwn: d.attribute("wwn").map(str::to_string),
                            mode: d.attribute("mode").and_then(parse_mode),
                            vol: d.attribute("vol").map(str::to_string),
                            capacity: d.attribute("capacity").and_then(|c| c.parse().ok()),
                            made_by: d.attribute("made-by").map(str::to_string),
                        });
                    }
                } else if tag.namespace() == Some(OSINFO_NS) && tag.name() == "libosinfo" {
                    guest_os = m
                        .children()
                        .find(|c| c.is_element() && c.tag_name().name() == "os")
                        .and_then(|os| os.attribute("id"))
                        .map(str::to_string);
                }
            }
        }

        let cpus = child(root, "vcpu")
            .and_then(|v| v.text())
            .and_then(|t| t.trim().parse().ok());
        let memory = child(root, "memory").and_then(|m| {
            let amount: u64 = m.text()?.trim().parse().ok()?;
            bytes(amount, m.attribute("unit").unwrap_or("KiB"))
        });
        let firmware = child(root, "os").map(|os| {
            if os.attribute("firmware") == Some("efi") || child(os, "loader").is_some() {
                Firmware::Uefi
            } else {
                Firmware::Bios
            }
        });
        let mut nics = Vec::new();
        for i in devices
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "interface")
        {
            let Some(mac) = child(i, "mac").and_then(|m| m.attribute("address")) else {
                continue;
            };
            let kind = i.attribute("type").unwrap_or("unknown");
            let network = child(i, "source")
                .and_then(|s| {
                    s.attribute("network")
                        .or(s.attribute("bridge"))
                        .or(s.attribute("dev"))
                })
                .unwrap_or(kind)
                .to_string();
            nics.push(Nic {
                mac: mac.to_ascii_lowercase(),
                network,
                model: child(i, "model")
                    .and_then(|m| m.attribute("type"))
                    .map(str::to_string),
            });
        }
        Ok(Definition {
            disks,
            meta,
            cpus,
            memory,
            firmware,
            nics,
            guest_os,
            devices_close,
            meta_range,
            metadata_close,
            domain_close,
        })
    }

    /// The bus of the first disk.
    pub fn disk_bus(&self) -> Option<String> {
        self.disks.iter().find_map(|d| d.bus.clone())
    }

    /// The disk with target dev `dev`.
    pub fn disk(&self, dev: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.dev == dev)
    }

    /// A free target dev for `bus` (`vd`, `sd` or `hd` followed by letters).
    pub fn free_dev(&self, bus: &str, taken: &[String]) -> String {
        let prefix = dev_prefix(bus);
        (0..26 * 27)
            .map(|i| dev_name(prefix, i))
            .find(|n| !self.disks.iter().any(|d| &d.dev == n) && !taken.contains(n))
            .unwrap_or_else(|| dev_name(prefix, 26 * 27))
    }

    /// This XML with `disk_xml` appended to the devices, `remove` (a disk) taken out and the
    /// metadata replaced by `meta`.
    pub fn edited(
        &self,
        xml: &str,
        add: Option<&str>,
        remove: Option<Range<usize>>,
        meta: &Meta,
    ) -> String {
        let mut edits = Vec::new();
        if let Some(add) = add {
            edits.push((self.devices_close..self.devices_close, add.to_string()));
        }
        if let Some(r) = remove {
            edits.push((r, String::new()));
        }
        self.apply(xml, edits, meta)
    }

    /// This XML with the file disks `swaps` names (dev, new path) on new sources (their
    /// `<backingStore>` dropped: libvirt reads the chain from the image) and the metadata
    /// replaced by `meta`. A dev that is not a disk here is left alone.
    pub fn with_sources(&self, xml: &str, swaps: &[(String, String)], meta: &Meta) -> String {
        let mut edits = Vec::new();
        for (dev, path) in swaps {
            let Some(disk) = self.disk(dev) else { continue };
            let Some(src) = &disk.source_range else {
                continue;
            };
            edits.push((src.clone(), format!("<source file='{}'/>", esc(path))));
            if let Some(b) = &disk.backing_range {
                edits.push((b.clone(), String::new()));
            }
        }
        self.apply(xml, edits, meta)
    }

    fn apply(&self, xml: &str, mut edits: Vec<(Range<usize>, String)>, meta: &Meta) -> String {
        let meta_xml = meta.to_xml();
        match (&self.meta_range, self.metadata_close) {
            (Some(r), _) => edits.push((r.clone(), meta_xml)),
            (None, Some(at)) => edits.push((at..at, meta_xml)),
            (None, None) => edits.push((
                self.domain_close..self.domain_close,
                format!("<metadata>{meta_xml}</metadata>"),
            )),
        }
        edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
        let mut out = xml.to_string();
        for (r, text) in edits {
            out.replace_range(r, &text);
        }
        out
    }
}

/// `vd` for virtio, `hd` for ide, `sd` for the rest.
pub fn dev_prefix(bus: &str) -> &'static str {
    match bus {
        "virtio" => "vd",
        "ide" => "hd",
        _ => "sd",
    }
}

fn dev_name(prefix: &str, i: usize) -> String {
    let letter = |n: usize| (b'a' + n as u8) as char;
    if i < 26 {
        format!("{prefix}{}", letter(i))
    } else {
        let j = i - 26;
        format!("{prefix}{}{}", letter((j / 26) % 26), letter(j % 26))
    }
}

/// A qcow2 file disk.
pub fn file_disk(path: &str, dev: &str, bus: &str) -> String {
    file_disk_with(path, dev, bus, "")
}

/// A qcow2 file disk with more elements (`<readonly/>`).
pub fn file_disk_with(path: &str, dev: &str, bus: &str, more: &str) -> String {
    format!(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='{}' bus='{}'/>{more}</disk>",
        esc(path),
        esc(dev),
        esc(bus)
    )
}

/// A disk on the SAN's NBD export `wwn`, the WWN also its serial.
pub fn nbd_disk(wwn: &str, san: &(String, u16), dev: &str, bus: &str) -> String {
    format!(
        "<disk type='network' device='disk'><driver name='qemu' type='raw' cache='none'/>\
         <source protocol='nbd' name='{w}'><host name='{h}' port='{p}'/></source>\
         <target dev='{d}' bus='{b}'/><serial>{w}</serial></disk>",
        w = esc(wwn),
        h = esc(&san.0),
        p = san.1,
        d = esc(dev),
        b = esc(bus)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<domain type='qemu'><name>a</name><uuid>x</uuid>\
        <memory unit='KiB'>65536</memory><vcpu placement='static'>2</vcpu>\
        <metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
        <libosinfo:os id='http://ubuntu.com/ubuntu/22.04'/></libosinfo:libosinfo></metadata>\
        <os><type>hvm</type></os><devices><emulator>/q</emulator>\
        <disk type='file' device='disk'><source file='/p/a.qcow2'/><target dev='vda' bus='virtio'/></disk>\
        <disk type='network' device='disk'><source protocol='nbd' name='lun7'><host name='h' port='1'/></source><target dev='vdb' bus='virtio'/></disk>\
        <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>\
        <interface type='network'><mac address='52:54:00:AA:bb:cc'/><source network='default'/><model type='virtio'/></interface>\
        </devices></domain>";

    #[test]
    fn parses_hardware_disks_and_edits() {
        let d = Definition::parse("a", XML).unwrap();
        assert_eq!(d.cpus, Some(2));
        assert_eq!(d.memory, Some(64 << 20));
        assert_eq!(d.firmware, Some(Firmware::Bios));
        assert_eq!(
            d.guest_os.as_deref(),
            Some("http://ubuntu.com/ubuntu/22.04")
        );
        assert_eq!(d.disks.len(), 2);
        assert_eq!(
            d.disks[1].source,
            Source::Nbd("lun7".into(), Some(("h".into(), 1)))
        );
        assert_eq!(d.nics[0].mac, "52:54:00:aa:bb:cc");
        assert_eq!(d.free_dev("virtio", &[]), "vdc");
        let meta = Meta {
            made_by: Some("k".into()),
            devices: vec![MetaDevice {
                dev: "vdc".into(),
                mount: "/x".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = d.edited(
            XML,
            Some(&file_disk("/p/c", "vdc", "virtio")),
            Some(d.disks[1].range.clone()),
            &meta,
        );
        let e = Definition::parse("a", &out).unwrap();
        assert_eq!(e.disks.len(), 2);
        assert_eq!(e.disks[1].dev, "vdc");
        assert_eq!(e.meta, meta);
        assert_eq!(e.guest_os, d.guest_os);
        let again = e.edited(&out, None, None, &Meta::default());
        assert_eq!(
            Definition::parse("a", &again).unwrap().meta,
            Meta::default()
        );
        assert!(Definition::parse("a", "<domain>").is_err());
    }
}
