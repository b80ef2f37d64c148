"""The pipeline as a graph: which stage needs which, checked, ordered and drawn.

Stage B depends on stage A when a dep of B, or a file B reads params from, is an
output of A, lies inside one (a file of an output directory), or holds one (a
directory A writes into). The graph is refused, with a message naming what to fix,
when:

- it has a cycle (``a -> b -> a``);
- two stages have the same output, or one's output lies inside another's;
- a stage's output is also its dep (or a params file it reads), or lies inside or
  holds one of its deps;
- a stage's output is its wdir or holds it (the output is moved aside before the
  command runs, in the wdir).

Orders follow the file where the graph leaves a choice, so output and runs are the
same from one run to the next.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass

from vfs.errors import UsageError
from vfs.model.params import shown_commands
from vfs.pipeline.spec import Pipeline, Stage
from vfs.quoting import quote_name, safe_json
from vfs.repo.gitlink import PIPELINE_FILE


def inside(path: bytes, top: bytes) -> bool:
    """True if ``path`` is ``top`` or lies below it."""
    return path == top or path.startswith(top + b"/")


def _show(p: bytes) -> str:
    return os.fsdecode(p)


@dataclass
class Dag:
    """Stages (in file order) and their edges, checked by :func:`build`."""

    stages: dict[str, Stage]
    upstream: dict[str, list[str]]  # the stages each stage needs, in file order
    downstream: dict[str, list[str]]
    producer: dict[bytes, str]  # each output: the stage making it

    def maker_of(self, path: bytes) -> str | None:
        """The stage whose output is ``path`` or holds it, if any."""
        for p in _ancestors_and_self(path):
            if p in self.producer:
                return self.producer[p]
        return None

    def makers_near(self, path: bytes) -> set[str]:
        """Stages with an output at ``path``, holding it or inside it."""
        out = {self.producer[p] for p in _ancestors_and_self(path) if p in self.producer}
        outs = self._outs_sorted
        i = bisect.bisect_left(outs, path + b"/")
        j = bisect.bisect_left(outs, path + b"0", i)  # ("0" follows "/")
        out.update(self.producer[o] for o in outs[i:j])
        return out

    @functools.cached_property
    def _outs_sorted(self) -> list[bytes]:
        return sorted(self.producer)

    def makers_within(self, path: bytes) -> list[str]:
        """Stages with an output at or below ``path``."""
        return sorted({s for o, s in self.producer.items() if inside(o, path)})

    def closure(self, names: Iterable[str], *, down: bool) -> list[str]:
        """``names`` and every stage upstream of them (or downstream), in file order."""
        edges = self.downstream if down else self.upstream
        seen: set[str] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += edges[n]
        return [n for n in self.stages if n in seen]

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        """``names`` (default: every stage) in an order that runs each after its upstream."""
        wanted = set(self.stages if names is None else names)
        index = {n: i for i, n in enumerate(self.stages)}
        waiting = {n: sum(1 for u in self.upstream[n] if u in wanted) for n in wanted}
        ready = sorted((index[n] for n, k in waiting.items() if k == 0), reverse=True)
        out: list[str] = []
        names_in_order = list(self.stages)
        while ready:
            n = names_in_order[ready.pop()]
            out.append(n)
            for d in self.downstream[n]:
                if d in wanted:
                    waiting[d] -= 1
                    if waiting[d] == 0:
                        bisect.insort(ready, index[d], key=lambda i: -i)
        return out

    def layers(self) -> list[list[str]]:
        """Stages by depth: those needing nothing first, then what needs only them..."""
        depth: dict[str, int] = {}
        for n in self.order():
            depth[n] = 1 + max((depth[u] for u in self.upstream[n]), default=-1)
        rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for n in self.stages:
            rows[depth[n]].append(n)
        return rows


def _ancestors_and_self(path: bytes) -> Iterable[bytes]:
    yield path
    while b"/" in path:
        path = path.rpartition(b"/")[0]
        yield path


def reads(s: Stage) -> list[bytes]:
    """What a stage reads: its deps, then the files it reads params from."""
    return list(dict.fromkeys([*s.deps, *(f for f, _ in s.params)]))


def _line(s: Stage) -> str:
    return f"{PIPELINE_FILE}:{s.line}" if s.line else PIPELINE_FILE


def build(p: Pipeline) -> Dag:
    """The graph of ``p``'s stages; UsageError naming the problem (module docstring)."""
    stages = p.stages
    producer: dict[bytes, str] = {}
    for s in stages.values():
        for o in s.outs:
            if o in producer:
                other = stages[producer[o]]
                raise UsageError(
                    f"stages {other.name} ({_line(other)}) and {s.name} ({_line(s)}) both "
                    f"make {_show(o)}: an output belongs to one stage"
                )
            producer[o] = s.name
    outs_sorted = sorted(producer)
    for o in outs_sorted:  # one output inside another's
        for a in list(_ancestors_and_self(o))[1:]:
            if a in producer:
                x, y = stages[producer[a]], stages[producer[o]]
                raise UsageError(
                    f"output {_show(o)} of stage {y.name} ({_line(y)}) is inside output "
                    f"{_show(a)} of stage {x.name} ({_line(x)}): an output belongs to one stage"
                )
    for s in stages.values():
        held = next((o for o in s.outs if s.wdir and inside(s.wdir, o)), None)
        if held is not None:
            what = "is" if held == s.wdir else "holds"
            raise UsageError(
                f"stage {s.name} ({_line(s)}): output {_show(held)} {what} its wdir "
                f"{_show(s.wdir)}, which would be moved aside before the command runs in it: "
                "name what the command makes inside it as outputs"
            )
        for d in reads(s):
            for o in s.outs:
                if inside(d, o) or inside(o, d):
                    what = "is also" if d == o else ("is inside" if inside(o, d) else "holds")
                    dep = "dep" if d in s.deps else "params file"
                    raise UsageError(
                        f"stage {s.name} ({_line(s)}): output {_show(o)} {what} its {dep} "
                        f"{_show(d)}: a stage may not write what it reads"
                    )
    upstream: dict[str, list[str]] = {n: [] for n in stages}
    downstream: dict[str, list[str]] = {n: [] for n in stages}
    for s in stages.values():
        needs: set[str] = set()
        for d in reads(s):
            for a in _ancestors_and_self(d):  # an output holding the dep
                if a in producer:
                    needs.add(producer[a])
            i = bisect.bisect_left(outs_sorted, d + b"/")  # outputs inside the dep
            while i < len(outs_sorted) and outs_sorted[i].startswith(d + b"/"):
                needs.add(producer[outs_sorted[i]])
                i += 1
        needs.discard(s.name)
        upstream[s.name] = [n for n in stages if n in needs]
    for n in stages:
        for u in upstream[n]:
            downstream[u].append(n)
    dag = Dag(dict(stages), upstream, downstream, producer)
    cycle = find_cycle(dag)
    if cycle:
        raise UsageError(
            f"the stages form a cycle: {' -> '.join(cycle)} (each needs an output of the "
            f"next): break it in {PIPELINE_FILE}"
        )
    return dag


