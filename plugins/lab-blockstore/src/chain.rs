//! A loaded backing chain (a layer and its ancestors) and the [`Reader`] built on it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::bitmap::Bitmap;
use crate::error::{Error, Result};
use crate::meta::{Meta, VolDir};
use crate::storage::{Storage, StorageFile};

/// Largest single read: bounds the buffer a caller can make us allocate.
pub const MAX_READ: u64 = 256 << 20;

/// A byte range of a volume. Exists to report allocated / changed areas compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    /// Start, in bytes from the beginning of the volume (block aligned).
    pub offset: u64,
    /// Length in bytes (a multiple of the block size except at the end of the volume).
    pub length: u64,
}

/// Turns block runs into byte extents clipped to the volume size.
pub(crate) fn extents(map: &Bitmap, bs: u64, size: u64) -> Vec<Extent> {
    map.runs()
        .into_iter()
        .map(|(s, e)| Extent {
            offset: s * bs,
            length: (e * bs).min(size) - s * bs,
        })
        .collect()
}

pub(crate) struct LayerView<F> {
    pub map: Bitmap,
    pub file: Option<F>,
}

/// Layers from the top (index 0) down to the root, with bitmaps loaded and data files
/// open, so a read resolves each block without further metadata I/O.
pub(crate) struct Chain<F> {
    pub layers: Vec<LayerView<F>>,
    pub size: u64,
    pub bs: u64,
}

impl<F: StorageFile> Chain<F> {
    pub fn load<S: Storage<File = F>>(st: &S, vol: &VolDir, meta: &Meta, top: u64) -> Result<Self> {
        let mut layers = Vec::new();
        for id in meta.ancestry(top) {
            let map = vol.load_map(st, meta, id)?;
            let file = if map.is_empty() {
                None
            } else {
                st.open_read(&vol.data_path(id))?
            };
            layers.push(LayerView { map, file });
        }
        Ok(Chain {
            layers,
            size: meta.size,
            bs: meta.block_size,
        })
    }

    /// Splits `[offset, end)` into runs served by one layer (`None` = never written),
    /// skipping the top `skip` layers.
    fn plan(&self, offset: u64, end: u64, skip: usize) -> Vec<(Option<usize>, u64, u64)> {
        let mut runs: Vec<(Option<usize>, u64, u64)> = Vec::new();
        if offset >= end {
            return runs;
        }
        for block in offset / self.bs..=(end - 1) / self.bs {
            let owner = self
                .layers
                .iter()
                .skip(skip)
                .position(|l| l.map.get(block))
                .map(|i| i + skip);
            let s = (block * self.bs).max(offset);
            let e = ((block + 1) * self.bs).min(end);
            match runs.last_mut() {
                Some(last) if last.0 == owner && last.2 == s => last.2 = e,
                _ => runs.push((owner, s, e)),
            }
        }
        runs
    }

    fn read_layer(&self, layer: usize, dst: &mut [u8], offset: u64) -> Result<()> {
        match &self.layers[layer].file {
            None => dst.fill(0),
            Some(f) => {
                let n = f.read_at(dst, offset)?;
                dst[n..].fill(0);
            }
        }
        Ok(())
    }

    /// Fills `buf` with the bytes at `offset` as seen below the top `skip` layers.
    pub fn read_into(&self, buf: &mut [u8], offset: u64, skip: usize) -> Result<()> {
        let end = offset + buf.len() as u64;
        for (owner, s, e) in self.plan(offset, end, skip) {
            let dst = &mut buf[(s - offset) as usize..(e - offset) as usize];
            match owner {
                None => dst.fill(0),
                Some(i) => self.read_layer(i, dst, s)?,
            }
        }
        Ok(())
    }

    /// Reads `[offset, end)`; a range served by one layer is one positional read whose
    /// buffer is returned as is.
    pub fn read(&self, offset: u64, end: u64) -> Result<Vec<u8>> {
        let len = (end - offset) as usize;
        let plan = self.plan(offset, end, 0);
        if let [(Some(i), _, _)] = plan.as_slice()
            && let Some(f) = &self.layers[*i].file
        {
            let mut v = f.read_vec_at(len, offset)?;
            v.resize(len, 0);
            return Ok(v);
        }
        let mut buf = vec![0u8; len];
        for (owner, s, e) in plan {
            if let Some(i) = owner {
                self.read_layer(i, &mut buf[(s - offset) as usize..(e - offset) as usize], s)?;
            }
        }
        Ok(buf)
    }

