#!/usr/bin/env bash
# Benchmark: firedrill's closed-loop Redis workload against redis-benchmark
# doing the same SET (same client count, one request in flight per client,
# same 64-byte payload, fresh keys) on the same lab master, side by side,
# alternating, ROUNDS times. redis-benchmark sends as many requests as
# firedrill acknowledged in the round before, so both run about as long.
# Prints each figure, the medians and the ratio firedrill/redis-benchmark
# (target >= 0.9).
#
# Usage: scripts/bench-redis-workload.sh [CLIENTS] [SECONDS] [ROUNDS]
#   FIREDRILL=path: a firedrill binary instead of the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-4}
SECS=${2:-10}
ROUNDS=${3:-5}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is missing: scripts/install-deps.sh" >&2; exit 2; }
if [ -z "${FIREDRILL:-}" ]; then
  cargo build --release --locked -p firedrill >/dev/null
  FIREDRILL=${CARGO_TARGET_DIR:-$PWD/target}/release/firedrill
fi
FD=$FIREDRILL
WORK=$(mktemp -d /tmp/firedrill-bench-XXXXXX)
chmod 755 "$WORK"
trap '$FD lab down "$WORK/lab" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

cat > "$WORK/bench.toml" <<TOML
[lab]
name = "bench-redis"
kind = "redis-sentinel"
dir = "$WORK/lab"
standbys = 1

[drill]
name = "bench-redis"
[drill.workload]
mode = "closed"
clients = $CLIENTS
warmup = "2s"
duration = "${SECS}s"
payload_bytes = 64
[drill.objectives]
rpo = "1s"
TOML
$FD lab up "$WORK/bench.toml" >/dev/null
PORT=$(python3 -c "import json;s=json.load(open('$WORK/lab/state.json'));print([n for n in s['nodes'] if n['name']=='n1'][0]['port'])")

fd_ops=(); rb_ops=()
for r in $(seq 1 "$ROUNDS"); do
  out="$WORK/run-$r"
  rm -f "$WORK/lab/drilled"
  $FD drill "$WORK/bench.toml" --out "$out" >/dev/null
  # Acknowledged writes per second over the measured window (the buckets
  # after warmup), and how many there were.
  read -r t n < <(python3 - "$out/run.json" <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))
b=r["trials"][0]["buckets"]
ok=sum(x["ok"] for x in b)
print(f"{ok/(len(b)*0.1):.0f} {ok}")
PY
)
  fd_ops+=("$t")
  p=$(redis-benchmark -h 127.0.0.1 -p "$PORT" -c "$CLIENTS" -n "$n" -d 64 -r 100000000 -P 1 -t set -q 2>/dev/null \
      | tr '\r' '\n' | awk '/^SET:/ && /requests per second/ {print int($2)}' | tail -1)
  rb_ops+=("$p")
  echo "round $r: firedrill $t ops/s, redis-benchmark $p requests/s ($n requests)"
  redis-cli -h 127.0.0.1 -p "$PORT" FLUSHALL >/dev/null
done
python3 - "${fd_ops[*]}" "${rb_ops[*]}" <<'PY'
import statistics,sys
f=[float(x) for x in sys.argv[1].split()]
p=[float(x) for x in sys.argv[2].split()]
mf,mp=statistics.median(f),statistics.median(p)
print(f"median firedrill {mf:.0f} ops/s, median redis-benchmark {mp:.0f} requests/s, ratio {mf/mp:.3f} (target >= 0.9)")
PY
