//! One crash-and-failure matrix over every workflow (issue 9, parts 5 and 5b).
//!
//! Each row of [`SCENARIOS`] sets a lab up, names the job command, and says what must hold
//! once the job succeeded and once it was compensated. A row's steps are read from the
//! journal of a clean run of that row, never counted by hand. Then, for every step N:
//!
//! - crash right after step N is recorded (`TIDEMARK_CRASH_AFTER_STEP=N`), then `resume`:
//!   the job succeeds and the lab ends exactly as the clean run left it;
//! - fail step N (`TIDEMARK_FAIL_STEP=N`): the job is compensated and the lab is exactly as
//!   before the job;
//! - crash inside step N, after its adapter calls returned but before the journal recorded
//!   it (`TIDEMARK_CRASH_IN_STEP=N`), then `resume`: the job ends succeeded or compensated,
//!   and the lab matches "after" or "before" exactly, with nothing left behind.
//!
//! A row is set up once; every run starts from a `cp -a` of that data directory. Runs go to
//! `TIDEMARK_E2E_WORKERS` threads (default: the machine's cores).
//!
//! A new workflow is covered by adding its row to [`SCENARIOS`].

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Output;
use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};

use std::path::PathBuf;

use crate::copies::{files, leftovers, step_names};
use crate::daemons;
use crate::harness::{DEVICES, Lab, REGIONS, json};
use crate::libvirtd::{Libvirtd, Saved};
use crate::qsd_array::Qsd;
use crate::real_scenario::lab_on_real_systems;

/// Set to `true` once every job command takes `--dry-run` (issue 9, "Also"): each row then
/// also asserts that the plan a dry run reports names exactly the steps of the clean run's
/// journal, and that the dry run recorded no job.
const DRY_RUN_REPORTS_THE_PLAN: bool = true;

/// What a row's job starts from.
struct Start {
    /// The job command's arguments.
    args: Vec<String>,
    /// The recovery point the job uses, if any.
    point: Option<String>,
}

impl Start {
    fn point(&self) -> &str {
        self.point
            .as_deref()
            .expect("this row has a recovery point")
    }
}

/// One workflow in a lab, as the matrix drives it.
struct Scenario {
    name: &'static str,
    /// Builds the lab on an empty data directory; returns how the job starts.
    setup: fn(&Lab) -> Start,
    /// The VM the job holds: a new job on it is refused while this one is unfinished.
    busy_vm: Option<&'static str>,
    /// What must hold once the job succeeded. Runs last: it may change the lab.
    after: fn(&Lab, &Start),
    /// What must hold once the job was compensated. Runs last: it may change the lab.
    before: fn(&Lab, &Start),
}

