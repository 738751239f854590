//! Data disasters on real PostgreSQL 15 with pgBackRest 2.45: a DELETE of
//! half the run's rows, discovered 5 s later, restored in place to just
//! before the bad transaction (examples/pg-pitr-delete-rows.toml). One lab
//! for the file; the second drill resets it.

mod common;
use common::*;
use firedrill_ledger::{codec, Outcome};

/// PostgreSQL and pgBackRest are installed; under CI=true a missing one
/// fails the test instead of skipping it.
fn pitr_available() -> bool {
    pg_available() && programs_available(&["pgbackrest"])
}

/// The restored store against the ledger, counted here from the run's own
/// files and the restore's marks, not from the analysis: every write
/// acknowledged before the fault is back; every write invoked after the
/// bad transaction committed and acknowledged by the old server (before
/// the restore's fetch) is gone; every write invoked after the fetch (the
/// restored server's) is kept. Returns (missing between the fault and the
/// fetch, of which invoked after the commit, those invoked before the
/// commit and acknowledged after the fault, rows the fault destroyed).
fn check_against_ledger(d: &Drill) -> (u64, u64, u64, u64) {
    let trial = d.dir.join("trial-1");
    let ops = codec::decode(&std::fs::read(trial.join("ledger.bin")).expect("ledger.bin"))
        .expect("decode ledger");
    let mut audit = codec::decode_ids(&std::fs::read(trial.join("audit.bin")).expect("audit.bin"))
        .expect("decode audit");
    audit.sort_unstable();
    let tl: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(trial.join("timeline.json")).expect("timeline.json"),
    )
    .expect("timeline json");
    let t_fault = tl["faults"][0]["t_start"].as_u64().expect("t_fault");
    let t_commit = tl["damage"]["t_commit"].as_u64().expect("damage.t_commit");
    let fetched = tl["restore"]["fetched"].as_u64().expect("restore.fetched");
    let here = |s: u64| audit.binary_search(&s).is_ok();
    let ok = ops.iter().filter(|o| o.outcome == Outcome::Ok);
    let before_missing = ok
        .clone()
        .filter(|o| o.t_done < t_fault && !here(o.seq))
        .count();
    assert_eq!(
        before_missing, 0,
        "writes acknowledged before the fault are missing"
    );
    let after_fetch_missing = ok
        .clone()
        .filter(|o| o.t_invoke >= fetched && !here(o.seq))
        .count();
    assert_eq!(
        after_fetch_missing, 0,
        "the restored server lost its own writes"
    );
    let after_commit: Vec<_> = ok
        .clone()
        .filter(|o| o.t_invoke >= t_commit && o.t_done < fetched)
        .collect();
    let kept = after_commit.iter().filter(|o| here(o.seq)).count();
    assert_eq!(
        kept, 0,
        "writes made after the bad transaction committed survived a restore to before it"
    );
    let missing = ok
        .clone()
        .filter(|o| o.t_done >= t_fault && o.t_done < fetched && !here(o.seq))
        .count();
    // Invoked before the bad commit, acknowledged after the fault began:
    // in WAL order they may fall on either side of it.
    let straddling = ok
        .filter(|o| o.t_invoke < t_commit && o.t_done >= t_fault)
        .count();
    let damaged = tl["damage"]["ids"].as_array().map_or(0, Vec::len) as u64;
    (
        missing as u64,
        after_commit.len() as u64,
        straddling as u64,
        damaged,
    )
}

