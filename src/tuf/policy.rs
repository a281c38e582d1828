//! The repository policy: which keys hold each top-level role, how many must sign, how long
//! each role's metadata stays valid and when it is due to be re-signed, and whether snapshot and
//! timestamp are signed here (`offline`) or by an online service (`online`). Read from TOML
//! (`tuf-repo/policy.toml`), with the keys (HSM URIs or public-key PEM files) either in the
//! policy's `[keys]` table or in a separate keys file, and validated whole before any key is
//! opened.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TufError;
use crate::keys::KeyLocation;

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

    /// The signing period used when the policy gives none: root and targets six weeks (as
    /// Sigstore re-signs its root), snapshot a week, timestamp two days.
    pub fn default_signing_days(self) -> u32 {
        match self {
            Role::Root | Role::Targets => 42,
            Role::Snapshot => 7,
            Role::Timestamp => 2,
        }
    }

    /// The role named `name`, if it is a top-level role.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The role's name as TUF spells it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
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
    /// Re-sign when fewer than this many days of validity remain (the signing period). When
    /// absent, [`Role::default_signing_days`], capped below `expires_days`.
    #[serde(default)]
    pub signing_days: Option<u32>,
}

impl RolePolicy {
    /// The signing period in days: the policy's, or the role's default below `expires_days`.
    pub fn effective_signing_days(&self, role: Role) -> u32 {
        self.signing_days.unwrap_or_else(|| {
            role.default_signing_days()
                .min(self.expires_days.saturating_sub(1))
        })
    }
}

/// Who signs snapshot and timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The appliance signs every role, snapshot and timestamp included, with keys in its
    /// tokens: for disconnected clusters, which have no timestamp service.
    #[default]
    Offline,
    /// The appliance signs root and targets only; snapshot and timestamp are signed by an online
    /// service, whose public keys the policy names as PEM files.
    Online,
}

impl Mode {
    /// The mode's name as the policy spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Offline => "offline",
            Mode::Online => "online",
        }
    }
}

/// Where a key named by the policy lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// In a token, named by its URI (parsed when the policy is read): the appliance can sign
    /// with it.
    Hsm(KeyLocation),
    /// Elsewhere: only its public key is known, as a PEM SubjectPublicKeyInfo file (the path is
    /// resolved against the directory of the file that names it).
    PublicKeyFile(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyToml {
    #[serde(default = "consistent_snapshot_default")]
    consistent_snapshot: bool,
    #[serde(default)]
    mode: Mode,
    roles: RolesToml,
    #[serde(default)]
    keys: BTreeMap<String, toml::Value>,
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
    keys: BTreeMap<String, toml::Value>,
}

/// A key name's location and the file that defined it (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyEntry {
    spec: KeySpec,
    file: PathBuf,
}

impl KeyEntry {
    /// A `[keys]` value: a URI string, or `{ public_key = "file.pem" }`.
    fn parse(name: &str, value: toml::Value, file: &Path) -> Result<KeyEntry, TufError> {
        let spec = match value {
            toml::Value::String(uri) if uri.trim().is_empty() => {
                return Err(invalid(file, format!("keys.{name}"), "the URI is empty"))
            }
            toml::Value::String(uri) => KeySpec::Hsm(
                KeyLocation::parse(&uri)
                    .map_err(|e| invalid(file, format!("keys.{name}"), e.to_string()))?,
            ),
            toml::Value::Table(table) => {
                let mut path = None;
                for (field, value) in table {
                    match (field.as_str(), value) {
                        ("public_key", toml::Value::String(p)) => path = Some(p),
                        ("public_key", _) => {
                            return Err(invalid(
                                file,
                                format!("keys.{name}.public_key"),
                                "must be the path of a PEM public key file",
                            ))
                        }
                        (other, _) => return Err(invalid(
                            file,
                            format!("keys.{name}.{other}"),
                            "unknown field; a key is a URI string or { public_key = \"file.pem\" }",
                        )),
                    }
                }
                let path = path.ok_or_else(|| {
                    invalid(
                        file,
                        format!("keys.{name}"),
                        "a key table needs public_key = \"file.pem\"",
                    )
                })?;
                KeySpec::PublicKeyFile(parent_of(file).join(path))
            }
            _ => {
                return Err(invalid(
                    file,
                    format!("keys.{name}"),
                    "must be a key URI string or { public_key = \"file.pem\" }",
                ))
            }
        };
        Ok(KeyEntry {
            spec,
            file: file.to_path_buf(),
        })
    }
}

