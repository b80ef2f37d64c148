"""Parameter and metric files: YAML, JSON and TOML read by dotted key, one value set in
place (``dvfs exp run -S``) with the rest of the file as it was."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.api import SMALL_CHUNKS
from tests.support.cli import (
    Repo,
    assert_error,
    commit_in_process,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    warnings_of,
)
from tests.test_checkout_ahead import forge_digest
from vfs.model.params import FloatText, TomlDate, from_record, to_record
from vfs.pipeline import values
from vfs.pipeline.values import ValuesError
from vfs.repo.repository import Repository

YAML = b"# training\ntrain:\n  lr: 0.01  # rate\n  layers: [1, 2]\nopt: adam\n"
TOML = b'# config\ntitle = "x # not a comment"\n[train]\nlr = 0.01 # rate\n[model.net]\ndepth = 3\n'
JSON = b'{"train": {"lr": 0.01, "layers": [1, 2]}}'


@pytest.mark.parametrize(
    ("name", "data", "key", "value"),
    [
        (b"params.yaml", YAML, "train.lr", 0.01),
        (b"params.yaml", YAML, "train.layers.1", 2),
        (b"params.yaml", YAML, "opt", "adam"),
        (b"conf/c.toml", TOML, "model.net.depth", 3),
        (b"conf/c.toml", TOML, "title", "x # not a comment"),
        (b"c.JSON", JSON, "train.layers", [1, 2]),
    ],
)
def test_values_are_read_by_dotted_key_from_each_format(
    name: bytes, data: bytes, key: str, value: object
) -> None:
    assert values.get(values.load(data, name, "f"), key, "f") == value


def test_a_missing_key_or_a_broken_file_says_what_is_wrong() -> None:
    doc = values.load(YAML, b"params.yaml", "params.yaml")
    with pytest.raises(
        ValuesError, match=re.escape("params.yaml has no parameter train.lrr; did you mean")
    ):
        values.get(doc, "train.lrr", "params.yaml")
    with pytest.raises(ValuesError, match=re.escape("c.toml is not valid TOML")):
        values.load(b"[unclosed", b"c.toml", "c.toml")
    with pytest.raises(ValuesError, match=re.escape("c.json is not valid JSON")):
        values.load(b"{", b"c.json", "c.json")
    with pytest.raises(ValuesError, match="not UTF-8"):
        values.load(b"\xff", b"p.yaml", "p.yaml")
    assert values.plain(float("nan")) == ".nan"  # recorded as a version's parameters are


def test_a_broken_yaml_params_file_is_named_with_its_problem_and_line(repo: Repo) -> None:
    repo.write("params.yaml", "train:\n  lr: 0.01\n  lr: 0.02\n")
    repo.write("dvfs.yaml", "stages:\n  t:\n    cmd: echo > o\n    params: [train.lr]\n"
               "    outs: [o]\n")  # fmt: skip
    repo.fail("repro", fragments=("stage t: params.yaml is not valid YAML: found the key lr "
              "twice (line 3, column 3)",))  # fmt: skip
    repo.write("params.yaml", "train:\n  lr: [0.01\n")
    repo.fail("repro", fragments=("params.yaml is not valid YAML: did not find expected ',' "
              "or ']' (line 3",))  # fmt: skip
    # A runs file left with a git conflict says where, as well as what to do.
    repo.write("params.yaml", "train:\n  lr: 0.01\n")
    repo.ok("repro")
    with (repo.root / "dvfs.runs").open("a") as f:
        f.write("<<<<<<< HEAD\nx: 1\n=======\n")
    line = repo.fail("repro", fragments=("dvfs.runs is not valid YAML (could not find "
                     "expected ':' (line", "delete dvfs.runs"))  # fmt: skip
    # the command it gave (`dvfs checkout HEAD dvfs.runs`) refused: uncommitted changes
    hint = line.split("`")[1].split()
    assert hint == ["dvfs", "restore", "dvfs.runs"]
    repo.ok(*hint[1:])
    assert "Stage t is fresh" in repo.ok("repro").out
    repo.fsck_clean()


def test_a_yaml_anchor_given_twice_is_named_as_such(repo: Repo) -> None:
    """A params file, dvfs.yaml or dvfs.runs with an anchor written twice was refused as
    "not valid YAML: second occurrence", which said neither what nor of what."""
    repo.write("params.yaml", "a: &x 1\nb: &x 2\n")
    repo.write("dvfs.yaml", "stages:\n  t:\n    cmd: echo > o\n    params: [a]\n"
               "    outs: [o]\n")  # fmt: skip
    repo.fail("repro", fragments=("params.yaml is not valid YAML: found duplicate anchor (first "
              "on line 1) (line 2, column 4)",))  # fmt: skip
    repo.write("params.yaml", "a: 1\n")
    repo.ok("repro")
    runs = repo.read("dvfs.runs").decode()
    repo.write(
        "dvfs.runs", runs.replace("version: 1", "version: &x 1").replace("exit: 0", "exit: &x 0")
    )
    repo.fail("repro", fragments=("dvfs.runs is not valid YAML (found duplicate anchor (first on "
              "line 4)",))  # fmt: skip
    repo.write("dvfs.yaml", "stages:\n  t:\n    cmd: &c echo > o\n    outs: &c [o]\n")
    repo.fail("repro", fragments=("dvfs.yaml:4: not valid YAML: found duplicate anchor (first on "
              "line 3)",))  # fmt: skip


def test_a_yaml_key_read_as_a_number_or_boolean_is_named_as_written(repo: Repo) -> None:
    """-p sched.1 said 'params.yaml has no parameter sched.1; did you mean sched.1, ...'."""
    doc = values.load(b"sched:\n  1: 10\n  2: 20\ntrue: 4\nnull: 5\n", b"p.yaml", "p.yaml")
    assert [values.get(doc, k, "p.yaml") for k in ("sched.1", "sched.2", "true", "null")] == [
        10, 20, 4, 5,
    ]  # fmt: skip
    with pytest.raises(
        ValuesError, match=re.escape("no parameter sched.3; did you mean sched.2, sched.1")
    ):
        values.get(doc, "sched.3", "p.yaml")
    with pytest.raises(ValuesError, match=re.escape("no parameter treu; did you mean true?")):
        values.get(doc, "treu", "p.yaml")
    repo.write("params.yaml", "sched:\n  1: 10\n  2: 20\n")
    repo.ok("run", "-n", "s", "-p", "sched.1", "-o", "o", "--", "echo > o")
    repo.ok("add", "params.yaml")
    repo.commit("one")
    assert "experiment e: v2" in repo.ok("exp", "run", "-S", "sched.1=11", "-n", "e").out
    rows = {r["rev"]: r["params"] for r in repo.json("compare", "--json")}
    assert rows == {"v1": {"sched.1": 10}, "exp/e": {"sched.1": 11}}
    repo.fsck_clean()


def test_a_yaml_metric_key_read_as_a_boolean_or_null_is_named_as_written(repo: Repo) -> None:
    # metrics show listed "True", "None" and "class.False": Python's spellings, not
    # the file's, and not the names a parameter of the same file is read by
    repo.write("m.yaml", "true: 1\nnull: 2\n3: 4\nclass: {false: 0.5, ~: 7}\n")
    repo.ok("run", "-n", "s", "-m", "m.yaml", "--no-exec", "--", "true")
    shown = repo.json("metrics", "show", "--json")
    assert shown == {
        "workspace": {"m.yaml": {"3": 4, "class.false": 0.5, "class.null": 7, "null": 2,
                                 "true": 1}},
    }  # fmt: skip
    repo.fsck_clean()


def test_a_stage_s_parameter_name_is_refused_as_names_are_quoted(repo: Repo) -> None:
    repo.write("params.yaml", "x: 1\n")
    # shown as Python shows a str ('x\x1b'), and `..` was looked up as a key
    for key, shown in [("x\x1b", '"x\\033"'), ("x\u202e", '"x\\342\\200\\256"'),
                       ("..", ".."), ("a..b", "a..b"), (".x", ".x")]:  # fmt: skip
        line = assert_error(repo.run("run", "-n", "p", "-p", key, "-o", "o", "--", "echo > o"))
        assert line.endswith(
            f"stages.p.params: {shown} is not a parameter name: a key, dotted into mappings "
            "and lists (train.lr, layers.0), without control characters"
        ), line
    assert not (repo.root / "dvfs.yaml").exists() and not (repo.root / "o").exists()
    repo.ok("run", "-n", "p", "-p", "x", "-o", "o", "--", "echo > o")
    repo.fsck_clean()


def test_an_integer_of_more_digits_than_python_reads_is_named(repo: Repo) -> None:
    digits = "1" + "0" * 5000
    for name, data in [(b"m.json", f'{{"b": {digits}}}'), (b"m.toml", f"b = {digits}"),
                       (b"m.yaml", f"b: {digits}")]:  # fmt: skip
        # "Exceeds the limit (4300 digits) ...; use sys.set_int_max_str_digits() ..."
        with pytest.raises(ValuesError) as got:
            values.load(data.encode(), name, "f")
        assert "an integer of more than 4,300 digits" in str(got.value), got.value
        assert "sys." not in str(got.value)
    repo.write("d.txt", "1")
    repo.ok("add", "d.txt")
    repo.write("big.yaml", f"a: {digits}\n")
    # both were an internal error (ValueError)
    assert_error(repo.run("commit", "-m", "one", "--params-file", "big.yaml"),
                 "big.yaml is not valid YAML: an integer of more than 4,300 digits (line 1, "
                 "column 4)", code=2)  # fmt: skip
    repo.ok("commit", "-m", "one", "--param", f"a={digits}")
    assert repo.show()["parameters"] == {"a": digits}  # kept as text, as past 64 bits
    repo.fsck_clean()


def test_setting_a_value_keeps_the_rest_of_the_file() -> None:
    out = values.set_value(YAML, b"params.yaml", "train.lr", 0.02, "params.yaml")
    assert out == YAML.replace(b"lr: 0.01", b"lr: 0.02")  # comments and layout kept
    out = values.set_value(TOML, b"c.toml", "train.lr", "adam", "c.toml")
    assert out == TOML.replace(b"lr = 0.01 # rate", b'lr = "adam" # rate')
    out = values.set_value(TOML, b"c.toml", "model.net.depth", 5, "c.toml")
    assert out == TOML.replace(b"depth = 3", b"depth = 5")
    out = values.set_value(JSON, b"c.json", "train.layers.1", 7, "c.json")
    assert values.load(out, b"c.json", "c.json") == {"train": {"lr": 0.01, "layers": [1, 7]}}
    with pytest.raises(ValuesError, match=re.escape("has no parameter train.momentum")):
        values.set_value(YAML, b"params.yaml", "train.momentum", 0.9, "params.yaml")


@pytest.mark.parametrize(
    ("data", "key", "value", "wanted"),
    [
        (b"layers:\n  - 1\n  - 2\nlr: 1\n", "layers", [64, 64],
         b"layers: [64, 64]\nlr: 1\n"),
        (b"layers:  # widths\n- 1\n- 2  # two\n\n# next\nlr: 1\n", "layers", [3],
         b"layers: [3]  # widths  # two\n\n# next\nlr: 1\n"),
        (b"opt:\n  name: adam\n  beta: 1\nlr: 1\n", "opt", {"name": "sgd"},
         b"opt: {name: sgd}\nlr: 1\n"),
        (b"train:\n  layers:\n    - 1\n  lr: 1\n", "train.layers", [64],
         b"train:\n  layers: [64]\n  lr: 1\n"),
        (b"msg: |\n  hello\n  world\nn: 1\n", "msg", "x", b"msg: x\nn: 1\n"),
        (b"opt:\n  name: adam\n", "opt", 3, b"opt: 3\n"),
        (b"- name: a\n  n: 1\n- name: b\n", "0", {"name": "c"}, b"- {name: c}\n- name: b\n"),
    ],
)  # fmt: skip
def test_setting_a_yaml_block_list_or_mapping_keeps_what_follows_it(
    data: bytes, key: str, value: object, wanted: bytes
) -> None:
    """`exp run -S layers=[64,64]` on a list written one item a line (and a mapping, a
    `|` text) was refused, "could not set layers in params.yaml: edit the file by hand":
    the value was replaced up to the next key, which it ran into. Only its characters
    are replaced now, the line breaks and comments after it kept."""
    assert values.set_value(data, b"p.yaml", key, value, "p.yaml") == wanted


def test_setting_a_value_in_a_yaml_file_that_starts_with_a_bom() -> None:
    """A params.yaml saved with a byte order mark (as some Windows editors save UTF-8)
    was read, but `exp run -S lr=0.5` refused it, "edit the file by hand": the value's
    place was read one character off, `lr:0.51`."""
    data = "\ufefflr: 0.1\nwd: 2\n".encode()
    out = values.set_value(data, b"params.yaml", "lr", 0.5, "params.yaml")
    assert out == "\ufefflr: 0.5\nwd: 2\n".encode()


def test_exp_run_changes_only_the_value_in_a_json_params_file(repo: Repo) -> None:
    """`dvfs exp run -S` wrote a JSON params file anew, indented by two: the user's
    layout (tabs, keys on one line, a compact list) was lost and the version's diff
    showed every line changed. Only the value's characters change now."""
    text = (
        '{"z_last": 1,  "train":{\n\t"lr" :0.01,"w\\"x": [1,2,{"a":[3 , 4]}],\n'
        '\t"opt":"adam"}, "after": "lr"}\n'
    )
    repo.write("p.json", text)
    repo.write("dvfs.yaml", "stages:\n  s:\n    cmd: [" + json.dumps(sys.executable)
               + ", -c, 'open(\"o\", \"w\").write(open(\"p.json\").read())']\n"
               "    params: [{p.json: [train]}]\n    outs: [o]\n")  # fmt: skip
    repo.ok("repro")
    repo.ok("add", "p.json", "dvfs.yaml", "o")
    repo.commit("base")
    repo.ok("exp", "run", "-S", "p.json:train.lr=0.05", "-n", "lr")
    assert repo.cat("exp/lr:p.json").decode() == text.replace(":0.01", ":0.05")
    repo.ok("exp", "run", "-S", 'p.json:train.w"x.2.a.1=[5, 6]', "-n", "deep")
    assert repo.cat("exp/deep:p.json").decode() == text.replace("[3 , 4]", "[3 , [5, 6]]")
    assert repo.cat("exp/deep:o") == repo.cat("exp/deep:p.json")  # what the stage read
    repo.fail("exp", "run", "-S", "p.json:train.w\"x.5=1", "-n", "no",
              fragments=("has no parameter",))  # fmt: skip
    repo.fsck_clean()


