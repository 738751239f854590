//! Serves the Toxiproxy-compatible API until killed, for scripts and client
//! compatibility tests until `firedrill proxy` exists.
//!
//! Usage: proxy_server [--api 127.0.0.1:8474] [--threads 1]

use std::net::SocketAddr;

use firedrill_proxy::ProxyServer;

fn main() {
    // One worker thread by default: a proxy mostly waits, and on a small
    // machine a second worker competes with the client and server it sits
    // between. `--threads N` for more.
    let mut threads = 1usize;
    let mut api = "127.0.0.1:8474".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--api" => match args.next() {
                Some(v) => api = v,
                None => fail("--api needs an address"),
            },
            "--threads" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => threads = n,
                _ => fail("--threads needs a positive number"),
            },
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let addr: SocketAddr = match api.parse() {
        Ok(a) => a,
        Err(e) => fail(&format!("bad --api address {api}: {e}")),
    };
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = rt.unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    eprintln!("firedrill proxy API on http://{addr}");
    if let Err(e) = rt.block_on(ProxyServer::new().serve(addr)) {
        fail(&e.to_string());
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("proxy_server: {msg}");
    std::process::exit(2);
}
