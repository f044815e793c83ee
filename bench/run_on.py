#!/usr/bin/env python3
"""Remote runs (!run_on, !run_all): round-trip time and jobs per second on
loopback, beside Erlang/OTP's rpc:call and rpc:multicall.

iridium, nodes from tests/harness/iridium_nodes.py on 127.0.0.1:
  - round trip at N nodes (default 8): one long-lived remote-shell session
    on the seed, spoken to directly over the remote-shell protocol (ZeroMQ
    DEALER + MessagePack, docs/protocol.md section 11: `open` once, then one
    `exec` per line), so no process is started per run. Each sample is one
    `exec` of `!run_on node-1 trivial.iasm` until its `result`: the shell
    assembles the file, the seed sends `run_request`, node-1 verifies and
    runs it on a worker and answers `run_accepted` and `run_result`. The
    same session's `exec` of a line that runs locally (`load $0 #1`) is
    measured as well, as the floor the remote shell itself costs.
  - jobs per second on a 5-node cluster: `!run_all small.iasm` (5 jobs each,
    the seed's own included) in a loop for --seconds, from 1 session, then
    from 4 sessions at once. Each node has 2 workers and queues nothing
    beyond them, so with 4 sessions some runs are refused (pool_full): those
    are counted apart and not in jobs/s.

Erlang/OTP (Debian's erlang-base; installed with apt-get when missing and
running as root), on the same machine in the same run: N BEAMs (-name
eK@127.0.0.1, one cookie, an epmd of our own), the first calls
`rpc:call(e2, erlang, node, [])` --samples times (timer:tc around each), and
on 5 BEAMs `rpc:multicall(Nodes, erlang, node, [])` over all five in a loop
for --seconds (calls per second). An rpc:call runs a function already
loaded on the other node; a remote run ships and verifies a program and
starts a VM, so the two are neighbours, not equals.

    bench/run_on.py [--binary PATH] [--nodes 8] [--samples 200] [--seconds 10]
                    [--skip-erlang]
"""
import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))
from iridium_nodes import REPO, Cluster, free_port  # noqa: E402

sys.path.insert(0, HERE)
from cluster import ensure_erlang, wait_epmd  # noqa: E402  (one copy of the Erlang set-up)

TRIVIAL = "load $0 #1\nhlt\n"
SMALL = "load $0 #1000\nload $1 #0\ntop: inc $1\nneq $0 $1\ndjmpe @top\nhlt\n"  # ~3000 steps


class Session:
    """One remote-shell session, spoken to directly (docs/protocol.md section 11)."""

    def __init__(self, context, port):
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(f"tcp://127.0.0.1:{port}")
        opened = self.request({"v": 1, "type": "open", "token": ""})
        if opened["type"] != "opened":
            raise RuntimeError(f"remote shell refused: {opened}")

    def request(self, frame, timeout=60):
        self.socket.send(msgpack.packb(frame))
        if not self.socket.poll(timeout * 1000):
            raise RuntimeError(f"no answer to {frame} within {timeout} s")
        return msgpack.unpackb(self.socket.recv(), raw=False)

    def exec(self, line):
        answer = self.request({"v": 1, "type": "exec", "line": line})
        if answer["type"] != "result":
            raise RuntimeError(f"{line}: {answer}")
        return answer

    def close(self):
        self.socket.send(msgpack.packb({"v": 1, "type": "close"}))
        self.socket.close()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start_cluster(binary, size):
    cluster = Cluster(binary)
    seed = cluster.seed()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: cluster.joiner(f"node-{i}", seed), range(1, size)))
    cluster.wait_converged(timeout=60)
    return cluster, seed


def iridium_round_trip(binary, size, samples, files):
    cluster, seed = start_cluster(binary, size)
    context = zmq.Context()
    try:
        session = Session(context, seed.remote_port)
        for _ in range(10):  # warm up: connections, the pool's threads
            assert session.exec(f"!run_on node-1 {files['trivial']}")["ok"]
        remote, local = [], []
        for _ in range(samples):
            t0 = time.perf_counter()
            answer = session.exec(f"!run_on node-1 {files['trivial']}")
            remote.append(time.perf_counter() - t0)
            if not answer["ok"]:
                raise RuntimeError(answer["output"])
            t0 = time.perf_counter()
            session.exec("load $0 #1")
            local.append(time.perf_counter() - t0)
        session.close()
        return remote, local
    finally:
        context.destroy(linger=0)
        cluster.close()


