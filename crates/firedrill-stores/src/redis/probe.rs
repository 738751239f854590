//! Redis as `firedrill watch` sees it (`kind = "redis"`: nodes by
//! `addr`, an optional ACL `user`) and its probe: `INFO replication` on
//! every node. The master's
//! `master_repl_offset` is sampled each round; a replica's exposure is how
//! long ago the master's offset passed the replica's `slave_repl_offset`
//! ([`OffsetHistory`]), so it is in seconds of writes, not the
//! seconds since the replica's last ACK that Redis calls `lag`.
//!
//! A replica whose link to the master is down receives nothing: its
//! exposure is at least the time since it was last known in sync (by this
//! watcher, or by the replica's own `master_link_down_since_seconds`), even
//! when the master is idle, as the PostgreSQL heartbeat's does.

use crate::watch::{addr_store, AddrNode};
use async_trait::async_trait;
use firedrill_spec::Diagnostic;
use firedrill_watch::board::Extras;
use firedrill_watch::config::Loaded;
use firedrill_watch::plan::{Settings, Source, WatchedDomain};
use firedrill_watch::rate::OffsetHistory;
use firedrill_watch::{labels, Probe, Round, SourceResult, WatchKind, WatchStore};
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// `kind = "redis"` in an objectives file (the drill's kind is
/// `redis-sentinel`; the watcher reads the replicas, not Sentinel).
pub struct RedisWatch;

impl WatchKind for RedisWatch {
    fn kind(&self) -> &'static str {
        "redis"
    }
    fn sources(&self) -> &'static [Source] {
        &[Source::ReplicationLag]
    }
    fn store_keys(&self) -> &'static [&'static str] {
        &["user"]
    }
    fn node_keys(&self) -> &'static [&'static str] {
        &["addr"]
    }
    fn plan(
        &self,
        file: &Loaded,
        domain: usize,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Arc<dyn WatchStore>> {
        let (nodes, user) = addr_store(file, domain, out)?;
        Some(Arc::new(RedisStore { nodes, user }))
    }
}

/// A validated Redis store.
#[derive(Debug, Clone)]
pub struct RedisStore {
    pub nodes: Vec<AddrNode>,
    pub user: Option<String>,
}

impl WatchStore for RedisStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn prober(&self, dom: &WatchedDomain, settings: &Settings) -> Box<dyn Probe> {
        Box::new(RedisProber::new(dom, self, settings))
    }
}

struct Node {
    name: String,
    host: String,
    port: u16,
    conn: Option<MultiplexedConnection>,
    /// Watcher time (seconds since `epoch`) at which this replica last
    /// held everything the master had, seen over an up link.
    in_sync_at: Option<f64>,
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
    /// Seconds since the replica's link went down, on its own clock (a
    /// duration, so clock skew does not matter); `None` when up or unknown
    /// (Redis prints -1 for a link never up since the replica started).
    pub link_down_since_s: Option<u64>,
    /// The replication history the offsets belong to.
    pub master_replid: Option<String>,
    pub master_replid2: Option<String>,
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
            "master_link_down_since_seconds" => {
                r.link_down_since_s = v.parse::<i64>().ok().and_then(|x| u64::try_from(x).ok())
            }
            "master_replid" => r.master_replid = Some(v.to_string()),
            "master_replid2" => r.master_replid2 = Some(v.to_string()),
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
                    in_sync_at: None,
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
}

