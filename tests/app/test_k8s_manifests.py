"""deploy/k8s, checked without a Kubernetes cluster (docs/deploy.md).

    python3 tests/app/test_k8s_manifests.py /path/to/iridium [unittest args]

What is checked, all offline:
- kubectl builds the kustomization (`kubectl kustomize`) and accepts the
  result in `kubectl apply --dry-run=client`. kubectl needs an API server
  for its discovery (kind -> resource) even then, so the test runs a
  stand-in on 127.0.0.1 that answers discovery for the three kinds and 404
  for every object; it serves no schema, so kubectl runs --validate=false.
- The schema: every field of every object against the Kubernetes API models
  of Debian's python3-kubernetes (unknown fields, wrong types, required
  fields missing).
- The wiring: selectors match the pod labels, the StatefulSet's serviceName
  is the headless Service, the advertised host is the pod's DNS name under
  that Service, the seeds are pods 0..2 there, ports, volumes and Secrets
  agree, the cluster key file lies in its Secret's mount.
- Every iridium flag and IRIDIUM_* variable the pod passes, and every flag
  of the probes' `iridium attach`, exists in this build's --help.
- The container itself: its command, arguments and environment (as the
  kubelet would expand them) run with this build as pod iridium-0 (ports
  moved to free ones, volumes to temporary directories, a key from
  `iridium keygen`); both probes pass, report the pod's alias and DNS name,
  and SIGTERM ends it within terminationGracePeriodSeconds.

Without kubectl or python3-kubernetes (scripts/setup installs both) the
suite prints "SKIPPED: <reason>", unless CI=true: then it fails.
IRIDIUM_K8S_DIR checks another copy of the manifests (default deploy/k8s);
IRIDIUM_KUBECTL names the kubectl to use (default: the one on PATH).
"""
import copy
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from iridium_nodes import REPO, clean_env, free_port, kill_process, parse_snapshot, take_binary, wait_until  # noqa: E402
from k8s_pod import container_args, container_env, rendered_objects, skip_or_fail, the_container  # noqa: E402

IRIDIUM = take_binary()
MANIFESTS = os.path.abspath(os.environ.get("IRIDIUM_K8S_DIR", os.path.join(REPO, "deploy", "k8s")))
KUBECTL = os.environ.get("IRIDIUM_KUBECTL") or shutil.which("kubectl")
KINDS = {"Service", "StatefulSet", "PodDisruptionBudget"}
WHAT = "the Kubernetes manifests"

try:
    import yaml  # noqa: F401  (k8s_pod renders with it)
    import kubernetes.client.models as k8s_models
except ImportError as e:  # checked in setUpModule
    k8s_models = None
    IMPORT_ERROR = str(e)


def setUpModule():
    if k8s_models is None:
        skip_or_fail(f"python3-yaml or python3-kubernetes is missing ({IMPORT_ERROR}); run scripts/setup", WHAT)
    if KUBECTL is None:
        skip_or_fail("no kubectl on PATH (Debian's kubernetes-client); run scripts/setup", WHAT)
    try:
        version = subprocess.run([KUBECTL, "version", "--client"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        skip_or_fail(f"cannot run {KUBECTL}: {e}", WHAT)
    if version.returncode != 0:
        skip_or_fail(f"{KUBECTL} version --client failed: {version.stderr.strip()}", WHAT)
    print(f"kubectl: {KUBECTL}: {version.stdout.strip().splitlines()[0]}", flush=True)
    print(f"manifests: {MANIFESTS}", flush=True)


def kubectl(*args, timeout=60):
    return subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=timeout)


def by_kind(objects):
    out = {}
    for obj in objects:
        out.setdefault(obj.get("kind"), []).append(obj)
    return out


def env_list(container):
    return {e["name"]: e for e in container.get("env", [])}


# --- the schema: Debian's python3-kubernetes API models -----------------------

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str, "date": str}


