#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: sluice builds and the Pingora floor.

    python3 loadtest/instructions.py [BINARY ...] [--translated] [--secs 10] [--no-floor]

Each BINARY (default: target/release/sluice) runs as `sluice all` with the harness's
configuration under `valgrind --tool=callgrind`, instrumentation off while it starts.
After a warm-up, `callgrind_control -i on` switches counting on, wrk drives scenario 1
(or 2 with `--translated`) through it for `--secs`, counting stops and the total is
divided by the requests wrk completed. The floor is measured the same way.

This machine's timings drift by ±20% within minutes; an instruction count does not
(the same binary, inputs and load give the same count, whatever else the machine is
doing), so a change to the request path is judged here first. It counts user-space
instructions only: system calls and the kernel's network work are not in it. A `rep
movsb` copy counts once per byte, so large copies weigh more here than in time.
Each profile is kept (`--out DIR`) for `callgrind_annotate --inclusive=yes FILE`.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from run import CHAT, FLOOR, KEY, MOCK, TRANSLATED, Proc, wait_up, wrk  # noqa: E402

VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no"]


def answering(url, headers, secs=120):
    """Wait until `url` answers a chat request; a server starting under callgrind is slow."""
    deadline = time.time() + secs
    while True:
        try:
            run.http("POST", url, CHAT, headers)
            return
        except Exception:
            if time.time() > deadline:
                raise SystemExit(f"{url} did not answer")
            time.sleep(0.5)


def counted(proc, out, url, path, body, headers, secs):
    """Warm up uncounted, then count `secs` of load; instructions per request."""
    wrk(url, path, body, 3, 4, headers)
    control = lambda *args: subprocess.run(["callgrind_control", *args, str(proc.p.pid)],
                                           check=True, capture_output=True)
    control("-i", "on")
    r = wrk(url, path, body, secs, 4, headers)
    control("-i", "off")
    control("-d")
    total = 0
    for name in os.listdir(os.path.dirname(out)):
        if name.startswith(os.path.basename(out) + "."):
            with open(os.path.join(os.path.dirname(out), name)) as f:
                for line in f:
                    if line.startswith("totals:"):
                        total += int(line.split()[1])
    if r["requests"] == 0 or r["errors"]:
        raise SystemExit(f"{r['requests']} requests, {r['errors']} errors under callgrind")
    return total / r["requests"], r["requests"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="*")
    ap.add_argument("--translated", action="store_true", help="scenario 2 rather than 1")
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--out", default=None, help="where the profiles are kept")
    a = ap.parse_args()
    built = lambda n: os.path.join(run.ROOT, "target", "release", n)
    binaries = a.binaries or [built("sluice")]
    body = TRANSLATED if a.translated else CHAT
    work = tempfile.mkdtemp(prefix="sluice-instructions-")
    out_dir = a.out or work
    os.makedirs(out_dir, exist_ok=True)
    run.raise_fd_limit()
    mock = Proc("mock", [built("mock-provider"), "--addr", f"127.0.0.1:{MOCK}", "--api-key", KEY,
                         "--threads", "1"], logdir=work)
    procs = [mock]
    rows = []
    try:
        wait_up(f"http://127.0.0.1:{MOCK}/health", "the mock")
        if not a.no_floor:
            out = os.path.join(out_dir, "callgrind.floor")
            floor = Proc("floor", VALGRIND + [f"--callgrind-out-file={out}", built("pingora-floor"),
                                              "--listen", f"127.0.0.1:{FLOOR}", "--upstream",
                                              f"127.0.0.1:{MOCK}", "--threads", "1"], logdir=work)
            procs.append(floor)
            url, path = f"http://127.0.0.1:{FLOOR}", "/v1/chat/completions"
            headers = {"Authorization": f"Bearer {KEY}"}
            answering(url + path, headers)
            rows.append(("floor", *counted(floor, out, url, path, CHAT, headers, a.secs)))
            floor.stop()
        for i, binary in enumerate(binaries):
            admin, proxy = 19280 + 10 * i, 19281 + 10 * i
            run.ADMIN, run.PROXY = admin, proxy
            env = run.sluice_env(work, admin, proxy, 19282 + 10 * i, tag=str(i))
            # Configured natively, then restarted under callgrind on its stored config.
            p = Proc(f"sluice{i}", [binary, "all"], env=env, logdir=work)
            wait_up(f"http://127.0.0.1:{proxy}/readyz", binary)
            slug, key = run.configure(10)
            p.stop()
            out = os.path.join(out_dir, f"callgrind.{i}")
            p = Proc(f"sluice{i}", VALGRIND + [f"--callgrind-out-file={out}", binary, "all"],
                     env=env, logdir=work)
            procs.append(p)
            wait_up(f"http://127.0.0.1:{proxy}/readyz", binary, tries=3000)
            headers = {"X-AG-API-Key": key, "X-AG-Gateway-Slug": "bench"}
            path = f"/{slug}/v1/chat/completions"
            answering(f"http://127.0.0.1:{proxy}{path}", headers)
            url = f"http://127.0.0.1:{proxy}"
            rows.append((f"{i}:{os.path.basename(binary)}",
                         *counted(p, out, url, path, body, headers, a.secs)))
            p.stop()
    finally:
        for p in reversed(procs):
            p.stop()
            time.sleep(0.2)
        if out_dir != work:
            # The profiles are elsewhere; the rest (telemetry files) is not kept.
            shutil.rmtree(work, ignore_errors=True)
    what = "scenario 2 (OpenAI client, Anthropic upstream)" if a.translated else "scenario 1"
    print(f"{what}; the floor always passes scenario 1 through; profiles in {out_dir}")
    print(f"  {'target':24s} {'instructions/request':>21s} {'requests':>9s}")
    for name, per, n in rows:
        print(f"  {name:24s} {per:21,.0f} {n:9d}")


if __name__ == "__main__":
    main()
