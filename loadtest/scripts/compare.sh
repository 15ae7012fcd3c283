#!/usr/bin/env bash
# Side by side, in one run: the mock provider called directly, then through `sluice all`
# (embedded default: API-key auth, SQLite, in-process bus), with the same wrk load.
# Prints requests/s and latency for both and the ratio.
#
#   loadtest/scripts/compare.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
conns=${2:-32}
bin=target/release
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p sluice -p sluice-loadtest
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

$bin/mock-provider --addr 127.0.0.1:19100 --api-key sk-bench --threads 1 >"$work/mock.log" 2>&1 &
SLUICE_DATA_DIR=$work/data SLUICE_ADMIN_ADDR=127.0.0.1:19080 SLUICE_PROXY_ADDR=127.0.0.1:19081 \
SLUICE_MCP_ADDR=127.0.0.1:19082 SLUICE_ADMIN_TOKEN=bench SLUICE_LOG=warn SLUICE_PROXY_THREADS=1 \
    $bin/sluice all >"$work/sluice.log" 2>&1 &
for _ in $(seq 100); do curl -sf 127.0.0.1:19081/readyz >/dev/null && curl -sf 127.0.0.1:19100/health >/dev/null && break; sleep 0.1; done

A=http://127.0.0.1:19080; T="Authorization: Bearer bench"; J="content-type: application/json"
id() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
GW=$(curl -s -X POST $A/v1/gateways -H "$T" -H "$J" -d '{"slug":"bench"}' | id id)
REG=$(curl -s -X POST $A/v1/gateways/$GW/registries -H "$T" -H "$J" -d '{"name":"mock","provider":"openai_compatible","provider_options":{"base_url":"http://127.0.0.1:19100/v1"},"auth":{"type":"api_key","api_key":"sk-bench"}}' | id id)
C=$(curl -s -X POST $A/v1/gateways/$GW/consumers -H "$T" -H "$J" -d '{"name":"bench"}')
CID=$(echo "$C" | id id); SLUG=$(echo "$C" | id slug)
AUTH=$(curl -s -X POST $A/v1/gateways/$GW/auths -H "$T" -H "$J" -d '{"name":"bench"}')
AID=$(echo "$AUTH" | id id); KEY=$(echo "$AUTH" | id key)
curl -s -X POST $A/v1/gateways/$GW/consumers/$CID/registries/$REG -H "$T" >/dev/null
curl -s -X POST $A/v1/gateways/$GW/consumers/$CID/auths/$AID -H "$T" >/dev/null
sleep 0.5

run() { # name url path key
    CHAT_PATH=$3 SLUICE_KEY=$4 wrk -t2 -c"$conns" -d"${secs}s" --latency -s loadtest/scripts/chat.lua "$2" >"$work/$1.txt"
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
    p50=$(awk '$1=="50%" {print $2}' "$work/$1.txt")
    p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
    printf '%-8s %12s %10s %10s\n' "$1" "$rps" "$p50" "$p99"
    echo "$rps" >"$work/$1.rps"
}
# Warm both paths (pools, caches) before measuring.
CHAT_PATH=/$SLUG/v1/chat/completions SLUICE_KEY=$KEY wrk -t1 -c4 -d1s -s loadtest/scripts/chat.lua http://127.0.0.1:19081 >/dev/null
printf '%-8s %12s %10s %10s\n' target 'req/s' p50 p99
run direct http://127.0.0.1:19100 /v1/chat/completions ""
run sluice http://127.0.0.1:19081 "/$SLUG/v1/chat/completions" "$KEY"
python3 -c "import sys; d,s=(float(open(f).read()) for f in sys.argv[1:]); print(f'sluice/direct throughput: {s/d:.2f}')" "$work/direct.rps" "$work/sluice.rps"
grep -c '"status":200\|status=200' "$work/sluice.log" >/dev/null || true
