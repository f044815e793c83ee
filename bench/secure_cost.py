#!/usr/bin/env python3
"""What the secure cluster costs (issue 10): plain vs secure (ZeroMQ CURVE,
`--cluster-key`), processes on loopback as bench/cluster.py starts them.

For each mode and each N, each run:
  - convergence: start a seed and N-1 nodes joining it, all at once; seconds
    from the last process start until every node lists every other (polled
    through `iridium attach` in rounds, as bench/cluster.py does: an upper
    bound with about one round of resolution).
  - then nothing touches the nodes for --settle seconds, and for an idle
    window of --window seconds after that:
      CPU per node: utime + stime from /proc/PID/stat (all threads) at both
        ends of the window, in % of one core;
      bytes per node: the tcp_info counters of every TCP socket the node's
        process holds (`ss -tinpH`, kernel tcp_info: bytes_sent = payload
        bytes handed to the wire, retransmissions included; segs_out = TCP
        segments sent, pure ACKs included), summed over the node's sockets
        at both ends of the window. Wire bytes add the headers of each
        segment on loopback: 14 (Ethernet) + 20 (IPv4) + 32 (TCP with
        timestamps) = 66 bytes. /proc/PID/io is no use here: its
        rchar/wchar count every read/write, files and pipes too, and its
        read_bytes/write_bytes only storage I/O.
  A socket opened and closed inside the window is not counted; an idle
  cluster keeps its connections, so there should be none.
Cells are medians over --runs runs of the mean over the nodes; "max" is the
busiest node (median over runs).

The secure column needs a binary with --cluster-key; the key is made with
`iridium keygen` in a temp directory. A binary whose nodes reject the option
gets "secure: not supported by this binary" and the plain column alone.

    bench/secure_cost.py [--binary PATH] [--sizes 8,32] [--runs 3]
                         [--window 10] [--settle 2] [--modes plain,secure]

Run it on an otherwise idle machine: other load shows up in every figure.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import cluster as cluster_bench  # noqa: E402  (bench/cluster.py: launch, wait_for; puts the harness on the path)
from iridium_nodes import (Cluster, Node, clean_env, cpu_seconds, free_port, kill_process,  # noqa: E402
                           port_accepts, wait_until)  # noqa: E402

HEADER_BYTES = 14 + 20 + 32  # loopback Ethernet + IPv4 + TCP with timestamps, per segment
UNSUPPORTED = "not supported by this binary"


# --------------------------------------------------------------- nodes

class KeyedNode(Node):
    """A node whose remote shell is asked with the cluster key (`iridium
    attach --key`); the key itself is given at launch (--cluster-key)."""

    def attach(self, *lines, timeout=10):
        args = [self.cluster.binary, "attach", f"127.0.0.1:{self.remote_port}", "--timeout", str(timeout),
                "--key", self.cluster.key_file]
        for line in lines:
            args += ["-c", line]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10, env=clean_env())


class KeyedCluster(Cluster):
    def __init__(self, binary, key_file):
        super().__init__(binary)
        self.key_file = key_file

    def node(self, alias, extra_args=(), port=None):
        node = KeyedNode(self, alias, extra_args, port)
        self.nodes[alias] = node
        return node


def make_key(binary, directory):
    """A new key file made by the binary's own `iridium keygen`, or None
    when the binary has no keygen."""
    path = os.path.join(directory, "cluster.key")
    r = subprocess.run([binary, "keygen", path], capture_output=True, text=True, timeout=30, env=clean_env())
    return path if r.returncode == 0 and os.path.exists(path) else None


def rejects_cluster_key(binary, key_file):
    """True when a node of this binary refuses to start because it does not
    know --cluster-key; False when one starts with it (its remote shell
    opens). Any other failure to start is an error."""
    root = tempfile.mkdtemp(prefix="iridium-secure-probe-")
    log_path = os.path.join(root, "probe.log")
    remote_port = free_port()
    argv = [binary, "--cluster-key", key_file, "--node-alias", "probe", "--data-root-dir", root,
            "-P", str(free_port()), "-r", "-p", str(remote_port), "--daemon-mode", "--start-cluster"]
    try:
        with open(log_path, "w") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean_env())
        try:
            wait_until(lambda: process.poll() is not None or port_accepts(remote_port), 15,
                       "the probe node to start or exit")
            exited = process.poll()
        finally:
            kill_process(process)
        if exited is None:
            return False
        with open(log_path, errors="replace") as f:
            output = f.read()
        if "--cluster-key" in output:
            return True
        raise RuntimeError(f"a node with --cluster-key exited ({exited}): {output.strip()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------- measurements

def tcp_counters(pids):
    """{pid: (bytes_sent, segs_out)} summed over each process's TCP sockets,
    from one `ss -tinpH` (all states; the kernel's tcp_info)."""
    out = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, timeout=30, check=True).stdout
    totals = {pid: [0, 0] for pid in pids}
    owner = None
    for line in out.splitlines():
        if line and not line[0].isspace():  # a socket: state, queues, addresses, users:(...)
            owners = {int(p) for p in re.findall(r"pid=(\d+),", line)}
            owner = next((p for p in owners if p in totals), None)
            continue
        if owner is None:  # its tcp_info line, for a socket of none of ours
            continue
        for key, index in (("bytes_sent", 0), ("segs_out", 1)):
            m = re.search(rf"\b{key}:(\d+)", line)
            if m:
                totals[owner][index] += int(m.group(1))
    return {pid: tuple(v) for pid, v in totals.items()}


