"""Cluster membership with real iridium processes on 127.0.0.1."""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from iridium_nodes import Cluster, ClusterTestCase, free_port, take_binary, wait_until  # noqa: E402

BINARY = take_binary()
# Failure detection drops a silent peer after 1.5 s; allow for polling and a
# loaded CI machine (the sanitizer build is several times slower).
DEATH_BOUND = float(os.environ.get("IRIDIUM_DEATH_BOUND", "4.0"))


class Membership(ClusterTestCase):
    binary = BINARY

    def test_three_nodes_join_one_by_one(self):
        seed = self.cluster.seed()
        self.assertEqual(seed.members(), set())
        self.cluster.joiner("b", seed)
        self.cluster.wait_converged()
        self.cluster.joiner("c", seed)
        self.cluster.wait_converged()
        self.assertEqual(seed.members(), {"b", "c"})
        snapshot = self.cluster.nodes["c"].snapshot()
        states = {m["alias"]: m["state"] for m in snapshot["members"]}
        self.assertEqual(states, {"seed": "alive", "b": "alive"})
        for m in snapshot["members"]:
            self.assertEqual(m["host"], "127.0.0.1")
            self.assertEqual(m["port"], self.cluster.nodes[m["alias"]].port)
            self.assertLess(m["last_heard_ms"], 1500)

    def test_eight_nodes_join_the_same_seed_at_once(self):
        seed = self.cluster.seed()
        nodes = [self.cluster.node(f"n{i}") for i in range(7)]
        # Start every process before waiting for any of them.
        for node in nodes:
            node.launch("--join", seed.address)
        self.cluster.wait_converged(timeout=20)
        self.assertEqual(len(self.cluster.live()), 8)
        for node in self.cluster.live():
            self.assertEqual(len(node.members()), 7)

    def test_join_through_a_member_that_is_not_the_seed(self):
        seed = self.cluster.seed()
        b = self.cluster.joiner("b", seed)
        self.cluster.wait_converged()
        c = self.cluster.joiner("c", b)
        self.cluster.wait_converged()
        self.assertEqual(c.members(), {"seed", "b"})
        self.assertEqual(seed.members(), {"b", "c"})

    def test_join_from_the_shell_reports_the_member(self):
        seed = self.cluster.seed()
        b = self.cluster.node("b").start()
        r = b.attach(f"!join_cluster 127.0.0.1 {seed.port}")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"Joined the cluster via seed at 127.0.0.1:{seed.port}", r.stdout)
        self.cluster.wait_converged()
        table = b.attach("!cluster_members").stdout
        self.assertIn("seed", table)
        self.assertIn(f"127.0.0.1:{seed.port}", table)
        self.assertIn("alive", table)

    def test_kill_9_is_detected_by_every_survivor(self):
        seed = self.cluster.seed()
        for alias in ("b", "c", "d"):
            self.cluster.joiner(alias, seed)
        self.cluster.wait_converged()
        victim = self.cluster.nodes["c"]
        started = time.monotonic()
        victim.process.kill()
        victim.process.wait(5)
        self.cluster.wait_converged(timeout=DEATH_BOUND + 5)
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, DEATH_BOUND, "survivors took too long to drop the dead node")
        self.assertEqual(seed.members(), {"b", "d"})

    def test_sigterm_sends_leave_and_is_dropped_at_once(self):
        seed = self.cluster.seed()
        b = self.cluster.joiner("b", seed)
        self.cluster.joiner("c", seed)
        self.cluster.wait_converged()
        started = time.monotonic()
        b.signal(signal.SIGTERM)
        self.assertEqual(b.wait_exit(10), 0)
        wait_until(lambda: seed.members() == {"c"} and self.cluster.nodes["c"].members() == {"seed"}, 5,
                   "b to be dropped")
        # Well under the 1.5 s failure detector: this came from the leave.
        self.assertLess(time.monotonic() - started, 1.4)
        self.assertIn("b left", seed.log())

    def test_restarted_node_with_the_same_alias_rejoins(self):
        seed = self.cluster.seed()
        b = self.cluster.joiner("b", seed)
        self.cluster.joiner("c", seed)
        self.cluster.wait_converged()
        b.process.kill()
        b.process.wait(5)
        # Restart at once, before anyone has noticed the death.
        b.start("--join", seed.address)
        self.cluster.wait_converged()
        self.assertEqual(seed.members(), {"b", "c"})
        self.assertEqual(b.members(), {"seed", "c"})

    def test_alias_is_generated_once_and_kept(self):
        node = self.cluster.node("anon")
        os.makedirs(node.data_dir, exist_ok=True)
        outputs = []
        for _ in range(2):
            r = subprocess.run([BINARY, "--data-root-dir", node.data_dir, "-P", str(node.port)],
                               input="!cluster_members --json\n", capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            outputs.append(r.stdout)
        import json
        first, second = (json.loads(o.strip().splitlines()[-1])["self"]["alias"] for o in outputs)
        self.assertEqual(first, second)
        self.assertRegex(first, r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

    def test_duplicate_alias_is_refused_with_a_clear_message(self):
        seed = self.cluster.seed()
        self.cluster.joiner("b", seed)
        self.cluster.wait_converged()
        impostor = self.cluster.node("impostor-of-b")
        impostor.alias = "b"
        impostor.start()
        r = impostor.attach(f"!join_cluster 127.0.0.1 {seed.port}")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("alias 'b' is already used by a live node", r.stdout)
        self.assertEqual(impostor.members(), set())
        # The real b is still a member everywhere.
        time.sleep(0.0)
        wait_until(lambda: seed.members() == {"b"}, 5, "seed to still list b")

    def test_join_to_a_dead_address_fails_in_bounded_time(self):
        a = self.cluster.node("a").start()
        started = time.monotonic()
        r = a.attach(f"!join_cluster 127.0.0.1 {free_port()}")
        elapsed = time.monotonic() - started
        self.assertEqual(r.returncode, 1)
        self.assertIn("no answer from 127.0.0.1:", r.stdout)
        self.assertLess(elapsed, 8)
        self.assertEqual(a.attach("!help").returncode, 0)

    def test_seed_join_retries_until_the_seed_appears(self):
        seed_port = free_port()
        b = self.cluster.node("b").start("--join", f"127.0.0.1:{seed_port}")
        time.sleep(0.0)
        self.assertEqual(b.members(), set())
        seed = self.cluster.node("seed", port=seed_port).start("--start-cluster")
        self.cluster.wait_converged(timeout=15)
        self.assertEqual(seed.members(), {"b"})


class SeedSession(unittest.TestCase):
    """The tutorial's own session: two shells, !start_cluster, !join_cluster."""

    def test_two_shells_as_in_the_tutorial(self):
        import pexpect
        cluster = Cluster(BINARY)
        try:
            p1, p2 = free_port(), free_port()
            env = dict(os.environ, IRIDIUM_LOG="warn")
            one = pexpect.spawn(BINARY, ["--node-alias", "node1", "-P", str(p1), "--data-root-dir",
                                         os.path.join(cluster.root, "1")], env=env, encoding="utf-8", timeout=10)
            two = pexpect.spawn(BINARY, ["--node-alias", "node2", "-P", str(p2), "--data-root-dir",
                                         os.path.join(cluster.root, "2")], env=env, encoding="utf-8", timeout=10)
            for shell in (one, two):
                shell.expect("Welcome to Iridium")
                shell.expect(">>> ")
            one.sendline("!start_cluster")
            one.expect("Started the cluster listener")
            one.expect(">>> ")
            two.sendline(f"!join_cluster 127.0.0.1 {p1}")
            two.expect("Joined the cluster via node1")
            two.expect(">>> ")
            deadline = time.monotonic() + 5
            while True:
                one.sendline("!cluster_members")
                index = one.expect(["node2 +127.0.0.1:%d +alive" % p2, "0 others"])
                one.expect(">>> ")
                if index == 0:
                    break
                self.assertLess(time.monotonic(), deadline, "node1 never listed node2")
            two.sendline("!cluster_members")
            two.expect("node1 +127.0.0.1:%d +alive" % p1)
            for shell in (two, one):
                shell.sendline("!quit")
                shell.expect(pexpect.EOF)
                shell.close()
                self.assertEqual(shell.exitstatus, 0)
        finally:
            cluster.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
