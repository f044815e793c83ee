"""End-to-end membership tests against real containers (compose.yaml).

Drives scripts/cluster and docker the way a user would. The tests share one
cluster and run in order (test_01 ... test_23); the cluster is always torn
down, and on failure every container's logs are saved under build/e2e-logs/.
The compose project is IRIDIUM_PROJECT (default iridium), as for
scripts/cluster: a second run on the same Docker sets its own. The image is
IRIDIUM_IMAGE (default iridium:local). The cluster key goes to
IRIDIUM_KEY_DIR when set, else to a temp directory removed at the end (so a
run never replaces the key of a cluster of yours).
"""
import concurrent.futures
import hashlib
import json
import os
import stat
import tempfile
import re
import shutil
import subprocess
import sys
import time
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "harness"))
from iridium_nodes import parse_snapshot, wait_until  # noqa: E402  (one polling helper for every suite)
CLUSTER = os.path.join(REPO, "scripts", "cluster")
LOG_DIR = os.path.join(REPO, "build", "e2e-logs")
# Documented failure-detection target is 2 s; docker exec polling of every
# node adds about a second per round on a 2-core machine.
DEATH_BOUND = 12.0
PROJECT = os.environ.get("IRIDIUM_PROJECT", "iridium")
IMAGE = os.environ.get("IRIDIUM_IMAGE", "iridium:local")
SECRET = "/run/secrets/cluster_key"  # where compose.yaml hands each node the key


def run(*args, timeout=120, check=True):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def cluster(*args, timeout=1800, check=True):
    return run(CLUSTER, *args, timeout=timeout, check=check)


def containers():
    """{"seed": name, "node-1": name, ...} of running containers."""
    out = run("docker", "ps", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format",
              '{{.Label "com.docker.compose.service"}} {{.Label "com.docker.compose.container-number"}} {{.Names}}').stdout
    found = {}
    for line in out.splitlines():
        service, number, name = line.split()
        found["seed" if service == "seed" else f"node-{number}"] = name
    return found


def snapshot(node):
    return parse_snapshot(cluster("exec", node, "!cluster_members --json", timeout=30, check=False))


def alias_of(node):
    s = snapshot(node)
    return None if s is None else s["self"]["alias"]


def members(node):
    s = snapshot(node)
    return None if s is None else {m["alias"] for m in s["members"]}


def full_mesh(nodes):
    """True when each of the given nodes lists exactly all the others."""
    aliases = {n: alias_of(n) for n in nodes}
    if None in aliases.values():
        return False
    everyone = set(aliases.values())
    return all(members(n) == everyone - {aliases[n]} for n in nodes)


class RecordsFailures(unittest.TestCase):
    """Sets the class's `failed` when any of its tests fails, so that
    the class cleanup saves the containers' logs."""
    failed = False

    def run(self, result=None):
        result = super().run(result)
        if result and (result.failures or result.errors):
            type(self).failed = True
        return result


