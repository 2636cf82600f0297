//! Plain-text tables, and the tracking table of the design: VM | device | mapped LUN |
//! mount point | snapshot ref | copy ref.

use serde_json::Value;

/// Renders rows under a header with columns padded to fit.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

/// The tracking table for one VM from its points as the API lists them: one row per device
/// per recovery point.
pub fn tracking(vm: &str, points: &Value) -> String {
    let text = |v: &Value| super::text_of(v);
    let mut rows = Vec::new();
    for point in points.as_array().into_iter().flatten() {
        for s in point["snapshots"].as_array().into_iter().flatten() {
            let copy = point["copies"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["device_ref"] == s["device_ref"]);
            rows.push(vec![
                vm.to_string(),
                text(&point["id"]),
                text(&s["device_kind"]),
                match s["wwn"].as_str() {
                    Some(w) => format!("{w} ({})", text(&s["mode"])),
                    None => "-".into(),
                },
                text(&s["mount_point"]),
                if s["expired_at"].is_null() {
                    format!("{}:{}", text(&s["endpoint"]), text(&s["snapshot"]))
                } else {
                    format!("(expired) {}", text(&s["snapshot"]))
                },
                copy.map_or_else(
                    || "-".into(),
                    |c| format!("{}:{}", text(&c["store"]), text(&c["copy"])),
                ),
            ]);
        }
    }
    render(
        &[
            "VM",
            "POINT",
            "DEVICE",
            "MAPPED LUN",
            "MOUNT",
            "SNAPSHOT REF",
            "COPY REF",
        ],
        &rows,
    )
}
