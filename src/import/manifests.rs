//! The Kubernetes manifests an import writes, each carrying the verified trust:
//!
//! - a sigstore policy-controller `TrustRoot` (`policy.sigstore.dev/v1alpha1`) with
//!   `spec.repository`: the TUF root, the mirror as a tar.gz (`mirrorFS`), and the name of the
//!   `trusted_root.json` target; policy-controller verifies the repository itself, offline;
//! - a `ClusterImagePolicy` (`policy.sigstore.dev/v1beta1`) whose keyless authority refers to
//!   that `TrustRoot` (`trustRootRef`) and requires the admission policy's identities for its
//!   images;
//! - a Kyverno `ImageValidatingPolicy` (`policies.kyverno.io/v1`) whose cosign attestor carries
//!   the verified `trusted_root.json` inline (`trustedRoot`), so that Kyverno needs no TUF server
//!   either, for the same images and identities, over every kind of container of a pod.
//!
//! The two policies are written only for an admission policy (see `policy.rs`), or as
//! templates when asked: their placeholders (`registry.example.internal`,
//! `oidc.example.internal`) match nothing real, so a template applied unfilled admits nothing
//! new and denies nothing that runs.

use base64::Engine;

use super::policy::{AdmissionPolicy, Policies};
use super::yaml::{document, map, s, strings, Node};
use crate::trustroot::TrustedRoot;

/// The Kyverno attestor's name, as the policy's CEL expression refers to it.
const ATTESTOR: &str = "rootcellar";

/// What the manifests are made from.
pub(super) struct ManifestInputs<'a> {
    /// The resource name (`TrustRoot`, policies).
    pub name: &'a str,
    /// The newest verified TUF root metadata.
    pub root: &'a [u8],
    /// Its version.
    pub root_version: u64,
    /// The mirror as a tar.gz rooted at `repository/`.
    pub mirror_tar_gz: &'a [u8],
    /// The verified trusted_root.json, as published.
    pub trusted_root_json: &'a [u8],
    /// The same, parsed.
    pub trusted_root: &'a TrustedRoot,
    /// Its SHA-256.
    pub trusted_root_sha256: &'a str,
    /// The response bundle's id.
    pub bundle_id: &'a str,
    /// When the first of the verified metadata expires (RFC 3339) and which role it is.
    pub expiry: (&'a str, String),
    /// The target name of the trusted root.
    pub trusted_root_target: &'a str,
}

/// Which image policies are written: enforcing ones, or templates.
pub(super) enum Written<'a> {
    /// For this admission policy.
    Enforced(&'a AdmissionPolicy),
    /// Placeholders, asked for with `--template`.
    Template,
}

impl<'a> Written<'a> {
    /// What the import writes for `policies`: nothing without a policy or a template request.
    pub fn of(policies: &'a Policies) -> Option<Self> {
        match policies {
            Policies::Template => Some(Written::Template),
            Policies::None => None,
            Policies::Given(policy) | Policies::Kept(policy) => Some(Written::Enforced(policy)),
        }
    }

    fn globs(&self) -> Node {
        let globs: Vec<&str> = match self {
            Written::Enforced(policy) => policy.images.iter().map(String::as_str).collect(),
            // `**` means any characters to both engines (see policy.rs).
            Written::Template => vec!["registry.example.internal/**"],
        };
        Node::Seq(globs.into_iter().map(|g| map([("glob", s(g))])).collect())
    }

    fn identities(&self) -> Node {
        match self {
            Written::Enforced(policy) => Node::Seq(
                policy
                    .identities
                    .iter()
                    .map(|i| {
                        map([
                            ("issuer", s(i.issuer.as_str())),
                            ("subject", s(i.subject.as_str())),
                        ])
                    })
                    .collect(),
            ),
            Written::Template => Node::Seq(vec![map([
                ("issuer", s("https://oidc.example.internal")),
                ("subject", s("signer@example.internal")),
            ])]),
        }
    }

