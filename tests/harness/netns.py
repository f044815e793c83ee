"""Iridium nodes as hosts in Linux network namespaces, for cut/partition tests.

    hub namespace:   bridge "br0"  --  veth "pN" ...
    host namespace:  veth "eth0" = 10.213.0.N/24, "lo" up
                     iridium -H 10.213.0.N -P 2254 --advertise-host 10.213.0.N
                     (--cluster-key with Network(secure=True), else --insecure),
                     remote shell on 127.0.0.1:2244 (the namespace's own loopback)

Everything is created inside namespaces named `irt-<pid>-...` (pid = the
Python process that made them): the veth pairs are created directly inside
the hub and host namespaces, and the 10.213.0.0/24 subnet exists only there,
so nothing is added to the root namespace. `Network.close()` kills every
process in the namespaces and deletes them (which removes the veths, the
bridge, the iptables rules and any qdisc with them). It also runs at
interpreter exit (atexit) and on SIGTERM/SIGHUP if `install_signal_cleanup()`
was called; namespaces left by a run that was SIGKILLed (its pid is gone) are
removed when the next Network is created (`cleanup_stale()`).

Faults are iptables DROP rules in a chain `irt` (jumped to from INPUT) of the
*receiving* host's namespace, matched on the source address, so the sender's
kernel really transmits and only the "network" loses the packet (a DROP in
the sender's OUTPUT chain would instead fail the send locally, with EPERM,
which TCP handles differently from loss):

    cut(h)             h drops everything arriving on eth0; every other host
                       drops what comes from h
    heal(h)            undoes cut(h)
    one_way_cut(a, b)  b drops what comes from a (b -> a still passes)
    cut_link(a, b)     a drops from b and b drops from a; both reach the rest
    heal_link(a, b)    undoes cut_link(a, b) and one-way cuts between a and b
    partition(g1, g2)  cut_link for every pair across the two groups
    netem_loss(pct)    random loss on every host: `tc qdisc ... netem loss`
                       on each host's eth0 when the kernel has sch_netem, else
                       an iptables `-m statistic --mode random` DROP on each
                       host's input (same per-packet loss; see loss_method)
    clear_loss()       removes the loss only
    clear()            removes every fault (also heals a partition)

Hosts are given as Host objects, 0-based indexes or names ("h1".."hN").
Pause/resume is SIGSTOP/SIGCONT of the node process (`Host.pause()`).

    ok, why = netns.available()
    with netns.Network(6, "build/src/app/iridium") as net:
        net.start_cluster()        # h1 --start-cluster, h2..h6 --join 10.213.0.1:2254
        net.full_mesh()            # every host lists exactly every other
        net.poll()                 # {Host: set of aliases, or None if it did not answer}
        net.cut("h3"); net.heal("h3")
        net["h2"].pause(); net["h2"].resume()
        net["h2"].run("ss", "-tn")            # any command inside h2's namespace
        net["h2"].popen(["epmd"])             # a long-running one (pid = the command's)

`available()` returns (ok, reason): root, `ip netns`, a veth pair, a bridge,
and an iptables backend that can add a rule inside a namespace (the default
`iptables`, then iptables-nft, then iptables-legacy; the one that worked is
kept in IPTABLES).
"""
import atexit
import concurrent.futures
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time

from iridium_nodes import parse_snapshot

PREFIX = "irt-"
SUBNET = "10.213.0"          # /24, hosts are .1 .. .N; the hub has no address
CLUSTER_PORT = 2254
SHELL_PORT = 2244
IPTABLES = None              # the backend that works here, set by available()
_available = None
_live_networks = []
_network_ids = itertools.count()