fn parent_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A repository policy, parsed from TOML.
///
/// [`Policy::load`] returns a validated policy; [`Policy::validate`] can be called again by
/// anything about to sign with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    file: PathBuf,
    consistent_snapshot: bool,
    mode: Mode,
    roles: BTreeMap<Role, RolePolicy>,
    keys: BTreeMap<String, KeyEntry>,
    /// A rehearsal's repository: every root it signs carries [`REHEARSAL_FIELD`].
    rehearsal: bool,
}

/// The field a rehearsal's TUF roots carry in `signed` (TUF clients keep fields they do not
/// know, and they are signed like the rest): its value says what it is to anyone who reads the
/// file, and `import` refuses a repository whose root carries it unless told otherwise.
pub const REHEARSAL_FIELD: &str = "x-rootcellar-rehearsal";

/// The value of [`REHEARSAL_FIELD`].
pub const REHEARSAL_MARK: &str = "REHEARSAL - NOT FOR PRODUCTION: signed with throwaway keys";

impl Policy {
    /// Marks the repository as a rehearsal's: the roots signed under this policy say so.
    pub fn for_rehearsal(mut self, rehearsal: bool) -> Self {
        self.rehearsal = rehearsal;
        self
    }

    /// Whether the roots signed under this policy are marked as a rehearsal's.
    pub fn is_rehearsal(&self) -> bool {
        self.rehearsal
    }

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

    /// Reads a policy for a refresh of snapshot and timestamp: only their keys need locations
    /// ([`Policy::validate_for_refresh`]).
    pub fn load_for_refresh(policy: &Path, keys: Option<&Path>) -> Result<Policy, TufError> {
        let mut parsed = Policy::from_toml(&read(policy)?, policy)?;
        if let Some(keys) = keys {
            parsed.add_keys_toml(&read(keys)?, keys)?;
        }
        parsed.validate_for_refresh()?;
        Ok(parsed)
    }

    /// Reads a policy for what it says about roles (thresholds, expiry, signing periods), adding
    /// the keys file when given, and validates it except that every key name needs a location:
    /// for commands that set expiries but sign nothing (`tuf targets`, `tuf status`).
    pub fn load_roles(policy: &Path, keys: Option<&Path>) -> Result<Policy, TufError> {
        let mut parsed = Policy::from_toml(&read(policy)?, policy)?;
        if let Some(keys) = keys {
            parsed.add_keys_toml(&read(keys)?, keys)?;
        }
        if let Err(e) = parsed.validate() {
            let unresolved = matches!(&e, TufError::PolicyInvalid { problem, .. } if problem.contains("has no URI"));
            if !unresolved {
                return Err(e);
            }
        }
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
        let mut keys = BTreeMap::new();
        for (name, value) in parsed.keys {
            let entry = KeyEntry::parse(&name, value, file)?;
            keys.insert(name, entry);
        }
        Ok(Policy {
            file: file.to_path_buf(),
            consistent_snapshot: parsed.consistent_snapshot,
            mode: parsed.mode,
            roles,
            keys,
            rehearsal: false,
        })
    }

    /// Adds the `[keys]` table of a keys file; `file` names it in error messages. A name may be
    /// given only once across the policy and the keys file, so that no URI silently wins.
    pub fn add_keys_toml(&mut self, text: &str, file: &Path) -> Result<(), TufError> {
        let parsed: KeysToml = toml::from_str(text).map_err(|e| syntax(file, e))?;
        for (name, value) in parsed.keys {
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
            let entry = KeyEntry::parse(&name, value, file)?;
            self.keys.insert(name, entry);
        }
        Ok(())
    }

