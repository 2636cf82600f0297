//! The system under test: the adapter file loaded into a private, temporary data directory
//! (its own endpoint there), and for a hypervisor the storage array its mapped LUNs live on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::data_dir::DataDir;
use crate::engine::ports::Endpoints;
use crate::model::AdapterKind;

/// The endpoint name the adapter under test gets in the private data directory.
pub const SUBJECT_ENDPOINT: &str = "under-test";
/// The endpoint name an `--array FILE.wasm` gets there.
pub const ARRAY_ENDPOINT: &str = "array-under-test";

/// Why the suite cannot run at all (exit 2): the file is not a loadable adapter.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SubjectError(pub String);

/// Where a hypervisor's LUNs come from.
#[derive(Debug, Clone)]
pub enum ArraySource {
    /// An adapter file, loaded beside the one under test.
    File(PathBuf),
    /// An endpoint configured in the operator's data directory.
    Endpoint { data_dir: PathBuf, name: String },
}

impl ArraySource {
    /// `--array VALUE`: a file when it names one (or ends in `.wasm`), else an endpoint of
    /// the data directory (`data_dir`, needed only then).
    pub fn parse(value: &str, data_dir: anyhow::Result<PathBuf>) -> anyhow::Result<Self> {
        let path = Path::new(value);
        if path.is_file() || value.ends_with(".wasm") {
            return Ok(ArraySource::File(path.to_path_buf()));
        }
        let data_dir = data_dir.with_context(|| format!("--array {value} names an endpoint"))?;
        Ok(ArraySource::Endpoint {
            data_dir,
            name: value.to_string(),
        })
    }
}

/// One side of the test: endpoints and the endpoint name to open sessions on.
#[derive(Clone)]
pub struct Side {
    pub endpoints: Arc<dyn Endpoints>,
    pub name: String,
    /// What to call it in messages (file or endpoint).
    pub label: String,
}

/// The adapter under test, and the array beside it when there is one.
pub struct Subject {
    pub kind: AdapterKind,
    /// The file as given.
    pub file: PathBuf,
    /// Adapter vendor and version, as the adapter reports them.
    pub about: String,
    pub side: Side,
    pub array: Option<Side>,
    /// The data directories the sessions come from, kept open for the run.
    _private: Vec<DataDir>,
    _dir: tempfile::TempDir,
}

