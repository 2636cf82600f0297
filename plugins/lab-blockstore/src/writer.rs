//! [`Writer`]: copy-on-write writes into a volume's head layer.

use std::sync::Arc;

use crate::chain::Chain;
use crate::error::{Error, Result};
use crate::meta::VolDir;
use crate::storage::{Storage, StorageFile};

/// Write access to a volume's head. Exists so the adapters can write disk contents
/// (restore, guest writes) at near-native speed: fully covered blocks and blocks already
/// in the head go straight to the head's data file in one positional write; only a
/// partially covered block not yet in the head is read through the chain and merged.
///
/// Written data becomes durable (visible to new readers, snapshots, and after a crash)
/// at [`Writer::flush`]; dropping the writer flushes too, ignoring errors. Do not keep a
/// writer across a snapshot or revert of the same volume: writes then fail with
/// `Conflict` instead of touching a frozen layer.
pub struct Writer<S: Storage> {
    st: Arc<S>,
    vol: VolDir,
    head: u64,
    chain: Chain<S::File>,
    dirty: bool,
}

impl<S: Storage> Writer<S> {
    pub(crate) fn new(st: Arc<S>, vol: VolDir, head: u64, chain: Chain<S::File>) -> Self {
        Writer {
            st,
            vol,
            head,
            chain,
            dirty: false,
        }
    }

    /// Size of the volume in bytes.
    pub fn size(&self) -> u64 {
        self.chain.size
    }

    /// The head layer may only be written while it still is the head, and not while a
    /// group snapshot fences the volume.
    fn check_head(&self) -> Result<()> {
        let meta = self.vol.load_meta(&*self.st)?;
        if meta.fenced(crate::store::now_ms()) {
            return Err(Error::Conflict(format!(
                "volume {:?}: a group snapshot is being taken; open a new writer and retry",
                self.vol.id
            )));
        }
        if meta.head != self.head {
            return Err(Error::Conflict(format!(
                "volume {:?}: a snapshot or revert happened since this writer was opened; open a new writer",
                self.vol.id
            )));
        }
        Ok(())
    }

    /// Writes `data` at `offset`; the whole range must lie inside the volume.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let size = self.chain.size;
        let end = offset.checked_add(data.len() as u64).filter(|&e| e <= size).ok_or_else(|| {
            Error::Invalid(format!(
                "volume {:?}: write of {} bytes at offset {offset} runs past the end of the volume (size {size})",
                self.vol.id,
                data.len()
            ))
        })?;
        if data.is_empty() {
            return Ok(());
        }
        self.check_head()?;
        if self.chain.layers[0].file.is_none() {
            let f = self.st.open_write(&self.vol.data_path(self.head))?;
            self.chain.layers[0].file = Some(f);
        }
        let bs = self.chain.bs;
        let (fb, lb) = (offset / bs, (end - 1) / bs);
        let block_end = |b: u64| ((b + 1) * bs).min(size);
        let mut mid = (offset, end);
        // First block: partially covered and not yet in the head -> read-merge-write.
        if (!offset.is_multiple_of(bs) || end < block_end(fb)) && !self.chain.layers[0].map.get(fb)
        {
            let bstart = fb * bs;
            let bend = block_end(fb);
            let mut blk = vec![0u8; (bend - bstart) as usize];
            self.chain.read_into(&mut blk, bstart, 1)?;
            let e = end.min(bend);
            blk[(offset - bstart) as usize..(e - bstart) as usize]
                .copy_from_slice(&data[..(e - offset) as usize]);
            self.head_file()?.write_at(&blk, bstart)?;
            mid.0 = e;
        }
        // Last block (if different): same.
        if lb != fb && end < block_end(lb) && !self.chain.layers[0].map.get(lb) {
            let bstart = lb * bs;
            let mut blk = vec![0u8; (block_end(lb) - bstart) as usize];
            self.chain.read_into(&mut blk, bstart, 1)?;
            blk[..(end - bstart) as usize].copy_from_slice(&data[(bstart - offset) as usize..]);
            self.head_file()?.write_at(&blk, bstart)?;
            mid.1 = bstart;
        }
        if mid.0 < mid.1 {
            let slice = &data[(mid.0 - offset) as usize..(mid.1 - offset) as usize];
            self.head_file()?.write_at(slice, mid.0)?;
        }
        self.chain.layers[0].map.set_range(fb, lb + 1);
        self.dirty = true;
        Ok(())
    }

    fn head_file(&self) -> Result<&S::File> {
        self.chain.layers[0].file.as_ref().ok_or_else(|| {
            Error::Io(format!(
                "volume {:?}: head layer data file is not open",
                self.vol.id
            ))
        })
    }

    /// Persists the head's block map (atomically), making every write so far durable.
    pub fn flush(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let meta = self.vol.load_meta(&*self.st)?;
        if meta.head != self.head {
            return Err(Error::Conflict(format!(
                "volume {:?}: a snapshot or revert happened since this writer was opened; unflushed writes are lost",
                self.vol.id
            )));
        }
        // Bits are only ever added to a live layer: merge with what is on disk.
        let on_disk = self.vol.load_map(&*self.st, &meta, self.head)?;
        self.chain.layers[0].map.union_with(&on_disk);
        self.vol
            .save_map(&*self.st, self.head, &self.chain.layers[0].map)?;
        self.dirty = false;
        Ok(())
    }
}

impl<S: Storage> Drop for Writer<S> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
