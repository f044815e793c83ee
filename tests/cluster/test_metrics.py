"""Prometheus metrics (--metrics-port) of real iridium nodes on 127.0.0.1:
scraped over HTTP, parsed from the text format, checked against what the
cluster does (docs/metrics.md)."""
import os
import re
import signal
import socket
import subprocess
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from iridium_nodes import ClusterTestCase, clean_env, free_port, port_accepts, take_binary, wait_until  # noqa: E402

BINARY = take_binary()
# Failure detection drops a silent peer after 1.5 s (a refused redial much
# sooner); allow for polling and a loaded or sanitizer build.
DEATH_BOUND = float(os.environ.get("IRIDIUM_DEATH_BOUND", "4.0")) + 4.0

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """The text format as {name: {frozenset of (label, value): float}}, and
    {name: type} from the # TYPE lines. Fails on a line it cannot read."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        if match is None:
            raise AssertionError(f"not a sample line: {line!r}")
        name, labels, value = match.groups()
        key = frozenset(LABEL.findall(labels or ""))
        samples.setdefault(name, {})[key] = float(value)
    return samples, types


def scrape(port):
    """(samples, types, content type) of http://127.0.0.1:PORT/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode("utf-8")
        content_type = response.headers.get("Content-Type", "")
    samples, types = parse_metrics(body)
    return samples, types, content_type


def value(samples, name, **labels):
    """The sample of name with exactly these labels (None if absent)."""
    return samples.get(name, {}).get(frozenset(labels.items()))


def total(samples, name):
    return sum(samples.get(name, {}).values())


class MetricsOfACluster(ClusterTestCase):
    binary = BINARY

    def metrics_node(self, alias):
        port = free_port()
        node = self.cluster.node(alias, extra_args=("--metrics-port", str(port)))
        node.metrics_port = port
        return node

    def test_three_nodes_serve_members_frames_and_a_death(self):
        seed = self.metrics_node("seed").start("--start-cluster")
        b = self.metrics_node("b").start("--join", seed.address)
        c = self.metrics_node("c").start("--join", seed.address)
        self.cluster.wait_converged()
        nodes = [seed, b, c]
        for node in nodes:
            self.assertIn(f"serving metrics on http://127.0.0.1:{node.metrics_port}/metrics", node.log())

        def mesh_in_metrics(node):
            # A heartbeat greets each new member; after that each node pings
            # one member per probe period (200 ms) and acks the pings it gets.
            samples, _, _ = scrape(node.metrics_port)
            return (value(samples, "iridium_cluster_members", state="alive") == 2
                    and all(value(samples, f"iridium_cluster_frames_{way}_total", type=kind) > 0
                            for way in ("sent", "received") for kind in ("heartbeat", "ping", "ack"))
                    and value(samples, "iridium_cluster_probes_total") > 0
                    and samples)

        for node in nodes:
            samples = wait_until(lambda: mesh_in_metrics(node), 10,
                                 f"{node.alias}'s metrics to count 2 alive members and frames of each kind")
            _, types, content_type = scrape(node.metrics_port)
            self.assertTrue(content_type.startswith("text/plain"), content_type)
            self.assertEqual(value(samples, "iridium_cluster_members", state="suspect"), 0)
            self.assertEqual(types["iridium_cluster_members"], "gauge")
            self.assertEqual(types["iridium_cluster_frames_sent_total"], "counter")
            self.assertEqual(types["iridium_cluster_detection_seconds"], "histogram")
            # One series per message type, zeros too.
            self.assertEqual(len(samples["iridium_cluster_frames_sent_total"]), 18)
            self.assertEqual(value(samples, "iridium_cluster_joins_total"), 2)
            self.assertEqual(total(samples, "iridium_cluster_deaths_total"), 0)
            self.assertEqual(value(samples, "iridium_cluster_detection_seconds_count"), 0)
            self.assertIsNotNone(value(samples, "iridium_remote_sessions"))
            self.assertEqual(value(samples, "iridium_vm_jobs_total"), 0)
        # The seed answered every hello (a joiner resends its hello every
        # 100 ms until answered, so there may be more than two); the joiners
        # each said hello and got a hello_ack.
        seed_samples, _, _ = scrape(seed.metrics_port)
        hellos = value(seed_samples, "iridium_cluster_frames_received_total", type="hello")
        self.assertGreaterEqual(hellos, 2)
        self.assertEqual(value(seed_samples, "iridium_cluster_frames_sent_total", type="hello_ack"), hellos)
        self.assertEqual(value(seed_samples, "iridium_cluster_frames_sent_total", type="hello_nack"), 0)
        for joiner in (b, c):
            samples, _, _ = scrape(joiner.metrics_port)
            self.assertGreaterEqual(value(samples, "iridium_cluster_frames_sent_total", type="hello"), 1)
            self.assertGreaterEqual(value(samples, "iridium_cluster_frames_received_total", type="hello_ack"), 1)

        # A job spawned on b shows up in b's job metrics.
        reply = b.attach("!spawn examples/hello.iasm")
        self.assertEqual(reply.returncode, 0, reply.stdout + reply.stderr)
        wait_until(lambda: value(scrape(b.metrics_port)[0], "iridium_vm_jobs_total") == 1, 10,
                   "b's iridium_vm_jobs_total to count the spawned job")
        wait_until(lambda: value(scrape(b.metrics_port)[0], "iridium_vm_jobs", state="halted") == 1, 10,
                   "b's job to be counted as halted")

        # kill -9 c: seed and b declare it dead and observe how long that took.
        c.kill()

        def death_seen(node):
            samples, _, _ = scrape(node.metrics_port)
            return (total(samples, "iridium_cluster_deaths_total") == 1
                    and value(samples, "iridium_cluster_detection_seconds_count") == 1
                    and value(samples, "iridium_cluster_members", state="alive") == 1) and samples

        for node in (seed, b):
            samples = wait_until(lambda: death_seen(node), DEATH_BOUND,
                                 lambda: f"{node.alias}'s metrics to show c's death: "
                                         f"{scrape(node.metrics_port)[0].get('iridium_cluster_deaths_total')}")
            latency = value(samples, "iridium_cluster_detection_seconds_sum")
            self.assertGreater(latency, 0)
            self.assertLess(latency, DEATH_BOUND)
            self.assertEqual(value(samples, "iridium_cluster_detection_seconds_bucket", le="+Inf"), 1)
            # Cumulative buckets: the first bound that holds the latency counts it, and every later one.
            buckets = sorted((float(dict(labels)["le"]), count)
                             for labels, count in samples["iridium_cluster_detection_seconds_bucket"].items())
            for bound, count in buckets:
                self.assertEqual(count, 1 if bound >= latency else 0, (bound, latency))


