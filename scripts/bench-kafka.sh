#!/usr/bin/env bash
# Benchmark: firedrill's Kafka workload (closed loop, and open loop at a
# fixed rate) against Kafka's own producer benchmark,
# org.apache.kafka.tools.ProducerPerformance, on one Kafka lab (3 combined
# KRaft nodes, replication factor 3, min.insync.replicas=2, 3 partitions),
# side by side in one run, alternating, ROUNDS times. Prints each round's
# records per second, the medians and the ratios firedrill/ProducerPerformance
# (target >= 0.8), and checks that every firedrill record is in the ledger
# and in the topic (no fail, no unknown, nothing lost) and that every
# ProducerPerformance record reached the topic (end offsets).
#
# What is compared, and why it is fair:
# - ProducerPerformance sends asynchronously: out of the box it queues
#   records without bound (up to buffer.memory) and packs them into 16 KiB
#   batches (linger.ms=5 in Kafka 4), so one produce request carries
#   hundreds of records. firedrill's workload is a ledger: each client
#   sends ONE record (one ledger entry) and waits for its acknowledgement
#   before the next, so each ledger entry has its own outcome. Against
#   free batching the comparison would measure batching, not the client.
# - So ProducerPerformance runs with batching off: batch.size=0 (one record
#   per batch) and linger.ms=0, acks=all, and
#   max.in.flight.requests.per.connection=K. Each produce request then
#   carries one record per partition, and each broker connection has at
#   most K requests outstanding: with 3 partition leaders, at most 3*K
#   records in flight.
# - firedrill gets the same bound: 3*K clients (closed loop: each has one
#   record outstanding; open loop: max_in_flight = 3*K), each a librdkafka
#   producer with kafka_max_in_flight = K, acks=all, linger 0, idempotence
#   on (ProducerPerformance's default with acks=all), 64-byte payload
#   (ProducerPerformance: --record-size 64; firedrill adds the record's
#   key, its ledger seq in decimal, up to 10 bytes).
# - The open-loop run is offered ProducerPerformance's rate of the same
#   round (the previous measurement): its ratio says whether firedrill
#   sustains that rate with every record accounted for; it cannot exceed
#   about 1 by construction.
# - firedrill's figure is acknowledged records per second over its measured
#   window (after a 2 s warmup): the ok records in run.json's SLO buckets
#   over the buckets' span (docs/run-json.md). ProducerPerformance's is its
#   own final "records/sec", which includes its JVM's and producer's start:
#   give it enough RECORDS that this is small. firedrill runs for as long
#   as ProducerPerformance took for RECORDS in the previous round (at least
#   3 s).
#
# Usage: scripts/bench-kafka.sh [RECORDS] [ROUNDS]
#   K=1 (default): max.in.flight.requests.per.connection.
#   FIREDRILL=path: a firedrill binary to use instead of building release.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-20000}
ROUNDS=${2:-3}
K=${K:-1}
INFLIGHT=$((3 * K))
if [ -z "${FIREDRILL:-}" ]; then
  cargo build --release --locked -p firedrill >/dev/null
  FIREDRILL=${CARGO_TARGET_DIR:-$PWD/target}/release/firedrill
fi
FD=$FIREDRILL
LIBS=${FIREDRILL_KAFKA_LIBS:-$HOME/.cache/firedrill/kafka-4.3.1/libs}
JAVA=${JAVA:-java}
WORK=$(mktemp -d /tmp/firedrill-kbench-XXXXXX)
chmod 755 "$WORK"
trap '$FD lab down "$WORK/closed.toml" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

# Two drills on one lab (the same [lab] table): closed loop and open loop.
spec() { # MODE SECS [RATE]
  cat <<TOML
[lab]
name = "kbench"
kind = "kafka"
dir = "$WORK/lab"
nodes = 3

[lab.kafka]
replication_factor = 3
min_insync_replicas = 2
unclean_leader_election = false
partitions = 3

[drill]
name = "kbench-$1"

[drill.target]
kafka_acks = "all"
kafka_enable_idempotence = true
kafka_linger = "0s"
kafka_max_in_flight = $K

[drill.workload]
mode = "$1"
warmup = "2s"
duration = "$2s"
op_timeout = "5s"
payload_bytes = 64
TOML
  if [ "$1" = closed ]; then
    echo "clients = $INFLIGHT"
  else
    echo "rate = $3.0"
    echo "max_in_flight = $INFLIGHT"
  fi
  printf '\n[drill.objectives]\nrpo = "0s"\n'
}

