"""deploy/k8s's pods as Docker containers: the closest this machine gets to
Kubernetes (there is no cluster here; docs/deploy.md).

Each pod iridium-N is a container from the iridium image running exactly
the StatefulSet's command, arguments and environment (as the kubelet
expands them), user, read-only root file system and dropped capabilities,
on one Docker network where the pod's DNS name
(iridium-N.iridium.default.svc.cluster.local) is a network alias, as the
headless Service makes it on Kubernetes. A pod replacement is a new
container of the same name, with a new address. What this does not
emulate: the scheduler, kubelet probes (the probe commands are run with
docker exec instead), CoreDNS's caching, the PodDisruptionBudget.

    python3 ci/e2e_k8s_pods.py [unittest args]

Run by hand, not by scripts/test: on this machine about one run in five
fails, in the case examined because Docker's embedded DNS stopped answering
for a re-created pod's alias (getent in every container said "not found"
while `docker inspect` listed the alias), so the pods could not dial it.
That is the emulation's DNS, not Kubernetes' (CoreDNS): kept out of CI.

Needs Docker, kubectl and python3-yaml; otherwise "SKIPPED: <reason>",
except under CI=true. The image is IRIDIUM_IMAGE (default iridium:local),
brought up to date with `scripts/cluster image` unless IRIDIUM_NO_BUILD=1. Containers and the network are
named after IRIDIUM_PROJECT (default k8spods) and always removed; on
failure the pods' logs are saved under build/e2e-logs/k8s-pods/.
"""
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "harness"))
from iridium_nodes import failed_so_far, parse_snapshot, wait_until  # noqa: E402
from k8s_pod import container_args, container_env, rendered_objects, skip_or_fail, the_container  # noqa: E402

IMAGE = os.environ.get("IRIDIUM_IMAGE", "iridium:local")
PROJECT = os.environ.get("IRIDIUM_PROJECT", "k8spods") + "-k8s"
NETWORK = f"{PROJECT}-net"
NAMESPACE = "default"
KUBECTL = shutil.which("kubectl")
LOG_DIR = os.path.join(REPO, "build", "e2e-logs", "k8s-pods")
# docker exec of every pod's probe command, one after the other, takes a
# few tenths of a second per pod on a 2-core machine.
MESH_BOUND = 30.0
WHAT = "deploy/k8s's pods under Docker"


def docker(*args, check=True, timeout=120):
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def setUpModule():
    try:
        import yaml  # noqa: F401  (k8s_pod renders with it)
    except ImportError as e:
        skip_or_fail(f"python3-yaml is missing ({e}); run scripts/setup", WHAT)
    if KUBECTL is None:
        skip_or_fail("no kubectl on PATH; run scripts/setup", WHAT)
    if shutil.which("docker") is None or docker("info", check=False, timeout=30).returncode != 0:
        skip_or_fail("no Docker engine", WHAT)
    if os.environ.get("IRIDIUM_NO_BUILD") != "1":
        # Builds IRIDIUM_IMAGE from this checkout when missing or stale (a
        # no-op after ci/e2e_cluster.py).
        built = subprocess.run([os.path.join(REPO, "scripts", "cluster"), "image"], capture_output=True,
                               text=True, timeout=1800)
        if built.returncode != 0:
            raise RuntimeError(f"scripts/cluster image failed:\n{built.stdout}\n{built.stderr}")
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        skip_or_fail(f"no image {IMAGE} (IRIDIUM_NO_BUILD=1)", WHAT)


