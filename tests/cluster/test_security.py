"""Secure mode (--cluster-key): only holders of the cluster key join, and the
wire carries nothing in clear. Each check has its plain-mode counterpart
showing that it can fail: there the same intruder IS admitted and the same
aliases ARE on the wire."""
import os
import stat
import subprocess
import sys
import time
import unittest

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from iridium_nodes import (ClusterTestCase, TcpRelay, clean_env, cpu_seconds, free_port,  # noqa: E402
                           make_key, port_is_free, take_binary, wait_until)
from iridium_peer import Intruder, SecureClusterTestCase, read_key  # noqa: E402

BINARY = take_binary()


class SecureCluster(SecureClusterTestCase):
    binary = BINARY

    def pair(self, secure_seed=True):
        seed = self.cluster.node("seed", key=self.cluster.key if secure_seed else None).start("--start-cluster")
        b = self.cluster.node("b", key=self.cluster.key if secure_seed else None).start("--join", seed.address)
        self.cluster.wait_converged()
        return seed, b

    def test_a_plain_intruder_is_admitted_in_plain_mode(self):
        """The counterpart: without a key, the same hello gets the intruder
        listed. (So the checks below can fail.)"""
        seed, b = self.pair(secure_seed=False)
        intruder = Intruder(self.context, seed.address)
        wait_until(lambda: intruder.poke().answers, 10, "an answer to the intruder's hello")
        wait_until(lambda: "intruder" in (seed.members() or ()), 10, "the intruder to be listed")
        intruder.close()

    def test_no_process_without_the_key_can_join_or_change_a_view(self):
        seed, b = self.pair()
        public, secret = read_key(self.cluster.key)
        setups = {
            "plain": (None, None),
            "another key": (zmq.curve_keypair()[0], zmq.curve_keypair()),
            "the public key, another client pair": (public, zmq.curve_keypair()),
        }
        before = seed.snapshot()["dropped_frames"]
        for name, (server_public, client_pair) in setups.items():
            with self.subTest(setup=name):
                intruder = Intruder(self.context, seed.address, server_public, client_pair)
                wait_until(lambda: intruder.poke().failed(), 10, f"the {name} intruder's handshake to fail")
                # Keep saying hello for a while: never an answer, never listed.
                deadline = time.monotonic() + 1.5
                views = []

                def one_round():
                    intruder.poke()
                    views.append((seed.members(), b.members()))
                    return time.monotonic() > deadline

                wait_until(one_round, 10, "1.5 s of hellos")
                self.assertTrue(all(v == ({"b"}, {"seed"}) for v in views), views)
                self.assertEqual(intruder.answers, [])
                self.assertNotIn(zmq.EVENT_HANDSHAKE_SUCCEEDED, intruder.events)
                intruder.close()
        # No frame of theirs even reached the decoder.
        self.assertEqual(seed.snapshot()["dropped_frames"], before)
        log = seed.log()
        self.assertIn("did not complete the CURVE handshake", log)
        self.assertRegex(log, r"refused a cluster connection from 127\.0\.0\.1: the client's key is not an "
                              r"accepted key \(key .{8}\.\.\.\)")
        # The right key pair does get through (frames reach the decoder).
        insider = Intruder(self.context, seed.address, public, (public, secret))
        insider.socket.send(b"\x00garbage")
        wait_until(lambda: seed.snapshot()["dropped_frames"] > before, 10, "the key holder's frame to arrive")
        insider.close()

    def test_secure_and_plain_nodes_never_form_a_cluster_and_both_say_why(self):
        for secure_seed in (True, False):
            with self.subTest(secure_seed=secure_seed):
                seed = self.cluster.node(f"seed{int(secure_seed)}", key=self.cluster.key if secure_seed else None)
                seed.start("--start-cluster")
                other = self.cluster.node(f"other{int(secure_seed)}", key=None if secure_seed else self.cluster.key)
                other.start("--join", seed.address)
                secure, plain = (seed, other) if secure_seed else (other, seed)
                # A plain listener sees the key holder either refused (mechanism
                # mismatch) or hanging up, whichever side read the greeting first.
                wait_until(lambda: "refused the" in other.log() and "cluster key (CURVE)" in seed.log()
                           if not secure_seed else
                           "refused the" in other.log() and "refused a cluster connection" in seed.log(),
                           15, lambda: "both to log the refusal:\n" + self.cluster.dump_logs())
                if secure_seed:
                    self.assertIn("did not complete the CURVE handshake (no cluster key, or another key)", seed.log())
                    self.assertIn(f"the peer at {seed.address} refused the handshake: it runs with a cluster key "
                                  "(CURVE) and this node has none", other.log())
                else:
                    self.assertRegex(seed.log(), r"it runs with a cluster key \(CURVE\) and this node has none"
                                     r"|a node with a cluster key \(CURVE\) hangs up this way on a node without one")
                    self.assertIn(f"the peer at {seed.address} refused the CURVE handshake: it may run without a "
                                  "cluster key, or with another key", other.log())
                # For two seconds: nobody listed, no CPU spin, one line per reason (de-duplicated).
                cpu = {n.alias: cpu_seconds(n.process.pid) for n in (secure, plain)}
                start = time.monotonic()
                wait_until(lambda: time.monotonic() - start > 2 and secure.members() == set()
                           and plain.members() == set(), 10, "two seconds without a cluster")
                for n in (secure, plain):
                    used = cpu_seconds(n.process.pid) - cpu[n.alias]
                    self.assertLess(used, 0.5, f"{n.alias} used {used} s CPU in ~2 s")
                self.assertEqual(other.log().count("refused the"), 1, other.log())
                seed.kill()
                other.kill()

    def test_a_secure_cluster_forms_a_mesh_and_survives_kill_9(self):
        seed = self.cluster.seed()
        for alias in ("b", "c"):
            self.cluster.joiner(alias, seed)
        self.cluster.wait_converged()
        b = self.cluster.nodes["b"]
        b.kill()
        self.cluster.wait_converged(timeout=15)
        self.assertEqual(seed.members(), {"c"})
        b.start("--join", seed.address)
        self.cluster.wait_converged(timeout=15)
        self.assertEqual(seed.members(), {"b", "c"})