def iridium_jobs_per_second(binary, seconds, sessions, files):
    cluster, seed = start_cluster(binary, 5)
    context = zmq.Context()
    counts = {"ok": 0, "refused": 0, "failed": 0, "runs": 0}
    lock = threading.Lock()

    def loop(session, stop):
        while time.monotonic() < stop:
            answer = session.exec(f"!run_all --json {files['small']}")
            doc = json.loads(answer["output"].strip().splitlines()[-1])
            with lock:
                counts["runs"] += 1
                for r in doc["results"]:
                    if r["ok"]:
                        counts["ok"] += 1
                    elif r["status"] == "refused":
                        counts["refused"] += 1
                    else:
                        counts["failed"] += 1

    try:
        opened = [Session(context, seed.remote_port) for _ in range(sessions)]
        for s in opened:
            s.exec(f"!run_all {files['small']}")  # warm up
        t0 = time.monotonic()
        stop = t0 + seconds
        threads = [threading.Thread(target=loop, args=(s, stop)) for s in opened]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        for s in opened:
            s.close()
        return {**counts, "elapsed": elapsed}
    finally:
        context.destroy(linger=0)
        cluster.close()


ERLANG_ROUND_TRIP = (
    'Target = list_to_atom(os:getenv("IRT_TARGET")), N = list_to_integer(os:getenv("IRT_SAMPLES")), '
    'pong = net_adm:ping(Target), '
    '[rpc:call(Target, erlang, node, []) || _ <- lists:seq(1, 20)], '
    'Ts = [element(1, timer:tc(rpc, call, [Target, erlang, node, []])) || _ <- lists:seq(1, N)], '
    'io:format("us~s~n", [[[" ", integer_to_list(T)] || T <- Ts]]), halt().'
)
ERLANG_MULTICALL = (
    'Others = [list_to_atom(X) || X <- string:tokens(os:getenv("IRT_OTHERS"), ",")], '
    'Seconds = list_to_integer(os:getenv("IRT_SECONDS")), '
    '[pong = net_adm:ping(O) || O <- Others], Nodes = [node() | Others], '
    'Stop = erlang:monotonic_time(millisecond) + Seconds * 1000, '
    'Loop = fun L(K) -> case erlang:monotonic_time(millisecond) < Stop of '
    'true -> {Rs, []} = rpc:multicall(Nodes, erlang, node, []), 5 = length(Rs), L(K + 1); '
    'false -> K end end, '
    'T0 = erlang:monotonic_time(microsecond), K = Loop(0), T1 = erlang:monotonic_time(microsecond), '
    'io:format("calls ~b ~b~n", [K * length(Nodes), T1 - T0]), halt().'
)
ERLANG_IDLE = "timer:sleep(infinity)."


