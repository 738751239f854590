//! Shell-outs to the PostgreSQL client tools, run as the server user.
//!
//! `up`/`down`/`reset` are plain synchronous functions that never build a
//! tokio runtime, so the engine may call them from async code (inside
//! `spawn_blocking`, or directly if it accepts blocking a worker). That is
//! why SQL goes through `psql` here rather than tokio-postgres.

use firedrill_lab::{log_tail, LabError};
use firedrill_proc::{as_user, ProcHandle, RunAs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the tools live and whom they run as.
pub(crate) struct Tools<'a> {
    pub bin: &'a Path,
    pub run_as: Option<&'a RunAs>,
    /// Working directory for the tools: the server user may not be able to
    /// enter our own cwd (e.g. root's home), and initdb complains then.
    pub cwd: &'a Path,
}

impl Tools<'_> {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        // Our environment must not redirect the tools elsewhere (PGHOST,
        // PGPORT, PGSERVICE, PGOPTIONS...): every target is explicit.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("PGCONNECT_TIMEOUT", "3")
            .current_dir(self.cwd)
            .stdin(Stdio::null());
        as_user(&mut cmd, self.run_as);
        cmd
    }

    /// Runs a tool to completion; its stdout on success, stderr in the error.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, LabError> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .map_err(LabError::io(self.bin.join(program)))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if stderr.is_empty() {
                stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            Err(LabError::Command {
                program: format!("{program} {}", args.join(" ")),
                status: out.status.to_string(),
                stderr,
            })
        }
    }

    /// One SQL statement through psql to `host` (loopback, or a netns
    /// node's address on the lab bridge); unaligned tuples only, so the
    /// result is easy to parse.
    pub fn psql(&self, host: &str, port: u16, sql: &str) -> Result<String, LabError> {
        let port = port.to_string();
        let out = self.run(
            "psql",
            &[
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                host,
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        )?;
        Ok(out.trim().to_string())
    }

    /// Whether the server at `host`:`port` accepts connections; else
    /// pg_isready's own words, for the timeout message.
    pub fn is_ready(&self, host: &str, port: u16) -> Result<(), String> {
        let port = port.to_string();
        match self
            .command("pg_isready")
            .args(["-h", host, "-p", &port, "-U", "postgres", "-t", "1"])
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "pg_isready: {} {}",
                String::from_utf8_lossy(&o.stdout).trim(),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("pg_isready: {e}")),
        }
    }
}

/// Waits until the server accepts connections; fails early if it exits.
pub(crate) fn wait_ready(
    tools: &Tools<'_>,
    node: &str,
    proc: &ProcHandle,
    host: &str,
    port: u16,
    log: &Path,
    timeout: Duration,
) -> Result<(), LabError> {
    let end = Instant::now() + timeout;
    loop {
        if !proc.is_alive() {
            return Err(LabError::Exited {
                node: node.into(),
                log: log.to_path_buf(),
                log_tail: log_tail(log, 20),
            });
        }
        let why = match tools.is_ready(host, port) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= end {
            return Err(LabError::Timeout {
                node: node.into(),
                what: format!("not accepting connections ({why})"),
                secs: timeout.as_secs(),
                log: log.to_path_buf(),
                log_tail: log_tail(log, 20),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A postgresql.conf literal. Strings are quoted with `''` escaping;
/// numbers and booleans are written bare.
pub(crate) fn conf_literal(key: &str, v: &toml::Value) -> Result<String, LabError> {
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    match v {
        toml::Value::String(s) => Ok(quote(s)),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(if *b { "on" } else { "off" }.into()),
        toml::Value::Datetime(d) => Ok(quote(&d.to_string())),
        toml::Value::Array(_) | toml::Value::Table(_) => Err(LabError::Setting {
            key: key.into(),
            msg: "must be a string, number or boolean".into(),
        }),
    }
}

/// Appends text to a file the server user owns (the data directory's
/// config files).
pub(crate) fn append(path: &Path, text: &str) -> Result<(), LabError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(LabError::io(path))?;
    f.write_all(text.as_bytes()).map_err(LabError::io(path))
}

/// Rewrites a standby's postgresql.auto.conf: pg_basebackup -R copied the
/// primary's `port` and wrote a `primary_conninfo` without an
/// `application_name`, which `synchronous_standby_names` needs to match.
/// In a netns lab the standby also listens on its own address (`listen`),
/// not the primary's, which it copied with postgresql.conf.
pub(crate) fn fix_standby_auto_conf(
    data_dir: &Path,
    node: &str,
    port: u16,
    listen: Option<&str>,
    primary_host: &str,
    primary_port: u16,
) -> Result<(), LabError> {
    let path: PathBuf = data_dir.join("postgresql.auto.conf");
    let text = std::fs::read_to_string(&path).map_err(LabError::io(&path))?;
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| {
            let k = l.split('=').next().unwrap_or("").trim();
            k != "port" && k != "primary_conninfo" && k != "listen_addresses"
        })
        .map(str::to_string)
        .collect();
    out.push(format!("port = {port}"));
    if let Some(l) = listen {
        out.push(format!("listen_addresses = '{l}'"));
    }
    out.push(format!(
        "primary_conninfo = 'host={primary_host} port={primary_port} user=postgres application_name={node}'"
    ));
    out.push(String::new());
    std::fs::write(&path, out.join("\n")).map_err(LabError::io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        let s = toml::Value::String("it's".into());
        assert_eq!(conf_literal("k", &s).unwrap(), "'it''s'");
        assert_eq!(conf_literal("k", &toml::Value::Integer(5)).unwrap(), "5");
        assert_eq!(
            conf_literal("k", &toml::Value::Boolean(false)).unwrap(),
            "off"
        );
        assert!(conf_literal("k", &toml::Value::Array(vec![])).is_err());
    }
}
