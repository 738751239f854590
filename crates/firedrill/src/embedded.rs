//! The fault proxy embedded in `firedrill drill`, for explicit endpoints:
//! firedrill's own clients reach each node through it, so a drill against
//! the user's store can partition, slow or reset the clients' path without
//! touching anything the store runs.

use firedrill_engine::{NodeLink, NodeSpec};
use firedrill_proxy::ProxyServer;
use firedrill_spec::LinkScope;
use std::net::SocketAddr;

/// A proxy server on its own runtime and thread, so the bytes it forwards
/// never wait behind the drill's workload. Dropping it closes every proxy.
pub struct EmbeddedProxy {
    rt: Option<tokio::runtime::Runtime>,
    server: ProxyServer,
    api: SocketAddr,
}

impl EmbeddedProxy {
    pub fn start() -> std::io::Result<EmbeddedProxy> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("firedrill-proxy")
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let api = std_listener.local_addr()?;
        let server = ProxyServer::new();
        let s2 = server.clone();
        rt.spawn(async move {
            let Ok(l) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            let _ = s2.serve_on(l).await;
        });
        Ok(EmbeddedProxy {
            rt: Some(rt),
            server,
            api,
        })
    }

    /// Puts a clients' proxy in front of every node: the workload connects
    /// to the proxy, and network faults with `link = "clients"` act on it.
    pub async fn front(
        &self,
        store: &dyn firedrill_stores::Store,
        nodes: &mut [NodeSpec],
    ) -> Result<(), String> {
        let Some(rt) = &self.rt else {
            return Err("the embedded proxy has stopped".into());
        };
        for n in nodes.iter_mut() {
            let name = format!("{}-clients", n.name);
            let server = self.server.clone();
            // The upstream is known before the proxy's port: ask with port 0
            // first, then rewrite the address once the proxy listens.
            let (upstream, _) = store.endpoint_redirect(&n.name, &n.conninfo, "127.0.0.1", 0)?;
            let (proxy_name, up) = (name.clone(), upstream.clone());
            let info = rt
                .spawn(async move { server.create(&proxy_name, "127.0.0.1:0", &up, true).await })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{}: {e}", n.name))?;
            let listen: SocketAddr = info
                .listen
                .parse()
                .map_err(|e| format!("proxy listen address {}: {e}", info.listen))?;
            let (_, client) = store.endpoint_redirect(
                &n.name,
                &n.conninfo,
                &listen.ip().to_string(),
                listen.port(),
            )?;
            n.client_conninfo = Some(client);
            n.links.push(NodeLink {
                kind: LinkScope::Clients,
                proxy: name,
                peer: None,
                api: self.api,
            });
        }
        Ok(())
    }
}

impl Drop for EmbeddedProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
