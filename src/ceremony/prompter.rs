//! The questions a ceremony asks, answered at the console or from an answers file.
//!
//! The console is line-oriented (a serial line works as well as a screen). Secrets (PINs,
//! shares) are read with echo off and held in zeroized memory. An answers file supplies the same
//! answers for rehearsals and tests; its PINs and shares come from files it names, never from
//! the answers file itself (custodians' age recipients, which are public, are given in it).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::handout::{check_typed_back, parse_recipient, written_form};
use super::CeremonyError;
use crate::keys::Share;

/// What a ceremony asks of the people in the room.
pub trait Prompter {
    /// Shows a line of text.
    fn say(&mut self, text: &str);

    /// Asks the operator to confirm (or correct) the date and time.
    fn confirm_time(&mut self, clock: jiff::Timestamp) -> Result<jiff::Timestamp, CeremonyError>;

    /// Asks for `time` to be typed again, after the operator was shown how far it is from the
    /// machine clock; `None` when there is nobody to ask.
    fn type_time_again(
        &mut self,
        time: jiff::Timestamp,
    ) -> Result<Option<jiff::Timestamp>, CeremonyError>;

    /// Asks for the names of the people in `role` (at least `min`).
    fn names(&mut self, role: &str, min: usize) -> Result<Vec<String>, CeremonyError>;

    /// Asks for the typed confirmation `code` before a step runs.
    fn confirm_step(&mut self, step: &str, code: &str) -> Result<(), CeremonyError>;

    /// Asks the holder of `token` for its secret.
    /// (`secret` says what it is: a token's `PIN`, a YubiHSM2's `authentication key password`.)
    fn pin(
        &mut self,
        token: &str,
        secret: &str,
        holder: &str,
    ) -> Result<Zeroizing<String>, CeremonyError>;

    /// Asks the security officer of `token` for its SO PIN (a backup makes its wrap key
    /// under the SO's login), echo off like every secret.
    fn so_pin(&mut self, token: &str) -> Result<Zeroizing<String>, CeremonyError> {
        self.pin(token, "SO PIN", "security officer")
    }

    /// After the device refused the `secret` of `token` (a wrong PIN): whether its holder
    /// wants to type it again. Never automatic: each attempt is a person's, and the device's
    /// own count of failed attempts is the only limit. An unattended run does not retry.
    fn retry_secret(&mut self, token: &str, secret: &str) -> Result<bool, CeremonyError> {
        let _ = (token, secret);
        Ok(false)
    }

    /// Asks custodian `custodian` for their share: typed as written down (in groups), or as
    /// `age -d` printed their sealed share. A console says which group is wrong and asks again.
    fn share(&mut self, custodian: &str) -> Result<Share, CeremonyError>;

    /// Asks custodian `custodian` for the age recipient (`age1…`) their new share is to be
    /// sealed to; `None` when they write it down instead.
    fn recipient(
        &mut self,
        custodian: &str,
    ) -> Result<Option<age::x25519::Recipient>, CeremonyError>;

    /// Hands custodian `custodian` their new share of `group` to write down: shown in groups,
    /// then typed back until it matches. It is never recorded. In a rehearsal (`rehearsal`),
    /// which keeps the share in a file anyway, an unattended run may skip it; returns whether
    /// it was handed over.
    fn show_share(
        &mut self,
        custodian: &str,
        group: &str,
        share: &Share,
        rehearsal: bool,
    ) -> Result<bool, CeremonyError>;
}

fn console_error(e: std::io::Error) -> CeremonyError {
    CeremonyError::Console(e.to_string())
}

/// The console: standard input and output, secrets read with echo off.
pub struct Interactive<R: BufRead, W: Write> {
    input: R,
    output: W,
}

impl Interactive<std::io::StdinLock<'static>, std::io::Stdout> {
    /// The process's terminal.
    pub fn terminal() -> Self {
        Interactive {
            input: std::io::stdin().lock(),
            output: std::io::stdout(),
        }
    }
}

impl<R: BufRead, W: Write> Interactive<R, W> {
    /// A console on any line-oriented input and output (the operator console's terminal, which
    /// it shares with the ceremony it runs).
    pub fn new(input: R, output: W) -> Self {
        Interactive { input, output }
    }

    fn line(&mut self, prompt: &str) -> Result<String, CeremonyError> {
        super::typeahead::discard();
        write!(self.output, "{prompt}").map_err(console_error)?;
        self.output.flush().map_err(console_error)?;
        let mut line = String::new();
        if self.input.read_line(&mut line).map_err(console_error)? == 0 {
            return Err(CeremonyError::Console("input closed".into()));
        }
        Ok(line.trim().to_string())
    }