class Wire(ClusterTestCase):
    """The bytes between two nodes, through a relay: aliases and instances in
    clear in plain mode, none of them in secure mode."""
    binary = BINARY

    def converse_through_relay(self, key):
        seed = self.cluster.node("wirecheck-seed", key=key).start("--start-cluster")
        relay = TcpRelay(seed.port)
        self.addCleanup(relay.close)
        joiner = self.cluster.node("wirecheck-joiner", key=key).start("--join", relay.address)
        self.cluster.wait_converged()
        wait_until(lambda: len(relay.captured()) > 200, 10, "traffic through the relay")
        secrets = [b"wirecheck-seed", b"wirecheck-joiner", seed.snapshot()["self"]["instance"].encode(),
                   joiner.snapshot()["self"]["instance"].encode()]
        return relay.captured(), secrets

    def test_plain_mode_shows_aliases_and_instances_on_the_wire(self):
        captured, secrets = self.converse_through_relay(None)
        for s in secrets:
            self.assertIn(s, captured)

    def test_secure_mode_shows_no_alias_or_instance_on_the_wire(self):
        self.cluster.key = make_key(self.binary, self.cluster.root)
        captured, secrets = self.converse_through_relay(self.cluster.key)
        self.assertIn(b"CURVE", captured)  # the greeting names the mechanism, nothing more
        for s in secrets:
            self.assertNotIn(s, captured)


class KeysOnTheCommandLine(unittest.TestCase):
    """--cluster-key, --insecure and the key file's checks."""

    def setUp(self):
        self.dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"iridium-keys-{os.getpid()}-{id(self)}")
        os.makedirs(self.dir)
        self.addCleanup(subprocess.run, ["rm", "-rf", self.dir])

    def run_node(self, *args, env=None, timeout=20):
        port = free_port()
        argv = [BINARY, "--data-root-dir", self.dir, "--daemon-mode", "-P", str(port), *args]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env or clean_env(IRIDIUM_LOG="info"))
        return proc, port

    def finished(self, proc, timeout=20):
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out + err

    def test_plain_off_loopback_is_refused_with_how_to_make_a_key(self):
        proc, port = self.run_node("-H", "0.0.0.0", "--start-cluster")
        code, text = self.finished(proc)
        self.assertEqual(code, 2, text)
        self.assertIn("refusing to listen for the cluster on 0.0.0.0 without a cluster key", text)
        self.assertIn("iridium keygen FILE", text)
        self.assertIn("--cluster-key FILE", text)
        self.assertTrue(port_is_free(port, "0.0.0.0"))

    def test_insecure_or_a_key_allows_off_loopback(self):
        key = make_key(BINARY, self.dir)
        for args, env in ((["--insecure"], None), ([], clean_env(IRIDIUM_LOG="info", IRIDIUM_INSECURE="1")),
                          (["--cluster-key", key], None),
                          ([], clean_env(IRIDIUM_LOG="info", IRIDIUM_CLUSTER_KEY=key))):
            with self.subTest(args=args, env=env is not None):
                proc, port = self.run_node("-H", "0.0.0.0", "--start-cluster", *args, env=env)
                try:
                    wait_until(lambda: proc.poll() is not None or not port_is_free(port, "0.0.0.0"), 15,
                               "the listener on 0.0.0.0")
                    self.assertIsNone(proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
                finally:
                    proc.terminate()
                    self.assertEqual(self.finished(proc)[0], 0)

    def test_a_bad_key_file_ends_the_node_before_anything_binds(self):
        garbage = os.path.join(self.dir, "garbage.key")
        with open(garbage, "w") as f:
            f.write('public-key = "nope"\n')
        os.chmod(garbage, 0o600)
        cases = {os.path.join(self.dir, "missing.key"): "No such file",
                 garbage: "garbage.key"}
        for path, words in cases.items():
            with self.subTest(path=path):
                remote_port = free_port()
                proc, port = self.run_node("--start-cluster", "-r", "-p", str(remote_port), "--cluster-key", path)
                code, text = self.finished(proc)
                self.assertEqual(code, 2, text)
                self.assertIn("--cluster-key", text)
                self.assertIn(words, text)
                self.assertIn("iridium keygen", text)
                self.assertTrue(port_is_free(port) and port_is_free(remote_port))

    def test_a_key_file_others_can_read_gets_a_warning(self):
        key = make_key(BINARY, self.dir)
        os.chmod(key, 0o644)
        proc, port = self.run_node("--start-cluster", "--cluster-key", key)
        try:
            wait_until(lambda: not port_is_free(port), 15, "the listener")
        finally:
            proc.terminate()
        code, text = self.finished(proc)
        self.assertEqual(code, 0, text)
        self.assertRegex(text, r"warning .*the key file .* may be read by other users: chmod 600")


if __name__ == "__main__":
    unittest.main(verbosity=2)
