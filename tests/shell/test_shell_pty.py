"""The local shell on a real pseudo-terminal (pexpect): banner, prompt, line
editing and history through libedit, the history file in the data directory,
the question for a missing !load_file path, job notices, Ctrl-D and SIGINT."""
import os
import re
import signal
import sys
import tempfile
import unittest

import pexpect

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from iridium_nodes import REPO, clean_env, free_port, port_accepts, port_is_free, take_binary, wait_until  # noqa: E402
from iridium_shell import BANNER, PROMPT, ShellTestCase, parse_registers, shell_args  # noqa: E402

IRIDIUM = take_binary()

UP = "\x1b[A"
TIMEOUT = 30


def read_history_file(path):
    """Entries of a libedit history file (first line is its cookie)."""
    with open(path) as f:
        lines = f.read().splitlines()
    if lines and lines[0] == "_HiStOrY_V2_":
        lines = lines[1:]
    return [re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), l) for l in lines]


class PtyShell(ShellTestCase):
    binary = IRIDIUM

    def spawn(self, *args, data=None, cluster_port=None):
        data = data or tempfile.mkdtemp(dir=self.tmp)
        # A known terminal type; HOME in the test dir so no ~/.editrc applies.
        env = clean_env(TERM="xterm", HOME=self.tmp)
        argv = [*shell_args(data, cluster_port), *args]
        child = pexpect.spawn(IRIDIUM, argv, cwd=REPO, env=env,
                              encoding="utf-8", timeout=TIMEOUT, dimensions=(24, 200))
        self.track(child)
        return child, data

    def registers(self, child):
        return parse_registers(self.run_line(child, "!registers"))

    def end_with_ctrl_d(self, child):
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertIsNone(child.signalstatus)

    def test_banner_prompt_and_commands(self):
        child, _ = self.spawn()
        child.expect_exact(BANNER + PROMPT)
        self.assertEqual(child.before, "")
        self.assertEqual(self.run_line(child, "load $0 #42"), "")
        regs = self.registers(child)
        self.assertEqual(regs[0], 42)
        # Errors are shown on the terminal, and the shell carries on.
        self.assertEqual(self.run_line(child, "!nope"), "unknown command '!nope'; type !help for the list\n")
        self.assertEqual(self.run_line(child, "load $1"),
                         "<shell>:1:1: error: LOAD takes 2 operands, got 1; expected: load $REG #IMM|@LABEL\n")
        self.assertEqual(self.run_line(child, "inc $0"), "")
        self.assertEqual(self.registers(child)[0], 43)
        self.end_with_ctrl_d(child)

    def test_up_arrow_recalls_the_previous_line(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        self.run_line(child, "load $0 #5")
        self.run_line(child, "inc $0")
        child.send(UP)
        child.expect_exact("inc $0")  # redrawn on the input line
        child.send("\r")
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[0], 7)
        history = self.run_line(child, "!history")
        self.assertEqual(history, "1  load $0 #5\n2  inc $0\n3  inc $0\n4  !registers\n5  !history\n")
        self.end_with_ctrl_d(child)

    def test_history_file_persists_between_runs(self):
        child, data = self.spawn()
        child.expect_exact(PROMPT)
        for n in (11, 22, 33):
            self.run_line(child, f"load $0 #{n}")
        self.end_with_ctrl_d(child)
        history_file = os.path.join(data, "history")
        # Each line once: libedit's append_history(1) wrote two entries per
        # line (fixed in console.cpp).
        self.assertEqual(read_history_file(history_file), ["load $0 #11", "load $0 #22", "load $0 #33"])

        child, _ = self.spawn(data=data)
        child.expect_exact(PROMPT)
        # Back to the first line of the first run. (libedit redraws only the
        # part of the line that changes, so check what Enter then runs.)
        child.send(UP * 3)
        child.send("\r")
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[0], 11)
        self.end_with_ctrl_d(child)
        self.assertEqual(read_history_file(history_file),
                         ["load $0 #11", "load $0 #22", "load $0 #33", "load $0 #11", "!registers"])

    def test_load_file_asks_for_the_path(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        child.sendline("!load_file")
        child.expect_exact("Path to the file to load: ")
        child.sendline("examples/fib.iasm")
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[0], 610)
        # An empty answer cancels; the prompt comes back.
        child.sendline("!load_file")
        child.expect_exact("Path to the file to load: ")
        child.sendline("")
        child.expect_exact("cancelled: no path given\r\n" + PROMPT)
        # A path with spaces needs no quoting when it is the answer.
        path = self.write("with space.iasm", "load $2 #2\n")
        child.sendline("!load_file")
        child.expect_exact("Path to the file to load: ")
        child.sendline(path)
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[2], 2)
        self.end_with_ctrl_d(child)

    def test_ctrl_d_exits_0(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertNotIn(PROMPT, child.before)  # no dangling prompt after ^D

    def test_quit_exits_0(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        child.sendline("!quit")
        child.expect_exact("Farewell! Have a great day!\r\n")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)

    def test_spawned_job_notice_is_not_garbled(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        child.sendline("!spawn examples/hello.iasm")
        child.expect_exact("Spawned job 1 (examples/hello.iasm)\r\n")
        seen = ""
        notice = "[job 1] examples/hello.iasm: halted\r\nHello, Iridium!\r\n"

        def shown():
            nonlocal seen
            child.expect_exact(PROMPT)
            seen += child.before + child.after
            if notice in seen:
                return True
            child.send("\r")  # the notice comes with the next line's output
            return False

        wait_until(shown, TIMEOUT, "the job's notice")
        # On lines of its own, right before a fresh prompt, shown once.
        self.assertRegex(seen, r"(^|\n)" + re.escape(notice + PROMPT) + "$")
        self.assertEqual(seen.count("[job 1]"), 1, seen)
        self.assertEqual(self.run_line(child, "!jobs"), "1  halted  examples/hello.iasm\n")
        self.end_with_ctrl_d(child)

    def test_spawn_asks_for_the_path(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        child.sendline("!spawn")
        child.expect_exact("Path to the file to spawn: ")
        child.sendline("examples/hello.iasm")
        child.expect_exact("Spawned job 1 (examples/hello.iasm)\r\n")
        child.expect_exact(PROMPT)
        self.end_with_ctrl_d(child)

    def sigint_node(self, deliver):
        port = free_port()
        child, _ = self.spawn("--start-cluster", "--log-level", "info", cluster_port=port)
        child.expect(r"Started the cluster listener on 127\.0\.0\.1:(\d+)")
        self.assertEqual(int(child.match.group(1)), port)
        child.expect_exact(PROMPT)
        self.assertTrue(port_accepts(port))
        self.assertEqual(self.run_line(child, "load $0 #1"), "")
        deliver(child)
        child.expect_exact("received SIGINT, shutting down")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertIsNone(child.signalstatus)
        wait_until(lambda: port_is_free(port), 10, f"cluster port {port} to be released")

    def test_sigint_shuts_down_a_node_with_a_cluster(self):
        self.sigint_node(lambda child: child.kill(signal.SIGINT))

    def test_ctrl_c_typed_shuts_down_a_node_with_a_cluster(self):
        self.sigint_node(lambda child: child.sendintr())


if __name__ == "__main__":
    unittest.main(verbosity=2)