def test_setting_a_date_keeps_it_a_date() -> None:
    toml = b'start = 2024-01-02 # day\nat = 2024-01-02T10:00:00Z\nt = 07:32:00\nname = "x"\n'
    # it was written as the TOML text "2024-02-02": the stage read a str, not a date
    out = values.set_value(toml, b"c.toml", "start", "2024-02-02", "c.toml")
    assert out == toml.replace(b"2024-01-02 # day", b"2024-02-02 # day")
    out = values.set_value(toml, b"c.toml", "at", "2024-02-02T11:00:00+01:00", "c.toml")
    at = values.load(out, b"c.toml", "c.toml")["at"]  # a date, read as its text
    assert isinstance(at, TomlDate) and at == str(dt.datetime.fromisoformat(
        "2024-02-02T11:00:00+01:00"
    ))  # fmt: skip
    out = values.set_value(toml, b"c.toml", "t", "08:00:00", "c.toml")
    t = values.load(out, b"c.toml", "c.toml")["t"]
    assert isinstance(t, TomlDate) and t == str(dt.time(8))
    out = values.set_value(toml, b"c.toml", "name", "2024-02-02", "c.toml")  # text stays text
    assert type(values.load(out, b"c.toml", "c.toml")["name"]) is str
    for wrong in ("tomorrow", 3):
        with pytest.raises(ValuesError, match=re.escape("start in c.toml is a TOML date or time")):
            values.set_value(toml, b"c.toml", "start", wrong, "c.toml")
    # an unquoted YAML date is one to PyYAML's safe_load: it stays unquoted
    yml = b"start: 2024-01-02 # day\nq: '2024-01-02'\n"
    out = values.set_value(yml, b"p.yaml", "start", "2024-02-02", "p.yaml")
    assert out == b"start: 2024-02-02 # day\nq: '2024-01-02'\n"
    out = values.set_value(yml, b"p.yaml", "q", "2024-02-02", "p.yaml")
    assert out == b"start: 2024-01-02 # day\nq: '2024-02-02'\n"
    out = values.set_value(yml, b"p.yaml", "start", "2024-02-02 # x", "p.yaml")
    assert values.load(out, b"p.yaml", "p.yaml")["start"] == "2024-02-02 # x"


