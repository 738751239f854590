use firedrill_spec::*;
use firedrill_stores::specs;
use std::path::Path;

const GOOD: &str = r#"
[lab]
name = "pg"
standbys = 1

[drill]
name = "crash"

[drill.workload]
mode = "closed"
clients = 4
duration = "10s"

[[drill.faults]]
at = "3s"
action = "kill"
node = "primary"

[drill.recovery]
promote = "n2"

[drill.objectives]
rpo = "5s"
rto = "1m"
"#;

fn load(src: &str) -> Result<LoadedSpec, SpecError> {
    LoadedSpec::parse(Path::new("t.toml"), src.to_string())
}

fn drill_errors(src: &str) -> Vec<String> {
    match load(src) {
        Err(e) => vec![e.to_string()],
        Ok(s) => {
            let d = validate_drill(&s, None, &specs());
            s.fail(d).to_string().lines().map(str::to_string).collect()
        }
    }
}

#[test]
fn good_spec_validates() {
    let s = load(GOOD).unwrap();
    assert!(validate_lab(&s, &specs()).is_empty());
    assert!(
        validate_drill(&s, None, &specs()).is_empty(),
        "{:?}",
        validate_drill(&s, None, &specs())
    );
}

#[test]
fn unknown_key_points_at_line_and_column() {
    let src = GOOD.replace("clients = 4", "clients = 4\nclinets = 5");
    let e = load(&src).unwrap_err().to_string();
    assert!(e.starts_with("t.toml:12:1: "), "{e}");
    assert!(e.contains("clinets"), "{e}");
}

#[test]
fn bad_duration_points_at_value() {
    let src = GOOD.replace("duration = \"10s\"", "duration = \"10 parsecs\"");
    let e = load(&src).unwrap_err().to_string();
    assert!(e.starts_with("t.toml:12:12: "), "{e}");
    assert!(e.contains("bad duration"), "{e}");
}

#[test]
fn bare_number_duration_is_rejected() {
    let src = GOOD.replace("duration = \"10s\"", "duration = 10");
    let e = load(&src).unwrap_err().to_string();
    assert!(e.contains("has no unit"), "{e}");
}

#[test]
fn unknown_node_points_at_value() {
    let src = GOOD.replace("node = \"primary\"", "node = \"n9\"");
    let e = drill_errors(&src);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.toml:17:8: no node named \"n9\""),
        "{e:?}"
    );
}

#[test]
fn a_zone_must_exist_and_comes_instead_of_a_node() {
    // A PostgreSQL lab has no zones: naming one is an error at the value.
    let src = GOOD.replace("node = \"primary\"", "zone = \"z2\"");
    let e = drill_errors(&src);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.toml:17:8: no zone named \"z2\": this target has no zones"),
        "{e:?}"
    );
    let both = GOOD.replace("node = \"primary\"", "node = \"primary\"\nzone = \"z1\"");
    let e = drill_errors(&both);
    assert!(
        e.iter().any(|l| l.contains("give node or zone, not both")),
        "{e:?}"
    );
    let neither = GOOD.replace("node = \"primary\"", "");
    let e = drill_errors(&neither);
    assert!(e.iter().any(|l| l.contains("the step needs node")), "{e:?}");
    // `partition` needs a role the store resolves; PostgreSQL has none.
    let part = GOOD.replace("node = \"primary\"", "node = \"primary\"\npartition = 1");
    let e = drill_errors(&part);
    assert!(
        e.iter().any(|l| l.contains("partition goes with a role")),
        "{e:?}"
    );
}

#[test]
fn all_errors_at_once() {
    let src = GOOD
        .replace("node = \"primary\"", "node = \"n9\"")
        .replace("promote = \"n2\"", "promote = \"n7\"")
        .replace("at = \"3s\"", "at = \"30s\"");
    let e = drill_errors(&src);
    assert_eq!(e.len(), 3, "{e:?}");
}

