//! Shamir M-of-N secret sharing of a secret held in zeroized memory.
//!
//! What it protects: the YubiHSM2 wrap key of a backup, and (in the ceremonies) the PIN of the
//! root CA token. A secret is split into N shares, any M of which rebuild it and any M−1 of
//! which reveal nothing about it. The arithmetic is `vsss-rs`'s byte-wise Shamir over GF(2^8)
//! (audited; its coefficient bias was fixed in 5.4); this module adds what a ceremony needs
//! around it:
//!
//! - **Integrity.** Plain Shamir cannot tell a wrong secret from a right one: a corrupted or
//!   altered share just rebuilds a different secret. Before splitting, a 16-byte tag
//!   (SHA-256 over the secret and the split's header) is appended to the secret, and it is
//!   split with it, so fewer than M shares still reveal nothing, and a combination that does
//!   not rebuild the tag is refused. Given more than M shares, the combination also says which
//!   shares disagree with the rest. Each share also carries its own 4-byte checksum, so a share
//!   mistyped or damaged in storage is named before any arithmetic.
//! - **Context.** Each share names its split (a random 8-byte set id), the threshold M and its
//!   own index, so that mixing shares of two splits, giving too few, or giving one twice is an
//!   error that says so.
//! - **Zeroization.** Share values and the rebuilt secret live in [`Zeroizing`] buffers;
//!   `Debug` never prints a share's value.
//!
//! A share's encoding ([`Share::to_bytes`], or [`Share::to_text`] for a console) is:
//! `"RCS1"`, set id (8), threshold (1), index (1), value length (2, big-endian), value, and the
//! first 4 bytes of the SHA-256 of everything before it.

use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Marks the binary encoding of a share, version 1.
const MAGIC: &[u8; 4] = b"RCS1";
/// Prefix of the text encoding (the binary encoding in lowercase hex follows).
const TEXT_PREFIX: &str = "rootcellar-share:";
/// Length of the integrity tag appended to the secret before splitting.
const TAG_LEN: usize = 16;
/// Length of a share's own checksum.
const CHECK_LEN: usize = 4;
/// Header: magic, set id, threshold, index, value length.
const HEADER_LEN: usize = 4 + 8 + 1 + 1 + 2;
/// The largest secret accepted: PINs and wrap keys are tiny; this bounds every allocation.
pub const MAX_SECRET_LEN: usize = 1024;
/// Subsets of the given shares tried to name the one that disagrees, at most.
const MAX_SUBSETS_TRIED: usize = 5000;

