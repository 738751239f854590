#!/usr/bin/env bash
# Warm versus cold standby, measured: the same primary loss (SIGKILL of the
# primary's whole tree under steady writes, examples/pg-async-crash.toml's
# fault) recovered two ways on one lab:
#   warm  promote the streaming standby (examples/pg-async-crash.toml)
#   cold  restore the newest pgBackRest backup and the archived WAL into a
#         new node (examples/pg-cold-restore.toml; nothing to flush: the
#         primary is gone)
# at two archive_timeout values. Each drill runs TRIALS trials (the lab is
# rebuilt between them, with a fresh full backup); the crash comes CRASH_AT
# after the warmup, longer than the largest archive_timeout, so the archive
# lag at the crash is not capped by the run's own age.
# Writes the table between the markers of docs/warm-vs-cold.md.
#   scripts/warm-vs-cold.sh [TRIALS] [ARCHIVE_TIMEOUT_S ...]
# MODES="cold" runs one kind only; ROWS_FROM=FILE writes the table from
# the rows (rows.tsv) of earlier runs, appended to whatever this run adds.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-3}
shift || true
TIMEOUTS=("$@")
[ ${#TIMEOUTS[@]} -gt 0 ] || TIMEOUTS=(5 30)
CRASH_AT=${CRASH_AT:-40}
export PATH="$HOME/.cargo/bin:$PATH"
cargo build -q -p firedrill
BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug/firedrill
DOC=docs/warm-vs-cold.md

TMP=$(mktemp -d /tmp/firedrill-warm-cold.XXXXXX)
chmod 755 "$TMP"
export FIREDRILL_STATE_DIR="$TMP/state"
cleanup() {
  for f in "$TMP"/lab-*.toml; do
    [ -f "$f" ] && "$BIN" lab down "$f" >/dev/null 2>&1 || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

# The [drill] table of an example, with this run's trials and timing.
drill_of() {
  python3 - "$1" "$TRIALS" "$CRASH_AT" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
d = text[text.index("\n[drill]") + 1:]
d = d.replace("[drill]\n", "[drill]\ntrials = %s\n" % sys.argv[2], 1)
d = re.sub(r'(?m)^at = "5s"', 'at = "%ss"' % sys.argv[3], d)
d = re.sub(r'(?m)^duration = "\d+s"', 'duration = "%ss"' % (int(sys.argv[3]) + 7), d)
d = re.sub(r'(?m)^rpo = .*$', 'rpo = "1h"', d)
print(d)
PY
}

ROWS="$TMP/rows.tsv"
: > "$ROWS"
# ROWS_FROM=FILE: write the table from rows saved by an earlier run.
if [ -n "${ROWS_FROM:-}" ]; then cp "$ROWS_FROM" "$ROWS"; fi
for A in "${TIMEOUTS[@]}"; do
  LAB="$TMP/lab-$A.toml"
  cat > "$LAB" <<LAB
[lab]
name = "warm-cold-$A"
dir = "$TMP/lab-$A"
standbys = 1
replication = "async"

[lab.backup]
tool = "pgbackrest"
archive_timeout = "${A}s"

LAB
  "$BIN" lab up "$LAB" >/dev/null
  for MODE in ${MODES:-warm cold}; do
    case $MODE in
      warm) EX=examples/pg-async-crash.toml ;;
      cold) EX=examples/pg-cold-restore.toml ;;
    esac
    SPEC="$TMP/$MODE-$A.toml"
    { cat "$LAB"; drill_of "$EX"; } > "$SPEC"
    OUT="$TMP/run-$MODE-$A"
    echo "warm-vs-cold: $MODE standby, archive_timeout ${A}s, $TRIALS trials" >&2
    "$BIN" drill "$SPEC" --out "$OUT" > "$OUT.log" 2>&1 || true
    python3 - "$OUT/run.json" "$MODE" "$A" >> "$ROWS" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
for t in run["trials"]:
    r = t.get("restore") or {}
    print("\t".join(str(x) for x in [
        sys.argv[2], sys.argv[3], t["trial"], t["verdict"],
        t["rto"]["achieved_s"], t["rpo"]["achieved_s"], t["rpo"]["lost"],
        r.get("duration_s"), r.get("fetch_s"), r.get("replay_s"),
    ]))
PY
  done
  "$BIN" lab down "$LAB" >/dev/null
done

TABLE="$TMP/table.md"
python3 - "$ROWS" "$TRIALS" "$CRASH_AT" > "$TABLE" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def num(v):
    return None if v in ("None", "") else float(v)
def fmt(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "never"
    return "%.2f s (%.2f–%.2f)" % (statistics.median(vals), min(vals), max(vals))
print("| recovery | archive_timeout | RTO median (min–max) | RPO median (min–max) | lost writes, median | restore (start → promoted), median | trials |")
print("|---|---|---|---|---|---|---|")
keys = []
for r in rows:
    if (r[0], r[1]) not in keys:
        keys.append((r[0], r[1]))
for mode, a in keys:
    rs = [r for r in rows if r[0] == mode and r[1] == a]
    name = "warm: promote the streaming standby" if mode == "warm" else "cold: restore the newest backup into a new node"
    rto = fmt([num(r[4]) for r in rs])
    never = sum(1 for r in rs if num(r[4]) is None)
    if never:
        rto += f", {never} never recovered"
    rpo = fmt([num(r[5]) for r in rs])
    lost = statistics.median([int(r[6]) for r in rs])
    rest = [num(r[7]) for r in rs if num(r[7]) is not None]
    rest = "%.2f s" % statistics.median(rest) if rest else "-"
    print(f"| {name} | {a} s | {rto} | {rpo} | {lost:.0f} | {rest} | {len(rs)} |")
print()
print(f"Crash {sys.argv[3]} s after a 2 s warmup; {sys.argv[2]} trials per row, the lab rebuilt")
print("(with a fresh full backup) before each; medians over the trials that")
print("recovered. Measured on a 2-core machine shared with other builds:")
print("timings are noisy.")
PY

python3 - "$DOC" "$TABLE" <<'PY'
import sys
doc, table = open(sys.argv[1]).read(), open(sys.argv[2]).read()
b, e = "<!-- table:begin -->\n", "<!-- table:end -->"
i, j = doc.index(b) + len(b), doc.index(e)
open(sys.argv[1], "w").write(doc[:i] + table + doc[j:])
PY
cat "$TABLE"
cp "$ROWS" "${ROWS_OUT:-/dev/null}" 2>/dev/null || true
echo "warm-vs-cold: wrote $DOC" >&2
