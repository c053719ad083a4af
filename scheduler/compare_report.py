"""The report of a comparison suite: summary per solver, table per cell, plots and Gantt charts.

:func:`scheduler.compare.run_suite` computes the cells; this writes what a person
reads of them (``report.md`` and ``plots/``).  :func:`markdown_table` is the pipe
table the benchmarks' reports use too.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import pandas as pd

from .fileio import write_text
from .pipeline import safe_name
from .plots import gantt, gap_chart, ratio_chart, time_chart
from .problem import Problem
from .schedule import schedule_from_dict

if TYPE_CHECKING:
    from .compare import Cell, Suite


def _geomean(values: Iterable[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


def suite_report(suite: Suite, folder: str, table: pd.DataFrame, problems: Mapping[str, Problem],
                 results: Mapping[str, Mapping[str, Any]], cells: Sequence[Cell]) -> None:
    """Write ``report.md`` of a suite (per solver: geometric-mean gap, wins, time; per cell; the plots) and its
    charts under ``plots/`` (gap per solver, solve time against size, makespan over the bound, and the best
    Gantt chart of each instance when the suite asks for them)."""
    found = table[table["makespan"].notna()].copy()
    found["best"] = found.groupby(["instance", "time_limit", "seed"])["makespan"].transform("min")
    found["win"] = found["makespan"] <= found["best"] * (1 + 1e-9)
    summary = found.groupby("solver").agg(
        geomean_gap=("gap", lambda g: _geomean(1 + x for x in g) - 1),
        wins=("win", "sum"), solved=("makespan", "count"), mean_solve_s=("solve_s", "mean"),
        optimal=("status", lambda s: int((s == "optimal").sum()))).reset_index()
    summary["cells"] = summary["solver"].map(table.groupby("solver").size())
    summary = summary.sort_values("geomean_gap")
    plots = os.path.join(folder, "plots")
    if len(summary):
        gap_chart(list(summary["solver"]), list(summary["geomean_gap"]), os.path.join(plots, "gap_per_solver.png"),
                  title=f"{suite.name}: geometric-mean gap to the lower bound per solver")
        time_chart(found, os.path.join(plots, "solve_time_vs_size.png"),
                   title=f"{suite.name}: solve time vs graph size")
        ratio_chart(found.assign(norm=found["makespan"] / found["lower_bound"]).pivot_table(
            index="instance", columns="solver", values="norm", aggfunc="min"),
            os.path.join(plots, "makespan_over_bound.png"), title=f"{suite.name}: makespan normalised to the bound")
    gantts = []
    if suite.gantt == "best":
        for instance, grp in found.groupby("instance"):
            row = grp.loc[grp["makespan"].idxmin()]
            cell = next(c for c in cells if c.instance == instance and
                        c.solver + (f" {c.options}" if c.options != "{}" else "") == row["solver"]
                        and c.time_limit == row["time_limit"] and c.seed == row["seed"])
            sched = schedule_from_dict(results[cell.key]["schedule"])
            path = os.path.join(plots, f"gantt_{safe_name(instance)}.png")
            gantt(problems[instance], sched, path)
            gantts.append((instance, os.path.relpath(path, folder)))
    lines = [f"# Suite `{suite.name}`", "",
             f"{len(table)} cells: {table['instance'].nunique()} instances x {table['solver'].nunique()} solvers "
             f"x {len(suite.time_limits)} time limits x {len(suite.seeds)} seeds; gap = makespan / best lower "
             "bound - 1 (bound: the best of the classic and LP bounds of the instance and every proven bound an "
             "exact solver found for it).", "", "## Per solver", "",
             markdown_table(summary.round(4)), "",
             "Wins count the cells where the solver matched the best makespan of its instance (ties count for each).",
             "", "## Per instance", "",
             markdown_table(table.assign(makespan=table["makespan"].map(_fmt),
                                         lower_bound=table["lower_bound"].map(_fmt),
                                         gap=table["gap"].map(lambda g: "-" if pd.isna(g) else f"{g:.1%}"),
                                         solve_s=table["solve_s"].map(lambda v: f"{v:.3f}"))), "",
             "## Plots", "", "![gap per solver](plots/gap_per_solver.png)", "",
             "![solve time vs size](plots/solve_time_vs_size.png)", "",
             "![makespan over bound](plots/makespan_over_bound.png)", ""]
    for instance, path in gantts:
        lines += [f"Best schedule of `{instance}`:", "", f"![gantt {instance}]({path})", ""]
    write_text(os.path.join(folder, "report.md"), "\n".join(lines))


def _fmt(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:.6g}"


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown needs tabulate, which is not a dependency)."""
    cols = [str(c) for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        out.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(out)
