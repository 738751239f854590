//! Heals the engine owes: journaled before each fault acts, each with a
//! detached watchdog, carried out by the fault's own module, and recorded
//! on the timeline. Whatever ends a trial, `heal_all` runs before it
//! returns; the watchdog covers firedrill itself dying.

use crate::trial::{lock, Shared};
use firedrill_faults::{heal_entry, FaultError, HealAction, HealEntry, HealWith};
use firedrill_ledger::events::DrillEvent;
use std::path::Path;
use std::time::Duration;

/// A heal that is owed.
pub(crate) struct Owed {
    pub(crate) id: String,
    /// Index into the timeline's fault records.
    pub(crate) record: usize,
    pub(crate) action: HealAction,
}

/// Journals a heal before its fault is injected, and starts the watchdog
/// that carries it out after `ttl` (None: the trial's limit) if firedrill
/// dies first.
pub(crate) fn owe(
    sh: &Shared,
    id: &str,
    record: usize,
    ttl: Option<Duration>,
    action: HealAction,
) -> Result<(), FaultError> {
    let ttl = ttl.unwrap_or(sh.watchdog_ttl);
    sh.journal
        .record(id, ttl.as_secs().max(1), action.clone())?;
    spawn_watchdog(sh.journal.dir(), id);
    lock(&sh.owed).push(Owed {
        id: id.into(),
        record,
        action,
    });
    Ok(())
}

/// Starts `firedrill __heal DIR ID` in its own process group, so it
/// survives firedrill being killed, even with its whole group.
pub(crate) fn spawn_watchdog(dir: &Path, id: &str) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // Only the firedrill binary has the watchdog; tests running the engine
    // in-process heal through the guarded paths alone.
    if exe.file_name().and_then(|n| n.to_str()) != Some("firedrill") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(exe)
        .arg("__heal")
        .arg(dir)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    if let Ok(mut c) = child {
        std::thread::spawn(move || {
            let _ = c.wait();
        });
    }
}

/// Carries out one owed heal (retried once), records it on its fault's
/// timeline, and clears its journal entry so the watchdog stands down.
pub(crate) async fn heal_one(sh: &Shared, id: &str) {
    // `more`: other heals of the same step are still owed (a managed node's
    // pause owes one per process); the step counts as healed after the last.
    let (owed, more) = {
        let mut o = lock(&sh.owed);
        let Some(i) = o.iter().position(|x| x.id == id) else {
            return;
        };
        let owed = o.remove(i);
        let more = o.iter().any(|x| x.record == owed.record);
        (owed, more)
    };
    let heal_start = sh.now();
    let entry = HealEntry {
        id: owed.id.clone(),
        expires_at: 0,
        action: owed.action.clone(),
    };
    let store = sh.store.clone();
    let opener = move |_: &str| Some(store.clone());
    let on_command = |ran: &firedrill_faults::exec::Ran| sh.record_command(ran);
    let with = HealWith {
        opener: &opener,
        password: sh.password.as_deref(),
        on_command: Some(&on_command),
    };
    let mut res = heal_entry(&entry, &with).await.map_err(|e| e.to_string());
    if res.is_err() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        res = heal_entry(&entry, &with).await.map_err(|e| e.to_string());
    }
    let heal_done = sh.now();
    let (step, action, node, first_start, earlier_error) = {
        let mut tl = lock(&sh.timeline);
        let f = &mut tl.faults[owed.record];
        let first_start = *f.heal_start.get_or_insert(heal_start);
        let earlier_error = f.error.clone().filter(|e| e.starts_with("heal failed"));
        if !more {
            f.heal_done = Some(heal_done);
        }
        if let Err(e) = &res {
            f.error = Some(format!("heal failed: {e}"));
        }
        (
            f.step,
            f.action.clone(),
            f.node.clone(),
            first_start,
            earlier_error,
        )
    };
    match &res {
        Ok(()) => sh.journal.remove(id),
        Err(e) => sh.warn(format!(
            "heal of step {} ({action} {node}) failed: {e}; the watchdog will retry at its TTL",
            step + 1
        )),
    }
    if more {
        return;
    }
    sh.emit(DrillEvent::FaultHealed {
        trial: sh.trial,
        step,
        action,
        node,
        t_start: first_start,
        t_done: heal_done,
        error: res.err().or(earlier_error),
    });
}

/// Heals everything still owed: the end of a trial, or any exit path.
pub(crate) async fn heal_all(sh: &Shared) {
    heal_matching(sh, |_| true).await;
}

/// Heals every owed heal `which` picks, in the order they were owed;
/// returns how many there were.
pub(crate) async fn heal_matching(sh: &Shared, which: impl Fn(&Owed) -> bool) -> usize {
    let ids: Vec<String> = lock(&sh.owed)
        .iter()
        .filter(|o| which(o))
        .map(|o| o.id.clone())
        .collect();
    for id in &ids {
        heal_one(sh, id).await;
    }
    ids.len()
}