    fn secret(&mut self, prompt: &str) -> Result<Zeroizing<String>, CeremonyError> {
        super::typeahead::discard();
        self.output.flush().map_err(console_error)?;
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return rpassword::prompt_password(prompt)
                .map(Zeroizing::new)
                .map_err(console_error);
        }
        // Not a terminal (a program driving the console over a pipe): there is no echo to turn
        // off. The secret is read like a line, kept in zeroized memory, never written back.
        write!(self.output, "{prompt}").map_err(console_error)?;
        self.output.flush().map_err(console_error)?;
        let mut line = Zeroizing::new(String::new());
        if self.input.read_line(&mut line).map_err(console_error)? == 0 {
            return Err(CeremonyError::Console("input closed".into()));
        }
        Ok(Zeroizing::new(line.trim().to_string()))
    }
}

impl<R: BufRead, W: Write> Prompter for Interactive<R, W> {
    fn say(&mut self, text: &str) {
        let _ = writeln!(self.output, "{text}");
    }

    fn confirm_time(&mut self, clock: jiff::Timestamp) -> Result<jiff::Timestamp, CeremonyError> {
        loop {
            let answer = self.line(&format!(
                "The appliance clock says {clock}. Check it against the witnesses' watches.\n\
                 Press Enter to accept it, or type the correct UTC time (RFC 3339): "
            ))?;
            if answer.is_empty() {
                return Ok(clock);
            }
            match crate::time::parse(&answer) {
                Ok(t) => return Ok(t),
                Err(e) => self.say(&e.to_string()),
            }
        }
    }

    fn type_time_again(
        &mut self,
        time: jiff::Timestamp,
    ) -> Result<Option<jiff::Timestamp>, CeremonyError> {
        loop {
            let again = self.line(&format!("Confirm {time} by typing it again: "))?;
            match crate::time::parse(&again) {
                Ok(t) => return Ok(Some(t)),
                Err(e) => self.say(&e.to_string()),
            }
        }
    }

    fn names(&mut self, role: &str, min: usize) -> Result<Vec<String>, CeremonyError> {
        let mut names = Vec::new();
        loop {
            let prompt = if names.len() < min {
                format!("Name of {role} {} (required): ", names.len() + 1)
            } else {
                format!("Name of {role} {} (Enter when done): ", names.len() + 1)
            };
            let name = self.line(&prompt)?;
            if name.is_empty() {
                if names.len() >= min {
                    return Ok(names);
                }
                continue;
            }
            names.push(name);
        }
    }

    fn confirm_step(&mut self, step: &str, code: &str) -> Result<(), CeremonyError> {
        loop {
            let typed = self.line(&format!(
                "Type {code} to perform step {step:?}, or 'abort' to stop here: "
            ))?;
            if typed == code {
                return Ok(());
            }
            if typed == "abort" {
                return Err(CeremonyError::NotConfirmed(format!(
                    "the operator stopped the ceremony before step {step:?}; run it again to resume"
                )));
            }
            self.say("That is not the confirmation code.");
        }
    }

    fn pin(
        &mut self,
        token: &str,
        secret: &str,
        holder: &str,
    ) -> Result<Zeroizing<String>, CeremonyError> {
        self.secret(&format!("{holder}: {secret} of {token:?} (not echoed): "))
    }

    fn retry_secret(&mut self, token: &str, secret: &str) -> Result<bool, CeremonyError> {
        self.say(&format!(
            "{token:?} refused that {secret}. The token counts failed attempts and may lock \
             itself after a few; each one is journaled."
        ));
        loop {
            match self
                .line(&format!(
                    "Type retry to enter the {secret} again, or abort to stop here: "
                ))?
                .as_str()
            {
                "retry" => return Ok(true),
                "abort" => return Ok(false),
                _ => self.say("Please type retry or abort."),
            }
        }
    }

    fn share(&mut self, custodian: &str) -> Result<Share, CeremonyError> {
        loop {
            let typed = self.secret(&format!(
                "{custodian}: your share, every group on one line, as written down or as \
                 `age -d` showed it (not echoed; 'abort' to stop): "
            ))?;
            if typed.as_str() == "abort" {
                return Err(CeremonyError::NotConfirmed(format!(
                    "stopped while {custodian}'s share was asked for; run the ceremony again \
                     to resume"
                )));
            }
            match Share::parse_typed(&typed) {
                Ok(share) => return Ok(share),
                Err(e) => self.say(&format!(
                    "That share does not read: {e}. Check it against your paper and type it again."
                )),
            }
        }
    }