def test_an_experiment_on_a_toml_date_runs_with_a_date(repo: Repo) -> None:
    repo.write("c.toml", "start = 2024-01-02\nat = 2024-01-02T10:00:00Z\n")
    script = (
        "import tomllib; c = tomllib.load(open('c.toml', 'rb')); "
        "open('o', 'w').write(type(c['start']).__name__)"
    )
    repo.ok("run", "-n", "s", "-p", "c.toml:start,at", "-o", "o", "--", sys.executable, "-c",
            script)  # fmt: skip
    repo.ok("add", "c.toml")
    repo.commit("one")
    repo.ok("exp", "run", "-S", "c.toml:start=2024-03-03", "-n", "march")
    assert repo.cat("exp/march:o") == b"date"  # it was "str"
    assert repo.cat("exp/march:c.toml") == b"start = 2024-03-03\nat = 2024-01-02T10:00:00Z\n"
    assert_error(repo.run("exp", "run", "-S", "c.toml:start=soon"), "is a TOML date or time")
    # what a run records and shows of a date is its text
    got = repo.json("params", "diff", "HEAD", "exp/march", "--all", "--json")["params"]
    assert got == [
        {"name": "c.toml:at", "old": "2024-01-02 10:00:00+00:00",
         "new": "2024-01-02 10:00:00+00:00", "changed": False},
        {"name": "c.toml:start", "old": "2024-01-02", "new": "2024-03-03", "changed": True},
    ]  # fmt: skip
    repo.fsck_clean()