#[test]
fn password_in_conninfo_is_refused() {
    let src = r#"
[drill]
name = "ext"
[drill.target]
nodes = [ { name = "a", conninfo = "host=127.0.0.1 password=hunter2" } ]
[drill.workload]
duration = "5s"
[drill.objectives]
rpo = "1s"
"#;
    let e = drill_errors(src);
    assert!(
        e.iter().any(|l| l.contains("must not contain a password")),
        "{e:?}"
    );
}

#[test]
fn process_fault_on_endpoint_needs_pid() {
    let src = r#"
[drill]
name = "ext"
[drill.target]
nodes = [ { name = "a", conninfo = "host=127.0.0.1" } ]
[drill.workload]
duration = "5s"
[[drill.faults]]
at = "1s"
action = "kill"
node = "a"
[drill.objectives]
rpo = "1s"
"#;
    let e = drill_errors(src);
    assert!(e.iter().any(|l| l.contains("needs the pid")), "{e:?}");
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("é\nx", 3), (2, 1));
}

fn netns_drill(step: &str) -> String {
    GOOD.replace("standbys = 1", "standbys = 1\nlinks = \"netns\"")
        .replace(
            "action = \"kill\"\nnode = \"primary\"",
            &format!(
                "{step}\n[[drill.faults]]\nat = \"4s\"\naction = \"kill\"\nnode = \"primary\""
            ),
        )
}

#[test]
fn netns_lab_parses_and_allows_a_whole_node_partition() {
    let src = netns_drill("action = \"partition\"\nnode = \"n2\"\nfor = \"3s\"");
    let s = load(&src).unwrap();
    assert_eq!(s.file.lab.as_ref().unwrap().links, Links::Netns);
    assert!(validate_lab(&s, &specs()).is_empty());
    let d = validate_drill(&s, None, &specs());
    assert!(d.is_empty(), "{d:?}");
    let src = netns_drill("action = \"partition\"\nnode = \"n2\"\nlink = \"all\"");
    assert!(drill_errors(&src).is_empty(), "{:?}", drill_errors(&src));
}

#[test]
fn netns_lab_refuses_what_needs_the_proxies() {
    for (step, what) in [
        (
            "action = \"latency\"\nnode = \"n2\"\nlatency = \"100ms\"",
            "latency needs links = \"proxied\"",
        ),
        (
            "action = \"bandwidth\"\nnode = \"n2\"\nrate_kbps = 10",
            "bandwidth needs links = \"proxied\"",
        ),
        (
            "action = \"reset\"\nnode = \"n2\"",
            "reset needs links = \"proxied\"",
        ),
        (
            "action = \"partition\"\nnode = \"n2\"\nlink = \"replication\"",
            "link = \"clients\" or \"replication\" needs links = \"proxied\"",
        ),
        (
            "action = \"partition\"\nnode = \"primary\"\nlink = \"clients\"",
            "link = \"clients\" or \"replication\" needs links = \"proxied\"",
        ),
    ] {
        let e = drill_errors(&netns_drill(step));
        assert!(e.iter().any(|l| l.contains(what)), "{step}: {e:?}");
        if !step.contains("partition") {
            assert!(
                e.iter().any(|l| l.contains("tc netem is not available")),
                "{e:?}"
            );
        }
    }
}

#[test]
fn direct_lab_still_refuses_network_faults() {
    let src =
        netns_drill("action = \"partition\"\nnode = \"n2\"").replace("links = \"netns\"\n", "");
    let e = drill_errors(&src);
    assert!(
        e.iter()
            .any(|l| l.contains("needs a lab with links = \"proxied\"")),
        "{e:?}"
    );
}

mod redis {
    use firedrill_spec::{validate_drill, validate_lab, LoadedSpec};
    use firedrill_stores::specs;
    use std::path::Path;

    const LAB: &str =
        "[lab]\nname = \"r\"\nkind = \"redis-sentinel\"\nstandbys = 2\nlinks = \"proxied\"\n";
    const DRILL: &str = "[drill]\nname = \"d\"\n[drill.workload]\nduration = \"5s\"\n[drill.recovery]\nautomatic = true\n[drill.objectives]\nrpo = \"1s\"\n";

