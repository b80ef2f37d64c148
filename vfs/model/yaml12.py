"""YAML 1.2 (core schema) on top of PyYAML, for parameters and ``show --format yaml``.

PyYAML resolves plain scalars as YAML 1.1 does, which surprises anyone recording
hyper-parameters: ``1e-3`` stays text (1.1 wants a dot), ``yes``/``on``/``no`` become
booleans, ``010`` is eight and ``1:20`` is eighty. YAML 1.2, which every current YAML
and JSON tool follows, resolves only these, everything else being text:

- null: ``~``, ``null``, ``Null``, ``NULL`` and the empty value;
- booleans: ``true``/``false`` (also ``True``, ``TRUE``, ``False``, ``FALSE``);
- integers: decimal (``-12``, ``010`` is ten), ``0o17``, ``0x1F``;
- floats: ``1.5``, ``1e-3``, ``.5``, ``-2.``, ``.inf``, ``-.inf``, ``.nan``.

Only the resolver and the integer reader differ, so :class:`Loader` is PyYAML's safe
loader (its C parser when libyaml is there) with the 1.2 core resolvers and a 1.2
integer reader. Two habits of YAML 1.1 files are kept, as ruamel.yaml keeps them in
1.2 mode: ``<<`` merge keys, and explicit tags such as ``!!timestamp``. A key given
twice in one mapping is an error (1.2 requires unique keys; PyYAML silently keeps
the last). A key read as a boolean, null or a float is read as its text (``true``,
``null``, ``1.5``): Python holds ``true``, ``1`` and ``1.0`` as one key, YAML as three.

:class:`Dumper` writes YAML that reads back the same under 1.1 and 1.2: a string
that either would take for something else (``"yes"``, ``"1e-3"``, ``"010"``) is
quoted.

Why not ruamel.yaml, the maintained YAML 1.2 library: imported, it costs the same as
PyYAML (about 25 ms either way, measured), but it would be a second YAML library
beside PyYAML, which dvfs already needs, and for 1.2 scalars only a resolver differs.
"""

from __future__ import annotations

import re
import sys
from typing import Any, ClassVar

import yaml

from vfs.quoting import quote_given

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Python's emitter, not libyaml's: it escapes the surrogates that stand for bytes of a
# name that are not UTF-8 ("\udcff"), where libyaml's fails on them.
_SafeDumper: Any = yaml.SafeDumper

_MERGE = "tag:yaml.org,2002:merge"
_ODD_BREAKS = re.compile("[\x85\u2028\u2029]")
_DIGITS = list("-+0123456789")

# (tag, regexp, possible first characters), as the 1.2 spec's core schema lists them.
CORE = [
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
     list("tTfF")),
    ("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), _DIGITS),
    ("tag:yaml.org,2002:float", re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ), [*_DIGITS, "."]),
    (_MERGE, re.compile(r"^(?:<<)$"), ["<"]),
]  # fmt: skip


class Loader(_SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader resolving plain scalars by the YAML 1.2 core schema."""

    # Own, empty: add_implicit_resolver below fills it instead of copying YAML 1.1's.
    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """A 1.2 integer: decimal (leading zeros allowed), ``0o`` octal, ``0x`` hex."""
        text = str(self.construct_scalar(node))
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        if digits[:2] in ("0o", "0x"):
            return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
        try:
            return sign * int(digits, 10)
        except ValueError:  # past Python's bound on the digits of a decimal integer
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of more than {sys.get_int_max_str_digits():,} digits",
                node.start_mark,
            ) from None  # fmt: skip

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping, refusing a key written twice (merged keys may be overridden);
        a key read as a boolean, null or a float is its text (:func:`key_text`)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = key_text(self.construct_object(key_node, deep=True))
            try:
                again = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: said below
            if again:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found the key {quote_given(str(key))} twice", key_node.start_mark,
                )  # fmt: skip
        self.flatten_mapping(node)  # (the merge keys, as PyYAML's safe loader does)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_text(self.construct_object(key_node, deep=True))
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key",
                    key_node.start_mark,
                ) from None  # fmt: skip
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def key_text(key: Any) -> Any:
    """A mapping key as read: a boolean, null or float key as its YAML text (``true``,
    ``null``, ``1.5``), the name dotted keys give it; others as they are. Python holds
    ``true``, ``1`` and ``1.0`` as one key (``True == 1 == 1.0``), where YAML holds
    three: as values, one of them was lost, and as keys they were "the key 1 twice"."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, float):
        return str(key)
    return key


for _tag, _regexp, _first in CORE:
    Loader.add_implicit_resolver(_tag, _regexp, _first)
Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)