def test_exp_run_writes_a_number_as_the_number_the_file_reads_back(repo: Repo) -> None:
    """`dvfs exp run -S n=99999999999999999999` wrote the quoted text '9...9' into the
    params file, so the stage read a str where it had read an int; `-S lr=1e999` wrote
    the text '1e999' where a number was written. An integer of any size is written as
    the integer a YAML file holds; a number no float holds, or an integer past TOML's
    64 bits in a TOML file, is refused in one line, the file left as it was."""
    big = "9" * 20
    repo.write("params.yaml", "n: 3\nlr: 0.1\n")
    repo.write("c.toml", "n = 3\n")
    script = (
        "import yaml; p = yaml.safe_load(open('params.yaml')); "
        "open('o', 'w').write(repr(p['n']) + ' ' + repr(p['lr']))"
    )
    repo.ok("run", "-n", "s", "-p", "n,lr", "-p", "c.toml:n", "-o", "o", "--", sys.executable,
            "-c", script)  # fmt: skip
    repo.ok("add", "params.yaml", "c.toml")
    repo.commit("one")
    repo.ok("exp", "run", "-S", f"n={big}", "-S", "lr=.inf", "-n", "big")
    assert repo.cat("exp/big:params.yaml") == f"n: {big}\nlr: .inf\n".encode()
    assert repo.cat("exp/big:o") == f"{big} inf".encode()  # (was '{big}' 0.1: a str)
    for arg, wanted in [
        ("lr=1e999", "-S lr=1e999: 1e999 is beyond what a float holds"),
        ("lr=-1e999", "would read as -.inf: give -.inf for it"),
        (f"c.toml:n={big}", "c.toml is TOML, whose integers are 64-bit"),
    ]:
        assert_error(repo.run("exp", "run", "-S", arg, "-n", "no"), wanted)
    assert_error(repo.run("commit", "-m", "x", "--param", "lr=1e999"), "--param lr=1e999: 1e999")
    assert "exp/no" not in repo.ok("branch").out
    repo.fsck_clean()


def test_metrics_are_flattened_to_dotted_keys_and_bounded() -> None:
    doc = {"acc": 0.9, "loss": {"train": 1, "val": [0.5, "t"]}, "ok": True, "x": "y" * 201}
    assert values.flatten(doc) == {
        "acc": 0.9, "loss.train": 1, "loss.val.0": 0.5, "loss.val.1": "t", "ok": True,
    }  # fmt: skip
    many = {f"k{i}": i for i in range(values.MAX_METRICS + 5)}
    assert len(values.flatten(many)) == values.MAX_METRICS


def _laughs(leaf: str) -> str:
    """A YAML file of 1 KiB whose aliases expand to 10**9 copies of ``leaf``."""
    lines = [f"a0: &a0 [{', '.join([leaf] * 10)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\nacc: 1\n"


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("a: &x\n  b: *x\nacc: 1\n", "m.yaml holds itself (a YAML alias inside its own anchor)"),
        (_laughs("[]"), "more than 1,000,000 values"),
        (_laughs("x" * 201), "more than 1,000,000 values"),
        (
            "l0: &l0 [1]\n" + "".join(f"l{i}: &l{i} [*l{i - 1}]\n" for i in range(1, 5000)),
            "nests more than 1,000 levels",
        ),
    ],
)
def test_yaml_aliases_cannot_expand_a_values_file_beyond_its_bound(text: str, wanted: str) -> None:
    """A metrics file whose YAML aliases made a mapping hold itself, or expand to 10**9
    values that are not metrics (empty lists, long texts), or nest 5,000 deep, made
    `dvfs metrics show` run for ever, its memory growing. Such a file is named as one
    that cannot be read, as a file nested too deeply for JSON is."""
    with pytest.raises(ValuesError, match=re.escape(wanted)):
        values.load(text.encode(), b"m.yaml", "m.yaml")


def test_a_metrics_file_holding_itself_is_named_as_unreadable(repo: Repo) -> None:
    """`dvfs metrics show` of a file whose alias made a mapping hold itself ran for
    ever; it names the file, shows the rest and exits 1."""
    repo.write("src.yaml", "a: &x\n  b: *x\nacc: 1\n")
    repo.ok("run", "-n", "s", "-d", "src.yaml", "-m", "m.yaml", "-m", "ok.json", "--",
            "cp src.yaml m.yaml && echo '{\"acc\": 1}' > ok.json")  # fmt: skip
    r = repo.run("metrics", "show", "--json")
    assert r.code == 1 and r.json() == {"workspace": {"ok.json": {"acc": 1}}}, r
    assert warnings_of(r) == [
        "dvfs: warning: m.yaml holds itself (a YAML alias inside its own anchor): fix it, or "
        "make it again (`dvfs repro` makes a stage's)"
    ]  # fmt: skip
    repo.fsck_clean()


def test_two_values_flattened_to_one_name_are_reported(repo: Repo) -> None:
    clashes: list[str] = []
    doc = {"a": {"b": 1}, "a.b": 2, "c": [{"d": 3}], "c.0": {"d": 4}, "e": 5}
    assert values.flatten(doc, clashes) == {"a.b": 1, "c.0.d": 3, "e": 5}
    assert clashes == ["a.b", "c.0.d"]
    repo.write("src.json", '{"a": {"b": 1}, "a.b": 2}')
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    repo.commit("one")
    # one of the two values was dropped, and nothing said so
    for args in (("metrics", "show"), ("metrics", "show", "HEAD", "--json"), ("compare",),
                 ("metrics", "diff")):  # fmt: skip
        r = repo.ok(*args)
        assert any("m.json: a.b names two values" in w and "rename one of the keys" in w
                   for w in warnings_of(r)), args  # fmt: skip
    assert repo.json("metrics", "show", "--json") == {"workspace": {"m.json": {"a.b": 1}}}


def test_a_metric_of_a_kind_not_shown_is_named(repo: Repo) -> None:
    """A long text or a TOML date was left out of every table without a word."""
    unshown: list[str] = []
    doc = {"acc": 0.9, "note": "y" * 201, "when": dt.date(2026, 1, 2), "l": [{"x": "z" * 300}]}
    assert values.flatten(doc, None, unshown) == {"acc": 0.9}
    assert unshown == ["note", "when", "l.0.x"]  # in the order of the document
    repo.write("src.toml", "acc = 0.9\nwhen = 2026-01-02\n")
    repo.ok("run", "-n", "s", "-d", "src.toml", "-m", "m.toml", "--", "cp src.toml m.toml")
    r = repo.ok("metrics", "show")
    assert "acc" in r.out
    assert any("m.toml: when not shown: a metric is a number, a boolean or a text" in w
               for w in warnings_of(r)), r  # fmt: skip


def test_a_metrics_file_past_the_bound_says_values_were_left_out(repo: Repo) -> None:
    """A confusion matrix of 150 x 150 values hid the metrics after it without a word."""
    matrix = [[i * j for j in range(150)] for i in range(150)]
    repo.write("src.json", json.dumps({"acc": 0.9, "confusion": matrix, "zloss": 0.1}))
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    r = repo.ok("metrics", "show", "--json")
    assert len(r.json()["workspace"]["m.json"]) == values.MAX_METRICS
    assert any("m.json holds more than 10,000 values: only the first 10,000 are shown" in w
               for w in warnings_of(r)), r  # fmt: skip
    repo.fsck_clean()