spec closed 3 > "$WORK/closed.toml"
$FD lab up "$WORK/closed.toml" >/dev/null
BOOT=$(python3 - "$WORK/lab" <<'PY'
import json, sys
d = sys.argv[1]
s = json.load(open(d + "/state.json"))
ports = open(d + "/client-ports").read().split()
print(",".join(f"127.0.0.1:{ports[i]}" for i, n in enumerate(s["nodes"]) if n["name"].startswith("k")))
PY
)
JCP="$LIBS/*"
"$JAVA" -cp "$JCP" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" --create \
  --topic kbench-pp --partitions 3 --replication-factor 3 --config min.insync.replicas=2 >/dev/null

pp_offsets() { # the sum of the topic's end offsets
  "$JAVA" -cp "$JCP" org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOT" --topic kbench-pp 2>/dev/null \
    | awk -F: '{s += $3} END {print s + 0}'
}
run_pp() {
  local before after out
  before=$(pp_offsets)
  out=$("$JAVA" -cp "$JCP" org.apache.kafka.tools.ProducerPerformance --topic kbench-pp \
    --num-records "$RECORDS" --record-size 64 --throughput -1 \
    --command-property bootstrap.servers="$BOOT" acks=all max.in.flight.requests.per.connection="$K" \
    batch.size=0 linger.ms=0 enable.idempotence=true 2>&1 | grep "records sent" | tail -1)
  after=$(pp_offsets)
  PP_RATE=$(echo "$out" | awk '{print int($4)}')
  PP_IN=$((after - before))
  PP_SECS=$(python3 -c "print(max(3, round($RECORDS / max($PP_RATE, 1))))")
}
run_fd() { # MODE -> FD_RATE FD_CHECK
  local mode=$1 out="$WORK/run-$1-$r"
  spec "$mode" "$PP_SECS" "$PP_RATE" > "$WORK/$mode.toml"
  rm -f "$WORK/lab/drilled"
  $FD drill "$WORK/$mode.toml" --out "$out" >/dev/null 2>"$out.err" || true
  read -r FD_RATE FD_CHECK < <(python3 - "$out/run.json" <<'PY'
import json, sys
try:
    t = json.load(open(sys.argv[1]))["trials"][0]
except Exception as e:
    print(0, f"no-run.json({e.__class__.__name__})")
    sys.exit()
b = t["buckets"]
width = (t.get("series") or {}).get("bucket_s") or (b[1]["start_s"] - b[0]["start_s"] if len(b) > 1 else 0.1)
ok = sum(x["ok"] for x in b)
o, p = t["ops"], t["rpo"]
# In rate mode an op that finds every client busy is in the ledger as a
# fail (never sent, a client-side refusal); that is accounted for, but it
# is not throughput.
# Every op is in the ledger with its outcome: what must hold is that none
# is unknown, none acknowledged is lost and nothing unwritten is found. A
# closed loop never gives up sending, so there a fail is also a failure.
closed = t.get("mode") == "closed" or "closed" in sys.argv[1]
good = o["unknown"] == 0 and p["lost"] == 0 and p["phantoms"] == 0 and (o["fail"] == 0 or not closed)
check = f'ok={o["ok"]},fail={o["fail"]},unknown={o["unknown"]},lost={p["lost"]}' + ("" if good else ",NOT-ALL-ACCOUNTED")
print(f"{ok / (len(b) * width):.0f}", check)
PY
)
}

pp=(); fc=(); fr=(); all_ok=1
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then
    run_pp
    run_fd closed; c=$FD_RATE; cc=$FD_CHECK
    offered=$PP_RATE; run_fd rate; o=$FD_RATE; oc=$FD_CHECK
  else
    run_fd closed; c=$FD_RATE; cc=$FD_CHECK
    offered=$PP_RATE; run_fd rate; o=$FD_RATE; oc=$FD_CHECK
    run_pp
  fi
  pp+=("$PP_RATE"); fc+=("$c"); fr+=("$o")
  [ "$PP_IN" -eq "$RECORDS" ] || all_ok=0
  case "$cc$oc" in *NOT-ALL*|*no-run*) all_ok=0 ;; esac
  echo "round $r: ProducerPerformance $PP_RATE records/s ($PP_IN of $RECORDS in the topic);" \
    "firedrill closed $c ops/s ($cc); firedrill rate $o ops/s at offered $offered/s ($oc); ${PP_SECS}s windows"
done
python3 - "${pp[*]}" "${fc[*]}" "${fr[*]}" "$all_ok" <<'PY'
import statistics, sys
pp, fc, fr = ([float(x) for x in a.split()] for a in sys.argv[1:4])
mp, mc, mr = statistics.median(pp), statistics.median(fc), statistics.median(fr)
print(f"median ProducerPerformance {mp:.0f} records/s, firedrill closed {mc:.0f} ops/s, firedrill rate {mr:.0f} ops/s")
print(f"ratio closed/ProducerPerformance {mc / mp:.3f}, rate/ProducerPerformance {mr / mp:.3f} (target >= 0.8)")
print("every record accounted for: " + ("yes" if sys.argv[4] == "1" else "NO"))
PY
