"""Cluster names (--cluster-name) between real processes on 127.0.0.1.

Two clusters, A and B, whose nodes are pointed at each other: a node of
each is started with --join naming the other cluster's seed as well as its
own, and a node of A is restarted on the port of a node of B that B still
probes. With different names they never list each other and each node that
hears the other cluster says so once; with one name the very same start
merges them into one cluster, so the first test can fail. A raw peer
checks that a hello in another cluster's name gets no answer at all.

    python3 tests/cluster/test_cluster_name.py /path/to/iridium [unittest args]
"""
import os
import sys
import time
import unittest

import msgpack
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from iridium_nodes import CLUSTER_NAME, ClusterTestCase, take_binary, wait_until  # noqa: E402

BINARY = take_binary()
# Two names of this process's own (CLUSTER_NAME is unique to it).
NAME_A = CLUSTER_NAME[:62] + "-a"
NAME_B = CLUSTER_NAME[:62] + "-b"


def mismatch(theirs):
    """The start of the warning a node logs once per foreign cluster name."""
    return f"a node of cluster '{theirs}' at "


def ignored(ours):
    return f"sent a frame; this node is in cluster '{ours}': ignored"


class ClusterNames(ClusterTestCase):
    binary = BINARY

    def start_two_groups(self, name_a, name_b):
        """Seeds a1 (name_a) and b1 (name_b); a2 joins a1 and is pointed at
        b1 too, b2 joins b1 and is pointed at a1 too; b3 joins b1."""
        c = self.cluster
        self.a1 = c.node("a1", ["--cluster-name", name_a]).start("--start-cluster")
        self.b1 = c.node("b1", ["--cluster-name", name_b]).start("--start-cluster")
        self.a2 = c.node("a2", ["--cluster-name", name_a]).start("--join", self.a1.address, "--join", self.b1.address)
        self.b2 = c.node("b2", ["--cluster-name", name_b]).start("--join", self.b1.address, "--join", self.a1.address)
        self.b3 = c.node("b3", ["--cluster-name", name_b]).start("--join", self.b1.address)

    def assert_apart(self, seconds, a_aliases, b_aliases):
        """For `seconds`, every answer of every live node lists only nodes of
        its own cluster, and in the end each cluster is a full mesh."""
        a_aliases, b_aliases = set(a_aliases), set(b_aliases)
        deadline = time.monotonic() + seconds
        rounds = 0
        while True:
            for alias, members in self.cluster.members_of(self.cluster.live()).items():
                if members is None:
                    continue
                own = a_aliases if alias in a_aliases else b_aliases
                self.assertLessEqual(members, own - {alias}, f"{alias} lists a node of the other cluster")
            rounds += 1
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        self.assertGreater(rounds, 3)
        self.cluster.wait_converged(expected=a_aliases)
        self.cluster.wait_converged(expected=b_aliases)

    def test_clusters_with_different_names_never_merge(self):
        self.start_two_groups(NAME_A, NAME_B)
        self.cluster.wait_converged(expected={"a1", "a2"})
        self.cluster.wait_converged(expected={"b1", "b2", "b3"})
        # b2 says hello to a1 (a seed that never answers) about once a
        # second for as long as it runs, and a2 to b1.
        wait_until(lambda: self.a1.snapshot()["counters"]["dropped_other_cluster"] >= 3, 15,
                   "a1 to ignore b2's hellos")
        wait_until(lambda: self.b1.snapshot()["counters"]["dropped_other_cluster"] >= 3, 15,
                   "b1 to ignore a2's hellos")
        self.assert_apart(3, {"a1", "a2"}, {"b1", "b2", "b3"})

        # b2 dies; b1 and b3 keep probing its port. a2 comes back there.
        self.b2.kill()
        self.a2.kill()
        wait_until(lambda: "b2" not in (self.b1.members() or {"b2"}) and "b2" not in (self.b3.members() or {"b2"}),
                   10, "b1 and b3 to drop b2")
        a2_log_before = len(self.a2.log())
        self.a2.port = self.b2.port
        self.a2.start("--join", self.a1.address, "--join", self.b1.address)
        wait_until(lambda: self.a2.snapshot()["counters"]["dropped_other_cluster"] >= 3, 15,
                   "a2, on b2's old port, to ignore B's probes")
        self.assert_apart(3, {"a1", "a2"}, {"b1", "b3"})

        # Each node that heard the other cluster said so exactly once, with both names.
        logs = {"a1": self.a1.log(), "b1": self.b1.log(), "a2 (restarted)": self.a2.log()[a2_log_before:]}
        for who, theirs, ours in (("a1", NAME_B, NAME_A), ("b1", NAME_A, NAME_B), ("a2 (restarted)", NAME_B, NAME_A)):
            with self.subTest(node=who):
                log = logs[who]
                self.assertEqual(log.count(mismatch(theirs)), 1, log)
                line = next(line for line in log.splitlines() if mismatch(theirs) in line)
                self.assertIn(" warning ", line)
                self.assertIn(ignored(ours), line)
        for node in (self.a1, self.a2, self.b1, self.b3):
            self.assertNotIn("dropped a bad cluster frame", node.log())
        self.assertEqual(self.a1.snapshot()["self"]["cluster"], NAME_A)
        self.assertEqual(self.b1.snapshot()["self"]["cluster"], NAME_B)

    def test_the_same_start_with_one_name_merges(self):
        # The control: nothing but the names keeps the clusters above apart.
        self.start_two_groups(NAME_A, NAME_A)
        self.cluster.wait_converged(timeout=20, expected={"a1", "a2", "b1", "b2", "b3"})
        for node in self.cluster.live():
            self.assertEqual(node.snapshot()["counters"]["dropped_other_cluster"], 0)
            self.assertNotIn("a node of cluster", node.log())

    def test_a_hello_of_another_cluster_gets_no_answer(self):
        seed = self.cluster.node("seed", ["--cluster-name", NAME_A]).start("--start-cluster")
        context = zmq.Context()
        self.addCleanup(context.destroy, linger=0)

        def hello(cluster, alias):
            s = context.socket(zmq.DEALER)
            self.addCleanup(s.close, 0)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(f"tcp://{seed.address}")
            s.send(msgpack.packb({"v": 2, "cluster": cluster, "type": "hello", "alias": alias,
                                  "host": "127.0.0.1", "port": 9, "instance": "0123456789abcdef",
                                  "incarnation": 0}))
            return s

        # Another cluster, the node's own alias, an alias in use: not even a hello_nack.
        for alias in ("stranger", "seed"):
            s = hello(NAME_B, alias)
            self.assertFalse(s.poll(1500), f"an answer to {alias}'s hello in another cluster's name")
        self.assertEqual(seed.snapshot()["counters"]["dropped_other_cluster"], 2)
        self.assertEqual(seed.snapshot()["counters"]["refused"], 0)
        # The same hellos in the node's cluster are answered.
        s = hello(NAME_A, "seed")
        self.assertTrue(s.poll(5000))
        self.assertEqual(msgpack.unpackb(s.recv())["type"], "hello_nack")
        s = hello(NAME_A, "stranger")
        self.assertTrue(s.poll(5000))
        answer = msgpack.unpackb(s.recv())
        self.assertEqual(answer["type"], "hello_ack")
        self.assertEqual(answer["cluster"], NAME_A)
        self.assertEqual(seed.log().count(mismatch(NAME_B)), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
