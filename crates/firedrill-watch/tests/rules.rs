//! The generated rules, as a snapshot: any change to what pages whom shows
//! up in review. `promtool check rules` runs on them in the firedrill
//! crate's watch tests.

use std::path::Path;

const FILE: &str = r#"
[watch]
for = "2m"
approaching = 0.8
compliance = 0.999
period = "30d"

[[domain]]
name = "orders"
[domain.store]
kind = "postgres"
name = "orders-pg"
[[domain.store.nodes]]
name = "n1"
conninfo = "host=db1 port=5432 user=app dbname=app"
[[domain.store.nodes]]
name = "n2"
conninfo = "host=db2 port=5432 user=app dbname=app"
[domain.objectives.node_loss]
rpo = "5s"
rto = "1m"
sources = ["heartbeat", "replication_lag"]
[domain.objectives.corruption]
rpo = "15m"
sources = ["archive"]
[domain.restore_test]
max_age = "8d"

[[domain]]
name = "sessions"
[domain.store]
kind = "redis"
[[domain.store.nodes]]
name = "r1"
addr = "cache1:6379"
[domain.objectives.node_loss]
rpo = "2s"
sources = ["replication_lag"]
"#;

#[test]
fn rules_snapshot() {
    let plan = firedrill_watch::config::parse(
        firedrill_stores::watch_kinds(),
        Path::new("objectives.toml"),
        FILE.to_string(),
    )
    .expect("valid");
    insta::assert_snapshot!(firedrill_watch::rules::render(&plan));
}
