"""``dvfs.yaml``: a pipeline's stages, as people write them (and ``dvfs run`` adds them).

Format (YAML 1.2, at the root of the working tree)::

    stages:
      prepare:
        cmd: python prepare.py data/raw data/prepared   # text: run by `sh -c`
        deps: [prepare.py, data/raw]
        outs: [data/prepared]
      train:
        cmd: [python, train.py, --epochs, "3"]          # a list: the argv, no shell
        wdir: .                                         # where it runs (default: the root)
        deps: [train.py, data/prepared]
        params:                                         # values the stage reads
          - train.lr                                    #   from params.yaml in wdir
          - config.json: [model.depth, model.width]     #   from another YAML/JSON/TOML file
        outs: [models/model.pt]
        metrics: [metrics.json]                         # outputs that hold metrics (JSON/YAML)

Only ``cmd`` is required. Paths (deps, outs, metrics, params files) are relative to
``wdir``, which is relative to the root; each must stay inside the working tree,
never name ``.git``, ``.dvfs`` (nor their lookalikes) or ``.versions`` at the top,
and an output may not be one of dvfs's own files (``dvfs.yaml``, ``dvfs.runs``,
``dvfs.lock``, ``dvfs.toml``). A stage name is an ASCII letter, digit or ``_`` followed
by up to 99 ASCII letters, digits, ``_``, ``.`` or ``-``.

The file is someone's working tree, maybe someone else's version: it is read only
if it is a regular file (never through a link) of at most ``MAX_FILE`` bytes, and
what it expands to is bounded (``MAX_NODES`` YAML nodes, the pipeline bounds of
``vfs.model.version_codec``). Every error names the file, the line and the key
(``dvfs.yaml:12: stages.train.deps[1]: ...``).

Editing (``dvfs run``, ``dvfs stage remove``) changes only the lines of the stage
concerned, so comments and layout elsewhere are kept; a file whose ``stages`` is
written in flow style (``stages: {...}``) is written anew. An edit that would take away
a YAML anchor another stage names (``deps: *d``) is refused, the file left as it was.
"""

from __future__ import annotations

import bisect
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from vfs.errors import UsageError
from vfs.model import yaml12
from vfs.model.names import is_reserved, is_reserved_at_root
from vfs.model.params import yaml_error, yaml_problem
from vfs.model.version_codec import (
    MAX_ARGS,
    MAX_CMD,
    MAX_PATH_BYTES,
    MAX_PATHS,
    MAX_STAGES,
    STAGE_NAME,
)
from vfs.quoting import escape_text, quote_given, quote_name
from vfs.repo.gitlink import LOCK_FILE, PIPELINE_FILE, RUNS_FILE, SHARED_FILE

MAX_FILE = 1 << 20
MAX_NODES = 1_000_000
DEFAULT_PARAMS = b"params.yaml"
STAGE_KEYS = ("cmd", "wdir", "deps", "params", "outs", "metrics")
OWN_FILES = frozenset(n.encode() for n in (PIPELINE_FILE, RUNS_FILE, LOCK_FILE, SHARED_FILE))
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Stage:
    """One stage: its command and the repository paths it reads and writes."""

    name: str
    cmd: str | tuple[str, ...]
    wdir: bytes = b""  # repository path; b"" is the root
    deps: tuple[bytes, ...] = ()
    outs: tuple[bytes, ...] = ()  # every output, metrics files included
    params: tuple[tuple[bytes, str], ...] = ()  # (file, dotted key)
    metrics: tuple[bytes, ...] = ()  # outputs that hold metrics
    line: int = 0  # where the stage is defined (1-based; 0: not from a file)

    def shown_cmd(self) -> str:
        """The command as one line of text (a list joined as a shell would read it)."""
        if isinstance(self.cmd, str):
            return self.cmd
        import shlex  # (only to show a list command)

        return shlex.join(self.cmd)


@dataclass
class Pipeline:
    """The stages of a ``dvfs.yaml``, in the order written, and the text they came from."""

    stages: dict[str, Stage] = field(default_factory=dict)
    text: str = ""


class SpecError(UsageError):
    """``dvfs.yaml`` is not valid; the message names the file, line and key."""


