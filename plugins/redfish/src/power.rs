//! Power through `ComputerSystem.Reset`, then polling `PowerState` until the machine is in
//! the asked state: BMCs answer the action at once and change state later (sushy-tools 1 to
//! 11 s later, at random). A machine already there is left alone, so repeating is harmless.

use serde_json::json;
use tidemark_sdk::{AdapterError, AdapterResult};

use crate::client::{Client, Level};
use crate::model::{ActionInfo, ComputerSystem};
use crate::system::{self, named};

/// Pause between two polls of `PowerState`.
pub const POLL_MS: u64 = 500;
/// After a restart, an `On` seen this soon (with no other state seen first) may be from
/// before the restart took effect; it only counts once this has passed.
pub const RESTART_SETTLE_MS: u64 = 3_000;

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Powered on.
    On,
    /// Powered off.
    Off {
        /// Cut power at once (`ForceOff`), else ask the OS to shut down (`GracefulShutdown`).
        force: bool,
    },
    /// Restarted, and on at the end.
    Reset,
}

/// The first of `preferred` the BMC allows (`allowed`; every one when it does not say).
pub fn choose(allowed: Option<&[String]>, preferred: &[&str]) -> Option<String> {
    match allowed {
        None => preferred.first().map(|s| s.to_string()),
        Some(allowed) => preferred
            .iter()
            .find(|p| allowed.iter().any(|a| a == *p))
            .map(|s| s.to_string()),
    }
}

/// Carries out `goal` on machine `id` and returns once the BMC reports its end state, or a
/// `transient` error naming the state it is stuck in when the wait runs out.
pub fn act(client: &Client, id: &str, goal: Goal) -> AdapterResult<()> {
    let started = client.io.now_ms();
    let deadline = started + client.settings.power_wait_ms;
    let (path, sys) = system::get(client, id)?;
    let state = sys.power_state.clone().unwrap_or_else(|| "unknown".into());
    let (want, preferred, restart): (&str, &[&str], bool) = match goal {
        Goal::On if state == "On" => return Ok(()),
        Goal::Off { .. } if state == "Off" => return Ok(()),
        Goal::On => ("On", &["On", "ForceOn"], false),
        Goal::Off { force: true } => ("Off", &["ForceOff"], false),
        Goal::Off { force: false } => ("Off", &["GracefulShutdown"], false),
        // A machine that is off is restarted by powering it on.
        Goal::Reset if state == "Off" => ("On", &["On", "ForceOn"], false),
        Goal::Reset => (
            "On",
            &["ForceRestart", "GracefulRestart", "PowerCycle"],
            true,
        ),
    };
    let action = sys.actions.as_ref().and_then(|a| a.reset.as_ref());
    let target = action.and_then(|a| a.target.clone()).ok_or_else(|| {
        AdapterError::Unsupported(format!(
            "{}: the BMC advertises no ComputerSystem.Reset action",
            named(id)
        ))
    })?;
    let allowed = allowed_types(client, id, &sys)?;
    let reset_type = choose(allowed.as_deref(), preferred).ok_or_else(|| {
        AdapterError::Unsupported(format!(
            "{}: the BMC allows reset types {} but none of {}",
            named(id),
            allowed.as_deref().unwrap_or_default().join(", "),
            preferred.join(", ")
        ))
    })?;
    client.post(
        &target,
        &json!({ "ResetType": reset_type }),
        &format!("ResetType {reset_type} on {}", named(id)),
    )?;
    client.io.log(
        Level::Debug,
        &format!(
            "{}: ResetType {reset_type} sent (was {state}); waiting for {want}",
            named(id)
        ),
    );
    wait_for(client, id, &path, want, restart, &reset_type, deadline)
}

/// The reset types the BMC allows: inline, else from the action's `ActionInfo`.
fn allowed_types(
    client: &Client,
    id: &str,
    sys: &ComputerSystem,
) -> AdapterResult<Option<Vec<String>>> {
    let Some(action) = sys.actions.as_ref().and_then(|a| a.reset.as_ref()) else {
        return Ok(None);
    };
    if let Some(inline) = &action.allowed_reset_types {
        return Ok(Some(inline.clone()));
    }
    let Some(info) = &action.action_info else {
        return Ok(None);
    };
    let what = format!("the reset action info of {}", named(id));
    Ok(client
        .get_optional::<ActionInfo>(info, &what)?
        .and_then(|i| {
            i.parameters
                .into_iter()
                .find(|p| p.name.as_deref() == Some("ResetType"))
        })
        .and_then(|p| p.allowable))
}

/// Polls the machine at `path` until it reports `want` or `deadline` passes. A busy BMC
/// (`transient`) is polled again; any other error ends the wait.
fn wait_for(
    client: &Client,
    id: &str,
    path: &str,
    want: &str,
    restart: bool,
    reset_type: &str,
    deadline: u64,
) -> AdapterResult<()> {
    let io = client.io;
    let sent = io.now_ms();
    let mut last = String::from("unknown");
    let mut saw_other = false;
    loop {
        let now = io.now_ms();
        if now >= deadline {
            let waited = now.saturating_sub(sent).div_ceil(1000);
            return Err(AdapterError::Transient(format!(
                "{} is still {last} {waited} s after ResetType {reset_type}, not {want}: the BMC did not reach it in time",
                named(id)
            )));
        }
        io.sleep_ms(POLL_MS.min(deadline - now));
        match system::reread(client, path, id) {
            Ok(sys) => {
                last = sys.power_state.unwrap_or_else(|| "unknown".into());
                if last != want {
                    saw_other = true;
                } else if !restart
                    || saw_other
                    || io.now_ms().saturating_sub(sent) >= RESTART_SETTLE_MS
                {
                    return Ok(());
                }
            }
            Err(AdapterError::Transient(e)) => {
                io.log(Level::Debug, &format!("polling {}: {e}", named(id)));
            }
            Err(e) => return Err(e),
        }
    }
}
