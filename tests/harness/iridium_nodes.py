"""The one test harness for every Python suite: processes, ports, polling, and
real iridium nodes on 127.0.0.1 (tests, ci/e2e_cluster.py, bench/cluster.py).

Shell and pseudo-terminal helpers build on this module in iridium_shell.py.

A suite is run as `python3 FILE /path/to/iridium`; take_binary() takes that
argument off sys.argv before unittest sees it. A suite outside tests/harness
puts this directory on sys.path first:

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
    from iridium_nodes import Cluster, Node, wait_until, free_port

Cluster nodes each get their own data directory, cluster port and
remote-shell port, run with --daemon-mode, and are driven through
`iridium attach -c`. Every wait polls with a deadline, never a bare sleep.

Suites run side by side (ctest -j) and a node redials the ports it once
knew, so two rules keep them out of each other's way:

- Every iridium this process starts is in a cluster of its own,
  CLUSTER_NAME (`test-<suite>-<pid>`): importing this module puts it in
  os.environ as IRIDIUM_CLUSTER_NAME, and clean_env() keeps it, so a node
  of another suite that dials one of ours is ignored (in secure mode a
  node without our key cannot even connect).
- free_port() hands out ports below the system's ephemeral range, which
  the system never gives to a bind to port 0 or to an outgoing connection,
  from blocks that one process at a time holds a lock on (a file in
  PORT_LOCK_DIR, released by the kernel when the process ends): two live
  suites are never given the same port.
"""
import concurrent.futures
import errno
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Timers::connect_grace (src/cluster/config.h), seconds: a probe of a member
# listed less than this ago is void, so faults wait it out (settle()).
CONNECT_GRACE = 3.0


def _cluster_name():
    """test-<suite>-<pid>: the suite is the running script's name without
    .py and a leading "test_", cut so the name stays within 64 characters."""
    script = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "python"))[0]
    suite = re.sub(r"[^A-Za-z0-9._-]", "-", re.sub(r"^test_", "", script)).strip("-._") or "suite"
    suffix = f"-{os.getpid()}"
    return ("test-" + suite)[:64 - len(suffix)] + suffix


# The cluster of every iridium this process starts (see the module's doc).
CLUSTER_NAME = _cluster_name()
os.environ["IRIDIUM_CLUSTER_NAME"] = CLUSTER_NAME


# --- processes, ports, polling ---------------------------------------------

def take_binary():
    """The iridium binary named by the first command-line argument, removed
    from sys.argv so that unittest does not see it."""
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} PATH/TO/iridium [unittest args]")
    return os.path.abspath(sys.argv.pop(1))


def clean_env(**extra):
    """The environment without any IRIDIUM_* setting of the caller's except
    this process's IRIDIUM_CLUSTER_NAME (CLUSTER_NAME), plus extra (which may
    set another name, or None to leave a variable out)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRIDIUM_")}
    env["IRIDIUM_CLUSTER_NAME"] = CLUSTER_NAME
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


_ports_handed_out = set()


def parse_snapshot(completed):
    """The JSON of a finished `!cluster_members --json` run (its last line),
    or None when the command failed or printed something else."""
    if completed.returncode != 0:
        return None
    try:
        return json.loads(completed.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "iridium-test-ports")
PORT_BLOCK = 32  # ports per lock file


def _port_range():
    """The ports free_port() hands out: those below the ephemeral range
    (/proc/sys/net/ipv4/ip_local_port_range, usually 32768-60999), from 20000
    up; None when that range leaves no room."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    start = 20000 if low >= 20000 + 64 * PORT_BLOCK else 10000
    return (start, low) if low - start >= 16 * PORT_BLOCK else None


_port_blocks = []  # [first port of a block] this process holds a lock on
_port_lock_fds = []  # their lock files, open (and locked) until the process ends
_next_port = None
_port_mutex = threading.Lock()
_port_random = random.Random()  # its own: a suite that seeds `random` must not steer it


