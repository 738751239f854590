#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, checks
# formatting and lints, then runs every test. Integration tests start real
# PostgreSQL servers on free loopback ports; with CI=true a missing server
# binary fails them instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# CI builds a clean clone once: incremental state would only be written,
# never reused.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
# Drill tests measure timings: they serialise themselves inside their binary.
# --no-fail-fast: one failing binary does not hide the others' results.
mkdir -p target
set +e
cargo test --workspace --locked --no-fail-fast -- --test-threads=2 2>&1 | tee target/test.log
status=${PIPESTATUS[0]}
# Five minutes of watch and proxy under traffic and toxics: no leak. It
# measures growth, not time, so the clients' test runs beside it.
FD=target/debug/firedrill ./scripts/soak.sh 5 >target/soak.log 2>&1 &
soak_pid=$!
# Toxiproxy clients nobody here wrote (PyPI, npm) against `firedrill proxy`.
FIREDRILL_PROXY_CMD='target/debug/firedrill proxy --api 127.0.0.1:PORT' ./scripts/proxy-clients-test.sh
clients=$?
wait "$soak_pid"
soak=$?
cat target/soak.log
set -e
extra_p=0 extra_f=0
for r in "$clients" "$soak"; do
  if [ "$r" = 0 ]; then extra_p=$((extra_p + 1)); else extra_f=$((extra_f + 1)); status=1; fi
done
# One closing line for the whole suite (cargo's last line is the doc tests').
awk -v xp="$extra_p" -v xf="$extra_f" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p + xp, f + xf }' target/test.log
exit "$status"
