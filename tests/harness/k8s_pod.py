"""deploy/k8s's pods without Kubernetes: the kubelet's part, for the suites
that run the StatefulSet's container as a local process
(tests/app/test_k8s_manifests.py) or as Docker containers
(ci/e2e_k8s_pods.py).

    objects = rendered_objects(kubectl, "deploy/k8s")
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    env = container_env(the_container(sts), "iridium-0", "default", secret_data)
"""
import os
import re
import subprocess
import unittest


def skip_or_fail(reason, what):
    """A suite that cannot run here: "SKIPPED: reason" and skipped, except
    under CI=true, where it is an error (what: what cannot be checked)."""
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI=true, but {what} cannot be checked: {reason}")
    print(f"SKIPPED: {reason}", flush=True)
    raise unittest.SkipTest(reason)


def rendered_objects(kubectl, manifests):
    """The objects `kubectl apply -k manifests` would send: the kustomization, built."""
    import yaml  # python3-yaml: the suites check for it first
    built = subprocess.run([kubectl, "kustomize", manifests], capture_output=True, text=True, timeout=60)
    if built.returncode != 0:
        raise AssertionError(f"kubectl kustomize {manifests} failed:\n{built.stderr}")
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc is not None]


def the_container(statefulset):
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "iridium")


def expand(text, env):
    """Kubernetes' $(VAR) expansion: a defined VAR is replaced, $$ is a
    literal $, anything else stays as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def container_env(container, pod_name, namespace, secret_data):
    """The container's environment as the kubelet builds it for pod_name, in
    order: downward-API fields, Secrets ({secret: {key: bytes}}), and values
    with $(VAR) expanded against the variables above them."""
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    env = {}
    for e in container.get("env", []):
        source = e.get("valueFrom", {})
        if "fieldRef" in source:
            env[e["name"]] = fields[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[e["name"]] = secret_data[ref["name"]][ref["key"]].decode()
        else:
            env[e["name"]] = expand(e.get("value", ""), env)
    return env


def container_args(container, env):
    return [expand(a, env) for a in container.get("args", [])]
