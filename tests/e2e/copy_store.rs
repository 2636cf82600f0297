//! The copy store's own crash safety, driven through the binary: creation, packs, upgrade.

use crate::harness::Lab;

/// Points copy-store creation passes in key-file mode (`TIDEMARK_CRASH_IN_STORE_CREATE`):
/// three for each create-only publication, the key file's and the config's.
const CREATE_POINTS: u32 = 6;

#[test]
fn a_copy_killed_while_it_creates_the_store_is_followed_by_one_that_succeeds() {
    for at in 1..=CREATE_POINTS + 1 {
        let lab = Lab::with_vm();
        lab.fill("app", 1);
        let out = lab.run_env(
            &["copy", "app"],
            &[("TIDEMARK_CRASH_IN_STORE_CREATE", at.to_string())],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let crashed = !out.status.success() && stderr.contains("aborting copy-store creation");
        assert_eq!(crashed, at <= CREATE_POINTS, "point {at}: {stderr}");
        let key = lab.dir.path().join("copies/key");
        let key_before = std::fs::read(&key).ok();
        lab.ok(&["resume"]);
        let doc = lab.ok(&["copy", "app"]);
        assert_eq!(doc["state"], "succeeded", "point {at}: {doc}");
        if let Some(k) = key_before {
            assert_eq!(std::fs::read(&key).unwrap(), k, "point {at}: key replaced");
        }
        assert_eq!(lab.ok(&["verify", "--all"])["ok"], true, "point {at}");
        let point = doc["recovery_point"].as_str().unwrap().to_string();
        lab.ok(&["restore", "app", &point, "--host", "esx-b", "--as", "app2"]);
        lab.assert_holds("app2", 1);
    }
}

#[test]
fn a_copy_killed_while_it_writes_packs_leaves_a_store_verify_calls_clean_and_gc_tidies() {
    let lab = Lab::with_vm();
    lab.fill("app", 1);
    lab.ok(&["copy", "app"]);
    lab.fill("app", 2);
    let (point, _) = lab.snapshot("app");
    let packs = |lab: &Lab| {
        let mut n = 0;
        for dir in std::fs::read_dir(lab.dir.path().join("copies/packs")).unwrap() {
            n += std::fs::read_dir(dir.unwrap().path())
                .unwrap()
                .filter(|e| {
                    !e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with('.')
                })
                .count();
        }
        n
    };
    let before = packs(&lab);
    let out = lab.run_env(
        &["copy", "app", &point],
        &[("TIDEMARK_CRASH_AFTER_PACKS", "1".to_string())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("aborting a copy after writing a pack"),
        "{stderr}"
    );
    assert_eq!(lab.ok(&["verify", "--all"])["ok"], true);
    let gc = lab.ok(&["gc"]);
    assert_eq!(packs(&lab), before, "gc removed the unindexed packs: {gc}");
    let resumed = lab.ok(&["resume"]);
    assert_eq!(resumed["resumed"][0]["state"], "succeeded", "{resumed}");
    assert_eq!(lab.ok(&["verify", "--all"])["ok"], true);
    lab.ok(&["restore", "app", &point, "--host", "esx-b", "--as", "app2"]);
    lab.assert_holds("app2", 2);
}
