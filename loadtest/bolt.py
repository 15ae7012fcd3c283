#!/usr/bin/env python3
"""Lay out a built sluice binary by how it runs, with LLVM's BOLT: instrument it, train
it on the same load as the profile-guided build (`pgo.train`), then rewrite it.

    python3 loadtest/bolt.py BINARY [--out BINARY.bolt] [--secs 10] [--keep DIR]

BINARY must keep its relocations (linked with `-Wl,--emit-relocs`) so that BOLT may
move whole functions, not only the blocks within them:

    RUSTFLAGS="$(scripts/pgo-flags.sh)" cargo rustc --release --bin sluice -- \\
        -Clink-arg=-Wl,--emit-relocs

(`cargo rustc` passes the flag to the final crate alone, so the dependencies' builds
are reused.) BOLT comes from Debian (`bolt-16`), installed when missing.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ab  # noqa: E402
import pgo  # noqa: E402
import run  # noqa: E402
from run import MOCK, wait_up  # noqa: E402

BOLT = "/usr/lib/llvm-16/bin/llvm-bolt"
MERGE = "/usr/lib/llvm-16/bin/merge-fdata"

# What the rewrite does with the profile: blocks laid out by the extended TSP order,
# functions ordered so that the hot ones share pages, cold blocks split out of them,
# identical functions folded.
OPTIMIZE = [
    "-reorder-blocks=ext-tsp",
    "-reorder-functions=hfsort+",
    "-split-functions",
    "-split-all-cold",
    "-split-eh",
    "-icf=1",
    "-use-gnu-stack",
    "-dyno-stats",
]


def ensure_bolt():
    if os.path.exists(BOLT):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "bolt-16"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--out", help="the rewritten binary (BINARY.bolt)")
    ap.add_argument("--secs", type=float, default=10, help="seconds of each training scenario")
    ap.add_argument("--keep", help="keep the profile in this folder")
    a = ap.parse_args()
    out = a.out or a.binary + ".bolt"
    ensure_bolt()
    work = tempfile.mkdtemp(prefix="sluice-bolt-")
    inst = os.path.join(work, "sluice.inst")
    prof = os.path.join(work, "prof")
    os.makedirs(prof)
    subprocess.run([BOLT, a.binary, "-instrument", "-o", inst,
                    "-instrumentation-file=" + os.path.join(prof, "sluice.fdata"),
                    "-instrumentation-file-append-pid"], check=True)
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "sluice-loadtest"], cwd=run.ROOT, check=True)
    built = lambda n: os.path.join(run.ROOT, "target", "release", n)
    run.raise_fd_limit()
    procs = []
    try:
        mock, floor = run.start_mock_and_floor(built, work)
        procs += [mock, floor]
        wait_up(f"http://127.0.0.1:{MOCK}/health", "the mock")
        _, sluice, url, path, headers = ab.start(inst, 0, work, 100)
        procs.append(sluice)
        pgo.train(built("loadgen"), url, path, headers, a.secs)
        # The profile is written as the process exits.
        sluice.p.send_signal(2)
        sluice.p.wait(120)
        procs.remove(sluice)
    finally:
        for p in reversed(procs):
            p.stop()
    profiles = glob.glob(os.path.join(prof, "sluice.fdata*"))
    if not profiles:
        raise SystemExit(f"no profile was written in {prof}")
    merged = os.path.join(work, "merged.fdata")
    with open(merged, "wb") as f:
        subprocess.run([MERGE, *profiles], stdout=f, check=True)
    subprocess.run([BOLT, a.binary, "-o", out, "-data=" + merged, *OPTIMIZE], check=True)
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        shutil.copy(merged, os.path.join(a.keep, "sluice.fdata"))
    shutil.rmtree(work, ignore_errors=True)
    run.log(f"wrote {out}")


if __name__ == "__main__":
    main()
