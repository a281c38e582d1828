//! The admission policy an import writes into the cluster's manifests: which images must be
//! signed, and by whom (OIDC issuer and subject of the signing certificate).
//!
//! The same policy goes into both engines' manifests — policy-controller's `ClusterImagePolicy`
//! and Kyverno's `ImageValidatingPolicy` — so an image glob must mean the same to both. They
//! differ on `*`: policy-controller matches one path segment, Kyverno (gobwas/glob, no
//! separators) any characters. `**` means "any characters" to both, so globs may use only that.
//! And policy-controller matches the normalised reference (`index.docker.io/library/…` for a
//! bare `nginx`) where Kyverno matches the reference as written: a glob must therefore start
//! with an explicit registry host, where the two agree.
//!
//! A policy is given to an import (`--image`, `--issuer`, `--identity`), or kept from the
//! previous import in the state directory. Without one, no policy is written — unless
//! `--template` asks for the placeholder templates — so nothing half-meant reaches a cluster.

use serde::{Deserialize, Serialize};

use super::ImportError;

/// The images a policy covers, and the signers each of them must carry a signature from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionPolicy {
    /// Image globs (`registry.example/team/**`).
    pub images: Vec<String>,
    /// Accepted signers: any one of them suffices.
    pub identities: Vec<Identity>,
}

/// A signer, as the Fulcio certificate names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The OIDC issuer URL (the certificate's issuer extension).
    pub issuer: String,
    /// The subject (the certificate's SAN: an email address or URI).
    pub subject: String,
}

/// What the import was asked to do about policies.
#[derive(Clone, Debug, Default)]
pub struct PolicyRequest {
    /// `--image`: image globs.
    pub images: Vec<String>,
    /// `--issuer`: the OIDC issuer of every `--identity`.
    pub issuer: Option<String>,
    /// `--identity`: signing subjects.
    pub subjects: Vec<String>,
    /// `--template`: write placeholder templates for the administrator to fill in.
    pub template: bool,
}

/// The policies an import writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policies {
    /// Enforcing policies, given to this import.
    Given(AdmissionPolicy),
    /// Enforcing policies, the previous import's (recorded in the state).
    Kept(AdmissionPolicy),
    /// Templates with placeholders, asked for.
    Template,
    /// None: no policy was given and none is recorded.
    None,
}