def _run(*args, check=True, timeout=30, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
    return r


def _ns_exec(ns, *args, **kw):
    return _run("ip", "netns", "exec", ns, *args, **kw)


def _namespaces():
    r = _run("ip", "netns", "list", check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    """True if pid is a running process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _owner(ns):
    """The pid in `irt-<pid>-...`, or None."""
    parts = ns[len(PREFIX):].split("-", 1)
    return int(parts[0]) if parts and parts[0].isdigit() else None


def _delete_namespace(ns):
    """Kills every process in ns (by pid), then deletes ns."""
    for _ in range(50):
        r = _run("ip", "netns", "pids", ns, check=False)
        pids = [int(p) for p in r.stdout.split() if p.isdigit()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    _run("ip", "netns", "del", ns, check=False)


def cleanup_stale():
    """Removes irt- namespaces and temp dirs whose creating process is gone."""
    removed = []
    for ns in _namespaces():
        if ns.startswith(PREFIX):
            owner = _owner(ns)
            if owner is None or (owner != os.getpid() and not _pid_alive(owner)):
                _delete_namespace(ns)
                removed.append(ns)
    tmp = tempfile.gettempdir()
    for entry in os.listdir(tmp):
        if entry.startswith(PREFIX):
            owner = _owner(entry)
            if owner is not None and owner != os.getpid() and not _pid_alive(owner):
                shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)
    return removed


def available():
    """(True, what was found) if namespaces, veths, a bridge and iptables work here; else (False, why)."""
    global _available, IPTABLES
    if _available is not None:
        return _available
    _available = _probe()
    return _available


def _probe():
    global IPTABLES
    if os.geteuid() != 0:
        return False, "needs root (network namespaces and iptables)"
    if shutil.which("ip") is None:
        return False, "`ip` (iproute2) is not installed"
    candidates = [c for c in ("iptables", "iptables-nft", "iptables-legacy") if shutil.which(c)]
    if not candidates:
        return False, "iptables is not installed (scripts/setup installs it)"
    cleanup_stale()
    ns = f"{PREFIX}{os.getpid()}-probe"
    try:
        r = _run("ip", "netns", "add", ns, check=False)
        if r.returncode != 0:
            return False, f"`ip netns add` failed: {r.stderr.strip()}"
        try:
            _ns_exec(ns, "ip", "link", "set", "lo", "up")
            _ns_exec(ns, "ip", "link", "add", "br0", "type", "bridge")
            _ns_exec(ns, "ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0")
            _ns_exec(ns, "ip", "link", "set", "a0", "master", "br0")
        except RuntimeError as e:
            return False, f"veth/bridge inside a namespace: {e}"
        errors = []
        for candidate in candidates:
            r = _ns_exec(ns, candidate, "-w", "-A", "INPUT", "-s", f"{SUBNET}.99", "-j", "DROP", check=False)
            if r.returncode == 0:
                _ns_exec(ns, candidate, "-w", "-D", "INPUT", "-s", f"{SUBNET}.99", "-j", "DROP", check=False)
                IPTABLES = candidate
                version = _run(candidate, "--version", check=False).stdout.strip()
                return True, f"network namespaces, veth, bridge; {candidate} ({version})"
            errors.append(f"{candidate}: {r.stderr.strip()}")
        return False, "no iptables backend can add a rule in a namespace: " + "; ".join(errors)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{type(e).__name__}: {e}"
    finally:
        _delete_namespace(ns)


def _close_all():
    for network in list(_live_networks):
        network.close()


atexit.register(_close_all)


def install_signal_cleanup():
    """SIGTERM/SIGHUP raise KeyboardInterrupt, so finally blocks and atexit clean up."""
    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, handler)


class Host:
    """One namespace with one address; runs at most one iridium node."""

    def __init__(self, network, index):
        self.network = network
        self.index = index
        self.name = f"h{index}"
        self.ns = f"{network.prefix}{self.name}"
        self.addr = f"{SUBNET}.{index}"
        self.alias = self.name
        self.process = None
        self.data_dir = os.path.join(network.root, self.name)
        self.log_path = os.path.join(network.root, self.name + ".log")

    def __repr__(self):
        return f"Host({self.name}, {self.addr})"

    @property
    def address(self):
        return f"{self.addr}:{CLUSTER_PORT}"

    def run(self, *args, **kw):
        """subprocess.run inside this namespace (output captured, text)."""
        return _ns_exec(self.ns, *args, **kw)

    def popen(self, args, **kw):
        """subprocess.Popen inside this namespace. `ip netns exec` execs the
        command in place, so the Popen's pid is the command's pid."""
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *args], **kw)

    # --- the iridium node

    def start(self, *more_args, wait=True):
        """Starts iridium here (-H/--advertise-host = this host's address)."""
        binary = self.network.binary
        if binary is None:
            raise ValueError("Network(binary=...) is needed to start iridium")
        os.makedirs(self.data_dir, exist_ok=True)
        args = [binary, "--node-alias", self.alias, "--data-root-dir", self.data_dir,
                "-H", self.addr, "-P", str(CLUSTER_PORT), "--advertise-host", self.addr,
                "-r", "-p", str(SHELL_PORT), "--daemon-mode", *self.network.security_args(), *more_args]
        log = open(self.log_path, "a")
        env = dict(os.environ, IRIDIUM_LOG=os.environ.get("IRIDIUM_LOG", "info"))
        self.process = self.popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}: {self.log()[-2000:]}")
            if self.attach("!help", timeout=2).returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name}'s remote shell did not answer within {timeout} s")

    def attach(self, *lines, timeout=10):
        args = [self.network.binary, "attach", f"127.0.0.1:{SHELL_PORT}", "--timeout", str(timeout)]
        if self.network.key:
            args += ["--key", self.network.key]
        for line in lines:
            args += ["-c", line]
        try:
            return self.run(*args, check=False, timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", "timeout")

    def snapshot(self, timeout=3):
        """The node's !cluster_members --json, or None if it does not answer."""
        return parse_snapshot(self.attach("!cluster_members --json", timeout=timeout))

    def members(self, timeout=3):
        """Aliases this node lists (alive or suspect), or None if it does not answer."""
        snapshot = self.snapshot(timeout)
        return None if snapshot is None else {m["alias"] for m in snapshot["members"]}

    def running(self):
        return self.process is not None and self.process.poll() is None

    def pause(self):
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""


class Network:
    """A hub namespace with a bridge and `size` hosts on 10.213.0.0/24.

    Use as a context manager or call close(). `binary` is the iridium binary
    for Host.start() / start_cluster(); it may be None for other programs.
    With secure=True the nodes share a cluster key made here (as real
    deployments do); otherwise they run plain, which off loopback needs
    --insecure.
    """

    def __init__(self, size, binary=None, secure=False):
        if not 1 <= size <= 250:
            raise ValueError("1..250 hosts")
        ok, reason = available()
        if not ok:
            raise RuntimeError(f"network namespaces are not usable here: {reason}")
        cleanup_stale()
        self.binary = os.path.abspath(binary) if binary else None
        self.prefix = f"{PREFIX}{os.getpid()}-{next(_network_ids)}-"
        self.root = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
        self.hub = f"{self.prefix}hub"
        self.hosts = [Host(self, i) for i in range(1, size + 1)]
        self.key = None
        if secure and self.binary:
            self.key = os.path.join(self.root, "cluster.key")
            _run(self.binary, "keygen", self.key)
        self.loss_method = None
        self._faults = []      # (tag, receiving host, iptables match args)
        self._netem = False
        self._closed = False
        _live_networks.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self):
        _run("ip", "netns", "add", self.hub)
        _ns_exec(self.hub, "ip", "link", "set", "lo", "up")
        _ns_exec(self.hub, "ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        _ns_exec(self.hub, "ip", "link", "set", "br0", "up")
        for host in self.hosts:
            _run("ip", "netns", "add", host.ns)
            port = f"p{host.index}"
            # Both ends are created inside namespaces: nothing in the root one.
            _ns_exec(self.hub, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0",
                     "netns", host.ns)
            _ns_exec(self.hub, "ip", "link", "set", port, "master", "br0")
            _ns_exec(self.hub, "ip", "link", "set", port, "up")
            batch = "\n".join(["link set lo up", f"addr add {host.addr}/24 dev eth0", "link set eth0 up"])
            _run("ip", "-n", host.ns, "-batch", "-", input=batch)
            host.run(IPTABLES, "-w", "-N", "irt")
            host.run(IPTABLES, "-w", "-A", "INPUT", "-j", "irt")

    def security_args(self):
        """The flags that put a node in this network's mode."""
        return ["--cluster-key", self.key] if self.key else ["--insecure"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getitem__(self, key):
        """network[i] (0-based) or network["h3"]."""
        if isinstance(key, str):
            return next(h for h in self.hosts if h.name == key)
        return self.hosts[key]

    def _host(self, h):
        return h if isinstance(h, Host) else self[h]

    # --- iridium on every host

    def start_cluster(self, *more_args, timeout=20):
        """Starts iridium on every host at once: hosts[0] with --start-cluster, the
        others --join hosts[0]; waits for their remote shells (not for the mesh)."""
        seed = self.hosts[0]
        seed.start("--start-cluster", *more_args, wait=False)
        for host in self.hosts[1:]:
            host.start("--join", seed.address, *more_args, wait=False)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            list(pool.map(lambda h: h.wait_ready(timeout), self.hosts))

    def poll(self, hosts=None, pool=None):
        """{host: members or None}, every host asked in parallel."""
        hosts = self.hosts if hosts is None else [self._host(h) for h in hosts]
        if pool is not None:
            return dict(zip(hosts, pool.map(lambda h: h.members(), hosts)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as p:
            return dict(zip(hosts, p.map(lambda h: h.members(), hosts)))

    def lists_exactly(self, groups, pool=None):
        """True when every host in each group lists exactly the rest of its group."""
        groups = [[self._host(h) for h in g] for g in groups]
        seen = self.poll([h for g in groups for h in g], pool)
        return all(seen[h] == {o.alias for o in g} - {h.alias} for g in groups for h in g)

    def full_mesh(self, hosts=None, pool=None):
        hosts = self.hosts if hosts is None else hosts
        return self.lists_exactly([hosts], pool)

    # --- faults

    def _drop(self, tag, receiver, *match):
        rule = (tag, receiver, tuple(match))
        receiver.run(IPTABLES, "-w", "-A", "irt", *match, "-j", "DROP")
        self._faults.append(rule)

    def _undo(self, predicate):
        keep = []
        for tag, receiver, match in self._faults:
            if predicate(tag):
                receiver.run(IPTABLES, "-w", "-D", "irt", *match, "-j", "DROP", check=False)
            else:
                keep.append((tag, receiver, match))
        self._faults = keep

    def cut(self, host):
        """All traffic to and from host dropped (it stays up, unreachable)."""
        host = self._host(host)
        tag = ("cut", host.name)
        self._drop(tag, host, "-i", "eth0")
        for other in self.hosts:
            if other is not host:
                self._drop(tag, other, "-s", host.addr)

    def heal(self, host):
        """Undoes cut(host)."""
        host = self._host(host)
        self._undo(lambda tag: tag == ("cut", host.name))

    def one_way_cut(self, a, b):
        """a's packets to b are dropped; b's packets to a pass."""
        a, b = self._host(a), self._host(b)
        self._drop(("one_way", a.name, b.name), b, "-s", a.addr)

    def cut_link(self, a, b):
        """Only the link a<->b is cut, both ways; both still reach everyone else."""
        a, b = self._host(a), self._host(b)
        tag = ("link",) + tuple(sorted((a.name, b.name)))
        self._drop(tag, b, "-s", a.addr)
        self._drop(tag, a, "-s", b.addr)

    def heal_link(self, a, b):
        names = tuple(sorted((self._host(a).name, self._host(b).name)))
        self._undo(lambda tag: tag == ("link",) + names)
        self._undo(lambda tag: tag in (("one_way",) + names, ("one_way",) + names[::-1]))

    def partition(self, group1, group2):
        """No traffic between the groups; each group intact inside."""
        for a in group1:
            for b in group2:
                self.cut_link(a, b)

    def netem_loss(self, percent):
        """percent % random loss of every packet between hosts (see loss_method)."""
        self.clear_loss()
        if self.loss_method in (None, "netem"):
            try:
                for host in self.hosts:
                    host.run("tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", f"{percent}%")
                    self._netem = True
                self.loss_method = "netem"
                return self.loss_method
            except RuntimeError:
                self.clear_loss()   # this kernel has no sch_netem (or tc is missing)
        probability = f"{percent / 100:.6f}"
        for host in self.hosts:
            self._drop(("loss",), host, "-i", "eth0", "-m", "statistic", "--mode", "random",
                       "--probability", probability)
        self.loss_method = "iptables statistic"
        return self.loss_method

    def clear_loss(self):
        if self._netem:
            for host in self.hosts:
                host.run("tc", "qdisc", "del", "dev", "eth0", "root", check=False)
            self._netem = False
        self._undo(lambda tag: tag == ("loss",))

    def clear(self):
        """Removes every fault (cuts, links, partitions, loss)."""
        self.clear_loss()
        for host in self.hosts:
            host.run(IPTABLES, "-w", "-F", "irt", check=False)
        self._faults = []

    def rules(self):
        """iptables -S irt of every host, for debugging."""
        return {h.name: h.run(IPTABLES, "-w", "-S", "irt", check=False).stdout for h in self.hosts}

    # --- teardown

    def dump_logs(self, tail=4000):
        return "\n".join(f"--- {h.name} ({h.addr})\n{h.log()[-tail:]}" for h in self.hosts)

    def close(self, keep_logs=False):
        if self._closed:
            return
        self._closed = True
        for host in self.hosts:
            if host.process is not None and host.process.poll() is None:
                try:
                    host.process.send_signal(signal.SIGCONT)
                    host.process.kill()
                    host.process.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        for host in self.hosts:
            _delete_namespace(host.ns)
        _delete_namespace(self.hub)
        if not keep_logs:
            shutil.rmtree(self.root, ignore_errors=True)
        if self in _live_networks:
            _live_networks.remove(self)