def _claim_block(span):
    """Locks a free block of PORT_BLOCK ports in span, starting the search
    at a random block so that suites one after another seldom reuse ports:
    an exclusive flock on the block's file, which no other process can hold
    at the same time and which the kernel releases when this one ends.
    Its first port, or None when every block is held."""
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    try:
        os.chmod(PORT_LOCK_DIR, 0o1777)  # shared by everyone's suites, like /tmp
    except OSError:
        pass
    count = (span[1] - span[0]) // PORT_BLOCK
    first = _port_random.randrange(count)
    for i in range(count):
        block = span[0] + (first + i) % count * PORT_BLOCK
        if block in _port_blocks:
            continue
        try:
            fd = os.open(os.path.join(PORT_LOCK_DIR, f"{block}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o666)
        except OSError:
            continue  # another user's file we may not open: theirs
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            continue
        _port_blocks.append(block)
        _port_lock_fds.append(fd)
        return block
    return None


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, that no
    other live process using this harness can be given (it comes from a
    block of ports this process holds a lock on), that the system never
    gives out by itself (below the ephemeral range), and that this process
    was never given before. Without room below the ephemeral range: a port
    the system picks (bind to port 0), as a last resort."""
    with _port_mutex:
        return _free_port()


def _free_port():
    global _next_port
    span = _port_range()
    if span is None:
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
        raise RuntimeError("no free TCP port that was not handed out before")
    while True:
        if _next_port is None or _next_port >= _port_blocks[-1] + PORT_BLOCK:
            block = _claim_block(span)
            if block is None:
                raise RuntimeError(f"every block of test ports in {span[0]}..{span[1] - 1} is held by "
                                   f"another process (lock files in {PORT_LOCK_DIR})")
            _next_port = block
        port = _next_port
        _next_port += 1
        if port not in _ports_handed_out and port_is_free(port):
            _ports_handed_out.add(port)
            return port


def port_accepts(port, host="127.0.0.1"):
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_is_free(port, host="127.0.0.1"):
    """True when a listener could bind host:port now, as libzmq binds: with
    SO_REUSEADDR, so a port left in TIME_WAIT by an earlier listener is free,
    and one something listens on is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def wait_until(predicate, timeout, what="condition", interval=0.05):
    """Polls predicate until it returns something truthy, and returns that.

    Fails with AssertionError after timeout seconds (the predicate is always
    called at least once, and once more at the deadline). what says what was
    awaited: a string, or a function giving one (called only on failure, so it
    can show the latest state). Exceptions from predicate propagate."""
    if isinstance(what, (int, float)):
        raise TypeError("wait_until(predicate, timeout, what, interval): what must be a string or a callable")
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {text} (last: {last!r})")
        time.sleep(interval)


def kill_process(proc, timeout=10):
    """SIGKILL and reap a subprocess.Popen, if it is still running."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def failed_so_far(case):
    """True when the running unittest.TestCase has failed so far (for use in
    tearDown, e.g. to print logs only on failure)."""
    outcome = getattr(case, "_outcome", None)
    if outcome is None:
        return False
    if hasattr(outcome, "errors"):  # Python <= 3.10 collects errors here until the test ends
        return any(exc_info for _, exc_info in outcome.errors)
    result = getattr(outcome, "result", None)  # Python >= 3.11 reports them at once
    if result is None:
        return False
    return any(getattr(test, "test_case", test) is case for test, _ in result.failures + result.errors)


# --- keys and the wire --------------------------------------------------------

def make_key(binary, directory, name="cluster.key"):
    """A new key file made by `iridium keygen` in directory; its path."""
    path = os.path.join(directory, name)
    subprocess.run([binary, "keygen", path], check=True, capture_output=True, env=clean_env())
    return path


class TcpRelay:
    """A TCP relay on 127.0.0.1:port to target_port that keeps every byte it
    carries (both directions), so a test can search the wire for what must
    not be there in clear. close() stops it."""

    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((host, 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._bytes = bytearray()
        self._sockets = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def captured(self):
        with self._lock:
            return bytes(self._bytes)

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, sink):
        while True:
            try:
                chunk = source.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                for s in (source, sink):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            with self._lock:
                self._bytes += chunk
            try:
                sink.sendall(chunk)
            except OSError:
                return

    def close(self):
        self._closed = True
        self._server.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass


# --- cluster nodes ------------------------------------------------------------

class Node:
    """One cluster node: alias, data directory, cluster port (-P) and
    remote-shell port (-p), started with --daemon-mode -r and driven through
    `iridium attach -c`. Its stdout and stderr (the log) are appended to
    log_path, across restarts."""

    def __init__(self, cluster, alias, extra_args=(), port=None, remote_port=None, key=None):
        self.cluster = cluster
        self.key = key  # cluster key file: --cluster-key, and attach --key
        self.alias = alias
        self.port = port or free_port()
        self.remote_port = remote_port or free_port()
        self.data_dir = os.path.join(cluster.root, alias)
        self.log_path = os.path.join(cluster.root, alias + ".log")
        self.extra_args = list(extra_args)
        self.process = None

    @property
    def address(self):
        """The cluster address, HOST:PORT, as --join takes it."""
        return f"127.0.0.1:{self.port}"

    def argv(self, *more_args):
        return [self.cluster.binary, "--node-alias", self.alias, "--data-root-dir", self.data_dir,
                "-P", str(self.port), "-r", "-p", str(self.remote_port), "--daemon-mode",
                *(["--cluster-key", self.key] if self.key else []), *self.extra_args, *more_args]

    def launch(self, *more_args):
        """Starts the process and returns at once (see wait_ready). Logs at
        IRIDIUM_LOG from the caller's environment, else info; no other
        IRIDIUM_* setting of the caller's reaches the node."""
        os.makedirs(self.data_dir, exist_ok=True)
        with open(self.log_path, "a") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv(*more_args))}\n")
            log.flush()
            env = clean_env(IRIDIUM_LOG=os.environ.get("IRIDIUM_LOG", "info"))
            self.process = subprocess.Popen(self.argv(*more_args), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, env=env)
        return self

    def wait_ready(self, timeout=15):
        """Waits until the remote shell answers; fails if the process exits."""
        wait_until(lambda: self.process.poll() is not None or self.attach("!help", timeout=2).returncode == 0,
                   timeout, f"{self.alias}'s remote shell")
        if self.process.poll() is not None:
            raise AssertionError(f"{self.alias} exited with {self.process.returncode}: {self.log()}")
        return self

    def start(self, *more_args):
        """launch() then wait_ready()."""
        return self.launch(*more_args).wait_ready()

    def attach(self, *lines, timeout=10):
        """Runs lines through `iridium attach -c`; a CompletedProcess."""
        args = [self.cluster.binary, "attach", f"127.0.0.1:{self.remote_port}", "--timeout", str(timeout)]
        if self.key:
            args += ["--key", self.key]
        for line in lines:
            args += ["-c", line]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10, env=clean_env())

    def snapshot(self):
        """The node's !cluster_members --json, or None if it does not answer."""
        return parse_snapshot(self.attach("!cluster_members --json", timeout=3))

    def members(self):
        """The aliases the node lists, or None if it does not answer."""
        snapshot = self.snapshot()
        return None if snapshot is None else {m["alias"] for m in snapshot["members"]}

    def signal(self, sig):
        self.process.send_signal(sig)

    def kill(self):
        """SIGKILL and reap, if running."""
        if self.process is not None:
            kill_process(self.process)

    def wait_exit(self, timeout=10):
        return self.process.wait(timeout)

    def running(self):
        return self.process is not None and self.process.poll() is None

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Cluster:
    """A set of nodes in one temp directory; close() kills them all. With
    secure=True every node gets one cluster key (made here, self.key)."""

    def __init__(self, binary, secure=False):
        self.binary = os.path.abspath(binary)
        self.root = tempfile.mkdtemp(prefix="iridium-cluster-")
        self.key = make_key(self.binary, self.root) if secure else None
        self.nodes = {}
        self._pool = None

    def node(self, alias, extra_args=(), port=None, key="cluster"):
        """A new Node (not started), registered under alias; key: a key file,
        None for plain mode, or "cluster" for the cluster's (if secure)."""
        node = Node(self, alias, extra_args, port, key=self.key if key == "cluster" else key)
        self.nodes[alias] = node
        return node

    def seed(self, alias="seed"):
        return self.node(alias).start("--start-cluster")

    def joiner(self, alias, via):
        return self.node(alias).start("--join", via.address)

    def live(self):
        return [n for n in self.nodes.values() if n.running()]

    def snapshots_of(self, nodes):
        """{alias: snapshot() or None} of the given nodes, asked in parallel."""
        nodes = list(nodes)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)
        return dict(zip((n.alias for n in nodes), self._pool.map(lambda n: n.snapshot(), nodes)))

    def members_of(self, nodes):
        """{alias: members() or None} of the given nodes, asked in parallel."""
        return {alias: None if snapshot is None else {m["alias"] for m in snapshot["members"]}
                for alias, snapshot in self.snapshots_of(nodes).items()}

    def converged(self, expected=None):
        """True when every live node (of expected, if given) lists exactly the
        other live nodes (of expected)."""
        live = self.live()
        aliases = {n.alias for n in live} if expected is None else set(expected)
        seen = self.members_of(n for n in live if n.alias in aliases)
        return all(members == aliases - {alias} for alias, members in seen.items())

    def wait_converged(self, timeout=15, expected=None):
        wait_until(lambda: self.converged(expected), timeout, "every live node to list every other",
                   interval=0.1)

    def settle(self, expected=None):
        """Keeps checking the full mesh for connect_grace: a fault injected
        after this meets members whose probes can fail (a member listed less
        than connect_grace ago is not accused by a probe, docs/protocol.md
        section 7). Raises AssertionError if the mesh breaks meanwhile."""
        end = time.monotonic() + CONNECT_GRACE
        while time.monotonic() < end:
            if not self.converged(expected):
                raise AssertionError("the full mesh broke while the cluster settled")
            time.sleep(0.1)

    def dump_logs(self, tail=4000):
        return "\n".join(f"--- {n.alias} ({n.log_path})\n{n.log()[-tail:]}" for n in self.nodes.values())

    def close(self, keep_logs=False):
        for node in self.nodes.values():
            node.kill()  # SIGKILL ends a stopped (SIGSTOP) node too
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if not keep_logs:
            shutil.rmtree(self.root, ignore_errors=True)


class ClusterTestCase(unittest.TestCase):
    """A Cluster per test (self.cluster), of the binary in the class attribute
    `binary`; every node is killed in tearDown, and the node logs are printed
    to stderr when the test failed."""

    binary = None
    secure = False  # a cluster key for every node

    def setUp(self):
        self.cluster = Cluster(self.binary, secure=self.secure)

    def tearDown(self):
        if failed_so_far(self):
            print(f"\n=== node logs of {self.id()}\n{self.cluster.dump_logs()}", file=sys.stderr)
        self.cluster.close()
