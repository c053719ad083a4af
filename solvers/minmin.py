"""``minmin``: the batch-mode list heuristics MinMin, MaxMin and Sufferage (Braun et al., 2001).

At each step every ready task (all its predecessors placed) gets its earliest
finish over the devices it may use (insertion policy); the rule picks which task
goes next to its best device:

* ``min`` (MinMin): the task that can finish first: short tasks early;
* ``max`` (MaxMin): the task whose best finish is latest: long tasks early;
* ``sufferage``: the task that loses most if denied its best device (second-best
  finish minus best).

They win where a graph is wide and ranks say little (in-trees, pipelines of many
small stages: saga's MinMin and Sufferage beat HEFT there).  Memory and
co-location limits as in every list heuristic.  O(n^2 d) finish evaluations.
"""

from __future__ import annotations

import time
from typing import Literal

from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import Timeline

from .common import Feasibility, certify_placement, no_solution

NAME = "minmin"
Rule = Literal["min", "max", "sufferage"]


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0, rule: Rule = "min") -> Schedule:
    """Batch-mode list scheduling: repeatedly place the ready task the rule picks on its earliest-finish device."""
    started = time.perf_counter()
    name = NAME if rule == "min" else f"{NAME}:{rule}"
    plat = problem.platform
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    waiting = {t: len(problem.preds[t]) for t in problem.tasks}
    timeline, feas = Timeline(problem), Feasibility(problem)
    finishes: dict[str, dict[str, tuple[float, float, float]]] = {}  # ready task -> device -> (finish, cost, start)

    def evaluate(t: str, devices: tuple[str, ...] | list[str]) -> None:
        for d in devices:
            begin = timeline.earliest_start(t, d, insertion=True)
            finishes[t][d] = (begin + problem.costs[t][d], problem.costs[t][d], begin)

    def add_ready(t: str) -> None:
        finishes[t] = {}
        evaluate(t, problem.allowed(t))

    for t in problem.tasks:
        if not waiting[t]:
            add_ready(t)
    while finishes:
        best: dict[str, list[tuple[float, float, float, str]]] = {}
        for t, row in finishes.items():
            cands = feas.candidates(t)
            if not cands:
                return no_solution(problem, solver=name, started=started,
                                   reason=f"no device left for task {t!r} within memory and co-location limits")
            best[t] = sorted(row[d] + (d,) for d in cands)[:2]
        if rule == "min":
            t = min(best, key=lambda t: (best[t][0][:2], topo[t]))
        elif rule == "max":
            t = min(best, key=lambda t: (-best[t][0][0], best[t][0][1], topo[t]))
        else:
            t = min(best, key=lambda t: (-(best[t][1][0] - best[t][0][0] if len(best[t]) > 1 else 0.0),
                                         best[t][0][0], topo[t]))
        _, _, begin, device = best[t][0]
        timeline.place(t, device, begin)
        feas.commit(t, device)
        del finishes[t]
        touched = [d for d in plat.device if plat.shares_resource(d, device)]  # the device itself included
        for other in finishes:  # only devices on the placed task's resources have a new timeline
            evaluate(other, [d for d in touched if d in finishes[other]])
        for e in problem.succs[t]:
            waiting[e.dst] -= 1
            if not waiting[e.dst]:
                add_ready(e.dst)
    placed = timeline.schedule()
    return certify_placement(problem, placed.placement, placed.order(problem), solver=name, started=started)