impl Policies {
    /// The enforcing policy, if any.
    pub fn enforced(&self) -> Option<&AdmissionPolicy> {
        match self {
            Policies::Given(policy) | Policies::Kept(policy) => Some(policy),
            Policies::Template | Policies::None => None,
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let enforced = |policy: &AdmissionPolicy, how: &str| {
            format!(
                "{} image glob(s) {} must be signed by {} ({how})",
                policy.images.len(),
                policy.images.join(", "),
                policy
                    .identities
                    .iter()
                    .map(|i| format!("{} from {}", i.subject, i.issuer))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        };
        match self {
            Policies::Given(policy) => enforced(policy, "given to this import"),
            Policies::Kept(policy) => enforced(policy, "kept from the previous import"),
            Policies::Template => {
                "TEMPLATES with placeholders (--template): fill in images and identities before \
                 applying them"
                    .into()
            }
            Policies::None => {
                "none written: give --image GLOB, --issuer URL and --identity SUBJECT (or \
                 --template for placeholder templates)"
                    .into()
            }
        }
    }
}

/// Decides the policies from the request and what the state recorded; refuses a request that
/// is incomplete, contradictory or not the same to both engines.
pub(super) fn resolve(
    request: &PolicyRequest,
    recorded: Option<&AdmissionPolicy>,
) -> Result<Policies, ImportError> {
    let given =
        !request.images.is_empty() || request.issuer.is_some() || !request.subjects.is_empty();
    if request.template {
        if given {
            return Err(refused(
                "--template writes placeholder templates; it does not go with --image, --issuer \
                 or --identity",
            ));
        }
        return Ok(Policies::Template);
    }
    if !given {
        return Ok(recorded.map_or(Policies::None, |p| Policies::Kept(p.clone())));
    }
    if request.images.is_empty() {
        return Err(refused(
            "--issuer/--identity given without --image: say which images the policy covers",
        ));
    }
    let Some(issuer) = &request.issuer else {
        return Err(refused(
            "no --issuer: give the OIDC issuer URL the signers' certificates name",
        ));
    };
    if request.subjects.is_empty() {
        return Err(refused(
            "no --identity: give the subject (email or URI) a signature must carry",
        ));
    }
    for glob in &request.images {
        check_glob(glob)?;
    }
    check_issuer(issuer)?;
    for subject in &request.subjects {
        check_subject(subject)?;
    }
    Ok(Policies::Given(AdmissionPolicy {
        images: dedup(&request.images),
        identities: dedup(&request.subjects)
            .into_iter()
            .map(|subject| Identity {
                issuer: issuer.clone(),
                subject,
            })
            .collect(),
    }))
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    items
        .iter()
        .filter(|i| seen.insert(i.as_str()))
        .cloned()
        .collect()
}

fn refused(problem: impl Into<String>) -> ImportError {
    ImportError::Policy {
        problem: problem.into(),
    }
}

/// An image glob both engines read the same way (see the module docs).
fn check_glob(glob: &str) -> Result<(), ImportError> {
    let bad = |why: &str| refused(format!("--image {glob:?}: {why}"));
    if glob.is_empty() || glob.len() > 512 {
        return Err(bad("give 1 to 512 characters"));
    }
    if let Some(c) = glob
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_:/*.@".contains(*c)))
    {
        return Err(bad(&format!(
            "{c:?} is not allowed (letters, digits and - _ : / * . @)"
        )));
    }
    for run in glob.split(|c| c != '*').filter(|run| !run.is_empty()) {
        if run.len() != 2 {
            return Err(bad(
                "use ** for \"any characters\": a single * means one path segment to \
                 policy-controller but any characters to Kyverno, so the two policies would \
                 cover different images",
            ));
        }
    }
    let host = glob.split('/').next().unwrap_or_default();
    let explicit_host = host == "localhost" || host.contains('.') || host.contains(':');
    if !glob.contains('/') || !explicit_host || host.contains('*') {
        return Err(bad(
            "start with the registry host (registry.example/…, no wildcard in it): \
             policy-controller matches bare names as index.docker.io/library/…, Kyverno as \
             written",
        ));
    }
    Ok(())
}

fn check_issuer(issuer: &str) -> Result<(), ImportError> {
    let url = url::Url::parse(issuer)
        .map_err(|e| refused(format!("--issuer {issuer:?} is not a URL: {e}")))?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err(refused(format!(
            "--issuer {issuer:?}: an OIDC issuer is an https:// URL"
        )));
    }
    Ok(())
}

fn check_subject(subject: &str) -> Result<(), ImportError> {
    if subject.is_empty() || subject.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refused(format!(
            "--identity {subject:?}: a subject is an email address or URI, without spaces or \
             control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(images: &[&str], issuer: Option<&str>, subjects: &[&str]) -> PolicyRequest {
        PolicyRequest {
            images: images.iter().map(|s| s.to_string()).collect(),
            issuer: issuer.map(str::to_string),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            template: false,
        }
    }

    fn problem(result: Result<Policies, ImportError>) -> String {
        match result {
            Err(e) => e.to_string(),
            Ok(p) => panic!("accepted: {p:?}"),
        }
    }

    #[test]
    fn a_whole_request_gives_one_identity_per_subject_under_the_issuer() {
        let got = resolve(
            &request(
                &["registry.internal/team/**", "registry.internal/team/**"],
                Some("https://oidc.internal"),
                &["ci@internal", "release@internal"],
            ),
            None,
        )
        .unwrap();
        let policy = got.enforced().unwrap();
        assert_eq!(policy.images, ["registry.internal/team/**"]);
        assert_eq!(
            policy.identities,
            [
                Identity {
                    issuer: "https://oidc.internal".into(),
                    subject: "ci@internal".into()
                },
                Identity {
                    issuer: "https://oidc.internal".into(),
                    subject: "release@internal".into()
                }
            ]
        );
        assert!(matches!(got, Policies::Given(_)));
    }

    #[test]
    fn nothing_asked_keeps_the_recorded_policy_or_writes_none() {
        let recorded = AdmissionPolicy {
            images: vec!["r.example/**".into()],
            identities: vec![],
        };
        assert_eq!(
            resolve(&PolicyRequest::default(), Some(&recorded)).unwrap(),
            Policies::Kept(recorded)
        );
        assert_eq!(
            resolve(&PolicyRequest::default(), None).unwrap(),
            Policies::None
        );
    }

    #[test]
    fn incomplete_or_contradictory_requests_are_refused_by_name() {
        let only_images = problem(resolve(&request(&["r.example/**"], None, &[]), None));
        assert!(only_images.contains("no --issuer"), "{only_images}");
        let no_subject = problem(resolve(
            &request(&["r.example/**"], Some("https://oidc.example"), &[]),
            None,
        ));
        assert!(no_subject.contains("no --identity"), "{no_subject}");
        let no_images = problem(resolve(
            &request(&[], Some("https://oidc.example"), &["a@b"]),
            None,
        ));
        assert!(no_images.contains("without --image"), "{no_images}");
        let mut both = request(&["r.example/**"], None, &[]);
        both.template = true;
        assert!(problem(resolve(&both, None)).contains("--template"));
    }

    #[test]
    fn globs_that_the_two_engines_read_differently_are_refused() {
        let refused_glob = |glob: &str| {
            problem(resolve(
                &request(&[glob], Some("https://oidc.example"), &["a@b"]),
                None,
            ))
        };
        assert!(refused_glob("r.example/team/*").contains("use **"));
        assert!(refused_glob("r.example/***").contains("use **"));
        assert!(refused_glob("nginx").contains("registry host"));
        assert!(refused_glob("library/**").contains("registry host"));
        assert!(refused_glob("**/app").contains("registry host"));
        assert!(refused_glob("r.example/a b").contains("not allowed"));
        for good in [
            "r.example/team/**",
            "localhost/app@sha256:**",
            "registry.internal:5000/**",
            "r.example/app:v1",
        ] {
            resolve(
                &request(&[good], Some("https://oidc.example"), &["a@b"]),
                None,
            )
            .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn issuers_and_subjects_are_checked() {
        let with = |issuer: &str, subject: &str| {
            resolve(&request(&["r.example/**"], Some(issuer), &[subject]), None)
        };
        assert!(problem(with("http://oidc.example", "a@b")).contains("https://"));
        assert!(problem(with("oidc.example", "a@b")).contains("not a URL"));
        assert!(problem(with("https://oidc.example", "a b")).contains("without spaces"));
        with(
            "https://token.actions.githubusercontent.com",
            "https://github.com/o/r/.github/workflows/release.yml@refs/heads/main",
        )
        .unwrap();
    }
}