    /// Tells every data file of the chain that `[offset, offset + len)` will be read soon.
    pub fn will_need(&self, offset: u64, len: u64) {
        for file in self.layers.iter().filter_map(|l| l.file.as_ref()) {
            file.will_need(offset, len);
        }
    }

    /// Union of all bitmaps of the chain (below `skip`).
    pub fn union_map(&self, skip: usize) -> Bitmap {
        let mut m = Bitmap::new();
        for l in self.layers.iter().skip(skip) {
            m.union_with(&l.map);
        }
        m
    }
}

/// Point-in-time read access to a volume's head or one of its snapshots. Exists so the
/// adapters can stream disk contents (backup, copy, clone) with one positional read per
/// contiguous run. It captures the block maps when opened: open a new reader on the head
/// after writing.
///
/// A reader that reads on from where its last read ended is read ahead of: the data files
/// are told about the next [`READ_AHEAD`] bytes, so the disk has many requests in flight
/// (a cold sequential read at queue depth 1 ran at ~120 MB/s here, ~650 MB/s with this).
/// Scattered reads (an incremental copy) get no read-ahead: it would read what nobody asked.
pub struct Reader<S: Storage> {
    what: String,
    chain: Chain<S::File>,
    /// Where the last read ended (a read starting here is sequential).
    last_end: AtomicU64,
    /// Everything before this offset was announced to the data files already.
    announced: AtomicU64,
}

/// How far ahead of a sequential reader the data files are told what comes next.
const READ_AHEAD: u64 = 64 << 20;
/// Read-ahead is announced in steps of this size (one hint per step, not per read).
const READ_AHEAD_STEP: u64 = 8 << 20;

impl<S: Storage> Reader<S> {
    pub(crate) fn new(what: String, chain: Chain<S::File>) -> Self {
        Reader {
            what,
            chain,
            last_end: AtomicU64::new(u64::MAX),
            announced: AtomicU64::new(0),
        }
    }

    /// Announces what a sequential reader will read after `[offset, end)`.
    fn read_ahead(&self, offset: u64, end: u64) {
        let sequential = self.last_end.swap(end, Ordering::Relaxed) == offset;
        if !sequential {
            self.announced.store(end, Ordering::Relaxed);
            return;
        }
        let want = end.saturating_add(READ_AHEAD).min(self.chain.size);
        let mut at = self.announced.load(Ordering::Relaxed).max(end);
        while at < want {
            let step = READ_AHEAD_STEP.min(self.chain.size - at);
            self.chain.will_need(at, step);
            at += step;
        }
        self.announced.store(at.max(end), Ordering::Relaxed);
    }

    /// Size of the volume in bytes.
    pub fn size(&self) -> u64 {
        self.chain.size
    }

    /// Reads `len` bytes at `offset`; the result is shorter only when the range runs past
    /// the end of the volume (empty at exactly the end). Never-written areas read as
    /// zeros. Starting past the end, or `len` above 256 MiB, is `Invalid`.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let size = self.chain.size;
        if offset > size {
            return Err(Error::Invalid(format!(
                "{}: read at offset {offset} is past the end of the volume (size {size})",
                self.what
            )));
        }
        if len > MAX_READ {
            return Err(Error::Invalid(format!(
                "{}: read of {len} bytes at offset {offset} exceeds the {MAX_READ}-byte limit",
                self.what
            )));
        }
        let end = offset.saturating_add(len).min(size);
        self.read_ahead(offset, end);
        self.chain.read(offset, end)
    }

    /// Areas that hold written data in this view (union of the chain's bitmaps),
    /// coalesced; everything else reads as zeros.
    pub fn allocated_extents(&self) -> Result<Vec<Extent>> {
        Ok(extents(
            &self.chain.union_map(0),
            self.chain.bs,
            self.chain.size,
        ))
    }
}
