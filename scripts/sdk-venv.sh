#!/usr/bin/env bash
# The virtualenv of the official-SDK end-to-end suite (tests/sdk.rs): the `openai` and
# `anthropic` packages from PyPI in ./.venv-sdk. Reinstalled only when
# tests/sdk/requirements.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-sdk
reqs=tests/sdk/requirements.txt
stamp="$venv/.requirements"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$reqs" "$stamp"; then
    exit 0
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing python3-venv"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi
echo "preparing $venv with the official SDKs"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
cp "$reqs" "$stamp"