def test_a_version_s_metrics_file_too_large_to_read_is_named_as_the_working_tree_s(
    repo: Repo,
) -> None:
    """metrics show v1 said the pipeline listed no metrics files, and compare nothing."""
    repo.write("src.json", json.dumps({"acc": 0.9, "per_sample": [0.123456789] * 120_000}))
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    repo.ok("add", "src.json")
    repo.commit("one")
    r = repo.run("metrics", "show")
    assert r.code == 1 and warnings_of(r) == [
        "dvfs: warning: m.json cannot be read (larger than 1048576 bytes): fix it, or make it "
        "again (`dvfs repro` makes a stage's)"
    ]  # fmt: skip
    for args in (("metrics", "show", "v1"), ("compare",), ("metrics", "diff", "v1", "v1")):
        r = repo.run(*args)
        assert r.code == 1, r
        assert "v1: m.json cannot be read (larger than 1048576 bytes)" in r.err, r
        assert "no metrics (a stage" not in r.out
    repo.fsck_clean()


def test_a_version_s_metrics_file_whose_bytes_are_not_its_digest_is_named(
    tmp_path: Path,
) -> None:
    """A metrics file of several chunks that a version records under a digest its bytes
    do not have (a forged record an older dvfs fetched) was shown as that version's
    metrics: its chunks were joined unchecked. It is named as a file that cannot be
    read is, and its metrics are not shown."""
    Repository.init(tmp_path, chunker=SMALL_CHUNKS).close()
    repo = Repo(tmp_path)
    repo.write("src.json", '{"acc": 0.9' + " " * 200_000 + "}")  # several chunks
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    commit_in_process(repo, "one")
    r = Repository(repo.root)
    head = r.history.head_id()
    assert head is not None
    r.refs.update("refs/tags/lie", forge_digest(r, head, b"m.json", bytes(32)), None)
    assert repo.json("metrics", "show", "v1", "--json") == {"v1": {"m.json": {"acc": 0.9}}}
    got = repo.run("metrics", "show", "lie", "--json")
    assert got.code == 1, got
    assert "acc" not in got.out
    assert "v2: m.json: its bytes hash to " in got.err, got
    assert "the digest the version records for it" in got.err
    repo.ok("tag", "-d", "lie")
    repo.fsck_clean()


def test_a_metrics_file_of_one_bare_value_is_named_not_dropped_silently(repo: Repo) -> None:
    repo.ok("run", "-n", "s", "-m", "acc.json", "--", "echo 0.93 > acc.json")
    # the value had no name, and metrics show said "no metrics (a stage ... lists ...)"
    r = repo.ok("metrics", "show")
    assert r.out.startswith("no metrics could be read")
    assert warnings_of(r) == [
        "dvfs: warning: acc.json holds one value and no name for it: write a mapping such as "
        '{"acc": 0.9} to have it shown'
    ]


def test_a_value_of_another_type_inside_a_list_or_mapping_is_a_change(repo: Repo) -> None:
    # 1, 1.0 and true are equal to Python, inside a list as at the top
    repo.write("config.json", '{"layers": [1, 2], "opt": {"decay": 0}}')
    repo.ok("run", "-n", "s", "-p", "config.json:layers,opt", "-o", "o.txt", "--",
            "echo made > o.txt")  # fmt: skip
    repo.commit("trained")
    for layers, decay in (("[true, 2]", "0"), ("[1.0, 2]", "0"), ("[1, 2]", "false")):
        repo.write("config.json", f'{{"layers": {layers}, "opt": {{"decay": {decay}}}}}')
        r = repo.ok("repro", "--dry-run")
        assert "Would run stage s: param config.json:" in r.out, r.out
        assert "config.json:" in repo.ok("params", "diff").out
    repo.write("config.json", '{"layers": [1, 2], "opt": {"decay": 0}}')
    assert "Stage s is fresh" in repo.ok("repro", "--dry-run").out
    assert values.same([1, {"a": (2.5, "x")}], (1, {"a": [2.5, "x"]}))
    assert not values.same({"a": 1}, {"a": 1, "b": 2})


def test_minus_zero_is_zero_to_metrics_diff_and_compare_alike(repo: Repo) -> None:
    """-0.0 and 0.0 were one value to `metrics diff` and two to `compare` (-0.0, 0.0)."""
    assert values.flatten({"loss": -0.0, "l": [-0.0]}) == {"l.0": 0.0, "loss": 0.0}
    repo.ok("run", "-n", "s", "-m", "m.json", "--", "echo '{\"loss\": -0.0}' > m.json")
    repo.commit("one")
    repo.ok("run", "-f", "-n", "s", "-m", "m.json", "--", "echo '{\"loss\": 0.0}' > m.json")
    repo.commit("two")
    assert repo.json("metrics", "diff", "v1", "v2", "--json")["metrics"] == []
    rows = repo.json("compare", "--json")
    assert [r["metrics"] for r in rows] == [{"loss": 0.0}, {"loss": 0.0}]
    assert "-0.0" not in repo.ok("compare").out + repo.ok("compare", "--csv").out
    assert "-0.0" not in repo.ok("metrics", "show", "v1").out
    repo.fsck_clean()


def test_a_json_key_given_twice_is_named_with_its_file(repo: Repo) -> None:
    """The last of the two values was shown as the metric, without a word."""
    with pytest.raises(ValuesError, match=re.escape('c.json is not valid JSON: the key "a\\tb"')):
        values.load(b'{"x": {"a\\tb": 1, "a\\tb": 2}}', b"c.json", "c.json")
    repo.ok("run", "-n", "s", "-m", "m.json", "--", 'echo \'{"acc": 0.5, "acc": 0.9}\' > m.json')
    repo.commit("one")
    for args in (("metrics", "show"), ("metrics", "diff"), ("compare",)):
        r = repo.run(*args)
        assert r.code == 1, r
        assert any(
            "m.json is not valid JSON: the key acc is given twice" in w for w in warnings_of(r)
        ), r
        assert "0.9" not in r.out, r
    repo.write("config.json", '{"lr": 0.1, "lr": 0.2}')
    r = repo.run("run", "-n", "t", "-p", "config.json:lr", "-o", "o.txt", "--", "echo > o.txt")
    assert_error(r, "config.json is not valid JSON: the key lr is given twice")
    repo.fsck_clean()


