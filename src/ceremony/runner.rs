//! The step runner: confirm time and presence, then each step in turn, each recorded before the
//! next begins, so that a ceremony interrupted anywhere resumes where it stopped.
//!
//! State lives in `STATE/ceremonies/NAME-ID/`: `progress.jsonl` (the ceremony's own record,
//! appended and flushed to disk before anything it describes is reported done) and `work/`
//! (inputs and the outputs of completed steps). The instance id is derived from the script and
//! the inputs, so running the same ceremony on the same request again resumes it.
//!
//! A step runs in `work/.step-ID/` and its outputs are moved into `work/` only when it has
//! finished; its completion is then recorded with the SHA-256 of each output. On resume, a
//! completed step is skipped after its outputs are re-hashed; a step that began but was not
//! recorded as complete is redone from scratch, except for what it recorded as intended before
//! doing it: a key (label and CKA_ID chosen in advance) found on the token is adopted, a lone
//! half removed; a certificate (serial chosen in advance) the interrupted run left, set aside in
//! `work/.step-ID.interrupted/`, is checked and adopted, or journaled as discarded.
//!
//! The runner is the engine alone: what a step does is its action's (`actions/`, one file each,
//! known here only through the `Perform` trait); `progress` keeps the record, `context` is what
//! an action is given, `delivery` hands the outputs over at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::context::{journal_digest, step_error, Context};
use super::delivery::deliver;
use super::progress::{crash_point, Event, Progress};
use super::prompter::Prompter;
use super::quorum::PinSets;
use super::script::{Script, Step};
use super::transcript::{Provenance, RunClock, StepEntry, Transcript};
use super::tree::{copy_tree, sha256_tree};
use super::CeremonyError;
use crate::journal::{Journal, Record};
use crate::keys::{HsmConfig, KeyLocation};
use crate::time::TimePolicy;

/// How to run a ceremony.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The script.
    pub script: PathBuf,
    /// The appliance's state directory.
    pub state: PathBuf,
    /// A directory holding the request's entries (the inputs), if the script has inputs.
    pub inputs: Option<PathBuf>,
    /// Where to collect the outputs and the transcript; must not exist.
    pub out: PathBuf,
    /// Rehearsal: throwaway SoftHSM2 tokens, outputs marked as rehearsal.
    pub rehearsal: bool,
    /// A script key (by name) that signs the response bundle written with the outputs.
    pub bundle_key: Option<String>,
    /// What the ceremony may reach of the HSMs: it opens its own provider from this (a
    /// rehearsal, one confined to its throwaway tokens) and drops it when it ends.
    pub hsm: HsmConfig,
    /// The appliance image's manifest, named in the transcript (none outside the image).
    pub image_manifest: Option<PathBuf>,
}

/// What a finished ceremony produced.
#[derive(Debug)]
pub struct CeremonyReport {
    /// The instance directory.
    pub instance: PathBuf,
    /// The output directory.
    pub out: PathBuf,
    /// Outputs with their SHA-256.
    pub outputs: BTreeMap<String, String>,
    /// Steps skipped because an earlier run completed them.
    pub resumed_steps: Vec<String>,
}

/// The instance directory name: the ceremony's name and a digest of the script and inputs.
/// The instance id: the script's name, `rehearsal` for a rehearsal, and a hash of the script and
/// the request. A rehearsal and a real run of the same request are separate instances, so a
/// rehearsal never blocks the real ceremony (nor is resumed as it), and its name marks whatever
/// carries it: the journal's records, the response bundle, the stick directory.
fn instance_id(
    script: &Script,
    inputs: Option<&Path>,
    rehearsal: bool,
) -> Result<String, CeremonyError> {
    let mut hasher = Sha256::new();
    let script_bytes =
        std::fs::read(&script.path).map_err(|e| CeremonyError::ScriptUnreadable {
            path: script.path.clone(),
            reason: e.to_string(),
        })?;
    hasher.update(&script_bytes);
    if let Some(dir) = inputs {
        for input in &script.inputs {
            let path = dir.join(&input.name);
            let digest = sha256_tree(&path).map_err(|_| CeremonyError::MissingInput {
                name: input.name.clone(),
                dir: dir.to_path_buf(),
            })?;
            hasher.update(format!("{} {digest}\n", input.name));
        }
    }
    Ok(format!(
        "{}{}-{}",
        script.ceremony.name,
        if rehearsal { "-rehearsal" } else { "" },
        &hex::encode(hasher.finalize())[..12]
    ))
}

