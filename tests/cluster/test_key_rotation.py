"""Live cluster-key rotation (!cluster_keys, docs/security.md "Rotate a key"):
a running 5-node secure cluster goes from key K1 to key K2 (install K2
everywhere, use it on each node in turn, remove K1 everywhere) while every
node's member list is sampled every 50 ms: no node ever lists fewer than the
4 others, and no log says a live member died or left. (A member whose listener
is being replaced misses a probe round and may be suspected for a moment; it
refutes at once, so a suspicion is allowed and is counted, not failed.) After
the rotation a holder of K1 alone is shut out, and a new node with K2 alone
joins."""
import json
import os
import random
import re
import sys
import threading
import time
import unittest


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from iridium_nodes import ClusterTestCase, make_key, take_binary, wait_until  # noqa: E402
from iridium_peer import Intruder, SecureClusterTestCase, read_key  # noqa: E402

BINARY = take_binary()
# Debug: suspicions are logged at debug level, and the test reads them.
os.environ.setdefault("IRIDIUM_LOG", "debug")

NODES = ["seed", "b", "c", "d", "e"]


class Sampler:
    """Asks every node for its members every 50 ms on a thread of its own
    until stopped; keeps each node's smallest member count and every sample
    that was short (or unanswered)."""

    def __init__(self, cluster, nodes, interval=0.05):
        self.cluster = cluster
        self.nodes = list(nodes)
        self.interval = interval
        self.samples = 0
        self.fewest = {n.alias: None for n in self.nodes}
        self.short = []  # (seconds since start, alias, members or None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        expected = len(self.nodes) - 1
        while not self._stop.is_set():
            began = time.monotonic()
            for alias, members in self.cluster.members_of(self.nodes).items():
                count = -1 if members is None else len(members)
                if self.fewest[alias] is None or count < self.fewest[alias]:
                    self.fewest[alias] = count
                if count < expected:
                    self.short.append((round(began - self._start, 3), alias, members))
            self.samples += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))


def longest_link_outage(log):
    """The longest time, in seconds, from a debug 'link to E: down' to the
    next 'link to E: up' in a node's log."""
    down_since, longest = {}, 0.0
    for m in re.finditer(r"^\S+T(\d+):(\d+):([\d.]+) debug \[\d+\] link to (\S+): (down|up)$", log, re.M):
        at = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        if m[5] == "down":
            down_since.setdefault(m[4], at)
        elif m[4] in down_since:
            longest = max(longest, at - down_since.pop(m[4]))
    return longest


