//! Per-volume metadata (`volume.json`) and the on-disk layout of a volume directory.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bitmap::Bitmap;
use crate::error::{Error, Result};
use crate::storage::Storage;

pub(crate) const FORMAT: u32 = 1;
pub(crate) const BLOCK_SIZE: u64 = 4096;
/// Largest accepted volume (64 TiB): keeps bitmaps and offsets comfortably in range.
pub(crate) const MAX_SIZE: u64 = 1 << 46;
/// Keep at most this many applied revert tokens per volume.
const MAX_REVERT_TOKENS: usize = 256;

/// One snapshot as stored in `volume.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapRecord {
    pub id: String,
    pub layer: u64,
    pub created_at_ms: u64,
    pub token: String,
}

/// The whole metadata of one volume; replaced atomically on every change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub format: u32,
    pub size: u64,
    pub block_size: u64,
    pub head: u64,
    pub next_layer: u64,
    /// layer id -> parent layer id (a tree; the head never has children).
    pub layers: BTreeMap<u64, Option<u64>>,
    pub snapshots: Vec<SnapRecord>,
    pub revert_tokens: Vec<String>,
    /// While a group snapshot is being taken (until this time, ms since the epoch; a
    /// crashed group snapshot's fence lapses by itself), writes are refused so that no
    /// write lands between the member snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_until_ms: Option<u64>,
}

impl Meta {
    pub fn new(size: u64) -> Self {
        Meta {
            format: FORMAT,
            size,
            block_size: BLOCK_SIZE,
            head: 0,
            next_layer: 1,
            layers: BTreeMap::from([(0, None)]),
            snapshots: Vec::new(),
            revert_tokens: Vec::new(),
            fenced_until_ms: None,
        }
    }

    /// Whether a group snapshot fences the volume at `now_ms`.
    pub fn fenced(&self, now_ms: u64) -> bool {
        self.fenced_until_ms.is_some_and(|until| now_ms < until)
    }

    pub fn nblocks(&self) -> u64 {
        self.size.div_ceil(self.block_size)
    }

    /// `layer`, its parent, grandparent, ... up to the root.
    pub fn ancestry(&self, layer: u64) -> Vec<u64> {
        let mut out = vec![layer];
        let mut cur = layer;
        while let Some(Some(p)) = self.layers.get(&cur) {
            out.push(*p);
            cur = *p;
        }
        out
    }

    pub fn snapshot(&self, id: &str) -> Option<&SnapRecord> {
        self.snapshots.iter().find(|s| s.id == id)
    }

    pub fn alloc_layer(&mut self, parent: u64) -> u64 {
        let id = self.next_layer;
        self.next_layer += 1;
        self.layers.insert(id, Some(parent));
        id
    }

    pub fn remember_revert_token(&mut self, token: &str) {
        self.revert_tokens.push(token.to_string());
        if self.revert_tokens.len() > MAX_REVERT_TOKENS {
            let excess = self.revert_tokens.len() - MAX_REVERT_TOKENS;
            self.revert_tokens.drain(..excess);
        }
    }

    /// Layers that must be kept as they are: the head and every snapshot's layer.
    pub fn live_layers(&self) -> BTreeSet<u64> {
        let mut live: BTreeSet<u64> = self.snapshots.iter().map(|s| s.layer).collect();
        live.insert(self.head);
        live
    }

    pub fn children(&self, layer: u64) -> Vec<u64> {
        self.layers
            .iter()
            .filter(|(_, p)| **p == Some(layer))
            .map(|(c, _)| *c)
            .collect()
    }

    fn validate(&self, vol: &str) -> Result<()> {
        let bad = |why: String| {
            Err(Error::Corrupt(format!(
                "volume {vol:?}: volume.json: {why}"
            )))
        };
        if self.format != FORMAT {
            return bad(format!("unsupported format {}", self.format));
        }
        if self.size == 0 || self.size > MAX_SIZE {
            return bad(format!("bad size {}", self.size));
        }
        if self.block_size != BLOCK_SIZE {
            return bad(format!("unsupported block size {}", self.block_size));
        }
        if !self.layers.contains_key(&self.head) {
            return bad(format!("head layer {} missing", self.head));
        }
        for (id, parent) in &self.layers {
            if *id >= self.next_layer {
                return bad(format!("layer {id} >= next_layer {}", self.next_layer));
            }
            if let Some(p) = parent
                && !self.layers.contains_key(p)
            {
                return bad(format!("layer {id} has missing parent {p}"));
            }
        }
        // No cycles: every walk to the root must finish within layers.len() steps.
        for id in self.layers.keys() {
            let mut cur = *id;
            let mut steps = 0;
            while let Some(Some(p)) = self.layers.get(&cur) {
                cur = *p;
                steps += 1;
                if steps > self.layers.len() {
                    return bad(format!("cycle in the parents of layer {id}"));
                }
            }
        }
        for s in &self.snapshots {
            if !self.layers.contains_key(&s.layer) {
                return bad(format!(
                    "snapshot {:?} points at missing layer {}",
                    s.id, s.layer
                ));
            }
            if s.layer == self.head {
                return bad(format!("snapshot {:?} points at the head layer", s.id));
            }
        }
        Ok(())
    }
}

