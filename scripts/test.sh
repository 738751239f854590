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
# Drill tests measure timings: they run one at a time inside their binary.
cargo test --workspace --locked -- --test-threads=2