class Dumper(_SafeDumper):  # type: ignore[misc]
    """PyYAML's safe dumper that also quotes strings YAML 1.2 would read as non-text."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        """Text; double-quoted if it holds a line break other than ``\\n``.

        PyYAML writes NEL (U+0085) and the Unicode line and paragraph separators raw
        inside plain or single-quoted text, where a reader folds them into spaces.
        """
        data = str(data)  # (a str subclass, such as a TOML date's text: libyaml wants a str)
        style = '"' if _ODD_BREAKS.search(data) else None
        node: yaml.ScalarNode = self.represent_scalar("tag:yaml.org,2002:str", data, style=style)
        return node


Dumper.add_representer(str, Dumper.represent_str)
Dumper.add_multi_representer(str, Dumper.represent_str)  # (a TOML date's text: as text)


for _tag, _regexp, _first in CORE:
    if _tag != _MERGE:
        Dumper.add_implicit_resolver(_tag, _regexp, _first)


def load(text: str) -> Any:
    """The value of one YAML 1.2 document (yaml.YAMLError if it is not valid)."""
    return yaml.load(text, Loader=Loader)  # a safe loader (see the class)


# The tags a parameter or a metric may carry: YAML 1.2's core schema (and ``<<``).
_YAML = "tag:yaml.org,2002:"
PLAIN_TAGS = frozenset(
    _YAML + t for t in ("null", "bool", "int", "float", "str", "seq", "map", "merge")
)


_SHOWN = 200  # characters of a key or a tag an error shows


class TagRefused(yaml.constructor.ConstructorError):
    """A value with an explicit tag dvfs does not record (``!!binary``, ``!!timestamp``,
    ``!!set``, ``!!python/...``, a local ``!tag``); ``problem`` names it and its key."""


def load_plain(text: str) -> Any:
    """:func:`load`, refusing any value tagged outside YAML 1.2's core schema.

    Parameters and metrics are recorded as text, numbers, booleans, null, lists and
    mappings. A ``!!binary aGVsbG8=`` once became the text ``b'hello'``, which the
    plain text ``b'hello'`` could not be told from (changing one to the other left a
    stage fresh); a ``!!timestamp`` or a ``!!set`` the same. TagRefused (a YAMLError)
    names the first such value by its dotted key and line.
    """
    loader = Loader(str(text))  # (the C parser takes no str subclass: a TOML date)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_tags(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_tags(root: yaml.Node) -> None:
    """TagRefused for the first node under ``root`` tagged outside PLAIN_TAGS. Each node
    is looked at once: an alias is the node it names, so aliases cost nothing more."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str, str]] = [(root, "", "")]  # (node, its path, it named)
    while stack:
        node, path, where = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag not in PLAIN_TAGS:
            tag = node.tag.replace(_YAML, "!!", 1) if node.tag.startswith(_YAML) else node.tag
            what = where or "the document"
            tag = tag if len(tag) <= _SHOWN else tag[:_SHOWN] + "\u2026"
            raise TagRefused(
                None, None,
                f"{what} is tagged {quote_given(tag)}: dvfs records only text, numbers, "
                "booleans, null, lists and mappings; remove the tag (quote the value to "
                "keep it as text)",
                node.start_mark,
            )  # fmt: skip
        dot = f"{path}." if path else ""
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                name = dot + (key.value if isinstance(key, yaml.ScalarNode) else "?")
                shown = quote_given(name if len(name) <= _SHOWN else name[:_SHOWN] + "\u2026")
                stack += [(value, name, f"the value of {shown}"), (key, name, f"the key {shown}")]
        elif isinstance(node, yaml.SequenceNode):
            stack += (
                (v, f"{dot}{i}", f"the value of {quote_given(f'{dot}{i}'[-_SHOWN:])}")
                for i, v in reversed(list(enumerate(node.value)))
            )


_CDumper: Any = getattr(yaml, "CSafeDumper", None)


if _CDumper is not None:

    class FastDumper(_CDumper):  # type: ignore[misc]
        """:class:`Dumper`'s rules on libyaml's emitter: the same text, a third of the time.

        libyaml cannot write the surrogates that stand for bytes of a name that are
        not UTF-8; :func:`dump` falls back to :class:`Dumper` for data holding one.
        """

    FastDumper.add_representer(str, Dumper.represent_str)
    FastDumper.add_multi_representer(str, Dumper.represent_str)
    for _tag, _regexp, _first in CORE:
        if _tag != _MERGE:
            FastDumper.add_implicit_resolver(_tag, _regexp, _first)


def dump(data: Any) -> str:
    """``data`` as block-style YAML, keys in their order, non-ASCII text as it is."""
    if _CDumper is not None:
        try:
            return str(yaml.dump(data, Dumper=FastDumper, sort_keys=False, allow_unicode=True))
        except (yaml.YAMLError, UnicodeError):
            pass  # a surrogate: see FastDumper
    return str(yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True))