impl Subject {
    /// Loads `file` with `settings` into a fresh private data directory and makes it an
    /// endpoint; a file that does not load is a [`SubjectError`] with the runtime's reason.
    pub async fn load(
        file: &Path,
        settings: BTreeMap<String, String>,
        access: Access,
        array: Option<ArraySource>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tidemark-conformance-")
            .tempdir()
            .context("making a private data directory for the suite")?;
        let adapters = dir.path().join("adapters");
        std::fs::create_dir_all(&adapters)?;
        let wasm = std::fs::read(file)
            .map_err(|e| SubjectError(format!("cannot read {}: {e}", file.display())))?;
        std::fs::write(adapters.join(format!("{SUBJECT_ENDPOINT}.wasm")), &wasm)?;
        if let Some(ArraySource::File(array_file)) = &array {
            let bytes = std::fs::read(array_file).map_err(|e| {
                SubjectError(format!("cannot read --array {}: {e}", array_file.display()))
            })?;
            std::fs::write(adapters.join(format!("{ARRAY_ENDPOINT}.wasm")), bytes)?;
        }
        let context = DataDir::open(dir.path()).await?;
        // The runtime's reason, on one line and without the private file name.
        let refused = context.admin().rejected();
        let rejected = |name: &str| {
            refused
                .iter()
                .find(|r| r.name == name)
                .map(|r| &r.reason)
                .map(|why| {
                    let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
                    why.strip_prefix(&format!("adapter {name} "))
                        .map(str::to_string)
                        .unwrap_or(why)
                })
        };
        if let Some(why) = rejected(SUBJECT_ENDPOINT) {
            return Err(SubjectError(format!(
                "{} is not a loadable adapter: {why}",
                file.display()
            ))
            .into());
        }
        if let Some(why) = rejected(ARRAY_ENDPOINT) {
            return Err(SubjectError(format!("--array is not a loadable adapter: {why}")).into());
        }
        let loaded = context.admin().resolve(SUBJECT_ENDPOINT)?;
        let kind = loaded.kind;
        if kind == AdapterKind::Cloud {
            return Err(SubjectError(format!(
                "{} is a {kind} adapter; the suite checks hypervisors, storage arrays, DNS \
                 and machine adapters",
                file.display()
            ))
            .into());
        }
        let about = format!(
            "{} {} (contract {})",
            loaded.vendor, loaded.version, loaded.contract
        );
        add_endpoint(&context, SUBJECT_ENDPOINT, settings, access)?;
        let mut private = Vec::new();
        let array = match array {
            None => None,
            Some(_) if kind == AdapterKind::StorageArray => {
                return Err(SubjectError(
                    "--array is for testing a hypervisor; this adapter is a storage array".into(),
                )
                .into());
            }
            Some(_) if kind != AdapterKind::Hypervisor => {
                return Err(SubjectError(format!(
                    "--array is for testing a hypervisor; this adapter is a {kind} adapter"
                ))
                .into());
            }
            Some(ArraySource::File(array_file)) => {
                let array_kind = context.admin().resolve(ARRAY_ENDPOINT)?.kind;
                if array_kind != AdapterKind::StorageArray {
                    return Err(SubjectError(format!(
                        "--array {} is a {array_kind} adapter, not a storage array",
                        array_file.display()
                    ))
                    .into());
                }
                add_endpoint(&context, ARRAY_ENDPOINT, BTreeMap::new(), Access::default())?;
                Some(Side {
                    endpoints: context.engine.endpoints.clone(),
                    name: ARRAY_ENDPOINT.into(),
                    label: array_file.display().to_string(),
                })
            }
            Some(ArraySource::Endpoint { data_dir, name }) => {
                let theirs = DataDir::open(&data_dir).await?;
                if theirs.admin().endpoint_kind(&name) != Some(AdapterKind::StorageArray) {
                    return Err(SubjectError(format!(
                        "--array {name}: no storage-array endpoint of that name in {} \
                         (configured arrays: {})",
                        data_dir.display(),
                        theirs.arrays().join(", ")
                    ))
                    .into());
                }
                let side = Side {
                    endpoints: theirs.engine.endpoints.clone(),
                    name: name.clone(),
                    label: format!("endpoint {name}"),
                };
                private.push(theirs);
                Some(side)
            }
        };
        let side = Side {
            endpoints: context.engine.endpoints.clone(),
            name: SUBJECT_ENDPOINT.into(),
            label: file.display().to_string(),
        };
        private.push(context);
        Ok(Self {
            kind,
            file: file.to_path_buf(),
            about,
            side,
            array,
            _private: private,
            _dir: dir,
        })
    }
}

/// Records an endpoint in the private catalog and makes it usable, as `endpoint add` does.
/// What the adapter under test is granted beyond its data directory (which the suite always
/// grants), and the secrets it is given.
#[derive(Default)]
pub struct Access {
    /// `http=HOST[:PORT]` and `tcp=HOST:PORT`, as `--grant` takes them.
    pub grants: Vec<String>,
    /// Secret values by name.
    pub secrets: BTreeMap<String, String>,
}

/// Makes the endpoint `name` (its adapter has the same name) with `settings` and `access`.
fn add_endpoint(
    context: &DataDir,
    name: &str,
    settings: BTreeMap<String, String>,
    access: Access,
) -> anyhow::Result<()> {
    let mut grants = access.grants;
    grants.push("data-dir".into());
    let grants = crate::model::capabilities::Grants::parse(&grants).map_err(SubjectError)?;
    crate::engine::services::endpoints::add(
        &context.catalog,
        context.admin(),
        context.vault(),
        crate::engine::services::endpoints::NewEndpoint {
            name: name.into(),
            adapter: name.into(),
            settings,
            grants,
            secrets: access.secrets,
        },
    )
    .map_err(|e| SubjectError(format!("{e:#}")))?;
    Ok(())
}
