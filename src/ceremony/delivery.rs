//! Delivery: once every step is done, the outputs, the devices' audit logs and the transcript
//! are collected into a new directory, atomically, with the response bundle when one is asked
//! for. Nothing expired goes out.
//!
//! The output directory is usually on a USB stick, which may be read-only, full or pulled out.
//! Everything is staged beside it (`.tmp-NAME`), flushed, and renamed into place: a delivery
//! that fails leaves nothing there (the staging directory is removed), and the ceremony stays
//! unfinished so that running it again delivers. A run that delivered but could not record its
//! end (the state disk full, a power cut) is recognised by the next run, which records the end
//! without delivering twice. (Test hooks, `ROOTCELLAR_TEST_CRASH_AT`: `deliver:before`,
//! `deliver:after-move` with the outputs in place and nothing recorded, `deliver:journaled` with
//! the journal's record written and the progress record's not.)

use std::collections::BTreeMap;
use std::path::Path;

use super::context::{journal_digest, Context};
use super::progress::crash_point;
use super::script::Script;
use super::transcript::{FileDigest, Transcript};
use super::tree::{collect_files, copy_tree, sha256_tree};
use super::CeremonyError;
use crate::journal::Digest as JournalDigest;
use crate::keys::yubihsm as yubihsm_keys;
use crate::time::ConfirmedTime;

/// Checked before a ceremony runs: `out` must not exist, unless it holds this ceremony's own
/// delivery (see [`delivered_here`]), whose end the next run records.
pub(super) fn check_out(out: &Path, script: &Script, instance: &Path) -> Result<(), CeremonyError> {
    if out.symlink_metadata().is_err() || delivered_here(out, script, instance) {
        return Ok(());
    }
    Err(crate::files::OutputError::Exists(out.to_path_buf()).into())
}

/// True when `out` holds what this ceremony delivered in an earlier run that could not record
/// its end: a transcript naming this instance, and every output byte for byte the ceremony's
/// own (a certificate or TUF metadata signed in this ceremony is in no other).
fn delivered_here(out: &Path, script: &Script, instance: &Path) -> bool {
    let name = instance
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let work = instance.join("work");
    let transcript = std::fs::read_to_string(out.join("transcript.md")).unwrap_or_default();
    transcript.contains(&format!("(instance `{name}`)"))
        && script.outputs.iter().all(|output| {
            match (
                sha256_tree(&out.join(output)),
                sha256_tree(&work.join(output)),
            ) {
                (Ok(delivered), Ok(ours)) => delivered == ours,
                _ => false,
            }
        })
}

/// Delivers the script's outputs and the transcript to `out` (which must not exist), with a
/// response bundle signed by `bundle_key` if given, and journals the delivery
/// (`ceremony.finish`); returns the outputs with their SHA-256. `instance` names the ceremony's
/// state in errors.
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
    let mut outputs = BTreeMap::new();
    for name in &script.outputs {
        outputs.insert(
            name.clone(),
            sha256_tree(&work.join(name)).map_err(|e| state_error(e.to_string()))?,
        );
    }

    if delivered_here(out, script, instance) {
        context.prompter.say(&format!(
            "The outputs are already in {}: the previous run delivered them but could not \
             record the ceremony's end. They are not delivered again.",
            out.display()
        ));
        if !finish_journaled(context)? {
            journal_finish(context, out, &outputs, " (by the previous run)")?;
        }
        return Ok(outputs);
    }

    // A resumed ceremony may deliver what an earlier run signed: nothing expired goes out.
    for name in &script.outputs {
        refuse_expired_repository(&work.join(name), name, context.time)?;
    }

    crash_point("deliver", "before");

    let undelivered = |reason: String| CeremonyError::Delivery {
        out: out.to_path_buf(),
        reason,
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Never made here: a missing directory is a stick not plugged in (or not mounted).
    if !parent.is_dir() {
        return Err(undelivered(format!(
            "{} is not there (is the stick plugged in and mounted?)",
            parent.display()
        )));
    }
    let staging = parent.join(format!(
        ".tmp-{}",
        out.file_name().unwrap_or_default().to_string_lossy()
    ));
    // Left by a run stopped mid-delivery.
    remove_tree(&staging)
        .map_err(|e| undelivered(format!("removing {}: {e}", staging.display())))?;
    std::fs::create_dir(&staging).map_err(|e| undelivered(e.to_string()))?;
    let delivered = stage_and_move(
        context,
        transcript,
        &outputs,
        &staging,
        out,
        bundle_key,
        &undelivered,
    );
    if delivered.is_err() {
        // Nothing half-written is left beside the output (when the stick is still there).
        let _ = remove_tree(&staging);
    }
    delivered?;
    crash_point("deliver", "after-move");
    journal_finish(context, out, &outputs, "")?;
    crash_point("deliver", "journaled");
    Ok(outputs)
}

