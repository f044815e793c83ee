#!/usr/bin/env python3
"""Cluster convergence and failure-detection times, iridium next to Erlang/OTP.

For each N, iridium:
  - loopback (tests/harness/iridium_nodes.py): start a seed and N-1 nodes
    joining it, all at once; measure from the last process start until every
    node lists every other (convergence). Then kill -9 one node and measure
    until every survivor has dropped it.
  - network namespaces (tests/harness/netns.py; root only): N hosts on one
    bridge, one node each. SIGSTOP one node, measure until every survivor has
    dropped it; SIGCONT it and measure until the full mesh is back. Then cut
    another host off (iptables DROP) and measure until every survivor has
    dropped it; heal (after --cut-hold more seconds) and measure until the
    full mesh is back. Each of these waits is bounded at 60 s.

The same for Erlang/OTP distributed nodes (Debian's erlang-base: `erl`),
default settings (net_ticktime 60 s, connect_all), on the same machine in the
same run: N nodes -name eK@127.0.0.1 with one cookie and our own epmd on a
free port (loopback: convergence, kill -9), or eK@10.213.0.K with an epmd in
each namespace (SIGSTOP, cut, heal). Every node but the first pings the first
with net_adm:ping until pong (every 100 ms); connect_all makes the full mesh.
Membership is each node's nodes(), which the node prints whenever a
connection comes or goes (net_kernel:monitor_nodes). Erlang has no timeout of its own for a silent
node short of net_ticktime, so waits for Erlang are bounded by --erlang-wait
and a miss is reported as "not after X s". An Erlang node that was dropped
is not reconnected by anything (there is no probing), so "heal" can only be
measured where the survivors dropped the victim at all, and with a short
--erlang-ticktime a SIGSTOP victim that was dropped never comes back (the cut
is then measured among the other N-1).

Convergence counts from the last process start, so it includes each
runtime's start-up (short for iridium, about a second for a BEAM on a busy
machine). BEAMs run with +sbwt none (no scheduler busy-waiting, which would
starve 2N processes on a small machine); nothing else is changed.

iridium nodes are asked for `!cluster_members --json` through `iridium
attach` (in namespaces: `ip netns exec NS iridium attach 127.0.0.1:2244`),
all nodes in parallel, in rounds; a time is the end of the first round that
saw the condition, so it is an upper bound with roughly one round of
resolution, which the table reports ("poll round"). Erlang's resolution is
a pipe read: each BEAM prints its nodes() on every nodeup and nodedown.

Medians over --runs runs. Everything started is stopped at the end; the
namespaces (irt-<pid>-...) are deleted, also on Ctrl-C/SIGTERM.

    bench/cluster.py [--binary PATH] [--sizes 3,8,16,32] [--runs 3]
                     [--skip-erlang] [--skip-netns] [--erlang-wait 10]
                     [--erlang-ticktime 60] [--cut-hold 0]

Needs erlang-base for the Erlang column (installed with apt-get when missing
and running as root; else `apt-get install erlang-base`), and root for the
namespace measurements.
"""
import argparse
import concurrent.futures
import contextlib
import os
import shutil
import signal
import statistics
import datetime
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))
from iridium_nodes import CONNECT_GRACE, Cluster, free_port  # noqa: E402
import netns  # noqa: E402

COOKIE = "iridium-bench"


class TimedOut(Exception):
    pass


# --------------------------------------------------------------- iridium

def launch(cluster, alias, *args):
    node = cluster.node(alias)
    os.makedirs(node.data_dir, exist_ok=True)
    log = open(node.log_path, "a")
    node.process = subprocess.Popen(
        [cluster.binary, "--node-alias", alias, "--data-root-dir", node.data_dir, "-P", str(node.port), "-r",
         "-p", str(node.remote_port), "--daemon-mode", *args],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=dict(os.environ, IRIDIUM_LOG="info"))
    log.close()
    return node


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) \w+ \[\d+\] (.*)$")


def logged_at(node, pattern, after):
    """Wall-clock time of the first line of node's log matching pattern at or
    after `after` (time.time()), or None. Log times have ms resolution."""
    for line in node.log().splitlines():
        m = LOG_TIME.match(line)
        if not m or not re.search(pattern, m.group(2)):
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        if t >= after - 0.001:
            return t
    return None


