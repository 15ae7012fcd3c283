#!/usr/bin/env python3
"""How long one process takes to wake another on this machine: the floor under any
proxy's added latency at a fixed, moderate rate.

    python3 loadtest/wakeup.py [--trips 20000] [--reps 3]

Two processes pass one byte back and forth over pipes, pinned to the same CPU and then
to different CPUs; each round trip is two wake-ups. On one CPU a wake-up is a context
switch. Across CPUs the woken CPU is usually idle, and on a VM an idle CPU may have
halted: waking it goes through the hypervisor. A request through a proxy wakes two
more processes than one sent straight to the provider, so at a rate low enough for
every process to sleep between requests, the proxy's added latency cannot be less
than about one cross-CPU round trip, whatever the proxy does. The guest's idle
polling (`cpuidle` driver `haltpoll`, `guest_halt_poll_ns`), which spins for a while
before halting, is printed too: it decides most of this cost.
"""

import argparse
import os
import statistics
import time


def round_trip_us(cpu_a, cpu_b, trips):
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {cpu_b})
        for _ in range(trips):
            os.write(from_child, os.read(to_child, 1))
        os._exit(0)
    os.sched_setaffinity(0, {cpu_a})
    start = time.perf_counter()
    for _ in range(trips):
        os.write(from_parent, b"x")
        os.read(to_parent, 1)
    elapsed = time.perf_counter() - start
    os.waitpid(pid, 0)
    for fd in (to_child, from_parent, to_parent, from_child):
        os.close(fd)
    return elapsed / trips * 1e6


def measure(trips=20000, reps=3):
    """The machine's wake-up costs: the median round trip on one CPU and across two, in
    µs, and the guest's idle-polling setting."""
    cpus = sorted(os.sched_getaffinity(0))
    mine = os.sched_getaffinity(0)
    out = {"cpuidle_driver": read("/sys/devices/system/cpu/cpuidle/current_driver"),
           "guest_halt_poll_ns": read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")}
    pairs = [("same_cpu", cpus[0], cpus[0])] + ([("across_cpus", cpus[0], cpus[1])] if len(cpus) > 1 else [])
    try:
        for name, x, y in pairs:
            try:
                runs = [round_trip_us(x, y, trips) for _ in range(reps)]
            except OSError as e:  # a sandbox that forbids pinning
                out[f"{name}_error"] = str(e)
                continue
            out[f"{name}_us"] = round(statistics.median(runs), 1)
            out[f"{name}_runs_us"] = [round(r, 1) for r in runs]
    finally:
        os.sched_setaffinity(0, mine)
    return out


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trips", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    m = measure(a.trips, a.reps)
    print(f"cpuidle driver {m['cpuidle_driver']}, guest_halt_poll_ns {m['guest_halt_poll_ns']}")
    for name, key in (("same CPU", "same_cpu"), ("across CPUs", "across_cpus")):
        if f"{key}_us" in m:
            runs = ", ".join(f"{r:.1f}" for r in m[f"{key}_runs_us"])
            print(f"{name:12} {m[key + '_us']:7.1f} µs a round trip (runs {runs})")

if __name__ == "__main__":
    main()
