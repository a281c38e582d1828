//! Ceremony scripts: one TOML file per ceremony, parsed strictly and checked completely before
//! any HSM is touched. `check` reports every problem at once, so an operator fixes a script in
//! one pass rather than one error per attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{actions, CeremonyError};

/// A parsed ceremony script.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Name, title and summary.
    pub ceremony: Header,
    /// Who must be present.
    pub roles: Roles,
    /// The keys the ceremony uses, by name.
    #[serde(default)]
    pub keys: BTreeMap<String, KeySpec>,
    /// Entries the request bundle must carry.
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What goes into the response bundle: names of files (or directories) that steps produce.
    pub outputs: Vec<String>,
    /// Where the script was read from (scripts refer to files relative to themselves).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The `[ceremony]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Short name, e.g. `root-init`.
    pub name: String,
    /// One line for the menu and the transcript.
    pub title: String,
    /// A paragraph explaining the ceremony's purpose, printed at the start.
    #[serde(default)]
    pub summary: String,
    /// How far (minutes) the confirmed time may be from the machine clock before it must be
    /// typed again; default 10.
    #[serde(default)]
    pub clock_tolerance_minutes: Option<u32>,
}

/// The `[roles]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// Minimum number of witnesses present.
    #[serde(default)]
    pub witnesses: usize,
    /// The custodians, by role name (e.g. `custodian-1`); people's names are recorded at the
    /// console.
    #[serde(default)]
    pub custodians: Vec<String>,
    /// How many custodians must take part (M of N) where a quorum is needed.
    #[serde(default)]
    pub quorum: Option<usize>,
}

/// How a key's token PIN is obtained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinMode {
    /// Typed at the console (echo off) by the key's holder.
    #[default]
    Prompt,
    /// Reconstructed from a quorum of custodians' Shamir shares.
    Shares,
}

/// One key in the `[keys]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The key's URI, without machine-specific query attributes (no PIN source).
    pub uri: String,
    /// `p256` or `p384`; needed where the ceremony generates the key.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// The custodian who holds the key's token, if it is not the operator.
    #[serde(default)]
    pub holder: Option<String>,
    /// How the token's PIN is obtained.
    #[serde(default)]
    pub pin: PinMode,
    /// Generate the key so that it can leave its token wrapped, for a backup. Keys without it
    /// are generated non-extractable and can never be backed up. A key for backup is
    /// wrap-with-trusted: only a wrap key the token's security officer makes can wrap it.
    #[serde(default)]
    pub backup: bool,
    /// With `backup`: accept a device that cannot enforce wrap-with-trusted (anyone holding the
    /// key's PIN or password could then wrap it under a key of their own), and back up a key
    /// that is not wrap-with-trusted. Without it such a key is refused, at generation and at
    /// backup.
    #[serde(default)]
    pub allow_untrusted_wrap: bool,
}

/// An entry the request bundle must carry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The entry's name in the bundle.
    pub name: String,
    /// What it is: `csr`, `certificate`, `public-key`, `tuf-metadata`, `trusted-root`, `file`.
    pub kind: InputKind,
}

/// Kinds of input entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// A PKCS#10 certificate signing request.
    Csr,
    /// An X.509 certificate (or chain), PEM.
    Certificate,
    /// A public key, PEM SPKI.
    PublicKey,
    /// A TUF repository (directory) or metadata file.
    TufMetadata,
    /// A Sigstore trusted root.
    TrustedRoot,
    /// Anything else.
    File,
}

impl InputKind {
    /// The name scripts use for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Csr => "csr",
            Self::Certificate => "certificate",
            Self::PublicKey => "public-key",
            Self::TufMetadata => "tuf-metadata",
            Self::TrustedRoot => "trusted-root",
            Self::File => "file",
        }
    }
}

/// One step of a ceremony: `id`, `title`, `action` and the action's parameters.
#[derive(Clone, Debug)]
pub struct Step {
    /// Unique within the script; the journal records progress by it.
    pub id: String,
    /// What the operator is told the step does.
    pub title: String,
    /// What the step does, with its parameters.
    pub action: Action,
}