def _err(line: int | None, key: str, what: str) -> SpecError:
    """A SpecError at ``line`` of the pipeline file (0: the file; None: a command line)."""
    if line is None:
        return SpecError(what)
    where = f"{PIPELINE_FILE}:{line}" if line else PIPELINE_FILE
    return SpecError(f"{where}: {key}: {what}" if key else f"{where}: {what}")


class _Reader:
    """Turns composed YAML nodes into stages, counting nodes against MAX_NODES."""

    def __init__(self) -> None:
        self.nodes = 0

    def count(self, node: yaml.Node) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _err(node.start_mark.line + 1, "", f"expands to more than {MAX_NODES:,} nodes")

    def mapping(self, node: yaml.Node, key: str) -> list[tuple[str, yaml.Node, int]]:
        """(key, value node, line) of a mapping node; SpecError on repeats or odd keys."""
        self.count(node)
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return []
        if not isinstance(node, yaml.MappingNode):
            raise _err(line, key, "must be a mapping (name: value)")
        seen: dict[str, int] = {}
        out = []
        for k, v in node.value:
            self.count(k)
            kline = k.start_mark.line + 1
            if k.tag == _MERGE:
                raise _err(kline, key, "merge keys (<<) are not supported here: write it out")
            if not isinstance(k, yaml.ScalarNode) or k.tag == _NULL:
                raise _err(kline, key, "keys must be plain names")
            name = str(k.value)
            if name in seen:
                raise _err(kline, f"{key}.{name}" if key else name,
                           f"given twice (first on line {seen[name]})")  # fmt: skip
            seen[name] = kline
            out.append((name, v, kline))
        return out

    def text(self, node: yaml.Node, key: str) -> str:
        self.count(node)
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.ScalarNode):
            raise _err(line, key, "must be text")
        if node.tag == _NULL or node.value == "":
            raise _err(line, key, "is empty")
        value = str(node.value)
        if "\0" in value:
            raise _err(line, key, "holds a NUL character")
        return value

    def texts(self, node: yaml.Node, key: str) -> list[tuple[str, int]]:
        """A list of text items (or one text item alone), with their lines."""
        self.count(node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _NULL:
                return []
            return [(self.text(node, key), node.start_mark.line + 1)]
        if not isinstance(node, yaml.SequenceNode):
            raise _err(node.start_mark.line + 1, key, "must be a list")
        if len(node.value) > MAX_PATHS:
            raise _err(node.start_mark.line + 1, key, f"holds more than {MAX_PATHS:,} items")
        return [
            (self.text(item, f"{key}[{i}]"), item.start_mark.line + 1)
            for i, item in enumerate(node.value)
        ]


def repo_path(text: str, wdir: bytes, line: int | None, key: str, what: str = "path") -> bytes:
    """The repository path of ``text`` (relative to ``wdir``); SpecError if it may not be one.

    ``line`` places the error in the pipeline file; None says ``text`` came from a
    command line.

    Refused: absolute paths, paths leaving the working tree, the root itself, and
    reserved names (``.git``, ``.dvfs`` and lookalikes anywhere, ``.versions`` at the top).
    """
    shown = quote_given(text)
    if any("\udc80" <= c <= "\udcff" for c in text):  # bytes os.fsdecode could not decode
        raise _err(line, key, f"{what} {quote_name(text)} is not UTF-8, which "
                   f"{PIPELINE_FILE} is: rename it")  # fmt: skip
    raw = os.fsencode(text)
    if raw.startswith(b"/"):
        base = "the root" if what == "wdir" else "the wdir"
        raise _err(line, key, f"{what} {shown} is absolute: write it relative to {base}")
    joined = posixpath.normpath(posixpath.join(wdir, raw) if wdir else raw)
    if joined == b"..":
        raise _err(line, key, f"{what} {shown} is outside the working tree")
    if joined.startswith(b"../"):
        raise _err(line, key, f"{what} {shown} is outside the working tree")
    if joined in (b"", b"."):
        raise _err(line, key, f"{what} {shown} is the whole working tree: name what is in it")
    if len(joined) > MAX_PATH_BYTES:
        raise _err(line, key, f"{what} is longer than {MAX_PATH_BYTES:,} bytes")
    parts = joined.split(b"/")
    for part in parts:
        if len(part) > 255:
            raise _err(line, key, f"{what} {shown} has a name longer than 255 bytes")
        if is_reserved(part):
            raise _err(line, key, f"{what} {shown} is inside {quote_name(part)}, which "
                       "git or dvfs keeps for itself")  # fmt: skip
    if is_reserved_at_root(parts[0]):
        raise _err(line, key, f"{what} {shown} is inside {quote_name(parts[0])}, which "
                   "the mount keeps for its versions")  # fmt: skip
    return joined


def _wdir(text: str, line: int, key: str) -> bytes:
    if posixpath.normpath(text) == ".":
        return b""
    return repo_path(text, b"", line, key, "wdir")


def _unique(paths: list[tuple[bytes, int]], key: str) -> tuple[bytes, ...]:
    seen: set[bytes] = set()
    for p, line in paths:
        if p in seen:
            raise _err(line, key, f"{quote_name(p)} is listed twice")
        seen.add(p)
    return tuple(p for p, _ in paths)


def _params(r: _Reader, node: yaml.Node, wdir: bytes, key: str) -> tuple[tuple[bytes, str], ...]:
    r.count(node)
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
        return ()
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if len(items) > MAX_PATHS:
        raise _err(node.start_mark.line + 1, key, f"holds more than {MAX_PATHS:,} items")
    default = posixpath.join(wdir, DEFAULT_PARAMS) if wdir else DEFAULT_PARAMS
    out: list[tuple[tuple[bytes, str], int]] = []
    for i, item in enumerate(items):
        at = f"{key}[{i}]"
        if isinstance(item, yaml.MappingNode):
            for fname, keys, line in r.mapping(item, at):
                f = repo_path(fname, wdir, line, at, "params file")
                out += [((f, k), kl) for k, kl in r.texts(keys, f"{at}.{fname}")]
        else:
            out.append(((default, r.text(item, at)), item.start_mark.line + 1))
    seen: set[tuple[bytes, str]] = set()
    for ref, line in out:
        if ref in seen:
            raise _err(line, key, f"{quote_name(ref[0])}:{escape_text(ref[1])} is listed twice")
        if len(ref[1]) > 256 or escape_text(ref[1]) != ref[1] or "" in ref[1].split("."):
            shown = quote_name(ref[1][:60]) if ref[1] else '""'
            raise _err(
                line, key,
                f"{shown} is not a parameter name: a key, dotted into mappings and lists "
                "(train.lr, layers.0), without control characters",
            )  # fmt: skip
        seen.add(ref)
    return tuple(ref for ref, _ in out)


def _cmd(r: _Reader, node: yaml.Node, key: str) -> str | tuple[str, ...]:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode):
        args = r.texts(node, key)
        if not args:
            raise _err(line, key, "is empty")
        if len(args) > MAX_ARGS or sum(len(a.encode()) for a, _ in args) > MAX_CMD:
            raise _err(line, key, f"is longer than {MAX_CMD >> 10} KiB or {MAX_ARGS} arguments")
        return tuple(a for a, _ in args)
    cmd = r.text(node, key)
    if not cmd.strip():
        raise _err(line, key, "is empty")
    if len(cmd.encode("utf-8", "surrogatepass")) > MAX_CMD:
        raise _err(line, key, f"is longer than {MAX_CMD >> 10} KiB")
    return cmd


