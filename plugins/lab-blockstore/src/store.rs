//! [`BlockStore`]: volumes, snapshots, revert, clone and change tracking.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bitmap::Bitmap;
use crate::chain::{Chain, Extent, Reader, extents};
use crate::error::{Error, Result};
use crate::meta::{MAX_SIZE, Meta, SnapRecord, VolDir, check_id, check_token};
use crate::storage::{Storage, StorageFile};
use crate::writer::Writer;

const VOLUMES: &str = "volumes";
const STAGING: &str = "staging";
const TRASH: &str = "trash";
/// Copy granularity for clone and merge.
const COPY_CHUNK: u64 = 8 << 20;

/// A snapshot as reported to callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The caller-chosen snapshot id.
    pub id: String,
    /// The caller-supplied creation time (ms since the Unix epoch).
    pub created_at_ms: u64,
}

/// Summary of a volume, for inventory calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// The volume id.
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// Allocation granularity in bytes (4096).
    pub block_size: u64,
    /// Bytes holding written data in the head view (thin provisioning usage).
    pub allocated_bytes: u64,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
}

/// The longest a group snapshot's fence holds writes off (one that crashed lapses).
const FENCE_MS: u64 = 10_000;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn snap_info(s: &SnapRecord) -> SnapshotInfo {
    SnapshotInfo {
        id: s.id.clone(),
        created_at_ms: s.created_at_ms,
    }
}

/// Thin copy-on-write block volumes with O(1) snapshots, kept under `volumes/` of a
/// [`Storage`]. Exists so the lab hypervisor and lab array adapters share one correct,
/// crash-safe implementation of disks/LUNs. Holds no state besides the storage handle:
/// every call reads what it needs from files.
pub struct BlockStore<S: Storage> {
    st: Arc<S>,
}

impl<S: Storage> BlockStore<S> {
    /// Wraps a storage; volumes live under its `volumes/` directory.
    pub fn new(storage: S) -> Self {
        BlockStore {
            st: Arc::new(storage),
        }
    }

    /// The underlying storage, so adapters can keep their own small state files next to
    /// the volumes (see [`crate::read_json`] / [`crate::write_json`]).
    pub fn storage(&self) -> &S {
        &self.st
    }

    fn vol(&self, id: &str) -> Result<VolDir> {
        check_id("volume", id)?;
        Ok(VolDir::new(VOLUMES, id))
    }

    /// Creates an empty (all zeros, nothing allocated) volume of `size` bytes; any size
    /// from 1 byte to 64 TiB, the last block may be partial. `Conflict` if it exists.
    pub fn create_volume(&self, id: &str, size: u64) -> Result<()> {
        let vol = self.vol(id)?;
        if size == 0 || size > MAX_SIZE {
            return Err(Error::Invalid(format!(
                "volume {id:?}: size {size} must be between 1 and {MAX_SIZE} bytes"
            )));
        }
        if vol.try_load_meta(&*self.st)?.is_some() {
            return Err(Error::Conflict(format!("volume {id:?} already exists")));
        }
        // A directory without metadata is the leftover of an interrupted create.
        self.st.remove_dir_all(&vol.dir)?;
        self.st.create_dir_all(&vol.layers_dir())?;
        vol.save_meta(&*self.st, &Meta::new(size))
    }

    /// Deletes a volume with all its snapshots. `NotFound` if absent. The directory is
    /// first renamed away, so a crash never leaves a half-deleted volume visible.
    pub fn delete_volume(&self, id: &str) -> Result<()> {
        let vol = self.vol(id)?;
        vol.load_meta(&*self.st)?;
        self.st.remove_dir_all(TRASH)?;
        self.st.create_dir_all(TRASH)?;
        let trash = format!("{TRASH}/{id}");
        self.st.rename(&vol.dir, &trash)?;
        self.st.remove_dir_all(TRASH)?;
        Ok(())
    }

    /// Whether a volume with this id exists.
    pub fn volume_exists(&self, id: &str) -> Result<bool> {
        let vol = self.vol(id)?;
        Ok(self.st.read_file(&vol.meta_path())?.is_some())
    }

