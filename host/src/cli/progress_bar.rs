//! A terminal progress bar (bytes, rate, ETA) fed by the engine's progress reports. Shown
//! only when stderr is a terminal and the output is text, so JSON stays clean.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::progress::{self, Progress};

/// Progress drawn on stderr.
struct TerminalBar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for TerminalBar {
    fn start(&self, label: &str, total: u64) {
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        if let Some(old) = self
            .bar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

/// A progress sink for this process: a bar on a terminal with text output, else silent.
pub fn for_output(json: bool) -> Arc<dyn Progress> {
    if !json && std::io::stderr().is_terminal() {
        Arc::new(TerminalBar {
            bar: Mutex::new(None),
        })
    } else {
        progress::silent()
    }
}
