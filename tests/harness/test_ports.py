"""The harness's port and cluster-name rules (iridium_nodes.py): processes
that ask for ports at the same time never get the same one, no port comes
from the system's ephemeral range, a port something listens on is skipped,
and each process has a cluster name of its own.

    python3 tests/harness/test_ports.py [unittest args]
"""
import os
import socket
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import iridium_nodes  # noqa: E402

# A child that takes COUNT ports (holding them, as a suite does while it
# runs), prints them and its cluster name, then waits for stdin to close.
CHILD = """
import sys
sys.path.insert(0, {here!r})
import iridium_nodes
ports = [iridium_nodes.free_port() for _ in range({count})]
print(iridium_nodes.CLUSTER_NAME, *ports, flush=True)
sys.stdin.read()
"""


class Ports(unittest.TestCase):
    def children(self, processes, count):
        procs = [subprocess.Popen([sys.executable, "-c", CHILD.format(here=HERE, count=count)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for _ in range(processes)]
        try:
            lines = [p.stdout.readline().split() for p in procs]
        finally:
            for p in procs:
                p.stdin.close()
                p.wait(timeout=30)
        return [(line[0], [int(port) for port in line[1:]]) for line in lines]

    def test_processes_at_the_same_time_never_share_a_port(self):
        taken = self.children(6, 100)  # 600 ports, several blocks each, all held at once
        everything = [port for _, ports in taken for port in ports]
        self.assertEqual(len(everything), 600)
        self.assertEqual(len(set(everything)), 600)
        names = [name for name, _ in taken]
        self.assertEqual(len(set(names)), 6)
        for name in names:
            self.assertRegex(name, r"^test-c-\d+$")  # `python -c`: the script is "-c"

    def test_ports_are_below_the_ephemeral_range_and_free(self):
        span = iridium_nodes._port_range()
        if span is None:
            self.skipTest("no room below the ephemeral range on this machine")
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
        listening = socket.socket()
        self.addCleanup(listening.close)
        first = iridium_nodes.free_port()
        # Something else takes the next port of the block: it is skipped.
        try:
            listening.bind(("127.0.0.1", first + 1))
            listening.listen()
        except OSError:
            self.skipTest(f"port {first + 1} is not free to take")
        ports = [first] + [iridium_nodes.free_port() for _ in range(80)]
        self.assertNotIn(first + 1, ports)
        self.assertEqual(len(set(ports)), len(ports))
        for port in ports:
            self.assertTrue(span[0] <= port < low, port)

    def test_the_cluster_name_reaches_every_node_environment(self):
        name = iridium_nodes.CLUSTER_NAME
        self.assertRegex(name, r"^test-ports-\d+$")
        self.assertEqual(os.environ["IRIDIUM_CLUSTER_NAME"], name)
        self.assertEqual(iridium_nodes.clean_env()["IRIDIUM_CLUSTER_NAME"], name)
        self.assertEqual(iridium_nodes.clean_env(IRIDIUM_CLUSTER_NAME="other")["IRIDIUM_CLUSTER_NAME"], "other")
        self.assertNotIn("IRIDIUM_CLUSTER_NAME", iridium_nodes.clean_env(IRIDIUM_CLUSTER_NAME=None))

    def test_a_port_in_time_wait_is_free_for_a_listener_and_a_listened_one_is_not(self):
        # A listener that accepted a connection and closed first leaves the
        # port in TIME_WAIT for a minute; libzmq binds with SO_REUSEADDR, so a
        # node can listen there, and port_is_free must say so too (a suite
        # that reuses a port block soon after another suite saw "held").
        port = iridium_nodes.free_port()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        self.assertFalse(iridium_nodes.port_is_free(port))
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the accepting side closes first: its port goes to TIME_WAIT
        listener.close()
        client.recv(1)
        client.close()
        self.assertIn(f":{port} ", subprocess.run(["ss", "-tan", "state", "time-wait"], capture_output=True,
                                                    text=True).stdout)
        self.assertTrue(iridium_nodes.port_is_free(port))
        self.assertTrue(iridium_nodes.port_is_free(port, "0.0.0.0"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
