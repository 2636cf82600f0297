//! Disk chains: a virtual disk is a chain of qcow2 volumes in the endpoint's pool, each
//! backed by the one below. A snapshot freezes the disk's top and puts a new overlay on it;
//! a revert puts a new overlay on a snapshot's frozen image, branching the chain. What
//! backs what is read from the pool itself (each volume's `<backingStore>`), so nothing is
//! kept beside the daemon; an image is deleted only when no domain's disk, no snapshot
//! record and no other image above it needs it any more, and only if the adapter made it
//! (volume names starting `tm-`). A deleted snapshot's image is folded into the one image
//! above it when it has one ([`fold`]), so chains do not grow without end.

use std::collections::{BTreeMap, BTreeSet};

use libvirt_rpc::{Domain, StorageVol, codes, flags};
use serde_json::json;
use tidemark_sdk::{AdapterError, AdapterResult};

use crate::conn::Conn;
use crate::datapath;
use crate::xml::{Definition, Source, esc};

/// Names of volumes the adapter made start so.
pub const MADE_PREFIX: &str = "tm-";

/// One volume of the pool.
#[derive(Debug, Clone)]
pub struct Vol {
    pub vol: StorageVol,
    /// The image it is backed by, if any.
    pub backing: Option<String>,
}

/// The endpoint's pool: its volumes by path.
pub struct Pool {
    pub vols: BTreeMap<String, Vol>,
}

impl Pool {
    /// Reads every volume of the endpoint's pool with its backing image.
    pub fn read(c: &mut Conn) -> AdapterResult<Pool> {
        let pool = c.pool()?;
        let list = c
            .client
            .list_all_volumes(&pool)
            .map_err(c.err(&format!("listing the volumes of pool {}", pool.name)))?;
        let mut vols = BTreeMap::new();
        for vol in list {
            let text = match c.client.storage_vol_get_xml_desc(&vol) {
                Ok(t) => t,
                // Deleted between the listing and now.
                Err(e) if e.is(codes::NO_STORAGE_VOL) => continue,
                Err(e) => return Err(c.err(&format!("reading volume {}", vol.name))(e)),
            };
            let (path, backing) = volume_xml(&text).ok_or_else(|| {
                AdapterError::Internal(format!(
                    "the XML libvirt gave for volume {} of pool {} has no target path",
                    vol.name, pool.name
                ))
            })?;
            vols.insert(path, Vol { vol, backing });
        }
        Ok(Pool { vols })
    }

    /// [`Pool::read`] after the daemon has read every image header again (best effort: a
    /// refresh is refused while a volume is being built, and the cached view can only
    /// hold links that are gone, never miss one, so it errs toward keeping images).
    pub fn read_fresh(c: &mut Conn) -> AdapterResult<Pool> {
        refresh(c);
        Pool::read(c)
    }

    /// The chain under `top`, top first: `top`, its backing image, that one's, … (an
    /// image outside the pool ends it, included).
    pub fn chain(&self, top: &str) -> Vec<String> {
        let backing = |at: &str| {
            Ok::<_, std::convert::Infallible>(self.vols.get(at).and_then(|v| v.backing.clone()))
        };
        let Ok(chain) = walk(top, backing);
        chain
    }
}