def erlang_run(size, main_eval, env_extra, timeout):
    """Starts `size` BEAMs on 127.0.0.1 (e2..eN idle, e1 runs main_eval); e1's output."""
    root = tempfile.mkdtemp(prefix="iridium-bench-rpc-")
    port = free_port()
    env = dict(os.environ, ERL_EPMD_PORT=str(port), HOME=root, **env_extra)
    epmd = subprocess.Popen(["epmd", "-port", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    idle = []
    try:
        wait_epmd(port, lambda a: subprocess.run(a, capture_output=True))

        def beam(name, code, **kw):
            return subprocess.Popen(["erl", "-noshell", "-noinput", "-name", f"{name}@127.0.0.1", "-setcookie",
                                     "iridiumbench", "-start_epmd", "false", "+sbwt", "none", "+sbwtdcpu", "none",
                                     "+sbwtdio", "none", "-eval", code], env=env, cwd=root, **kw)
        idle = [beam(f"e{i}", ERLANG_IDLE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for i in range(2, size + 1)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # every idle BEAM registered with epmd
            names = subprocess.run(["epmd", "-port", str(port), "-names"], capture_output=True, text=True).stdout
            if all(f"name e{i} " in names for i in range(2, size + 1)):
                break
            time.sleep(0.1)
        main = beam("e1", main_eval, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = main.communicate(timeout=timeout)
        return out
    finally:
        for p in idle:
            p.kill()
            p.wait(10)
        epmd.kill()
        epmd.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def erlang_round_trip(size, samples):
    out = erlang_run(size, ERLANG_ROUND_TRIP, {"IRT_TARGET": "e2@127.0.0.1", "IRT_SAMPLES": str(samples)}, 120)
    line = next((x for x in out.splitlines() if x.startswith("us")), None)
    if line is None:
        raise RuntimeError(f"erl: {out[-500:]}")
    return [int(x) / 1e6 for x in line.split()[1:]]


def erlang_multicall(seconds):
    others = ",".join(f"e{i}@127.0.0.1" for i in range(2, 6))
    out = erlang_run(5, ERLANG_MULTICALL, {"IRT_OTHERS": others, "IRT_SECONDS": str(seconds)}, seconds + 60)
    line = next((x for x in out.splitlines() if x.startswith("calls")), None)
    if line is None:
        raise RuntimeError(f"erl: {out[-500:]}")
    calls, micros = (int(x) for x in line.split()[1:])
    return calls, micros / 1e6


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "release", "src", "app", "iridium"))
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--skip-erlang", action="store_true")
    args = parser.parse_args()

    files_dir = tempfile.mkdtemp(prefix="iridium-bench-run-on-")
    files = {}
    for name, text in (("trivial", TRIVIAL), ("small", SMALL)):
        files[name] = os.path.join(files_dir, f"{name}.iasm")
        with open(files[name], "w") as f:
            f.write(text)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"binary: {args.binary}")
    try:
        remote, local = iridium_round_trip(args.binary, args.nodes, args.samples, files)
        print(f"\n## round trip at N = {args.nodes} ({args.samples} samples, one remote-shell session)\n")
        print("| what | median | p95 | min |")
        print("|---|---|---|---|")
        print(f"| iridium `!run_on node-1 trivial.iasm` (exec to result) | {ms(statistics.median(remote))} | "
              f"{ms(percentile(remote, 95))} | {ms(min(remote))} |")
        print(f"| iridium `load $0 #1` in the same session (the remote shell's own cost) | "
              f"{ms(statistics.median(local))} | {ms(percentile(local, 95))} | {ms(min(local))} |")
        erlang_ok, erlang_version = (False, "skipped") if args.skip_erlang else ensure_erlang()
        if erlang_ok:
            rpc = erlang_round_trip(args.nodes, args.samples)
            print(f"| Erlang/OTP ({erlang_version}) `rpc:call(e2, erlang, node, [])` | {ms(statistics.median(rpc))} | "
                  f"{ms(percentile(rpc, 95))} | {ms(min(rpc))} |")
        else:
            print(f"| Erlang/OTP | {erlang_version} | | |")

        print(f"\n## jobs per second on 5 nodes ({args.seconds:g} s of `!run_all small.iasm`, ~3000 steps each)\n")
        print("| what | runs | jobs ok | refused (pool_full) | failed | jobs/s |")
        print("|---|---|---|---|---|---|")
        for sessions in (1, 4):
            r = iridium_jobs_per_second(args.binary, args.seconds, sessions, files)
            print(f"| iridium, {sessions} session{'s' if sessions > 1 else ''} | {r['runs']} | {r['ok']} | "
                  f"{r['refused']} | {r['failed']} | {r['ok'] / r['elapsed']:.0f} |")
        if erlang_ok:
            calls, elapsed = erlang_multicall(int(args.seconds))
            print(f"| Erlang/OTP ({erlang_version}) `rpc:multicall` of `erlang:node/0` on 5 | {calls // 5} | {calls} | "
                  f"– | – | {calls / elapsed:.0f} |")
    finally:
        shutil.rmtree(files_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
