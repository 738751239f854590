//! [`Target`] for PostgreSQL: the adapter the engine drives.

use super::{
    multi_host, parse_node, Heartbeat, HeartbeatReader, PgNode, PgTarget, Route, WorkloadClient,
};
use async_trait::async_trait;
use firedrill_targets::{LiveRole, Target, TargetError, TargetNode};
use std::sync::Arc;
use std::time::Duration;

/// The store as one trial sees it: the control path to every node, and the
/// clients' path (through the clients' proxies in a proxied lab).
pub struct PgStore {
    pub target: PgTarget,
    clients: Vec<PgNode>,
    /// From the environment or a file: a node taken in needs it too.
    password: Option<String>,
    /// Where the clients go once a recovery moves them.
    route: Arc<Route>,
    /// The clients' connect timeout (their op_timeout), for a new route.
    connect_timeout: std::sync::Mutex<Duration>,
    /// Where failover signals come from, when something manages the nodes
    /// (Patroni's REST API): its leader changes are the `detected` phase.
    watch: Option<Box<dyn WatchSource>>,
    /// The payload each client writes (one per client): the audit counts a
    /// row holding none of them as garbled.
    payloads: std::sync::Mutex<Vec<Vec<u8>>>,
    /// Each write also inserts its outbox row (see [`WorkloadClient::with_outbox`]).
    outbox: bool,
}

/// Opens a failover watch for a PostgreSQL store whose manager has one.
#[async_trait]
pub trait WatchSource: Send + Sync {
    async fn open(&self) -> Option<Box<dyn firedrill_targets::FailoverWatch>>;
}

impl PgStore {
    pub fn new(
        nodes: &[TargetNode],
        password: Option<&str>,
        run_id: &str,
    ) -> Result<PgStore, TargetError> {
        let control = nodes
            .iter()
            .map(|n| parse_node(&n.name, &n.control, password))
            .collect::<Result<Vec<_>, _>>()?;
        let clients = nodes
            .iter()
            .map(|n| parse_node(&n.name, &n.client, password))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PgStore {
            target: PgTarget {
                nodes: control,
                run_id: run_id.into(),
                added: Arc::default(),
            },
            clients,
            password: password.map(str::to_string),
            route: Arc::default(),
            connect_timeout: std::sync::Mutex::new(Duration::from_secs(1)),
            watch: None,
            payloads: std::sync::Mutex::new(Vec::new()),
            outbox: false,
        })
    }

    /// The same store, writing an outbox row with each ledger row.
    pub fn with_outbox(mut self, outbox: bool) -> PgStore {
        self.outbox = outbox;
        self
    }

    /// The same store, with its manager's failover signals.
    pub fn with_watch(mut self, watch: Box<dyn WatchSource>) -> PgStore {
        self.watch = Some(watch);
        self
    }

    fn payloads(&self) -> Vec<Vec<u8>> {
        self.payloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `primary` first, then the others: libpq's multi-host order.
    fn ordered<'a>(nodes: &'a [PgNode], primary: &str) -> Vec<&'a PgNode> {
        let mut v: Vec<&PgNode> = nodes.iter().filter(|n| n.name == primary).collect();
        v.extend(nodes.iter().filter(|n| n.name != primary));
        v
    }
}

