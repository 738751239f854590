#!/usr/bin/env bash
# The main job on the default example: installs what is missing, builds
# firedrill, starts the lab, runs the drill, prints the summary, and takes
# the lab down again (also when the drill fails or is interrupted).
# Usage: scripts/quickstart.sh [EXAMPLE.toml]   (default examples/pg-async-crash.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p firedrill
fd=./target/release/firedrill
spec=${1:-examples/pg-async-crash.toml}

trap '$fd lab down "$spec" >/dev/null || true' EXIT
$fd lab up --reset "$spec"
set +e
$fd drill "$spec"
code=$?
set -e
echo "firedrill drill exited with $code (0 objectives met, 1 violated, 2 bad input, 3 inconclusive)"
exit $code
