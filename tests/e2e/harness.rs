//! Runs the binary on a private data directory and reads its JSON.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use tidemark::cli::demo::pattern;

/// Device layout every test VM gets: a virtual disk, a physical LUN, a virtual LUN.
pub const DEVICES: &[&str] = &["C:", "D:", "/data"];
/// Regions written: unaligned, crossing 4 KiB blocks, and the very end.
pub const REGIONS: &[(u64, usize)] =
    &[(4093, 300_000), (10 << 20, 4096), ((64 << 20) - 5000, 5000)];

/// A data directory with the lab set up.
pub struct Lab {
    pub dir: tempfile::TempDir,
    /// The array endpoint [`Lab::create_vm`] puts LUNs on (default `lab-array`).
    pub array: String,
    /// Where VMs, restores and copies' proxy VMs go (default: the lab's hosts).
    pub place: Place,
}

/// Where a test's machines go: the lab's hypervisor and hosts, or a real one.
#[derive(Clone, Debug)]
pub struct Place {
    /// The hypervisor endpoint [`Lab::create_vm`] uses (`None`: the lab's).
    pub hypervisor: Option<String>,
    /// The host [`Lab::create_vm`] puts VMs on.
    pub host: String,
    /// The host a restore as a new VM goes to (another one where there are two).
    pub restore_host: String,
    /// The host copies make their proxy VM on (`None`: the workflow's default).
    pub proxy_host: Option<String>,
}

impl Default for Place {
    fn default() -> Self {
        Self {
            hypervisor: None,
            host: "esx-a".into(),
            restore_host: "esx-b".into(),
            proxy_host: None,
        }
    }
}

impl Place {
    /// `--proxy-host HOST` where copies need one.
    pub fn proxy_args(&self) -> Vec<String> {
        self.proxy_host
            .iter()
            .flat_map(|h| ["--proxy-host".to_string(), h.clone()])
            .collect()
    }
}