class ClusterEndToEnd(RecordsFailures):
    @classmethod
    def setUpClass(cls):
        cls.own_key_dir = None
        if not os.environ.get("IRIDIUM_KEY_DIR"):
            cls.own_key_dir = tempfile.mkdtemp(prefix="iridium-e2e-keys-")
            os.environ["IRIDIUM_KEY_DIR"] = cls.own_key_dir  # scripts/cluster reads it
        cls.key_dir = os.path.realpath(os.environ["IRIDIUM_KEY_DIR"])
        # A class cleanup, unlike tearDownClass, also runs when `up` fails.
        cls.addClassCleanup(cls.clean_up)
        cluster("down", check=False)
        cls.failed = True  # until up succeeds: a failed up saves the logs too
        cluster("up", "3")
        cls.failed = False

    @classmethod
    def clean_up(cls):
        if cls.failed:
            os.makedirs(LOG_DIR, exist_ok=True)
            for node, name in containers().items():
                with open(os.path.join(LOG_DIR, f"{name}.log"), "w") as f:
                    f.write(run("docker", "logs", name, check=False).stdout)
                    f.write(run("docker", "logs", name, check=False).stderr)
            print(f"container logs saved in {LOG_DIR}", file=sys.stderr)
        cluster("down", check=False)
        if cls.own_key_dir:
            shutil.rmtree(cls.own_key_dir, ignore_errors=True)
            del os.environ["IRIDIUM_KEY_DIR"]

    def test_01_three_nodes_form_a_full_mesh(self):
        wait_until(lambda: full_mesh(["seed", "node-1", "node-2"]), 60, "a 3-node full mesh", interval=0.2)
        self.assertEqual(alias_of("seed"), "seed")
        self.assertEqual(len(members("node-1")), 2)

    def test_02_run_a_program_and_list_members_through_attach(self):
        r = cluster("exec", "node-1", "load $0 #7", "load $1 #35", "add $0 $1 $2", "!registers")
        self.assertRegex(r.stdout, r"\$2\s+42")
        r = cluster("exec", "node-1", "!cluster_members")
        self.assertIn("seed", r.stdout)
        self.assertIn(alias_of("node-2"), r.stdout)
        self.assertEqual(cluster("exec", "node-1", "no_such_op $1", check=False).returncode, 1)

    def test_02b_the_image_carries_the_examples(self):
        # docs/shell.md's paths work in a container: its working directory
        # holds examples/ (the image's /usr/local/share/iridium/examples).
        r = cluster("exec", "node-1", "!load_file examples/hello.iasm")
        self.assertEqual(r.stdout, "Hello, Iridium!\n")
        r = cluster("exec", "seed", "!spawn /usr/local/share/iridium/examples/fib.iasm")
        self.assertIn("Spawned job", r.stdout)
        name = containers()["seed"]
        r = run("docker", "exec", name, "iridium", "run", "examples/hello.iasm")
        self.assertEqual(r.stdout, "Hello, Iridium!\n")

    @staticmethod
    def attach_repl(name, timeout):
        """`docker attach` to a node's REPL, returned once the REPL answers.
        Until docker has put the terminal in raw mode, typed text is echoed
        locally and then discarded (TCSAFLUSH), and a ^C signals docker
        itself, so nothing is typed for real before an empty line has come
        back as a fresh prompt from the container."""
        import pexpect
        shell = pexpect.spawn("docker", ["attach", name], encoding="utf-8", timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            shell.sendline("")
            try:
                shell.expect_exact(">>> ", timeout=1)
                return shell
            except pexpect.TIMEOUT:
                if time.monotonic() > deadline:
                    shell.close(force=True)
                    raise AssertionError(f"docker attach {name}: no prompt within {timeout} s")

    def test_03_type_into_a_nodes_own_repl(self):
        import pexpect
        name = containers()["node-2"]
        shell = self.attach_repl(name, timeout=20)
        try:
            shell.sendline("load $5 #55")
            shell.sendline("!registers")
            shell.expect(r"\$5\s+55")
            shell.sendline("!cluster_members")
            shell.expect("seed")
        finally:
            shell.sendcontrol("p")
            shell.sendcontrol("q")
            shell.expect(pexpect.EOF)
            shell.close()
        self.assertTrue(containers().get("node-2"), "detaching must leave the node running")

    def test_03b_sigint_leaves_a_container_serving(self):
        # Issue 9: Ctrl-C must never lose a node in a container. Two ways it
        # arrives: `docker kill --signal=INT` (to PID 1, tini, which forwards
        # it to iridium), and a ^C typed into `docker attach` (the container
        # has a TTY: its line discipline sends SIGINT to iridium, the
        # terminal's foreground process).
        import pexpect
        nodes = ["seed", "node-1", "node-2"]
        name = containers()["node-2"]
        alias = alias_of("node-2")
        started_at = run("docker", "inspect", "-f", "{{.State.StartedAt}}", name).stdout.strip()
        # The REPL answers each SIGINT at its prompt with "^C" and a fresh
        # prompt on the container's TTY, which `docker logs` keeps.
        def prompts_after_ctrl_c():
            logs = run("docker", "logs", name, check=False)
            return (logs.stdout + logs.stderr).count("^C")

        seen = prompts_after_ctrl_c()
        for n in (1, 2):
            run("docker", "kill", "--signal=INT", name)
            wait_until(lambda: prompts_after_ctrl_c() >= seen + n, 30, f"SIGINT {n} to reach the REPL", interval=0.2)
        shell = self.attach_repl(name, timeout=30)
        try:
            # At the prompt: ^C drops the half-typed line.
            shell.send("load $6 #66")
            shell.expect_exact("load $6 #66")
            shell.sendcontrol("c")
            shell.expect_exact("^C")
            # While a line runs: ^C interrupts it (jmpb $1 jumps back to inc $0 for ever).
            shell.sendline("load $1 #4")
            shell.sendline("top: inc $0")
            shell.sendline("jmpb $1")
            shell.expect_exact("jmpb $1\r\n")  # read by the REPL: the line runs
            shell.sendcontrol("c")
            shell.expect(r"interrupted at code offset \d+; registers are as the program left them")
            shell.sendline("!registers")
            shell.expect(r"\$1\s+4\s")
            shell.expect(r"\$6\s+(\d+)\s")
            self.assertEqual(shell.match.group(1), "0", "the dropped line ran")
        finally:
            shell.sendcontrol("p")
            shell.sendcontrol("q")
            shell.expect(pexpect.EOF)
            shell.close()
        # The container never stopped or restarted, the cluster still has the
        # node, and its remote shell answers.
        state = run("docker", "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", name).stdout.split()
        self.assertEqual(state, ["true", started_at])
        wait_until(lambda: full_mesh(nodes), 30, f"every node to list {alias} (and it them)", interval=0.2)
        r = cluster("exec", "node-2", "load $0 #9", "!registers")
        self.assertRegex(r.stdout, r"\$0\s+9\s")
        logs = run("docker", "logs", name, check=False)
        self.assertNotIn("shutting down", logs.stdout + logs.stderr)

    def test_03c_run_all_runs_a_program_on_every_node_of_five(self):
        # Issue 12's "done when": one greeting per node (the node itself
        # included) and the summary, over the cluster's own sockets.
        cluster("up", "5")
        nodes = ["seed"] + [f"node-{i}" for i in range(1, 5)]
        wait_until(lambda: full_mesh(nodes), 120, "a 5-node full mesh", interval=0.2)
        r = cluster("exec", "seed", "!run_all examples/hello.iasm", timeout=60)
        self.assertEqual(r.stdout.count("Hello, Iridium!"), 5, r.stdout)
        self.assertEqual(len(re.findall(r"^\[\S+\] halted \(job \d+", r.stdout, re.M)), 5, r.stdout)
        self.assertTrue(r.stdout.endswith("5 ok, 0 failed\n"), r.stdout)
        answer = json.loads(cluster("exec", "seed", "!run_all --json examples/hello.iasm",
                                    timeout=60).stdout.strip().splitlines()[-1])
        self.assertEqual((answer["ok"], answer["failed"]), (5, 0))
        self.assertEqual(sorted(x["node"] for x in answer["results"]), sorted(alias_of(n) for n in nodes))
        self.assertTrue(all(x["ok"] and x["output"] == "Hello, Iridium!\n" for x in answer["results"]), answer)
        # One node to another, from a node that is not the seed.
        r = cluster("exec", "node-2", f"!run_on {alias_of('node-4')} examples/fib.iasm", timeout=60)
        self.assertRegex(r.stdout, r"^\[\S+\] halted \(job \d+")
        self.assertRegex(r.stdout, r"\$0\s+610\s")

    def test_04_scale_to_eight(self):
        cluster("up", "8")
        nodes = ["seed"] + [f"node-{i}" for i in range(1, 8)]
        wait_until(lambda: full_mesh(nodes), 120, "an 8-node full mesh", interval=0.2)
        for node in nodes:
            self.assertEqual(len(members(node)), 7, node)

    def test_04b_graph_draws_the_full_mesh(self):
        # scripts/cluster graph on compose (ci/e2e_swarm.py checks it on Swarm).
        dot = cluster("graph").stdout
        vertices = [line for line in dot.splitlines() if line.strip().startswith('"') and "->" not in line]
        edges = [line for line in dot.splitlines() if "->" in line]
        self.assertEqual(len(vertices), 8, dot)
        self.assertIn('  "seed";', vertices)
        self.assertEqual(len(edges), 8 * 7 // 2, dot)
        self.assertTrue(all("dir=none" in e for e in edges), dot)
        svg = os.path.join(self.key_dir, "cluster.svg")
        self.assertIn(f"drew {svg}", cluster("graph", svg).stdout)
        with open(svg) as f:
            self.assertEqual(f.read().count('class="edge"'), 8 * 7 // 2)

    def test_05_killed_node_is_dropped_and_rejoins_with_its_alias(self):
        victim = "node-3"
        alias = alias_of(victim)
        survivors = ["seed", "node-1", "node-5"]
        started = time.monotonic()
        cluster("kill", victim)
        wait_until(lambda: all(alias not in (members(n) or {alias}) for n in survivors), 60,
                   f"{alias} to be dropped", interval=0.2)
        elapsed = time.monotonic() - started
        print(f"\n  kill -9 -> dropped by the survivors polled: {elapsed:.1f} s", file=sys.stderr)
        self.assertLess(elapsed, DEATH_BOUND)
        cluster("start", victim)
        wait_until(lambda: alias_of(victim) == alias and all(alias in (members(n) or set()) for n in survivors),
                   60, f"{alias} to rejoin", interval=0.2)
        nodes = ["seed"] + [f"node-{i}" for i in range(1, 8)]
        wait_until(lambda: full_mesh(nodes), 60, "the full mesh again", interval=0.2)
        self.assertEqual(len(members(victim)), 7)

    def test_06_stopped_node_leaves_cleanly(self):
        victim = "node-4"
        alias = alias_of(victim)
        cluster("stop", victim)
        wait_until(lambda: alias not in (members("seed") or {alias}), 30, f"{alias} to leave", interval=0.2)
        logs = run("docker", "logs", containers()["seed"], check=False)
        self.assertIn(f"{alias} left", logs.stdout + logs.stderr)
        cluster("start", victim)
        wait_until(lambda: alias in (members("seed") or set()), 60, f"{alias} to come back", interval=0.2)

    def test_07_cut_and_heal(self):
        victim = "node-2"
        alias = alias_of(victim)
        others = ["seed", "node-1", "node-6"]
        cluster("cut", victim)
        try:
            wait_until(lambda: all(alias not in (members(n) or {alias}) for n in others), 60,
                       "the others to drop the cut node", interval=0.2)
            wait_until(lambda: members(victim) == set(), 60, "the cut node to drop everyone", interval=0.2)
            # The picture shows the partition: the cut node alone, the other 7 a
            # full mesh (once every one of them, not just the 3 above, dropped it).
            def graph_edges():
                return [line for line in cluster("graph").stdout.splitlines() if "->" in line]

            wait_until(lambda: len(graph_edges()) == 7 * 6 // 2, 30, "a graph of the other 7 alone",
                       interval=0.2)
            edges = graph_edges()
            self.assertFalse([e for e in edges if f'"{alias}"' in e], edges)
            self.assertTrue(all("dir=none" in e for e in edges), edges)
        finally:
            cluster("heal", victim)
        nodes = ["seed"] + [f"node-{i}" for i in range(1, 8)]
        wait_until(lambda: full_mesh(nodes), 120, "the full mesh to heal", interval=0.2)

    def test_08_healthcheck_reports_healthy(self):
        for node, name in containers().items():
            status = run("docker", "inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
            self.assertIn(status, ("healthy", "starting"), node)
            # The image's check, by hand: silent and 0 while the node's loops stamp.
            check = run("docker", "exec", name, "iridium", "health", check=False)
            self.assertEqual((check.returncode, check.stdout, check.stderr), (0, "", ""), node)

    def test_09_ps_shows_aliases_and_logs_carry_no_colour(self):
        # ps: one row per container, with the alias the node itself reports
        # (also for the nodes killed, stopped and cut above).
        rows = {}
        lines = cluster("ps").stdout.splitlines()
        self.assertEqual(lines[0].split(), ["CONTAINER", "ALIAS", "STATE", "HEALTH", "ADDRESS"])
        for line in lines[1:]:
            fields = line.split()
            rows[fields[0]] = fields[1]
        running = containers()
        self.assertEqual(set(rows), set(running.values()))
        for node, name in running.items():
            self.assertEqual(rows[name], alias_of(node), node)
        self.assertEqual(rows[running["seed"]], "seed")
        # Logs: compose gives every node a TTY, yet `docker logs` holds no
        # colour codes (IRIDIUM_LOG_COLOR=never), and it does hold log lines.
        colour = re.compile(r"\x1b\[[0-9;]*m")
        for node, name in running.items():
            logs = run("docker", "logs", name, check=False)
            text = logs.stdout + logs.stderr
            self.assertRegex(text, r" info \[", node)
            self.assertNotRegex(text, colour, node)

    # ---- the cluster key (issue 10) -------------------------------------

    def key_text(self):
        """The host's key file, read in a throwaway container (as root there:
        the file is the image user's, in a 0700 directory of the host
        user's), so this works without root on the host too."""
        return run("docker", "run", "--rm", "--network", "none", "--user", "0:0", "-v", f"{self.key_dir}:/keys:ro",
                   IMAGE, "cat", "/keys/cluster.key").stdout

    def test_20_every_node_reads_the_key_as_a_read_only_secret(self):
        key_file = os.path.join(self.key_dir, "cluster.key")
        self.assertEqual(stat.S_IMODE(os.stat(key_file).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.key_dir).st_mode), 0o700)
        self.assertFalse(key_file.startswith(os.path.realpath(REPO) + os.sep), "the key must not be in the checkout")
        text = self.key_text()
        public = re.search(r'^public-key = "(.{40})"$', text, re.M).group(1)
        digest = hashlib.sha256(text.encode()).hexdigest()
        r = cluster("key")
        self.assertEqual(r.stdout, f"{key_file}\nfingerprint {public[:8]}\n")
        running = containers()
        self.assertGreaterEqual(len(running), 3)
        for node, name in running.items():
            env = run("docker", "exec", name, "env").stdout.splitlines()
            self.assertIn(f"IRIDIUM_CLUSTER_KEY={SECRET}", env, node)
            self.assertIn(f"IRIDIUM_REMOTE_KEY={SECRET}", env, node)
            # The node's own user (docker exec runs as the image's USER) reads it ...
            self.assertEqual(run("docker", "exec", name, "id", "-un").stdout.strip(), "iridium")
            self.assertEqual(run("docker", "exec", name, "stat", "-c", "%a %U", SECRET).stdout.strip(),
                             "600 iridium", node)
            self.assertEqual(run("docker", "exec", name, "sha256sum", SECRET).stdout.split()[0], digest, node)
            # ... from a read-only bind of the host's file, which not even root may change.
            mounts = json.loads(run("docker", "inspect", "-f", "{{json .Mounts}}", name).stdout)
            mount = next(m for m in mounts if m["Destination"] == SECRET)
            self.assertEqual((mount["Type"], mount["RW"], os.path.realpath(mount["Source"])),
                             ("bind", False, key_file), node)
            w = run("docker", "exec", "-u", "0", name, "sh", "-c", f": >>{SECRET}", check=False)
            self.assertNotEqual(w.returncode, 0, node)
            self.assertIn("Read-only file system", w.stderr, node)

    def test_21_the_key_is_in_no_image(self):
        text = self.key_text()
        secret = re.search(r'^secret-key = "(.{40})"$', text, re.M).group(1)
        public = re.search(r'^public-key = "(.{40})"$', text, re.M).group(1)
        # The secret half is found by this search where it is: in a node ...
        find = "grep -rlF -f /dev/stdin {} 2>/dev/null; true"
        node = containers()["seed"]
        found = subprocess.run(["docker", "exec", "-i", node, "sh", "-c", find.format("/run/secrets")],
                               input=secret + "\n", capture_output=True, text=True, timeout=120)
        self.assertEqual(found.stdout.split(), [SECRET])
        # ... and nowhere in a fresh container of the image (no /run/secrets at all).
        found = subprocess.run(["docker", "run", "--rm", "-i", "--network", "none", IMAGE, "sh", "-c",
                                "ls -A /run/secrets 2>/dev/null; " +
                                find.format("/ --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev")],
                               input=secret + "\n", capture_output=True, text=True, timeout=300)
        self.assertEqual(found.returncode, 0, found.stderr)
        self.assertEqual(found.stdout, "")
        # Nor in the image's (or its build stage's) history and configuration.
        builder = IMAGE.rsplit(":", 1)[0] + "-builder:local"
        for image in (IMAGE, builder):
            if run("docker", "image", "inspect", image, check=False).returncode != 0:
                self.assertEqual(image, builder)  # only the build stage may be missing (IRIDIUM_NO_BUILD)
                continue
            meta = run("docker", "history", "--no-trunc", image).stdout + run("docker", "image", "inspect", image).stdout
            for half in (secret, public):
                self.assertNotIn(half, meta, image)
            self.assertNotIn("cluster.key", meta, image)

    def test_22_the_remote_shell_needs_the_key_when_the_nodes_are_secure(self):
        if "--cluster-key" not in run("docker", "run", "--rm", "--network", "none", IMAGE, "iridium",
                                      "--help").stdout:
            self.skipTest("this image's iridium has no --cluster-key yet (plain nodes)")
        name = containers()["node-1"]
        attach = ["iridium", "attach", "127.0.0.1:2244", "--timeout", "3", "-c", "!cluster_members --json"]
        self.assertIsNotNone(parse_snapshot(run("docker", "exec", name, *attach, check=False)))
        r = run("docker", "exec", name, "env", "-u", "IRIDIUM_REMOTE_KEY", *attach, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIsNone(parse_snapshot(r))

    def test_23_rotate_key_keeps_every_member_and_later_starts_use_the_new_key(self):
        """scripts/cluster rotate-key on the running cluster (docs/security.md,
        "Rotate a key"): sampled throughout, no node lists fewer than all the
        others, and no log says one died or left; afterwards the host key is
        new, every node holds only it, and a restarted node joins with it."""
        nodes = sorted(containers())
        wait_until(lambda: full_mesh(nodes), 60, "the full mesh before the rotation", interval=0.2)
        old_text = self.key_text()
        old_public = re.search(r'^public-key = "(.{40})"$', old_text, re.M).group(1)
        since = run("date", "-u", "+%Y-%m-%dT%H:%M:%S").stdout.strip()
        rotation = subprocess.Popen([CLUSTER, "rotate-key"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        samples, short = 0, []
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            while rotation.poll() is None:
                for node, seen in zip(nodes, pool.map(members, nodes)):
                    samples += 1
                    if seen is None or len(seen) < len(nodes) - 1:
                        short.append((node, seen))
        out, err = rotation.communicate()
        print(f"\n  rotate-key on {len(nodes)} nodes: {samples} member samples, {len(short)} short", file=sys.stderr)
        self.assertEqual(rotation.returncode, 0, out + err)
        self.assertGreater(samples, len(nodes))
        self.assertEqual(short, [])
        new_text = self.key_text()
        new_public = re.search(r'^public-key = "(.{40})"$', new_text, re.M).group(1)
        self.assertNotEqual(new_public, old_public)
        self.assertIn(f"rotating the cluster key {old_public[:8]} -> {new_public[:8]}", out)
        self.assertEqual(cluster("key").stdout.splitlines()[1], f"fingerprint {new_public[:8]}")
        key_file = os.path.join(self.key_dir, "cluster.key")
        self.assertEqual(stat.S_IMODE(os.stat(key_file).st_mode), 0o600)
        self.assertFalse(os.path.exists(key_file + ".new"))
        for node, name in containers().items():
            listing = json.loads(cluster("exec", node, "!cluster_keys list --json").stdout.strip().splitlines()[-1])
            self.assertEqual([(k["fingerprint"], k["primary"]) for k in listing["keys"]],
                             [(new_public[:8], True)], node)
            copy = listing["keys"][0]["path"]
            self.assertTrue(copy.startswith("/dev/shm/"), copy)  # a tmpfs: not on disk, not in the volume
            self.assertEqual(run("docker", "exec", name, "stat", "-c", "%a %U", copy).stdout.strip(), "600 iridium")
            logs = run("docker", "logs", "--since", since, name, check=False)
            for bad in (" is dead", " left\n", " error ["):
                self.assertNotIn(bad, logs.stdout + logs.stderr, node)
        # A restart mounts the new key file, and the node rejoins with it.
        victim = nodes[-1]
        alias = alias_of(victim)
        cluster("stop", victim)
        cluster("start", victim)
        name = containers()[victim]
        digest = hashlib.sha256(new_text.encode()).hexdigest()
        self.assertEqual(run("docker", "exec", name, "sha256sum", SECRET).stdout.split()[0], digest)
        wait_until(lambda: alias_of(victim) == alias and full_mesh(nodes), 60,
                   "the restarted node in the full mesh, with the new key", interval=0.2)


def docker_available():
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


if __name__ == "__main__":
    if not docker_available():
        if os.environ.get("CI") == "true":
            print("e2e: no Docker engine, but CI=true requires the end-to-end suite", file=sys.stderr)
            sys.exit(1)
        print("e2e: SKIPPED: no Docker engine is running here")
        sys.exit(0)
    unittest.main(verbosity=2)