def test_a_toml_date_changed_to_a_string_of_the_same_text_makes_its_stage_stale(
    repo: Repo,
) -> None:
    """The run recorded the date as its text, so the string "2024-01-02" read as the
    same value: the stage stayed fresh though its program now read a str."""
    script = (
        "import tomllib; c = tomllib.load(open('c.toml', 'rb')); "
        "open('o', 'w').write(type(c['start']).__name__)"
    )
    repo.write("c.toml", "start = 2024-01-02\n")
    repo.ok("run", "-n", "s", "-p", "c.toml:start", "-o", "o", "--", sys.executable, "-c",
            script)  # fmt: skip
    repo.ok("add", "c.toml")
    repo.commit("a date")
    assert "'!toml-date': '2024-01-02'" in repo.read("dvfs.runs").decode()
    repo.write("c.toml", 'start = "2024-01-02"\n')
    r = repo.ok("repro", "--dry-run")
    assert "Would run stage s: param c.toml:start 2024-01-02 (a TOML date) -> 2024-01-02" in r.out
    repo.ok("repro")
    assert repo.read("o") == b"str"
    repo.ok("add", "c.toml")
    repo.commit("a string")
    diff = repo.json("params", "diff", "v1", "v2", "--json")["params"]
    assert diff == [
        {"name": "c.toml:start", "old": "2024-01-02", "new": "2024-01-02", "changed": True}
    ]
    assert "start: '2024-01-02'" in repo.ok("show", "v1", "--format", "yaml").out
    repo.write("c.toml", "start = 2024-01-02\n")  # the date again: its run, from the cache
    assert "Restoring stage s from" in repo.ok("repro").out
    assert repo.read("o") == b"date"
    repo.fsck_clean()


@pytest.mark.parametrize("source", ["yaml", "json"])
def test_a_mapping_shaped_like_a_recorded_date_stays_a_mapping(repo: Repo, source: str) -> None:
    """A param whose value was the mapping {"!toml-date": X} was recorded as a date is,
    read back as a date, and its stage was stale at every repro (and shared its run
    cache key with the date X)."""
    start = {"!toml-date": "2024-01-02"}
    other = {"!!x": 1, "y": {"!k": [2]}}
    if source == "yaml":
        repo.write("p.yaml", '{start: {"!toml-date": "2024-01-02"}, b: {"!!x": 1, y: {"!k": [2]}}}')
    else:
        repo.write("p.yaml", json.dumps({"start": start, "b": other}))
    repo.ok("run", "-n", "s", "-p", "p.yaml:start,b", "-o", "o", "--", "echo > o")
    assert repo.ok("repro").out.startswith("Stage s is fresh")
    repo.ok("add", "p.yaml")
    repo.commit("a mapping")
    shown = repo.show()["pipeline"][0]["params"]["p.yaml"]
    assert shown == {"start": start, "b": other}
    repo.write("p.yaml", "{start: 2024-01-02, b: 0}")  # YAML 1.2: the text 2024-01-02
    assert "param p.yaml:start {" in repo.ok("repro", "--dry-run").out
    repo.fsck_clean()


def test_params_records_escape_one_key_mappings_and_read_old_records_as_before() -> None:
    date = TomlDate("2024-01-02")
    tricky = [date, {"!toml-date": "2024-01-02"}, {"!!toml-date": date}, {"!": {"!a": 1}},
              [{"!x": [date]}], {"!toml-date": "x", "b": 1}, {"a": {"!toml-date": 3}}]  # fmt: skip
    for value in tricky:
        back = from_record(to_record(value))
        assert back == value and type(back) is type(value)
    assert to_record({"!toml-date": "2024-01-02"}) == {"\0!toml-date": "2024-01-02"}
    assert to_record(date) == {"!toml-date": "2024-01-02"}
    assert isinstance(from_record({"!toml-date": "2024-01-02"}), TomlDate)  # old and new
    for old in ({"!x": 1}, {"!!x": 1}, {"!!!toml-date": "x"}, {"!toml-date": 3}):
        assert from_record(old) == old and to_record(old) == old  # recorded as always


_KEYS = st.sampled_from(["a", "!", "!k", "!!k", "!toml-date", "!!toml-date", "!text", "\0k", "\0"])
_VALUES = st.recursive(
    st.none()
    | st.integers()
    | st.text(max_size=3)
    | st.just(TomlDate("2024-01-02"))
    | st.sampled_from([".inf", FloatText(".inf"), FloatText(".nan")]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=2),
    max_leaves=8,
)


@given(_VALUES)
@settings(max_examples=300, deadline=None)
def test_a_params_record_reads_back_exactly_what_was_recorded(value: object) -> None:
    # a mapping of one key "!!k" was recorded as {"!!!k": v} and read back as it was
    # given, but one recorded before that escape (as {"!!k": v}) read as {"!k": v}
    back = from_record(to_record(value))
    assert back == value and values.same(back, value)  # (same: a date stays a date)


def test_a_runs_file_recorded_before_the_escape_keeps_a_double_bang_key(repo: Repo) -> None:
    # dvfs.runs as an older dvfs wrote it for the value {"!!k": 1} read as {"!k": 1}:
    # `repro` called the stage stale ("param p.yaml:b {'!k': 1} -> {'!!k': 1}") and ran it
    repo.write("p.yaml", '{b: {"!!k": 1}}')
    repo.ok("run", "-n", "s", "-p", "p.yaml:b", "-o", "o", "--", "echo > o")
    runs = yaml.safe_load(repo.read("dvfs.runs"))
    runs["stages"]["s"]["params"]["p.yaml"]["b"] = {"!!k": 1}  # what it held then
    repo.write("dvfs.runs", yaml.safe_dump(runs))
    assert repo.ok("repro").out.startswith("Stage s is fresh")
    repo.ok("add", "p.yaml", "dvfs.runs")
    repo.commit("old runs")
    assert repo.show()["pipeline"][0]["params"]["p.yaml"] == {"b": {"!!k": 1}}
    repo.fsck_clean()


def test_compare_quotes_a_name_with_a_control_character_as_metrics_show_does(
    repo: Repo,
) -> None:
    repo.write("src.json", '{"a\\tb": 1, "c": 2}')
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    repo.commit("one")
    assert '"a\\tb"' in repo.ok("metrics", "show").out
    header = repo.ok("compare").out.splitlines()[0]
    assert '"a\\tb"' in header and "\t" not in header, header  # it was a\tb, unquoted
    assert_error(repo.run("compare", "--sort", "x\ty"), 'no metric or parameter "x\\ty"')
    repo.fsck_clean()


