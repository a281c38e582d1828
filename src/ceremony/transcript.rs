//! The printable transcript: who was there, the confirmed time, every step with its
//! fingerprints and results, and lines for the witnesses to sign. Markdown for the record and
//! self-contained HTML for printing.

use std::collections::BTreeMap;
use std::path::Path;

use super::Script;

/// One step as the transcript records it.
#[derive(Clone, Debug)]
pub struct StepEntry {
    /// Step id.
    pub id: String,
    /// Step title.
    pub title: String,
    /// What was shown before it ran.
    pub preview: Vec<String>,
    /// Outputs and their SHA-256.
    pub outputs: BTreeMap<String, String>,
    /// Results: serials, fingerprints, versions.
    pub details: Vec<String>,
    /// True when an earlier run completed it.
    pub resumed: bool,
}

/// A ceremony transcript being assembled.
#[derive(Clone, Debug)]
pub struct Transcript {
    title: String,
    name: String,
    instance: String,
    time: crate::time::ConfirmedTime,
    /// When a resumed ceremony was begun (its earlier steps are dated then).
    begun: Option<jiff::Timestamp>,
    present: BTreeMap<String, Vec<String>>,
    rehearsal: bool,
    steps: Vec<StepEntry>,
    outputs: BTreeMap<String, String>,
    witnesses: usize,
    journal_head: Option<String>,
    /// What each YubiHSM2's own audit log says of this ceremony, beside rootcellar's count.
    device_audits: Vec<String>,
}

impl Transcript {
    /// Notes that this run resumes a ceremony begun at `begun`.
    pub fn resumed_from(&mut self, begun: jiff::Timestamp) {
        if begun != self.time.timestamp() {
            self.begun = Some(begun);
        }
    }

    /// Starts a transcript.
    pub fn new(
        script: &Script,
        instance: &Path,
        time: crate::time::ConfirmedTime,
        present: &BTreeMap<String, Vec<String>>,
        rehearsal: bool,
    ) -> Self {
        Transcript {
            title: script.ceremony.title.clone(),
            name: script.ceremony.name.clone(),
            instance: instance
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            time,
            begun: None,
            present: present.clone(),
            rehearsal,
            steps: vec![],
            outputs: BTreeMap::new(),
            witnesses: script
                .roles
                .witnesses
                .max(present.get("witness").map_or(0, Vec::len)),
            journal_head: None,
            device_audits: vec![],
        }
    }

    /// Adds a YubiHSM2's audit log summary (one line per operation counted).
    pub fn device_audit(&mut self, summary: String) {
        self.device_audits.push(summary);
    }

    /// Adds a step.
    pub fn step(&mut self, entry: StepEntry) {
        self.steps.push(entry);
    }

    /// Records the outputs delivered.
    pub fn finish(&mut self, outputs: &BTreeMap<String, String>) {
        self.outputs = outputs.clone();
    }

    /// Records the journal's head after the ceremony's last record.
    pub fn journal_head(&mut self, head: String) {
        self.journal_head = Some(head);
    }

    /// The transcript as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        md.push_str(&format!("# Ceremony transcript: {}\n\n", self.title));
        if self.rehearsal {
            md.push_str("**REHEARSAL — throwaway tokens; nothing here is for production.**\n\n");
        }
        md.push_str(&format!(
            "- ceremony: `{}` (instance `{}`)\n",
            self.name, self.instance
        ));
        md.push_str(&format!("- confirmed time: {}\n", self.time.note()));
        if let Some(begun) = self.begun {
            md.push_str(&format!(
                "- resumed: the ceremony was begun at {begun}; steps marked resumed were done then\n"
            ));
        }
        for (role, names) in &self.present {
            if !names.is_empty() {
                md.push_str(&format!("- {role}: {}\n", names.join(", ")));
            }
        }
        md.push_str("\n## Steps\n\n");
        for (i, step) in self.steps.iter().enumerate() {
            md.push_str(&format!(
                "### {}. {} (`{}`)\n\n",
                i + 1,
                step.title,
                step.id
            ));
            if step.resumed {
                md.push_str(
                    "_Completed in an earlier run of this ceremony; outputs re-verified._\n\n",
                );
            }
            for line in &step.preview {
                md.push_str(&format!("- {line}\n"));
            }
            for line in &step.details {
                md.push_str(&format!("- result: {line}\n"));
            }
            for (name, digest) in &step.outputs {
                md.push_str(&format!("- output `{name}`: SHA-256 `{digest}`\n"));
            }
            md.push('\n');
        }
        md.push_str("## Outputs delivered\n\n");
        for (name, digest) in &self.outputs {
            md.push_str(&format!("- `{name}`: SHA-256 `{digest}`\n"));
        }
        if !self.device_audits.is_empty() {
            md.push_str("\n## HSM audit logs\n\n");
            md.push_str("What each device logged itself, to compare with the steps above.\n\n");
            for summary in &self.device_audits {
                for line in summary.lines() {
                    md.push_str(&format!("- {}\n", line.trim_end()));
                }
                md.push('\n');
            }
        }
        if let Some(head) = &self.journal_head {
            md.push_str(&format!("\nJournal head after this ceremony: {head}\n"));
        }
        md.push_str("\n## Signatures\n\n");
        md.push_str("I witnessed this ceremony and the fingerprints above match what the console showed.\n\n");
        for i in 1..=self.witnesses.max(2) {
            md.push_str(&format!(
                "Witness {i}: ______________________________  date: ____________\n\n"
            ));
        }
        md.push_str("Operator:  ______________________________  date: ____________\n");
        md
    }

    /// The transcript as a self-contained HTML page (no external resources).
    pub fn html(&self) -> String {
        let mut body = String::new();
        for line in self.markdown().lines() {
            let text = escape(line);
            let text = text.replace('`', "");
            if let Some(h) = text.strip_prefix("### ") {
                body.push_str(&format!("<h3>{h}</h3>\n"));
            } else if let Some(h) = text.strip_prefix("## ") {
                body.push_str(&format!("<h2>{h}</h2>\n"));
            } else if let Some(h) = text.strip_prefix("# ") {
                body.push_str(&format!("<h1>{h}</h1>\n"));
            } else if let Some(item) = text.strip_prefix("- ") {
                body.push_str(&format!("<div class=\"item\">{item}</div>\n"));
            } else if !text.is_empty() {
                body.push_str(&format!(
                    "<p>{}</p>\n",
                    text.replace("**", "").replace('_', "")
                ));
            }
        }
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
             body{{font-family:serif;max-width:48em;margin:2em auto}} \
             .item{{font-family:monospace;font-size:90%;word-break:break-all;margin:.2em 0 .2em 1em}} \
             h3{{margin-top:1.5em}}</style></head>\n<body>\n{body}</body></html>\n",
            escape(&self.title)
        )
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
