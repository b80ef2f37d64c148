"""Parameter and metric files: reading values by dotted key, and setting one.

A file is read by its name: ``.json`` as JSON, ``.toml`` as TOML, anything else as
YAML 1.2 (``vfs.model.yaml12``: ``1e-3`` is a number, ``yes`` is text). A key written
twice in one mapping makes the file invalid in all three (JSON readers differ on which
value they keep: the file is named, with the key, as one that cannot be read). A key is dotted:
``train.lr`` is ``lr`` inside ``train``; a list is indexed by number
(``layers.0.width``). Values are checked and bounded as a version's parameters are
(``vfs.model.params``: NaN and the infinities become text), so that what a stage read can
be recorded exactly and compared with what it reads next time.

Metrics are flattened the same way: every number, boolean or short text in a
metrics file, under its dotted key; NaN and the infinities become the text
``.nan``, ``.inf`` and ``-.inf``, as parameters and JSON output spell them, and
``-0.0`` is ``0.0`` (equal as numbers: ``metrics diff`` and ``compare`` show one value). At most
``MAX_METRICS`` values of a file are shown, and a note says when more were left out.

A TOML date, time or date-time is read as its text (``2024-01-02``,
``2024-01-02 10:00:00+00:00``), as YAML 1.2 reads a date: that text is what
``params diff`` and ``compare`` show. It is a ``TomlDate`` (``vfs.model.params``),
though, which a run records as a date: a date changed to a string of the same text
(``d = "2024-01-02"``) is a change, as the program reading the file sees one.

Setting a value (``dvfs exp run -S train.lr=0.02``) rewrites only that value's
characters in a YAML, TOML or JSON file, so comments, layout, indentation and key
order stay (a JSON value that is a list or a mapping is written on one line, as is a
YAML one, after its key's colon where it was written one item a line). The
file is read back after the change, and the change refused unless it then holds
exactly the new value. A date stays a date: a TOML date, time or date-time is set
only to another (a text that is none is refused), and a YAML date written unquoted
(which a YAML 1.1 reader, PyYAML's ``safe_load``, reads as a date) is replaced by a
date written unquoted.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sys
import tomllib
from typing import Any

import yaml

from vfs.errors import UsageError
from vfs.model import params as version_params
from vfs.model import yaml12
from vfs.quoting import finite, quote_name

MAX_FILE = 1 << 20  # bytes of a parameters or metrics file
MAX_METRICS = 10_000  # values flattened out of one metrics file
MAX_METRIC_TEXT = 200  # characters of a text metric
MAX_NODES = 1_000_000  # values a YAML file may expand to, its aliases counted each time
MAX_DEPTH = 1_000  # levels a YAML file may nest, through its aliases too (JSON's own bound)


class ValuesError(UsageError):
    """A parameters or metrics file cannot be read, or lacks a key."""


def history_name(metrics: bytes) -> bytes:
    """The per-step history file of a metrics file (``metrics.json``:
    ``metrics.steps.jsonl``): ``vfs.track`` writes it, ``dvfs ui`` plots it."""
    stem = metrics[:-5] if metrics.endswith(b".json") else metrics
    return stem + b".steps.jsonl"


def kind_of(name: bytes) -> str:
    """How a file is read: ``json``, ``toml`` or ``yaml``."""
    lower = name.lower()
    if lower.endswith(b".json"):
        return "json"
    if lower.endswith(b".toml"):
        return "toml"
    return "yaml"


def load(data: bytes, name: bytes, shown: str) -> Any:
    """The document a file's bytes hold; ValuesError saying what is wrong."""
    if len(data) > MAX_FILE:
        raise ValuesError(f"{shown} is larger than {MAX_FILE >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValuesError(f"{shown} is not UTF-8 text") from None
    kind = kind_of(name)
    try:
        if kind == "json":
            return json.loads(text, object_pairs_hook=_unique_keys)
        if kind == "toml":
            return _dates_typed(tomllib.loads(text))
        return _expansion_bounded(yaml12.load_plain(text), shown)
    except yaml12.TagRefused as exc:
        raise ValuesError(f"{shown}: {version_params.yaml_error(exc)}") from None
    except yaml.YAMLError as exc:
        raise ValuesError(f"{shown} is not valid YAML: {version_params.yaml_error(exc)}") from None
    except ValueError as exc:  # (JSONDecodeError, TOMLDecodeError)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "integer string conversion" in first:  # past Python's bound on decimal digits
            first = f"an integer of more than {sys.get_int_max_str_digits():,} digits"
        raise ValuesError(f"{shown} is not valid {kind.upper()}: {first}") from None
    except RecursionError:
        raise ValuesError(f"{shown} nests too deeply") from None


def _expansion_bounded(doc: Any, shown: str) -> Any:
    """``doc``, a YAML document, if it holds at most ``MAX_NODES`` values and nests at
    most ``MAX_DEPTH`` levels, each alias counted where it is used; else ValuesError.

    A few lines of aliases can make a mapping hold itself (``a: &x {b: *x}``), stand
    for 10**9 values (each list ten copies of the one before) or nest thousands of
    levels, where everything that walks the document (flattening metrics, a
    parameter's close names) would run for ever or fill memory. Without aliases a
    file of ``MAX_FILE`` bytes holds fewer values than this, and JSON's parser
    refuses nesting this deep. An alias is the same object wherever it is used, so
    each is measured once: the cost is that of the file, not of what it expands to."""
    measured: dict[int, tuple[int, int]] = {}  # id of a list or mapping: (values, depth)
    walking: set[int] = set()  # those whose members are being measured
    stack: list[tuple[Any, bool]] = [(doc, False)] if isinstance(doc, (dict, list)) else []
    while stack:
        cur, members_done = stack.pop()
        if not members_done and id(cur) in measured:
            continue
        members = list(cur.values()) if isinstance(cur, dict) else cur
        if not members_done:
            if id(cur) in walking:
                raise ValuesError(f"{shown} holds itself (a YAML alias inside its own anchor)")
            walking.add(id(cur))
            stack.append((cur, True))
            stack += ((m, False) for m in members if isinstance(m, (dict, list)))
            continue
        values, depth = 1 + len(members), 0
        for m in members:
            if isinstance(m, (dict, list)):
                n, d = measured[id(m)]
                values, depth = values + n - 1, max(depth, d)
        walking.discard(id(cur))
        measured[id(cur)] = (values, depth + 1)
        if values > MAX_NODES:
            raise ValuesError(
                f"{shown} expands to more than {MAX_NODES:,} values (through its YAML aliases)"
            )
        if depth + 1 > MAX_DEPTH:
            raise ValuesError(f"{shown} nests more than {MAX_DEPTH:,} levels")
    return doc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; ValueError for a key written twice in it (JSON readers differ on
    which value they keep, and YAML 1.2 and TOML refuse it: so does dvfs)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key {quote_name(k)} is given twice in one object")
        out[k] = v
    return out


def _dates_typed(value: Any) -> Any:
    """A TOML document with each date, time or date-time as a ``TomlDate``: its text,
    and a value of its own type (``same`` tells it from a string)."""
    if isinstance(value, (dt.date, dt.time)):  # (a datetime is a date)
        return version_params.TomlDate(value)
    if isinstance(value, dict):
        return {k: _dates_typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_typed(v) for v in value]
    return value


_MISSING = object()


def key_text(k: Any) -> str:
    """A mapping key as a dotted key names it: a YAML key that is not text (``1:``,
    ``true:``, ``null:``) as it is written in YAML."""
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    return str(k)


def _child(cur: dict[Any, Any], part: str) -> Any:
    if part in cur:
        return cur[part]
    for k, v in cur.items():
        if not isinstance(k, str) and key_text(k) == part:
            return v
    return _MISSING


def lookup(doc: Any, key: str) -> Any:
    """The value at dotted ``key`` in ``doc``; ``_MISSING`` if there is none. A key that
    YAML reads as a number, a boolean or null is named as it is written (``sched.1``)."""
    cur = doc
    for part in key.split("."):
        if isinstance(cur, dict) and _child(cur, part) is not _MISSING:
            cur = _child(cur, part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def is_missing(value: Any) -> bool:
    """True for what :func:`lookup` returns when the key is not there."""
    return value is _MISSING


FloatText = version_params.FloatText  # (a metric or a stage's parameter: see the class)


def plain(value: Any) -> Any:
    """``value`` as it is recorded: checked and bounded (see ``vfs.model.params``); a
    text that YAML reads as NaN or an infinity is a :class:`FloatText`, as the float of
    that spelling is recorded as the plain text."""
    return version_params.check({"v": _texts_apart(value)})["v"]


def _texts_apart(value: Any, depth: int = 0) -> Any:
    """``value`` with each plain text that YAML reads as NaN or an infinity a FloatText
    (deeper than values may nest: left for ``check`` to refuse)."""
    if type(value) is str:
        return FloatText(value) if version_params.NON_FINITE.fullmatch(value) else value
    if depth > version_params.MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: _texts_apart(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_texts_apart(v, depth + 1) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """True if two recorded values are the same value of the same type, at every depth.

    ``1``, ``1.0`` and ``true`` compare equal in Python, inside a list or a mapping
    too; a stage that read ``[1, 2]`` and now reads ``[true, 2]`` reads another value.
    A list and a tuple (as a record may decode one) are the same sequence.
    """
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    return bool(a == b)


def get(doc: Any, key: str, shown: str) -> Any:
    """The recorded form of ``key``'s value in ``doc``; ValuesError naming close keys,
    or if ``key`` names two values (see :func:`_one_value`)."""
    return plain(_one_value(doc, key, shown))


def _one_value(doc: Any, key: str, shown: str) -> Any:
    """The value at dotted ``key``; ValuesError if there is none, or if a key holding a
    dot names another value too (``{"a": {"b": 1}, "a.b": 2}``: the program may read
    either). A key holding a dot is never read by a dotted name: it is said so."""
    value = lookup(doc, key)
    readings = _readings(doc, key.split("."))
    if value is _MISSING and readings:
        raise ValuesError(
            f"{shown} has no parameter {quote_name(key)} as nested keys, only a key holding "
            "a dot, which a dotted name cannot name (it reads nested keys): rename that key"
        )
    if value is _MISSING:
        close = [c for c in close_keys(doc, key) if c != key]
        hint = f"; did you mean {', '.join(quote_name(c) for c in close)}?" if close else ""
        raise ValuesError(f"{shown} has no parameter {quote_name(key)}{hint}")
    if readings > 1:
        raise ValuesError(
            f"{shown} has two values named {quote_name(key)}, a key holding a dot and keys "
            "nested: rename one, so that the name reads one value"
        )
    return value


def _readings(doc: Any, parts: list[str]) -> int:
    """How many values the dotted ``parts`` name in ``doc`` when a key may hold dots (0,
    1, or 2 for more)."""
    memo: dict[tuple[int, int], int] = {}

    def ways(cur: Any, i: int) -> int:
        if i == len(parts):
            return 1
        if (id(cur), i) in memo:
            return memo[(id(cur), i)]
        n = 0
        if isinstance(cur, dict):
            for j in range(i + 1, len(parts) + 1):
                child = _child(cur, ".".join(parts[i:j]))
                if child is not _MISSING:
                    n += ways(child, j)
                if n > 1:
                    break
        elif isinstance(cur, list) and parts[i].isdigit() and int(parts[i]) < len(cur):
            n = ways(cur[int(parts[i])], i + 1)
        memo[(id(cur), i)] = min(n, 2)
        return memo[(id(cur), i)]

    return ways(doc, 0)


def _keys(doc: Any, prefix: str = "", limit: int = 10_000) -> list[str]:
    out: list[str] = []
    stack = [(prefix, doc)]
    while stack and len(out) < limit:
        pre, cur = stack.pop()
        if isinstance(cur, dict):
            for k, v in cur.items():
                name = f"{pre}{key_text(k)}"
                out.append(name)
                stack.append((name + ".", v))
    return out


def close_keys(doc: Any, key: str) -> list[str]:
    """Keys of ``doc`` written like ``key`` (for an error message)."""
    import difflib  # only for this message

    return difflib.get_close_matches(key, _keys(doc), n=3, cutoff=0.6)


def flatten(
    doc: Any,
    clashes: list[str] | None = None,
    unshown: list[str] | None = None,
    cut: list[bool] | None = None,
) -> dict[str, Any]:
    """Every number, boolean or short text of a metrics document, by dotted key (a
    YAML key read as a boolean or null named as written: ``true``, ``null``).

    Two values can have one dotted key (``{"a": {"b": 1}, "a.b": 2}``): the first in
    the document is kept, and the key is added to ``clashes``. The key of a value of
    another kind (a text over ``MAX_METRIC_TEXT`` characters, a TOML date) is added
    to ``unshown``. Past ``MAX_METRICS`` values the rest of the document is left out,
    and True is added to ``cut``.
    """
    out: dict[str, Any] = {}
    twice: dict[str, None] = {}
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        if len(out) >= MAX_METRICS:
            if cut is not None:
                cut.append(True)
            break
        pre, cur = stack.pop()
        if isinstance(cur, dict):
            stack += [(f"{pre}{key_text(k)}.", v) for k, v in reversed(list(cur.items()))]
            continue
        if isinstance(cur, list):
            stack += [(f"{pre}{i}.", v) for i, v in reversed(list(enumerate(cur)))]
            continue
        value: Any
        if isinstance(cur, bool) or cur is None or isinstance(cur, int):
            value = cur
        elif isinstance(cur, float):
            value = finite(cur) if cur != 0 else 0.0  # -0.0 is 0.0: one value, shown so
        elif isinstance(cur, str) and len(cur) <= MAX_METRIC_TEXT and type(cur) is str:
            value = FloatText(cur) if version_params.NON_FINITE.fullmatch(cur) else cur
        else:
            if unshown is not None and pre[:-1]:
                unshown.append(pre[:-1])
            continue
        if pre[:-1] in out:
            twice[pre[:-1]] = None
        else:
            out[pre[:-1]] = value
    out.pop("", None)
    twice.pop("", None)
    if clashes is not None:
        clashes += twice
    return dict(sorted(out.items()))


def metrics_of(data: bytes, name: bytes, shown: str) -> tuple[dict[str, Any], list[str]]:
    """The metrics a file's bytes hold, flattened, and what to say of values not shown:
    a value of a kind not shown (a long text, a date), a key that names two values
    (:func:`flatten`), or a file of one bare value, which has no name to be shown by.
    ValuesError if the file cannot be read."""
    doc = load(data, name, shown)
    clashes: list[str] = []
    unshown: list[str] = []
    cut: list[bool] = []
    out = flatten(doc, clashes, unshown, cut)
    notes = []
    if cut:
        notes.append(
            f"{shown} holds more than {MAX_METRICS:,} values: only the first {MAX_METRICS:,} "
            "are shown; keep a large table (a confusion matrix, a metric per class) in a "
            "file that is not listed under metrics"
        )
    if unshown:
        names = ", ".join(quote_name(k) for k in unshown[:5])
        more = f" and {len(unshown) - 5} more" if len(unshown) > 5 else ""
        notes.append(
            f"{shown}: {names}{more} not shown: a metric is a number, a boolean or a text "
            f"of at most {MAX_METRIC_TEXT} characters"
        )
    if clashes:
        names = ", ".join(quote_name(k) for k in clashes[:5])
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        notes.append(
            f"{shown}: {names}{more} names two values (a key holding a dot and a nested key "
            "flatten to one name): the first is shown; rename one of the keys"
        )
    if not isinstance(doc, (dict, list)) and doc is not None:
        notes.append(
            f"{shown} holds one value and no name for it: write a mapping such as "
            '{"acc": 0.9} to have it shown'
        )
    return out, notes


# ----------------------------------------------------------------------------- setting


def _yaml_scalar(value: Any) -> str:
    """``value`` as YAML 1.2 flow text (one line)."""
    text = yaml.dump(value, Dumper=yaml12.Dumper, default_flow_style=True, width=1 << 30)
    return text.removesuffix("\n...\n").rstrip("\n")


def _yaml11_date(text: str) -> bool:
    """True if ``text``, written unquoted, is a date or a timestamp to a YAML 1.1 reader."""
    if "\n" in text or not text[:1].isdigit():
        return False
    try:
        return isinstance(yaml.safe_load(text), dt.date) and yaml12.load(text) == text
    except yaml.YAMLError:
        return False


def _set_yaml(text: str, key: str, value: Any, shown: str) -> str:
    root = yaml.compose(text, Loader=yaml12.Loader)
    node = root
    key_node: yaml.Node | None = None  # the key of node, if it is a mapping's value
    for part in key.split("."):
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)
                     and k.value == part]  # fmt: skip
            key_node, node = found[-1] if found else (None, None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            key_node, node = None, node.value[int(part)]
        else:
            node = None
        if node is None:
            break
    if node is None:
        raise ValuesError(f"{shown} has no parameter {quote_name(key)}: add it to the file first")
    lo, hi = node.start_mark.index, _value_end(text, node)
    block = isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and not node.flow_style
    if block and key_node is not None and node.start_mark.line > key_node.end_mark.line:
        # a list or mapping one item a line, below its key: the value written in flow
        # style after the key's colon (where the lines of the items were, it could stand
        # at the key's indentation, which YAML reads as the next key), the comment of the
        # key's line after it
        colon = text.find(":", key_node.end_mark.index, lo)
        if colon >= 0:
            line_end = text.find("\n", colon, lo)
            rest = text[colon + 1 : line_end].rstrip() if line_end >= 0 else ""
            return f"{text[: colon + 1]} {_yaml_scalar(value)}{rest}{text[hi:]}"
    plain_date = isinstance(node, yaml.ScalarNode) and not node.style  # unquoted
    if plain_date and _yaml11_date(node.value) and isinstance(value, str) and _yaml11_date(value):
        return text[:lo] + value + text[hi:]  # a date the file's own reader reads as one
    return text[:lo] + _yaml_scalar(value) + text[hi:]


def _value_end(text: str, node: yaml.Node) -> int:
    """Where the characters of ``node``'s value end in ``text``. A block list or
    mapping, and a ``|`` or ``>`` text, end where the next token starts: after the
    line breaks, comments and indentation that follow them, up to the next key. Their
    last value's last character is the end."""
    while isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and not node.flow_style:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end = node.end_mark.index
    while end > node.start_mark.index and text[end - 1] in " \t\r\n":
        end -= 1
    return end


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, i: int) -> int:
    """Where the JSON white space from ``i`` ends."""
    m = _JSON_SPACE.match(text, i)
    assert m is not None  # (it matches the empty string)
    return m.end()


def _set_json(text: str, key: str, value: Any, shown: str) -> str:
    """``text`` with the characters of the JSON value at ``key`` replaced by ``value``
    written as JSON: the rest of the file (indentation, key order, spacing) stays.

    The file was read already (``load``: valid, no key written twice), so the walk
    below only finds where each value starts and ends (``raw_decode`` skips one).
    """
    dec = json.JSONDecoder()
    i = _skip(text, 1 if text.startswith("\ufeff") else 0)
    for part in key.split("."):
        found = None
        if text.startswith("{", i):
            i = _skip(text, i + 1)
            while not text.startswith("}", i):
                name, i = dec.raw_decode(text, i)  # (a key is a JSON string)
                i = _skip(text, i) + 1  # past the colon
                i = _skip(text, i)
                if name == part:
                    found = i
                    break
                i = _skip(text, dec.raw_decode(text, i)[1])
                if text.startswith(",", i):
                    i = _skip(text, i + 1)
        elif text.startswith("[", i) and part.isdigit():
            i = _skip(text, i + 1)
            for n in range(int(part) + 1):
                if text.startswith("]", i):
                    break
                if n == int(part):
                    found = i
                    break
                i = _skip(text, dec.raw_decode(text, i)[1])
                if text.startswith(",", i):
                    i = _skip(text, i + 1)
        if found is None:
            raise ValuesError(
                f"{shown} has no parameter {quote_name(key)}: add it to the file first"
            )
        i = found
    end = dec.raw_decode(text, i)[1]
    return text[:i] + json.dumps(value, ensure_ascii=False) + text[end:]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dt.date, dt.time)):  # a datetime is a date
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise ValuesError(f"{value!r} cannot be written in TOML")


