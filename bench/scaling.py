#!/usr/bin/env python3
"""The scaling curve in containers (issue 11): N = 8, 16, 32, 64 nodes on one
machine, with scripts/cluster's compose engine and its Swarm engine.

For each engine and each N, one run:
  - `scripts/cluster [--engine swarm] up N` with its own project
    (IRIDIUM_PROJECT, default "scaling"), so nothing else is touched, run
    in the background; its wall time is reported (it returns once every
    container is healthy, which is not the cluster's convergence).
  - convergence, two ways, both counted from the LAST container's start
    (docker inspect .State.StartedAt, ns):
      polled: as soon as N containers run (while `up` still waits), every
        node is asked `!cluster_members --json` through `docker exec …
        iridium attach`, all in parallel, in rounds, until every node lists
        N-1 members, all alive; the end of the first round that saw it (an
        upper bound; the median round is reported as the resolution);
      logged: each node logs "X joined" / "joined the cluster via X" with ms
        timestamps; the moment the slowest node had logged N-1 distinct
        peers (exact to the ms, the same clock: containers share the host's).
  - after --settle seconds with nothing asking the nodes anything, an idle
    window of --window seconds, every counter read from the host at both
    ends (no docker exec inside the window):
      CPU per container: the container's cgroup (v1 cpuacct.usage, v2
        cpu.stat usage_usec), so the Docker health check (`iridium attach`
        every 5 s) is included; and the node process alone
        (/proc/PID/stat of the container's `iridium` child of tini);
      memory per container: cgroup usage minus inactive file pages (what
        `docker stats` shows) and the node process's VmRSS, at the end;
      bytes per node: /proc/PID/net/dev of the node's network namespace,
        transmitted bytes and packets summed over every interface but lo
        (compose: eth0 on the bridge; Swarm: eth0 on the overlay, whose
        VXLAN encapsulation is added by the host, not counted here, and
        eth1 on docker_gwbridge), so Ethernet + IP + TCP headers included;
      frames per node: the node's own frames_sent counter (from the
        snapshots just before and just after the window, each timed);
      connections: established TCP sockets in the node's namespace
        (/proc/PID/net/tcp), at the end of the window.
  - `scripts/cluster down` (always, in a finally); a swarm that `up` made
    is left again by `down`; at the end the engine's swarm state is
    checked against the one at the start.
Every wait is bounded (--converge-timeout for convergence, the up command's
own IRIDIUM_UP_TIMEOUT); a size that does not come up or converge is
reported as such, and the next size still runs.

    bench/scaling.py [--engines compose,swarm] [--sizes 8,16,32,64]
                     [--settle 10] [--window 20] [--converge-timeout 300]
                     [--project scaling] [--json FILE] [--no-poll]
                     [--hold S] [--faults]

--hold S: after the idle window, S more seconds with the cluster left alone,
then the "is dead" lines of every node's log since the hold began are
counted (every node is alive: each line is a false death). --faults (with
containers): then one node process is killed (kill -9 from the host) and
timed from its log lines until every other node has logged it dead.

--no-poll: while the cluster converges, read only `docker logs` (every 2 s)
until every node has logged N-1 peers, then confirm with one polling round;
the polled column is then empty. The polling's docker execs (16 at a time,
each an `iridium attach` with a CURVE handshake) load a 2-core machine and
slow the convergence they measure.

Needs root (cgroup and /proc of the containers' processes) and Docker, and
an otherwise idle machine: other load shows up in every figure.

--loopback: no containers. For each N, plain nodes on 127.0.0.1 (started
as bench/cluster.py starts them: n0 with --start-cluster, every other one
with --join n0), then N Erlang/OTP nodes (bench/cluster.py's BEAMs, every one
pinging e1), one after the other, side by side in one table:
  - full mesh after the last start: iridium from the node logs ("X joined"
    lines, ms timestamps, read from the files: nothing asks the nodes
    anything while they converge), then confirmed by one round of
    `!cluster_members --json`; Erlang from the nodeup lines each BEAM prints;
  - --settle s later, an idle window of --window s: CPU of every node
    process (all threads; the scheduler's ns count in /proc/PID/task/*/
    schedstat, or utime + stime of their stat) summed over the cluster and
    per node, context switches of all its threads (how often it
    wakes up), and where the CPU went by thread name (ZMQbg/IO/0 is libzmq's
    I/O thread); iridium's cluster frames sent per node per s from its own
    counters (snapshots before --settle and after the window).
Every process is killed at the end of its size (finally). The machine's
other load does not change the CPU a process uses much, but it slows the
convergence; the load average is reported.

    bench/scaling.py --loopback [--binary PATH] [--sizes 8,16,32,64,128]
                     [--settle 5] [--window 15] [--converge-timeout 60]
                     [--skip-erlang] [--idle-anyway] [--json FILE]
                     [--hold S] [--faults [--starve S]] [--keep-logs]

--idle-anyway: a size whose mesh is not complete by --converge-timeout is
still measured (its error says how far it got).
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import cluster as cluster_bench  # noqa: E402  (bench/cluster.py: wait_for, TimedOut, launch, Erlang)
from iridium_nodes import Cluster, cpu_seconds, parse_snapshot  # noqa: E402

REMOTE = "127.0.0.1:2244"  # the remote shell inside every container (scripts/cluster's `remote`)
# A log line; found anywhere in the line, as the REPL's prompt (">>> ") can
# precede one on the container's TTY.
LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) \w+ \[\d+\] (.*)$")
JOINED = [re.compile(r"^(\S+) joined \("), re.compile(r"^joined the cluster via (\S+) at ")]


# --------------------------------------------------------------- parsing (pure)

def net_dev_tx(text):
    """(tx bytes, tx packets, rx bytes) summed over every interface but lo,
    from the text of /proc/PID/net/dev."""
    tx_bytes = tx_packets = rx_bytes = 0
    for line in text.splitlines()[2:]:
        name, _, fields = line.partition(":")
        if not fields or name.strip() == "lo":
            continue
        v = [int(x) for x in fields.split()]
        rx_bytes += v[0]
        tx_bytes += v[8]
        tx_packets += v[9]
    return tx_bytes, tx_packets, rx_bytes


def established_tcp(text):
    """Established TCP sockets (state 01) in the text of /proc/PID/net/tcp."""
    return sum(1 for line in text.splitlines()[1:] if len(line.split()) > 3 and line.split()[3] == "01")


def memory_v1(stat_text, usage):
    """cgroup v1 usage minus inactive file pages, as `docker stats` shows it."""
    stat = dict((k, int(v)) for k, v in (line.split() for line in stat_text.splitlines() if line.strip()))
    return usage - stat.get("total_inactive_file", 0)


def log_time(stamp, local=False):
    """A node log's timestamp as epoch s: the local time of the container
    (UTC), or with local=True of this machine (nodes on loopback)."""
    t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
    return t.timestamp() if local else t.replace(tzinfo=datetime.timezone.utc).timestamp()


class JoinedPeers:
    """The peers a node's log names as joined (lines at or after `after`),
    fed the log piece by piece; complete_at is the epoch time of the line
    that named the peers_wanted-th distinct one, or None so far."""

    def __init__(self, peers_wanted, after, local=False):
        self.peers_wanted, self.after, self.local = peers_wanted, after, local
        self.seen = set()
        self.complete_at = None
        self.rest = ""  # a line not ended yet

    def feed(self, text):
        lines = (self.rest + text).split("\n")
        self.rest = lines.pop()
        for line in lines:
            if self.complete_at is not None:
                return
            if "joined" not in line:  # cheap: a node's log may hold many other lines
                continue
            m = LOG_LINE.search(line.rstrip())
            if not m:
                continue
            t = log_time(m.group(1), self.local)
            if t < self.after - 0.001:
                continue
            for pattern in JOINED:
                j = pattern.match(m.group(2))
                if j:
                    self.seen.add(j.group(1))
            if len(self.seen) >= self.peers_wanted:
                self.complete_at = t


def peers_complete_at(log_text, peers_wanted, after, local=False):
    """The epoch time at which a node's log had named peers_wanted distinct
    peers as joined (lines at or after `after`), or None if it never did."""
    joined = JoinedPeers(peers_wanted, after, local)
    joined.feed(log_text + "\n")
    return joined.complete_at


def docker_time(stamp):
    """docker inspect's RFC 3339 time with ns (…T16:01:02.123456789Z) as epoch s."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", stamp)
    if not m:
        raise ValueError(f"unexpected docker time {stamp!r}")
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return base.timestamp() + (float("0." + m.group(2)) if m.group(2) else 0.0)