/// Why a secret could not be split or rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// M and N are not a usable split.
    #[error("cannot split {threshold}-of-{shares}: {reason}")]
    InvalidSplit {
        /// M.
        threshold: usize,
        /// N.
        shares: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The secret is empty or too long.
    #[error("cannot split a secret of {0} bytes (1 to 1024 are accepted)")]
    InvalidSecret(usize),
    /// A share's encoding is damaged or not a share.
    #[error("share {which} is unreadable: {reason}")]
    Unreadable {
        /// Which share, as the caller can recognise it (its index when readable).
        which: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer shares than the threshold were given.
    #[error("{given} share(s) given; this secret needs {needed} to be rebuilt")]
    NotEnoughShares {
        /// M.
        needed: u8,
        /// How many were given.
        given: usize,
    },
    /// Shares of different splits were mixed.
    #[error("the shares come from different splits (sets {first} and {other}); give shares of one split only")]
    DifferentSplits {
        /// The first share's set id, hex.
        first: String,
        /// A different set id among the others, hex.
        other: String,
    },
    /// The same share was given twice.
    #[error("share #{0} was given twice")]
    Duplicate(u8),
    /// The shares do not rebuild the secret they were split from.
    #[error("the shares do not rebuild the secret they were split from: {0}")]
    Inconsistent(String),
    /// A group of a typed share is wrong (`share_text`): named so that the custodian checks
    /// that group against the paper.
    #[error("group {group} (line {line}, group {place} of the line) {reason}")]
    Mistyped {
        /// The group's number, from 1.
        group: usize,
        /// Its line as written down, from 1.
        line: usize,
        /// Its place on the line, from 1.
        place: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One custodian's share of a secret. The value is wiped when dropped; `Debug` never shows it.
#[derive(Clone)]
pub struct Share {
    set_id: [u8; 8],
    threshold: u8,
    index: u8,
    value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Share(set {}, #{} of threshold {}, <redacted>)",
            hex::encode(self.set_id),
            self.index,
            self.threshold
        )
    }
}

impl Share {
    /// The share's index (1..=N): the custodian's number, printed on their envelope.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// How many shares rebuild the secret (M).
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// The random id of the split this share belongs to, hex (not secret).
    pub fn set_id(&self) -> String {
        hex::encode(self.set_id)
    }

    /// The binary encoding (what the bundle module encrypts to a custodian).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            HEADER_LEN + self.value.len() + CHECK_LEN,
        ));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.set_id);
        out.push(self.threshold);
        out.push(self.index);
        // `split_secret` bounds the value far below u16::MAX.
        out.extend_from_slice(&(self.value.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.value);
        let check = Sha256::digest(&out[..]);
        out.extend_from_slice(&check[..CHECK_LEN]);
        out
    }

    /// Reads the binary encoding, checking its checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<Share, ShareError> {
        let unreadable = |reason| ShareError::Unreadable {
            which: "given".into(),
            reason,
        };
        if bytes.len() < HEADER_LEN + 1 + CHECK_LEN || &bytes[..4] != MAGIC {
            return Err(unreadable("it is not a rootcellar share"));
        }
        let (body, check) = bytes.split_at(bytes.len() - CHECK_LEN);
        let index = body[13];
        if Sha256::digest(body)[..CHECK_LEN] != *check {
            return Err(ShareError::Unreadable {
                which: format!("#{index}"),
                reason: "its checksum does not match (damaged or mistyped)",
            });
        }
        let len = usize::from(u16::from_be_bytes([body[14], body[15]]));
        if body.len() != HEADER_LEN + len {
            return Err(unreadable("its length field disagrees with its size"));
        }
        let threshold = body[12];
        if threshold < 2 || index == 0 {
            return Err(unreadable("its threshold or index is out of range"));
        }
        let mut set_id = [0u8; 8];
        set_id.copy_from_slice(&body[4..12]);
        Ok(Share {
            set_id,
            threshold,
            index,
            value: Zeroizing::new(body[HEADER_LEN..].to_vec()),
        })
    }

    /// A text encoding for a console or paper: `rootcellar-share:` and the binary encoding in hex.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{TEXT_PREFIX}{}",
            hex::encode(&self.to_bytes()[..])
        ))
    }

    /// Reads the text encoding; surrounding whitespace is ignored.
    pub fn from_text(text: &str) -> Result<Share, ShareError> {
        let hex_part = text
            .trim()
            .strip_prefix(TEXT_PREFIX)
            .ok_or(ShareError::Unreadable {
                which: "given".into(),
                reason: "it does not start with \"rootcellar-share:\"",
            })?;
        let bytes = Zeroizing::new(hex::decode(hex_part).map_err(|_| ShareError::Unreadable {
            which: "given".into(),
            reason: "it is not hexadecimal",
        })?);
        Share::from_bytes(&bytes)
    }

    /// The form `vsss-rs` combines: the index (x-coordinate) followed by the value bytes.
    fn point(&self) -> Vec<u8> {
        let mut point = Vec::with_capacity(1 + self.value.len());
        point.push(self.index);
        point.extend_from_slice(&self.value);
        point
    }
}