impl Lab {
    /// An empty data directory.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("tidemark-e2e-")
                .tempdir()
                .expect("tempdir"),
            array: "lab-array".into(),
            place: Place::default(),
        }
    }

    /// A copy of this data directory (`cp -a`), so many runs can start from one set-up.
    /// Only while no process uses it: nothing holds the catalog open between commands.
    pub fn copy(&self) -> Self {
        let mut copy = Self::empty();
        copy.array = self.array.clone();
        copy.place = self.place.clone();
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.dir.path().join("."))
            .arg(copy.dir.path())
            .status()
            .expect("running cp");
        assert!(status.success(), "cp -a {:?} failed", self.dir.path());
        copy
    }

    /// A lab with VM `app` (C: disk, D: physical LUN, /data virtual LUN) on esx-a.
    pub fn with_vm() -> Self {
        let lab = Self::empty();
        lab.ok(&["lab", "init"]);
        lab.create_vm("app");
        lab
    }

    /// Creates a VM with the standard devices on [`Lab::place`], its LUNs on
    /// [`Lab::array`].
    pub fn create_vm(&self, name: &str) -> Value {
        let mut args = vec![
            "lab",
            "vm",
            "create",
            name,
            "--host",
            &self.place.host,
            "--disk",
            "C:=64MiB",
            "--lun",
            "D:=64MiB:physical",
            "--lun",
            "/data=64MiB:virtual",
            "--array",
            &self.array,
        ];
        if let Some(hypervisor) = &self.place.hypervisor {
            args.extend(["--hypervisor", hypervisor]);
        }
        self.ok(&args)
    }

    /// Runs the binary with `--output json` and extra environment.
    pub fn run_env(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        command
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["--output", "json"])
            .args(args)
            .env_remove("TIDEMARK_CRASH_AFTER_STEP")
            .env_remove("TIDEMARK_FAIL_STEP")
            .env_remove("TIDEMARK_CRASH_IN_STEP")
            .env_remove("TIDEMARK_STEP_DELAY_MS")
            .env_remove("TIDEMARK_DATA_DIR")
            .env_remove("TIDEMARK_SERVER")
            .env_remove("TIDEMARK_TOKEN")
            .env_remove("TIDEMARK_CA_CERT")
            .env_remove("TIDEMARK_COPY_PASSPHRASE");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("running tidemark")
    }

    /// Runs the binary.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// Runs the binary, asserts success, returns its JSON.
    pub fn ok(&self, args: &[&str]) -> Value {
        self.ok_env(args, &[])
    }

    /// Runs the binary with extra environment, asserts success, returns its JSON.
    pub fn ok_env(&self, args: &[&str], env: &[(&str, String)]) -> Value {
        let out = self.run_env(args, env);
        assert!(
            out.status.success(),
            "tidemark {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        json(&out)
    }

    /// `adapter test ARGS…` (the file first): its exit code and report.
    pub fn adapter_test(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = vec!["adapter", "test"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        (out.status.code(), json(&out))
    }

    /// `endpoint test NAME`: whether it worked, its error (or, without an answer, what the
    /// command printed), and how long the command took.
    pub fn endpoint_test(&self, name: &str) -> (bool, String, std::time::Duration) {
        let started = std::time::Instant::now();
        let out = self.run(&["endpoint", "test", name]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let ok = out.status.success() && answer["ok"] == true;
        let error = answer["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| text + &String::from_utf8_lossy(&out.stderr));
        (ok, error, started.elapsed())
    }

    /// Runs a command: whether it succeeded, its stdout and stderr as one text, and how
    /// long it took (for fault tests, which bound the time an error may take).
    pub fn run_timed(&self, args: &[&str]) -> (bool, String, std::time::Duration) {
        let started = std::time::Instant::now();
        let out = self.run(args);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text, started.elapsed())
    }

    /// Tries to read a device's first 4 KiB (to nowhere), as [`Lab::run_timed`] reports.
    pub fn try_read_head(&self, vm: &str, mount: &str) -> (bool, String, std::time::Duration) {
        self.run_timed(&[
            "lab",
            "read",
            vm,
            mount,
            "--offset",
            "0",
            "--length",
            "4096",
            "--out",
            "/dev/null",
        ])
    }

    /// Writes `data` at `offset` of a device through the guest path.
    pub fn write(&self, vm: &str, mount: &str, offset: u64, data: &[u8]) {
        let file = self.dir.path().join("payload.bin");
        std::fs::write(&file, data).unwrap();
        self.ok(&[
            "lab",
            "write",
            vm,
            mount,
            "--offset",
            &offset.to_string(),
            "--file",
            file.to_str().unwrap(),
        ]);
    }

    /// Reads bytes of a device through the guest path.
    pub fn read(&self, vm: &str, mount: &str, offset: u64, length: usize) -> Vec<u8> {
        let file: PathBuf = self.dir.path().join("read.bin");
        self.ok(&[
            "lab",
            "read",
            vm,
            mount,
            "--offset",
            &offset.to_string(),
            "--length",
            &length.to_string(),
            "--out",
            file.to_str().unwrap(),
        ]);
        std::fs::read(file).unwrap()
    }

    /// Fills every region of every device with the generation's pattern.
    pub fn fill(&self, vm: &str, generation: u64) {
        for (d, mount) in DEVICES.iter().enumerate() {
            for (r, &(offset, len)) in REGIONS.iter().enumerate() {
                self.write(
                    vm,
                    mount,
                    offset,
                    &pattern(generation * 100 + d as u64 * 10 + r as u64, len),
                );
            }
        }
    }

    /// Asserts every region of every device holds the generation's pattern.
    pub fn assert_holds(&self, vm: &str, generation: u64) {
        for (d, mount) in DEVICES.iter().enumerate() {
            for (r, &(offset, len)) in REGIONS.iter().enumerate() {
                let expected = pattern(generation * 100 + d as u64 * 10 + r as u64, len);
                let got = self.read(vm, mount, offset, len);
                assert!(
                    got == expected,
                    "{vm} {mount} at {offset}: bytes differ from generation {generation}"
                );
            }
        }
    }

    /// Takes a snapshot; returns (recovery point, job id).
    pub fn snapshot(&self, vm: &str) -> (String, String) {
        let doc = self.ok(&["snapshot", vm]);
        (
            doc["recovery_point"].as_str().unwrap().to_string(),
            doc["job"].as_str().unwrap().to_string(),
        )
    }

    /// Asserts `reconcile` finds nothing.
    pub fn assert_reconciled(&self) {
        let out = self.run(&["reconcile"]);
        assert!(
            out.status.success(),
            "reconcile found differences: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(json(&out)["clean"], true);
    }

    /// The newest job.
    pub fn last_job(&self) -> Value {
        let jobs = self.ok(&["jobs"]);
        let id = jobs[0]["id"].as_str().unwrap().to_string();
        self.ok(&["job", &id])
    }
}

/// The device entry of `mount` in a copy's answer (`copy --output json`).
pub fn copied_device<'a>(copy: &'a Value, mount: &str) -> &'a Value {
    copy["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mount_point"] == mount)
        .unwrap_or_else(|| panic!("no {mount} in {copy}"))
}

/// The checks of an `adapter test` report that did not pass, as `id: outcome reason`.
pub fn unpassed(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["outcome"] != "passed")
        .map(|c| format!("{}: {} {}", c["id"], c["outcome"], c["reason"]))
        .collect()
}

/// Parses a command's stdout as JSON.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
