//! firedrill's TCP fault-injection proxy.
//!
//! Toxiproxy-compatible (same HTTP API, same JSON, same status codes) so the
//! existing client libraries drive it, but correct to the byte: non-lossy
//! toxics never lose, duplicate or reorder data, FIN is passed on only after
//! every pending byte, and latency counts from each chunk's arrival. A drill
//! that audits acknowledged writes cannot afford a proxy that eats replies.
//!
//! ```no_run
//! use firedrill_proxy::{ProxyServer, Stream, ToxicKind, ToxicSpec};
//! # async fn demo() -> Result<(), firedrill_proxy::ProxyError> {
//! let server = ProxyServer::new();
//! let link = server.create("replication", "127.0.0.1:0", "127.0.0.1:5432", true).await?;
//! // Standbys now connect to `link.listen`; slow that link by 300 ms.
//! let lag = ToxicSpec::new(ToxicKind::Latency { latency: 300, jitter: 0 })
//!     .stream(Stream::Downstream)
//!     .named("wan");
//! server.add_toxic("replication", lag).await?;
//! server.set_enabled("replication", false).await?; // partition
//! server.reset().await; // heal: enabled again, no toxics
//! tokio::spawn({
//!     let server = server.clone();
//!     async move { server.serve("127.0.0.1:8474".parse().unwrap()).await }
//! });
//! # Ok(()) }
//! ```

mod api;
mod error;
mod fuzz;
mod metrics;
mod pump;
#[cfg(target_os = "linux")]
mod splice;
mod toxic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex};
use tokio::task::{JoinHandle, JoinSet};

pub use error::ProxyError;
#[doc(hidden)]
pub use fuzz::fuzz_api;
pub use toxic::{Stream, ToxicKind, ToxicSpec};

use metrics::Metrics;
use pump::{ActiveToxic, ToxicList};

/// The Toxiproxy version we speak; clients only print it.
pub const TOXIPROXY_API_VERSION: &str = "2.12.0";

/// A proxy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyInfo {
    /// Unique name.
    pub name: String,
    /// The address it listens on; the actual one once bound (port 0 resolved).
    pub listen: String,
    /// Where it connects to.
    pub upstream: String,
    /// Whether it listens and forwards.
    pub enabled: bool,
    /// Its toxics, upstream first, each in order of creation.
    pub toxics: Vec<ToxicSpec>,
}

/// A set of proxies and their toxics, shared by the Rust API and the HTTP API.
/// Cheap to clone: every clone drives the same proxies.
#[derive(Clone)]
pub struct ProxyServer {
    inner: Arc<Inner>,
}

struct Inner {
    proxies: Mutex<BTreeMap<String, Proxy>>,
    metrics: Metrics,
    next_toxic_id: AtomicU64,
}

struct Proxy {
    name: String,
    listen: String,
    upstream: String,
    toxics: Vec<ActiveToxic>,
    tx: watch::Sender<ToxicList>,
    /// The accept loop; it owns every connection, so aborting it takes the
    /// whole proxy down at once.
    task: Option<JoinHandle<()>>,
}

impl Default for ProxyServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyServer {
    /// An empty server: no proxies, API not yet served.
    pub fn new() -> Self {
        ProxyServer {
            inner: Arc::new(Inner {
                proxies: Mutex::new(BTreeMap::new()),
                metrics: Metrics::new(),
                next_toxic_id: AtomicU64::new(1),
            }),
        }
    }

    /// Creates a proxy, listening at once when `enabled`. `listen` may use
    /// port 0; the bound address is returned in [`ProxyInfo::listen`].
    pub async fn create(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
        enabled: bool,
    ) -> Result<ProxyInfo, ProxyError> {
        if name.is_empty() {
            return Err(ProxyError::MissingField("name".into()));
        }
        if upstream.is_empty() {
            return Err(ProxyError::MissingField("upstream".into()));
        }
        let mut proxies = self.inner.proxies.lock().await;
        if proxies.contains_key(name) {
            return Err(ProxyError::ProxyAlreadyExists);
        }
        let mut proxy = Proxy {
            name: name.to_string(),
            listen: normalize_listen(listen),
            upstream: upstream.to_string(),
            toxics: Vec::new(),
            tx: watch::channel(Arc::new(Vec::new())).0,
            task: None,
        };
        if enabled {
            proxy.start(&self.inner).await?;
        }
        let info = proxy.info();
        proxies.insert(name.to_string(), proxy);
        Ok(info)
    }

