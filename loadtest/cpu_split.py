#!/usr/bin/env python3
"""Where a request's CPU goes, kernel included: sluice beside the nginx floor.

    python3 loadtest/cpu_split.py [BINARY] [--secs 8] [--out DIR]

`instructions.py` counts user-space instructions only; this samples real time. Each
of `sluice all` (BINARY, default target/release/sluice, with the harness's
configuration) and nginx's worker is driven with scenario 1 while `perf record -e
cpu-clock` samples it (a software clock, so it works where hardware counters are not
offered), and each one's CPU per request is split into the kernel's share (the
network stack, wake-ups, scheduling) and its own code's and libc's. The profiles are
kept (`perf report -i DIR/perf.sluice.data --sort sym`). Needs `perf` (Debian's
linux-perf).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ab  # noqa: E402
import run  # noqa: E402
from run import CHAT, KEY, MOCK, NGINX, Proc, wait_up, wrk  # noqa: E402

HZ = 2000


def shares(data):
    """Samples by shared object: (kernel, own binary and libraries, total)."""
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "-n", "--sort", "dso",
                          "-g", "none", "--stdio"], capture_output=True, text=True).stdout
    kernel = user = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("%") and parts[1].isdigit():
            if "kernel" in parts[2]:
                kernel += int(parts[1])
            else:
                user += int(parts[1])
    return kernel, user


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default=os.path.join(run.ROOT, "target", "release", "sluice"))
    ap.add_argument("--secs", type=float, default=8)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if not shutil.which("perf"):
        raise SystemExit("perf is missing: apt-get install -y linux-perf")
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    built = lambda n: os.path.join(run.ROOT, "target", "release", n)
    run.raise_fd_limit()
    work = tempfile.mkdtemp(prefix="sluice-cpu-split-")
    out = a.out or work
    os.makedirs(out, exist_ok=True)
    procs = []
    try:
        mock, floor = run.start_mock_and_floor(built, work)
        procs += [mock, floor]
        wait_up(f"http://127.0.0.1:{MOCK}/health", "the mock")
        conf = open(os.path.join(run.ROOT, "loadtest/nginx-floor.conf")).read()
        conf = conf.replace("daemon on;", "daemon off;").replace("/tmp/sluice-nginx-floor", f"{work}/nginx")
        with open(f"{work}/nginx.conf", "w") as f:
            f.write(conf)
        nginx = Proc("nginx", [nginx_bin, "-p", work, "-c", f"{work}/nginx.conf"], logdir=work)
        procs.append(nginx)
        _, sluice, url, path, headers = ab.start(os.path.abspath(a.binary), 0, work, 10)
        procs.append(sluice)
        wait_up(f"http://127.0.0.1:{NGINX}/health", "nginx", tries=50)
        workers = subprocess.run(["pgrep", "-P", str(nginx.p.pid)], capture_output=True, text=True).stdout.split()
        if not workers:
            raise SystemExit("no nginx worker found")
        targets = [("sluice", sluice.p.pid, url, path, headers),
                   ("nginx", int(workers[0]), f"http://127.0.0.1:{NGINX}", "/v1/chat/completions",
                    {"Authorization": f"Bearer {KEY}"})]
        print(f"scenario 1, {a.secs:.0f} s each, perf record -e cpu-clock -F {HZ}:")
        print(f"  {'target':8s} {'req/s':>8s} {'CPU µs/req':>11s} {'kernel':>8s} {'user':>8s}")
        for name, pid, u, p, h in targets:
            wrk(u, p, CHAT, 2, 32, h)
            data = os.path.join(out, f"perf.{name}.data")
            rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", str(HZ), "-p", str(pid),
                                    "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            r = wrk(u, p, CHAT, a.secs, 32, h)
            time.sleep(0.2)
            rec.send_signal(2)
            rec.wait()
            kernel, user = shares(data)
            # Samples span the recording, a little longer than the load: per request,
            # the figures are slightly high, alike for both.
            per = lambda n: n / HZ * 1e6 / max(r["requests"], 1)
            print(f"  {name:8s} {r['rps']:8.0f} {per(kernel + user):11.1f} {per(kernel):8.1f} {per(user):8.1f}")
        print(f"profiles in {out}")
    finally:
        for p in reversed(procs):
            p.stop()
        if out != work:
            # The profiles are elsewhere; the rest (telemetry files) is not kept.
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
