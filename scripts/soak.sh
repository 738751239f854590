#!/usr/bin/env bash
# Soak: `firedrill watch` against a PostgreSQL lab and a Redis lab, and
# `firedrill proxy` carrying pgbench traffic to the PostgreSQL primary while
# a latency toxic is added and removed every few seconds and the proxy is
# disabled and re-enabled now and then. /metrics is scraped every 2 s.
# Every 10 s it samples the RSS, open file descriptors and threads of the
# watch and proxy processes, then prints the growth after warm-up.
#
# Usage: scripts/soak.sh MINUTES [MAX_RSS_GROWTH_PCT]
#   MAX_RSS_GROWTH_PCT  bound on RSS growth after warm-up (default 5); fds
#                       and threads may not grow past their warm-up maximum.
# Exit 0 within the bounds, 1 outside them, 2 on bad usage.
# FD: the firedrill binary (default target/debug/firedrill, built if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-}
BOUND=${2:-5}
[[ "$MINUTES" =~ ^[0-9]+$ && "$MINUTES" -ge 2 ]] || { echo "usage: scripts/soak.sh MINUTES [MAX_RSS_GROWTH_PCT] (MINUTES >= 2)" >&2; exit 2; }
FD=${FD:-${CARGO_TARGET_DIR:-$PWD/target}/debug/firedrill}
[[ -x "$FD" ]] || cargo build -q --locked -p firedrill
WORK=$(mktemp -d /tmp/firedrill-soak-XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$FD" lab down "$WORK/pg" >/dev/null 2>&1 || true
  "$FD" lab down "$WORK/redis" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
node_port() { python3 -c "import json,sys;s=json.load(open('$1/state.json'));print([n for n in s['nodes'] if n['name']==sys.argv[1]][0]['port'])" "$2"; }

cat > "$WORK/pg.toml" <<TOML
[lab]
name = "soak-pg"
dir = "$WORK/pg"
standbys = 1
replication = "async"
TOML
cat > "$WORK/redis.toml" <<TOML
[lab]
name = "soak-redis"
kind = "redis-sentinel"
dir = "$WORK/redis"
standbys = 1
TOML
echo "== labs"
"$FD" lab up "$WORK/pg.toml" >/dev/null
"$FD" lab up "$WORK/redis.toml" >/dev/null
BIN=$(python3 -c "import json;print(json.load(open('$WORK/pg/state.json'))['bin_dir'])")
P1=$(node_port "$WORK/pg" n1); P2=$(node_port "$WORK/pg" n2)
R1=$(node_port "$WORK/redis" n1); R2=$(node_port "$WORK/redis" n2)

cat > "$WORK/objectives.toml" <<TOML
version = 2
[watch]
interval = "1s"
[[domain]]
name = "orders"
[domain.store]
kind = "postgres"
user = "postgres"
[[domain.store.nodes]]
name = "n1"
conninfo = "host=127.0.0.1 port=$P1 dbname=postgres"
[[domain.store.nodes]]
name = "n2"
conninfo = "host=127.0.0.1 port=$P2 dbname=postgres"
[domain.replication]
mode = "async"
[domain.objectives.node]
rpo = "5s"
sources = ["heartbeat"]
[[domain]]
name = "sessions"
[domain.store]
kind = "redis"
[[domain.store.nodes]]
name = "n1"
addr = "127.0.0.1:$R1"
[[domain.store.nodes]]
name = "n2"
addr = "127.0.0.1:$R2"
[domain.replication]
mode = "async"
[domain.objectives.node]
rpo = "5s"
sources = ["replication_lag"]
TOML

WATCH=$(free_port); API=$(free_port); LISTEN=$(free_port)
echo "== watch on 127.0.0.1:$WATCH, proxy API on 127.0.0.1:$API"
FIREDRILL_STATE_DIR="$WORK/state" "$FD" watch "$WORK/objectives.toml" --listen "127.0.0.1:$WATCH" >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!; PIDS+=("$WATCH_PID")
"$FD" proxy --api "127.0.0.1:$API" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!; PIDS+=("$PROXY_PID")
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$API/version" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$WATCH/metrics" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS -X POST "http://127.0.0.1:$API/proxies" \
  -d "{\"name\":\"pg\",\"listen\":\"127.0.0.1:$LISTEN\",\"upstream\":\"127.0.0.1:$P1\",\"enabled\":true}" >/dev/null

SECS=$((MINUTES * 60))
echo "== traffic for $MINUTES min: pgbench through the proxy, toxics, scrapes"
"$BIN/pgbench" -h 127.0.0.1 -p "$P1" -U postgres -i -s 1 -q postgres >/dev/null 2>&1
# pgbench reconnects per transaction (-C) so that every disable/enable and
# every toxic meets new connections too; -R keeps the load moderate.
( end=$((SECONDS + SECS)); while (( SECONDS < end )); do
    "$BIN/pgbench" -h 127.0.0.1 -p "$LISTEN" -U postgres -n -S -C -c 2 -R 100 -T 20 postgres 2>/dev/null \
      | awk '/actually processed/ {print $NF}' | sed 's|/.*||' >> "$WORK/pgbench.txt" || sleep 1
  done ) &
PIDS+=("$!")
( i=0; while true; do
    i=$((i + 1))
    curl -fsS -X POST "http://127.0.0.1:$API/proxies/pg/toxics" \
      -d "{\"name\":\"lat\",\"type\":\"latency\",\"stream\":\"downstream\",\"attributes\":{\"latency\":$((i % 20)),\"jitter\":2}}" >/dev/null 2>&1 || true
    sleep 2
    curl -fsS -X DELETE "http://127.0.0.1:$API/proxies/pg/toxics/lat" >/dev/null 2>&1 || true
    if (( i % 10 == 0 )); then
      curl -fsS -X POST "http://127.0.0.1:$API/proxies/pg" -d '{"enabled":false}' >/dev/null 2>&1 || true
      sleep 1
      curl -fsS -X POST "http://127.0.0.1:$API/proxies/pg" -d '{"enabled":true}' >/dev/null 2>&1 || true
    fi
    sleep 1
  done ) &
PIDS+=("$!")
( while true; do
    curl -fsS "http://127.0.0.1:$WATCH/metrics" >/dev/null 2>&1 || true
    curl -fsS "http://127.0.0.1:$API/metrics" >/dev/null 2>&1 || true
    curl -fsS "http://127.0.0.1:$API/proxies" >/dev/null 2>&1 || true
    sleep 2
  done ) &
PIDS+=("$!")

sample() { # pid -> "rss_kib fds threads"
  local rss thr fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status")
  thr=$(awk '/^Threads:/ {print $2}' "/proc/$1/status")
  fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  echo "$rss $fds $thr"
}
CSV="$WORK/samples.csv"
echo "t_s,process,rss_kib,fds,threads" > "$CSV"
start=$SECONDS
while (( SECONDS - start < SECS )); do
  sleep 10
  t=$((SECONDS - start))
  for pair in "watch:$WATCH_PID" "proxy:$PROXY_PID"; do
    name=${pair%%:*}; pid=${pair##*:}
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "FAILED: $name (pid $pid) exited during the soak" >&2
      tail -20 "$WORK/$name.log" >&2
      exit 1
    fi
    read -r rss fds thr < <(sample "$pid")
    echo "$t,$name,$rss,$fds,$thr" >> "$CSV"
  done
done
TX=$(awk '{s += $1} END {print s + 0}' "$WORK/pgbench.txt" 2>/dev/null || echo 0)
echo "== pgbench: $TX transactions through the proxy"
# The body first, then grep: `curl | grep -q` under pipefail fails when
# grep exits at its match before curl has written the rest (curl: (23)).
METRICS=$(curl -fsS "http://127.0.0.1:$WATCH/metrics" || true)
grep -q 'firedrill_probe_up{.*} 1' <<<"$METRICS" || { echo "FAILED: watch probes nothing up" >&2; exit 1; }
(( TX > 0 )) || { echo "FAILED: no traffic went through the proxy" >&2; exit 1; }
mkdir -p target
cp "$CSV" target/soak-samples.csv
echo "== samples: target/soak-samples.csv"
python3 - "$CSV" "$BOUND" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
bound = float(sys.argv[2])
end = max(int(r["t_s"]) for r in rows)
# Warm-up: the first fifth of the run, at least 60 s (allocator arenas,
# connection pools, the first toxics and reconnects).
warm = max(60, end // 5)
failed = False
for name in ("watch", "proxy"):
    s = [r for r in rows if r["process"] == name]
    after = [r for r in s if int(r["t_s"]) > warm]
    if len(after) < 6:
        print(f"{name}: too few samples after the {warm} s warm-up"); failed = True; continue
    head, tail = after[:3], after[-3:]
    med = lambda rs, k: statistics.median(int(r[k]) for r in rs)
    rss0, rss1 = med(head, "rss_kib"), med(tail, "rss_kib")
    growth = 100.0 * (rss1 - rss0) / rss0
    fd_warm = max(int(r["fds"]) for r in s if int(r["t_s"]) <= warm + 30)
    th_warm = max(int(r["threads"]) for r in s if int(r["t_s"]) <= warm + 30)
    fd_end, th_end = med(tail, "fds"), med(tail, "threads")
    ok = growth <= bound and fd_end <= fd_warm and th_end <= th_warm
    failed |= not ok
    print(f"{name}: RSS {rss0/1024:.1f} -> {rss1/1024:.1f} MiB ({growth:+.2f} %, bound {bound} %), "
          f"fds {fd_end:.0f} (warm-up max {fd_warm}), threads {th_end:.0f} (warm-up max {th_warm}), "
          f"{end} s, {len(s)} samples: {'ok' if ok else 'OUT OF BOUNDS'}")
sys.exit(1 if failed else 0)
PY