def wait_for(nodes, condition, timeout, pool, start=None):
    """Polls all nodes in parallel until condition(node, members) holds for all.
    Returns (seconds since start, median round); raises TimedOut."""
    start = time.monotonic() if start is None else start
    rounds = []
    while time.monotonic() - start < timeout:
        round_start = time.monotonic()
        results = list(pool.map(lambda n: (n, n.members()), nodes))
        rounds.append(time.monotonic() - round_start)
        if all(m is not None and condition(n, m) for n, m in results):
            return time.monotonic() - start, statistics.median(rounds)
    raise TimedOut(f"not after {timeout:.1f} s")


def iridium_loopback(binary, size, pool):
    """(convergence, kill -9 detection, poll round) on 127.0.0.1."""
    cluster = Cluster(binary)
    try:
        seed = launch(cluster, "seed", "--start-cluster")
        nodes = [seed] + [launch(cluster, f"n{i}", "--join", seed.address) for i in range(1, size)]
        everyone = {n.alias for n in nodes}
        converge, resolution = wait_for(nodes, lambda n, m: m == everyone - {n.alias}, 60, pool)
        victim = nodes[-1]
        survivors = nodes[:-1]
        t0 = time.monotonic()
        wall0 = time.time()
        victim.process.kill()
        victim.process.wait()
        detect, _ = wait_for(survivors, lambda n, m: victim.alias not in m, 60, pool, start=t0)
        # Exact: each survivor logs the moment it drops the victim.
        seen = [logged_at(n, rf"^{victim.alias} is dead", wall0) for n in survivors]
        exact = max(seen) - wall0 if all(t is not None for t in seen) else None
        return {"converge": converge, "kill": detect, "kill_log": exact, "round_lo": resolution}
    finally:
        cluster.close()


def iridium_random_join(binary, size, pool):
    """Convergence when each node joins a random node started before it."""
    cluster = Cluster(binary)
    rng = random.Random(size)
    try:
        nodes = [launch(cluster, "n0", "--start-cluster")]
        for i in range(1, size):
            nodes.append(launch(cluster, f"n{i}", "--join", rng.choice(nodes).address))
        everyone = {n.alias for n in nodes}
        converge, _ = wait_for(nodes, lambda n, m: m == everyone - {n.alias}, 60, pool)
        return {"converge_random": converge}
    finally:
        cluster.close()


def iridium_netns(binary, size, pool, cut_hold):
    """SIGSTOP detection, resume, cut detection and heal, nodes in namespaces.
    A value of None is a wait that timed out (60 s)."""
    out = {}

    def measure(key, nodes, condition, start):
        try:
            out[key], resolution = wait_for(nodes, condition, 60, pool, start=start)
            out.setdefault("round_ns", resolution)
        except TimedOut:
            out[key] = None

    with netns.Network(size, binary) as net:
        net.start_cluster()
        everyone = {h.alias for h in net.hosts}
        full = lambda n, m: m == everyone - {n.alias}  # noqa: E731
        wait_for(net.hosts, full, 60, pool)
        # Faults start on a settled cluster: a member listed less than
        # connect_grace ago is not accused by a probe (docs/protocol.md 7).
        settled = time.monotonic() + CONNECT_GRACE
        while time.monotonic() < settled:
            wait_for(net.hosts, full, 60, pool)

        victim = net.hosts[-1]
        survivors = [h for h in net.hosts if h is not victim]
        t0 = time.monotonic()
        victim.pause()
        try:
            measure("stop", survivors, lambda n, m: victim.alias not in m, t0)
        finally:
            victim.resume()
        measure("resume", net.hosts, full, time.monotonic())

        victim = net.hosts[-2] if size > 2 else net.hosts[-1]
        survivors = [h for h in net.hosts if h is not victim]
        t0 = time.monotonic()
        net.cut(victim)
        measure("cut", survivors, lambda n, m: victim.alias not in m, t0)
        time.sleep(cut_hold)
        t0 = time.monotonic()
        net.heal(victim)
        measure("heal", net.hosts, full, t0)
    return out


# --------------------------------------------------------------- Erlang/OTP

# Each BEAM prints nodes() at once whenever a connection comes or goes
# (net_kernel:monitor_nodes): no polling loop of its own, so an idle BEAM is
# as idle as its runtime (bench/scaling.py --loopback measures that).
ERLANG_LOOP = (
    'Seed = list_to_atom(os:getenv("IRT_SEED")), Self = node(), '
    'ok = net_kernel:monitor_nodes(true), '
    'Print = fun() -> io:format("nodes~s~n", [[[" ", atom_to_list(X)] || X <- lists:sort(nodes())]]) end, '
    'Ping = fun P() -> case Seed =:= Self orelse net_adm:ping(Seed) =:= pong of '
    'true -> ok; false -> timer:sleep(100), P() end end, '
    'Ping(), Print(), '
    'Loop = fun L() -> receive {nodeup, _} -> Print(); {nodedown, _} -> Print() end, L() end, '
    'Loop().'
)


