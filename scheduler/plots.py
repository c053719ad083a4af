"""Pictures of schedules and solver comparisons (matplotlib, written as PNG).

* :func:`gantt`: one row per device, a bar per task, cross-device transfers drawn
  as arrows from the producer's end to the consumer's row; the title carries
  makespan, bound and gap.
* :func:`gap_chart`: gap to the lower bound per solver.
* :func:`time_chart`, :func:`ratio_chart`: a suite's solve times against graph size,
  and its makespans over the bound per instance.

Figures are built as :class:`matplotlib.figure.Figure` objects, never through pyplot:
no backend is chosen and no global figure state is kept.

Example
-------
>>> from scheduler.pipeline import build_problem
>>> from scheduler.semantics import simulate
>>> p = build_problem("mlp")
>>> gantt(p, simulate(p, {t: "cpu0" for t in p.tasks}), "/tmp/gantt.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from typing import Sequence

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from .problem import Problem
from .schedule import Schedule


def _save(fig: Figure, path: str) -> str:
    """Save atomically (temporary file + rename).  Figures are made without pyplot, so nothing is
    registered to close and no backend is chosen: a program that imports this module keeps its own."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _scale(makespan: float) -> tuple[float, str]:
    for factor, unit in ((1.0, "s"), (1e3, "ms"), (1e6, "µs")):
        if makespan * factor >= 1:
            return factor, unit
    return 1e6, "µs"


def gantt(problem: Problem, schedule: Schedule, path: str, *, title: str | None = None,
          max_arrows: int = 400) -> str:
    """Draw ``schedule`` as a Gantt chart at ``path`` (PNG); returns the path."""
    if not schedule.found:
        raise ValueError("cannot draw a schedule without a placement")
    factor, unit = _scale(schedule.makespan or 1.0)
    devices = list(problem.devices)
    row = {d: i for i, d in enumerate(devices)}
    ops = sorted({problem.graph.task[t.name].op_type or "task" for t in schedule.tasks})
    cmap = matplotlib.colormaps["tab20"]
    colour = {op: cmap(i % 20) for i, op in enumerate(ops)}
    fig = Figure(figsize=(12, 1.0 + 0.6 * len(devices)))
    ax = fig.subplots()
    by = schedule.by_name
    for st in schedule.tasks:
        op = problem.graph.task[st.name].op_type or "task"
        width = (st.finish - st.start) * factor
        ax.barh(row[st.device], width, left=st.start * factor, height=0.6, color=colour[op],
                edgecolor="black", linewidth=0.3)
        if width > 0.06 * (schedule.makespan or 1) * factor:
            ax.text((st.start + (st.finish - st.start) / 2) * factor, row[st.device], st.name.split("/")[-1],
                    ha="center", va="center", fontsize=6, clip_on=True)
    crossing = [e for e in problem.graph.edges if by[e.src].device != by[e.dst].device]
    for e in crossing[:max_arrows]:
        u, v = by[e.src], by[e.dst]
        arrival = u.finish + problem.transfer(e, u.device, v.device)
        ax.add_patch(FancyArrowPatch((u.finish * factor, row[u.device]), (arrival * factor, row[v.device]),
                                     arrowstyle="-|>", mutation_scale=6, color="dimgray", linewidth=0.5, alpha=0.6))
    ax.set_yticks(range(len(devices)), devices)
    ax.invert_yaxis()
    ax.set_xlabel(f"time ({unit})")
    ax.set_xlim(0, (schedule.makespan or 1) * factor * 1.02)
    gap = f", gap {schedule.gap:.1%} to bound {schedule.lower_bound * factor:.4g} {unit}" \
        if schedule.gap is not None else ""
    ax.set_title(title or f"{problem.label}: {schedule.solver} ({schedule.status}), makespan "
                          f"{schedule.makespan * factor:.4g} {unit}{gap}; {len(crossing)} transfers", fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, color=colour[o]) for o in ops[:20]]
    ax.legend(handles, ops[:20], fontsize=6, ncol=min(10, len(handles)), loc="upper center",
              bbox_to_anchor=(0.5, -0.25), frameon=False)
    return _save(fig, path)


def gap_chart(labels: Sequence[str], gaps: Sequence[float], path: str, *, title: str = "gap to lower bound") -> str:
    """Bar chart of each solver's gap (fraction) to the lower bound."""
    fig = Figure(figsize=(max(4, 0.8 * len(labels) + 2), 3))
    ax = fig.subplots()
    bars = ax.bar(range(len(labels)), [g * 100 for g in gaps], color="steelblue")
    ax.bar_label(bars, [f"{g:.1%}" for g in gaps], fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("gap (%)")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def time_chart(results: pd.DataFrame, path: str, *, title: str) -> str:
    """Solve time against graph size (log-log), one colour per solver (``results``: columns solver, tasks,
    solve_s)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for solver, grp in results.groupby("solver"):
        ax.scatter(grp["tasks"], grp["solve_s"].clip(lower=1e-5), label=solver, s=14)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks")
    ax.set_ylabel("solve time (s)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def ratio_chart(ratios: pd.DataFrame, path: str, *, title: str) -> str:
    """Grouped bars of makespan / lower bound (``ratios``: instances x solvers), a line at 1."""
    fig = Figure(figsize=(max(6, 0.6 * len(ratios) * max(1, len(ratios.columns)) / 2), 4))
    ax = fig.subplots()
    ratios.plot(kind="bar", ax=ax)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("makespan / lower bound")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def series_chart(table: pd.DataFrame, x: str, columns: Sequence[str], path: str, *, title: str,
                 xlabel: str, ylabel: str) -> str:
    """Lines of ``columns`` against ``x`` (e.g. a timing's medians over the seconds of a run)."""
    fig = Figure(figsize=(9, 3.5))
    ax = fig.subplots()
    for column in columns:
        ax.plot(table[x], table[column], marker=".", linewidth=0.8, label=column)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