    fn errors(text: &str) -> Vec<String> {
        let spec = LoadedSpec::parse(Path::new("s.toml"), text.to_string()).expect("parses");
        let mut e = validate_lab(&spec, &specs());
        e.extend(validate_drill(&spec, None, &specs()));
        e.iter()
            .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
            .collect()
    }

    #[test]
    fn a_redis_lab_with_its_knobs_is_valid() {
        let text = format!(
            "{LAB}[lab.redis]\ndown_after = \"1s\"\nmin_replicas_to_write = 1\nmin_replicas_max_lag = \"2s\"\nappendfsync = \"always\"\n{DRILL}[drill.target]\nredis_write = \"xadd\"\nredis_wait = 1\nredis_wait_timeout = \"500ms\"\n[[drill.faults]]\nat = \"1s\"\naction = \"partition\"\nnode = \"primary\"\nlink = \"peers\"\nfor = \"2s\"\n"
        );
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn bad_redis_settings_point_at_themselves() {
        let text = format!(
            "{LAB}[lab.redis]\nmin_replicas_to_write = 3\nmin_replicas_max_lag = \"1500ms\"\n{DRILL}[drill.target]\nredis_wait = 0\nredis_wait_timeout = \"2s\"\n[[drill.faults]]\nat = \"1s\"\naction = \"cut_replication\"\nnode = \"n2\"\n"
        );
        let e = errors(&text);
        for want in [
            "7:25: min_replicas_to_write must be at most the number of replicas (2)",
            "8:24: min_replicas_max_lag is whole seconds",
            "18:14: redis_wait is the number of replicas",
            "19:22: redis_wait_timeout must be more than 0 and less than workload.op_timeout",
            "22:10: a redis-sentinel store cannot take cut_replication: cut_replication is a PostgreSQL fault",
        ] {
            assert!(e.iter().any(|l| l.starts_with(want)), "{want}: {e:?}");
        }
    }

    #[test]
    fn redis_options_need_a_redis_target() {
        let text = "[lab]\nname = \"p\"\n[lab.redis]\ndown_after = \"1s\"\n[drill]\nname = \"d\"\n[drill.target]\nlab = \"p\"\nredis_write = \"rpush\"\n[drill.workload]\nduration = \"5s\"\n[drill.objectives]\nrpo = \"1s\"\n";
        let e = errors(text);
        assert!(
            e.iter()
                .any(|l| l.starts_with("3:6: `redis` is for a redis-sentinel lab (kind = \"redis-sentinel\"); this is a postgres lab")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("9:1: `redis_write` is for targets of kind redis-sentinel (kind = \"redis-sentinel\"); this is a postgres target")),
            "{e:?}"
        );
    }
}

/// Data disasters and backups go with the store's declared capabilities:
/// the spec crate names no store, the message names the kinds that take
/// them, from the registry.
mod data_disasters {
    use firedrill_spec::{validate_drill, validate_lab, LoadedSpec};
    use firedrill_stores::specs;
    use std::path::Path;

    const DRILL: &str = "[drill]\nname = \"d\"\n[drill.workload]\nduration = \"8s\"\n[drill.objectives]\nrpo = \"5s\"\n";

    fn errors(text: &str) -> Vec<String> {
        let spec = LoadedSpec::parse(Path::new("s.toml"), text.to_string()).expect("parses");
        let mut e = validate_lab(&spec, &specs());
        e.extend(validate_drill(&spec, None, &specs()));
        e.iter()
            .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
            .collect()
    }

    fn has(e: &[String], want: &str) -> bool {
        e.iter().any(|l| l.starts_with(want))
    }

    const ETCD: &str =
        "[lab]\nname = \"e\"\nkind = \"etcd\"\n[lab.backup]\ntool = \"etcd-snapshot\"\n";
    const STEPS: &str = "[[drill.faults]]\nat = \"2s\"\naction = \"backup\"\nnode = \"primary\"\n[[drill.faults]]\nat = \"5s\"\naction = \"wipe\"\nzone = \"all\"\n[drill.recovery]\nrestore = { from = \"etcd-snapshot\", target = \"latest\" }\n";