def ensure_erlang():
    """(True, version) if `erl` is here (installing erlang-base as root if not); else (False, why)."""
    if shutil.which("erl") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench/cluster.py: installing erlang-base with apt-get", file=sys.stderr, flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "erlang-base"],
                       stdout=subprocess.DEVNULL, env=env)
    if shutil.which("erl") is None:
        return False, "erl not found: apt-get install erlang-base"
    r = subprocess.run(["erl", "-noshell", "-eval",
                        'io:format("~s/~s", [erlang:system_info(otp_release), erlang:system_info(version)]), '
                        'halt().'], capture_output=True, text=True, timeout=60)
    return r.returncode == 0, f"OTP {r.stdout.strip()}" if r.returncode == 0 else r.stderr.strip()


class ErlangNode:
    """One BEAM; a thread reads the node lists it prints."""

    def __init__(self, alias, host, process):
        self.alias = alias
        self.host = host
        self.process = process
        self.latest = None            # (monotonic time the line arrived, set of aliases)
        self.lines = []
        self.child_pids = []          # filled by remember_children()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            if line.startswith("nodes"):
                self.latest = (time.monotonic(), {n.split("@")[0] for n in line.split()[1:]})
            else:
                self.lines.append(line.rstrip())

    def children(self):
        """Pids of the BEAM's child processes (erl_child_setup)."""
        pids = []
        try:
            for task in os.listdir(f"/proc/{self.process.pid}/task"):
                with open(f"/proc/{self.process.pid}/task/{task}/children") as f:
                    pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return pids

    def remember_children(self):
        self.child_pids = self.children()

    def kill(self):
        children = (self.children() if self.process.poll() is None else []) or self.child_pids
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for pid in children:     # erl_child_setup would exit on its own, a moment later
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != "erl_child_setup":
                        continue
                os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


def erlang_args(alias, host, ticktime):
    return ["erl", "-noshell", "-noinput", "-name", f"{alias}@{host}", "-setcookie", COOKIE,
            "-start_epmd", "false", "-kernel", "net_ticktime", str(ticktime),
            "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none", "-eval", ERLANG_LOOP]


def erlang_wait(nodes, condition, timeout, start):
    """Seconds from start until condition(node, members) holds for every node (the
    arrival of the last line that made it hold); raises TimedOut."""
    while True:
        latest = [(n, n.latest) for n in nodes]
        if all(seen is not None and condition(n, seen[1]) for n, seen in latest):
            return max(0.0, max(seen[0] for _, seen in latest) - start)
        dead = [n.alias for n in nodes if n.process.poll() is not None]
        if dead:
            raise RuntimeError(f"Erlang nodes exited: {dead}: {nodes[0].lines[-5:]}")
        if time.monotonic() - start >= timeout:
            raise TimedOut(f"not after {timeout:.1f} s")
        time.sleep(0.01)


def wait_epmd(port, runner):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if runner(["epmd", "-port", str(port), "-names"]).returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError("epmd did not start")


