//! The stores as `firedrill watch` sees them: [`watch_kinds`] lists the
//! kinds this build can watch (each store's `probe` module gives its own),
//! and the `[domain.store]` view shared by stores whose nodes are a
//! `host:port` (Redis, etcd, Kafka).

#[cfg(any(feature = "redis", feature = "etcd", feature = "kafka"))]
pub(crate) use addr::{addr_store, AddrNode};
use firedrill_watch::WatchKind;

/// Every kind of store this build can watch, in registry order (the order
/// the objectives file's "expected ..." message names them): each store's
/// own [`crate::Store::watch`].
pub fn watch_kinds() -> &'static [&'static dyn WatchKind] {
    static KINDS: std::sync::OnceLock<Vec<&'static dyn WatchKind>> = std::sync::OnceLock::new();
    KINDS.get_or_init(|| crate::registry().iter().filter_map(|s| s.watch()).collect())
}

#[cfg(any(feature = "redis", feature = "etcd", feature = "kafka"))]
mod addr {
    use firedrill_spec::Diagnostic;
    use firedrill_watch::config::{valid_addr, Loaded};
    use firedrill_watch::store_view;
    use serde::de::IgnoredAny;
    use serde::Deserialize;
    use toml::Spanned;

    /// A member: its name and the `host:port` it answers on.
    #[derive(Debug, Clone)]
    pub struct AddrNode {
        pub name: String,
        pub addr: String,
    }

    #[derive(Deserialize)]
    struct StoreView {
        #[serde(default)]
        nodes: Vec<NodeView>,
        user: Option<String>,
        /// Read only to say it is PostgreSQL's.
        pgbackrest: Option<PgbackrestKeys>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NodeView {
        name: Spanned<String>,
        /// Read only to say it is PostgreSQL's.
        conninfo: Option<Spanned<String>>,
        addr: Option<Spanned<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PgbackrestKeys {
        stanza: Spanned<String>,
        #[serde(default)]
        #[allow(dead_code)]
        config: Option<IgnoredAny>,
        #[serde(default)]
        #[allow(dead_code)]
        command: Option<IgnoredAny>,
    }

    /// Reads and checks a `host:port` store's nodes and `user`; the nodes
    /// with problems are left out (and reported), the rest kept.
    pub fn addr_store(
        l: &Loaded,
        domain: usize,
        out: &mut Vec<Diagnostic>,
    ) -> Option<(Vec<AddrNode>, Option<String>)> {
        let v = match store_view::<StoreView>(l, domain) {
            Ok(v) => v,
            Err(d) => {
                out.push(d);
                return None;
            }
        };
        if let Some(p) = &v.pgbackrest {
            out.push(l.at(p.stanza.span(), "pgbackrest is for postgres stores"));
        }
        let mut nodes = Vec::new();
        for n in &v.nodes {
            if let Some(c) = &n.conninfo {
                out.push(l.at(
                    c.span(),
                    "conninfo is for postgres nodes: give addr = \"host:port\"",
                ));
            }
            let Some(a) = &n.addr else {
                out.push(l.at(n.name.span(), "node needs addr = \"host:port\""));
                continue;
            };
            if !valid_addr(a.get_ref()) {
                out.push(l.at(a.span(), "addr must be host:port"));
                continue;
            }
            nodes.push(AddrNode {
                name: n.name.get_ref().clone(),
                addr: a.get_ref().clone(),
            });
        }
        Some((nodes, v.user))
    }
}
