//! `firedrill lab up|down|status`.

use crate::Failure;
use firedrill_lab::LabState;
use firedrill_spec::{validate_lab, LoadedSpec, SpecError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Loads and validates a spec file; any problem is exit 2 with
/// file:line:column.
pub fn load_spec(file: &Path) -> Result<LoadedSpec, Failure> {
    let spec = LoadedSpec::load(file).map_err(|e| match e {
        SpecError::Read { .. } => Failure::input(e.to_string()),
        SpecError::Invalid(_) => Failure::input(e.to_string()),
    })?;
    let errs = firedrill_spec::validate_file(&spec, &firedrill_stores::specs());
    if !errs.is_empty() {
        return Err(Failure::input(spec.fail(errs).to_string()));
    }
    Ok(spec)
}

pub async fn up(file: &Path, reset: bool, dir: Option<&Path>) -> Result<u8, Failure> {
    let spec = load_spec(file)?;
    let errs = validate_lab(&spec, &firedrill_stores::specs());
    if !errs.is_empty() {
        return Err(Failure::input(spec.fail(errs).to_string()));
    }
    let Some(lab) = spec.file.lab.as_ref() else {
        return Err(Failure::input(format!(
            "{}: no [lab] table",
            file.display()
        )));
    };
    if lab.is_multi() {
        return up_members(lab, reset, dir).await;
    }
    let tty = std::io::stderr().is_terminal();
    let name = lab.name.get_ref().clone();
    let lab2 = lab.clone();
    let dir2 = dir.map(Path::to_path_buf);
    let store = store_of(lab)?;
    let state = tokio::task::spawn_blocking(move || {
        firedrill_lab::up(store, &lab2, dir2.as_deref(), reset, &mut |m| {
            if tty {
                eprintln!("lab {name}: {m}");
            }
        })
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
    .map_err(|e| Failure::aborted(e.to_string()))?;
    let st = store_of(&state.spec)?.status(&state).await;
    println!("{}", firedrill_lab::render_status(&state, &st));
    println!("lab {} is up in {}", state.name, state.dir.display());
    Ok(0)
}

/// The file in a lab of labs' directory that lists its members.
pub const MEMBERS_FILE: &str = "members.json";

/// The directory of a lab, from its spec.
pub fn lab_dir(lab: &firedrill_spec::LabSpec) -> PathBuf {
    lab.dir
        .clone()
        .unwrap_or_else(|| firedrill_lab::default_dir(lab.name.get_ref()))
}

/// `lab up` of a lab of labs: each member in `<dir>/<domain>`, one after
/// the other; a member that fails takes down the ones already up.
async fn up_members(
    lab: &firedrill_spec::LabSpec,
    reset: bool,
    dir: Option<&Path>,
) -> Result<u8, Failure> {
    let parent = dir.map(Path::to_path_buf).unwrap_or_else(|| lab_dir(lab));
    std::fs::create_dir_all(&parent)
        .map_err(|e| Failure::aborted(format!("{}: {e}", parent.display())))?;
    let members: Vec<String> = lab
        .member
        .iter()
        .map(|m| m.domain.get_ref().clone())
        .collect();
    let list = serde_json::to_vec_pretty(&members).map_err(|e| Failure::internal(e.to_string()))?;
    std::fs::write(parent.join(MEMBERS_FILE), list)
        .map_err(|e| Failure::aborted(format!("{}: {e}", parent.display())))?;
    let tty = std::io::stderr().is_terminal();
    for (domain, member) in lab.member_labs() {
        let store = store_of(&member)?;
        let sub = parent.join(&domain);
        let name = member.name.get_ref().clone();
        let res = tokio::task::spawn_blocking(move || {
            firedrill_lab::up(store, &member, Some(&sub), reset, &mut |m| {
                if tty {
                    eprintln!("lab {name}: {m}");
                }
            })
        })
        .await
        .map_err(|e| Failure::internal(e.to_string()))?;
        let state = match res {
            Ok(s) => s,
            Err(e) => {
                let _ = down(&parent.display().to_string());
                return Err(Failure::aborted(format!("member {domain}: {e}")));
            }
        };
        let st = store_of(&state.spec)?.status(&state).await;
        println!("{}", firedrill_lab::render_status(&state, &st));
    }
    println!(
        "lab {} is up in {} (members {})",
        lab.name.get_ref(),
        parent.display(),
        members.join(", ")
    );
    Ok(0)
}

/// The member directories of a lab of labs, when `dir` is one.
pub fn member_dirs(dir: &Path) -> Option<Vec<(String, PathBuf)>> {
    let bytes = std::fs::read(dir.join(MEMBERS_FILE)).ok()?;
    let names: Vec<String> = serde_json::from_slice(&bytes).ok()?;
    Some(
        names
            .into_iter()
            .map(|n| (n.clone(), dir.join(n)))
            .collect(),
    )
}

/// A lab named on the command line: its name, its directory, or a spec
/// file with a [lab] table.
pub fn resolve_dir(arg: &str) -> Result<PathBuf, Failure> {
    let p = Path::new(arg);
    if p.is_file() {
        let spec = load_spec(p)?;
        let Some(lab) = spec.file.lab.as_ref() else {
            return Err(Failure::input(format!("{arg}: no [lab] table")));
        };
        return Ok(match &lab.dir {
            Some(d) => d.clone(),
            None => firedrill_lab::default_dir(lab.name.get_ref()),
        });
    }
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    if arg.contains('/') || arg.ends_with(".toml") {
        return Err(Failure::input(format!(
            "{arg}: no such file or lab directory"
        )));
    }
    Ok(firedrill_lab::default_dir(arg))
}

pub fn down(arg: &str) -> Result<u8, Failure> {
    let dir = resolve_dir(arg)?;
    if let Some(members) = member_dirs(&dir) {
        let mut failed = Vec::new();
        for (domain, d) in members {
            if d.join("state.json").is_file() {
                if let Err(e) = down(&d.display().to_string()) {
                    failed.push(format!("{domain}: {}", e.message));
                }
            }
        }
        if !failed.is_empty() {
            return Err(Failure::aborted(failed.join("; ")));
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Failure::aborted(format!("{}: {e}", dir.display())))?;
        println!("lab of labs at {} is down", dir.display());
        return Ok(0);
    }
    if !dir.join("state.json").is_file() {
        println!("no lab at {}; nothing to stop", dir.display());
        return Ok(0);
    }
    let state = LabState::load(&dir).map_err(|e| Failure::aborted(e.to_string()))?;
    firedrill_lab::down(store_of(&state.spec)?, &state)
        .map_err(|e| Failure::aborted(e.to_string()))?;
    println!("lab {} is down; {} removed", state.name, dir.display());
    Ok(0)
}

pub async fn status(arg: &str, json: bool) -> Result<u8, Failure> {
    let dir = resolve_dir(arg)?;
    if let Some(members) = member_dirs(&dir) {
        for (_, d) in members {
            Box::pin(status(&d.display().to_string(), json)).await?;
        }
        return Ok(0);
    }
    let state = LabState::load(&dir)
        .map_err(|e| Failure::aborted(format!("{e} (is the lab up? `firedrill lab up FILE`)")))?;
    let st = store_of(&state.spec)?.status(&state).await;
    if json {
        let v: Vec<serde_json::Value> = st
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name, "pid": s.pid, "alive": s.alive, "port": s.port, "role": s.role,
                    "replication": s.replication, "lag_bytes": s.lag_bytes, "lag_s": s.lag_s, "timeline": s.timeline,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Failure::internal(e.to_string()))?
        );
    } else {
        println!("{}", firedrill_lab::render_status(&state, &st));
    }
    Ok(0)
}

/// `lab restore`: the drill's restore, alone, timed from its start. What
/// a restore test or a benchmark against the bare tools runs.
pub async fn restore(
    arg: &str,
    node: Option<String>,
    xid: Option<u64>,
    time: Option<String>,
    flush_archive: bool,
) -> Result<u8, Failure> {
    use firedrill_targets::{RestorePoint, RestoreRequest};
    let dir = resolve_dir(arg)?;
    let state = LabState::load(&dir)
        .map_err(|e| Failure::aborted(format!("{e} (is the lab up? `firedrill lab up FILE`)")))?;
    let restorer = store_of(&state.spec)?.restorer(&state).ok_or_else(|| {
        Failure::input(format!(
            "lab {} takes no backups: give it [lab.backup]",
            state.name
        ))
    })?;
    let point = match (xid, time) {
        (Some(x), _) => RestorePoint::BeforeXid(x),
        (None, Some(t)) => match firedrill_spec::RestoreTarget::parse(&t) {
            Ok(firedrill_spec::RestoreTarget::Time(t)) => RestorePoint::Time(t),
            _ => {
                return Err(Failure::input(format!(
                    "--time {t:?}: give an RFC 3339 time"
                )))
            }
        },
        (None, None) => RestorePoint::Latest,
    };
    let node = node.unwrap_or_else(|| state.nodes[0].name.clone());
    let req = RestoreRequest {
        point,
        flush_archive,
        into: firedrill_targets::RestoreInto::InPlace,
        scratch: None,
    };
    let start = std::time::Instant::now();
    let r = restorer
        .restore(&node, &req)
        .await
        .map_err(|e| Failure::aborted(format!("restore of {node}: {e}")))?;
    let at = |i: Option<std::time::Instant>| {
        i.map_or("-".to_string(), |i| {
            format!("{:.3} s", i.saturating_duration_since(start).as_secs_f64())
        })
    };
    println!(
        "restore {node} ({}): {}",
        r.tool_target,
        if r.reached { "reached" } else { "NOT reached" }
    );
    println!(
        "  flush {}  fetch {}  replay {}  promote {}  (from the start)",
        at(r.flushed),
        at(r.fetched),
        at(r.replayed),
        at(r.promoted)
    );
    println!("  server: {}", r.detail);
    Ok(if r.reached { 0 } else { 1 })
}

/// The store of a lab's kind, from the registry this build has.
pub fn store_of(
    lab: &firedrill_spec::LabSpec,
) -> Result<&'static dyn firedrill_stores::Store, Failure> {
    firedrill_stores::of(lab.kind())
        .ok_or_else(|| Failure::input(firedrill_stores::specs().unknown_kind(lab.kind())))
}

