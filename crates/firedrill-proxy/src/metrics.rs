//! Prometheus counters: bytes and connections per proxy and direction, so a
//! drill can see whether traffic really went through the link it faulted.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::pump::ConnCounters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirLabels {
    proxy: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyLabels {
    proxy: String,
}

pub(crate) struct Metrics {
    registry: Registry,
    bytes: Family<DirLabels, Counter>,
    connections: Family<DirLabels, Counter>,
    active: Family<ProxyLabels, Gauge>,
}

fn dir(proxy: &str, direction: &str) -> DirLabels {
    DirLabels {
        proxy: proxy.to_string(),
        direction: direction.to_string(),
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("firedrill_proxy");
        let bytes = Family::<DirLabels, Counter>::default();
        let connections = Family::<DirLabels, Counter>::default();
        let active = Family::<ProxyLabels, Gauge>::default();
        registry.register(
            "bytes",
            "Bytes delivered, by proxy and direction (upstream = client to server)",
            bytes.clone(),
        );
        registry.register(
            "connections",
            "Connections opened: downstream = accepted from clients, upstream = dialled to the server",
            connections.clone(),
        );
        registry.register(
            "active_connections",
            "Connections currently open, by proxy",
            active.clone(),
        );
        Metrics {
            registry,
            bytes,
            connections,
            active,
        }
    }

    pub(crate) fn counters(&self, proxy: &str) -> ConnCounters {
        // One statement per lookup: `get_or_create` returns a read guard, and
        // a second lookup that must insert (a write lock) while the first
        // guard lives in the same expression deadlocks the thread.
        let up = self.bytes.get_or_create(&dir(proxy, "upstream")).clone();
        let down = self.bytes.get_or_create(&dir(proxy, "downstream")).clone();
        ConnCounters { up, down }
    }

    pub(crate) fn connection(&self, proxy: &str, direction: &str) {
        self.connections.get_or_create(&dir(proxy, direction)).inc();
    }

    pub(crate) fn active(&self, proxy: &str) -> Gauge {
        self.active
            .get_or_create(&ProxyLabels {
                proxy: proxy.to_string(),
            })
            .clone()
    }

    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
