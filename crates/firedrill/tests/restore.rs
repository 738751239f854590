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