    fn recipient(
        &mut self,
        custodian: &str,
    ) -> Result<Option<age::x25519::Recipient>, CeremonyError> {
        loop {
            let typed = self.line(&format!(
                "{custodian}: age recipient to seal your new share to (age1…), or Enter to \
                 write the share down instead: "
            ))?;
            if typed.is_empty() {
                return Ok(None);
            }
            match parse_recipient(&typed) {
                Ok(recipient) => return Ok(Some(recipient)),
                Err(e) => self.say(&format!("{e}; type it again.")),
            }
        }
    }

    fn show_share(
        &mut self,
        custodian: &str,
        _group: &str,
        share: &Share,
        rehearsal: bool,
    ) -> Result<bool, CeremonyError> {
        if rehearsal {
            self.say("(Rehearsal: the share is kept in the rehearsal's files too; writing it down is practice.)");
        }
        loop {
            self.line(&format!(
                "Only {custodian} may look at the screen now. Press Enter to show the share: "
            ))?;
            writeln!(
                self.output,
                "\n  {custodian}: share {} of split {} ({} needed), fingerprint {}\n\n{}\n",
                share.index(),
                share.set_id(),
                share.threshold(),
                share.fingerprint(),
                share.to_grouped().as_str()
            )
            .map_err(console_error)?;
            self.line(
                "Write it down, each group with its last character (a check character), \
                 then press Enter to clear the screen: ",
            )?;
            // Clear the screen, and scroll a serial console's lines out of sight.
            write!(self.output, "\x1b[2J\x1b[H{}", "\n".repeat(60)).map_err(console_error)?;
            let typed = self.secret(&format!(
                "{custodian}: type your share back from your paper, every group on one line \
                 (not echoed): "
            ))?;
            match check_typed_back(share, &typed) {
                Ok(()) => {
                    self.say(&format!("{custodian}'s share was typed back correctly."));
                    return Ok(true);
                }
                Err(why) => self.say(&format!(
                    "{why} Check the paper against the screen: the share is shown again."
                )),
            }
        }
    }
}

/// Answers for an unattended run (`--answers FILE`): rehearsals and tests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    /// The confirmed ceremony time.
    pub time: jiff::Timestamp,
    /// The same time typed again: needed when it is further from the machine clock than the
    /// script's tolerance (as the operator at the console would be asked to).
    #[serde(default)]
    pub time_again: Option<jiff::Timestamp>,
    /// Who is present, by role (`operator`, `witness`, and each custodian role).
    pub present: BTreeMap<String, Vec<String>>,
    /// Confirm every step (the answers file stands for the operator's typing).
    pub confirm: bool,
    /// PIN files by token label.
    #[serde(default)]
    pub pins: BTreeMap<String, PathBuf>,
    /// SO PIN files by token label (a production backup; a rehearsal knows its tokens' SO PINs).
    #[serde(default)]
    pub so_pins: BTreeMap<String, PathBuf>,
    /// Share files by custodian role.
    #[serde(default)]
    pub shares: BTreeMap<String, PathBuf>,
    /// Where new shares are handed out (one file per custodian, as written down), in unattended
    /// production runs (a rehearsal keeps them in its own files).
    #[serde(default)]
    pub share_dir: Option<PathBuf>,
    /// Age recipients (`age1…`) by custodian role: that custodian's new share is sealed to it.
    #[serde(default)]
    pub recipients: BTreeMap<String, String>,
    /// Files typed back wrongly, by custodian role, before the share written to `share_dir`
    /// is typed back (each mismatch is said, and the share asked again).
    #[serde(default)]
    pub mistyped: BTreeMap<String, Vec<PathBuf>>,
    #[serde(skip)]
    path: PathBuf,
    #[serde(skip)]
    log: Vec<String>,
}

impl Answers {
    /// Reads an answers file.
    pub fn load(path: &Path) -> Result<Self, CeremonyError> {
        let bad = |reason: String| CeremonyError::BadAnswers {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        Answers::parse(&text, path)
    }

    /// Parses the text of an answers file read from `path` (which errors name).
    pub fn parse(text: &str, path: &Path) -> Result<Self, CeremonyError> {
        let mut answers: Answers = toml::from_str(text).map_err(|e| CeremonyError::BadAnswers {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        answers.path = path.to_path_buf();
        Ok(answers)
    }

    fn missing(&self, what: String) -> CeremonyError {
        CeremonyError::BadAnswers {
            path: self.path.clone(),
            reason: what,
        }
    }

    fn secret_file(&self, path: &Path, what: &str) -> Result<Zeroizing<String>, CeremonyError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| self.missing(format!("{what} file {}: {e}", path.display())))?,
        );
        Ok(Zeroizing::new(text.trim().to_string()))
    }

