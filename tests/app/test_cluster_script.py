"""scripts/cluster's compose front end, against stub docker / apt-get / sudo
commands (no Docker needed): it uses `docker compose` (v2) or docker-compose
(1.29), installs Debian's docker-compose when there is neither (as root, or
through sudo), and does all that before it builds any image. And the cluster
key: `up` makes it once (with the image's `iridium keygen`, which the stub
docker plays), outside the checkout, and hands its directory to compose.
And the Swarm engine (--engine swarm): its arguments, the stack deploy, and
that `down` leaves a swarm only when `up` made it and nothing else runs. And
the host's ARP table limit: raised by `up N` when N containers need more,
put back by `down`.

Run as: test_cluster_script.py SOURCE_DIR
"""
import hashlib
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

# Each stub appends "NAME ARGS" to $STUB_LOG; compose also logs the key
# directory it was given ("compose-env IRIDIUM_KEY_DIR=...").
# `docker run ... -v DIR:/keys IMAGE sh -c '... iridium keygen ...'` writes a
# key file as keygen does (mode 0600, never over an existing file).
STUB_KEY = 'public-key = "StubPublicKey0123456789012345678901234567"\nsecret-key = "StubSecret"\n'
DOCKER = r"""#!/bin/bash
echo "docker $*" >>"$STUB_LOG"
case "$1 ${2:-}" in
  "compose version") [ "${STUB_COMPOSE_V2:-0}" = 1 ] && { echo "Docker Compose version v2.20.0"; exit 0; }
                     echo "docker: 'compose' is not a docker command." >&2; exit 1 ;;
  "compose "*) echo "compose-env IRIDIUM_KEY_DIR=${IRIDIUM_KEY_DIR:-}" >>"$STUB_LOG"; exit 0 ;;
  "run "*)
    for a in "$@"; do case $a in *:/keys) dir=${a%:/keys} ;; *:/keys:ro) dir=${a%:/keys:ro} ;; esac; done
    if [[ "$*" == *"iridium keygen /keys/cluster.key"* ]]; then
      [ -d "$dir" ] && [ ! -e "$dir/cluster.key" ] || exit 1
      (umask 077; printf '%s' "$STUB_KEY" >"$dir/cluster.key")
    fi
    case "$*" in
      *"sha256sum /keys/cluster.key") sha256sum "$dir/cluster.key" | sed 's|  .*|  /keys/cluster.key|' ;;
      *"cat /keys/cluster.key") cat "$dir/cluster.key" ;;
      *'$(id -u) $(id -g)'*) echo "998 997" ;;   # the image's iridium user
    esac
    exit 0 ;;
  "image inspect") echo "sha256:stub"; exit 0 ;;   # every image exists
  "build "*) exit 0 ;;
  # Swarm: its state in $STUB_DIR/swarm (inactive, active, or worker),
  # secrets made in $STUB_DIR/secrets, other services in $STUB_SERVICES.
  "info "*)
    state=$(cat "$STUB_DIR/swarm" 2>/dev/null || echo inactive)
    case "$*" in
      *LocalNodeState*) [ "$state" = inactive ] && echo inactive || echo active ;;
      *ControlAvailable*) [ "$state" = active ] && echo true || echo false ;;
      *NodeID*) [ "$state" = inactive ] && echo "" || echo stubnode1 ;;
    esac
    exit 0 ;;
  "swarm init") # as Docker does, it raises the host's ARP table limits
    echo active >"$STUB_DIR/swarm"; echo "49152 65536 8192" >"$STUB_DIR/neigh"; exit 0 ;;
  "swarm leave") echo inactive >"$STUB_DIR/swarm"; exit 0 ;;
  "secret inspect") grep -qxF "$3" "$STUB_DIR/secrets" 2>/dev/null; exit ;;
  "secret create")
    echo "${@: -2:1}" >>"$STUB_DIR/secrets"
    echo "secret-stdin $(cat | head -n 1)" >>"$STUB_LOG"; exit 0 ;;
  "secret ls") [[ "$*" == *Name* ]] && cat "$STUB_DIR/secrets" 2>/dev/null; exit 0 ;;
  "stack deploy")
    echo "stack-env $IRIDIUM_REPLICAS $IRIDIUM_KEY_SECRET $IRIDIUM_NODE_UID:$IRIDIUM_NODE_GID" >>"$STUB_LOG"
    exit 0 ;;
  "service ls") [ -n "${STUB_SERVICES:-}" ] && echo "$STUB_SERVICES"; exit 0 ;;
  "service inspect") [ "$(cat "$STUB_DIR/swarm" 2>/dev/null)" = active ]; exit ;;
esac
exit 0  # ps, network ls, ...: nothing to list
"""
DOCKER_COMPOSE = r"""#!/bin/bash
echo "docker-compose $*" >>"$STUB_LOG"
echo "compose-env IRIDIUM_KEY_DIR=${IRIDIUM_KEY_DIR:-}" >>"$STUB_LOG"
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
[ "${STUB_SUDO_OK:-1}" = 1 ] || exit 1
exec "$@"
"""
ID = r"""#!/bin/bash
if [ "$1" = -u ]; then echo "${STUB_UID:-0}"; else exec /usr/bin/id "$@"; fi
"""
# The host's ARP table limits, kept in $STUB_DIR/neigh ("SOFT HARD LOW":
# gc_thresh2, 3 and 1, LOW 128 when absent); a -w fails unless
# $STUB_SYSCTL_OK is 1 (root, or a sudo that works).
SYSCTL = r"""#!/bin/bash
echo "sysctl $*" >>"$STUB_LOG"
read -r soft hard low <"$STUB_DIR/neigh"
low=${low:-128}
case "$*" in
  "-n net.ipv4.neigh.default.gc_thresh1") echo "$low" ;;
  "-n net.ipv4.neigh.default.gc_thresh2") echo "$soft" ;;
  "-n net.ipv4.neigh.default.gc_thresh3") echo "$hard" ;;
  "-q -w "*)
    [ "${STUB_SYSCTL_OK:-1}" = 1 ] || exit 1
    for setting in "${@:3}"; do
      case "$setting" in
        *gc_thresh1=*) low=${setting#*=} ;;
        *gc_thresh2=*) soft=${setting#*=} ;;
        *gc_thresh3=*) hard=${setting#*=} ;;
      esac
    done
    echo "$soft $hard $low" >"$STUB_DIR/neigh" ;;
esac
"""
HIDDEN = {"docker", "docker-compose", "apt-get", "sudo", "id", "sysctl"}


