//! Names as Route 53 writes them (the shared DNS rules, normalising, values and zone choice,
//! are `dns-names`'s).

/// `name` with Route 53's escapes decoded: the API writes every character but `a-z`, `0-9`,
/// `-` and `_` as `\` and three octal digits (`\052` for the `*` of a wildcard). Anything
/// that is not such an escape is kept as written.
pub fn decode(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match escape.map(|d| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'))) {
            Some(code) if code <= 0xff => {
                out.push(code as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes_are_decoded_and_the_rest_kept() {
        assert_eq!(decode(r"\052.tidemark.test."), "*.tidemark.test.");
        assert_eq!(decode(r"a\100b.example."), "a@b.example.");
        assert_eq!(decode("db.tidemark.test."), "db.tidemark.test.");
        // Not escapes: too short, not octal, out of a byte's range.
        assert_eq!(decode(r"a\05"), r"a\05");
        assert_eq!(decode(r"a\089"), r"a\089");
        assert_eq!(decode(r"\777x"), r"\777x");
        assert_eq!(decode(r"\\052"), r"\*");
    }
}
