#!/usr/bin/env bash
# Benchmark: firedrill's closed-loop workload against pgbench running the
# same INSERT (same table, same 64-byte payload, same client count, one
# connection per client, prepared statements) on the same lab primary, side
# by side, alternating, ROUNDS times. Prints each TPS figure, the medians and
# the ratio firedrill/pgbench (target >= 0.95).
#
# Usage: scripts/bench-workload.sh [CLIENTS] [SECONDS] [ROUNDS]
#   FIREDRILL=path: a firedrill binary instead of the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-4}
SECS=${2:-10}
ROUNDS=${3:-5}
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
name = "bench"
dir = "$WORK/lab"
standbys = 1
replication = "async"

[drill]
name = "bench"
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
STATE="$WORK/lab/state.json"
BIN=$(python3 -c "import json;print(json.load(open('$STATE'))['bin_dir'])")
PORT=$(python3 -c "import json;s=json.load(open('$STATE'));print([n for n in s['nodes'] if n['name']=='n1'][0]['port'])")
PAYLOAD=$(python3 -c "print('\\\\x' + '5a'*64)")
cat > "$WORK/insert.sql" <<SQL
\set seq random(1, 2000000000)
INSERT INTO firedrill_ledger (run_id, seq, payload) VALUES ('pgbench', :seq, '$PAYLOAD'::bytea);
SQL
# The table exists once firedrill has run; create it here for the first pgbench round.
"$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc \
  "CREATE TABLE IF NOT EXISTS firedrill_ledger (run_id text NOT NULL, seq bigint NOT NULL, payload bytea)" >/dev/null

fd_tps=(); pg_tps=()
for r in $(seq 1 "$ROUNDS"); do
  out="$WORK/run-$r"
  # firedrill: acknowledged writes per second over the measured window
  # (after warmup). The lab is not rebuilt: no fault was injected.
  rm -f "$WORK/lab/drilled"
  $FD drill "$WORK/bench.toml" --out "$out" >/dev/null
  t=$(python3 - "$out/run.json" <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))
b=r["trials"][0]["buckets"]
ok=sum(x["ok"] for x in b)
print(f"{ok/(len(b)*0.1):.0f}")
PY
)
  fd_tps+=("$t")
  p=$("$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -f "$WORK/insert.sql" postgres 2>/dev/null \
      | awk '/^tps/ {print int($3)}')
  pg_tps+=("$p")
  echo "round $r: firedrill $t ops/s, pgbench $p tps"
  "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "TRUNCATE firedrill_ledger" >/dev/null
done
python3 - "${fd_tps[*]}" "${pg_tps[*]}" <<'PY'
import statistics,sys
f=[float(x) for x in sys.argv[1].split()]
p=[float(x) for x in sys.argv[2].split()]
mf,mp=statistics.median(f),statistics.median(p)
print(f"median firedrill {mf:.0f} ops/s, median pgbench {mp:.0f} tps, ratio {mf/mp:.3f} (target >= 0.95)")
PY
