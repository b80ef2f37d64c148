"""A version's message and parameters as the user gives them (``-m``, ``--param K=V``,
``--params-file F``), bounded.

Both are stored in every version record and read back by ``log`` and ``show``, so
what may be recorded is bounded, and checked before anything is written:

- a message is UTF-8 text of at most ``MAX_MESSAGE`` (64 KiB);

- a parameters file is a regular file (not a FIFO or a device: ``/dev/zero`` once
  read until the OOM killer came) of at most ``MAX_FILE`` (1 MiB) of UTF-8 YAML
  holding one mapping (TOML if its name ends in ``.toml``, as a stage's params file
  is read by its name);
- keys are 1 to ``MAX_KEY`` (256) characters without control characters, and no
  part of one between dots is empty (``..``, ``.a``, ``a.`` and ``a..b`` are refused:
  nested names are shown dotted, ``opt.lr``); a key that is not text is recorded as
  its text, and two that would be recorded alike (``1`` and ``"1"``) are refused;
- values nest at most ``MAX_DEPTH`` (32) mappings or lists deep;
- all parameters together hold at most ``MAX_TOTAL`` (64 KiB): the UTF-8 bytes of
  every key and text value, plus 8 for every other value. A YAML alias counts each
  time it is used, so a small file cannot expand to a large record.

Values are typed as YAML 1.2 (:mod:`vfs.model.yaml12`): ``lr=3e-4`` is a number,
``shuffle=true`` a boolean, ``opt=yes`` and ``opt=on`` text, ``sizes=[1, 2]`` a list and
``net={depth: 18}`` a mapping. A ``--param`` value is a list or a mapping only when
written in flow style (``[...]``, ``{...}``): ``note=a: b`` stays the text ``a: b``, and
so does a value that is not valid YAML (``x=[1``). Values msgpack cannot hold
exactly, or JSON cannot show, are kept as text (and ``-0.0`` as ``0.0``, the value it
equals): integers outside 64 bits, NaN and the
infinities (``.nan``, ``.inf``, ``-.inf``; a ``--param`` keeps the text as given). A
number past the largest float (``1e999``), which YAML reads as infinity, is refused as
a ``--param`` (and as a ``dvfs exp run -S``, which writes a parameters file: there an
integer of any size stays an integer, and ``.inf`` a float, as the file reads back).
A value with an explicit YAML tag outside the 1.2 core schema (``!!binary``,
``!!timestamp``, ``!!set``, ``!!python/...``, ``!local``) is refused, naming its file
and key: it was once kept as the text Python prints for it (``b'hello'``), which the
plain text could not be told from. NumPy (and PyTorch) scalars and arrays given from
Python are kept as the numbers and lists they hold (``numpy.int64(3)`` is the number
3); a set as the list of its members in order (numbers by value, then the others by
their JSON text), the same in every process. Text that is not UTF-8 (bytes given on
the command line) is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vfs.errors import UsageError
from vfs.quoting import escape_text, finite, quote_given, quote_name

MAX_MESSAGE = 64 << 10
MAX_FILE = 1 << 20
MAX_KEY = 256
MAX_DEPTH = 32
MAX_TOTAL = 64 << 10
_INT64 = (-(1 << 63), (1 << 63) - 1)
_OTHER = 8  # what a number, a boolean or null counts towards MAX_TOTAL
SHOWN_AUTHOR = 1024  # characters of an author shown (DVFS_AUTHOR takes at most as many)


def shown(text: str, limit: int) -> str:
    """``text`` cut to its first ``limit`` characters, and a marker of how much was left out.

    A version from a remote may carry any message or author (a forged one: megabytes);
    bounding them when a version is read would make versions an older dvfs wrote
    unreadable, so ``log``, ``show``, ``compare``, ``exp list``, the dashboard and the
    API bound them where they give them out instead.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\u2026 [{len(text) - limit:,} more characters not shown]"