/// The tag appended to the secret before splitting; it binds the split's header too.
fn tag(set_id: &[u8; 8], threshold: u8, secret: &[u8]) -> [u8; TAG_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(b"rootcellar shares v1\0");
    hasher.update(set_id);
    hasher.update([threshold]);
    hasher.update(secret);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&hasher.finalize()[..TAG_LEN]);
    out
}

/// Checks that `threshold`-of-`shares` is a usable split: `2 <= threshold <= shares`.
pub fn check_split(threshold: u8, shares: u8) -> Result<(), ShareError> {
    let invalid = |reason| ShareError::InvalidSplit {
        threshold: threshold.into(),
        shares: shares.into(),
        reason,
    };
    if threshold < 2 {
        return Err(invalid(
            "the threshold must be at least 2 (with 1, every share is the secret)",
        ));
    }
    if threshold > shares {
        return Err(invalid("the threshold exceeds the number of shares"));
    }
    Ok(())
}

/// Splits `secret` into `shares` shares, any `threshold` of which rebuild it.
///
/// `2 <= threshold <= shares <= 255`. Shares are numbered 1..=`shares`.
pub fn split_secret(secret: &[u8], threshold: u8, shares: u8) -> Result<Vec<Share>, ShareError> {
    check_split(threshold, shares)?;
    let invalid = |reason| ShareError::InvalidSplit {
        threshold: threshold.into(),
        shares: shares.into(),
        reason,
    };
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(ShareError::InvalidSecret(secret.len()));
    }
    let mut set_id = [0u8; 8];
    rand::RngCore::fill_bytes(&mut OsRng, &mut set_id);
    let mut payload = Zeroizing::new(Vec::with_capacity(secret.len() + TAG_LEN));
    payload.extend_from_slice(secret);
    payload.extend_from_slice(&tag(&set_id, threshold, secret));
    let mut points = vsss_rs::Gf256::split_array(
        usize::from(threshold),
        usize::from(shares),
        &payload[..],
        OsRng,
    )
    .map_err(|_| invalid("rejected by the secret-sharing library"))?;
    let result = points
        .iter()
        .map(|point| Share {
            set_id,
            threshold,
            index: point[0],
            value: Zeroizing::new(point[1..].to_vec()),
        })
        .collect();
    points.iter_mut().for_each(|p| p.zeroize());
    Ok(result)
}

/// Rebuilds the secret from at least `threshold` shares of one split.
///
/// Refuses shares of different splits, a share given twice, too few shares, and any set of
/// shares that does not rebuild the integrity tag. With more shares than the threshold, the
/// error names the shares that disagree with the others, when that can be told.
pub fn combine_shares(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    let Some(first) = shares.first() else {
        return Err(ShareError::NotEnoughShares {
            needed: 2,
            given: 0,
        });
    };
    let mut seen = [false; 256];
    for share in shares {
        if share.set_id != first.set_id || share.threshold != first.threshold {
            return Err(ShareError::DifferentSplits {
                first: first.set_id(),
                other: share.set_id(),
            });
        }
        if share.value.len() != first.value.len() || share.value.len() <= TAG_LEN {
            return Err(ShareError::Unreadable {
                which: format!("#{}", share.index),
                reason: "its length differs from the other shares'",
            });
        }
        if std::mem::replace(&mut seen[usize::from(share.index)], true) {
            return Err(ShareError::Duplicate(share.index));
        }
    }
    if shares.len() < usize::from(first.threshold) {
        return Err(ShareError::NotEnoughShares {
            needed: first.threshold,
            given: shares.len(),
        });
    }
    let refs: Vec<&Share> = shares.iter().collect();
    if let Some(secret) = combine_refs(&refs)? {
        return Ok(secret);
    }
    Err(ShareError::Inconsistent(name_disagreeing(shares)))
}

