//! The fuzzing entry of the HTTP API, shared by `fuzz/fuzz_targets/proxy_api.rs`
//! and the replay test, so a crash the fuzzer saved replays on stable CI.
//! Requests go straight into the router, in-process: no API socket.

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::Value;
use tower::ServiceExt;

use crate::ProxyServer;

/// Runs every request of `data` against a fresh [`ProxyServer`] and checks
/// each answer; `Err` says which property broke. The input is a sequence
/// of requests separated by lines `---`; each is `METHOD PATH` on its first
/// line, then the body.
///
/// Only addresses that cannot reach beyond this machine are bound: a
/// `listen` that is a socket address becomes loopback port 0 (a fuzzed
/// port could be another test's), any other `listen` becomes a string no
/// resolver is asked about. No client ever connects, so no upstream is
/// dialled.
#[doc(hidden)]
pub fn fuzz_api(data: &[u8]) -> Result<(), String> {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
    }
    RT.with(|rt| rt.block_on(run(data)))
}

async fn run(data: &[u8]) -> Result<(), String> {
    let server = ProxyServer::new();
    let text = String::from_utf8_lossy(data);
    let mut result = Ok(());
    for req in text.split("\n---\n").take(32) {
        let (head, body) = req.split_once('\n').unwrap_or((req, ""));
        let (method, path) = head.split_once(' ').unwrap_or((head, "/"));
        if let Err(e) = one(&server, method, path, body).await {
            result = Err(e);
            break;
        }
    }
    // Stop every listener this input opened before the next one runs.
    for p in server.list().await {
        let _ = server.delete(&p.name).await;
    }
    result
}

async fn one(server: &ProxyServer, method: &str, path: &str, body: &str) -> Result<(), String> {
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Ok(());
    };
    let body = confine(body);
    let Ok(req) = Request::builder()
        .method(method.clone())
        .uri(path)
        .body(Body::from(body))
    else {
        return Ok(()); // not a request line any client could send
    };
    let resp = server
        .router()
        .oneshot(req)
        .await
        .map_err(|e| format!("router failed: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .map_err(|e| format!("body: {e}"))?;
    if status >= 400 && !bytes.is_empty() {
        // Errors our handlers make carry Toxiproxy's {"error", "status"}.
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let s = v.get("status").and_then(Value::as_u64);
            let e = v.get("error").and_then(Value::as_str);
            if s != Some(u64::from(status)) || e.is_none_or(str::is_empty) {
                return Err(format!("{method} {path}: {status} with body {v}"));
            }
        }
    }
    Ok(())
}

/// Rewrites every `listen` in a JSON body so that binding it stays on
/// loopback with a port the kernel picks.
fn confine(body: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    confine_value(&mut v);
    v.to_string()
}

fn confine_value(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(confine_value),
        Value::Object(o) => {
            if let Some(Value::String(l)) = o.get_mut("listen") {
                if !l.is_empty() {
                    *l = match l.parse::<std::net::SocketAddr>() {
                        Ok(std::net::SocketAddr::V6(_)) => "[::1]:0".into(),
                        Ok(_) => "127.0.0.1:0".into(),
                        Err(_) => "not-an-address".into(),
                    };
                }
            }
        }
        _ => {}
    }
}
