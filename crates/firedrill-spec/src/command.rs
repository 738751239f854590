//! User commands in a spec: the `command` fault (inject, heal, in-effect
//! probe) and the recovery's `command` and `verify_command`. A command is an
//! argv array, run as is (no shell, no quoting to get wrong), or a string,
//! run with `sh -c` (pipes, `&&`, `$VAR`). Secrets never go in the text: a
//! command gets them from firedrill's environment, which it inherits.

use crate::{Diagnostic, DrillSpec, Dur, FaultAction, FaultStep, LoadedSpec, Spanned};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One command as the spec writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandSpec {
    /// `["toxiproxy-cli", "toggle", "pg"]`: the program and its arguments.
    Argv(Vec<String>),
    /// `"toxiproxy-cli toxic add ... && ..."`: run with `sh -c`.
    Shell(String),
}

impl CommandSpec {
    /// The argv that is executed: a shell string becomes `sh -c STRING`.
    pub fn argv(&self) -> Vec<String> {
        match self {
            CommandSpec::Argv(v) => v.clone(),
            CommandSpec::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        }
    }
    /// What a record names the command by: its program (the rest is in the
    /// spec, which the run keeps).
    pub fn program(&self) -> String {
        match self {
            CommandSpec::Argv(v) => v.first().cloned().unwrap_or_default(),
            CommandSpec::Shell(_) => "sh -c".into(),
        }
    }
    fn is_empty(&self) -> bool {
        match self {
            CommandSpec::Argv(v) => v.first().is_none_or(|p| p.trim().is_empty()),
            CommandSpec::Shell(s) => s.trim().is_empty(),
        }
    }
    fn words(&self) -> Vec<&str> {
        match self {
            CommandSpec::Argv(v) => v.iter().map(String::as_str).collect(),
            CommandSpec::Shell(s) => s.split_whitespace().collect(),
        }
    }
}

/// A step's commands run for at most this long each, unless `timeout` says.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `timeout` a command may have: a heal must not wait for ever.
pub const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(3600);

/// Words that say the command text itself carries a secret: `password=x`,
/// `--token x`. A reference to the environment (`$PGPASSWORD`) is fine.
fn secret_in(c: &CommandSpec) -> Option<String> {
    const KEYS: &[&str] = &[
        "password", "passwd", "secret", "token", "apikey", "api_key", "api-key",
    ];
    let words = c.words();
    let is_key = |w: &str| {
        let l = w.trim_start_matches('-').to_ascii_lowercase();
        KEYS.iter().any(|k| l.ends_with(k))
    };
    let literal = |v: &str| {
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        !v.is_empty() && !v.starts_with('$')
    };
    for (i, w) in words.iter().enumerate() {
        if let Some((k, v)) = w.split_once('=') {
            if is_key(k) && literal(v) {
                return Some(k.trim_start_matches('-').to_string());
            }
        } else if w.starts_with("--")
            && is_key(w)
            && words
                .get(i + 1)
                .is_some_and(|v| literal(v) && !v.starts_with('-'))
        {
            return Some(w.trim_start_matches('-').to_string());
        }
        if w.contains("://") && url_password(w).is_some_and(literal) {
            return Some("a URL with a password".into());
        }
    }
    None
}

/// The password of `scheme://user:password@host`, if the word has one.
fn url_password(w: &str) -> Option<&str> {
    let after = w.split_once("://")?.1;
    let (userinfo, _) = after.split_once('@')?;
    userinfo.split_once(':').map(|(_, p)| p)
}

/// Checks one command: not empty, no secret in its text.
pub(crate) fn check_command(
    spec: &LoadedSpec,
    key: &str,
    c: &Spanned<CommandSpec>,
    out: &mut Vec<Diagnostic>,
) {
    if c.get_ref().is_empty() {
        out.push(spec.at(
            c.span(),
            format!("{key} is empty: give an argv array such as [\"toxiproxy-cli\", \"toggle\", \"pg\"] or a string run with sh -c"),
        ));
    }
    if let Some(what) = secret_in(c.get_ref()) {
        out.push(spec.at(
            c.span(),
            format!("{key} holds a secret ({what}): never put a password in a spec; the command inherits firedrill's environment, so write $VAR (in a sh -c string) or let the program read its own variable"),
        ));
    }
}

fn check_timeout(spec: &LoadedSpec, key: &str, t: &Spanned<Dur>, out: &mut Vec<Diagnostic>) {
    let d = t.get_ref().0;
    if d.is_zero() {
        out.push(spec.at(t.span(), format!("{key} must be more than 0")));
    } else if d > MAX_COMMAND_TIMEOUT {
        out.push(spec.at(t.span(), format!("{key} must be at most 1h")));
    }
}