def shown_params(params: dict[str, Any]) -> dict[str, Any]:
    """A version's parameters as dvfs gives them out: whole when dvfs could record
    them today (MAX_TOTAL); else those that fit in MAX_TOTAL, in order, and under the
    name ``…`` how many more were left out (a forged version may carry megabytes)."""
    size = len(json.dumps(params, ensure_ascii=False, default=str))
    if size <= 2 * MAX_TOTAL:  # (JSON spends more than the bound counts)
        return params
    out: dict[str, Any] = {}
    left = MAX_TOTAL
    for k, v in params.items():
        n = len(json.dumps({k: v}, ensure_ascii=False, default=str))
        if n <= left:
            out[k], left = v, left - n
    out["\u2026"] = f"{len(params) - len(out):,} more parameters not shown ({size:,} bytes in all)"
    return out


def shown_git(commit: str) -> str:
    """A version's git commit as dvfs gives it out: git's ids are at most 64 hex
    digits (SHA-256), so anything longer was not written by git and is cut there."""
    return shown(commit, 64)


SHOWN_CMD = 4096  # characters of a stage's command given out (its arguments, together)
SHOWN_CMDS = 64 << 10  # characters of a version's stages' commands given out, in all


def shown_command(cmd: str | Sequence[str], limit: int = SHOWN_CMD) -> str | list[str]:
    """A stage's command as dvfs gives it out: its first ``limit`` characters, marked
    as :func:`shown` marks a message; an argument list keeps the arguments that fit and
    the one cut, marked with how many characters of it and those after were left out.

    A version's pipeline may hold 1,024 stages of 64 KiB commands (a forged one: 64 MB
    of them); ``show``, ``lineage``, ``dag`` and the dashboard bound them here."""
    if isinstance(cmd, str):
        return shown(cmd, limit)
    args, left = list(cmd), limit
    total = sum(len(a) for a in args)
    if total <= limit:
        return args
    out: list[str] = []
    for a in args:
        if len(a) > left:
            out.append(f"{a[:left]}\u2026 [{total - limit:,} more characters not shown]")
            break
        out.append(a)
        left -= len(a)
    return out


def shown_commands(cmds: Iterable[str | Sequence[str]]) -> list[str | list[str]]:
    """A version's stages' commands as dvfs gives them out: each bounded by
    :func:`shown_command`, and all of them by ``SHOWN_CMDS`` (past it, each is its
    marker alone)."""
    out: list[str | list[str]] = []
    left = SHOWN_CMDS
    for cmd in cmds:
        limit = min(SHOWN_CMD, left)
        out.append(shown_command(cmd, limit))
        left -= min(limit, len(cmd) if isinstance(cmd, str) else sum(len(a) for a in cmd))
    return out


def shown_message(text: str) -> str:
    """A version's message as dvfs gives it out: whole when dvfs could record it today."""
    return shown(text, MAX_MESSAGE)


def shown_author(text: str) -> str:
    """A version's author as dvfs gives it out (at most SHOWN_AUTHOR characters)."""
    return shown(text, SHOWN_AUTHOR)


def message(text: str) -> str:
    """``text`` if it can be a version's message: UTF-8, at most MAX_MESSAGE bytes."""
    try:
        n = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError("the message is not UTF-8 text") from None
    if n > MAX_MESSAGE:
        raise UsageError(
            f"the message is longer than {MAX_MESSAGE >> 10} KiB: say the rest in a file"
        )
    return text


def read_file(path: Path) -> str:
    """The text of a parameters file: a regular file of at most MAX_FILE bytes of UTF-8."""
    shown = quote_name(str(path))
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{shown} is not a regular file: give a YAML file")
        data = bytearray()
        while len(data) <= MAX_FILE:
            piece = os.read(fd, MAX_FILE + 1 - len(data))
            if not piece:
                break
            data += piece
    finally:
        os.close(fd)
    if len(data) > MAX_FILE:
        raise UsageError(f"{shown} is larger than {MAX_FILE >> 20} MiB: parameters are small")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{shown} is not UTF-8 text") from None


