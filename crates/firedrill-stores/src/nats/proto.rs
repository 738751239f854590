//! A minimal NATS client over one tokio `TcpStream`: the core protocol
//! (INFO, CONNECT, PING/PONG, SUB, PUB/HPUB, MSG/HMSG, -ERR) and nothing
//! else: no TLS, no auth, no reconnect, no buffering across connections.
//!
//! Why not async-nats: it reconnects by itself and buffers publishes made
//! while disconnected, flushing them after the reconnect, so a client can
//! never tell "not sent" from "sent, no answer". A ledger needs exactly
//! that boundary (etcd's adapter keeps it with hyper's low-level conn for
//! the same reason). Here a failed connect or a failed write of the whole
//! frame means the server has no complete message: nothing was published.
//!
//! Frames are parsed from a buffer the connection owns, and socket reads
//! go into it with `read_buf`, so every future here is cancel-safe: a
//! deadline that fires mid-frame loses no bytes.

use serde_json::Value;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum NatsError {
    /// Nothing reached the server: no connection, or the frame was not
    /// handed to the kernel in full (the server discards a partial frame).
    NotSent(String),
    /// The request may have reached the server: the deadline passed or the
    /// connection broke after the frame was written.
    Lost(String),
}

impl std::fmt::Display for NatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsError::NotSent(m) => write!(f, "not sent: {m}"),
            NatsError::Lost(m) => write!(f, "no answer: {m}"),
        }
    }
}

/// A message delivered to one of our subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub subject: String,
    pub sid: u64,
    pub reply: Option<String>,
    /// The status of a header block's first line (`NATS/1.0 503`), if any.
    pub status: Option<u16>,
    /// The status line's description (`No Messages`, `Request Timeout`).
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Msg {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Info(Value),
    Msg(Msg),
    Ping,
    Pong,
    Ok,
    Err(String),
}

/// Parses one frame from the front of `buf`: `Ok(None)` when more bytes
/// are needed, else the frame and how many bytes it used.
fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err("protocol line longer than 64 KiB".into());
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..eol]).map_err(|_| "protocol line is not UTF-8")?;
    let after = eol + 2;
    let (op, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let rest = rest.trim();
    match op.to_ascii_uppercase().as_str() {
        "PING" => Ok(Some((Frame::Ping, after))),
        "PONG" => Ok(Some((Frame::Pong, after))),
        "+OK" => Ok(Some((Frame::Ok, after))),
        "-ERR" => Ok(Some((
            Frame::Err(rest.trim_matches('\'').to_string()),
            after,
        ))),
        "INFO" => {
            let v = serde_json::from_str(rest).map_err(|e| format!("bad INFO: {e}"))?;
            Ok(Some((Frame::Info(v), after)))
        }
        "MSG" | "HMSG" => {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let with_hdr = op.eq_ignore_ascii_case("HMSG");
            let nums = if with_hdr { 2 } else { 1 };
            if f.len() != 2 + nums && f.len() != 3 + nums {
                return Err(format!("bad {op} line: {line}"));
            }
            let num = |s: &str| {
                s.parse::<usize>()
                    .map_err(|_| format!("bad {op} line: {line}"))
            };
            let total = num(f[f.len() - 1])?;
            let hdr_len = if with_hdr { num(f[f.len() - 2])? } else { 0 };
            if hdr_len > total {
                return Err(format!("bad {op} line: {line}"));
            }
            let end = after + total + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(format!("{op} payload not followed by CRLF"));
            }
            let sid = f[1]
                .parse::<u64>()
                .map_err(|_| format!("bad sid in {line}"))?;
            let reply = (f.len() == 3 + nums).then(|| f[2].to_string());
            let (status, status_text, headers) = if with_hdr {
                parse_headers(&buf[after..after + hdr_len])?
            } else {
                (None, String::new(), Vec::new())
            };
            let msg = Msg {
                subject: f[0].to_string(),
                sid,
                reply,
                status,
                status_text,
                headers,
                payload: buf[after + hdr_len..after + total].to_vec(),
            };
            Ok(Some((Frame::Msg(msg), end)))
        }
        _ => Err(format!("unknown protocol operation: {line}")),
    }
}