@contextlib.contextmanager
def erlang_loopback_nodes(size, ticktime):
    """N BEAMs e1..eN @127.0.0.1 with one cookie and our own epmd on a free
    port, every one but e1 pinging e1; yields (nodes, epmd's Popen, monotonic
    time of the last start). Everything is killed on the way out."""
    root = tempfile.mkdtemp(prefix="iridium-bench-erl-")
    port = free_port()
    env = dict(os.environ, ERL_EPMD_PORT=str(port), HOME=root, IRT_SEED="e1@127.0.0.1")
    epmd = subprocess.Popen(["epmd", "-port", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes = []
    try:
        wait_epmd(port, lambda a: subprocess.run(a, capture_output=True))
        for i in range(1, size + 1):
            p = subprocess.Popen(erlang_args(f"e{i}", "127.0.0.1", ticktime), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root)
            nodes.append(ErlangNode(f"e{i}", "127.0.0.1", p))
        yield nodes, epmd, time.monotonic()
    finally:
        for n in nodes:
            n.kill()
        epmd.kill()
        epmd.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def erlang_loopback(size, ticktime, bound):
    """(convergence, kill -9 detection) for N BEAMs on 127.0.0.1."""
    with erlang_loopback_nodes(size, ticktime) as (nodes, _, t0):
        everyone = {n.alias for n in nodes}
        converge = erlang_wait(nodes, lambda n, m: m == everyone - {n.alias}, 120, t0)
        for n in nodes:
            n.remember_children()
        victim, survivors = nodes[-1], nodes[:-1]
        t0 = time.monotonic()
        victim.kill()
        try:
            kill = erlang_wait(survivors, lambda n, m: victim.alias not in m, bound, t0)
        except TimedOut:
            kill = None
        return {"converge": converge, "kill": kill}


def erlang_netns(size, ticktime, bound, cut_hold):
    """SIGSTOP detection, resume, cut detection and heal for N BEAMs in namespaces."""
    out = {}
    root = tempfile.mkdtemp(prefix="iridium-bench-erl-")
    nodes, epmds = [], []

    def measure(key, group, condition, start):
        try:
            out[key] = erlang_wait(group, condition, bound, start)
        except TimedOut:
            out[key] = None

    with netns.Network(size) as net:
        try:
            env = dict(os.environ, HOME=root, IRT_SEED=f"e1@{net.hosts[0].addr}")
            env.pop("ERL_EPMD_PORT", None)
            for h in net.hosts:     # each host its own epmd on 4369
                epmds.append(h.popen(["epmd"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env))
            for h in net.hosts:
                wait_epmd(4369, lambda a, h=h: h.run(*a, check=False))
            for i, h in enumerate(net.hosts, 1):
                p = h.popen(erlang_args(f"e{i}", h.addr, ticktime), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root)
                nodes.append(ErlangNode(f"e{i}", h, p))
            everyone = {n.alias for n in nodes}
            full = lambda n, m: m == everyone - {n.alias}  # noqa: E731
            erlang_wait(nodes, full, 120, time.monotonic())
            for n in nodes:
                n.remember_children()

            victim = nodes[-1]
            survivors = [n for n in nodes if n is not victim]
            t0 = time.monotonic()
            victim.process.send_signal(signal.SIGSTOP)
            try:
                measure("stop", survivors, lambda n, m: victim.alias not in m, t0)
            finally:
                victim.process.send_signal(signal.SIGCONT)
            group = nodes
            if out["stop"] is None:
                out["resume"] = "never dropped"
            else:
                measure("resume", nodes, full, time.monotonic())
                if out["resume"] is None:
                    # Dropped and never reconnected (nothing re-pings it): go on
                    # with the others, which are still a full mesh.
                    group = survivors
            if len(group) < 2:
                return out
            members = {n.alias for n in group}
            full = lambda n, m: m == members - {n.alias}  # noqa: E731

            victim = group[-2] if len(group) > 2 else group[-1]
            survivors = [n for n in group if n is not victim]
            t0 = time.monotonic()
            net.cut(victim.host)
            measure("cut", survivors, lambda n, m: victim.alias not in m, t0)
            time.sleep(cut_hold)
            t0 = time.monotonic()
            net.heal(victim.host)
            if out["cut"] is None:
                out["heal"] = "never dropped"
            else:
                measure("heal", group, full, t0)
        finally:
            for n in nodes:
                n.kill()
            for e in epmds:
                e.kill()
                e.wait(10)
            shutil.rmtree(root, ignore_errors=True)
    return out


# --------------------------------------------------------------- table

def cell(values, bound):
    """Median of the runs; a run that timed out counts as +inf."""
    values = [v for v in values if v != "skip"]
    if not values:
        return "–"
    if any(isinstance(v, str) for v in values):
        return "n/a (" + next(v for v in values if isinstance(v, str)) + ")"
    missed = sum(v is None for v in values)
    finite = [float("inf") if v is None else v for v in values]
    m = statistics.median(finite)
    if m == float("inf"):
        return f"not after {bound:.1f} s"
    text = f"{m:.3f}"
    if missed:
        text += f" ({missed} of {len(values)} runs: not after {bound:.1f} s)"
    return text


def add_run_arguments(parser, sizes):
    """--binary, --sizes and --runs, as every cluster benchmark takes them."""
    parser.add_argument("--binary", default="build/bench/src/app/iridium")
    parser.add_argument("--sizes", default=sizes)
    parser.add_argument("--runs", type=int, default=3)


def run_arguments(args):
    """(absolute binary, [sizes]) from add_run_arguments' options; exits
    with a message when they make no sense."""
    if not os.path.exists(args.binary):
        sys.exit(f"no binary at {args.binary}: build it first (bench/run builds build/bench)")
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.runs < 1 or any(s < 2 for s in sizes):
        sys.exit("--runs must be >= 1 and every size >= 2")
    return os.path.abspath(args.binary), sizes


def print_table_head(notes, caption, columns):
    """Notes as HTML comments, the caption, and the head of a markdown table
    of nodes | measurement | one column per name in columns."""
    for note in notes:
        print(f"<!-- {note} -->")
    print(caption + "\n")
    print("| nodes | measurement | " + " | ".join(columns) + " |")
    print("|---:|---|" + "---:|" * len(columns), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "8,16,32")
    parser.add_argument("--skip-erlang", action="store_true", help="no Erlang/OTP column")
    parser.add_argument("--skip-netns", action="store_true", help="no SIGSTOP/cut/heal (they need namespaces)")
    parser.add_argument("--erlang-wait", type=float, default=10.0,
                        help="bound on each Erlang wait for a drop, in s (default 10)")
    parser.add_argument("--erlang-ticktime", type=int, default=60, help="Erlang net_ticktime (default 60)")
    parser.add_argument("--cut-hold", type=float, default=0.0,
                        help="seconds the cut is held after every survivor dropped the victim (default 0)")
    args = parser.parse_args()
    _, sizes = run_arguments(args)

    os.environ.setdefault("IRIDIUM_LOG", "warn")
    notes = []
    use_netns = not args.skip_netns
    if not use_netns:
        notes.append("SIGSTOP/cut/heal skipped (--skip-netns)")
    else:
        ok, reason = netns.available()
        if ok:
            netns.install_signal_cleanup()
            notes.append(f"namespaces: {reason}")
        else:
            use_netns = False
            notes.append(f"SIGSTOP/cut/heal skipped: {reason}")
    use_erlang = not args.skip_erlang
    if use_erlang:
        ok, what = ensure_erlang()
        use_erlang = ok
        notes.append(f"Erlang/OTP: {what}" if ok else f"Erlang skipped: {what}")
    else:
        notes.append("Erlang skipped (--skip-erlang)")

    rows = [("convergence (all join one seed)", "converge", "converge"),
            ("convergence (each joins a random earlier node)", "converge_random", None),
            ("kill -9 → dropped by all (polled)", "kill", "kill"),
            ("kill -9 → dropped by all (node logs, ms)", "kill_log", None),
            ("SIGSTOP → dropped by all", "stop", "stop"),
            ("SIGCONT → full mesh again", "resume", "resume"),
            ("cut → dropped by all", "cut", "cut"),
            ("heal → full mesh", "heal", "heal")]
    print_table_head(notes, f"Medians of {args.runs} run(s), seconds; Erlang waits bounded at "
                     f"{args.erlang_wait:.1f} s, net_ticktime {args.erlang_ticktime} s; cut held "
                     f"{args.cut_hold:.1f} s after detection.", ["iridium", "Erlang/OTP"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        for size in sizes:
            ir, er = [], []
            for _ in range(args.runs):
                r = iridium_loopback(args.binary, size, pool)
                r.update(iridium_random_join(args.binary, size, pool))
                if use_netns:
                    r.update(iridium_netns(args.binary, size, pool, args.cut_hold))
                ir.append(r)
                if use_erlang:
                    e = erlang_loopback(size, args.erlang_ticktime, args.erlang_wait)
                    if use_netns:
                        e.update(erlang_netns(size, args.erlang_ticktime, args.erlang_wait, args.cut_hold))
                    er.append(e)
            for label, ikey, ekey in rows:
                if not use_netns and ikey in ("stop", "resume", "cut", "heal"):
                    continue
                icell = cell([r.get(ikey, "skip") for r in ir], 60)
                ecell = cell([e.get(ekey, "skip") for e in er], args.erlang_wait) if use_erlang and ekey else "–"
                print(f"| {size} | {label} | {icell} | {ecell} |")
            rounds = f"loopback {statistics.median(r['round_lo'] for r in ir):.3f}"
            if use_netns:
                ns_rounds = [r["round_ns"] for r in ir if "round_ns" in r]
                rounds += f", namespaces {statistics.median(ns_rounds):.3f}" if ns_rounds else ""
            print(f"| {size} | poll round (resolution) | {rounds} | {'nodeup/nodedown events' if use_erlang else '–'} |",
                  flush=True)


if __name__ == "__main__":
    main()