def test_exp_run_and_lineage_quote_what_they_refuse(repo: Repo) -> None:
    repo.write("params.yaml", 'lr: 1\n"o\\tp": 2\n')
    repo.ok("run", "-n", "s", "-p", "lr", "-o", "o", "--", "echo > o")
    repo.ok("add", "params.yaml")
    repo.commit("one")
    line = assert_error(repo.run("exp", "run", "-S", "o\tp=3"), '-S "o\\tp=3": no stage reads')
    assert 'params.yaml:"o\\tp"' in line
    assert_error(repo.run("exp", "run", "-S", "x\ty=3"), 'has no parameter "x\\ty"')
    assert_error(repo.run("lineage", "../a\tb"), '"../a\\tb" is not a path inside')
    repo.fsck_clean()


def test_a_param_of_minus_zero_is_zero_in_compare_as_in_params_diff(repo: Repo) -> None:
    """params diff found -0.0 and 0.0 equal (the stage stayed fresh); compare showed both."""
    assert values.plain(-0.0) == 0.0 and str(values.plain(-0.0)) == "0.0"
    repo.write("params.yaml", "lr: -0.0\n")
    repo.ok("run", "-n", "s", "-p", "lr", "-o", "o", "--", "echo > o")
    repo.ok("add", "params.yaml")
    repo.commit("a", "--param", "w=-0.0")
    repo.write("params.yaml", "lr: 0.0\n")
    assert "Stage s is fresh" in repo.ok("repro").out
    repo.ok("add", "params.yaml")
    repo.commit("b", "--param", "w=0.0")
    assert repo.json("params", "diff", "v1", "v2", "--json")["params"] == []
    assert "-0.0" not in repo.ok("compare").out
    assert [r["params"] for r in repo.json("compare", "--json")] == [{"lr": 0.0, "w": 0.0}] * 2
    repo.fsck_clean()


def test_a_param_key_holding_a_dot_is_said_so_and_two_readings_are_refused(repo: Repo) -> None:
    # {"a.b": 2} gave "p.json has no parameter a.b; did you mean a.b?"; with {"a": {"b": 1}}
    # beside it the stage recorded 1 while its program may read 2
    repo.write("p.json", '{"a.b": 2}')
    args = ("run", "-n", "s", "-p", "p.json:a.b", "-o", "o", "--", "echo > o")
    line = repo.fail(*args, fragments=(
        "p.json has no parameter a.b as nested keys, only a key holding a dot",
        "rename that key"))  # fmt: skip
    assert "did you mean" not in line
    repo.write("p.json", '{"a": {"b": 1}, "a.b": 2}')
    repo.fail(*args, fragments=("p.json has two values named a.b", "rename one"))
    repo.write("p.json", '{"a": {"b": 1}}')
    repo.ok(*args)
    repo.ok("add", "p.json")
    repo.commit("one reading")
    repo.write("p.json", '{"a": {"b": 1}, "a.b": 2}')
    repo.fail("exp", "run", "-S", "p.json:a.b=3", fragments=("has two values named a.b",))
    repo.fsck_clean()


def test_a_text_that_reads_as_a_number_is_shown_quoted_beside_the_number(repo: Repo) -> None:
    """`metrics diff` of 2 against the text "2" showed `2  2`, as if unchanged, while
    --json told a number from a text; `compare` and `dvfs diff`'s params likewise."""
    repo.ok("run", "-n", "s", "-m", "m.json", "--",
            "echo '{\"a\": 2, \"b\": true, \"c\": \"x\"}' > m.json")  # fmt: skip
    repo.commit("one", "--param", "lr=2")
    repo.ok("run", "-f", "-n", "s", "-m", "m.json", "--",
            "echo '{\"a\": \"2\", \"b\": \"true\", \"c\": \"-\"}' > m.json")  # fmt: skip
    repo.commit("two", "--param", 'lr="2"')
    moved = repo.json("metrics", "diff", "v1", "v2", "--json")["metrics"]
    assert [(m["name"], m["old"], m["new"]) for m in moved] == [
        ("a", 2, "2"), ("b", True, "true"), ("c", "x", "-"),
    ]  # fmt: skip
    rows = [ln.split() for ln in repo.ok("metrics", "diff", "v1", "v2").out.splitlines()[1:]]
    assert rows == [["a", "2", '"2"', "-"], ["b", "true", '"true"', "-"], ["c", "x", '"-"', "-"]]
    compared = repo.ok("compare", "v1", "v2").out
    assert '"2"' in compared and '"true"' in compared
    assert 'param changed:  lr: 2 -> "2"' in repo.ok("diff", "v1", "v2").out
    assert 'lr = "2"' in repo.ok("log", "--params", "-n", "1").out
    repo.fsck_clean()


def test_a_parameter_that_is_the_text_inf_is_told_from_the_float(repo: Repo) -> None:
    """A stage's parameter `b: '.inf'` (text) showed as `.inf` in `compare` and `params
    diff`, as the float `a: .inf` beside it did, and changing one to the other left the
    stage fresh: both were recorded as the text ".inf". The text is recorded as its own
    type now, shown in double quotes, and a change between them runs the stage."""
    repo.write("params.yaml", "a: .inf\nb: '.inf'\nc: .nan\n")
    repo.ok("run", "-n", "s", "-p", "a,b,c", "-o", "o", "--", "cat params.yaml > o")
    repo.ok("add", "params.yaml")
    repo.commit("one")
    row = repo.ok("compare").out.splitlines()[-1]
    assert row.split("│")[-3:] == [" .inf ", ' ".inf" ', " .nan"]
    assert repo.json("compare", "--json")[0]["param_texts"] == ["b"]
    repo.write("params.yaml", "a: '.inf'\nb: .inf\nc: .nan\n")
    rows = [ln.split() for ln in repo.ok("params", "diff").out.splitlines()[1:]]
    assert rows == [["a", ".inf", '".inf"'], ["b", '".inf"', ".inf"]]
    assert repo.ok("repro").out.startswith("Running stage s")  # (it stayed fresh)
    repo.fsck_clean()