def find_cycle(dag: Dag) -> list[str] | None:
    """A cycle as ``[a, b, ..., a]`` (each needs the next's output), or None.

    Depth-first with an explicit stack, so a long chain of stages costs no recursion.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in dag.stages:
        if start in state:
            continue
        path = [start]
        its = [iter(dag.upstream[start])]
        state[start] = 1
        while its:
            nxt = next(its[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                its.pop()
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                its.append(iter(dag.upstream[nxt]))
    return None


# ----------------------------------------------------------------------------- drawing


def _out_nodes(dag: Dag, names: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Outputs as nodes: an edge from each output to the outputs made from it."""
    nodes = [_show(o) for n in names for o in dag.stages[n].outs]
    edges = []
    for n in names:
        for u in dag.upstream[n]:
            if u not in names:
                continue
            for o in dag.stages[u].outs:
                if any(inside(d, o) or inside(o, d) for d in reads(dag.stages[n])):
                    edges += [(_show(o), _show(x)) for x in dag.stages[n].outs]
    return nodes, edges


def edges_of(dag: Dag, names: list[str], outs: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """(nodes, edges) of the stages ``names`` (or of their outputs)."""
    if outs:
        return _out_nodes(dag, names)
    chosen = set(names)
    return names, [(u, n) for n in names for u in dag.upstream[n] if u in chosen]


def _dot_id(name: str) -> str:
    """A DOT string naming ``name``: quoted as the terminal shows it (``"a\\033b"``), so
    that no control character reaches the output and distinct names stay distinct."""
    shown = quote_name(name)
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(nodes: list[str], edges: list[tuple[str, str]]) -> str:
    """Graphviz: ``dvfs dag --format dot | dot -Tsvg > dag.svg``."""
    lines = ["strict digraph pipeline {", "  rankdir=TB;", "  node [shape=box];"]
    lines += [f"  {_dot_id(n)};" for n in nodes]
    lines += [f"  {_dot_id(a)} -> {_dot_id(b)};" for a, b in edges]
    return "\n".join([*lines, "}"]) + "\n"


def _mermaid_label(name: str) -> str:
    """A Mermaid label showing ``name`` as the terminal does (``"a\\033b"``): Mermaid
    draws ``#N;`` as character N, so the name is quoted first and no control, invisible
    or bidirectional character reaches the drawing."""
    out = []
    for ch in quote_name(name):
        if ch.isalnum() or ch in " ._-/:":
            out.append(ch)
        else:
            out.append(f"#{ord(ch)};")
    return '"' + "".join(out) + '"'


def to_mermaid(nodes: list[str], edges: list[tuple[str, str]]) -> str:
    """Mermaid (GitHub and GitLab draw it in Markdown)."""
    ids = {n: f"n{i}" for i, n in enumerate(nodes)}
    lines = ["flowchart TD"]
    lines += [f"  {ids[n]}[{_mermaid_label(n)}]" for n in nodes]
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in edges]
    return "\n".join(lines) + "\n"


