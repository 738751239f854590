#!/usr/bin/env bash
# Benchmark: firedrill's restore against the bare tools doing the same
# restore by hand, side by side.
#
#   A  `firedrill lab restore LAB --xid X`: the code a drill's `restore`
#      recovery runs (pgbackrest restore, start the server, follow its log
#      and ask it until it has promoted, judge the log);
#   B  `pgbackrest restore` with the same options, `pg_ctl start`, and the
#      server's own replay followed in its log until it says it accepts
#      connections (promoted).
#
# Fair by construction: one lab, its one full backup, the same archived WAL
# (WAL_MB of inserts written after the backup, then a marker transaction,
# archived and never touched again: restores run with --archive-mode=off),
# the same target (just before the marker's xid, --target-exclusive,
# --target-timeline=current, --delta), and each run starts from the same
# state: the server stopped at once (`pg_ctl stop -m immediate`) after the
# previous restore. A and B run in turn, A B A B ..., after one unmeasured
# pair. Prints each pair, the medians, firedrill's overhead in % of the
# bare restore (target <= 5 %), each side's own share of its wall time
# (what is left after pgBackRest's own restore time and the server's own
# start-to-promotion time, read from their logs: on a busy machine the
# replay's variance swamps a few % of wall time, and cancels out here),
# and the replay throughput in MB (10^6 bytes) of WAL per second, from the
# server's own lines ("redo starts at", "redo done at ... elapsed: S s").
# Under load the figures are noisy: quote medians.
#
# Usage:
#   scripts/bench-restore.sh [WAL_MB [ROUNDS]]  all of it, then clean up
#                                               (default 256 MB, 5 rounds)
# Or step by step, to time A and B with another timer (each step then
# includes the immediate stop that follows the restore, in both):
#   scripts/bench-restore.sh prepare DIR [WAL_MB]
#   scripts/bench-restore.sh firedrill DIR
#   scripts/bench-restore.sh bare DIR
#   scripts/bench-restore.sh report DIR
#   scripts/bench-restore.sh down DIR
# FD=path/to/firedrill picks the binary (default: a release build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

fd_bin() {
  if [ -z "${FD:-}" ]; then
    (cd "$ROOT" && cargo build --release --locked -p firedrill >/dev/null)
    FD=$ROOT/target/release/firedrill
  fi
}

# The lab's servers run as postgres when we are root (PostgreSQL refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

load() {
  DIR=$1
  # shellcheck disable=SC1091
  . "$DIR/env"
}

psql_n1() { as_pg "$BIN/psql" -X -A -t -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }

prepare() {
  DIR=$1
  local mb=${2:-256}
  fd_bin
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  cat > "$DIR/bench.toml" <<TOML
[lab]
name = "bench-restore"
dir = "$DIR/lab"
standbys = 1
replication = "async"

[lab.backup]
tool = "pgbackrest"
archive_timeout = "60s"
TOML
  "$FD" lab up "$DIR/bench.toml" >/dev/null
  local st=$DIR/lab/state.json
  BIN=$(python3 -c "import json;print(json.load(open('$st'))['bin_dir'])")
  PORT=$(python3 -c "import json;print(json.load(open('$st'))['nodes'][0]['port'])")
  DATA=$(python3 -c "import json;print(json.load(open('$st'))['nodes'][0]['data_dir'])")
  DATA2=$(python3 -c "import json;print(json.load(open('$st'))['nodes'][1]['data_dir'])")
  CONF=$DIR/lab/backup/pgbackrest.conf
  # WAL written after the lab's backup: inserts until WAL_MB of it.
  psql_n1 -c "CREATE TABLE bench_fill (id bigint, pad text)"
  local start
  start=$(psql_n1 -c "SELECT pg_current_wal_lsn()")
  while :; do
    psql_n1 -c "INSERT INTO bench_fill SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series(1, 100000) g"
    local done_mb
    done_mb=$(psql_n1 -c "SELECT (pg_wal_lsn_diff(pg_current_wal_lsn(), '$start') / 1e6)::int")
    [ "$done_mb" -ge "$mb" ] && break
  done
  # The target: just before this transaction commits.
  XID=$(psql_n1 -c "BEGIN" -c "CREATE TABLE bench_marker ()" \
    -c "SELECT txid_current() % 4294967296" -c "COMMIT")
  psql_n1 -c "INSERT INTO bench_fill SELECT g, 'after the target' FROM generate_series(1, 1000) g"
  local seg
  seg=$(psql_n1 -c "SELECT pg_walfile_name(pg_switch_wal())")
  for _ in $(seq 1 600); do
    [ "$(psql_n1 -c "SELECT coalesce(last_archived_wal, '') >= '$seg' FROM pg_stat_archiver")" = t ] && break
    sleep 0.1
  done
  as_pg "$BIN/pg_ctl" -D "$DATA2" -m fast -w stop >/dev/null
  as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  cat > "$DIR/env" <<ENV
FD=$FD
BIN=$BIN
PORT=$PORT
DATA=$DATA
CONF=$CONF
XID=$XID
ENV
  echo "prepared $DIR: $(du -sh "$DIR/lab/backup/repo" | cut -f1) repository, target: before xid $XID"
}

