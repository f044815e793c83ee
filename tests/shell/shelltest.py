"""Helpers shared by the shell end-to-end tests (tests/shell/test_*.py).

Every test file is run as `python3 FILE /path/to/iridium`; take_binary() takes
that argument off sys.argv before unittest sees it. Everything here waits by
polling against a deadline, never by a bare sleep.
"""
import os
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


def take_binary():
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} PATH/TO/iridium [unittest args]")
    return os.path.abspath(sys.argv.pop(1))


def clean_env(**extra):
    """The environment without any IRIDIUM_* setting of the caller's, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRIDIUM_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port():
    """A TCP port that nothing listens on right now (bind to port 0 and ask)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shell_args(data_dir, cluster_port=None):
    """Flags for a local shell: its own data dir, and free ports in case it
    would listen (-p remote shell, -P cluster)."""
    return ["--data-root-dir", data_dir, "-p", str(free_port()), "-P", str(cluster_port or free_port())]


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_is_free(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate until it returns something truthy; fails after timeout s.
    what (a string, or a function giving one) says what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def parse_registers(text):
    """The 32 integer registers from the last `!registers` block in text."""
    start = text.rfind("Integer registers:")
    if start < 0:
        raise AssertionError(f"no register dump in output:\n{text}")
    end = text.find("Float registers:", start)
    block = text[start:end]
    values = {int(r): int(v) for r, v in re.findall(r"\$(\d+)\s+(-?\d+)", block)}
    if sorted(values) != list(range(32)):
        raise AssertionError(f"incomplete register dump:\n{block}")
    return [values[i] for i in range(32)]


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PipeProcess:
    """A process whose stdin/stdout/stderr are pipes, read by threads, so a
    test can send a line and wait for the answer with a deadline."""

    def __init__(self, argv, env, cwd=REPO):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd)
        self._lock = threading.Lock()
        self._out = {"stdout": b"", "stderr": b""}
        self._threads = [threading.Thread(target=self._pump, args=(name, stream), daemon=True)
                         for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))]
        for t in self._threads:
            t.start()

    def _pump(self, name, stream):
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                return
            with self._lock:
                self._out[name] += chunk

    def text(self, name="stdout"):
        with self._lock:
            return self._out[name].decode("utf-8", "replace")

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close_stdin(self):
        if not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait_for(self, pattern, timeout=30, name="stdout", start=0):
        """Waits until the regex matches the stream's text from offset start."""
        regex = re.compile(pattern, re.M)

        def found():
            return regex.search(self.text(name), start)

        return wait_until(found, timeout, lambda: f"{pattern!r} on {name}; it has:\n{self.text(name)[start:]}")

    def wait_exit(self, timeout=30):
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout)
        return code

    def kill(self):
        kill_process(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def kill_process(proc):
    """SIGKILL and reap, if it is still running."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class Node:
    """A node process started with its own data directory and free ports;
    its stderr (the log) goes to a file in that directory."""

    def __init__(self, binary, args, env, stdin_pipe=False, port=None):
        self.dir = tempfile.mkdtemp(prefix="iridium-shelltest-")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "node.log")
        self.port = port or free_port()
        self.cluster_port = free_port()
        self.argv = [binary, "--data-root-dir", self.data_dir, "-p", str(self.port),
                     "-P", str(self.cluster_port), *args]
        self.pipe = None
        if stdin_pipe:
            self.pipe = PipeProcess(self.argv, env)
            self.proc = self.pipe.proc
        else:
            self._log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=self._log, env=env, cwd=REPO)

    def log(self):
        if self.pipe is not None:
            return self.pipe.text("stderr")
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def wait_listening(self, timeout=30):
        def ready():
            if not self.alive():
                raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.log()}")
            return port_accepts(self.port)

        wait_until(ready, timeout, f"the remote shell on port {self.port}")

    def wait_log(self, pattern, timeout=30):
        regex = re.compile(pattern, re.M)
        return wait_until(lambda: regex.search(self.log()), timeout,
                          lambda: f"{pattern!r} in the node's log:\n{self.log()}")

    def close(self):
        if self.pipe is not None:
            self.pipe.kill()
        else:
            kill_process(self.proc)
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ShellTestCase(unittest.TestCase):
    """Tracks every process a test starts and kills them all in tearDown."""

    binary = None  # set by each test file

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="iridium-shelltest-")
        self._nodes = []
        self._procs = []  # pexpect children and Popen objects

    def tearDown(self):
        for child in self._procs:
            if isinstance(child, subprocess.Popen):
                kill_process(child)
            else:  # a pexpect child
                if child.isalive():
                    child.terminate(force=True)
                child.close(force=True)
        for node in self._nodes:
            node.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def track(self, proc):
        self._procs.append(proc)
        return proc

    def start_node(self, *args, env=None, stdin_pipe=False, wait=True, port=None):
        """A node with its own data dir and free ports (-p, -P), killed in tearDown."""
        node = Node(self.binary, list(args), env if env is not None else clean_env(), stdin_pipe, port)
        self._nodes.append(node)
        if wait:
            node.wait_listening()
        return node

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path
