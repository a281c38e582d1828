//! Keys generated inside the token: attributes read back two ways, listing, and refusals.

use crate::common::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// The private key objects `pkcs11-tool` (OpenSC, independent of rootcellar) sees on a token.
fn pkcs11_tool_private_keys(hsm: &SoftHsm, token: &str) -> String {
    let out = std::process::Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &hsm.conf)
        .args([
            "--module",
            hsm.module.to_str().unwrap(),
            "--token-label",
            token,
        ])
        .args([
            "--login",
            "--pin",
            PIN,
            "--list-objects",
            "--type",
            "privkey",
        ])
        .output()
        .expect("pkcs11-tool runs (apt-get install opensc)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn generated_keys_are_sensitive_non_extractable_and_sign_only() {
    let hsm = SoftHsm::new("attrs");
    for (label, algorithm, bits) in [
        ("k256", "p256", "ecdsa-p256"),
        ("k384", "p384", "ecdsa-p384"),
    ] {
        let uri = hsm.generate("attrs", label, algorithm);
        assert!(uri.contains(&format!("object={label};id=%")), "{uri}");

        // Read back through PKCS#11 by rootcellar.
        let shown = json(&ok(hsm.rootcellar().args(["key", "show", &uri, "--json"])));
        assert_eq!(shown["algorithm"], bits);
        let p = &shown["protection"];
        for (attr, want) in [
            ("token", true),
            ("sensitive", true),
            ("always_sensitive", true),
            ("extractable", false),
            ("never_extractable", true),
            ("sign", true),
            ("decrypt", false),
            ("unwrap", false),
            ("derive", false),
        ] {
            assert_eq!(p[attr], want, "{label}: {attr} in {p}");
        }
        // The public key printed is a parseable SPKI whose SHA-256 is the fingerprint shown.
        let pem = shown["public_key_pem"].as_str().unwrap();
        let key = rootcellar::keys::PublicKey::from_spki(pem.as_bytes()).unwrap();
        assert_eq!(shown["fingerprint_sha256"], key.fingerprint());
    }

    // Read back by OpenSC's pkcs11-tool.
    let listing = pkcs11_tool_private_keys(&hsm, "attrs");
    let objects: Vec<&str> = listing.split("Private Key Object").skip(1).collect();
    assert_eq!(objects.len(), 2, "{listing}");
    for object in objects {
        let line = |name: &str| {
            object
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {object}"))
                .split_once(':')
                .unwrap()
                .1
                .trim()
                .to_string()
        };
        assert_eq!(line("Usage"), "sign", "{object}");
        let access = line("Access");
        for required in ["sensitive", "always sensitive", "never extractable"] {
            assert!(
                access.split(", ").any(|a| a == required),
                "{required} missing: {access}"
            );
        }
        assert!(!access.split(", ").any(|a| a == "extractable"), "{access}");
    }
}

#[test]
fn list_shows_every_key_with_its_fingerprint() {
    let hsm = SoftHsm::new("list");
    let a = hsm.generate("list", "alpha", "p256");
    let b = hsm.generate("list", "beta", "p384");
    let listed = json(&ok(hsm.rootcellar().args([
        "key",
        "list",
        &hsm.uri("list", None),
        "--json",
    ])));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["uri"], a.as_str());
    assert_eq!(listed[1]["uri"], b.as_str());
    let text = String::from_utf8(
        ok(hsm
            .rootcellar()
            .args(["key", "list", &hsm.uri("list", None)]))
        .stdout,
    )
    .unwrap();
    assert!(
        text.contains(&format!(
            "SHA256:{}",
            listed[1]["fingerprint_sha256"].as_str().unwrap()
        )),
        "{text}"
    );
}

#[test]
fn an_existing_label_is_refused_and_nothing_is_created() {
    let hsm = SoftHsm::new("dup");
    hsm.generate("dup", "root", "p256");
    let err = fails(
        hsm.rootcellar()
            .args(["key", "generate", &hsm.uri("dup", Some("root"))]),
    );
    assert!(
        err.contains("already holds a key labelled \"root\""),
        "{err}"
    );
    assert_eq!(
        pkcs11_tool_private_keys(&hsm, "dup")
            .matches("Private Key Object")
            .count(),
        1
    );
}

#[test]
fn a_wrong_pin_is_reported_once_and_the_token_still_works() {
    let hsm = SoftHsm::new("pin");
    let err = fails(hsm.rootcellar().args([
        "key",
        "generate",
        &hsm.uri_with_pin("pin", Some("k"), "000000"),
    ]));
    assert!(err.contains("wrong PIN for token \"pin\""), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear message: {err}");
    // One failed login, not several: the token is not locked and the right PIN works.
    hsm.generate("pin", "k", "p256");
}

#[test]
fn unknown_tokens_missing_modules_and_pins_in_uris_are_refused() {
    let hsm = SoftHsm::new("known");
    let err = fails(
        hsm.rootcellar()
            .args(["key", "list", &hsm.uri("unknown", None)]),
    );
    assert!(
        err.contains("no token labelled \"unknown\"") && err.contains("\"known\""),
        "{err}"
    );

    let err = fails(hsm.rootcellar().args(["key", "list", "pkcs11:token=known"]));
    assert!(err.contains("no PKCS#11 module given"), "{err}");

    let err = fails(
        hsm.rootcellar()
            .args(["key", "list", "pkcs11:token=known?pin-value=246810"]),
    );
    assert!(
        err.contains("pin-value is refused") && !err.contains("246810"),
        "{err}"
    );

    let err = fails(hsm.rootcellar().args([
        "key",
        "generate",
        &hsm.uri("known", Some("x")),
        "--algorithm",
        "rsa2048",
    ]));
    assert!(err.contains("unsupported key algorithm"), "{err}");

    let err = fails(
        hsm.rootcellar()
            .args(["key", "show", &hsm.uri("known", Some("absent"))]),
    );
    assert!(err.contains("no private key matching"), "{err}");
}
