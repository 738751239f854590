//! Property tests on real loopback sockets: whatever the chunking and the
//! set of non-lossy toxics (added or removed mid-stream), every byte arrives
//! once, in order, before the FIN; and latency never accumulates.

mod common;

use std::time::{Duration, Instant};

use common::echo_server;
use firedrill_proxy::{ProxyServer, Stream, ToxicKind, ToxicSpec};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn non_lossy() -> impl Strategy<Value = ToxicKind> {
    prop_oneof![
        (0u64..4, 0u64..3).prop_map(|(latency, jitter)| ToxicKind::Latency { latency, jitter }),
        (2_000u64..20_000).prop_map(|rate| ToxicKind::Bandwidth { rate }),
        (64u64..512, 0u64..64, 0u64..50).prop_map(|(average_size, size_variation, delay)| {
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            }
        }),
        (0u64..10).prop_map(|delay| ToxicKind::SlowClose { delay }),
    ]
}

fn toxics() -> impl Strategy<Value = Vec<(ToxicKind, bool)>> {
    prop::collection::vec((non_lossy(), any::<bool>()), 0..4)
}

fn spec(i: usize, kind: ToxicKind, upstream: bool) -> ToxicSpec {
    let stream = if upstream {
        Stream::Upstream
    } else {
        Stream::Downstream
    };
    ToxicSpec::new(kind).stream(stream).named(&format!("t{i}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn echo_case(
    chunks: Vec<Vec<u8>>,
    before: Vec<(ToxicKind, bool)>,
    during: Vec<(ToxicKind, bool)>,
    remove_first: bool,
) -> Result<(), TestCaseError> {
    let up = echo_server().await;
    let s = ProxyServer::new();
    let info = s
        .create("p", "127.0.0.1:0", &up.to_string(), true)
        .await
        .unwrap();
    for (i, (k, u)) in before.iter().enumerate() {
        s.add_toxic("p", spec(i, *k, *u)).await.unwrap();
    }
    let c = TcpStream::connect(&info.listen).await.unwrap();
    let (mut r, mut w) = c.into_split();
    let want: Vec<u8> = chunks.concat();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.map(|_| got)
    });
    let half = chunks.len() / 2;
    for (n, chunk) in chunks.iter().enumerate() {
        if n == half {
            if remove_first && !before.is_empty() {
                s.remove_toxic("p", "t0").await.unwrap();
            }
            for (i, (k, u)) in during.iter().enumerate() {
                s.add_toxic("p", spec(100 + i, *k, *u)).await.unwrap();
            }
        }
        w.write_all(chunk).await.unwrap();
    }
    w.shutdown().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .map_err(|_| TestCaseError::fail("timed out"))?
        .unwrap()
        .map_err(|e| TestCaseError::fail(format!("read error {e}")))?;
    prop_assert_eq!(got.len(), want.len());
    prop_assert!(got == want, "bytes differ");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_byte_once_in_order_before_fin(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..2000), 1..10),
        before in toxics(),
        during in toxics(),
        remove_first in any::<bool>(),
    ) {
        runtime().block_on(echo_case(chunks, before, during, remove_first))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn latency_counts_from_arrival(
        latency in 10u64..40,
        gaps in prop::collection::vec(0u64..6, 4..12),
    ) {
        runtime().block_on(async move {
            let up = echo_server().await;
            let s = ProxyServer::new();
            let info = s.create("p", "127.0.0.1:0", &up.to_string(), true).await.unwrap();
            s.add_toxic("p", ToxicSpec::new(ToxicKind::Latency { latency, jitter: 0 })).await.unwrap();
            let c = TcpStream::connect(&info.listen).await.unwrap();
            c.set_nodelay(true).unwrap();
            let (mut r, mut w) = c.into_split();
            let n = gaps.len();
            let reader = tokio::spawn(async move {
                let mut arrivals = Vec::new();
                let mut buf = [0u8; 64];
                let mut total = 0usize;
                while total < n * 8 {
                    let k = r.read(&mut buf).await.unwrap();
                    assert!(k > 0);
                    total += k;
                    while arrivals.len() < total / 8 {
                        arrivals.push(Instant::now());
                    }
                }
                arrivals
            });
            let mut sent = Vec::new();
            for (i, gap) in gaps.iter().enumerate() {
                sent.push(Instant::now());
                w.write_all(&(i as u64).to_le_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(*gap)).await;
            }
            let arrivals = reader.await.unwrap();
            let l = Duration::from_millis(latency);
            for (i, (s, a)) in sent.iter().zip(&arrivals).enumerate() {
                let d = a.duration_since(*s);
                prop_assert!(d >= l, "chunk {} early: {:?}", i, d);
                prop_assert!(d <= l + Duration::from_millis(40), "chunk {} delay {:?} adds up", i, d);
            }
            Ok(())
        })?;
    }
}
