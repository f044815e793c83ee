"""Starts and stops real iridium nodes on 127.0.0.1 for tests and benchmarks.

Each node gets its own data directory, cluster port and remote-shell port, runs
with --daemon-mode, and is driven through `iridium attach -c`. Every wait polls
with a deadline.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate until it returns a truthy value; raises on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Node:
    def __init__(self, cluster, alias, extra_args=(), port=None):
        self.cluster = cluster
        self.alias = alias
        self.port = port or free_port()
        self.remote_port = free_port()
        self.data_dir = os.path.join(cluster.root, alias)
        self.log_path = os.path.join(cluster.root, alias + ".log")
        self.extra_args = list(extra_args)
        self.process = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, *more_args):
        os.makedirs(self.data_dir, exist_ok=True)
        args = [self.cluster.binary, "--node-alias", self.alias, "--data-root-dir", self.data_dir,
                "-P", str(self.port), "-r", "-p", str(self.remote_port), "--daemon-mode",
                *self.extra_args, *more_args]
        log = open(self.log_path, "a")
        env = dict(os.environ, IRIDIUM_LOG=os.environ.get("IRIDIUM_LOG", "info"))
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        wait_until(lambda: self.process.poll() is not None or self.attach("!help", timeout=2).returncode == 0,
                   15, what=f"{self.alias}'s remote shell")
        if self.process.poll() is not None:
            raise AssertionError(f"{self.alias} exited with {self.process.returncode}: {self.log()}")
        return self

    def attach(self, *lines, timeout=10):
        args = [self.cluster.binary, "attach", f"127.0.0.1:{self.remote_port}", "--timeout", str(timeout)]
        for line in lines:
            args += ["-c", line]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)

    def snapshot(self):
        """The node's !cluster_members --json, or None if it does not answer."""
        r = self.attach("!cluster_members --json", timeout=3)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None

    def members(self):
        snapshot = self.snapshot()
        return None if snapshot is None else {m["alias"] for m in snapshot["members"]}

    def signal(self, sig):
        self.process.send_signal(sig)

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def wait_exit(self, timeout=10):
        return self.process.wait(timeout)

    def running(self):
        return self.process is not None and self.process.poll() is None

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""


class Cluster:
    """A set of nodes in one temp directory; close() kills them all."""

    def __init__(self, binary):
        self.binary = os.path.abspath(binary)
        self.root = tempfile.mkdtemp(prefix="iridium-cluster-")
        self.nodes = {}

    def node(self, alias, extra_args=(), port=None):
        node = Node(self, alias, extra_args, port)
        self.nodes[alias] = node
        return node

    def seed(self, alias="seed"):
        return self.node(alias).start("--start-cluster")

    def joiner(self, alias, via):
        return self.node(alias).start("--join", via.address)

    def live(self):
        return [n for n in self.nodes.values() if n.running()]

    def converged(self, expected=None):
        """True when every live node lists exactly every other live node."""
        live = self.live()
        aliases = {n.alias for n in live} if expected is None else set(expected)
        for node in live:
            if node.alias not in aliases:
                continue
            if node.members() != aliases - {node.alias}:
                return False
        return True

    def wait_converged(self, timeout=15, expected=None):
        wait_until(lambda: self.converged(expected), timeout, interval=0.1,
                   what="every live node to list every other")

    def dump_logs(self):
        return "\n".join(f"--- {n.alias}\n{n.log()[-4000:]}" for n in self.nodes.values())

    def close(self, keep_logs=False):
        for node in self.nodes.values():
            node.kill()
        if not keep_logs:
            shutil.rmtree(self.root, ignore_errors=True)