def test_yaml_keys_true_1_and_1_0_are_three_keys_as_yaml_reads_them(repo: Repo) -> None:
    """Python holds true, 1 and 1.0 as one key: a metrics or params file with `true:`
    and `1:` was refused as "found the key 1 twice", keys YAML holds apart."""
    repo.write("m.yaml", "true: 1\n1: 2\n1.0: 3\nnull: 4\n")
    repo.ok("run", "-n", "s", "-m", "m.yaml", "--no-exec", "--", "true")
    shown = repo.json("metrics", "show", "--json")
    assert shown == {"workspace": {"m.yaml": {"true": 1, "1": 2, "1.0": 3, "null": 4}}}
    repo.write("p.yaml", "opt:\n  true: 1\n  1: 2\n")
    repo.ok("add", "m.yaml")
    repo.commit("one", "--params-file", "p.yaml")
    assert repo.json("log", "-n", "1", "--json")[0]["parameters"] == {"opt": {"true": 1, "1": 2}}
    repo.write("p.yaml", "opt:\n  true: 1\n  True: 2\n")  # one key, twice
    assert_error(repo.run("commit", "-m", "x", "--params-file", "p.yaml"), "the key true twice")
    repo.fsck_clean()


def test_exp_run_says_what_stands_where_its_params_file_should_be(repo: Repo) -> None:
    """`dvfs exp run -S lr=2` with params.yaml a FIFO or a directory said "params.yaml
    does not exist", and with it a link out of the repository "params.yaml cannot be
    read (a symbolic link)" without naming the -S that needed it. It names what is
    there, in one line, and runs nothing (nor opens the FIFO, which would hang)."""
    repo.write("params.yaml", "lr: 1\n")
    repo.write("dvfs.yaml", "stages:\n  s:\n    cmd: echo hi > o\n    params: [lr]\n"
               "    outs: [o]\n")  # fmt: skip
    repo.ok("repro")
    repo.ok("add", "params.yaml", "dvfs.yaml", "o")
    repo.commit("base")
    params = repo.root / "params.yaml"
    outside = repo.root.parent / "outside.yaml"
    outside.write_text("lr: 5\n")
    params.unlink()
    for what in ("a FIFO", "a directory", "a symbolic link"):
        if what == "a FIFO":
            os.mkfifo(params)
        elif what == "a directory":
            params.mkdir()
        else:
            params.symlink_to(outside)
        line = repo.fail("exp", "run", "-S", "lr=2", "-n", "e", code=2)
        assert f"-S lr=2: params.yaml is {what}, not a regular file" in line, line
        params.rmdir() if what == "a directory" else params.unlink()
    assert outside.read_text() == "lr: 5\n"
    assert "exp/e" not in repo.ok("branch").out
    repo.ok("restore", "params.yaml")
    repo.fsck_clean()


def test_compare_of_thousands_of_metrics_shows_a_table_a_terminal_can_hold(repo: Repo) -> None:
    """A version of 1,000 metrics made `dvfs compare` print 1,003 columns, each cut to
    nothing (a line of `┃┃┃┃`), after seconds of layout. The table shows 40 of them and
    says how many it left out and how to see them all; the JSON has every one."""
    repo.write("src.json", json.dumps({f"m{i:04d}": i for i in range(1000)}))
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    repo.commit("one")
    r = repo.ok("compare")
    header = r.out.splitlines()[0].split()
    assert header[:3] == ["rev", "┃", "created"] and "m0000" in header and "m0039" in header
    assert "m0040" not in header and len([h for h in header if h != "┃"]) == 3 + 40
    assert r.err.splitlines() == [
        "note: the table shows 40 of the 1,000 parameter and metric columns (960 left out): "
        "`dvfs compare --json` or `--csv` gives every one, and `--sort NAME` shows the "
        "column it sorts by"
    ]
    assert "m0999" in repo.ok("compare", "--sort", "-m0999").out.splitlines()[0]
    assert len(repo.json("compare", "--json")[0]["metrics"]) == 1000
    repo.fsck_clean()


def test_repro_quotes_a_parameter_changed_to_text_that_reads_as_its_old_value(
    repo: Repo,
) -> None:
    """`repro` said `param lr 2 -> 2` when the number 2 became the text "2" (and `.inf ->
    .inf`, `null -> null`): a change it ran the stage for, shown as none. The text is
    quoted, as `params diff` shows it."""
    repo.write("params.yaml", "a: 2\nb: .inf\nc: null\n")
    repo.ok("run", "-n", "s", "-p", "a,b,c", "-o", "o", "--", "cat params.yaml > o")
    repo.write("params.yaml", "a: '2'\nb: '.inf'\nc: 'null'\n")
    said = repo.ok("repro", "--dry-run").out
    assert 'param a 2 -> "2"; param b .inf -> ".inf"; param c null -> "null"' in said
    repo.write("params.yaml", "a: x\nb: .inf\nc: null\n")
    assert repo.ok("repro", "--dry-run").out == "Would run stage s: param a 2 -> x\n"
    repo.fsck_clean()


def test_metrics_and_params_diff_json_tell_the_text_inf_from_the_float(repo: Repo) -> None:
    """`metrics diff --json` of the float NaN against the text ".nan" gave `"old": ".nan",
    "new": ".nan"`, a change that read as none (with --all, as an unchanged row), and
    `params diff --json` likewise: a row's `texts` names the sides that are such text, as
    `compare --json` rows do."""
    repo.write("params.yaml", "lr: .inf\nwd: 1\n")
    repo.ok("run", "-n", "s", "-p", "lr,wd", "-m", "m.json", "--",
            "echo '{\"acc\": NaN, \"loss\": \".inf\"}' > m.json")  # fmt: skip
    repo.ok("add", "params.yaml")
    repo.commit("one")
    repo.write("params.yaml", "lr: '.inf'\nwd: 1\n")
    repo.ok("run", "-f", "-n", "s", "-p", "lr,wd", "-m", "m.json", "--",
            "echo '{\"acc\": \".nan\", \"loss\": \".inf\"}' > m.json")  # fmt: skip
    repo.ok("add", "params.yaml")
    repo.commit("two")
    moved = repo.json("metrics", "diff", "v1", "v2", "--all", "--json")["metrics"]
    assert moved == [
        {"name": "acc", "old": ".nan", "new": ".nan", "change": None, "texts": ["new"]},
        {"name": "loss", "old": ".inf", "new": ".inf", "change": None, "texts": ["old", "new"]},
    ]
    params = repo.json("params", "diff", "v1", "v2", "--all", "--json")["params"]
    assert params == [
        {"name": "lr", "old": ".inf", "new": ".inf", "changed": True, "texts": ["new"]},
        {"name": "wd", "old": 1, "new": 1, "changed": False},
    ]
    against_tree = repo.json("params", "diff", "v1", "--json")["params"]  # (v2's params)
    assert against_tree == [{**params[0], "changed": True}]
    repo.fsck_clean()
