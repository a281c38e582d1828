//! Crash points for the kill-anywhere tests, compiled only with the `test-hooks` feature.

/// A test hook: `ROOTCELLAR_TEST_CRASH_AT=WHERE:POINT` aborts the process at that point, as a
/// power cut would. In a ceremony step `WHERE` is the step id: `before` (the step recorded as
/// begun), `after-hsm` (its work done, outputs not yet in place), `after-outputs` (outputs in
/// place, completion not yet recorded); in key generation `intent-key-NAME` (the intent
/// recorded, the token not yet asked), `made-key-NAME`, `after-key-NAME`; in certificate signing
/// `intent-OUTPUT` (the serial recorded) and `signed-OUTPUT` (signed, written to scratch).
/// Elsewhere: `rehearsal:made-token-LABEL`, `deliver:before`, and `tuf.ACTION:recorded` (a
/// `tuf` command's journal record made, its files not yet written).
///
/// Only with the `test-hooks` feature (`make test` builds the tests with it): a binary built
/// without it has no hook to trip.
#[cfg(feature = "test-hooks")]
pub fn crash_point(step: &str, point: impl std::fmt::Display) {
    let here = format!("{step}:{point}");
    // `ROOTCELLAR_TEST_CRASH_LOG=FILE`: every point passed is appended to FILE, so that a test
    // can list a clean run's points and then stop a run at each of them.
    if let Some(log) = std::env::var_os("ROOTCELLAR_TEST_CRASH_LOG") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{here}");
        }
    }
    if let Ok(at) = std::env::var("ROOTCELLAR_TEST_CRASH_AT") {
        if at == here {
            eprintln!("rootcellar: test hook: aborting at {at}");
            std::process::abort();
        }
    }
}

/// Without the `test-hooks` feature the crash hook is nothing.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn crash_point(_step: &str, _point: impl std::fmt::Display) {}

/// Runs `call`, a PKCS#11 call that changes a token, between two crash points:
/// `pkcs11:before-CALL-OBJECT` and `pkcs11:after-CALL-OBJECT` (e.g.
/// `pkcs11:after-C_GenerateKeyPair-root-ca`), so that the tests can stop a run on either side of
/// every change a token sees.
pub fn around_token_change<T>(call: &str, object: &str, change: impl FnOnce() -> T) -> T {
    crash_point("pkcs11", format_args!("before-{call}-{object}"));
    let result = change();
    crash_point("pkcs11", format_args!("after-{call}-{object}"));
    result
}