def _stage(r: _Reader, name: str, node: yaml.Node, line: int) -> Stage:
    key = f"stages.{name}"
    if not STAGE_NAME.fullmatch(name):
        raise _err(line, key, "a stage name is an ASCII letter, digit or _ followed by at most "
                   "99 ASCII letters, digits, _, . or -")  # fmt: skip
    fields = {k: (v, ln) for k, v, ln in r.mapping(node, key)}
    unknown = sorted(set(fields) - set(STAGE_KEYS))
    if unknown:
        k = unknown[0]
        raise _err(fields[k][1], f"{key}.{k}",
                   f"unknown key (a stage has {', '.join(STAGE_KEYS)})")  # fmt: skip
    if "cmd" not in fields:
        raise _err(line, key, "has no cmd: say what to run")
    cmd = _cmd(r, fields["cmd"][0], f"{key}.cmd")
    wdir = b""
    if "wdir" in fields:
        wdir = _wdir(r.text(fields["wdir"][0], f"{key}.wdir"), fields["wdir"][1], f"{key}.wdir")

    def paths(k: str) -> tuple[bytes, ...]:
        if k not in fields:
            return ()
        at = f"{key}.{k}"
        items = [(repo_path(t, wdir, ln, at), ln) for t, ln in r.texts(fields[k][0], at)]
        return _unique(items, at)

    deps, outs, metrics = paths("deps"), paths("outs"), paths("metrics")
    params = _params(r, fields["params"][0], wdir, f"{key}.params") if "params" in fields else ()
    for p in (*outs, *metrics):
        if p in OWN_FILES:
            raise _err(line, key, f"{quote_name(p)} is dvfs's own file: it cannot be an output")
    both = set(outs) & set(metrics)
    if both:
        twice = os.fsdecode(min(both))
        raise _err(line, key, f"{twice} is in both outs and metrics: list it under metrics only")
    if RUNS_FILE.encode() in deps:
        raise _err(line, key, f"{RUNS_FILE} cannot be a dep: dvfs writes it after each stage")
    return Stage(name, cmd, wdir, deps, (*outs, *metrics), params, metrics, line)