/// Runs (or resumes) the ceremony described by `options.script`.
pub fn run(
    options: &RunOptions,
    prompter: &mut dyn Prompter,
) -> Result<CeremonyReport, CeremonyError> {
    let mut script = super::check(&options.script)?;
    if !script.inputs.is_empty() && options.inputs.is_none() {
        return Err(CeremonyError::MissingInput {
            name: script.inputs[0].name.clone(),
            dir: PathBuf::from("(no request given)"),
        });
    }
    let instance = options.state.join("ceremonies").join(instance_id(
        &script,
        options.inputs.as_deref(),
        options.rehearsal,
    )?);
    let work = instance.join("work");
    super::delivery::check_out(&options.out, &script, &instance)?;
    let state_error = |reason: String| CeremonyError::State {
        path: instance.clone(),
        reason,
    };
    let mut progress = Progress::open(instance.join("progress.jsonl"))?;
    let journal = Journal::open(&options.state)?;
    let instance_name = instance
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if progress.finished() {
        return Err(state_error(
            "this ceremony has already been completed; its outputs were delivered".into(),
        ));
    }

    prompter.say(&format!(
        "== {} ({})",
        script.ceremony.title, script.ceremony.name
    ));
    if !script.ceremony.summary.is_empty() {
        prompter.say(&script.ceremony.summary);
    }
    if options.rehearsal {
        prompter.say("** REHEARSAL: throwaway tokens; outputs are marked as rehearsal **");
    }

    // The time and the people present: confirmed at the start, again on resume.
    let policy = script
        .ceremony
        .clock_tolerance_minutes
        .map(TimePolicy::minutes)
        .unwrap_or_default();
    let time = super::confirm_time::confirm(prompter, &journal, policy)?;
    let clock = RunClock::start(time);
    let present = super::presence::ask(prompter, &script)?;
    // Only now, with the time confirmed, does the ceremony leave a trace in the state.
    std::fs::create_dir_all(&work).map_err(|e| state_error(e.to_string()))?;
    let (time, rehearsal) = match progress.started() {
        Some((original, rehearsal)) => {
            if rehearsal != options.rehearsal {
                return Err(state_error(
                    "this ceremony was started in the other mode (rehearsal vs production)".into(),
                ));
            }
            prompter.say(&format!(
                "Resuming the ceremony begun at {original}: the steps done then keep that time; \
                 what is signed from now on is dated {time}."
            ));
            journal.append(
                Record::new(time, present["operator"].join(", "), "ceremony.resume")
                    .ceremony(instance_name.clone())
                    .detail(format!(
                        "begun at {original}; {}; present: {}",
                        time.note(),
                        present_text(&present)
                    )),
            )?;
            progress.record(Event::Resume {
                time: time.timestamp(),
                present: present.clone(),
            })?;
            (time, rehearsal)
        }
        None => {
            if let Some(dir) = &options.inputs {
                for input in &script.inputs {
                    // Copied beside, then renamed into place: a run killed while copying
                    // leaves no half-copied input for the next run to take as complete.
                    let target = work.join(&input.name);
                    if !target.exists() {
                        let partial = work.join(format!(".input-{}", input.name));
                        let copied = remove_any(&partial)
                            .and_then(|()| copy_tree(&dir.join(&input.name), &partial))
                            .and_then(|()| std::fs::rename(&partial, &target));
                        copied.map_err(|e| {
                            state_error(format!("copying input {}: {e}", input.name))
                        })?;
                    }
                }
            }
            journal.append(
                Record::new(time, present["operator"].join(", "), "ceremony.start")
                    .ceremony(instance_name.clone())
                    .detail(format!(
                        "{}{}; {}; present: {}",
                        script.ceremony.name,
                        if options.rehearsal {
                            " (rehearsal)"
                        } else {
                            ""
                        },
                        time.note(),
                        present_text(&present)
                    )),
            )?;
            progress.record(Event::Start {
                time: time.timestamp(),
                present: present.clone(),
                rehearsal: options.rehearsal,
            })?;
            (time, options.rehearsal)
        }
    };

    // A rehearsal's splits are its throwaway tokens', kept apart from the real tokens' splits
    // (whose labels they share) so that a rehearsal never changes what a real ceremony asks.
    let pin_sets = PinSets::load(&if rehearsal {
        options.state.join("rehearsal")
    } else {
        options.state.clone()
    })?;
    // The ceremony's own provider: whatever happens from here, its tokens are logged out and
    // its modules unloaded when it is dropped, as the ceremony ends. A rehearsal's reaches only
    // the rehearsal's tokens.
    let (hsm, pin_files) = if rehearsal {
        let prepared = super::rehearsal::prepare_tokens(&options.state, &mut script, &options.hsm)?;
        for repair in &prepared.repairs {
            prompter.say(repair);
        }
        (prepared.hsm, prepared.pin_files)
    } else {
        (options.hsm.open(), BTreeMap::new())
    };
    let mut context = Context {
        script: &script,
        work: work.clone(),
        time,
        rehearsal,
        prompter,
        unlocked: BTreeSet::new(),
        pin_files,
        pins: BTreeMap::new(),
        pin_sets,
        rehearsal_shares: rehearsal.then(|| options.state.join("rehearsal").join("shares")),
        journal,
        progress,
        instance: instance_name,
        operator: present["operator"].join(", "),
        yubihsms: BTreeMap::new(),
        leftovers: None,
        hsm,
    };
    let provenance = Provenance {
        software: super::transcript::software_identity(),
        image: super::transcript::image_identity(options.image_manifest.as_deref()),
    };
    let mut transcript = Transcript::new(&script, &instance, time, &present, rehearsal, provenance);
    if let Some((begun, _)) = context.progress.started() {
        transcript.resumed_from(begun);
    }
    let mut resumed = Vec::new();

    for step in &script.steps {
        if let Some(Event::Complete {
            outputs,
            details,
            preview,
            times,
            ..
        }) = context.progress.completed().get(step.id.as_str()).copied()
        {
            for (name, digest) in outputs {
                let actual =
                    sha256_tree(&work.join(name)).map_err(|e| state_error(e.to_string()))?;
                if &actual != digest {
                    return Err(state_error(format!(
                        "output {name} of completed step {} was altered since it was recorded",
                        step.id
                    )));
                }
            }
            // A crash between completing the step and clearing what it set aside.
            let _ = remove_any(&leftovers_dir(&context, step));
            context.prompter.say(&format!(
                "-- step {}: already completed, outputs verified",
                step.id
            ));
            transcript.step(StepEntry {
                id: step.id.clone(),
                title: step.title.clone(),
                preview: preview.clone(),
                outputs: outputs.clone(),
                details: details.clone(),
                resumed: true,
                times: *times,
            });
            resumed.push(step.id.clone());
            continue;
        }
        let entry = run_step(&mut context, step, &clock)?;
        transcript.step(entry);
    }

    let outputs = deliver(
        &mut context,
        &mut transcript,
        &options.out,
        options.bundle_key.as_deref(),
        &instance,
    )?;
    context.progress.record(Event::Finish {
        outputs: outputs.clone(),
    })?;
    context.prompter.say(&format!(
        "== ceremony complete: outputs and transcript in {}",
        options.out.display()
    ));
    Ok(CeremonyReport {
        instance,
        out: options.out.clone(),
        outputs,
        resumed_steps: resumed,
    })
}