type Headers = (Option<u16>, String, Vec<(String, String)>);

/// `NATS/1.0[ code[ description]]\r\nKey: value\r\n…\r\n\r\n`.
fn parse_headers(block: &[u8]) -> Result<Headers, String> {
    let text = std::str::from_utf8(block).map_err(|_| "header block is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let rest = first
        .strip_prefix("NATS/1.0")
        .ok_or_else(|| format!("bad header version line: {first}"))?
        .trim();
    let (code, desc) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = code.parse::<u16>().ok();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((status, desc.trim().to_string(), headers))
}

/// A unique-enough token for inbox names (no crate for randomness).
pub fn token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t ^ (std::process::id() as u64) << 32 ^ N.fetch_add(1, Ordering::Relaxed) << 48;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    format!("{x:016x}{:x}", N.load(Ordering::Relaxed))
}

/// One connection to one server, with one inbox subscription (sid 1) for
/// replies: `_INBOX.<token>.<n>`.
pub struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: Vec<u8>,
    /// The server's INFO (server_name, version, max_payload, headers).
    pub info: Value,
    inbox: String,
    next_reply: u64,
    next_sid: u64,
    broken: bool,
}

pub const INBOX_SID: u64 = 1;

impl Conn {
    /// Connects to `host:port`, reads INFO, sends CONNECT (headers and
    /// no_responders on, so a request nobody listens to is answered at
    /// once with a 503 status), subscribes the inbox and waits for the PONG
    /// that confirms the server processed all of it.
    pub async fn connect(addr: &str, deadline: Instant) -> Result<Conn, String> {
        let addr = addr
            .strip_prefix("nats://")
            .unwrap_or(addr)
            .trim_end_matches('/');
        let tcp = timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: connect timed out"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (rd, wr) = tcp.into_split();
        let mut c = Conn {
            rd,
            wr,
            buf: Vec::with_capacity(8192),
            info: Value::Null,
            inbox: format!("_INBOX.{}", token()),
            next_reply: 0,
            next_sid: INBOX_SID + 1,
            broken: false,
        };
        let first = timeout_at(deadline, c.frame())
            .await
            .map_err(|_| format!("{addr}: no INFO before the deadline"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        match first {
            Frame::Info(v) => c.info = v,
            other => return Err(format!("{addr}: expected INFO, got {other:?}")),
        }
        if c.info["headers"].as_bool() != Some(true) {
            return Err(format!("{addr}: server does not support headers"));
        }
        let connect = serde_json::json!({
            "verbose": false, "pedantic": false, "tls_required": false,
            "name": "firedrill", "lang": "rust", "version": "0.1.0",
            "protocol": 1, "echo": false, "headers": true, "no_responders": true,
        });
        let hello = format!(
            "CONNECT {connect}\r\nSUB {}.* {INBOX_SID}\r\nPING\r\n",
            c.inbox
        );
        timeout_at(deadline, c.wr.write_all(hello.as_bytes()))
            .await
            .map_err(|_| format!("{addr}: CONNECT timed out"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        loop {
            match timeout_at(deadline, c.frame()).await {
                Err(_) => return Err(format!("{addr}: no PONG before the deadline")),
                Ok(Err(e)) => return Err(format!("{addr}: {e}")),
                Ok(Ok(Frame::Pong)) => return Ok(c),
                Ok(Ok(Frame::Err(e))) => return Err(format!("{addr}: -ERR {e}")),
                Ok(Ok(_)) => {}
            }
        }
    }

    pub fn server_name(&self) -> &str {
        self.info["server_name"].as_str().unwrap_or_default()
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Reads the next frame, answering the server's PINGs on the way.
    async fn frame(&mut self) -> Result<Frame, String> {
        loop {
            match parse(&self.buf) {
                Ok(Some((f, used))) => {
                    self.buf.drain(..used);
                    if f == Frame::Ping {
                        // A PONG is tiny: a failed write shows up as EOF next.
                        let _ = self.wr.write_all(b"PONG\r\n").await;
                        continue;
                    }
                    return Ok(f);
                }
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
            match self.rd.read_buf(&mut self.buf).await {
                Ok(0) => {
                    self.broken = true;
                    return Err("connection closed by the server".into());
                }
                Ok(_) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e.to_string());
                }
            }
        }
    }

    /// A fresh reply subject under our inbox.
    pub fn reply_subject(&mut self) -> String {
        self.next_reply += 1;
        format!("{}.{}", self.inbox, self.next_reply)
    }

    /// Writes one PUB/HPUB frame. `Err(NotSent)` when the frame did not go
    /// out whole (the connection is then unusable).
    pub async fn publish(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: &[(&str, &str)],
        payload: &[u8],
        deadline: Instant,
    ) -> Result<(), NatsError> {
        let mut frame = Vec::with_capacity(payload.len() + 128);
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        if headers.is_empty() {
            frame.extend_from_slice(
                format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes(),
            );
        } else {
            let mut h = String::from("NATS/1.0\r\n");
            for (k, v) in headers {
                h.push_str(&format!("{k}: {v}\r\n"));
            }
            h.push_str("\r\n");
            frame.extend_from_slice(
                format!(
                    "HPUB {subject}{reply} {} {}\r\n",
                    h.len(),
                    h.len() + payload.len()
                )
                .as_bytes(),
            );
            frame.extend_from_slice(h.as_bytes());
        }
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        // Cancelling write_all midway would leave half a frame on the
        // wire, so a deadline here breaks the connection: the server then
        // never sees the frame complete.
        match timeout_at(deadline, self.wr.write_all(&frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(NatsError::NotSent(e.to_string()))
            }
            Err(_) => {
                self.broken = true;
                Err(NatsError::NotSent("write timed out".into()))
            }
        }
    }

    /// The next message on any of our subscriptions, before `deadline`.
    pub async fn next_msg(&mut self, deadline: Instant) -> Result<Msg, NatsError> {
        loop {
            match timeout_at(deadline, self.frame()).await {
                Err(_) => return Err(NatsError::Lost("deadline passed".into())),
                Ok(Err(e)) => return Err(NatsError::Lost(e)),
                Ok(Ok(Frame::Msg(m))) => return Ok(m),
                Ok(Ok(Frame::Err(e))) => {
                    // Every -ERR but permission violations closes the connection.
                    if !e.to_ascii_lowercase().contains("permissions violation") {
                        self.broken = true;
                        return Err(NatsError::Lost(format!("-ERR {e}")));
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Publishes with a fresh reply subject and waits for the message sent
    /// to it; replies to earlier, abandoned requests are skipped.
    pub async fn request(
        &mut self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Msg, NatsError> {
        let reply = self.reply_subject();
        self.publish(subject, Some(&reply), headers, payload, deadline)
            .await?;
        loop {
            let m = self.next_msg(deadline).await?;
            if m.sid == INBOX_SID && m.subject == reply {
                return Ok(m);
            }
        }
    }

    /// A JSON request to the JetStream API (`$JS.API.…`), answered JSON.
    /// A 503 status (no responders: JetStream or the stream's leader is
    /// not there) comes back as `Err(NotSent)`-like text in `Ok(Err)`.
    pub async fn js_api(
        &mut self,
        subject: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<Result<Value, String>, NatsError> {
        let payload = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let m = self.request(subject, &[], &payload, deadline).await?;
        if let Some(code) = m.status {
            return Ok(Err(format!("status {code} {}", m.status_text)));
        }
        match m.json() {
            Some(v) => match v.get("error") {
                Some(e) => Ok(Err(api_error_text(e))),
                None => Ok(Ok(v)),
            },
            None => Ok(Err(format!(
                "not JSON: {}",
                String::from_utf8_lossy(&m.payload)
            ))),
        }
    }

    /// Subscribes `subject` with a new sid.
    pub async fn subscribe(&mut self, subject: &str, deadline: Instant) -> Result<u64, NatsError> {
        let sid = self.next_sid;
        self.next_sid += 1;
        let line = format!("SUB {subject} {sid}\r\n");
        match timeout_at(deadline, self.wr.write_all(line.as_bytes())).await {
            Ok(Ok(())) => Ok(sid),
            Ok(Err(e)) => {
                self.broken = true;
                Err(NatsError::NotSent(e.to_string()))
            }
            Err(_) => {
                self.broken = true;
                Err(NatsError::NotSent("write timed out".into()))
            }
        }
    }
}

/// `{"code":404,"err_code":10059,"description":"stream not found"}` →
/// `stream not found (404/10059)`.
pub fn api_error_text(e: &Value) -> String {
    format!(
        "{} ({}/{})",
        e["description"].as_str().unwrap_or("error"),
        e["code"].as_u64().unwrap_or(0),
        e["err_code"].as_u64().unwrap_or(0)
    )
}

/// The JetStream error code (`err_code`) of an API error text, if any.
pub fn err_code(text: &str) -> Option<u64> {
    text.rsplit_once('/')?.1.strip_suffix(')')?.parse().ok()
}

impl From<io::Error> for NatsError {
    fn from(e: io::Error) -> Self {
        NatsError::Lost(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames() {
        assert_eq!(parse(b"PING\r\n").unwrap(), Some((Frame::Ping, 6)));
        assert_eq!(parse(b"PIN").unwrap(), None);
        let (f, n) = parse(b"MSG a.b 1 _INBOX.x.1 5\r\nhello\r\nPONG\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(n, 31);
        let Frame::Msg(m) = f else { panic!() };
        assert_eq!((m.subject.as_str(), m.sid), ("a.b", 1));
        assert_eq!(m.reply.as_deref(), Some("_INBOX.x.1"));
        assert_eq!(m.payload, b"hello");
        assert_eq!(parse(b"MSG a.b 1 5\r\nhel").unwrap(), None);
        let raw = b"HMSG _INBOX.x.2 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n";
        let (f, n) = parse(raw).unwrap().unwrap();
        assert_eq!(n, raw.len());
        let Frame::Msg(m) = f else { panic!() };
        assert_eq!(m.status, Some(503));
        assert!(m.payload.is_empty() && m.reply.is_none());
        let h = b"NATS/1.0\r\nNats-Msg-Id: 7\r\n\r\n";
        let raw = [
            format!("HMSG fd.r.7 2 {} {}\r\n", h.len(), h.len() + 2).as_bytes(),
            h,
            b"xy\r\n",
        ]
        .concat();
        let Frame::Msg(m) = parse(&raw).unwrap().unwrap().0 else {
            panic!()
        };
        assert_eq!((m.status, m.header("nats-msg-id")), (None, Some("7")));
        assert_eq!(m.payload, b"xy");
        let Frame::Info(v) = parse(b"INFO {\"server_name\":\"n1\"}\r\n")
            .unwrap()
            .unwrap()
            .0
        else {
            panic!()
        };
        assert_eq!(v["server_name"], "n1");
        assert_eq!(
            parse(b"-ERR 'Stale Connection'\r\n").unwrap().unwrap().0,
            Frame::Err("Stale Connection".into())
        );
        assert!(parse(b"BOGUS\r\n").is_err());
    }

    #[test]
    fn error_codes() {
        let e = serde_json::json!({"code":404,"err_code":10059,"description":"stream not found"});
        let t = api_error_text(&e);
        assert_eq!(t, "stream not found (404/10059)");
        assert_eq!(err_code(&t), Some(10059));
        assert_eq!(err_code("status 503"), None);
    }
}