# --------------------------------------------------------------- containers

def run(args, timeout, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def read(path):
    with open(path) as f:
        return f.read()


class Container:
    """One node's container, seen from the host."""

    def __init__(self, info):
        self.id = info["Id"]
        self.name = info["Name"].lstrip("/")
        self.pid = info["State"]["Pid"]       # tini, PID 1 of the container
        self.started = docker_time(info["State"]["StartedAt"])
        self.alias = self.name
        self.node_pid = None   # find_node() fills it in once the node runs
        self.cgroup = self._cgroups()

    def find_node(self):
        self.node_pid = self._node_pid()
        return self.node_pid

    def _node_pid(self):
        """The node: tini's child whose command is iridium (not a health check's
        `iridium attach`, which docker exec starts outside tini)."""
        for task in os.listdir(f"/proc/{self.pid}/task"):
            for child in read(f"/proc/{self.pid}/task/{task}/children").split():
                try:
                    if read(f"/proc/{child}/comm").strip() == "iridium":
                        return int(child)
                except OSError:
                    pass
        return None

    def _cgroups(self):
        """{controller: directory} of the container's cgroups (v1 per
        controller; v2 under the key "")."""
        out = {}
        for line in read(f"/proc/{self.pid}/cgroup").splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                base = "/sys/fs/cgroup" + (f"/{c}" if c and os.path.isdir(f"/sys/fs/cgroup/{c}") else "")
                if c == "" and os.path.isdir("/sys/fs/cgroup/unified") and not os.path.exists(
                        "/sys/fs/cgroup/cgroup.controllers"):
                    base = "/sys/fs/cgroup/unified"
                if os.path.isdir(base + path):
                    out[c] = base + path
        return out

    def cpu_ns(self):
        if "cpuacct" in self.cgroup:
            return int(read(self.cgroup["cpuacct"] + "/cpuacct.usage"))
        stat = read(self.cgroup[""] + "/cpu.stat")
        return 1000 * int(re.search(r"^usage_usec (\d+)", stat, re.M).group(1))

    def memory(self):
        if "memory" in self.cgroup:
            d = self.cgroup["memory"]
            return memory_v1(read(d + "/memory.stat"), int(read(d + "/memory.usage_in_bytes")))
        d = self.cgroup[""]
        stat = dict(line.split() for line in read(d + "/memory.stat").splitlines())
        return int(read(d + "/memory.current")) - int(stat.get("inactive_file", 0))

    def node_rss(self):
        m = re.search(r"^VmRSS:\s+(\d+) kB", read(f"/proc/{self.node_pid}/status"), re.M)
        return 1024 * int(m.group(1))

    def counters(self):
        tx, packets, rx = net_dev_tx(read(f"/proc/{self.pid}/net/dev"))
        return {"t": time.monotonic(), "cpu_ns": self.cpu_ns(), "node_cpu": cpu_seconds(self.node_pid),
                "tx": tx, "tx_packets": packets, "rx": rx}

    def snapshot(self):
        r = run(["docker", "exec", self.id, "iridium", "attach", REMOTE, "--timeout", "10",
                 "-c", "!cluster_members --json"], 30)
        return parse_snapshot(r)

    def members(self):
        """Aliases of the members this node lists as alive, or None."""
        s = self.snapshot()
        if s is None:
            return None
        self.alias = s["self"]["alias"]
        return {m["alias"] for m in s["members"] if m.get("state") == "alive"}

    def log(self):
        r = run(["docker", "logs", self.id], 60)
        return r.stdout + r.stderr


def project_containers(engine, project):
    label = f"com.docker.compose.project={project}" if engine == "compose" else \
        f"com.docker.stack.namespace={project}"
    ids = run(["docker", "ps", "-q", "--no-trunc", "--filter", f"label={label}"], 60).stdout.split()
    if not ids:
        return []
    infos = json.loads(run(["docker", "inspect", *ids], 120).stdout or "[]")
    out = []
    for info in infos:
        if not info["State"]["Running"]:
            continue
        try:
            out.append(Container(info))
        except OSError:  # it exited after docker ps (Swarm replaces failing tasks)
            pass
    return out


def cluster_cmd(engine, project, *args, timeout, log):
    env = dict(os.environ, IRIDIUM_PROJECT=project, IRIDIUM_ENGINE=engine,
               IRIDIUM_UP_TIMEOUT=str(int(timeout)))
    with open(log, "a") as f:
        f.write(f"\n$ scripts/cluster --engine {engine} {' '.join(args)}\n")
        f.flush()
        return subprocess.run([os.path.join(REPO, "scripts", "cluster"), "--engine", engine, *args],
                              stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout + 300).returncode


def swarm_state():
    return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], 60).stdout.strip()