class StubbedScript(unittest.TestCase):
    """Runs scripts/cluster with only the stubs for docker, compose, apt-get,
    sudo and id, and HOME in a temp directory."""

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
        self.stub("sysctl", SYSCTL)
        with open(os.path.join(self.bin, "neigh"), "w") as f:
            f.write("512 1024\n")
        self.stub("docker-compose.pkg", DOCKER_COMPOSE)  # what apt-get "installs"
        self.log = os.path.join(self.tmp.name, "log")
        open(self.log, "w").close()
        self.home = os.path.join(self.tmp.name, "home")
        os.mkdir(self.home)
        # The cgroup filesystem the script sees: never the host's own.
        self.cgroup = os.path.join(self.tmp.name, "cgroup")
        os.mkdir(self.cgroup)

    def tearDown(self):
        self.tmp.cleanup()

    def stub(self, name, text):
        path = os.path.join(self.bin, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def cluster(self, *args, **env):
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("IRIDIUM_", "STUB_")) and k != "XDG_STATE_HOME"}
        environment.update(PATH=self.bin, STUB_LOG=self.log, STUB_DIR=self.bin, STUB_KEY=STUB_KEY, HOME=self.home,
                           IRIDIUM_UP_TIMEOUT="1", IRIDIUM_CGROUP_ROOT=self.cgroup, **env)
        r = subprocess.run([CLUSTER, *args], capture_output=True, text=True, timeout=60, env=environment)
        with open(self.log) as f:
            calls = f.read().splitlines()
        open(self.log, "w").close()  # each call's own calls
        return r, calls

    def index(self, calls, prefix):
        for i, call in enumerate(calls):
            if call.startswith(prefix):
                return i
        self.fail(f"no call starting with {prefix!r} in {calls}")


class ComposeFrontEnd(StubbedScript):

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