/// Journals the ceremony's end: its outputs, delivered to `out`.
fn journal_finish(
    context: &Context<'_>,
    out: &Path,
    outputs: &BTreeMap<String, String>,
    note: &str,
) -> Result<(), CeremonyError> {
    context.journal(
        "ceremony.finish",
        format!("outputs delivered to {}{note}", out.display()),
        vec![],
        outputs.iter().map(|(n, d)| journal_digest(n, d)).collect(),
    )
}

/// True when the journal already records this ceremony's end (a run that delivered and
/// journaled it, then could not record it in the progress record).
fn finish_journaled(context: &Context<'_>) -> Result<bool, CeremonyError> {
    let selection = crate::journal::Selection::Ceremony(context.instance.clone());
    let (entries, _) = context.journal.entries(&selection)?;
    Ok(entries.iter().any(|e| {
        e.record.ceremony.as_deref() == Some(context.instance.as_str())
            && e.record.action == "ceremony.finish"
    }))
}

/// Fills `staging` with the outputs, the devices' audit logs, the transcript and the response
/// bundle, flushes it to the device, and renames it to `out`.
fn stage_and_move(
    context: &mut Context<'_>,
    transcript: &mut Transcript,
    outputs: &BTreeMap<String, String>,
    staging: &Path,
    out: &Path,
    bundle_key: Option<&str>,
    undelivered: &dyn Fn(String) -> CeremonyError,
) -> Result<(), CeremonyError> {
    let work = context.work.clone();
    for name in outputs.keys() {
        copy_tree(&work.join(name), &staging.join(name))
            .map_err(|e| undelivered(format!("writing {name}: {e}")))?;
    }
    // Shares sealed to their custodians travel with the outputs (`handout`).
    let sealed = work.join(super::handout::SEALED_DIR);
    if sealed.is_dir() {
        copy_tree(&sealed, &staging.join(super::handout::SEALED_DIR))
            .map_err(|e| undelivered(format!("writing the sealed shares: {e}")))?;
    }
    record_device_audits(context, transcript, staging)?;
    transcript.finish(
        outputs,
        file_digests(staging)
            .map_err(|e| undelivered(format!("reading back the staged files: {e}")))?,
    );
    // This ceremony's records so far (refused PINs, interruptions, resumes, hand-outs).
    let (entries, head) = context
        .journal
        .entries(&crate::journal::Selection::Ceremony(
            context.instance.clone(),
        ))?;
    transcript.journal(head.to_string(), entries);
    std::fs::write(staging.join("transcript.md"), transcript.markdown())
        .map_err(|e| undelivered(format!("writing transcript.md: {e}")))?;
    std::fs::write(staging.join("transcript.html"), transcript.html())
        .map_err(|e| undelivered(format!("writing transcript.html: {e}")))?;
    if let Some(key) = bundle_key {
        let bundle = response_bundle(context, key, staging)?;
        crate::files::write_new(&staging.join("response.rcb"), &bundle)
            .map_err(|e| undelivered(e.to_string()))?;
    }
    // On the device before it is renamed into place: a stick pulled right after shows the
    // whole delivery or none of it.
    sync_tree(staging).map_err(|e| undelivered(format!("flushing to the device: {e}")))?;
    crate::files::ensure_absent([out])?;
    std::fs::rename(staging, out)
        .map_err(|e| undelivered(format!("moving the outputs into place: {e}")))?;
    // Delivered: a stick that then fails to flush its directory shows the whole delivery or
    // none of it, and a next run that finds it whole does not deliver again.
    let _ = sync_path(staging.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Every file staged so far, by its path under the output directory, with its SHA-256 (read
/// back from the staging directory: what is delivered, not what was meant to be).
fn file_digests(staging: &Path) -> std::io::Result<Vec<FileDigest>> {
    let mut files = Vec::new();
    collect_files(staging, staging, &mut files)?;
    files
        .into_iter()
        .map(|relative| {
            let sha256 = sha256_tree(&staging.join(&relative))?;
            let path = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            Ok(FileDigest { path, sha256 })
        })
        .collect()
}

/// Flushes a file, or a directory and everything in it, to its device.
fn sync_tree(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            sync_tree(&entry?.path())?;
        }
    }
    sync_path(path)
}

fn sync_path(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Removes a directory tree, if it is there.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
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
        let Some(device) = location.yubihsm(&context.hsm)? else {
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
    let mut builder = BundleBuilder::new(kind, context.time)
        .ceremony(context.instance.clone())
        .rehearsal(context.rehearsal);
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
    let signer = context.signer(key)?;
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