# --------------------------------------------------------------- one size

def timed_snapshot(node):
    """(the middle of the exec's time span, the node's snapshot or None)."""
    t0 = time.monotonic()
    s = node.snapshot()
    return (t0 + time.monotonic()) / 2, s


def idle_window(nodes, settle, window, pool):
    time.sleep(settle)  # nothing asks the nodes anything: the joins' last exchanges end
    snap0 = list(pool.map(timed_snapshot, nodes))
    c0 = [n.counters() for n in nodes]
    time.sleep(window)  # the measured window itself
    c1 = [n.counters() for n in nodes]
    mem = [n.memory() for n in nodes]
    rss = [n.node_rss() for n in nodes]
    conns = [established_tcp(read(f"/proc/{n.pid}/net/tcp")) + established_tcp(read(f"/proc/{n.pid}/net/tcp6"))
             for n in nodes]
    snap1 = list(pool.map(timed_snapshot, nodes))
    per = []
    for a, b in zip(c0, c1):
        dt = b["t"] - a["t"]
        per.append({"cpu": 100 * (b["cpu_ns"] - a["cpu_ns"]) / 1e9 / dt,
                    "node_cpu": 100 * (b["node_cpu"] - a["node_cpu"]) / dt,
                    "tx": (b["tx"] - a["tx"]) / dt, "tx_packets": (b["tx_packets"] - a["tx_packets"]) / dt,
                    "rx": (b["rx"] - a["rx"]) / dt})
    frames = []
    for (t0, s0), (t1, s1) in zip(snap0, snap1):
        if s0 and s1:
            frames.append((s1["counters"]["frames_sent"] - s0["counters"]["frames_sent"]) / (t1 - t0))
    return per, mem, rss, conns, frames


def mean_max(values):
    return {"mean": statistics.mean(values), "max": max(values)} if values else None


def failure_evidence(nodes, pool, log, name=lambda n: n.name):
    """What the nodes' logs say after a failed convergence: deaths, restarts
    and refusals counted over all nodes; every log saved beside `log`."""
    texts = list(pool.map(lambda n: n.log(), nodes))
    directory = log + ".nodes"
    os.makedirs(directory, exist_ok=True)
    for n, text in zip(nodes, texts):
        with open(os.path.join(directory, name(n) + ".log"), "w") as f:
            f.write(text)
    # str.count, not a regex: the logs of a cluster that never converged run to many MB.
    count = lambda *words: sum(t.count(w) for t in texts for w in words)  # noqa: E731
    return (f"node logs (saved in {directory}): {count(' is dead ')} deaths, "
            f"{count(' is alive again')} recoveries, {count(' joined (')} joins, "
            f"{count('refused')} refusals, {count('pause', 'late')} pause/late warnings")


