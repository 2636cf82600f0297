//! Makes sure the toolchain can build for `wasm32-wasip2` before any adapter is built.
//!
//! Why: on a machine whose pinned toolchain is already installed, rustup does not add the
//! `targets` of `rust-toolchain.toml`, and the nested adapter build would then die minutes
//! later with "can't find crate for std". This probe looks first, adds the target once with
//! a time limit, and otherwise stops at once saying which command to run. It lives in its own
//! file so that the host crate's unit tests can drive it on a temporary sysroot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The target every bundled adapter is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// How long `rustup target add` may take before the build gives up on it.
pub const RUSTUP_LIMIT: Duration = Duration::from_secs(120);

/// Where a sysroot keeps the standard library of `target`.
pub fn target_dir_in(sysroot: &Path, target: &str) -> PathBuf {
    sysroot.join("lib").join("rustlib").join(target)
}

/// The sysroot of the rustc at `rustc`.
pub fn sysroot_of(rustc: &Path) -> Result<PathBuf, String> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("running `{} --print sysroot`: {e}", rustc.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} --print sysroot` failed: {}",
            rustc.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The first `rustup` on `path` (a `PATH`-style list), if any.
pub fn find_rustup(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let path = path?;
    std::env::split_paths(path)
        .map(|dir| dir.join("rustup"))
        .find(|candidate| candidate.is_file())
}

/// Checks that `sysroot` holds `target`; if not, runs `rustup target add TARGET` (given the
/// rustup found, within `limit`) and checks again. The error names the command to run by
/// hand and what went wrong.
pub fn ensure_target(
    sysroot: &Path,
    target: &str,
    rustup: Option<&Path>,
    limit: Duration,
) -> Result<(), String> {
    let wanted = target_dir_in(sysroot, target);
    if wanted.is_dir() {
        return Ok(());
    }
    let by_hand = format!("rustup target add {target}");
    let fail = |why: String| {
        Err(format!(
            "the Rust target {target} is not installed (no {}), and it could not be added: {why}\n\
             run `{by_hand}` and build again",
            wanted.display()
        ))
    };
    let Some(rustup) = rustup else {
        return fail("rustup was not found on PATH".to_string());
    };
    let mut child = match Command::new(rustup)
        .args(["target", "add", target])
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return fail(format!("starting {}: {e}", rustup.display())),
    };
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return fail(format!(
                    "`{by_hand}` did not finish within {} s",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return fail(format!("waiting for `{by_hand}`: {e}")),
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    if !status.success() {
        return fail(format!("`{by_hand}` failed ({status}): {}", stderr.trim()));
    }
    if !wanted.is_dir() {
        return fail(format!(
            "`{by_hand}` succeeded but {} is still missing (is another toolchain active?)",
            wanted.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake_rustup(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("rustup");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn sysroot_of_the_real_rustc_exists() {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        assert!(sysroot_of(Path::new(&rustc)).unwrap().join("lib").is_dir());
    }

    #[test]
    fn present_target_needs_nothing() {
        let sysroot = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(target_dir_in(sysroot.path(), WASM_TARGET)).unwrap();
        assert_eq!(
            ensure_target(sysroot.path(), WASM_TARGET, None, RUSTUP_LIMIT),
            Ok(())
        );
    }

    #[test]
    fn missing_target_without_rustup_stops_naming_the_command() {
        let sysroot = tempfile::tempdir().unwrap();
        let error = ensure_target(sysroot.path(), WASM_TARGET, None, RUSTUP_LIMIT).unwrap_err();
        assert!(error.contains("rustup target add wasm32-wasip2"), "{error}");
        assert!(error.contains("rustup was not found"), "{error}");
    }

    #[test]
    fn missing_target_is_added_by_rustup() {
        let sysroot = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let target = target_dir_in(sysroot.path(), WASM_TARGET);
        let rustup = fake_rustup(
            bin.path(),
            &format!(
                "[ \"$1 $2 $3\" = \"target add {WASM_TARGET}\" ] || exit 3\nmkdir -p '{}'",
                target.display()
            ),
        );
        let found = find_rustup(Some(bin.path().as_os_str())).unwrap();
        assert_eq!(found, rustup);
        assert_eq!(
            ensure_target(sysroot.path(), WASM_TARGET, Some(&found), RUSTUP_LIMIT),
            Ok(())
        );
        assert!(target.is_dir());
    }

    #[test]
    fn failing_rustup_is_reported_with_its_error() {
        let sysroot = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let rustup = fake_rustup(bin.path(), "echo 'error: no network' >&2; exit 1");
        let error =
            ensure_target(sysroot.path(), WASM_TARGET, Some(&rustup), RUSTUP_LIMIT).unwrap_err();
        assert!(error.contains("no network"), "{error}");
        assert!(error.contains("run `rustup target add wasm32-wasip2`"), "{error}");
    }

    #[test]
    fn hanging_rustup_is_stopped_at_the_limit() {
        let sysroot = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let rustup = fake_rustup(bin.path(), "exec sleep 30");
        let started = Instant::now();
        let error = ensure_target(
            sysroot.path(),
            WASM_TARGET,
            Some(&rustup),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(error.contains("did not finish within"), "{error}");
    }

    #[test]
    fn rustup_that_adds_nothing_is_caught() {
        let sysroot = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let rustup = fake_rustup(bin.path(), "exit 0");
        let error =
            ensure_target(sysroot.path(), WASM_TARGET, Some(&rustup), RUSTUP_LIMIT).unwrap_err();
        assert!(error.contains("is still missing"), "{error}");
    }
}