def to_json(dag: Dag, names: list[str], outs: bool) -> str:
    """Stages (what each runs, reads and writes) and edges, as JSON."""
    nodes, edges = edges_of(dag, names, outs)
    data: dict[str, object] = {"edges": [list(e) for e in edges]}
    if outs:
        data["outs"] = nodes
    else:
        data["stages"] = [
            {
                "name": n,
                "cmd": cmd,
                "wdir": _show(s.wdir) if s.wdir else ".",
                "deps": [_show(d) for d in s.deps],
                "outs": [_show(o) for o in s.outs],
                "params": [f"{_show(f)}:{k}" for f, k in s.params],
                "metrics": [_show(m) for m in s.metrics],
            }
            for n, cmd in zip(names, shown_commands(dag.stages[n].cmd for n in names), strict=True)
            for s in [dag.stages[n]]
        ]
    return safe_json(data) + "\n"


TEXT_DEPTH = 16  # levels drawn indented; deeper lines say their level instead


def to_text(nodes: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """The graph as a tree from each node needing nothing; a node met again says so.

    A line deeper than ``TEXT_DEPTH`` levels is indented no further and starts with
    its level (``[17]``; the roots are level 0): its parent is the nearest line above
    of the level before, so a chain of a thousand stages stays readable.
    Names are drawn as they are given: the caller passes them quoted for the terminal.
    """
    kids: dict[str, list[str]] = {n: [] for n in nodes}
    has_parent: set[str] = set()
    for a, b in edges:
        kids[a].append(b)
        has_parent.add(b)
    lines: list[str] = []
    shown: set[str] = set()
    for root in [n for n in nodes if n not in has_parent]:
        stack: list[tuple[str, str, bool, int]] = [(root, "", True, 0)]
        while stack:
            name, prefix, last, level = stack.pop()
            branch = "" if level == 0 else ("└── " if last else "├── ")
            if level > TEXT_DEPTH:
                branch += f"[{level}] "
            again = name in shown and bool(kids[name])
            lines.append(prefix + branch + name + ("  (see above)" if again else ""))
            if again:
                continue
            shown.add(name)
            below = prefix
            if 0 < level < TEXT_DEPTH:
                below += "    " if last else "│   "
            children = kids[name]
            for i in range(len(children) - 1, -1, -1):
                stack.append((children[i], below, i == len(children) - 1, level + 1))
    return lines
