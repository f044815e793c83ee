"""Malformed cluster frames sent to a live node: dropped, counted, harmless."""
import os
import sys
import time
import unittest

import msgpack
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from iridium_nodes import CLUSTER_NAME, ClusterTestCase, take_binary, wait_until  # noqa: E402

BINARY = take_binary()


def frame(**fields):
    base = {"v": 2, "cluster": CLUSTER_NAME, "type": "heartbeat", "alias": "evil", "host": "127.0.0.1",
            "port": 9, "instance": "x", "incarnation": 0}
    base.update(fields)
    return msgpack.packb({k: v for k, v in base.items() if v is not None})


class BadFrames(ClusterTestCase):
    binary = BINARY

    def setUp(self):
        super().setUp()
        self.seed = self.cluster.seed()
        self.b = self.cluster.joiner("b", self.seed)
        self.cluster.wait_converged()
        self.context = zmq.Context()

    def tearDown(self):
        self.context.destroy(linger=0)
        super().tearDown()

    def dealer(self, identity=b"evil"):
        s = self.context.socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, identity)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://{self.seed.address}")
        return s

    def dropped(self):
        return self.seed.snapshot()["dropped_frames"]

    def test_every_kind_of_bad_frame_is_dropped_and_counted(self):
        s = self.dealer()
        before = self.dropped()
        bad = [
            os.urandom(200),                                   # random bytes
            frame()[:-3],                                      # truncated MessagePack
            msgpack.packb([1, 2, 3]),                          # not a map
            frame(port="2254"),                                # wrong field type
            frame(alias=12),                                   # wrong field type
            frame(type="no_such_type"),                        # unknown message type
            frame(v=99),                                       # unknown protocol version
            frame(v=None),                                     # no version
            frame(cluster=None),                               # no cluster name
            frame(cluster="two words"),                        # not a cluster name
            frame(cluster=b"bin"),                             # a bin, not a str
            frame(type="hello_ack", nodes="x"),                # wrong nodes type
            frame(type="members", nodes=[["a", "h"]]),         # malformed node entry
            frame() + b"\x00",                                 # trailing bytes
            msgpack.packb({1: 2}),                             # non-string key
            b"",                                               # empty frame
        ]
        for payload in bad:
            s.send(payload)
        s.send_multipart([frame(), frame()])                   # two frames in one message
        expected = before + len(bad) + 1
        wait_until(lambda: self.dropped() >= expected, 10, f"{expected} dropped frames")
        # Spoofing: a frame naming another sender than its routing id.
        s.send(frame(alias="b"))
        wait_until(lambda: self.dropped() >= expected + 1, 10, "the spoofed frame to be dropped")
        # The node keeps serving and the membership is untouched.
        self.assertEqual(self.seed.members(), {"b"})
        self.assertEqual(self.b.members(), {"seed"})
        self.assertIn("dropped a bad cluster frame", self.seed.log())

    def test_a_node_of_protocol_version_1_is_refused_with_both_versions_named(self):
        # A version-1 node (the all-to-all heartbeat protocol) says hello: its
        # frames are refused as a whole, and the log names both versions.
        s = self.dealer(b"old-node")
        before = self.dropped()
        s.send(frame(v=1, type="hello", alias="old", incarnation=None))
        wait_until(lambda: self.dropped() >= before + 1, 10, "the version-1 hello to be dropped")
        self.assertIn("protocol version 1; this node speaks version 2", self.seed.log())
        self.assertFalse(s.poll(300), "no answer a version-1 node could misread")
        self.assertEqual(self.seed.members(), {"b"})

    def test_a_frame_of_another_cluster_is_ignored_not_dropped_as_bad(self):
        s = self.dealer()
        before = self.seed.snapshot()
        for _ in range(3):
            s.send(frame(cluster="somebody-else", type="hello"))
        wait_until(lambda: self.seed.snapshot()["counters"]["dropped_other_cluster"] >= 3, 10,
                   "three frames of another cluster to be counted")
        after = self.seed.snapshot()
        self.assertEqual(after["dropped_frames"], before["dropped_frames"])
        self.assertEqual(after["self"]["cluster"], CLUSTER_NAME)
        self.assertFalse(s.poll(500), "no hello_ack or hello_nack for another cluster")
        self.assertEqual(self.seed.members(), {"b"})
        log = self.seed.log()
        self.assertEqual(log.count("a node of cluster 'somebody-else' at 127.0.0.1:9 (alias evil) sent a frame; "
                                   f"this node is in cluster '{CLUSTER_NAME}': ignored"), 1, log)
        self.assertNotIn("dropped a bad cluster frame", log)

    def test_oversized_frames_are_refused_and_the_node_keeps_serving(self):
        s = self.dealer()
        s.send(b"\x81" + b"x" * (200 * 1024))  # over ZMQ_MAXMSGSIZE: the connection is dropped
        s.send(os.urandom(100 * 1024))
        time.sleep(0.0)
        wait_until(lambda: self.seed.members() == {"b"}, 5, "the seed to answer")
        # A well-formed stranger heartbeat is ignored, not admitted.
        ok = self.dealer(b"stranger")
        ok.send(frame(alias="stranger"))
        wait_until(lambda: self.seed.members() == {"b"}, 5, "the seed to ignore the stranger")
        self.assertTrue(self.seed.running())
        self.cluster.joiner("c", self.seed)
        self.cluster.wait_converged()


if __name__ == "__main__":
    unittest.main(verbosity=2)
