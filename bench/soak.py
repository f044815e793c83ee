#!/usr/bin/env python3
"""False positives under stress: an 8-node cluster held for a while under a
condition that must not cost it a member, then every node's counters read.

    saturated   8 nodes on loopback, both cores kept busy by busy-loop processes
    loss        8 nodes in network namespaces, 5 % loss on every host's input
    link        8 nodes in network namespaces, one link (h1 <-> h2) cut, both
                ends still reach the other six

For each: suspicions and deaths summed over every node (from
`!cluster_members --json` counters), and whether every node still lists every
other at the end. Every condition is bounded by --seconds and undone at the end.

    bench/soak.py [--binary PATH] [--seconds 300] [--only saturated,loss,link]
"""
import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))
from iridium_nodes import Cluster, wait_until  # noqa: E402
import netns  # noqa: E402

SIZE = 8


def burn(deadline):
    while time.monotonic() < deadline:
        pass


def totals(snapshots):
    out = {"suspicions": 0, "deaths": 0}
    for s in snapshots:
        for key in out:
            out[key] += s["counters"][key]
    return out


def snapshot_of(node):
    """A node's snapshot, asking again while it does not answer (a loaded
    machine can make one `iridium attach` time out)."""
    return wait_until(node.snapshot, 30, what=f"{node.alias} to answer")


def soak_saturated(binary, seconds):
    cluster = Cluster(binary)
    burners = []
    try:
        seed = cluster.seed()
        for i in range(1, SIZE):
            cluster.joiner(f"n{i}", seed)
        cluster.wait_converged(timeout=20)
        before = totals(snapshot_of(n) for n in cluster.live())
        deadline = time.monotonic() + seconds
        burners = [multiprocessing.Process(target=burn, args=(deadline,)) for _ in range(os.cpu_count() or 2)]
        for b in burners:
            b.start()
        for b in burners:
            b.join(seconds + 30)
        after = totals(snapshot_of(n) for n in cluster.live())
        full = cluster.converged()
        return {k: after[k] - before[k] for k in after} | {"full mesh at the end": full}
    finally:
        for b in burners:
            if b.is_alive():
                b.terminate()
        cluster.close()


def soak_netns(binary, seconds, fault):
    with netns.Network(SIZE, binary) as net:
        net.start_cluster()
        wait_until(net.full_mesh, 20, what="the full mesh")
        with concurrent.futures.ThreadPoolExecutor(SIZE) as pool:
            before = totals(pool.map(snapshot_of, net.hosts))
            fault(net)
            try:
                time.sleep(seconds)  # the soak itself: the condition is held this long
                after = totals(pool.map(snapshot_of, net.hosts))
                full = net.full_mesh()
            finally:
                net.clear()
        return {k: after[k] - before[k] for k in after} | {"full mesh at the end": full}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="build/bench/src/app/iridium")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--only", default="saturated,loss,link")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.path.exists(binary):
        sys.exit(f"no binary at {args.binary}")
    os.environ.setdefault("IRIDIUM_LOG", "info")
    print(f"| condition ({SIZE} nodes, {args.seconds:.0f} s) | suspicions | deaths | full mesh at the end |")
    print("|---|---:|---:|---|", flush=True)
    wanted = args.only.split(",")
    runs = [("saturated", "both cores saturated (loopback)", lambda: soak_saturated(binary, args.seconds)),
            ("loss", "5 % loss on every host (namespaces)",
             lambda: soak_netns(binary, args.seconds, lambda net: net.netem_loss(5))),
            ("link", "link h1 <-> h2 cut (namespaces)",
             lambda: soak_netns(binary, args.seconds, lambda net: net.cut_link("h1", "h2")))]
    for key, label, run in runs:
        if key not in wanted:
            continue
        if key != "saturated":
            ok, why = netns.available()
            if not ok:
                print(f"| {label} | skipped: {why} | | |")
                continue
            netns.install_signal_cleanup()
        r = run()
        print(f"| {label} | {r['suspicions']} | {r['deaths']} | {'yes' if r['full mesh at the end'] else 'NO'} |",
              flush=True)


if __name__ == "__main__":
    main()
