#!/usr/bin/env bash
# The rustc flags of sluice's profile-guided release build, printed for RUSTFLAGS: the
# committed profile (pgo/sluice.profdata, made by loadtest/pgo.py) when this toolchain
# can read it, nothing otherwise (an ordinary release build).
#
# A profile is read by the LLVM that wrote it and by later ones, not by earlier ones, so
# it is used only when rustc's LLVM is at least the major version recorded beside it.
# SLUICE_PGO=0 turns it off.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
profile="$root/pgo/sluice.profdata"
[ "${SLUICE_PGO:-1}" != "0" ] || exit 0
[ -f "$profile" ] && [ -f "$root/pgo/llvm-version" ] || exit 0
have=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
need=$(cut -d. -f1 < "$root/pgo/llvm-version")
[ -n "$have" ] && [ "$have" -ge "$need" ] || exit 0
# A function changed since the profile was taken loses its counts and is built as
# without one; LLVM's warning for each such function is noise here.
echo "-Cprofile-use=$profile -Cllvm-args=-no-pgo-warn-mismatch"
