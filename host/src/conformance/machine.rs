//! Machine (BMC) adapters: machines listed and described without invented values, unknown
//! ids refused, power that reaches the asked state before the call returns, boot override,
//! virtual media from a URL the suite serves itself, and every machine's power as it was
//! before the run. Power checks act on the first machine only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{BootDevice, PowerState};

use super::support::{Kind, refused, unknown_id};
use super::{Check, Cx, Why, check, claim};

impl Cx {
    /// The machine power checks act on: the BMC's first.
    pub async fn first_machine(&mut self) -> Result<String, Why> {
        let mut m = self.machine().await?;
        m.list_machines()
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Why::Fail("list-machines answered no machine".into()))
    }
}

/// The machine's power as the BMC reports it now.
async fn power_of(cx: &Cx, id: &str) -> Result<Option<PowerState>, Why> {
    Ok(cx.machine().await?.get_inventory(id).await?.power)
}

/// A MAC as the contract has it: six lower-case hex pairs joined by colons.
fn is_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts.iter().all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Serves `bytes` at one path on 127.0.0.1 for as long as the answer is kept, counting GETs.
struct Media {
    url: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Media {
    async fn serve(bytes: Vec<u8>) -> Result<Media, Why> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Why::Fail(format!("serving test media: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Why::Fail(e.to_string()))?
            .port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let bytes = Arc::new(bytes);
        let app = axum::Router::new().route(
            "/tidemark-conformance.iso",
            axum::routing::get(move || {
                let (counted, bytes) = (counted.clone(), bytes.clone());
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    bytes.as_ref().clone()
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Media {
            url: format!("http://127.0.0.1:{port}/tidemark-conformance.iso"),
            hits,
            task,
        })
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "m.basic.list",
        Machine,
        [Basic],
        Nothing,
        "list-machines answers at least one machine and no id twice.",
        |cx| {
            let ids = cx.machine().await?.list_machines().await?;
            claim!(!ids.is_empty(), "list-machines answered no machine");
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            claim!(
                sorted.len() == ids.len(),
                "list-machines repeats ids: {ids:?}"
            );
            Ok(())
        }
    ),
    check!(
        "m.basic.inventory",
        Machine,
        [Basic],
        Nothing,
        "Every machine's inventory is answered with well-formed MACs and sizes above zero where it gives them.",
        |cx| {
            let mut m = cx.machine().await?;
            for id in m.list_machines().await? {
                let inv = m.get_inventory(&id).await?;
                for nic in inv.nics.iter().flatten() {
                    if let Some(mac) = &nic.mac {
                        claim!(
                            is_mac(mac),
                            "machine {id}: MAC '{mac}' is not lower-case aa:bb:cc:dd:ee:ff"
                        );
                    }
                }
                claim!(
                    inv.memory != Some(0),
                    "machine {id}: memory 0 (unknown must be none)"
                );
                for disk in inv.disks.iter().flatten() {
                    claim!(
                        disk.capacity != Some(0),
                        "machine {id}: a disk of 0 bytes (unknown must be none)"
                    );
                }
                for cpu in inv.cpus.iter().flatten() {
                    claim!(
                        cpu.cores != Some(0),
                        "machine {id}: a CPU of 0 cores (unknown must be none)"
                    );
                }
            }
            Ok(())
        }
    ),
    check!(
        "m.lookup.inventory",
        Machine,
        [Lookup],
        Nothing,
        "get-inventory of a machine the BMC does not have answers not-found.",
        |cx| {
            let mut m = cx.machine().await?;
            refused(
                m.get_inventory(&unknown_id("tmc-machine")).await,
                &[Kind::NotFound],
                "get-inventory of an unknown machine",
            )
        }
    ),
    check!(
        "m.lookup.power",
        Machine,
        [Lookup],
        Nothing,
        "power-on of a machine the BMC does not have answers not-found.",
        |cx| {
            let mut m = cx.machine().await?;
            refused(
                m.power_on(&unknown_id("tmc-machine")).await,
                &[Kind::NotFound],
                "power-on of an unknown machine",
            )
        }
    ),
    check!(
        "m.power.cycle",
        Machine,
        [Basic],
        Nothing,
        "power-off returns once the machine reports off, and power-on once it reports on.",
        |cx| {
            let id = cx.first_machine().await?;
            cx.machine().await?.power_off(&id, true).await?;
            let now = power_of(cx, &id).await?;
            claim!(
                now == Some(PowerState::Off),
                "after power-off returned the BMC reports {now:?}"
            );
            cx.machine().await?.power_on(&id).await?;
            let now = power_of(cx, &id).await?;
            claim!(
                now == Some(PowerState::On),
                "after power-on returned the BMC reports {now:?}"
            );
            Ok(())
        }
    ),
    check!(
        "m.power.repeat",
        Machine,
        [Basic, Token],
        Nothing,
        "power-on of a machine that is on succeeds and leaves it on.",
        |cx| {
            let id = cx.first_machine().await?;
            let mut m = cx.machine().await?;
            m.power_on(&id).await?;
            m.power_on(&id).await?;
            let now = power_of(cx, &id).await?;
            claim!(
                now == Some(PowerState::On),
                "after two power-ons the BMC reports {now:?}"
            );
            Ok(())
        }
    ),
    check!(
        "m.power.reset",
        Machine,
        [Basic],
        Nothing,
        "reset of a machine that is on succeeds and it is on when the call returns.",
        |cx| {
            let id = cx.first_machine().await?;
            let mut m = cx.machine().await?;
            m.power_on(&id).await?;
            m.reset(&id).await?;
            let now = power_of(cx, &id).await?;
            claim!(
                now == Some(PowerState::On),
                "after reset the BMC reports {now:?}"
            );
            Ok(())
        }
    ),
    check!(
        "m.basic.boot",
        Machine,
        [Basic],
        Nothing,
        "set-boot-override to CD once, then back to none, both succeed.",
        |cx| {
            let id = cx.first_machine().await?;
            let mut m = cx.machine().await?;
            m.set_boot_override(&id, BootDevice::Cd, true).await?;
            m.set_boot_override(&id, BootDevice::None, false).await?;
            Ok(())
        }
    ),
    check!(
        "m.garbage.media-url",
        Machine,
        [Garbage],
        Nothing,
        "insert-media of something that is not an http(s) URL answers invalid.",
        |cx| {
            let id = cx.first_machine().await?;
            let mut m = cx.machine().await?;
            for url in ["not a url", "file:///etc/passwd", ""] {
                refused(
                    m.insert_media(&id, url).await,
                    &[Kind::Invalid],
                    &format!("insert-media '{url}'"),
                )?;
            }
            Ok(())
        }
    ),
    check!(
        "m.basic.media",
        Machine,
        [Basic],
        Nothing,
        "insert-media of an image served on 127.0.0.1 succeeds, and eject-media succeeds twice.",
        |cx| {
            let id = cx.first_machine().await?;
            let media = Media::serve(super::support::pattern(7, 64 * 1024)).await?;
            let mut m = cx.machine().await?;
            m.insert_media(&id, &media.url).await?;
            let fetched = media.hits.load(Ordering::SeqCst);
            m.eject_media(&id).await?;
            m.eject_media(&id).await?;
            tracing::debug!(fetched, "the BMC fetched the test media");
            Ok(())
        }
    ),
];

/// Every machine's power as the BMC reports it, as `ID=on|off|unknown`.
pub(super) async fn power(
    cx: &mut Cx,
    into: &mut std::collections::BTreeSet<String>,
    errors: &mut Vec<String>,
) {
    let mut m = match cx.machine().await {
        Ok(m) => m,
        Err(e) => return errors.push(format!("{e:?}")),
    };
    let ids = match m.list_machines().await {
        Ok(ids) => ids,
        Err(e) => return errors.push(e.to_string()),
    };
    for id in ids {
        match m.get_inventory(&id).await {
            Ok(inv) => {
                let power = inv
                    .power
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "unknown".into());
                into.insert(format!("{id}={power}"));
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
}

/// Puts each machine's power back as it was before the run (best effort).
pub(super) async fn sweep(cx: &mut Cx) {
    let Some(before) = cx.before.as_ref().map(|b| b.machine_power.clone()) else {
        return;
    };
    let Ok(mut m) = cx.machine().await else {
        return;
    };
    for entry in before {
        let Some((id, power)) = entry.split_once('=') else {
            continue;
        };
        let now = m.get_inventory(id).await.ok().and_then(|i| i.power);
        match (power, now) {
            ("on", Some(PowerState::Off)) => {
                let _ = m.power_on(id).await;
            }
            ("off", Some(PowerState::On)) => {
                let _ = m.power_off(id, true).await;
            }
            _ => {}
        }
    }
}

pub(super) const CLEANUP: &[Check] = &[check!(
    "m.cleanup.power",
    Machine,
    [Cleanup],
    Nothing,
    "After the run every machine's power is as it was before it.",
    |cx| { super::cleanup::compare(cx, "machine power states", |i| &i.machine_power).await }
)];