def one_size(engine, size, args, pool, log):
    result = {"engine": engine, "n": size}
    t_cmd = time.time()
    env = dict(os.environ, IRIDIUM_PROJECT=args.project, IRIDIUM_ENGINE=engine,
               IRIDIUM_UP_TIMEOUT=str(int(args.converge_timeout)))
    with open(log, "a") as f:
        f.write(f"\n$ scripts/cluster --engine {engine} up {size}\n")
    up_log = open(log, "a")
    # In the background: its own wait (every container healthy) is not the
    # cluster's convergence, which is polled meanwhile.
    up = subprocess.Popen([os.path.join(REPO, "scripts", "cluster"), "--engine", engine, "up", str(size)],
                          stdin=subprocess.DEVNULL, stdout=up_log, stderr=subprocess.STDOUT, env=env)
    up_log.close()
    try:
        nodes = []
        deadline = time.monotonic() + args.converge_timeout
        while time.monotonic() < deadline:
            nodes = project_containers(engine, args.project)
            if len(nodes) >= size or up.poll() is not None:
                break
            time.sleep(0.5)
        result["running"] = len(nodes)
        if len(nodes) != size:
            result["error"] = f"{len(nodes)} of {size} containers running " + (
                f"when `up` exited ({up.returncode})" if up.poll() is not None else
                f"after {args.converge_timeout:.0f} s")
            return result
        first = min(n.started for n in nodes)
        last = max(n.started for n in nodes)
        result["start_spread_s"] = last - first
        result["first_start_after_up_s"] = first - t_cmd
        want = lambda n, m: len(m) == size - 1 and n.alias not in m  # noqa: E731
        if args.no_poll:
            # Nothing but `docker logs` until every node has logged N-1
            # peers: the polling's own docker execs load a small machine.
            def logged_all():
                texts = list(pool.map(lambda n: n.log(), nodes))
                return all(peers_complete_at(t, size - 1, first - 1) is not None for t in texts)
            while not logged_all():
                if time.monotonic() >= deadline:
                    result["error"] = f"node logs name fewer than {size - 1} peers {args.converge_timeout:.0f} s " \
                                      "after `up`"
                    result["evidence"] = failure_evidence(nodes, pool, log)
                    return result
                time.sleep(2)
        try:
            _, round_s = cluster_bench.wait_for(nodes, want, max(deadline - time.monotonic(), 1), pool)
            if not args.no_poll:
                result["converge_polled_s"] = time.time() - last
            result["poll_round_s"] = round_s
        except cluster_bench.TimedOut as e:
            got = list(pool.map(lambda n: n.members(), nodes))
            counts = sorted(len(m) if m is not None else -1 for m in got)
            result["error"] = f"no full mesh {args.converge_timeout:.0f} s after `up` ({e}); " \
                              f"members listed per node: min {counts[0]}, max {counts[-1]} (-1: no answer)"
            result["evidence"] = failure_evidence(nodes, pool, log)
            return result
        try:
            up.wait(max(deadline - time.monotonic(), 1) + 60)
            result["up_s"] = time.time() - t_cmd
            if up.returncode != 0:
                result["error"] = f"`up {size}` failed (exit {up.returncode}); see {log}"
                return result
        except subprocess.TimeoutExpired:
            result["error"] = "`up` did not return"
            return result
        missing = [n.name for n in nodes if n.find_node() is None]
        if missing:
            result["error"] = f"no iridium process in {missing}"
            return result
        logs = list(pool.map(lambda n: n.log(), nodes))
        done = [peers_complete_at(text, size - 1, first - 1) for text in logs]
        if all(t is not None for t in done):
            result["converge_logged_s"] = max(done) - last
        else:
            result["converge_logged_s"] = None
            result["log_note"] = f"{sum(t is None for t in done)} node logs name fewer than {size - 1} peers"
        # Every container lives: each death a node logged from the first
        # start to here (convergence and up's health wait) is a false one.
        result["start_false_deaths"] = sum(len(dead_lines_in(text, first - 1)) for text in logs)
        per, mem, rss, conns, frames = idle_window(nodes, args.settle, args.window, pool)
        for key in ("cpu", "node_cpu", "tx", "tx_packets", "rx"):
            result[key] = mean_max([p[key] for p in per])
        result["tx_total"] = sum(p["tx"] for p in per)
        result["memory"] = mean_max(mem)
        result["rss"] = mean_max(rss)
        result["connections"] = mean_max(conns)
        result["frames"] = mean_max(frames)
        result["frames_nodes"] = len(frames)
        result["host_load"] = os.getloadavg()[0]
        if args.hold or args.faults:
            container_faults(nodes, result, args, pool)
        return result
    except Exception as e:  # noqa: BLE001  (a failed size is reported, the next one still runs)
        result["error"] = f"{type(e).__name__}: {e}"
        return result
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(30)
        t_down = time.time()
        try:
            rc = cluster_cmd(engine, args.project, "down", timeout=120, log=log)
            if rc != 0:
                # Seen at N = 64: the network still had endpoints while the
                # last containers went; once more, after they are gone.
                time.sleep(5)
                again = cluster_cmd(engine, args.project, "down", timeout=120, log=log)
                result["down_error"] = f"down exited {rc}; a second down exited {again}"
        except subprocess.TimeoutExpired:
            result["down_error"] = "down timed out"
        result["down_s"] = time.time() - t_down


# --------------------------------------------------------------- loopback (--loopback)

