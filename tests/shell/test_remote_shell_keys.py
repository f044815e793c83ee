"""The remote shell with a key (--remote-key, or the cluster key): CURVE
between `iridium attach --key` and the node. The right key works, a wrong or
missing key is refused at once with a clear message and logged, and the
token never crosses the wire in clear (it does without a key: the check can
fail)."""
import os
import subprocess
import sys
import unittest

import zmq
import zmq.utils.monitor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from iridium_nodes import REPO, TcpRelay, clean_env, make_key, take_binary, wait_until  # noqa: E402
from iridium_shell import ShellTestCase, parse_registers  # noqa: E402

IRIDIUM = take_binary()
TOKEN = "tok-4e1f9a0c7d2b"


class RemoteShellKeys(ShellTestCase):
    binary = IRIDIUM

    def setUp(self):
        super().setUp()
        self.key = make_key(IRIDIUM, self.tmp, "remote.key")
        self.other = make_key(IRIDIUM, self.tmp, "other.key")

    def attach(self, port, *commands, key=None, token=None, env=None, timeout=20):
        argv = [IRIDIUM, "attach", f"127.0.0.1:{port}", "--timeout", "10"]
        if key is not None:
            argv += ["--key", key]
        if token is not None:
            argv += ["--token", token]
        for c in commands:
            argv += ["-c", c]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              cwd=REPO, env=env if env is not None else clean_env())

    def test_the_right_key_attaches(self):
        for flag in ("--remote-key", "--cluster-key"):
            with self.subTest(flag=flag):
                node = self.start_node("-r", "--daemon-mode", flag, self.key, env=clean_env(IRIDIUM_LOG="info"))
                node.wait_log(r"remote shell listening on .* \(CURVE, key .{8}\.\.\.\)")
                r = self.attach(node.port, "load $0 #5", "!registers", key=self.key)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(parse_registers(r.stdout)[0], 5)
                r = self.attach(node.port, "nop", env=clean_env(IRIDIUM_REMOTE_KEY=self.key))
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_missing_or_wrong_key_is_refused_clearly_and_logged(self):
        node = self.start_node("-r", "--daemon-mode", "--remote-key", self.key, env=clean_env(IRIDIUM_LOG="info"))
        r = self.attach(node.port, "nop")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, f"iridium attach: refused by 127.0.0.1:{node.port}: the handshake failed: the "
                                   "node's remote shell requires a key; pass --key FILE (or set IRIDIUM_REMOTE_KEY)\n")
        r = self.attach(node.port, "nop", key=self.other)
        self.assertEqual(r.returncode, 2)
        self.assertIn("the CURVE handshake failed: the node's remote shell has another key than --key", r.stderr)
        node.wait_log(r"warning .*remote shell: refused a client that did not complete the CURVE handshake")
        # A key where the node has none: refused too, and both say why.
        plain = self.start_node("-r", "--daemon-mode", env=clean_env(IRIDIUM_LOG="info"))
        r = self.attach(plain.port, "nop", key=self.key)
        self.assertEqual(r.returncode, 2)
        self.assertIn("refused by", r.stderr)
        plain.wait_log(r"warning .*remote shell: refused a client that speaks CURVE: this node's remote shell has no key")

    def test_a_client_with_the_public_key_but_another_pair_is_denied_by_zap(self):
        node = self.start_node("-r", "--daemon-mode", "--remote-key", self.key, env=clean_env(IRIDIUM_LOG="info"))
        with open(self.key) as f:
            public = [line.split("=", 1)[1].strip().strip('"') for line in f if line.startswith("public-key")][0]
        context = zmq.Context()
        try:
            s = context.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.curve_serverkey = public.encode()
            s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
            monitor = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
            s.connect(f"tcp://127.0.0.1:{node.port}")
            self.assertTrue(monitor.poll(10000))
            self.assertEqual(zmq.utils.monitor.recv_monitor_message(monitor)["event"], zmq.EVENT_HANDSHAKE_FAILED_AUTH)
            monitor.close(0)
        finally:
            context.destroy(linger=0)
        node.wait_log(r"warning .*remote shell: refused a client from 127\.0\.0\.1: the client's key is not an "
                      r"accepted key")

    def test_with_a_key_no_token_is_needed_off_loopback(self):
        node = self.start_node("-r", "--daemon-mode", "-h", "0.0.0.0", "--remote-key", self.key)
        r = self.attach(node.port, "nop", key=self.key)
        self.assertEqual(r.returncode, 0, r.stderr)

    def token_on_the_wire(self, *node_args, key=None):
        node = self.start_node("-r", "--daemon-mode", "--remote-token", TOKEN, *node_args)
        relay = TcpRelay(node.port)
        self.addCleanup(relay.close)
        r = self.attach(relay.port, "load $0 #3", "!registers", key=key, token=TOKEN)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: len(relay.captured()) > 100, 10, "traffic through the relay")
        return relay.captured()

    def test_the_token_is_in_clear_without_a_key(self):
        self.assertIn(TOKEN.encode(), self.token_on_the_wire())

    def test_the_token_never_crosses_the_wire_in_clear_with_a_key(self):
        captured = self.token_on_the_wire("--remote-key", self.key, key=self.key)
        self.assertIn(b"CURVE", captured)
        self.assertNotIn(TOKEN.encode(), captured)
        self.assertNotIn(b"Integer registers", captured)  # nor the session's output


if __name__ == "__main__":
    unittest.main(verbosity=2)
