//! Delivery: once every step is done, the outputs, the devices' audit logs and the transcript
//! are collected into a new directory, atomically, with the response bundle when one is asked
//! for. Nothing expired goes out.

use std::collections::BTreeMap;
use std::path::Path;

use super::context::Context;
use super::progress::crash_point;
use super::transcript::Transcript;
use super::tree::{collect_files, copy_tree, sha256_tree};
use super::CeremonyError;
use crate::journal::Digest as JournalDigest;
use crate::keys;
use crate::keys::yubihsm as yubihsm_keys;
use crate::time::ConfirmedTime;

/// Delivers the script's outputs and the transcript to `out` (which must not exist), with a
/// response bundle signed by `bundle_key` if given; returns the outputs with their SHA-256.
/// `instance` names the ceremony's state in errors.
pub(super) fn deliver(
    context: &mut Context<'_>,
    transcript: &mut Transcript,
    out: &Path,
    bundle_key: Option<&str>,
    instance: &Path,
) -> Result<BTreeMap<String, String>, CeremonyError> {
    let state_error = |reason: String| CeremonyError::State {
        path: instance.to_path_buf(),
        reason,
    };
    let script = context.script;
    let work = context.work.clone();

    // A resumed ceremony may deliver what an earlier run signed: nothing expired goes out.
    for name in &script.outputs {
        refuse_expired_repository(&work.join(name), name, context.time)?;
    }

    crash_point("deliver", "before");

    // Collect the outputs and the transcript into a new directory, atomically.
    let mut outputs = BTreeMap::new();
    let staging = out.with_file_name(format!(
        ".tmp-{}",
        out.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| state_error(e.to_string()))?;
    for name in &script.outputs {
        copy_tree(&work.join(name), &staging.join(name)).map_err(|e| state_error(e.to_string()))?;
        outputs.insert(
            name.clone(),
            sha256_tree(&work.join(name)).map_err(|e| state_error(e.to_string()))?,
        );
    }
    record_device_audits(context, transcript, &staging)?;
    transcript.finish(&outputs);
    transcript.journal_head(context.journal.head()?.to_string());
    std::fs::write(staging.join("transcript.md"), transcript.markdown())
        .map_err(|e| state_error(e.to_string()))?;
    std::fs::write(staging.join("transcript.html"), transcript.html())
        .map_err(|e| state_error(e.to_string()))?;
    if let Some(key) = bundle_key {
        let bundle = response_bundle(context, key, &staging)?;
        crate::files::write_new(&staging.join("response.rcb"), &bundle)?;
    }
    crate::files::ensure_absent([out])?;
    std::fs::rename(&staging, out).map_err(|e| state_error(e.to_string()))?;
    Ok(outputs)
}

/// Refuses to deliver a TUF repository output with a role already expired at `time` (signed by
/// an earlier run of a resumed ceremony, days before).
fn refuse_expired_repository(
    dir: &Path,
    output: &str,
    time: ConfirmedTime,
) -> Result<(), CeremonyError> {
    if !dir.join(crate::tuf::METADATA_DIR).is_dir() {
        return Ok(());
    }
    let status = crate::tuf::repository_status(dir, None, time.timestamp())?;
    match status
        .validity()
        .into_iter()
        .find(|r| r.expires <= time.timestamp())
    {
        None => Ok(()),
        Some(role) => Err(CeremonyError::ExpiredOutput {
            output: output.to_string(),
            role: role.role.to_string(),
            version: role.version,
            expires: role.expires,
            time,
        }),
    }
}

/// Reads the audit log of every YubiHSM2 the ceremony used, and records what it says happened
/// during this run in the journal (with the full log beside the outputs, as
/// `DEVICE.audit-log.json`) and in the transcript, next to the number of signatures
/// rootcellar asked for; then marks the entries read, so that a device in force-audit mode
/// keeps working. Recorded before marked: an entry is never released unrecorded.
fn record_device_audits(
    context: &mut Context<'_>,
    transcript: &mut Transcript,
    staging: &Path,
) -> Result<(), CeremonyError> {
    for (name, (location, start)) in context.yubihsms.clone() {
        let Some(device) = location.yubihsm()? else {
            continue;
        };
        let log = yubihsm_keys::audit_log(&device)?;
        let summary = match start {
            Some(item) => log.summary_after(item),
            None => log.summary(),
        };
        let requested = device.signatures_requested();
        let signed = summary
            .operations
            .get("sign-ecdsa")
            .copied()
            .unwrap_or_default();
        let file = format!("{name}.audit-log.json");
        let json = serde_json::to_vec_pretty(&log.to_json()).expect("plain data serializes");
        crate::files::write_new(&staging.join(&file), &json)?;
        context.journal(
            "yubihsm.audit",
            format!(
                "{name}: device log entries {}..{} (chain {}), sign-ecdsa {} succeeded / {} failed; rootcellar asked for {requested} signature(s)",
                summary.first_item.map_or("-".into(), |i| i.to_string()),
                summary.last_item.map_or("-".into(), |i| i.to_string()),
                if summary.chain_intact { "intact" } else { "BROKEN" },
                signed.succeeded,
                signed.failed,
            ),
            vec![],
            vec![JournalDigest::of(file, &json)],
        )?;
        transcript.device_audit(format!(
            "{}rootcellar asked this device for {requested} signature(s) in this run",
            summary.to_text()
        ));
        if let Some(last) = log.entries.last() {
            yubihsm_keys::mark_audit_log_read(&device, last.item)?;
        }
    }
    Ok(())
}

/// Signs the response bundle: every output file (a directory's files by their own names), the
/// transcript, and the ceremony's journal segment with the journal head. Recorded in the
/// journal before it is written.
fn response_bundle(
    context: &mut Context<'_>,
    key: &str,
    staging: &Path,
) -> Result<Vec<u8>, CeremonyError> {
    use crate::bundle::{BundleBuilder, BundleKind, EntryType, JournalHead};
    let fail = |reason: String| CeremonyError::State {
        path: staging.to_path_buf(),
        reason,
    };
    let kind = if context.script.ceremony.name.starts_with("backup") {
        BundleKind::Backup
    } else {
        BundleKind::Response
    };
    let mut builder = BundleBuilder::new(kind, context.time).ceremony(context.instance.clone());
    let mut files = Vec::new();
    collect_files(staging, staging, &mut files).map_err(|e| fail(e.to_string()))?;
    files.sort();
    for relative in files {
        let name = relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let contents = std::fs::read(staging.join(&relative)).map_err(|e| fail(e.to_string()))?;
        let in_metadata = relative.components().any(|c| c.as_os_str() == "metadata");
        let entry_type = if name == "transcript.md" {
            EntryType::Transcript
        } else if name == "trusted_root.json" {
            EntryType::TrustedRoot
        } else if in_metadata && name.ends_with(".json") {
            EntryType::TufMetadata
        } else if name.ends_with(".pub.pem") {
            EntryType::PublicKey
        } else if name.ends_with(".pem") && contents.starts_with(b"-----BEGIN CERTIFICATE") {
            EntryType::Certificate
        } else {
            EntryType::OpaqueFile
        };
        builder
            .add(entry_type, &name, contents)
            .map_err(|e| fail(format!("{}: {e}", relative.display())))?;
    }
    let segment = context
        .journal
        .export(&crate::journal::Selection::Ceremony(
            context.instance.clone(),
        ))?;
    let head = segment.journal_head();
    builder
        .add(
            EntryType::JournalSegment,
            "journal-segment.json",
            segment.to_json(),
        )
        .map_err(|e| fail(e.to_string()))?;
    builder = builder.journal_head(JournalHead {
        seq: head.seq,
        sha256: head.hash,
    });
    if !context.script.keys.contains_key(key) {
        return Err(fail(format!(
            "--bundle-key {key:?} is not a key of this script"
        )));
    }
    context.unlock(key)?;
    let signer = keys::open_signer(&context.key_uri(key)?.to_string())?;
    let bytes = builder
        .sign(signer.as_ref())
        .map_err(|e| fail(e.to_string()))?;
    context.journal(
        "bundle.export",
        format!("response bundle signed by {}", signer.key_uri()),
        vec![],
        vec![JournalDigest::of("response.rcb", &bytes)],
    )?;
    Ok(bytes)
}
