#!/usr/bin/env python3
"""Two or more sluice builds side by side, in one run, against the Pingora floor.

    python3 loadtest/ab.py BEFORE AFTER [--reps 5] [--secs 5] [--streams 1000 | 0] [--scenario 3]

BEFORE and AFTER are `sluice` binaries built beforehand, for instance:

    git stash && cargo build --release -p sluice && cp target/release/sluice /tmp/sluice-before
    git stash pop && cargo build --release -p sluice

This machine's speed drifts by up to ±20% within minutes, more than most changes
move the numbers, so a change is judged here rather than across two harness runs:
every binary gets the harness's configuration (its own data directory and ports),
then scenario 1 runs against the floor and each binary in turn (the binaries in
reverse order every other round), `--reps` times, and
each target's median is reported with its ratio to the floor, its CPU per request
and the provider mock's CPU per request (which falls when sluice wakes it less).
With `--scenario 4` they are fixed-rate runs (`--rate`, default 1,000 requests a
second, loadgen) against the mock direct and each binary, and the table gives each
target's median p50 and p99 and what each binary adds over direct; `--cpu N` runs
every process of it (mock, floor, binaries, loadgen) on CPU N alone, so no wake-up
crosses between CPUs.
With `--body-kib N` scenario 1's requests are pass-through streams of an N KiB
conversation instead (loadgen, 8 connections), the floor's included: the cost of a
long body, read, checked and edited. Add `--translated` and they go to the translated
route (OpenAI client, Anthropic upstream), so each is parsed and rendered anew; the
floor relays the same body unchanged.
With `--scenario 3` the rounds are translated streams of 50 events (OpenAI client,
Anthropic upstream) instead, driven by `loadgen`, and the floor is the mock's own
stream, direct. Then each binary holds `--streams` translated streams, and the growth of its RSS over
its idle size is divided among them (scenario 5).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from run import CHAT, FLOOR, KEY, MOCK, TRANSLATED, Proc, loadgen, wait_up, wrk  # noqa: E402


def start(binary, i, work, consumers):
    """A configured `sluice all` on ports of its own, restarted on its stored config."""
    admin, proxy = 19280 + 10 * i, 19281 + 10 * i
    run.ADMIN, run.PROXY = admin, proxy
    env = run.sluice_env(work, admin, proxy, 19282 + 10 * i, tag=str(i))
    name = f"{i}:{os.path.basename(binary)}"
    p = Proc(f"sluice{i}", [binary, "all"], env=env, logdir=work)
    wait_up(f"http://127.0.0.1:{proxy}/readyz", name)
    slug, key = run.configure(consumers)
    p.stop()
    p = Proc(f"sluice{i}", [binary, "all"], env=env, logdir=work)
    wait_up(f"http://127.0.0.1:{proxy}/readyz", name)
    headers = {"X-AG-API-Key": key, "X-AG-Gateway-Slug": "bench"}
    path = f"/{slug}/v1/chat/completions"
    run.wait_answering(f"http://127.0.0.1:{proxy}{path}", headers)
    return name, p, f"http://127.0.0.1:{proxy}", path, headers


def long_conversation(size):
    """A streamed Chat Completions request of about `size` bytes, turns of prose with
    escapes and non-ASCII text, that does not ask for the usage chunk: on a pass-through
    route sluice sets `stream_options` in it, as in most OpenAI clients' streams. (The
    body goes to loadgen on its command line, so it stays under Linux's 128 KiB limit
    for one argument.)"""
    prose = ("The function reads the \"config\" file line by line;\nit returns an error when a key "
             "repeats. Café, naïve — and a tab\there. ")
    messages = []
    while len(json.dumps(messages)) < size:
        messages += [{"role": "user", "content": prose * 6}, {"role": "assistant", "content": prose * 3}]
    return {"model": "mock-model", "stream": True, "messages": messages}


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--consumers", type=int, default=10)
    ap.add_argument("--scenario", type=int, choices=(1, 3, 4), default=1)
    ap.add_argument("--rate", type=int, default=1000, help="scenario 4's requests a second")
    ap.add_argument("--cpu", type=int, default=None,
                    help="scenario 4 with every process (mock, targets, loadgen) on this one CPU")
    ap.add_argument("--body-kib", type=int, default=0,
                    help="scenario 1 as streams of a conversation this long (KiB, at most 120)")
    ap.add_argument("--translated", action="store_true",
                    help="with --body-kib, the conversation goes to the translated route")
    a = ap.parse_args()
    built = lambda n: os.path.join(run.ROOT, "target", "release", n)
    run.raise_fd_limit()
    work = tempfile.mkdtemp(prefix="sluice-ab-")
    procs = []
    try:
        mock, floor = run.start_mock_and_floor(built, work)
        procs += [mock, floor]
        wait_up(f"http://127.0.0.1:{MOCK}/health", "the mock")
        streams, fixed = a.scenario == 3, a.scenario == 4
        chunks = {"x-mock-chunks": "50"}
        if fixed:
            targets = [("direct", mock, f"http://127.0.0.1:{MOCK}", "/v1/chat/completions",
                        {"Authorization": f"Bearer {KEY}"})]
        elif streams:
            targets = [("direct", mock, f"http://127.0.0.1:{MOCK}", "/v1/messages",
                        {"Authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01", **chunks})]
        else:
            targets = [("floor", floor, f"http://127.0.0.1:{FLOOR}", "/v1/chat/completions",
                        {"Authorization": f"Bearer {KEY}"})]
        for i, binary in enumerate(a.binaries):
            target = start(os.path.abspath(binary), i, work, a.consumers)
            procs.append(target[1])
            targets.append(target)
        direct_stream = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                         "messages": CHAT["messages"]}

        long = long_conversation(a.body_kib * 1024) if a.body_kib else None
        if long and a.translated:
            long["model"] = TRANSLATED["model"]

        def drive(i, url, path, headers, secs):
            if long:
                r = loadgen(built("loadgen"), url + path, long, {**headers, "x-mock-chunks": "10"},
                            connections=8, duration=secs)
                return {"rps": r["rps"], "requests": r["requests"]}
            if fixed:
                r = loadgen(built("loadgen"), url + path, CHAT, headers, connections=16,
                            duration=secs, rate=a.rate, cpus=pinned)
                return dict(r, p50=r["latency_us"]["p50"], p99=r["latency_us"]["p99"])
            if not streams:
                return wrk(url, path, CHAT, secs, a.conns, headers)
            body = direct_stream if i == 0 else dict(TRANSLATED, stream=True)
            r = loadgen(built("loadgen"), url + path, body, {**headers, **chunks},
                        connections=a.conns, duration=secs)
            return {"rps": r["rps"], "requests": r["requests"]}

        pinned = {a.cpu} if fixed and a.cpu is not None else None
        if pinned:
            for p in procs:
                p.pin(pinned)
        for i, (_, _, url, path, headers) in enumerate(targets):
            drive(i, url, path, headers, 2)

        rows = {t[0]: [] for t in targets}
        for rep in range(a.reps):
            # The binary measured first after the floor did better in every run, by up to
            # 8% in CPU per request: the builds swap places every other round.
            indexed = list(enumerate(targets))
            order = indexed if rep % 2 == 0 else indexed[:1] + indexed[:0:-1]
            for i, (name, proc, url, path, headers) in order:
                cpu, mock_cpu = proc.cpu(), mock.cpu()
                r = drive(i, url, path, headers, a.secs)
                n = max(r["requests"], 1)
                rows[name].append((r["rps"], (proc.cpu() - cpu) * 1e6 / n, (mock.cpu() - mock_cpu) * 1e6 / n,
                                   r.get("p50"), r.get("p99")))
                run.log(f"round {rep + 1}: {name:24s} {r['rps']:8.0f} req/s")
        if fixed:
            print(f"scenario 4, {a.rate} requests a second, median of {a.reps} ({a.secs:.0f} s each):")
            print(f"  {'target':24s} {'p50 µs':>7s} {'p99 µs':>7s} {'+p50':>6s} {'+p99':>6s} {'CPU µs/req':>11s}"
                  f" {'mock µs/req':>12s}")
            d50, d99 = (median([r[k] for r in rows["direct"]]) for k in (3, 4))
            for name, rs in rows.items():
                p50, p99 = (median([r[k] for r in rs]) for k in (3, 4))
                print(f"  {name:24s} {p50:7.0f} {p99:7.0f} {p50 - d50:6.0f} {p99 - d99:6.0f}"
                      f" {median([r[1] for r in rs]):11.1f} {median([r[2] for r in rs]):12.1f}")
            return
        floor_rps = median([r[0] for r in rows[targets[0][0]]])
        what = f"streams of a {a.body_kib} KiB conversation, " if long else ""
        what += "translated, " if long and a.translated else ""
        conns = 8 if long else a.conns
        print(f"scenario {a.scenario}, {what}median of {a.reps} ({a.secs:.0f} s each, {conns} connections):")
        base = "÷" + targets[0][0]
        print(f"  {'target':24s} {'req/s':>8s} {base:>7s} {'CPU µs/req':>11s} {'mock µs/req':>12s}")
        for name, rs in rows.items():
            rps = median([r[0] for r in rs])
            print(f"  {name:24s} {rps:8.0f} {rps / floor_rps:7.2f} {median([r[1] for r in rs]):11.1f}"
                  f" {median([r[2] for r in rs]):12.1f}")

        if a.streams <= 0:
            return  # `--streams 0`: scenario 1 only
        print(f"scenario 5, {a.streams} held translated streams:")
        body = dict(TRANSLATED, stream=True)
        hold = {"x-mock-chunks": "50", "x-mock-delay-ms": "100"}
        for name, proc, url, path, headers in targets[1:]:
            time.sleep(8)  # freed memory goes back to the system first
            base = proc.rss()
            proc.sample()
            r = loadgen(built("loadgen"), url + path, body, {**headers, **hold},
                        connections=a.streams, requests=a.streams, duration=60)
            peak = proc.stop_sampling()
            print(f"  {name:24s} {(peak - base) / 1024 / a.streams:6.1f} KiB a stream "
                  f"({base / 2**20:.1f} → {peak / 2**20:.1f} MiB, {r.get('errors', 0)} errors)")
    finally:
        for p in reversed(procs):
            p.stop()
        # Each server's telemetry file grows by about 1 KiB a request: gigabytes a run.
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
