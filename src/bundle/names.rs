//! Entry names: plain file names that can never escape the extraction directory.

use super::error::{BundleError, NameProblem};

/// The longest entry name accepted, in bytes (the usual file-name limit of Linux file systems).
pub const MAX_NAME_BYTES: usize = 255;

/// Checks that `name` is a plain file name: not empty, not `.` or `..`, no path separator
/// (`/` or `\`), no control or bidirectional-format character, at most [`MAX_NAME_BYTES`].
pub fn check_entry_name(name: &str) -> Result<(), BundleError> {
    match name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(BundleError::UnsafeEntryName {
            name: name.to_string(),
            problem,
        }),
    }
}

fn name_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        return Some(NameProblem::Empty);
    }
    if name == "." {
        return Some(NameProblem::CurrentDirectory);
    }
    // Checked before separators, so that `../x` and `/etc/passwd` are reported for what they
    // try to do rather than for the separator they use.
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Some(NameProblem::ParentDirectory);
    }
    if name.starts_with(['/', '\\']) {
        return Some(NameProblem::Absolute);
    }
    if name.contains(['/', '\\']) {
        return Some(NameProblem::Separator);
    }
    if let Some(c) = name.chars().find(|&c| is_hidden_or_control(c)) {
        return Some(NameProblem::ControlCharacter(c));
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(NameProblem::TooLong);
    }
    None
}

/// Control characters, and the bidirectional overrides and isolates that can make a printed
/// name read differently from the bytes (`invoice\u{202e}fdp.exe`).
pub(super) fn is_hidden_or_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Checks that no two names collide, comparing case-insensitively because the removable media
/// that carries bundles is often FAT-formatted.
pub fn check_no_duplicates<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), BundleError> {
    let mut seen: std::collections::HashMap<String, &'a str> = std::collections::HashMap::new();
    for name in names {
        if let Some(first) = seen.insert(name.to_lowercase(), name) {
            return Err(BundleError::DuplicateEntryName {
                first: first.to_string(),
                second: name.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(name: &str) -> NameProblem {
        match check_entry_name(name) {
            Err(BundleError::UnsafeEntryName { problem, .. }) => problem,
            other => panic!("{name:?} not refused: {other:?}"),
        }
    }

    #[test]
    fn plain_names_pass() {
        for name in [
            "root.pem",
            "1.root.json",
            ".hidden",
            "a..b",
            "trusted_root.json",
        ] {
            check_entry_name(name).unwrap();
        }
    }

    #[test]
    fn each_hostile_name_gets_its_own_problem() {
        assert_eq!(problem(""), NameProblem::Empty);
        assert_eq!(problem("."), NameProblem::CurrentDirectory);
        assert_eq!(problem(".."), NameProblem::ParentDirectory);
        assert_eq!(problem("../x"), NameProblem::ParentDirectory);
        assert_eq!(problem("a\\..\\b"), NameProblem::ParentDirectory);
        assert_eq!(problem("/etc/passwd"), NameProblem::Absolute);
        assert_eq!(problem("\\x"), NameProblem::Absolute);
        assert_eq!(problem("a/b"), NameProblem::Separator);
        assert_eq!(problem("a\\b"), NameProblem::Separator);
        assert_eq!(problem("a\nb"), NameProblem::ControlCharacter('\n'));
        assert_eq!(problem("a\0b"), NameProblem::ControlCharacter('\0'));
        assert_eq!(
            problem("cod\u{202e}fdp.pem"),
            NameProblem::ControlCharacter('\u{202e}')
        );
        assert_eq!(problem(&"x".repeat(256)), NameProblem::TooLong);
    }

    #[test]
    fn duplicates_are_found_case_insensitively() {
        check_no_duplicates(["a", "b"]).unwrap();
        let err = check_no_duplicates(["root.pem", "x", "ROOT.pem"]).unwrap_err();
        assert!(
            matches!(&err, BundleError::DuplicateEntryName { first, second } if first == "root.pem" && second == "ROOT.pem"),
            "{err}"
        );
    }
}
