#!/usr/bin/env python3
"""Endurance: do a node's memory, open fds and threads stay flat under
sustained load, membership churn and remote shells coming and going? A
bounded run: --nodes (8) nodes on 127.0.0.1, started through
tests/harness/iridium_nodes.py with their remote shells, for --seconds (600);
then every process started is killed (also on an error, Ctrl-C or SIGTERM).

  - load: --sessions (4) long-lived remote-shell sessions (run_on.py's
    Session: ZeroMQ DEALER + MessagePack, `open` once, then one `exec` per
    line), on node-0, node-1, ..., each sending `!run_all --json small.iasm`
    (a ~3000-step loop that prints one line) again as soon as the answer is
    back. Nodes keep the default 2 workers and queue nothing, so the load
    is bounded (at most --sessions runs in flight) and what does not fit a
    node is refused at once (pool_full): counted, not retried. Jobs,
    refusals and failures are counted per minute; the membership's own
    counters (suspicions, deaths) show whether the load starved it.
  - churn: the last node (node-7 by default) is killed with SIGKILL every
    --churn-period (30) seconds, left down --churn-down (2) seconds, and
    started again with the same alias, ports and data directory (`--join
    node-0`); each time, how long until every other node has dropped it, and
    has listed it again. No load session is on it.
  - remote shells coming and going: every --attach-period (3) seconds, on a
    random node other than the churned one, alternately an `iridium attach
    HOST:PORT -c '!jobs'` process and a raw session that opens, pings (so
    it promises keepalives), runs `!jobs` and vanishes without `close` (the
    node ends it after 10 s of silence). Never while a membership poll (below)
    runs: a node starts a remote-shell executor thread whenever more lines
    run at once than it has threads, and keeps it; this way each node's
    thread count is set by the load alone (one executor more on the nodes
    with a load session), and growth is a finding, not chance.

Every --sample-period (10) seconds, for every node process: VmRSS (and its
RssAnon and RssFile parts) and Threads from /proc/PID/status, open fds
(entries of /proc/PID/fd) and CPU time; and each node's `!cluster_members
--json` (over one long-lived session per node). The churned node is sampled
too but reported apart: its RSS starts over at each restart.

Each other node is compared with itself. The reference is the sample at half
the run and the window is the second half: the default 600 s run measures
minute 5 against the last 5 minutes, --seconds 120 minute 1 against the last
minute (the first half is warm-up: finished-job lists fill up to their bound,
the allocator settles; a run that short checks that everything works, but
its RSS verdict is not one: the allocator takes minutes to settle). Targets,
PASS/FAIL each, exit status 1 if one fails:

  - RSS: every sample in the window within +-5 % of the reference; shown
    with RSS at the reference and at the end, and the least-squares slope
    over the window in KiB/min.
  - fds flat: the median of the second half's samples at most --fd-slack
    (2) above the first half's (medians, as an attach connection or a redial
    to the churned node may be open at any one sample); threads flat: the
    second half's maximum at most --thread-slack (0) above the first half's.
    The table gives the min-max of each over the whole run.
  - membership: no node but the churned one ever missing from another's
    list (at the samples), and every node listing every other at the end.

    bench/endurance.py [--binary PATH] [--seconds 600] [--nodes 8]
                       [--sessions 4] [--churn-period 30] [--churn-down 2]
                       [--attach-period 3] [--sample-period 10]
                       [--json PATH] [--keep-logs]

The binary defaults to build/release/src/app/iridium; needs pyzmq and
msgpack, as run_on.py. It keeps both cores of a 2-core machine busy: run it
on a quiet machine, and copy the binary first if it may be rebuilt meanwhile
(the churned node is started from it again every 30 s).
"""
import argparse
import concurrent.futures
import json
import os
import platform
import random
import shutil
import signal
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
from iridium_nodes import REPO, Cluster, cpu_seconds, wait_until  # noqa: E402

sys.path.insert(0, HERE)
from run_on import Session  # noqa: E402  (the remote-shell protocol client)

# ~3000 steps, then one line of output.
SMALL = (".data\nline: .asciiz 'endurance\\n'\n.code\n"
         "load $0 #1000\nload $1 #0\ntop: inc $1\nneq $0 $1\ndjmpe @top\nprts @line\nhlt\n")


# --- the cluster ----------------------------------------------------------------

