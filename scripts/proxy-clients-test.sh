#!/usr/bin/env bash
# Drives a running firedrill proxy with Toxiproxy clients nobody here wrote:
# toxiproxy-python (PyPI) and toxiproxy-node-client (npm). Fails on the
# first client step that fails.
#
# FIREDRILL_PROXY_CMD: the command that serves the API; the word PORT in it
# is replaced by a free port. Default: the crate's proxy_server example.
#   FIREDRILL_PROXY_CMD='target/debug/firedrill proxy --api 127.0.0.1:PORT' scripts/proxy-clients-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/target/proxy-clients
mkdir -p "$WORK"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if [[ -z "${FIREDRILL_PROXY_CMD:-}" ]]; then
    cargo build -q -p firedrill-proxy --example proxy_server
    FIREDRILL_PROXY_CMD="target/debug/examples/proxy_server --api 127.0.0.1:PORT"
fi
CMD=${FIREDRILL_PROXY_CMD//PORT/$PORT}

echo "== installing clients into $WORK"
if [[ ! -x "$WORK/venv/bin/python" ]]; then
    python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/pip" install -q toxiproxy-python==0.1.1
if [[ ! -f "$WORK/package.json" ]]; then
    (cd "$WORK" && npm init -y >/dev/null)
fi
(cd "$WORK" && npm install --no-audit --no-fund --loglevel=error toxiproxy-node-client@4 >/dev/null)

echo "== starting: $CMD"
# shellcheck disable=SC2086
$CMD >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$PORT/version" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/server.log"; echo "server exited" >&2; exit 1
    fi
    sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$PORT/version" >/dev/null 2>&1; then
    cat "$WORK/server.log"; echo "FAILED: no Toxiproxy API on port $PORT" >&2; exit 1
fi

status=0
echo "== toxiproxy-python"
"$WORK/venv/bin/python" tests/proxy-clients/python_client.py 127.0.0.1 "$PORT" || status=1
echo "== toxiproxy-node-client"
NODE_PATH="$WORK/node_modules" node tests/proxy-clients/node_client.js "http://127.0.0.1:$PORT" || status=1

if [[ $status -ne 0 ]]; then
    echo "FAILED: a client step failed (server log: $WORK/server.log)" >&2
else
    echo "all client steps passed"
fi
exit $status