#[test]
fn exact_pitr_brings_back_everything_before_the_fault() {
    if !pitr_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("pg-pitr-delete-rows.toml"));
    let d = lab.drill("exact");
    let r = &d.trial(0)["restore"];
    eprintln!(
        "FIGURES exact PITR: restore {r}; RTO {:?}",
        d.f64(0, "rto.achieved_s")
    );
    assert_eq!(d.code, 0, "exit {}: {}\n{}", d.code, d.stdout, d.stderr);
    assert_eq!(r["reached"], true, "{r}");
    assert!(
        r["detail"]
            .as_str()
            .unwrap_or("")
            .contains("recovery stopping before commit of transaction"),
        "{r}"
    );
    assert_eq!(r["lost_before"], 0, "{r}");
    assert_eq!(r["damaged_left"], 0, "{r}");
    let (missing, after_commit, straddling, damaged) = check_against_ledger(&d);
    assert!(damaged > 100, "the fault destroyed only {damaged} rows");
    assert_eq!(r["damaged"].as_u64(), Some(damaged));
    assert!(
        after_commit > 0,
        "nothing was written between the fault and the restore"
    );
    assert_eq!(
        r["rolled_back"].as_u64(),
        Some(missing),
        "rolled_back is not the writes acknowledged between the fault and the restore that are gone"
    );
    // Beyond those made after the commit, only writes in flight across it.
    assert!(
        after_commit <= missing && missing <= after_commit + straddling,
        "rolled back {missing}, made after the bad commit {after_commit}, across it {straddling}"
    );
    eprintln!(
        "FIGURES exact PITR: rolled_back {missing} (made after the bad commit {after_commit}), damaged {damaged}"
    );
    let rto = d.f64(0, "rto.achieved_s").expect("recovered");
    let from_disc = r["rto_from_discovery_s"]
        .as_f64()
        .expect("RTO from discovery");
    assert!(
        (rto - 5.0 - from_disc).abs() < 0.01,
        "RTO {rto} vs {from_disc} + 5 s"
    );
    let (fetch, replay, promote) = (
        r["fetch_s"].as_f64().expect("fetch"),
        r["replay_s"].as_f64().expect("replay"),
        r["promote_s"].as_f64().expect("promote"),
    );
    assert!(
        5.0 <= fetch && fetch <= replay && replay <= promote && promote <= rto + 0.2,
        "phases out of order: fetch {fetch} replay {replay} promote {promote} RTO {rto}"
    );
    assert!(
        d.stdout.contains("restore  target before_fault: reached"),
        "{}",
        d.stdout
    );

    // Negative control, same lab (reset): restoring to the end of the
    // archive replays the bad transaction too, so the damage stays and
    // the drill fails.
    let text = std::fs::read_to_string(lab.spec_str())
        .expect("spec")
        .replace("target = \"before_fault\"", "target = \"latest\"");
    let spec2 = lab.tmp.path().join("latest.toml");
    std::fs::write(&spec2, text).expect("write");
    let out_dir = lab.run_dir("latest");
    let out = firedrill(&[
        "drill",
        spec2.to_str().expect("utf-8"),
        "--out",
        out_dir.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).expect("run.json"))
            .expect("json");
    let r = &run["trials"][0]["restore"];
    eprintln!("FIGURES restore to latest: {r}");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(r["reached"], true, "{r}");
    assert_eq!(
        r["damaged_left"], r["damaged"],
        "a restore to latest brought rows back: {r}"
    );
    assert!(
        stdout.contains("rows the fault destroyed are still missing after the restore"),
        "{stdout}"
    );
}

