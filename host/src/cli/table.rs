//! Plain-text tables, and the tracking table of the design: VM | device | mapped LUN |
//! mount point | snapshot ref | copy ref.

use crate::catalog::Catalog;

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

/// The tracking table for one VM: one row per device per recovery point.
pub fn tracking(catalog: &Catalog, vm: &str) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    for point in catalog.points(vm)? {
        for s in &point.snapshots {
            rows.push(vec![
                vm.to_string(),
                point.id.clone(),
                s.device_kind.clone(),
                s.wwn
                    .as_ref()
                    .map(|w| format!("{w} ({})", s.mode.clone().unwrap_or_default()))
                    .unwrap_or_else(|| "-".into()),
                s.mount_point.clone(),
                match s.expired_at {
                    None => format!("{}:{}", s.endpoint, s.snapshot),
                    Some(_) => format!("(expired) {}", s.snapshot),
                },
                point
                    .copy_of(&s.device_ref)
                    .map_or_else(|| "-".into(), |c| format!("{}:{}", c.store, c.copy)),
            ]);
        }
    }
    Ok(render(
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
    ))
}