_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
# A value on one line, up to a comment: a quoted string (which may hold a #) or the rest.
_TOML_VALUE = r""""(?:[^"\\]|\\.)*"|'[^']*'|[^#]*?"""


def _set_toml(text: str, key: str, value: Any, shown: str) -> str:
    parts = key.split(".")
    lines = text.splitlines(True)
    table: list[str] = []
    for i, line in enumerate(lines):
        m = _TABLE.match(line)
        if m:
            table = [p.strip().strip('"') for p in m.group(1).split(".")]
            continue
        for cut in range(len(parts) - 1, -1, -1):
            if table != parts[:cut]:
                continue
            name = ".".join(parts[cut:])
            mk = re.match(rf"^(\s*{re.escape(name)}\s*=\s*)(?:{_TOML_VALUE})(\s*(?:#.*)?)$",
                          line.rstrip("\n"))  # fmt: skip
            if mk:
                end = "\n" if line.endswith("\n") else ""
                lines[i] = mk.group(1) + _toml_value(value) + mk.group(2) + end
                return "".join(lines)
    raise ValuesError(
        f"{shown} has no parameter {quote_name(key)} written as `key = value` under its "
        "table: edit it by hand"
    )


def set_value(data: bytes, name: bytes, key: str, value: Any, shown: str) -> bytes:
    """The bytes of a parameters file with ``key`` set to ``value`` (see the module doc)."""
    doc = load(data, name, shown)
    _one_value(doc, key, shown)
    kind = kind_of(name)
    if kind == "toml" and isinstance(lookup(doc, key), version_params.TomlDate):
        value = _toml_date(key, value, shown)
    text = data.decode("utf-8")
    if kind == "json" and isinstance(value, float) and not math.isfinite(value):
        raise ValuesError(
            f"{shown} is JSON, which cannot hold {finite(value)}: give a number, or set "
            f"{quote_name(key)} in a YAML or TOML file"
        )
    if kind == "toml" and (big := _past_64_bits(value)) is not None:
        raise ValuesError(
            f"{shown} is TOML, whose integers are 64-bit, and cannot hold {big}: give a "
            f"smaller one, or set {quote_name(key)} in a YAML or JSON file"
        )
    if kind == "json":
        new = _set_json(text, key, value, shown)
    elif kind == "toml":
        new = _set_toml(text, key, value, shown)
    else:
        bom = "\ufeff" if text.startswith("\ufeff") else ""  # (libyaml's marks leave it out)
        new = bom + _set_yaml(text[len(bom) :], key, value, shown)
    out = new.encode("utf-8")
    try:
        again = lookup(load(out, name, shown), key)
    except ValuesError:
        again = _MISSING
    if again is _MISSING or plain(again) != plain(value):
        raise ValuesError(
            f"could not set {quote_name(key)} in {shown} to {quote_name(str(value))}: "
            "edit the file by hand"
        )
    return out


def _past_64_bits(value: Any) -> int | None:
    """The first integer in ``value`` (at any depth) that 64 bits cannot hold, if any."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if not -(1 << 63) <= value < 1 << 63 else None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((b for v in items if (b := _past_64_bits(v)) is not None), None)


def _toml_date(key: str, value: Any, shown: str) -> dt.date | dt.time:
    """The TOML date, time or date-time ``value`` is written as; ValuesError if it is
    none (a key holding a date is set only to a date: a program reading it would
    otherwise be given a text)."""
    try:
        parsed = tomllib.loads(f"v = {value}")["v"] if isinstance(value, str) else None
    except tomllib.TOMLDecodeError:
        parsed = None
    if not isinstance(parsed, (dt.date, dt.time)):
        raise ValuesError(
            f"{quote_name(key)} in {shown} is a TOML date or time, and {quote_name(str(value))} "
            "is none: give one as TOML writes it (2024-01-02, 2024-01-02T10:00:00Z, 10:00:00)"
        )
    return parsed
