#!/usr/bin/env bash
# Where the proxy's throughput goes: bulk transfer direct and through the
# firedrill proxy (no toxic), with the whole machine's CPU use over each
# transfer (from /proc/stat, so loopback softirq work is counted too).
# Reports MB/s, cores busy, and MB per core-second: the proxied path needs
# two trips through the TCP stack, and this shows what that costs per byte.
#
#   scripts/bench-proxy-cpu.sh            # ROUNDS=5 MB=2048
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
MB=${MB:-2048}
cargo build -q --release -p firedrill-proxy --examples
B=${CARGO_TARGET_DIR:-target}/release/examples
read -r SINK ECHO API FD <<<"$(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"
"$B/proxy_bench" serve --sink "127.0.0.1:$SINK" --echo "127.0.0.1:$ECHO" & SP=$!
"$B/proxy_server" --api "127.0.0.1:$API" 2>/dev/null & PP=$!
trap 'kill $SP $PP 2>/dev/null || true' EXIT
sleep 0.5
curl -fsS -X POST "http://127.0.0.1:$API/proxies" \
    -d "{\"name\":\"s\",\"listen\":\"127.0.0.1:$FD\",\"upstream\":\"127.0.0.1:$SINK\"}" >/dev/null
TMP=$(mktemp)
for _ in $(seq 1 "$ROUNDS"); do
    for label in direct proxy; do
        port=$SINK; [ "$label" = proxy ] && port=$FD
        a=$(head -1 /proc/stat)
        mbs=$("$B/proxy_bench" client --label "$label" --sink "127.0.0.1:$port" \
            --echo "127.0.0.1:$ECHO" --mb "$MB" --runs 1 --pings 1 | awk '{print $2}')
        b=$(head -1 /proc/stat)
        echo "$label $mbs $a | $b" >>"$TMP"
    done
done
python3 - "$TMP" "$(nproc)" <<'PY'
import statistics, sys
rows = {}
ncpu = int(sys.argv[2])
for line in open(sys.argv[1]):
    head, b = line.split("|")
    parts = head.split()
    label, mbs, a = parts[0], float(parts[1]), parts[3:]
    b = b.split()[1:]
    d = [int(y) - int(x) for x, y in zip(a, b)]
    busy = 1 - (d[3] + d[4]) / sum(d)
    cores = busy * ncpu
    rows.setdefault(label, []).append((mbs, cores, mbs / cores))
print(f"{'path':<8}{'MB/s':>8}{'cores busy':>12}{'MB/core-s':>11}")
med = {}
for k, v in rows.items():
    med[k] = [statistics.median(x[i] for x in v) for i in range(3)]
    print(f"{k:<8}{med[k][0]:>8.0f}{med[k][1]:>12.2f}{med[k][2]:>11.0f}")
d, p = med["direct"], med["proxy"]
print(f"proxy/direct throughput {p[0] / d[0]:.2f}; per-byte CPU cost x{d[2] / p[2]:.2f}; "
      f"ceiling with every core busy at that cost: {p[2] * ncpu:.0f} MB/s = {p[2] * ncpu / d[0]:.2f}x direct")
PY
rm -f "$TMP"
