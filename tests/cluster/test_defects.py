"""Cluster defects measured on loopback with real processes, one test each.

Every test asserts the behaviour the cluster should have; each one failed on
the cluster core before the rewrite (main at a12f7fb; the comment of each
test says what it did). Bounds are generous: these are correctness tests,
not benchmarks. Every wait polls against a deadline; the only sleeps are the
ones that time a stimulus (kill 0.3 s after a command, restart 50 ms after a
kill, gaps between churn events). Nodes log at IRIDIUM_LOG=info (unless set)
to files in the cluster's temp dir; a failing test prints their tails.

    python3 tests/cluster/test_defects.py build/src/app/iridium [-k PATTERN]
    IRIDIUM_CHURN_SEED=N ...   replays churn schedule N (test_10); =random: a fresh one
"""
import os
import random
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from iridium_nodes import ClusterTestCase, free_port, kill_process, take_binary, wait_until  # noqa: E402

BINARY = take_binary()
POLL = 0.05  # seconds between samples of a continuous check
DEFAULT_CHURN_SEED = 2374857350  # see test_10


def result(text):
    """A measured figure, for docs/performance.md (the assertion is the test)."""
    print(f"\nRESULT {text}", file=sys.stderr, flush=True)


def show(members):
    return "no answer" if members is None else "{" + ", ".join(sorted(members)) + "}"


