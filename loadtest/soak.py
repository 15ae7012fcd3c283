#!/usr/bin/env python3
"""RSS of one `sluice all` under scenario 1 for a long while, round by round.

    python3 loadtest/soak.py [BINARY] [--rounds 30] [--secs 20]

The harness's soak (`run.py --soak`) reports growth after its first sample; this
prints the whole curve of a fresh process (the harness's configuration, 1,000
consumers), so a warm-up that takes minutes can be told from a leak.
"""

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ab  # noqa: E402
import run  # noqa: E402
from run import CHAT, MOCK, wait_up, wrk  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default=os.path.join(run.ROOT, "target", "release", "sluice"))
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--secs", type=float, default=20)
    a = ap.parse_args()
    built = lambda n: os.path.join(run.ROOT, "target", "release", n)
    run.raise_fd_limit()
    work = tempfile.mkdtemp(prefix="sluice-soak-")
    procs = []
    try:
        mock, floor = run.start_mock_and_floor(built, work)
        procs += [mock, floor]
        wait_up(f"http://127.0.0.1:{MOCK}/health", "the mock")
        _, sluice, url, path, headers = ab.start(os.path.abspath(a.binary), 0, work, 1000)
        procs.append(sluice)
        print(f"idle: {sluice.rss() / 2**20:.1f} MiB", flush=True)
        for i in range(a.rounds):
            r = wrk(url, path, CHAT, a.secs, 32, headers)
            print(f"{(i + 1) * a.secs:6.0f} s {r['rps']:8.0f} req/s  RSS {sluice.rss() / 2**20:6.1f} MiB",
                  flush=True)
    finally:
        for p in reversed(procs):
            p.stop()
        # The telemetry file grows by about 1 KiB a request: tens of GB in ten minutes.
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
