//! Objectives files: what is accepted, and how mistakes are reported.

use firedrill_watch::{config, WatchError};
use std::path::Path;

fn parse(text: &str) -> Result<firedrill_watch::Plan, String> {
    config::parse(
        firedrill_stores::watch_kinds(),
        Path::new("objectives.toml"),
        text.to_string(),
    )
    .map_err(|e| match e {
        WatchError::Invalid(d) => d.to_string(),
        other => panic!("unexpected {other}"),
    })
}

#[test]
fn the_example_file_is_valid() {
    let p = firedrill_watch::load(
        firedrill_stores::watch_kinds(),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/watch-pg.toml"),
    )
    .expect("examples/watch-pg.toml");
    assert_eq!(p.domains.len(), 1);
    assert_eq!(p.settings.interval.as_secs(), 1);
    assert_eq!(p.domains[0].objectives.len(), 2);
}

#[test]
fn unknown_keys_point_at_the_line() {
    let e = parse("[[domain]]\nname = \"a\"\n[domain.store]\nkind = \"postgres\"\nnodse = []\n")
        .unwrap_err();
    assert!(
        e.starts_with("objectives.toml:5:1: unknown field `nodse`"),
        "{e}"
    );
}

#[test]
fn every_problem_at_once_with_positions() {
    let e = parse(
        r#"
[watch]
approaching = 1.5
[[domain]]
name = "orders"
[domain.store]
kind = "postgres"
password_env = "FIREDRILL_TEST_UNSET_VARIABLE"
[[domain.store.nodes]]
name = "n1"
conninfo = "host=127.0.0.1 port=5 password=hunter2"
[domain.objectives.node_loss]
rpo = "5s"
sources = ["heartbeat", "gossip", "raft"]
nodes = ["n9"]
"#,
    )
    .unwrap_err();
    let lines: Vec<&str> = e.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("objectives.toml:3:15: approaching")),
        "{e}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "objectives.toml:8:16: environment variable FIREDRILL_TEST_UNSET_VARIABLE is not set"
        )),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("objectives.toml:11:12: conninfo must not hold a password")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(":14:25: unknown source \"gossip\"")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(":14:35: a postgres store has no raft source")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(":15:10: no node named \"n9\"")),
        "{e}"
    );
    // The secret is never echoed back.
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn secrets_come_from_the_environment_or_a_file_and_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let p = parse(&format!(
        r#"
[[domain]]
name = "cache"
[domain.store]
kind = "redis"
password_file = "{}"
[[domain.store.nodes]]
name = "r1"
addr = "127.0.0.1:6379"
[domain.objectives.node_loss]
rpo = "1s"
sources = ["replication_lag"]
"#,
        pw.display()
    ))
    .unwrap();
    assert_eq!(p.domains[0].credentials.password(), Some("s3cret"));
    assert!(!format!("{:?}", p).contains("s3cret"));
}

#[test]
fn bad_durations_and_kinds() {
    let e = parse(
        "[watch]\ninterval = 5\n[[domain]]\nname = \"a\"\n[domain.store]\nkind = \"mongo\"\n[domain.objectives.x]\nrpo = \"1s\"\nsources = [\"heartbeat\"]\n",
    )
    .unwrap_err();
    assert!(e.starts_with("objectives.toml:2:12: bad duration 5"), "{e}");
    let e = parse(
        "[[domain]]\nname = \"a\"\n[domain.store]\nkind = \"mongo\"\n[[domain.store.nodes]]\nname = \"m\"\naddr = \"h:1\"\n[domain.objectives.x]\nrpo = \"1s\"\nsources = [\"heartbeat\"]\n",
    )
    .unwrap_err();
    assert!(
        e.contains("objectives.toml:4:8: unknown store kind \"mongo\""),
        "{e}"
    );
}

/// The objectives file shares the spec's TOML messages: a NUL in a comment
/// (TOML's message for it is empty; the spec_check fuzz target found it).
#[test]
fn a_control_character_in_a_comment_is_named() {
    let e = parse("[watch]\n# a\0b\n").unwrap_err();
    assert_eq!(
        e,
        "objectives.toml:2:4: invalid TOML: unexpected control character U+0000"
    );
}