    /// Creates or replaces many proxies (Toxiproxy's `/populate`): a proxy
    /// whose listen and upstream are unchanged is kept as it is, with its
    /// connections; the others are replaced.
    pub async fn populate(&self, configs: Vec<ProxyConfig>) -> Result<Vec<ProxyInfo>, ProxyError> {
        let mut seen = std::collections::HashSet::new();
        for c in &configs {
            if c.name.is_empty() {
                return Err(ProxyError::MissingField("name".into()));
            }
            if c.upstream.is_empty() {
                return Err(ProxyError::MissingField("upstream".into()));
            }
            if !seen.insert(c.name.clone()) {
                return Err(ProxyError::BadRequestBody(format!(
                    "duplicate proxy name {:?}",
                    c.name
                )));
            }
        }
        let mut out = Vec::new();
        for c in configs {
            let existing = {
                let proxies = self.inner.proxies.lock().await;
                proxies
                    .get(&c.name)
                    .map(|p| (p.listen.clone(), p.upstream.clone()))
            };
            if let Some((listen, upstream)) = existing {
                if upstream == c.upstream && same_listen(&listen, &c.listen) {
                    if let Some(info) = self.get(&c.name).await {
                        out.push(info);
                    }
                    continue;
                }
                self.delete(&c.name).await?;
            }
            out.push(
                self.create(&c.name, &c.listen, &c.upstream, c.enabled)
                    .await?,
            );
        }
        Ok(out)
    }

    /// One proxy, if it exists.
    pub async fn get(&self, name: &str) -> Option<ProxyInfo> {
        self.inner.proxies.lock().await.get(name).map(Proxy::info)
    }

    /// Changes a proxy's fields; `None` keeps the current value. A new listen
    /// or upstream address restarts the proxy, as in Toxiproxy.
    pub async fn update(
        &self,
        name: &str,
        listen: Option<&str>,
        upstream: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<ProxyInfo, ProxyError> {
        let mut proxies = self.inner.proxies.lock().await;
        let proxy = proxies.get_mut(name).ok_or(ProxyError::ProxyNotFound)?;
        let was_enabled = proxy.task.is_some();
        let enabled = enabled.unwrap_or(was_enabled);
        let new_listen = listen.map(normalize_listen);
        let moved = new_listen
            .as_deref()
            .is_some_and(|l| !same_listen(&proxy.listen, l))
            || upstream.is_some_and(|u| u != proxy.upstream);
        if moved {
            proxy.stop().await;
            if let Some(l) = new_listen {
                proxy.listen = l;
            }
            if let Some(u) = upstream {
                proxy.upstream = u.to_string();
            }
        }
        if enabled && proxy.task.is_none() {
            proxy.start(&self.inner).await?;
        } else if !enabled {
            proxy.stop().await;
        }
        Ok(proxy.info())
    }

    /// Enables (listens again) or disables (closes the listener and every
    /// connection) a proxy.
    pub async fn set_enabled(&self, proxy: &str, enabled: bool) -> Result<(), ProxyError> {
        self.update(proxy, None, None, Some(enabled))
            .await
            .map(|_| ())
    }

    /// Deletes a proxy, closing its connections.
    pub async fn delete(&self, name: &str) -> Result<(), ProxyError> {
        let mut proxies = self.inner.proxies.lock().await;
        let mut proxy = proxies.remove(name).ok_or(ProxyError::ProxyNotFound)?;
        proxy.stop().await;
        Ok(())
    }

    /// Adds a toxic; it applies to open connections too. Returns it with its
    /// default name filled in.
    pub async fn add_toxic(&self, proxy: &str, toxic: ToxicSpec) -> Result<ToxicSpec, ProxyError> {
        let toxic = toxic.with_default_name();
        if !(0.0..=1.0).contains(&toxic.toxicity) {
            return Err(ProxyError::BadRequestBody(
                "toxicity must be between 0 and 1".into(),
            ));
        }
        let mut proxies = self.inner.proxies.lock().await;
        let p = proxies.get_mut(proxy).ok_or(ProxyError::ProxyNotFound)?;
        if p.toxics.iter().any(|t| t.spec.name == toxic.name) {
            return Err(ProxyError::ToxicAlreadyExists);
        }
        let id = self.inner.next_toxic_id.fetch_add(1, Ordering::Relaxed);
        p.toxics.push(ActiveToxic {
            id,
            spec: toxic.clone(),
        });
        p.publish();
        Ok(toxic)
    }

    /// One toxic of a proxy.
    pub async fn get_toxic(&self, proxy: &str, toxic: &str) -> Result<ToxicSpec, ProxyError> {
        let proxies = self.inner.proxies.lock().await;
        let p = proxies.get(proxy).ok_or(ProxyError::ProxyNotFound)?;
        p.toxics
            .iter()
            .find(|t| t.spec.name == toxic)
            .map(|t| t.spec.clone())
            .ok_or(ProxyError::ToxicNotFound)
    }

    /// The toxics of a proxy, in the order the API lists them.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<ToxicSpec>, ProxyError> {
        let proxies = self.inner.proxies.lock().await;
        let p = proxies.get(proxy).ok_or(ProxyError::ProxyNotFound)?;
        Ok(p.info().toxics)
    }

