//! Copies through the proxy, the copy store, retention and restore to a new machine.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{DEVICES, Lab, json};

/// The step names of a job's journal.
pub(crate) fn step_names(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {job}"))
}

/// Files under `dir`, recursively.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn flip_byte(path: &Path, at_end: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() - at_end.min(bytes.len());
    bytes[i] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// A lab VM holding generation 1, copied once; returns the point.
fn copied_vm() -> (Lab, String) {
    let lab = Lab::with_vm();
    lab.fill("app", 1);
    let doc = lab.ok(&["copy", "app"]);
    assert_eq!(doc["state"], "succeeded", "{doc}");
    (lab, doc["recovery_point"].as_str().unwrap().to_string())
}

/// The names of the LUNs an array endpoint holds, and the proxy VMs' device counts.
pub(crate) fn leftovers(lab: &Lab) -> (Vec<String>, Vec<usize>) {
    let inventory = lab.ok(&["inventory"]);
    let mut clones = Vec::new();
    let mut proxy_devices = Vec::new();
    for e in inventory.as_array().unwrap() {
        for lun in e["luns"].as_array().into_iter().flatten() {
            let name = lun["name"].as_str().unwrap_or_default();
            if name.starts_with("tidemark-clone-") {
                clones.push(name.to_string());
            }
        }
        for vm in e["vms"].as_array().into_iter().flatten() {
            if vm["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("tidemark-proxy-")
            {
                proxy_devices.push(vm["devices"].as_array().unwrap().len());
            }
        }
    }
    (clones, proxy_devices)
}

#[test]
fn copy_then_restore_to_another_host_after_every_snapshot_is_gone() {
    let (lab, point) = copied_vm();
    lab.fill("app", 2);

    let expired = lab.ok(&["expire", "--keep-snapshots", "0"]);
    assert_eq!(expired["expired"].as_array().unwrap().len(), 3, "{expired}");
    let inventory = lab.ok(&["inventory"]);
    for e in inventory.as_array().unwrap() {
        assert_eq!(e["snapshots"].as_array().unwrap().len(), 0, "{e}");
    }
    // No snapshots: revert is refused with a pointer to restore.
    let refused = lab.run(&["revert", "app", &point]);
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("restore"), "{message}");

    let restored = lab.ok(&["restore", "app", &point, "--host", "esx-b", "--as", "app2"]);
    assert_eq!(restored["state"], "succeeded", "{restored}");
    lab.assert_holds("app2", 1);
    lab.assert_holds("app", 2);

    let original = lab.ok(&["vm", "show", "app"]);
    let new = lab.ok(&["vm", "show", "app2"]);
    assert_eq!(new["host"], "esx-b");
    assert_eq!(new["power"], "on");
    for mount in ["D:", "/data"] {
        let find = |vm: &Value| {
            vm["devices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["mount_point"] == mount)
                .unwrap()
                .clone()
        };
        let (was, now) = (find(&original), find(&new));
        assert_eq!(now["kind"], "mapped-lun", "{now}");
        assert_eq!(
            now["mode"], "virtual",
            "{mount} must be restored as a virtual mapping"
        );
        assert_ne!(now["wwn"], was["wwn"], "{mount} must be a new LUN");
    }
    assert_eq!(
        new["devices"].as_array().unwrap().len(),
        DEVICES.len(),
        "{new}"
    );
    lab.assert_reconciled();
}

#[test]
fn the_copy_reads_through_the_proxy_and_leaves_nothing_behind() {
    let (lab, point) = copied_vm();
    let jobs = lab.ok(&["jobs"]);
    let copy_job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "copy")
        .unwrap();
    let job = lab.ok(&["job", copy_job["id"].as_str().unwrap()]);
    assert_eq!(
        step_names(&job),
        [
            "prepare-proxy",
            "attach-virtual-disks",
            "clone-luns@lab-array",
            "map-clones",
            "copy-device /data",
            "copy-device C:",
            "copy-device D:",
            "teardown-proxy",
            "record-copies",
        ]
    );
    // The physical LUN's clone was mapped to the proxy as virtual at the same mount point.
    let mapped = step(&job, "map-clones")["output"]
        .as_array()
        .unwrap()
        .clone();
    let d = mapped.iter().find(|m| m["mount_point"] == "D:").unwrap();
    assert_eq!(d["original_mode"], "physical");
    assert_eq!(d["mode"], "virtual");
    assert_ne!(d["clone_wwn"], d["original_wwn"]);
    let detail = step(&job, "map-clones")["detail"].as_str().unwrap();
    assert!(detail.contains("as virtual at D:"), "{detail}");
    // Nothing of the proxy path is left.
    let (clones, proxy_devices) = leftovers(&lab);
    assert!(clones.is_empty(), "clones left: {clones:?}");
    assert_eq!(proxy_devices, vec![0]);
    lab.assert_reconciled();
    // The point carries a copy ref per device.
    let points = lab.ok(&["points", "app"]);
    let p = points
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == point.as_str())
        .unwrap();
    assert_eq!(p["copies"].as_array().unwrap().len(), 3);
    // A second copy reuses the proxy VM.
    let second = lab.ok(&["copy", "app"]);
    let job = lab.ok(&["job", second["job"].as_str().unwrap()]);
    let detail = step(&job, "prepare-proxy")["detail"].as_str().unwrap();
    assert!(detail.contains("reusing"), "{detail}");
}