stop_now() { as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null; }

# A: firedrill's restore, alone.
run_firedrill() {
  "$FD" lab restore "$DIR/lab" --xid "$XID" >> "$DIR/firedrill.out"
  tail -n 3 "$DIR/firedrill.out" | grep -q ": reached" || { echo "firedrill: target not reached" >&2; exit 1; }
}

# B: the bare tools, the same options, the server's own replay, followed
# in its log as it is written (tail -F: no polling to steal CPU from the
# replay, no polling delay at the end).
run_bare() {
  local log=$DIR/bare.log line reached=no ready=no
  touch "$log"
  [ "$(id -u)" = 0 ] && chown postgres "$log"
  as_pg pgbackrest --config="$CONF" --stanza=firedrill --type=xid --target="$XID" \
    --target-exclusive --target-action=promote --delta --target-timeline=current \
    --archive-mode=off restore
  local feed
  exec {feed}< <(exec tail -n 0 -F "$log" 2>/dev/null)
  local tail_pid=$!
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$log" -W start >/dev/null
  while IFS= read -r -t 600 line <&"$feed"; do
    case $line in
      *"recovery stopping before commit of transaction $XID,"*) reached=yes ;;
      *"database system is ready to accept connections"*) ready=yes; break ;;
      *"startup process"*"exited with exit code"*) break ;;
    esac
  done
  kill "$tail_pid" 2>/dev/null || true
  exec {feed}<&-
  [ $ready = yes ] || { echo "bare: the server did not promote" >&2; exit 1; }
  [ $reached = yes ] || { echo "bare: target not reached" >&2; exit 1; }
}

# Replay throughput from the server's own lines, per restore.
report() {
  python3 - "$DIR/bare.log" "$DIR/lab/logs/n1.log" <<'PY'
import re, statistics, sys
def lsn(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)
for path, who in zip(sys.argv[1:], ["bare", "firedrill"]):
    try:
        text = open(path).read()
    except OSError:
        continue
    starts = re.findall(r"redo starts at ([0-9A-F]+/[0-9A-F]+)", text)
    dones = re.findall(r"redo done at ([0-9A-F]+/[0-9A-F]+) .*?elapsed: ([0-9.]+) s", text)
    rates, mbs = [], []
    for s, (d, el) in zip(starts[-len(dones):], dones):
        mb = (lsn(d) - lsn(s)) / 1e6
        if float(el) > 0:
            rates.append(mb / float(el)); mbs.append(mb)
    if rates:
        print(f"replay ({who}, {len(rates)} restores): {statistics.median(mbs):.0f} MB of WAL, "
              f"median {statistics.median(rates):.0f} MB/s (min {min(rates):.0f}, max {max(rates):.0f})")
PY
}

