//! The transcript as Markdown: the record itself (`transcript.md`, signed into the response
//! bundle) and the source of the printable HTML.
//!
//! Names and subjects come from people at the console and from requests: they are written as
//! text that Markdown cannot take for markup (punctuation that could open a link, emphasis or
//! HTML escaped with a backslash), and machine lines (fingerprints, details) as code spans, so
//! that what is printed is what was recorded, character for character.

use std::fmt::Write;

use super::{journal, StepTimes, Transcript};

/// How a directory output's single SHA-256 is made from its files (`tree::sha256_tree`).
pub(super) const TREE_HASH_FORMULA: &str = "A directory output (a TUF repository) is recorded \
by one SHA-256, its tree hash: for every file below the directory, the line `SHA256  PATH` \
followed by a newline (the file's SHA-256 in lowercase hex, two spaces, its path relative to \
the directory with `/` between names); the lines sorted by path, name by name; the SHA-256 of \
the lines one after the other. It is what \
`cd DIR && find . -type f | sed 's|^./||' | LC_ALL=C sort | xargs sha256sum | sha256sum` \
prints when no name holds a character sorting below `/`. Each file of a directory is also \
listed above with its own SHA-256.";

/// The transcript without, and then with only, its signature section (the HTML keeps the
/// latter together on a printed page).
pub(super) fn render(t: &Transcript) -> (String, String) {
    let mut md = String::new();
    let _ = writeln!(md, "# Ceremony transcript: {}\n", text(&t.title));
    if t.rehearsal {
        md.push_str("**REHEARSAL — throwaway tokens; nothing here is for production.**\n\n");
    }
    // `delivery::delivered_here` recognises a delivery by this line's `(instance `…`)`.
    let _ = writeln!(md, "- ceremony: `{}` (instance `{}`)", t.name, t.instance);
    let _ = writeln!(md, "- time: {}", text(&t.time.note()));
    if let Some(begun) = t.begun {
        let _ = writeln!(
            md,
            "- resumed: the ceremony was begun at {begun}; steps marked resumed were done then"
        );
    }
    let _ = writeln!(md, "- software: {}", text(&t.provenance.software));
    let _ = writeln!(md, "- {}", text(&t.provenance.image));
    md.push_str("\n## People present\n\n");
    // In the order they sign: the operator, the witnesses, then the custodians.
    let order = |role: &str| match role {
        "operator" => 0,
        "witness" => 1,
        _ => 2,
    };
    let mut present: Vec<_> = t.present.iter().collect();
    present.sort_by_key(|(role, _)| order(role));
    for (role, names) in present {
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|n| text(n)).collect();
            let _ = writeln!(md, "- {role}: {}", names.join(", "));
        }
    }

    md.push_str("\n## Steps\n\n");
    for (i, step) in t.steps.iter().enumerate() {
        let _ = writeln!(md, "### {}. {} (`{}`)\n", i + 1, text(&step.title), step.id);
        if step.resumed {
            md.push_str("_Completed in an earlier run of this ceremony; outputs re-verified._\n\n");
        }
        let _ = writeln!(md, "- time: {}", times(step.times, step.resumed));
        for line in &step.preview {
            let _ = writeln!(md, "- {}", code(line.trim_start()));
        }
        for line in &step.details {
            let _ = writeln!(md, "- result: {}", code(line));
        }
        for (name, digest) in &step.outputs {
            let _ = writeln!(md, "- output {}: SHA-256 `{digest}`", code(name));
        }
        md.push('\n');
    }

    md.push_str("## Runs, interruptions and refusals\n\n");
    md.push_str(
        "From the journal: each run of the ceremony and how the one before it stopped, every \
         PIN or password a device refused, and what an interrupted run left that was kept or \
         removed.\n\n",
    );
    for line in journal::incidents(&t.journal, &t.instance) {
        let _ = writeln!(md, "- {}", code(&line));
    }

    let handouts = journal::handouts(&t.journal, &t.instance);
    if !handouts.is_empty() {
        md.push_str("\n## Shares handed out\n\n");
        md.push_str(
            "Who received which share, by the share's fingerprint (8 bytes of its SHA-256, \
             which reveal nothing of it); never the share.\n\n",
        );
        for line in handouts {
            let role = line.split(':').next().unwrap_or_default();
            let holder = t
                .present
                .get(role)
                .map(|n| n.join(", "))
                .unwrap_or_default();
            let _ = writeln!(md, "- {}: {}", text(&holder), code(&line));
        }
    }

    outputs(t, &mut md);

    if !t.device_audits.is_empty() {
        md.push_str("\n## HSM audit logs\n\n");
        md.push_str("What each device logged itself, to compare with the steps above.\n\n");
        for summary in &t.device_audits {
            for line in summary.lines() {
                let _ = writeln!(md, "- {}", code(line.trim_end()));
            }
            md.push('\n');
        }
    }

    md.push_str("\n## Journal records of this ceremony\n\n");
    md.push_str(
        "Up to the writing of this transcript; the delivery's own records follow (the response \
         bundle's journal segment holds them all).\n\n",
    );
    for (header, detail) in journal::records(&t.journal, &t.instance) {
        if detail.is_empty() {
            let _ = writeln!(md, "- {}", code(&header));
        } else {
            let _ = writeln!(md, "- {}: {}", code(&header), code(&detail));
        }
    }
    if let Some(head) = &t.journal_head {
        let _ = writeln!(md, "\nJournal head after this ceremony: {head}");
    }
    (md, signatures(t))
}