#[test]
fn an_incremental_copy_reads_and_stores_only_what_changed() {
    let lab = Lab::with_vm();
    // Incompressible data over most of each 64 MiB device.
    for (d, mount) in DEVICES.iter().enumerate() {
        lab.write(
            "app",
            mount,
            0,
            &tidemark::cli::demo::pattern(900 + d as u64, 48 << 20),
        );
    }
    let full = lab.ok(&["copy", "app"]);
    for d in full["devices"].as_array().unwrap() {
        assert_eq!(d["how"], "full", "{d}");
        let read = d["bytes_read"].as_u64().unwrap();
        assert!(
            (48 << 20..=50 << 20).contains(&read),
            "full read {read}: {d}"
        );
        let stored = d["bytes_stored"].as_u64().unwrap();
        assert!(stored >= 47 << 20, "random data must be stored: {stored}");
    }
    // Change 1% (655 KiB) of C: only.
    let changed = 655 << 10;
    lab.write(
        "app",
        "C:",
        8 << 20,
        &tidemark::cli::demo::pattern(77, changed),
    );
    let incremental = lab.ok(&["copy", "app"]);
    for d in incremental["devices"].as_array().unwrap() {
        assert_eq!(d["how"], "incremental", "{d}");
        let (read, stored) = (
            d["bytes_read"].as_u64().unwrap(),
            d["bytes_stored"].as_u64().unwrap(),
        );
        if d["mount_point"] == "C:" {
            // At most one chunk more on each side of the changed range.
            assert!(
                read >= changed as u64 && read <= changed as u64 + (512 << 10),
                "C: read {read}"
            );
            assert!(stored <= changed as u64 + (512 << 10), "C: stored {stored}");
            assert!(stored >= changed as u64 / 2, "C: stored {stored}");
        } else {
            assert_eq!(read, 0, "{d}");
            assert_eq!(stored, 0, "{d}");
        }
    }
    // Every copy is still a full view: restore the newest and compare.
    let point = incremental["recovery_point"].as_str().unwrap();
    lab.ok(&["restore", "app", point, "--host", "esx-b", "--as", "copy2"]);
    for (d, mount) in DEVICES.iter().enumerate() {
        let mut expected = tidemark::cli::demo::pattern(900 + d as u64, 48 << 20);
        if *mount == "C:" {
            expected[8 << 20..(8 << 20) + changed]
                .copy_from_slice(&tidemark::cli::demo::pattern(77, changed));
        }
        assert!(
            lab.read("copy2", mount, 0, 48 << 20) == expected,
            "{mount} differs"
        );
    }
}

