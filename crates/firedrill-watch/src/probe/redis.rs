//! Redis: `INFO replication` on every node. The master's
//! `master_repl_offset` is sampled each round; a replica's exposure is how
//! long ago the master's offset passed the replica's `slave_repl_offset`
//! ([`crate::rate::OffsetHistory`]), so it is in seconds of writes, not the
//! seconds since the replica's last ACK that Redis calls `lag`.

use super::{labels, Round, SourceResult};
use crate::board::Extras;
use crate::plan::{RedisStore, Settings, Source, WatchedDomain};
use crate::rate::OffsetHistory;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::time::timeout;

struct Node {
    name: String,
    host: String,
    port: u16,
    conn: Option<MultiplexedConnection>,
}

pub struct RedisProber {
    nodes: Vec<Node>,
    user: Option<String>,
    password: Option<String>,
    timeout: Duration,
    history: OffsetHistory,
    epoch: Instant,
    master: Option<String>,
}

/// The fields of INFO replication we use.
#[derive(Debug, Default, PartialEq)]
pub struct ReplInfo {
    pub role: String,
    pub master_repl_offset: Option<i64>,
    pub slave_repl_offset: Option<i64>,
    pub master_link_up: Option<bool>,
    pub connected_slaves: Option<u32>,
}

/// Parses the `key:value` lines of INFO.
pub fn parse_info(text: &str) -> ReplInfo {
    let mut r = ReplInfo::default();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once(':') else {
            continue;
        };
        match k {
            "role" => r.role = v.to_string(),
            "master_repl_offset" => r.master_repl_offset = v.parse().ok(),
            "slave_repl_offset" => r.slave_repl_offset = v.parse().ok(),
            "master_link_status" => r.master_link_up = Some(v == "up"),
            "connected_slaves" => r.connected_slaves = v.parse().ok(),
            _ => {}
        }
    }
    r
}

impl RedisProber {
    pub fn new(dom: &WatchedDomain, s: &RedisStore, settings: &Settings) -> Self {
        let nodes = s
            .nodes
            .iter()
            .map(|n| {
                let (h, p) = n.addr.rsplit_once(':').unwrap_or((&n.addr, "6379"));
                Node {
                    name: n.name.clone(),
                    host: h.to_string(),
                    port: p.parse().unwrap_or(6379),
                    conn: None,
                }
            })
            .collect();
        RedisProber {
            nodes,
            user: s.user.clone(),
            password: dom.credentials.password().map(String::from),
            timeout: settings.timeout,
            history: OffsetHistory::new(120),
            epoch: Instant::now(),
            master: None,
        }
    }

    async fn info(&self, i: usize) -> Result<(ReplInfo, Option<MultiplexedConnection>), String> {
        let n = &self.nodes[i];
        let limit = self.timeout;
        let mut conn = match &n.conn {
            Some(c) => c.clone(),
            None => {
                let mut settings = RedisConnectionInfo::default();
                if let Some(u) = &self.user {
                    settings = settings.set_username(u);
                }
                if let Some(p) = &self.password {
                    settings = settings.set_password(p);
                }
                let info = ConnectionAddr::Tcp(n.host.clone(), n.port)
                    .into_connection_info()
                    .map_err(|e| e.to_string())?
                    .set_redis_settings(settings);
                let client = redis::Client::open(info).map_err(|e| e.to_string())?;
                timeout(limit, client.get_multiplexed_async_connection())
                    .await
                    .map_err(|_| format!("connect timed out after {limit:?}"))?
                    .map_err(|e| e.to_string())?
            }
        };
        let text: String = timeout(
            limit,
            redis::cmd("INFO").arg("replication").query_async(&mut conn),
        )
        .await
        .map_err(|_| format!("INFO timed out after {limit:?}"))?
        .map_err(|e| e.to_string())?;
        Ok((parse_info(&text), Some(conn)))
    }

    pub async fn round(&mut self, dom: &WatchedDomain) -> Round {
        let answers =
            futures_util::future::join_all((0..self.nodes.len()).map(|i| self.info(i))).await;
        let now = self.epoch.elapsed().as_secs_f64();
        let mut extras = Extras::new();
        let mut infos: HashMap<usize, ReplInfo> = HashMap::new();
        let mut errors = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok((info, conn)) => {
                    self.nodes[i].conn = conn;
                    infos.insert(i, info);
                }
                Err(e) => {
                    self.nodes[i].conn = None;
                    errors.push(format!("{}: {e}", self.nodes[i].name));
                }
            }
        }
        let masters: Vec<usize> = infos
            .iter()
            .filter(|(_, x)| x.role == "master")
            .map(|(i, _)| *i)
            .collect();
        let master = match masters.as_slice() {
            [m] => *m,
            [] => {
                return fail(dom, format!("no master answered; {}", errors.join("; ")));
            }
            _ => return fail(dom, "several nodes claim the master role".into()),
        };
        let mname = self.nodes[master].name.clone();
        if self.master.as_deref() != Some(mname.as_str()) {
            // A new master has its own offset history.
            self.history = OffsetHistory::new(120);
            self.master = Some(mname.clone());
        }
        let Some(moff) = infos[&master].master_repl_offset else {
            return fail(dom, format!("{mname}: INFO has no master_repl_offset"));
        };
        self.history.push(now, moff);
        extras.insert(
            (
                "firedrill_redis_master_repl_offset".into(),
                labels(dom, &[("node", &mname)]),
            ),
            moff as f64,
        );
        let mut observed = Vec::new();
        let mut missing = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if i == master {
                continue;
            }
            let Some(info) = infos.get(&i) else {
                missing.push(n.name.clone());
                continue;
            };
            let link_up = info.master_link_up.unwrap_or(false);
            extras.insert(
                (
                    "firedrill_redis_link_up".into(),
                    labels(dom, &[("node", &n.name)]),
                ),
                if link_up { 1.0 } else { 0.0 },
            );
            match info.slave_repl_offset {
                Some(off) => {
                    extras.insert(
                        (
                            "firedrill_redis_lag_bytes".into(),
                            labels(dom, &[("node", &n.name)]),
                        ),
                        (moff - off).max(0) as f64,
                    );
                    match self.history.seconds_behind(off, now) {
                        Some(s) => observed.push((n.name.clone(), s)),
                        None => missing.push(n.name.clone()),
                    }
                }
                None => missing.push(n.name.clone()),
            }
        }
        Round {
            results: vec![SourceResult {
                source: Source::ReplicationLag,
                observed,
                missing,
                error: (!errors.is_empty()).then(|| errors.join("; ")),
                ages: false,
            }],
            extras: Some(extras),
            extra_updates: Extras::new(),
        }
    }
}

fn fail(_dom: &WatchedDomain, e: String) -> Round {
    Round {
        results: vec![SourceResult::failed(Source::ReplicationLag, e)],
        extras: None,
        extra_updates: Extras::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info_replication() {
        let master = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0\r\nmaster_repl_offset:1300\r\n";
        let m = parse_info(master);
        assert_eq!(m.role, "master");
        assert_eq!(m.master_repl_offset, Some(1300));
        assert_eq!(m.connected_slaves, Some(1));
        let replica = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_link_status:down\r\nslave_repl_offset:1234\r\nmaster_repl_offset:1234\r\n";
        let r = parse_info(replica);
        assert_eq!(r.role, "slave");
        assert_eq!(r.slave_repl_offset, Some(1234));
        assert_eq!(r.master_link_up, Some(false));
    }
}
