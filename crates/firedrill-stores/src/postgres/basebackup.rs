//! `[lab.backup] tool = "basebackup"`: the tools PostgreSQL ships, and
//! nothing else. A full `pg_basebackup` of the primary at `lab up` into
//! `<lab>/backup/base`, every WAL segment copied into `<lab>/archive` by
//! the lab's `archive_command`, and a restore that copies the base backup,
//! writes the recovery settings (`restore_command`, the target, exclusive,
//! `recovery_target_action = promote`, `recovery_target_timeline =
//! current`) and `recovery.signal`. Whether it reached its target is
//! judged from the server's log, as for pgBackRest.

use super::lab::tools;
use super::tools::append;
use firedrill_lab::{LabError, LabState};
use firedrill_targets::RestorePoint;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn base_dir(dir: &Path) -> PathBuf {
    dir.join("backup").join("base")
}

/// The full base backup of the running primary (plain format, the WAL it
/// needs streamed into it). Called once the primary is up, before standbys.
pub(crate) fn setup(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    let b = state.dir.join("backup");
    std::fs::create_dir_all(&b).map_err(LabError::io(&b))?;
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o700))
        .map_err(LabError::io(&b))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(&b)?;
    }
    let n1 = &state.nodes[0];
    let base = base_dir(&state.dir).to_string_lossy().into_owned();
    progress("pg_basebackup: full base backup of the primary");
    tools(state).run(
        "pg_basebackup",
        &[
            "-h",
            &n1.host,
            "-p",
            &n1.port.to_string(),
            "-U",
            "postgres",
            "-D",
            &base,
            "-X",
            "stream",
            "-c",
            "fast",
            "-N",
        ],
    )?;
    Ok(())
}

/// For `lab status`: the base backup and its age (pg_basebackup writes its
/// manifest last, so its time is the backup's end).
pub(crate) fn status(state: &LabState, now: i64) -> String {
    let manifest = base_dir(&state.dir).join("backup_manifest");
    match std::fs::metadata(&manifest).and_then(|m| m.modified()) {
        Ok(t) => {
            let stop = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            format!("base backup backup/base ({} s old)", now - stop)
        }
        Err(_) => "no base backup".into(),
    }
}

/// The recovery settings for `point`, and how they name it.
fn target_settings(point: &RestorePoint) -> (String, String) {
    match point {
        RestorePoint::BeforeXid(x) => (
            format!(
                "recovery_target_xid = '{x}'\n\
                 recovery_target_inclusive = 'false'\n\
                 recovery_target_action = 'promote'\n"
            ),
            format!("recovery_target_xid = {x}, recovery_target_inclusive = false"),
        ),
        RestorePoint::Time(t) => (
            format!(
                "recovery_target_time = '{}'\n\
                 recovery_target_action = 'promote'\n",
                t.replace('\'', "''")
            ),
            format!("recovery_target_time = {t}"),
        ),
        // No target: replay the whole archive, then promote.
        RestorePoint::Latest => (String::new(), "the end of the archive".into()),
    }
}

/// Replaces whatever is in `data` by a copy of the base backup, with the
/// recovery settings for `point` and `recovery.signal`; the restored
/// server does not archive (a drill's restore must not push a new
/// timeline into the lab's archive). Returns how the target was told.
pub(crate) fn fetch(
    state: &LabState,
    data: &Path,
    point: &RestorePoint,
) -> Result<String, LabError> {
    let base = base_dir(&state.dir);
    if !base.join("PG_VERSION").is_file() {
        return Err(LabError::Replication(format!(
            "no base backup in {}",
            base.display()
        )));
    }
    if data.exists() {
        std::fs::remove_dir_all(data).map_err(LabError::io(data))?;
    }
    copy_tree(&base, data)?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
        .map_err(LabError::io(data))?;
    let archive = state.dir.join("archive");
    let (settings, told) = target_settings(point);
    let conf = format!(
        "\n# firedrill restore from the base backup\n\
         restore_command = 'cp \"{}/%f\" \"%p\"'\n\
         recovery_target_timeline = 'current'\n\
         archive_mode = 'off'\n\
         {settings}",
        archive.to_string_lossy().replace('\'', "''"),
    );
    append(&data.join("postgresql.auto.conf"), &conf)?;
    let signal = data.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(LabError::io(&signal))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(data)?;
    }
    Ok(told)
}

/// Copies a directory tree, keeping modes and symlinks.
fn copy_tree(from: &Path, to: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(to).map_err(LabError::io(to))?;
    for e in std::fs::read_dir(from).map_err(LabError::io(from))? {
        let e = e.map_err(LabError::io(from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type().map_err(LabError::io(&src))?;
        if ty.is_dir() {
            copy_tree(&src, &dst)?;
            let mode = std::fs::metadata(&src).map_err(LabError::io(&src))?.permissions();
            std::fs::set_permissions(&dst, mode).map_err(LabError::io(&dst))?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(&src).map_err(LabError::io(&src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(LabError::io(&dst))?;
        } else {
            std::fs::copy(&src, &dst).map_err(LabError::io(&dst))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_exclusive_and_promote() {
        let (s, told) = target_settings(&RestorePoint::BeforeXid(925));
        assert!(s.contains("recovery_target_xid = '925'"), "{s}");
        assert!(s.contains("recovery_target_inclusive = 'false'"), "{s}");
        assert!(s.contains("recovery_target_action = 'promote'"), "{s}");
        assert!(told.contains("925"));
        let (s, _) = target_settings(&RestorePoint::Latest);
        assert!(s.is_empty(), "the end of the archive needs no target: {s}");
        let (s, _) = target_settings(&RestorePoint::Time("2026-01-01T00:00:00Z".into()));
        assert!(s.contains("recovery_target_time = '2026-01-01T00:00:00Z'"), "{s}");
    }

    #[test]
    fn copies_modes_and_links() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(a.join("sub/f"), b"x").unwrap();
        std::fs::set_permissions(a.join("sub/f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("sub/f", a.join("l")).unwrap();
        copy_tree(&a, &d.path().join("b")).unwrap();
        let b = d.path().join("b");
        assert_eq!(std::fs::read(b.join("sub/f")).unwrap(), b"x");
        let mode = std::fs::metadata(b.join("sub/f")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_link(b.join("l")).unwrap(), Path::new("sub/f"));
    }
}
