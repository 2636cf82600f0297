//! Crash after every step and resume; fail every step and compensate.

use crate::harness::{Lab, json};

/// Steps of a snapshot job of the standard VM.
const SNAPSHOT_STEPS: u32 = 4;
/// Steps of a revert job of the standard VM while it runs.
const REVERT_STEPS: u32 = 8;

/// A powered-on VM holding generation 2, with a recovery point of generation 1.
fn running_vm_changed_since_its_point() -> (Lab, String) {
    let lab = Lab::with_vm();
    lab.fill("app", 1);
    let (point, _) = lab.snapshot("app");
    lab.ok(&["lab", "power", "app", "on"]);
    lab.fill("app", 2);
    (lab, point)
}

fn crashed(out: &std::process::Output) -> bool {
    !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("TIDEMARK_CRASH_AFTER_STEP")
}

#[test]
fn step_counts_are_what_these_tests_assume() {
    let lab = Lab::with_vm();
    let (point, _) = lab.snapshot("app");
    assert_eq!(
        lab.last_job()["steps"].as_array().unwrap().len() as u32,
        SNAPSHOT_STEPS
    );
    lab.ok(&["lab", "power", "app", "on"]);
    lab.ok(&["revert", "app", &point]);
    assert_eq!(
        lab.last_job()["steps"].as_array().unwrap().len() as u32,
        REVERT_STEPS
    );
}

#[test]
fn snapshot_survives_a_crash_after_every_step() {
    for step in 1..=SNAPSHOT_STEPS {
        let lab = Lab::with_vm();
        lab.fill("app", 1);
        let out = lab.run_env(
            &["snapshot", "app"],
            &[("TIDEMARK_CRASH_AFTER_STEP", step.to_string())],
        );
        assert!(
            crashed(&out),
            "step {step}: expected a crash, got {:?}",
            out.status
        );
        let resumed = lab.ok(&["resume"]);
        assert_eq!(
            resumed["resumed"][0]["state"], "succeeded",
            "step {step}: {resumed}"
        );
        lab.assert_reconciled();
        let points = lab.ok(&["points", "app"]);
        let point = points[0]["id"].as_str().unwrap().to_string();
        assert_eq!(points[0]["snapshots"].as_array().unwrap().len(), 3);
        lab.fill("app", 2);
        lab.ok(&["revert", "app", &point]);
        lab.assert_holds("app", 1);
        lab.assert_reconciled();
    }
}

#[test]
fn revert_survives_a_crash_after_every_step() {
    for step in 1..=REVERT_STEPS {
        let (lab, point) = running_vm_changed_since_its_point();
        let out = lab.run_env(
            &["revert", "app", &point],
            &[("TIDEMARK_CRASH_AFTER_STEP", step.to_string())],
        );
        assert!(
            crashed(&out),
            "step {step}: expected a crash, got {:?}",
            out.status
        );
        // A new job on the VM is refused while this one is unfinished.
        let refused = lab.run(&["snapshot", "app"]);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("unfinished job"));
        let resumed = lab.ok(&["resume"]);
        assert_eq!(
            resumed["resumed"][0]["state"], "succeeded",
            "step {step}: {resumed}"
        );
        lab.assert_holds("app", 1);
        assert_eq!(lab.ok(&["vm", "show", "app"])["power"], "on");
        lab.assert_reconciled();
    }
}

#[test]
fn snapshot_failing_at_any_step_is_compensated() {
    for step in 1..=SNAPSHOT_STEPS {
        let lab = Lab::with_vm();
        let out = lab.run_env(
            &["snapshot", "app"],
            &[("TIDEMARK_FAIL_STEP", step.to_string())],
        );
        assert_eq!(out.status.code(), Some(1), "step {step}");
        let doc = json(&out);
        assert_eq!(doc["state"], "compensated", "step {step}: {doc}");
        assert!(doc["error"].as_str().unwrap().contains("injected failure"));
        assert_eq!(lab.ok(&["points", "app"]).as_array().unwrap().len(), 0);
        lab.assert_reconciled();
        let inventory = lab.ok(&["inventory"]);
        for endpoint in inventory.as_array().unwrap() {
            assert_eq!(
                endpoint["snapshots"].as_array().unwrap().len(),
                0,
                "step {step}: {endpoint}"
            );
        }
    }
}

#[test]
fn revert_failing_at_any_step_puts_everything_back() {
    for step in 1..=REVERT_STEPS {
        let (lab, point) = running_vm_changed_since_its_point();
        let out = lab.run_env(
            &["revert", "app", &point],
            &[("TIDEMARK_FAIL_STEP", step.to_string())],
        );
        assert_eq!(out.status.code(), Some(1), "step {step}");
        assert_eq!(json(&out)["state"], "compensated", "step {step}");
        lab.assert_holds("app", 2);
        assert_eq!(lab.ok(&["vm", "show", "app"])["power"], "on", "step {step}");
        lab.assert_reconciled();
    }
}
