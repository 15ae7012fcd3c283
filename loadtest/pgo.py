#!/usr/bin/env python3
"""A profile-guided build of sluice: train an instrumented build on the harness's
scenarios, then build with the profile.

    python3 loadtest/pgo.py [--secs 10] [--out pgo/sluice.profdata] [--no-build]

Steps:
1. `cargo build --release` of `sluice` with `-Cprofile-generate` into `target/pgo-gen`
   (its own target directory, so the ordinary release build is left alone);
2. that binary runs as `sluice all` with the harness's configuration and serves, in
   turn, scenario 1 (same dialect), scenario 2 (translated), translated streams, the
   Anthropic Messages and OpenAI Responses client dialects (whole and streamed) and a
   fixed-rate run, all against the mock provider;
3. it stops with SIGINT (its profile is written as it exits) and `llvm-profdata merge`
   turns the raw profiles into `--out`.

`make release` builds with that profile when it exists (`-Cprofile-use`). The profile
is a measurement of the code it was taken on: after a change to the request path it
goes stale function by function (LLVM drops a function's counts when its shape has
changed), so retake it (`make pgo`) after such a change, before measuring.

`llvm-profdata` comes with the toolchain's `llvm-tools` component, which this script
adds with rustup when it is missing: its version must match rustc's LLVM.
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
import run  # noqa: E402
from run import CHAT, KEY, MOCK, TRANSLATED, loadgen, wait_up, wrk  # noqa: E402


def rustc_field(name):
    """A field of `rustc -vV` (`host`, `LLVM version`)."""
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(name + ":"))


def profdata_tool():
    """The toolchain's own llvm-profdata (a system one reads another LLVM's format)."""
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True,
                             check=True).stdout.strip()
    host = rustc_field("host")
    tool = os.path.join(sysroot, "lib", "rustlib", host, "bin", "llvm-profdata")
    if not os.path.exists(tool):
        subprocess.run(["rustup", "component", "add", "llvm-tools"], check=True)
    return tool


def train(lg, url, path, headers, secs):
    """Serve the training load through the sluice at `url`: scenarios 1 and 2, translated
    streams, the Messages and Responses client dialects whole and streamed, a fixed rate."""
    stream = dict(TRANSLATED, stream=True)
    chunks = {"x-mock-chunks": "50"}
    run.log("training: scenario 1, same dialect")
    wrk(url, path, CHAT, secs, 32, headers)
    run.log("training: scenario 2, translated")
    wrk(url, path, TRANSLATED, secs, 32, headers)
    run.log("training: translated streams")
    loadgen(lg, url + path, stream, {**headers, **chunks}, connections=32, duration=secs)
    # The other client dialects, so that their paths are not left to guesses.
    base = path.rsplit("/v1/", 1)[0]
    messages = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": CHAT["messages"]}
    responses = {"model": "mock-model", "input": "Say hello in one word."}
    for api, body in (("messages", messages), ("responses", responses)):
        run.http("POST", f"{url}{base}/v1/{api}", body, headers)  # raises unless it answers 200
        run.log(f"training: /v1/{api}, whole and streamed")
        wrk(url, f"{base}/v1/{api}", body, secs / 2, 32, headers)
        loadgen(lg, f"{url}{base}/v1/{api}", dict(body, stream=True), {**headers, **chunks},
                connections=32, duration=secs / 2)
    run.log("training: fixed rate")
    loadgen(lg, url + path, CHAT, headers, connections=16, duration=secs, rate=1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secs", type=float, default=10, help="seconds of each scenario")
    ap.add_argument("--out", default=os.path.join(run.ROOT, "pgo", "sluice.profdata"))
    ap.add_argument("--no-build", action="store_true", help="reuse target/pgo-gen's binary")
    a = ap.parse_args()
    tool = profdata_tool()
    raw = tempfile.mkdtemp(prefix="sluice-pgo-raw-")
    target = os.path.join(run.ROOT, "target", "pgo-gen")
    if not a.no_build:
        # Build scripts are instrumented too and write their profiles as they run: to a
        # folder of their own, out of the merge.
        env = {**os.environ, "RUSTFLAGS": f"-Cprofile-generate={os.path.join(raw, 'build')}"}
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "sluice", "--target-dir", target],
                       cwd=run.ROOT, env=env, check=True)
    # The mock, the floor and loadgen are the ordinary release build's.
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "sluice-loadtest"], cwd=run.ROOT, check=True)
    built = lambda n: os.path.join(run.ROOT, "target", "release", n)
    run.raise_fd_limit()
    work = tempfile.mkdtemp(prefix="sluice-pgo-")
    procs = []
    try:
        mock, floor = run.start_mock_and_floor(built, work)
        procs += [mock, floor]
        wait_up(f"http://127.0.0.1:{MOCK}/health", "the mock")
        # The instrumented binary writes where `-Cprofile-generate` pointed at build time;
        # LLVM_PROFILE_FILE overrides it for a `--no-build` run.
        os.environ["LLVM_PROFILE_FILE"] = os.path.join(raw, "sluice-%p-%m.profraw")
        _, sluice, url, path, headers = ab.start(os.path.join(target, "release", "sluice"), 0, work, 100)
        procs.append(sluice)
        train(built("loadgen"), url, path, headers, a.secs)
        # Not `Proc.stop`: the profile is written while the process exits, which takes
        # longer than the harness's grace period.
        sluice.p.send_signal(2)
        sluice.p.wait(120)
        procs.remove(sluice)
        if sluice.p.returncode not in (0, -2):
            raise SystemExit(f"the instrumented sluice exited with {sluice.p.returncode}; logs in {work}")
        profiles = glob.glob(os.path.join(raw, "sluice-*.profraw"))
        if not profiles:
            raise SystemExit(f"no profile was written in {raw}")
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        # Sparse: only the functions that ran, a tenth of the size of a full profile.
        subprocess.run([tool, "merge", "--sparse", "-o", a.out, *profiles], check=True)
        llvm = rustc_field("LLVM version")
        with open(os.path.join(os.path.dirname(os.path.abspath(a.out)), "llvm-version"), "w") as f:
            f.write(llvm + "\n")
        run.log(f"wrote {a.out} from {len(profiles)} raw profiles")
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(raw, ignore_errors=True)


if __name__ == "__main__":
    main()