/// The keys only a `command` step takes, with their spans when given.
fn command_keys(s: &FaultStep) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let mut v = Vec::new();
    let mut add = |k, span: Option<std::ops::Range<usize>>| {
        if let Some(sp) = span {
            v.push((k, sp));
        }
    };
    add("command", s.command.as_ref().map(|c| c.span()));
    add("heal_command", s.heal_command.as_ref().map(|c| c.span()));
    add(
        "in_effect_command",
        s.in_effect_command.as_ref().map(|c| c.span()),
    );
    add("heal", s.heal.as_ref().map(|c| c.span()));
    add("timeout", s.timeout.as_ref().map(|c| c.span()));
    v
}

/// Checks a `command` step, and that no other step uses its keys.
pub(crate) fn check_command_step(spec: &LoadedSpec, s: &FaultStep, out: &mut Vec<Diagnostic>) {
    let action = *s.action.get_ref();
    if action != FaultAction::Command {
        for (k, span) in command_keys(s) {
            out.push(spec.at(
                span,
                format!(
                    "`{k}` applies to action = \"command\", not {}",
                    action.as_str()
                ),
            ));
        }
        return;
    }
    match &s.command {
        None => out.push(spec.at(
            s.action.span(),
            "a command step needs `command`: the argv (or sh -c string) that injects the fault",
        )),
        Some(c) => check_command(spec, "command", c, out),
    }
    if let Some(c) = &s.in_effect_command {
        check_command(spec, "in_effect_command", c, out);
    }
    if let Some(t) = &s.timeout {
        check_timeout(spec, "timeout", t, out);
    }
    let none = match &s.heal {
        Some(h) if h.get_ref() == "none" => true,
        Some(h) => {
            out.push(spec.at(
                h.span(),
                format!(
                    "heal = {:?}: the only value is \"none\" (the command changes nothing that needs healing); otherwise give heal_command",
                    h.get_ref()
                ),
            ));
            false
        }
        None => false,
    };
    match (&s.heal_command, none) {
        (Some(c), false) => check_command(spec, "heal_command", c, out),
        (Some(c), true) => out.push(spec.at(
            c.span(),
            "give heal_command or heal = \"none\", not both",
        )),
        (None, true) => {
            if let Some(f) = &s.for_ {
                out.push(spec.at(
                    f.span(),
                    "`for` heals the step after that long: it needs a heal_command",
                ));
            }
        }
        (None, false) => out.push(spec.at(
            s.action.span(),
            "a command step needs heal_command, the command that undoes it (journaled before the fault, so the watchdog runs it even if firedrill dies); write heal = \"none\" if the command changes nothing that needs healing",
        )),
    }
}

/// The recovery's commands: `command` (a string run with `sh -c`) and
/// `verify_command` with its `verify_timeout`.
pub(crate) fn check_recovery_commands(spec: &LoadedSpec, d: &DrillSpec, out: &mut Vec<Diagnostic>) {
    let r = &d.recovery;
    if let Some(c) = &r.command {
        let as_cmd = Spanned::new(c.span(), CommandSpec::Shell(c.get_ref().clone()));
        if let Some(what) = secret_in(as_cmd.get_ref()) {
            out.push(spec.at(
                c.span(),
                format!("recovery command holds a secret ({what}): never put a password in a spec; the command inherits firedrill's environment"),
            ));
        }
    }
    if let Some(v) = &r.verify_command {
        check_command(spec, "verify_command", v, out);
    }
    if let Some(t) = &r.verify_timeout {
        if r.verify_command.is_none() {
            out.push(spec.at(t.span(), "verify_timeout goes with verify_command"));
        }
        check_timeout(spec, "verify_timeout", t, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(s: &str) -> CommandSpec {
        CommandSpec::Shell(s.into())
    }

    #[test]
    fn argv_and_shell() {
        assert_eq!(sh("a && b").argv(), vec!["sh", "-c", "a && b"]);
        let a = CommandSpec::Argv(vec!["x".into(), "y z".into()]);
        assert_eq!(a.argv(), vec!["x", "y z"]);
        assert_eq!(a.program(), "x");
        assert!(CommandSpec::Argv(vec![]).is_empty());
        assert!(sh("  ").is_empty());
    }

    #[test]
    fn secrets_are_found_and_references_are_not() {
        assert!(secret_in(&sh("psql password=hunter2")).is_some());
        assert!(secret_in(&sh("aws --token abc fis start")).is_some());
        assert!(secret_in(&sh("curl https://u:pw@host/x")).is_some());
        assert!(secret_in(&sh("PGPASSWORD=x psql")).is_some());
        assert!(secret_in(&sh("psql password=$PGPASSWORD")).is_none());
        assert!(secret_in(&sh("cli --token \"$TOKEN\" go")).is_none());
        assert!(secret_in(&sh("toxiproxy-cli toxic add -t timeout -a timeout=0 pg")).is_none());
        let argv = CommandSpec::Argv(vec!["x".into(), "--api-key".into(), "k".into()]);
        assert!(secret_in(&argv).is_some());
    }
}
