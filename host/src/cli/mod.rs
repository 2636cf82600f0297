//! The command line. Today every command runs embedded on a data directory; each returns an
//! [`Outcome`] that is printed as text or as one JSON document.

mod args;
mod context;
mod copies;
pub mod demo;
pub(crate) mod endpoints;
mod inventory;
mod jobs;
pub mod lab;
mod progress_bar;
mod serve;
mod table;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
pub use args::{Cli, Command, CreateVm, OutputFormat};
pub use context::Context;

/// What a command produced: a JSON document, its text rendering, and whether it succeeded
/// (a failed job, differences found or a failed comparison exit 1).
pub struct Outcome {
    pub json: serde_json::Value,
    pub text: String,
    pub ok: bool,
}

impl Outcome {
    /// A successful outcome.
    pub fn ok(json: serde_json::Value, text: impl Into<String>) -> Self {
        Self {
            json,
            text: text.into(),
            ok: true,
        }
    }
}

/// The data directory: `--data-dir`, `$TIDEMARK_DATA_DIR`, else `$XDG_DATA_HOME/tidemark`.
pub fn default_data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir),
        None => dirs::data_dir().map(|d| d.join("tidemark")).context(
            "no --data-dir given, TIDEMARK_DATA_DIR unset, and no XDG data directory known",
        ),
    }
}

/// Runs one command line; returns the process exit code (0 ok, 1 failure; clap exits 2 for
/// usage errors before this runs).
pub async fn run(cli: Cli) -> ExitCode {
    let format = cli.output;
    match dispatch(cli).await {
        Ok(outcome) => {
            match format {
                OutputFormat::Json => {
                    print_out(&serde_json::to_string_pretty(&outcome.json).unwrap_or_default())
                }
                OutputFormat::Text => {
                    if !outcome.text.is_empty() {
                        print_out(outcome.text.trim_end());
                    }
                }
            }
            if outcome.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            let message = format!("{error:#}");
            if format == OutputFormat::Json {
                print_out(&serde_json::json!({ "error": message }).to_string());
            }
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Prints a result line; a closed pipe (`tidemark jobs | head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

async fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Demo => return demo::run(cli.data_dir).await,
        Command::Serve {
            listen,
            config,
            print_config,
        } => return serve::run(cli.data_dir, listen, config, print_config).await,
        _ => {}
    }
    let data_dir = default_data_dir(cli.data_dir)?;
    let mut ctx = Context::open(&data_dir).await?;
    ctx.engine
        .set_progress(progress_bar::for_output(cli.output == OutputFormat::Json));
    // Commands that write copies create the store on first use; the others only open an
    // existing one (a missing store then shows up as the command's clear error).
    match &cli.command {
        Command::Copy { .. } => ctx.attach_copy_store(true)?,
        Command::Restore { .. } | Command::Verify { .. } | Command::Gc => {
            ctx.attach_copy_store(false)?
        }
        Command::Expire {
            keep_copies,
            keep_days,
            ..
        } if keep_copies.is_some() || keep_days.is_some() => ctx.attach_copy_store(false)?,
        Command::Resume => {
            if let Err(e) = ctx.attach_copy_store(false) {
                tracing::debug!("resuming without a copy store: {e:#}");
            }
        }
        _ => {}
    }
    match cli.command {
        Command::Demo | Command::Serve { .. } => unreachable!("handled above"),
        Command::Lab(command) => lab::run(&ctx, command).await,
        Command::Vm(args::VmCommand::List) => jobs::vm_list(&ctx),
        Command::Vm(args::VmCommand::Show { vm }) => jobs::vm_show(&ctx, &vm),
        Command::Snapshot { vm } => jobs::snapshot(&ctx, &vm).await,
        Command::Points { vm } => jobs::points(&ctx, &vm),
        Command::Revert { vm, point } => jobs::revert(&ctx, &vm, &point).await,
        Command::Jobs => jobs::list(&ctx),
        Command::Job { id_or_action, id } => match (id_or_action.as_str(), id) {
            ("cancel", Some(id)) => jobs::cancel(&ctx, &id),
            (id, None) => jobs::show(&ctx, id),
            (other, Some(_)) => {
                anyhow::bail!("unknown job action '{other}' (use `job ID` or `job cancel ID`)")
            }
        },
        Command::Resume => jobs::resume(&ctx).await,
        Command::Inventory { endpoint } => inventory::inventory(&ctx, endpoint.as_deref()).await,
        Command::Reconcile => inventory::reconcile(&ctx).await,
        Command::Endpoint(command) => endpoints::run(&ctx, command),
        Command::Adapters => endpoints::adapters(&ctx),
        Command::Copy {
            vm,
            point,
            proxy_host,
        } => copies::copy(&ctx, &vm, point.as_deref(), &proxy_host).await,
        Command::Copies { vm } => copies::copies(&ctx, &vm),
        Command::Restore {
            vm,
            point,
            host,
            as_name,
            array,
            device,
        } => match (device, host) {
            (Some(mount), _) => copies::restore_device(&ctx, &vm, &point, &mount).await,
            (None, Some(host)) => {
                copies::restore(
                    &ctx,
                    &vm,
                    &point,
                    &host,
                    as_name.as_deref(),
                    array.as_deref(),
                )
                .await
            }
            (None, None) => anyhow::bail!("restore needs --host HOST (or --device MOUNT)"),
        },
        Command::Verify { point, all } => copies::verify(&ctx, point.as_deref(), all),
        Command::Expire {
            keep_snapshots,
            keep_copies,
            keep_days,
            dry_run,
        } => {
            let policy = crate::engine::retention::Policy {
                keep_snapshots,
                keep_copies,
                keep_days,
            };
            copies::expire(&ctx, policy, dry_run).await
        }
        Command::Gc => copies::gc(&ctx),
        Command::Token(args::TokenCommand::Create { role, name }) => {
            tokens::create(&ctx, &role, name)
        }
        Command::Token(args::TokenCommand::List) => tokens::list(&ctx),
    }
}
