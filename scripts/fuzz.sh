#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each, one after the other, one
# libFuzzer process at a time (-jobs=1 -workers=1), and prints each one's
# executions per second, total executions and crashes. Needs the nightly
# toolchain and cargo-fuzz (scripts/install-deps.sh installs cargo-fuzz).
#
# Seeds are read from fuzz/corpus/TARGET; what the fuzzer adds goes to a
# working corpus under the target dir, so the repository's stays small.
# A crash is saved as $WORK/artifacts/TARGET/crash-*: copy it into
# fuzz/regressions/TARGET/ once fixed, and the replay tests keep it fixed.
# libFuzzer stops a target at its first crash.
#
#   scripts/fuzz.sh 600                  # every target, 10 minutes each
#   scripts/fuzz.sh 60 spec_check        # one target
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec_check ledger_decode proxy_api watch_objectives)
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
work="$CARGO_TARGET_DIR/fuzz-work"
root="$PWD"
# FIREDRILL_FUZZ_NO_BUILD=1 runs the binaries as last built (for example
# while the sources are being edited); otherwise they are built first.
[ "${FIREDRILL_FUZZ_NO_BUILD:-}" = 1 ] || cargo +nightly fuzz build -O
bin="$CARGO_TARGET_DIR/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "$work/logs/$t"
  before=$(find "$work/artifacts/$t" -type f | wc -l)
  # -jobs writes the fuzzer's output to fuzz-0.log in the working directory.
  (cd "$work/logs/$t" && rm -f fuzz-0.log &&
    nice -n "${FIREDRILL_FUZZ_NICE:-15}" "$bin/$t" "$work/corpus/$t" "$root/fuzz/corpus/$t" \
      -max_total_time="$secs" -jobs=1 -workers=1 -print_final_stats=1 \
      -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$work/artifacts/$t/" >/dev/null 2>&1) || true
  log="$work/logs/$t/fuzz-0.log"
  after=$(find "$work/artifacts/$t" -type f | wc -l)
  crashes=$((after - before))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  line="$t: ${eps:-?} exec/s, ${execs:-?} executions in ${secs}s, $crashes crashes"
  [ "$crashes" = 0 ] || { line="$line (see $work/artifacts/$t, log $log)"; status=1; }
  echo "$line"
done
exit "$status"