def idle_cost(nodes, settle, window):
    """Per node, over an idle window: (CPU % of one core, payload B/s,
    segments/s). Nothing asks the nodes anything meanwhile."""
    time.sleep(settle)  # let the joins' last exchanges and the poll's connections end
    pids = [n.process.pid for n in nodes]
    cpu0 = {pid: cpu_seconds(pid) for pid in pids}
    tcp0 = tcp_counters(pids)
    t0 = time.monotonic()
    time.sleep(window)  # the measured window itself
    cpu1 = {pid: cpu_seconds(pid) for pid in pids}
    tcp1 = tcp_counters(pids)
    elapsed = time.monotonic() - t0
    dead = [n.alias for n in nodes if n.process.poll() is not None]
    if dead:
        raise RuntimeError(f"nodes exited during the idle window: {dead}")
    return [(100 * (cpu1[p] - cpu0[p]) / elapsed,
             (tcp1[p][0] - tcp0[p][0]) / elapsed,
             (tcp1[p][1] - tcp0[p][1]) / elapsed) for p in pids]


def one_run(binary, size, key_file, settle, window, pool):
    cluster = KeyedCluster(binary, key_file) if key_file else Cluster(binary)
    extra = ["--cluster-key", key_file] if key_file else []
    try:
        seed = cluster_bench.launch(cluster, "seed", "--start-cluster", *extra)
        nodes = [seed] + [cluster_bench.launch(cluster, f"n{i}", "--join", seed.address, *extra)
                          for i in range(1, size)]
        everyone = {n.alias for n in nodes}
        converge, round_s = cluster_bench.wait_for(nodes, lambda n, m: m == everyone - {n.alias}, 60, pool)
        per_node = idle_cost(nodes, settle, window)
        cpu = [c for c, _, _ in per_node]
        sent = [b for _, b, _ in per_node]
        segs = [s for _, _, s in per_node]
        wire = [b + s * HEADER_BYTES for _, b, s in per_node]
        return {"converge": converge, "round": round_s,
                "cpu": statistics.mean(cpu), "cpu_max": max(cpu),
                "sent": statistics.mean(sent), "sent_max": max(sent),
                "segs": statistics.mean(segs), "wire": statistics.mean(wire), "wire_max": max(wire)}
    except cluster_bench.TimedOut as e:
        return {"error": f"no convergence ({e})"}
    finally:
        cluster.close()


# --------------------------------------------------------------- table

ROWS = [("convergence, s", "converge", None, "{:.3f}"),
        ("poll round (resolution), s", "round", None, "{:.3f}"),
        ("CPU per idle node, % of one core (mean; max node)", "cpu", "cpu_max", "{:.2f}"),
        ("sent per idle node, TCP payload B/s (mean; max node)", "sent", "sent_max", "{:.0f}"),
        ("sent per idle node, TCP segments/s", "segs", None, "{:.1f}"),
        ("sent per idle node, wire B/s incl. headers (mean; max node)", "wire", "wire_max", "{:.0f}")]


def cell(results, key, max_key, fmt):
    if results is None:
        return "–"
    if isinstance(results, str):
        return results
    errors = [r["error"] for r in results if "error" in r]
    good = [r for r in results if "error" not in r]
    if not good:
        return errors[0]
    text = fmt.format(statistics.median(r[key] for r in good))
    if max_key:
        text += "; " + fmt.format(statistics.median(r[max_key] for r in good))
    if errors:
        text += f" ({len(errors)} of {len(results)} runs: {errors[0]})"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cluster_bench.add_run_arguments(parser, "8,32")
    parser.add_argument("--window", type=float, default=10.0, help="idle window in s (default 10)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="s between convergence and the window (default 2)")
    parser.add_argument("--modes", default="plain,secure", help="plain, secure or both (default)")
    args = parser.parse_args()
    binary, sizes = cluster_bench.run_arguments(args)
    modes = args.modes.split(",")
    if args.window <= 0 or args.settle < 0:
        sys.exit("--window must be > 0 and --settle >= 0")
    if not modes or any(m not in ("plain", "secure") for m in modes):
        sys.exit("--modes takes plain, secure or plain,secure")
    if shutil.which("ss") is None:
        sys.exit("ss not found: apt-get install iproute2")
    os.environ.setdefault("IRIDIUM_LOG", "warn")

    key_root = tempfile.mkdtemp(prefix="iridium-secure-cost-")
    try:
        key_file = None
        secure_note = None
        if "secure" in modes:
            key_file = make_key(binary, key_root)
            if key_file is None or rejects_cluster_key(binary, key_file):
                secure_note = f"secure: {UNSUPPORTED}"
                print(secure_note, file=sys.stderr, flush=True)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
        notes = [f"{version}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the start"]
        notes += [secure_note] if secure_note else []
        cluster_bench.print_table_head(
            notes, f"Medians of {args.runs} run(s); idle window {args.window:g} s, {args.settle:g} s after "
            "convergence; bytes from tcp_info (`ss -tinpH`), CPU from /proc/PID/stat.", ["plain", "secure (CURVE)"])
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            for size in sizes:
                results = {}
                for mode in ("plain", "secure"):
                    if mode not in modes:
                        results[mode] = None
                    elif mode == "secure" and secure_note:
                        results[mode] = UNSUPPORTED
                    else:
                        results[mode] = [one_run(binary, size, key_file if mode == "secure" else None,
                                                 args.settle, args.window, pool) for _ in range(args.runs)]
                for label, key, max_key, fmt in ROWS:
                    print(f"| {size} | {label} | {cell(results['plain'], key, max_key, fmt)} | "
                          f"{cell(results['secure'], key, max_key, fmt)} |", flush=True)
    finally:
        shutil.rmtree(key_root, ignore_errors=True)


if __name__ == "__main__":
    main()
