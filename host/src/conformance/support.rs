//! What the checks share: one session type over both kinds, reading and writing whole
//! ranges, expected refusals, byte patterns, garbage strings and unknown ids.

use crate::engine::ports::{
    CallError, CallErrorKind, CallResult, DataPath, Hypervisor, ReaderHandle, StorageArray,
    WriterHandle,
};
use crate::model::{AdapterError, Extent, SnapshotRef};

use super::Why;

/// Largest single read or write the suite sends.
const CHUNK: u64 = 1 << 20;

/// A session on either kind of adapter.
pub enum Sess {
    A(Box<dyn StorageArray>),
    H(Box<dyn Hypervisor>),
}

/// A device of the subject: a LUN, or a virtual disk of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dev {
    Lun(String),
    Disk { vm: String, id: String },
}

impl Dev {
    /// What the adapter reports as a snapshot's source: the WWN, or the disk id.
    pub fn source(&self) -> &str {
        match self {
            Dev::Lun(wwn) => wwn,
            Dev::Disk { id, .. } => id,
        }
    }
}

fn mismatch<T>(what: &str) -> CallResult<T> {
    Err(CallError {
        endpoint: "conformance".into(),
        call: "suite",
        kind: CallErrorKind::Host(format!("suite bug: {what} on the wrong kind of session")),
    })
}

impl Sess {
    /// The data path of the session.
    pub fn dp(&mut self) -> &mut dyn DataPath {
        match self {
            Sess::A(a) => a.as_mut(),
            Sess::H(h) => h.as_mut(),
        }
    }

    pub async fn reader(&mut self, dev: &Dev, snapshot: Option<&str>) -> CallResult<ReaderHandle> {
        match (self, dev) {
            (Sess::A(a), Dev::Lun(wwn)) => a.open_reader(wwn, snapshot).await,
            (Sess::H(h), Dev::Disk { vm, id }) => h.open_reader(vm, id, snapshot).await,
            _ => mismatch("open-reader"),
        }
    }

    pub async fn writer(&mut self, dev: &Dev) -> CallResult<WriterHandle> {
        match (self, dev) {
            (Sess::A(a), Dev::Lun(wwn)) => a.open_writer(wwn).await,
            (Sess::H(h), Dev::Disk { vm, id }) => h.open_writer(vm, id).await,
            _ => mismatch("open-writer"),
        }
    }

    /// Snapshots devices together (disks must be of one VM).
    pub async fn snapshot(&mut self, devs: &[Dev], token: &str) -> CallResult<Vec<SnapshotRef>> {
        match self {
            Sess::A(a) => {
                let wwns: Vec<String> = devs.iter().map(|d| d.source().to_string()).collect();
                a.snapshot_luns(&wwns, token).await
            }
            Sess::H(h) => {
                let Some(Dev::Disk { vm, .. }) = devs.first() else {
                    return mismatch("snapshot");
                };
                let ids: Vec<String> = devs.iter().map(|d| d.source().to_string()).collect();
                h.snapshot_disks(vm, &ids, token).await
            }
        }
    }

    /// Reverts one device to one of its snapshots.
    pub async fn revert(&mut self, dev: &Dev, snapshot: &str, token: &str) -> CallResult<()> {
        match (self, dev) {
            (Sess::A(a), Dev::Lun(wwn)) => a.revert_lun(wwn, snapshot, token).await,
            (Sess::H(h), Dev::Disk { vm, .. }) => {
                h.revert_disks(vm, &[snapshot.to_string()], token).await
            }
            _ => mismatch("revert"),
        }
    }

    /// Snapshots whose source is the device.
    pub async fn snapshots_of(&mut self, dev: &Dev) -> CallResult<Vec<SnapshotRef>> {
        let all = match (&mut *self, dev) {
            (Sess::A(a), Dev::Lun(_)) => a.list_snapshots().await?,
            (Sess::H(h), Dev::Disk { vm, .. }) => h.list_snapshots(vm).await?,
            _ => return mismatch("list-snapshots"),
        };
        Ok(all
            .into_iter()
            .filter(|s| s.source == dev.source())
            .collect())
    }

    pub async fn delete_snapshot(&mut self, dev: &Dev, snapshot: &str) -> CallResult<()> {
        match (self, dev) {
            (Sess::A(a), Dev::Lun(_)) => a.delete_snapshot(snapshot).await,
            (Sess::H(h), Dev::Disk { vm, .. }) => h.delete_snapshot(vm, snapshot).await,
            _ => mismatch("delete-snapshot"),
        }
    }

    /// Writes `data` at `offset` through a new writer, flushes, closes.
    pub async fn write(&mut self, dev: &Dev, offset: u64, data: &[u8]) -> Result<(), Why> {
        let w = self.writer(dev).await?;
        let dp = self.dp();
        let mut at = 0usize;
        while at < data.len() {
            let end = (at + CHUNK as usize).min(data.len());
            dp.write(&w, offset + at as u64, &data[at..end]).await?;
            at = end;
        }
        dp.flush(&w).await?;
        dp.close_writer(w).await?;
        Ok(())
    }