/// `top` and the images under it, following `backing_of` until it answers `None` (or
/// would loop).
fn walk<E>(
    top: &str,
    mut backing_of: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Vec<String>, E> {
    let mut out = vec![top.to_string()];
    while let Some(next) = backing_of(out.last().map(String::as_str).unwrap_or(top))? {
        if out.contains(&next) {
            break;
        }
        out.push(next);
    }
    Ok(out)
}

/// The chain under `top` as [`Pool::chain`] gives it, read volume by volume: as many
/// calls as the chain is long, not as the pool is big (what opening a reader needs).
pub fn chain_of(c: &mut Conn, top: &str) -> AdapterResult<Vec<String>> {
    let pool = c.pool()?;
    walk(top, |at| {
        let vol = match c.client.storage_vol_lookup_by_name(&pool, file_name(at)) {
            Ok(v) => v,
            // Not a volume of the pool: the chain ends with it.
            Err(e) if e.is(codes::NO_STORAGE_VOL) => return Ok(None),
            Err(e) => return Err(c.err(&format!("looking up the volume of {at}"))(e)),
        };
        let text = c
            .client
            .storage_vol_get_xml_desc(&vol)
            .map_err(c.err(&format!("reading volume {}", vol.name)))?;
        Ok(volume_xml(&text)
            .filter(|(path, ..)| path == at)
            .and_then(|(_, backing)| backing))
    })
}

/// The file name of an image path (its volume name in a `dir` pool).
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Has the daemon read the pool's image headers again; a refusal is logged.
fn refresh(c: &mut Conn) {
    let result = c.pool().and_then(|pool| {
        c.client
            .storage_pool_refresh(&pool)
            .map_err(c.err("refreshing the pool"))
    });
    if let Err(e) = result {
        tidemark_sdk::log::warn(&format!(
            "the pool's view of backing images may be old: {e:?}"
        ));
    }
}

/// Path and backing path of a volume's XML.
fn volume_xml(text: &str) -> Option<(String, Option<String>)> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let root = doc.root_element();
    let path_of = |parent: roxmltree::Node| {
        parent
            .children()
            .find(|c| c.has_tag_name("path"))
            .and_then(|p| p.text())
            .map(|t| t.trim().to_string())
    };
    let target = root.children().find(|c| c.has_tag_name("target"))?;
    let path = path_of(target)?;
    let backing = root
        .children()
        .find(|c| c.has_tag_name("backingStore"))
        .and_then(path_of);
    Some((path, backing))
}

/// What the domains use of the pool.
#[derive(Default)]
pub struct Uses {
    /// Every image some domain needs: each domain's file disks (persistent and live
    /// definitions) and snapshot layers, with everything under them.
    pub needed: BTreeSet<String>,
    /// Images some snapshot record names.
    pub layers: BTreeSet<String>,
    /// Images some disk is on directly.
    pub sources: BTreeSet<String>,
    /// Images in the chains of running domains' disks (their QEMU holds them).
    pub running: BTreeSet<String>,
}

/// What every domain uses.
pub fn uses(c: &mut Conn, pool: &Pool) -> AdapterResult<Uses> {
    let mut out = Uses::default();
    for dom in c.domains()? {
        let on = dom.id != -1;
        // The live definition differs from the persistent one only while it runs.
        let views: &[u32] = if on {
            &[flags::xml::INACTIVE, 0]
        } else {
            &[flags::xml::INACTIVE]
        };
        for &flag in views {
            let text = match c.client.domain_get_xml_desc(&dom, flag) {
                Ok(t) => t,
                Err(e) if e.is(codes::NO_DOMAIN) => break,
                Err(e) => return Err(c.err(&format!("reading domain {}", dom.name))(e)),
            };
            let def = Definition::parse(&dom.name, &text)?;
            for d in &def.disks {
                if let Source::File(p) = &d.source {
                    out.sources.insert(p.clone());
                    if on {
                        out.running.extend(pool.chain(p));
                    }
                }
            }
            out.layers
                .extend(def.meta.snapshots.iter().map(|s| s.layer.clone()));
        }
    }
    for top in out.sources.iter().chain(&out.layers) {
        out.needed.extend(pool.chain(top));
    }
    Ok(out)
}

/// Deletes the images in `released` and under them that nothing needs any more and the
/// adapter made; what stays needed is kept (a branch still uses it). Failures to delete are
/// logged, not returned: the state the call made is already right.
pub fn sweep(c: &mut Conn, released: &[String]) -> AdapterResult<()> {
    if released.is_empty() {
        return Ok(());
    }
    let pool = Pool::read(c)?;
    let needed = uses(c, &pool)?.needed;
    sweep_in(c, &pool, &needed, released);
    Ok(())
}

