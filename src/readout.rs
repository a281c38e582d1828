//! Values that people compare by reading them aloud — a key's fingerprint on the screen
//! against the one on a request form, a file's SHA-256 against the custodian's note — written
//! in groups of four hex digits, as the people at a root ceremony read them out ("a3f0, 91bc,
//! …"): a group is what one breath says and one eye checks.

/// `hex` in space-separated groups of four characters (the last may be shorter).
pub fn groups(hex: &str) -> String {
    let chars: Vec<char> = hex.chars().collect();
    chars
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A SHA-256 fingerprint (64 hex digits) as read aloud: `SHA256 a3f0 91bc …`.
pub fn sha256(hex: &str) -> String {
    format!("SHA256 {}", groups(hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_of_four_with_a_short_tail() {
        assert_eq!(groups("a3f091bc"), "a3f0 91bc");
        assert_eq!(groups("a3f091b"), "a3f0 91b");
        assert_eq!(groups(""), "");
        let digest = "ab".repeat(32);
        let read = sha256(&digest);
        assert_eq!(read.split(' ').count(), 17, "{read}");
        assert_eq!(read.replace(' ', "").trim_start_matches("SHA256"), digest);
    }
}
