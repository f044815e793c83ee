"""bench/scaling.py's readers of what the host shows about a container:
/proc/PID/net/dev, /proc/PID/net/tcp, cgroup v1 memory.stat, docker's
times, and the node log lines that say when a node had every peer.

Run as: test_scaling_parse.py SOURCE_DIR
"""
import os
import sys
import unittest

if len(sys.argv) < 2:
    sys.exit(f"usage: {sys.argv[0]} SOURCE_DIR [unittest args]")
SOURCE = os.path.abspath(sys.argv.pop(1))
sys.path.insert(0, os.path.join(SOURCE, "bench"))
import scaling  # noqa: E402

NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0
  eth0: 5000 40 0 0 0 0 0 0 7000 50 0 0 0 0 0 0
  eth1: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0
"""

NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:08CE 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1
   1: 0200120A:08CE 0300120A:9C40 01 00000000:00000000 00:00000000 00000000   999        0 2 1
   2: 0200120A:9C41 0300120A:08CE 01 00000000:00000000 00:00000000 00000000   999        0 3 1
   3: 0200120A:9C42 0400120A:08CE 06 00000000:00000000 00:00000000 00000000   999        0 4 1
"""

# As `docker logs` shows a TTY container: CR LF, and the REPL's prompt
# before the first line the node logs after it starts.
LOG = (">>> 2026-12-04T16:01:02.100 info [7] seed joined (seed:2254)\r\n"
       "2026-12-04T16:01:02.100 info [7] joined the cluster via seed at seed:2254\r\n"
       "2026-12-04T16:01:02.200 info [7] a1 joined (10.0.0.3:2254)\r\n"
       "2026-12-04T16:01:02.300 info [7] a1 is dead (silent for 1500 ms)\r\n"
       "2026-12-04T16:01:02.350 info [7] a1 joined (10.0.0.3:2254)\r\n"
       "2026-12-04T16:01:02.400 info [7] a2 joined (10.0.0.4:2254)\r\n")


class Parsing(unittest.TestCase):
    def test_net_dev_sums_every_interface_but_lo(self):
        self.assertEqual(scaling.net_dev_tx(NET_DEV), (7020, 52, 5010))

    def test_established_connections_only(self):
        self.assertEqual(scaling.established_tcp(NET_TCP), 2)

    def test_memory_as_docker_stats(self):
        self.assertEqual(scaling.memory_v1("cache 5\ntotal_inactive_file 100\n", 1000), 900)

    def test_docker_time_keeps_the_fraction(self):
        t = scaling.docker_time("2026-12-04T16:01:02.123456789Z")
        self.assertAlmostEqual(t - scaling.log_time("2026-12-04T16:01:02.000"), 0.123456789, places=6)
        self.assertEqual(scaling.docker_time("2026-12-04T16:01:02Z"), scaling.log_time("2026-12-04T16:01:02.000"))
        with self.assertRaises(ValueError):
            scaling.docker_time("yesterday")

    def test_all_peers_logged(self):
        base = scaling.log_time("2026-12-04T16:01:02.000")
        # seed (twice), a1 (twice) and a2 are three distinct peers, at .400.
        self.assertAlmostEqual(scaling.peers_complete_at(LOG, 3, base), base + 0.4, places=6)
        self.assertIsNone(scaling.peers_complete_at(LOG, 4, base))
        # Lines before `after` do not count.
        self.assertAlmostEqual(scaling.peers_complete_at(LOG, 1, base + 0.15), base + 0.2, places=6)
        self.assertIsNone(scaling.peers_complete_at("no log lines here\n", 1, base))


if __name__ == "__main__":
    unittest.main()
