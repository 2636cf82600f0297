//! The loaded adapters by name, each name with its versions side by side: new sessions take
//! the newest unless an endpoint pins one (`NAME@VERSION`), and a session already open keeps
//! the version it was opened on (it holds its adapter).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::loader::LoadedAdapter;

/// Why an adapter could not be added, found or removed; callers turn each into a refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No adapter (or no such version of it) is loaded.
    #[error("unknown adapter '{reference}' (loaded: {loaded})")]
    Unknown { reference: String, loaded: String },
    /// The same name and version is loaded with other bytes.
    #[error(
        "adapter {name} version {version} is loaded already with other contents (sha256 {loaded}); give the new build a new version"
    )]
    VersionTaken {
        name: String,
        version: String,
        loaded: String,
    },
    /// A name of the adapters shipped in the binary.
    #[error("adapter {0} ships with Tidemark and cannot be replaced or removed")]
    Embedded(String),
}

/// Adapter versions ordered as releases: numeric parts compared as numbers
/// (`0.10.0` after `0.9.1`), a pre-release (`1.2.0-rc1`) before its release, build metadata
/// (`+…`) ignored, anything else as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let split = |v: &'_ str| -> (String, Option<String>) {
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((core, pre)) => (core.to_string(), Some(pre.to_string())),
            None => (v.to_string(), None),
        }
    };
    let ((core_a, pre_a), (core_b, pre_b)) = (split(a), split(b));
    let order = compare_parts(&core_a, &core_b);
    if order != Ordering::Equal {
        return order;
    }
    match (pre_a, pre_b) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(x), Some(y)) => compare_parts(&x, &y),
    }
}

fn compare_parts(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<Result<u64, String>> {
        v.split('.')
            .map(|p| p.parse::<u64>().map_err(|_| p.to_string()))
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let order = match (x, y) {
            (Ok(x), Ok(y)) => x.cmp(y),
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            (Err(x), Err(y)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Splits `NAME@VERSION` (a pinned reference) from a bare `NAME`.
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (reference, None),
    }
}

/// Adapters by name, versions oldest first.
#[derive(Default)]
pub struct Registry {
    by_name: BTreeMap<String, Vec<Arc<LoadedAdapter>>>,
}

/// What [`Registry::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A version not loaded before.
    New,
    /// The same bytes were loaded already: nothing changed.
    Same,
}

impl Registry {
    /// The adapter `NAME` (its newest version) or `NAME@VERSION` refers to.
    pub fn resolve(&self, reference: &str) -> Result<Arc<LoadedAdapter>, RegistryError> {
        let (name, version) = split_reference(reference);
        let found = self.by_name.get(name).and_then(|versions| match version {
            None => versions.last().cloned(),
            Some(v) => versions.iter().find(|a| a.info.version == v).cloned(),
        });
        found.ok_or_else(|| RegistryError::Unknown {
            reference: reference.to_string(),
            loaded: self.listing(),
        })
    }

    /// Like [`resolve`](Self::resolve), but a bare `NAME` means the newest version loaded
    /// at or before `as_of_ms` (the newest overall if none was).
    pub fn resolve_as_of(
        &self,
        reference: &str,
        as_of_ms: i64,
    ) -> Result<Arc<LoadedAdapter>, RegistryError> {
        let (name, version) = split_reference(reference);
        if version.is_none()
            && let Some(versions) = self.by_name.get(name)
            && let Some(then) = versions.iter().rev().find(|a| a.loaded_at_ms <= as_of_ms)
        {
            return Ok(then.clone());
        }
        self.resolve(reference)
    }

    /// What [`insert`](Self::insert) would answer, changing nothing.
    pub fn check_insert(&self, adapter: &LoadedAdapter) -> Result<Inserted, RegistryError> {
        let Some(versions) = self.by_name.get(&adapter.name) else {
            return Ok(Inserted::New);
        };
        if let Some(loaded) = versions
            .iter()
            .find(|a| a.info.version == adapter.info.version)
        {
            if loaded.sha256 == adapter.sha256 {
                return Ok(Inserted::Same);
            }
            return Err(RegistryError::VersionTaken {
                name: adapter.name.clone(),
                version: adapter.info.version.clone(),
                loaded: loaded.sha256.clone(),
            });
        }
        if versions.iter().any(|a| a.source == "embedded") {
            return Err(RegistryError::Embedded(adapter.name.clone()));
        }
        Ok(Inserted::New)
    }

    /// Adds a version; the same name, version and bytes again is [`Inserted::Same`].
    pub fn insert(&mut self, adapter: Arc<LoadedAdapter>) -> Result<Inserted, RegistryError> {
        if self.check_insert(&adapter)? == Inserted::Same {
            return Ok(Inserted::Same);
        }
        let versions = self.by_name.entry(adapter.name.clone()).or_default();
        versions.push(adapter);
        versions.sort_by(|a, b| compare_versions(&a.info.version, &b.info.version));
        Ok(Inserted::New)
    }

    /// Takes `name` (every version, or the one given) out; returns what was taken.
    pub fn remove(
        &mut self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<Arc<LoadedAdapter>>, RegistryError> {
        let reference = match version {
            Some(v) => format!("{name}@{v}"),
            None => name.to_string(),
        };
        self.resolve(&reference)?;
        let versions = self.by_name.get_mut(name).expect("resolved above");
        if versions.iter().any(|a| a.source == "embedded") {
            return Err(RegistryError::Embedded(name.to_string()));
        }
        let (taken, kept): (Vec<_>, Vec<_>) = versions
            .drain(..)
            .partition(|a| version.is_none_or(|v| a.info.version == v));
        if kept.is_empty() {
            self.by_name.remove(name);
        } else {
            *versions = kept;
        }
        Ok(taken)
    }

    /// Every loaded version of every adapter, by name then version.
    pub fn all(&self) -> Vec<Arc<LoadedAdapter>> {
        self.by_name.values().flatten().cloned().collect()
    }

    fn listing(&self) -> String {
        let names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{compare_versions, split_reference};
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn versions_order_as_releases() {
        assert_eq!(compare_versions("0.10.0", "0.9.1"), Greater);
        assert_eq!(compare_versions("1.2.0", "1.2.0"), Equal);
        assert_eq!(compare_versions("1.2", "1.2.0"), Less);
        assert_eq!(compare_versions("1.2.0-rc1", "1.2.0"), Less);
        assert_eq!(compare_versions("1.2.0-rc.2", "1.2.0-rc.10"), Less);
        assert_eq!(compare_versions("1.2.0+build5", "1.2.0"), Equal);
        assert_eq!(compare_versions("2.0.0", "10.0.0"), Less);
    }

    #[test]
    fn references_pin_a_version_or_take_the_newest() {
        assert_eq!(split_reference("lab-array"), ("lab-array", None));
        assert_eq!(split_reference("acme@1.2.0"), ("acme", Some("1.2.0")));
    }
}