    /// Ids of all volumes, sorted.
    pub fn list_volumes(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.st.list_dir(VOLUMES)?.unwrap_or_default() {
            if check_id("volume", &name).is_ok() && self.volume_exists(&name)? {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Size, head allocation and snapshots of a volume.
    pub fn info(&self, id: &str) -> Result<VolumeInfo> {
        let vol = self.vol(id)?;
        let meta = vol.load_meta(&*self.st)?;
        let mut alloc = Bitmap::new();
        for layer in meta.ancestry(meta.head) {
            alloc.union_with(&vol.load_map(&*self.st, &meta, layer)?);
        }
        let allocated_bytes = extents(&alloc, meta.block_size, meta.size)
            .iter()
            .map(|e| e.length)
            .sum();
        Ok(VolumeInfo {
            id: id.to_string(),
            size: meta.size,
            block_size: meta.block_size,
            allocated_bytes,
            snapshots: meta.snapshots.iter().map(snap_info).collect(),
        })
    }

    /// Opens the volume's head for writing (cleaning up leftovers of crashed operations).
    pub fn open_writer(&self, id: &str) -> Result<Writer<S>> {
        let vol = self.vol(id)?;
        let meta = vol.load_meta(&*self.st)?;
        vol.cleanup_orphans(&*self.st, &meta)?;
        let mut chain = Chain::load(&*self.st, &vol, &meta, meta.head)?;
        // The writer never reads its own layer; it opens it read-write on first write.
        chain.layers[0].file = None;
        Ok(Writer::new(self.st.clone(), vol, meta.head, chain))
    }

    /// Opens the head (`snapshot = None`) or a snapshot for reading.
    pub fn open_reader(&self, id: &str, snapshot: Option<&str>) -> Result<Reader<S>> {
        let vol = self.vol(id)?;
        let meta = vol.load_meta(&*self.st)?;
        let (top, what) = match snapshot {
            None => (meta.head, format!("volume {id:?}")),
            Some(s) => (
                self.find_snap(&meta, id, s)?.layer,
                format!("snapshot {s:?} of volume {id:?}"),
            ),
        };
        Ok(Reader::new(what, Chain::load(&*self.st, &vol, &meta, top)?))
    }

    fn find_snap<'m>(&self, meta: &'m Meta, id: &str, snap: &str) -> Result<&'m SnapRecord> {
        check_id("snapshot", snap)?;
        meta.snapshot(snap).ok_or_else(|| {
            Error::NotFound(format!("snapshot {snap:?} of volume {id:?} does not exist"))
        })
    }

    /// Takes a snapshot: freezes the current head layer and starts a new empty one. A
    /// metadata rewrite only, independent of how much data was written. Idempotent by
    /// `token`: a repeated token returns the first result (whatever `snapshot_id` is
    /// passed); reusing `snapshot_id` with another token is `Conflict`.
    pub fn snapshot(
        &self,
        id: &str,
        snapshot_id: &str,
        token: &str,
        created_at_ms: u64,
    ) -> Result<SnapshotInfo> {
        let vol = self.vol(id)?;
        check_id("snapshot", snapshot_id)?;
        check_token(&format!("snapshot {snapshot_id:?} of volume {id:?}"), token)?;
        let mut meta = vol.load_meta(&*self.st)?;
        if let Some(s) = meta.snapshots.iter().find(|s| s.token == token) {
            return Ok(snap_info(s));
        }
        if meta.snapshot(snapshot_id).is_some() {
            return Err(Error::Conflict(format!(
                "snapshot {snapshot_id:?} of volume {id:?} already exists (taken with another token)"
            )));
        }
        let frozen = meta.head;
        meta.head = meta.alloc_layer(frozen);
        let rec = SnapRecord {
            id: snapshot_id.to_string(),
            layer: frozen,
            created_at_ms,
            token: token.to_string(),
        };
        let info = snap_info(&rec);
        meta.snapshots.push(rec);
        vol.save_meta(&*self.st, &meta)?;
        Ok(info)
    }

    /// Snapshots several volumes at one instant: fences them all first (writes are refused
    /// with `Conflict` while fenced), then snapshots each, then lifts the fences, so no
    /// write can land between the member snapshots. Each member is (volume, snapshot id,
    /// token), idempotent by token as [`BlockStore::snapshot`] is.
    pub fn snapshot_group(
        &self,
        members: &[(&str, &str, &str)],
        created_at_ms: u64,
    ) -> Result<Vec<SnapshotInfo>> {
        let mut fenced = Vec::new();
        let taken = (|| {
            for (id, _, _) in members {
                self.set_fence(id, Some(now_ms() + FENCE_MS))?;
                fenced.push(*id);
            }
            members
                .iter()
                .map(|(id, snapshot_id, token)| {
                    self.snapshot(id, snapshot_id, token, created_at_ms)
                })
                .collect::<Result<Vec<_>>>()
        })();
        for id in fenced {
            // A fence that cannot be lifted lapses by itself.
            let _ = self.set_fence(id, None);
        }
        taken
    }

    fn set_fence(&self, id: &str, until_ms: Option<u64>) -> Result<()> {
        let vol = self.vol(id)?;
        let mut meta = vol.load_meta(&*self.st)?;
        meta.fenced_until_ms = until_ms;
        vol.save_meta(&*self.st, &meta)
    }

    /// Reverts the head to a snapshot's contents (discarding writes since), keeping all
    /// snapshots. Idempotent by `token`: a repeated token does nothing.
    pub fn revert(&self, id: &str, snapshot_id: &str, token: &str) -> Result<()> {
        let vol = self.vol(id)?;
        check_id("snapshot", snapshot_id)?;
        check_token(
            &format!("revert of volume {id:?} to {snapshot_id:?}"),
            token,
        )?;
        let mut meta = vol.load_meta(&*self.st)?;
        if meta.revert_tokens.iter().any(|t| t == token) {
            return Ok(());
        }
        let target = self.find_snap(&meta, id, snapshot_id)?.layer;
        let old = meta.head;
        meta.head = meta.alloc_layer(target);
        let drop_old = meta.children(old).is_empty();
        if drop_old {
            meta.layers.remove(&old);
        }
        meta.remember_revert_token(token);
        vol.save_meta(&*self.st, &meta)?;
        if drop_old {
            vol.remove_layer_files(&*self.st, old)?;
        }
        vol.cleanup_orphans(&*self.st, &meta)?;
        self.gc(&vol, &mut meta)
    }

    /// Deletes a snapshot; layers no longer needed are deleted, or merged into their only
    /// child, in an order that never loses data if interrupted. `NotFound` if absent.
    pub fn delete_snapshot(&self, id: &str, snapshot_id: &str) -> Result<()> {
        let vol = self.vol(id)?;
        let mut meta = vol.load_meta(&*self.st)?;
        self.find_snap(&meta, id, snapshot_id)?;
        meta.snapshots.retain(|s| s.id != snapshot_id);
        vol.save_meta(&*self.st, &meta)?;
        vol.cleanup_orphans(&*self.st, &meta)?;
        self.gc(&vol, &mut meta)
    }

    /// Creates volume `new_id` holding a full, independent copy of a snapshot's bytes.
    /// Built in a staging directory and renamed into place, so it appears whole or not
    /// at all. `Conflict` if `new_id` exists.
    pub fn clone_snapshot(&self, id: &str, snapshot_id: &str, new_id: &str) -> Result<()> {
        let src = self.vol(id)?;
        let dst = self.vol(new_id)?;
        let meta = src.load_meta(&*self.st)?;
        let layer = self.find_snap(&meta, id, snapshot_id)?.layer;
        if dst.try_load_meta(&*self.st)?.is_some() {
            return Err(Error::Conflict(format!(
                "cannot clone into volume {new_id:?}: it already exists"
            )));
        }
        self.st.remove_dir_all(STAGING)?;
        let stage = VolDir::new(STAGING, new_id);
        self.st.create_dir_all(&stage.layers_dir())?;
        let chain = Chain::load(&*self.st, &src, &meta, layer)?;
        let map = chain.union_map(0);
        if !map.is_empty() {
            let out = self.st.open_write(&stage.data_path(0))?;
            for e in extents(&map, meta.block_size, meta.size) {
                let end = e.offset + e.length;
                let mut off = e.offset;
                while off < end {
                    let n = (end - off).min(COPY_CHUNK);
                    out.write_at(&chain.read(off, off + n)?, off)?;
                    off += n;
                }
            }
        }
        stage.save_map(&*self.st, 0, &map)?;
        stage.save_meta(&*self.st, &Meta::new(meta.size))?;
        self.st.create_dir_all(VOLUMES)?;
        self.st.remove_dir_all(&dst.dir)?; // leftover of an interrupted create, no metadata
        self.st.rename(&stage.dir, &dst.dir)?;
        self.st.remove_dir_all(STAGING)?;
        Ok(())
    }

    /// Areas that may differ between snapshot `since` and snapshot `until` (or the head
    /// if `None`): the blocks written in the layers on the paths from both to their
    /// common ancestor. Works across reverts; empty if both name the same point.
    pub fn changed_extents(
        &self,
        id: &str,
        since: &str,
        until: Option<&str>,
    ) -> Result<Vec<Extent>> {
        let vol = self.vol(id)?;
        let meta = vol.load_meta(&*self.st)?;
        let a = meta.ancestry(self.find_snap(&meta, id, since)?.layer);
        let b = meta.ancestry(match until {
            None => meta.head,
            Some(u) => self.find_snap(&meta, id, u)?.layer,
        });
        let Some(lca) = b.iter().find(|l| a.contains(l)).copied() else {
            return Err(Error::Corrupt(format!(
                "volume {id:?}: snapshot {since:?} shares no ancestor with {}",
                until.unwrap_or("the head")
            )));
        };
        let mut changed = Bitmap::new();
        for layer in a
            .iter()
            .take_while(|l| **l != lca)
            .chain(b.iter().take_while(|l| **l != lca))
        {
            changed.union_with(&vol.load_map(&*self.st, &meta, *layer)?);
        }
        Ok(extents(&changed, meta.block_size, meta.size))
    }

    /// Drops layers that no snapshot and not the head need: leaves are deleted, a layer
    /// with one (non-head) child is merged into that child. Each step is crash safe.
    fn gc(&self, vol: &VolDir, meta: &mut Meta) -> Result<()> {
        loop {
            let live = meta.live_layers();
            let mut action = None;
            for &layer in meta.layers.keys() {
                if live.contains(&layer) {
                    continue;
                }
                match meta.children(layer).as_slice() {
                    [] => action = Some((layer, None)),
                    [child] if *child != meta.head => action = Some((layer, Some(*child))),
                    _ => continue,
                }
                break;
            }
            let Some((layer, child)) = action else {
                return Ok(());
            };
            if let Some(child) = child {
                // 1. Copy into the child what it lacks (its view does not change).
                self.merge_into(vol, meta, layer, child)?;
                // 2. Reparent the child; 3. delete the merged layer's files.
                let parent = meta.layers.get(&layer).copied().flatten();
                meta.layers.insert(child, parent);
            }
            meta.layers.remove(&layer);
            vol.save_meta(&*self.st, meta)?;
            vol.remove_layer_files(&*self.st, layer)?;
        }
    }

    fn merge_into(&self, vol: &VolDir, meta: &Meta, layer: u64, child: u64) -> Result<()> {
        let lmap = vol.load_map(&*self.st, meta, layer)?;
        if lmap.is_empty() {
            return Ok(());
        }
        let mut cmap = vol.load_map(&*self.st, meta, child)?;
        let todo = lmap.minus(&cmap);
        if !todo.is_empty() {
            let src = self.st.open_read(&vol.data_path(layer))?;
            let dst = self.st.open_write(&vol.data_path(child))?;
            for e in extents(&todo, meta.block_size, meta.size) {
                let end = e.offset + e.length;
                let mut off = e.offset;
                while off < end {
                    let n = (end - off).min(COPY_CHUNK) as usize;
                    let mut buf = match &src {
                        Some(f) => f.read_vec_at(n, off)?,
                        None => Vec::new(),
                    };
                    buf.resize(n, 0);
                    dst.write_at(&buf, off)?;
                    off += n as u64;
                }
            }
        }
        cmap.union_with(&lmap);
        vol.save_map(&*self.st, child, &cmap)
    }
}
