//! `tidemark adapter test FILE.wasm`: the conformance suite, run in this process on a
//! private data directory (not through the API: it tests a file, not a configured endpoint).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::args::AdapterTest;
use super::{OutputFormat, print_out};
use crate::conformance::{self, ArraySource, Subject, SubjectError};

/// Runs (or lists) the suite; exit 0 all passed or skipped, 1 a check failed (or the run
/// could not finish), 2 the file is not a loadable adapter.
pub async fn test(args: AdapterTest, data_dir: Option<PathBuf>, format: OutputFormat) -> ExitCode {
    if args.list {
        return list(format);
    }
    let Some(file) = args.file else {
        eprintln!("error: adapter test needs FILE.wasm (or --list)");
        return ExitCode::from(2);
    };
    let failed = |message: String, code: u8| {
        if format == OutputFormat::Json {
            print_out(&json!({ "error": message }).to_string());
        }
        eprintln!("error: {message}");
        ExitCode::from(code)
    };
    let array = match args
        .array
        .as_deref()
        .map(|a| ArraySource::parse(a, super::default_data_dir(data_dir)))
    {
        None => None,
        Some(Ok(source)) => Some(source),
        Some(Err(e)) => return failed(format!("{e:#}"), 2),
    };
    let settings = args.settings.into_iter().collect();
    let access = conformance::Access {
        grants: args.grants,
        secrets: args.secrets.into_iter().collect(),
    };
    let subject = match Subject::load(&file, settings, access, array).await {
        Ok(subject) => subject,
        Err(e) if e.is::<SubjectError>() => return failed(format!("{e:#}"), 2),
        Err(e) => return failed(format!("{e:#}"), 1),
    };
    if format == OutputFormat::Text {
        print_out(&format!(
            "testing {} ({}, {}){}",
            file.display(),
            subject.kind,
            subject.about,
            subject
                .array
                .as_ref()
                .map(|a| format!(" with array {}", a.label))
                .unwrap_or_default()
        ));
    }
    let report = conformance::run(&subject, &mut |outcome| {
        if format == OutputFormat::Text {
            print_out(&outcome.line());
        }
    })
    .await;
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, conformance::junit_xml(&report))
    {
        return failed(format!("writing JUnit XML to {}: {e}", path.display()), 1);
    }
    match format {
        OutputFormat::Json => {
            print_out(&serde_json::to_string_pretty(&report.json()).unwrap_or_default())
        }
        OutputFormat::Text => print_out(&report.summary()),
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--list`: every check, one line each (id, kind, tags, claim), or a JSON array.
fn list(format: OutputFormat) -> ExitCode {
    let checks = conformance::all_checks();
    match format {
        OutputFormat::Json => {
            let docs: Vec<_> = checks
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id, "kind": c.kind.to_string(),
                        "tags": c.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                        "claim": c.claim,
                        "needs_array": c.needs == conformance::Needs::Array,
                    })
                })
                .collect();
            print_out(&serde_json::to_string_pretty(&docs).unwrap_or_default());
        }
        OutputFormat::Text => {
            let width = checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
            for c in &checks {
                let tags: Vec<_> = c.tags.iter().map(|t| t.as_str()).collect();
                print_out(&format!(
                    "{:width$}  [{}]  {}",
                    c.id,
                    tags.join(","),
                    c.claim
                ));
            }
        }
    }
    ExitCode::SUCCESS
}
