#!/usr/bin/env bash
# Benchmark: the mirror lab's MirrorMaker 2, at the lab's settings, against
# the rate produced to region A, side by side in one run. For each offered
# rate, Kafka's own ProducerPerformance (acks=all, 64-byte records, its
# default batching) produces to A's firedrill-mbench (3 partitions) for
# SECS, while `firedrill watch` (kind = "kafka-mirror") samples the
# heartbeat exposure every 0.5 s and GetOffsetShell reads the end offsets
# of A's topic and of B's copy (A.firedrill-mbench) before and after.
#
# Per rate it prints: the rate ProducerPerformance achieved, the rates A's
# topic and B's copy grew at over the same window, the records B still lacked when the
# producer finished and how long B took to catch up, and the heartbeat
# exposure (the watch's region_loss figure) over the second half of the
# window: median and max. A mirror that keeps up shows a copy rate equal
# to the produced rate, a small record lag and an exposure near its idle
# value; one that does not shows the lag and the exposure growing.
#
# Usage: scripts/bench-mirror-lag.sh [SECS] [RATE...]
#   default: 20 s at 1000 5000 20000 records/s
#   FIREDRILL=path: a firedrill binary instead of the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
shift || true
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(1000 5000 20000)
if [ -z "${FIREDRILL:-}" ]; then
  cargo build --release --locked -p firedrill >/dev/null
  FIREDRILL=${CARGO_TARGET_DIR:-$PWD/target}/release/firedrill
fi
FD=$FIREDRILL
LIBS=${FIREDRILL_KAFKA_LIBS:-$HOME/.cache/firedrill/kafka-4.3.1/libs}
JAVA=${JAVA:-java}
JCP="$LIBS/*"
WORK=$(mktemp -d /tmp/firedrill-mbench-XXXXXX)
chmod 755 "$WORK"
WATCH_PID=
cleanup() {
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
  "$FD" lab down "$WORK/lab.toml" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/lab.toml" <<TOML
[lab]
name = "mbench"
kind = "kafka-mirror"
dir = "$WORK/lab"
mirror = "active-passive"
TOML
"$FD" lab up "$WORK/lab.toml" >"$WORK/lab-up.txt"
SETTINGS=$(grep -m1 "MirrorMaker" "$WORK/lab-up.txt" || true)
read -r A B < <(python3 - "$WORK/lab/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
port = {n["name"]: n["port"] for n in s["nodes"]}
print(f"127.0.0.1:{port['a1']} 127.0.0.1:{port['b1']}")
PY
)
"$JAVA" -cp "$JCP" org.apache.kafka.tools.TopicCommand --bootstrap-server "$A" --create \
  --topic firedrill-mbench --partitions 3 --replication-factor 1 >/dev/null

# The sum of a topic's end offsets on one cluster (0 while it is missing).
ends() { # BOOTSTRAP TOPIC
  "$JAVA" -cp "$JCP" org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$1" --topic "$2" 2>/dev/null \
    | awk -F: '{s += $3} END {print s + 0}'
}

WPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/objectives.toml" <<TOML
[watch]
interval = "500ms"
[[domain]]
name = "mirror"
[domain.store]
kind = "kafka-mirror"
source = "a1"
target = "b1"
[[domain.store.nodes]]
name = "a1"
addr = "$A"
[[domain.store.nodes]]
name = "b1"
addr = "$B"
[domain.objectives.region_loss]
rpo = "5s"
sources = ["heartbeat"]
TOML
"$FD" watch "$WORK/objectives.toml" --listen "127.0.0.1:$WPORT" 2>"$WORK/watch.log" &
WATCH_PID=$!
exposure() { # the body first: awk's early exit must not fail curl
  local m
  m=$(curl -fsS "http://127.0.0.1:$WPORT/metrics" 2>/dev/null) || return 1
  awk '/^firedrill_exposure_seconds/ && /heartbeat/ {print $NF; exit}' <<<"$m"
}

# MM2 finds the new topics (the bench topic, the watch's heartbeat) on its
# refresh interval: wait for a mirrored record and a settled exposure.
"$JAVA" -cp "$JCP" org.apache.kafka.tools.ProducerPerformance --topic firedrill-mbench \
  --num-records 100 --record-size 64 --throughput -1 \
  --producer-props bootstrap.servers="$A" acks=all >/dev/null
for _ in $(seq 1 120); do
  e=$(exposure || true)
  if [ "$(ends "$B" A.firedrill-mbench)" -ge 100 ] && [ -n "$e" ] \
     && python3 -c "import sys; sys.exit(0 if float('$e') < 1.0 else 1)"; then
    break
  fi
  sleep 1
done
echo "lab: $SETTINGS"
echo "idle heartbeat exposure: $(exposure) s; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# produced/s is ProducerPerformance's own figure; A/s and B/s are the
# growth of A's topic and B's copy over the same wall-clock window (which
# includes the producer JVM's start, so both are a little low alike).
printf '%-9s %11s %9s %9s %11s %9s %11s %11s\n' "offered/s" "produced/s" "A/s" "B/s" "lag at end" "catch-up" "exp. p50 s" "exp. max s"
for rate in "${RATES[@]}"; do
  n=$((rate * SECS))
  a0=$(ends "$A" firedrill-mbench)
  b0=$(ends "$B" A.firedrill-mbench)
  : >"$WORK/exp.txt"
  (
    while :; do
      printf '%s %s\n' "$(date +%s.%N)" "$(exposure || echo nan)" >>"$WORK/exp.txt"
      sleep 0.5
    done
  ) &
  sampler=$!
  t0=$(date +%s.%N)
  "$JAVA" -cp "$JCP" org.apache.kafka.tools.ProducerPerformance --topic firedrill-mbench \
    --num-records "$n" --record-size 64 --throughput "$rate" \
    --producer-props bootstrap.servers="$A" acks=all >"$WORK/pp-$rate.txt" 2>&1
  t1=$(date +%s.%N)
  a1=$(ends "$A" firedrill-mbench)
  b1=$(ends "$B" A.firedrill-mbench)
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  # Catch-up: until B's copy has every record A has.
  c0=$(date +%s.%N)
  for _ in $(seq 1 600); do
    [ "$(ends "$B" A.firedrill-mbench)" -ge "$a1" ] && break
    sleep 0.2
  done
  c1=$(date +%s.%N)
  produced=$(awk '/records sent/ {gsub(/[(,]/, " "); for (i = 1; i <= NF; i++) if ($(i+1) == "records/sec") print $i}' "$WORK/pp-$rate.txt" | tail -1)
  python3 - "$rate" "$produced" "$t0" "$t1" "$a0" "$a1" "$b0" "$b1" "$c0" "$c1" "$WORK/exp.txt" <<'PY'
import statistics, sys
rate, produced = sys.argv[1], float(sys.argv[2] or "nan")
t0, t1, a0, a1, b0, b1, c0, c1 = map(float, sys.argv[3:11])
span = t1 - t0
rows = [l.split() for l in open(sys.argv[11])]
vals = [(float(t), float(v)) for t, v in rows if v != "nan"]
half = [v for t, v in vals if t >= t0 + span / 2]
p50 = statistics.median(half) if half else float("nan")
mx = max(half) if half else float("nan")
print(f"{rate:<9} {produced:>11.0f} {(a1 - a0) / span:>9.0f} {(b1 - b0) / span:>9.0f} {a1 - b1:>11.0f} {c1 - c0:>8.1f}s {p50:>11.3f} {mx:>11.3f}")
PY
done