def schema_errors(value, type_name, path):
    """Every way value does not fit the API model type_name ('V1StatefulSet',
    'list[V1Container]', 'dict(str, str)', 'int', ...): unknown fields, wrong
    types, required fields missing."""
    if type_name == "object":  # IntOrString, Quantity, free-form
        return []
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        inner = type_name[len("list["):-1]
        return [e for i, v in enumerate(value) for e in schema_errors(v, inner, f"{path}[{i}]")]
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        inner = type_name[len("dict("):-1].split(", ", 1)[1]
        return [e for k, v in value.items() for e in schema_errors(v, inner, f"{path}.{k}")]
    if type_name in PRIMITIVES:
        wanted = PRIMITIVES[type_name]
        if isinstance(value, bool) and type_name != "bool" or not isinstance(value, wanted):
            return [f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"]
        return []
    model = getattr(k8s_models, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} object, got {type(value).__name__}"]
    field_to_attr = {field: attr for attr, field in model.attribute_map.items()}
    errors, present = [], {}
    for field, v in value.items():
        attr = field_to_attr.get(field)
        if attr is None:
            errors.append(f"{path}.{field}: unknown field (a {type_name} has: {', '.join(sorted(field_to_attr))})")
            continue
        present[attr] = v
        errors += schema_errors(v, model.openapi_types[attr], f"{path}.{field}")
    try:
        model(**present)  # the models refuse a missing required field or a bad enum value
    except ValueError as e:
        errors.append(f"{path}: {e}")
    return errors


def object_schema_errors(obj):
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    type_name = api_version.split("/")[-1].capitalize() + kind
    if not hasattr(k8s_models, type_name):
        return [f"{kind} {api_version}: no such API type ({type_name}) in python3-kubernetes"]
    return schema_errors(obj, type_name, f"{kind}/{obj.get('metadata', {}).get('name')}")


# --- iridium's flags and variables, from this build's --help -----------------

def help_options(*subcommand):
    """The flags (short and long) and IRIDIUM_* variables `iridium [SUB] --help` lists."""
    text = subprocess.run([IRIDIUM, *subcommand, "--help"], capture_output=True, text=True, timeout=30).stdout
    flags, envs = set(), set()
    for line in text.splitlines():
        m = re.match(r"\s+((?:-\w,)?--[\w-]+)", line)
        if m:
            flags.update(m.group(1).split(","))
        envs.update(re.findall(r"Env:(IRIDIUM_\w+)", line))
    if "--join" not in flags and not subcommand:
        raise AssertionError(f"cannot read the options from `iridium --help`:\n{text}")
    return flags, envs


def flag_errors(statefulset, node_flags, node_envs, attach_flags):
    """Every flag or IRIDIUM_* variable the pod passes that this build lacks."""
    errors = []
    container = the_container(statefulset)
    if container.get("command") != ["iridium"]:
        errors.append(f"command {container.get('command')!r}: expected ['iridium']")
    for arg in container.get("args", []):
        if arg.startswith("-") and arg.split("=", 1)[0] not in node_flags:
            errors.append(f"args: iridium has no flag {arg.split('=', 1)[0]}")
    for name in env_list(container):
        if name.startswith("IRIDIUM_") and name not in node_envs:
            errors.append(f"env: iridium reads no variable {name}")
    for probe in ("readinessProbe", "livenessProbe"):
        command = container.get(probe, {}).get("exec", {}).get("command", [])
        if command[:2] != ["iridium", "attach"]:
            errors.append(f"{probe}: expected `iridium attach ...`, got {command!r}")
            continue
        errors += [f"{probe}: iridium attach has no flag {a}" for a in command[2:]
                   if a.startswith("-") and a.split("=", 1)[0] not in attach_flags]
    return errors


# --- a stand-in API server for kubectl's discovery ----------------------------

def resource_list(group_version, name, kind):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": [{"name": name, "singularName": "", "namespaced": True, "kind": kind,
                           "verbs": ["create", "get", "list", "patch", "delete"]}]}


DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in ("apps", "policy")]},
    "/api/v1": resource_list("v1", "services", "Service"),
    "/apis/apps/v1": resource_list("apps/v1", "statefulsets", "StatefulSet"),
    "/apis/policy/v1": resource_list("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"),
}