    /// Applies a Toxiproxy update body (`attributes` merged, `toxicity`
    /// replaced) to a toxic; open connections keep their per-toxic state.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        update: &serde_json::Value,
    ) -> Result<ToxicSpec, ProxyError> {
        let mut proxies = self.inner.proxies.lock().await;
        let p = proxies.get_mut(proxy).ok_or(ProxyError::ProxyNotFound)?;
        let t = p
            .toxics
            .iter_mut()
            .find(|t| t.spec.name == toxic)
            .ok_or(ProxyError::ToxicNotFound)?;
        let mut spec = t.spec.clone();
        spec.apply_update(update)?;
        t.spec = spec.clone();
        p.publish();
        Ok(spec)
    }

    /// Removes a toxic; open connections continue without it.
    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ProxyError> {
        let mut proxies = self.inner.proxies.lock().await;
        let p = proxies.get_mut(proxy).ok_or(ProxyError::ProxyNotFound)?;
        let before = p.toxics.len();
        p.toxics.retain(|t| t.spec.name != toxic);
        if p.toxics.len() == before {
            return Err(ProxyError::ToxicNotFound);
        }
        p.publish();
        Ok(())
    }

    /// Re-enables every proxy and removes every toxic. A proxy that cannot
    /// listen again stays disabled; the API variant reports that error.
    pub async fn reset(&self) {
        let _ = self.try_reset().await;
    }

    /// [`ProxyServer::reset`], reporting the first proxy that failed to listen.
    pub async fn try_reset(&self) -> Result<(), ProxyError> {
        let mut proxies = self.inner.proxies.lock().await;
        let mut first_err = None;
        for p in proxies.values_mut() {
            p.toxics.clear();
            p.publish();
            if p.task.is_none() {
                if let Err(e) = p.start(&self.inner).await {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Every proxy, by name.
    pub async fn list(&self) -> Vec<ProxyInfo> {
        self.inner
            .proxies
            .lock()
            .await
            .values()
            .map(Proxy::info)
            .collect()
    }

    /// The Prometheus text exposition of the counters.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.encode()
    }

    /// The Toxiproxy-compatible HTTP API, to mount or serve.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// Binds `api` and serves the HTTP API until the future is dropped.
    pub async fn serve(&self, api: SocketAddr) -> Result<(), ProxyError> {
        let listener = TcpListener::bind(api).await?;
        self.serve_on(listener).await
    }

    /// Serves the HTTP API on an already bound listener (handy with port 0).
    pub async fn serve_on(&self, listener: TcpListener) -> Result<(), ProxyError> {
        axum::serve(listener, self.router()).await?;
        Ok(())
    }
}

/// One entry of a `/populate` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Unique name.
    pub name: String,
    /// Listen address (empty = `127.0.0.1:0`).
    pub listen: String,
    /// Upstream address.
    pub upstream: String,
    /// Whether to listen at once.
    pub enabled: bool,
}

/// Toxiproxy treats an empty listen address as "any port"; we keep that but
/// stay on loopback, since a fault proxy has no business on other interfaces.
fn normalize_listen(listen: &str) -> String {
    if listen.is_empty() {
        "127.0.0.1:0".to_string()
    } else {
        listen.to_string()
    }
}

/// A requested port 0 matches whatever port was bound.
fn same_listen(bound: &str, requested: &str) -> bool {
    if bound == requested {
        return true;
    }
    match (bound.rsplit_once(':'), requested.rsplit_once(':')) {
        (Some((bh, _)), Some((rh, "0"))) => bh == rh,
        _ => false,
    }
}

impl Proxy {
    fn info(&self) -> ProxyInfo {
        let mut toxics: Vec<ToxicSpec> = self
            .toxics
            .iter()
            .filter(|t| t.spec.stream == Stream::Upstream)
            .map(|t| t.spec.clone())
            .collect();
        toxics.extend(
            self.toxics
                .iter()
                .filter(|t| t.spec.stream == Stream::Downstream)
                .map(|t| t.spec.clone()),
        );
        ProxyInfo {
            name: self.name.clone(),
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            enabled: self.task.is_some(),
            toxics,
        }
    }

    /// Hands the current toxic list to every pump of every open connection.
    fn publish(&self) {
        self.tx.send_replace(Arc::new(self.toxics.clone()));
    }

    async fn start(&mut self, inner: &Arc<Inner>) -> Result<(), ProxyError> {
        if self.task.is_some() {
            return Ok(());
        }
        let addr = tokio::net::lookup_host(&self.listen)
            .await
            .map_err(|e| ProxyError::listen(&self.listen, &e))?
            .next()
            .ok_or_else(|| ProxyError::Listen {
                addr: self.listen.clone(),
                reason: "no address".into(),
            })?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ProxyError::listen(&addr.to_string(), &e))?;
        let bound = listener.local_addr()?;
        self.listen = bound.to_string();
        let ctx = AcceptCtx {
            name: self.name.clone(),
            upstream: self.upstream.clone(),
            toxics: self.tx.subscribe(),
            inner: inner.clone(),
        };
        self.task = Some(tokio::spawn(accept_loop(listener, ctx)));
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Resolves once the listener and the connection set are dropped,
            // so the port is free when we return.
            let _ = task.await;
        }
    }
}

