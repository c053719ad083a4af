"""``greedy``: topological order, each task on the device where it finishes earliest.

The classic list-scheduling baseline: it looks one task ahead and never revisits a
choice.  Ties go to the cheaper device, then to platform order.
"""

from __future__ import annotations

import time

from scheduler.problem import Problem
from scheduler.schedule import Schedule, Timeline

from .common import Feasibility, finish, no_solution


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0) -> Schedule:
    """Earliest-finish-time placement in the graph's topological order."""
    started = time.perf_counter()
    timeline, feas = Timeline(problem), Feasibility(problem)
    order = problem.graph.topological_order
    for t in order:
        cands = feas.candidates(t)
        if not cands:
            return no_solution(problem, solver="greedy", started=started,
                               reason=f"no device left for task {t!r} within memory and co-location limits")
        device = min(cands, key=lambda d: (timeline.earliest_start(t, d) + problem.costs[t][d], problem.costs[t][d]))
        timeline.place(t, device)
        feas.commit(t, device)
    return finish(problem, timeline.device_of, order, solver="greedy", started=started)
