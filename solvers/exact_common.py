"""What the exact models (``milp``, ``cpsat``) are built from: instance data, output moves, the period's
bound, warm starts.  The steps of a solve and the honest answer: :mod:`solvers.exact_solve`.

Throughput (``objective="throughput"``): the period of a placement is the largest
busy time of any resource per inference (:func:`scheduler.semantics.resource_loads`):
the cost of every task on a device that holds the resource, plus what moving
outputs costs the device: each task's output moves once to each other device that
reads it, charged to the sender and the receiver by their ``transfer_load``
(:meth:`scheduler.problem.Problem.transfer_load`; the models enumerate these moves
with :func:`output_moves`).  With ``replicas=B`` the graph is copied B times, each
copy placed on its own, all copies share the resources (and the memory) and
throughput = B / period.

Example
-------
>>> from scheduler.generate import random_problem
>>> p = random_problem(4, seed=1)
>>> from scheduler.semantics import period
>>> period(p, {t: "cpu0" for t in p.tasks}) == sum(p.costs[t]["cpu0"] for t in p.tasks)
True
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence, TypeVar

from scheduler.bounds import period_bounds
from scheduler.deadline import check_time
from scheduler.errors import SolverError
from scheduler.graph import Edge
from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import replicated_period

from . import greedy, heft, single

V = TypeVar("V")




# ----------------------------------------------------------------------------- throughput

def period_lower_bound(problem: Problem, replicas: int = 1) -> float:
    """Sound bound on the period (the combinatorial ones of :func:`scheduler.bounds.period_bounds`)."""
    return max(b.value for b in period_bounds(problem, replicas, lp=False))


# ----------------------------------------------------------------------------- instance data

@dataclass(frozen=True)
class ExactData:
    """What both exact models need, computed once per solve.

    ``allowed`` already intersects the devices of co-location groups (a member may
    only go where every member may go); ``leader`` maps each task to its group's
    first member (itself when ungrouped).  ``transfers[i]`` gives edge i's delay for
    every allowed device pair with different devices.  ``pairs`` lists the task
    pairs (in topological order) with no path between them that could hold a
    common resource (with positive cost: a zero-cost run holds none), with those
    resources.
    """

    order: tuple[str, ...]
    index: Mapping[str, int]
    allowed: Mapping[str, tuple[str, ...]]
    leader: Mapping[str, str]
    sinks: tuple[str, ...]
    edges: tuple[Edge, ...]
    transfers: tuple[Mapping[tuple[str, str], float], ...]
    pairs: tuple[tuple[str, str, tuple[str, ...]], ...]
    resources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def exact_data(problem: Problem, *, with_pairs: bool = True, deadline: float | None = None) -> ExactData:
    """Build :class:`ExactData` (``with_pairs=False`` skips the quadratic pair scan, which raises
    :class:`~scheduler.deadline.OutOfTime` past ``deadline``; :func:`with_pairs_of` adds it later)."""
    order = problem.graph.topological_order
    index = {t: i for i, t in enumerate(order)}
    allowed: dict[str, tuple[str, ...]] = {}
    leader: dict[str, str] = {}
    for t in problem.tasks:
        group = problem.colocate.get(t)
        members = problem.groups[group] if group is not None else (t,)
        allowed[t] = tuple(d for d in problem.devices if all(d in problem.costs[m] for m in members))
        leader[t] = members[0]
    resources = {d.name: tuple(d.resources) for d in problem.platform.devices}
    edges = tuple(problem.graph.edges)
    transfers = tuple({(a, b): problem.transfer(e, a, b) for a in allowed[e.src] for b in allowed[e.dst] if a != b}
                      for e in edges)
    sinks = tuple(t for t in order if not problem.succs[t])
    data = ExactData(order, index, allowed, leader, sinks, edges, transfers, (), resources)
    return with_pairs_of(problem, data, deadline) if with_pairs else data


def with_pairs_of(problem: Problem, data: ExactData, deadline: float | None = None) -> ExactData:
    """``data`` with its disjunctive pairs: tasks with no path between them that could hold a common
    resource.  Quadratic in the tasks: raises :class:`~scheduler.deadline.OutOfTime` past ``deadline``."""
    order, index, resources = data.order, data.index, data.resources
    reach: dict[str, int] = {}
    for t in reversed(order):
        bits = 0
        for e in problem.succs[t]:
            bits |= (1 << index[e.dst]) | reach[e.dst]
        reach[t] = bits
    # a zero-cost run holds no resource (the simulator's and validator's semantics)
    usable = {t: {r for d in data.allowed[t] if problem.costs[t][d] > 0 for r in resources[d]} for t in order}
    pairs: list[tuple[str, str, tuple[str, ...]]] = []
    for i, a in enumerate(order):
        check_time(deadline)
        for b in order[i + 1:]:
            if (reach[a] >> index[b]) & 1:
                continue  # a path a -> b orders them already
            common = usable[a] & usable[b]
            if common:
                pairs.append((a, b, tuple(r for r in problem.platform.resources if r in common)))
    return replace(data, pairs=tuple(pairs))


def _fits(capacity: int | None, used: int, need: int) -> bool:
    return capacity is None or used + need <= capacity


def makespan(schedule: Schedule) -> float:
    """The makespan of a schedule that holds a placement."""
    if schedule.makespan is None:
        raise SolverError(f"schedule of {schedule.solver!r} has no makespan")
    return schedule.makespan


@dataclass(frozen=True)
class OutputMove:
    """``task``'s output moving from device ``src`` to ``dst`` in a pipeline: the readers that may sit on ``dst``
    and the busy seconds the move costs each end (``once``: the sender pays only its largest such move)."""

    task: str
    src: str
    dst: str
    readers: tuple[str, ...]
    send: float
    receive: float
    once: bool


def output_moves(problem: Problem, data: ExactData) -> tuple[OutputMove, ...]:
    """Every move an exact throughput model must charge: per task, allowed device and other device where one
    of its readers (outside its co-location group) may run, when the move costs either end something."""
    out = []
    for u in data.order:
        readers = [e.dst for e in problem.succs[u] if data.leader[e.dst] != data.leader[u]]
        for a in data.allowed[u]:
            once = problem.platform.device[a].transfer_load == "staged"
            for b in problem.devices:
                there = tuple(v for v in readers if b != a and b in data.allowed[v])
                if there:
                    send, receive = problem.transfer_load(u, a, b)
                    if send > 0 or receive > 0:
                        out.append(OutputMove(u, a, b, there, send, receive, once))
    return tuple(out)


def choice_vars(problem: Problem, order: Sequence[str], allowed: Mapping[str, Sequence[str]], copy: int,
                new_var: Callable[[str, str], V],
                exactly_one: Callable[[str, list[V]], None]) -> dict[tuple[int, str, str], V]:
    """One 0/1 variable per allowed (task, device) of a copy, for the tasks of ``order``, shared inside
    co-location groups (the exact models, and a window of ``lns`` / ``split``).

    ``new_var(task, device)`` makes a variable; ``exactly_one(task, vars)`` adds the
    one-device constraint (once per group: its members share the first member's variables).
    """
    out: dict[tuple[int, str, str], V] = {}
    shared: dict[str, dict[str, V]] = {}
    for t in order:
        group = problem.colocate.get(t)
        if group is not None and group in shared:
            out.update({(copy, t, d): shared[group][d] for d in allowed[t]})
            continue
        for d in allowed[t]:
            out[copy, t, d] = new_var(t, d)
        if group is not None:
            shared[group] = {d: out[copy, t, d] for d in allowed[t]}
        exactly_one(t, [out[copy, t, d] for d in allowed[t]])
    return out


def infeasibility_reason(problem: Problem, data: ExactData) -> str | None:
    """A one-line proof that no placement exists (a task or group fits in no allowed device), or None."""
    return problem.infeasibility()

def trivial_upper_bound(problem: Problem, data: ExactData) -> float:
    """A makespan every feasible placement achieves run one task at a time: all dearest costs and transfers."""
    return (sum(max(problem.costs[t][d] for d in data.allowed[t]) for t in problem.tasks)
            + sum(max(tr.values(), default=0.0) for tr in data.transfers))


def order_from_starts(problem: Problem, starts: Mapping[str, float]) -> tuple[str, ...]:
    """A topological order that follows ``starts`` (ties by topological index).

    Solver start times carry tolerances (a successor may appear 1e-12 s before a
    zero-cost predecessor); taking ready tasks by start keeps the order valid anyway.
    """
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    indeg = {t: len(problem.preds[t]) for t in problem.tasks}
    heap = [(starts[t], topo[t], t) for t in problem.tasks if indeg[t] == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        _, _, t = heapq.heappop(heap)
        out.append(t)
        for e in problem.succs[t]:
            indeg[e.dst] -= 1
            if indeg[e.dst] == 0:
                heapq.heappush(heap, (starts[e.dst], topo[e.dst], e.dst))
    return tuple(out)


def placement_errors(problem: Problem, placements: Sequence[Mapping[str, str]]) -> list[str]:
    """Why ``placements`` (one per copy, memory shared) break op support, memory or co-location ([] = fine)."""
    errs: list[str] = []
    used: dict[str, int] = {}
    for placement in placements:
        for t in problem.tasks:
            d = placement.get(t)
            if d is None or d not in problem.costs[t]:
                errs.append(f"task {t!r} is on {d!r}, which may not run it")
                continue
            used[d] = used.get(d, 0) + problem.memory(t)
        for g, members in problem.groups.items():
            if len({placement.get(m) for m in members}) > 1:
                errs.append(f"co-location group {g!r} is split")
    for d, total in used.items():
        cap = problem.platform.device[d].memory_bytes
        if cap is not None and total > cap:
            errs.append(f"device {d!r} holds {total} bytes, over its capacity of {cap}")
    return errs


# ----------------------------------------------------------------------------- warm starts

def latency_hint(problem: Problem, deadline: float | None = None) -> Schedule | None:
    """The best of HEFT, greedy and the best single device (None when all fail on memory / co-location).

    The single device matters: where transfers are dear, earliest-finish heuristics
    spread work that one device would finish sooner.  Once one has found a schedule, no further
    heuristic is started that would run past ``deadline`` (a ``time.perf_counter()`` value), each
    expected to take as long as the one before.
    """
    found: list[Schedule] = []
    last = 0.0
    for solver in (heft, greedy, single):
        # each costs about as much as the one before: start it only while that much time is left
        if found and deadline is not None and time.perf_counter() + last > deadline:
            break
        began = time.perf_counter()
        s = solver.solve(problem)
        last = time.perf_counter() - began
        if s.found:
            found.append(s)
    return min(found, key=makespan) if found else None


def throughput_hint(problem: Problem, data: ExactData, replicas: int,
                    latency: Schedule | None) -> tuple[dict[str, str], ...] | None:
    """Placements (one per copy) with a small period: the best of HEFT's, ``dp-pipeline``'s (copied to every
    copy) and a load-balancing greedy."""
    from . import dp_pipeline  # it builds on this module

    candidates: list[tuple[dict[str, str], ...]] = []
    split = dp_pipeline.solve(problem)
    for s in (latency, split if split.found else None):
        if s is not None:
            copies = tuple(dict(s.placement) for _ in range(replicas))
            if not placement_errors(problem, copies):
                candidates.append(copies)
    devices = problem.platform.device
    used = {d: 0 for d in problem.devices}
    loads = {r: 0.0 for r in problem.platform.resources}
    greedy_copies: list[dict[str, str]] = []
    ok = True
    for _ in range(replicas):
        placement: dict[str, str] = {}
        group_device: dict[str, str] = {}
        for t in data.order:
            group = problem.colocate.get(t)
            if group is not None and group in group_device:
                cands: tuple[str, ...] = (group_device[group],)
                need = 0
            else:
                members = problem.groups[group] if group is not None else (t,)
                need = sum(problem.memory(m) for m in members)
                cands = tuple(d for d in data.allowed[t] if _fits(devices[d].memory_bytes, used[d], need))
            if not cands:
                ok = False
                break

            def charges(d: str, t: str = t) -> dict[str, float]:
                extra = dict.fromkeys(devices[d].resources, problem.costs[t][d])
                for e in problem.preds[t]:
                    a = placement[e.src]
                    if a != d:
                        for r in devices[a].resources:
                            extra[r] = extra.get(r, 0.0) + problem.transfer(e, a, d)
                return extra

            d = min(cands, key=lambda d: (max(loads[r] + v for r, v in charges(d).items()), problem.costs[t][d]))
            for r, v in charges(d).items():
                loads[r] += v
            placement[t] = d
            used[d] += need
            if group is not None:
                group_device[group] = d
        if not ok:
            break
        greedy_copies.append(placement)
    if ok and not placement_errors(problem, greedy_copies):
        candidates.append(tuple(greedy_copies))
    if not candidates:
        return None
    return min(candidates, key=lambda c: replicated_period(problem, c))