    /// The header lines saying what the policy requires, or that it is a template.
    fn notes(&self, images: &str, identities: &str) -> Vec<String> {
        match self {
            Written::Enforced(policy) => vec![
                format!("Images {} must carry a signature", policy.images.join(", ")),
                format!(
                    "by {}.",
                    policy
                        .identities
                        .iter()
                        .map(|i| format!("{} (issuer {})", i.subject, i.issuer))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            ],
            Written::Template => vec![
                format!("TEMPLATE: replace the placeholders in {images} (the images this policy"),
                format!("covers) and {identities} (the OIDC issuer and subject"),
                "each signature must carry) before applying it.".into(),
            ],
        }
    }

    fn title(&self, what: &str) -> String {
        match self {
            Written::Enforced(_) => what.to_string(),
            Written::Template => format!("{what} (TEMPLATE)"),
        }
    }
}

/// The `TrustRoot` manifest.
pub(super) fn trust_root(inputs: &ManifestInputs<'_>) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let node = map([
        ("apiVersion", s("policy.sigstore.dev/v1alpha1")),
        ("kind", s("TrustRoot")),
        ("metadata", metadata(inputs)),
        (
            "spec",
            map([(
                "repository",
                map([
                    ("root", s(b64(inputs.root))),
                    ("mirrorFS", s(b64(inputs.mirror_tar_gz))),
                    ("targets", s("targets")),
                    ("trustedRootTarget", s(inputs.trusted_root_target)),
                ]),
            )]),
        ),
    ]);
    let mut comments = header(inputs, "sigstore policy-controller TrustRoot");
    comments.extend([
        "spec.repository: root = the TUF root verified (base64), mirrorFS = the TUF mirror"
            .to_string(),
        "(tar.gz rooted at repository/, base64); policy-controller verifies it offline.".into(),
    ]);
    document(&comments, &node)
}

/// The `ClusterImagePolicy` template.
pub(super) fn cluster_image_policy(inputs: &ManifestInputs<'_>, written: &Written<'_>) -> String {
    let root = inputs.trusted_root;
    let reference = || map([("trustRootRef", s(inputs.name))]);
    let mut keyless = vec![
        ("trustRootRef".to_string(), s(inputs.name)),
        ("identities".to_string(), written.identities()),
    ];
    if root.ctlogs.is_empty() {
        // Without a CT log in the trust root no certificate carries an SCT it could check.
        keyless.push(("insecureIgnoreSCT".to_string(), Node::Bool(true)));
    }
    let mut authority = vec![
        ("name".to_string(), s(format!("{}-keyless", inputs.name))),
        ("keyless".to_string(), Node::Map(keyless)),
    ];
    if !root.tlogs.is_empty() {
        authority.push(("ctlog".to_string(), reference()));
    }
    if !root.timestamp_authorities.is_empty() {
        authority.push(("rfc3161timestamp".to_string(), reference()));
    }
    let node = map([
        ("apiVersion", s("policy.sigstore.dev/v1beta1")),
        ("kind", s("ClusterImagePolicy")),
        ("metadata", metadata(inputs)),
        (
            "spec",
            map([
                ("images", written.globs()),
                ("authorities", Node::Seq(vec![Node::Map(authority)])),
            ]),
        ),
    ]);
    let mut comments = header(
        inputs,
        &written.title("sigstore policy-controller ClusterImagePolicy"),
    );
    comments.extend(written.notes("spec.images", "spec.authorities[0].keyless.identities"));
    comments.push(format!(
        "Its keyless authority trusts the CAs{}{} of TrustRoot {:?}.",
        if root.tlogs.is_empty() {
            ""
        } else {
            ", transparency logs"
        },
        if root.timestamp_authorities.is_empty() {
            ""
        } else {
            " and timestamp authorities"
        },
        inputs.name
    ));
    if root.ctlogs.is_empty() {
        comments.push(
            "The trust root lists no CT log, so SCT checks are off (insecureIgnoreSCT).".into(),
        );
    }
    document(&comments, &node)
}