/// Archive lag is RPO: no flush, restore what the archive holds. The
/// writes it never took are lost before the fault, and the achieved RPO is
/// the predicted one (the archive's age at the fault, capped at the run's
/// first write) within 1 s.
#[test]
fn archive_lag_is_rpo() {
    if !pitr_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("pg-pitr-archive-lag.toml"));
    let d = lab.drill("lag");
    let r = &d.trial(0)["restore"];
    let achieved = d.f64(0, "rpo.achieved_s").expect("achieved");
    let predicted = d.f64(0, "rpo.predicted_s").expect("predicted RPO");
    eprintln!("FIGURES archive lag: RPO achieved {achieved:.2} s, predicted {predicted:.2} s; restore {r}");
    assert_eq!(r["reached"], true, "{r}\n{}", d.stdout);
    assert!(r["lost_before"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(
        (achieved - predicted).abs() <= 1.0,
        "achieved RPO {achieved} s is not the predicted {predicted} s within 1 s"
    );
    // The prediction is the age of the archive's last segment (the lab's
    // backup), which archive_timeout 20 s bounds.
    assert!(
        predicted > 0.0 && predicted < 21.0,
        "predicted {predicted} s"
    );
    assert!(
        d.f64(0, "rto.achieved_s").is_some(),
        "the restored server never took writes"
    );
    // The unarchived rows include what the fault destroyed: still missing.
    assert_eq!(d.code, 1, "{}", d.stdout);
}

#[test]
fn bad_restore_input_is_exit_2_with_position() {
    let good =
        example("pg-pitr-delete-rows.toml").replace("@DIR@", "/tmp/firedrill-pitr-bad-never");
    check_bad_drill(
        &good.replace(
            "[lab.backup]\ntool = \"pgbackrest\"",
            "[lab.settings]\nwork_mem = \"4MB\"",
        ),
        "restore needs a lab that takes backups",
        &["--lab"],
    );
    check_bad_drill(
        &good.replace("target = \"before_fault\"", "target = \"yesterday\""),
        "restore target \"yesterday\"",
        &["--lab"],
    );
    check_bad_drill(
        &good.replace("fraction = 0.5", "fraction = 1.5"),
        "fraction = 1.5",
        &["--lab"],
    );
    check_bad_drill(
        &good.replace("[lab]\n", "[lab]\nkind = \"etcd\"\n").replace(
            "standbys = 1\nreplication = \"async\"\n\n[lab.backup]\ntool = \"pgbackrest\"          # a local repository in the lab directory\narchive_timeout = \"60s\"\n",
            "",
        ),
        "delete_rows", &["--lab"]);
    assert!(
        !std::path::Path::new("/tmp/firedrill-pitr-bad-never").exists(),
        "a lab was started"
    );
}

/// Runs `text` (an example with `@DIR@` for the lab's directory) against
/// the lab, from a spec file in the lab's temporary directory (so a
/// `sql_file` beside it resolves there).
fn drill_text(lab: &Lab, text: &str, run: &str) -> Drill {
    let spec = lab.tmp.path().join(format!("{run}.toml"));
    std::fs::write(
        &spec,
        text.replace("@DIR@", &lab.lab_dir().display().to_string()),
    )
    .expect("write spec");
    let out_dir = lab.run_dir(run);
    let out = firedrill(&[
        "drill",
        spec.to_str().expect("utf-8"),
        "--out",
        out_dir.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- drill {run} stdout\n{stdout}\n--- stderr\n{stderr}");
    let run_json = std::fs::read_to_string(out_dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Drill {
        code: out.status.code().unwrap_or(-1),
        run: run_json,
        stdout,
        stderr,
        dir: out_dir,
    }
}

/// The trial's ledger, and the ids the fault destroyed (its timeline).
fn ledger_and_damage(d: &Drill) -> (Vec<firedrill_ledger::Op>, Vec<u64>, u64) {
    let trial = d.dir.join("trial-1");
    let ops = codec::decode(&std::fs::read(trial.join("ledger.bin")).expect("ledger.bin"))
        .expect("decode ledger");
    let tl: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(trial.join("timeline.json")).expect("timeline.json"),
    )
    .expect("timeline json");
    let ids = tl["damage"]["ids"]
        .as_array()
        .expect("damage.ids")
        .iter()
        .map(|v| v.as_u64().expect("id"))
        .collect();
    let t_fault = tl["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .find(|f| f["disaster"] == true)
        .and_then(|f| f["t_start"].as_u64())
        .expect("t_fault");
    (ops, ids, t_fault)
}

/// One SQL answer from a lab node, through psql as the server's user.
fn psql(lab: &Lab, node: usize, sql: &str) -> String {
    let st = lab.state();
    let bin = std::path::Path::new(st["bin_dir"].as_str().expect("bin_dir")).join("psql");
    let port = st["nodes"][node]["port"]
        .as_u64()
        .expect("port")
        .to_string();
    let out = std::process::Command::new(bin)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-XAtqc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The drill passed with an exact restore: reached, nothing acknowledged
/// before the fault missing, nothing the fault destroyed still missing,
/// and the ledger agrees (see `check_against_ledger`).
fn assert_exact(d: &Drill, what: &str) -> u64 {
    let r = &d.trial(0)["restore"];
    eprintln!(
        "FIGURES {what}: restore {r}; RTO {:?}",
        d.f64(0, "rto.achieved_s")
    );
    assert_eq!(d.code, 0, "exit {}: {}\n{}", d.code, d.stdout, d.stderr);
    assert_eq!(r["reached"], true, "{r}");
    assert_eq!(r["action"], what, "{r}");
    assert_eq!(r["lost_before"], 0, "{r}");
    assert_eq!(r["damaged_left"], 0, "{r}");
    assert_eq!(r["garbled"], 0, "{r}");
    let (missing, _, _, damaged) = check_against_ledger(d);
    assert_eq!(r["rolled_back"].as_u64(), Some(missing), "{r}");
    assert_eq!(r["damaged"].as_u64(), Some(damaged), "{r}");
    let f = &d.trial(0)["faults"];
    let detail = f[f.as_array().map_or(0, |a| a.len() - 1)]["detail"]
        .as_str()
        .unwrap_or("");
    assert!(
        detail.contains("xid ") && detail.contains("commit LSN "),
        "the fault does not name its transaction: {f}"
    );
    damaged
}

/// update_rows garbles 300 rows' payloads: the rows stay. Restored to
/// before it, every row is back with the workload's bytes. Negative
/// control: restored to the end of the archive, the garbled rows are
/// there (psql counts them) but the audit, which compares payloads, counts
/// every one as still damaged, and the drill fails.
fn update_rows_is_restored_and_garbled_rows_count_as_damaged(lab: &Lab) {
    let text = example("pg-pitr-update-rows.toml");
    let d = drill_text(lab, &text, "update");
    let damaged = assert_exact(&d, "update_rows");
    let (ops, ids, _) = ledger_and_damage(&d);
    assert!(ids.iter().all(|&s| (1..=300).contains(&s)), "{ids:?}");
    let acked = ops
        .iter()
        .filter(|o| o.seq <= 300 && o.outcome == Outcome::Ok)
        .count() as u64;
    assert!(
        acked > 0 && damaged >= acked,
        "update_rows seqs [1, 300] hit {damaged} rows, {acked} of them acknowledged"
    );
    assert_eq!(
        psql(
            lab,
            0,
            "SELECT count(*) FROM firedrill_ledger WHERE seq <= 300"
        ),
        damaged.to_string()
    );

    let latest = drill_text(
        lab,
        &text.replace("target = \"before_fault\"", "target = \"latest\""),
        "update-latest",
    );
    let r = &latest.trial(0)["restore"];
    eprintln!("FIGURES update_rows restored to latest: {r}");
    assert_eq!(latest.code, 1, "{}", latest.stdout);
    assert_eq!(r["reached"], true, "{r}");
    let damaged = r["damaged"].as_u64().expect("damaged");
    assert!(damaged > 0, "{r}");
    assert_eq!(r["damaged_left"].as_u64(), Some(damaged), "{r}");
    assert_eq!(r["garbled"].as_u64(), Some(damaged), "{r}");
    // The rows are there: only their bytes are wrong.
    assert_eq!(
        psql(
            lab,
            0,
            "SELECT count(*) FROM firedrill_ledger WHERE seq <= 300"
        ),
        damaged.to_string()
    );
    assert!(
        latest.stdout.contains("present but garbled"),
        "{}",
        latest.stdout
    );
}

/// TRUNCATE and DROP TABLE, each restored to just before it: every row
/// of the run written before the fault is back; after the drop no write
/// could succeed on the old server, so nothing was rolled back.
///
/// Then, on the same lab (the examples' labs are one; each drill resets
/// it), UPDATE and the user's own SQL file.
#[test]
fn truncate_drop_update_and_sql_are_restored() {
    if !pitr_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("pg-pitr-truncate.toml"));
    let lab_of = |t: &str| {
        let l = &t[t.find("[lab]").expect("[lab]")..t.find("[drill]").expect("[drill]")];
        l.lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for f in [
        "pg-pitr-drop-table.toml",
        "pg-pitr-update-rows.toml",
        "pg-pitr-sql.toml",
    ] {
        assert_eq!(
            lab_of(&example(f)),
            lab_of(&example("pg-pitr-truncate.toml")),
            "{f} no longer shares the truncate example's lab"
        );
    }
    for (file, what) in [
        ("pg-pitr-truncate.toml", "truncate"),
        ("pg-pitr-drop-table.toml", "drop_table"),
    ] {
        let d = drill_text(&lab, &example(file), what);
        let damaged = assert_exact(&d, what);
        let (ops, ids, t_fault) = ledger_and_damage(&d);
        let before: Vec<u64> = ops
            .iter()
            .filter(|o| o.outcome == Outcome::Ok && o.t_done < t_fault)
            .map(|o| o.seq)
            .collect();
        let mut hit = ids.clone();
        hit.sort_unstable();
        let all_hit = before.iter().all(|s| hit.binary_search(s).is_ok());
        assert!(
            !before.is_empty() && all_hit && damaged >= before.len() as u64,
            "{what} destroyed {damaged} rows; {} were acknowledged before it, all among them: {all_hit}",
            before.len()
        );
        if what == "drop_table" {
            let r = &d.trial(0)["restore"];
            assert_eq!(r["rolled_back"], 0, "{r}");
        }
    }
    update_rows_is_restored_and_garbled_rows_count_as_damaged(&lab);
    sql_from_a_file_is_restored(&lab);
}

/// The user's own statement from a file beside the spec: a bad migration
/// that blanks every fourth row's payload and deletes the next. firedrill
/// reads the damage inside the transaction (intact before, intact after):
/// exactly the acknowledged rows with seq % 4 in {0, 1}, nothing else.
fn sql_from_a_file_is_restored(lab: &Lab) {
    let text = example("pg-pitr-sql.toml");
    let sql = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/pg-pitr-bad-migration.sql");
    std::fs::copy(&sql, lab.tmp.path().join("pg-pitr-bad-migration.sql")).expect("copy sql");
    let d = drill_text(lab, &text, "sql");
    assert_exact(&d, "sql");
    let detail = d.trial(0)["faults"][0]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("pg-pitr-bad-migration.sql"), "{detail}");
    let (ops, ids, t_fault) = ledger_and_damage(&d);
    assert!(
        ids.iter().all(|s| s % 4 <= 1),
        "damage outside the statement's rows"
    );
    let mut hit = ids.clone();
    hit.sort_unstable();
    let want: Vec<u64> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && o.t_done < t_fault && o.seq % 4 <= 1)
        .map(|o| o.seq)
        .collect();
    let missed = want
        .iter()
        .filter(|s| hit.binary_search(s).is_err())
        .count();
    assert!(
        !want.is_empty() && missed == 0,
        "{missed} of {} rows the statement hit are not in its damage",
        want.len()
    );
}

/// A broken archive: a segment written after the backup is taken out of
/// the repository, then a DELETE; the restore to before it cannot replay
/// across the hole. The verdict fails with the server's own words, exit
/// 1; `pgbackrest verify` says ok beside it, and the hole shows in the WAL
/// ranges it logged. The heal puts the segment back.
#[test]
fn broken_archive_fails_the_restore() {
    if !pitr_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("pg-pitr-broken-archive.toml"));
    let d = lab.drill("broken");
    let t = d.trial(0);
    let r = &t["restore"];
    eprintln!("FIGURES broken archive: restore {r}; check {}", t["check"]);
    assert_eq!(d.code, 1, "{}\n{}", d.stdout, d.stderr);
    assert_eq!(d.run["verdict"], "fail");
    assert_eq!(r["reached"], false, "{r}");
    let why = "recovery ended before configured recovery target was reached";
    assert!(r["detail"].as_str().unwrap_or("").contains(why), "{r}");
    assert!(
        t["check"]["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|x| x.as_str().unwrap_or("").contains(why)),
        "{}",
        t["check"]
    );
    let removed = t["faults"][0]["detail"].as_str().unwrap_or("");
    let seg = removed
        .strip_prefix("WAL segment ")
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("the remove_wal step names no segment: {removed}"));
    let c = &r["backup_check"];
    assert_eq!(c["status"], "ok", "{c}");
    assert!(
        c["wal_gaps"]
            .as_array()
            .expect("wal_gaps")
            .iter()
            .any(|g| g.as_str().unwrap_or("").contains(seg)),
        "verify's WAL ranges do not show the hole at {seg}: {c}"
    );
    assert!(
        c["inventory"].as_str().unwrap_or("").contains("status ok"),
        "{c}"
    );
    assert!(
        d.stdout.contains("pgbackrest verify: status ok") && d.stdout.contains(seg),
        "{}",
        d.stdout
    );
    // Healed: the segment is back in the repository.
    let back = walk(&lab.lab_dir().join("backup/repo/archive"))
        .iter()
        .any(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(seg))
        });
    assert!(back, "segment {seg} was not put back");
    assert_eq!(t["faults"][0]["heal_error"], serde_json::Value::Null);

    // Control: with the segment back, the same restore (`lab restore`, the
    // drill's code alone) reaches the same target.
    let tl: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.dir.join("trial-1/timeline.json")).expect("timeline"),
    )
    .expect("timeline json");
    let xid = tl["damage"]["xid"].as_u64().expect("xid").to_string();
    let out = firedrill(&[
        "lab",
        "restore",
        lab.lab_dir().to_str().expect("utf-8"),
        "--xid",
        &xid,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("FIGURES broken archive, segment back: {text}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(": reached")
            && text.contains(&format!("before commit of transaction {xid},")),
        "{text}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn bad_corruption_input_is_exit_2_with_position() {
    let never = "/tmp/firedrill-pgfaults-bad-never";
    let sql = example("pg-pitr-sql.toml").replace("@DIR@", never);
    // check_bad_drill writes the spec into a fresh directory: the
    // statement file beside it is missing.
    check_bad_drill(&sql, "pg-pitr-bad-migration.sql: No such file", &["--lab"]);
    check_bad_drill(
        &sql.replace("sql_file = \"pg-pitr-bad-migration.sql\"\n", ""),
        "sql reads its statement from a file",
        &["--lab"],
    );
    let upd = example("pg-pitr-update-rows.toml").replace("@DIR@", never);
    check_bad_drill(
        &upd.replace("\nseqs = [1, 300]\n", "\nseqs = [300, 1]\n"),
        "seqs = [from, to]",
        &["--lab"],
    );
    check_bad_drill(
        &upd.replace("\nseqs = [1, 300]\n", "\nseqs = [1, 300]\nfraction = 0.5\n"),
        "give fraction or seqs, not both",
        &["--lab"],
    );
    check_bad_drill(
        &upd.replace("\nseqs = [1, 300]\n", "\nfraction = 0.0\n"),
        "fraction = 0 is not a share",
        &["--lab"],
    );
    check_bad_drill(
        &upd.replace(
            "[drill.workload]\n",
            "[drill.workload]\npayload_bytes = 4\n",
        ),
        "update_rows garbles payloads: it needs workload.payload_bytes >= 8",
        &["--lab"],
    );
    let trunc = example("pg-pitr-truncate.toml").replace("@DIR@", never);
    check_bad_drill(
        &trunc.replace(
            "action = \"truncate\"",
            "action = \"truncate\"\nfraction = 0.5",
        ),
        "`fraction` applies to delete_rows and update_rows, not truncate",
        &["--lab"],
    );
    let broken = example("pg-pitr-broken-archive.toml").replace("@DIR@", never);
    check_bad_drill(
        &broken.replace("at = \"2s\"", "at = \"5s\""),
        "remove_wal must come before the data disaster",
        &["--lab"],
    );
    check_bad_drill(
        &broken.replace("tool = \"pgbackrest\"", "tool = \"basebackup\""),
        "remove_wal takes a segment out of a pgBackRest repository",
        &["--lab"],
    );
    assert!(!std::path::Path::new(never).exists(), "a lab was started");
}