    #[test]
    fn an_etcd_snapshot_drill_is_valid_and_the_zone_all_is_every_node() {
        assert_eq!(
            errors(&format!("{ETCD}{DRILL}{STEPS}")),
            Vec::<String>::new()
        );
        // A wipe of one member with Raft's own failover needs no backup.
        let one = "[lab]\nname = \"e\"\nkind = \"etcd\"\n[[drill.faults]]\nat = \"5s\"\naction = \"wipe\"\nnode = \"e2\"\n[drill.recovery]\nautomatic = true\n";
        assert_eq!(errors(&format!("{one}{DRILL}")), Vec::<String>::new());
    }

    #[test]
    fn other_stores_say_who_takes_backups_and_wipes() {
        // A PostgreSQL lab takes delete_rows but not these (yet).
        let pg = format!(
            "[lab]\nname = \"p\"\nstandbys = 1\n{DRILL}[[drill.faults]]\nat = \"2s\"\naction = \"backup\"\nnode = \"primary\"\n[[drill.faults]]\nat = \"5s\"\naction = \"wipe\"\nnode = \"primary\"\n"
        );
        let e = errors(&pg);
        assert!(has(&e, "12:10: a postgres store cannot take backup: backup is built for labs of kind etcd so far"), "{e:?}");
        assert!(has(&e, "16:10: a postgres store cannot take wipe: wipe is built for labs of kind etcd so far"), "{e:?}");
        // delete_rows on etcd names the kinds that take it.
        let etcd = format!("{ETCD}{DRILL}[[drill.faults]]\nat = \"2s\"\naction = \"delete_rows\"\nnode = \"primary\"\n");
        let e = errors(&etcd);
        assert!(has(&e, "14:10: a etcd store cannot take delete_rows: delete_rows is built for labs of kind postgres so far"), "{e:?}");
        // A lab kind that owns no [lab.backup] says which kinds do.
        let redis = format!(
            "[lab]\nname = \"r\"\nkind = \"redis-sentinel\"\nstandbys = 2\n{DRILL}[drill.recovery]\nrestore = {{ from = \"x\", target = \"latest\" }}\n"
        );
        let e = errors(&redis);
        assert!(
            has(&e, "12:20: restore needs a lab that takes backups, and a redis-sentinel lab takes none: [lab.backup] is built for labs of kind postgres, etcd so far"),
            "{e:?}"
        );
    }

