#!/usr/bin/env python3
"""sluice's load-test runner: one command, every scenario, side by side with floors.

    python3 loadtest/run.py                  # the full run (release build, ~10 minutes)
    python3 loadtest/run.py --soak 600       # with the 10-minute soak
    python3 loadtest/run.py --smoke          # a few seconds per scenario (CI)

It builds the binaries, starts the mock provider, the two floors (a bare Pingora
pass-through built from sluice's Pingora version, and nginx as a keep-alive reverse
proxy) and `sluice all` in the embedded default with a realistic config (API-key
auth, a rate limit that never triggers, telemetry to a file, metrics on, 1,000
consumers), then drives each with wrk (closed loop) and loadgen (streams, fixed rate).
Each process gets one worker thread, so on two cores the load generator has the other.

Output: a table per scenario (throughput, p50/p99/p99.9, added latency over direct,
ratio to each floor, peak RSS, CPU time per request from /proc) and the same as JSON
(`--out`, default loadtest/results/latest.json) for comparison across commits.
Numbers are reported, never asserted: the smoke run only checks that every target
answered every request.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wakeup  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOCK, FLOOR, NGINX, ADMIN, PROXY = 19100, 19091, 19090, 19080, 19081
KEY = "sk-bench"
CHAT = {"model": "mock-model", "messages": [{"role": "user", "content": "Say hello in one word."}]}
TRANSLATED = dict(CHAT, model="claude-sonnet-4-5")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def machine_ticks():
    """The machine's CPU time so far, in clock ticks: (all, stolen). Stolen time is what
    the hypervisor gave to someone else while this VM's CPUs wanted to run."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return sum(fields), fields[7]


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else None


def wait_up(url, what, tries=300):
    for _ in range(tries):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not come up at {url}")


class Proc:
    """A child process, with its CPU time and memory from /proc."""

    def __init__(self, name, cmd, env=None, logdir="."):
        self.name = name
        self.log = open(os.path.join(logdir, f"{name}.log"), "w")
        self.p = subprocess.Popen(cmd, env={**os.environ, **(env or {})},
                                  stdout=self.log, stderr=subprocess.STDOUT)
        self.peak = 0
        self._sampling = False

    def family(self):
        """The process and its children (nginx's workers)."""
        pids = [self.p.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == self.p.pid:
                            pids.append(int(entry))
                except (OSError, ValueError):
                    pass
        return pids

    def cpu(self):
        """User + system CPU seconds so far, children included."""
        total = 0
        for pid in self.family():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except OSError:
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def scheduled(self):
        """Per thread, CPU nanoseconds and times scheduled in, from each thread's
        schedstat (exact, where /proc/PID/stat counts in ticks)."""
        out = {}
        for pid in self.family():
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        fields = f.read().split()
                    out[tid] = (int(fields[0]), int(fields[2]))
            except OSError:
                pass
        return out

    def runs(self):
        """Times the process's threads (those alive now) have been put on a CPU."""
        return sum(runs for _, runs in self.scheduled().values())

    def idle_activity(self, secs):
        """What the process does with nothing to do: its share of a CPU and how often a
        thread of it woke, per second (threads that ended meanwhile left out). Each
        wake-up of an idle VM's CPU costs tens of microseconds of CPU time, and a
        server at rest should stay asleep."""
        before = self.scheduled()
        time.sleep(secs)
        after = self.scheduled()
        ns = runs = 0
        for tid, (n, r) in after.items():
            n0, r0 = before.get(tid, (0, 0))
            ns, runs = ns + n - n0, runs + r - r0
        return {"cpu_pct": round(ns / 1e7 / secs, 3), "wakeups_per_s": round(runs / secs, 1)}

    def pin(self, cpus):
        """Every thread of the process and its children onto `cpus` (threads started
        later inherit it from the thread that starts them)."""
        for pid in self.family():
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass

    def rss(self):
        total = 0
        for pid in self.family():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def sample(self):
        """Track peak RSS every 50 ms until stopped."""
        self.peak, self._sampling = self.rss(), True

        def run():
            while self._sampling:
                self.peak = max(self.peak, self.rss())
                time.sleep(0.05)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop_sampling(self):
        self._sampling = False
        self._thread.join()
        return self.peak

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(2)  # SIGINT: Pingora's quick shutdown
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()


def wrk(url, path, body, secs, conns, headers):
    env = {"CHAT_PATH": path, "CHAT_BODY": json.dumps(body),
           "CHAT_HEADERS": "\n".join(f"{k}: {v}" for k, v in headers.items())}
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(secs))}s", "--latency",
                          "-s", os.path.join(ROOT, "loadtest/scripts/chat.lua"), url],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
    res = {"rps": 0.0, "requests": 0, "errors": 0, "latency_us": {}}
    unit = {"us": 1, "ms": 1000, "s": 1_000_000}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec"):
            res["rps"] = float(parts[1])
        elif "requests in" in line:
            res["requests"] = int(parts[0])
        elif line.startswith("  Non-2xx") or line.startswith("  Socket errors"):
            res["errors"] += sum(int(x.rstrip(",")) for x in parts if x.rstrip(",").isdigit())
        elif len(parts) == 2 and parts[0] in ("50%", "75%", "90%", "99%"):
            v = parts[1]
            for u in ("us", "ms", "s"):
                if v.endswith(u):
                    res["latency_us"]["p" + parts[0].rstrip("%")] = float(v[:-len(u)]) * unit[u]
                    break
    return res


