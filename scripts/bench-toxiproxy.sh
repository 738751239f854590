#!/usr/bin/env bash
# firedrill's proxy (`firedrill proxy`) side by side with Shopify's Toxiproxy
# (toxiproxy-server, built by scripts/install-deps.sh), both serving the same
# loopback path to the same upstreams, with no toxic and with a 0 ms latency
# toxic each way. Per path: bulk throughput (MB/s) with the whole machine's
# CPU over the transfer (from /proc/stat, so loopback softirq work counts),
# and sequential 64-byte echo round trips (p50/p99 µs). Medians over
# interleaved rounds. The ceiling is scripts/bench-proxy-cpu.sh's figure,
# measured in the same run: firedrill's MB per core-second times the cores.
#
# Targets (issue 16): throughput >= 1.5x Toxiproxy's, added p50 <= Toxiproxy's,
# and no-toxic throughput >= 0.9x the ceiling.
#
#   scripts/bench-toxiproxy.sh            # ROUNDS=5 MB=1024 PINGS=5000
#   ROUNDS=7 MB=2048 scripts/bench-toxiproxy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
MB=${MB:-1024}
PINGS=${PINGS:-5000}
TOXIPROXY_BIN=${FIREDRILL_TOXIPROXY_BIN:-$HOME/.cache/firedrill/toxiproxy-v2.12.0/bin}
if [ -x "$TOXIPROXY_BIN/toxiproxy-server" ]; then
    TOXI="$TOXIPROXY_BIN/toxiproxy-server"
elif command -v toxiproxy-server >/dev/null 2>&1; then
    TOXI="$(command -v toxiproxy-server)"
else
    echo "toxiproxy-server not found: run scripts/install-deps.sh" >&2
    exit 1
fi

