//! A minimal HTTP/1.1 JSON client over one persistent connection (hyper's
//! low-level `client::conn`), for stores whose API is HTTP: etcd's gRPC
//! gateway and Patroni's REST API. One connection per workload client and
//! no pool, as with PostgreSQL: reconnects after a failover are part of
//! what a drill measures. It also keeps the boundary a ledger needs exact:
//! a failure to connect means nothing was sent.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The request was never sent (no connection could be made).
    NotSent(String),
    /// The request may have reached the server: the connection failed or
    /// the deadline passed after sending.
    Lost(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::NotSent(m) => write!(f, "not sent: {m}"),
            HttpError::Lost(m) => write!(f, "no answer: {m}"),
        }
    }
}

/// `http://host:port[/]` or `host:port` → `host:port`.
pub fn authority(endpoint: &str) -> Result<String, String> {
    let rest = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    if endpoint.starts_with("https://") {
        return Err(format!(
            "{endpoint}: https is not supported (lab endpoints are plain http on loopback)"
        ));
    }
    match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains('/') && p.parse::<u16>().is_ok() => {
            Ok(rest.to_string())
        }
        _ => Err(format!("{endpoint}: expected http://HOST:PORT")),
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl HttpConn {
    /// Connects within `limit`. An error here means no request was sent.
    pub async fn connect(authority: &str, limit: Duration) -> Result<HttpConn, String> {
        let stream = match timeout(limit, TcpStream::connect(authority)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("connect {authority}: {e}")),
            Err(_) => return Err(format!("connect {authority}: timed out after {limit:?}")),
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake {authority}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpConn {
            sender,
            authority: authority.to_string(),
        })
    }

    /// The server closed the connection (or it failed): reconnect.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and reads the whole answer as JSON (`Null` for an
    /// empty or non-JSON body). Returns the status code and the body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<(u16, serde_json::Value), HttpError> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))
            .map_err(|e| HttpError::NotSent(e.to_string()))?;
        if timeout_at(deadline, self.sender.ready()).await.is_err() {
            return Err(HttpError::NotSent("connection busy".into()));
        }
        let fut = async {
            let resp = self
                .sender
                .send_request(req)
                .await
                .map_err(|e| HttpError::Lost(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| HttpError::Lost(e.to_string()))?
                .to_bytes();
            let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            Ok((status, v))
        };
        match timeout_at(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Lost("timed out".into())),
        }
    }
}

/// One request on a fresh connection, for firedrill's own control path.
pub async fn request_once(
    authority: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    limit: Duration,
) -> Result<(u16, serde_json::Value), HttpError> {
    let deadline = Instant::now() + limit;
    let mut c = HttpConn::connect(authority, limit)
        .await
        .map_err(HttpError::NotSent)?;
    c.request(method, path, body, deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            authority("http://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379"
        );
        assert_eq!(authority("127.0.0.1:2379/").unwrap(), "127.0.0.1:2379");
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://x").is_err());
        assert!(authority("http://:1").is_err());
    }
}