struct AcceptCtx {
    name: String,
    upstream: String,
    toxics: watch::Receiver<ToxicList>,
    inner: Arc<Inner>,
}

async fn accept_loop(listener: TcpListener, ctx: AcceptCtx) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((client, _)) => {
                    ctx.inner.metrics.connection(&ctx.name, "downstream");
                    conns.spawn(handle_client(client, ctx.name.clone(), ctx.upstream.clone(),
                        ctx.toxics.clone(), ctx.inner.clone()));
                }
                Err(e) => {
                    tracing::warn!(proxy = %ctx.name, error = %e, "accept failed");
                    // Out of descriptors and the like: back off, do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn handle_client(
    client: TcpStream,
    name: String,
    upstream: String,
    toxics: watch::Receiver<ToxicList>,
    inner: Arc<Inner>,
) {
    let server = match TcpStream::connect(&upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(proxy = %name, %upstream, error = %e, "upstream unreachable");
            return;
        }
    };
    inner.metrics.connection(&name, "upstream");
    let _active = ActiveGuard::new(inner.metrics.active(&name));
    pump::run_connection(client, server, toxics, inner.metrics.counters(&name)).await;
}

/// Keeps the active-connections gauge right even when a disabled proxy
/// aborts the connection task mid-flight.
struct ActiveGuard(prometheus_client::metrics::gauge::Gauge);

impl ActiveGuard {
    fn new(g: prometheus_client::metrics::gauge::Gauge) -> Self {
        g.inc();
        ActiveGuard(g)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