/// Every workflow the engine runs, `restore --device` included.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "snapshot",
        setup: |lab| {
            vm_holding_generation_1(lab);
            start(&["snapshot", "app"], None)
        },
        busy_vm: Some("app"),
        after: |lab, _| {
            let points = lab.ok(&["points", "app"]);
            let point = points[0]["id"].as_str().unwrap().to_string();
            assert_eq!(points[0]["snapshots"].as_array().unwrap().len(), 3);
            lab.fill("app", 2);
            lab.ok(&["revert", "app", &point]);
            lab.assert_holds("app", 1);
            lab.assert_reconciled();
        },
        before: |lab, _| {
            assert_eq!(lab.ok(&["points", "app"]).as_array().unwrap().len(), 0);
            assert_no_snapshots(lab);
        },
    },
    Scenario {
        name: "revert",
        setup: |lab| {
            vm_holding_generation_1(lab);
            let (point, _) = lab.snapshot("app");
            // Written before power-on: libvirt refuses writes to a running domain's disk.
            lab.fill("app", 2);
            lab.ok(&["lab", "power", "app", "on"]);
            start(&["revert", "app", &point], Some(&point))
        },
        busy_vm: Some("app"),
        after: |lab, _| {
            lab.assert_holds("app", 1);
            assert_eq!(lab.ok(&["vm", "show", "app"])["power"], "on");
        },
        before: |lab, _| {
            lab.assert_holds("app", 2);
            assert_eq!(lab.ok(&["vm", "show", "app"])["power"], "on");
        },
    },
    Scenario {
        name: "copy",
        setup: |lab| {
            vm_holding_generation_1(lab);
            let (point, _) = lab.snapshot("app");
            let mut args = vec!["copy".to_string(), "app".into(), point.clone()];
            args.extend(lab.place.proxy_args());
            Start {
                args,
                point: Some(point),
            }
        },
        busy_vm: Some("app"),
        after: |lab, start| {
            assert_eq!(lab.ok(&["verify", start.point()])["ok"], true);
            assert!(leftovers(lab).0.is_empty());
            let points = lab.ok(&["points", "app"]);
            assert_eq!(points[0]["copies"].as_array().unwrap().len(), 3, "{points}");
        },
        before: |lab, _| {
            let (clones, proxy_devices) = leftovers(lab);
            assert!(clones.is_empty(), "{clones:?}");
            assert!(proxy_devices.iter().all(|n| *n == 0), "{proxy_devices:?}");
            assert_eq!(lab.ok(&["copies", "app"]).as_array().unwrap().len(), 0);
            assert!(files(&lab.dir.path().join("copies/manifests")).is_empty());
        },
    },
    Scenario {
        name: "restore",
        setup: |lab| {
            let point = copied_vm_holding_generation_1(lab);
            let host = &lab.place.restore_host;
            start(
                &["restore", "app", &point, "--host", host, "--as", "app2"],
                Some(&point),
            )
        },
        // A restore to a new VM only reads copies: the source VM stays free meanwhile.
        busy_vm: None,
        after: |lab, _| {
            lab.assert_holds("app2", 1);
            assert_eq!(
                lab.ok(&["vm", "show", "app2"])["host"],
                lab.place.restore_host.as_str()
            );
        },
        before: |lab, _| {
            let inventory = lab.ok(&["inventory"]).to_string();
            assert!(!inventory.contains("\"app2\""), "VM left behind");
            assert!(!inventory.contains("app2-"), "LUN left behind");
        },
    },
    // A mapped LUN (safety snapshot on the array) and a virtual disk (on the hypervisor).
    Scenario {
        name: "restore --device D:",
        setup: |lab| restore_in_place(lab, "D:"),
        busy_vm: Some("app"),
        after: |lab, _| holds_in_place(lab, "D:"),
        before: |lab, _| holds_in_place(lab, ""),
    },
    Scenario {
        name: "restore --device C:",
        setup: |lab| restore_in_place(lab, "C:"),
        busy_vm: Some("app"),
        after: |lab, _| holds_in_place(lab, "C:"),
        before: |lab, _| holds_in_place(lab, ""),
    },
];

fn start(args: &[&str], point: Option<&str>) -> Start {
    Start {
        args: args.iter().map(|a| a.to_string()).collect(),
        point: point.map(str::to_string),
    }
}

/// Lab endpoints and VM `app` (powered off) holding generation 1.
fn vm_holding_generation_1(lab: &Lab) {
    lab.ok(&["lab", "init"]);
    lab.create_vm("app");
    lab.fill("app", 1);
}

/// [`vm_holding_generation_1`], copied once; returns the point.
fn copied_vm_holding_generation_1(lab: &Lab) -> String {
    vm_holding_generation_1(lab);
    let mut args = vec!["copy", "app"];
    let proxy = lab.place.proxy_args();
    args.extend(proxy.iter().map(String::as_str));
    let doc = lab.ok(&args);
    assert_eq!(doc["state"], "succeeded", "{doc}");
    doc["recovery_point"].as_str().unwrap().to_string()
}

/// [`copied_vm_holding_generation_1`], then changed to generation 2, powered on and with
/// every snapshot expired (the copy is all there is); restores `mount` in place.
fn restore_in_place(lab: &Lab, mount: &str) -> Start {
    let point = copied_vm_holding_generation_1(lab);
    lab.fill("app", 2);
    lab.ok(&["lab", "power", "app", "on"]);
    lab.ok(&["expire", "--keep-snapshots", "0"]);
    assert_no_snapshots(lab);
    start(&["restore", "app", &point, "--device", mount], Some(&point))
}

