"""Helpers of the shell end-to-end tests (tests/shell/test_*.py): a node whose
flags the test chooses (ShellNode), a process driven through pipes
(PipeProcess), pexpect helpers and the parsers of the register dump and the
`!jobs` table.

Processes, ports and polling come from iridium_nodes; this module adds no
second copy of any of them.
"""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest

from iridium_nodes import REPO, clean_env, free_port, kill_process, port_accepts, wait_until

BANNER = "Welcome to Iridium! Let's be productive!\r\nType !help for commands, or assembly to run it.\r\n"
PROMPT = ">>> "


def shell_args(data_dir, cluster_port=None):
    """Flags for a local shell: its own data dir, and free ports in case it
    would listen (-p remote shell, -P cluster)."""
    return ["--data-root-dir", data_dir, "-p", str(free_port()), "-P", str(cluster_port or free_port())]


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


JOBS_HEADER = re.compile(r"^ *ID  STATE +ELAPSED +SESSION +NAME +ERROR$", re.M)
JOB_ROW = re.compile(r"^ *\d+  \S.*$")


def parse_jobs(text):
    """The rows of the last `!jobs` table in text: {id: {"ID", "STATE",
    "ELAPSED", "SESSION", "NAME", "ERROR"}}. Cells are apart by two or more
    spaces; only ERROR, the last, may be empty (and contain single spaces)."""
    headers = list(JOBS_HEADER.finditer(text))
    if not headers:
        raise AssertionError(f"no !jobs table in output:\n{text}")
    names = headers[-1].group(0).split()
    rows = {}
    for line in text[headers[-1].end():].lstrip("\n").splitlines():
        if not JOB_ROW.match(line):
            break
        cells = re.split(r" {2,}", line.strip(), maxsplit=len(names) - 1)
        row = dict(zip(names, cells + [""] * (len(names) - len(cells))))
        rows[int(row["ID"])] = row
    return rows


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


class ShellNode:
    """A node process started with exactly the flags a test gives, plus its
    own data directory and free ports: `port` is its remote-shell port (-p),
    `cluster_port` its cluster port (-P). Its stderr (the log) goes to a file,
    or, with stdin_pipe, the whole process is a PipeProcess (self.pipe).
    For cluster members driven through attach, see iridium_nodes.Node."""

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
        """A ShellNode with its own data dir and free ports (-p, -P), killed in tearDown."""
        node = ShellNode(self.binary, list(args), env if env is not None else clean_env(), stdin_pipe, port)
        self._nodes.append(node)
        if wait:
            node.wait_listening()
        return node

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_line(self, child, line):
        """Types line + Enter into a pexpect child showing PROMPT (a local
        shell on a terminal, or an interactive attach) and returns what it
        printed before the next prompt."""
        child.sendline(line)
        child.expect_exact(line)  # the terminal's echo of what was typed
        child.expect_exact(PROMPT)
        return child.before.replace("\r\n", "\n").lstrip("\r\n")
