"""Brute-force optimum for tiny problems: every placement x every topological order, simulated.

Sorting any valid schedule by start time and re-simulating never delays it, so the
minimum over (placement, topological order) is the true optimum.
"""

from __future__ import annotations

import itertools

import networkx as nx

from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import simulate


def feasible_placement(problem: Problem, placement: dict[str, str]) -> bool:
    """Memory and co-location hold for ``placement``."""
    used: dict[str, int] = {}
    for t, d in placement.items():
        used[d] = used.get(d, 0) + problem.memory(t)
    for d, total in used.items():
        cap = problem.platform.device[d].memory_bytes
        if cap is not None and total > cap:
            return False
    return all(len({placement[m] for m in members}) == 1 for members in problem.groups.values())


def brute_force(problem: Problem) -> Schedule | None:
    """The optimal schedule (None when no placement is feasible)."""
    orders = list(nx.all_topological_sorts(problem.graph.nx))
    best: Schedule | None = None
    for combo in itertools.product(*(problem.allowed(t) for t in problem.tasks)):
        placement = dict(zip(problem.tasks, combo))
        if not feasible_placement(problem, placement):
            continue
        for order in orders:
            s = simulate(problem, placement, order)
            if best is None or s.makespan < best.makespan - 1e-15:
                best = s
    return best