/// The Kyverno `ImageValidatingPolicy` template.
pub(super) fn kyverno_policy(inputs: &ManifestInputs<'_>, written: &Written<'_>) -> String {
    let root = inputs.trusted_root;
    let trusted_root_text = String::from_utf8_lossy(inputs.trusted_root_json).into_owned();
    let mut cosign = vec![
        (
            "trustedRoot".to_string(),
            map([("value", s(trusted_root_text))]),
        ),
        (
            "keyless".to_string(),
            map([("identities", written.identities())]),
        ),
    ];
    let mut ctlog = Vec::new();
    if root.tlogs.is_empty() {
        ctlog.push(("insecureIgnoreTlog".to_string(), Node::Bool(true)));
    }
    if root.ctlogs.is_empty() {
        ctlog.push(("insecureIgnoreSCT".to_string(), Node::Bool(true)));
    }
    if !ctlog.is_empty() {
        cosign.push(("ctlog".to_string(), Node::Map(ctlog)));
    }
    let node = map([
        ("apiVersion", s("policies.kyverno.io/v1")),
        ("kind", s("ImageValidatingPolicy")),
        ("metadata", metadata(inputs)),
        (
            "spec",
            map([
                ("validationActions", strings(["Deny"])),
                (
                    "matchConstraints",
                    map([(
                        "resourceRules",
                        Node::Seq(vec![map([
                            ("apiGroups", strings([""])),
                            ("apiVersions", strings(["v1"])),
                            ("operations", strings(["CREATE", "UPDATE"])),
                            ("resources", strings(["pods"])),
                        ])]),
                    )]),
                ),
                ("matchImageReferences", written.globs()),
                (
                    "attestors",
                    Node::Seq(vec![map([
                        ("name", s(ATTESTOR)),
                        ("cosign", Node::Map(cosign)),
                    ])]),
                ),
                (
                    "validations",
                    Node::Seq(vec![map([
                        ("expression", s(every_container_verified())),
                        (
                            "message",
                            s(format!(
                                "image signature not verified against the rootcellar trust \
                                 root (TUF root v{})",
                                inputs.root_version
                            )),
                        ),
                    ])]),
                ),
            ]),
        ),
    ]);
    let mut comments = header(inputs, &written.title("Kyverno ImageValidatingPolicy"));
    comments.extend(written.notes(
        "spec.matchImageReferences",
        "spec.attestors[0].cosign.keyless.identities",
    ));
    comments.push(
        "Containers, init containers and ephemeral containers are all checked (Kyverno's".into(),
    );
    comments.push("`images` variable lists the matched images of each kind).".into());
    comments.push(
        "The attestor carries the verified trusted_root.json inline (cosign.trustedRoot), so"
            .into(),
    );
    comments.push(
        "Kyverno needs no TUF server; re-apply this file after each import to follow rotations."
            .into(),
    );
    if root.tlogs.is_empty() || root.ctlogs.is_empty() {
        comments.push(
            "The trust root lacks a transparency or CT log, so those checks are off (ctlog.insecure*)."
                .into(),
        );
    }
    document(&comments, &node)
}

fn metadata(inputs: &ManifestInputs<'_>) -> Node {
    map([
        ("name", s(inputs.name)),
        (
            "labels",
            map([("app.kubernetes.io/managed-by", s("rootcellar"))]),
        ),
        (
            "annotations",
            map([
                (
                    "rootcellar/tuf-root-version",
                    s(inputs.root_version.to_string()),
                ),
                (
                    "rootcellar/trusted-root-sha256",
                    s(inputs.trusted_root_sha256),
                ),
                ("rootcellar/bundle-id", s(inputs.bundle_id)),
            ]),
        ),
    ])
}

/// The validation: every image of every container kind that `matchImageReferences` selected
/// carries a signature the attestor accepts. Kyverno's `images` holds the matched images under
/// `containers`, `initContainers` and `ephemeralContainers`; checking `containers` alone would
/// let an unsigned init or debug container through.
fn every_container_verified() -> String {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .map(|kind| {
            format!(
                "images.{kind}.map(image, verifyImageSignatures(image, [attestors.{ATTESTOR}]))\
                 .all(e, e > 0)"
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

fn header(inputs: &ManifestInputs<'_>, what: &str) -> Vec<String> {
    vec![
        format!("{what}, written by `rootcellar import`."),
        format!(
            "Trust: TUF root v{}, trusted_root.json sha256 {}, response bundle {}.",
            inputs.root_version, inputs.trusted_root_sha256, inputs.bundle_id
        ),
        format!(
            "The {} metadata expires at {}: import a fresh response bundle before then.",
            inputs.expiry.0, inputs.expiry.1
        ),
        String::new(),
    ]
}
