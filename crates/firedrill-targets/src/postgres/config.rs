//! Connection settings for a PostgreSQL target.

use crate::TargetError;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::{Host, TargetSessionAttrs};
use tokio_postgres::Config;

/// One node of the store, as the drill names it.
#[derive(Clone)]
pub struct PgNode {
    pub name: String,
    pub config: Config,
}

impl std::fmt::Debug for PgNode {
    // Config's Debug redacts the password already; keep it terse anyway.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgNode({} {})", self.name, endpoint(&self.config))
    }
}

/// `host:port` of a single-host config, for messages.
pub fn endpoint(c: &Config) -> String {
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// Parses a libpq key=value (or URL) conninfo and adds the password that
/// came from the environment or a file. The conninfo itself never holds one
/// (the spec validator refuses it).
pub fn parse_node(
    name: &str,
    conninfo: &str,
    password: Option<&str>,
) -> Result<PgNode, TargetError> {
    let mut config = Config::from_str(conninfo).map_err(|e| TargetError::Config {
        node: name.into(),
        msg: e.to_string(),
    })?;
    if config.get_hosts().len() != 1 {
        return Err(TargetError::Config {
            node: name.into(),
            msg: "a node's conninfo must name exactly one host".into(),
        });
    }
    if config.get_user().is_none() {
        config.user("postgres");
    }
    if let Some(p) = password {
        config.password(p);
    }
    config.connect_timeout(Duration::from_secs(2));
    Ok(PgNode {
        name: name.into(),
        config,
    })
}

/// The workload's connection settings: every node as a host, the current
/// primary first, and `target_session_attrs=read-write`, so a client finds
/// the new primary after a failover by itself, as libpq applications do.
pub fn multi_host(nodes: &[&PgNode], connect_timeout: Duration, app: &str) -> Config {
    let first = &nodes[0].config;
    let mut c = Config::new();
    for n in nodes {
        for h in n.config.get_hosts() {
            match h {
                Host::Tcp(s) => c.host(s),
                Host::Unix(p) => c.host_path(p),
            };
        }
        for p in n.config.get_ports() {
            c.port(*p);
        }
    }
    if let Some(u) = first.get_user() {
        c.user(u);
    }
    if let Some(d) = first.get_dbname() {
        c.dbname(d);
    }
    if let Some(p) = first.get_password() {
        c.password(p);
    }
    c.application_name(app);
    c.connect_timeout(connect_timeout);
    c.target_session_attrs(TargetSessionAttrs::ReadWrite);
    c
}
