//! A terminal progress bar (bytes, rate, ETA) fed by a job's `progress` events. Shown only
//! when stderr is a terminal and the output is text, so JSON stays clean.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::client::ServerEvent;

/// The bar of the piece of work the job is on now.
pub struct EventBar {
    bar: Option<(String, ProgressBar)>,
}

impl EventBar {
    /// A bar on a terminal with text output; `None` otherwise.
    pub fn for_output(json: bool) -> Option<EventBar> {
        (!json && std::io::stderr().is_terminal()).then_some(EventBar { bar: None })
    }

    /// Moves the bar to what a `progress` event says (`label`, `done`, `total`); any other
    /// event ends the current bar.
    pub fn show(&mut self, event: &ServerEvent) {
        if event.kind != "progress" {
            self.clear();
            return;
        }
        let label = event.data["label"].as_str().unwrap_or("").to_string();
        let total = event.data["total"].as_u64().unwrap_or(0);
        let done = event.data["done"].as_u64().unwrap_or(0);
        if self.bar.as_ref().is_none_or(|(l, _)| *l != label) {
            self.clear();
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.clone());
            self.bar = Some((label, bar));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    /// Removes the bar from the terminal.
    pub fn clear(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
