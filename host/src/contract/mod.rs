//! The `tidemark:adapter` WIT contract as host-side Rust types and call bindings, one module
//! per released version (`wit/since_vX.Y.Z/`, frozen once released, as Zed freezes its
//! extension API). The host loads adapters of every version in [`SUPPORTED`]; only the
//! runtime uses these types and translates each version to the host's own (`crate::model`).
//!
//! Adding a version: freeze the WIT under `wit/since_vX.Y.Z/`, add its module here and to
//! [`Version`], name it in [`CURRENT`], and give the runtime its translation.

pub mod v0_2;
pub mod v0_3;

/// The contract version this host's SDK builds adapters against: the one place that names it.
pub const CURRENT: &str = "0.3.0";

/// Every contract version this host loads, oldest first.
pub const SUPPORTED: [Version; 2] = [Version::V0_2, Version::V0_3];

/// A contract version this host speaks (0.x versions are compatible within a minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// `tidemark:adapter@0.2.x`: hypervisor and storage-array only.
    V0_2,
    /// `tidemark:adapter@0.3.x`: hardware, secrets, cloud, dns and machine.
    V0_3,
}

impl Version {
    /// The version an adapter says it was built for (`0.3.0`, or the `@0.3.0` of an export
    /// name); `None` when this host does not speak it.
    pub fn parse(version: &str) -> Option<Version> {
        let mut parts = version.split('.');
        let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || patch.is_empty() || !patch.chars().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        match (major, minor) {
            ("0", "2") => Some(Version::V0_2),
            ("0", "3") => Some(Version::V0_3),
            _ => None,
        }
    }

    /// As `0.3.0`, for messages and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_2 => "0.2.0",
            Version::V0_3 => "0.3.0",
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The supported versions as operators read them: `0.2.0, 0.3.0`.
pub fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{CURRENT, Version, supported_list};

    #[test]
    fn supported_minors_parse_and_others_do_not() {
        assert_eq!(Version::parse("0.2.0"), Some(Version::V0_2));
        assert_eq!(Version::parse("0.2.7"), Some(Version::V0_2));
        assert_eq!(Version::parse("0.3.0"), Some(Version::V0_3));
        assert_eq!(Version::parse(CURRENT), Some(Version::V0_3));
        for unknown in [
            "0.1.0", "0.9.0", "1.3.0", "0.3", "0.3.x", "0.3.0.1", "garbage", "",
        ] {
            assert_eq!(Version::parse(unknown), None, "{unknown}");
        }
        assert_eq!(supported_list(), "0.2.0, 0.3.0");
    }

    /// The SDK (guest side, its own crate) names the version too: it must be this one, and
    /// bind the frozen directory of it.
    #[test]
    fn the_sdk_builds_adapters_for_the_current_contract() {
        let sdk = include_str!("../../../sdk/src/lib.rs");
        let bindings = include_str!("../../../sdk/src/bindings.rs");
        assert!(
            sdk.contains(&format!(
                "pub const CONTRACT_VERSION: &str = \"{CURRENT}\";"
            )),
            "sdk/src/lib.rs names another contract version than {CURRENT}"
        );
        assert!(
            bindings.contains(&format!("\"../wit/since_v{CURRENT}\"")),
            "sdk/src/bindings.rs does not bind wit/since_v{CURRENT}"
        );
        let frozen = format!("{}/../wit/since_v{CURRENT}", env!("CARGO_MANIFEST_DIR"));
        assert!(
            std::path::Path::new(&frozen).is_dir(),
            "{frozen} is missing"
        );
    }
}