def parse(text: str) -> Pipeline:
    """The stages of a ``dvfs.yaml``'s text; SpecError (file:line: key: what) if invalid."""
    try:
        root = yaml.compose(text, Loader=yaml12.Loader)  # a safe loader (see vfs.model.yaml12)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = yaml_problem(exc)
        raise _err(mark.line + 1 if mark else 0, "", f"not valid YAML: {problem}") from None
    except RecursionError:
        raise _err(0, "", "nests too deeply") from None
    if root is None:
        return Pipeline({}, text)
    r = _Reader()
    top = r.mapping(root, "")
    extra = [(k, ln) for k, _, ln in top if k != "stages"]
    if extra:
        raise _err(extra[0][1], extra[0][0], "unknown key (the file holds `stages:` only)")
    if not top:
        return Pipeline({}, text)
    stages_node = top[0][1]
    rows = r.mapping(stages_node, "stages")
    if len(rows) > MAX_STAGES:
        raise _err(stages_node.start_mark.line + 1, "stages", f"more than {MAX_STAGES} stages")
    return Pipeline({name: _stage(r, name, node, ln) for name, node, ln in rows}, text)


def read(data: bytes | None) -> Pipeline:
    """:func:`parse` of a file's bytes (None: no file, no stages)."""
    if data is None:
        return Pipeline()
    if len(data) > MAX_FILE:
        raise SpecError(f"{PIPELINE_FILE} is larger than {MAX_FILE >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _err(line, "", "not UTF-8 text") from None
    return parse(text)


# ----------------------------------------------------------------------------- writing


def _rel(p: bytes, wdir: bytes) -> str:
    """``p`` as written in the stage: relative to its wdir."""
    return os.fsdecode(posixpath.relpath(p, wdir) if wdir else p)


def stage_yaml(s: Stage) -> dict[str, Any]:
    """A stage as the mapping written in ``dvfs.yaml``."""
    body: dict[str, Any] = {"cmd": s.cmd if isinstance(s.cmd, str) else list(s.cmd)}
    if s.wdir:
        body["wdir"] = os.fsdecode(s.wdir)
    if s.deps:
        body["deps"] = [_rel(p, s.wdir) for p in s.deps]
    if s.params:
        default = posixpath.join(s.wdir, DEFAULT_PARAMS) if s.wdir else DEFAULT_PARAMS
        items: list[Any] = [k for f, k in s.params if f == default]
        others: dict[str, list[str]] = {}
        for f, k in s.params:
            if f != default:
                others.setdefault(_rel(f, s.wdir), []).append(k)
        items += [{f: ks} for f, ks in others.items()]
        body["params"] = items
    outs = [p for p in s.outs if p not in s.metrics]
    if outs:
        body["outs"] = [_rel(p, s.wdir) for p in outs]
    if s.metrics:
        body["metrics"] = [_rel(p, s.wdir) for p in s.metrics]
    return body


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def _span(text: str, starts: list[int], key: yaml.Node, value: yaml.Node) -> tuple[int, int]:
    """The characters of one stage: its key's line to its last line that is not a comment."""
    begin = starts[key.start_mark.line]
    end = value.end_mark.index
    while end > begin and text[end - 1] in " \t":  # (the indentation of the next key)
        end -= 1
    end_line = bisect.bisect_right(starts, end - 1)  # lines before it: [key line, end_line)
    last = key.start_mark.line
    for ln in range(key.start_mark.line, end_line):
        lo = starts[ln]
        hi = starts[ln + 1] if ln + 1 < len(starts) else len(text)
        content = text[lo:hi].strip()
        if content and not content.startswith("#"):
            last = ln
    end = starts[last + 1] if last + 1 < len(starts) else len(text)
    return begin, end


def _fresh_text(stages: Sequence[Stage], head: str = "") -> str:
    body = {"stages": {s.name: stage_yaml(s) for s in stages}} if stages else {"stages": None}
    dumped = _dump(body)
    if not stages:
        dumped = "stages:\n"
    return head + dumped


def _dump(data: Any) -> str:
    """YAML as people write ``dvfs.yaml``: blocks, with lists of plain items on one line."""
    return str(
        yaml.dump(
            data, Dumper=yaml12.Dumper, sort_keys=False, allow_unicode=True,
            default_flow_style=None, width=1 << 16,
        )
    )  # fmt: skip


def with_stage(p: Pipeline, stage: Stage) -> str:
    """The text of ``p``'s file with ``stage`` added, or put in place of its namesake."""
    block = _dump({stage.name: stage_yaml(stage)})
    root = yaml.compose(p.text, Loader=yaml12.Loader) if p.text.strip() else None
    node = _stages_node(root)
    if node is None or not isinstance(node, yaml.MappingNode) or node.flow_style or not node.value:
        head = p.text[: root.start_mark.index] if root is not None else p.text
        others = [s for s in p.stages.values() if s.name != stage.name]
        order = [*others, stage] if stage.name not in p.stages else [
            stage if s.name == stage.name else s for s in p.stages.values()
        ]  # fmt: skip
        return _fresh_text(order, head if head.strip() else "")
    text = p.text if p.text.endswith("\n") else p.text + "\n"
    starts = _line_starts(text)
    column = node.value[0][0].start_mark.column
    new = _indent(block, column)
    for k, v in node.value:
        if k.value == stage.name:
            lo, hi = _span(text, starts, k, v)
            return text[:lo] + new + text[hi:]
    _, hi = _span(text, starts, node.value[-1][0], node.value[-1][1])
    return text[:hi] + new + text[hi:]


def edited(text: str, name: str, what: str) -> Pipeline:
    """The stages of ``text``: the file with stage ``name`` replaced, added or removed
    (``what``: ``removing``, ``replacing``, ``adding``); SpecError if it is not valid.

    Editing copies the lines of the other stages as they are, but a stage may use a
    YAML anchor of the one edited (``deps: *d``), which the file would then lack: the
    error says so, and that the file is left as it was."""
    try:
        return parse(text)
    except SpecError:
        try:
            yaml.compose(text, Loader=yaml12.Loader)
        except yaml.composer.ComposerError as exc:
            if str(exc.problem).startswith("found undefined alias"):
                raise SpecError(
                    f"{what} stage {name} would leave {PIPELINE_FILE} not valid: another stage "
                    f"uses a YAML anchor of it (&NAME, named by *NAME; {yaml_error(exc)} in the "
                    f"file as it would be); {PIPELINE_FILE} is left as it was: write that value "
                    "out in full there"
                ) from None
        except (yaml.YAMLError, RecursionError):
            pass
        raise


def without_stage(p: Pipeline, name: str) -> str:
    """The text of ``p``'s file without stage ``name`` (which it has)."""
    root = yaml.compose(p.text, Loader=yaml12.Loader)
    node = _stages_node(root)
    assert node is not None and isinstance(node, yaml.MappingNode)
    if node.flow_style:
        head = p.text[: root.start_mark.index] if root is not None else ""
        return _fresh_text([s for s in p.stages.values() if s.name != name], head)
    text = p.text if p.text.endswith("\n") else p.text + "\n"
    starts = _line_starts(text)
    for k, v in node.value:
        if k.value == name:
            lo, hi = _span(text, starts, k, v)
            return text[:lo] + text[hi:]
    raise AssertionError(f"no stage {name}")


def _stages_node(root: yaml.Node | None) -> yaml.Node | None:
    if not isinstance(root, yaml.MappingNode):
        return None
    for k, v in root.value:
        if isinstance(k, yaml.ScalarNode) and k.value == "stages":
            node: yaml.Node = v
            return node
    return None
