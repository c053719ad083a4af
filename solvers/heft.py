"""``heft``: Heterogeneous Earliest Finish Time (Topcuoglu et al., 2002).

Tasks in decreasing upward rank (mean cost plus the longest mean-cost path to an
exit, mean transfers included); each goes to the device that gives it the earliest
finish, allowed to fill an idle gap on that device's resources (insertion policy).
``transfer_mean="all"`` averages transfers as saga does (:data:`TransferMean`).
"""

from __future__ import annotations

import itertools
import time
from statistics import fmean
from typing import Literal

from scheduler.graph import Edge
from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import Timeline

from .common import Feasibility, earliest_finish, certify_placement, no_solution


TransferMean = Literal["pairs", "all"]
"""How ranks average a transfer: over the ordered pairs of distinct devices (Topcuoglu et al.), or over
all pairs, a device to itself costing 0 (saga's HEFT and CPoP): the same ranks times (n-1)/n."""


def mean_transfer(problem: Problem, edge: Edge, transfer_mean: TransferMean = "pairs") -> float:
    """The mean transfer time of ``edge`` over device pairs, as ``transfer_mean`` says."""
    n = len(problem.devices)
    if n < 2:
        return 0.0
    pairs = fmean(problem.transfer(edge, a, b) for a, b in itertools.permutations(problem.devices, 2))
    return pairs if transfer_mean == "pairs" else pairs * (n - 1) / n


def upward_rank(problem: Problem, transfer_mean: TransferMean = "pairs") -> dict[str, float]:
    """Mean cost plus the longest mean-cost path (with mean transfers) to an exit task."""
    rank: dict[str, float] = {}
    for t in reversed(problem.graph.topological_order):
        tail = max((mean_transfer(problem, e, transfer_mean) + rank[e.dst] for e in problem.succs[t]), default=0.0)
        rank[t] = fmean(problem.costs[t].values()) + tail
    return rank


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0,
          transfer_mean: TransferMean = "pairs") -> Schedule:
    """HEFT with the insertion policy, under memory and co-location limits."""
    started = time.perf_counter()
    rank = upward_rank(problem, transfer_mean)
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    order = sorted(problem.tasks, key=lambda t: (-rank[t], topo[t]))
    timeline, feas = Timeline(problem), Feasibility(problem)
    for t in order:
        cands = feas.candidates(t)
        if not cands:
            return no_solution(problem, solver="heft", started=started,
                               reason=f"no device left for task {t!r} within memory and co-location limits")
        device, start = earliest_finish(problem, timeline, t, cands, insertion=True)
        timeline.place(t, device, start)
        feas.commit(t, device)
    placed = timeline.schedule()
    return certify_placement(problem, placed.placement, placed.order(problem), solver="heft", started=started)
