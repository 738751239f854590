//! The `command` fault and the recovery's verify_command in specs: what
//! validates, and every refusal with its file:line:column.

use firedrill_spec::*;
use firedrill_stores::specs;
use std::path::Path;

fn spec(kind: &str, step: &str, recovery: &str) -> String {
    format!(
        r#"
[lab]
name = "x"
kind = "{kind}"

[drill]
name = "cmd"

[drill.workload]
clients = 2
duration = "10s"

[[drill.faults]]
at = "2s"
action = "command"
{step}
{recovery}
[drill.objectives]
rto = "1m"
"#
    )
}

const GOOD_STEP: &str = r#"command = ["toxiproxy-cli", "toggle", "pg"]
heal_command = "toxiproxy-cli toggle pg && toxiproxy-cli inspect pg"
in_effect_command = ["sh", "-c", "! nc -z 127.0.0.1 5432"]
timeout = "5s"
for = "3s""#;

fn errors(src: &str) -> Vec<String> {
    match LoadedSpec::parse(Path::new("t.toml"), src.to_string()) {
        Err(e) => vec![e.to_string()],
        Ok(s) => {
            let d = validate_drill(&s, None, &specs());
            if d.is_empty() {
                Vec::new()
            } else {
                s.fail(d).to_string().lines().map(str::to_string).collect()
            }
        }
    }
}

fn pg(step: &str) -> Vec<String> {
    errors(&spec("postgres", step, ""))
}

fn has(errs: &[String], at: &str, want: &str) {
    assert!(
        errs.iter().any(|e| e.starts_with(at) && e.contains(want)),
        "no {at} {want:?} in {errs:#?}"
    );
}

#[test]
fn a_command_step_validates_and_needs_no_node() {
    assert_eq!(pg(GOOD_STEP), Vec::<String>::new());
    let with_node = format!("{GOOD_STEP}\nnode = \"primary\"");
    assert_eq!(pg(&with_node), Vec::<String>::new());
    assert_eq!(
        pg("command = \"true\"\nheal = \"none\""),
        Vec::<String>::new()
    );
}

/// Every store of the build takes a command fault: it needs nothing of it.
#[test]
fn every_store_takes_a_command() {
    for st in firedrill_stores::registry() {
        let errs = errors(&spec(st.kind(), GOOD_STEP, ""));
        assert!(
            !errs.iter().any(|e| e.contains("cannot take")),
            "{}: {errs:#?}",
            st.kind()
        );
    }
}

#[test]
fn a_heal_is_required_unless_heal_none_is_explicit() {
    let errs = pg("command = [\"toxiproxy-cli\", \"toggle\", \"pg\"]");
    has(&errs, "t.toml:15:10:", "needs heal_command");
    let both = pg("command = \"x\"\nheal = \"none\"\nheal_command = \"y\"");
    has(&both, "t.toml:18:16:", "not both");
    let other = pg("command = \"x\"\nheal = \"later\"");
    has(&other, "t.toml:17:8:", "the only value is \"none\"");
    let timed = pg("command = \"x\"\nheal = \"none\"\nfor = \"3s\"");
    has(&timed, "t.toml:18:7:", "needs a heal_command");
}

#[test]
fn empty_commands_and_missing_command_are_refused() {
    has(
        &pg("command = []\nheal = \"none\""),
        "t.toml:16:11:",
        "command is empty",
    );
    has(
        &pg("command = \"  \"\nheal = \"none\""),
        "t.toml:16:11:",
        "command is empty",
    );
    has(
        &pg("command = \"x\"\nheal_command = [\"\"]"),
        "t.toml:17:16:",
        "heal_command is empty",
    );
    has(
        &pg("heal_command = \"y\""),
        "t.toml:15:10:",
        "needs `command`",
    );
    let not_a_command = pg("command = 5\nheal = \"none\"");
    assert!(
        not_a_command[0].starts_with("t.toml:16:11:"),
        "{not_a_command:?}"
    );
}

#[test]
fn bad_timeouts_are_refused() {
    let base = "command = \"x\"\nheal_command = \"y\"\n";
    has(
        &pg(&format!("{base}timeout = \"0s\"")),
        "t.toml:18:11:",
        "timeout must be more than 0",
    );
    has(
        &pg(&format!("{base}timeout = \"2h\"")),
        "t.toml:18:11:",
        "at most 1h",
    );
    let bare = pg(&format!("{base}timeout = 5"));
    assert!(bare[0].contains("has no unit"), "{bare:?}");
}

#[test]
fn a_secret_in_a_command_is_refused() {
    let errs = pg(
        "command = \"cli --token abc123 inject\"\nheal_command = \"cli heal --password=hunter2\"",
    );
    has(&errs, "t.toml:16:11:", "holds a secret (token)");
    has(&errs, "t.toml:17:16:", "holds a secret (password)");
    // A reference to the environment is how secrets get in.
    assert_eq!(
        pg("command = \"cli --token \\\"$TOKEN\\\" inject\"\nheal = \"none\""),
        Vec::<String>::new()
    );
}

#[test]
fn command_keys_belong_to_command_steps() {
    let src = spec("postgres", "", "").replace(
        "action = \"command\"",
        "action = \"kill\"\nnode = \"primary\"\ncommand = \"x\"\ntimeout = \"1s\"",
    );
    let errs = errors(&src);
    has(
        &errs,
        "t.toml:17:11:",
        "`command` applies to action = \"command\", not kill",
    );
    has(
        &errs,
        "t.toml:18:11:",
        "`timeout` applies to action = \"command\"",
    );
}

#[test]
fn verify_command_checks() {
    let good = spec(
        "postgres",
        "command = \"x\"\nheal = \"none\"",
        "[drill.recovery]\nverify_command = [\"psql\", \"-c\", \"select 1\"]\nverify_timeout = \"10s\"",
    );
    assert_eq!(errors(&good), Vec::<String>::new());
    let empty = spec(
        "postgres",
        "command = \"x\"\nheal = \"none\"",
        "[drill.recovery]\nverify_command = []",
    );
    has(&errors(&empty), "t.toml:19:18:", "verify_command is empty");
    let lone = spec(
        "postgres",
        "command = \"x\"\nheal = \"none\"",
        "[drill.recovery]\nverify_timeout = \"0s\"",
    );
    let errs = errors(&lone);
    has(
        &errs,
        "t.toml:19:18:",
        "verify_timeout goes with verify_command",
    );
    has(&errs, "t.toml:19:18:", "must be more than 0");
    let secret = spec(
        "postgres",
        "command = \"x\"\nheal = \"none\"",
        "[drill.recovery]\ncommand = \"failover --password=x\"",
    );
    has(
        &errors(&secret),
        "t.toml:19:11:",
        "recovery command holds a secret",
    );
}
