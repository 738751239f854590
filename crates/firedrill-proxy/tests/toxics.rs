//! Each toxic's effect, measured on real loopback sockets through an echo
//! upstream; plus the byte-exactness guarantees the drills rely on.

mod common;

use std::time::{Duration, Instant};

use common::{echo_server, ping, proxied_echo, within};
use firedrill_proxy::{ProxyServer, Stream, ToxicKind, ToxicSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn latency(ms: u64) -> ToxicSpec {
    ToxicSpec::new(ToxicKind::Latency {
        latency: ms,
        jitter: 0,
    })
}

#[tokio::test]
async fn latency_delays_each_round_trip() {
    let (s, addr) = proxied_echo().await;
    s.add_toxic("p", latency(60)).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    assert_eq!(ping(&mut c, b"abc").await, b"abc");
    let rtt = t.elapsed();
    assert!(rtt >= Duration::from_millis(60), "{rtt:?}");
    assert!(rtt < Duration::from_millis(200), "{rtt:?}");
}

#[tokio::test]
async fn latency_counts_from_arrival_and_does_not_add_up() {
    let (s, addr) = proxied_echo().await;
    s.add_toxic("p", latency(100)).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = c.split();
    let start = Instant::now();
    let writer = async {
        for i in 0..10u8 {
            w.write_all(&[i; 100]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let reader = async {
        let mut got = vec![0u8; 1000];
        r.read_exact(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(writer, reader);
    let total = start.elapsed();
    let want: Vec<u8> = (0..10u8).flat_map(|i| [i; 100]).collect();
    assert_eq!(got, want);
    // Last chunk sent at ~90 ms, due at ~190 ms; additive delays would be ~1 s.
    assert!(total >= Duration::from_millis(190), "{total:?}");
    assert!(total < Duration::from_millis(400), "{total:?}");
}

#[tokio::test]
async fn zero_latency_toxic_does_not_sleep() {
    let (s, addr) = proxied_echo().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    s.add_toxic("p", latency(0)).await.unwrap();
    s.add_toxic("p", latency(0).stream(Stream::Upstream))
        .await
        .unwrap();
    let mut rtts = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        ping(&mut c, &[7u8; 64]).await;
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let p50 = rtts[100];
    // A timer-based sleep would cost >= 1 ms per direction.
    assert!(p50 < Duration::from_micros(800), "p50 {p50:?}");
}

#[tokio::test]
async fn bandwidth_limits_throughput() {
    let (s, addr) = proxied_echo().await;
    s.add_toxic("p", ToxicSpec::new(ToxicKind::Bandwidth { rate: 200 }))
        .await
        .unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let data: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    assert_eq!(ping(&mut c, &data).await, data);
    let took = t.elapsed();
    // 60 KB at 200 KB/s = 300 ms.
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn slow_close_delays_fin_not_data() {
    let (s, addr) = proxied_echo().await;
    s.add_toxic("p", ToxicSpec::new(ToxicKind::SlowClose { delay: 200 }))
        .await
        .unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    assert_eq!(ping(&mut c, b"bye").await, b"bye");
    assert!(t.elapsed() < Duration::from_millis(100));
    c.shutdown().await.unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn timeout_zero_blackholes_until_removed() {
    let (s, addr) = proxied_echo().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ping(&mut c, b"a").await, b"a");
    s.add_toxic("p", ToxicSpec::new(ToxicKind::Timeout { timeout: 0 }))
        .await
        .unwrap();
    c.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 16];
    assert!(
        within(300, c.read(&mut buf)).await.is_none(),
        "data got through"
    );
    s.remove_toxic("p", "timeout_downstream").await.unwrap();
    // Same connection: flows again; the blackholed bytes are gone.
    assert_eq!(ping(&mut c, b"back").await, b"back");
}

#[tokio::test]
async fn timeout_closes_after_its_delay() {
    let (s, addr) = proxied_echo().await;
    s.add_toxic("p", ToxicSpec::new(ToxicKind::Timeout { timeout: 150 }))
        .await
        .unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    c.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 16];
    let n = within(2000, c.read(&mut buf)).await.expect("not closed");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(140),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn reset_peer_sends_rst() {
    let (s, addr) = proxied_echo().await;
    s.add_toxic("p", ToxicSpec::new(ToxicKind::ResetPeer { timeout: 100 }))
        .await
        .unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let res = within(2000, c.read(&mut buf)).await.expect("no reset");
    let err = res.expect_err("expected a reset, got data or EOF");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(t.elapsed() >= Duration::from_millis(90));
}

#[tokio::test]
async fn slicer_cuts_data_into_small_pieces_intact() {
    let (s, addr) = proxied_echo().await;
    let slicer = ToxicKind::Slicer {
        average_size: 10,
        size_variation: 5,
        delay: 2000,
    };
    s.add_toxic("p", ToxicSpec::new(slicer)).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let data: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
    c.write_all(&data).await.unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    while got.len() < data.len() {
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        reads += 1;
    }
    assert_eq!(got, data);
    assert!(reads >= 5, "only {reads} reads");
}

#[tokio::test]
async fn limit_data_closes_after_budget() {
    let (s, addr) = proxied_echo().await;
    s.add_toxic("p", ToxicSpec::new(ToxicKind::LimitData { bytes: 10 }))
        .await
        .unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&[1u8; 100]).await.unwrap();
    let mut got = Vec::new();
    let _ = within(2000, c.read_to_end(&mut got))
        .await
        .expect("not closed");
    assert_eq!(got, vec![1u8; 10]);
}

/// An upstream that reads one request, answers and closes at once: the
/// shape of a database acknowledging a write just before it dies.
async fn reply_then_close_server(reply: &'static [u8]) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).await.is_ok() {
                    let _ = s.write_all(reply).await;
                }
                drop(s);
            });
        }
    });
    addr
}