#[async_trait]
impl Target for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn run_id(&self) -> &str {
        &self.target.run_id
    }
    fn node_names(&self) -> Vec<String> {
        self.target.all_nodes().into_iter().map(|n| n.name).collect()
    }
    async fn roles(&self, limit: Duration) -> Vec<(String, LiveRole)> {
        self.target.roles(limit).await
    }
    async fn role(&self, node: &str, limit: Duration) -> LiveRole {
        self.target.role(node, limit).await
    }
    async fn setup(&self, primary: &str) -> Result<(), TargetError> {
        self.target.setup(primary).await?;
        if self.outbox {
            self.target.setup_outbox(primary).await?;
        }
        Ok(())
    }
    async fn wait_replicated(&self, node: &str, limit: Duration) -> Result<(), TargetError> {
        self.target.wait_replicated(node, limit).await
    }
    fn client(
        &self,
        primary: &str,
        id: u64,
        payload_bytes: usize,
        op_timeout: Duration,
    ) -> Result<Box<dyn firedrill_targets::WorkloadClient>, TargetError> {
        let order = Self::ordered(&self.clients, primary);
        if order.is_empty() {
            return Err(TargetError::Other("no nodes".into()));
        }
        let cfg = multi_host(&order, op_timeout, "firedrill-workload");
        let p = firedrill_targets::payload(id, payload_bytes);
        let mut known = self.payloads.lock().unwrap_or_else(|e| e.into_inner());
        if !known.contains(&p) {
            known.push(p);
        }
        drop(known);
        *self
            .connect_timeout
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = op_timeout;
        Ok(Box::new(
            WorkloadClient::new(cfg, self.target.run_id.clone(), payload_bytes, id)
                .following(self.route.clone())
                .with_outbox(self.outbox),
        ))
    }
    fn heartbeat(
        &self,
        primary: &str,
    ) -> Result<Option<Box<dyn firedrill_targets::Heartbeat>>, TargetError> {
        // firedrill's instrument: the control path, never a fault proxy.
        let order = Self::ordered(&self.target.nodes, primary);
        if order.is_empty() {
            return Ok(None);
        }
        let cfg = multi_host(&order, Duration::from_secs(1), "firedrill-heartbeat");
        Ok(Some(Box::new(Heartbeat::new(
            cfg,
            self.target.run_id.clone(),
        ))))
    }
    fn heartbeat_reader(
        &self,
        node: &str,
    ) -> Result<Option<Box<dyn firedrill_targets::HeartbeatReader>>, TargetError> {
        let n = self.target.node(node)?;
        Ok(Some(Box::new(HeartbeatReader::new(
            n,
            self.target.run_id.clone(),
        ))))
    }
    async fn sync_standbys(&self, primary: &str) -> Result<Vec<String>, TargetError> {
        self.target.sync_standbys(primary).await
    }
    async fn position(&self, node: &str) -> Option<u64> {
        self.target.received_lsn(node).await
    }
    async fn promote(&self, node: &str) -> Result<(), TargetError> {
        self.target.promote(node).await
    }
    async fn replication_source(&self, node: &str) -> Result<String, TargetError> {
        self.target.primary_conninfo(node).await
    }
    async fn cut_replication(&self, node: &str) -> Result<(), TargetError> {
        self.target.cut_replication(node).await
    }
    async fn restore_replication(&self, node: &str, saved: &str) -> Result<(), TargetError> {
        self.target.restore_replication(node, saved).await
    }
    async fn audit(&self, node: &str) -> Result<Vec<u64>, TargetError> {
        Ok(self.audit_read(node).await?.ids)
    }
    async fn audit_read(&self, node: &str) -> Result<firedrill_targets::AuditRead, TargetError> {
        let payloads = self.payloads();
        self.target.audit(node, &payloads).await
    }
    async fn corrupt(
        &self,
        node: &str,
        c: &firedrill_targets::Corruption,
    ) -> Result<firedrill_ledger::Damage, TargetError> {
        let payloads = self.payloads();
        super::corrupt::corrupt(&self.target, node, c, &payloads).await
    }
    async fn adopt(&self, node: &TargetNode, move_clients: bool) -> Result<(), TargetError> {
        let pw = self.password.as_deref();
        let control = parse_node(&node.name, &node.control, pw)?;
        let client = parse_node(&node.name, &node.client, pw)?;
        self.target
            .added
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(control);
        if move_clients {
            let timeout = *self
                .connect_timeout
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.route
                .set(multi_host(&[&client], timeout, "firedrill-workload"));
        }
        Ok(())
    }
    async fn cleanup(&self, node: &str) -> Result<(), TargetError> {
        self.target.cleanup(node).await
    }
    async fn server_version(&self, node: &str) -> Result<String, TargetError> {
        self.target.server_version(node).await
    }
    async fn failover_watch(&self) -> Option<Box<dyn firedrill_targets::FailoverWatch>> {
        match &self.watch {
            Some(w) => w.open().await,
            None => None,
        }
    }
}

#[async_trait]
impl firedrill_targets::WorkloadClient for WorkloadClient {
    async fn ready(&mut self) {
        WorkloadClient::ready(self).await
    }
    async fn write(
        &mut self,
        seq: u64,
        deadline: tokio::time::Instant,
    ) -> firedrill_ledger::Outcome {
        WorkloadClient::write(self, seq, deadline).await
    }
}

#[async_trait]
impl firedrill_targets::Heartbeat for Heartbeat {
    async fn beat(&mut self, n: i64, limit: Duration) -> bool {
        Heartbeat::beat(self, n, limit).await
    }
}

#[async_trait]
impl firedrill_targets::HeartbeatReader for HeartbeatReader {
    async fn read(&mut self, limit: Duration) -> Option<i64> {
        HeartbeatReader::read(self, limit).await
    }
}