/// The outputs with their SHA-256 (a directory's tree hash, then each of its files), the other
/// files delivered, and the tree hash's formula.
fn outputs(t: &Transcript, md: &mut String) {
    md.push_str("\n## Outputs delivered\n\n");
    for (name, digest) in &t.outputs {
        let inside: Vec<_> = t
            .files
            .iter()
            .filter(|f| f.path.starts_with(&format!("{name}/")))
            .collect();
        if inside.is_empty() {
            let _ = writeln!(md, "- {}: SHA-256 `{digest}`", code(name));
        } else {
            let _ = writeln!(
                md,
                "- {}: directory, tree hash (below) SHA-256 `{digest}`",
                code(name)
            );
            for file in inside {
                let _ = writeln!(md, "  - {}: SHA-256 `{}`", code(&file.path), file.sha256);
            }
        }
    }
    let others: Vec<_> = t
        .files
        .iter()
        .filter(|f| {
            !t.outputs.contains_key(&f.path)
                && !t
                    .outputs
                    .keys()
                    .any(|o| f.path.starts_with(&format!("{o}/")))
        })
        .collect();
    if !others.is_empty() {
        md.push_str("\nAlso delivered (sealed shares, device audit logs):\n\n");
        for file in others {
            let _ = writeln!(md, "- {}: SHA-256 `{}`", code(&file.path), file.sha256);
        }
    }
    md.push_str(
        "\nWith them: this transcript (`transcript.md`, and `transcript.html` to print)\
         , and `response.rcb` when a response bundle was asked for.\n",
    );
    let _ = writeln!(md, "\n### Tree hash\n\n{TREE_HASH_FORMULA}");
}

/// One signature line per person present: the operator, each witness, each custodian.
fn signatures(t: &Transcript) -> String {
    const SIGN: &str = "signature: ______________________________  date: ______________";
    let mut md = String::from("\n## Signatures\n\n");
    md.push_str(
        "Each of us was present at this ceremony, and what we compared (the fingerprints \
         above) is what the console showed.\n\n",
    );
    let name = |role: &str, i: usize| {
        t.present
            .get(role)
            .and_then(|names| names.get(i))
            .map(|n| text(n))
            .unwrap_or_else(|| "______________________ (name)".into())
    };
    let _ = writeln!(md, "Operator: {}, {SIGN}\n", name("operator", 0));
    for i in 0..t.witnesses.max(2) {
        let _ = writeln!(md, "Witness {}: {}, {SIGN}\n", i + 1, name("witness", i));
    }
    for (i, role) in t.custodians.iter().enumerate() {
        let _ = writeln!(
            md,
            "Custodian {} ({role}): {}, {SIGN}\n",
            i + 1,
            name(role, 0)
        );
    }
    md
}

/// When a step ran: each moment is the confirmed time plus machine time elapsed.
fn times(times: Option<StepTimes>, resumed: bool) -> String {
    let earlier = if resumed {
        "done in an earlier run: "
    } else {
        ""
    };
    match times {
        None => format!("{earlier}not recorded (by a rootcellar before 0.1.1)"),
        Some(t) => format!(
            "{earlier}shown {} (+{}), code typed {} (+{}), done {} (+{}): the run's confirmed \
             time {} plus the machine time elapsed since",
            t.at(t.shown_ms),
            seconds(t.shown_ms),
            t.at(t.confirmed_ms),
            seconds(t.confirmed_ms),
            t.at(t.done_ms),
            seconds(t.done_ms),
            t.confirmed_time
        ),
    }
}

fn seconds(ms: u64) -> String {
    if ms < 60_000 {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Text Markdown reads as itself: the punctuation that could start a link, emphasis, code, an
/// HTML tag or entity is escaped (CommonMark's backslash escapes), and line breaks become
/// spaces (a name cannot start a heading or a list).
pub(super) fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '~' | '|' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code span holding `s` verbatim: delimited by one more backtick than the longest run in
/// it, padded with a space when it starts or ends with one.
pub(super) fn code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    let longest = s
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or_default();
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || s.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_stays_text() {
        assert_eq!(text("Olga"), "Olga");
        assert_eq!(text("Mary-Jane O'Brien"), "Mary-Jane O'Brien");
        assert_eq!(
            text("<b>[x](javascript:1)</b>"),
            "\\<b\\>\\[x\\](javascript:1)\\</b\\>"
        );
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("a `b` c"), "``a `b` c``");
        assert_eq!(code("`x"), "`` `x ``");
    }

    #[test]
    fn seconds_are_read_as_people_say_them() {
        assert_eq!(seconds(0), "0.0 s");
        assert_eq!(seconds(1_250), "1.2 s");
        assert_eq!(seconds(61_000), "1 min 1 s");
    }
}