impl<'de> Deserialize<'de> for Step {
    // serde's `flatten` would swallow unknown fields; splitting the table by hand keeps the
    // action's `deny_unknown_fields` in force, so a misspelt parameter is an error.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let mut take = |field: &str| match table.remove(field) {
            Some(toml::Value::String(s)) => Ok(s),
            Some(_) => Err(D::Error::custom(format!(
                "step field `{field}` must be a string"
            ))),
            None => Err(D::Error::missing_field(if field == "id" {
                "id"
            } else {
                "title"
            })),
        };
        let id = take("id")?;
        let title = take("title")?;
        let action = Action::deserialize(toml::Value::Table(table))
            .map_err(|e| D::Error::custom(format!("step {id:?}: {}", e.message())))?;
        Ok(Step { id, title, action })
    }
}

/// What a step does: the action's name (`action = "generate-keys"`) and its parameters, each
/// action's a struct in its own file under `actions/` that denies unknown fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Generate keys inside their tokens.
    GenerateKeys(actions::GenerateKeys),
    /// Give the key's token a fresh random PIN and split it among the custodians (M of N).
    SplitPin(actions::SplitPin),
    /// Self-sign the root CA certificate.
    RootCertificate(actions::RootCertificate),
    /// Issue an intermediate from a CSR under a profile.
    Intermediate(actions::Intermediate),
    /// Sign a CRL revoking the serials listed (one hex serial per line) in an input file.
    Crl(actions::Crl),
    /// Export keys wrapped under a fresh AES key, split that key M of N among the custodians.
    BackupKeys(actions::BackupKeys),
    /// Rebuild backed-up keys into another token from the backup and a quorum of shares.
    RestoreKeys(actions::RestoreKeys),
    /// Draft the next root version of a TUF repository from a (new) policy.
    TufRotate(actions::TufRotate),
    /// Stage new or replaced targets (inputs or earlier outputs) in a TUF repository.
    TufTargets(actions::TufTargets),
    /// One key signs every staged draft it is entitled to sign.
    TufSign(actions::TufSign),
    /// Publish the staged drafts once their thresholds are met (snapshot and timestamp follow).
    TufPublish(actions::TufPublish),
    /// Re-sign snapshot and timestamp over what is published (the appliance's keys alone).
    TufRefresh(actions::TufRefresh),
    /// Create a TUF repository.
    TufInit(actions::TufInit),
    /// Write a signing request bundle for each custodian away from the appliance.
    TufRequestSignatures(actions::TufRequestSignatures),
    /// Add custodians' signature bundles to the drafted root.
    TufAddSignatures(actions::TufAddSignatures),
}

/// Every problem in the shape of a script that is valid TOML: unknown or missing sections, and
/// each section, key, input and step read on its own, so that one bad field does not hide the
/// next.
fn shape_problems(mut table: toml::Table) -> Vec<String> {
    fn read<T: serde::de::DeserializeOwned>(
        value: toml::Value,
        place: &str,
        problems: &mut Vec<String>,
    ) {
        if let Err(e) = T::deserialize(value) {
            problems.push(format!("{place}: {}", e.message().trim()));
        }
    }
    let mut problems = Vec::new();
    for (section, required) in [
        ("ceremony", true),
        ("roles", true),
        ("keys", false),
        ("inputs", false),
        ("steps", true),
        ("outputs", true),
    ] {
        let Some(value) = table.remove(section) else {
            if required {
                problems.push(format!("missing section `{section}`"));
            }
            continue;
        };
        match (section, value) {
            ("ceremony", value) => read::<Header>(value, "ceremony", &mut problems),
            ("roles", value) => read::<Roles>(value, "roles", &mut problems),
            ("keys", toml::Value::Table(keys)) => {
                for (name, value) in keys {
                    read::<KeySpec>(value, &format!("keys.{name}"), &mut problems);
                }
            }
            ("inputs", toml::Value::Array(inputs)) => {
                for (i, value) in inputs.into_iter().enumerate() {
                    read::<InputSpec>(value, &format!("inputs[{i}]"), &mut problems);
                }
            }
            ("steps", toml::Value::Array(steps)) => {
                for (i, value) in steps.into_iter().enumerate() {
                    read::<Step>(value, &format!("steps[{i}]"), &mut problems);
                }
            }
            ("outputs", value) => read::<Vec<String>>(value, "outputs", &mut problems),
            (section, _) => problems.push(format!("`{section}` has the wrong type")),
        }
    }
    for unknown in table.keys() {
        problems.push(format!(
            "unknown section `{unknown}` (expected ceremony, roles, keys, inputs, steps, outputs)"
        ));
    }
    problems
}

