//! What names and identifiers may look like, checked where they enter (CLI, API, adapter
//! answers) so bad input is refused with a message naming it.

/// A mount point: a drive letter (`C:`) or an absolute path (`/data`).
pub fn check_mount_point(mount: &str) -> Result<(), String> {
    let bytes = mount.as_bytes();
    let drive = bytes.len() == 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    let path = mount.starts_with('/')
        && mount.len() <= 255
        && !mount.split('/').skip(1).any(|c| c == "." || c == "..")
        && !mount.chars().any(char::is_control);
    if drive || path {
        Ok(())
    } else {
        Err(format!(
            "malformed mount point '{mount}': expected a drive like C: or an absolute path like /data"
        ))
    }
}

/// A name Tidemark gives things (VMs, endpoints): 1–64 of `A-Z a-z 0-9 . _ -`, starting
/// with a letter or digit, so it is safe in paths, URLs and shells.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
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
        Err(format!(
            "malformed {what} name '{name}': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

/// A LUN WWN as arrays report it: `naa.` and 16 or 32 hex digits.
pub fn check_wwn(wwn: &str) -> Result<(), String> {
    let ok = wwn.strip_prefix("naa.").is_some_and(|hex| {
        (hex.len() == 16 || hex.len() == 32) && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "malformed WWN '{wwn}': expected naa. followed by 16 or 32 hex digits"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points() {
        for good in ["C:", "d:", "/data", "/var/lib/db"] {
            assert!(check_mount_point(good).is_ok(), "{good}");
        }
        for bad in ["", "C", "CD:", "data", "/data/../etc", "1:", "/a\nb"] {
            assert!(
                check_mount_point(bad)
                    .unwrap_err()
                    .contains("malformed mount point"),
                "{bad}"
            );
        }
    }

    #[test]
    fn names() {
        assert!(check_name("VM", "app01").is_ok());
        assert!(check_name("VM", "db-1.prod_a").is_ok());
        for bad in ["", "-x", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name("VM", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wwns() {
        assert!(check_wwn("naa.60014059c3f1a6b1d2e3f4a5b6c7d8e9").is_ok());
        assert!(check_wwn("naa.600140591234abcd").is_ok());
        for bad in ["", "naa.", "naa.xyz", "60014059c3f1a6b1", "naa.6001405"] {
            assert!(check_wwn(bad).is_err(), "{bad}");
        }
    }
}
