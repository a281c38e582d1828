//! The repository policy: which keys hold each top-level role, how many must sign, and how long
//! each role's metadata stays valid. Read from TOML (`tuf-repo/policy.toml`), with the key URIs
//! either in the policy's `[keys]` table or in a separate keys file, and validated whole before
//! any key is opened.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TufError;

/// A top-level TUF role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Signs the list of keys and thresholds for every role (held offline, by custodians).
    Root,
    /// Signs the list of target files with their hashes.
    Targets,
    /// Signs the versions of the targets metadata.
    Snapshot,
    /// Signs the current snapshot, the freshness signal.
    Timestamp,
}

impl Role {
    /// Every top-level role, in the order TUF lists them.
    pub const ALL: [Role; 4] = [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp];

    /// The role's name as TUF spells it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
        }
    }

    pub(crate) fn tough(self) -> tough::schema::RoleType {
        use tough::schema::RoleType;
        match self {
            Role::Root => RoleType::Root,
            Role::Targets => RoleType::Targets,
            Role::Snapshot => RoleType::Snapshot,
            Role::Timestamp => RoleType::Timestamp,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One role's entry in the policy (`[roles.<name>]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePolicy {
    /// Names of the keys that hold the role, each defined in a `[keys]` table.
    pub keys: Vec<String>,
    /// How many of those keys must sign for a client to accept the role's metadata.
    pub threshold: u64,
    /// How long the role's metadata is valid after it is signed, in days.
    pub expires_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyToml {
    #[serde(default = "consistent_snapshot_default")]
    consistent_snapshot: bool,
    roles: RolesToml,
    #[serde(default)]
    keys: BTreeMap<String, String>,
}

fn consistent_snapshot_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesToml {
    root: RolePolicy,
    targets: RolePolicy,
    snapshot: RolePolicy,
    timestamp: RolePolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysToml {
    keys: BTreeMap<String, String>,
}

/// A key name's URI and the file that defined it (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyEntry {
    uri: String,
    file: PathBuf,
}

/// A repository policy, parsed from TOML.
///
/// [`Policy::load`] returns a validated policy; [`Policy::validate`] can be called again by
/// anything about to sign with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    file: PathBuf,
    consistent_snapshot: bool,
    roles: BTreeMap<Role, RolePolicy>,
    keys: BTreeMap<String, KeyEntry>,
}

impl Policy {
    /// Reads the policy at `policy`, adds the key URIs from `keys` when given, and validates the
    /// result.
    pub fn load(policy: &Path, keys: Option<&Path>) -> Result<Policy, TufError> {
        let mut parsed = Policy::from_toml(&read(policy)?, policy)?;
        if let Some(keys) = keys {
            parsed.add_keys_toml(&read(keys)?, keys)?;
        }
        parsed.validate()?;
        Ok(parsed)
    }

    /// Parses policy text; `file` names it in error messages. Does not validate.
    pub fn from_toml(text: &str, file: &Path) -> Result<Policy, TufError> {
        let parsed: PolicyToml = toml::from_str(text).map_err(|e| syntax(file, e))?;
        let roles = BTreeMap::from([
            (Role::Root, parsed.roles.root),
            (Role::Targets, parsed.roles.targets),
            (Role::Snapshot, parsed.roles.snapshot),
            (Role::Timestamp, parsed.roles.timestamp),
        ]);
        let keys = parsed
            .keys
            .into_iter()
            .map(|(name, uri)| {
                let file = file.to_path_buf();
                (name, KeyEntry { uri, file })
            })
            .collect();
        Ok(Policy {
            file: file.to_path_buf(),
            consistent_snapshot: parsed.consistent_snapshot,
            roles,
            keys,
        })
    }

    /// Adds the `[keys]` table of a keys file; `file` names it in error messages. A name may be
    /// given only once across the policy and the keys file, so that no URI silently wins.
    pub fn add_keys_toml(&mut self, text: &str, file: &Path) -> Result<(), TufError> {
        let parsed: KeysToml = toml::from_str(text).map_err(|e| syntax(file, e))?;
        for (name, uri) in parsed.keys {
            if let Some(existing) = self.keys.get(&name) {
                return Err(invalid(
                    file,
                    format!("keys.{name}"),
                    format!(
                        "is already given in {}; a key name has one URI",
                        existing.file.display()
                    ),
                ));
            }
            let file = file.to_path_buf();
            self.keys.insert(name, KeyEntry { uri, file });
        }
        Ok(())
    }

    /// Checks the policy as a whole; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), TufError> {
        if !self.consistent_snapshot {
            return Err(invalid(
                &self.file,
                "consistent_snapshot",
                "false is not supported: rootcellar writes consistent snapshots only, so that \
                 clients never see a metadata file change under a name they already fetched",
            ));
        }
        for (name, entry) in &self.keys {
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    &entry.file,
                    format!("keys.{name:?}"),
                    "a key name must be non-empty, without spaces or control characters",
                ));
            }
            if entry.uri.trim().is_empty() {
                return Err(invalid(
                    &entry.file,
                    format!("keys.{name}"),
                    "the URI is empty",
                ));
            }
        }
        for (role, policy) in &self.roles {
            self.validate_role(*role, policy)?;
        }
        Ok(())
    }

    fn validate_role(&self, role: Role, policy: &RolePolicy) -> Result<(), TufError> {
        let field = |name: &str| format!("roles.{role}.{name}");
        let listed = policy.keys.len();
        if listed == 0 {
            return Err(invalid(
                &self.file,
                field("keys"),
                "lists no keys; a role needs at least one",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut uris: BTreeMap<&str, &str> = BTreeMap::new();
        for name in &policy.keys {
            if !seen.insert(name.as_str()) {
                return Err(invalid(
                    &self.file,
                    field("keys"),
                    format!("{name:?} is listed twice; a threshold counts distinct keys"),
                ));
            }
            let Some(entry) = self.keys.get(name) else {
                return Err(invalid(
                    &self.file,
                    field("keys"),
                    format!(
                        "key {name:?} has no URI: add {name} = \"pkcs11:…\" to a [keys] table \
                         in the policy or in the file given with --keys"
                    ),
                ));
            };
            if let Some(other) = uris.insert(entry.uri.as_str(), name.as_str()) {
                return Err(invalid(
                    &self.file,
                    field("keys"),
                    format!(
                        "{other:?} and {name:?} have the same URI; a threshold counts distinct keys"
                    ),
                ));
            }
        }
        if policy.threshold == 0 {
            return Err(invalid(
                &self.file,
                field("threshold"),
                "must be at least 1",
            ));
        }
        if policy.threshold > listed as u64 {
            return Err(invalid(
                &self.file,
                field("threshold"),
                format!(
                    "{} exceeds the {listed} key{} listed",
                    policy.threshold,
                    if listed == 1 { "" } else { "s" }
                ),
            ));
        }
        if policy.expires_days == 0 {
            return Err(invalid(
                &self.file,
                field("expires_days"),
                "must be at least 1 day",
            ));
        }
        Ok(())
    }

    /// The file the policy was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The policy of one role.
    pub fn role(&self, role: Role) -> &RolePolicy {
        // `from_toml` fills every role; the TOML shape requires all four.
        &self.roles[&role]
    }

    /// The URI of the key `name`, if a `[keys]` table gives one.
    pub fn key_uri(&self, name: &str) -> Option<&str> {
        self.keys.get(name).map(|entry| entry.uri.as_str())
    }
}

fn read(file: &Path) -> Result<String, TufError> {
    std::fs::read_to_string(file).map_err(|source| TufError::PolicyUnreadable {
        file: file.to_path_buf(),
        source,
    })
}

fn syntax(file: &Path, error: toml::de::Error) -> TufError {
    TufError::PolicySyntax {
        file: file.to_path_buf(),
        message: error.to_string().trim_end().to_string(),
    }
}

fn invalid(file: &Path, field: impl Into<String>, problem: impl Into<String>) -> TufError {
    TufError::PolicyInvalid {
        file: file.to_path_buf(),
        field: field.into(),
        problem: problem.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        consistent_snapshot = true

        [roles.root]
        keys = ["root-1", "root-2", "root-3"]
        threshold = 2
        expires_days = 182

        [roles.targets]
        keys = ["targets"]
        threshold = 1
        expires_days = 182

        [roles.snapshot]
        keys = ["snapshot"]
        threshold = 1
        expires_days = 21

        [roles.timestamp]
        keys = ["timestamp"]
        threshold = 1
        expires_days = 7
    "#;

    const KEYS: &str = r#"
        [keys]
        root-1 = "pkcs11:token=c1;object=root-1"
        root-2 = "pkcs11:token=c2;object=root-2"
        root-3 = "pkcs11:token=c2;object=root-3"
        targets = "pkcs11:token=online;object=targets"
        snapshot = "pkcs11:token=online;object=snapshot"
        timestamp = "pkcs11:token=online;object=timestamp"
    "#;

    fn policy(text: &str) -> Result<Policy, TufError> {
        let mut policy = Policy::from_toml(text, Path::new("policy.toml"))?;
        policy.add_keys_toml(KEYS, Path::new("keys.toml"))?;
        policy.validate()?;
        Ok(policy)
    }

    fn error(text: &str) -> String {
        policy(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_roles_and_keys_from_two_files() {
        let policy = policy(GOOD).unwrap();
        let root = policy.role(Role::Root);
        assert_eq!(root.keys, ["root-1", "root-2", "root-3"]);
        assert_eq!((root.threshold, root.expires_days), (2, 182));
        assert_eq!(policy.role(Role::Timestamp).expires_days, 7);
        assert_eq!(
            policy.key_uri("root-2"),
            Some("pkcs11:token=c2;object=root-2")
        );
        assert_eq!(policy.key_uri("nobody"), None);
    }

    #[test]
    fn committed_policy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuf-repo/policy.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = Policy::from_toml(&text, &path).unwrap();
        assert_eq!(parsed.role(Role::Timestamp).expires_days, 7);
        // Its keys come from a keys file made per ceremony, so alone it names missing URIs.
        let err = parsed.validate().unwrap_err().to_string();
        assert!(
            err.contains("roles.root.keys") && err.contains("has no URI"),
            "{err}"
        );
    }

    #[test]
    fn committed_policy_and_example_keys_validate_together() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuf-repo");
        let policy = Policy::load(
            &dir.join("policy.toml"),
            Some(&dir.join("keys.example.toml")),
        )
        .unwrap();
        assert_eq!(policy.role(Role::Root).threshold, 2);
        assert!(policy.key_uri("timestamp").unwrap().starts_with("pkcs11:"));
    }

    #[test]
    fn threshold_above_key_count_names_the_field() {
        let err = error(&GOOD.replace("threshold = 2", "threshold = 4"));
        assert_eq!(
            err,
            "policy.toml: roles.root.threshold: 4 exceeds the 3 keys listed"
        );
    }

    #[test]
    fn zero_threshold_and_zero_expiry_are_refused() {
        let err = error(&GOOD.replace("threshold = 2", "threshold = 0"));
        assert!(
            err.contains("roles.root.threshold: must be at least 1"),
            "{err}"
        );
        let err = error(&GOOD.replace("expires_days = 7", "expires_days = 0"));
        assert!(err.contains("roles.timestamp.expires_days"), "{err}");
    }

    #[test]
    fn unknown_field_is_refused_with_its_name() {
        let err = error(&GOOD.replace("threshold = 2", "threshold = 2\ncolour = \"red\""));
        assert!(err.contains("unknown field `colour`"), "{err}");
        assert!(err.starts_with("policy.toml is not a valid"), "{err}");
        let err = error(&format!("{GOOD}\n[roles.mirrors]\nkeys = []\n"));
        assert!(err.contains("unknown field `mirrors`"), "{err}");
    }

    #[test]
    fn missing_role_is_refused() {
        let text = GOOD.replace("[roles.timestamp]", "[roles.timestampp]");
        let err = error(&text);
        assert!(err.contains("timestampp"), "{err}");
    }

    #[test]
    fn key_without_uri_names_the_role_and_key() {
        let err = error(&GOOD.replace("\"targets\"]", "\"targets-2\"]"));
        assert!(err.contains("roles.targets.keys"), "{err}");
        assert!(err.contains("\"targets-2\" has no URI"), "{err}");
    }

    #[test]
    fn duplicate_key_in_a_role_is_refused() {
        let err = error(&GOOD.replace("\"root-3\"]", "\"root-1\"]"));
        assert!(
            err.contains("roles.root.keys: \"root-1\" is listed twice"),
            "{err}"
        );
    }

    #[test]
    fn two_names_for_one_uri_in_a_role_are_refused() {
        let mut policy = Policy::from_toml(GOOD, Path::new("policy.toml")).unwrap();
        policy
            .add_keys_toml(
                &KEYS.replace("token=c2;object=root-3", "token=c2;object=root-2"),
                Path::new("keys.toml"),
            )
            .unwrap();
        let err = policy.validate().unwrap_err().to_string();
        assert!(
            err.contains("\"root-2\" and \"root-3\" have the same URI"),
            "{err}"
        );
    }

    #[test]
    fn key_given_in_both_files_is_refused() {
        let text = format!("{GOOD}\n[keys]\nroot-1 = \"pkcs11:token=x;object=y\"\n");
        let err = error(&text);
        assert!(
            err.starts_with("keys.toml: keys.root-1: is already given in policy.toml"),
            "{err}"
        );
    }

    #[test]
    fn consistent_snapshot_off_is_refused() {
        let err = error(&GOOD.replace("consistent_snapshot = true", "consistent_snapshot = false"));
        assert!(err.contains("policy.toml: consistent_snapshot:"), "{err}");
    }

    #[test]
    fn negative_threshold_is_a_syntax_error_with_the_line() {
        let err = error(&GOOD.replace("threshold = 2", "threshold = -1"));
        assert!(err.contains("line"), "{err}");
    }
}
