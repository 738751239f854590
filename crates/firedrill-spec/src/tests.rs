use super::*;
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
            let d = validate_drill(&s, None);
            s.fail(d).to_string().lines().map(str::to_string).collect()
        }
    }
}

#[test]
fn good_spec_validates() {
    let s = load(GOOD).unwrap();
    assert!(validate_lab(&s).is_empty());
    assert!(
        validate_drill(&s, None).is_empty(),
        "{:?}",
        validate_drill(&s, None)
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
