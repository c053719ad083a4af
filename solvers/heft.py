"""``heft``: Heterogeneous Earliest Finish Time (Topcuoglu et al., 2002).

Tasks in decreasing upward rank (mean cost plus the longest mean-cost path to an
exit, mean transfers included); each goes to the device that gives it the earliest
finish, allowed to fill an idle gap on that device's resources (insertion policy).
"""

from __future__ import annotations

import itertools
import time
from statistics import fmean

from scheduler.problem import Problem
from scheduler.schedule import Schedule, Timeline

from .common import Feasibility, finish, no_solution


def upward_rank(problem: Problem) -> dict[str, float]:
    """Mean cost plus the longest mean-cost path (with mean transfers) to an exit task."""
    pairs = list(itertools.permutations(problem.devices, 2))
    rank: dict[str, float] = {}
    for t in reversed(problem.graph.topological_order):
        tail = 0.0
        for e in problem.succs[t]:
            comm = fmean(problem.transfer(e, a, b) for a, b in pairs) if pairs else 0.0
            tail = max(tail, comm + rank[e.dst])
        rank[t] = fmean(problem.costs[t].values()) + tail
    return rank


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0) -> Schedule:
    """HEFT with the insertion policy, under memory and co-location limits."""
    started = time.perf_counter()
    rank = upward_rank(problem)
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    order = sorted(problem.tasks, key=lambda t: (-rank[t], topo[t]))
    timeline, feas = Timeline(problem), Feasibility(problem)
    for t in order:
        cands = feas.candidates(t)
        if not cands:
            return no_solution(problem, solver="heft", started=started,
                               reason=f"no device left for task {t!r} within memory and co-location limits")
        starts = {d: timeline.earliest_start(t, d, insertion=True) for d in cands}
        device = min(cands, key=lambda d: (starts[d] + problem.costs[t][d], problem.costs[t][d]))
        timeline.place(t, device, starts[device])
        feas.commit(t, device)
    placed = timeline.schedule()
    return finish(problem, placed.placement, placed.order(problem), solver="heft", started=started)