# firedrill's proxy needs no store: the smallest build of the binary.
cargo build -q --release -p firedrill --no-default-features --bin firedrill
cargo build -q --release -p firedrill-proxy --example proxy_bench
T=${CARGO_TARGET_DIR:-target}/release
FD="$T/firedrill"
B="$T/examples/proxy_bench"

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
socks = [socket.socket() for _ in range(12)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
read -r SINK ECHO FD_API TX_API \
    FD_SINK FD_ECHO FDL_SINK FDL_ECHO TX_SINK TX_ECHO TXL_SINK TXL_ECHO <<<"$PORTS"
L=127.0.0.1

wait_port() {
    for _ in $(seq 1 100); do
        if python3 -c "import socket; socket.create_connection(('$L', $1), 0.2)" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    exit 1
}

"$B" serve --sink "$L:$SINK" --echo "$L:$ECHO" &
PIDS+=($!)
"$FD" proxy --api "$L:$FD_API" 2>"$TMP/firedrill.log" &
FD_PID=$!
PIDS+=($!)
"$TOXI" -host "$L" -port "$TX_API" >"$TMP/toxiproxy.log" 2>&1 &
TX_PID=$!
PIDS+=($!)
wait_port "$SINK"
wait_port "$FD_API"
wait_port "$TX_API"

# The same calls to both: firedrill's API is Toxiproxy's.
setup() {
    local api=$1 sink=$2 echo=$3 lsink=$4 lecho=$5
    post() { curl -fsS -X POST "http://$L:$api$1" -d "$2" >/dev/null; }
    post /proxies "{\"name\":\"sink\",\"listen\":\"$L:$sink\",\"upstream\":\"$L:$SINK\"}"
    post /proxies "{\"name\":\"echo\",\"listen\":\"$L:$echo\",\"upstream\":\"$L:$ECHO\"}"
    post /proxies "{\"name\":\"sink_lat\",\"listen\":\"$L:$lsink\",\"upstream\":\"$L:$SINK\"}"
    post /proxies "{\"name\":\"echo_lat\",\"listen\":\"$L:$lecho\",\"upstream\":\"$L:$ECHO\"}"
    for p in sink_lat echo_lat; do
        for s in upstream downstream; do
            post "/proxies/$p/toxics" "{\"name\":\"lat_$s\",\"type\":\"latency\",\"stream\":\"$s\",\"attributes\":{\"latency\":0,\"jitter\":0}}"
        done
    done
}
setup "$FD_API" "$FD_SINK" "$FD_ECHO" "$FDL_SINK" "$FDL_ECHO"
setup "$TX_API" "$TX_SINK" "$TX_ECHO" "$TXL_SINK" "$TXL_ECHO"

# label sink-port echo-port proxy-pid (0: none)
PATHS=(
    "direct $SINK $ECHO 0"
    "firedrill $FD_SINK $FD_ECHO $FD_PID"
    "firedrill+0ms $FDL_SINK $FDL_ECHO $FD_PID"
    "toxiproxy $TX_SINK $TX_ECHO $TX_PID"
    "toxiproxy+0ms $TXL_SINK $TXL_ECHO $TX_PID"
)
# The proxy process's own user+system clock ticks (fields 14 and 15).
ticks() { [ "$1" = 0 ] && echo 0 || awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "rounds=$ROUNDS bulk=${MB}MB pings=$PINGS x 64B, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
    "$("$TOXI" -version 2>&1 | head -1)"
for _ in $(seq 1 "$ROUNDS"); do
    for p in "${PATHS[@]}"; do
        read -r label sink echo pid <<<"$p"
        pa=$(ticks "$pid")
        a=$(head -1 /proc/stat)
        mbs=$("$B" client --label "$label" --sink "$L:$sink" --echo "$L:$echo" \
            --mb "$MB" --runs 1 --pings 1 | awk '{print $2}')
        b=$(head -1 /proc/stat)
        pb=$(ticks "$pid")
        lat=$("$B" client --label "$label" --sink "$L:$sink" --echo "$L:$echo" \
            --mb 1 --runs 1 --pings "$PINGS" | awk '{print $3, $4}')
        echo "$label $mbs $lat $((pb - pa)) $a | $b"
    done
done >"$TMP/raw.txt"

python3 - "$TMP/raw.txt" "$(nproc)" "$(getconf CLK_TCK)" "$MB" <<'PY'
import statistics, sys
ncpu, hz, mb = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = {}
for line in open(sys.argv[1]):
    head, b = line.split("|")
    f = head.split()
    label, mbs, p50, p99, ticks, a = f[0], float(f[1]), float(f[2]), float(f[3]), int(f[4]), f[6:]
    d = [int(y) - int(x) for x, y in zip(a, b.split()[1:])]
    cores = (1 - (d[3] + d[4]) / sum(d)) * ncpu
    # The proxy's own CPU per GiB moved (its process only: no softirq).
    own = ticks / hz / (mb / 1024)
    rows.setdefault(label, []).append((mbs, cores, mbs / cores, p50, p99, own))
med = {k: [statistics.median(x[i] for x in v) for i in range(6)] for k, v in rows.items()}
d = med["direct"]
print(f"{'path':<15}{'MB/s':>8}{'cores':>7}{'MB/core-s':>11}{'proxy cpu s/GiB':>16}{'p50 us':>9}{'p99 us':>9}{'+p50 us':>9}")
for k in ["direct", "firedrill", "firedrill+0ms", "toxiproxy", "toxiproxy+0ms"]:
    t, c, per, p50, p99, own = med[k]
    own_s = "-" if k == "direct" else f"{own:.2f}"
    print(f"{k:<15}{t:>8.0f}{c:>7.2f}{per:>11.0f}{own_s:>16}{p50:>9.1f}{p99:>9.1f}{p50 - d[3]:>9.1f}")
f, fz, x, xz = med["firedrill"], med["firedrill+0ms"], med["toxiproxy"], med["toxiproxy+0ms"]
ceiling = f[2] * ncpu
print(f"ceiling (bench-proxy-cpu.sh): firedrill's {f[2]:.0f} MB/core-s x {ncpu} cores = {ceiling:.0f} MB/s "
      f"= {ceiling / d[0]:.2f}x direct")
if f[1] > ncpu - 0.05:
    print("note: the transfer kept every core busy (client, proxy and sink are 3 busy threads on "
          f"{ncpu} cores, besides anything else running), so the ceiling equals the measured "
          "throughput by construction and the ceiling check cannot fail here")
checks = [
    (f"no toxic: throughput {f[0] / x[0]:.2f}x Toxiproxy's, target >= 1.5x", f[0] >= 1.5 * x[0]),
    (f"0 ms latency: throughput {fz[0] / xz[0]:.2f}x Toxiproxy's, target >= 1.5x", fz[0] >= 1.5 * xz[0]),
    (f"no toxic: added p50 {f[3] - d[3]:.1f} us vs Toxiproxy's {x[3] - d[3]:.1f} us, target <=", f[3] <= x[3]),
    (f"0 ms latency: added p50 {fz[3] - d[3]:.1f} us vs Toxiproxy's {xz[3] - d[3]:.1f} us, target <=", fz[3] <= xz[3]),
    (f"no toxic: throughput {f[0] / ceiling:.2f}x the ceiling, target >= 0.9x", f[0] >= 0.9 * ceiling),
]
for name, ok in checks:
    print(f"{'PASS' if ok else 'MISS'}  {name}")
PY
