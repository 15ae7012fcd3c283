#!/usr/bin/env bash
# Install what building sluice needs and a fresh Debian machine lacks: cmake (Pingora's
# zlib-ng builds with it), the curl headers (for the bundled librdkafka), pkg-config.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || need+=(libcurl4-openssl-dev)
command -v cc >/dev/null 2>&1 || need+=(build-essential)

"$(dirname "$0")/apt-install.sh" "${need[@]}"