def loadgen(binary, url, body, headers, cpus=None, **opts):
    """A loadgen run's JSON; with `cpus`, the load generator runs on those CPUs only."""
    cmd = [binary, "--url", url, "--body", json.dumps(body)]
    for k, v in headers.items():
        cmd += ["--header", f"{k}: {v}"]
    for k, v in opts.items():
        cmd += [f"--{k}", str(v)]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True,
                                     preexec_fn=pin).stdout)


def configure(consumers):
    """The realistic config: a gateway, an OpenAI-wire and an Anthropic registry on the
    mock, a consumer with a key and both models, a rate limit that never triggers, and
    `consumers - 1` more consumers with keys."""
    a = f"http://127.0.0.1:{ADMIN}"
    h = {"authorization": "Bearer bench"}
    gw = http("POST", f"{a}/v1/gateways", {"slug": "bench"}, h)["id"]
    base = f"http://127.0.0.1:{MOCK}/v1"
    regs = {}
    for name, provider in (("mock", "openai_compatible"), ("claude", "anthropic")):
        regs[name] = http("POST", f"{a}/v1/gateways/{gw}/registries",
                          {"name": name, "provider": provider, "provider_options": {"base_url": base},
                           "auth": {"type": "api_key", "api_key": KEY}}, h)["id"]
    c = http("POST", f"{a}/v1/gateways/{gw}/consumers", {"name": "bench", "model_policies": [
        {"registry_id": regs["mock"], "allowed": ["mock-model"], "default": "mock-model"},
        {"registry_id": regs["claude"], "allowed": ["claude-sonnet-4-5"]}]}, h)
    for r in regs.values():
        http("POST", f"{a}/v1/gateways/{gw}/consumers/{c['id']}/registries/{r}", None, h)
    auth = http("POST", f"{a}/v1/gateways/{gw}/auths", {"name": "bench"}, h)
    http("POST", f"{a}/v1/gateways/{gw}/consumers/{c['id']}/auths/{auth['id']}", None, h)
    p = http("POST", f"{a}/v1/gateways/{gw}/policies", {"name": "never", "slug": "rate_limiter",
             "settings": {"limit": 1_000_000_000, "window": 60}}, h)
    http("POST", f"{a}/v1/gateways/{gw}/consumers/{c['id']}/policies/{p['id']}", None, h)
    for i in range(consumers - 1):
        o = http("POST", f"{a}/v1/gateways/{gw}/consumers", {"name": f"tenant {i}"}, h)
        k = http("POST", f"{a}/v1/gateways/{gw}/auths", {"name": f"tenant {i}"}, h)
        http("POST", f"{a}/v1/gateways/{gw}/consumers/{o['id']}/auths/{k['id']}", None, h)
        http("POST", f"{a}/v1/gateways/{gw}/consumers/{o['id']}/registries/{regs['mock']}", None, h)
    return c["slug"], auth["key"]


