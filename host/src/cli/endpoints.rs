//! `endpoint add|list` and `adapters`.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde_json::json;

use super::args::EndpointCommand;
use super::context::endpoint_spec;
use super::table::render;
use super::{Context, Outcome};
use crate::catalog::{EndpointRecord, now_ms};

pub fn run(ctx: &Context, command: EndpointCommand) -> anyhow::Result<Outcome> {
    match command {
        EndpointCommand::Add {
            name,
            adapter,
            settings,
        } => {
            let record = add(ctx, &name, &adapter, settings.into_iter().collect())?;
            Ok(Outcome::ok(
                serde_json::to_value(&record)?,
                format!("endpoint {name} added (adapter {adapter})"),
            ))
        }
        EndpointCommand::List => list(ctx),
    }
}

/// Adds an endpoint after checking its name, adapter and settings.
pub fn add(
    ctx: &Context,
    name: &str,
    adapter: &str,
    settings: BTreeMap<String, String>,
) -> anyhow::Result<EndpointRecord> {
    crate::names::check_name("endpoint", name).map_err(anyhow::Error::msg)?;
    ctx.runtime.adapter(adapter)?;
    let record = EndpointRecord {
        name: name.into(),
        adapter: adapter.into(),
        settings,
        created_at: now_ms(),
    };
    // Checks the reserved settings (timeout, memory) before anything is stored.
    endpoint_spec(&ctx.root, &ctx.data_dir, &record)?;
    ctx.catalog.add_endpoint(&record)?;
    Ok(record)
}

fn list(ctx: &Context) -> anyhow::Result<Outcome> {
    let endpoints = ctx.catalog.endpoints()?;
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for e in &endpoints {
        let kind = ctx
            .runtime
            .adapter(&e.adapter)
            .map(|a| a.kind.to_string())
            .unwrap_or_else(|_| "adapter missing".into());
        docs.push(
            json!({ "name": e.name, "adapter": e.adapter, "kind": kind, "settings": e.settings }),
        );
        let settings: Vec<String> = e.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(vec![
            e.name.clone(),
            e.adapter.clone(),
            kind,
            settings.join(" "),
        ]);
    }
    Ok(Outcome::ok(
        json!(docs),
        render(&["ENDPOINT", "ADAPTER", "KIND", "SETTINGS"], &rows),
    ))
}

pub fn adapters(ctx: &Context) -> anyhow::Result<Outcome> {
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for a in ctx.runtime.adapters() {
        docs.push(json!({
            "name": a.name, "kind": a.kind, "source": a.source, "contract": a.info.contract,
            "vendor": a.info.vendor, "version": a.info.version, "capabilities": a.info.capabilities,
        }));
        rows.push(vec![
            a.name.clone(),
            a.kind.to_string(),
            a.info.contract.clone(),
            a.info.vendor.clone(),
            a.info.version.clone(),
            a.source.clone(),
        ]);
    }
    let mut text = render(
        &["ADAPTER", "KIND", "CONTRACT", "VENDOR", "VERSION", "SOURCE"],
        &rows,
    );
    for (name, reason) in &ctx.runtime.rejected {
        docs.push(json!({ "name": name, "rejected": reason }));
        text.push_str(&format!("\nrejected {name}: {reason}"));
    }
    Ok(Outcome::ok(json!(docs), text))
}

/// An endpoint name that must exist.
pub fn known(ctx: &Context, name: &str) -> anyhow::Result<()> {
    if ctx.catalog.endpoints()?.iter().any(|e| e.name == name) {
        Ok(())
    } else {
        Err(anyhow!(
            "unknown endpoint '{name}' (see `tidemark endpoint list`)"
        ))
    }
}
