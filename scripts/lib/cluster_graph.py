"""Who sees whom in a running cluster, as a Graphviz DOT graph.

scripts/cluster graph feeds this one line per node it asked:
ALIAS<TAB>JSON, the JSON being that node's `!cluster_members --json`
(empty when the node did not answer). The graph has one vertex per alias
(the nodes asked and every member they list), an edge between A and B when
A lists B: drawn once, without arrows, when each lists the other; as a red
arrow A -> B when only A lists B (a one-way view, e.g. half of a partition
not healed yet). Nodes that did not answer are grey, as are members listed
by others that no running node claims.

    python3 cluster_graph.py < views.tsv > cluster.dot
"""
import json
import sys


def parse_views(text):
    """{alias: set of member aliases, or None when that node did not answer}
    from ALIAS<TAB>JSON lines; a line whose JSON is missing or not a
    snapshot counts as no answer."""
    views = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        alias, _, raw = line.partition("\t")
        alias = alias.strip()
        try:
            snapshot = json.loads(raw)
            members = {m["alias"] for m in snapshot["members"]}
            # The node's own word for its alias wins over the container's.
            alias = snapshot["self"]["alias"] or alias
        except (ValueError, KeyError, TypeError):
            members = None
        if alias in views and views[alias] is not None and members is None:
            continue  # a duplicate line that failed does not erase an answer
        views[alias] = members
    return views


def quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(views):
    """DOT text for views ({alias: set of aliases or None})."""
    nodes = set(views)
    for members in views.values():
        nodes |= members or set()
    lines = ["digraph cluster {",
             '  graph [layout=circo, label="who sees whom (scripts/cluster graph)", labelloc=t];',
             "  node [shape=box, style=\"rounded,filled\", fillcolor=palegreen];",
             "  edge [color=gray30];"]
    for alias in sorted(nodes):
        if views.get(alias) is None:
            lines.append(f"  {quote(alias)} [fillcolor=lightgray, fontcolor=gray40, "
                         f"tooltip={quote('did not answer')}];")
        else:
            lines.append(f"  {quote(alias)};")
    sees = {(a, b) for a, members in views.items() for b in (members or ()) if a != b}
    for a, b in sorted(sees):
        if (b, a) in sees:
            if a < b:
                lines.append(f"  {quote(a)} -> {quote(b)} [dir=none];")
        else:
            lines.append(f"  {quote(a)} -> {quote(b)} [color=red, penwidth=2, "
                         f"tooltip={quote('one-way: ' + a + ' lists ' + b)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    sys.stdout.write(to_dot(parse_views(sys.stdin.read())))


if __name__ == "__main__":
    main()
