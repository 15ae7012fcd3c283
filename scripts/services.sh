#!/usr/bin/env bash
# Make sure the services the test suite talks to are installed and running on loopback:
# PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and Redis on 127.0.0.1:6379;
# and that the Kafka-protocol broker the telemetry tests start themselves (tansu, from
# crates.io; about 11 minutes to build once per machine) is installed.
set -euo pipefail

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
install() {
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# --- Redis ---
command -v redis-server >/dev/null 2>&1 || install redis-server
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

# --- PostgreSQL ---
command -v pg_ctlcluster >/dev/null 2>&1 || install postgresql
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
    # A fresh install asks for passwords on TCP: trust loopback, as the tests expect.
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    $sudo sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload
fi

# --- tansu (Kafka protocol) ---
if ! command -v tansu >/dev/null 2>&1; then
    echo "installing tansu, a Kafka-compatible broker, for the telemetry tests"
    cargo install tansu --locked --features dynostore --quiet
fi

for _ in $(seq 1 50); do
    pg_isready -h 127.0.0.1 -p 5432 -q && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0
    sleep 0.2
done
echo "PostgreSQL or Redis did not come up" >&2
exit 1
