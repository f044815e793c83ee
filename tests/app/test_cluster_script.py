"""scripts/cluster's compose front end, against stub docker / apt-get / sudo
commands (no Docker needed): it uses `docker compose` (v2) or docker-compose
(1.29), installs Debian's docker-compose when there is neither (as root, or
through sudo), and does all that before it builds any image.

Run as: test_cluster_script.py SOURCE_DIR
"""
import os
import stat
import subprocess
import sys
import tempfile
import unittest

if len(sys.argv) < 2:
    sys.exit(f"usage: {sys.argv[0]} SOURCE_DIR [unittest args]")
SOURCE = os.path.abspath(sys.argv.pop(1))
CLUSTER = os.path.join(SOURCE, "scripts", "cluster")

# Each stub appends "NAME ARGS" to $STUB_LOG.
DOCKER = r"""#!/bin/bash
echo "docker $*" >>"$STUB_LOG"
case "$1 ${2:-}" in
  "compose version") [ "${STUB_COMPOSE_V2:-0}" = 1 ] && { echo "Docker Compose version v2.20.0"; exit 0; }
                     echo "docker: 'compose' is not a docker command." >&2; exit 1 ;;
  "compose "*) exit 0 ;;
  "image inspect") echo "sha256:stub"; exit 0 ;;   # every image exists
  "build "*) exit 0 ;;
esac
exit 0  # ps, network ls, ...: nothing to list
"""
DOCKER_COMPOSE = r"""#!/bin/bash
echo "docker-compose $*" >>"$STUB_LOG"
[ "$1" = version ] && echo 1.29.2
exit 0
"""
APT_GET = r"""#!/bin/bash
echo "apt-get $*" >>"$STUB_LOG"
[ "${STUB_APT_FAILS:-0}" = 1 ] && [ "$1" = install ] && exit 100
if [ "$1" = install ]; then
  cp "$STUB_DIR/docker-compose.pkg" "$STUB_DIR/docker-compose"
  chmod +x "$STUB_DIR/docker-compose"
fi
exit 0
"""
SUDO = r"""#!/bin/bash
echo "sudo $*" >>"$STUB_LOG"
exec "$@"
"""
ID = r"""#!/bin/bash
if [ "$1" = -u ]; then echo "${STUB_UID:-0}"; else exec /usr/bin/id "$@"; fi
"""
HIDDEN = {"docker", "docker-compose", "apt-get", "sudo", "id"}


class ComposeFrontEnd(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.bin = os.path.join(self.tmp.name, "bin")
        os.mkdir(self.bin)
        # Every system command but the stubbed ones (merged /usr: /bin is /usr/bin).
        for name in os.listdir("/usr/bin"):
            if name not in HIDDEN:
                os.symlink(os.path.join("/usr/bin", name), os.path.join(self.bin, name))
        self.stub("docker", DOCKER)
        self.stub("apt-get", APT_GET)
        self.stub("sudo", SUDO)
        self.stub("id", ID)
        self.stub("docker-compose.pkg", DOCKER_COMPOSE)  # what apt-get "installs"
        self.log = os.path.join(self.tmp.name, "log")
        open(self.log, "w").close()

    def tearDown(self):
        self.tmp.cleanup()

    def stub(self, name, text):
        path = os.path.join(self.bin, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def cluster(self, *args, **env):
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("IRIDIUM_", "STUB_"))}
        environment.update(PATH=self.bin, STUB_LOG=self.log, STUB_DIR=self.bin, IRIDIUM_UP_TIMEOUT="1", **env)
        r = subprocess.run([CLUSTER, *args], capture_output=True, text=True, timeout=60, env=environment)
        with open(self.log) as f:
            calls = f.read().splitlines()
        return r, calls

    def index(self, calls, prefix):
        for i, call in enumerate(calls):
            if call.startswith(prefix):
                return i
        self.fail(f"no call starting with {prefix!r} in {calls}")

    def test_up_installs_docker_compose_before_building(self):
        r, calls = self.cluster("up", "2")
        installed = self.index(calls, "apt-get install -y -qq --no-install-recommends docker-compose")
        self.assertLess(self.index(calls, "apt-get update"), installed)
        self.assertIn("installing Debian's docker-compose", r.stderr)
        # The compose front end is settled before any image work ...
        self.assertLess(installed, self.index(calls, "docker image inspect"))
        self.assertLess(installed, self.index(calls, "docker build"))
        # ... and then used for `up`.
        self.assertGreater(self.index(calls, "docker-compose -p iridium -f compose.yaml up -d --no-build"),
                           self.index(calls, "docker build"))
        self.assertNotIn("sudo", " ".join(calls))  # root needs no sudo

    def test_up_fails_fast_when_nothing_can_be_installed(self):
        r, calls = self.cluster("up", STUB_APT_FAILS="1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("could not install docker-compose", r.stderr)
        self.assertEqual([c for c in calls if c.startswith("docker ")], ["docker compose version"])

    def test_not_root_installs_through_sudo(self):
        r, calls = self.cluster("down", STUB_UID="1000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
                      "docker-compose", calls)
        self.assertIn("apt-get install -y -qq --no-install-recommends docker-compose", calls)
        self.assertIn("docker-compose -p iridium -f compose.yaml down -v --remove-orphans", calls)

    def test_compose_v2_is_used_when_docker_has_it(self):
        r, calls = self.cluster("down", STUB_COMPOSE_V2="1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("docker compose -p iridium -f compose.yaml down -v --remove-orphans", calls)
        self.assertFalse([c for c in calls if c.startswith(("apt-get", "docker-compose"))], calls)

    def test_docker_compose_1_is_used_when_installed(self):
        self.stub("docker-compose", DOCKER_COMPOSE)
        r, calls = self.cluster("down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("docker-compose -p iridium -f compose.yaml down -v --remove-orphans", calls)
        self.assertFalse([c for c in calls if c.startswith("apt-get")], calls)

    def test_project_name_from_the_environment(self):
        self.stub("docker-compose", DOCKER_COMPOSE)
        r, calls = self.cluster("down", IRIDIUM_PROJECT="iridium-ci2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("docker-compose -p iridium-ci2 -f compose.yaml down -v --remove-orphans", calls)
        r, _ = self.cluster("ps", IRIDIUM_PROJECT="Bad Name")
        self.assertEqual(r.returncode, 1)
        self.assertIn("IRIDIUM_PROJECT must be", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
