#!/usr/bin/env bash
# The virtualenvs of the official-SDK end-to-end suites: ./.venv-sdk (tests/sdk.rs and
# tests/mcp.rs: the `openai`, `anthropic` and `mcp` packages from PyPI) and
# ./.venv-mcp-legacy (tests/mcp.rs: FastMCP 2 on mcp 1.x, an MCP server of the
# handshake era; it cannot share a virtualenv with mcp 2). Each is reinstalled only
# when its requirements file changes.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing python3-venv"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi

prepare() {
    local venv=$1 reqs=$2
    local stamp="$venv/.requirements"
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$reqs" "$stamp"; then
        return 0
    fi
    echo "preparing $venv from $reqs"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$stamp"
}

prepare .venv-sdk tests/sdk/requirements.txt
prepare .venv-mcp-legacy tests/mcp/legacy-requirements.txt
