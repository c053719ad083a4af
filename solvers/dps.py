"""``dps``: Dynamic Priority Scheduling, after saga's DPS.

A task's priority is its bottom level minus its top level (the longest path below
it, its own cost included, minus the longest path above it), so a task on the
current critical path scores highest and one with slack lower.  Unplaced tasks
count their mean cost and edges their mean transfer (as HEFT's ranks); once a task
is placed its levels use its device's cost, and an edge between two placed tasks
its real transfer.  The ready task of highest priority goes to the device where it
finishes earliest, appended after that device's last task (no insertion), and the
levels are computed again: ``O(n (n + e))``.  Past half the time limit (without
one: :data:`DEFAULT_SECONDS_PER_TASK` per task, at least 2 s) the priorities stop
changing and the rest go in the last order, so it ends in time on large graphs.
saga's DPS differs in two details: it counts an unplaced edge at its data size, and
a task's mean cost over every device.  saga's benchmark finds DPS best on a few
branching and in-tree graphs.

>>> from scheduler.generate import random_problem
>>> s = solve(random_problem(15, seed=1))
>>> s.solver, s.found
('dps', True)
"""

from __future__ import annotations

import time
from statistics import fmean

from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import Timeline

from .common import Feasibility, earliest_finish, certify_placement, no_solution
from .heft import mean_transfer

NAME = "dps"
DEFAULT_SECONDS_PER_TASK = 0.005  # without a time limit: the budget per task (at least 2 s); levels use half


def levels(problem: Problem, placed: dict[str, str], mean_cost: dict[str, float],
           mean_move: dict[tuple[str, str], float]) -> dict[str, float]:
    """Bottom level minus top level per task, placed tasks and edges at their real costs."""
    def cost(t: str) -> float:
        return problem.costs[t][placed[t]] if t in placed else mean_cost[t]

    def move(src: str, dst: str) -> float:
        if src in placed and dst in placed:
            return max(problem.transfer(e, placed[src], placed[dst]) for e in problem.succs[src] if e.dst == dst)
        return mean_move[src, dst]

    order = problem.graph.topological_order
    top: dict[str, float] = {}
    for t in order:
        top[t] = max((top[e.src] + cost(e.src) + move(e.src, t) for e in problem.preds[t]), default=0.0)
    bottom: dict[str, float] = {}
    for t in reversed(order):
        bottom[t] = cost(t) + max((move(t, e.dst) + bottom[e.dst] for e in problem.succs[t]), default=0.0)
    return {t: bottom[t] - top[t] for t in order}


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0) -> Schedule:
    """DPS under memory and co-location limits (see the module docstring)."""
    started = time.perf_counter()
    budget = time_limit if time_limit is not None else max(2.0, DEFAULT_SECONDS_PER_TASK * len(problem.tasks))
    deadline = started + budget / 2  # the rest: placing what is left, simulating and validating
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    mean_cost = {t: fmean(problem.costs[t].values()) for t in problem.tasks}
    mean_move = {(e.src, e.dst): mean_transfer(problem, e) for e in problem.graph.edges}
    waiting = {t: len(problem.preds[t]) for t in problem.tasks}
    ready = {t for t, n in waiting.items() if n == 0}
    timeline, feas = Timeline(problem), Feasibility(problem)
    placed: dict[str, str] = {}
    priority = levels(problem, placed, mean_cost, mean_move)
    while ready:
        t = max(ready, key=lambda u: (priority[u], -topo[u]))
        ready.discard(t)
        cands = feas.candidates(t)
        if not cands:
            return no_solution(problem, solver=NAME, started=started,
                               reason=f"no device left for task {t!r} within memory and co-location limits")
        device, start = earliest_finish(problem, timeline, t, cands, insertion=False)
        timeline.place(t, device, start)
        feas.commit(t, device)
        placed[t] = device
        for e in problem.succs[t]:
            waiting[e.dst] -= 1
            if not waiting[e.dst]:
                ready.add(e.dst)
        if time.perf_counter() < deadline:
            priority = levels(problem, placed, mean_cost, mean_move)
    done = timeline.schedule()
    return certify_placement(problem, done.placement, done.order(problem), solver=NAME, started=started)