class ClusterKey(StubbedScript):
    """The cluster key's life: made once by `up`, kept by `down`, removed by
    `down --keys`; never inside the checkout."""

    def setUp(self):
        super().setUp()
        self.stub("docker-compose", DOCKER_COMPOSE)
        self.key_dir = os.path.join(self.home, ".local", "state", "iridium", "iridium")
        self.key = os.path.join(self.key_dir, "cluster.key")

    def keygen_calls(self, calls):
        return [c for c in calls if c.startswith("docker run ") and "iridium keygen" in c]

    def test_up_makes_the_key_once_and_reuses_it(self):
        r, calls = self.cluster("up", "2")
        self.assertIn(f"made a new cluster key {self.key} (StubPubl)", r.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.key_dir).st_mode), 0o700)
        keygen = self.keygen_calls(calls)
        self.assertEqual(len(keygen), 1, calls)
        # In a throwaway container of the image just built, with no network,
        # the directory mounted in, and the file handed to the nodes' user.
        self.assertIn(f"--network none --user 0:0 -v {self.key_dir}:/keys iridium:local sh -c", keygen[0])
        self.assertIn("chown iridium:iridium /keys/cluster.key", keygen[0])
        self.assertLess(self.index(calls, "docker build"), self.index(calls, keygen[0]))
        self.assertLess(self.index(calls, keygen[0]), self.index(calls, "docker-compose -p iridium -f compose.yaml up"))
        self.assertIn(f"compose-env IRIDIUM_KEY_DIR={self.key_dir}", calls)
        with open(self.key) as f:
            made = f.read()

        r, calls = self.cluster("up", "3")
        self.assertEqual(self.keygen_calls(calls), [], "a second up must reuse the key")
        # ... handed to the nodes' user again, in case it was made by hand.
        adopt = [c for c in calls if c.startswith("docker run ")]
        self.assertEqual(adopt, [f"docker run --rm --network none --user 0:0 -v {self.key_dir}:/keys iridium:local "
                                 "sh -c chown iridium:iridium /keys/cluster.key && chmod 0600 /keys/cluster.key"])
        self.assertLess(self.index(calls, adopt[0]), self.index(calls, "docker-compose -p iridium -f compose.yaml up"))
        self.assertIn(f"cluster key {self.key} (StubPubl)", r.stdout)
        self.assertIn("docker-compose -p iridium -f compose.yaml up -d --no-build --remove-orphans --scale node=2",
                      calls)
        with open(self.key) as f:
            self.assertEqual(f.read(), made)

    def neigh(self):
        """gc_thresh2 and gc_thresh3 of the stub host."""
        with open(os.path.join(self.bin, "neigh")) as f:
            return f.read().split()[:2]

    def test_up_raises_the_hosts_arp_limit_for_many_nodes_and_down_puts_it_back(self):
        r, calls = self.cluster("up", "3")
        self.assertEqual(self.neigh(), ["512", "1024"])  # 3 nodes fit the stock limit
        self.assertFalse([c for c in calls if c.startswith("sysctl -q -w")], calls)
        r, calls = self.cluster("up", "64")  # (the stubs run no container: up's wait fails)
        self.assertEqual(self.neigh(), ["8450", "16900"])  # 2 (N+1)^2 and twice that
        self.assertIn("raised the host's ARP table limit (net.ipv4.neigh.default.gc_thresh3) from 1024 to 16900",
                      r.stdout)
        self.assertLess(self.index(calls, "sysctl -q -w"), self.index(calls, "docker-compose -p iridium -f compose.yaml up"))
        r, calls = self.cluster("down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.neigh(), ["512", "1024"])
        self.assertIn("put the host's ARP table limit back to 1024", r.stdout)
        r, calls = self.cluster("down")  # nothing to put back twice
        self.assertFalse([c for c in calls if c.startswith("sysctl -q -w")], calls)

    def test_without_rights_to_raise_the_arp_limit_up_says_what_to_run(self):
        r, calls = self.cluster("up", "64", STUB_SYSCTL_OK="0")
        self.assertEqual(self.neigh(), ["512", "1024"])
        self.assertIn("64 containers need about 8450 ARP entries and this host allows 1024", r.stderr)
        self.assertIn("sysctl -w net.ipv4.neigh.default.gc_thresh2=8450 net.ipv4.neigh.default.gc_thresh3=16900",
                      r.stderr)
        self.cluster("down")
        self.assertEqual(self.neigh(), ["512", "1024"])

    def cpu_weight_file(self, relative, value):
        path = os.path.join(self.cgroup, relative)
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(f"{value}\n")
        return path

    def read(self, path):
        with open(path) as f:
            return f.read().strip()

    def test_up_raises_the_containers_cpu_weight_cgroup_v1_and_down_puts_it_back(self):
        shares = self.cpu_weight_file("cpu/docker/cpu.shares", 1024)
        r, _ = self.cluster("up", "64")
        self.assertEqual(self.read(shares), str(1024 * 65))  # N + 1 processes' worth
        self.assertIn(f"raised the CPU weight of Docker's containers ({shares}) from 1024 to 66560", r.stdout)
        r, _ = self.cluster("up", "8")  # never lowered while raised
        self.assertEqual(self.read(shares), "66560")
        r, _ = self.cluster("down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read(shares), "1024")
        self.assertIn("put the CPU weight of Docker's containers back to 1024", r.stdout)
        r, _ = self.cluster("down")  # nothing to put back twice
        self.assertNotIn("CPU weight", r.stdout)

    def test_up_raises_the_containers_cpu_weight_cgroup_v2_up_to_the_kernels_maximum(self):
        weight = self.cpu_weight_file("docker/cpu.weight", 100)
        self.cluster("up", "200")
        self.assertEqual(self.read(weight), "10000")
        self.cluster("down")
        self.assertEqual(self.read(weight), "100")

    def test_without_rights_to_raise_the_cpu_weight_up_says_what_to_run(self):
        shares = self.cpu_weight_file("cpu/docker/cpu.shares", 1024)
        r, _ = self.cluster("up", "16", STUB_UID="1000", STUB_SUDO_OK="0")
        self.assertEqual(self.read(shares), "1024")
        self.assertIn(f"As root: echo 17408 > {shares}", r.stderr)
        r, _ = self.cluster("down", STUB_UID="1000", STUB_SUDO_OK="0")
        self.assertEqual(self.read(shares), "1024")

    def test_without_dockers_parent_cgroup_up_changes_no_cpu_weight(self):
        r, _ = self.cluster("up", "64")  # systemd's driver: no docker/ parent
        self.assertNotIn("CPU weight", r.stdout + r.stderr)
        self.assertEqual(os.listdir(self.cgroup), [])

    def test_down_keeps_the_key_and_down_keys_removes_it(self):
        self.cluster("up")
        r, calls = self.cluster("down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isfile(self.key))
        self.assertIn(f"compose-env IRIDIUM_KEY_DIR={self.key_dir}", calls)
        r, calls = self.cluster("down", "--keys")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("docker-compose -p iridium -f compose.yaml down -v --remove-orphans", calls)
        self.assertFalse(os.path.exists(self.key))
        self.assertFalse(os.path.exists(self.key_dir))  # emptied, so removed
        self.assertIn(f"removed the cluster key {self.key}", r.stdout)
        _, calls = self.cluster("up")
        self.assertEqual(len(self.keygen_calls(calls)), 1, "up after down --keys makes a new key")
        r, calls = self.cluster("down", "--all")
        self.assertEqual(r.returncode, 1)
        self.assertIn("down takes only --keys", r.stderr)
        self.assertFalse([c for c in calls if c.startswith("docker-compose")], calls)

    def test_key_prints_path_and_fingerprint(self):
        r, _ = self.cluster("key")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"no cluster key yet; scripts/cluster up makes one at {self.key}", r.stderr)
        self.cluster("up")
        r, _ = self.cluster("key")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"{self.key}\nfingerprint StubPubl\n")

    def test_key_directory_follows_project_state_home_and_override(self):
        state = os.path.join(self.tmp.name, "state")
        _, calls = self.cluster("up", IRIDIUM_PROJECT="other", XDG_STATE_HOME=state)
        key = os.path.join(state, "iridium", "other", "cluster.key")
        self.assertTrue(os.path.isfile(key))
        self.assertIn(f"compose-env IRIDIUM_KEY_DIR={os.path.dirname(key)}", calls)
        chosen = os.path.join(self.tmp.name, "keys", "..", "mine")  # made absolute and normal
        _, calls = self.cluster("up", IRIDIUM_KEY_DIR=chosen)
        self.assertTrue(os.path.isfile(os.path.join(self.tmp.name, "mine", "cluster.key")))
        self.assertIn(f"compose-env IRIDIUM_KEY_DIR={os.path.join(self.tmp.name, 'mine')}", calls)
        self.assertFalse(os.path.exists(self.key))

    def test_a_key_directory_inside_the_checkout_is_refused(self):
        # Inside the checkout a key could be committed or reach a build context.
        for inside in (os.path.join(SOURCE, "keys"), os.path.join(SOURCE, "src", "..", "build", "k")):
            r, calls = self.cluster("up", IRIDIUM_KEY_DIR=inside)
            self.assertEqual(r.returncode, 1)
            self.assertIn("is inside the checkout", r.stderr)
            self.assertEqual(self.keygen_calls(calls), [])
            self.assertFalse([c for c in calls if c.startswith("docker-compose")], calls)
            self.assertFalse(os.path.exists(inside))
        # The default place is outside it.
        self.cluster("up")
        self.assertFalse(os.path.realpath(self.key).startswith(os.path.realpath(SOURCE) + os.sep))

    def test_without_home_the_key_directory_must_be_given(self):
        environment_home = self.home
        self.home = ""
        try:
            r, calls = self.cluster("down")
        finally:
            self.home = environment_home
        self.assertEqual(r.returncode, 1)
        self.assertIn("set IRIDIUM_KEY_DIR", r.stderr)
        self.assertFalse([c for c in calls if c.startswith("docker-compose")], calls)


class SwarmEngine(StubbedScript):
    """--engine swarm against the stub: which swarm it makes and leaves, and
    what it hands `docker stack deploy`."""

    def setUp(self):
        super().setUp()
        self.state = os.path.join(self.bin, "swarm")
        self.key_dir = os.path.join(self.home, ".local", "state", "iridium", "iridium")
        self.marker = os.path.join(self.key_dir, "swarm-initialised")

    def swarm(self, *args, **env):
        return self.cluster("--engine", "swarm", *args, **env)

    def set_state(self, state):
        with open(self.state, "w") as f:
            f.write(state + "\n")

    def test_up_makes_a_swarm_and_down_leaves_it(self):
        r, calls = self.swarm("up", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("made this Docker engine a single-node swarm", r.stdout)
        init = self.index(calls, "docker swarm init --advertise-addr 127.0.0.1")
        # The image and the key come first, the stack after the swarm.
        self.assertLess(self.index(calls, "docker build"), init)
        self.assertLess(self.index(calls, "docker run --rm --network none --user 0:0 -v "), init)
        deploy = self.index(calls, "docker stack deploy --resolve-image never --prune -c "
                                   f"{SOURCE}/deploy/swarm/stack.yaml iridium")
        self.assertLess(init, deploy)
        with open(os.path.join(self.key_dir, "cluster.key"), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        secret = f"iridium_cluster_key_{digest}"
        # The secret is made from the key file's text, piped in (never a path docker reads).
        self.assertIn(f"docker secret create --label io.iridium.stack=iridium {secret} -", calls)
        self.assertIn(f"secret-stdin {STUB_KEY.splitlines()[0]}", calls)
        self.assertEqual(calls[deploy + 1], f"stack-env 2 {secret} 998:997")
        self.assertFalse([c for c in calls if "compose" in c], calls)
        with open(self.marker) as f:
            self.assertEqual(f.read().strip(), "stubnode1")

        r, calls = self.swarm("up", "3")  # the same swarm and secret again
        self.assertNotIn("docker swarm init --advertise-addr 127.0.0.1", calls)
        self.assertFalse([c for c in calls if c.startswith("docker secret create")], calls)
        self.assertIn(f"stack-env 3 {secret} 998:997", calls)

        r, calls = self.swarm("down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(self.index(calls, "docker stack rm iridium"), self.index(calls, "docker swarm leave --force"))
        self.assertIn("left the swarm that up started", r.stdout)
        self.assertFalse(os.path.exists(self.marker))
        # swarm init raised the host's ARP limits; down put all three back.
        with open(os.path.join(self.bin, "neigh")) as f:
            self.assertEqual(f.read().split(), ["512", "1024", "128"])
        self.assertIn("put the host's ARP table limits back to 128 512 1024", r.stdout)
        self.assertTrue(os.path.isfile(os.path.join(self.key_dir, "cluster.key")))  # the key stays

    def test_a_swarm_that_was_there_is_never_left(self):
        self.set_state("active")
        r, calls = self.swarm("up")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse([c for c in calls if c.startswith("docker swarm")], calls)
        self.assertIn("stack-env 3 ", " ".join(calls))
        self.assertFalse(os.path.exists(self.marker))
        r, calls = self.swarm("down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("docker stack rm iridium", calls)
        self.assertFalse([c for c in calls if c.startswith("docker swarm")], calls)

    def test_down_stays_in_the_swarm_while_other_services_run(self):
        self.swarm("up")
        r, calls = self.swarm("down", STUB_SERVICES="otherservice1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("other services still run", r.stderr)
        self.assertNotIn("docker swarm leave --force", calls)
        self.assertTrue(os.path.exists(self.marker))
        r, calls = self.swarm("down")
        self.assertIn("docker swarm leave --force", calls)
        self.assertFalse(os.path.exists(self.marker))

    def test_a_swarm_made_again_by_someone_else_is_not_left(self):
        self.swarm("up")
        self.set_state("inactive")  # left by hand ...
        self.swarm("up", "1")  # ... and made again by this up: noted again
        self.assertTrue(os.path.exists(self.marker))
        with open(self.marker, "w") as f:
            f.write("someothernode\n")  # a note about a swarm that is gone
        r, calls = self.swarm("down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("docker swarm leave --force", calls)
        self.assertFalse(os.path.exists(self.marker))

    def test_a_worker_is_refused(self):
        self.set_state("worker")
        r, calls = self.swarm("up")
        self.assertEqual(r.returncode, 1)
        self.assertIn("swarm worker", r.stderr)
        self.assertFalse([c for c in calls if c.startswith(("docker stack", "docker swarm"))], calls)

    def test_engine_from_the_environment_and_scale(self):
        self.set_state("active")
        r, calls = self.cluster("scale", "5", IRIDIUM_ENGINE="swarm")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("docker service scale --detach iridium_iridium=5", calls)
        r, calls = self.cluster("--engine=swarm", "scale", "2", IRIDIUM_PROJECT="mystack")
        self.assertIn("docker service scale --detach mystack_iridium=2", calls)

    def test_argument_errors(self):
        cases = [
            (("--engine",), "--engine needs a value"),
            (("--engine", "k8s", "up"), "unknown engine 'k8s'"),
            (("--engine", "swarm", "up", "0"), "up: N must be a whole number of nodes >= 1, got '0'"),
            (("--engine", "swarm", "up", "2", "3"), "up takes at most one argument"),
            (("--engine", "swarm", "scale"), "scale needs N"),
            (("--engine", "swarm", "scale", "x"), "scale: N must be a whole number of nodes >= 1, got 'x'"),
            (("--engine", "swarm", "stop", "node-1"), "stop is for the compose engine"),
            (("--engine", "swarm", "cut", "node-1"), "cut is for the compose engine"),
            (("--engine", "swarm", "attach"), "attach needs a NODE (node-1, node-2, …)"),
            (("--engine", "swarm", "kill", "node-9"), "no task 'node-9' in the iridium stack"),
            (("--engine", "swarm", "graph", "out.jpg"), "graph: FILE must end in .png or .svg"),
            (("--engine", "swarm", "graph", "a.png", "b.png"), "graph takes at most one argument"),
            (("--engine", "swarm", "graph"), "no running nodes"),
            (("--engine", "swarm", "logs"), "no running tasks"),
            (("scale", "3"), "scale is for --engine swarm"),
            (("--engine", "swarm", "rotate-key"), "rotate-key is for the compose engine: a Swarm secret cannot change"),
            (("rotate-key", "now"), "rotate-key takes no arguments"),
            (("rotate-key",), "no cluster key yet; scripts/cluster up makes one at"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                r, calls = self.cluster(*args)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(message, r.stderr)
                self.assertFalse([c for c in calls if c.startswith(("docker swarm", "docker stack", "docker service s"))],
                                 calls)
        r, calls = self.swarm("scale", "2")  # no stack: says how to start one
        self.assertEqual(r.returncode, 1)
        self.assertIn("no iridium stack runs; start it: scripts/cluster --engine swarm up 2", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