def raise_fd_limit():
    """1,000 open streams need file descriptors on every side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def sluice_env(work, admin, proxy, mcp, tag=""):
    """The realistic embedded setting: SQLite in `work`, telemetry to a file, metrics on,
    one proxy worker thread."""
    return {"SLUICE_DATA_DIR": f"{work}/data{tag}", "SLUICE_ADMIN_ADDR": f"127.0.0.1:{admin}",
            "SLUICE_PROXY_ADDR": f"127.0.0.1:{proxy}", "SLUICE_MCP_ADDR": f"127.0.0.1:{mcp}",
            "SLUICE_ADMIN_TOKEN": "bench", "SLUICE_LOG": "warn", "SLUICE_PROXY_THREADS": "1",
            "SLUICE_TELEMETRY": "file", "SLUICE_TELEMETRY_FILE": f"{work}/events{tag}.jsonl"}


def wait_answering(url, headers):
    """Wait until the configured route answers: the snapshot is loaded."""
    for _ in range(100):
        try:
            http("POST", url, CHAT, headers)
            return
        except Exception:
            time.sleep(0.1)


def start_mock_and_floor(binary, logdir):
    """The mock provider and the Pingora floor in front of it, one worker thread each."""
    mock = Proc("mock", [binary("mock-provider"), "--addr", f"127.0.0.1:{MOCK}", "--api-key", KEY,
                         "--threads", "1"], logdir=logdir)
    floor = Proc("pingora-floor", [binary("pingora-floor"), "--listen", f"127.0.0.1:{FLOOR}",
                                   "--upstream", f"127.0.0.1:{MOCK}", "--threads", "1"], logdir=logdir)
    return mock, floor


def pgo_flags():
    """The rustc flags of sluice's profile-guided build, empty when it is off
    (scripts/pgo-flags.sh)."""
    return subprocess.run([os.path.join(ROOT, "scripts/pgo-flags.sh")], capture_output=True, text=True,
                          check=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="seconds per scenario, debug build (CI)")
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rate", type=int, default=1000, help="scenario 4's fixed rate")
    ap.add_argument("--streams", type=int, default=1000, help="scenario 5's open streams")
    ap.add_argument("--soak", type=float, default=60, help="scenario 6's seconds (600 for the full soak)")
    ap.add_argument("--consumers", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3, help="runs per target in scenarios 1, 2, 3b and 4 (median kept)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "loadtest/results/latest.json"))
    a = ap.parse_args()
    if a.smoke:
        a.secs, a.conns, a.rate, a.streams, a.soak, a.consumers, a.reps = 2, 8, 200, 100, 3, 20, 1
    profile = "debug" if a.smoke else "release"
    if not a.no_build:
        # The smoke run reuses the test build. `--tests` keeps the dev-dependencies'
        # features in the set, as the test build had them: without it the workspace's
        # binaries resolve to another feature set and a third of the tree is compiled
        # and linked a second time.
        if a.smoke:
            subprocess.run(["cargo", "build", "-q", "--workspace", "--bins", "--tests"], cwd=ROOT, check=True)
        else:
            # The rig (mock, floor, loadgen) as an ordinary release build; sluice as
            # `make run` builds it, with its profile (loadtest/pgo.py).
            subprocess.run(["cargo", "build", "-q", "--release", "-p", "sluice-loadtest"], cwd=ROOT, check=True)
            subprocess.run(["cargo", "build", "-q", "--release", "-p", "sluice"], cwd=ROOT, check=True,
                           env={**os.environ, "RUSTFLAGS": pgo_flags()})
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    binary = lambda n: os.path.join(ROOT, "target", profile, n)
    raise_fd_limit()

    work = tempfile.mkdtemp(prefix="sluice-load-")
    procs = []
    try:
        mock, floor = start_mock_and_floor(binary, work)
        procs += [mock, floor]
        nginx = None
        nginx_bin = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx_bin:
            conf = open(os.path.join(ROOT, "loadtest/nginx-floor.conf")).read()
            conf = conf.replace("daemon on;", "daemon off;").replace("/tmp/sluice-nginx-floor", f"{work}/nginx")
            with open(f"{work}/nginx.conf", "w") as f:
                f.write(conf)
            nginx = Proc("nginx", [nginx_bin, "-p", work, "-c", f"{work}/nginx.conf"], logdir=work)
            procs.append(nginx)
        env = sluice_env(work, ADMIN, PROXY, 19082)
        sluice = Proc("sluice", [binary("sluice"), "all"], env=env, logdir=work)
        procs.append(sluice)
        wait_up(f"http://127.0.0.1:{MOCK}/health", "the mock")
        wait_up(f"http://127.0.0.1:{PROXY}/readyz", "sluice")
        log(f"configuring {a.consumers} consumers ...")
        slug, key = configure(a.consumers)
        # Restart on the stored config: the idle and load numbers are a proxy's, not
        # those of a process that has just taken thousands of admin writes.
        sluice.stop()
        procs.remove(sluice)
        sluice = Proc("sluice", [binary("sluice"), "all"], env=env, logdir=work)
        procs.append(sluice)
        wait_up(f"http://127.0.0.1:{PROXY}/readyz", "sluice")
        sl = {"X-AG-API-Key": key, "X-AG-Gateway-Slug": "bench"}
        direct = {"Authorization": f"Bearer {KEY}"}
        path = f"/{slug}/v1/chat/completions"
        wait_answering(f"http://127.0.0.1:{PROXY}{path}", sl)
        time.sleep(1)
        idle_rss = sluice.rss()
        idle = sluice.idle_activity(1 if a.smoke else 5)
        floors = [("pingora", f"http://127.0.0.1:{FLOOR}", floor)] + \
                 ([("nginx", f"http://127.0.0.1:{NGINX}", nginx)] if nginx else [])
        results = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                            capture_output=True, text=True).stdout.strip(),
                   "smoke": a.smoke, "pgo": None if a.smoke or a.no_build else bool(pgo_flags()),
                   "secs": a.secs, "conns": a.conns,
                   "idle_rss_mib": round(idle_rss / 2**20, 1), "consumers": a.consumers,
                   "idle": idle,
                   # What one process takes to wake another here: the floor under every
                   # proxy's added latency at a fixed rate (loadtest/wakeup.py).
                   "wakeup": wakeup.measure(2000 if a.smoke else 20000),
                   "scenarios": {}}

        def measured(proc, run):
            """Run `run`, returning its result with the process's CPU per request, peak
            RSS, and the share of the machine's CPU time the hypervisor took meanwhile:
            a VM whose CPUs wait for their host wakes every server late, and a run with
            a high share is not comparable with a quiet one."""
            proc.sample()
            before, runs0 = proc.cpu(), proc.runs()
            all0, stolen0 = machine_ticks()
            r = run()
            n = max(r["requests"], 1)
            r["cpu_us_per_request"] = round((proc.cpu() - before) * 1e6 / n, 1)
            # How often the target's threads were put on a CPU, a request: below one
            # when requests queue (closed loop), about two for a proxy at a fixed,
            # moderate rate (the request, then the provider's answer), each after a
            # sleep, where a wake-up costs tens of microseconds of CPU here.
            r["runs_per_request"] = round((proc.runs() - runs0) / n, 2)
            all1, stolen1 = machine_ticks()
            r["steal_pct"] = round((stolen1 - stolen0) * 100 / max(all1 - all0, 1), 1)
            r["peak_rss_mib"] = round(proc.stop_sampling() / 2**20, 1)
            return r

        # Warm every path (pools, caches).
        warm = [(f"http://127.0.0.1:{PROXY}", path, CHAT, sl),
                (f"http://127.0.0.1:{PROXY}", path, TRANSLATED, sl)]
        warm += [(url, "/v1/chat/completions", CHAT, direct) for _, url, _ in floors]
        for url, p, b, h in warm:
            wrk(url, p, b, 1, 4, h)

        def closed(body, floors_too):
            """Closed-loop runs, each target `--reps` times in turn (so a noisy moment
            hits every target alike), keeping each target's median run by throughput."""
            targets = [("direct", mock, f"http://127.0.0.1:{MOCK}", "/v1/chat/completions", CHAT, direct)]
            if floors_too:
                targets += [(n, proc, url, "/v1/chat/completions", CHAT, direct) for n, url, proc in floors]
            targets.append(("sluice", sluice, f"http://127.0.0.1:{PROXY}", path, body, sl))
            runs = {t[0]: [] for t in targets}
            for _ in range(a.reps):
                for name, proc, url, p, b, h in targets:
                    runs[name].append(measured(proc, lambda: wrk(url, p, b, a.secs, a.conns, h)))
            rows = {}
            for name, rs in runs.items():
                rs.sort(key=lambda r: r["rps"])
                rows[name] = dict(rs[len(rs) // 2], runs_rps=[round(r["rps"]) for r in rs])
            return rows

        S = results["scenarios"]
        log("scenario 1: non-streaming, same dialect")
        S["1_same_dialect"] = closed(CHAT, True)
        log("scenario 2: non-streaming, OpenAI client -> Anthropic upstream")
        S["2_translated"] = closed(TRANSLATED, False)
        S["2_translated"].update({k: v for k, v in S["1_same_dialect"].items() if k in ("pingora", "nginx")})

        log("scenario 3: streaming, 50 chunks, translated")
        lg = binary("loadgen")
        chunks = {"x-mock-chunks": "50"}
        stream_body = dict(TRANSLATED, stream=True)
        direct_stream = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                         "messages": CHAT["messages"]}
        S["3_stream_translated"] = {
            "direct": measured(mock, lambda: loadgen(lg, f"http://127.0.0.1:{MOCK}/v1/messages", direct_stream,
                                                     {**direct, "anthropic-version": "2023-06-01", **chunks},
                                                     connections=a.conns, duration=a.secs)),
            "sluice": measured(sluice, lambda: loadgen(lg, f"http://127.0.0.1:{PROXY}{path}", stream_body,
                                                       {**sl, **chunks}, connections=a.conns, duration=a.secs)),
        }

        def fixed_rate(targets, rate):
            """Fixed-rate runs of each target `(name, process, url, body, headers)`,
            `--reps` times in turn, like the closed-loop scenarios: a single run's p50
            moved by tens of microseconds from one minute to the next, as much as the
            proxies add, a p99 is the tenth-worst of a thousand requests, and a run of
            each target in a row let one noisy minute land on one of them alone. Each
            percentile is the median of its runs."""
            runs = {t[0]: [] for t in targets}
            for _ in range(a.reps):
                for name, proc, url, body, h in targets:
                    runs[name].append(measured(proc, lambda: loadgen(lg, url, body, h, connections=16,
                                                                     duration=a.secs, rate=rate)))
            return {name: median_percentiles(rs) for name, rs in runs.items()}

        # Time to first byte without queueing: streams at a fixed, moderate rate.
        srate = max(a.rate // 10, 10)
        log(f"scenario 3b: time to first byte of streams at {srate}/s")
        S["3b_stream_ttfb"] = fixed_rate(
            [("direct", mock, f"http://127.0.0.1:{MOCK}/v1/messages", direct_stream,
              {**direct, "anthropic-version": "2023-06-01", **chunks}),
             ("sluice", sluice, f"http://127.0.0.1:{PROXY}{path}", stream_body, {**sl, **chunks})], srate)

        log(f"scenario 4: fixed rate, {a.rate} requests/s")
        targets = [("direct", mock, f"http://127.0.0.1:{MOCK}/v1/chat/completions", CHAT, direct)]
        targets += [(n, proc, f"{url}/v1/chat/completions", CHAT, direct) for n, url, proc in floors]
        targets.append(("sluice", sluice, f"http://127.0.0.1:{PROXY}{path}", CHAT, sl))
        events = env["SLUICE_TELEMETRY_FILE"]
        time.sleep(0.2)  # the warm-up's events reach the file (a batch waits 25 ms at most)
        events_from = os.path.getsize(events)
        rows = fixed_rate(targets, a.rate)
        time.sleep(0.2)
        rows["sluice"]["own_us"] = own_time(events, events_from)
        S["4_fixed_rate"] = rows

        log(f"scenario 5: {a.streams} concurrent long streams")
        hold = {"x-mock-chunks": "50", "x-mock-delay-ms": "100"}
        base_rss = sluice.rss()
        r = measured(sluice, lambda: loadgen(lg, f"http://127.0.0.1:{PROXY}{path}", stream_body, {**sl, **hold},
                                             connections=a.streams, requests=a.streams, duration=60))
        r["kib_per_stream"] = round((r["peak_rss_mib"] * 2**20 - base_rss) / 1024 / max(a.streams, 1), 1)
        S["5_many_streams"] = {"sluice": r}

        log(f"scenario 6: soak, {a.soak:.0f} s")
        samples, backlog = [], []
        soak = {}

        def soak_run():
            soak["r"] = wrk(f"http://127.0.0.1:{PROXY}", path, CHAT, a.soak, a.conns, sl)
        t = threading.Thread(target=soak_run)
        t.start()
        step = max(a.soak / 20, 0.5)
        while t.is_alive():
            samples.append(sluice.rss())
            backlog.append(telemetry_queue(f"http://127.0.0.1:{PROXY}"))
            time.sleep(step)
        t.join()
        warm = samples[len(samples) // 4:] or samples
        # Growth is the trend of the samples after warm-up, not their highest one: a
        # leak raises every later sample, while one sample taken at a passing peak (a
        # file sink's stall, below, or the half-second rises of up to 1 MiB seen with
        # the queue near empty) reads memory given back a moment later. The highest
        # sample is kept beside it (`peak_growth_pct`).
        growth = trend_pct(warm)
        peak = (max(warm) - warm[0]) / warm[0] * 100 if warm and warm[0] else 0
        # The whole curve, not just its ends: growth that levels off and growth that
        # does not can have the same first and last point. Beside each sample, the
        # events waiting on the telemetry queue: the file sink stalls while the kernel
        # throttles a writer of tens of MB a second, and the queue (bounded, 10,000
        # events of about 1 KiB) holds what comes meanwhile, memory that a sample taken
        # then counts as growth.
        S["6_soak"] = {"sluice": dict(soak["r"], rss_mib_after_warmup=round(warm[0] / 2**20, 1),
                                      rss_mib_max=round(max(warm) / 2**20, 1), growth_pct=round(growth, 1),
                                      peak_growth_pct=round(peak, 1),
                                      rss_mib_samples=[round(x / 2**20, 1) for x in samples],
                                      telemetry_queue_samples=backlog)}

        report(results)
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
        log(f"wrote {a.out}")
        failed = [f"{s}/{t}" for s, rows in S.items() for t, r in rows.items()
                  if r.get("errors") or not r.get("requests")]
        if failed:
            log(f"targets with errors or no answers: {failed}; logs in {work}")
            sys.exit(1)
        shutil.rmtree(work, ignore_errors=True)
    finally:
        for p in reversed(procs):
            p.stop()


def trend_pct(samples):
    """How much the samples grow from first to last along their trend, in percent of
    where the trend starts: the Theil-Sen line (the median of the slopes between every
    two samples), which a steady leak follows whole and a few outlying samples, up or
    down, do not move."""
    n = len(samples)
    if n < 2:
        return 0.0
    slope = statistics.median((samples[j] - samples[i]) / (j - i) for i in range(n) for j in range(i + 1, n))
    start = statistics.median(y - slope * i for i, y in enumerate(samples))
    return slope * (n - 1) / start * 100 if start else 0.0


def telemetry_queue(base):
    """The events waiting on sluice's telemetry queue, from its metrics; None when the
    metrics do not answer (the sample is a side note, not a measure)."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("sluice_telemetry_queue_depth "):
                    return int(float(line.split()[1]))
    except OSError:
        pass
    return None


def median_percentiles(runs):
    """One row for several fixed-rate runs of a target: each latency percentile, the
    throughput and the CPU a request are the median of the runs (each on its own, so
    the p99 is not the one of whichever run had the middle p50); the peak RSS is the
    highest. The runs' p50 and p99, and the p99 of the first byte, are kept to show the
    spread."""
    mid = lambda xs: sorted(xs)[len(xs) // 2]
    row = dict(runs[0])
    for part in ("latency_us", "ttfb_us"):
        row[part] = {k: mid([r[part][k] for r in runs]) for k in runs[0][part]}
    for k in ("rps", "cpu_us_per_request", "runs_per_request", "steal_pct"):
        row[k] = mid([r[k] for r in runs])
    row["requests"] = sum(r["requests"] for r in runs)
    row["errors"] = sum(r["errors"] for r in runs)
    row["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    row["runs_p50_us"] = [r["latency_us"]["p50"] for r in runs]
    row["runs_p99_us"] = [r["latency_us"]["p99"] for r in runs]
    row["runs_ttfb_p99_us"] = [r["ttfb_us"]["p99"] for r in runs]
    return row


def own_time(events, offset):
    """sluice's own account of the requests whose events were written after `offset`
    of its events file: percentiles of each request's whole time in sluice (first byte
    read to last byte written), of the part spent waiting on the provider, and of the
    rest, sluice's own work (`gateway_ms`). Beside the client's added latency it splits
    that into what sluice spent and what the extra hop cost."""
    with open(events, "rb") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    latencies = [json.loads(line)["latency"] for line in lines if line.strip()]
    out = {"requests": len(latencies)}
    for key in ("total_ms", "upstream_ms", "gateway_ms"):
        xs = sorted(l[key] * 1000 for l in latencies)
        if xs:
            out[key[:-3]] = {p: round(xs[min(len(xs) - 1, len(xs) * q // 1000)], 1)
                             for p, q in (("p50", 500), ("p99", 990))}
    return out


def report(results):
    S = results["scenarios"]
    pgo = {True: "profile-guided build", False: "build without profile"}.get(results.get("pgo"), "")
    print(f"commit {results['commit']} {pgo}  idle RSS {results['idle_rss_mib']} MiB with "
          f"{results['consumers']} consumers  ({results['secs']} s, {results['conns']} connections)")
    idle = results.get("idle")
    if idle:
        print(f"idle: {idle['cpu_pct']}% of a CPU, {idle['wakeups_per_s']} wake-ups a second")
    w = results.get("wakeup", {})
    if w:
        print(f"a wake-up round trip: {w.get('same_cpu_us')} µs on one CPU, {w.get('across_cpus_us')} µs "
              f"across CPUs (cpuidle {w.get('cpuidle_driver')}, guest_halt_poll_ns {w.get('guest_halt_poll_ns')})")
    for name, rows in S.items():
        print(f"\n{name}")
        print(f"  {'target':8} {'req/s':>9} {'p50 µs':>8} {'p99 µs':>8} {'p99.9 µs':>9} {'ttfb p99':>9} "
              f"{'+p50':>6} {'+p99':>6} {'+ttfb99':>7} {'CPU µs/req':>10} {'RSS MiB':>8} {'÷pingora':>8} "
              f"{'÷nginx':>7}")
        base = rows.get("direct", {})
        for target, r in rows.items():
            lat = r.get("latency_us", {})
            ttfb = r.get("ttfb_us", {})
            add50 = lat.get("p50", 0) - base.get("latency_us", {}).get("p50", 0) if base and target != "direct" else None
            add99 = lat.get("p99", 0) - base.get("latency_us", {}).get("p99", 0) if base and target != "direct" else None
            addt = ttfb.get("p99", 0) - base.get("ttfb_us", {}).get("p99", 0) \
                if base.get("ttfb_us") and ttfb and target != "direct" else None
            ratio = lambda f: f"{r['rps'] / rows[f]['rps']:.2f}" if f in rows and rows[f].get("rps") and target == "sluice" else ""
            fmt = lambda v: "" if v is None else f"{v:.0f}"
            print(f"  {target:8} {r.get('rps', 0):9.0f} {fmt(lat.get('p50')):>8} {fmt(lat.get('p99')):>8} "
                  f"{fmt(lat.get('p999')):>9} {fmt(ttfb.get('p99')):>9} {fmt(add50):>6} {fmt(add99):>6} {fmt(addt):>7} "
                  f"{r.get('cpu_us_per_request', 0):10.1f} {r.get('peak_rss_mib', 0):8.1f} "
                  f"{ratio('pingora'):>8} {ratio('nginx'):>7}")
            extra = {k: r[k] for k in ("steal_pct", "runs_p50_us", "runs_p99_us", "kib_per_stream", "growth_pct", "peak_growth_pct", "rss_mib_after_warmup", "rss_mib_max", "rss_mib_samples", "telemetry_queue_samples", "own_us", "runs_ttfb_p99_us", "runs_per_request") if k in r}
            if extra:
                print(f"           {extra}")


if __name__ == "__main__":
    main()