/// Combines the shares `refs` point to and checks the tag.
fn combine_refs(refs: &[&Share]) -> Result<Option<Zeroizing<Vec<u8>>>, ShareError> {
    let first = refs[0];
    let mut points: Vec<Vec<u8>> = refs.iter().map(|s| s.point()).collect();
    let combined = vsss_rs::Gf256::combine_array(&points);
    points.iter_mut().for_each(|p| p.zeroize());
    let mut payload = Zeroizing::new(combined.map_err(|_| {
        ShareError::Inconsistent("the secret-sharing library refused to combine them".into())
    })?);
    let secret_len = payload.len() - TAG_LEN;
    let expected = tag(&first.set_id, first.threshold, &payload[..secret_len]);
    if expected[..] != payload[secret_len..] {
        return Ok(None);
    }
    payload.truncate(secret_len);
    Ok(Some(payload))
}

/// Explains an inconsistent combination, naming the shares outside every consistent subset of
/// threshold size when the search is small enough to try.
fn name_disagreeing(shares: &[Share]) -> String {
    let m = usize::from(shares[0].threshold);
    let n = shares.len();
    let generic = "at least one share is corrupted or was altered".to_string();
    if n == m || subsets_count(n, m) > MAX_SUBSETS_TRIED {
        return generic;
    }
    let mut agreeing = vec![false; n];
    let mut found = false;
    let mut chosen: Vec<usize> = (0..m).collect();
    loop {
        let refs: Vec<&Share> = chosen.iter().map(|&i| &shares[i]).collect();
        if let Ok(Some(_)) = combine_refs(&refs) {
            found = true;
            chosen.iter().for_each(|&i| agreeing[i] = true);
        }
        if !next_subset(&mut chosen, n) {
            break;
        }
    }
    if !found {
        return generic;
    }
    let suspects: Vec<String> = shares
        .iter()
        .zip(&agreeing)
        .filter(|(_, ok)| !**ok)
        .map(|(s, _)| format!("#{}", s.index))
        .collect();
    format!(
        "share(s) {} disagree with the others (corrupted or altered); combine again without them",
        suspects.join(", ")
    )
}

fn subsets_count(n: usize, m: usize) -> usize {
    (0..m).fold(1usize, |acc, i| acc.saturating_mul(n - i) / (i + 1))
}

