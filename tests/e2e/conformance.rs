//! `tidemark adapter test`: the conformance suite passes on the bundled lab adapters, fails
//! exactly the tagged checks of the deliberately broken array, lists its checks, writes
//! JUnit XML, and refuses a file that is not an adapter (exit 2).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::harness::{Lab, json};

const LAB_HYPERVISOR: &str = env!("TIDEMARK_LAB_HYPERVISOR_WASM");
const LAB_ARRAY: &str = env!("TIDEMARK_LAB_ARRAY_WASM");
const BROKEN_ARRAY: &str = env!("TIDEMARK_BROKEN_ARRAY_WASM");

fn ids_where(report: &Value, outcome: &str) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == outcome)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// The suite's checks as `--list --output json` gives them.
fn listed(lab: &Lab) -> Vec<Value> {
    let out = lab.run(&["adapter", "test", "--list"]);
    assert!(out.status.success());
    json(&out).as_array().unwrap().clone()
}

#[test]
fn the_bundled_lab_adapters_pass_with_junit_written() {
    let lab = Lab::empty();
    let junit = lab.dir.path().join("suite.xml");
    let junit_arg = junit.to_str().unwrap();
    let (code, report) =
        lab.adapter_test(&[LAB_HYPERVISOR, "--array", LAB_ARRAY, "--junit", junit_arg]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["kind"], "hypervisor");
    assert_eq!(report["failed"], 0, "{:?}", ids_where(&report, "failed"));
    assert_eq!(report["skipped"], 0, "{:?}", ids_where(&report, "skipped"));
    assert!(report["left_behind"].as_array().unwrap().is_empty());
    let hv_checks = report["checks"].as_array().unwrap().len();

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit file is well-formed XML");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!(cases, hv_checks);
    let suite_node = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite_node.attribute("failures"), Some("0"));

    let (code, report) = lab.adapter_test(&[LAB_ARRAY]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["kind"], "storage-array");
    assert_eq!(report["failed"], 0, "{:?}", ids_where(&report, "failed"));
    assert_eq!(report["skipped"], 0, "{:?}", ids_where(&report, "skipped"));
    // Every check of the kind ran: the two kinds together are all the list holds of them
    // (the rest are the dns and machine worlds', run against their own servers).
    let total = hv_checks + report["checks"].as_array().unwrap().len();
    let of_these = listed(&lab)
        .iter()
        .filter(|c| c["kind"] == "hypervisor" || c["kind"] == "storage-array")
        .count();
    assert_eq!(total, of_these);
}

#[test]
fn a_hypervisor_without_an_array_skips_only_its_lun_checks() {
    let lab = Lab::empty();
    let (code, report) = lab.adapter_test(&[LAB_HYPERVISOR]);
    assert_eq!(code, Some(0), "{report:#}");
    let needs_array: BTreeSet<String> = listed(&lab)
        .iter()
        .filter(|c| c["needs_array"] == true)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert!(needs_array.len() >= 5, "{needs_array:?}");
    assert_eq!(ids_where(&report, "skipped"), needs_array);
    for check in report["checks"].as_array().unwrap() {
        if check["outcome"] == "skipped" {
            assert!(check["reason"].as_str().unwrap().contains("--array"));
        }
    }
}

#[test]
fn the_broken_array_fails_exactly_the_checks_of_its_flaw() {
    let lab = Lab::empty();
    let checks = listed(&lab);
    let tagged = |tag: &str| -> BTreeSet<String> {
        checks
            .iter()
            .filter(|c| c["kind"] == "storage-array")
            .filter(|c| c["tags"].as_array().unwrap().iter().any(|t| t == tag))
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    for (flaw, tag) in [("tokens", "token"), ("isolation", "isolation")] {
        let setting = format!("flaw={flaw}");
        let (code, report) = lab.adapter_test(&[BROKEN_ARRAY, "--setting", &setting]);
        assert_eq!(code, Some(1), "flaw {flaw}: {report:#}");
        let expected = tagged(tag);
        assert!(expected.len() >= 5, "{tag}: {expected:?}");
        assert_eq!(
            ids_where(&report, "failed"),
            expected,
            "flaw {flaw} must fail every {tag} check and nothing else"
        );
        assert_eq!(report["skipped"], 0);
        assert!(report["left_behind"].as_array().unwrap().is_empty());
    }
    // Without a flaw it is the lab array and passes.
    let (code, report) = lab.adapter_test(&[BROKEN_ARRAY, "--setting", "flaw=none"]);
    assert_eq!(code, Some(0), "{:?}", ids_where(&report, "failed"));
}

#[test]
fn list_prints_every_check_on_a_line_of_its_own() {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["adapter", "test", "--list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 80, "only {} checks", lines.len());
    let ids: BTreeSet<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids.len(), lines.len(), "ids repeat");
    assert!(
        lines.iter().all(|l| l.trim_end().ends_with('.')),
        "a claim is not a sentence"
    );
}

#[test]
fn a_file_that_is_not_an_adapter_is_refused_with_exit_2() {
    let lab = Lab::empty();
    let garbage = lab.dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not WebAssembly").unwrap();
    let out = lab.run(&["adapter", "test", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not a loadable adapter")
            && stderr.contains("not a valid WebAssembly component"),
        "{stderr}"
    );
    let missing = lab.run(&["adapter", "test", "/nonexistent/adapter.wasm"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
