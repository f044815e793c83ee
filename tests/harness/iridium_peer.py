"""The protocol test peer for secure-mode suites (test_security.py,
test_key_rotation.py): a raw DEALER that says hello to a node with a chosen
key setup, and the key files' halves. Needs pyzmq and msgpack (Debian's
python3-zmq and python3-msgpack, so run the suites with /usr/bin/python3)."""
import msgpack
import zmq
import zmq.utils.monitor

from iridium_nodes import CLUSTER_NAME, ClusterTestCase


def hello(alias="intruder", port=9, cluster=CLUSTER_NAME):
    return msgpack.packb({"v": 2, "cluster": cluster, "type": "hello", "alias": alias, "host": "127.0.0.1",
                          "port": port, "instance": "0123456789abcdef", "incarnation": 0})


def read_key(path):
    """(public, secret) Z85 bytes from a key file."""
    fields = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                name, value = line.split("=", 1)
                fields[name.strip()] = value.strip().strip('"').encode()
    return fields["public-key"], fields["secret-key"]


class Intruder:
    """A raw DEALER that says hello to a node, with a chosen key setup, and a
    monitor that tells whether its handshake succeeded or failed."""

    def __init__(self, context, address, server_public=None, client_pair=None):
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if server_public is not None:
            self.socket.curve_serverkey = server_public
            self.socket.curve_publickey, self.socket.curve_secretkey = client_pair
        self.monitor = self.socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        self.events = []
        self.answers = []
        self.socket.connect(f"tcp://{address}")

    def poke(self):
        """Says hello again; collects monitor events and answers. Returns self."""
        try:
            self.socket.send(hello(), zmq.NOBLOCK)
        except zmq.Again:
            pass
        while self.monitor.poll(0):
            self.events.append(zmq.utils.monitor.recv_monitor_message(self.monitor)["event"])
        while self.socket.poll(0):
            self.answers.append(self.socket.recv())
        return self

    def failed(self):
        return any(e != zmq.EVENT_HANDSHAKE_SUCCEEDED for e in self.events)

    def succeeded(self):
        return zmq.EVENT_HANDSHAKE_SUCCEEDED in self.events

    def close(self):
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.socket.close(0)


class SecureClusterTestCase(ClusterTestCase):
    """A ClusterTestCase whose cluster has a key, with a zmq context
    (self.context) for the test's own peers, destroyed after each test."""

    secure = True

    def setUp(self):
        super().setUp()
        self.context = zmq.Context()

    def tearDown(self):
        self.context.destroy(linger=0)
        super().tearDown()