fn present_text(present: &BTreeMap<String, Vec<String>>) -> String {
    present
        .iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(role, names)| format!("{role}: {}", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a step will do, shown before it runs: what it reads (digests), the keys it signs with
/// (fingerprints, read from the tokens, which are unlocked by now), what the action shows of
/// the thing it signs (a CSR's subject and key, a TUF root's changes), and what it writes.
/// The witnesses compare the fingerprints with those on their papers.
fn preview(context: &Context<'_>, step: &Step) -> Result<Vec<String>, CeremonyError> {
    let action = step.action.performer();
    let mut lines = Vec::new();
    for read in action.reads() {
        let digest =
            sha256_tree(&context.path(&read)).map_err(|_| CeremonyError::MissingInput {
                name: read.clone(),
                dir: context.work.clone(),
            })?;
        lines.push(format!(
            "reads {read}: SHA-256 {}",
            crate::readout::groups(&digest)
        ));
    }
    let made = action.makes_keys();
    for name in action.keys() {
        if made.contains(&name) {
            continue;
        }
        let location = KeyLocation::parse(&context.script.keys[name].uri)?;
        let key = context.hsm.signer(&location)?;
        lines.push(format!("uses key {name}: {}", location.without_query()));
        lines.push(format!(
            "   key {name}: {}",
            key.public_key().fingerprint_read_aloud()
        ));
        // The id a TUF root lists the key under, for those comparing a root's keys.
        if let Ok(tuf) = crate::tuf::TufKey::from_public(key.public_key()) {
            lines.push(format!("   key {name}: TUF key id {}", tuf.key_id));
        }
    }
    lines.extend(action.preview(context));
    for write in action.writes() {
        lines.push(format!("writes {write}"));
    }
    Ok(lines)
}

/// The code the operator types to perform a step: a digest of everything the preview shows
/// (fingerprints included) and of the mode, so that a rehearsal's codes never pass for the
/// real run's.
fn confirmation_code(rehearsal: bool, preview: &[String]) -> String {
    let mode = if rehearsal { "rehearsal" } else { "real" };
    let mut hasher = Sha256::new();
    hasher.update(format!("rootcellar step confirmation, {mode}\n"));
    hasher.update(preview.join("\n"));
    hex::encode(hasher.finalize())[..8].to_string()
}

/// Runs one step: its keys unlocked, shown and confirmed, begun (journal, then progress),
/// performed in a clean scratch directory, its outputs moved into place, then completed
/// (journal, then progress).
fn run_step(
    context: &mut Context<'_>,
    step: &Step,
    clock: &RunClock,
) -> Result<StepEntry, CeremonyError> {
    let shown_ms = clock.elapsed_ms();
    let action = step.action.performer();
    context
        .prompter
        .say(&format!("-- step {}: {}", step.id, step.title));
    // Every key a step names is unlocked first, including those a TUF step only needs the
    // public half of: the token session is how the key's public half is read, shown and
    // matched.
    for name in action.keys() {
        context.unlock(name)?;
    }
    let preview = preview(context, step)?;
    for line in &preview {
        context.prompter.say(&format!("   {line}"));
    }
    let code = confirmation_code(context.rehearsal, &preview);
    context.prompter.confirm_step(&step.id, &code)?;
    let confirmed_ms = clock.elapsed_ms();
    context.journal("ceremony.step.begin", step.id.clone(), vec![], vec![])?;
    context.progress.record(Event::Begin {
        step: step.id.clone(),
    })?;
    crash_point(&step.id, "before");

    // A step that began before a crash starts over in a clean scratch directory. What the
    // interrupted run wrote (in its scratch, or already moved into place, never recorded) is
    // set aside for the action to reconcile: a certificate signed under a recorded serial is
    // adopted from there.
    let scratch = scratch_dir(context, step);
    let leftovers = leftovers_dir(context, step);
    set_aside(&action.writes(), context, &scratch, &leftovers)
        .map_err(|e| step_error(step)(Box::new(e)))?;
    std::fs::create_dir_all(&scratch).map_err(|e| step_error(step)(Box::new(e)))?;
    context.leftovers = leftovers.exists().then(|| leftovers.clone());

    let details = action.perform(context, step, &scratch);
    context.leftovers = None;
    let details = details?;
    crash_point(&step.id, "after-hsm");

    let mut outputs = BTreeMap::new();
    for write in action.writes() {
        std::fs::rename(scratch.join(&write), context.path(&write))
            .map_err(|e| step_error(step)(Box::new(e)))?;
        let digest =
            sha256_tree(&context.path(&write)).map_err(|e| step_error(step)(Box::new(e)))?;
        outputs.insert(write, digest);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    crash_point(&step.id, "after-outputs");
    let mut inputs = Vec::new();
    for read in action.reads() {
        let digest =
            sha256_tree(&context.path(&read)).map_err(|e| step_error(step)(Box::new(e)))?;
        inputs.push(journal_digest(&read, &digest));
    }
    context.journal(
        "ceremony.step",
        format!("{}: {}", step.id, details.join("; ")),
        inputs,
        outputs.iter().map(|(n, d)| journal_digest(n, d)).collect(),
    )?;
    let times = clock.step(shown_ms, confirmed_ms);
    context.progress.record(Event::Complete {
        step: step.id.clone(),
        outputs: outputs.clone(),
        details: details.clone(),
        preview: preview.clone(),
        times: Some(times),
    })?;
    let _ = remove_any(&leftovers);
    for line in &details {
        context.prompter.say(&format!("   done: {line}"));
    }
    Ok(StepEntry {
        id: step.id.clone(),
        title: step.title.clone(),
        preview,
        outputs,
        details,
        resumed: false,
        times: Some(times),
    })
}

/// Where a step writes its outputs before they are moved into place.
fn scratch_dir(context: &Context<'_>, step: &Step) -> PathBuf {
    context.work.join(format!(".step-{}", step.id))
}

/// Where what an interrupted run of a step wrote is kept until the step completes.
fn leftovers_dir(context: &Context<'_>, step: &Step) -> PathBuf {
    context.work.join(format!(".step-{}.interrupted", step.id))
}

/// Moves what an interrupted run of a step wrote into `leftovers`, the newest of each output
/// (moved into place, else in scratch, else what an earlier interruption set aside), and
/// clears the scratch directory. Nothing is set aside for a step run the first time.
fn set_aside(
    writes: &[String],
    context: &Context<'_>,
    scratch: &Path,
    leftovers: &Path,
) -> std::io::Result<()> {
    for write in writes {
        let newest = [context.path(write), scratch.join(write)]
            .into_iter()
            .find(|p| std::fs::symlink_metadata(p).is_ok());
        if let Some(newest) = newest {
            std::fs::create_dir_all(leftovers)?;
            let kept = leftovers.join(write);
            remove_any(&kept)?;
            std::fs::rename(&newest, &kept)?;
        }
    }
    remove_any(scratch)
}

/// Removes a file or directory tree left by an interrupted run, if there is one.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::confirmation_code;

    #[test]
    fn a_rehearsals_codes_never_pass_for_the_real_runs() {
        let preview = vec!["uses key root-ca: pkcs11:token=root-ca;object=root-ca".to_string()];
        let rehearsal = confirmation_code(true, &preview);
        let real = confirmation_code(false, &preview);
        assert_ne!(rehearsal, real);
        assert_eq!(real.len(), 8);
        assert!(real.bytes().all(|b| b.is_ascii_hexdigit()));
        // Any change to what is shown changes the code.
        let mut other = preview.clone();
        other.push("writes root.pem".into());
        assert_ne!(confirmation_code(false, &other), real);
    }
}
