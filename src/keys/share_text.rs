//! A share as people write it down and type it back.
//!
//! A custodian copies a share onto paper and types it back later, perhaps years later, so a
//! transcription error must be found at once and pointed at, not discovered as "the shares do
//! not combine" at the next ceremony. The share's binary encoding ([`Share::to_bytes`]) is
//! written in lowercase hex, in groups of four characters, each followed by one check
//! character, five groups to a numbered line:
//!
//! ```text
//!  1: 5243c 5331d 9f0a2 …
//! ```
//!
//! The check character is Luhn mod 16 over the group's number and its four characters (the
//! ISO/IEC 7812 algorithm on a hex alphabet: no cryptography, just arithmetic): it catches every
//! single mistyped character and most swaps of neighbours in its group, and a group typed in
//! the wrong place. The share's own 4-byte checksum then catches whatever slips past. Typed
//! back, spaces, dashes, line numbers, case and `#` comment lines are forgiven; a group that
//! fails its check is named by its number and line.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::shares::{Share, ShareError};

/// Hex characters of the encoding in a group.
const GROUP_DATA: usize = 4;
/// A group as written: its data and one check character.
const GROUP_LEN: usize = GROUP_DATA + 1;
/// Groups on a written line.
const GROUPS_PER_LINE: usize = 5;
/// Prefix of the older one-line text form ([`Share::to_text`]), still accepted when typed.
const TEXT_PREFIX: &str = "rootcellar-share:";

impl Share {
    /// The share as it is written down: numbered lines of five groups, each four hex
    /// characters and a check character.
    pub fn to_grouped(&self) -> Zeroizing<String> {
        let hex = Zeroizing::new(hex::encode(&self.to_bytes()[..]));
        let mut out = Zeroizing::new(String::with_capacity(hex.len() * 2));
        for (i, chunk) in hex.as_bytes().chunks(GROUP_DATA).enumerate() {
            let group = i + 1;
            if i % GROUPS_PER_LINE == 0 {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&format!("{:>2}:", i / GROUPS_PER_LINE + 1));
            }
            out.push(' ');
            // Hex digits are ASCII: the chunk is text.
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push(check_char(group, chunk));
        }
        out
    }

    /// Reads a share as typed back: the grouped form ([`Share::to_grouped`]), forgiving
    /// spaces, dashes, line numbers, case and `#` comment lines, or the one-line
    /// `rootcellar-share:` form. A group that fails its check character is named.
    pub fn parse_typed(text: &str) -> Result<Share, ShareError> {
        let trimmed = text.trim();
        if trimmed
            .get(..TEXT_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(TEXT_PREFIX))
        {
            let lowered = Zeroizing::new(trimmed.to_ascii_lowercase());
            return Share::from_text(&lowered);
        }
        let groups = typed_groups(trimmed);
        if groups.is_empty() {
            return Err(ShareError::Unreadable {
                which: "given".into(),
                reason: "nothing was typed",
            });
        }
        let mut hex = Zeroizing::new(String::with_capacity(groups.len() * GROUP_DATA));
        let last = groups.len() - 1;
        for (i, group) in groups.iter().enumerate() {
            let number = i + 1;
            let mistyped = |reason| ShareError::Mistyped {
                group: number,
                line: i / GROUPS_PER_LINE + 1,
                place: i % GROUPS_PER_LINE + 1,
                reason,
            };
            if !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(mistyped("holds a character other than 0-9 and a-f"));
            }
            // Only the last group may be short (the encoding's length is not a multiple of 4).
            if group.len() > GROUP_LEN || group.len() < 2 || (i < last && group.len() != GROUP_LEN)
            {
                return Err(mistyped(
                    "does not have 5 characters (one left out or added?)",
                ));
            }
            let (data, check) = group.split_at(group.len() - 1);
            if check_char(number, data.as_bytes()) != check.as_bytes()[0] as char {
                return Err(mistyped(
                    "does not match its check character (a character is wrong)",
                ));
            }
            hex.push_str(data);
        }
        let bytes =
            Zeroizing::new(
                hex::decode(hex.as_bytes()).map_err(|_| ShareError::Unreadable {
                    which: "given".into(),
                    reason: "its groups do not make whole bytes (a group is missing?)",
                })?,
            );
        Share::from_bytes(&bytes)
    }

    /// A fingerprint naming this share in the journal and the transcript (which custodian
    /// holds which share) without revealing it: the first 8 bytes of a SHA-256 over its
    /// encoding, in 4-character groups. The share's value is random, so this reveals nothing
    /// of it that a guess could check.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"rootcellar share fingerprint\0");
        hasher.update(&self.to_bytes()[..]);
        let hex = hex::encode(&hasher.finalize()[..8]);
        hex.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The typed text split into its groups, lowercased: `#` lines, line numbers (`3:`) and
