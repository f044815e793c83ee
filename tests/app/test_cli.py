"""The iridium binary's run / asm / disasm commands, exit codes, state JSON,
the -h hint, and when log lines carry colour."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from iridium_nodes import clean_env, free_port, kill_process, take_binary  # noqa: E402

IRIDIUM = take_binary()


def iridium(*args, stdin=None):
    return subprocess.run([IRIDIUM, *args], capture_output=True, text=True, input=stdin, timeout=60)


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_run_hello_and_shorthand(self):
        for args in (["run", "examples/hello.iasm"], ["examples/hello.iasm"]):
            r = iridium(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "Hello, Iridium!\n")
            self.assertEqual(r.stderr, "")

    def test_state_json_to_stdout_starts_on_a_fresh_line(self):
        src = self.write("p.iasm", "s: .asciiz 'no newline'\nload $3 #-7\nprts @s\nhlt\n")
        r = iridium("run", src, "--state-json", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        out, js = r.stdout.rsplit("\n", 2)[0], r.stdout.splitlines()[-1]
        self.assertEqual(out, "no newline")
        state = json.loads(js)
        self.assertEqual(state["status"], "halted")
        self.assertIsNone(state["error"])
        self.assertEqual(len(state["registers"]), 32)
        self.assertEqual(state["registers"][3], -7)
        self.assertEqual(len(state["float_registers"]), 32)
        self.assertIs(state["equal_flag"], False)
        self.assertEqual(state["remainder"], 0)

    def test_state_json_to_file_and_ended(self):
        src = self.write("p.iasm", "load $0 #7\nload $1 #2\ndiv $0 $1 $2\n")
        out = os.path.join(self.dir.name, "state.json")
        r = iridium(src, "--state-json", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            state = json.load(f)
        self.assertEqual(state["status"], "ended")
        self.assertEqual(state["registers"][2], 3)
        self.assertEqual(state["remainder"], 1)

    def test_runtime_error_exits_1(self):
        src = self.write("p.iasm", "load $1 #0\ndiv $0 $1 $2\n")
        r = iridium("run", src, "--state-json", "-")
        self.assertEqual(r.returncode, 1)
        self.assertIn("division by zero at code offset 4", r.stderr)
        state = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual(state["status"], "error")
        self.assertIn("division by zero", state["error"])

    def test_max_steps(self):
        src = self.write("loop.iasm", "top: load $0 #0\nload $1 #0\neq $0 $1\ndjmpe @top\n")
        r = iridium("run", src, "--max-steps", "1000")
        self.assertEqual(r.returncode, 1)
        self.assertIn("step limit", r.stderr)

    def test_assembly_errors_exit_2_with_locations(self):
        src = self.write("bad.iasm", "load $0\nfoo\ninc $40\n")
        r = iridium("run", src)
        self.assertEqual(r.returncode, 2)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 3, r.stderr)
        self.assertTrue(lines[0].startswith(src + ":1:1: error: LOAD takes 2 operands"), lines[0])
        self.assertTrue(lines[1].startswith(src + ":2:1: error: unknown instruction 'foo'"))
        self.assertTrue(lines[2].startswith(src + ":3:5: error: register"))

    def test_asm_disasm_round_trip(self):
        for example in sorted(os.listdir("examples")):
            if not example.endswith(".iasm"):
                continue
            pie = os.path.join(self.dir.name, example.replace(".iasm", ".pie"))
            r = iridium("asm", os.path.join("examples", example), "-o", pie)
            self.assertEqual(r.returncode, 0, r.stderr)
            d = iridium("disasm", pie)
            self.assertEqual(d.returncode, 0, d.stderr)
            again = self.write("again.iasm", d.stdout)
            pie2 = os.path.join(self.dir.name, "again.pie")
            self.assertEqual(iridium("asm", again, "-o", pie2).returncode, 0)
            with open(pie, "rb") as a, open(pie2, "rb") as b:
                self.assertEqual(a.read(), b.read(), example)
            # The image runs like the source.
            self.assertEqual(iridium("run", pie).stdout, iridium("run", os.path.join("examples", example)).stdout)

    def test_bad_images_and_files_exit_2(self):
        bad = os.path.join(self.dir.name, "bad.pie")
        with open(bad, "wb") as f:
            f.write(b"EPIE" + bytes(60) + bytes([0, 0, 0, 0]) + bytes([77, 0, 0, 0]))
        for args in (["run", bad], ["disasm", bad]):
            r = iridium(*args)
            self.assertEqual(r.returncode, 2)
            self.assertIn("unknown opcode 77", r.stderr)
        r = iridium("run", os.path.join(self.dir.name, "missing.iasm"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot open", r.stderr)
        r = iridium("disasm", "examples/hello.iasm")
        self.assertEqual(r.returncode, 2)
        self.assertIn("magic", r.stderr)

    def test_usage_errors_exit_2(self):
        self.assertEqual(iridium("--no-such-flag").returncode, 2)
        self.assertEqual(iridium("run").returncode, 2)
        self.assertEqual(iridium("run", "examples/hello.iasm", "--max-steps", "x").returncode, 2)
        self.assertEqual(iridium("--help").returncode, 0)

    def test_a_bad_cluster_name_is_a_usage_error(self):
        data = self.dir.name
        for bad in ("", "two words", "x" * 65, "caf\u00e9", "a/b"):
            for how in ("flag", "env") if bad else ("flag",):  # an empty variable is an unset one
                with self.subTest(name=bad, how=how):
                    argv = [IRIDIUM, "--data-root-dir", data, "--daemon-mode", "--start-cluster",
                            "-P", str(free_port())]
                    env = clean_env()
                    if how == "flag":
                        argv += ["--cluster-name", bad]
                    else:
                        env["IRIDIUM_CLUSTER_NAME"] = bad
                    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env,
                                       stdin=subprocess.DEVNULL)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertIn(f"--cluster-name (IRIDIUM_CLUSTER_NAME): '{bad}' is not a valid cluster name: "
                                  "use 1 to 64 letters, digits, '.', '_' and '-'", r.stderr)
        self.assertIn("--cluster-name", iridium("--help").stdout)

    def test_keygen_writes_a_private_key_once(self):
        path = os.path.join(self.dir.name, "cluster.key")
        r = iridium("keygen", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^wrote a new cluster key to .*cluster\.key \(fingerprint \S{8}, mode 0600\)\n$")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            text = f.read()
        self.assertRegex(text, r'public-key = "[^"]{40}"')
        self.assertRegex(text, r'secret-key = "[^"]{40}"')
        # A second keygen to the same file refuses and leaves the key alone.
        r = iridium("keygen", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("never overwritten", r.stderr)
        with open(path) as f:
            self.assertEqual(f.read(), text)
        # A directory that does not exist is a clear error.
        r = iridium("keygen", os.path.join(self.dir.name, "no", "such", "k"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("No such file or directory", r.stderr)

    def test_dash_h_is_the_bind_host_and_points_at_help(self):
        # -h is the remote shell's bind host (the spec's flag), so a bare -h
        # is an option without its value: the error says where help is.
        for args in (["-h"], ["attach", "-h"], ["-r", "--daemon-mode", "-h"]):
            r = iridium(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(r.stdout, "", args)
            self.assertEqual(r.stderr, "iridium: -h is the remote shell's bind host (-h HOST), not help; "
                                       "for help use --help\n", args)
        r = iridium("--help")
        self.assertIn("-h,--bind-host", r.stdout)
        self.assertIn("--help", r.stdout)
        # With a value, -h is still the bind host: an unrelated error stays as it was.
        r = iridium("-h", "127.0.0.1", "--no-such-flag")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--no-such-flag", r.stderr)
        self.assertNotIn("for help use --help", r.stderr)


COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def node_log(*flags, tty, **env):
    """What a node logs to stderr at info from its start to a SIGTERM: stderr
    is a pseudo-terminal (tty=True, TERM=xterm) or a pipe."""
    with tempfile.TemporaryDirectory() as data:
        argv = [IRIDIUM, "--data-root-dir", data, "-P", str(free_port()), "-r", "-p", str(free_port()),
                "--daemon-mode", "--log-level", "info", *flags]
        environment = clean_env()
        environment.pop("NO_COLOR", None)
        environment.pop("COLORTERM", None)
        environment["TERM"] = "xterm"
        environment.update(env)
        if tty:
            reader, writer = pty.openpty()
        else:
            reader, writer = os.pipe()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=writer,
                                env=environment)
        os.close(writer)
        text, stopped, deadline = b"", False, time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                if not stopped and b"listening on" in text:
                    proc.send_signal(signal.SIGTERM)
                    stopped = True
                if select.select([reader], [], [], 0.2)[0]:
                    try:
                        chunk = os.read(reader, 4096)
                    except OSError:  # EIO: the pty's other end is closed
                        chunk = b""
                    if not chunk:
                        break
                    text += chunk
            proc.wait(timeout=10)
        finally:
            kill_process(proc)
            os.close(reader)
        return proc.returncode, text.decode(errors="replace")


class LogColour(unittest.TestCase):
    """Colour codes only where a person reads a colour terminal: auto (the
    default) colours a terminal's stderr, never a pipe; --log-color and
    IRIDIUM_LOG_COLOR (containers set never) and NO_COLOR override it."""

    def check(self, coloured, *flags, tty, **env):
        status, log = node_log(*flags, tty=tty, **env)
        self.assertEqual(status, 0, log)
        self.assertIn("listening on", log)
        self.assertIn("received SIGTERM", log)
        if coloured:
            self.assertRegex(log, COLOUR)
        else:
            self.assertNotRegex(log, COLOUR)
            self.assertRegex(log, r" info \[")

    def test_auto_colours_a_terminal_only(self):
        self.check(True, tty=True)
        self.check(True, "--log-color", "auto", tty=True)
        self.check(False, tty=False)

    def test_never_and_no_color_on_a_terminal(self):
        self.check(False, "--log-color", "never", tty=True)
        self.check(False, tty=True, IRIDIUM_LOG_COLOR="never")
        self.check(False, tty=True, NO_COLOR="1")
        self.check(False, tty=True, TERM="dumb")

    def test_always_colours_a_pipe(self):
        self.check(True, "--log-color", "always", tty=False)
        self.check(True, tty=False, IRIDIUM_LOG_COLOR="always")

    def test_unknown_value_is_a_usage_error(self):
        r = iridium("--log-color", "rainbow", "run", "examples/hello.iasm")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown log colour 'rainbow' (use auto, always, never)", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
