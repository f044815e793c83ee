#!/usr/bin/env python3
"""Cluster convergence and failure-detection times on loopback.

For each N: start a seed and N-1 nodes joining it, all at once; measure from
the last process start until every node lists every other (convergence).
Then kill -9 one node and measure until every survivor has dropped it.

Each node is asked for `!cluster_members --json` through `iridium attach`, all
nodes in parallel, in rounds; a time is the end of the first round that saw
the condition, so it is an upper bound with roughly one round (tens of ms for
small N) of resolution, which the table reports too.

    bench/cluster.py [--binary PATH] [--sizes 3,8,16,32] [--runs 3]
"""
import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))
from iridium_nodes import Cluster  # noqa: E402


def launch(cluster, alias, *args):
    node = cluster.node(alias)
    os.makedirs(node.data_dir, exist_ok=True)
    log = open(node.log_path, "a")
    node.process = subprocess.Popen(
        [cluster.binary, "--node-alias", alias, "--data-root-dir", node.data_dir, "-P", str(node.port), "-r",
         "-p", str(node.remote_port), "--daemon-mode", *args],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=dict(os.environ, IRIDIUM_LOG="warn"))
    log.close()
    return node


def wait_for(nodes, condition, timeout, pool):
    """Polls all nodes in parallel until condition(node, members) holds for all."""
    start = time.monotonic()
    rounds = []
    while time.monotonic() - start < timeout:
        round_start = time.monotonic()
        results = list(pool.map(lambda n: (n, n.members()), nodes))
        rounds.append(time.monotonic() - round_start)
        if all(m is not None and condition(n, m) for n, m in results):
            return time.monotonic() - start, statistics.median(rounds)
    raise RuntimeError("timed out")


def one_run(binary, size, pool):
    cluster = Cluster(binary)
    try:
        seed = launch(cluster, "seed", "--start-cluster")
        nodes = [seed] + [launch(cluster, f"n{i}", "--join", seed.address) for i in range(1, size)]
        everyone = {n.alias for n in nodes}
        converge, resolution = wait_for(nodes, lambda n, m: m == everyone - {n.alias}, 60, pool)
        victim = nodes[-1]
        survivors = nodes[:-1]
        victim.process.kill()
        t0 = time.monotonic()
        victim.process.wait()
        detect, _ = wait_for(survivors, lambda n, m: victim.alias not in m, 60, pool)
        return converge, detect, resolution
    finally:
        cluster.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="build/bench/src/app/iridium")
    parser.add_argument("--sizes", default="3,8,16,32")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"no binary at {args.binary}: build it first (bench/run builds build/bench)")
    print("| nodes | convergence (median s) | kill -9 to dropped by all (median s) | poll round (s) |")
    print("|---:|---:|---:|---:|")
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        for size in (int(s) for s in args.sizes.split(",")):
            results = [one_run(args.binary, size, pool) for _ in range(args.runs)]
            converge = statistics.median(r[0] for r in results)
            detect = statistics.median(r[1] for r in results)
            resolution = statistics.median(r[2] for r in results)
            print(f"| {size} | {converge:.2f} | {detect:.2f} | {resolution:.3f} |", flush=True)


if __name__ == "__main__":
    main()
