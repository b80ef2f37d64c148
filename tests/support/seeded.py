"""What the seeded hostile harnesses share: an attack's outcome, the faults of a
command's answer, and the command line that runs seeds (``tests.support.hostile``, a
hostile remote; ``tests.support.hostile_tree``, a hostile working tree)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import ERROR_PREFIX, WARNING_PREFIX


@dataclass
class Outcome:
    """One seed's attack: the mutation and command it drew, how the command ended, and
    what went wrong (``faults`` empty: nothing)."""

    seed: int
    mutation: str
    what: str
    op: str
    code: int
    err: str
    faults: list[str]

    def __str__(self) -> str:
        return (
            f"seed {self.seed}: {self.mutation} ({self.what}); {self.op} -> exit {self.code}\n"
            + "".join(f"  FAULT: {f}\n" for f in self.faults)
            + textwrap.indent(self.err[-3000:], "  | ")
        )


def answer_faults(code: int, err: str, *, warned_exit: bool = False) -> list[str]:
    """What is wrong in how a command ended: a traceback, an internal error, death by a
    signal, or a failure not said in exactly one error line (``warned_exit``: exit 1
    with warnings and no error line is a verdict, as ``add`` gives for files skipped)."""
    faults = []
    if "Traceback" in err:
        faults.append("a traceback")
    if "internal error" in err.lower():
        faults.append("an internal error")
    if code < 0:
        faults.append(f"killed by signal {-code}")
    elif code != 0:
        errors = [ln for ln in err.splitlines() if ln.startswith(ERROR_PREFIX)]
        warned = any(ln.startswith(WARNING_PREFIX) for ln in err.splitlines())
        if len(errors) != 1 and not (warned_exit and code == 1 and not errors and warned):
            faults.append(f"exit {code} with {len(errors)} error lines")
    return faults


def seeds_main(
    doc: str | None,
    prefix: str,
    operations: Collection[str],
    mutations: Collection[str],
    build: Callable[[Path], Any],
    attack: Callable[[Any, int, str | None, str | None], Outcome],
    argv: list[str] | None = None,
) -> int:
    """Run the seeds the command line asks for against a base ``build`` made in a
    temporary folder, printing each seed's outcome; exit status 1 if any found a fault."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=50, help="how many seeds to run")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--op", choices=sorted(operations), help="the command to run")
    parser.add_argument("--mutation", choices=sorted(mutations), help="the mutation")
    parser.add_argument("--dir", type=Path, help="where to work (default: a temporary folder)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=args.dir))
    base = build(root)
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    failed = 0
    for seed in seeds:
        out = attack(base, seed, args.op, args.mutation)
        if out.faults:
            failed += 1
            print(out, flush=True)
        else:
            print(f"seed {seed}: ok ({out.mutation}: {out.what}; {out.op} -> {out.code})",
                  flush=True)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    print(f"{failed} of {len(seeds)} seeds found a fault")
    return 1 if failed else 0