/// `app` is on, holds generation 1 at `restored` (a mount point, or none) and generation 2
/// everywhere else, and no snapshot is left.
fn holds_in_place(lab: &Lab, restored: &str) {
    for (d, mount) in DEVICES.iter().enumerate() {
        let generation = if *mount == restored { 1 } else { 2 };
        for (r, &(offset, len)) in REGIONS.iter().enumerate() {
            let expected =
                tidemark::cli::demo::pattern(generation * 100 + d as u64 * 10 + r as u64, len);
            assert!(
                lab.read("app", mount, offset, len) == expected,
                "{mount} at {offset}: bytes differ from generation {generation}"
            );
        }
    }
    assert_eq!(lab.ok(&["vm", "show", "app"])["power"], "on");
    assert_no_snapshots(lab);
}

fn assert_no_snapshots(lab: &Lab) {
    for endpoint in lab.ok(&["inventory"]).as_array().unwrap() {
        assert_eq!(
            endpoint["snapshots"].as_array().unwrap().len(),
            0,
            "{endpoint}"
        );
    }
}

/// The systems a row runs on.
#[derive(Clone, Copy, Debug)]
enum Systems {
    /// The lab's hypervisor and array.
    Lab,
    /// VMs on a real libvirtd driving QEMU, LUNs on a real qemu-storage-daemon.
    LibvirtQsd,
}

/// A row's real daemons, each with its state as the job found it.
struct Real {
    qsd: Qsd,
    qsd_saved: tempfile::TempDir,
    libvirt: Libvirtd,
    libvirt_saved: Saved,
}

impl Real {
    /// Stops the daemons, saves what they keep and starts them again as they were.
    fn save(lab: &Lab, mut qsd: Qsd, mut libvirt: Libvirtd) -> Self {
        // libvirt first: its running domains read the LUNs qsd exports.
        let libvirt_saved = libvirt.stop_and_save();
        let qsd_saved = qsd.save();
        let mut real = Self {
            qsd,
            qsd_saved,
            libvirt,
            libvirt_saved,
        };
        real.start(lab);
        real
    }

    /// Puts back what [`Real::save`] saved and starts the daemons on it.
    fn restore(&mut self, lab: &Lab) {
        self.libvirt.put_back(&self.libvirt_saved);
        self.qsd.restart_from(self.qsd_saved.path());
        self.start(lab);
    }

    /// qsd's exports first (the adapter rebuilds them when a session starts: a domain
    /// with a mapped LUN cannot start without them), then libvirt and the domains that
    /// ran.
    fn start(&mut self, lab: &Lab) {
        lab.ok(&["inventory", "--endpoint", "qsd"]);
        self.libvirt.start_saved(&self.libvirt_saved);
    }
}

/// A row set up once, with what its clean run showed.
struct Prepared {
    scenario: &'static Scenario,
    /// The lab before the job; every run starts from a copy of it.
    lab: Lab,
    start: Start,
    /// The steps of the clean run's journal.
    steps: Vec<String>,
    /// The lab as the job found it.
    before: Value,
    /// The lab as the clean run left it.
    after: Value,
    /// On real systems: the daemons (one run at a time), put back before every run.
    real: Option<Mutex<Real>>,
    /// The daemons' volume directories, whose files [`observe`] counts.
    dirs: Vec<PathBuf>,
}

impl Prepared {
    /// Sets the row up on `systems`, each real daemon its own.
    fn new(scenario: &'static Scenario, systems: Systems) -> Self {
        let (lab, daemons) = match systems {
            Systems::Lab => (Lab::empty(), None),
            Systems::LibvirtQsd => {
                let libvirt = Libvirtd::start().expect("libvirtd");
                let qsd = Qsd::start().expect("qemu-storage-daemon");
                (lab_on_real_systems(&libvirt, &qsd), Some((qsd, libvirt)))
            }
        };
        let start = (scenario.setup)(&lab);
        let dirs: Vec<PathBuf> = daemons
            .iter()
            .flat_map(|(qsd, lv)| [qsd.dir().join("images"), lv.dir().join("pool")])
            .collect();
        let before = observe(&lab, &dirs);
        let real = daemons.map(|(qsd, lv)| Real::save(&lab, qsd, lv));
        let clean = lab.copy();
        let planned = planned_steps(&clean, &start);
        let doc = clean.ok(&args(&start));
        assert_eq!(doc["state"], "succeeded", "{}: {doc}", scenario.name);
        let job = clean.ok(&["job", doc["job"].as_str().unwrap()]);
        let steps = step_names(&job);
        assert!(!steps.is_empty(), "{}: {job}", scenario.name);
        assert_states(&job, "succeeded", "succeeded", steps.len());
        if let Some(planned) = planned {
            assert_eq!(planned, steps, "{}: the dry run's plan", scenario.name);
        }
        let after = observe(&clean, &dirs);
        (scenario.after)(&clean, &start);
        Self {
            scenario,
            lab,
            start,
            steps,
            before,
            after,
            real: real.map(Mutex::new),
            dirs,
        }
    }