#[async_trait]
impl Probe for RedisProber {
    async fn round(&mut self, dom: &WatchedDomain) -> Round {
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
        let minfo = &infos[&master];
        let mut observed = Vec::new();
        let mut missing = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
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
            let behind = match info.slave_repl_offset {
                Some(off) if same_history(info, minfo) => {
                    extras.insert(
                        (
                            "firedrill_redis_lag_bytes".into(),
                            labels(dom, &[("node", &n.name)]),
                        ),
                        (moff - off).max(0) as f64,
                    );
                    self.history.seconds_behind(off, now)
                }
                _ => None,
            };
            if link_up {
                if let Some(b) = behind {
                    n.in_sync_at = Some(now - b);
                }
            }
            match replica_exposure(behind, link_up, n.in_sync_at, info.link_down_since_s, now) {
                Some(s) => observed.push((n.name.clone(), s)),
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

/// The replica's offset counts in the master's replication history (the
/// replica took the master's replication id when it synced; `replid2` is the
/// history before the master's own promotion). Without ids (old Redis), the
/// offsets are assumed comparable.
fn same_history(replica: &ReplInfo, master: &ReplInfo) -> bool {
    match (&replica.master_replid, &master.master_replid) {
        (Some(r), Some(m)) => r == m || master.master_replid2.as_deref() == Some(r.as_str()),
        _ => true,
    }
}

/// A replica's exposure from one round: `behind` is what the offset history
/// says (seconds since the master passed the replica's offset; `None` when
/// the offsets are not comparable), `in_sync_at` the watcher time at which
/// the replica was last seen in sync over an up link, `down_since_s` the
/// replica's own `master_link_down_since_seconds` (whole seconds between
/// two truncated readings of its clock, so counted as `d - 1`).
///
/// Over an up link the replica receives every write: `behind` is the
/// exposure. Over a down link it receives nothing, so the exposure is at
/// least the time since it was last known in sync, also on an idle master
/// (where `behind` stays 0): the objective covers the replication the
/// store promises, not only the writes that happened to arrive. `None`
/// (the node cannot be assessed) when neither the watcher nor the replica
/// knows when it was last in sync.
pub fn replica_exposure(
    behind: Option<f64>,
    link_up: bool,
    in_sync_at: Option<f64>,
    down_since_s: Option<u64>,
    now: f64,
) -> Option<f64> {
    if link_up {
        return behind;
    }
    let watcher = in_sync_at.map(|t| (now - t).max(0.0));
    // Whole seconds between two truncated clock readings: the outage
    // lasted more than `d - 1` seconds, not necessarily `d`.
    let replica = down_since_s.map(|d| d.saturating_sub(1) as f64);
    let since = match (watcher, replica) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }?;
    Some(behind.map_or(since, |b| b.max(since)))
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
        assert_eq!(r.link_down_since_s, None);
        let down = "role:slave\r\nmaster_link_status:down\r\nmaster_link_down_since_seconds:7\r\nmaster_replid:abc\r\n";
        let d = parse_info(down);
        assert_eq!(d.link_down_since_s, Some(7));
        assert_eq!(d.master_replid.as_deref(), Some("abc"));
        let never = parse_info("master_link_status:down\r\nmaster_link_down_since_seconds:-1\r\n");
        assert_eq!(never.link_down_since_s, None);
    }

    #[test]
    fn an_up_link_reports_the_offset_measure() {
        assert_eq!(
            replica_exposure(Some(0.3), true, Some(1.0), None, 50.0),
            Some(0.3)
        );
        assert_eq!(replica_exposure(None, true, Some(1.0), None, 50.0), None);
    }

    #[test]
    fn a_down_link_grows_from_the_last_sync_even_when_idle() {
        // Idle master: the offsets match (behind 0), the link is down
        // since the watcher last saw it in sync at t=10.
        assert_eq!(
            replica_exposure(Some(0.0), false, Some(10.0), None, 25.0),
            Some(15.0)
        );
        // Writes continue: the offset measure may be the larger one.
        assert_eq!(
            replica_exposure(Some(18.0), false, Some(10.0), None, 25.0),
            Some(18.0)
        );
        // The replica's own clock knows of a longer outage.
        assert_eq!(
            replica_exposure(Some(0.0), false, Some(10.0), Some(40), 25.0),
            Some(39.0)
        );
        // Not comparable offsets: the time since the last sync still counts.
        assert_eq!(
            replica_exposure(None, false, None, Some(3), 25.0),
            Some(2.0)
        );
        assert_eq!(
            replica_exposure(None, false, None, Some(0), 25.0),
            Some(0.0)
        );
        // Nobody knows when it was last in sync: not assessable, never 0.
        assert_eq!(replica_exposure(Some(0.0), false, None, None, 25.0), None);
    }

    #[test]
    fn offsets_of_another_history_are_not_compared() {
        let m = ReplInfo {
            master_replid: Some("new".into()),
            master_replid2: Some("old".into()),
            ..ReplInfo::default()
        };
        let r = |id: &str| ReplInfo {
            master_replid: Some(id.into()),
            ..ReplInfo::default()
        };
        assert!(same_history(&r("new"), &m));
        assert!(same_history(&r("old"), &m));
        assert!(!same_history(&r("other"), &m));
        assert!(same_history(&ReplInfo::default(), &m));
    }
}