def process_threads(pid):
    """{thread name: (CPU seconds, context switches)} of a process so far, its
    threads of one name summed (libzmq names its I/O thread ZMQbg/IO/0). CPU
    is the scheduler's own count in ns (/proc/PID/task/TID/schedstat) where
    the kernel keeps it, else utime + stime of the thread's stat (in clock
    ticks: 10 ms steps, too coarse for one idle process over a few seconds)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{task}"
        try:
            stat = read(base + "/stat")
            status = read(base + "/status")
            schedstat = read(base + "/schedstat") if os.path.exists(base + "/schedstat") else ""
        except OSError:  # the thread ended meanwhile
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        switches = sum(int(v) for v in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)", status, re.M))
        seconds = int(schedstat.split()[0]) / 1e9 if schedstat else (int(fields[11]) + int(fields[12])) / tick
        cpu, count = out.get(name, (0.0, 0))
        out[name] = (cpu + seconds, count + switches)
    return out


def idle_processes(pids, window):
    """Each process's CPU (% of one core) and wakeups/s (context switches of
    all its threads) over `window` s, and CPU % by thread name over all of
    them, from /proc alone."""
    t0 = time.monotonic()
    before = [process_threads(p) for p in pids]
    time.sleep(window)
    after = [process_threads(p) for p in pids]
    dt = time.monotonic() - t0
    per, by_name = [], {}
    for a, b in zip(before, after):
        cpu = sum(b[k][0] - a.get(k, (0.0, 0))[0] for k in b)
        switches = sum(b[k][1] - a.get(k, (0.0, 0))[1] for k in b)
        per.append({"cpu": 100 * cpu / dt, "wakeups": switches / dt})
        for k in b:
            by_name[k] = by_name.get(k, 0.0) + 100 * (b[k][0] - a.get(k, (0.0, 0))[0]) / dt
    return per, {k: round(v, 3) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}


def rss_of(pid):
    m = re.search(r"^VmRSS:\s+(\d+) kB", read(f"/proc/{pid}/status"), re.M)
    return 1024 * int(m.group(1))


def idle_result(result, per, by_thread, rss):
    result["cpu_total"] = sum(p["cpu"] for p in per) / 100
    result["cpu"] = mean_max([p["cpu"] for p in per])
    result["wakeups"] = mean_max([p["wakeups"] for p in per])
    result["cpu_by_thread"] = by_thread
    result["rss"] = mean_max(rss)
    result["host_load"] = os.getloadavg()[0]


def wait_logged(nodes, size, after, deadline):
    """Epoch times at which each node's log had named every other node as
    joined (read from the log files as they grow, nothing asked of the
    nodes); raises cluster_bench.TimedOut at the deadline, RuntimeError if a
    node exits."""
    joined = [JoinedPeers(size - 1, after, local=True) for _ in nodes]
    offsets = [0] * len(nodes)
    while True:
        for i, n in enumerate(nodes):
            if joined[i].complete_at is None:
                with open(n.log_path, "rb") as f:
                    f.seek(offsets[i])
                    new = f.read()
                offsets[i] += len(new)
                joined[i].feed(new.decode("utf-8", "replace"))
        done = [j.complete_at for j in joined]
        if all(t is not None for t in done):
            return done
        exited = [n.alias for n in nodes if n.process.poll() is not None]
        if exited:
            raise RuntimeError(f"nodes exited: {exited}")
        if time.monotonic() >= deadline:
            short = sum(t is None for t in done)
            raise cluster_bench.TimedOut(f"{short} of {size} node logs name fewer than {size - 1} peers")
        time.sleep(0.5)


def loopback_iridium(binary, size, args, pool):
    """One size of plain iridium nodes on 127.0.0.1: convergence, then idle."""
    result = {"engine": "iridium", "n": size}
    cluster = Cluster(binary)
    try:
        first = time.time()
        seed = cluster_bench.launch(cluster, "n0", "--start-cluster")
        nodes = [seed] + [cluster_bench.launch(cluster, f"n{i}", "--join", seed.address) for i in range(1, size)]
        last = time.time()
        result["start_spread_s"] = last - first
        deadline = time.monotonic() + args.converge_timeout
        try:
            result["converge_s"] = max(wait_logged(nodes, size, first - 1, deadline)) - last
            everyone = {n.alias for n in nodes}
            _, result["poll_round_s"] = cluster_bench.wait_for(
                nodes, lambda n, m: m == everyone - {n.alias}, max(deadline - time.monotonic(), 1), pool)
        except cluster_bench.TimedOut as e:
            result["error"] = f"no full mesh {args.converge_timeout:.0f} s after the last start ({e})"
            result["evidence"] = failure_evidence(nodes, pool, args.log, name=lambda n: n.alias)
            if not args.idle_anyway:
                return result
        if args.keep_logs:
            failure_evidence(nodes, pool, args.log, name=lambda n: n.alias)
        snap0 = list(pool.map(timed_snapshot, nodes))
        time.sleep(args.settle)
        per, by_thread = idle_processes([n.process.pid for n in nodes], args.window)
        idle_result(result, per, by_thread, [rss_of(n.process.pid) for n in nodes])
        snap1 = list(pool.map(timed_snapshot, nodes))
        frames = [(s1["counters"]["frames_sent"] - s0["counters"]["frames_sent"]) / (t1 - t0)
                  for (t0, s0), (t1, s1) in zip(snap0, snap1) if s0 and s1]
        result["frames"] = mean_max(frames)
        result["frames_nodes"] = len(frames)
        if args.hold:
            t0 = time.time()
            time.sleep(args.hold)
            result["hold_s"] = args.hold
            result["hold_false_deaths"] = sum(len(dead_lines(n, t0)) for n in nodes)
        if args.faults:
            loopback_faults(nodes, result, args)
        return result
    except Exception as e:  # noqa: BLE001  (a failed size is reported, the next one still runs)
        result["error"] = f"{type(e).__name__}: {e}"
        return result
    finally:
        cluster.close()


DEAD_LINE = re.compile(r"^(\S+) info \[\d+\] (\S+) is dead", re.M)


def dead_lines(node, since):
    """(epoch, alias) of every 'X is dead' line in node's log after `since`."""
    with open(node.log_path, encoding="utf-8", errors="replace") as f:
        return dead_lines_in(f.read(), since, local=True)