impl Script {
    /// Reads and parses a script; syntax errors and unknown fields are reported here.
    pub fn load(path: &Path) -> Result<Script, CeremonyError> {
        let text = std::fs::read_to_string(path).map_err(|e| CeremonyError::ScriptUnreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Script::parse(&text, path)
    }

    /// Parses the text of a script read from `path` (which errors name, and which the files
    /// the script names are relative to); syntax errors and unknown fields are reported here.
    pub fn parse(text: &str, path: &Path) -> Result<Script, CeremonyError> {
        let mut script: Script = toml::from_str(text).map_err(|e| {
            // The first error stops serde; read the parts one by one to name every problem.
            let problems = match toml::from_str::<toml::Table>(text) {
                Ok(table) => shape_problems(table),
                Err(_) => vec![],
            };
            CeremonyError::ScriptInvalid {
                path: path.to_path_buf(),
                problems: if problems.is_empty() {
                    vec![e.to_string()]
                } else {
                    problems
                },
            }
        })?;
        script.path = path.to_path_buf();
        Ok(script)
    }

    /// A path named in the script, relative to the script's directory.
    pub fn resolve(&self, relative: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(relative)
    }

    /// Every problem in the script, in order. Empty when the script is sound.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut say = |p: String| problems.push(p);

        if self.ceremony.name.trim().is_empty() {
            say("ceremony.name is empty".into());
        }
        let custodians: BTreeSet<&str> = self.roles.custodians.iter().map(String::as_str).collect();
        if custodians.len() != self.roles.custodians.len() {
            say("roles.custodians lists a custodian twice".into());
        }
        match self.roles.quorum {
            Some(0) => say("roles.quorum must be at least 1".into()),
            Some(m) if m > custodians.len() => say(format!(
                "roles.quorum: {m} exceeds the {} custodians listed",
                custodians.len()
            )),
            _ => {}
        }

        for (name, key) in &self.keys {
            match crate::keys::KeyLocation::parse(&key.uri) {
                Err(e) => say(format!("keys.{name}.uri: {e}")),
                Ok(location) => {
                    if location.key_label().is_none() {
                        say(format!(
                            "keys.{name}.uri names no key label (add object=… or label=…)"
                        ));
                    }
                    if location.secret_file().is_some() {
                        say(format!(
                            "keys.{name}.uri names a file holding its {}: secrets are entered at the ceremony, not stored in scripts",
                            location.secret_name()
                        ));
                    }
                    if let crate::keys::KeyLocation::YubiHsm(uri) = &location {
                        if uri.auth_key.is_none() {
                            say(format!(
                                "keys.{name}.uri: a YubiHSM2 key needs auth-key=0xNNNN (the authentication key to log in with)"
                            ));
                        }
                    }
                }
            }
            if let Some(algorithm) = &key.algorithm {
                if let Err(e) = crate::keys::KeyAlgorithm::from_name(algorithm) {
                    say(format!("keys.{name}.algorithm: {e}"));
                }
            }
            if let Some(holder) = &key.holder {
                if !custodians.contains(holder.as_str()) {
                    say(format!(
                        "keys.{name}.holder: {holder:?} is not in roles.custodians"
                    ));
                }
            }
            if key.pin == PinMode::Shares && self.roles.quorum.is_none() {
                say(format!("keys.{name}.pin = \"shares\" needs roles.quorum"));
            }
            if key.allow_untrusted_wrap && !key.backup {
                say(format!(
                    "keys.{name}.allow_untrusted_wrap applies only to a key with backup = true"
                ));
            }
        }

        let mut inputs = BTreeSet::new();
        for input in &self.inputs {
            if !super::is_plain_name(&input.name) {
                say(format!("inputs: {:?} is not a plain file name", input.name));
            }
            if !inputs.insert(input.name.as_str()) {
                say(format!("inputs: {:?} is listed twice", input.name));
            }
        }

        let mut ids = BTreeSet::new();
        let mut available: BTreeSet<String> = inputs.iter().map(|s| s.to_string()).collect();
        for (index, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{index}] ({})", step.id);
            if !ids.insert(step.id.as_str()) {
                say(format!("{at}: the id is used twice"));
            }
            if !super::is_plain_name(&step.id) {
                say(format!("{at}: the id must be a plain name"));
            }
            let action = step.action.performer();
            for key in action.keys() {
                if !self.keys.contains_key(key) {
                    say(format!("{at}: key {key:?} is not in [keys]"));
                }
            }
            for read in action.reads() {
                if !available.contains(&read) {
                    say(format!(
                        "{at}: {read:?} is neither an input nor the output of an earlier step"
                    ));
                }
            }
            for problem in action.problems(self) {
                say(format!("{at}: {problem}"));
            }
            for write in action.writes() {
                if !super::is_plain_name(&write) {
                    say(format!("{at}: output {write:?} is not a plain file name"));
                } else if !available.insert(write.clone()) {
                    say(format!(
                        "{at}: output {write:?} is already an input or an earlier output"
                    ));
                }
            }
        }
        for output in &self.outputs {
            if !available.contains(output) || inputs.contains(output.as_str()) {
                say(format!("outputs: {output:?} is not produced by any step"));
            }
        }
        problems
    }

    /// The TUF policy a step names, with its key names bound to the URIs of the script's keys.
    pub fn tuf_policy(
        &self,
        policy: &Path,
        keys: &BTreeMap<String, String>,
    ) -> Result<crate::tuf::Policy, CeremonyError> {
        self.tuf_policy_for(policy, keys, false)
    }

    /// [`Script::tuf_policy`], its roots marked as a rehearsal's when `rehearsal` is set.
    pub fn tuf_policy_for(
        &self,
        policy: &Path,
        keys: &BTreeMap<String, String>,
        rehearsal: bool,
    ) -> Result<crate::tuf::Policy, CeremonyError> {
        self.tuf_policy_with_public_keys(policy, keys, &BTreeMap::new(), rehearsal)
    }

    /// [`Script::tuf_policy_for`], the script keys named in `public_keys` bound to those PEM
    /// files instead of their URIs: keys of custodians away from the appliance, whose tokens
    /// are not there.
    pub fn tuf_policy_with_public_keys(
        &self,
        policy: &Path,
        keys: &BTreeMap<String, String>,
        public_keys: &BTreeMap<String, PathBuf>,
        rehearsal: bool,
    ) -> Result<crate::tuf::Policy, CeremonyError> {
        let parsed = self.bind_tuf_policy(policy, keys, public_keys, rehearsal)?;
        parsed.validate()?;
        Ok(parsed)
    }

    /// The policy bound to the script's keys like [`Script::tuf_policy_for`], not yet validated:
    /// for a step that needs only some roles' keys (a refresh).
    pub fn tuf_policy_unvalidated(
        &self,
        policy: &Path,
        keys: &BTreeMap<String, String>,
        rehearsal: bool,
    ) -> Result<crate::tuf::Policy, CeremonyError> {
        self.bind_tuf_policy(policy, keys, &BTreeMap::new(), rehearsal)
    }

    fn bind_tuf_policy(
        &self,
        policy: &Path,
        keys: &BTreeMap<String, String>,
        public_keys: &BTreeMap<String, PathBuf>,
        rehearsal: bool,
    ) -> Result<crate::tuf::Policy, CeremonyError> {
        let path = self.resolve(policy);
        let text = std::fs::read_to_string(&path).map_err(|e| CeremonyError::ScriptUnreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut parsed = crate::tuf::Policy::from_toml(&text, &path)?;
        let mut table = toml::Table::new();
        for (policy_name, key_name) in keys {
            if let Some(pem) = public_keys.get(key_name) {
                let mut entry = toml::Table::new();
                entry.insert(
                    "public_key".into(),
                    toml::Value::String(pem.display().to_string()),
                );
                table.insert(policy_name.clone(), toml::Value::Table(entry));
            } else if let Some(spec) = self.keys.get(key_name) {
                table.insert(policy_name.clone(), toml::Value::String(spec.uri.clone()));
            }
        }
        let mut keys_toml = toml::Table::new();
        keys_toml.insert("keys".into(), toml::Value::Table(table));
        parsed.add_keys_toml(&keys_toml.to_string(), &self.path)?;
        Ok(parsed.for_rehearsal(rehearsal))
    }
}
