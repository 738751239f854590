#!/usr/bin/env bash
# Side-by-side benchmark of four loopback paths: direct, the firedrill proxy
# with no toxic, with a 0 ms latency toxic (both directions), and haproxy in
# TCP mode. Bulk throughput (MB/s) and 64-byte echo round trips (p50/p99 µs),
# medians over interleaved rounds.
#
#   scripts/bench-proxy.sh            # ROUNDS=5 MB=256 PINGS=5000 by default
#   ROUNDS=7 MB=512 scripts/bench-proxy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
MB=${MB:-256}
PINGS=${PINGS:-5000}

if ! command -v haproxy >/dev/null 2>&1; then
    echo "installing haproxy"
    apt-get update -qq && apt-get install -y -qq haproxy >/dev/null
fi
cargo build -q --release -p firedrill-proxy --examples
BIN=${CARGO_TARGET_DIR:-target}/release/examples

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# Command substitution waits for python to exit, so the ports are free again.
PORTS=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
read -r SINK ECHO API FD_SINK FD_ECHO LAT_SINK LAT_ECHO HA_SINK HA_ECHO <<<"$PORTS"
L=127.0.0.1

wait_port() {
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; socket.create_connection(('$L', $1), 0.2)" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 never opened" >&2; exit 1
}

"$BIN/proxy_bench" serve --sink "$L:$SINK" --echo "$L:$ECHO" &
PIDS+=($!)
"$BIN/proxy_server" --api "$L:$API" ${PROXY_ARGS:-} 2>"$TMP/proxy.log" &
PIDS+=($!)
wait_port "$SINK"; wait_port "$API"

api() { curl -fsS -X POST "http://$L:$API$1" -d "$2" >/dev/null; }
api /proxies "{\"name\":\"sink\",\"listen\":\"$L:$FD_SINK\",\"upstream\":\"$L:$SINK\"}"
api /proxies "{\"name\":\"echo\",\"listen\":\"$L:$FD_ECHO\",\"upstream\":\"$L:$ECHO\"}"
api /proxies "{\"name\":\"sink_lat\",\"listen\":\"$L:$LAT_SINK\",\"upstream\":\"$L:$SINK\"}"
api /proxies "{\"name\":\"echo_lat\",\"listen\":\"$L:$LAT_ECHO\",\"upstream\":\"$L:$ECHO\"}"
for p in sink_lat echo_lat; do
    for s in upstream downstream; do
        api "/proxies/$p/toxics" "{\"type\":\"latency\",\"stream\":\"$s\",\"attributes\":{\"latency\":0}}"
    done
done

cat >"$TMP/haproxy.cfg" <<CFG
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend sink
    bind $L:$HA_SINK
    default_backend sink
backend sink
    server s $L:$SINK
frontend echo
    bind $L:$HA_ECHO
    default_backend echo
backend echo
    server e $L:$ECHO
CFG
haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
wait_port "$HA_SINK"

echo "rounds=$ROUNDS bulk=${MB}MB pings=$PINGS x 64B, $(nproc) cores, $(haproxy -v | head -1 | cut -d' ' -f1-3)"
for r in $(seq 1 "$ROUNDS"); do
    "$BIN/proxy_bench" client --label direct --sink "$L:$SINK" --echo "$L:$ECHO" --mb "$MB" --runs 1 --pings "$PINGS"
    "$BIN/proxy_bench" client --label firedrill --sink "$L:$FD_SINK" --echo "$L:$FD_ECHO" --mb "$MB" --runs 1 --pings "$PINGS"
    "$BIN/proxy_bench" client --label firedrill+0ms --sink "$L:$LAT_SINK" --echo "$L:$LAT_ECHO" --mb "$MB" --runs 1 --pings "$PINGS"
    "$BIN/proxy_bench" client --label haproxy --sink "$L:$HA_SINK" --echo "$L:$HA_ECHO" --mb "$MB" --runs 1 --pings "$PINGS"
done >"$TMP/raw.txt"

python3 - "$TMP/raw.txt" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, tput, p50, p99 = line.split()
    rows.setdefault(label, []).append((float(tput), float(p50), float(p99)))
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
d = med["direct"]
print(f"{'path':<15}{'MB/s':>9}{'x direct':>10}{'p50 us':>9}{'p99 us':>9}{'+p50 us':>9}")
for k in ["direct", "firedrill", "firedrill+0ms", "haproxy"]:
    t, p50, p99 = med[k]
    print(f"{k:<15}{t:>9.0f}{t / d[0]:>10.2f}{p50:>9.1f}{p99:>9.1f}{p50 - d[1]:>9.1f}")
f, z, h = med["firedrill"], med["firedrill+0ms"], med["haproxy"]
checks = [
    ("no toxic: throughput >= 0.8x direct", f[0] >= 0.8 * d[0]),
    ("no toxic: throughput >= haproxy", f[0] >= h[0]),
    ("no toxic: added p50 <= 50 us", f[1] - d[1] <= 50),
    ("0 ms latency: adds <= 100 us p50 over no toxic", z[1] - f[1] <= 100),
    ("0 ms latency: throughput >= 0.5x no toxic", z[0] >= 0.5 * f[0]),
]
for name, ok in checks:
    print(f"{'PASS' if ok else 'MISS'}  {name}")
PY