class DiscoveryOnly(http.server.BaseHTTPRequestHandler):
    """Discovery for the three kinds; 404 for everything else (no object
    exists, so `apply` creates; no OpenAPI schema)."""
    requests = []

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        DiscoveryOnly.requests.append(path)
        body = DISCOVERY.get(path) or {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                       "reason": "NotFound", "code": 404}
        data = json.dumps(body).encode()
        self.send_response(200 if path in DISCOVERY else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


# --- the kubelet's part, for running the container here ----------------------

class Pod:
    """The StatefulSet's pod `name` as a local process: the container's
    command, args and env as the kubelet expands them, with each volume in a
    temporary directory, each container port moved to a free local port, and
    Secrets given as {secret: {key: bytes}}."""

    def __init__(self, statefulset, name, namespace, secret_data, root):
        pod_spec = statefulset["spec"]["template"]["spec"]
        self.container = the_container(statefulset)
        self.grace = pod_spec.get("terminationGracePeriodSeconds", 30)
        self.ports = {p["containerPort"]: free_port() for p in self.container.get("ports", [])}
        self.paths = {}
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        for mount in self.container.get("volumeMounts", []):
            local = os.path.join(root, mount["name"])
            os.makedirs(local)
            self.paths[mount["mountPath"]] = local
            secret = volumes[mount["name"]].get("secret")
            if secret:
                data = secret_data[secret["secretName"]]
                for item in secret.get("items") or [{"key": k, "path": k} for k in data]:
                    path = os.path.join(local, item["path"])
                    with open(path, "wb") as f:
                        f.write(data[item["key"]])
                    os.chmod(path, secret.get("defaultMode", 0o644))
        self.env = {k: self.localise(v) for k, v in container_env(self.container, name, namespace, secret_data).items()}
        self.args = [self.localise(a) for a in container_args(self.container, self.env)]
        self.root = root
        self.proc = None

    def localise(self, text):
        """Container paths and ports, as they are here."""
        for container_path, local in self.paths.items():
            text = text.replace(container_path, local)
        for port, local_port in self.ports.items():
            text = re.sub(rf"(?<![0-9]){port}(?![0-9])", str(local_port), text)
        return text

    def start(self):
        log = open(os.path.join(self.root, "iridium.log"), "w")
        self.proc = subprocess.Popen([IRIDIUM, *self.args], env=clean_env(**self.env), cwd=self.root,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def log(self):
        with open(os.path.join(self.root, "iridium.log")) as f:
            return f.read()

    def probe(self, which, env=None):
        """Runs the probe's command in the container's environment (as an
        exec probe does), within the probe's timeoutSeconds."""
        spec = self.container[which]
        command = [self.localise(a) for a in spec["exec"]["command"]]
        return subprocess.run([IRIDIUM, *command[1:]], env=clean_env(**(self.env if env is None else env)),
                              capture_output=True, text=True, timeout=spec.get("timeoutSeconds", 1) + 5)

    def stop(self):
        if self.proc is not None:
            kill_process(self.proc)


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects = rendered_objects(KUBECTL, MANIFESTS)
        cls.kinds = by_kind(cls.objects)
        cls.node_flags, cls.node_envs = help_options()
        cls.attach_flags, _ = help_options("attach")

    def one(self, kind):
        found = self.kinds.get(kind, [])
        self.assertEqual(len(found), 1, f"expected one {kind}, found {len(found)}")
        return found[0]

    def test_kustomize_builds_exactly_the_three_objects_with_the_registry_image(self):
        self.assertEqual(sorted(o["kind"] for o in self.objects), sorted(KINDS))
        image = the_container(self.one("StatefulSet"))["image"]
        self.assertIn("/", image, f"the kustomization's images: entry did not replace the placeholder: {image}")

    def test_kubectl_apply_dry_run_client_accepts_them(self):
        DiscoveryOnly.requests = []
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DiscoveryOnly)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "kubeconfig")
            with open(config, "w") as f:
                json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "offline",
                           "clusters": [{"name": "offline",
                                         "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                           "users": [{"name": "nobody", "user": {}}],
                           "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "nobody",
                                                                        "namespace": "iridium-test"}}]}, f)
            applied = kubectl("--kubeconfig", config, "--cache-dir", os.path.join(tmp, "cache"),
                              "apply", "--dry-run=client", "--validate=false", "-o", "json", "-k", MANIFESTS)
        self.assertEqual(applied.returncode, 0, f"kubectl apply --dry-run=client failed:\n{applied.stderr}")
        result = json.loads(applied.stdout)
        items = result["items"] if result.get("kind") == "List" else [result]
        self.assertEqual(sorted(i["kind"] for i in items), sorted(KINDS))
        for item in items:
            self.assertEqual(item["metadata"].get("namespace"), "iridium-test", item["kind"])
        # kubectl looked each object up (to create it) through the stand-in.
        for path in ("/api/v1/namespaces/iridium-test/services/iridium",
                     "/apis/apps/v1/namespaces/iridium-test/statefulsets/iridium",
                     "/apis/policy/v1/namespaces/iridium-test/poddisruptionbudgets/iridium"):
            self.assertIn(path, DiscoveryOnly.requests)

    def test_every_field_fits_the_kubernetes_api_schema(self):
        errors = [e for obj in self.objects for e in object_schema_errors(obj)]
        self.assertEqual(errors, [], "\n".join(errors))

    def test_the_schema_check_catches_a_misspelt_field_a_wrong_type_and_a_missing_field(self):
        sts = copy.deepcopy(self.one("StatefulSet"))
        container = the_container(sts)
        container["readinesProbe"] = container.pop("readinessProbe")
        container["ports"][0]["containerPort"] = "2254"
        del sts["spec"]["template"]["spec"]["containers"][0]["name"]
        errors = "\n".join(object_schema_errors(sts))
        self.assertIn("readinesProbe: unknown field", errors)
        self.assertIn("containerPort: expected int", errors)
        self.assertIn("`name`, must not be `None`", errors)

    def test_headless_service_finds_every_pod_before_it_is_ready(self):
        service, sts = self.one("Service"), self.one("StatefulSet")
        self.assertEqual(service["spec"].get("clusterIP"), "None")
        self.assertIs(service["spec"].get("publishNotReadyAddresses"), True)
        self.assertEqual(sts["spec"]["serviceName"], service["metadata"]["name"])
        pod_labels = sts["spec"]["template"]["metadata"]["labels"]
        selectors = {"StatefulSet": sts["spec"]["selector"]["matchLabels"],
                     "PodDisruptionBudget": self.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                     "Service": service["spec"]["selector"]}
        for kind, selector in selectors.items():
            self.assertTrue(selector, kind)
            self.assertLessEqual(selector.items(), pod_labels.items(), f"{kind}'s selector misses the pods")
        port_names = {p["name"] for p in the_container(sts)["ports"]}
        for port in service["spec"]["ports"]:
            self.assertIn(port["targetPort"], port_names, f"Service port {port['name']}")

    def test_pod_is_named_and_advertised_by_its_stable_dns_name(self):
        sts, service = self.one("StatefulSet"), self.one("Service")
        container = the_container(sts)
        env = env_list(container)
        self.assertEqual(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        self.assertEqual(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace")
        self.assertEqual(env["IRIDIUM_NODE_ALIAS"]["value"], "$(POD_NAME)")
        suffix = f".{service['metadata']['name']}.$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN)"
        self.assertEqual(env["IRIDIUM_ADVERTISE_HOST"]["value"], "$(POD_NAME)" + suffix)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        seeds = env["IRIDIUM_JOIN"]["value"].split(",")
        self.assertEqual(seeds, [f"{sts['metadata']['name']}-{i}{suffix}:{ports['cluster']}" for i in range(3)])
        # Each $(VAR) refers to a variable defined above it, or the kubelet leaves it as written.
        names = list(env)
        for i, name in enumerate(names):
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", env[name].get("value", "")):
                self.assertIn(ref, names[:i], f"{name} uses $({ref}) before it is defined")
        args = container["args"]
        self.assertEqual(args[args.index("--server-bind-port") + 1], str(ports["cluster"]))
        self.assertEqual(args[args.index("--bind-port") + 1], str(ports["shell"]))
        self.assertEqual(args[args.index("--server-bind-host") + 1], "0.0.0.0")
        self.assertIn("--daemon-mode", args)

    def test_secrets_token_and_key_file_are_wired(self):
        sts = self.one("StatefulSet")
        pod_spec = sts["spec"]["template"]["spec"]
        container = the_container(sts)
        env = env_list(container)
        self.assertEqual(env["IRIDIUM_REMOTE_TOKEN"]["valueFrom"]["secretKeyRef"],
                         {"name": "iridium-remote-token", "key": "token"})
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        key_mounts = [m for m in container["volumeMounts"]
                      if volumes[m["name"]].get("secret", {}).get("secretName") == "iridium-cluster-key"]
        self.assertEqual(len(key_mounts), 1, "the cluster key Secret is mounted once")
        mount = key_mounts[0]
        self.assertIs(mount.get("readOnly"), True)
        items = {i["path"]: i["key"] for i in volumes[mount["name"]]["secret"]["items"]}
        key_file = env["IRIDIUM_CLUSTER_KEY"]["value"]
        self.assertEqual(os.path.dirname(key_file), mount["mountPath"])
        self.assertEqual(items.get(os.path.basename(key_file)), "cluster.key")
        # The remote shell (and `iridium attach` in the probes) use the same key.
        self.assertEqual(env["IRIDIUM_REMOTE_KEY"]["value"], "$(IRIDIUM_CLUSTER_KEY)")
        for m in container["volumeMounts"]:
            self.assertIn(m["name"], volumes)

    def test_probes_grace_period_resources_and_disruption_budget(self):
        sts = self.one("StatefulSet")
        container = the_container(sts)
        shell_port = {p["name"]: p["containerPort"] for p in container["ports"]}["shell"]
        for probe in ("readinessProbe", "livenessProbe"):
            command = container[probe]["exec"]["command"]
            self.assertEqual(command[:3], ["iridium", "attach", f"127.0.0.1:{shell_port}"], probe)
            attach_timeout = float(command[command.index("--timeout") + 1])
            self.assertLess(attach_timeout, container[probe]["timeoutSeconds"],
                            f"{probe}: iridium attach must give up before the kubelet does")
        grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(grace, 5, "a node needs about a second to leave; leave it room")
        for kind in ("requests", "limits"):
            self.assertEqual(set(container["resources"][kind]), {"cpu", "memory"}, kind)
        self.assertEqual(self.one("PodDisruptionBudget")["spec"].get("maxUnavailable"), 1)

    def test_every_flag_and_variable_passed_exists_in_this_build(self):
        errors = flag_errors(self.one("StatefulSet"), self.node_flags, self.node_envs, self.attach_flags)
        self.assertEqual(errors, [], "\n".join(errors))

    def test_the_flag_check_catches_a_made_up_flag_and_variable(self):
        sts = copy.deepcopy(self.one("StatefulSet"))
        container = the_container(sts)
        container["args"].append("--made-up-flag")
        container["env"].append({"name": "IRIDIUM_MADE_UP", "value": "1"})
        container["livenessProbe"]["exec"]["command"].append("--made-up-probe-flag")
        errors = flag_errors(sts, self.node_flags, self.node_envs, self.attach_flags)
        self.assertIn("args: iridium has no flag --made-up-flag", errors)
        self.assertIn("env: iridium reads no variable IRIDIUM_MADE_UP", errors)
        self.assertIn("livenessProbe: iridium attach has no flag --made-up-probe-flag", errors)

    def test_the_container_runs_as_pod_iridium_0_passes_its_probes_and_leaves_on_sigterm(self):
        sts, service = self.one("StatefulSet"), self.one("Service")
        with tempfile.TemporaryDirectory() as tmp:
            key = os.path.join(tmp, "cluster.key")
            made = subprocess.run([IRIDIUM, "keygen", key], capture_output=True, text=True, timeout=30)
            self.assertEqual(made.returncode, 0, f"iridium keygen: {made.stderr}")
            with open(key, "rb") as f:
                secret_data = {"iridium-cluster-key": {"cluster.key": f.read()},
                               "iridium-remote-token": {"token": secrets.token_hex(16).encode()}}
            pod = Pod(sts, "iridium-0", "iridium-test", secret_data, os.path.join(tmp, "pod"))
            self.addCleanup(pod.stop)
            pod.start()

            def ready():
                if pod.proc.poll() is not None:
                    raise AssertionError(f"iridium exited with {pod.proc.returncode}:\n{pod.log()}")
                return parse_snapshot(pod.probe("readinessProbe"))

            snapshot = wait_until(ready, 20, lambda: f"the readiness probe to pass; log:\n{pod.log()}")
            dns_name = f"iridium-0.{service['metadata']['name']}.iridium-test.svc.cluster.local"
            self.assertEqual(snapshot["self"]["alias"], "iridium-0")
            self.assertEqual(snapshot["self"]["host"], dns_name)
            self.assertIs(snapshot["started"], True)
            self.assertEqual(parse_snapshot(pod.probe("livenessProbe"))["self"]["alias"], "iridium-0")
            # The probes pass because they carry the token: without it the shell refuses them.
            no_token = {k: v for k, v in pod.env.items() if k != "IRIDIUM_REMOTE_TOKEN"}
            self.assertNotEqual(pod.probe("readinessProbe", env=no_token).returncode, 0)

            started = time.monotonic()
            pod.proc.send_signal(signal.SIGTERM)
            code = pod.proc.wait(timeout=pod.grace + 5)
            took = time.monotonic() - started
            print(f"SIGTERM to exit: {took:.2f} s (grace period {pod.grace} s)", flush=True)
            self.assertEqual(code, 0, pod.log())
            self.assertLess(took, pod.grace, "the kubelet would have killed it first")
            self.assertIn("left the cluster", pod.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
