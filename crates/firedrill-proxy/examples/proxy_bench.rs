//! Load generator for `scripts/bench-proxy.sh`: blocking std sockets, so the
//! client adds as little as possible to what it measures.
//!
//!   proxy_bench serve --sink ADDR --echo ADDR
//!       upstreams: `sink` reads the byte count the client announces
//!       (8 bytes, little-endian), then that many bytes, then answers the
//!       count; `echo` echoes. The count comes first because Toxiproxy
//!       turns a client's half-close into a full close: a sink that waited
//!       for EOF could never answer through it.
//!   proxy_bench client --label NAME --sink ADDR --echo ADDR
//!                      [--mb 256] [--runs 5] [--pings 5000]
//!       bulk: send MB megabytes through, MB/s until the sink's answer;
//!       echo: sequential 64-byte round trips, p50/p99 in µs;
//!       prints the medians over the runs as one line.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Instant;

const BUF: usize = 128 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| -> Option<String> {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let need = |k: &str| get(k).unwrap_or_else(|| fail(&format!("missing {k}")));
    let num = |k: &str, d: usize| -> usize {
        get(k).map_or(d, |v| {
            v.parse().unwrap_or_else(|_| fail(&format!("bad {k}")))
        })
    };
    let res = match args.first().map(String::as_str) {
        Some("serve") => serve(&need("--sink"), &need("--echo")),
        Some("client") => client(
            &need("--label"),
            &need("--sink"),
            &need("--echo"),
            num("--mb", 256),
            num("--runs", 5),
            num("--pings", 5000),
        ),
        _ => fail("usage: proxy_bench serve|client ..."),
    };
    if let Err(e) = res {
        fail(&e.to_string());
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("proxy_bench: {msg}");
    std::process::exit(2);
}

fn serve(sink: &str, echo: &str) -> std::io::Result<()> {
    let sink = TcpListener::bind(sink)?;
    let echo = TcpListener::bind(echo)?;
    let t = std::thread::spawn(move || {
        for s in sink.incoming().flatten() {
            std::thread::spawn(move || sink_conn(s));
        }
    });
    for s in echo.incoming().flatten() {
        std::thread::spawn(move || echo_conn(s));
    }
    let _ = t.join();
    Ok(())
}

fn sink_conn(mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUF];
    let mut want = [0u8; 8];
    s.read_exact(&mut want)?;
    let want = u64::from_le_bytes(want);
    let mut total: u64 = 0;
    while total < want {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    s.write_all(&total.to_le_bytes())?;
    s.shutdown(Shutdown::Write)
}

fn echo_conn(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; BUF];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])?;
    }
}

fn bulk(sink: &str, mb: usize) -> std::io::Result<f64> {
    let mut s = TcpStream::connect(sink)?;
    let buf = vec![0x5au8; BUF];
    let total = (mb * 1024 * 1024) as u64;
    let start = Instant::now();
    s.write_all(&total.to_le_bytes())?;
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(BUF as u64) as usize;
        s.write_all(&buf[..n])?;
        sent += n as u64;
    }
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack)?;
    let secs = start.elapsed().as_secs_f64();
    if u64::from_le_bytes(ack) != total {
        return Err(std::io::Error::other("sink saw a different byte count"));
    }
    Ok(total as f64 / 1e6 / secs)
}

fn pings(echo: &str, count: usize) -> std::io::Result<(f64, f64)> {
    let mut s = TcpStream::connect(echo)?;
    s.set_nodelay(true)?;
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    // Warm-up: first round trips pay for connection setup and page faults.
    for _ in 0..100 {
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
    }
    let mut us = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(f64::total_cmp);
    Ok((us[us.len() / 2], us[us.len() * 99 / 100]))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn client(
    label: &str,
    sink: &str,
    echo: &str,
    mb: usize,
    runs: usize,
    count: usize,
) -> std::io::Result<()> {
    let (mut tput, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        tput.push(bulk(sink, mb)?);
        let (a, b) = pings(echo, count)?;
        p50.push(a);
        p99.push(b);
    }
    println!(
        "{label} {:.0} {:.1} {:.1}",
        median(tput),
        median(p50),
        median(p99)
    );
    Ok(())
}