    /// Reads `len` bytes at `offset` (shorter only at the end) through a new reader.
    pub async fn read(
        &mut self,
        dev: &Dev,
        snapshot: Option<&str>,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Why> {
        let r = self.reader(dev, snapshot).await?;
        let out = read_range(self.dp(), &r, offset, len).await;
        self.dp().close_reader(r).await?;
        out
    }

    /// Extents of a device or snapshot: allocated, or changed since `since`.
    pub async fn extents(
        &mut self,
        dev: &Dev,
        snapshot: Option<&str>,
        since: Option<&str>,
    ) -> Result<Vec<Extent>, Why> {
        let r = self.reader(dev, snapshot).await?;
        let dp = self.dp();
        let out = match since {
            None => dp.allocated_extents(&r).await,
            Some(since) => dp.changed_extents(&r, since).await,
        };
        dp.close_reader(r).await?;
        Ok(out?)
    }
}

/// Reads `len` bytes at `offset` in chunks; a short answer before the end of the range is
/// where the device ends.
pub async fn read_range(
    dp: &mut dyn DataPath,
    r: &ReaderHandle,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, Why> {
    let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
    while (out.len() as u64) < len {
        let want = (len - out.len() as u64).min(CHUNK);
        let got = dp.read(r, offset + out.len() as u64, want).await?;
        if got.len() as u64 > want {
            return Err(Why::Fail(format!(
                "read of {want} bytes at {} answered {} bytes",
                offset + out.len() as u64,
                got.len()
            )));
        }
        let short = (got.len() as u64) < want;
        out.extend_from_slice(&got);
        if short {
            break;
        }
    }
    Ok(out)
}

/// Deterministic bytes for `seed` (xorshift).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Regions the data checks write: unaligned, crossing 4 KiB and 64 KiB boundaries.
pub const REGIONS: &[(u64, usize)] = &[(4093, 70_000), (1 << 20, 4096), ((3 << 20) + 17, 9_000)];

/// Where two byte strings first differ, for messages.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i}"),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

/// The error kinds a check may expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotFound,
    Invalid,
    Conflict,
    Unsupported,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::NotFound => "not-found",
            Kind::Invalid => "invalid",
            Kind::Conflict => "conflict",
            Kind::Unsupported => "unsupported",
        }
    }

    fn matches(self, e: &AdapterError) -> bool {
        matches!(
            (self, e),
            (Kind::NotFound, AdapterError::NotFound(_))
                | (Kind::Invalid, AdapterError::Invalid(_))
                | (Kind::Conflict, AdapterError::Conflict(_))
                | (Kind::Unsupported, AdapterError::Unsupported(_))
        )
    }
}

/// The call must be refused with one of `kinds` (never succeed, never trap).
pub fn refused<T>(result: CallResult<T>, kinds: &[Kind], what: &str) -> Result<(), Why> {
    let names = kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(" or ");
    match result {
        Ok(_) => Err(Why::Fail(format!("{what} succeeded; expected {names}"))),
        Err(CallError {
            kind: CallErrorKind::Adapter(e),
            ..
        }) if kinds.iter().any(|k| k.matches(&e)) => Ok(()),
        Err(e) => Err(Why::Fail(format!(
            "{what}: expected {names}, got {}",
            e.kind
        ))),
    }
}

/// A well-formed WWN no array has handed out.
pub fn unknown_wwn() -> String {
    format!("naa.6{}", &uuid::Uuid::new_v4().simple().to_string()[..31])
}

/// A well-formed id nothing has.
pub fn unknown_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Malformed strings: fixed nasty ones and generated ones (a seeded generator, so a failure
/// can be reproduced; the seed is in the message).
pub fn garbage(seed: u64) -> Vec<String> {
    let mut out: Vec<String> = [
        "",
        " ",
        "\0",
        "\n\r\t",
        "../../../../etc/passwd",
        "naa.",
        "naa.zz",
        "'; DROP TABLE luns; --",
        "%00%2e%2e%2f",
        "\u{202e}\u{feff}\u{1f4a5}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    out.push("x".repeat(64 * 1024));
    out.push(format!("naa.{}", "f".repeat(1000)));
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..8 {
        let len = (next() % 200) as usize;
        let s: String = (0..len)
            .map(|_| char::from_u32((next() % 0x3000) as u32).unwrap_or('\u{fffd}'))
            .collect();
        out.push(s);
    }
    out
}

/// Whether `extents` cover `[offset, offset + len)` completely.
pub fn covers(extents: &[Extent], offset: u64, len: u64) -> bool {
    let mut sorted = extents.to_vec();
    sorted.sort_by_key(|e| e.offset);
    let mut at = offset;
    let end = offset + len;
    for e in sorted {
        if e.offset > at {
            break;
        }
        at = at.max(e.offset.saturating_add(e.length));
        if at >= end {
            return true;
        }
    }
    at >= end
}

/// A device's snapshot with a given source among the refs answered.
pub fn snapshot_of<'a>(refs: &'a [SnapshotRef], dev: &Dev) -> Result<&'a SnapshotRef, Why> {
    refs.iter()
        .find(|r| r.source == dev.source())
        .ok_or_else(|| Why::Fail(format!("no snapshot of {} among the answer", dev.source())))
}
