//! "Does it work against MY running system?": Redis with Sentinel and etcd
//! reached through explicit endpoints, as a user points firedrill at
//! servers it did not start. A lab stands in for the user's system: the
//! drill spec is the example in examples/*-endpoints-kill.toml with the
//! lab's addresses, master name and pid files written in, and no [lab]
//! table, so nothing but the endpoints tells firedrill where the store is.
//! Run with --nocapture to see the measured figures.

mod common;
use common::*;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The lab's record of one of its processes.
fn node<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in the lab state: {list}"))
}

/// Writes a pid file for a process the lab recorded, as an init system
/// would: the pid, then a newline.
fn pid_file(dir: &Path, n: &Value) -> String {
    let pid = n["proc"]["pid"].as_i64().expect("the lab recorded a pid");
    assert!(
        proc_state(pid).is_some(),
        "{} (pid {pid}) is not running",
        n["name"]
    );
    let path = dir.join(format!("{}.pid", n["name"].as_str().expect("name")));
    std::fs::write(&path, format!("{pid}\n")).expect("write pid file");
    path.display().to_string()
}

/// The example with `from -> to` replacements, each of which must apply.
fn endpoints_spec(example_file: &str, subs: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(example_file);
    let mut text = std::fs::read_to_string(&path).expect("example");
    assert!(!text.contains("\n[lab]"), "{example_file} must have no lab");
    for (from, to) in subs {
        assert!(text.contains(from), "{example_file} has no {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// Runs a drill spec (written beside the lab) through the binary.
fn drill(lab: &Lab, name: &str, spec: &str) -> Drill {
    let path = lab.tmp.path().join(format!("{name}.toml"));
    std::fs::write(&path, spec).expect("write spec");
    let out_dir = lab.run_dir(name);
    let out = firedrill(&[
        "drill",
        path.to_str().expect("utf-8"),
        "--out",
        out_dir.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- drill stdout\n{stdout}\n--- drill stderr\n{stderr}");
    let run = std::fs::read_to_string(out_dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Drill {
        code: out.status.code().unwrap_or(-1),
        run,
        stdout,
        stderr,
        dir: out_dir,
    }
}

fn figures(what: &str, d: &Drill) {
    let t = d.trial(0);
    eprintln!(
        "FIGURES {what}: lost {} of {} ok (unknown {} survived / {} lost); RTO {} s, \
         phases {}; detected by {}; faults {}; recovery {}; warnings {}",
        t["rpo"]["lost"],
        t["ops"]["ok"],
        t["rpo"]["unknown_survived"],
        t["rpo"]["unknown_lost"],
        t["rto"]["achieved_s"],
        t["rto"]["phases"],
        t["detected"]["how"],
        t["faults"],
        t["recovery"],
        t["warnings"],
    );
}

/// The node the trial's audit read, from events.jsonl.
fn audit_node(d: &Drill) -> String {
    let events = std::fs::read_to_string(d.dir.join("events.jsonl")).expect("events.jsonl");
    events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "audit")
        .and_then(|e| e["node"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no audit event in {}", d.dir.display()))
}

/// One request/response over a fresh loopback connection that the server
/// closes after answering (Redis: QUIT after the command).
fn exchange(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// How many keys match `pattern` on a Redis server (KEYS: the lab is
/// small).
fn redis_key_count(addr: &str, pattern: &str) -> usize {
    let req = format!(
        "*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n*1\r\n$4\r\nQUIT\r\n",
        pattern.len()
    );
    let reply = exchange(addr, req.as_bytes());
    let head = reply.lines().next().unwrap_or_default();
    head.strip_prefix('*')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{addr}: unexpected KEYS reply {reply:?}"))
}

/// How many keys etcd holds with the given prefix, read from one member
/// (serializable: that member's own copy).
fn etcd_key_count(url: &str, prefix: &str) -> u64 {
    let addr = url.trim_start_matches("http://");
    let b64 = |b: &[u8]| {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    };
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("prefix") += 1;
    let body = format!(
        r#"{{"key":"{}","range_end":"{}","count_only":true,"serializable":true}}"#,
        b64(prefix.as_bytes()),
        b64(&end)
    );
    let req = format!(
        "POST /v3/kv/range HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = exchange(addr, req.as_bytes());
    let json = reply
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
        .unwrap_or_else(|| panic!("{addr}: unexpected reply {reply:?}"));
    assert!(json["header"].is_object(), "{addr}: {json}");
    // proto3 JSON leaves a zero count out; counts are strings (int64).
    json["count"]
        .as_str()
        .map(|c| c.parse().expect("count"))
        .unwrap_or(0)
}

/// Polls until `f` is zero (replication of the deletes takes a moment);
/// returns the last value.
fn until_zero(mut f: impl FnMut() -> u64) -> u64 {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let n = f();
        if n == 0 || Instant::now() > end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Redis master the user runs, killed through its pid file; Sentinel
/// (the user's, found through redis_sentinels and redis_master_name)
/// fails over by itself. The run's keys are gone afterwards.
#[test]
fn redis_endpoints_master_kill() {
    if !redis_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("redis-master-kill.toml"));
    let state = lab.state();
    let (n1, n2, n3) = (
        node(&state["nodes"], "n1"),
        node(&state["nodes"], "n2"),
        node(&state["nodes"], "n3"),
    );
    let sentinels: Vec<String> = ["s1", "s2", "s3"]
        .iter()
        .map(|s| {
            format!(
                "{:?}",
                node(&state["sentinels"], s)["conninfo"].as_str().unwrap()
            )
        })
        .collect();
    let addr = |n: &Value| n["conninfo"].as_str().expect("conninfo").to_string();
    let pids = lab.tmp.path();
    let spec = endpoints_spec(
        "redis-endpoints-kill.toml",
        &[
            // The lab's master name, as its sentinel.conf monitors it.
            ("\"mymaster\"", "\"firedrill\"".into()),
            (
                "\"127.0.0.1:26379\", \"127.0.0.1:26380\", \"127.0.0.1:26381\"",
                sentinels.join(", "),
            ),
            ("127.0.0.1:6379", addr(n1)),
            ("127.0.0.1:6380", addr(n2)),
            ("127.0.0.1:6381", addr(n3)),
            ("/run/redis/redis1.pid", pid_file(pids, n1)),
            ("/run/redis/redis2.pid", pid_file(pids, n2)),
            ("/run/redis/redis3.pid", pid_file(pids, n3)),
        ],
    );
    // A key of the user's own, outside the run's fd:* space: it must
    // survive, and it shows the counting below sees keys at all.
    let reply = exchange(
        &addr(n1),
        b"*3\r\n$3\r\nSET\r\n$8\r\nmine:one\r\n$1\r\n1\r\n*1\r\n$4\r\nQUIT\r\n",
    );
    assert!(reply.starts_with("+OK"), "SET: {reply:?}");
    let d = drill(&lab, "run-redis-endpoints", &spec);
    figures("redis endpoints, master kill", &d);
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
    assert!(
        d.run["target"]
            .as_str()
            .unwrap_or_default()
            .contains("endpoints"),
        "{}",
        d.run["target"]
    );
    let t = d.trial(0);
    let ok = d.u64(0, "ops.ok");
    let lost = d.u64(0, "rpo.lost");
    assert!(ok > 1000, "the workload wrote too little: {ok}");
    assert!(
        lost * 1000 <= ok,
        "lost {lost} of {ok}: more than async lag on loopback explains"
    );
    assert_eq!(d.u64(0, "rpo.zombie_lost"), 0);
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    assert_eq!(t["faults"][0]["node"], "redis1", "role primary is redis1");
    assert!(
        proc_state(n1["proc"]["pid"].as_i64().unwrap()).is_none_or(|s| s == 'Z'),
        "the master's process still runs"
    );
    let rto = d.f64(0, "rto.achieved_s").expect("recovered");
    assert!((1.0..=5.0).contains(&rto), "RTO {rto} s not in 1..5 s");
    let how = t["detected"]["how"].as_str().unwrap_or("");
    assert!(how.contains("+odown"), "detected by {how:?}, not Sentinel");
    assert_eq!(t["recovery"]["action"], "automatic");
    let new_master = t["recovery"]["node"].as_str().unwrap_or("");
    assert!(
        ["redis2", "redis3"].contains(&new_master),
        "recovered on {new_master:?}"
    );
    let audited = audit_node(&d);
    eprintln!("audit on {audited}, new master {new_master}");
    // The audit reads the primary: the one the failover made, or, when
    // Sentinel failed over once more before the audit (seen on a loaded
    // machine), the one in charge then, and the run says so.
    if audited != new_master {
        let warned = d.run["trials"][0]["warnings"].as_array().is_some_and(|w| {
            w.iter()
                .any(|m| m.as_str().unwrap_or("").contains("later failover"))
        });
        assert!(
            warned,
            "audited {audited}, not the new master {new_master}, without saying why"
        );
    }
    assert!(
        ["redis2", "redis3"].contains(&audited.as_str()),
        "audited {audited}"
    );
    // The run's keys (fd:<run>:*) are deleted from the new master, and the
    // delete reaches the other replica.
    for n in [n2, n3] {
        let left = until_zero(|| redis_key_count(&addr(n), "fd:*") as u64);
        assert_eq!(left, 0, "{} keeps {left} fd:* keys", addr(n));
        assert_eq!(redis_key_count(&addr(n), "mine:*"), 1, "the user's key");
    }
}

/// An etcd cluster the user runs: the Raft leader killed through its pid
/// file, the survivors elect a new one. No acknowledged write is lost, and
/// the run's keys are gone afterwards.
#[test]
fn etcd_endpoints_leader_kill() {
    if !programs_available(&["etcd"]) {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("etcd-leader-kill.toml"));
    let state = lab.state();
    let members: Vec<&Value> = ["e1", "e2", "e3"]
        .iter()
        .map(|m| node(&state["nodes"], m))
        .collect();
    let url = |n: &Value| n["conninfo"].as_str().expect("conninfo").to_string();
    let pids = lab.tmp.path();
    let mut subs = Vec::new();
    for (i, (port, m)) in ["2379", "22379", "32379"].iter().zip(&members).enumerate() {
        subs.push((
            format!("\"http://127.0.0.1:{port}\""),
            format!("{:?}", url(m)),
        ));
        subs.push((
            format!("\"/run/etcd/etcd{}.pid\"", i + 1),
            format!("{:?}", pid_file(pids, m)),
        ));
    }
    let subs: Vec<(&str, String)> = subs.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    let spec = endpoints_spec("etcd-endpoints-kill.toml", &subs);
    // A key of the user's own, outside the run's prefixes: it must
    // survive, and it shows the counting below sees keys at all.
    let body = r#"{"key":"bWluZS9vbmU=","value":"MQ=="}"#; // mine/one = 1
    let reply = exchange(
        url(members[0]).trim_start_matches("http://"),
        format!(
            "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "put: {reply:?}");
    let d = drill(&lab, "run-etcd-endpoints", &spec);
    figures("etcd endpoints, leader kill", &d);
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
    let t = d.trial(0);
    assert!(d.u64(0, "ops.ok") > 500, "the workload wrote too little");
    assert_eq!(d.u64(0, "rpo.lost"), 0, "Raft lost acknowledged writes");
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    let rto = d.f64(0, "rto.achieved_s").expect("recovered");
    // One election is 1-2 s (etcd randomizes its 1 s election timeout up
    // to twice that); a split vote between the two survivors costs one
    // more (CI saw term 5 and 3.60 s once).
    assert!(
        (0.5..=5.0).contains(&rto),
        "RTO {rto} s not within [0.5, 5] s"
    );
    let killed = t["faults"][0]["node"].as_str().expect("fault node");
    let leader = members[killed
        .strip_prefix("etcd")
        .and_then(|i| i.parse::<usize>().ok())
        .expect("etcdN")
        - 1];
    assert!(
        proc_state(leader["proc"]["pid"].as_i64().unwrap()).is_none_or(|s| s == 'Z'),
        "the leader's process still runs"
    );
    assert_eq!(t["recovery"]["action"], "automatic");
    assert_ne!(t["recovery"]["node"], killed, "a survivor leads");
    assert_eq!(
        audit_node(&d),
        t["recovery"]["node"].as_str().unwrap_or(""),
        "the audit reads the new leader"
    );
    for m in members.iter().filter(|m| **m != leader) {
        for prefix in ["firedrill/", "firedrill-heartbeat/"] {
            let left = until_zero(|| etcd_key_count(&url(m), prefix));
            assert_eq!(left, 0, "{} keeps {left} {prefix} keys", url(m));
        }
        assert_eq!(etcd_key_count(&url(m), "mine/"), 1, "the user's key");
    }
}