    /// A copy of the lab before the job, for one run; on real systems with the daemons'
    /// state put back as the job found it (and the daemons held until the run ends).
    fn fresh(&self) -> (Lab, Option<MutexGuard<'_, Real>>) {
        let lab = self.lab.copy();
        let guard = self.real.as_ref().map(|real| {
            let mut real = real.lock().unwrap_or_else(|p| p.into_inner());
            real.restore(&lab);
            real
        });
        (lab, guard)
    }

    /// Step `n`'s label in failure messages.
    fn label(&self, n: usize) -> String {
        let on = if self.real.is_some() {
            "libvirt+qsd: "
        } else {
            ""
        };
        format!(
            "{on}{} step {n} ({})",
            self.scenario.name,
            self.steps[n - 1]
        )
    }

    /// Crash after step `n`, resume: the job succeeds, the lab is as after the clean run.
    fn crash_after(&self, n: usize) {
        let (lab, _qsd) = self.fresh();
        let out = lab.run_env(
            &args(&self.start),
            &[("TIDEMARK_CRASH_AFTER_STEP", n.to_string())],
        );
        let hook = format!(
            "TIDEMARK_CRASH_AFTER_STEP={n}: aborting after step {n} ({})",
            self.steps[n - 1]
        );
        assert_crashed(&out, &hook);
        if let Some(vm) = self.scenario.busy_vm {
            let refused = lab.run(&["snapshot", vm]);
            assert!(!refused.status.success());
            assert!(String::from_utf8_lossy(&refused.stderr).contains("unfinished job"));
        }
        let job = resume(&lab, "succeeded");
        assert_eq!(step_names(&job), self.steps);
        assert_states(&job, "succeeded", "succeeded", self.steps.len());
        self.assert_lab(&lab, &self.after, "as the clean run left it");
        (self.scenario.after)(&lab, &self.start);
    }

    /// Fail step `n`: the job is compensated, the lab is as before it.
    fn fail(&self, n: usize) {
        let (lab, _qsd) = self.fresh();
        let out = lab.run_env(&args(&self.start), &[("TIDEMARK_FAIL_STEP", n.to_string())]);
        assert_eq!(out.status.code(), Some(1));
        let doc = json(&out);
        assert_eq!(doc["state"], "compensated", "{doc}");
        let error = doc["error"].as_str().unwrap();
        let injected = format!("injected failure at step {n} ({})", self.steps[n - 1]);
        assert!(error.contains(&injected), "{error}");
        let job = lab.ok(&["job", doc["job"].as_str().unwrap()]);
        assert_eq!(step_names(&job), self.steps[..n]);
        assert_states(&job, "compensated", "failed", n);
        self.assert_lab(&lab, &self.before, "as before the job");
        (self.scenario.before)(&lab, &self.start);
    }

    /// Crash inside step `n`, resume: the job settles the step, then succeeds or is
    /// compensated, and the lab is exactly "after" or "before" accordingly.
    fn crash_inside(&self, n: usize) {
        let (lab, _qsd) = self.fresh();
        let out = lab.run_env(
            &args(&self.start),
            &[("TIDEMARK_CRASH_IN_STEP", n.to_string())],
        );
        assert_crashed(&out, &format!("TIDEMARK_CRASH_IN_STEP={n}"));
        let job = resume(&lab, "");
        match job["state"].as_str().unwrap() {
            "succeeded" => {
                assert_eq!(step_names(&job), self.steps);
                assert_states(&job, "succeeded", "succeeded", self.steps.len());
                self.assert_lab(&lab, &self.after, "as the clean run left it");
                (self.scenario.after)(&lab, &self.start);
            }
            "compensated" => {
                let names = step_names(&job);
                assert!(
                    names.len() >= n && names[..] == self.steps[..names.len()],
                    "the journal {names:?} is not the clean run's {:?} up to step {n}",
                    self.steps
                );
                self.assert_lab(&lab, &self.before, "as before the job");
                (self.scenario.before)(&lab, &self.start);
            }
            other => panic!("resume left the job {other}: {job}"),
        }
    }

