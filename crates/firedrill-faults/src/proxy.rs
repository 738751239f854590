//! Network faults through a Toxiproxy-compatible API (firedrill's own proxy,
//! or Toxiproxy itself): a small blocking HTTP/1.1 client, enough for the
//! handful of calls a fault and its heal make. Blocking on purpose: it runs
//! on the blocking pool, and in the heal watchdog, which has no runtime to
//! spare.

use crate::FaultError;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A proxy API endpoint.
#[derive(Debug, Clone)]
pub struct ProxyApi {
    pub addr: SocketAddr,
}

fn err(msg: impl Into<String>) -> FaultError {
    FaultError::NotInEffect(msg.into())
}

impl ProxyApi {
    pub fn new(addr: SocketAddr) -> Self {
        ProxyApi { addr }
    }

    /// One request; returns the status and the parsed JSON body (Null when
    /// empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), FaultError> {
        request_json(
            self.addr,
            method,
            path,
            body,
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .map_err(|e| err(format!("proxy API {}: {e}", self.addr)))
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, FaultError> {
        let (status, v) = self.call(method, path, body)?;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(err(format!("proxy API {method} {path}: {status} {v}")))
        }
    }

    pub fn create_proxy(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> Result<Value, FaultError> {
        self.ok(
            "POST",
            "/proxies",
            Some(&json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true})),
        )
    }

    pub fn get_proxy(&self, name: &str) -> Result<Value, FaultError> {
        self.ok("GET", &format!("/proxies/{name}"), None)
    }

    pub fn add_toxic(&self, proxy: &str, toxic: &Value) -> Result<Value, FaultError> {
        self.ok("POST", &format!("/proxies/{proxy}/toxics"), Some(toxic))
    }

    /// The names of the toxics on `proxy` now.
    pub fn toxic_names(&self, proxy: &str) -> Result<Vec<String>, FaultError> {
        let v = self.ok("GET", &format!("/proxies/{proxy}/toxics"), None)?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect())
    }

    /// Removes a toxic; a toxic that is already gone counts as removed, so
    /// heals are idempotent.
    pub fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), FaultError> {
        let (status, v) = self.call("DELETE", &format!("/proxies/{proxy}/toxics/{toxic}"), None)?;
        if (200..300).contains(&status) || status == 404 {
            Ok(())
        } else {
            Err(err(format!("proxy API DELETE toxic {toxic}: {status} {v}")))
        }
    }
}

/// One blocking JSON request on a fresh connection: the status and the
/// body as JSON (a string when it is not JSON, Null when empty). Shared by
/// the proxy API client and the labs' readiness checks, none of which has a
/// runtime to spare.
pub fn request_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    connect: Duration,
    io: Duration,
) -> Result<(u16, Value), String> {
    let mut s = TcpStream::connect_timeout(&addr, connect).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(io)).ok();
    s.set_write_timeout(Some(io)).ok();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad response {head:?}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let v = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or(Value::String(body))
    };
    Ok((status, v))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// A network fault as toxics on one or more proxies: what to add, so the
/// heal knows exactly what to remove.
/// `tag` makes the names unique per fault step, so two faults on one link
/// never collide and each heal removes only its own toxics.
pub fn toxics_for(kind: &str, attrs: &Value, tag: &str) -> Vec<Value> {
    let both = |ty: &str, a: &Value| {
        ["downstream", "upstream"]
            .iter()
            .map(|stream| {
                json!({"name": format!("firedrill_{tag}_{ty}_{stream}"), "type": ty, "stream": stream, "toxicity": 1.0, "attributes": a})
            })
            .collect::<Vec<_>>()
    };
    match kind {
        // A partition: every byte is dropped and connections hang, as on a
        // dead network; they are not reset.
        "partition" => both("timeout", &json!({"timeout": 0})),
        "latency" => both(
            "latency",
            &json!({"latency": attrs["latency"].as_u64().unwrap_or(0), "jitter": attrs["jitter"].as_u64().unwrap_or(0)}),
        ),
        "bandwidth" => both(
            "bandwidth",
            &json!({"rate": attrs["rate"].as_u64().unwrap_or(0)}),
        ),
        "reset" => both("reset_peer", &json!({"timeout": 0})),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }

    #[test]
    fn partition_is_a_blackhole_both_ways() {
        let t = toxics_for("partition", &Value::Null, "s1");
        assert_eq!(t.len(), 2);
        assert!(t
            .iter()
            .all(|x| x["type"] == "timeout" && x["attributes"]["timeout"] == 0));
    }
}
