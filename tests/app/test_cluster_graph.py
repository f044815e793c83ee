"""scripts/lib/cluster_graph.py: the DOT text of `scripts/cluster graph`,
from ALIAS<TAB>JSON lines (one per node asked) to who-sees-whom: mutual
views as one undirected edge, one-way views as red arrows, silent nodes
grey. The live picture is checked by ci/e2e_swarm.py.

Run as: test_cluster_graph.py SOURCE_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

if len(sys.argv) < 2:
    sys.exit(f"usage: {sys.argv[0]} SOURCE_DIR [unittest args]")
SOURCE = os.path.abspath(sys.argv.pop(1))
sys.path.insert(0, os.path.join(SOURCE, "scripts", "lib"))
from cluster_graph import parse_views, to_dot  # noqa: E402


def line(alias, *members, self_alias=None):
    snapshot = {"self": {"alias": self_alias or alias, "host": "10.0.0.1", "port": 2254, "instance": "x"},
                "started": True,
                "members": [{"alias": m, "host": "10.0.0.2", "port": 2254, "state": "alive", "last_heard_ms": 1}
                            for m in members]}
    return f"{alias}\t{json.dumps(snapshot)}"


def vertices(dot):
    """{alias: attribute text} of the vertex lines."""
    found = {}
    for text in dot.splitlines():
        m = re.match(r'\s*"([^"]+)"(?: \[(.*)\])?;$', text)
        if m:
            found[m.group(1)] = m.group(2) or ""
    return found


def edges(dot):
    """[(from, to, attribute text)] of the edge lines."""
    return [(m.group(1), m.group(2), m.group(3)) for m in
            (re.match(r'\s*"([^"]+)" -> "([^"]+)" \[(.*)\];$', t) for t in dot.splitlines()) if m]


class ClusterGraph(unittest.TestCase):

    def test_full_mesh_has_n_vertices_and_one_undirected_edge_per_pair(self):
        names = [f"node-{i}" for i in range(1, 6)]
        text = "\n".join(line(n, *(o for o in names if o != n)) for n in names)
        dot = to_dot(parse_views(text))
        self.assertEqual(set(vertices(dot)), set(names))
        found = edges(dot)
        self.assertEqual(len(found), 5 * 4 // 2)
        self.assertEqual({frozenset((a, b)) for a, b, _ in found}, {frozenset((a, b)) for a in names
                                                                     for b in names if a < b})
        self.assertTrue(all(attrs == "dir=none" for _, _, attrs in found), found)

    def test_partition_shows_two_groups_and_no_edge_between(self):
        text = "\n".join([line("a", "b"), line("b", "a"), line("c", "d"), line("d", "c")])
        dot = to_dot(parse_views(text))
        self.assertEqual(sorted((a, b) for a, b, _ in edges(dot)), [("a", "b"), ("c", "d")])
        self.assertNotIn("lightgray", dot)

    def test_a_one_way_view_is_a_red_arrow(self):
        # a still lists c, c has dropped a (half a partition, not healed yet).
        text = "\n".join([line("a", "b", "c"), line("b", "a", "c"), line("c", "b")])
        found = {(a, b): attrs for a, b, attrs in edges(to_dot(parse_views(text)))}
        self.assertEqual(set(found), {("a", "b"), ("a", "c"), ("b", "c")})
        self.assertEqual(found[("a", "b")], "dir=none")
        self.assertEqual(found[("b", "c")], "dir=none")
        self.assertIn("color=red", found[("a", "c")])
        self.assertIn("one-way: a lists c", found[("a", "c")])

    def test_silent_and_unclaimed_nodes_are_grey(self):
        # b did not answer; a lists z, which no container claims.
        text = "\n".join([line("a", "b", "z"), "b\t", "c\tnot json", line("d")])
        views = parse_views(text)
        self.assertEqual(views, {"a": {"b", "z"}, "b": None, "c": None, "d": set()})
        found = vertices(to_dot(views))
        self.assertEqual(set(found), {"a", "b", "c", "d", "z"})
        for grey in ("b", "c", "z"):
            self.assertIn("fillcolor=lightgray", found[grey], grey)
        for answered in ("a", "d"):
            self.assertEqual(found[answered], "", answered)
        self.assertEqual([(a, b) for a, b, _ in edges(to_dot(views))], [("a", "b"), ("a", "z")])

    def test_the_nodes_own_alias_wins_and_a_failed_repeat_keeps_the_answer(self):
        views = parse_views("\n".join([line("-", "b", self_alias="a"), line("b", "a"), "b\t", ""]))
        self.assertEqual(views, {"a": {"b"}, "b": {"a"}})

    def test_quotes_in_aliases_stay_inside_their_strings(self):
        dot = to_dot({'x"y': {"b"}, "b": {'x"y'}})
        self.assertIn('  "x\\"y";\n', dot)
        self.assertIn('  "b" -> "x\\"y" [dir=none];\n', dot)

    def test_dot_accepts_the_text(self):
        dot_program = shutil.which("dot")
        if dot_program is None:
            self.skipTest("Graphviz's dot is not installed (scripts/setup installs graphviz)")
        text = "\n".join([line("a", "b", "c"), line("b", "a"), "c\t"])
        r = subprocess.run([dot_program, "-Tsvg"], input=to_dot(parse_views(text)), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("<svg", r.stdout)
        self.assertEqual(r.stdout.count('class="node"'), 3)
        self.assertEqual(r.stdout.count('class="edge"'), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
