"""`iridium health`, the container's health check, against real nodes on
127.0.0.1 (secure mode, as in the containers).

A live node's cluster loop and remote-shell thread stamp its health file
(<data dir>/run/health.json) about once a second; `iridium health` exits 0
and prints nothing while every stamp is fresh. A node stopped with SIGSTOP
stamps nothing, so the check fails with one line naming each stale loop and
since when, and passes again after SIGCONT. A missing or garbage file is a
clear error (exit 1), never a crash. Every wait polls with a deadline.

    python3 tests/cluster/test_health.py /path/to/iridium [unittest args]
"""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from iridium_nodes import ClusterTestCase, clean_env, take_binary, wait_until  # noqa: E402

BINARY = take_binary()


def health(*args):
    """Runs `iridium health ARGS`; a CompletedProcess."""
    return subprocess.run([BINARY, "health", *args], capture_output=True, text=True, timeout=10,
                          env=clean_env())


def node_health(node, *args):
    return health("--data-root-dir", node.data_dir, *args)


def health_file(node):
    """The node's health file, read under the shared lock its writer
    respects (it rewrites the file in place)."""
    with open(os.path.join(node.data_dir, "run", "health.json")) as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        return json.load(f)


def failing(node):
    """The node's failed health check, or None while it passes."""
    completed = node_health(node)
    return completed if completed.returncode != 0 else None


def passes(completed):
    return completed.returncode == 0 and completed.stdout == "" and completed.stderr == ""


class Health(ClusterTestCase):
    binary = BINARY
    secure = True

    def assert_one_line_failure(self, completed, *phrases):
        """Exit 1 (not a crash), nothing on stdout, one line on stderr with every phrase."""
        self.assertEqual(completed.returncode, 1, completed)
        self.assertEqual(completed.stdout, "")
        lines = completed.stderr.splitlines()
        self.assertEqual(len(lines), 1, completed.stderr)
        self.assertTrue(lines[0].startswith("iridium health: "), lines[0])
        for phrase in phrases:
            self.assertIn(phrase, lines[0])

    def test_a_live_node_passes_and_its_file_says_who_it_is(self):
        seed = self.cluster.seed()
        joiner = self.cluster.joiner("joiner", seed)
        self.cluster.wait_converged()
        for node in (seed, joiner):
            wait_until(lambda: passes(node_health(node)), 10, f"{node.alias}'s health to pass")
            # The member count follows the membership.
            wait_until(lambda: health_file(node)["members"] == 1, 10, f"{node.alias}: members 1")
            facts = health_file(node)
            self.assertEqual(facts["alias"], node.alias)
            self.assertEqual(facts["pid"], node.process.pid)
            self.assertTrue(facts["in_cluster"])
            self.assertEqual(set(facts["stamps"]), {"cluster_loop", "remote_shell"})
        # Stamps stay fresh over several seconds of an idle cluster, also at
        # --max-age 2 (a live loop's stamp is at most about a second old).
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            checked = node_health(seed, "--max-age", "2")
            self.assertTrue(passes(checked), checked.stderr)
            time.sleep(0.1)

    def test_a_stopped_node_fails_with_the_stale_loops_and_passes_after_resume(self):
        seed = self.cluster.seed()
        wait_until(lambda: passes(node_health(seed)), 10, "the seed's health to pass")
        seed.signal(signal.SIGSTOP)
        try:
            # Each loop's stamp is rewritten at most once a second, so one may
            # turn stale up to a second before the other: wait for both.
            def both_stale():
                completed = failing(seed)
                stale = completed is not None and all(
                    loop in completed.stderr for loop in ("the cluster loop", "the remote shell"))
                return completed if stale else None
            failed = wait_until(both_stale, 10, "the stopped seed's health to fail on both loops")
            self.assert_one_line_failure(failed, "node seed (pid ", "is stale",
                                         "the cluster loop last stamped ",
                                         "the remote shell last stamped ", " s ago (",
                                         "allowed 3.0 s (--max-age)")
        finally:
            seed.signal(signal.SIGCONT)
        wait_until(lambda: passes(node_health(seed)), 5, "the resumed seed's health to pass")

    def test_a_node_without_a_cluster_is_checked_on_its_remote_shell(self):
        lone = self.cluster.node("lone").start()  # -r, no --start-cluster
        wait_until(lambda: passes(node_health(lone)), 10, "the lone node's health to pass")
        facts = health_file(lone)
        self.assertFalse(facts["in_cluster"])
        self.assertEqual(set(facts["stamps"]), {"remote_shell"})
        # !start_cluster later adds the cluster loop's stamp.
        self.assertEqual(lone.attach("!start_cluster").returncode, 0)
        wait_until(lambda: set(health_file(lone)["stamps"]) == {"cluster_loop", "remote_shell"}, 10,
                   "the cluster loop's stamp")
        self.assertTrue(passes(node_health(lone)))

    def test_a_node_that_stopped_leaves_no_file(self):
        seed = self.cluster.seed()
        wait_until(lambda: passes(node_health(seed)), 10, "the seed's health to pass")
        seed.signal(signal.SIGTERM)
        self.assertEqual(seed.wait_exit(15), 0)
        self.assert_one_line_failure(node_health(seed), "no health file at ",
                                     os.path.join(seed.data_dir, "run", "health.json"),
                                     "the node is not running")

    def test_a_missing_or_garbage_file_is_a_clear_error(self):
        path = os.path.join(self.cluster.root, "health.json")
        self.assert_one_line_failure(health("--file", path), f"no health file at {path}")
        for content, why in ((b"", "not JSON (empty)"), (b"\x00\xff garbage {", "not JSON"),
                             (b"[]", "not a JSON object"), (b'{"format":1,"pid":"x"}', 'no number "pid"'),
                             (os.urandom(100 * 1024), "")):
            with open(path, "wb") as f:
                f.write(content)
            self.assert_one_line_failure(health("--file", path), f"{path} is not a health file: {why}")
        with open(path, "w") as f:
            json.dump({"format": 1, "pid": 1, "alias": "x", "cluster": "c", "in_cluster": False,
                       "members": 0, "stamps": {}}, f)
        self.assert_one_line_failure(health("--file", path), "node x (pid 1) runs neither a cluster "
                                     "nor a remote shell")
        os.chmod(path, 0)
        if os.geteuid() != 0:  # root reads it anyway
            self.assert_one_line_failure(health("--file", path), f"cannot read {path}")
        self.assertEqual(health("--max-age", "0", "--file", path).returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