/// Checks a volume or snapshot id: 1..=128 chars of `[A-Za-z0-9._-]`, not `.` or `..`,
/// so it is safe as a single path component.
pub(crate) fn check_id(kind: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{kind} id {id:?} must be 1..=128 characters of [A-Za-z0-9._-] and not '.' or '..'"
        )))
    }
}

pub(crate) fn check_token(what: &str, token: &str) -> Result<()> {
    if token.is_empty() || token.len() > 256 {
        return Err(Error::Invalid(format!(
            "{what}: token must be 1..=256 bytes, got {} bytes",
            token.len()
        )));
    }
    Ok(())
}

/// Paths of one volume directory (`<base>/<id>`), plus helpers to load/save its parts.
#[derive(Debug, Clone)]
pub(crate) struct VolDir {
    pub id: String,
    pub dir: String,
}

impl VolDir {
    pub fn new(base: &str, id: &str) -> Self {
        VolDir {
            id: id.to_string(),
            dir: format!("{base}/{id}"),
        }
    }
    pub fn meta_path(&self) -> String {
        format!("{}/volume.json", self.dir)
    }
    pub fn layers_dir(&self) -> String {
        format!("{}/layers", self.dir)
    }
    pub fn data_path(&self, layer: u64) -> String {
        format!("{}/layers/{layer}.data", self.dir)
    }
    pub fn map_path(&self, layer: u64) -> String {
        format!("{}/layers/{layer}.map", self.dir)
    }

    pub fn try_load_meta<S: Storage>(&self, st: &S) -> Result<Option<Meta>> {
        let Some(bytes) = st.read_file(&self.meta_path())? else {
            return Ok(None);
        };
        let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Corrupt(format!(
                "volume {:?}: volume.json is not valid: {e}",
                self.id
            ))
        })?;
        meta.validate(&self.id)?;
        Ok(Some(meta))
    }

    pub fn load_meta<S: Storage>(&self, st: &S) -> Result<Meta> {
        self.try_load_meta(st)?
            .ok_or_else(|| Error::NotFound(format!("volume {:?} does not exist", self.id)))
    }

    pub fn save_meta<S: Storage>(&self, st: &S, meta: &Meta) -> Result<()> {
        let bytes = serde_json::to_vec(meta).map_err(|e| {
            Error::Io(format!(
                "volume {:?}: cannot serialize metadata: {e}",
                self.id
            ))
        })?;
        st.write_file_atomic(&self.meta_path(), &bytes)
    }

    pub fn load_map<S: Storage>(&self, st: &S, meta: &Meta, layer: u64) -> Result<Bitmap> {
        Ok(match st.read_file(&self.map_path(layer))? {
            Some(bytes) => Bitmap::from_bytes(&bytes, meta.nblocks()),
            None => Bitmap::new(),
        })
    }

    pub fn save_map<S: Storage>(&self, st: &S, layer: u64, map: &Bitmap) -> Result<()> {
        st.write_file_atomic(&self.map_path(layer), &map.to_bytes())
    }

    pub fn remove_layer_files<S: Storage>(&self, st: &S, layer: u64) -> Result<()> {
        st.remove_file(&self.map_path(layer))?;
        st.remove_file(&self.data_path(layer))?;
        Ok(())
    }

    /// Deletes leftovers of an interrupted operation: temp files and files of layers the
    /// metadata no longer (or never) references.
    pub fn cleanup_orphans<S: Storage>(&self, st: &S, meta: &Meta) -> Result<()> {
        st.remove_file(&format!("{}.tmp", self.meta_path()))?;
        let dir = self.layers_dir();
        let Some(names) = st.list_dir(&dir)? else {
            return Ok(());
        };
        for name in names {
            let orphan = if name.ends_with(".tmp") {
                true
            } else if let Some(stem) = name
                .strip_suffix(".data")
                .or_else(|| name.strip_suffix(".map"))
            {
                stem.parse::<u64>()
                    .is_ok_and(|l| !meta.layers.contains_key(&l))
            } else {
                false
            };
            if orphan {
                st.remove_file(&format!("{dir}/{name}"))?;
            }
        }
        Ok(())
    }
}