    fn assert_lab(&self, lab: &Lab, expected: &Value, what: &str) {
        let got = observe(lab, &self.dirs);
        assert!(
            got == *expected,
            "the lab is not {what}.\nexpected: {expected:#}\ngot: {got:#}"
        );
    }
}

fn args(start: &Start) -> Vec<&str> {
    start.args.iter().map(String::as_str).collect()
}

fn assert_crashed(out: &Output, hook: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(hook),
        "expected a crash by {hook}, got {:?}: {stderr}",
        out.status
    );
}

/// Runs `resume`, which must find exactly one job; asserts its state (unless `state` is
/// empty) and returns the job with its journal.
fn resume(lab: &Lab, state: &str) -> Value {
    let resumed = lab.ok(&["resume"]);
    let jobs = resumed["resumed"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{resumed}");
    if !state.is_empty() {
        assert_eq!(jobs[0]["state"], state, "{resumed}");
    }
    let job = lab.last_job();
    assert_eq!(job["state"], jobs[0]["state"], "{job}");
    job
}

/// Asserts a journal has `n` steps: `earlier` for all but the last, `last` for step `n`.
fn assert_states(job: &Value, earlier: &str, last: &str, n: usize) {
    let states: Vec<&str> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = (1..=n)
        .map(|i| if i == n { last } else { earlier })
        .collect();
    assert_eq!(states, expected, "{job}");
}

/// The job's command with `--dry-run`: the step names of the plan it reports. Asserts the
/// dry run recorded no job. `None` until [`DRY_RUN_REPORTS_THE_PLAN`].
fn planned_steps(lab: &Lab, start: &Start) -> Option<Vec<String>> {
    if !DRY_RUN_REPORTS_THE_PLAN {
        return None;
    }
    let jobs = lab.ok(&["jobs"]);
    let mut dry = args(start);
    dry.push("--dry-run");
    let plan = lab.ok(&dry);
    assert_eq!(lab.ok(&["jobs"]), jobs, "a dry run records no job");
    let steps = plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in the dry run's plan: {plan}"));
    Some(
        steps
            .iter()
            .map(|s| {
                s.as_str()
                    .or(s["name"].as_str())
                    .unwrap_or_else(|| panic!("a step without a name: {plan}"))
                    .to_string()
            })
            .collect(),
    )
}

#[test]
fn every_workflow_survives_a_crash_after_every_step_and_compensates_a_failure_at_any() {
    let rows = prepare_rows();
    let mut checks: Vec<Check> = Vec::new();
    for row in &rows {
        for n in 1..=row.steps.len() {
            checks.push((
                format!("crash after {}", row.label(n)),
                Box::new(move || row.crash_after(n)),
            ));
            checks.push((
                format!("fail at {}", row.label(n)),
                Box::new(move || row.fail(n)),
            ));
        }
    }
    run_all(checks);
}

#[test]
fn every_workflow_settles_a_crash_inside_every_step() {
    let rows = prepare_rows();
    let mut checks: Vec<Check> = Vec::new();
    for row in &rows {
        for n in 1..=row.steps.len() {
            checks.push((
                format!("crash inside {}", row.label(n)),
                Box::new(move || row.crash_inside(n)),
            ));
        }
    }
    run_all(checks);
}

/// The same on real systems (issue 12): VMs on a real libvirtd driving QEMU through the
/// libvirt-hypervisor adapter, LUNs on a real qemu-storage-daemon through the qsd-array
/// adapter. Fail at every step for every workflow; crash after every step for copy and
/// restore (the full matrices stay on the lab). Every run starts from both daemons' state
/// as the job found it (definitions, pool and images put back, the domains that ran
/// started again), and the lab's picture counts both daemons' volume files, so a
/// compensation that leaves an overlay, a layer or a clone behind fails.
#[test]
fn on_real_libvirt_and_qsd_every_workflow_compensates_a_failure_at_any_step_and_copy_and_restore_survive_crashes()
 {
    if !Qsd::available() || daemons::program("libvirtd").is_none() {
        return;
    }
    run_all(real_checks(&prepare_rows_on(Systems::LibvirtQsd)));
}

/// Fail at every step of every row; crash after every step of copy and restore.
fn real_checks(rows: &[Prepared]) -> Vec<Check<'_>> {
    let mut checks: Vec<Check> = Vec::new();
    for row in rows {
        for n in 1..=row.steps.len() {
            checks.push((
                format!("fail at {}", row.label(n)),
                Box::new(move || row.fail(n)),
            ));
            if matches!(row.scenario.name, "copy" | "restore") {
                checks.push((
                    format!("crash after {}", row.label(n)),
                    Box::new(move || row.crash_after(n)),
                ));
            }
        }
    }
    checks
}