/// [`sweep`] with the pool and what is needed already read.
fn sweep_in(c: &mut Conn, pool: &Pool, needed: &BTreeSet<String>, released: &[String]) {
    let mut candidates = BTreeSet::new();
    for r in released {
        candidates.extend(pool.chain(r));
    }
    for path in candidates.difference(needed) {
        let Some(v) = pool.vols.get(path) else {
            continue;
        };
        if !v.vol.name.starts_with(MADE_PREFIX) {
            continue;
        }
        match c.client.storage_vol_delete(&v.vol, 0) {
            Ok(()) => tidemark_sdk::log::debug(&format!("deleted image {path}")),
            Err(e) if e.is(codes::NO_STORAGE_VOL) => {}
            Err(e) => tidemark_sdk::log::warn(&format!("leaving image {path} behind: {e}")),
        }
    }
}

/// Folds `layer`, an image no snapshot names any more, into its only child (QEMU's
/// `block-stream` in a paused proxy: the child takes the clusters it lacks and is rebased
/// onto `layer`'s backing image), then deletes it: a deleted snapshot shortens the chain
/// instead of leaving it to grow. Left alone (kept, needed) when another snapshot still
/// names it, it has no or several children (a revert branched it), a disk is on it, a
/// running domain holds its chain, or the adapter did not make it.
/// `pool` is the pool as read (fresh, [`Pool::read_fresh`]) before the record went.
pub fn fold(c: &mut Conn, pool: &Pool, layer: &str) -> AdapterResult<()> {
    let uses = uses(c, pool)?;
    let Some(vol) = pool.vols.get(layer) else {
        return Ok(());
    };
    let children: Vec<&String> = pool
        .vols
        .iter()
        .filter(|(_, v)| v.backing.as_deref() == Some(layer))
        .map(|(p, _)| p)
        .collect();
    if uses.layers.contains(layer)
        || uses.sources.contains(layer)
        || !vol.vol.name.starts_with(MADE_PREFIX)
        || children.len() != 1
    {
        sweep_in(c, pool, &uses.needed, &[layer.to_string()]);
        return Ok(());
    }
    if uses.running.contains(layer) {
        tidemark_sdk::log::info(&format!(
            "image {layer} stays in its chain while its domain runs; a later delete folds it"
        ));
        return Ok(());
    }
    let child = children[0].clone();
    let proxy = datapath::start_proxy(c)?;
    let folded = stream(c, &proxy, &child, layer);
    datapath::stop_proxy(c, &proxy);
    folded?;
    tidemark_sdk::log::debug(&format!("folded image {layer} into {child}"));
    // QEMU rewrote the child's backing: the pool must read it again before the sweep.
    refresh(c);
    sweep(c, &[layer.to_string()])
}