    #[test]
    fn snapshot_steps_point_at_their_mistakes() {
        let bad = format!("{ETCD}{DRILL}{STEPS}")
            .replace(
                "zone = \"all\"",
                "zone = \"all\"\nfraction = 0.5\ndetect_after = \"1s\"",
            )
            .replace(
                "node = \"primary\"",
                "node = \"primary\"\ndetect_after = \"1s\"",
            );
        let e = errors(&bad);
        assert!(
            has(
                &e,
                "16:16: `detect_after` applies to data disasters (delete_rows, update_rows, truncate, drop_table, sql, wipe), not backup"
            ),
            "{e:?}"
        );
        assert!(
            has(
                &e,
                "21:12: `fraction` applies to delete_rows and update_rows, not wipe"
            ),
            "{e:?}"
        );
        assert_eq!(e.len(), 2, "a wipe takes detect_after: {e:?}");
        // Only backups in the schedule: nothing to recover from.
        let only = format!(
            "{ETCD}{DRILL}[[drill.faults]]\nat = \"2s\"\naction = \"backup\"\nnode = \"e1\"\n"
        );
        let e = errors(&only);
        assert!(
            has(
                &e,
                // The first step's action: what would have to change.
                "14:1: the schedule has no fault, only resumes and backups"
            ),
            "{e:?}"
        );
        // A wipe removes data directories firedrill made: endpoints refuse.
        let ep = format!(
            "{DRILL}[drill.target]\nkind = \"etcd\"\n[[drill.target.nodes]]\nname = \"e1\"\nconninfo = \"http://127.0.0.1:2379\"\npid_file = \"/tmp/e1.pid\"\n[[drill.faults]]\nat = \"5s\"\naction = \"wipe\"\nnode = \"e1\"\n"
        );
        let e = errors(&ep);
        assert!(
            has(
                &e,
                "15:10: wipe removes a node's data directory: it needs a lab firedrill made"
            ),
            "{e:?}"
        );
    }
}

/// Found while writing the spec_check fuzz target: these three were
/// reported without line:column although the value is in the file.
#[test]
fn zero_timeouts_and_big_payloads_point_at_their_value() {
    let src = GOOD.replace(
        "duration = \"10s\"",
        "duration = \"10s\"\nop_timeout = \"0s\"\npayload_bytes = 2000000",
    ) + "\n[drill.slo]\nrecovery_timeout = \"0s\"\n";
    let e = drill_errors(&src);
    for want in [
        "t.toml:13:14: workload.op_timeout must be more than 0",
        "t.toml:14:17: workload.payload_bytes must be at most 1048576",
        "t.toml:29:20: slo.recovery_timeout must be more than 0",
    ] {
        assert!(e.iter().any(|l| l == want), "{want} not in {e:?}");
    }
}

/// Found by the spec_check fuzz target: TOML's error for a NUL in a
/// comment has an empty message, which printed as "t.toml:1:4: ".
#[test]
fn a_control_character_in_a_comment_is_named() {
    let e = load("# a\0b\n").unwrap_err().to_string();
    assert_eq!(
        e,
        "t.toml:1:4: invalid TOML: unexpected control character U+0000"
    );
}

/// Problems that no single value's span covers point at the key that
/// conflicts, or at their table's header, never at 0:0.
#[test]
fn table_level_problems_point_at_their_key_or_table() {
    let two_recoveries = GOOD.replace("promote = \"n2\"", "promote = \"n2\"\nautomatic = true");
    let rate_without_rate = GOOD
        .replace("mode = \"closed\"", "mode = \"rate\"")
        .replace("clients = 4\n", "");
    let empty_objectives = GOOD.replace("rpo = \"5s\"\nrto = \"1m\"\n", "");
    let both_passwords = r#"
[drill]
name = "ext"
[drill.target]
nodes = [ { name = "a", conninfo = "host=127.0.0.1" } ]
password_env = "PGPASSWORD"
password_file = "/nonexistent/pw"
[drill.workload]
duration = "5s"
[drill.objectives]
rpo = "1s"
"#;
    let settings_array = GOOD.replace(
        "standbys = 1",
        "standbys = 1\n[lab.settings]\nwork_mem = \"4MB\"\nshared_preload_libraries = [\"a\"]",
    );
    for (src, want) in [
        (
            two_recoveries.as_str(),
            "t.toml:19:1: [drill.recovery]: give one of",
        ),
        (
            rate_without_rate.as_str(),
            "t.toml:10:1: mode = \"rate\" needs rate",
        ),
        (
            empty_objectives.as_str(),
            "t.toml:22:1: [drill.objectives] needs rpo, rto",
        ),
        (
            both_passwords,
            "t.toml:7:1: target: give password_env or password_file, not both",
        ),
    ] {
        let e = drill_errors(src);
        assert!(e.iter().any(|l| l.starts_with(want)), "{want} not in {e:?}");
    }
    let s = load(&settings_array).unwrap();
    let e = s.fail(validate_lab(&s, &specs())).to_string();
    assert!(
        e.starts_with("t.toml:7:1: lab setting \"shared_preload_libraries\" must be"),
        "{e}"
    );
    // The same key in two tables is found in the one asked for; a table
    // the file lacks gives 0..0.
    let s = load("[lab]\nname = \"x\"\n[lab.settings]\nname = \"y\"\n").unwrap();
    assert_eq!(s.key_span("lab", "name"), 6..10);
    assert_eq!(s.key_span("lab.settings", "name"), 32..36);
    assert_eq!(s.key_span("lab.settings", ""), 17..31, "the header");
    assert_eq!(s.key_span("drill", "name"), 0..0);
}