#[test]
fn damaged_chunks_and_manifests_are_named_and_never_restored() {
    let (lab, point) = copied_vm();
    let store = lab.dir.path().join("copies");
    let pack = files(&store.join("packs"))
        .into_iter()
        .next()
        .expect("a pack file");
    // Byte 20 is inside the pack's first chunk (its sealed bytes start after 14).
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[20] ^= 0x5a;
    std::fs::write(&pack, bytes).unwrap();
    let out = lab.run(&["verify", &point]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    let chunk = &damaged[0]["damaged_chunks"][0];
    assert_eq!(chunk["pack"], pack_name, "the pack is named: {report}");
    assert_eq!(
        chunk["chunk"].as_str().unwrap().len(),
        64,
        "and the chunk: {report}"
    );
    assert!(
        damaged[0]["copy"].as_str().is_some(),
        "and the copy: {report}"
    );

    // Restore refuses and leaves no VM behind.
    let out = lab.run(&["restore", "app", &point, "--host", "esx-b", "--as", "app2"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    assert_eq!(doc["state"], "compensated", "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("damaged"), "{doc}");
    assert!(lab.run(&["vm", "show", "app2"]).status.code() == Some(1));
    let inventory = lab.ok(&["inventory"]);
    assert!(!inventory.to_string().contains("\"app2\""), "{inventory}");
    lab.assert_reconciled();

    // A damaged manifest is named too.
    let manifest = files(&store.join("manifests"))
        .into_iter()
        .next()
        .expect("a manifest");
    flip_byte(&manifest, 5);
    let report = json(&lab.run(&["verify", "--all"]));
    let manifest_name = manifest.file_name().unwrap().to_str().unwrap();
    assert!(
        report["damaged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| manifest_name.starts_with(d["copy"].as_str().unwrap())),
        "{report}"
    );
}

#[test]
fn gc_racing_a_running_copy_loses_nothing() {
    let lab = Lab::with_vm();
    for (d, mount) in DEVICES.iter().enumerate() {
        lab.write(
            "app",
            mount,
            0,
            &tidemark::cli::demo::pattern(500 + d as u64, 32 << 20),
        );
    }
    // A first copy, then expired: its chunks are unreferenced, and the next copy of the
    // same data deduplicates against exactly those chunks while gc wants to free them.
    lab.ok(&["copy", "app"]);
    lab.ok(&["expire", "--keep-copies", "0", "--keep-snapshots", "0"]);
    let (point, _) = lab.snapshot("app");
    let mut copy = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("--data-dir")
        .arg(lab.dir.path())
        .args(["--output", "json", "copy", "app", &point])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut gcs = 0;
    while copy.try_wait().unwrap().is_none() {
        lab.ok(&["gc"]);
        gcs += 1;
    }
    assert!(copy.wait().unwrap().success());
    lab.ok(&["gc"]);
    assert!(gcs >= 1);
    assert_eq!(lab.ok(&["verify", "--all"])["ok"], true);
    lab.ok(&["restore", "app", &point, "--host", "esx-b", "--as", "app2"]);
    for (d, mount) in DEVICES.iter().enumerate() {
        let expected = tidemark::cli::demo::pattern(500 + d as u64, 32 << 20);
        assert!(lab.read("app2", mount, 0, 32 << 20) == expected, "{mount}");
    }
}

#[test]
fn copy_store_bad_input_gets_clear_errors() {
    let lab = Lab::with_vm();
    let pass = |p: &str| vec![("TIDEMARK_COPY_PASSPHRASE", p.to_string())];
    let doc = json(&lab.run_env(&["copy", "app"], &pass("correct horse")));
    assert_eq!(doc["state"], "succeeded", "{doc}");
    let point = doc["recovery_point"].as_str().unwrap().to_string();

    let wrong = lab.run_env(&["verify", &point], &pass("battery staple"));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("passphrase"));
    let missing = lab.run(&["verify", &point]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("TIDEMARK_COPY_PASSPHRASE"));
    assert_eq!(
        lab.ok_env(&["verify", &point], &pass("correct horse"))["ok"],
        true
    );

    let unknown = lab.run_env(&["copy", "app", "rp-nope"], &pass("correct horse"));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("rp-nope"));
    let onto = lab.run_env(
        &["restore", "app", &point, "--host", "esx-b", "--as", "app"],
        &pass("correct horse"),
    );
    assert_eq!(onto.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&onto.stderr).contains("exists already"));
    let no_host = lab.run(&["restore", "app", &point]);
    assert_eq!(no_host.status.code(), Some(2));
    // Nothing was lost along the way.
    assert_eq!(
        lab.ok_env(&["verify", "--all"], &pass("correct horse"))["ok"],
        true
    );
}

#[test]
fn a_missing_key_file_is_named() {
    let (lab, point) = copied_vm();
    let key = files(&lab.dir.path().join("copies"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("key"))
        })
        .expect("a key file");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let out = lab.run(&["verify", &point]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key"));
    std::fs::write(&key, saved).unwrap();
    assert_eq!(lab.ok(&["verify", &point])["ok"], true);
}

#[test]
fn one_device_restores_in_place_from_its_copy() {
    let (lab, point) = copied_vm();
    lab.fill("app", 2);
    lab.ok(&["expire", "--keep-snapshots", "0"]);
    let doc = lab.ok(&["restore", "app", &point, "--device", "D:"]);
    assert_eq!(doc["state"], "succeeded", "{doc}");
    for (d, mount) in DEVICES.iter().enumerate() {
        let generation = if *mount == "D:" { 1 } else { 2 };
        for (r, &(offset, len)) in crate::harness::REGIONS.iter().enumerate() {
            let expected =
                tidemark::cli::demo::pattern(generation * 100 + d as u64 * 10 + r as u64, len);
            assert!(lab.read("app", mount, offset, len) == expected, "{mount}");
        }
    }
    lab.assert_reconciled();
}

/// Mounts a small tmpfs at `dir` (root only); `None` where that is not possible.
fn small_filesystem(dir: &Path, size: &str) -> Option<Unmount> {
    std::fs::create_dir_all(dir).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| Unmount(dir.to_path_buf()))
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_copy_store_fails_the_copy_cleanly_and_loses_nothing() {
    let lab = Lab::with_vm();
    lab.write("app", "C:", 0, &tidemark::cli::demo::pattern(5, 24 << 20));
    let (point, _) = lab.snapshot("app");
    let Some(mount) = small_filesystem(&lab.dir.path().join("copies"), "8m") else {
        eprintln!("skipped: cannot mount a small filesystem here (needs root)");
        return;
    };
    let out = lab.run(&["copy", "app", &point]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    assert_eq!(doc["state"], "compensated", "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("No space left"),
        "the error names the cause: {doc}"
    );
    lab.assert_reconciled();
    assert_eq!(lab.ok(&["copies", "app"]).as_array().unwrap().len(), 0);
    // The point and the VM's data are untouched; with room again the copy succeeds.
    let gc = lab.ok(&["gc"]);
    assert!(gc["chunks_total"].as_u64().is_some(), "{gc}");
    drop(mount);
    let done = lab.ok(&["copy", "app", &point]);
    assert_eq!(done["state"], "succeeded", "{done}");
    lab.fill("app", 3);
    lab.ok(&["restore", "app", &point, "--host", "esx-b", "--as", "app2"]);
    assert!(lab.read("app2", "C:", 0, 24 << 20) == tidemark::cli::demo::pattern(5, 24 << 20));
}

#[test]
fn copies_warn_until_the_key_is_exported_and_the_exported_key_reads_them() {
    let lab = Lab::with_vm();
    let first = lab.ok(&["copy", "app"]);
    let warning = first["warnings"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"));
    assert!(warning.contains("copies key export"), "{warning}");
    let point = first["recovery_point"].as_str().unwrap().to_string();

    let out = lab.dir.path().join("exported.key");
    let out_arg = out.to_str().unwrap();
    let done = lab.ok(&["copies", "key", "export", "--out", out_arg]);
    assert_eq!(done["exported"], out_arg);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never over an existing file.
    let again = lab.run(&["copies", "key", "export", "--out", out_arg]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("must not exist"));

    let second = lab.ok(&["copy", "app"]);
    assert_eq!(second["warnings"], serde_json::json!([]), "{second}");

    // The exported file is the key: with the store's own key gone, it reads the copies.
    let key = lab.dir.path().join("copies/key");
    std::fs::remove_file(&key).unwrap();
    assert_eq!(lab.run(&["verify", &point]).status.code(), Some(1));
    std::fs::copy(&out, &key).unwrap();
    assert_eq!(lab.ok(&["verify", &point])["ok"], true);
}

#[test]
fn a_passphrase_store_neither_warns_nor_exports_a_key_file() {
    let lab = Lab::with_vm();
    let pass = vec![("TIDEMARK_COPY_PASSPHRASE", "correct horse".to_string())];
    let copy = lab.ok_env(&["copy", "app"], &pass);
    assert_eq!(copy["warnings"], serde_json::json!([]), "{copy}");
    let out = lab.dir.path().join("k");
    let refused = lab.run_env(
        &["copies", "key", "export", "--out", out.to_str().unwrap()],
        &pass,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("passphrase"));
    assert!(!out.exists());
}

/// What `copies VM` says of each point, without fields a recovery cannot know.
fn copies_listing(lab: &Lab, vm: &str) -> Vec<Value> {
    let doc = lab.ok(&["copies", vm]);
    let mut points: Vec<Value> = doc.as_array().unwrap().clone();
    points.sort_by_key(|p| p["recovery_point"].as_str().unwrap().to_string());
    points
}

#[test]
fn a_lost_catalog_is_rebuilt_from_the_copies_and_every_point_restores() {
    let (lab, first) = copied_vm();
    lab.fill("app", 2);
    let second = lab.ok(&["copy", "app"]);
    assert_eq!(second["state"], "succeeded", "{second}");
    let second = second["recovery_point"].as_str().unwrap().to_string();
    lab.fill("app", 3);
    // The first point's snapshots are gone, the second's are still on the endpoints.
    lab.ok(&["expire", "--keep-snapshots", "1"]);
    let before = copies_listing(&lab, "app");
    assert_eq!(before.len(), 2, "{before:?}");

    // The catalog is lost; the copy store and the lab's systems are not.
    for entry in std::fs::read_dir(lab.dir.path()).unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("catalog.sqlite")
        {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let unknown = lab.run(&["copies", "app"]);
    assert_eq!(unknown.status.code(), Some(1), "the VM must be unknown now");

    // Without the VM's hypervisor endpoint nothing can be placed, and each copy says why.
    let blocked = lab.run(&["catalog", "recover", "--from-copies"]);
    assert_eq!(
        blocked.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&blocked.stderr)
    );
    let report = json(&blocked);
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2 * DEVICES.len(), "{report}");
    assert!(
        skipped.iter().all(|s| s["reason"]
            .as_str()
            .unwrap()
            .contains("hypervisor endpoint lab-hypervisor is not configured")),
        "{report}"
    );
    assert_eq!(report["points_recorded"], serde_json::json!([]), "{report}");

    lab.ok(&["lab", "init"]);
    let report = lab.ok(&["catalog", "recover", "--from-copies"]);
    let mut points = vec![first.clone(), second.clone()];
    points.sort();
    assert_eq!(
        report["vms_recorded"],
        serde_json::json!(["app"]),
        "{report}"
    );
    assert_eq!(
        report["points_recorded"],
        serde_json::json!(points),
        "{report}"
    );
    assert_eq!(report["copies_recorded"], 2 * DEVICES.len(), "{report}");
    assert_eq!(report["snapshots_present"], DEVICES.len(), "{report}");
    assert_eq!(report["snapshots_expired"], DEVICES.len(), "{report}");
    assert_eq!(report["skipped"], serde_json::json!([]), "{report}");
    assert_eq!(copies_listing(&lab, "app"), before);

    // Running it again changes nothing.
    let again = lab.ok(&["catalog", "recover", "--from-copies"]);
    assert_eq!(again["points_known"], 2, "{again}");
    assert_eq!(again["copies_recorded"], 0, "{again}");
    assert_eq!(copies_listing(&lab, "app"), before);

    // Every recovered point restores; the one whose snapshots live also reverts; the next
    // copy builds on the recovered ones.
    let restored = lab.ok(&["restore", "app", &first, "--host", "esx-b", "--as", "app1"]);
    assert_eq!(restored["state"], "succeeded", "{restored}");
    lab.assert_holds("app1", 1);
    let reverted = lab.ok(&["revert", "app", &second]);
    assert_eq!(reverted["state"], "succeeded", "{reverted}");
    lab.assert_holds("app", 2);
    let next = lab.ok(&["copy", "app"]);
    assert_eq!(next["state"], "succeeded", "{next}");
    assert_eq!(lab.ok(&["verify", "--all"])["ok"], true);
    lab.assert_reconciled();
}