/// A labelled check for [`run_all`].
type Check<'a> = (String, Box<dyn FnOnce() + Send + 'a>);

/// Sets every row up (in parallel), each with its clean run. `TIDEMARK_MATRIX_ROWS=a,b`
/// keeps only the rows so named (while working on one workflow).
fn prepare_rows() -> Vec<Prepared> {
    prepare_rows_on(Systems::Lab)
}

/// [`prepare_rows`] on `systems`, each row with daemons of its own.
fn prepare_rows_on(systems: Systems) -> Vec<Prepared> {
    let only = std::env::var("TIDEMARK_MATRIX_ROWS").ok();
    let wanted: Vec<&'static Scenario> = SCENARIOS
        .iter()
        .filter(|s| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == s.name))
        })
        .collect();
    assert!(
        !wanted.is_empty(),
        "TIDEMARK_MATRIX_ROWS={only:?} names no row"
    );
    let slots: Vec<Mutex<Option<Prepared>>> = wanted.iter().map(|_| Mutex::new(None)).collect();
    run_all(
        wanted
            .iter()
            .zip(&slots)
            .map(|(scenario, slot)| -> Check {
                (
                    format!("setting up and a clean run of {}", scenario.name),
                    Box::new(move || {
                        *slot.lock().unwrap() = Some(Prepared::new(scenario, systems));
                    }),
                )
            })
            .collect(),
    );
    slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap().unwrap())
        .collect()
}

