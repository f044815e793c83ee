"""The remote shell: a node started with -r serves shell sessions over ZeroMQ
to `iridium attach`, interactive or with -c. Sessions are separate, tokens
guard it, and vanished clients, dead ports and garbage bytes do no harm."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

import pexpect

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from iridium_nodes import REPO, clean_env, cpu_seconds, free_port, port_is_free, take_binary, wait_until  # noqa: E402
from iridium_shell import BANNER, PROMPT, ShellTestCase, parse_jobs, parse_registers  # noqa: E402

try:
    import msgpack
    import zmq
except ImportError:  # scripts/setup installs python3-zmq and python3-msgpack
    msgpack = zmq = None

IRIDIUM = take_binary()
TIMEOUT = 30


class RemoteShell(ShellTestCase):
    binary = IRIDIUM

    def attach(self, port, *commands, token=None, env=None, timeout=60, extra=()):
        argv = [IRIDIUM, "attach", f"127.0.0.1:{port}", *extra]
        if token is not None:
            argv += ["--token", token]
        for c in commands:
            argv += ["-c", c]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              cwd=REPO,
                              env=env if env is not None else clean_env())

    def attach_interactive(self, port, *extra):
        child = pexpect.spawn(IRIDIUM, ["attach", f"127.0.0.1:{port}", *extra], cwd=REPO,
                              env=clean_env(TERM="xterm", HOME=self.tmp), encoding="utf-8",
                              timeout=TIMEOUT, dimensions=(24, 200))
        self.track(child)
        child.expect_exact(BANNER + PROMPT)
        return child

    def raw_open(self, context, node):
        """A raw ZeroMQ client that has sent `open`: (socket, the answer)."""
        s = context.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://127.0.0.1:{node.port}")
        s.send(msgpack.packb({"v": 1, "type": "open", "token": ""}))
        self.assertTrue(s.poll(TIMEOUT * 1000), "no answer to open")
        return s, msgpack.unpackb(s.recv())

    def raw_session(self, node):
        """A raw ZeroMQ client with an open session (closed at cleanup)."""
        context = zmq.Context()
        self.addCleanup(context.destroy, linger=0)
        s, opened = self.raw_open(context, node)
        self.addCleanup(s.close, linger=0)
        self.assertEqual(opened["type"], "opened")
        return s, opened

    def leave_with_ctrl_d(self, child):
        """Ends an interactive attach with Ctrl-D: exit status 0."""
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)

    def attach_process(self, port, *commands):
        """`iridium attach -c ...` running in the background."""
        proc = subprocess.Popen([IRIDIUM, "attach", f"127.0.0.1:{port}", *[a for c in commands for a in ("-c", c)]],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=REPO, env=clean_env())
        self.track(proc)
        return proc

    def daemon(self, *args, **kwargs):
        return self.start_node("-r", "--daemon-mode", *args, **kwargs)

    # --- attach -c ----------------------------------------------------------

    def test_attach_commands_to_a_daemon(self):
        node = self.daemon()
        r = self.attach(node.port, "!registers", "load $0 #7", "!registers")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertNotIn("Welcome", r.stdout)  # no banner with -c
        first, second = r.stdout.split("Integer registers:")[1:]
        self.assertEqual(parse_registers("Integer registers:" + first), [0] * 32)
        self.assertEqual(parse_registers("Integer registers:" + second)[0], 7)
        self.assertTrue(node.alive())

    def test_attach_to_a_node_that_also_has_a_local_shell(self):
        # Not --daemon-mode: the local shell reads a pipe, the remote shell
        # serves attach at the same time, and they are separate sessions.
        node = self.start_node("-r", stdin_pipe=True)
        node.pipe.send("load $0 #1")
        r = self.attach(node.port, "load $0 #2", "!registers")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout)[0], 2)
        node.pipe.send("!registers")
        node.pipe.wait_for(r"^equal flag", timeout=TIMEOUT)
        self.assertEqual(parse_registers(node.pipe.text())[0], 1)
        # End of the local input: the node goes on serving remote shells.
        node.pipe.close_stdin()
        r = self.attach(node.port, "load $0 #3", "!registers")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout)[0], 3)
        self.assertTrue(node.alive())
        node.proc.send_signal(signal.SIGTERM)
        self.assertEqual(node.pipe.wait_exit(TIMEOUT), 0)

    def test_a_failing_line_exits_1_and_later_lines_still_run(self):
        node = self.daemon()
        r = self.attach(node.port, "foo", "load $1 #3", "!nope", "!registers")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "")
        self.assertTrue(r.stdout.startswith("<shell>:1:1: error: unknown instruction 'foo'\n"
                                            "unknown command '!nope'; type !help for the list\n"
                                            "Integer registers:\n"), r.stdout)
        self.assertEqual(parse_registers(r.stdout)[1], 3)

    def test_a_runtime_error_exits_1(self):
        node = self.daemon()
        r = self.attach(node.port, "load $1 #0", "div $0 $1 $2", "load $2 #4", "!registers")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.startswith("runtime error: division by zero at code offset 4\n"), r.stdout)
        self.assertEqual(parse_registers(r.stdout)[2], 4)

    def test_quit_ends_the_run_and_the_node_goes_on(self):
        node = self.daemon()
        r = self.attach(node.port, "load $0 #1", "!quit", "load $0 #2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Farewell! Have a great day!\n")
        r = self.attach(node.port, "!history")
        self.assertEqual(r.stdout, "1  !history\n")  # a fresh session

    def test_load_file_without_path_is_a_usage_error_remotely(self):
        node = self.daemon()
        r = self.attach(node.port, "!load_file", "!load_file examples/fib.iasm", "!registers")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.startswith("usage: !load_file PATH\nInteger registers:"), r.stdout)
        self.assertEqual(parse_registers(r.stdout)[0], 610)

    def test_each_attach_run_is_a_fresh_session(self):
        node = self.daemon()
        r = self.attach(node.port, "load $1 #5", "top: nop")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.attach(node.port, "!registers", "!symbols", "!program")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout), [0] * 32)
        self.assertTrue(r.stdout.endswith("(no labels)\n(the program is empty)\n"), r.stdout)

    def test_two_clients_at_once_keep_separate_state(self):
        node = self.daemon()
        a = self.attach_interactive(node.port)
        b = self.attach_interactive(node.port)
        self.assertEqual(self.run_line(a, "load $1 #5"), "")
        self.assertEqual(parse_registers(self.run_line(b, "!registers"))[1], 0)
        self.assertEqual(parse_registers(self.run_line(a, "!registers"))[1], 5)
        self.assertEqual(self.run_line(b, "top: load $1 #9"), "")
        self.assertEqual(self.run_line(a, "!symbols"), "(no labels)\n")
        self.assertEqual(self.run_line(b, "!symbols"), "top  code  0\n")
        self.assertEqual(parse_registers(self.run_line(a, "!registers"))[1], 5)
        self.assertEqual(parse_registers(self.run_line(b, "!registers"))[1], 9)
        self.assertEqual(self.run_line(a, "!history"), "1  load $1 #5\n2  !registers\n3  !symbols\n4  !registers\n5  !history\n")
        for child in (a, b):
            child.sendeof()
            child.expect(pexpect.EOF)
            child.close()
            self.assertEqual(child.exitstatus, 0)
        node.wait_listening()

    def test_interactive_quit(self):
        node = self.daemon()
        a = self.attach_interactive(node.port)
        a.sendline("!quit")
        a.expect_exact("Farewell! Have a great day!\r\n")
        a.expect(pexpect.EOF)
        a.close()
        self.assertEqual(a.exitstatus, 0)

    # --- blocks ----------------------------------------------------------------

    def test_a_block_over_attach_commands(self):
        node = self.daemon()
        with open(os.path.join(REPO, "examples", "fib.iasm")) as f:
            program = f.read().splitlines()
        r = self.attach(node.port, "!block", *program, "!end", "!registers")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout)[0], 610)
        r = self.attach(node.port, "!block", "call @nowhere", "!end")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "<block>:1:6: error: undefined label 'nowhere'\n")

    def test_a_block_in_an_interactive_attach(self):
        node = self.daemon()
        a = self.attach_interactive(node.port)
        a.sendline("!block")
        a.expect_exact("!block\r\n... ")
        for line in ["call @later", "hlt", "later: load $8 #88", "ret"]:
            a.sendline(line)
            a.expect_exact(line + "\r\n... ")
        a.sendline("!end")
        a.expect_exact("!end\r\n" + PROMPT)
        self.assertEqual(parse_registers(self.run_line(a, "!registers"))[8], 88)
        # Tab offers the commands here too.
        a.send("!bl")
        a.expect_exact("!bl")
        a.send("\t")
        a.expect_exact("ock ")  # libedit redraws the word's end
        a.send("\r")
        a.expect_exact("... ")
        a.sendline("!end")
        a.expect_exact("(empty block; nothing ran)\r\n" + PROMPT)
        a.sendline("!quit")
        a.expect(pexpect.EOF)
        a.close()
        self.assertEqual(a.exitstatus, 0)

    # --- !spawn and !jobs ---------------------------------------------------

    def test_spawn_then_poll_jobs_until_halted(self):
        node = self.daemon()
        r = self.attach(node.port, "!spawn examples/hello.iasm")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The reply to !spawn comes first; a notice of the job, if it already
        # finished, comes after it.
        self.assertTrue(r.stdout.startswith("Spawned job 1 (examples/hello.iasm)\n"), r.stdout)
        rest = r.stdout[len("Spawned job 1 (examples/hello.iasm)\n"):]
        self.assertIn(rest, ("", "[job 1] examples/hello.iasm: halted\nHello, Iridium!\n"))

        def halted():
            r = self.attach(node.port, "!jobs")
            self.assertEqual(r.returncode, 0, r.stderr)
            jobs = parse_jobs(r.stdout)
            self.assertEqual(list(jobs), [1], r.stdout)
            self.assertIn(jobs[1]["STATE"], ("queued", "running", "halted"), r.stdout)
            # Spawned by an earlier session: not "you".
            self.assertRegex(jobs[1]["SESSION"], r"^\d+$")
            self.assertEqual(jobs[1]["NAME"], "examples/hello.iasm")
            return jobs[1]["STATE"] == "halted"

        wait_until(halted, TIMEOUT, "job 1 to halt")

    def test_job_notices_come_after_the_spawn_reply(self):
        # Fixed in remote_server.cpp: the notice of a job that finished while
        # its `!spawn` line ran came before "Spawned job N". That depends on
        # timing, so try a few times.
        node = self.daemon()
        for _ in range(5):
            r = self.attach(node.port, *["!spawn examples/hello.iasm"] * 3)
            self.assertEqual(r.returncode, 0, r.stderr)
            ids = re.findall(r"^Spawned job (\d+) \(examples/hello\.iasm\)$", r.stdout, re.M)
            self.assertEqual(len(ids), 3, r.stdout)
            for n in ids:
                notice = r.stdout.find(f"[job {n}] examples/hello.iasm: halted\nHello, Iridium!\n")
                if notice >= 0:
                    self.assertLess(r.stdout.index(f"Spawned job {n} "), notice, r.stdout)

    def test_spawn_notice_in_an_interactive_attach(self):
        node = self.daemon()
        a = self.attach_interactive(node.port)
        out = self.run_line(a, "!spawn examples/hello.iasm")
        self.assertTrue(out.startswith("Spawned job 1 (examples/hello.iasm)\n"), out)
        seen = out

        def noticed():
            nonlocal seen
            if "[job 1]" not in seen:
                seen += self.run_line(a, "nop")
            return "[job 1]" in seen

        wait_until(noticed, TIMEOUT, "the job's notice")
        self.assertIn("[job 1] examples/hello.iasm: halted\nHello, Iridium!\n", seen)
        self.assertEqual(seen.count("[job 1]"), 1, seen)

    def test_kill_a_running_job_only_from_the_session_that_spawned_it(self):
        endless = self.write("endless.iasm", "load $1 #4\ntop: inc $0\njmpb $1\n")
        node = self.daemon()
        a = self.attach_interactive(node.port)
        out = self.run_line(a, f"!spawn {endless}")
        self.assertTrue(out.startswith(f"Spawned job 1 ({endless})\n"), out)
        wait_until(lambda: parse_jobs(self.run_line(a, "!jobs"))[1]["STATE"] == "running", TIMEOUT,
                   "job 1 to run")

        # Another session sees the job running but may not kill it.
        r = self.attach(node.port, "!kill 1", "!jobs")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertTrue(r.stdout.startswith("job 1 belongs to session "), r.stdout)
        self.assertIn("; a remote session can kill only the jobs it spawned\n", r.stdout)
        job = parse_jobs(r.stdout)[1]
        self.assertEqual(job["STATE"], "running")
        self.assertRegex(job["SESSION"], r"^\d+$")

        # Its own session may.
        out = self.run_line(a, "!kill 1")
        self.assertRegex(out, rf"^Killed job 1 \({re.escape(endless)}\) after \d+\.\d{{3}}s; ")
        job = parse_jobs(self.run_line(a, "!jobs"))[1]
        self.assertEqual((job["STATE"], job["SESSION"]), ("cancelled", "you"))
        details = self.run_line(a, "!job 1")
        self.assertTrue(details.startswith(f"job 1: {endless}\nstate    cancelled\nsession  you\n"), details)
        self.assertRegex(details, r"\nInteger registers:\n  \$0 +[1-9]\d*  \$1             4\n")
        self.assertIn("the jobs it spawned", self.attach(node.port, "!kill 1").stdout)
        self.assertEqual(self.run_line(a, "!kill 1"), "job 1 has already been cancelled\n")

    # --- tokens -------------------------------------------------------------

    def test_no_token_off_loopback_refuses_to_start(self):
        node = self.start_node("-r", "--daemon-mode", "-h", "0.0.0.0", wait=False)
        self.assertEqual(node.proc.wait(timeout=TIMEOUT), 2)
        self.assertIn("refusing to serve the remote shell on 0.0.0.0 without a token", node.log())
        self.assertIn("--remote-token", node.log())
        self.assertTrue(port_is_free(node.port, "0.0.0.0"))

    def test_token(self):
        node = self.daemon("-h", "127.0.0.1", "--remote-token", "secret", env=clean_env(IRIDIUM_LOG="debug"))
        node.wait_log(r"info .*remote shell listening on tcp://127\.0\.0\.1:%d$" % node.port)
        for token, env, why in ((None, None, "missing"), ("wrong", None, "wrong"),
                                (None, clean_env(IRIDIUM_REMOTE_TOKEN="nope"), "wrong")):
            with self.subTest(token=token, env=env is not None):
                r = self.attach(node.port, "load $0 #1", token=token, env=env)
                self.assertEqual(r.returncode, 2)
                self.assertEqual(r.stdout, "")
                self.assertEqual(r.stderr, "iridium attach: refused: access denied: wrong or missing token "
                                           "(set --remote-token or IRIDIUM_REMOTE_TOKEN)\n")
                node.wait_log(rf"warning .*remote shell: refused client [0-9a-f]+: {why} token$")
        r = self.attach(node.port, "load $0 #1", "!registers", token="secret")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout)[0], 1)
        r = self.attach(node.port, "load $0 #2", "!registers", env=clean_env(IRIDIUM_REMOTE_TOKEN="secret"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout)[0], 2)
        self.assertEqual(len(re.findall(r"remote shell: refused client", node.log())), 3, node.log())
        node.wait_log(r"remote shell: client [0-9a-f]+ attached")

    def test_token_from_the_environment_on_the_node(self):
        node = self.daemon(env=clean_env(IRIDIUM_REMOTE_TOKEN="s3"))
        self.assertEqual(self.attach(node.port, "nop").returncode, 2)
        self.assertEqual(self.attach(node.port, "nop", token="s3").returncode, 0)

    # --- failures -----------------------------------------------------------

    def test_a_vanished_client_does_not_hurt_the_node(self):
        node = self.daemon()
        a = self.attach_interactive(node.port)
        # ~300M instructions: long enough to kill the client mid-command.
        for line in ("load $0 #100000000", "top: inc $1", "neq $0 $1"):
            self.assertEqual(self.run_line(a, line), "")
        before = cpu_seconds(node.proc.pid)
        a.sendline("djmpe @top")
        a.expect_exact("djmpe @top")
        # The node is busy running the loop once it has burnt some CPU.
        wait_until(lambda: cpu_seconds(node.proc.pid) - before >= 0.15, TIMEOUT, "the node to run the loop")
        self.assertEqual(a.expect_exact([PROMPT, pexpect.TIMEOUT], timeout=0), 1,
                         "the loop ended before the client could be killed")
        os.kill(a.pid, signal.SIGKILL)
        a.expect(pexpect.EOF)
        a.close()
        self.assertEqual(a.signalstatus, signal.SIGKILL)
        # A new client is answered at once: lines run off the socket thread
        # (see test_other_sessions_are_served_during_a_long_line).
        result = None

        def answered():
            nonlocal result
            self.assertTrue(node.alive(), node.log())
            result = self.attach(node.port, "!registers")
            return result.returncode == 0

        wait_until(answered, 250, "the node to answer a new client")
        self.assertEqual(result.stderr, "")
        self.assertEqual(parse_registers(result.stdout), [0] * 32)  # a new session
        self.assertTrue(node.alive())

    def test_other_sessions_are_served_during_a_long_line(self):
        # Was a bug: one thread received every frame and ran every session's
        # lines, so while one client's line ran (up to the shell's 2e9-step
        # limit, ~5 s in a release build) no other client got an answer. Now
        # lines run on executor threads and the socket thread stays free.
        node = self.daemon()
        a = self.attach_interactive(node.port)
        b = self.attach_interactive(node.port)
        self.assertEqual(self.run_line(a, "top: inc $1"), "")
        before = cpu_seconds(node.proc.pid)
        a.sendline("jmpb $0")  # $0 = 0: jumps to itself until the step limit
        a.expect_exact("jmpb $0")
        wait_until(lambda: cpu_seconds(node.proc.pid) - before >= 0.15, TIMEOUT, "the node to run the loop")
        start = time.monotonic()
        r = self.attach(node.port, "nop", timeout=30)
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(elapsed, 2.0)
        # An attached client is answered too, and its state is its own.
        start = time.monotonic()
        self.assertEqual(self.run_line(b, "load $1 #4"), "")
        self.assertEqual(parse_registers(self.run_line(b, "!registers"))[1], 4)
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertEqual(a.expect_exact([PROMPT, pexpect.TIMEOUT], timeout=0), 1,
                         "the long line ended before the other sessions were served")

    @unittest.skipIf(zmq is None, "python3-zmq and python3-msgpack are needed (scripts/setup)")
    def test_vanished_clients_do_not_exhaust_the_slots(self):
        # Was a bug: sessions outlived their connection, so 64 clients that
        # vanished without `close` locked every new client out for 30 minutes
        # ("refused: too many remote sessions"). Now a session of a client
        # that keeps alive (as `iridium attach` does) ends after a grace of
        # silence (10 s), and one of an older client (no pings) gives up its
        # slot to a new client after that grace.
        node = self.daemon(env=clean_env(IRIDIUM_LOG="info"))
        context = zmq.Context()
        self.addCleanup(context.destroy, linger=0)
        answers = []
        for i in range(70):
            s, answer = self.raw_open(context, node)
            answers.append(answer["type"])
            # Half ping once, as `iridium attach` does right after `opened`,
            # and then go silent; half are older clients that never ping.
            if i % 2 == 0:
                s.send(msgpack.packb({"v": 1, "type": "ping"}))
            s.close(linger=100)  # vanish without close (the ping goes first)
        self.assertEqual(answers.count("opened"), 64, answers)
        self.assertEqual(answers.count("refused"), 6, answers)
        start = time.monotonic()
        result = None

        def served():
            nonlocal result
            self.assertTrue(node.alive(), node.log())
            result = self.attach(node.port, "!help")
            if result.returncode == 2:  # full for now: try again
                self.assertIn("too many remote sessions", result.stderr)
                return False
            return True

        wait_until(served, 40, lambda: f"a new client to be served; last: {result.stderr}", interval=0.5)
        self.assertLess(time.monotonic() - start, 30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith("Commands:\n"), result.stdout)
        node.wait_log(r"remote shell: session of client [0-9a-f]+ ended: silent")
        # Every slot comes back, not only one.
        for _ in range(3):
            r = self.attach(node.port, "!help")
            self.assertEqual(r.returncode, 0, r.stderr)

    @unittest.skipIf(zmq is None, "python3-zmq and python3-msgpack are needed (scripts/setup)")
    def test_an_idle_client_that_keeps_alive_keeps_its_session(self):
        node = self.daemon(env=clean_env(IRIDIUM_LOG="info"))
        a = self.attach_interactive(node.port)
        self.assertEqual(self.run_line(a, "load $1 #5"), "")
        self.assertEqual(self.run_line(a, "here: nop"), "")
        # A client that pings once, then goes silent, opened after a's last
        # line: once its session has ended for silence, a has been idle for
        # longer than the grace too.
        s, opened = self.raw_session(node)
        self.assertGreater(opened["keepalive_ms"], 0)
        s.send(msgpack.packb({"v": 1, "type": "ping"}))
        node.wait_log(r"remote shell: session of client [0-9a-f]+ ended: silent", timeout=60)
        s.send(msgpack.packb({"v": 1, "type": "exec", "line": "nop"}))
        self.assertTrue(s.poll(TIMEOUT * 1000), "no answer to exec")
        self.assertEqual(msgpack.unpackb(s.recv())["error"], "no open session: attach again")
        # a pinged all along: its session, registers and labels are there.
        self.assertEqual(parse_registers(self.run_line(a, "!registers"))[1], 5)
        self.assertEqual(self.run_line(a, "!symbols"), "here  code  4\n")
        self.assertEqual(len(re.findall(r"ended: silent", node.log())), 1, node.log())
        self.leave_with_ctrl_d(a)

    @unittest.skipIf(zmq is None, "python3-zmq and python3-msgpack are needed (scripts/setup)")
    def test_lines_sent_back_to_back_run_in_order_and_pings_get_no_answer(self):
        node = self.daemon()
        s, _ = self.raw_session(node)
        lines = [f"load $1 #{n}" for n in range(1, 9)] + ["!registers"]
        for line in lines:
            s.send(msgpack.packb({"v": 1, "type": "ping"}))
            s.send(msgpack.packb({"v": 1, "type": "exec", "line": line}))
        replies = []
        for _ in lines:
            self.assertTrue(s.poll(TIMEOUT * 1000), f"no answer after {replies}")
            replies.append(msgpack.unpackb(s.recv()))
        self.assertEqual([r["type"] for r in replies], ["result"] * len(lines), replies)
        # Had a ping been answered, that answer would be among the replies.
        self.assertEqual(parse_registers(replies[-1]["output"])[1], 8)

    def test_lines_past_the_queue_bound_are_refused_and_the_session_goes_on(self):
        node = self.daemon()
        s, _ = self.raw_session(node)
        s.send(msgpack.packb({"v": 1, "type": "exec", "line": "top: inc $1"}))
        self.assertTrue(s.poll(TIMEOUT * 1000))
        self.assertEqual(msgpack.unpackb(s.recv())["type"], "result")
        before = cpu_seconds(node.proc.pid)
        s.send(msgpack.packb({"v": 1, "type": "exec", "line": "jmpb $0"}))  # runs until interrupted
        wait_until(lambda: cpu_seconds(node.proc.pid) - before >= 0.15, TIMEOUT, "the node to run the loop")
        queued = 16  # the node's max_queued_lines
        for n in range(queued + 3):
            s.send(msgpack.packb({"v": 1, "type": "exec", "line": f"load $2 #{n}"}))
        refusals = []
        for _ in range(3):
            self.assertTrue(s.poll(TIMEOUT * 1000), f"no refusal after {refusals}")
            refusals.append(msgpack.unpackb(s.recv()))
        self.assertEqual([r["type"] for r in refusals], ["refused"] * 3, refusals)
        self.assertEqual(refusals[0]["error"], "too many lines waiting in this session")
        s.send(msgpack.packb({"v": 1, "type": "interrupt"}))
        replies = []
        for _ in range(queued + 1):
            self.assertTrue(s.poll(TIMEOUT * 1000), f"no answer after {len(replies)} replies")
            replies.append(msgpack.unpackb(s.recv()))
        self.assertEqual([r["type"] for r in replies], ["result"] * (queued + 1), replies)
        s.send(msgpack.packb({"v": 1, "type": "exec", "line": "!registers"}))
        self.assertTrue(s.poll(TIMEOUT * 1000))
        self.assertEqual(parse_registers(msgpack.unpackb(s.recv())["output"])[2], queued - 1)

    def test_nothing_listening_gives_no_answer_exit_2(self):
        port = free_port()
        start = time.monotonic()
        r = self.attach(port, "!registers", timeout=30)
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, f"iridium attach: no answer from 127.0.0.1:{port} within 5 s "
                                   "(is a node running there with --enable-remote-access?)\n")
        self.assertLess(elapsed, 10)

    def test_bad_address_exit_2(self):
        r = self.attach_address("no-port-here")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "iridium attach: expected HOST:PORT, got 'no-port-here'\n")
        r = self.attach_address("127.0.0.1:70000")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "iridium attach: bad port '70000' in '127.0.0.1:70000'\n")

    def attach_address(self, address):
        return subprocess.run([IRIDIUM, "attach", address, "-c", "nop"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=30, env=clean_env(), cwd=REPO)

    def test_port_in_use_exit_2(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            node = self.start_node("-r", "--daemon-mode", port=s.getsockname()[1], wait=False)
            self.assertEqual(node.proc.wait(timeout=TIMEOUT), 2)
        self.assertRegex(node.log(), r"cannot listen for remote shells on 127\.0\.0\.1:\d+: ")

    def test_garbage_bytes_on_the_port(self):
        node = self.daemon(env=clean_env(IRIDIUM_LOG="debug"))
        for size in (1, 10, 64, 4096, 100000):
            with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
                try:
                    s.sendall(os.urandom(size))
                except OSError:
                    pass  # the node may hang up on us mid-way: fine
        # A ZeroMQ greeting followed by nonsense.
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
            s.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00NULL" + b"\x00" * 16 + os.urandom(512))
        r = self.attach(node.port, "load $0 #5", "!registers")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout)[0], 5)
        self.assertTrue(node.alive())

    @unittest.skipIf(zmq is None, "python3-zmq and python3-msgpack are needed (scripts/setup)")
    def test_bad_frames_from_a_zeromq_client(self):
        node = self.daemon(env=clean_env(IRIDIUM_LOG="debug"))
        context = zmq.Context()
        self.addCleanup(context.destroy, linger=0)
        s = context.socket(zmq.DEALER)
        self.addCleanup(s.close, linger=0)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://127.0.0.1:{node.port}")

        def ask(*frames):
            s.send_multipart(list(frames))
            self.assertTrue(s.poll(TIMEOUT * 1000), "no answer")
            return msgpack.unpackb(s.recv())

        for payload in (os.urandom(100), b"", msgpack.packb([1, 2]), msgpack.packb({"v": 1})):
            reply = ask(payload)
            self.assertEqual(reply["type"], "refused")
            self.assertTrue(reply["error"].startswith("bad request: "), reply)
        reply = ask(msgpack.packb({"v": 2, "type": "open", "token": ""}))
        self.assertEqual(reply["error"], "bad request: unsupported protocol version 2 (this node speaks 1)")
        reply = ask(msgpack.packb({"v": 1, "type": "exec", "line": "nop"}))
        self.assertEqual(reply, {"v": 1, "type": "refused", "error": "no open session: attach again"})
        reply = ask(msgpack.packb({"v": 1, "type": "exec", "line": 5}))
        self.assertEqual(reply["error"], 'bad request: exec frame without a string "line"')
        s.send_multipart([b"two", b"frames"])  # dropped with a warning, no answer
        node.wait_log(r"remote shell: dropped a message of 2 frames")
        # The same socket can still open a session and use it.
        reply = ask(msgpack.packb({"v": 1, "type": "open", "token": ""}))
        self.assertEqual(reply["type"], "opened")
        self.assertTrue(reply["banner"].startswith("Welcome to Iridium!"))
        reply = ask(msgpack.packb({"v": 1, "type": "exec", "line": "load $0 #3"}))
        self.assertEqual(reply, {"v": 1, "type": "result", "ok": True, "output": "", "quit": False, "ask": ""})
        reply = ask(msgpack.packb({"v": 1, "type": "exec", "line": "!bad"}))
        self.assertEqual(reply["ok"], False)
        self.assertEqual(reply["output"], "unknown command '!bad'; type !help for the list\n")
        s.send(msgpack.packb({"v": 1, "type": "close"}))
        node.wait_log(r"remote shell: client [0-9a-f]+ detached")
        r = self.attach(node.port, "!registers")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(node.alive())

    # --- Ctrl-C in attach: the interrupt frame (issue 9) --------------------

    LOOP = ("load $1 #4", "top: inc $0", "jmpb $1")  # jmpb $1: back to inc $0, for ever

    def wait_for_the_loop(self, node, before):
        wait_until(lambda: cpu_seconds(node.proc.pid) - before >= 0.15, TIMEOUT,
                   "the node to run the loop")

    def attach_running_the_loop(self, node):
        """An interactive attach whose last line, LOOP's endless loop, is
        running on the node (its CPU time is seen to grow)."""
        a = self.attach_interactive(node.port)
        for line in self.LOOP[:2]:
            self.assertEqual(self.run_line(a, line), "")
        before = cpu_seconds(node.proc.pid)
        a.sendline(self.LOOP[2])
        a.expect_exact(self.LOOP[2] + "\r\n")
        self.wait_for_the_loop(node, before)
        return a

    def test_sigint_to_attach_c_interrupts_the_remote_line(self):
        node = self.daemon(env=clean_env(IRIDIUM_LOG="debug"))
        before = cpu_seconds(node.proc.pid)
        proc = self.attach_process(node.port, *self.LOOP, "!registers")
        self.wait_for_the_loop(node, before)
        self.assertIsNone(proc.poll(), "attach ended before the line was interrupted")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        self.assertLess(time.monotonic() - started, 5)  # a slice, not the 2e9-step limit
        self.assertEqual(proc.returncode, 130, err)
        self.assertEqual(err, "")
        self.assertRegex(out, r"^interrupted at code offset \d+; registers are as the program left them "
                              r"\(!registers\)\n$")  # and the lines after it did not run
        node.wait_log(r"remote shell: client [0-9a-f]+ interrupted its line")
        # The node serves on: a new session runs a line.
        r = self.attach(node.port, "load $0 #7", "!registers")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout)[0], 7)
        self.assertTrue(node.alive())

    def test_ctrl_c_in_interactive_attach_interrupts_the_line(self):
        node = self.daemon()
        a = self.attach_running_the_loop(node)
        started = time.monotonic()
        a.sendintr()
        a.expect_exact("interrupted at code offset ")
        a.expect_exact(PROMPT)
        self.assertLess(time.monotonic() - started, 10)
        regs = parse_registers(self.run_line(a, "!registers"))
        self.assertEqual(regs[1], 4)  # as the program left it
        self.assertGreater(regs[0], 1)  # the loop ran
        # The same session goes on.
        self.assertEqual(self.run_line(a, "load $5 #7"), "")
        after = parse_registers(self.run_line(a, "!registers"))
        self.assertEqual((after[0], after[1], after[5]), (regs[0], 4, 7))
        a.sendline("!quit")
        a.expect(pexpect.EOF)
        a.close()
        self.assertEqual(a.exitstatus, 0)

    def test_ctrl_c_at_the_attach_prompt_clears_the_line(self):
        node = self.daemon()
        a = self.attach_interactive(node.port)
        for _ in range(2):  # twice: Ctrl-C never ends the client
            a.send("load $0 #99")
            a.expect_exact("load $0 #99")  # echoed, so libedit has it
            a.sendintr()
            a.expect_exact("^C\r\n" + PROMPT)
        self.assertTrue(a.isalive())
        self.assertEqual(parse_registers(self.run_line(a, "!registers"))[0], 0)  # never ran
        self.assertEqual(self.run_line(a, "!history"), "1  !registers\n2  !history\n")
        self.leave_with_ctrl_d(a)

    def fake_node(self):
        """A ZeroMQ ROUTER standing in for a node: (port, receive(), answer(peer, frame))."""
        context = zmq.Context()
        self.addCleanup(context.destroy, linger=0)
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        self.addCleanup(router.close, linger=0)
        port = router.bind_to_random_port("tcp://127.0.0.1")

        def receive():
            self.assertTrue(router.poll(TIMEOUT * 1000), "no frame from attach")
            peer, body = router.recv_multipart()
            return peer, msgpack.unpackb(body)

        def answer(peer, frame):
            router.send_multipart([peer, msgpack.packb({"v": 1, **frame})])

        return port, receive, answer

    @unittest.skipIf(zmq is None, "python3-zmq and python3-msgpack are needed (scripts/setup)")
    def test_a_second_ctrl_c_stops_attach_c_waiting(self):
        # A node that never answers the line: the first SIGINT sends
        # `interrupt`, the second gives up at once with 130.
        port, receive, answer = self.fake_node()
        proc = self.attach_process(port, "jmpb $0", "nop")
        peer, frame = receive()
        answer(peer, {"type": "opened", "banner": "", "keepalive_ms": 60000})
        self.assertEqual(receive()[1]["type"], "ping")
        self.assertEqual(receive()[1], {"v": 1, "type": "exec", "line": "jmpb $0"})
        proc.send_signal(signal.SIGINT)
        self.assertEqual(receive()[1], {"v": 1, "type": "interrupt"})
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 130, err)
        self.assertEqual((out, err), ("", "interrupted\n"))  # and "nop" did not run

    @unittest.skipIf(zmq is None, "python3-zmq and python3-msgpack are needed (scripts/setup)")
    def test_attach_to_a_node_older_than_interrupt(self):
        # A fake node that speaks the protocol as it was before `interrupt`:
        # it refuses the unknown type (as decode_request does) and the line
        # runs on to its own end. The client says so and prints the result.
        port, receive, answer = self.fake_node()
        proc = self.attach_process(port, "jmpb $0")
        peer, frame = receive()
        self.assertEqual(frame["type"], "open")
        answer(peer, {"type": "opened", "banner": "old node\n"})  # no keepalive_ms: no pings
        peer, frame = receive()
        self.assertEqual(frame, {"v": 1, "type": "exec", "line": "jmpb $0"})
        proc.send_signal(signal.SIGINT)
        peer, frame = receive()
        self.assertEqual(frame, {"v": 1, "type": "interrupt"})
        answer(peer, {"type": "refused", "error": "bad request: unknown request type 'interrupt'"})
        answer(peer, {"type": "result", "ok": False, "output": "runtime error: step limit\n",
                      "quit": False, "ask": ""})
        out, err = proc.communicate(timeout=TIMEOUT)
        self.assertEqual(out, "runtime error: step limit\n")
        self.assertIn("cannot interrupt a line (it is older than the interrupt message)", err)
        self.assertEqual(proc.returncode, 130)

    @unittest.skipIf(zmq is None, "python3-zmq and python3-msgpack are needed (scripts/setup)")
    def test_unknown_and_stray_frames_leave_the_session_open(self):
        # What an older node does with `interrupt` is what this one does with
        # any type it does not know: refuse it and change nothing. And an
        # `interrupt` with no line running gets no answer and stops nothing later.
        node = self.daemon()
        s, _ = self.raw_session(node)

        def ask(frame):
            s.send(msgpack.packb({"v": 1, **frame}))
            self.assertTrue(s.poll(TIMEOUT * 1000), "no answer")
            return msgpack.unpackb(s.recv())

        self.assertEqual(ask({"type": "exec", "line": "load $0 #6"})["ok"], True)
        self.assertEqual(ask({"type": "frobnicate"}),
                         {"v": 1, "type": "refused", "error": "bad request: unknown request type 'frobnicate'"})
        # Idle: no answer (ask() below would get it instead of its result), no effect.
        s.send(msgpack.packb({"v": 1, "type": "interrupt"}))
        self.assertEqual(ask({"type": "exec", "line": "load $1 #2"})["ok"], True)  # not interrupted
        reply = ask({"type": "exec", "line": "!registers"})
        self.assertEqual(parse_registers(reply["output"])[:2], [6, 2])  # the same session

    def test_sigterm_stops_a_daemon_with_exit_0(self):
        node = self.daemon(env=clean_env(IRIDIUM_LOG="debug"))
        node.proc.send_signal(signal.SIGTERM)
        self.assertEqual(node.proc.wait(timeout=TIMEOUT), 0)
        self.assertIn("received SIGTERM, shutting down", node.log())
        wait_until(lambda: port_is_free(node.port), 10, "the port to be released")

    def test_sigterm_interrupts_running_remote_lines(self):
        # The stopping server interrupts the lines still running instead of
        # waiting for their step limit, here one that would take hours.
        node = self.daemon("--max-steps", str(10**13), env=clean_env(IRIDIUM_LOG="debug"))
        a = self.attach_running_the_loop(node)
        node.proc.send_signal(signal.SIGTERM)
        self.assertEqual(node.proc.wait(timeout=TIMEOUT), 0)
        self.assertIn("received SIGTERM, shutting down", node.log())

    def test_sigint_never_stops_a_daemon(self):
        # Ctrl-C never ends a node (issue 9): a daemon logs it and keeps
        # serving; SIGTERM stops it.
        node = self.daemon(env=clean_env(IRIDIUM_LOG="info"))
        for _ in range(2):
            node.proc.send_signal(signal.SIGINT)
        node.wait_log(r"received SIGINT; ignored \(SIGTERM stops the node\)")
        r = self.attach(node.port, "load $0 #7", "!registers")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(parse_registers(r.stdout)[0], 7)
        self.assertTrue(node.alive())
        node.proc.send_signal(signal.SIGTERM)
        self.assertEqual(node.proc.wait(timeout=TIMEOUT), 0)
        self.assertNotIn("received SIGINT, shutting down", node.log())

if __name__ == "__main__":
    unittest.main(verbosity=2)
