"""``dp-chain``: the PIM partitioning paper's dynamic programme over a linearised graph.

Tasks are taken in topological order; the programme keeps, for each device, the
cheapest placement of the tasks so far that puts the current task there, where a
placement costs the sum of its task costs plus the transfer from every
data-dependent predecessor (assembly-line scheduling).  Under sequential
execution (every device shares one resource) that sum is the makespan, so on a
chain the result is optimal, and the solver says so; on any other graph or
platform the placement is a heuristic and is re-simulated under the common
semantics.  Memory and co-location are enforced along each kept placement.
"""

from __future__ import annotations

import math
import time

import numpy as np

from scheduler.bounds import Bound
from scheduler.problem import Problem
from scheduler.schedule import Schedule

from .common import certify_placement, no_solution


def is_sequential_chain(problem: Problem) -> bool:
    """Whether the DP is exact: one chain of tasks, all devices on one common resource, no memory or co-location."""
    g = problem.graph.nx
    order = problem.graph.topological_order
    chain = all(g.has_edge(a, b) for a, b in zip(order, order[1:])) and g.number_of_edges() == len(order) - 1
    common = set.intersection(*(set(d.resources) for d in problem.platform.devices))
    unlimited = all(d.memory_bytes is None for d in problem.platform.devices)
    return chain and bool(common) and unlimited and not problem.groups


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0) -> Schedule:
    """Minimum sum of task costs and transfers over placements, by DP in topological order."""
    started = time.perf_counter()
    order = problem.graph.topological_order
    devs = problem.devices
    n, k = len(order), len(devs)
    pos = {t: i for i, t in enumerate(order)}
    cap = [problem.platform.device[d].memory_bytes for d in devs]
    first_of_group = {}
    for t in order:
        g = problem.colocate.get(t)
        if g is not None:
            first_of_group.setdefault(g, t)

    value = [0.0] + [math.inf] * (k - 1) if n else []  # a virtual start state
    place = np.full((k, n), -1, dtype=np.int32)
    used = np.zeros((k, k), dtype=np.int64)
    first = True
    for i, t in enumerate(order):
        new_value = [math.inf] * k
        new_place = np.full((k, n), -1, dtype=np.int32)
        new_used = np.zeros((k, k), dtype=np.int64)
        group = problem.colocate.get(t)
        anchor = first_of_group.get(group) if group is not None else None
        members = problem.groups[group] if group is not None else (t,)
        # the first member of a group reserves the whole group's memory on a device all members may use
        mem = sum(problem.memory(m) for m in members) if anchor in (None, t) else 0
        for j, d in enumerate(devs):
            c = problem.costs[t].get(d)
            if c is None or (anchor == t and any(d not in problem.costs[m] for m in members)):
                continue
            best, arg = math.inf, -1
            for jp in (range(1) if first else range(k)):
                if value[jp] == math.inf:
                    continue
                path = place[jp]
                if anchor is not None and anchor != t and path[pos[anchor]] != j:
                    continue
                if cap[j] is not None and used[jp][j] + mem > cap[j]:
                    continue
                total = value[jp] + c
                for e in problem.preds[t]:
                    total += problem.transfer(e, devs[path[pos[e.src]]], d)
                if total < best:
                    best, arg = total, jp
            if arg >= 0:
                new_value[j] = best
                new_place[j] = place[arg]
                new_place[j][i] = j
                new_used[j] = used[arg]
                new_used[j][j] += mem
        value, place, used, first = new_value, new_place, new_used, False
        if all(v == math.inf for v in value):
            return no_solution(problem, solver="dp-chain", started=started,
                               reason=f"no placement of task {t!r} keeps memory and co-location limits")
    best_j = min(range(k), key=value.__getitem__)
    placement = {t: devs[place[best_j][i]] for i, t in enumerate(order)}
    exact = is_sequential_chain(problem)
    return certify_placement(problem, placement, order, solver="dp-chain", started=started,
                             status="optimal" if exact else "heuristic",
                             info={"dp_value": value[best_j], "exact_case": exact},
                             extra_bounds=(Bound("dp-chain-exact", value[best_j]),) if exact else ())