    /// Checks the policy as a whole; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), TufError> {
        self.validate_common()?;
        for (role, policy) in &self.roles {
            self.validate_role(*role, policy)?;
        }
        self.validate_mode()
    }

    /// What a refresh of snapshot and timestamp needs of the policy: those two roles whole (keys
    /// bound, thresholds, periods) and the mode. Root and targets keys may be unbound: a refresh
    /// signs neither, so the custodians' tokens need not be named or present.
    pub fn validate_for_refresh(&self) -> Result<(), TufError> {
        self.validate_common()?;
        for role in [Role::Snapshot, Role::Timestamp] {
            self.validate_role(role, self.role(role))?;
        }
        self.validate_mode()
    }

    /// Consistent snapshots, and well-formed key names and locations.
    fn validate_common(&self) -> Result<(), TufError> {
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
            let empty = match &entry.spec {
                KeySpec::Hsm(_) => false,
                KeySpec::PublicKeyFile(path) => path.as_os_str().is_empty(),
            };
            if empty {
                return Err(invalid(
                    &entry.file,
                    format!("keys.{name}"),
                    "the URI is empty",
                ));
            }
        }
        Ok(())
    }

    /// Offline: the appliance signs snapshot and timestamp, so their keys are in its tokens.
    /// Online: it holds only their public keys, and those keys hold no offline role.
    fn validate_mode(&self) -> Result<(), TufError> {
        for role in [Role::Snapshot, Role::Timestamp] {
            for name in &self.role(role).keys {
                let external = matches!(self.key_spec(name), Some(KeySpec::PublicKeyFile(_)));
                match self.mode {
                    Mode::Offline if external => {
                        return Err(invalid(
                            &self.file,
                            format!("roles.{role}.keys"),
                            format!(
                                "key {name:?} is an external public key, but in mode \"offline\" \
                                 the appliance signs {role} itself: give its HSM URI, or set \
                                 mode = \"online\""
                            ),
                        ))
                    }
                    Mode::Online if !external => {
                        return Err(invalid(
                            &self.file,
                            format!("roles.{role}.keys"),
                            format!(
                                "key {name:?} is an HSM URI, but in mode \"online\" {role} is \
                                 signed by the online service: give its public key as \
                                 {{ public_key = \"{name}.pem\" }}"
                            ),
                        ))
                    }
                    _ => {}
                }
                if self.mode == Mode::Online {
                    for offline in [Role::Root, Role::Targets] {
                        if self.role(offline).keys.contains(name) {
                            return Err(invalid(
                                &self.file,
                                format!("roles.{offline}.keys"),
                                format!(
                                    "key {name:?} is the online {role} key; an online key must \
                                     not hold the offline {offline} role"
                                ),
                            ));
                        }
                    }
                }
            }
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
        let mut uris: BTreeMap<String, &str> = BTreeMap::new();
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
            let location = match &entry.spec {
                KeySpec::Hsm(location) => location.to_string(),
                KeySpec::PublicKeyFile(path) => path.display().to_string(),
            };
            if let Some(other) = uris.insert(location, name.as_str()) {
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
        if let Some(days) = policy.signing_days {
            if days >= policy.expires_days {
                return Err(invalid(
                    &self.file,
                    field("signing_days"),
                    format!(
                        "{days} is not less than expires_days ({}): the metadata would be due \
                         for re-signing as soon as it is signed",
                        policy.expires_days
                    ),
                ));
            }
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

    /// Where the key `name` lives in a token, if a `[keys]` table gives its URI (not for
    /// external keys).
    pub fn key_location(&self, name: &str) -> Option<&KeyLocation> {
        match self.key_spec(name) {
            Some(KeySpec::Hsm(location)) => Some(location),
            _ => None,
        }
    }

    /// Where the key `name` lives, if a `[keys]` table says.
    pub fn key_spec(&self, name: &str) -> Option<&KeySpec> {
        self.keys.get(name).map(|entry| &entry.spec)
    }

    /// Who signs snapshot and timestamp.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every key name the policy's roles use, sorted, each once.
    pub fn key_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .roles
            .values()
            .flat_map(|r| r.keys.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
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
            policy
                .key_location("root-2")
                .map(|l| l.to_string())
                .as_deref(),
            Some("pkcs11:token=c2;object=root-2")
        );
        assert_eq!(policy.key_location("nobody"), None);
    }

    #[test]
    fn committed_policy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuf-repo/policy.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = Policy::from_toml(&text, &path).unwrap();
        // A monthly import cadence for disconnected clusters: 90 days, due when 60 remain.
        assert_eq!(parsed.role(Role::Timestamp).expires_days, 90);
        assert_eq!(parsed.role(Role::Timestamp).signing_days, Some(60));
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
        assert!(policy
            .key_location("timestamp")
            .unwrap()
            .to_string()
            .starts_with("pkcs11:"));
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
    fn signing_period_defaults_below_expiry_and_must_be_shorter() {
        let parsed = policy(GOOD).unwrap();
        assert_eq!(parsed.mode(), Mode::Offline);
        let root = parsed.role(Role::Root);
        assert_eq!(root.effective_signing_days(Role::Root), 42);
        let timestamp = parsed.role(Role::Timestamp);
        assert_eq!(timestamp.effective_signing_days(Role::Timestamp), 2);
        let short = RolePolicy {
            expires_days: 1,
            ..timestamp.clone()
        };
        assert_eq!(short.effective_signing_days(Role::Timestamp), 0);

        let text = GOOD.replacen(
            "expires_days = 182",
            "expires_days = 182\nsigning_days = 42",
            1,
        );
        assert_eq!(
            policy(&text).unwrap().role(Role::Root).signing_days,
            Some(42)
        );
        let err =
            error(&GOOD.replacen("expires_days = 7", "expires_days = 7\nsigning_days = 7", 1));
        assert!(
            err.starts_with("policy.toml: roles.timestamp.signing_days: 7 is not less than"),
            "{err}"
        );
    }

    const ONLINE_KEYS: &str = r#"
        [keys]
        root-1 = "pkcs11:token=c1;object=root-1"
        root-2 = "pkcs11:token=c2;object=root-2"
        root-3 = "pkcs11:token=c2;object=root-3"
        targets = "pkcs11:token=online;object=targets"
        snapshot = { public_key = "online/snapshot.pem" }
        timestamp = { public_key = "/etc/rootcellar/timestamp.pem" }
    "#;

    fn online(text: &str, keys: &str) -> Result<Policy, TufError> {
        let mut policy = Policy::from_toml(text, Path::new("dir/policy.toml"))?;
        policy.add_keys_toml(keys, Path::new("conf/keys.toml"))?;
        policy.validate()?;
        Ok(policy)
    }

    #[test]
    fn online_mode_takes_public_keys_for_snapshot_and_timestamp() {
        let text = format!("mode = \"online\"\n{GOOD}");
        let policy = online(&text, ONLINE_KEYS).unwrap();
        assert_eq!(policy.mode(), Mode::Online);
        assert_eq!(
            policy.key_spec("snapshot"),
            Some(&KeySpec::PublicKeyFile(PathBuf::from(
                "conf/online/snapshot.pem"
            )))
        );
        assert_eq!(
            policy.key_spec("timestamp"),
            Some(&KeySpec::PublicKeyFile(PathBuf::from(
                "/etc/rootcellar/timestamp.pem"
            )))
        );
        assert_eq!(policy.key_location("snapshot"), None);

        // Offline, the appliance must hold them.
        let err = online(GOOD, ONLINE_KEYS).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "dir/policy.toml: roles.snapshot.keys: key \"snapshot\" is an external public key"
            ),
            "{err}"
        );
        // Online, they must not be in the appliance's tokens.
        let err = online(&text, KEYS).unwrap_err().to_string();
        assert!(
            err.contains(
                "roles.snapshot.keys: key \"snapshot\" is an HSM URI, but in mode \"online\""
            ),
            "{err}"
        );
        // An online key holds no offline role.
        let shared = text.replacen("keys = [\"targets\"]", "keys = [\"timestamp\"]", 1);
        let err = online(&shared, ONLINE_KEYS).unwrap_err().to_string();
        assert!(
            err.contains("roles.targets.keys: key \"timestamp\" is the online timestamp key"),
            "{err}"
        );
        let err = online(&text.replace("online", "hybrid"), ONLINE_KEYS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `hybrid`"), "{err}");
    }

    #[test]
    fn a_key_table_needs_exactly_public_key() {
        let keys = ONLINE_KEYS.replace("public_key = \"online/snapshot.pem\"", "pem = \"x\"");
        let err = online(GOOD, &keys).unwrap_err().to_string();
        assert!(err.contains("keys.snapshot.pem: unknown field"), "{err}");
        let keys = ONLINE_KEYS.replace("{ public_key = \"online/snapshot.pem\" }", "3");
        let err = online(GOOD, &keys).unwrap_err().to_string();
        assert!(
            err.contains("keys.snapshot: must be a key URI string"),
            "{err}"
        );
    }

    #[test]
    fn negative_threshold_is_a_syntax_error_with_the_line() {
        let err = error(&GOOD.replace("threshold = 2", "threshold = -1"));
        assert!(err.contains("line"), "{err}");
    }
}