class Pods(unittest.TestCase):
    """Ordered scenarios on one set of pods (test_1 ... test_4)."""

    @classmethod
    def setUpClass(cls):
        objects = rendered_objects(KUBECTL, os.path.join(REPO, "deploy", "k8s"))
        cls.sts = next(o for o in objects if o["kind"] == "StatefulSet")
        cls.service = next(o for o in objects if o["kind"] == "Service")
        cls.container = the_container(cls.sts)
        cls.tmp = tempfile.mkdtemp(prefix="k8s-pods-")
        cls.pod_spec = cls.sts["spec"]["template"]["spec"]
        security = cls.pod_spec["securityContext"]
        # The cluster key Secret: a key file owned by root and the pod's
        # fsGroup, mode 0440, as the kubelet mounts it.
        key_dir = os.path.join(cls.tmp, "cluster-key")
        os.makedirs(key_dir)
        docker("run", "--rm", "-u", "0", "-v", f"{key_dir}:/out", IMAGE, "iridium", "keygen", "/out/cluster.key")
        docker("run", "--rm", "-u", "0", "-v", f"{key_dir}:/out", IMAGE, "sh", "-c",
               f"chown 0:{security['fsGroup']} /out/cluster.key && chmod 0440 /out/cluster.key")
        cls.secret_data = {"iridium-remote-token": {"token": secrets.token_hex(16).encode()}}
        cls.key_dir = key_dir
        cls.cleanup_all()
        docker("network", "create", NETWORK)

    @classmethod
    def tearDownClass(cls):
        cls.cleanup_all()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def cleanup_all(cls):
        names = docker("ps", "-aq", "--filter", f"label=iridium.k8s-pods={PROJECT}", check=False).stdout.split()
        if names:
            docker("rm", "-f", *names, check=False)
        docker("network", "rm", NETWORK, check=False)

    def tearDown(self):
        if failed_so_far(self):
            os.makedirs(LOG_DIR, exist_ok=True)
            for i in range(8):
                logs = docker("logs", self.name_of(i), check=False)
                if logs.returncode == 0:
                    with open(os.path.join(LOG_DIR, f"{self._testMethodName}-iridium-{i}.log"), "w") as f:
                        f.write(logs.stdout + logs.stderr)
            print(f"logs saved under {LOG_DIR}", file=sys.stderr)

    # --- pods

    @staticmethod
    def name_of(i):
        return f"{PROJECT}-iridium-{i}"

    def dns_name(self, i):
        return f"iridium-{i}.{self.service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"

    def create(self, i):
        """Pod iridium-i, as the StatefulSet's template describes it."""
        env = container_env(self.container, f"iridium-{i}", NAMESPACE, self.secret_data)
        security = self.pod_spec["securityContext"]
        key_mount = next(m for m in self.container["volumeMounts"] if m["name"] == "cluster-key")
        data_mount = next(m for m in self.container["volumeMounts"] if m["name"] == "data")
        command = ["run", "-d", "--name", self.name_of(i), "--label", f"iridium.k8s-pods={PROJECT}",
                   "--hostname", f"iridium-{i}", "--network", NETWORK, "--network-alias", self.dns_name(i),
                   # A missing pod's name must fail fast, as CoreDNS answers it.
                   "--dns-opt", "timeout:1", "--dns-opt", "attempts:1",
                   "--user", f"{security['runAsUser']}:{security['runAsGroup']}",
                   "--group-add", str(security["fsGroup"]),
                   "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                   "--tmpfs", f"{data_mount['mountPath']}:uid={security['runAsUser']},gid={security['fsGroup']},mode=0770",
                   "-v", f"{self.key_dir}:{key_mount['mountPath']}:ro",
                   "--stop-timeout", str(self.pod_spec["terminationGracePeriodSeconds"])]
        for name, value in env.items():
            command += ["-e", f"{name}={value}"]
        docker(*command, IMAGE, *self.container["command"], *container_args(self.container, env))

    def remove(self, *indices, witness):
        """The pods' deletion: SIGTERM, the grace period, then gone, down to
        their DNS names as pod `witness` resolves them. Docker's DNS drops a
        removed container's alias a moment later; a new container with the
        same alias created before that loses its record too (seen here: the
        name stayed unresolvable for every container). Kubernetes creates
        the replacement only once the old pod is gone, so this waits too."""
        names = [self.name_of(i) for i in indices]
        docker("stop", *names, timeout=60)
        docker("rm", *names)

        def unresolved():
            return all(docker("exec", self.name_of(witness), "getent", "hosts", self.dns_name(i),
                              check=False).returncode != 0 for i in indices)

        wait_until(unresolved, 20, f"the removed pods' names to stop resolving in iridium-{witness}", interval=0.2)

    def address(self, i):
        return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                      self.name_of(i)).stdout.strip()

    def probe(self, i, which="readinessProbe"):
        return docker("exec", self.name_of(i), *self.container[which]["exec"]["command"], check=False, timeout=30)

    def snapshot(self, i):
        return parse_snapshot(self.probe(i))

    def seen(self, i):
        s = self.snapshot(i)
        return None if s is None else sorted(m["alias"] for m in s["members"])

    def wait_mesh(self, pods, bound=MESH_BOUND):
        started = time.monotonic()

        def mesh():
            return all(self.seen(i) == sorted(f"iridium-{j}" for j in pods if j != i) for i in pods)

        wait_until(mesh, bound, lambda: f"a full mesh of {pods}: {({i: self.seen(i) for i in pods})}", interval=0.2)
        return time.monotonic() - started

    # --- scenarios, in order

    def test_1_one_pod_alone_is_ready_and_lists_nobody(self):
        self.create(0)
        snapshot = wait_until(lambda: self.snapshot(0), 20, "iridium-0's readiness probe to pass", interval=0.2)
        self.assertEqual(snapshot["self"]["alias"], "iridium-0")
        self.assertEqual(snapshot["self"]["host"], self.dns_name(0))
        self.assertEqual(snapshot["members"], [])
        self.assertEqual(self.probe(0, "livenessProbe").returncode, 0)

    def test_2_pods_join_through_the_seeds_into_a_full_mesh_of_dns_names(self):
        for i in range(1, 4):
            self.create(i)
        took = self.wait_mesh(range(4))
        print(f"full mesh of 4: {took:.2f} s after the last pod was created", flush=True)
        for i in range(4):
            for m in self.snapshot(i)["members"]:
                self.assertEqual(m["host"], self.dns_name(int(m["alias"].split("-")[1])), m)
                self.assertEqual(m["port"], 2254, m)

    def test_3_a_replaced_pod_comes_back_under_its_name_at_a_new_address(self):
        old_address, old_instance = self.address(1), self.snapshot(1)["self"]["instance"]
        started = time.monotonic()
        self.remove(1, witness=0)
        print(f"iridium-1 stopped (SIGTERM) and removed in {time.monotonic() - started:.2f} s", flush=True)
        wait_until(lambda: all(self.seen(i) == sorted(f"iridium-{j}" for j in (0, 2, 3) if j != i) for i in (0, 2, 3)),
                   10, "the others to drop iridium-1", interval=0.2)
        self.create(4)  # a scale-up meanwhile, which also takes the freed address
        self.create(1)
        self.assertNotEqual(self.address(1), old_address)
        took = self.wait_mesh(range(5))
        print(f"full mesh of 5 again {took:.2f} s after iridium-1's replacement was created "
              f"({old_address} -> {self.address(1)})", flush=True)
        self.assertNotEqual(self.snapshot(1)["self"]["instance"], old_instance)

    def test_4_replacing_all_three_seeds_at_once_heals_by_itself(self):
        # docs/deploy.md, "Seeds": pods 3 and 4 took the seeds' leave and
        # dropped them for good; their own hello to each seed that is not a
        # member (once a second) is what finds the new seeds.
        self.remove(0, 1, 2, witness=3)
        for i in range(3):
            self.create(i)
        took = self.wait_mesh(range(5), bound=15)
        print(f"seeds replaced together: full mesh again by itself in {took:.2f} s", flush=True)

if __name__ == "__main__":
    unittest.main(verbosity=2)
