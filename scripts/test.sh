#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, checks
# formatting and lints, then runs every test. Integration tests start real
# PostgreSQL servers on free loopback ports; with CI=true a missing server
# binary fails them instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
# Drill tests measure timings: they serialise themselves inside their binary.
mkdir -p target
set +e
cargo test --workspace --locked -- --test-threads=2 2>&1 | tee target/test.log
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo's last line is the doc tests').
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' target/test.log
exit "$status"
