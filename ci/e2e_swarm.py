"""End-to-end membership tests on Docker Swarm (deploy/swarm/stack.yaml).

Drives `scripts/cluster --engine swarm` and docker the way a user would:
up 3, scale to 8, a killed task replaced by Swarm and the mesh healed with
it, a who-sees-whom picture, scale down to 3 with clean leaves, down. The
tests share one stack and run in order.

Never touches what is not its own: the stack has a name of its own
(IRIDIUM_SWARM_STACK, default e2eswarm<pid>), and the cluster key and the
"up made the swarm" note live in a temp directory. When this engine was in
no swarm before, it is in none after (scripts/cluster down leaves the swarm
that up made; the class cleanup checks, and leaves it if down did not). On
failure every task container's log (exited ones too) is saved under
build/e2e-logs/ and its tail printed. The image is IRIDIUM_IMAGE (default
iridium:local), built by scripts/cluster if stale, as for ci/e2e_cluster.py.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

STACK = os.environ.get("IRIDIUM_SWARM_STACK", f"e2eswarm{os.getpid()}")
# The helpers of the compose suite drive scripts/cluster, which reads these.
os.environ["IRIDIUM_ENGINE"] = "swarm"
os.environ["IRIDIUM_PROJECT"] = STACK

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cluster import (LOG_DIR, REPO, SECRET, RecordsFailures, alias_of, cluster,  # noqa: E402
                         docker_available, full_mesh, members, run, snapshot)
from iridium_nodes import wait_until  # noqa: E402  (e2e_cluster put tests/harness on the path)

sys.path.insert(0, os.path.join(REPO, "scripts", "lib"))
from cluster_graph import parse_views  # noqa: E402

SERVICE = f"{STACK}_iridium"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def swarm_state():
    return run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()


def task_containers(all_states=False):
    """{slot: container name} of the running task containers (all_states:
    [(slot, name)] of every task container Swarm still keeps)."""
    out = run("docker", "ps", *(["-a"] if all_states else []), "--filter",
              f"label=com.docker.swarm.service.name={SERVICE}", "--format", "{{.Names}}").stdout.split()
    found = [(int(name.split(".")[1]), name) for name in out]
    return found if all_states else dict(found)


def nodes(n):
    return [f"node-{i}" for i in range(1, n + 1)]


def lists(node, count):
    m = members(node)
    return m is not None and len(m) == count


class SwarmEndToEnd(RecordsFailures):
    @classmethod
    def setUpClass(cls):
        cls.swarm_before = swarm_state()
        cls.key_dir = tempfile.mkdtemp(prefix="iridium-e2e-swarm-")
        os.environ["IRIDIUM_KEY_DIR"] = cls.key_dir  # the key and the swarm note
        # A class cleanup, unlike tearDownClass, also runs when `up` fails,
        # so a swarm this suite made is left even then.
        cls.addClassCleanup(cls.clean_up)
        cls.started = time.monotonic()
        cls.failed = True  # until up succeeds: a failed up saves the logs too
        cluster("up", "3")
        cls.failed = False
        print(f"\n  up 3: {time.monotonic() - cls.started:.1f} s", file=sys.stderr)

    @classmethod
    def clean_up(cls):
        try:
            if cls.failed:
                cls.save_logs()
            cluster("down", check=False)
            # Restore the swarm state of before, whatever down managed.
            if cls.swarm_before == "inactive" and swarm_state() != "inactive":
                print("e2e-swarm: down left the swarm on; leaving it", file=sys.stderr)
                run("docker", "swarm", "leave", "--force", check=False)
        finally:
            shutil.rmtree(cls.key_dir, ignore_errors=True)
            del os.environ["IRIDIUM_KEY_DIR"]

    @classmethod
    def save_logs(cls):
        os.makedirs(LOG_DIR, exist_ok=True)
        for _, name in task_containers(all_states=True):
            logs = run("docker", "logs", name, check=False)
            text = logs.stdout + logs.stderr
            with open(os.path.join(LOG_DIR, f"{name}.log"), "w") as f:
                f.write(text)
            print(f"---- {name} (last lines)\n" + "\n".join(text.splitlines()[-15:]), file=sys.stderr)
        print(f"task logs saved in {LOG_DIR}", file=sys.stderr)

    def test_01_three_tasks_form_a_full_mesh(self):
        self.assertEqual(swarm_state(), "active")
        self.assertEqual(sorted(task_containers()), [1, 2, 3])
        wait_until_mesh(nodes(3), 60)
        self.assertEqual(alias_of("node-2"), "node-2")  # alias = slot
        self.assertEqual(alias_of("2"), "node-2")

    def test_02_the_key_is_a_swarm_secret_the_node_user_reads(self):
        name = task_containers()[1]
        env = run("docker", "exec", name, "env").stdout.splitlines()
        self.assertIn(f"IRIDIUM_CLUSTER_KEY={SECRET}", env)
        self.assertIn(f"IRIDIUM_REMOTE_KEY={SECRET}", env)
        self.assertEqual(run("docker", "exec", name, "stat", "-c", "%a %U", SECRET).stdout.strip(), "400 iridium")
        secrets = run("docker", "secret", "ls", "--filter", f"label=io.iridium.stack={STACK}",
                      "--format", "{{.Name}}").stdout.split()
        self.assertEqual(len(secrets), 1, secrets)
        self.assertTrue(secrets[0].startswith(f"{STACK}_cluster_key_"), secrets)

    def test_03_scale_to_eight(self):
        started = time.monotonic()
        cluster("scale", "8")
        wait_until_mesh(nodes(8), 120)
        print(f"\n  scale 3 -> 8, full mesh: {time.monotonic() - started:.1f} s", file=sys.stderr)
        for node in nodes(8):
            self.assertEqual(len(members(node)), 7, node)

    def test_04_a_killed_task_is_replaced_and_the_mesh_heals(self):
        slot = 5
        old = task_containers()[slot]
        started = time.monotonic()
        run("docker", "kill", old)
        # Swarm starts a new container in the same slot ...
        wait_until(lambda: task_containers().get(slot) not in (None, old), 60, "Swarm to replace the task", interval=0.2)
        new = task_containers()[slot]
        self.assertNotEqual(new, old)
        # ... whose node takes the same alias and joins again by itself.
        wait_until(lambda: alias_of(f"node-{slot}") == f"node-{slot}", 60, "the replacement's node to answer", interval=0.2)
        wait_until_mesh(nodes(8), 90)
        print(f"\n  docker kill -> replaced and the mesh healed: {time.monotonic() - started:.1f} s",
              file=sys.stderr)
        for node in nodes(8):
            self.assertEqual(len(members(node)), 7, node)
        addresses = {m["alias"]: m["host"] for m in snapshot_members("node-1")}
        ip = run("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                 new).stdout.strip()
        self.assertEqual(addresses[f"node-{slot}"], ip, "node-1 must know the replacement's address")

    def test_05_graph_draws_the_full_mesh(self):
        png = os.path.join(self.key_dir, "cluster.png")
        r = cluster("graph", png)
        self.assertIn(f"drew {png}", r.stdout)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), PNG_MAGIC)
        dot = cluster("graph").stdout
        self.assertTrue(dot.startswith("digraph cluster {"), dot)
        vertices = [line for line in dot.splitlines() if line.strip().startswith('"') and "->" not in line]
        edges = [line for line in dot.splitlines() if "->" in line]
        self.assertEqual(len(vertices), 8, dot)
        self.assertEqual(len(edges), 8 * 7 // 2, dot)
        self.assertTrue(all("dir=none" in e for e in edges), dot)  # every view mutual
        self.assertNotIn("lightgray", dot)

    def test_06_scale_down_to_three_leaves_cleanly(self):
        before = {slot for slot in task_containers()}
        started = time.monotonic()
        cluster("scale", "3")
        kept = sorted(task_containers())
        self.assertEqual(len(kept), 3)
        removed = [f"node-{s}" for s in before - set(kept)]
        survivors = [f"node-{s}" for s in kept]
        # SIGTERM makes a removed node send leave: the others drop it at once,
        # not after failure detection.
        wait_until(lambda: all(lists(n, 2) for n in survivors), 20, "the survivors to list 2 each", interval=0.2)
        print(f"\n  scale 8 -> 3, survivors list 2: {time.monotonic() - started:.1f} s", file=sys.stderr)
        self.assertTrue(full_mesh(survivors))
        # scripts/cluster logs: every running task's lines, prefixed with its alias.
        logs = cluster("logs").stdout.splitlines()
        self.assertEqual({line.split(" | ", 1)[0] for line in logs}, set(survivors))
        first = [line for line in logs if line.startswith(f"{survivors[0]} | ")]
        for alias in removed:
            self.assertTrue(any(f"{alias} left" in line for line in first), alias)

    def test_09_down_removes_everything_and_restores_the_swarm(self):
        started = time.monotonic()
        r = cluster("down")
        print(f"\n  down: {time.monotonic() - started:.1f} s", file=sys.stderr)
        self.assertEqual(task_containers(all_states=True), [])
        self.assertEqual(run("docker", "network", "ls", "-q", "--filter",
                             f"label=com.docker.stack.namespace={STACK}").stdout.strip(), "")
        if self.swarm_before == "inactive":
            self.assertIn("left the swarm that up started", r.stdout)
            self.assertEqual(swarm_state(), "inactive")
        else:
            self.assertEqual(swarm_state(), self.swarm_before)
            self.assertEqual(run("docker", "secret", "ls", "-q", "--filter",
                                 f"label=io.iridium.stack={STACK}").stdout.strip(), "")
        print(f"  whole suite: {time.monotonic() - self.started:.1f} s", file=sys.stderr)


def snapshot_members(node):
    s = snapshot(node)
    return [] if s is None else s["members"]


def wait_until_mesh(names, timeout):
    wait_until(lambda: full_mesh(names), timeout, f"a {len(names)}-node full mesh", interval=0.2)


def swarm_usable():
    """None when a single-node swarm can be used here, else why not."""
    state = swarm_state()
    if state == "inactive":
        return None
    if state == "active":
        if run("docker", "info", "--format", "{{.Swarm.ControlAvailable}}").stdout.strip() != "true":
            return "this Docker engine is a swarm worker, not a manager"
        return None
    return f"this Docker engine's swarm state is '{state}'"


if __name__ == "__main__":
    ci = os.environ.get("CI") == "true"
    why = "no Docker engine is running here" if not docker_available() else swarm_usable()
    if why:
        if ci:
            print(f"e2e-swarm: {why}, but CI=true requires the Swarm suite", file=sys.stderr)
            sys.exit(1)
        print(f"e2e-swarm: SKIPPED: {why}")
        sys.exit(0)
    unittest.main(verbosity=2)
