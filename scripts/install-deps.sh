#!/usr/bin/env bash
# Installs what firedrill needs on a fresh Debian or Ubuntu machine: the
# server packages the labs and tests run for real (PostgreSQL, etcd, Patroni,
# Redis and Sentinel, NATS), Prometheus (promtool and a real server for `watch`),
# Chromium (the HTML report is tested in a headless browser), and a Rust
# toolchain if none is present. Safe to run again: it only installs what is
# missing.
set -euo pipefail

need=()
pg_ok=false
for d in /usr/lib/postgresql/*/bin; do
  if [ -x "$d/postgres" ] && [ -x "$d/pg_basebackup" ] && [ -x "$d/pgbench" ]; then pg_ok=true; fi
done
$pg_ok || need+=(postgresql postgresql-contrib)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# etcd and Patroni labs (Debian: etcd-server 3.4, patroni 3.0).
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v patroni >/dev/null 2>&1 || need+=(patroni)
# Redis labs (kind = "redis-sentinel") run these; labs never use the
# packages' own services on 6379/26379.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The HTML report's browser test opens report.html in headless Chromium.
[ -x /usr/bin/chromium ] || need+=(chromium)
# firedrill watch's tests check the generated rules and fire real alerts.
command -v promtool >/dev/null || need+=(prometheus)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: no cargo found; installing Debian's rust toolchain" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends cargo rustc
fi