class KeyRotation(SecureClusterTestCase):
    binary = BINARY

    def setUp(self):
        super().setUp()
        self.k1 = self.cluster.key
        self.k2 = make_key(self.binary, self.cluster.root, "k2.key")

    def five_nodes(self):
        seed = self.cluster.seed()
        for alias in NODES[1:]:
            self.cluster.joiner(alias, seed)
        self.cluster.wait_converged(timeout=20)
        return [self.cluster.nodes[a] for a in NODES]

    def keys(self, node, command):
        """Runs `!cluster_keys COMMAND` on node; its output (it must succeed)."""
        r = node.attach(f"!cluster_keys {command}")
        self.assertEqual(r.returncode, 0, f"{node.alias}: !cluster_keys {command}: {r.stdout}{r.stderr}")
        return r.stdout

    def fingerprints(self, node):
        """[(fingerprint, primary)] of node's keyring, in its order."""
        listing = json.loads(self.keys(node, "list --json").strip().splitlines()[-1])
        return [(k["fingerprint"], k["primary"]) for k in listing["keys"]]

    def rotate(self, nodes, order):
        """K1 -> K2 on every node, `use` in the given order; sampled throughout."""
        k1_print = read_key(self.k1)[0].decode()[:8]
        k2_print = read_key(self.k2)[0].decode()[:8]
        log_start = {n.alias: len(n.log()) for n in nodes}

        def then_wait(seconds):
            # Each step's effect is sampled for a while before the next one,
            # so the mixed states (some nodes on K1, some on K2) last.
            until = time.monotonic() + seconds
            wait_until(lambda: time.monotonic() > until, seconds + 5, f"{seconds} s of samples")

        with Sampler(self.cluster, nodes) as sampler:
            for n in order or nodes:
                self.assertIn(f"Installed the key {k2_print}", self.keys(n, f"install {self.k2}"))
                then_wait(0.2)
            for n in order or nodes:
                self.assertIn("is now this node's primary key", self.keys(n, f"use {self.k2}"))
                then_wait(0.5)
            for n in reversed(order or nodes):
                self.assertIn(f"Removed the key {k1_print}", self.keys(n, f"remove {self.k1}"))
                then_wait(0.5)
            then_wait(0.5)
        print(f"\n{sampler.samples} samples of {len(nodes)} nodes; fewest members seen: {sampler.fewest}",
              file=sys.stderr)
        # The sampler ran throughout (a sample is one !cluster_members per
        # node; under TSan one round takes several hundred ms).
        self.assertGreaterEqual(sampler.samples, 10)
        self.assertEqual(sampler.short, [], "samples where a node listed fewer than 4 others (or did not answer)")
        self.assertEqual(min(sampler.fewest.values()), len(nodes) - 1)
        longest = 0.0  # a connection down until it came back, in seconds
        suspicions = 0
        for n in nodes:
            self.assertEqual(self.fingerprints(n), [(k2_print, True)], n.alias)
            rotated_log = n.log()[log_start[n.alias]:]
            # SWIM: a probe round that meets a listener mid-replacement makes
            # a suspicion, refuted within a probe period or two; only a death,
            # a departure, a warning or an error would be a fault.
            suspicions += rotated_log.count(" is suspect ")
            for bad in ("is dead", " left\n", " warning [", " error ["):
                self.assertNotIn(bad, rotated_log, f"{n.alias}'s log during the rotation:\n{rotated_log}")
            longest = max(longest, longest_link_outage(rotated_log))
        # Figures, not bounds (the logs above say no member died).
        print(f"longest outage of a connection during the rotation: {longest * 1000:.0f} ms; "
              f"suspicions raised and refuted: {suspicions}", file=sys.stderr)
        self.assertGreater(longest, 0.0)  # the rotation did close and reopen connections

    def assert_k1_is_shut_out(self, seed):
        k1_public, k1_secret = read_key(self.k1)
        k2_public, k2_secret = read_key(self.k2)
        for name, server in (("the old server key", k1_public), ("the new server key", k2_public)):
            with self.subTest(k1_holder=name):
                intruder = Intruder(self.context, seed.address, server, (k1_public, k1_secret))
                wait_until(lambda: intruder.poke().failed(), 10, f"a K1 holder's handshake ({name}) to fail")
                self.assertFalse(intruder.succeeded())
                self.assertEqual(intruder.answers, [])
                intruder.close()
        # The counterpart: a K2 holder does get through, and is answered.
        insider = Intruder(self.context, seed.address, k2_public, (k2_public, k2_secret))
        wait_until(lambda: insider.poke().answers, 10, "an answer to a K2 holder's hello")
        insider.close()

    def test_rotating_a_running_five_node_cluster_never_loses_a_member(self):
        nodes = self.five_nodes()
        self.rotate(nodes, order=None)
        seed = nodes[0]
        self.assert_k1_is_shut_out(seed)
        # A node with K2 alone joins; one with K1 alone is refused, and says why.
        fresh = self.cluster.node("fresh", key=self.k2).start("--join", seed.address)
        self.cluster.wait_converged(timeout=15)
        self.assertEqual(fresh.members(), set(NODES))
        stale = self.cluster.node("stale", key=self.k1).start("--join", seed.address)
        wait_until(lambda: "refused the CURVE handshake" in stale.log(), 15,
                   lambda: "the K1-only node to log its refusal:\n" + stale.log())
        since = time.monotonic()
        views = []

        def two_seconds_of_views():
            views.append(self.cluster.members_of(nodes + [fresh]))
            return time.monotonic() - since > 2

        wait_until(two_seconds_of_views, 15, "two seconds of views")
        for view in views:
            for alias, members in view.items():
                self.assertNotIn("stale", members or set(), alias)
        self.assertEqual(stale.members(), set())

    def test_rotating_with_nodes_switching_in_random_order(self):
        nodes = self.five_nodes()
        seed_value = int(os.environ.get("IRIDIUM_ROTATION_SEED", random.randrange(1 << 30)))
        order = random.Random(seed_value).sample(nodes, len(nodes))
        print(f"\nrotation order (IRIDIUM_ROTATION_SEED={seed_value}): {[n.alias for n in order]}",
              file=sys.stderr)
        self.rotate(nodes, order=order)
        self.assert_k1_is_shut_out(order[0])

    def test_use_before_every_node_installed_the_key_is_visible_and_repairable(self):
        """The order matters: a node that makes K2 primary while a peer does
        not hold it yet is refused by that peer (which says so), and the
        peer's install repairs it without a restart."""
        seed = self.cluster.seed()
        b = self.cluster.joiner("b", seed)
        self.cluster.wait_converged()
        self.keys(seed, f"install {self.k2}")
        self.keys(seed, f"use {self.k2}")
        wait_until(lambda: "the client's key is not an accepted key" in b.log(), 10,
                   lambda: "b to refuse the seed's new key:\n" + b.log())
        self.keys(b, f"install {self.k2}")
        self.cluster.wait_converged(timeout=15)
        self.keys(b, f"use {self.k2}")
        self.keys(seed, f"remove {self.k1}")
        self.keys(b, f"remove {self.k1}")
        self.cluster.wait_converged(timeout=15)


