#!/usr/bin/env bash
# Install what the load-test harness drives and compares with: wrk (the closed-loop
# load generator) and nginx (one of the two floors).
set -euo pipefail

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)

if [ ${#need[@]} -gt 0 ]; then
    "$(dirname "$0")/apt-install.sh" "${need[@]}"
    # The package starts a system nginx on :80; the harness runs its own.
    systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi
