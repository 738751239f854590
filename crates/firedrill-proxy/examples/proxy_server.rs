//! Serves the Toxiproxy-compatible API until killed, for scripts and client
//! compatibility tests until `firedrill proxy` exists.
//!
//! Usage: proxy_server [--api 127.0.0.1:8474]

use std::net::SocketAddr;

use firedrill_proxy::ProxyServer;

#[tokio::main]
async fn main() {
    let mut api = "127.0.0.1:8474".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--api" => match args.next() {
                Some(v) => api = v,
                None => fail("--api needs an address"),
            },
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let addr: SocketAddr = match api.parse() {
        Ok(a) => a,
        Err(e) => fail(&format!("bad --api address {api}: {e}")),
    };
    eprintln!("firedrill proxy API on http://{addr}");
    if let Err(e) = ProxyServer::new().serve(addr).await {
        fail(&e.to_string());
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("proxy_server: {msg}");
    std::process::exit(2);
}
