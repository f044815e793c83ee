"""The local shell on a real pseudo-terminal (pexpect): banner, prompt, line
editing and history through libedit, the history file in the data directory,
the question for a missing !load_file path, job notices, Tab completion and
pasted tabs, blocks (!block ... !end) typed at the `... ` prompt, and the keys:
Ctrl-C (interrupts a line, clears the input line, never ends a node), Ctrl-D
and SIGTERM; and Ctrl-C cancelling a !run_all."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import pexpect
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from iridium_nodes import (REPO, clean_env, cpu_seconds, free_port, kill_process, port_accepts, port_is_free,  # noqa: E402
                           take_binary, wait_until)  # noqa: E402
from iridium_shell import BANNER, PROMPT, ShellTestCase, parse_jobs, parse_registers, shell_args  # noqa: E402

IRIDIUM = take_binary()

UP = "\x1b[A"
TIMEOUT = 30


def curve_dealer(port):
    """A ZeroMQ DEALER with a CURVE key of its own dialling 127.0.0.1:port
    (and redialling, as a node of another suite would): a plain node refuses
    its handshake."""
    context = zmq.Context.instance()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.curve_publickey, dealer.curve_secretkey = zmq.curve_keypair()
    dealer.curve_serverkey = zmq.curve_keypair()[0]
    dealer.connect(f"tcp://127.0.0.1:{port}")
    return dealer


def read_all(fd, into):
    """Appends what fd gives to the bytearray `into` until end of file."""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        into += chunk


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

    def hang_up_while_serving(self, stall_log=False):
        """Starts a node on a pseudo-terminal, serving a cluster, and closes
        the terminal's other end (an ssh session or terminal window that went
        away) once its cluster listener accepts connections. The node has no
        controlling terminal here, so no SIGHUP comes: only the hang-up on
        stdin tells. It must stop reading and keep serving, not poll a dead
        terminal in a busy loop; and say so. Returns its log (stderr).

        stall_log: the node's stderr is a pipe that is full until the
        terminal has hung up, and a node of another suite (a DEALER with a
        CURVE key) keeps dialling the cluster port, as in a ctest -j run:
        the node's first log lines, its warning about that dialler and its
        "Started the cluster listener", wait for the pipe, so the terminal
        hangs up before the node has set up its console."""
        master, slave = os.openpty()
        data = tempfile.mkdtemp(dir=self.tmp)
        port = free_port()
        stderr, reader, stuffed = subprocess.PIPE, None, 0
        if stall_log:
            reader, stderr = os.pipe()
            os.set_blocking(stderr, False)
            try:
                while True:
                    stuffed += os.write(stderr, b"#" * 4096)
            except BlockingIOError:
                pass
            os.set_blocking(stderr, True)
        proc = subprocess.Popen([IRIDIUM, *shell_args(data, port), "--start-cluster", "--log-level", "info"],
                                stdin=slave, stdout=slave, stderr=stderr, cwd=REPO,
                                env=clean_env(TERM="xterm", HOME=self.tmp), start_new_session=True)
        os.close(slave)
        self.addCleanup(kill_process, proc)
        log = bytearray()
        if stall_log:
            os.close(stderr)
            self.addCleanup(os.close, reader)
            stranger = curve_dealer(port)
            self.addCleanup(stranger.close, 0)
        wait_until(lambda: port_accepts(port), 15, "the cluster listener")
        os.close(master)
        if stall_log:
            # The node waits on its log; read it from now on.
            pump = threading.Thread(target=lambda: read_all(reader, log), daemon=True)
            pump.start()
        busy_before = cpu_seconds(proc.pid)
        # Polled for a fixed window: a spinning loop burns about one core.
        window = time.monotonic() + 2.0
        wait_until(lambda: time.monotonic() >= window or proc.poll() is not None, 5, "the window")
        self.assertIsNone(proc.poll(), "a serving node outlives its terminal")
        self.assertLess(cpu_seconds(proc.pid) - busy_before, 0.5)
        self.assertTrue(port_accepts(port))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=15), 0)
        if stall_log:
            pump.join(10)
            self.assertEqual(bytes(log[:stuffed]), b"#" * stuffed)
            return bytes(log[stuffed:]).decode()
        with proc.stderr:
            return proc.stderr.read().decode()

    def test_a_terminal_that_hangs_up_ends_reading_without_spinning(self):
        log = self.hang_up_while_serving()
        self.assertIn("the terminal hung up; the node keeps serving", log)

    def test_a_terminal_that_hangs_up_before_the_console_is_set_up(self):
        # The node looked at its stdin (a terminal) when it started; the
        # terminal hanging up before its console exists does not turn it into
        # a pipe that ended (which ends reading without a word).
        log = self.hang_up_while_serving(stall_log=True)
        self.assertIn("the terminal hung up; the node keeps serving", log)
        # The stranger dialled, and was refused: a plain listener sees a key
        # holder either as a mismatch or hanging up, whichever side read the
        # other's greeting first.
        self.assertRegex(log, r"it runs with a cluster key \(CURVE\) and this node has none"
                              r"|a node with a cluster key \(CURVE\) hangs up this way on a node without one")

    def test_non_ascii_text_typed_at_the_terminal_is_kept(self):
        # The node starts in the "C" locale (clean_env sets no LANG), where
        # libedit used to drop every non-ASCII character: 'h\u00e9llo' became 'hllo'.
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        self.run_line(child, "msg: .asciiz 'h\u00e9llo \u2713 \u65e5\u672c'")
        self.assertIn("h\u00e9llo \u2713 \u65e5\u672c", self.run_line(child, "prts @msg"))
        self.end_with_ctrl_d(child)

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
        job = parse_jobs(self.run_line(child, "!jobs"))[1]
        self.assertEqual((job["STATE"], job["SESSION"], job["NAME"]), ("halted", "you", "examples/hello.iasm"))
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

    # --- Ctrl-C, Ctrl-D and SIGTERM (issue 9) --------------------------------

    def start_loop(self, child):
        """Starts a line that runs for 10^10 steps unless stopped: $1 = 4,
        then inc $0 / jmpb $1 for ever. Returns once the terminal echoed the
        Enter that started it."""
        self.run_line(child, "load $1 #4")
        self.run_line(child, "top: inc $0")
        child.sendline("jmpb $1")
        child.expect_exact("jmpb $1\r\n")

    def test_ctrl_c_interrupts_a_running_line(self):
        # --max-steps unset: the shell's own limit (2,000,000,000 steps) would
        # stop the line after seconds; Ctrl-C stops it at the next slice.
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        self.start_loop(child)
        started = time.monotonic()
        child.sendintr()
        child.expect_exact("interrupted at code offset ")
        child.expect_exact(PROMPT)
        self.assertLess(time.monotonic() - started, 10)
        regs = self.registers(child)
        self.assertEqual(regs[1], 4)  # as the program left it
        self.assertGreater(regs[0], 1)  # the loop ran
        # The shell answers the next line; the registers carry on from there.
        self.assertEqual(self.run_line(child, "load $5 #7"), "")
        after = self.registers(child)
        self.assertEqual((after[0], after[1], after[5]), (regs[0], 4, 7))
        self.end_with_ctrl_d(child)

    def test_ctrl_c_cancels_a_remote_run(self):
        # !run_all runs on this node too (the only member here); Ctrl-C on
        # the console cancels the run as it would on another node (issue 12).
        loop = self.write("forever.iasm", "load $1 #4\ntop: inc $0\njmpb $1\n")
        child, _ = self.spawn("--node-alias", "solo", "--start-cluster")
        child.expect_exact(PROMPT)
        child.sendline(f"!run_all {loop}")
        child.expect_exact(f"!run_all {loop}\r\n")
        wait_until(lambda: cpu_seconds(child.pid) >= 0.3, TIMEOUT, "the run to use the CPU")
        started = time.monotonic()
        child.sendintr()
        child.expect(r"\[solo\] cancelled \(job 1, ")
        child.expect_exact("0 ok, 1 failed")
        child.expect_exact(PROMPT)
        self.assertLess(time.monotonic() - started, 10)
        self.assertRegex(self.run_line(child, "!jobs"), r"1  cancelled +\S+  @solo ")
        child.sendline("!quit")  # a node serving its cluster stays on Ctrl-D
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)

    def test_ctrl_c_clears_a_half_typed_line(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        child.send("load $0 #99")
        child.expect_exact("load $0 #99")  # echoed, so libedit has it
        child.sendintr()
        child.expect_exact("^C\r\n" + PROMPT)
        self.assertEqual(self.registers(child)[0], 0)  # the typed line never ran
        history = self.run_line(child, "!history")
        self.assertEqual(history, "1  !registers\n2  !history\n")
        self.end_with_ctrl_d(child)

    def test_ctrl_c_twice_at_an_empty_prompt_does_not_exit(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        for _ in range(2):
            child.sendintr()
            child.expect_exact("^C\r\n" + PROMPT)
        self.assertTrue(child.isalive())
        self.assertEqual(self.run_line(child, "load $0 #3"), "")
        self.assertEqual(self.registers(child)[0], 3)
        self.end_with_ctrl_d(child)

    def test_ctrl_c_cancels_a_question(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        child.sendline("!load_file")
        child.expect_exact("Path to the file to load: ")
        child.sendintr()
        child.expect_exact("^C\r\ncancelled: no path given\r\n" + PROMPT)
        self.assertEqual(self.run_line(child, "load $0 #4"), "")
        self.assertEqual(self.registers(child)[0], 4)
        self.end_with_ctrl_d(child)

    # --- Tab completion ----------------------------------------------------

    def complete(self, child, typed, completed):
        """Types `typed` and a Tab; the word typed must then read `completed`."""
        child.send(typed)
        child.expect_exact(typed)
        child.send("\t")
        child.expect_exact(completed[len(typed):])

    def test_tab_completes_a_command(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        self.complete(child, "!reg", "!registers ")
        child.send("\r")
        child.expect_exact("Integer registers:")
        child.expect_exact(PROMPT)
        # Several candidates: the common part, then the list on a second Tab.
        self.complete(child, "!cl", "!cl")
        child.send("\t")
        child.expect(r"!clear_program\s+!clear_registers\s+!cluster_keys\s+!cluster_members")
        child.expect_exact(PROMPT + "!cl")
        child.sendintr()
        child.expect_exact("^C\r\n" + PROMPT)
        self.end_with_ctrl_d(child)

    def test_tab_completes_a_mnemonic(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        self.complete(child, "in", "inc ")
        child.send("$4\r")
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[4], 1)
        self.end_with_ctrl_d(child)

    def test_tab_completes_a_label(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        self.run_line(child, "load $0 #0")
        self.run_line(child, "middle: load $5 #1")  # at code offset 4
        self.complete(child, "load $6 @mi", "load $6 @middle ")
        child.send("\r")
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[6], 4)
        self.end_with_ctrl_d(child)

    def test_tab_completes_a_path(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        os.mkdir(os.path.join(self.tmp, "programs"))
        with open(os.path.join(self.tmp, "programs", "seven.iasm"), "w") as f:
            f.write("load $7 #77\n")
        # A directory first (no space after its '/'), then the file in it.
        self.complete(child, f"!load_file {self.tmp}/prog", f"!load_file {self.tmp}/programs/")
        self.complete(child, "se", "seven.iasm ")
        child.send("\r")
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[7], 77)
        self.end_with_ctrl_d(child)

    def test_a_pasted_tab_is_whitespace_not_completion(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        # One write, as a terminal delivers a paste: tabs with more behind them.
        child.send("load\t$3\t#33\r")
        child.expect_exact("load $3 #33")
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[3], 33)
        self.end_with_ctrl_d(child)

    # --- blocks ---------------------------------------------------------------

    def test_a_block_typed_at_the_terminal(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        child.sendline("!block")
        child.expect_exact("!block\r\n... ")
        for line in ["call @later", "hlt", "later: load $8 #88", "ret"]:
            child.sendline(line)
            child.expect_exact(line + "\r\n... ")
        child.sendline("!end")
        child.expect_exact("!end\r\n" + PROMPT)
        self.assertEqual(self.registers(child)[8], 88)
        # Ctrl-C drops a block; Ctrl-D ends one and runs it.
        child.sendline("!block")
        child.expect_exact("... ")
        child.sendline("load $8 #1")
        child.expect_exact("load $8 #1\r\n... ")
        child.sendintr()
        child.expect_exact("^C\r\nblock dropped (1 line); the program is unchanged\r\n" + PROMPT)
        self.assertEqual(self.registers(child)[8], 88)
        child.sendline("!block")
        child.expect_exact("... ")
        child.sendline("load $9 #99")
        child.expect_exact("load $9 #99\r\n... ")
        child.sendeof()
        child.expect_exact(PROMPT)
        self.assertTrue(child.isalive())
        self.assertEqual(self.registers(child)[8:10], [88, 99])
        self.end_with_ctrl_d(child)

    def test_a_pasted_program_in_a_block(self):
        child, _ = self.spawn()
        child.expect_exact(PROMPT)
        with open(os.path.join(REPO, "examples", "fib.iasm")) as f:
            program = f.read()
        child.send("!block\r" + program.replace("\n", "\r") + "!end\r")
        child.expect_exact("!end\r\n" + PROMPT)
        self.assertEqual(self.registers(child)[0], 610)
        self.end_with_ctrl_d(child)

    def cluster_node(self):
        port = free_port()
        child, _ = self.spawn("--start-cluster", "--log-level", "info", cluster_port=port)
        child.expect(r"Started the cluster listener on 127\.0\.0\.1:(\d+)")
        self.assertEqual(int(child.match.group(1)), port)
        child.expect_exact(PROMPT)
        self.assertTrue(port_accepts(port))
        self.assertEqual(self.run_line(child, "load $0 #1"), "")
        return child, port

    def stop_with_sigterm(self, child, port):
        child.kill(signal.SIGTERM)
        child.expect_exact("received SIGTERM, shutting down")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertIsNone(child.signalstatus)
        wait_until(lambda: port_is_free(port), 10, f"cluster port {port} to be released")

    def test_sigterm_shuts_down_a_node_with_a_cluster(self):
        child, port = self.cluster_node()
        self.stop_with_sigterm(child, port)

    def test_ctrl_c_never_ends_a_node_with_a_cluster(self):
        # Typed (the terminal's ^C) and sent to the process (as a container's
        # PID 1 gets it through `docker attach`): the same path.
        child, port = self.cluster_node()
        for deliver in (lambda: child.sendintr(), lambda: child.kill(signal.SIGINT)):
            deliver()
            child.expect_exact("^C\r\n" + PROMPT)
        self.assertTrue(child.isalive())
        self.assertTrue(port_accepts(port))
        self.assertEqual(self.registers(child)[0], 1)
        self.stop_with_sigterm(child, port)

    def test_ctrl_c_interrupts_a_running_line_in_a_node_with_a_cluster(self):
        child, port = self.cluster_node()
        self.start_loop(child)
        child.sendintr()
        child.expect_exact("interrupted at code offset ")
        child.expect_exact(PROMPT)
        self.assertEqual(self.registers(child)[1], 4)
        self.stop_with_sigterm(child, port)

    def test_ctrl_d_in_a_node_with_a_cluster_says_how_to_stop_it(self):
        child, port = self.cluster_node()
        for _ in range(2):  # a terminal can be read again after Ctrl-D
            child.sendeof()
            child.expect_exact("This node keeps serving its cluster, so Ctrl-D does not stop it. "
                               "Stop it with !quit, or with SIGTERM (docker stop).\r\n" + PROMPT)
            self.assertEqual(self.run_line(child, "inc $0"), "")
        self.assertEqual(self.registers(child)[0], 3)
        self.assertTrue(port_accepts(port))
        child.sendline("!quit")
        child.expect_exact("Farewell! Have a great day!\r\n")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        wait_until(lambda: port_is_free(port), 10, f"cluster port {port} to be released")

if __name__ == "__main__":
    unittest.main(verbosity=2)
