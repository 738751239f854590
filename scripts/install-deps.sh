#!/usr/bin/env bash
# Installs what firedrill needs on a fresh Debian or Ubuntu machine: the
# server packages the labs and tests run for real (PostgreSQL, etcd, Patroni,
# Redis and Sentinel, NATS, pgBackRest), Prometheus (promtool and a real server for `watch`),
# Chromium (the HTML report is tested in a headless browser), a Rust
# toolchain if none is present, and cargo-fuzz. Safe to run again: it only installs what is
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
# redis-benchmark: the side-by-side peer of scripts/bench-redis-workload.sh.
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
# Data-disaster drills: backups and point-in-time restores (Debian: 2.45).
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)
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

# Kafka labs (kind = "kafka") run Apache Kafka from the Maven Central jars
# with the machine's Java: Debian has no Kafka package. The jars are
# fetched once with the dependencies-only pom beside the store's code;
# with the stamp present this does nothing (no mvn, no network).
kafka_pom="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/crates/firedrill-stores/src/kafka/pom.xml"
KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
KAFKA_LIBS="${FIREDRILL_KAFKA_LIBS:-$HOME/.cache/firedrill/kafka-$KAFKA_VERSION/libs}"
kafka_want="$KAFKA_VERSION $(sha256sum "$kafka_pom" | cut -d' ' -f1)"
# A stamp over an emptied jar (one truncated in place) is no stamp.
if [ -n "$(find "$KAFKA_LIBS" -name '*.jar' -size 0 2>/dev/null | head -1)" ]; then rm -f "$KAFKA_LIBS/.firedrill-complete"; fi
if [ ! -f "$KAFKA_LIBS/.firedrill-complete" ] || [ "$(cat "$KAFKA_LIBS/.firedrill-complete")" != "$kafka_want" ]; then
  if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    echo "install-deps: installing Java 17 and Maven for the Kafka labs" >&2
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends openjdk-17-jre-headless maven
  fi
  mkdir -p "$(dirname "$KAFKA_LIBS")"
  ktmp="$(mktemp -d "$(dirname "$KAFKA_LIBS")/.libs.tmp.XXXXXX")"
  kargs=(-q -B -f "$kafka_pom" "-Dkafka.version=$KAFKA_VERSION" dependency:copy-dependencies
    -DincludeScope=runtime "-DoutputDirectory=$ktmp")
  if ! mvn -o "${kargs[@]}" >/dev/null 2>&1; then
    echo "install-deps: fetching the Kafka $KAFKA_VERSION jars from Maven Central" >&2
    rm -rf "${ktmp:?}"/*
    mvn "${kargs[@]}" >&2
  fi
  for must in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" "connect-mirror-$KAFKA_VERSION.jar"; do
    [ -f "$ktmp/$must" ] || { echo "install-deps: $must missing after copy-dependencies" >&2; exit 1; }
  done
  echo "$kafka_want" > "$ktmp/.firedrill-complete"
  rm -rf "$KAFKA_LIBS"
  mv "$ktmp" "$KAFKA_LIBS"
fi

# Outbox capability drills: Debezium's PostgreSQL connector as a Kafka
# Connect plugin (the Kafka lab's `cdc` worker), from Maven Central, beside
# the Kafka jars: the plugin directory holds only Debezium's own jars.
dbz_pom="$(dirname "$kafka_pom")/debezium-pom.xml"
DEBEZIUM_VERSION="${DEBEZIUM_VERSION:-3.6.1.Final}"
DEBEZIUM_DIR="${FIREDRILL_DEBEZIUM_DIR:-$HOME/.cache/firedrill/debezium-$DEBEZIUM_VERSION}"
dbz_want="$DEBEZIUM_VERSION $(sha256sum "$dbz_pom" | cut -d' ' -f1)"
dbz_plugin="$DEBEZIUM_DIR/debezium-connector-postgres"
if [ -n "$(find "$dbz_plugin" -name '*.jar' -size 0 2>/dev/null | head -1)" ]; then rm -f "$dbz_plugin/.firedrill-complete"; fi
if [ ! -f "$dbz_plugin/.firedrill-complete" ] || [ "$(cat "$dbz_plugin/.firedrill-complete")" != "$dbz_want" ]; then
  mkdir -p "$DEBEZIUM_DIR"
  dtmp="$(mktemp -d "$DEBEZIUM_DIR/.plugin.tmp.XXXXXX")"
  dargs=(-q -B -f "$dbz_pom" "-Ddebezium.version=$DEBEZIUM_VERSION" dependency:copy-dependencies
    -DincludeScope=runtime "-DoutputDirectory=$dtmp")
  if ! mvn -o "${dargs[@]}" >/dev/null 2>&1; then
    echo "install-deps: fetching Debezium $DEBEZIUM_VERSION's PostgreSQL connector from Maven Central" >&2
    rm -rf "${dtmp:?}"/*
    mvn "${dargs[@]}" >&2
  fi
  for must in "debezium-connector-postgres-$DEBEZIUM_VERSION.jar" "debezium-connect-plugins-$DEBEZIUM_VERSION.jar"; do
    [ -f "$dtmp/$must" ] || { echo "install-deps: $must missing after copy-dependencies" >&2; exit 1; }
  done
  echo "$dbz_want" > "$dtmp/.firedrill-complete"
  rm -rf "$dbz_plugin"
  mv "$dtmp" "$dbz_plugin"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: no cargo found; installing Debian's rust toolchain" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends cargo rustc
fi

# Fuzzing (scripts/fuzz.sh): cargo-fuzz from crates.io. Its targets build
# with a nightly toolchain (`rustup toolchain install nightly`); the replay
# tests of what it found run on stable with the rest of the suite.
if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo-fuzz" ]; then
  echo "install-deps: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi

# Toxiproxy (Shopify's TCP fault proxy): the external injector the command
# fault's test drives through toxiproxy-cli, and the peer
# scripts/bench-toxiproxy.sh measures firedrill's proxy against. Built with
# the Go toolchain (>= 1.23, which its go.mod asks for) from the Go module
# proxy, into $FIREDRILL_TOXIPROXY_BIN (default
# ~/.cache/firedrill/toxiproxy-<version>/bin) as toxiproxy-server and
# toxiproxy-cli; the test and the benchmark look there, then on PATH.
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.12.0}"
TOXIPROXY_BIN="${FIREDRILL_TOXIPROXY_BIN:-$HOME/.cache/firedrill/toxiproxy-$TOXIPROXY_VERSION/bin}"
if [ ! -x "$TOXIPROXY_BIN/toxiproxy-server" ] || [ ! -x "$TOXIPROXY_BIN/toxiproxy-cli" ]; then
  GO="$(command -v go || true)"
  [ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; }
  go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }
  if [ -z "$GO" ] || [ "$(go_minor "$GO")" -lt 23 ] 2>/dev/null || [ -z "$(go_minor "$GO")" ]; then
    echo "install-deps: Toxiproxy $TOXIPROXY_VERSION needs Go >= 1.23 (found: ${GO:-none}; Debian's golang-go is older): install it from https://go.dev/dl and run this again" >&2
    exit 1
  fi
  echo "install-deps: building Toxiproxy $TOXIPROXY_VERSION with $("$GO" env GOVERSION) into $TOXIPROXY_BIN" >&2
  gtmp="$(mktemp -d)"
  GOBIN="$gtmp" "$GO" install -ldflags "-X github.com/Shopify/toxiproxy/v2.Version=${TOXIPROXY_VERSION#v}" \
    "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" \
    "github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION" >&2
  mkdir -p "$TOXIPROXY_BIN"
  mv "$gtmp/server" "$TOXIPROXY_BIN/toxiproxy-server"
  mv "$gtmp/cli" "$TOXIPROXY_BIN/toxiproxy-cli"
  rm -rf "$gtmp"
fi
