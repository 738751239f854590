#!/usr/bin/env bash
# Load: `firedrill watch` with N domains (default 100) on one core at a 1 s
# interval, all pointing at one PostgreSQL lab (a primary and a standby), for
# SECONDS (default 60). Every domain has its own connections, heartbeat row
# and queries, so the lab serves N heartbeats/s and ~3N queries/s. Reports
# the watcher's CPU% (utime+stime from /proc/PID/stat over the run) and RSS,
# and checks every domain's probes stayed up.
#   scripts/bench-watch.sh [DOMAINS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
SECS=${2:-60}
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q -p firedrill
BIN=$PWD/target/release/firedrill
command -v taskset >/dev/null || { echo "bench-watch: taskset (util-linux) is missing" >&2; exit 3; }

TMP=$(mktemp -d /tmp/firedrill-bench-watch.XXXXXX)
chmod 755 "$TMP"
WATCH_PID=""
cleanup() {
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null || true
  "$BIN" lab down "$TMP/lab.toml" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

cat > "$TMP/lab.toml" <<LAB
[lab]
name = "bench-watch"
dir = "$TMP/lab"
standbys = 1
[lab.settings]
max_connections = $((N + 50))
LAB
"$BIN" lab up "$TMP/lab.toml" >/dev/null
P1=$(python3 -c "import json;s=json.load(open('$TMP/lab/state.json'));print([n['port'] for n in s['nodes'] if n['name']=='n1'][0])")
P2=$(python3 -c "import json;s=json.load(open('$TMP/lab/state.json'));print([n['port'] for n in s['nodes'] if n['name']=='n2'][0])")

{
  printf '[watch]\ninterval = "1s"\n'
  for i in $(seq 1 "$N"); do
    cat <<DOM
[[domain]]
name = "d$i"
[domain.store]
kind = "postgres"
user = "postgres"
[[domain.store.nodes]]
name = "n1"
conninfo = "host=127.0.0.1 port=$P1 dbname=postgres"
[[domain.store.nodes]]
name = "n2"
conninfo = "host=127.0.0.1 port=$P2 dbname=postgres"
[domain.objectives.node_loss]
rpo = "5s"
sources = ["heartbeat", "replication_lag"]
[domain.objectives.corruption]
rpo = "1h"
sources = ["archive"]
DOM
  done
} > "$TMP/objectives.toml"

PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
taskset -c 0 "$BIN" watch "$TMP/objectives.toml" --listen "127.0.0.1:$PORT" 2>"$TMP/watch.log" &
WATCH_PID=$!
sleep 5   # connect and create the heartbeat table

ticks() { awk '{print $14 + $15}' "/proc/$WATCH_PID/stat"; }
HZ=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
max_up_missing=0
for _ in $(seq 1 "$SECS"); do
  sleep 1
  # Probe health on the way: every domain's sources should stay up.
  down=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^firedrill_probe_up\{/ && $NF == 0' | wc -l)
  [ "$down" -gt "$max_up_missing" ] && max_up_missing=$down
done
t1=$(ticks); s1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$WATCH_PID/status")
metrics=$(curl -s "http://127.0.0.1:$PORT/metrics")
ups=$(echo "$metrics" | awk '/^firedrill_probe_up\{/ && $NF == 1' | wc -l)
total=$(echo "$metrics" | awk '/^firedrill_probe_up\{/' | wc -l)
maxexp=$(echo "$metrics" | awk '/^firedrill_exposure_seconds\{.*source="heartbeat"/ { if ($NF > m) m = $NF } END { print m + 0 }')
cpu=$(python3 -c "print(f'{100*($t1-$t0)/$HZ/($s1-$s0):.1f}')")
echo "bench-watch: $N domains, 1 s interval, ${SECS} s on core 0"
echo "  cpu ${cpu}% of one core, rss $((rss / 1024)) MiB"
echo "  probes up at the end: $ups/$total; most probes down in any second: $max_up_missing"
echo "  max heartbeat exposure at the end: ${maxexp} s"
[ "$ups" = "$total" ] || { echo "bench-watch: some probes were down" >&2; exit 1; }
