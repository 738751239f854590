#!/usr/bin/env bash
# Benchmark: capability operations per second against the single-domain
# workloads run alone on the same labs, side by side in one run.
#
# One lab of labs (examples/checkout-region-loss.toml: PostgreSQL, async
# standby; Redis with Sentinel), no fault. Three drills, in turn, ROUNDS
# times, each with the same clients (4, closed loop) and duration:
#   both     the checkout: an order row, then the session key, per operation
#   orders   a capability of the orders domain alone (the same client code)
#   session  a capability of the session domain alone
# The rate of each is its acknowledged operations per second over the
# measured window (warmup excluded), from run.json's buckets. It prints
# the medians and two ratios:
#   both / (orders + session)        against the sum of the two alone
#   both / (1/(1/orders + 1/session)) against the serial expectation: a
#       closed-loop client writes the order, waits, then writes the
#       session, so an operation takes the two writes' latencies added.
#
# Usage: scripts/bench-capability.sh [ROUNDS] [SECS]   (default 3, 10)
#   FIREDRILL=path: a firedrill binary instead of the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
if [ -z "${FIREDRILL:-}" ]; then
  cargo build --release --locked -p firedrill >/dev/null
  FIREDRILL=${CARGO_TARGET_DIR:-$PWD/target}/release/firedrill
fi
FD=$FIREDRILL
WORK=$(mktemp -d /tmp/firedrill-capbench-XXXXXX)
chmod 755 "$WORK"
cleanup() {
  "$FD" lab down "$WORK/both.toml" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# The example without its faults, its lab in $WORK, the duration set; then
# the two single-domain variants (one target, one domain in the order).
python3 - "$WORK" "$SECS" <<'EOF'
import re, sys
work, secs = sys.argv[1], sys.argv[2]
text = open("examples/checkout-region-loss.toml").read()
text = text.replace("[lab]\n", f'[lab]\ndir = "{work}/lab"\n', 1)
text = re.sub(r'\[\[drill\.faults\]\]\n(?:[^\[\n][^\n]*\n|\n)*', "", text)
text = re.sub(r'duration = "[^"]*"', f'duration = "{secs}s"', text)
open(f"{work}/both.toml", "w").write(text)
targets = re.compile(r'\[\[drill\.targets\]\]\ndomain = "(\w+)"\nrecovery = [^\n]*\n')
for keep in ("orders", "session"):
    t = targets.sub(lambda m: m.group(0) if m.group(1) == keep else "", text)
    t = t.replace('order = ["orders", "session"]', f'order = ["{keep}"]')
    open(f"{work}/{keep}.toml", "w").write(t)
EOF
grep -q '\[\[drill.faults\]\]' "$WORK/both.toml" && { echo "faults left in the spec" >&2; exit 1; }

"$FD" lab up "$WORK/both.toml" >/dev/null
rate() {
  python3 - "$1/run.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
b = r["trials"][0]["buckets"]
w = b[1]["start_s"] - b[0]["start_s"] if len(b) > 1 else 0.1
print(f'{sum(x["ok"] for x in b) / (len(b) * w):.1f}')
EOF
}
declare -A R
for round in $(seq 1 "$ROUNDS"); do
  for v in both orders session; do
    out="$WORK/run-$v-$round"
    "$FD" drill "$WORK/$v.toml" --out "$out" >/dev/null 2>"$out.err" || {
      echo "drill $v failed:" >&2; cat "$out.err" >&2; exit 1; }
    r=$(rate "$out")
    R[$v]="${R[$v]:-} $r"
    echo "round $round  $v  $r ops/s"
  done
done
python3 - "${R[both]}" "${R[orders]}" "${R[session]}" <<'EOF'
import statistics, sys
both, orders, session = (statistics.median(map(float, a.split())) for a in sys.argv[1:4])
serial = 1 / (1 / orders + 1 / session)
print(f"median ops/s: checkout {both:.0f}, orders alone {orders:.0f}, session alone {session:.0f}")
print(f"checkout / (orders + session) = {both / (orders + session):.2f}")
print(f"checkout / serial expectation {serial:.0f} = {both / serial:.2f}")
EOF