def start_nodes(cluster, size):
    """node-0 starts the cluster, node-1..node-(size-1) join it in parallel;
    returns the nodes once every one lists every other."""
    seed = cluster.seed("node-0")
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        joiners = list(pool.map(lambda i: cluster.joiner(f"node-{i}", seed), range(1, size)))
    cluster.wait_converged(timeout=60)
    return [seed] + joiners


class Tally:
    """Thread-safe counts, in total and per minute since t0 (what comes after
    t0 + seconds, while the threads stop, counts in the last minute)."""

    def __init__(self, t0, seconds):
        self.t0 = t0
        self.last_minute = max(0, int((seconds - 1e-6) // 60))
        self.total = {}
        self.minutes = {}
        self.lock = threading.Lock()

    def add(self, key, n=1):
        minute = min(int((time.monotonic() - self.t0) // 60), self.last_minute)
        with self.lock:
            self.total[key] = self.total.get(key, 0) + n
            row = self.minutes.setdefault(minute, {})
            row[key] = row.get(key, 0) + n

    def get(self, key):
        with self.lock:
            return self.total.get(key, 0)


class Views:
    """One long-lived remote-shell session per node, for `!cluster_members
    --json`; shared by the sampler and the churn thread (one lock, which
    the attach thread holds too)."""

    def __init__(self, context, nodes):
        self.context = context
        self.nodes = nodes
        self.sessions = {}
        self.lock = threading.Lock()

    def snapshot(self, node):
        """The node's `!cluster_members --json`, or None when it does not
        answer (its session is then opened again next time)."""
        with self.lock:
            try:
                if node.alias not in self.sessions:
                    self.sessions[node.alias] = Session(self.context, node.remote_port)
                answer = self.sessions[node.alias].request(
                    {"v": 1, "type": "exec", "line": "!cluster_members --json"}, timeout=5)
                return json.loads(answer["output"].strip().splitlines()[-1])
            except (RuntimeError, zmq.ZMQError):
                self._drop(node.alias)
            except (KeyError, ValueError, IndexError):
                pass
        return None

    def members(self, node):
        """The aliases node lists, or None when it does not answer."""
        snapshot = self.snapshot(node)
        return None if snapshot is None else {m["alias"] for m in snapshot["members"]}

    def all(self):
        return {n.alias: self.members(n) for n in self.nodes}

    def _drop(self, alias):
        session = self.sessions.pop(alias, None)
        if session is not None:
            session.socket.close()

    def close(self):
        with self.lock:
            for alias in list(self.sessions):
                self.sessions[alias].close()
            self.sessions.clear()


# --- the three kinds of pressure ------------------------------------------------

def load_loop(context, node, path, stop, tally):
    """`!run_all --json path` on node, again and again until stop."""
    session = None
    while not stop.is_set():
        try:
            session = session or Session(context, node.remote_port)
            answer = session.exec(f"!run_all --json {path}")
            results = json.loads(answer["output"].strip().splitlines()[-1])["results"]
        except (RuntimeError, zmq.ZMQError, ValueError, IndexError, KeyError):
            tally.add("errors")
            if session is not None:
                session.socket.close()  # a late answer must not pair with the next line
                session = None
            stop.wait(1)
            continue
        tally.add("runs")
        for r in results:
            if r["ok"]:
                tally.add("jobs")
            elif r["status"] == "refused" and r.get("code") == "pool_full":
                tally.add("refused")
            else:
                tally.add("failed")
    if session is not None:
        session.close()


def churn_loop(victim, seed, views, stable, timing, t0, stop, tally, events):
    """Kills victim every period seconds (from t0; none in the last period),
    restarts it down seconds later with the same alias, ports and data
    directory; records how long until every stable node had dropped it and
    listed it again. timing: (period, down, seconds)."""
    period, down, seconds = timing
    k = 1
    while k * period + down < seconds and not stop.wait(max(0.0, t0 + k * period - time.monotonic())):
        k += 1
        event = {"t": round(time.monotonic() - t0, 1)}
        killed = time.monotonic()
        victim.kill()
        tally.add("kills")
        event["dropped_s"] = timed(lambda: not any(victim.alias in (views.members(n) or {victim.alias})
                                                   for n in stable), min(10.0, period / 2), killed)
        stop.wait(max(0.0, killed + down - time.monotonic()))
        if stop.is_set():
            break
        started = time.monotonic()
        victim.launch("--join", seed.address)
        try:
            victim.wait_ready(timeout=30)
        except AssertionError as e:
            event["error"] = str(e)[:300]
            tally.add("restart_failures")
            events.append(event)
            continue
        event["listed_s"] = timed(lambda: all(victim.alias in (views.members(n) or ()) for n in stable),
                                  min(30.0, period / 2), started)
        tally.add("restarts")
        events.append(event)


def timed(predicate, timeout, since):
    """Seconds from since until predicate held (polled), or None if it did
    not within timeout."""
    try:
        wait_until(predicate, timeout, interval=0.05)
        return round(time.monotonic() - since, 3)
    except AssertionError:
        return None


def attach_loop(context, views, period, stop, tally, rng):
    """Every period seconds, on a random stable node: an `iridium attach -c
    '!jobs'` process, or (every other time) a raw session that vanishes;
    under the views' lock, so never at the same time as a membership poll
    (the module's doc says why)."""
    k = 0
    while not stop.wait(period):
        node = rng.choice(views.nodes)
        with views.lock:
            if k % 2 == 0:
                try:
                    ok = node.attach("!jobs", timeout=10).returncode == 0
                except subprocess.TimeoutExpired:
                    ok = False
                tally.add("attaches" if ok else "attach_failures")
            else:
                tally.add("vanished" if vanish(context, node) else "vanish_failures")
        k += 1


def vanish(context, node):
    """Opens a session, pings, runs `!jobs` and goes without `close`."""
    session = None
    try:
        session = Session(context, node.remote_port)
        session.socket.send(msgpack.packb({"v": 1, "type": "ping"}))
        session.exec("!jobs")
        return True
    except (RuntimeError, zmq.ZMQError):
        return False
    finally:
        if session is not None:
            session.socket.close()


# --- sampling -------------------------------------------------------------------

def proc_sample(pid):
    """{"rss_kib", "anon_kib", "file_kib", "threads", "fds", "cpu_s"} of a
    live process, or None. VmRSS = RssAnon (heap, stacks) + RssFile (the
    pages of the binary and libraries it has touched) + RssShmem."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        kib = {key: int(status[name].split()[0]) for key, name in
               (("rss_kib", "VmRSS"), ("anon_kib", "RssAnon"), ("file_kib", "RssFile"))}
        return {**kib, "threads": int(status["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd")),
                "cpu_s": round(cpu_seconds(pid), 2)}
    except (OSError, KeyError, ValueError):
        return None  # gone, or a zombie (no VmRSS)


def take_sample(nodes, views, stable, t):
    """One row per node process, plus each stable node's membership view."""
    rows = []
    for node in nodes:
        process = node.process
        stats = proc_sample(process.pid) if process is not None else None
        if stats is not None:
            rows.append({"t": t, "alias": node.alias, "pid": process.pid, **stats})
    seen = views.all()
    aliases = {n.alias for n in stable}
    missing = {a: sorted(aliases - {a} - m) if m is not None else None for a, m in seen.items()}
    view = {"t": t, "loadavg": os.getloadavg()[0], "missing": {a: m for a, m in missing.items() if m != []},
            "listing_churned": sum(1 for m in seen.values() if m is not None and m - aliases)}
    return rows, view


def sample_loop(nodes, views, stable, seconds, period, t0, tally, log):
    """Samples at t0, t0 + period, ... and at t0 + seconds; returns
    (samples, views). log gets one progress line per sample."""
    times = [k * period for k in range(int(seconds // period) + 1)]
    if times[-1] < seconds:
        times.append(seconds)
    samples, seen = [], []
    for t in times:
        time.sleep(max(0.0, t0 + t - time.monotonic()))
        rows, view = take_sample(nodes, views, stable, t)
        samples += rows
        seen.append(view)
        nodes_now = " ".join(f"{r['alias']}:{r['rss_kib'] / 1024:.1f}/{r['fds']}/{r['threads']}" for r in rows)
        log(f"t={t:4.0f}s jobs={tally.get('jobs')} refused={tally.get('refused')} "
            f"restarts={tally.get('restarts')} node:RSS MiB/fds/threads {nodes_now}"
            + (f" MISSING {view['missing']}" if view["missing"] else ""))
    return samples, seen


# --- the report -----------------------------------------------------------------

def slope_per_minute(rows):
    """Least-squares slope of rss_kib over t, in KiB per minute."""
    if len(rows) < 2:
        return 0.0
    xs = [r["t"] / 60 for r in rows]
    ys = [r["rss_kib"] for r in rows]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


def node_figures(rows, half, fd_slack, thread_slack):
    """The figures of one stable node's samples (half: the reference time)."""
    window = [r for r in rows if r["t"] >= half]
    first = [r for r in rows if r["t"] < half] or rows[:1]
    ref, end = window[0], window[-1]
    worst = max(window, key=lambda r: abs(r["rss_kib"] - ref["rss_kib"]))
    span = end["t"] - rows[0]["t"]
    out = {"pid_changed": len({r["pid"] for r in rows}) > 1, "ref_t": ref["t"],
           "rss_ref_kib": ref["rss_kib"], "rss_end_kib": end["rss_kib"],
           "rss_max_dev_pct": round(100 * (worst["rss_kib"] - ref["rss_kib"]) / ref["rss_kib"], 2),
           "rss_slope_kib_per_min": round(slope_per_minute(window), 1),
           "anon_ref_kib": ref["anon_kib"], "anon_end_kib": end["anon_kib"],
           "file_ref_kib": ref["file_kib"], "file_end_kib": end["file_kib"],
           "cpu_pct": round(100 * (end["cpu_s"] - rows[0]["cpu_s"]) / span, 1) if span else None}
    # fds come and go with attach connections and redials: compare the halves'
    # medians; threads do not: compare their maxima.
    for key, slack, measure in (("fds", fd_slack, statistics.median), ("threads", thread_slack, max)):
        values = [r[key] for r in rows]
        halves = [measure(r[key] for r in part) for part in (first, window)]
        out[key] = {"min": min(values), "max": max(values), "halves": halves,
                    "flat": halves[1] <= halves[0] + slack}
    out["rss_ok"] = abs(out["rss_max_dev_pct"]) <= 5.0 and not out["pid_changed"]
    return out


def churned_figures(rows, events):
    """The churned node's ranges over all its processes, and its restarts."""
    done = [e for e in events if "listed_s" in e]

    def spread(key):
        values = [e[key] for e in done if e.get(key) is not None]
        return {"median": round(statistics.median(values), 3) if values else None,
                "max": max(values, default=None), "missed": sum(1 for e in done if e.get(key) is None)}

    def min_max(key):
        values = [r[key] for r in rows]
        return [min(values, default=None), max(values, default=None)]

    return {"incarnations_sampled": len({r["pid"] for r in rows}), "rss_kib": min_max("rss_kib"),
            "fds": min_max("fds"), "threads": min_max("threads"),
            "dropped_by_all_s": spread("dropped_s"), "listed_by_all_s": spread("listed_s")}


def analyse(run, args):
    half = args.seconds / 2
    stable = run["stable"]
    nodes = {a: node_figures([r for r in run["samples"] if r["alias"] == a], half, args.fd_slack,
                             args.thread_slack) for a in stable}
    misses = sum(len(m) for v in run["views"] for m in v["missing"].values() if m is not None)
    silent = sum(1 for v in run["views"] for m in v["missing"].values() if m is None)
    targets = [
        ("RSS within +-5 % of the reference over the window, every node",
         all(f["rss_ok"] for f in nodes.values()),
         ", ".join(f"{a} {f['rss_max_dev_pct']:+.1f} %" for a, f in nodes.items())),
        (f"fds flat (median of the 2nd half <= median of the 1st + {args.fd_slack})",
         all(f["fds"]["flat"] for f in nodes.values()),
         ", ".join(f"{a} {f['fds']['halves'][0]:g} -> {f['fds']['halves'][1]:g}" for a, f in nodes.items())),
        (f"threads flat (max of the 2nd half <= max of the 1st + {args.thread_slack})",
         all(f["threads"]["flat"] for f in nodes.values()),
         ", ".join(f"{a} {f['threads']['halves'][0]} -> {f['threads']['halves'][1]}" for a, f in nodes.items())),
        ("no stable node missing from another's list (sampled)", misses == 0,
         f"{misses} missing in {len(run['views'])} samples of {len(stable)} views ({silent} views not answered)"),
        ("full mesh at the end", run["full_mesh_at_end"], "yes" if run["full_mesh_at_end"] else "no"),
    ]
    return {"nodes": nodes, "churned": churned_figures([r for r in run["samples"] if r["alias"] == run["churned"]],
                                                       run["churn_events"]),
            "targets": [{"target": t, "pass": ok, "figures": fig} for t, ok, fig in targets]}


def mib(kib):
    return f"{kib / 1024:.1f}"


def print_report(run, result, args):
    half = args.seconds / 2
    total, elapsed = run["tally"], run["elapsed"]
    print(f"\n## {len(run['stable']) + 1} nodes, {args.seconds:g} s; reference sample at {half:g} s, "
          f"window {half:g}-{args.seconds:g} s\n")
    print(f"| node | RSS at {half:g} s (MiB) | RSS at end (MiB) | max dev in window | slope (KiB/min) "
          "| anon / file at ref -> end (MiB) | fds min-max | threads min-max | CPU (% of a core) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for alias, f in result["nodes"].items():
        print(f"| {alias} | {mib(f['rss_ref_kib'])} | {mib(f['rss_end_kib'])} | {f['rss_max_dev_pct']:+.2f} % "
              f"| {f['rss_slope_kib_per_min']:+.1f} | {mib(f['anon_ref_kib'])} / {mib(f['file_ref_kib'])} -> "
              f"{mib(f['anon_end_kib'])} / {mib(f['file_end_kib'])} | {f['fds']['min']}-{f['fds']['max']} "
              f"| {f['threads']['min']}-{f['threads']['max']} | {f['cpu_pct']} |")
    c = result["churned"]
    print(f"| {run['churned']} (churned; {c['incarnations_sampled']} processes sampled) "
          f"| {mib(c['rss_kib'][0] or 0)}-{mib(c['rss_kib'][1] or 0)} | | | | | {c['fds'][0]}-{c['fds'][1]} "
          f"| {c['threads'][0]}-{c['threads'][1]} | |")
    print(f"\nload: {total.get('runs', 0)} `!run_all` runs, {total.get('jobs', 0)} jobs "
          f"({total.get('jobs', 0) / elapsed:.0f} jobs/s), {total.get('refused', 0)} refused (pool_full), "
          f"{total.get('failed', 0)} failed, {total.get('errors', 0)} session errors")
    print("\n| minute | jobs | jobs/s | refused | failed |")
    print("|---:|---:|---:|---:|---:|")
    for minute, row in sorted(run["minutes"].items()):
        length = min(60.0, elapsed - 60 * minute)
        if length > 0:
            print(f"| {minute + 1} | {row.get('jobs', 0)} | {row.get('jobs', 0) / length:.0f} "
                  f"| {row.get('refused', 0)} | {row.get('failed', 0)} |")
    d, ls = c["dropped_by_all_s"], c["listed_by_all_s"]
    print(f"\nchurn: {total.get('restarts', 0)} restarts of {run['churned']} "
          f"({total.get('restart_failures', 0)} failed); dropped by all in median {d['median']} s, "
          f"max {d['max']} s ({d['missed']} not within the bound); listed by all again in median "
          f"{ls['median']} s, max {ls['max']} s ({ls['missed']} not within the bound)")
    print(f"remote shells: {total.get('attaches', 0)} `iridium attach -c '!jobs'` "
          f"({total.get('attach_failures', 0)} failed), {total.get('vanished', 0)} sessions vanished "
          f"without close ({total.get('vanish_failures', 0)} failed)")
    counters = run["counters_at_end"]
    print(f"membership counters summed over the stable nodes at the end: suspicions "
          f"{counters.get('suspicions')}, deaths {counters.get('deaths')} ({run['churned']} killed "
          f"{total.get('kills', 0)} times x {len(run['stable'])} nodes = {total.get('kills', 0) * len(run['stable'])}), "
          f"recoveries {counters.get('recoveries')}")
    print("\n| target | result | figures |")
    print("|---|---|---|")
    for t in result["targets"]:
        print(f"| {t['target']} | {'PASS' if t['pass'] else 'FAIL'} | {t['figures']} |")


# --- the run --------------------------------------------------------------------

def drive(cluster, nodes, path, args, log):
    """Starts the load, churn and attach threads, samples until the end,
    stops them; everything measured, as a dict."""
    churned, stable = nodes[-1], nodes[:-1]
    context = zmq.Context()
    views = Views(context, stable)
    stop = threading.Event()
    t0 = time.monotonic()
    tally, events = Tally(t0, args.seconds), []
    threads = [threading.Thread(target=load_loop, args=(context, stable[i % len(stable)], path, stop, tally))
               for i in range(args.sessions)]
    timing = (args.churn_period, args.churn_down, args.seconds)
    threads.append(threading.Thread(target=churn_loop, args=(churned, nodes[0], views, stable, timing, t0, stop,
                                                             tally, events)))
    threads.append(threading.Thread(target=attach_loop, args=(context, views, args.attach_period, stop, tally,
                                                              random.Random(args.random_seed))))
    for t in threads:
        t.daemon = True  # a thread stuck in a wait must not keep the process after the finally
        t.start()
    try:
        samples, seen = sample_loop(nodes, views, stable, args.seconds, args.sample_period, t0, tally, log)
    finally:
        stop.set()
        elapsed = time.monotonic() - t0
        for t in threads:
            t.join(90)
    if not churned.running():
        try:
            churned.start("--join", nodes[0].address)
        except AssertionError as e:
            log(f"{churned.alias} did not start again at the end: {e}")
    full = wait_full_mesh(cluster)
    counters = {}
    for node in stable:
        snapshot = views.snapshot(node) or {"counters": {}}
        for key, value in snapshot["counters"].items():
            counters[key] = counters.get(key, 0) + value
    views.close()
    context.destroy(linger=0)
    return {"stable": [n.alias for n in stable], "churned": churned.alias, "samples": samples, "views": seen,
            "churn_events": events, "tally": dict(tally.total), "minutes": tally.minutes, "elapsed": elapsed,
            "full_mesh_at_end": full, "counters_at_end": counters}


def wait_full_mesh(cluster):
    try:
        cluster.wait_converged(timeout=30)
        return True
    except AssertionError:
        return False


def machine(binary):
    """The machine, and which build of which checkout is measured."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())

    def git(*words):
        done = subprocess.run(["git", "-C", REPO, *words], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    changed = git("status", "--porcelain", "--untracked-files=no", "src")
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": f"{platform.system()} {platform.release()}",
            "loadavg_at_start": os.getloadavg()[0], "binary": binary,
            "binary_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(binary))),
            "commit": git("rev-parse", "--short", "HEAD"),
            "src_changed": None if changed is None else changed.count("\n") + bool(changed)}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "release", "src", "app", "iridium"))
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--churn-period", type=float, default=30)
    parser.add_argument("--churn-down", type=float, default=2)
    parser.add_argument("--attach-period", type=float, default=3)
    parser.add_argument("--sample-period", type=float, default=10)
    parser.add_argument("--fd-slack", type=int, default=2)
    parser.add_argument("--thread-slack", type=int, default=0)
    parser.add_argument("--random-seed", type=int, default=1)
    parser.add_argument("--json", help="write every sample and the figures here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the node logs (their directory is printed)")
    args = parser.parse_args()
    if args.nodes < 3 or args.sessions < 1 or args.seconds < 2 * args.sample_period:
        parser.error("needs --nodes >= 3, --sessions >= 1 and --seconds >= 2 * --sample-period")
    args.binary = os.path.abspath(args.binary)
    if not os.path.exists(args.binary):
        parser.error(f"no binary at {args.binary}")
    return args


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run the finally blocks
    os.environ.setdefault("IRIDIUM_LOG", "info")
    started = time.monotonic()

    def log(text):
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    info = machine(args.binary)
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['kernel']}, "
          f"load average {info['loadavg_at_start']:.2f}\nbinary: {args.binary} (built {info['binary_mtime']}; "
          f"checkout at {info['commit']}, {info['src_changed']} files under src/ changed)", flush=True)
    work = tempfile.mkdtemp(prefix="iridium-bench-endurance-")
    path = os.path.join(work, "small.iasm")
    with open(path, "w") as f:
        f.write(SMALL)
    cluster = Cluster(args.binary)
    try:
        nodes = start_nodes(cluster, args.nodes)
        log(f"{args.nodes} nodes meshed; load for {args.seconds:g} s")
        run = drive(cluster, nodes, path, args, log)
    finally:
        cluster.close(keep_logs=args.keep_logs)
        shutil.rmtree(work, ignore_errors=True)
    if args.keep_logs:
        print(f"node logs: {cluster.root}")
    info["loadavg_at_end"] = os.getloadavg()[0]
    loads = [v["loadavg"] for v in run["views"]]
    print(f"load average (1 min) over the run: {min(loads):.2f}-{max(loads):.2f}, "
          f"median {statistics.median(loads):.2f}")
    result = analyse(run, args)
    print_report(run, result, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "machine": info, **run, **result}, f, indent=1)
    return 0 if all(t["pass"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
