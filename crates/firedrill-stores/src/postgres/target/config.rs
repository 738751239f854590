//! Connection settings for a PostgreSQL target.

use firedrill_targets::TargetError;
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

/// Splits a libpq key=value conninfo into its pairs (values unquoted).
fn conninfo_pairs(conninfo: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = conninfo.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = it.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            it.next();
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.next() != Some('=') {
            return Err(format!("missing \"=\" after {key:?}"));
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        let mut value = String::new();
        if it.peek() == Some(&'\'') {
            it.next();
            loop {
                match it.next() {
                    Some('\\') => value.extend(it.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in the value of {key}")),
                }
            }
        } else {
            while let Some(&c) = it.peek() {
                if c.is_whitespace() {
                    break;
                }
                it.next();
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The same conninfo, pointed at `host:port` instead (the embedded fault
/// proxy in front of the node). Only the key=value form can be rewritten
/// without losing settings, so a URL is refused.
pub fn redirect(conninfo: &str, host: &str, port: u16) -> Result<String, String> {
    let t = conninfo.trim_start();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        return Err(
            "network faults against endpoints need the key=value conninfo form, not a URL".into(),
        );
    }
    let mut parts: Vec<String> = conninfo_pairs(conninfo)?
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "host" | "hostaddr" | "port"))
        .map(|(k, v)| format!("{k}={}", quote(&v)))
        .collect();
    parts.push(format!("host={}", quote(host)));
    parts.push(format!("port={port}"));
    Ok(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_replaces_only_the_address() {
        let r = redirect(
            "host=db1 port=5433 user=app dbname='my db' application_name=x\\ y",
            "127.0.0.1",
            40000,
        )
        .unwrap();
        let c = Config::from_str(&r).unwrap();
        assert_eq!(endpoint(&c), "127.0.0.1:40000");
        assert_eq!(c.get_user(), Some("app"));
        assert_eq!(c.get_dbname(), Some("my db"));
        assert_eq!(c.get_application_name(), Some("x y"));
        assert_eq!(c.get_hosts().len(), 1);
    }

    #[test]
    fn redirect_refuses_urls_and_bad_quotes() {
        assert!(redirect("postgres://h:1/db", "127.0.0.1", 1).is_err());
        assert!(redirect("host='h", "127.0.0.1", 1).is_err());
        assert!(redirect("host", "127.0.0.1", 1).is_err());
    }
}