/// dashes dropped. Typed without spaces, the text is cut into 5-character groups.
fn typed_groups(text: &str) -> Vec<Zeroizing<String>> {
    let mut tokens: Vec<Zeroizing<String>> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        for token in line.split_whitespace() {
            // A line number, alone (`3:`) or stuck to the first group (`3:5243c`).
            let token = match token.split_once(':') {
                Some((number, rest)) if number.bytes().all(|b| b.is_ascii_digit()) => rest,
                _ => token,
            };
            let cleaned: String = token
                .chars()
                .filter(|c| *c != '-')
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if !cleaned.is_empty() {
                tokens.push(Zeroizing::new(cleaned));
            }
        }
    }
    if tokens.iter().all(|t| t.len() <= GROUP_LEN) {
        return tokens;
    }
    let joined = Zeroizing::new(tokens.iter().map(|t| t.as_str()).collect::<String>());
    joined
        .as_bytes()
        .chunks(GROUP_LEN)
        .map(|c| Zeroizing::new(String::from_utf8_lossy(c).into_owned()))
        .collect()
}

/// Luhn mod 16 check character over group `number` (its low 4 bits, so a group typed in the
/// wrong place fails) and the group's hex characters.
fn check_char(number: usize, data: &[u8]) -> char {
    const N: u32 = 16;
    let points = std::iter::once((number % 16) as u32)
        .chain(data.iter().map(|b| (*b as char).to_digit(16).unwrap_or(0)));
    let points: Vec<u32> = points.collect();
    let mut factor = 2;
    let mut sum = 0;
    for point in points.iter().rev() {
        let addend = factor * point;
        sum += addend / N + addend % N;
        factor = if factor == 2 { 1 } else { 2 };
    }
    let check = (N - sum % N) % N;
    char::from_digit(check, 16).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::split_secret;

    fn share() -> Share {
        split_secret(b"0123456789abcdef0123456789abcdef", 2, 3)
            .unwrap()
            .remove(1)
    }

    fn groups(grouped: &str) -> Vec<String> {
        grouped
            .lines()
            .flat_map(|l| l.split_whitespace().skip(1))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_grouped_form_has_numbered_lines_of_five_checked_groups_and_reads_back() {
        let share = share();
        let grouped = share.to_grouped();
        let lines: Vec<&str> = grouped.lines().collect();
        assert!(lines[0].starts_with(" 1: 5243"), "{}", grouped.as_str());
        assert!(lines[1].starts_with(" 2: "), "{}", grouped.as_str());
        for line in &lines[..lines.len() - 1] {
            assert_eq!(
                line.split_whitespace().count(),
                1 + GROUPS_PER_LINE,
                "{line}"
            );
        }
        let all = groups(&grouped);
        assert!(all[..all.len() - 1].iter().all(|g| g.len() == GROUP_LEN));
        let back = Share::parse_typed(&grouped).unwrap();
        assert_eq!(back.to_bytes(), share.to_bytes());
    }

    #[test]
    fn spaces_dashes_case_line_numbers_and_comments_are_forgiven() {
        let share = share();
        let grouped = share.to_grouped();
        let all = groups(&grouped);
        let forms = [
            all.concat(),
            all.concat().to_uppercase(),
            all.join("-"),
            format!("# sealed for custodian-2\n\n{}\n", grouped.as_str()),
            grouped.replace(": ", ":"),
            all.chunks(3)
                .map(|c| c.join(" "))
                .collect::<Vec<_>>()
                .join("\n"),
            share.to_text().to_uppercase(),
        ];
        for form in forms {
            let back = Share::parse_typed(&form).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(back.to_bytes(), share.to_bytes(), "{form}");
        }
    }

    #[test]
    fn every_single_mistyped_character_is_named_by_its_group() {
        let share = share();
        let all = groups(&share.to_grouped());
        for (g, group) in all.iter().enumerate() {
            for position in 0..group.len() {
                let original = group.as_bytes()[position] as char;
                for replacement in "0123456789abcdef".chars().filter(|c| *c != original) {
                    let mut typed = all.clone();
                    typed[g].replace_range(position..position + 1, &replacement.to_string());
                    let err = Share::parse_typed(&typed.join(" ")).unwrap_err();
                    match err {
                        ShareError::Mistyped {
                            group, line, place, ..
                        } => {
                            assert_eq!(group, g + 1);
                            assert_eq!(line, g / GROUPS_PER_LINE + 1);
                            assert_eq!(place, g % GROUPS_PER_LINE + 1);
                        }
                        other => panic!("group {} char {position}: {other}", g + 1),
                    }
                }
            }
        }
    }

    #[test]
    fn swapped_neighbours_missing_characters_and_strangers_are_refused() {
        let share = share();
        let all = groups(&share.to_grouped());
        // Two groups swapped: each is checked against its number.
        let mut swapped = all.clone();
        swapped.swap(3, 4);
        let err = Share::parse_typed(&swapped.join(" ")).unwrap_err();
        assert!(
            matches!(err, ShareError::Mistyped { group: 4, .. }),
            "{err}"
        );
        // A character left out of group 7 (typed with spaces): group 7 is named.
        let mut short = all.clone();
        short[6].remove(2);
        let err = Share::parse_typed(&short.join(" ")).unwrap_err();
        assert!(
            matches!(err, ShareError::Mistyped { group: 7, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("group 7 (line 2, group 2"),
            "{err}"
        );
        // A letter that is not hex.
        let mut stranger = all.clone();
        stranger[0].replace_range(0..1, "g");
        let err = Share::parse_typed(&stranger.join(" ")).unwrap_err();
        assert!(err.to_string().contains("other than 0-9 and a-f"), "{err}");
        // A whole group left out: the share's own length and checksum refuse it.
        let mut missing = all.clone();
        missing.pop();
        assert!(Share::parse_typed(&missing.join(" ")).is_err());
        assert!(Share::parse_typed("   \n# only a comment\n").is_err());
    }

    #[test]
    fn adjacent_transpositions_within_a_group_are_mostly_caught() {
        // Luhn catches a swap of neighbours except 0<->f: count what slips through, which the
        // share's own checksum then refuses.
        let share = share();
        let all = groups(&share.to_grouped());
        let mut caught_by_group = 0;
        let mut swaps = 0;
        for (g, group) in all.iter().enumerate() {
            for position in 0..group.len() - 1 {
                let bytes = group.as_bytes();
                if bytes[position] == bytes[position + 1] {
                    continue;
                }
                swaps += 1;
                let mut typed = all.clone();
                let mut chars: Vec<u8> = bytes.to_vec();
                chars.swap(position, position + 1);
                typed[g] = String::from_utf8(chars).unwrap();
                match Share::parse_typed(&typed.join(" ")) {
                    Err(ShareError::Mistyped { .. }) => caught_by_group += 1,
                    Err(_) => {}
                    Ok(_) => panic!("a swap in group {} was accepted", g + 1),
                }
            }
        }
        assert!(
            caught_by_group * 10 >= swaps * 9,
            "{caught_by_group}/{swaps}"
        );
    }

    #[test]
    fn fingerprints_name_a_share_without_showing_it() {
        let share = share();
        let fingerprint = share.fingerprint();
        assert_eq!(fingerprint.len(), 19, "{fingerprint}");
        assert_eq!(fingerprint, share.clone().fingerprint());
        let other = split_secret(b"0123456789abcdef0123456789abcdef", 2, 3)
            .unwrap()
            .remove(1);
        assert_ne!(fingerprint, other.fingerprint());
        let hex = hex::encode(&share.to_bytes()[..]);
        assert!(!hex.contains(&fingerprint.replace(' ', "")));
    }
}
