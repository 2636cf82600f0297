//! Sizes and durations as operators type them: `64MiB`, `1GiB`, `4096`, `30s`, `500ms`.

use std::time::Duration;

/// Parses a byte size: plain bytes or a number with `KiB`/`MiB`/`GiB`/`TiB` (also `K`, `M`,
/// `G`, `T` and the decimal `KB`/`MB`/`GB`/`TB`).
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "malformed size '{raw}': expected a number of bytes or e.g. 64MiB, 1GiB"
        ));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("malformed size '{raw}': number too large"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "malformed size '{raw}': unknown unit '{other}' (use B, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("malformed size '{raw}': too large"))
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("malformed duration '{raw}': expected e.g. 500ms, 30s, 5m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" | "" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        other => Err(format!(
            "malformed duration '{raw}': unknown unit '{other}' (use ms, s, m, h)"
        )),
    }
}

/// Formats bytes for people: `1 GiB`, `64 MiB`, `4096 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1KB"), Ok(1000));
    }

    #[test]
    fn malformed_sizes_are_refused_with_the_input_named() {
        for bad in ["", "MiB", "12XB", "-1", "1.5GiB", "99999999999999999999"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        assert!(parse_size("20000000TiB").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes_format_for_people() {
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(3 << 19), "1.5 MiB");
        assert_eq!(format_size(12), "12 B");
    }
}
