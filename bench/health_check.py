#!/usr/bin/env python3
"""What one container health check costs: `iridium health` (the image's
HEALTHCHECK) beside asking the node's remote shell over CURVE, `iridium
attach 127.0.0.1:PORT --key KEY -c '!cluster_members --json'`.

Starts a secure cluster of --nodes processes on loopback (the harness's
nodes: --cluster-key, the remote shell on, each with its own data
directory), waits until they list each other, then runs each check --runs
times, one after another, against the first node, and reports per check:

  - the checking process's CPU, user + system (getrusage of the reaped
    child), mean and max, and its wall time;
  - the node's own CPU per check: the node's utime + stime over the runs,
    minus what it spends idle over as long (measured just before), divided
    by the runs.

Each check must succeed; the script stops otherwise. The shell Docker
wraps a HEALTHCHECK command in (`/bin/sh -c`) is the same for both and not
counted.

With --docker IMAGE it measures instead what Docker itself spends to run
the image's HEALTHCHECK (its exec: dockerd, containerd, the shim, runc,
the shell and the check): the host's busy CPU (/proc/stat) over --window
seconds with one container of IMAGE checked every second, minus the same
with the check off (--no-healthcheck), per check; --repeat times.

    bench/health_check.py [--binary PATH] [--runs 50] [--nodes 3]
    bench/health_check.py --docker iridium:local [--window 40] [--repeat 2]
"""
import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(BENCH, "..", "tests", "harness"))
from iridium_nodes import REPO, Cluster, clean_env, cpu_seconds, wait_until  # noqa: E402


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_checks(argv, runs):
    """CPU seconds and wall seconds of each run of argv (each must exit 0)."""
    cpu, wall = [], []
    for _ in range(runs):
        before, start = children_cpu(), time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=clean_env())
        wall.append(time.monotonic() - start)
        cpu.append(children_cpu() - before)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return cpu, wall


def node_cpu_per_check(node, argv, runs):
    """(checker CPU list, wall list, node CPU per check): the node's CPU over
    the runs minus its idle CPU over as long, per run."""
    idle_start, idle_t0 = cpu_seconds(node.process.pid), time.monotonic()
    time.sleep(3)  # a measured idle window, not a wait for anything
    idle_rate = (cpu_seconds(node.process.pid) - idle_start) / (time.monotonic() - idle_t0)
    start, t0 = cpu_seconds(node.process.pid), time.monotonic()
    cpu, wall = run_checks(argv, runs)
    spent = cpu_seconds(node.process.pid) - start - idle_rate * (time.monotonic() - t0)
    return cpu, wall, spent / runs, idle_rate


def host_busy_seconds():
    """CPU seconds the whole host has spent busy (user, nice, system, irq,
    softirq) since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / os.sysconf("SC_CLK_TCK")


def host_cpu_with_container(image, window, *options):
    """Host busy CPU seconds over `window` s while one container of image
    runs with docker run `options`, once it has started and settled."""
    name = f"iridium-health-bench-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", name, *options, image], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                                          capture_output=True, text=True).stdout.strip() == "true",
                   30, f"{name} running")
        time.sleep(8)  # the node starts and settles; not a wait for anything
        before = host_busy_seconds()
        time.sleep(window)  # the measured window
        return host_busy_seconds() - before
    finally:
        subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def docker_check_cost(image, window, repeat):
    print(f"Docker's HEALTHCHECK of {image}, one container checked every 1 s, {window:.0f} s windows")
    print("| run | host CPU with checks, s | without, s | host CPU per check, ms |")
    print("|---:|---:|---:|---:|")
    for run in range(1, repeat + 1):
        checked = host_cpu_with_container(image, window, "--health-interval=1s")
        unchecked = host_cpu_with_container(image, window, "--no-healthcheck")
        print(f"| {run} | {checked:.2f} | {unchecked:.2f} | {(checked - unchecked) / window * 1000:.1f} |")
    print(machine())


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
            f"load average {os.getloadavg()[0]:.2f} at the end")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "release", "src", "app", "iridium"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--docker", metavar="IMAGE", help="measure Docker's own cost of IMAGE's HEALTHCHECK")
    parser.add_argument("--window", type=float, default=40)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.docker:
        return docker_check_cost(args.docker, args.window, args.repeat)

    cluster = Cluster(args.binary, secure=True)
    try:
        seed = cluster.seed()
        for i in range(1, args.nodes):
            cluster.joiner(f"node-{i}", seed)
        cluster.wait_converged(timeout=30)
        wait_until(lambda: subprocess.run([args.binary, "health", "--data-root-dir", seed.data_dir],
                                          env=clean_env()).returncode == 0, 10, "a fresh health file")
        checks = {
            "iridium health": [args.binary, "health", "--data-root-dir", seed.data_dir],
            "iridium attach -c '!cluster_members --json' (CURVE)":
                [args.binary, "attach", f"127.0.0.1:{seed.remote_port}", "--key", cluster.key,
                 "-c", "!cluster_members --json"],
        }
        print(f"{args.runs} runs each against one node of a secure cluster of {args.nodes}; {machine()}")
        print("| check | checker CPU per run, ms (mean; max) | wall per run, ms (mean) "
              "| node CPU per run, ms | node idle, % of a core |")
        print("|---|---:|---:|---:|---:|")
        for name, argv in checks.items():
            cpu, wall, node_cpu, idle = node_cpu_per_check(seed, argv, args.runs)
            print(f"| {name} | {statistics.mean(cpu) * 1000:.2f}; {max(cpu) * 1000:.2f} "
                  f"| {statistics.mean(wall) * 1000:.1f} | {node_cpu * 1000:.2f} | {idle * 100:.2f} |")
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
