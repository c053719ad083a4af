"""``cpop``: Critical Path On a Processor (Topcuoglu et al., 2002), HEFT's sibling.

A task's priority is its upward rank plus its downward rank (mean costs and mean
transfers, as in HEFT), so the tasks of the critical path share the largest
priority.  The whole critical path goes to the one device that runs it fastest;
the other tasks are taken ready-first by priority and go where they finish
earliest (insertion policy).  It wins where one chain dominates (out-trees,
branching and parallel-chain graphs in saga's benchmark), HEFT where work is even.
Memory and co-location limits: a critical task that cannot go to the path's device
goes where it finishes earliest.  ``transfer_mean`` as for ``heft``.
"""

from __future__ import annotations

import heapq
import time
from statistics import fmean

from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import Timeline

from .common import Feasibility, earliest_finish, certify_placement, no_solution
from .heft import TransferMean, mean_transfer, upward_rank

NAME = "cpop"
CRITICAL_TOLERANCE = 1e-9
"""A task is critical when its priority is within this relative distance of the largest."""


def downward_rank(problem: Problem, transfer_mean: TransferMean = "pairs") -> dict[str, float]:
    """The longest mean-cost path (with mean transfers) from an entry task to the task, the task excluded."""
    rank: dict[str, float] = {}
    for t in problem.graph.topological_order:
        rank[t] = max((rank[e.src] + fmean(problem.costs[e.src].values()) + mean_transfer(problem, e, transfer_mean)
                       for e in problem.preds[t]), default=0.0)
    return rank


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0,
          transfer_mean: TransferMean = "pairs") -> Schedule:
    """CPoP with the insertion policy, under memory and co-location limits."""
    started = time.perf_counter()
    up, down = upward_rank(problem, transfer_mean), downward_rank(problem, transfer_mean)
    priority = {t: up[t] + down[t] for t in problem.tasks}
    top = max(priority.values(), default=0.0)
    critical = {t for t, p in priority.items() if p >= top * (1 - CRITICAL_TOLERANCE)}
    able = [d for d in problem.devices if all(d in problem.costs[t] for t in critical)]
    path_device = min(able, key=lambda d: sum(problem.costs[t][d] for t in critical)) if able else None
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    waiting = {t: len(problem.preds[t]) for t in problem.tasks}
    ready = [(-priority[t], topo[t], t) for t in problem.tasks if not waiting[t]]
    heapq.heapify(ready)
    timeline, feas = Timeline(problem), Feasibility(problem)
    while ready:
        _, _, t = heapq.heappop(ready)
        cands = feas.candidates(t)
        if not cands:
            return no_solution(problem, solver=NAME, started=started,
                               reason=f"no device left for task {t!r} within memory and co-location limits")
        if t in critical and path_device in cands:
            device = path_device
            start = timeline.earliest_start(t, device, insertion=True)
        else:
            device, start = earliest_finish(problem, timeline, t, cands, insertion=True)
        timeline.place(t, device, start)
        feas.commit(t, device)
        for e in problem.succs[t]:
            waiting[e.dst] -= 1
            if not waiting[e.dst]:
                heapq.heappush(ready, (-priority[e.dst], topo[e.dst], e.dst))
    placed = timeline.schedule()
    return certify_placement(problem, placed.placement, placed.order(problem), solver=NAME, started=started)