def dead_lines_in(text, since, local=False):
    return [(t, alias) for stamp, alias in DEAD_LINE.findall(text)
            if (t := log_time(stamp, local=local)) >= since]


def container_faults(nodes, result, args, pool):
    """Containers: hold the converged cluster args.hold s and count the
    deaths logged meanwhile (every node is alive: each is a false death);
    then kill -9 one node process from the host and time it until every
    other node has logged it dead."""
    t0 = time.time()
    time.sleep(args.hold)
    texts = list(pool.map(lambda n: n.log(), nodes))
    result["hold_s"] = args.hold
    result["hold_false_deaths"] = sum(len(dead_lines_in(t, t0)) for t in texts)
    if not args.faults:
        return
    victim, others = nodes[-1], nodes[:-1]
    t0 = time.time()
    os.kill(victim.find_node(), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        firsts = [min((t for t, alias in dead_lines_in(text, t0) if alias == victim.alias), default=None)
                  for text in pool.map(lambda n: n.log(), others)]
        if all(f is not None for f in firsts):
            result["kill9_dropped_s"] = max(firsts) - t0
            return
        time.sleep(0.5)


def dropped_by_all(victim, others, since, deadline):
    """Seconds from `since` until every node of `others` logged `victim` dead."""
    while time.monotonic() < deadline:
        firsts = []
        for n in others:
            seen = [t for t, alias in dead_lines(n, since) if alias == victim.alias]
            if not seen:
                break
            firsts.append(min(seen))
        else:
            return max(firsts) - since
        time.sleep(0.02)
    return None


def loopback_faults(nodes, result, args):
    """After the idle window: kill -9 one node, SIGSTOP another, each timed
    until every other node logged it dead; then one node stopped 1 s in
    every 2 s for args.starve seconds while the deaths of healthy nodes are
    counted."""
    victim, stopped, starved = nodes[-1], nodes[-2], nodes[-3]
    others = nodes[:-3]
    t0 = time.time()
    victim.process.kill()
    result["kill9_dropped_s"] = dropped_by_all(victim, others + [stopped, starved], t0, time.monotonic() + 30)
    t0 = time.time()
    stopped.process.send_signal(signal.SIGSTOP)
    result["sigstop_dropped_s"] = dropped_by_all(stopped, others + [starved], t0, time.monotonic() + 30)
    stopped.process.send_signal(signal.SIGCONT)
    time.sleep(3)  # the stopped node refutes or is probed back
    t0 = time.time()
    end = time.monotonic() + args.starve
    while time.monotonic() < end:
        starved.process.send_signal(signal.SIGSTOP)
        time.sleep(1.0)
        starved.process.send_signal(signal.SIGCONT)
        time.sleep(1.0)
    healthy = {n.alias for n in others + [stopped]}
    result["starve_s"] = args.starve
    result["starve_false_deaths"] = sum(1 for n in others + [stopped, starved]
                                        for _, alias in dead_lines(n, t0) if alias in healthy)
    result["starve_victim_deaths"] = sum(1 for n in others + [stopped]
                                         for _, alias in dead_lines(n, t0) if alias == starved.alias)


def loopback_erlang(size, args):
    """The same for N BEAMs (bench/cluster.py's), every one pinging e1."""
    result = {"engine": "erlang", "n": size}
    try:
        with cluster_bench.erlang_loopback_nodes(size, 60) as (nodes, epmd, last):
            everyone = {n.alias for n in nodes}
            result["converge_s"] = cluster_bench.erlang_wait(
                nodes, lambda n, m: m == everyone - {n.alias}, args.converge_timeout, last)
            time.sleep(args.settle)
            pids = [n.process.pid for n in nodes]
            per, by_thread = idle_processes(pids + [epmd.pid], args.window)
            result["epmd_cpu"] = per.pop()["cpu"]  # one for the cluster: in cpu_total, not per node
            idle_result(result, per, by_thread, [rss_of(p) for p in pids])
            result["cpu_total"] += result["epmd_cpu"] / 100
            if not all(n.latest and n.latest[1] == everyone - {n.alias} for n in nodes):
                result["error"] = "the mesh came apart during the idle window"
            return result
    except (cluster_bench.TimedOut, RuntimeError, OSError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        return result


LOOPBACK_ROWS = [("starts spread over, s", "start_spread_s", "{:.2f}", "mean"),
                 ("full mesh after the last start, s (node logs; Erlang: nodeup lines)", "converge_s",
                  "{:.3f}", "mean"),
                 ("idle CPU of all nodes together, cores", "cpu_total", "{:.4f}", "mean"),
                 ("idle CPU per node, % of one core (mean; max)", "cpu", "{:.3f}", "both"),
                 ("wakeups per node per s: context switches, all threads (mean; max)", "wakeups", "{:.0f}",
                  "both"),
                 ("cluster frames sent per node per s", "frames", "{:.1f}", "mean"),
                 ("node RSS, MiB (mean; max)", "rss", "{:.1f}", "both"),
                 ("load average at the end of the window", "host_load", "{:.1f}", "mean"),
                 ("--hold: seconds held after the idle window", "hold_s", "{:.0f}", "mean"),
                 ("--hold: live nodes declared dead meanwhile (all nodes' logs)", "hold_false_deaths", "{:.0f}",
                  "mean"),
                 ("--faults: kill -9 dropped by every other node after, s", "kill9_dropped_s", "{:.3f}",
                  "mean"),
                 ("--faults: SIGSTOP dropped by every other node after, s", "sigstop_dropped_s", "{:.2f}",
                  "mean"),
                 ("--faults: one node stopped 1 s in every 2 s, for s", "starve_s", "{:.0f}", "mean"),
                 ("--faults: ... healthy nodes declared dead meanwhile", "starve_false_deaths", "{:.0f}",
                  "mean"),
                 ("--faults: ... the starved node declared dead (times, all nodes)", "starve_victim_deaths",
                  "{:.0f}", "mean")]


def print_loopback_rows(size, ir, er):
    for label, key, spec, part in LOOPBACK_ROWS:
        cells = [fmt(r, key, spec, part, SCALE.get(key, 1.0)) if r else "–" for r in (ir, er)]
        print(f"| {size} | {label} | " + " | ".join(cells) + " |")
    for r in (ir, er):
        for k in ("error", "evidence"):
            if r and k in r:
                print(f"| {size} | {r['engine']}: {k} | {r[k]} | |")
    sys.stdout.flush()


def main_loopback(args, sizes):
    binary = os.path.abspath(args.binary)
    if not os.path.exists(binary):
        sys.exit(f"no binary at {args.binary}: build it first")
    notes = [machine_facts(docker=False)[0], f"binary {binary}; load average {os.getloadavg()[0]:.2f} at the start"]
    use_erlang = not args.skip_erlang
    if use_erlang:
        use_erlang, what = cluster_bench.ensure_erlang()
        notes.append(f"Erlang/OTP: {what}, net_ticktime 60 s" if use_erlang else f"Erlang skipped: {what}")
    os.environ["IRIDIUM_LOG"] = "info"  # the "X joined" lines
    cluster_bench.print_table_head(
        notes, f"Loopback, plain nodes; idle window {args.window:g} s, {args.settle:g} s after the full mesh.",
        ["iridium", "Erlang/OTP"])
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for size in sizes:
            ir = loopback_iridium(binary, size, args, pool)
            er = loopback_erlang(size, args) if use_erlang else None
            results += [r for r in (ir, er) if r]
            print_loopback_rows(size, ir, er)
            if args.json:  # after every size: a run cut short keeps what it measured
                with open(args.json, "w") as f:
                    json.dump({"notes": notes, "results": results}, f, indent=1)
    for r in results:
        print(f"<!-- {r['engine']} N={r['n']} CPU by thread name, % of one core over all nodes: "
              f"{json.dumps(r.get('cpu_by_thread'))} -->")


# --------------------------------------------------------------- report

def fmt(r, key, spec, part="mean", scale=1.0):
    v = r.get(key)
    if v is None:
        return "–"
    if isinstance(v, dict):
        return (spec.format(v["mean"] / scale) + "; " + spec.format(v["max"] / scale)) if part == "both" \
            else spec.format(v[part] / scale)
    return spec.format(v / scale)


ROWS = [("first container started after `up` began, s", "first_start_after_up_s", "{:.1f}", "mean"),
        ("container starts spread over, s", "start_spread_s", "{:.2f}", "mean"),
        ("`up N` returned after (all healthy), s", "up_s", "{:.1f}", "mean"),
        ("convergence after the last start, polled, s", "converge_polled_s", "{:.2f}", "mean"),
        ("poll round (resolution), s", "poll_round_s", "{:.2f}", "mean"),
        ("convergence after the last start, node logs, s", "converge_logged_s", "{:.3f}", "mean"),
        ("live nodes declared dead from the first start until `up` returned (all nodes' logs)",
         "start_false_deaths", "{:.0f}", "mean"),
        ("CPU per container, % of one core (mean; max)", "cpu", "{:.2f}", "both"),
        ("CPU of the node process alone, % (mean; max)", "node_cpu", "{:.2f}", "both"),
        ("memory per container, MiB (mean; max)", "memory", "{:.1f}", "both"),
        ("node process RSS, MiB (mean; max)", "rss", "{:.1f}", "both"),
        ("sent per node, B/s incl. headers (mean; max)", "tx", "{:.0f}", "both"),
        ("sent per node, packets/s", "tx_packets", "{:.0f}", "mean"),
        ("cluster frames sent per node per s", "frames", "{:.0f}", "mean"),
        ("sent by all nodes, kB/s", "tx_total", "{:.0f}", "mean"),
        ("established TCP connections per node", "connections", "{:.0f}", "mean"),
        ("--hold: seconds held after the idle window", "hold_s", "{:.0f}", "mean"),
        ("--hold: live nodes declared dead meanwhile (all nodes' logs)", "hold_false_deaths", "{:.0f}", "mean"),
        ("--faults: kill -9 of one node process dropped by every other node after, s", "kill9_dropped_s",
         "{:.3f}", "mean")]
SCALE = {"memory": 2 ** 20, "rss": 2 ** 20, "tx_total": 1000}


def print_table(results, engines, sizes):
    for engine in engines:
        rs = {r["n"]: r for r in results if r["engine"] == engine}
        print(f"\n### {engine}\n")
        print("| measurement | " + " | ".join(f"N = {n}" for n in sizes) + " |")
        print("|---|" + "---:|" * len(sizes))
        for label, key, spec, part in ROWS:
            cells = []
            for n in sizes:
                r = rs.get(n, {})
                cells.append("–" if "error" in r and key not in r else fmt(r, key, spec, part, SCALE.get(key, 1.0)))
            print(f"| {label} | " + " | ".join(cells) + " |")
        for n in sizes:
            r = rs.get(n, {})
            for k in ("error", "evidence", "log_note", "down_error"):
                if k in r:
                    print(f"\nN = {n}: {k.replace('_', ' ')}: {r[k]}")
    sys.stdout.flush()


def machine_facts(docker=True):
    mem = int(re.search(r"^MemTotal:\s+(\d+)", read("/proc/meminfo"), re.M).group(1)) * 1024
    model = re.search(r"^model name\s*:\s*(.*)$", read("/proc/cpuinfo"), re.M)
    facts = [f"{os.cpu_count()} CPUs ({model.group(1) if model else '?'}), {mem / 2 ** 30:.1f} GiB RAM, "
             f"Linux {platform.release()}"]
    if docker:
        version = run(["docker", "version", "--format", "{{.Server.Version}}"], 60).stdout.strip()
        info = run(["docker", "info", "--format", "{{.CgroupVersion}} {{.CgroupDriver}} {{.Driver}}"],
                   60).stdout.split()
        facts.append(f"Docker {version}, cgroup v{info[0] if info else '?'} ({' '.join(info[1:])}); "
                     f"load average {os.getloadavg()[0]:.2f} at the start")
    return facts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loopback", action="store_true",
                        help="nodes on 127.0.0.1 beside Erlang/OTP instead of containers")
    parser.add_argument("--binary", default="build/bench/src/app/iridium", help="--loopback: the iridium to run")
    parser.add_argument("--skip-erlang", action="store_true", help="--loopback: no Erlang/OTP column")
    parser.add_argument("--faults", action="store_true",
                        help="--loopback: then kill -9 one node, SIGSTOP another (time until all dropped "
                             "it), and stop a third 1 s in every 2 s for --starve s (healthy nodes dropped); "
                             "containers: after --hold, kill -9 one node process (time until all dropped it)")
    parser.add_argument("--starve", type=float, default=60.0, help="--faults: seconds of starvation")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="containers: after the idle window, hold the cluster this many s and count deaths")
    parser.add_argument("--keep-logs", action="store_true",
                        help="--loopback: save every node's log beside --log once converged, as on a failure")
    parser.add_argument("--idle-anyway", action="store_true",
                        help="--loopback: measure the idle window even when the mesh did not form in time")
    parser.add_argument("--engines", default="compose,swarm")
    parser.add_argument("--sizes", help="default 8,16,32,64 (--loopback: 8,16,32,64,128)")
    parser.add_argument("--settle", type=float, help="s between convergence and the window (default 10; "
                        "--loopback: 5)")
    parser.add_argument("--window", type=float, help="idle window in s (default 20; --loopback: 15)")
    parser.add_argument("--converge-timeout", type=float,
                        help="bound on `up` and on convergence after the last start, s (default 300; "
                        "--loopback: 60)")
    parser.add_argument("--project", default="scaling")
    parser.add_argument("--no-poll", action="store_true",
                        help="no members polling during convergence: node logs only (then one round to confirm)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--log", default="/tmp/iridium-scaling.log", help="scripts/cluster's output")
    args = parser.parse_args()
    for key, containers, loopback in (("sizes", "8,16,32,64", "8,16,32,64,128"), ("settle", 10.0, 5.0),
                                      ("window", 20.0, 15.0), ("converge_timeout", 300.0, 60.0)):
        if getattr(args, key) is None:
            setattr(args, key, loopback if args.loopback else containers)
    engines = args.engines.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(e not in ("compose", "swarm") for e in engines) or any(s < 2 for s in sizes):
        sys.exit("--engines takes compose and/or swarm; every size must be >= 2")
    if args.window <= 0 or args.settle < 0 or args.converge_timeout <= 0:
        sys.exit("--window and --converge-timeout must be > 0, --settle >= 0")
    if args.loopback:
        return main_loopback(args, sizes)
    if os.geteuid() != 0:
        sys.exit("needs root: it reads the containers' cgroups and /proc")
    for engine in engines:
        if project_containers(engine, args.project):
            sys.exit(f"project {args.project} already has {engine} containers; take them down first")

    swarm_before = swarm_state()
    notes = machine_facts() + [f"swarm state before: {swarm_before}"]
    for note in notes:
        print(f"<!-- {note} -->", flush=True)
    results = []
    started = time.time()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            for engine in engines:
                for size in sizes:
                    t = time.time()
                    r = one_size(engine, size, args, pool, args.log)
                    r["run_s"] = time.time() - t
                    results.append(r)
                    print(f"<!-- {engine} N={size}: {json.dumps(r)} -->", flush=True)
    finally:
        swarm_after = swarm_state()
        if swarm_after != swarm_before:
            print(f"<!-- swarm state changed: {swarm_before} -> {swarm_after} -->", flush=True)
            if swarm_before == "inactive" and swarm_after == "active" and not run(
                    ["docker", "service", "ls", "-q"], 60).stdout.strip():
                run(["docker", "swarm", "leave", "--force"], 120)
                print(f"<!-- left the swarm: now {swarm_state()} -->", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"notes": notes, "results": results}, f, indent=1)
    print(f"\nOne run per size; idle window {args.window:g} s, {args.settle:g} s after convergence; "
          f"all sizes took {time.time() - started:.0f} s.")
    print_table(results, engines, sizes)


if __name__ == "__main__":
    main()
