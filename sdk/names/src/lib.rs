//! What mount points, WWNs and the names Tidemark gives things may look like. The host
//! checks them where they enter (CLI, API, adapter answers) and the lab adapters check what
//! they are asked; one crate, so both refuse the same input in the same words. Pure
//! functions of their input: it builds for the host and for `wasm32-wasip2` alike.

/// What was malformed, with the input; its message says what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Neither a drive (`C:`) nor an absolute path (`/data`).
    #[error("malformed mount point '{0}': expected a drive like C: or an absolute path like /data")]
    MountPoint(String),
    /// Not `naa.` and 16 or 32 hex digits.
    #[error("malformed WWN '{0}': expected naa. followed by 16 or 32 hex digits")]
    Wwn(String),
    /// Not six colon-separated hex pairs.
    #[error("malformed MAC address '{0}': expected six hex pairs like 52:54:00:12:34:56")]
    Mac(String),
    /// A name (of a VM, endpoint, token, ...) that is not safe in paths, URLs and shells.
    #[error(
        "malformed {what} name '{name}': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    Name {
        /// What the name names, as the message says it (`VM`, `endpoint`).
        what: String,
        /// The name as given.
        name: String,
    },
}

/// A mount point: a drive letter (`C:`) or an absolute path (`/data`) of at most 255 bytes,
/// without `.` or `..` components or control characters.
pub fn check_mount_point(mount: &str) -> Result<(), Malformed> {
    let bytes = mount.as_bytes();
    let drive = bytes.len() == 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    let path = mount.starts_with('/')
        && mount.len() <= 255
        && !mount.split('/').any(|c| c == "." || c == "..")
        && !mount.chars().any(char::is_control);
    if drive || path {
        Ok(())
    } else {
        Err(Malformed::MountPoint(mount.to_string()))
    }
}

/// A LUN WWN as arrays report it: `naa.` and 16 or 32 hex digits (the NAA id by which real
/// systems match a mapped LUN to its array).
pub fn check_wwn(wwn: &str) -> Result<(), Malformed> {
    let ok = wwn.strip_prefix("naa.").is_some_and(|hex| {
        (hex.len() == 16 || hex.len() == 32) && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(Malformed::Wwn(wwn.to_string()))
    }
}

/// A MAC address: six hex pairs separated by colons (either case; Tidemark keeps them
/// lower case).
pub fn check_mac(mac: &str) -> Result<(), Malformed> {
    let pairs: Vec<&str> = mac.split(':').collect();
    let ok = pairs.len() == 6
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(Malformed::Mac(mac.to_string()))
    }
}

/// A name Tidemark gives things (VMs, endpoints, tokens): 1-64 of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit. `what` names it in the message.
pub fn check_name(what: &str, name: &str) -> Result<(), Malformed> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Malformed::Name {
            what: what.to_string(),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points() {
        for good in ["C:", "d:", "/", "/data", "/var/lib/db", "/a.b/..c"] {
            assert_eq!(check_mount_point(good), Ok(()), "{good}");
        }
        let long = format!("/{}", "x".repeat(255));
        for bad in [
            "",
            "C",
            "CD:",
            "data",
            "/data/../etc",
            "/./x",
            "1:",
            "/a\nb",
            &long,
        ] {
            let error = check_mount_point(bad).unwrap_err();
            assert_eq!(error, Malformed::MountPoint(bad.to_string()));
            assert!(
                error.to_string().starts_with("malformed mount point"),
                "{error}"
            );
        }
    }

    #[test]
    fn names() {
        assert_eq!(check_name("VM", "app01"), Ok(()));
        assert_eq!(check_name("VM", "db-1.prod_a"), Ok(()));
        assert_eq!(check_name("VM", &"x".repeat(64)), Ok(()));
        for bad in ["", "-x", ".x", "../x", "a/b", "a b", "é", &"x".repeat(65)] {
            let error = check_name("VM", bad).unwrap_err();
            assert!(
                error.to_string().starts_with("malformed VM name"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn wwns() {
        assert_eq!(check_wwn("naa.60014059c3f1a6b1d2e3f4a5b6c7d8e9"), Ok(()));
        assert_eq!(check_wwn("naa.600140591234ABCD"), Ok(()));
        for bad in [
            "",
            "naa.",
            "naa.xyz",
            "60014059c3f1a6b1",
            "naa.6001405",
            "naa.600140591234abcd0",
            "NAA.600140591234abcd",
        ] {
            assert_eq!(
                check_wwn(bad),
                Err(Malformed::Wwn(bad.to_string())),
                "{bad}"
            );
        }
    }
}
