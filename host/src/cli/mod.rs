//! The command line: a client of the HTTP API (see [`connect`] for which server), plus
//! `serve` and `demo`. Each command returns an [`Outcome`] that is printed as text or as one
//! JSON document.

mod adapter;
mod args;
mod client;
mod connect;
mod copies;
pub mod demo;
mod dns;
mod endpoints;
mod inventory;
mod jobs;
pub mod lab;
mod machines;
mod progress_bar;
mod scaffold;
mod serve;
mod table;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
pub use args::{Cli, Command, CreateVm, OutputFormat};
pub use client::Api;
use connect::Connection;
use serde_json::{Value, json};

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
    // The conformance suite runs on a private data directory of its own and has its own
    // exit codes (2: not a loadable adapter).
    if let Command::Adapter(args::AdapterCommand::Test(test)) = cli.command {
        return adapter::test(test, cli.data_dir, format).await;
    }
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

/// A JSON value as table text: strings bare, null empty, anything else as JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    let json_output = cli.output == OutputFormat::Json;
    match cli.command {
        Command::Demo => return demo::run(cli.data_dir).await,
        Command::Adapter(args::AdapterCommand::New {
            name,
            kind,
            lang,
            sdk,
            dir,
        }) => {
            return scaffold::run(scaffold::NewAdapter {
                name,
                kind,
                lang,
                sdk,
                dir,
            });
        }
        Command::Serve {
            listen,
            config,
            print_config,
        } => return serve::run(cli.data_dir, listen, config, print_config).await,
        _ => {}
    }
    let conn = Connection::open(cli.server.as_deref(), cli.data_dir).await?;
    match cli.command {
        Command::Demo
        | Command::Serve { .. }
        | Command::Adapter(args::AdapterCommand::Test(_))
        | Command::Adapter(args::AdapterCommand::New { .. }) => {
            unreachable!("handled above")
        }
        Command::Lab(command) => lab::run(&conn, command).await,
        Command::Vm(args::VmCommand::List) => jobs::vm_list(&conn).await,
        Command::Vm(args::VmCommand::Show { vm }) => jobs::vm_show(&conn, &vm).await,
        Command::Snapshot { vm, dry_run } => jobs::snapshot(&conn, &vm, dry_run, json_output).await,
        Command::Points { vm } => jobs::points(&conn, &vm).await,
        Command::Revert { vm, point, dry_run } => {
            jobs::revert(&conn, &vm, &point, dry_run, json_output).await
        }
        Command::Jobs => jobs::jobs(&conn).await,
        Command::Job { id_or_action, id } => match (id_or_action.as_str(), id) {
            ("cancel", Some(id)) => jobs::cancel(&conn, &id).await,
            (id, None) => jobs::show(&conn, id).await,
            (other, Some(_)) => {
                anyhow::bail!("unknown job action '{other}' (use `job ID` or `job cancel ID`)")
            }
        },
        Command::Resume => jobs::resume(&conn).await,
        Command::Inventory {
            endpoint,
            refresh: false,
        } => inventory::inventory(&conn, endpoint.as_deref()).await,
        Command::Inventory {
            endpoint,
            refresh: true,
        } => inventory::refresh(&conn, endpoint.as_deref()).await,
        Command::Reconcile => inventory::reconcile(&conn).await,
        Command::Machine(command) => machines::run(&conn, command).await,
        Command::Dns(command) => dns::run(&conn, command).await,
        Command::Endpoint(command) => endpoints::run(&conn, command).await,
        Command::Adapters | Command::Adapter(args::AdapterCommand::List) => {
            endpoints::adapters(&conn).await
        }
        Command::Adapter(args::AdapterCommand::Add { file, name }) => {
            endpoints::add_adapter(&conn, &file, name.as_deref()).await
        }
        Command::Adapter(args::AdapterCommand::Remove { adapter }) => {
            endpoints::remove_adapter(&conn, &adapter).await
        }
        Command::Copy {
            vm,
            point,
            proxy_host,
            dry_run,
        } => {
            copies::copy(
                &conn,
                &vm,
                point.as_deref(),
                &proxy_host,
                dry_run,
                json_output,
            )
            .await
        }
        Command::Copies {
            store: Some(args::StoreCommand::Upgrade),
            ..
        } => copies::upkeep(&conn, "upgrade").await,
        Command::Copies {
            store: Some(args::StoreCommand::RebuildIndex),
            ..
        } => copies::upkeep(&conn, "rebuild-index").await,
        Command::Copies {
            store: Some(args::StoreCommand::Key(args::KeyCommand::Export { out })),
            ..
        } => copies::export_key(&conn, &out).await,
        Command::Catalog(args::CatalogCommand::Recover { from_copies: _ }) => {
            copies::recover_catalog(&conn).await
        }
        Command::Copies { vm, .. } => {
            copies::copies(&conn, vm.as_deref().unwrap_or_default()).await
        }
        Command::Restore {
            vm,
            point,
            host,
            as_name,
            array,
            device,
            dry_run,
        } => match (device, host) {
            (Some(mount), _) => {
                copies::restore_device(&conn, &vm, &point, &mount, dry_run, json_output).await
            }
            (None, Some(host)) => {
                let args = crate::engine::workflows::restore::RestoreArgs {
                    vm,
                    point,
                    host,
                    name: as_name,
                    array,
                };
                copies::restore(&conn, args, dry_run, json_output).await
            }
            (None, None) => anyhow::bail!("restore needs --host HOST (or --device MOUNT)"),
        },
        Command::Verify { point, all } => copies::verify(&conn, point.as_deref(), all).await,
        Command::Expire {
            keep_snapshots,
            keep_copies,
            keep_days,
            dry_run,
        } => {
            if keep_snapshots.is_none() && keep_copies.is_none() && keep_days.is_none() {
                anyhow::bail!(
                    "say what to keep: --keep-snapshots N, --keep-copies N and/or --keep-days D"
                );
            }
            let policy = json!({
                "keep_snapshots": keep_snapshots, "keep_copies": keep_copies,
                "keep_days": keep_days, "dry_run": dry_run,
            });
            copies::expire(&conn, policy).await
        }
        Command::Gc { repack_below } => copies::gc(&conn, repack_below).await,
        Command::Token(args::TokenCommand::Create { role, name }) => {
            tokens::create(&conn, &role, name).await
        }
        Command::Token(args::TokenCommand::List) => tokens::list_tokens(&conn).await,
    }
}