class MetricsFlags(unittest.TestCase):
    def run_node(self, *args, env=None, timeout=15):
        return subprocess.run([BINARY, "--daemon-mode", "-r", "-p", str(free_port()), *args],
                              capture_output=True, text=True, timeout=timeout, env=env or clean_env(),
                              stdin=subprocess.DEVNULL)

    def test_a_port_in_use_is_refused_with_exit_2(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            r = self.run_node("--metrics-port", str(port))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"cannot serve metrics on 127.0.0.1:{port}: Address already in use", r.stderr)

    def test_bad_ports_and_hosts_are_refused_with_exit_2(self):
        for args, message in ((("--metrics-port", "70000"), "--metrics-port"),
                              (("--metrics-port", "nine"), "--metrics-port"),
                              (("--metrics-port", str(free_port()), "--metrics-host", "no.such.host"),
                               "the metrics host must be an IP address"),
                              (("--metrics-port", str(free_port()), "--metrics-host", "192.0.2.1"),
                               "cannot serve metrics on 192.0.2.1")):
            r = self.run_node(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(message, r.stderr, args)

    def test_the_environment_sets_the_port_and_zero_means_off(self):
        port = free_port()
        env = clean_env(IRIDIUM_METRICS_PORT=port, IRIDIUM_METRICS_HOST="127.0.0.1", IRIDIUM_LOG="info")
        proc = subprocess.Popen([BINARY, "--daemon-mode", "-r", "-p", str(free_port())], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            samples = wait_until(lambda: self.try_scrape(port), 10, "metrics from IRIDIUM_METRICS_PORT")
            # No cluster started: only the node's own families.
            self.assertIsNone(samples.get("iridium_cluster_members"))
            self.assertEqual(value(samples, "iridium_remote_sessions"), 0)
            self.assertEqual(len(samples["iridium_vm_jobs"]), 6)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            proc.stdout.close()
        # --metrics-port 0: nothing listens.
        off_port = free_port()
        proc = subprocess.Popen([BINARY, "--daemon-mode", "-r", "-p", str(off_port), "--metrics-port", "0"],
                                env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            wait_until(lambda: port_accepts(off_port), 10, "the remote shell of the node without metrics")
            self.assertIsNone(self.try_scrape(port))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            proc.stderr.close()

    @staticmethod
    def try_scrape(port):
        try:
            return scrape(port)[0]
        except OSError:
            return None


if __name__ == "__main__":
    unittest.main()