#[tokio::test]
async fn reply_written_just_before_close_is_delivered() {
    let reply: &'static [u8] = b"COMMIT OK: the write is durable";
    let up = reply_then_close_server(reply).await;
    let s = ProxyServer::new();
    let info = s
        .create("db", "127.0.0.1:0", &up.to_string(), true)
        .await
        .unwrap();
    for trial in 0..20 {
        if trial == 10 {
            // Half the trials through a delaying toxic: the FIN must wait too.
            s.add_toxic("db", latency(20)).await.unwrap();
        }
        let mut c = TcpStream::connect(&info.listen).await.unwrap();
        c.write_all(b"WRIT").await.unwrap();
        let mut got = Vec::new();
        within(2000, c.read_to_end(&mut got))
            .await
            .expect("hung")
            .unwrap();
        assert_eq!(got, reply, "trial {trial}");
    }
}

#[tokio::test]
async fn toxic_added_and_removed_on_open_connection() {
    let (s, addr) = proxied_echo().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    assert_eq!(ping(&mut c, b"one").await, b"one");
    assert!(t.elapsed() < Duration::from_millis(50));
    s.add_toxic("p", latency(100)).await.unwrap();
    let t = Instant::now();
    assert_eq!(ping(&mut c, b"two").await, b"two");
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    s.remove_toxic("p", "latency_downstream").await.unwrap();
    let t = Instant::now();
    assert_eq!(ping(&mut c, b"three").await, b"three");
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
}

#[tokio::test]
async fn disable_drops_connections_and_enable_listens_again() {
    let (s, addr) = proxied_echo().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ping(&mut c, b"up").await, b"up");
    s.set_enabled("p", false).await.unwrap();
    let mut buf = [0u8; 8];
    let n = within(2000, c.read(&mut buf)).await.expect("still open");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    s.set_enabled("p", true).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ping(&mut c, b"again").await, b"again");
    s.reset().await;
    assert!(s.list().await[0].enabled);
}

#[tokio::test]
async fn toxicity_zero_never_applies() {
    let up = echo_server().await;
    let s = ProxyServer::new();
    let info = s
        .create("p", "127.0.0.1:0", &up.to_string(), true)
        .await
        .unwrap();
    let mut t = latency(500);
    t.toxicity = 0.0;
    s.add_toxic("p", t).await.unwrap();
    let mut c = TcpStream::connect(&info.listen).await.unwrap();
    let start = Instant::now();
    assert_eq!(ping(&mut c, b"fast").await, b"fast");
    assert!(start.elapsed() < Duration::from_millis(200));
}
