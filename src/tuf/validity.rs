//! How long published metadata stays valid, said where it bites: after publishing (on the
//! appliance, counted from the confirmed time) and after importing (on the cluster, from the
//! verification time). A role with less than its signing period left is due to be re-signed;
//! a disconnected cluster that is not sent fresh metadata before then stops verifying.

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::Role;
use crate::time::human;

/// One role's validity, counted from a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleValidity {
    /// The role.
    pub role: Role,
    /// Its version.
    pub version: u64,
    /// When it expires.
    pub expires: Timestamp,
    /// From when the validity is counted (the confirmed time, or the verification time).
    pub from: Timestamp,
    /// Its signing period in days: re-sign when less than this is left.
    pub signing_days: u32,
}

impl RoleValidity {
    /// What is left.
    pub fn remaining(&self) -> SignedDuration {
        self.expires.duration_since(self.from)
    }

    /// Whether less than the signing period is left (or nothing).
    pub fn due(&self) -> bool {
        self.remaining() < SignedDuration::from_hours(i64::from(self.signing_days) * 24)
    }

    /// "timestamp v3 valid until …, 7 days".
    pub fn line(&self) -> String {
        let remaining = self.remaining();
        if remaining.is_positive() {
            format!(
                "{} v{} valid until {}, {} from {}",
                self.role,
                self.version,
                self.expires,
                human(remaining),
                self.from
            )
        } else {
            format!(
                "{} v{} EXPIRED at {}, {} before {}",
                self.role,
                self.version,
                self.expires,
                human(remaining.abs()),
                self.from
            )
        }
    }

    /// A warning when less than the signing period is left.
    pub fn warning(&self) -> Option<String> {
        if !self.due() {
            return None;
        }
        Some(if self.remaining().is_positive() {
            format!(
                "warning: {} v{} expires at {}, {} from {}: less than its signing period of {} \
                 days; sign and deliver a new {} before then",
                self.role,
                self.version,
                self.expires,
                human(self.remaining()),
                self.from,
                self.signing_days,
                self.role
            )
        } else {
            format!(
                "warning: {} v{} expired at {}, before {}: clients refuse this repository",
                self.role, self.version, self.expires, self.from
            )
        })
    }

    /// The machine-readable form.
    pub fn to_json(&self) -> Value {
        json!({
            "role": self.role.name(),
            "version": self.version,
            "expires": self.expires.to_string(),
            "remaining_seconds": self.remaining().as_secs(),
            "signing_days": self.signing_days,
            "due": self.due(),
        })
    }
}

/// The validity lines and then the warnings, one per line.
pub fn validity_text(roles: &[RoleValidity]) -> String {
    let mut text = String::new();
    for role in roles {
        text.push_str(&format!("  {}\n", role.line()));
    }
    for warning in roles.iter().filter_map(RoleValidity::warning) {
        text.push_str(&warning);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validity(role: Role, days_left: i64) -> RoleValidity {
        let from: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        RoleValidity {
            role,
            version: 3,
            expires: from
                .checked_add(SignedDuration::from_hours(days_left * 24))
                .unwrap(),
            from,
            signing_days: role.default_signing_days(),
        }
    }

    #[test]
    fn a_role_inside_its_signing_period_is_warned_about() {
        let fresh = validity(Role::Timestamp, 7);
        assert!(!fresh.due());
        assert_eq!(
            fresh.line(),
            "timestamp v3 valid until 2026-12-13T10:00:00Z, 7 days from 2026-12-06T10:00:00Z"
        );
        assert_eq!(fresh.warning(), None);
        let root = validity(Role::Root, 30);
        let warning = root.warning().unwrap();
        assert!(
            warning.contains("less than its signing period of 42 days"),
            "{warning}"
        );
        let expired = validity(Role::Snapshot, -1);
        assert!(expired.line().contains("EXPIRED"), "{}", expired.line());
        assert!(expired.warning().unwrap().contains("clients refuse"));
        let text = validity_text(&[fresh, root]);
        assert_eq!(text.lines().count(), 3, "{text}");
    }
}
