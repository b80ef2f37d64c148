"""What a benchmark run found: per step and tool, the table, and the targets.

Ratios are always dvfs / DVC, so below 1 means dvfs used less. The targets are the
ones dvfs is built to meet; they are printed as met / not met and never fail a run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from measure import Measurement, Proc

DVFS = "dvfs"
DVC = "DVC"
MIB = 1024 * 1024


@dataclass
class ToolStep:
    """One tool's figures for one step; ``error`` is set when a command failed."""

    wall_s: float
    maxrss_kib: int
    store_bytes: int
    store_delta: int
    error: str = ""
    notes: list[str] = field(default_factory=list)
    samples_s: list[float] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)

    @classmethod
    def of(cls, m: Measurement, store_before: int, store_after: int) -> ToolStep:
        """Figures from a measurement and the store's size before and after it."""
        bad = m.failed
        error = ""
        if bad is not None:
            error = f"`{' '.join(bad.argv)}` exited {bad.returncode}: {bad.output_tail.strip()}"
        return cls(
            wall_s=m.wall_s,
            maxrss_kib=m.maxrss_kib,
            store_bytes=store_after,
            store_delta=store_after - store_before,
            error=error,
            samples_s=[p.wall_s for p in m.procs],
            procs=m.procs,
        )

    @classmethod
    def median_of(cls, runs: list[Measurement], store: int) -> ToolStep:
        """Figures for a step repeated several times: median wall time, largest RSS."""
        merged = Measurement([p for m in runs for p in m.procs])
        step = cls.of(merged, store, store)
        step.wall_s = statistics.median(m.wall_s for m in runs)
        step.samples_s = [m.wall_s for m in runs]
        return step


@dataclass
class Row:
    """One step of the table; ``store`` says which store figure it shows."""

    key: str
    title: str
    store: str  # "total", "delta" or "none"
    tools: dict[str, ToolStep]


def median_step(steps: list[ToolStep]) -> ToolStep:
    """One tool's figures for a step run several times: the median of each figure.

    ``samples_s`` holds each run's wall time; ``procs`` are those of the run whose wall
    time is the lower median (each run's own are in its row). A run that failed
    makes the step failed, with its error.
    """
    if len(steps) == 1:
        return steps[0]
    walls = [s.wall_s for s in steps]
    typical = steps[walls.index(statistics.median_low(walls))]
    failed = next((s for s in steps if s.error), None)
    return ToolStep(
        wall_s=statistics.median(walls),
        maxrss_kib=round(statistics.median(s.maxrss_kib for s in steps)),
        store_bytes=round(statistics.median(s.store_bytes for s in steps)),
        store_delta=round(statistics.median(s.store_delta for s in steps)),
        error=failed.error if failed is not None else "",
        notes=list(dict.fromkeys(n for s in steps for n in s.notes)),
        samples_s=walls,
        procs=typical.procs,
    )


def median_rows(runs: list[list[Row]]) -> list[Row]:
    """The rows of several runs of the same steps, each figure the median over the runs."""
    out = []
    for row in runs[0]:
        same = [r for rows in runs for r in rows if r.key == row.key]
        tools = {name: median_step([r.tools[name] for r in same]) for name in row.tools}
        out.append(Row(row.key, row.title, row.store, tools))
    return out