def yaml_problem(exc: Exception) -> str:
    """What a YAML error says is wrong, on one line. An anchor written twice has the
    problem "second occurrence" alone: what it is the second of, and where the first
    is, are in its context."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, first = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if problem == "second occurrence" and isinstance(context, str):
        what = context.removesuffix("; first occurrence")
        return f"{what} (first on line {first.line + 1})" if first is not None else what
    return str(problem)


def yaml_error(exc: Exception) -> str:
    """A YAML error on one line: what is wrong and where."""
    problem = yaml_problem(exc)
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def load_file(path: Path) -> dict[str, Any]:
    """The parameters a YAML 1.2 file records (a TOML one if its name ends in
    ``.toml``, as the pipeline reads a params file), checked (see the module docstring)."""
    # Only here: a commit without parameters need not pay 25 ms for importing yaml, nor
    # any command that reads versions 1-3 ms for tomllib.
    import tomllib

    import yaml

    from vfs.model import yaml12

    text = read_file(path)
    shown = quote_name(str(path))
    if path.name.lower().endswith(".toml"):
        try:
            return check(tomllib.loads(text))  # (dates: their text, as YAML 1.2 reads one)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{shown} is not valid TOML: {str(exc).splitlines()[0]}") from None
    try:
        loaded = yaml12.load_plain(text)
    except yaml12.TagRefused as exc:
        raise UsageError(f"{shown}: {yaml_error(exc)}") from None
    except yaml.YAMLError as exc:
        problem = yaml_error(exc)
        if "maximum nesting depth" in problem:  # libyaml's own limit, 1,000 levels
            raise UsageError(f"{shown} nests deeper than {MAX_DEPTH} levels") from None
        raise UsageError(f"{shown} is not valid YAML: {problem}") from None
    except RecursionError:  # the pure-Python parser, where libyaml is missing
        raise UsageError(f"{shown} nests deeper than {MAX_DEPTH} levels") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"{shown} must hold a mapping of names to values")
    return check(loaded)


def value(text: str, given: str = "") -> Any:
    """A ``--param`` value typed as YAML 1.2 (3e-4 -> float, yes -> text, [1, 2] -> list).

    A list or mapping only in flow style; text that is not valid YAML stays the text
    as given, and so does a number a version's record cannot keep exactly (an integer
    past 64 bits, ``.nan``, ``.inf``): the record holds such a number as that text. A
    number past the largest float (``1e999``) is refused (see :func:`typed`), as is a
    value with a tag outside YAML 1.2's core schema (``!!binary``, ``!!timestamp``):
    UsageError naming ``given`` (the argument, ``--param K=V``).
    """
    parsed = typed(text, given)
    if isinstance(parsed, bool):
        return parsed
    if isinstance(parsed, int):
        return parsed if _INT64[0] <= parsed <= _INT64[1] else text
    if isinstance(parsed, float):
        return parsed if math.isfinite(parsed) else text
    return parsed


def typed(text: str, given: str = "") -> Any:
    """``text`` as YAML 1.2 reads it, as a parameters file would hold it: a list or
    mapping only in flow style, text that is not valid YAML as given, and numbers of
    any size (``.inf`` the float). A number past the largest float (``1e999``) is
    refused in one line: YAML reads it as infinity, which is not what was written, and
    keeping it as text would make a number a string; a tag outside the core schema
    is refused too (UsageError naming ``given``)."""
    import yaml  # see load_file

    from vfs.model import yaml12

    try:
        parsed = yaml12.load_plain(text)
    except yaml12.TagRefused as exc:
        problem = str(exc.problem).replace("the document", "the value", 1)
        raise UsageError(f"{quote_given(given or text)}: {problem}") from None
    except (yaml.YAMLError, RecursionError, UnicodeEncodeError):
        return text  # not UTF-8: check() says so
    if isinstance(parsed, (list, dict)):
        return parsed if text.lstrip()[:1] in ("[", "{") else text
    if isinstance(parsed, float) and math.isinf(parsed) and not NON_FINITE.fullmatch(text.strip()):
        number, inf = text.strip(), ".inf" if parsed > 0 else "-.inf"
        raise UsageError(
            f"{quote_given(given or text)}: {quote_given(number)} is beyond what a float holds "
            f"(1.8e308) and would read as {inf}: give {inf} for it, or '{number}' in quotes "
            "for the text"
        )
    if isinstance(parsed, (bool, int, float, str)) or parsed is None:
        return parsed
    return text


def reads_as_other(text: str) -> bool:
    """Whether text shown as it is beside other values (``dvfs diff``'s and ``log``'s
    params, the tables of ``metrics diff`` and ``compare``) would read as another
    value, as ``--param`` types it (``2``, ``true``, ``null``, ``[1]``), or as no
    value (empty, or ``-``: a table's empty cell), or hides spaces around it: such text
    is shown in double quotes (``"2"``), so that the text ``"2"`` and the number ``2``
    are not shown alike. (``.inf`` is not quoted: a record holds an infinite float as
    that text; a metric or a stage's parameter that is this text is a
    :class:`FloatText`, which is.)"""
    if isinstance(text, FloatText):
        return True
    if text and text[0] not in _MAY_TYPE and text[-1] not in _MAY_TYPE:
        return False
    try:
        read = value(text) if text != "-" else None
    except UsageError:  # a tagged value (``[!!binary aGk=]``): not read as this text
        return True
    return not (isinstance(read, str) and read == text)


def setting(text: str, given: str = "") -> Any:
    """A value ``dvfs exp run -S`` writes into a parameters file: :func:`typed`, so that
    it reads back from the file as the value given (``lr=.inf`` the float, ``n=`` an
    integer past 64 bits the integer), where a version's record keeps such numbers as
    text (:func:`value`). A file that cannot hold it refuses it when written
    (``vfs.pipeline.values.set_value``)."""
    return typed(text, given)


# what YAML 1.2 reads as an infinity or NaN
NON_FINITE = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")


# what may begin text that YAML 1.2 reads as something else (a number, a boolean,
# null, a list or mapping in flow style) or that reads as another text (a space)
_MAY_TYPE = frozenset("+-.0123456789tfnTFN~[{ \t\n")


def parse_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """``K=V`` arguments as parameters (keys stripped of surrounding spaces)."""
    out: dict[str, Any] = {}
    for p in pairs:
        key, sep, raw = p.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {quote_name(p)} is not KEY=VALUE")
        out[key.strip()] = value(raw, f"--param {p}")
    return out


def collect(pairs: Iterable[str], path: Path | None) -> dict[str, Any]:
    """The parameters of ``path`` (if given), then each ``K=V`` (which wins), checked."""
    recorded = load_file(path) if path is not None else {}
    recorded.update(parse_pairs(pairs))
    return check(recorded)


class _Budget:
    """What is left of MAX_TOTAL."""

    def __init__(self) -> None:
        self.left = MAX_TOTAL

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise UsageError(
                f"the parameters hold more than {MAX_TOTAL >> 10} KiB: record large "
                "configurations as files of the version instead"
            )


def _text(s: str, what: str, budget: _Budget) -> str:
    try:
        n = len(s.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError(f"{what} {escape_text(s[:60])} is not UTF-8 text") from None
    budget.spend(n)
    return s


def _key(k: Any, budget: _Budget) -> str:
    key = _text(str(k), "parameter name", budget)  # bytes not UTF-8 are said as such
    if not 1 <= len(key) <= MAX_KEY or escape_text(key) != key:
        raise UsageError(
            f"parameter name {quote_name(key[:60])} must be 1 to {MAX_KEY} characters "
            "without control characters"
        )
    return key


def _plain(value: Any, depth: int, budget: _Budget) -> Any:
    if isinstance(value, Mapping):  # a dict, or a mapping given from Python (a config's)
        if depth >= MAX_DEPTH:
            raise UsageError(f"parameters nest deeper than {MAX_DEPTH} levels")
        budget.spend(1)
        out: dict[str, Any] = {}
        given: dict[str, Any] = {}  # (each name as given: 1 and "1" are both "1")
        for k, v in value.items():
            key = _key(k, budget)
            if key in given:
                raise UsageError(
                    f"parameter name {quote_name(key)} is given twice "
                    f"({escape_text(repr(given[key]))} and {escape_text(repr(k))}, recorded "
                    "as one name): give it once"
                )
            given[key], out[key] = k, _plain(v, depth + 1, budget)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        if depth >= MAX_DEPTH:
            raise UsageError(f"parameters nest deeper than {MAX_DEPTH} levels")
        budget.spend(1)
        items = [_plain(v, depth + 1, budget) for v in value]
        return sorted(items, key=_order) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, str):
        return _text(value, "parameter value", budget)
    if isinstance(value, bool) or value is None:
        budget.spend(_OTHER)
        return value
    if isinstance(value, int):
        budget.spend(_OTHER)
        return value if _INT64[0] <= value <= _INT64[1] else _text(str(value), "", budget)
    if isinstance(value, float):
        budget.spend(_OTHER)
        return finite(value) if value != 0 else 0.0  # (-0.0 is 0.0: one value, shown so)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy and torch values
        return _plain(value.tolist(), depth, budget)
    return _text(str(value), "parameter value", budget)  # dates, timestamps, !!binary


def _order(v: Any) -> tuple[bool, Any]:
    """Where a member of a set goes in the list that records it: numbers by value,
    then everything else by its JSON text. A set's own order follows the hashes of its
    members, which differ from one process to the next for text: two runs given the
    same set would record different parameters."""
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    return (not number, v if number else json.dumps(v, sort_keys=True))


def check(params: dict[Any, Any]) -> dict[str, Any]:
    """A copy of ``params`` reduced to msgpack-safe types, within the bounds above.

    UsageError (one line) if a bound is passed.
    """
    plain = _plain(params, 0, _Budget())
    assert isinstance(plain, dict)
    _one_name_each(plain)
    return plain


def _one_name_each(params: dict[str, Any]) -> None:
    """UsageError if two parameters have one dotted name (``opt.lr`` given as a name,
    and as ``lr`` inside ``opt``): show, diff and compare name parameters that way, and
    would show it twice, or one value for both; or if a name has an empty part between
    dots (``..``), which no dotted name can stand for."""
    seen: dict[str, str] = {}
    stack: list[tuple[str, str, dict[str, Any]]] = [("", "", params)]
    while stack:
        prefix, path, d = stack.pop()
        for k, v in d.items():
            name = prefix + k
            where = f"{path} > {k}" if path else k
            if "" in k.split("."):
                raise UsageError(
                    f"parameter name {quote_name(name)} has an empty part between dots: "
                    "name each part (a.b is b inside a)"
                )
            if isinstance(v, dict) and v:
                stack.append((name + ".", where, v))
            elif name in seen:
                raise UsageError(
                    f"parameter {quote_name(name)} is given twice ({quote_name(seen[name])} "
                    f"and {quote_name(where)}, read as one dotted name): give it once"
                )
            else:
                seen[name] = where


class TomlDate(str):
    """A TOML date, time or date-time a stage read, as its text (``2024-01-02``,
    ``2024-01-02 10:00:00+00:00``): shown as that text, but another value than a
    string of the same characters (a program reading the file gets a date, not a
    string), so a date changed to such a string is a change.

    Records keep the type as a mapping of one key, :data:`DATE_KEY` (``{"!toml-date":
    "2024-01-02"}``): :func:`to_record` before a value is encoded (a version's pipeline,
    ``dvfs.runs``, a run cache key), :func:`from_record` when it is decoded. A dvfs that
    predates it shows that mapping.

    So that a parameter's own mapping of one key :data:`DATE_KEY` and a text value
    (``{"!toml-date": "2024-01-02"}`` in a YAML or JSON file) is never read back as a
    date, the record puts :data:`ESCAPE` (NUL) in front of that key (``{"\\0!toml-date":
    ...}``, adding no nesting), as it does in front of the key of a mapping of one key
    that starts with NUL, and decoding takes one NUL off. No parameter name holds a
    control character (see the module doc), so no record written before this escape
    holds such a key, and every other mapping is recorded as it is: old and new records
    decode exactly, ``{"!!k": v}`` as itself. In a record a mapping of one key is thus
    a date if that key is :data:`DATE_KEY` and its value text, the user's mapping with
    one NUL less if the key starts with NUL, else the user's as it is.
    """

    __slots__ = ()


class FloatText(str):
    """Text that YAML reads as NaN or an infinity (``".inf"``), as a metric or a stage's
    parameter: the float of that value is held as the plain text (``vfs.quoting.finite``:
    JSON cannot hold it), so this text is a value of its own type, shown quoted and
    changed from the float. Records keep it as a mapping of one key, :data:`TEXT_KEY`
    (``{"!text": ".inf"}``), escaped and decoded as a date's (see :class:`TomlDate`);
    a record written before it holds the text as the float's, and reads as the float.
    """

    __slots__ = ()


DATE_KEY = "!toml-date"
TEXT_KEY = "!text"
ESCAPE = "\0"  # (in front of a key of a mapping of one key: see TomlDate)
_RECORD_DEPTH = 64  # (values nest at most MAX_DEPTH levels; records are checked for it)


def _escaped(value: dict[Any, Any]) -> bool:
    """True if ``value``, a record's mapping, is one of one escaped key (see TomlDate)."""
    return len(value) == 1 and isinstance(k := next(iter(value)), str) and k.startswith(ESCAPE)


def _to_escape(value: dict[Any, Any]) -> bool:
    """True if the record of ``value``, a parameter's mapping, escapes its key: it would
    read as a date, or as escaped (see TomlDate)."""
    if len(value) != 1:
        return False
    k, v = next(iter(value.items()))
    typed = k in (DATE_KEY, TEXT_KEY) and isinstance(v, str) and type(v) is str
    return typed or (isinstance(k, str) and k.startswith(ESCAPE))


def to_record(value: Any, depth: int = 0) -> Any:
    """``value`` with each :class:`TomlDate` as its record form, and each mapping of
    one key that would read as one escaped (see the class)."""
    if isinstance(value, TomlDate):
        return {DATE_KEY: str(value)}
    if isinstance(value, FloatText):
        return {TEXT_KEY: str(value)}
    if depth > _RECORD_DEPTH:
        return value
    if isinstance(value, dict):
        if _to_escape(value):
            return {ESCAPE + k: to_record(v, depth + 1) for k, v in value.items()}
        return {k: to_record(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_record(v, depth + 1) for v in value]
    return value


def from_record(value: Any, depth: int = 0) -> Any:
    """``value`` with each record form of a date a :class:`TomlDate` again, and each
    escaped key as it was (see the class)."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(DATE_KEY), str):
            return TomlDate(value[DATE_KEY])
        if len(value) == 1 and isinstance(value.get(TEXT_KEY), str):
            return FloatText(value[TEXT_KEY])
        if depth > _RECORD_DEPTH:
            return value
        if _escaped(value):
            return {k[1:]: from_record(v, depth + 1) for k, v in value.items()}
        return {k: from_record(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list) and depth <= _RECORD_DEPTH:
        return [from_record(v, depth + 1) for v in value]
    return value
