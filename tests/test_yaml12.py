"""YAML 1.2 typing of parameters (vfs.model.yaml12, vfs.model.params), and YAML that
reads back alike.

The loader and the ``--param`` reader are tested in-process (they are pure functions);
the commit and show that use them are driven as real processes in test_workflow.py.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from vfs.errors import UsageError
from vfs.model import params, yaml12

# Plain scalars whose YAML 1.1 and 1.2 readings differ, and what 1.2 makes of them.
DIFFERS = {
    "1e-3": 0.001,
    "3e-4": 0.0003,
    "1E5": 100000.0,
    "yes": "yes",
    "no": "no",
    "on": "on",
    "off": "off",
    "010": 10,
    "-010": -10,
    "0o17": 15,
    "1:20": "1:20",
    "1_000": "1_000",
    "0b101": "0b101",
    "2024-01-31": "2024-01-31",
    "2024-01-31T10:00:00Z": "2024-01-31T10:00:00Z",
    "=": "=",
}
# ... and some they agree on.
SAME = {
    "0.01": 0.01,
    "+12": 12,
    "0x1F": 31,
    ".5": 0.5,
    "-2.": -2.0,
    "true": True,
    "FALSE": False,
    "~": None,
    "null": None,
    "": None,
    ".inf": math.inf,
    "-.Inf": -math.inf,
    "exp one": "exp one",
    "'1e-3'": "1e-3",
    '"yes"': "yes",
}


@pytest.mark.parametrize(("text", "wanted"), [*DIFFERS.items(), *SAME.items()])
def test_plain_scalars_follow_the_core_schema(text: str, wanted: Any) -> None:
    got = yaml12.load(f"k: {text}\n")["k"]
    assert got == wanted and type(got) is type(wanted)


def test_the_scalars_that_differ_really_differ_in_yaml_11() -> None:
    """The table above is not vacuous: PyYAML alone reads each of them otherwise."""
    for text, wanted in DIFFERS.items():
        try:
            old = yaml.safe_load(f"k: {text}\n")["k"]
        except yaml.YAMLError:  # "=" is YAML 1.1's "value" key, which PyYAML refuses
            continue
        assert old != wanted or type(old) is not type(wanted), text


def test_nan_collections_merges_and_tags() -> None:
    got = yaml12.load(
        "n: .NaN\nl: [1, 2.5, yes]\nm: {a: 1}\n"
        "base: &b {x: 1, y: 2}\nmerged:\n  <<: *b\n  y: 3\nt: !!str 12\nf: !!float 1\n"
    )
    assert math.isnan(got.pop("n"))
    assert got == {
        "l": [1, 2.5, "yes"], "m": {"a": 1}, "base": {"x": 1, "y": 2},
        "merged": {"x": 1, "y": 3}, "t": "12", "f": 1.0,
    }  # fmt: skip


def test_a_key_given_twice_is_an_error() -> None:
    # the key was shown in Python's repr style: 'lr', "it's", 'a\\nb'
    with pytest.raises(yaml.YAMLError, match="found the key lr twice"):
        yaml12.load("lr: 0.1\nepochs: 3\nlr: 0.2\n")
    with pytest.raises(yaml.YAMLError, match=r'found the key "a\\nb" twice'):
        yaml12.load('"a\\nb": 1\n"a\\nb": 2\n')
    with pytest.raises(yaml.YAMLError, match="twice"):
        yaml12.load("outer: {a: 1, a: 2}\n")


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("3e-4", 0.0003),
        ("1e-3", 0.001),
        ("yes", "yes"),
        ("on", "on"),
        ("true", True),
        ("010", 10),
        ("[1, 2]", [1, 2]),
        (" [1, [2, yes]]", [1, [2, "yes"]]),
        ("{a: 1, b: [x]}", {"a": 1, "b": ["x"]}),
        ("a: b", "a: b"),  # a block mapping: the text a user meant
        ("- a", "- a"),
        ("[1", "[1"),  # not YAML: kept as given
        ("-.inf", "-.inf"),  # not finite: kept as given
        (".nan", ".nan"),
        ("9" * 30, "9" * 30),  # beyond 64 bits
        ("", None),
    ],
)
def test_param_values(text: str, wanted: Any) -> None:
    got = params.value(text)
    assert got == wanted and type(got) is type(wanted)


def test_a_param_past_the_largest_float_is_refused() -> None:
    # it was kept as the text "1e400", where a file holding it reads the float .inf
    with pytest.raises(UsageError, match=r"--param x=1e400: 1e400 is beyond what a float holds"):
        params.value("1e400", "--param x=1e400")


def test_param_lists_and_maps_keep_the_bounds() -> None:
    deep = "[" * 40 + "]" * 40
    with pytest.raises(UsageError, match="deeper than 32 levels"):
        params.collect([f"x={deep}"], None)
    with pytest.raises(UsageError, match="more than 64 KiB"):
        params.collect(["x=[" + ", ".join(["aaaaaaaa"] * 9000) + "]"], None)
    got = params.collect(["x=[1, 1e400, " + "9" * 30 + "]"], None)
    assert got == {"x": [1, ".inf", "9" * 30]}


def test_names_that_are_not_utf8_are_dumped_escaped() -> None:
    name = os.fsdecode(b"d/caf\xe9")
    out = yaml12.dump({"files": {name: 1}})
    assert "\\udce9" in out.lower()
    assert yaml.safe_load(out) == {"files": {name: 1}}


@given(st.text())
def test_dumped_text_reads_back_as_text_in_yaml_11_and_12(s: str) -> None:
    out = yaml12.dump({"k": s, "l": [s]})
    assert yaml12.load(out) == {"k": s, "l": [s]}
    assert yaml.safe_load(out) == {"k": s, "l": [s]}


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 63) - 1)
        | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
        max_leaves=20,
    )
)  # fmt: skip
def test_dumped_values_read_back_equal(value: Any) -> None:
    assert yaml12.load(yaml12.dump({"v": value})) == {"v": value}


def test_libyaml_writes_what_the_pure_dumper_writes() -> None:
    """`dump` uses libyaml's emitter for speed; the text is the pure-Python one's."""
    import yaml

    values = ["yes", "1e-3", "010", "a\u2028b", "日本", "~", " lead", "a: b", "null", ".inf",
              "2024-01-01T00:00:00Z", "1:20", "a\nb\n", 3, 1.5e-9, None, True]  # fmt: skip
    data = {"k": values, "m": {str(v): v for v in values}, "files": {"d/f.csv": {"size": 1}}}
    pure = yaml.dump(data, Dumper=yaml12.Dumper, sort_keys=False, allow_unicode=True)
    assert yaml12.dump(data) == pure
    odd = {"a\udcff": "b"}  # a name that is not UTF-8: libyaml cannot write it
    assert yaml12.dump(odd) == yaml.dump(odd, Dumper=yaml12.Dumper, allow_unicode=True)