class KeyCommands(ClusterTestCase):
    """!cluster_keys on one node: the listing, and bad input of every kind."""
    binary = BINARY
    secure = True

    def test_list_install_use_remove_and_bad_input(self):
        node = self.cluster.seed()
        k2 = make_key(self.binary, self.cluster.root, "k2.key")
        k1_print = read_key(self.cluster.key)[0].decode()[:8]
        k2_print = read_key(k2)[0].decode()[:8]
        r = node.attach("!cluster_keys list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"KEY       PRIMARY  FILE\n{k1_print}  yes      {self.cluster.key}\n")
        garbage = os.path.join(self.cluster.root, "garbage.key")
        with open(garbage, "w") as f:
            f.write("public-key = \"nope\"\n")
        cases = {
            f"!cluster_keys install {garbage}": "garbage.key: line 1: public-key is not a 40-character Z85 key",
            "!cluster_keys install /no/such/file.key": "/no/such/file.key: No such file or directory",
            f"!cluster_keys use {k2}": f"the key in {k2} ({k2_print}) is not installed; install it first",
            "!cluster_keys use nothing": "no installed key is named 'nothing'",
            f"!cluster_keys remove {self.cluster.key}": "is this node's primary key and cannot be removed",
            "!cluster_keys remove": "usage: !cluster_keys remove KEY",
        }
        for line, message in cases.items():
            with self.subTest(line=line):
                r = node.attach(line)
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertIn(message, r.stdout + r.stderr)
        self.assertIn("Installed the key", node.attach(f"!cluster_keys install {k2}").stdout)
        self.assertIn("installed already; nothing changed", node.attach(f"!cluster_keys install {k2}").stdout)
        self.assertIn("is now this node's primary key", node.attach(f"!cluster_keys use {k2_print}").stdout)
        self.assertIn("primary key already", node.attach(f"!cluster_keys use {k2}").stdout)
        r = node.attach("!cluster_keys list")
        self.assertEqual(r.stdout, f"KEY       PRIMARY  FILE\n{k2_print}  yes      {k2}\n"
                                   f"{k1_print}  no       {self.cluster.key}\n")
        self.assertIn("Removed the key", node.attach(f"!cluster_keys remove {k1_print}").stdout)
        self.assertTrue(node.running())

    def test_a_plain_node_says_it_has_no_keys(self):
        node = self.cluster.node("plain", key=None).start("--start-cluster")
        r = node.attach("!cluster_keys list")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("this node runs in plain mode; start it with --cluster-key FILE", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