class Defects(ClusterTestCase):
    binary = BINARY

    # --- helpers ----------------------------------------------------------

    def start_mesh(self, count, prefix="n"):
        """A seed and count - 1 nodes joined through it, all started before
        any is waited for; returns them once every one lists every other."""
        seed = self.cluster.node(f"{prefix}0").launch("--start-cluster")
        nodes = [seed] + [self.cluster.node(f"{prefix}{i}").launch("--join", seed.address) for i in range(1, count)]
        for node in nodes:
            node.wait_ready()
        self.cluster.wait_converged(timeout=20)
        return nodes

    def views(self, nodes=None):
        """'alias: {members}' of every given (default: live) node, for messages."""
        seen = self.cluster.members_of(nodes if nodes is not None else self.cluster.live())
        return "; ".join(f"{alias}: {show(members)}" for alias, members in seen.items())

    def attach_in_background(self, node, line):
        """Runs one line on node through `iridium attach -c` without waiting."""
        proc = subprocess.Popen([BINARY, "attach", f"127.0.0.1:{node.remote_port}", "-c", line],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)

        def reap():
            kill_process(proc)
            proc.communicate()  # closes the pipe

        self.addCleanup(reap)
        return proc

    def hold(self, seconds, violation, what):
        """Samples violation() every POLL s for `seconds`; it returns None
        when the sample is fine, else a description. Fails at the first bad
        sample, naming when it came."""
        start = time.monotonic()
        samples = 0
        while True:
            problem = violation()
            samples += 1
            elapsed = time.monotonic() - start
            if problem is not None:
                self.fail(f"{what}: after {elapsed:.2f} s (sample {samples}): {problem}")
            if elapsed >= seconds:
                return samples
            time.sleep(POLL)

    def hold_full_mesh(self, nodes, seconds, what):
        aliases = {n.alias for n in nodes}

        def violation():
            seen = self.cluster.members_of(nodes)
            bad = {a: m for a, m in seen.items() if m != aliases - {a}}
            return None if not bad else "; ".join(f"{a} lists {show(m)}" for a, m in bad.items())

        return self.hold(seconds, violation, what)

    def hold_running(self, nodes, seconds, what):
        def violation():
            exited = [f"{n.alias} exited with {n.process.returncode}" for n in nodes if not n.running()]
            return ", ".join(exited) or None

        return self.hold(seconds, violation, what)

    # --- 1: a peer's death must not abort a node ---------------------------

    def test_01a_peer_survives_join_cluster_localhost_then_kill_9(self):
        # Was: B aborted (SIGABRT, libzmq "Assertion failed: !_io_error
        # (src/stream_engine_base.cpp:331)") about 0.5 s after A died, every time.
        for round_ in range(5):
            b = self.cluster.node(f"b{round_}").start("--start-cluster")
            a = self.cluster.node(f"a{round_}").start("--join", b.address)
            self.cluster.wait_converged(expected={a.alias, b.alias})
            self.attach_in_background(a, f"!join_cluster localhost {b.port}")
            time.sleep(0.3)  # the stimulus: A dies while its second join (to "localhost") is under way
            a.kill()
            self.hold_running([b], 3, f"round {round_ + 1} of 5: B after A was killed with -9")
            b.kill()

    def test_01b_no_node_exits_when_one_leaves_a_mesh_where_all_joined_all(self):
        # Was: SIGTERM of one of 8 nodes started with --join naming all the
        # others made 1 to 6 of the other 7 abort (SIGABRT), every time.
        for round_ in range(3):
            nodes = [self.cluster.node(f"r{round_}n{i}") for i in range(8)]
            for node in nodes:
                node.launch("--join", ",".join(other.address for other in nodes if other is not node))
            for node in nodes:
                node.wait_ready()
            self.cluster.wait_converged(timeout=20, expected={n.alias for n in nodes})
            leaver = nodes[3]
            leaver.signal(signal.SIGTERM)
            self.assertEqual(leaver.wait_exit(10), 0, "the SIGTERMed node's own exit status")
            others = [n for n in nodes if n is not leaver]
            self.hold_running(others, 3, f"round {round_ + 1} of 3: the other 7 after {leaver.alias} left")
            for node in others:
                node.kill()

    # --- 2: an impostor must not displace the real member -------------------

    def test_02_impostor_is_refused_and_the_real_member_stays_listed(self):
        # Was: B refused the impostor's hello but then lost the real alpha:
        # dropped as dead ~1.5 s later and not listed again within the 3 s.
        b = self.cluster.seed("b")
        alpha = self.cluster.joiner("alpha", b)
        self.cluster.wait_converged()
        impostor = self.cluster.node("impostor-of-alpha")
        impostor.alias = "alpha"  # a live member's alias, with another port and data directory
        impostor.launch("--join", b.address)

        def violation():
            snapshot = b.snapshot()
            if snapshot is None:
                return "B did not answer"
            listed = {m["alias"]: m["port"] for m in snapshot["members"]}
            if listed.get("alpha") != alpha.port:
                return f"B lists {listed} (alias: port); the real alpha is at port {alpha.port}"
            return None

        self.hold(3, violation, "B must list the real alpha continuously while the impostor tries to join")
        wait_until(lambda: re.search(r"(?i)refus.*alpha", b.log()), 5,
                   lambda: f"B's log to say it refused the impostor:\n{b.log()[-2000:]}")
        self.assertEqual(alpha.members(), {"b"})

    # --- 3: a restart at the same address must not be dropped again ---------

    def test_03_restart_at_the_same_address_is_listed_continuously(self):
        # Was: after a kill -9 and an immediate restart (same port, alias and
        # data dir), the seed took the new incarnation at once, but in about
        # half of the tries the other nodes never heard it, kept the dead one,
        # dropped it ~1.6 s after the kill and listed the node again only
        # 0.6-1 s later. Five rounds, so that the race shows.
        nodes = self.start_mesh(4)
        for round_ in range(5):
            victim = nodes[1 + round_ % 3]
            observers = [n for n in nodes if n is not victim]
            victim.kill()
            victim.launch("--join", nodes[0].address)
            restarted = time.monotonic()
            first_seen = {}
            deadline = restarted + 15
            while True:
                now = time.monotonic()
                seen = self.cluster.members_of(observers)
                for alias, members in seen.items():
                    listed = members is not None and victim.alias in members
                    if alias in first_seen and not listed:
                        self.fail(f"round {round_ + 1} of 5: {alias} listed the restarted {victim.alias} from "
                                  f"{first_seen[alias]:.2f} s after the restart, then not at {now - restarted:.2f} s "
                                  f"({alias} lists {show(members)})")
                    if listed and alias not in first_seen:
                        first_seen[alias] = now - restarted
                if len(first_seen) == len(observers) and all(now - restarted - t >= 4 for t in first_seen.values()):
                    break
                if now > deadline:
                    self.fail(f"round {round_ + 1} of 5: not every node listed the restarted {victim.alias} for 4 s "
                              f"within 15 s; first seen: {first_seen}")
                time.sleep(POLL)
            self.cluster.wait_converged()

    # --- 4: members remembered in the data directory ------------------------

    def test_04_restart_meshes_through_remembered_members_when_the_seed_is_dead(self):
        # Was: X retried its dead seed forever and never found the two live
        # members it had been meshed with (nothing is kept in the data dir).
        seed, b, c, x = self.start_mesh(4)
        x.signal(signal.SIGTERM)
        self.assertEqual(x.wait_exit(10), 0)
        seed.kill()
        x.launch("--join", seed.address)  # same port, alias and data directory; the seed is dead
        started = time.monotonic()
        wait_until(lambda: x.members() == {b.alias, c.alias} and all(x.alias in (n.members() or ()) for n in (b, c)),
                   5, lambda: f"{x.alias} to mesh with {b.alias} and {c.alias} within 5 s of its restart "
                              f"({self.views([x, b, c])})",
                   interval=POLL)
        result(f"04 SIGTERM restart through a dead seed: meshed {time.monotonic() - started:.2f} s after the restart")

    # --- 5: convergence time ------------------------------------------------

    def test_05_chain_of_joins_converges_quickly(self):
        # 24 nodes started at once, each joining the node started just before
        # it: the deepest join graph, which gossip every 1 s needs log2(24),
        # about 5, rounds to flatten. Target: a full mesh well under 1 s after
        # the last start; bound 3 s. Was: 4.3-4.4 s (on 2 cores; with each
        # node joining a random earlier node instead, 2.1 s at 8 nodes and
        # 3.3 s at 32, too close to the bound to fail reliably).
        count = 24
        nodes = [self.cluster.node(f"c{i:02d}") for i in range(count)]
        nodes[0].launch("--start-cluster")
        for i in range(1, count):
            nodes[i].launch("--join", nodes[i - 1].address)
        last_start = time.monotonic()
        wait_until(lambda: self.cluster.converged(), 15,
                   lambda: f"a full mesh of {count} nodes within 15 s ({self.views()})", interval=POLL)
        elapsed = time.monotonic() - last_start
        result(f"05 chain of {count} joins: full mesh {elapsed:.2f} s after the last start")
        self.assertLess(elapsed, 3.0, f"full mesh of {count} nodes {elapsed:.2f} s after the last start")

    # --- 6: restart on a new port -------------------------------------------

    def test_06_restart_on_a_new_port_rejoins_the_mesh(self):
        # Was: the member it joined through refused it as a duplicate of its
        # own dead incarnation (heard < 600 ms before); with no other seed the
        # node stayed alone, listing nobody.
        nodes = self.start_mesh(4)
        victim = nodes[2]
        victim.kill()
        time.sleep(0.05)  # the stimulus: restart 50 ms after the kill
        victim.port = free_port()
        victim.launch("--join", nodes[1].address)
        started = time.monotonic()
        others = [n for n in nodes if n is not victim]

        def at_new_port():
            snapshots = self.cluster.snapshots_of(others)
            return all(s is not None and any(m["alias"] == victim.alias and m["port"] == victim.port
                                             for m in s["members"]) for s in snapshots.values())

        wait_until(lambda: self.cluster.converged() and at_new_port(), 3,
                   lambda: f"{victim.alias} back in the full mesh, listed at its new port {victim.port}, within 3 s "
                           f"of its restart ({self.views()})", interval=POLL)
        result(f"06 restart on a new port 50 ms after kill -9: full mesh {time.monotonic() - started:.2f} s "
               f"after the restart")

    # --- 7: the seed restarted at once --------------------------------------

    def test_07_restarted_seed_is_listed_by_all_again(self):
        # Was: the restarted seed listed nobody, the others dropped it ~1.5 s
        # after the kill, and the full mesh came back 2.8-3.8 s after the
        # restart.
        nodes = self.start_mesh(4)
        seed = nodes[0]
        seed.kill()
        seed.launch("--start-cluster")  # same port, alias and data directory
        started = time.monotonic()
        wait_until(lambda: self.cluster.converged(), 2,
                   lambda: f"the restarted seed in the full mesh within 2 s ({self.views()})", interval=POLL)
        result(f"07 seed killed and restarted at once: full mesh {time.monotonic() - started:.2f} s after the restart")
        self.hold_full_mesh(nodes, 3, "the full mesh after the seed's restart")

    # --- 8: joining a known member under another name -----------------------

    def test_08_join_cluster_localhost_to_a_known_member_loses_nobody(self):
        # Was: the seed dropped b ~1.7 s after b ran `!join_cluster localhost
        # SEED_PORT`, and listed it again ~0.7-1 s later.
        seed, b, c = self.start_mesh(3)
        joining = self.attach_in_background(b, f"!join_cluster localhost {seed.port}")
        self.hold_full_mesh([seed, b, c], 3, "every node while b joins its own seed again as localhost")
        joining.communicate(timeout=15)
        self.assertEqual([n.alias for n in (seed, b, c) if not n.running()], [], "nodes that exited")

    # --- 9: a node no seed admits -------------------------------------------

    def test_09_alias_refused_by_every_seed_exits_non_zero(self):
        # Was: the node logged "cannot join the cluster at ...: alias 'bravo'
        # is already used by a live node ..." for each seed and kept running,
        # alone, forever.
        seed = self.cluster.seed("s")
        bravo = self.cluster.joiner("bravo", seed)
        self.cluster.wait_converged()
        impostor = self.cluster.node("impostor-of-bravo")
        impostor.alias = "bravo"
        impostor.launch("--join", f"{seed.address},{bravo.address}")
        wait_until(lambda: impostor.process.poll() is not None, 15,
                   lambda: f"the node whose alias every seed refused to exit within 15 s; its log:\n"
                           f"{impostor.log()[-2000:]}", interval=0.1)
        self.assertNotEqual(impostor.process.returncode, 0, impostor.log())
        self.assertRegex(impostor.log(), r"(?i)bravo.*(already|in use|duplicate)|(already|in use|duplicate).*bravo")
        self.assertEqual(seed.members(), {"bravo"})

    # --- 10: churn ------------------------------------------------------------

    def test_10_churn_converges_to_the_live_set(self):
        # The default schedule is one the old core failed every time: m5,
        # SIGSTOPped for 6.4 s while m1 and m7 were restarted, listed nobody
        # and was listed by nobody 5 s after the last event. Most random
        # schedules passed there (1 of 6 tried failed).
        # IRIDIUM_CHURN_SEED=random tries a fresh one, =N replays one.
        seed_value = os.environ.get("IRIDIUM_CHURN_SEED") or str(DEFAULT_CHURN_SEED)
        seed_value = random.SystemRandom().randrange(2 ** 32) if seed_value == "random" else int(seed_value)
        print(f"\nchurn seed {seed_value} (replay: IRIDIUM_CHURN_SEED={seed_value})", file=sys.stderr)
        rng = random.Random(seed_value)
        nodes = self.start_mesh(8, prefix="m")
        state = {n.alias: "running" for n in nodes}  # running, stopped or dead
        crashes, events = [], []
        started = time.monotonic()

        def note_crashes():
            for n in nodes:
                if state[n.alias] != "dead" and n.process.poll() is not None:
                    crashes.append(f"{n.alias} exited by itself with {n.process.returncode} "
                                   f"(by {time.monotonic() - started:.2f} s)")
                    state[n.alias] = "dead"

        for _ in range(20):
            time.sleep(rng.uniform(0.1, 1.0))  # the stimulus: a random gap between events
            note_crashes()
            running = [n for n in nodes if state[n.alias] == "running"]
            choices = []
            if len(running) >= 3:  # never fewer than 2 running nodes
                choices += [("kill -9", n) for n in running] + [("SIGTERM", n) for n in running]
                choices += [("SIGSTOP", n) for n in running]
            choices += [("SIGCONT", n) for n in nodes if state[n.alias] == "stopped"]
            choices += [("restart", n) for n in nodes if state[n.alias] == "dead"]
            event, node = rng.choice(choices)
            events.append(f"{time.monotonic() - started:.2f} {event} {node.alias}")
            if event == "kill -9":
                node.kill()
                state[node.alias] = "dead"
            elif event == "SIGTERM":
                node.signal(signal.SIGTERM)
                node.wait_exit(10)
                state[node.alias] = "dead"
            elif event == "SIGSTOP":
                node.signal(signal.SIGSTOP)
                state[node.alias] = "stopped"
            elif event == "SIGCONT":
                node.signal(signal.SIGCONT)
                state[node.alias] = "running"
            else:
                via = rng.choice([n for n in nodes if state[n.alias] == "running"])
                node.launch("--join", via.address)
                state[node.alias] = "running"
                events[-1] += f" --join {via.alias}"
        for node in nodes:
            if state[node.alias] == "stopped":
                node.signal(signal.SIGCONT)
                state[node.alias] = "running"
                events.append(f"{time.monotonic() - started:.2f} SIGCONT {node.alias} (end)")
        note_crashes()
        story = f"churn seed {seed_value}; events:\n  " + "\n  ".join(events)
        live = {n.alias for n in nodes if state[n.alias] == "running"}
        last_event = time.monotonic()
        try:
            wait_until(lambda: self.cluster.converged(expected=live), 5,
                       lambda: f"every live node to list exactly the live set {sorted(live)} within 5 s of the "
                               f"last event ({self.views()})", interval=POLL)
            not_converged = None
            result(f"10 churn (seed {seed_value}): live set listed by all {time.monotonic() - last_event:.2f} s "
                   f"after the last event")
        except AssertionError as e:
            not_converged = str(e)
        note_crashes()
        if not_converged or crashes:
            self.fail(f"{not_converged or 'converged'}\ncrashes: {crashes or 'none'}\n{story}")


    def _mesh_of(self, count):
        seed = self.cluster.seed()
        nodes = [seed] + [self.cluster.node(f"n{i}") for i in range(1, count)]
        for node in nodes[1:]:
            node.launch("--join", seed.address)
        self.cluster.wait_converged(timeout=30)
        self.cluster.settle()
        return nodes

    def test_11_a_stopped_node_is_dropped_by_every_member_within_3_s(self):
        # SWIM: someone probes it within a few periods, it answers neither
        # them nor their helpers, and the suspicion times out everywhere.
        nodes = self._mesh_of(8)
        victim, others = nodes[3], nodes[:3] + nodes[4:]
        pattern = re.compile(rf"^\S+ info \[\d+\] {re.escape(victim.alias)} is dead", re.M)
        victim.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            wait_until(lambda: all(pattern.search(n.log()) for n in others), 10,
                       f"every member to log that {victim.alias} is dead")
            dropped = time.monotonic() - stopped
        finally:
            victim.signal(signal.SIGCONT)
        result(f"11 SIGSTOP of one node of 8: dropped by all 7 after {dropped:.2f} s")
        self.assertLess(dropped, 3.0)
        # Resumed, it refutes or is probed back: the full mesh returns.
        self.cluster.wait_converged(timeout=15)

    def test_12_a_starved_node_gets_no_healthy_node_declared_dead(self):
        # One node of 8 is stopped for 1 s in every 2 s (a starved container):
        # it may be dropped itself, but it must never accuse a healthy node
        # (Lifeguard: the pause guard and its local health slow it instead).
        nodes = self._mesh_of(8)
        starved = nodes[5]
        dead_line = re.compile(r"^\S+ info \[\d+\] (\S+) is dead", re.M)
        for _ in range(6):
            starved.signal(signal.SIGSTOP)
            time.sleep(1.0)  # the stimulus: a 1 s stop
            starved.signal(signal.SIGCONT)
            time.sleep(1.0)
        accused = {}
        for node in nodes:
            for alias in dead_line.findall(node.log()):
                if alias != starved.alias:
                    accused.setdefault(node.alias, set()).add(alias)
        starved_deaths = sum(1 for node in nodes if node is not starved
                             for alias in dead_line.findall(node.log()) if alias == starved.alias)
        result(f"12 one node of 8 stopped 1 s in every 2 s for 12 s: healthy nodes declared dead: "
               f"{sum(len(v) for v in accused.values())}; the starved node dropped {starved_deaths} times")
        self.assertEqual(accused, {}, "healthy nodes were declared dead")
        self.cluster.wait_converged(timeout=15)


if __name__ == "__main__":
    unittest.main(verbosity=2)
