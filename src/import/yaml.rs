//! Just enough YAML to write Kubernetes manifests: block mappings in the order given, block
//! sequences, strings double-quoted (JSON string syntax, which YAML reads the same) or, when
//! they span lines, as literal blocks, so that an embedded `trusted_root.json` stays readable.

/// A YAML node.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    /// A mapping, in this order.
    Map(Vec<(String, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

/// A mapping from `(key, value)` pairs.
pub(super) fn map<const N: usize>(entries: [(&str, Node); N]) -> Node {
    Node::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A string node.
pub(super) fn s(text: impl Into<String>) -> Node {
    Node::Str(text.into())
}

/// A sequence of strings.
pub(super) fn strings<const N: usize>(items: [&str; N]) -> Node {
    Node::Seq(items.into_iter().map(s).collect())
}

/// The document: `comments` as `#` lines, then `node` (a mapping).
pub(super) fn document(comments: &[String], node: &Node) -> String {
    let mut out = String::new();
    for line in comments {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
    write_node(node, 0, &mut out);
    out
}

fn write_node(node: &Node, indent: usize, out: &mut String) {
    match node {
        Node::Map(entries) => {
            for (key, value) in entries {
                out.push_str(&" ".repeat(indent));
                out.push_str(&key_text(key));
                out.push(':');
                write_value(value, indent, out);
            }
        }
        Node::Seq(items) => {
            for item in items {
                let mut rendered = String::new();
                match item {
                    Node::Map(entries) if !entries.is_empty() => {
                        write_node(item, indent + 2, &mut rendered);
                        // The first entry goes on the dash's line.
                        out.push_str(&" ".repeat(indent));
                        out.push_str("- ");
                        out.push_str(&rendered[indent + 2..]);
                    }
                    _ => {
                        out.push_str(&" ".repeat(indent));
                        out.push('-');
                        write_value(item, indent, &mut rendered);
                        out.push_str(&rendered);
                    }
                }
            }
        }
        scalar => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&scalar_text(scalar, indent));
            out.push('\n');
        }
    }
}

/// Writes what follows `key:` (or `-`): a scalar on the same line, a collection below.
fn write_value(value: &Node, indent: usize, out: &mut String) {
    match value {
        Node::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Node::Map(_) => {
            out.push('\n');
            write_node(value, indent + 2, out);
        }
        // Sequences under a key are indented too, as kubectl writes them.
        Node::Seq(_) => {
            out.push('\n');
            write_node(value, indent + 2, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar, indent));
            out.push('\n');
        }
    }
}

fn scalar_text(node: &Node, indent: usize) -> String {
    match node {
        Node::Str(text) => match literal_block(text, indent + 2) {
            Some(block) => block,
            None => serde_json::to_string(text).expect("strings serialise"),
        },
        Node::Bool(b) => b.to_string(),
        Node::Map(_) | Node::Seq(_) => unreachable!("collections are written as blocks"),
    }
}

/// A multi-line string as a literal block (`|` keeps one final newline, `|-` none), when it can
/// be written as one exactly: no carriage returns, tabs or other control characters, no
/// leading space on the first line, at most one final newline.
fn literal_block(text: &str, indent: usize) -> Option<String> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if !body.contains('\n')
        || body.ends_with('\n')
        || body.starts_with(' ')
        || body.chars().any(|c| c.is_control() && c != '\n')
        || body.lines().any(|l| l.ends_with(' '))
    {
        return None;
    }
    let chomp = if text.ends_with('\n') { "|" } else { "|-" };
    let pad = " ".repeat(indent);
    let mut block = chomp.to_string();
    for line in body.split('\n') {
        block.push('\n');
        if !line.is_empty() {
            block.push_str(&pad);
            block.push_str(line);
        }
    }
    Some(block)
}

/// Keys are written plain when they are simple names, quoted otherwise (and when YAML 1.1
/// would read them as a boolean or null).
fn key_text(key: &str) -> String {
    const SPECIAL: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "",
    ];
    let plain = !SPECIAL.contains(&key.to_ascii_lowercase().as_str())
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if plain {
        key.to_string()
    } else {
        serde_json::to_string(key).expect("strings serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_mappings_sequences_and_literal_blocks() {
        let node = map([
            ("apiVersion", s("v1")),
            (
                "spec",
                map([
                    (
                        "items",
                        Node::Seq(vec![
                            map([
                                ("name", s("a")),
                                ("on", Node::Bool(true)),
                                ("ok", Node::Bool(false)),
                            ]),
                            s("plain"),
                        ]),
                    ),
                    ("empty", Node::Seq(vec![])),
                    ("text", s("{\n  \"a\": 1\n}\n")),
                    ("quoted", s("say \"hi\"")),
                ]),
            ),
        ]);
        let text = document(&["header".into()], &node);
        assert_eq!(
            text,
            "# header\napiVersion: \"v1\"\nspec:\n  items:\n    - name: \"a\"\n      \"on\": true\n      ok: false\n    - \"plain\"\n  empty: []\n  text: |\n    {\n      \"a\": 1\n    }\n  quoted: \"say \\\"hi\\\"\"\n"
        );
    }

    #[test]
    fn strings_that_a_literal_block_would_change_are_quoted() {
        for text in ["a\r\nb", " lead\nx", "a\n\n", "trailing \nx", "tab\tx\ny"] {
            assert!(literal_block(text, 2).is_none(), "{text:?}");
        }
        assert_eq!(literal_block("a\n\nb", 2).unwrap(), "|-\n  a\n\n  b");
    }
}