/// `drill FILE --lab`: the file's lab is started when it is not up, and
/// brought down again on every way out of the drill, so a one-off drill
/// leaves nothing running. A lab that was already up is the user's: it
/// stays. The whole file is checked before anything starts.
pub async fn drill_with_lab(file: &Path, out: Option<PathBuf>) -> Result<u8, Failure> {
    let spec = load_spec(file)?;
    let Some(lab) = spec.file.lab.as_ref() else {
        return Err(Failure::input(format!(
            "{}: --lab needs a [lab] table in the file",
            file.display()
        )));
    };
    let errs = firedrill_spec::validate_drill(&spec, None, &firedrill_stores::specs());
    if !errs.is_empty() {
        return Err(Failure::input(spec.fail(errs).to_string()));
    }
    let dir = lab_dir(lab);
    if dir.join("state.json").is_file() || dir.join(MEMBERS_FILE).is_file() {
        eprintln!(
            "lab {} is already up: it stays up after the drill",
            lab.name.get_ref()
        );
        return crate::drill::run(file, out).await;
    }
    up(file, false, None).await?;
    let guard = LabGuard(Some(dir));
    let res = crate::drill::run(file, out).await;
    drop(guard);
    res
}

/// Takes a lab down when dropped: after the drill, or while unwinding.
struct LabGuard(Option<PathBuf>);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        let dir = dir.to_string_lossy().into_owned();
        // Blocking is fine here: the drill is over, nothing else runs.
        if let Err(e) = down(&dir) {
            eprintln!("error: taking the lab down: {}", e.message);
        }
    }
}