/// Runs every check on `TIDEMARK_E2E_WORKERS` threads (default: the machine's cores), each
/// to its end; then panics naming every check that failed.
fn run_all(checks: Vec<Check>) {
    let workers = std::env::var("TIDEMARK_E2E_WORKERS")
        .ok()
        .map(|w| w.parse::<usize>().expect("TIDEMARK_E2E_WORKERS: a number"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let total = checks.len();
    let queue = Mutex::new(checks.into_iter().collect::<VecDeque<_>>());
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(total) {
            scope.spawn(|| {
                loop {
                    let Some((label, check)) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    let began = std::time::Instant::now();
                    let outcome = catch_unwind(AssertUnwindSafe(check));
                    eprintln!(
                        "{} {label} ({:.1} s)",
                        if outcome.is_ok() { "ok    " } else { "FAILED" },
                        began.elapsed().as_secs_f64()
                    );
                    if let Err(panic) = outcome {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        failed.lock().unwrap().push(format!("{label}: {message}"));
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {total} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// What the lab holds, without the ids a run draws at random, so that two runs of one job
/// compare equal exactly when they leave the same lab behind: every catalog VM with its
/// devices and the SHA-256 of each device's bytes, the adapters' inventory (VMs, LUNs,
/// snapshots), every VM's recovery points with their snapshots and copies, and how many
/// manifests the copy store holds, and how many files each of `dirs` (the real daemons'
/// volume directories) holds. Asserts `reconcile` is clean and no job is unfinished.
fn observe(lab: &Lab, dirs: &[PathBuf]) -> Value {
    lab.assert_reconciled();
    let jobs = lab.ok(&["jobs"]);
    let unfinished: Vec<&Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] == "running" || j["state"] == "compensating")
        .collect();
    assert!(unfinished.is_empty(), "unfinished jobs: {unfinished:?}");

    let inventory = lab.ok(&["inventory"]);
    // A WWN is drawn at random when a LUN is made; the LUN's name says which one it is.
    let mut lun_names = std::collections::BTreeMap::new();
    for endpoint in inventory.as_array().unwrap() {
        for lun in endpoint["luns"].as_array().into_iter().flatten() {
            lun_names.insert(lun["wwn"].to_string(), lun["name"].clone());
        }
    }
    let lun_name = |wwn: &Value| lun_names.get(&wwn.to_string()).cloned();
    let lun = |wwn: &Value| -> Value {
        match wwn {
            Value::Null => Value::Null,
            wwn => lun_name(wwn).unwrap_or_else(|| json!(format!("a LUN no array has ({wwn})"))),
        }
    };
    let sorted = |mut items: Vec<Value>| {
        items.sort_by_key(Value::to_string);
        Value::Array(items)
    };

    let mut vms = Vec::new();
    let mut points = Vec::new();
    for vm in lab.ok(&["vm", "list"]).as_array().unwrap() {
        let name = vm["name"].as_str().unwrap();
        let devices = vm["devices"].as_array().unwrap().iter().map(|d| {
            let mount = d["mount_point"].as_str().unwrap();
            let length = d["capacity"].to_string();
            let read = lab.ok(&[
                "lab",
                "read",
                name,
                mount,
                "--offset",
                "0",
                "--length",
                &length,
                "--out",
                "/dev/null",
            ]);
            json!({
                "mount_point": mount,
                "device_ref": d["device_ref"],
                "kind": d["kind"],
                "mode": d["mode"],
                "capacity": d["capacity"],
                "lun": lun(&d["wwn"]),
                "sha256": read["sha256"],
            })
        });
        vms.push(json!({
            "name": name,
            "endpoint": vm["endpoint"],
            "host": vm["host"],
            "power": vm["power"],
            "devices": sorted(devices.collect()),
        }));
        for point in lab.ok(&["points", name]).as_array().unwrap() {
            let snapshots = point["snapshots"].as_array().unwrap().iter().map(|s| {
                json!({
                    "mount_point": s["mount_point"],
                    "device_ref": s["device_ref"],
                    "device_kind": s["device_kind"],
                    "mode": s["mode"],
                    "lun": lun(&s["wwn"]),
                    "endpoint": s["endpoint"],
                    "expired": !s["expired_at"].is_null(),
                })
            });
            // Not `bytes_stored`: what a copy added to the store depends on what an earlier
            // attempt of the same step stored already, not on what the copy holds.
            let copies = point["copies"].as_array().unwrap().iter().map(|c| {
                json!({
                    "device_ref": c["device_ref"],
                    "store": c["store"],
                    "size": c["size"],
                    "bytes_read": c["bytes_read"],
                    "stored_total": c["stored_total"],
                })
            });
            points.push(json!({
                "vm": name,
                "snapshots": sorted(snapshots.collect()),
                "copies": sorted(copies.collect()),
            }));
        }
    }

    let endpoints: Vec<Value> = inventory
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let vms = e["vms"].as_array().into_iter().flatten().map(|vm| {
                let devices = vm["devices"].as_array().unwrap().iter().map(|d| {
                    let backing = &d["backing"];
                    json!({
                        "id": d["id"],
                        "mount_point": d["mount_point"],
                        "capacity": d["capacity"],
                        "virtual_disk": !backing["VirtualDisk"].is_null(),
                        "mode": backing["MappedLun"]["mode"],
                        "lun": lun(&backing["MappedLun"]["wwn"]),
                    })
                });
                json!({
                    "name": vm["name"],
                    "host": vm["host_id"],
                    "power": vm["power"],
                    "devices": sorted(devices.collect()),
                })
            });
            let luns = e["luns"].as_array().into_iter().flatten().map(|l| {
                json!({ "name": l["name"], "capacity": l["capacity"], "exposed_to": l["exposed_to"] })
            });
            // A disk snapshot's source is the disk's id; a LUN snapshot's is the LUN's WWN.
            let snapshots = e["snapshots"].as_array().into_iter().flatten().map(|s| {
                lun_name(&s["source"]).unwrap_or_else(|| s["source"].clone())
            });
            json!({
                "endpoint": e["endpoint"],
                "hosts": e["hosts"],
                "vms": sorted(vms.collect()),
                "luns": sorted(luns.collect()),
                "snapshots": sorted(snapshots.collect()),
            })
        })
        .collect();

    json!({
        "vms": sorted(vms),
        "points": sorted(points),
        "inventory": endpoints,
        "manifests": files(&lab.dir.path().join("copies/manifests")).len(),
        "volume_files": dirs.iter().map(|d| files(d).len()).collect::<Vec<_>>(),
    })
}
