//! Shared helpers: an echo upstream, a server with its API, a tiny HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use firedrill_proxy::ProxyServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that echoes every byte and half-closes after the client does.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A server with one proxy `p` in front of an echo upstream.
pub async fn proxied_echo() -> (ProxyServer, SocketAddr) {
    let up = echo_server().await;
    let server = ProxyServer::new();
    let info = server
        .create("p", "127.0.0.1:0", &up.to_string(), true)
        .await
        .unwrap();
    (server, info.listen.parse().unwrap())
}

/// A server whose API is served on a free port.
pub async fn api_server() -> (ProxyServer, SocketAddr) {
    let server = ProxyServer::new();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let s = server.clone();
    tokio::spawn(async move { s.serve_on(l).await });
    (server, addr)
}

/// One HTTP/1.1 request; returns the status and the body parsed as JSON
/// (`Value::Null` when empty, a string when not JSON).
pub async fn http(api: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(api).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string()))
    };
    (status, v)
}

/// Writes `msg` and reads back exactly as many bytes.
pub async fn ping(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).await.unwrap();
    buf
}

pub async fn within<T>(ms: u64, f: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(Duration::from_millis(ms), f)
        .await
        .ok()
}
