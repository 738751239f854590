//! A minimal HTTP/1.1 client for one JSON POST (etcd's gRPC gateway):
//! `Connection: close`, Content-Length or chunked bodies. Small enough to
//! own, and it keeps a full HTTP client stack out of the watcher.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_RESPONSE: usize = 1 << 20;

/// POSTs `body` to `http://addr/path`; returns the status and the body.
pub async fn post_json(
    addr: &str,
    path: &str,
    body: &str,
    limit: Duration,
) -> Result<(u16, String), String> {
    tokio::time::timeout(limit, async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_RESPONSE {
                return Err("response too large".to_string());
            }
        }
        parse_response(&buf)
    })
    .await
    .map_err(|_| format!("timed out after {limit:?}"))?
}

/// Splits a complete HTTP/1.1 response into status and decoded body.
pub fn parse_response(buf: &[u8]) -> Result<(u16, String), String> {
    let text_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&buf[..text_end]).map_err(|_| "headers not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let raw = &buf[text_end + 4..];
    let body = if chunked {
        dechunk(raw)?
    } else if let Some(n) = length {
        raw.get(..n)
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        raw.to_vec()
    };
    String::from_utf8(body)
        .map(|b| (status, b))
        .map_err(|_| "body not UTF-8".to_string())
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_s = std::str::from_utf8(&raw[..eol]).map_err(|_| "bad chunk size")?;
        let size_s = size_s.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_s, 16).map_err(|_| format!("bad chunk size {size_s:?}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).ok_or("truncated chunk")?);
        raw = raw.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(r).unwrap(), (200, "{}".into()));
    }

    #[test]
    fn chunked_body() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(r).unwrap(), (200, "{\"a\":1}".into()));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_response(b"nonsense").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