    /// What was shown, in order (an unattended run prints it too).
    pub fn shown(&self) -> &[String] {
        &self.log
    }
}

impl Prompter for Answers {
    fn say(&mut self, text: &str) {
        println!("{text}");
        self.log.push(text.to_string());
    }

    fn confirm_time(&mut self, _clock: jiff::Timestamp) -> Result<jiff::Timestamp, CeremonyError> {
        Ok(self.time)
    }

    fn type_time_again(
        &mut self,
        _time: jiff::Timestamp,
    ) -> Result<Option<jiff::Timestamp>, CeremonyError> {
        Ok(self.time_again)
    }

    fn names(&mut self, role: &str, min: usize) -> Result<Vec<String>, CeremonyError> {
        let names = self.present.get(role).cloned().unwrap_or_default();
        if names.len() < min {
            return Err(self.missing(format!(
                "present.{role} names {} people; the ceremony needs at least {min}",
                names.len()
            )));
        }
        Ok(names)
    }

    fn confirm_step(&mut self, step: &str, _code: &str) -> Result<(), CeremonyError> {
        if self.confirm {
            Ok(())
        } else {
            Err(CeremonyError::NotConfirmed(format!(
                "step {step:?} not confirmed (answers file has confirm = false)"
            )))
        }
    }

    fn pin(
        &mut self,
        token: &str,
        _secret: &str,
        _holder: &str,
    ) -> Result<Zeroizing<String>, CeremonyError> {
        let path = self
            .pins
            .get(token)
            .cloned()
            .ok_or_else(|| self.missing(format!("pins.{token} is missing")))?;
        self.secret_file(&path, "PIN")
    }

    fn so_pin(&mut self, token: &str) -> Result<Zeroizing<String>, CeremonyError> {
        let path = self
            .so_pins
            .get(token)
            .cloned()
            .ok_or_else(|| self.missing(format!("so_pins.{token} is missing")))?;
        self.secret_file(&path, "SO PIN")
    }

    fn share(&mut self, custodian: &str) -> Result<Share, CeremonyError> {
        let path = self
            .shares
            .get(custodian)
            .cloned()
            .ok_or_else(|| self.missing(format!("shares.{custodian} is missing")))?;
        let text = self.secret_file(&path, "share")?;
        Share::parse_typed(&text).map_err(|e| {
            CeremonyError::NotConfirmed(format!("the share of {custodian} is refused: {e}"))
        })
    }

    fn recipient(
        &mut self,
        custodian: &str,
    ) -> Result<Option<age::x25519::Recipient>, CeremonyError> {
        match self.recipients.get(custodian) {
            None => Ok(None),
            Some(text) => parse_recipient(text)
                .map(Some)
                .map_err(|e| self.missing(format!("recipients.{custodian}: {e}"))),
        }
    }

    fn show_share(
        &mut self,
        custodian: &str,
        group: &str,
        share: &Share,
        rehearsal: bool,
    ) -> Result<bool, CeremonyError> {
        let Some(dir) = self.share_dir.clone() else {
            if rehearsal {
                return Ok(false);
            }
            return Err(self.missing("share_dir is needed to hand out new shares".into()));
        };
        std::fs::create_dir_all(&dir).map_err(|e| self.missing(e.to_string()))?;
        let paper = dir.join(format!("{custodian}.share"));
        crate::files::write_new(&paper, written_form(custodian, group, share).as_bytes())
            .map_err(|e| self.missing(e.to_string()))?;
        // The re-typing check, as at the console: each wrong attempt is said, then the paper.
        let attempts = self.mistyped.get(custodian).cloned().unwrap_or_default();
        for attempt in attempts.iter().chain(std::iter::once(&paper)) {
            let typed = self.secret_file(attempt, "typed-back share")?;
            match check_typed_back(share, &typed) {
                Ok(()) => {
                    self.say(&format!("{custodian}'s share was typed back correctly."));
                    return Ok(true);
                }
                Err(why) => self.say(&format!("{custodian}: {why} Asked again.")),
            }
        }
        Err(self.missing(format!(
            "the share written to {} for {custodian} does not type back",
            paper.display()
        )))
    }
}