/// Advances `chosen` (sorted indices into 0..n) to the next subset in lexicographic order.
fn next_subset(chosen: &mut [usize], n: usize) -> bool {
    let m = chosen.len();
    for i in (0..m).rev() {
        if chosen[i] < n - m + i {
            chosen[i] += 1;
            for j in i + 1..m {
                chosen[j] = chosen[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"correct horse battery staple";

    #[test]
    fn any_m_of_n_rebuild_the_secret() {
        let shares = split_secret(SECRET, 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        let indices: Vec<u8> = shares.iter().map(Share::index).collect();
        assert_eq!(indices, [1, 2, 3, 4, 5]);
        let mut chosen: Vec<usize> = (0..3).collect();
        loop {
            let subset: Vec<Share> = chosen.iter().map(|&i| shares[i].clone()).collect();
            assert_eq!(&combine_shares(&subset).unwrap()[..], SECRET, "{chosen:?}");
            if !next_subset(&mut chosen, 5) {
                break;
            }
        }
        assert_eq!(&combine_shares(&shares).unwrap()[..], SECRET);
    }

    #[test]
    fn fewer_than_m_are_refused() {
        let shares = split_secret(SECRET, 3, 5).unwrap();
        let err = combine_shares(&shares[..2]).unwrap_err();
        assert!(
            matches!(
                err,
                ShareError::NotEnoughShares {
                    needed: 3,
                    given: 2
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn m_minus_one_shares_do_not_rebuild_the_secret_even_when_told_otherwise() {
        let shares = split_secret(SECRET, 3, 5).unwrap();
        // Relabel two shares as a 2-of-N split (what a cheating custodian could do): the
        // combination is a different value, and the tag refuses it.
        let lowered: Vec<Share> = shares[..2]
            .iter()
            .map(|s| Share {
                threshold: 2,
                ..s.clone()
            })
            .collect();
        let err = combine_shares(&lowered).unwrap_err();
        assert!(matches!(err, ShareError::Inconsistent(_)), "{err}");
        let points: Vec<Vec<u8>> = shares[..2].iter().map(Share::point).collect();
        let raw = vsss_rs::Gf256::combine_array(&points).unwrap();
        assert_ne!(&raw[..SECRET.len()], SECRET);
    }

    #[test]
    fn one_share_of_two_is_uniform_whatever_the_secret() {
        // Fewer than M shares carry no information: the first byte of share #1 of a 2-of-3
        // split is uniform over 0..=255 for a secret of 0x00 as for 0xff (chi-square with 255
        // degrees of freedom; 400 is about 6 standard deviations above the mean).
        const SPLITS: usize = 4096;
        for secret in [0x00u8, 0xff] {
            let mut counts = [0usize; 256];
            for _ in 0..SPLITS {
                let shares = split_secret(&[secret], 2, 3).unwrap();
                counts[usize::from(shares[0].value[0])] += 1;
            }
            let expected = SPLITS as f64 / 256.0;
            let chi2: f64 = counts
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum();
            assert!(chi2 < 400.0, "secret {secret:#04x}: chi-square {chi2}");
        }
    }

    #[test]
    fn a_corrupted_share_is_detected_and_named() {
        let shares = split_secret(SECRET, 2, 4).unwrap();
        let mut bad = shares[1].clone();
        bad.value[3] ^= 0x40;
        // Exactly M shares: the tag catches it, but the culprit cannot be told apart.
        let err = combine_shares(&[shares[0].clone(), bad.clone()]).unwrap_err();
        assert!(matches!(err, ShareError::Inconsistent(_)), "{err}");
        // More than M: the share outside every consistent subset is named.
        let err = combine_shares(&[shares[0].clone(), bad, shares[2].clone()]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("#2 disagree"), "{message}");
    }

    #[test]
    fn encodings_round_trip_and_checksums_catch_damage() {
        let shares = split_secret(SECRET, 2, 3).unwrap();
        let text = shares[2].to_text();
        let back = Share::from_text(&text).unwrap();
        assert_eq!(back.index(), 3);
        assert_eq!(back.threshold(), 2);
        assert_eq!(back.set_id(), shares[2].set_id());
        assert_eq!(back.value, shares[2].value);
        let mut bytes = shares[0].to_bytes();
        let last = bytes.len() - CHECK_LEN - 1;
        bytes[last] ^= 1;
        let err = Share::from_bytes(&bytes).unwrap_err();
        assert!(err.to_string().contains("#1 is unreadable"), "{err}");
        assert!(Share::from_text("rootcellar-share:zz").is_err());
        assert!(Share::from_bytes(b"RCS1").is_err());
        assert!(!format!("{:?}", shares[0]).contains(&hex::encode(&shares[0].value[..])));
    }

    #[test]
    fn mixed_splits_duplicates_and_bad_parameters_are_refused() {
        let a = split_secret(SECRET, 2, 3).unwrap();
        let b = split_secret(SECRET, 2, 3).unwrap();
        let err = combine_shares(&[a[0].clone(), b[1].clone()]).unwrap_err();
        assert!(matches!(err, ShareError::DifferentSplits { .. }), "{err}");
        let err = combine_shares(&[a[0].clone(), a[0].clone()]).unwrap_err();
        assert!(matches!(err, ShareError::Duplicate(1)), "{err}");
        assert!(split_secret(SECRET, 1, 3).is_err());
        assert!(split_secret(SECRET, 4, 3).is_err());
        assert!(split_secret(b"", 2, 3).is_err());
        assert!(split_secret(&[0u8; MAX_SECRET_LEN + 1], 2, 3).is_err());
        assert!(combine_shares(&[]).is_err());
    }
}
