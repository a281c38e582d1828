//! The transcript as a printable page: the Markdown rendered by pulldown-cmark (raw HTML in it
//! is shown as text, never interpreted), in one self-contained file with a print stylesheet
//! (`print.css`: page numbers, the instance on every page, signature lines kept together).

use pulldown_cmark::{html, Event, Options, Parser};

use super::Transcript;

const STYLE: &str = include_str!("print.css");

/// The page: the body, then the signatures in a section a printer does not split.
pub(super) fn page(t: &Transcript, body: &str, signatures: &str) -> String {
    let footer = format!(
        "@page {{ @bottom-left {{ content: {}; }}{} }}",
        css_string(&format!("{} · {}", t.title, t.instance)),
        if t.rehearsal {
            " @top-center { content: \"REHEARSAL — NOT FOR PRODUCTION\"; }"
        } else {
            ""
        }
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>\n{STYLE}{footer}\n</style></head>\n<body>\n<main>\n{}</main>\n\
         <section class=\"signatures\">\n{}</section>\n</body></html>\n",
        escape(&format!(
            "Ceremony transcript: {} ({})",
            t.title, t.instance
        )),
        to_html(body),
        to_html(signatures)
    )
}

/// Markdown to HTML. Raw HTML (inline or block) is turned into text: the transcript holds
/// what people typed, which must print as typed and never act as markup.
fn to_html(markdown: &str) -> String {
    let events = Parser::new_ext(markdown, Options::empty()).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// A CSS string literal: quotes, backslashes and line breaks escaped (the title is the
/// script's, the instance rootcellar's; escaped all the same).
fn css_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' | '<' | '>' => out.push_str(&format!("\\{:x} ", c as u32)),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_prints_as_text() {
        let html = to_html("Operator: <script>alert(1)</script>, a *b*\n\n<div>x</div>\n");
        assert!(
            !html.contains("<script>") && !html.contains("<div>"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("<em>b</em>"), "{html}");
    }

    #[test]
    fn signature_lines_keep_their_underscores() {
        let html = to_html(
            "Witness 1: Wim, signature: ______________________________  date: ______________\n",
        );
        assert!(
            html.contains("signature: ______________________________  date: ______________"),
            "{html}"
        );
        assert_eq!(css_string("a\"b</style>"), "\"a\\22 b\\3c /style\\3e \"");
    }
}
