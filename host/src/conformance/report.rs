//! Results: one outcome per check, the run's summary, as text, JSON and JUnit XML.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::subject::Subject;
use super::{Check, Res, Why};

/// How one check ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: &'static str,
    pub kind: String,
    pub tags: Vec<&'static str>,
    pub claim: &'static str,
    /// `passed`, `failed` or `skipped`.
    pub outcome: &'static str,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub ms: u64,
}

impl Outcome {
    pub fn new(check: &Check, result: Res, elapsed: Duration) -> Self {
        let (outcome, reason) = match result {
            Ok(()) => ("passed", None),
            Err(Why::Fail(m)) => ("failed", Some(m)),
            Err(Why::Skip(m)) => ("skipped", Some(m)),
        };
        Self {
            id: check.id,
            kind: check.kind.to_string(),
            tags: check.tags.iter().map(|t| t.as_str()).collect(),
            claim: check.claim,
            outcome,
            reason,
            ms: elapsed.as_millis() as u64,
        }
    }

    pub fn failed(&self) -> bool {
        self.outcome == "failed"
    }

    /// One line for people: `PASS id`, `FAIL id: why`, `SKIP id: why`.
    pub fn line(&self) -> String {
        let mark = match self.outcome {
            "passed" => "PASS",
            "failed" => "FAIL",
            _ => "SKIP",
        };
        match &self.reason {
            Some(r) => format!("{mark} {} ({} ms): {r}", self.id, self.ms),
            None => format!("{mark} {} ({} ms)", self.id, self.ms),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub adapter: String,
    pub about: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub array: Option<String>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub seconds: f64,
    pub checks: Vec<Outcome>,
    /// What the suite could not remove from the systems under test.
    pub left_behind: Vec<String>,
}

impl Report {
    pub fn new(
        subject: &Subject,
        checks: Vec<Outcome>,
        left_behind: Vec<String>,
        elapsed: Duration,
    ) -> Self {
        let count = |o: &str| checks.iter().filter(|c| c.outcome == o).count();
        Self {
            adapter: subject.file.display().to_string(),
            about: subject.about.clone(),
            kind: subject.kind.to_string(),
            array: subject.array.as_ref().map(|a| a.label.clone()),
            passed: count("passed"),
            failed: count("failed"),
            skipped: count("skipped"),
            seconds: (elapsed.as_secs_f64() * 100.0).round() / 100.0,
            checks,
            left_behind,
        }
    }

    /// Whether every check passed or was skipped.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// Ids of the failed checks.
    pub fn failed_ids(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.failed())
            .map(|c| c.id)
            .collect()
    }

    /// The closing lines for people: failures named, what was left, the counts.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if !self.ok() {
            out.push_str(&format!("failed: {}\n", self.failed_ids().join(", ")));
        }
        if !self.left_behind.is_empty() {
            out.push_str(&format!(
                "left behind on the system under test: {}\n",
                self.left_behind.join(", ")
            ));
        }
        out.push_str(&format!(
            "{} {}: {} passed, {} failed, {} skipped in {:.2} s",
            self.kind, self.adapter, self.passed, self.failed, self.skipped, self.seconds
        ));
        out
    }

    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|e| json!({ "error": e.to_string() }))
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows only these control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The run as JUnit XML: one `testcase` per check (`classname` = kind and first tag),
/// `failure` or `skipped` with the reason.
pub fn junit_xml(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
        report.checks.len(),
        report.failed,
        report.skipped,
        report.seconds
    ));
    out.push_str(&format!(
        "  <testsuite name=\"tidemark-conformance {}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">\n",
        xml_escape(&report.kind),
        report.checks.len(),
        report.failed,
        report.skipped,
        report.seconds
    ));
    out.push_str(&format!(
        "    <properties><property name=\"adapter\" value=\"{}\"/><property name=\"about\" value=\"{}\"/></properties>\n",
        xml_escape(&report.adapter),
        xml_escape(&report.about)
    ));
    for c in &report.checks {
        let class = format!("{}.{}", c.kind, c.tags.first().copied().unwrap_or("other"));
        let head = format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&class),
            xml_escape(c.id),
            c.ms as f64 / 1000.0
        );
        let reason = xml_escape(c.reason.as_deref().unwrap_or(""));
        match c.outcome {
            "failed" => out.push_str(&format!(
                "{head}>\n      <failure message=\"{reason}\">{}</failure>\n    </testcase>\n",
                xml_escape(c.claim)
            )),
            "skipped" => out.push_str(&format!(
                "{head}>\n      <skipped message=\"{reason}\"/>\n    </testcase>\n"
            )),
            _ => out.push_str(&format!("{head}/>\n")),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_xml_cannot_hold() {
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(xml_escape("x\0y"), "x\\u{0}y");
        assert_eq!(xml_escape("tab\tok"), "tab\tok");
    }
}