def human(n: float) -> str:
    """Bytes as B, KiB, MiB or GiB with three significant digits or so."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def ratio(a: float, b: float) -> str:
    """``a / b`` for the table, or a dash when it means nothing."""
    return f"{a / b:.2f}" if b > 0 else "-"


def cells(row: Row) -> list[str]:
    """The table cells of one row; a failed tool shows FAIL, and then no ratios."""
    a, b = row.tools[DVFS], row.tools[DVC]
    failed = bool(a.error or b.error)

    def trio(text_a: str, text_b: str, va: float, vb: float) -> list[str]:
        return [text_a, text_b, "-" if failed else ratio(va, vb)]

    def secs(s: ToolStep) -> str:
        return "FAIL" if s.error else f"{s.wall_s:.2f}"

    wall = trio(secs(a), secs(b), a.wall_s, b.wall_s)
    ra, rb = a.maxrss_kib / 1024, b.maxrss_kib / 1024
    rss = trio(f"{ra:.0f}", f"{rb:.0f}", ra, rb)
    if row.store == "delta":
        da, db = a.store_delta, b.store_delta
        store = trio("+" + human(da), "+" + human(db), da, db)
    elif row.store == "total":
        ta, tb = a.store_bytes, b.store_bytes
        store = trio(human(ta), human(tb), ta, tb)
    else:
        store = ["", "", ""]
    return [row.title, *wall, *rss, *store]


HEADER = ["step", "dvfs s", "DVC s", "ratio", "dvfs RSS MiB", "DVC RSS MiB", "ratio"]
HEADER += ["dvfs store", "DVC store", "ratio"]


def table(rows: list[Row]) -> str:
    """The rows as a plain, aligned text table (first column left, the rest right)."""
    return render([HEADER, *(cells(r) for r in rows)])


def render(grid: list[list[str]]) -> str:
    """A header line and rows of cells as aligned text (first column left, the rest right)."""
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    lines = []
    for n, line in enumerate(grid):
        parts = [line[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


@dataclass
class Target:
    """One goal, what was measured against it, and whether it was met (None: unknown)."""

    goal: str
    measured: str
    met: bool | None


def wall_target(rows: dict[str, Row], key: str, goal: str, limit: float) -> Target:
    """dvfs's wall time for a step as a fraction of DVC's, against ``limit``."""
    row = rows.get(key)
    if row is None or row.tools[DVFS].error or row.tools[DVC].error:
        return Target(goal, "no figure (a command failed)", None)
    a, b = row.tools[DVFS].wall_s, row.tools[DVC].wall_s
    got = a / b if b > 0 else float("inf")
    return Target(goal, f"{got:.3f} ({a:.2f} s vs {b:.2f} s)", got <= limit)


def targets(rows: list[Row]) -> list[Target]:
    """Every target, evaluated on the rows of a run."""
    by_key = {r.key: r for r in rows}
    out = [  # issue 20's (the big file's floor target is bench_local.floor_lines's)
        wall_target(by_key, "status", "status (median) <= 0.1 x DVC", 0.1),
        wall_target(by_key, "checkout", "checkout <= 0.33 x DVC", 0.33),
        wall_target(by_key, "add_small", "add+commit small files <= 0.2 x DVC", 0.2),
    ]
    edit = by_key.get("recommit")
    if edit is None or edit.tools[DVFS].error:
        out.append(Target("re-commit of edited big file stores <= 8 MiB", "no figure", None))
    else:
        delta = edit.tools[DVFS].store_delta
        out.append(
            Target(
                "re-commit of edited big file stores <= 8 MiB",
                f"{human(delta)} (DVC {human(edit.tools[DVC].store_delta)})",
                delta <= 8 * MIB,
            )
        )
    compared = [r for r in rows if not (r.tools[DVFS].error or r.tools[DVC].error)]
    over = [
        f"{r.title} ({r.tools[DVFS].maxrss_kib // 1024} vs {r.tools[DVC].maxrss_kib // 1024} MiB)"
        for r in compared
        if r.tools[DVFS].maxrss_kib > r.tools[DVC].maxrss_kib
    ]
    measured = "every step" if not over else "over in: " + "; ".join(over)
    out.append(Target("peak RSS <= DVC's in every step", measured, not over))
    return out


def target_lines(ts: list[Target]) -> str:
    """The targets as text, one per line."""
    mark = {True: "met", False: "NOT MET", None: "unknown"}
    width = max(len(t.goal) for t in ts)
    return "\n".join(f"{t.goal.ljust(width)}  {mark[t.met]:8}  {t.measured}" for t in ts)