/// Streams `layer` into the image at `child` above it, in `proxy`: the child takes what
/// it lacks of `layer` and is rebased onto `layer`'s own backing image, as QEMU sees the
/// chain (never the pool's cached view).
fn stream(c: &mut Conn, proxy: &Domain, child: &str, layer: &str) -> AdapterResult<()> {
    datapath::open_node(c, proxy, datapath::NODE, child, true)?;
    let nodes = datapath::qmp(c, proxy, "query-named-block-nodes", json!({"flat": true}))?;
    let formats: Vec<&serde_json::Value> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["drv"] == "qcow2")
        .collect();
    let below = formats.iter().find(|n| n["file"] == layer).ok_or_else(|| {
        AdapterError::Internal(format!(
            "image {layer} is not under {child} as QEMU opens it; nothing folded"
        ))
    })?;
    let mut args = json!({"job-id": FOLD_JOB, "device": datapath::NODE, "auto-dismiss": false});
    if let Some(base) = below["backing_file"].as_str().filter(|b| !b.is_empty()) {
        let node = formats
            .iter()
            .find(|n| n["file"] == base)
            .and_then(|n| n["node-name"].as_str())
            .ok_or_else(|| {
                AdapterError::Internal(format!(
                    "the chain of {child} opened without a node for {base}, under {layer}"
                ))
            })?;
        args["base-node"] = json!(node);
    }
    datapath::qmp(c, proxy, "block-stream", args)?;
    let deadline = std::time::Instant::now() + c.settings.timeout * 10;
    loop {
        let jobs = datapath::qmp(c, proxy, "query-jobs", json!({}))?;
        let job = jobs
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["id"] == FOLD_JOB)
            .cloned()
            .ok_or_else(|| AdapterError::Internal("the stream job vanished".into()))?;
        if job["status"] == "concluded" {
            datapath::qmp(c, proxy, "job-dismiss", json!({ "id": FOLD_JOB }))?;
            if let Some(error) = job["error"].as_str() {
                return Err(AdapterError::Internal(format!(
                    "streaming into {child} failed: {error}"
                )));
            }
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(AdapterError::Transient(format!(
                "streaming into {child} has not finished in time; the image is unchanged \
                 until it does"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    datapath::qmp(
        c,
        proxy,
        "blockdev-del",
        json!({ "node-name": datapath::NODE }),
    )
    .map(|_| ())
}

/// The job id of a fold.
const FOLD_JOB: &str = "tm-fold";

/// A new qcow2 volume `name` in the pool — empty, or an overlay on `backing` — or the one
/// there if a retry made it before: its path and `POOL/NAME`.
pub fn create_volume(
    c: &mut Conn,
    name: &str,
    capacity: u64,
    backing: Option<&str>,
) -> AdapterResult<(String, String)> {
    let pool = c.pool()?;
    let backing_xml = backing
        .map(|b| {
            format!(
                "<backingStore><path>{}</path><format type='qcow2'/></backingStore>",
                esc(b)
            )
        })
        .unwrap_or_default();
    let xml = format!(
        "<volume><name>{}</name><capacity unit='bytes'>{capacity}</capacity>\
         <target><format type='qcow2'/></target>{backing_xml}</volume>",
        esc(name)
    );
    let vol = match c.client.storage_vol_create_xml(&pool, &xml, 0) {
        Ok(v) => v,
        Err(e) if e.is(codes::STORAGE_VOL_EXIST) => c
            .client
            .storage_vol_lookup_by_name(&pool, name)
            .map_err(c.err(&format!("looking up volume {name}")))?,
        Err(e) => {
            return Err(c
                .err(&format!("creating volume {name} in pool {}", pool.name))(
                e
            ));
        }
    };
    let path = c
        .client
        .storage_vol_get_path(&vol)
        .map_err(c.err(&format!("reading the path of volume {name}")))?;
    Ok((path, format!("{}/{}", pool.name, name)))
}

/// Deletes the images of a domain being deleted: its disks' chains and its snapshots',
/// as far as no other domain needs them.
pub fn release_domain(c: &mut Conn, def: &Definition) -> AdapterResult<()> {
    let mut released: Vec<String> = def
        .disks
        .iter()
        .filter_map(|d| match &d.source {
            Source::File(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    released.extend(def.meta.snapshots.iter().map(|s| s.layer.clone()));
    sweep(c, &released)
}

#[cfg(test)]
mod tests {
    #[test]
    fn volume_xml_gives_path_and_backing() {
        let xml = "<volume type='file'><name>o.qcow2</name><key>/p/o.qcow2</key>\
            <capacity unit='bytes'>67108864</capacity><target><path>/p/o.qcow2</path>\
            <format type='qcow2'/></target><backingStore><path>/p/b.qcow2</path>\
            <format type='qcow2'/></backingStore></volume>";
        let (path, backing) = super::volume_xml(xml).unwrap();
        assert_eq!(path, "/p/o.qcow2");
        assert_eq!(backing.as_deref(), Some("/p/b.qcow2"));
        assert!(super::volume_xml("<volume/>").is_none());
    }
}
