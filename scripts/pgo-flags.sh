#!/usr/bin/env bash
# The rustc flags of sluice's profile-guided release build, printed for RUSTFLAGS: the
# committed profile (pgo/sluice.profdata, made by loadtest/pgo.py) when this toolchain
# can read it, nothing otherwise (an ordinary release build).
#
# A profile is read by the LLVM that wrote it and by later ones, not by earlier ones, so
# it is used only when rustc's LLVM is at least the major version recorded beside it.
# SLUICE_PGO=0 turns it off. With --check it also compiles a small program with those
# flags, so that a profile this toolchain cannot read fails the test run rather than
# the first `make run`.
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
flags="-Cprofile-use=$profile -Cllvm-args=-no-pgo-warn-mismatch"
if [ "${1:-}" = "--check" ]; then
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    echo 'fn main() { println!("{}", std::env::args().count()); }' > "$dir/main.rs"
    # rustc only warns of a profile it cannot read: any word from it is a failure.
    # shellcheck disable=SC2086
    if ! rustc -O $flags -o "$dir/main" "$dir/main.rs" 2>"$dir/err" || [ -s "$dir/err" ]; then
        echo "the profile $profile does not build with this toolchain:" >&2
        cat "$dir/err" >&2
        exit 1
    fi
    "$dir/main" >/dev/null
fi
echo "$flags"