now() { date +%s.%N; }

# The part of one run's wall time that is neither pgBackRest's own restore
# (its log: "completed successfully (N ms)") nor the server's own start,
# replay and promotion (its log: "starting PostgreSQL" to "ready to accept
# connections"): the driver's own share. Far less noisy than the wall time
# on a busy machine, since the replay's variance cancels out.
own() {
  python3 - "$1" "$DIR/lab/backup/log/firedrill-restore.log" "$2" <<'PY'
import re, sys
from datetime import datetime
wall, pgb_log, srv_log = float(sys.argv[1]), open(sys.argv[2]).read(), open(sys.argv[3]).read()
pgb = int(re.findall(r"restore command end: completed successfully \((\d+)ms\)", pgb_log)[-1]) / 1000
stamp = lambda l: datetime.strptime(l[:23], "%Y-%m-%d %H:%M:%S.%f")
lines = srv_log.splitlines()
start = [l for l in lines if "starting PostgreSQL" in l][-1]
ready = [l for l in lines if "database system is ready to accept connections" in l][-1]
print(f"{wall - pgb - (stamp(ready) - stamp(start)).total_seconds():.3f}")
PY
}

bench() {
  local mb=${1:-256} rounds=${2:-5}
  DIR=$(mktemp -d /tmp/firedrill-bench-restore-XXXXXX)
  trap '"$FD" lab down "$DIR/lab" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
  prepare "$DIR" "$mb"
  load "$DIR"
  local a=() b=() oa=() ob=()
  for r in $(seq 0 "$rounds"); do
    local t0 t1 t2 t3 wa wb
    t0=$(now); run_firedrill; t1=$(now); stop_now
    wa=$(echo "$t1 - $t0" | bc); local own_a; own_a=$(own "$wa" "$DIR/lab/logs/n1.log")
    t2=$(now); run_bare; t3=$(now); stop_now
    wb=$(echo "$t3 - $t2" | bc); local own_b; own_b=$(own "$wb" "$DIR/bare.log")
    if [ "$r" = 0 ]; then echo "warm-up pair: firedrill $wa s, bare $wb s"; continue; fi
    a+=("$wa"); b+=("$wb"); oa+=("$own_a"); ob+=("$own_b")
    echo "pair $r: firedrill $wa s (own $own_a s), bare $wb s (own $own_b s)"
  done
  python3 - "${a[*]}" "${b[*]}" "${oa[*]}" "${ob[*]}" <<'PY'
import statistics, sys
a, b, oa, ob = ([float(x) for x in arg.split()] for arg in sys.argv[1:5])
ma, mb = statistics.median(a), statistics.median(b)
pair = statistics.median([x / y for x, y in zip(a, b)])
print(f"median firedrill {ma:.3f} s, median bare {mb:.3f} s, "
      f"median pair ratio {pair:.3f}: firedrill's overhead {100 * (pair - 1):+.1f} % of the restore (target <= 5 %)")
moa, mob = statistics.median(oa), statistics.median(ob)
print(f"own share (wall - pgBackRest's restore - the server's start to promotion): "
      f"firedrill {moa:.3f} s, bare {mob:.3f} s; firedrill's extra {moa - mob:+.3f} s = "
      f"{100 * (moa - mob) / mb:+.1f} % of the bare restore (target <= 5 %)")
PY
  report
}

case "${1:-}" in
  prepare) prepare "$2" "${3:-256}" ;;
  firedrill) load "$2"; run_firedrill; stop_now ;;
  bare) load "$2"; run_bare; stop_now ;;
  report) load "$2"; report ;;
  down) load "$2"; "$FD" lab down "$2/lab" >/dev/null; rm -rf "$2" ;;
  ''|[0-9]*) fd_bin; bench "${1:-256}" "${2:-5}" ;;
  *) sed -n '2,35p' "$0"; exit 2 ;;
esac
