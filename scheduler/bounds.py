"""Sound lower bounds on the optimal makespan of a problem.

Each bound is provably <= the makespan of every valid schedule:

* ``critical-path``: the longest path with every task at its cheapest allowed
  device and every transfer free;
* ``resource-load``: total resource-time divided by the number of resources,
  with each task at the device that uses the least resource-time (a task on a
  device with k resources occupies k of them);
* ``path-segments``: the cheapest way to run one long path of the graph
  (:func:`path_segments_bound`): its tasks run one after another, every run of
  them on one device must fit that device's memory, and each change of device
  pays the edge's transfer.  Where memory forces a model across several
  accelerators this counts the crossings the critical path ignores;
* ``lp-load``: a linear programme with fractional placement ``x[t, d]``
  minimising ``T`` with every resource's load ``<= T``;
* ``lp-path-load``: the same fractional placement must also carry every path:
  ``f[v] >= f[u] + cost(v, x) + m_e * y_e`` for each edge, where ``y_e`` is at
  least the fraction of ``u`` on a device that ``v`` is not on and ``m_e`` the
  cheapest transfer of the edge between two different devices; ``T >= f[t]`` and
  ``T >=`` every resource load.  Any schedule gives a feasible point with
  ``T`` = its makespan, so the LP optimum is a lower bound, and because one
  placement must serve paths, loads and transfers together it dominates the
  classic bounds above.

The LPs are solved in well-conditioned units (the best classic bound maps to
:data:`LP_UNITS`), since CBC's tolerances are absolute: costs of microseconds in
seconds would sit below them.  Memory rows are divided by the capacity.  The
optimum is then lowered by :data:`LP_SLACK` units and :data:`LP_SAFETY` relative
before it is reported, so it can only err low.

Example
-------
>>> from scheduler.zoo import build
>>> from scheduler.graph import task_graph_from_onnx
>>> from scheduler.platform import load_platform
>>> from scheduler.problem import Problem
>>> p = Problem.from_graph(task_graph_from_onnx(build("mlp", layers=2)), load_platform("default"))
>>> best_bound(p).value > 0
True
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from itertools import permutations

import numpy as np
import pulp

from .chain import longest_path, split_chain
from .deadline import OutOfTime, check_time, deadline_after
from .problem import Problem


LP_UNITS = 1000.0  # the best classic bound in LP units
LP_SLACK = 1e-4  # LP units taken off an LP optimum (CBC's absolute tolerances are ~1e-7)
LP_SAFETY = 1e-6  # relative margin taken off LP optima (solver tolerances)
MIN_LP_SECONDS = 0.2  # an LP is not started with less time than this left
PATH_SAFETY = 1e-9  # relative margin taken off the path DP (its prefix sums round)
PATH_MEMORY_WEIGHTS = (0.0, 1.0, 4.0, 16.0, 64.0)  # memory's weight in the paths tried (0: the critical path)


@dataclass(frozen=True)
class Bound:
    """A lower bound on the optimal makespan, with the name of the argument behind it."""

    name: str
    value: float


def critical_path_bound(problem: Problem) -> Bound:
    """Longest path with cheapest costs and zero transfers."""
    finish: dict[str, float] = {}
    for t in problem.graph.topological_order:
        start = max((finish[e.src] for e in problem.preds[t]), default=0.0)
        finish[t] = start + min(problem.costs[t].values())
    return Bound("critical-path", max(finish.values(), default=0.0))


def resource_load_bound(problem: Problem) -> Bound:
    """Least total resource-time over the number of resources."""
    devices = problem.platform.device
    total = sum(min(c * len(devices[d].resources) for d, c in problem.costs[t].items()) for t in problem.tasks)
    return Bound("resource-load", total / len(problem.platform.resources))


def classic_bounds(problem: Problem) -> tuple[Bound, ...]:
    """The textbook combinatorial bounds (no LP)."""
    return (critical_path_bound(problem), resource_load_bound(problem))


def _segment_memory(problem: Problem, path: list[str]) -> np.ndarray:
    """Bytes each path task brings to its device: its own, plus at the first path task of a co-location
    group the members off the path (they sit on the same device), so no task is counted twice."""
    on_path, seen, out = set(path), set(), []
    for t in path:
        group = problem.colocate.get(t)
        extra = 0
        if group is not None and group not in seen:
            seen.add(group)
            extra = sum(problem.memory(m) for m in problem.groups[group] if m not in on_path)
        out.append(problem.memory(t) + extra)
    return np.asarray(out, dtype=float)


def _path_dp(problem: Problem, path: list[str], moves: dict[tuple[str, str], np.ndarray]) -> float:
    """The least time to run ``path`` as consecutive segments, each on one device
    (:func:`scheduler.chain.split_chain`; ``inf`` when no device sequence fits).  A segment
    follows one on another device, paying that edge's transfer, or on the same
    device when it has no memory limit (one longer segment).  ``moves`` caches each
    edge's transfer matrix across the paths tried.
    """
    devs = problem.devices
    cap = np.array([problem.platform.device[d].memory_bytes or np.inf for d in devs], dtype=float)
    cost = np.array([[problem.costs[t].get(d, np.inf) for d in devs] for t in path], dtype=float)
    stay = np.where(np.isfinite(cap), np.inf, 0.0)  # a capped device's segments are maximal runs

    def boundary(j: int) -> np.ndarray:
        pair = (path[j - 1], path[j])
        if pair not in moves:
            edges = [e for e in problem.succs[pair[0]] if e.dst == pair[1]]
            moves[pair] = np.array([[max(problem.transfer(e, a, b) for e in edges) for b in devs] for a in devs])
            np.fill_diagonal(moves[pair], stay)
        return moves[pair]

    return split_chain(cost, _segment_memory(problem, path), cap, boundary)[0]


def path_segments_bound(problem: Problem) -> Bound:
    """The cheapest run of a long path, segment by segment, over a few paths.

    In any schedule a path's tasks run one after another, each at least the
    edge's transfer after its predecessor when the two are on different devices.
    Cut the path where its device changes: every segment sits on one device, so
    its tasks (with their co-located tasks off the path) fit that device's memory.
    The cheapest such sequence of segments (:func:`_path_dp`) is at most the
    makespan, for any path; this tries the critical path and the longest paths
    by cost plus memory (:data:`PATH_MEMORY_WEIGHTS`), and keeps the largest.  It
    is at least the critical path, and up to 8x more on the published latency
    graphs, where memory forces a model across 4-14 accelerators.

    >>> from scheduler.generate import random_problem
    >>> p = random_problem(12, seed=1)
    >>> path_segments_bound(p).value >= critical_path_bound(p).value
    True
    """
    cheapest = {t: min(problem.costs[t].values()) for t in problem.tasks}
    caps = [d.memory_bytes for d in problem.platform.devices if d.memory_bytes]
    grouped = {t: sum(problem.memory(m) for m in problem.groups[problem.colocate[t]]) if t in problem.colocate
               else problem.memory(t) for t in problem.tasks}
    unit = sum(cheapest.values()) / len(problem.tasks) / min(caps) if caps and any(grouped.values()) else 0.0
    paths = dict.fromkeys(tuple(longest_path(problem, {t: cheapest[t] + w * unit * grouped[t] for t in problem.tasks}))
                          for w in (PATH_MEMORY_WEIGHTS if unit > 0 else (0.0,)))
    moves: dict[tuple[str, str], np.ndarray] = {}
    value = max((_path_dp(problem, list(p), moves) for p in paths), default=0.0)
    return Bound("path-segments", value * (1 - PATH_SAFETY) if np.isfinite(value) else 0.0)


def cheap_bounds(problem: Problem) -> tuple[Bound, ...]:
    """The bounds that need no LP: the classic ones and :func:`path_segments_bound` (a DP over a few paths:
    up to a few tenths of a second on 800 tasks and 16 devices, so a solver computes it once, not per
    heuristic schedule as :func:`best_bound`)."""
    return classic_bounds(problem) + (path_segments_bound(problem),)


def _lp_scale(problem: Problem) -> float:
    """LP units per second: the best classic bound becomes :data:`LP_UNITS` (1 when it is 0)."""
    ref = max(b.value for b in classic_bounds(problem))
    return LP_UNITS / ref if ref > 0 else 1.0


def _lp_value(prob: pulp.LpProblem, deadline: float | None, scale: float) -> float | None:
    """The proven optimum of an LP in seconds (its model is in ``scale`` units per second), lowered to stay
    sound, or None when the solver did not prove it by ``deadline``."""
    left = None if deadline is None else deadline - time.perf_counter()
    if left is not None and left < MIN_LP_SECONDS:
        return None
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="hetsched-lp-") as tmp:
        warnings.simplefilter("ignore", DeprecationWarning)  # PuLP 3.3 deprecates its bundled CBC for 4.0
        cmd = pulp.PULP_CBC_CMD(msg=False, timeLimit=left)
        cmd.tmpDir = tmp  # CBC's files go where an interrupt (Ctrl-C) still cleans them up
        prob.solve(cmd)
    if prob.sol_status != pulp.LpSolutionOptimal:
        return None
    # the LP solver works to absolute tolerances of about 1e-7: step below them so the bound stays sound
    return max(0.0, (float(pulp.value(prob.objective) or 0.0) - LP_SLACK) / scale * (1 - LP_SAFETY))


def _transfer_terms(problem: Problem, prob: pulp.LpProblem, x: dict[tuple[str, str], pulp.LpVariable],
                    scale: float, deadline: float | None) -> dict[str, list[pulp.LpAffineExpression]]:
    """Per resource, what moving outputs costs it per inference (:meth:`Problem.transfer_load`), fractionally.

    ``s[t, d] >= x[t, d] - x[v, d]`` for every reader ``v`` of ``t``: at least the share of ``t`` on ``d``
    whose output leaves ``d``, which then pays at least the cheapest send to another device; ``r[t, d] >=
    x[v, d] - x[t, d]``: at least the share of a reader on ``d`` while ``t`` is elsewhere, and ``d`` pays at
    least the cheapest receive.  A placement sets them to 0 or 1 exactly as it pays, so it stays feasible.
    """
    devices = problem.platform.device
    terms: dict[str, list[pulp.LpAffineExpression]] = {r: [] for r in problem.platform.resources}
    for i, t in enumerate(problem.tasks):
        check_time(deadline)
        readers = {e.dst for e in problem.succs[t]}
        for j, d in enumerate(problem.devices):
            away = [b for b in problem.devices if b != d and any(b in problem.costs[v] for v in readers)] \
                if (t, d) in x else []
            send = min((problem.transfer_load(t, d, b)[0] for b in away), default=0.0)
            if send > 0:
                s = prob.add_variable(f"s_{i}_{j}", 0, 1)
                for v in readers:
                    prob += s >= x[(t, d)] - (x[(v, d)] if (v, d) in x else 0)
                for r in devices[d].resources:
                    terms[r].append(send * scale * s)
            here = [v for v in readers if (v, d) in x]
            receive = min((problem.transfer_load(t, a, d)[1] for a in problem.allowed(t) if a != d), default=0.0)
            if here and receive > 0:
                got = prob.add_variable(f"r_{i}_{j}", 0, 1)
                for v in here:
                    prob += got >= x[(v, d)] - (x[(t, d)] if (t, d) in x else 0)
                for r in devices[d].resources:
                    terms[r].append(receive * scale * got)
    return terms


def _placement_lp(problem: Problem, name: str, scale: float, deadline: float | None, *, transfers: bool = False
                  ) -> tuple[pulp.LpProblem, dict[tuple[str, str], pulp.LpVariable], pulp.LpVariable]:
    """Fractional placement x[t, d] (rows sum to 1) and T >= every resource's load (costs in ``scale`` units
    per second; ``transfers``: with what moving outputs costs each device per inference, as a period
    counts it); minimise T.  Raises :class:`OutOfTime` past ``deadline``."""
    prob = pulp.LpProblem(name, pulp.LpMinimize)
    x = {(t, d): prob.add_variable(f"x_{i}_{j}", 0, 1)
         for i, t in enumerate(problem.tasks) for j, d in enumerate(problem.devices) if d in problem.costs[t]}
    horizon = prob.add_variable("T", 0)
    prob += horizon
    for t in problem.tasks:
        check_time(deadline)
        prob += pulp.lpSum(x[(t, d)] for d in problem.allowed(t)) == 1
    moves = _transfer_terms(problem, prob, x, scale, deadline) if transfers else {}
    for r in problem.platform.resources:
        check_time(deadline)
        terms = [problem.costs[t][d] * scale * v for (t, d), v in x.items()
                 if r in problem.platform.device[d].resources] + moves.get(r, [])
        if terms:
            prob += pulp.lpSum(terms) <= horizon
    for d in problem.devices:  # memory: every placement fits, so the fractional one does too
        cap = problem.platform.device[d].memory_bytes
        terms = [(problem.memory(t), v) for (t, dd), v in x.items() if dd == d and problem.memory(t)]
        if cap is not None and terms and cap > 0:  # in fractions of the capacity, for the LP's tolerances
            prob += pulp.lpSum(m / cap * v for m, v in terms) <= 1
        elif cap is not None and terms:
            prob += pulp.lpSum(v for _, v in terms) <= 0
    for group in problem.groups.values():  # co-located tasks share one (fractional) placement
        for a, b in zip(group, group[1:]):
            for d in problem.devices:
                if (a, d) in x and (b, d) in x:
                    prob += x[(a, d)] == x[(b, d)]
                elif (a, d) in x:
                    prob += x[(a, d)] == 0
                elif (b, d) in x:
                    prob += x[(b, d)] == 0
    return prob, x, horizon


def lp_load_bound(problem: Problem, time_limit: float | None = 30.0, *, transfers: bool = False) -> Bound | None:
    """Fractional placement minimising the largest resource load (None if the LP was not built and solved
    within ``time_limit`` seconds); ``transfers``: loads include moving outputs, as a period's do."""
    deadline = deadline_after(time_limit)
    scale = _lp_scale(problem)
    try:
        prob, _, _ = _placement_lp(problem, "lp_load", scale, deadline, transfers=transfers)
    except OutOfTime:
        return None
    value = _lp_value(prob, deadline, scale)
    return None if value is None else Bound("lp-load", value)


def lp_path_load_bound(problem: Problem, time_limit: float | None = 30.0) -> Bound | None:
    """Fractional placement that must carry every path (with transfers) and every resource load (None if
    the LP was not built and solved within ``time_limit`` seconds)."""
    deadline = deadline_after(time_limit)
    try:
        prob, scale = _path_load_lp(problem, deadline)
    except OutOfTime:
        return None
    value = _lp_value(prob, deadline, scale)
    return None if value is None else Bound("lp-path-load", value)


def _path_load_lp(problem: Problem, deadline: float | None) -> tuple[pulp.LpProblem, float]:
    """The lp-path-load model and its units per second."""
    scale = _lp_scale(problem)
    prob, x, horizon = _placement_lp(problem, "lp_path_load", scale, deadline)
    f = {t: prob.add_variable(f"f_{i}", 0) for i, t in enumerate(problem.tasks)}
    cost = {t: pulp.lpSum(problem.costs[t][d] * scale * x[(t, d)] for d in problem.allowed(t))
            for t in problem.tasks}
    for i, t in enumerate(problem.tasks):
        check_time(deadline)
        prob += f[t] >= cost[t]
        prob += horizon >= f[t]
    for k, e in enumerate(problem.graph.edges):
        check_time(deadline)
        pairs = [(a, b) for a, b in permutations(problem.devices, 2)
                 if a in problem.costs[e.src] and b in problem.costs[e.dst]]
        m = min((problem.transfer(e, a, b) for a, b in pairs), default=0.0) * scale
        if m > 0:
            y = prob.add_variable(f"y_{k}", 0, 1)
            for d in problem.allowed(e.src):
                prob += y >= x[(e.src, d)] - (x[(e.dst, d)] if (e.dst, d) in x else 0)
            prob += f[e.dst] >= f[e.src] + cost[e.dst] + m * y
        else:
            prob += f[e.dst] >= f[e.src] + cost[e.dst]
    return prob, scale


def all_bounds(problem: Problem, *, lp: bool = True, time_limit: float | None = 30.0) -> tuple[Bound, ...]:
    """Every bound this module knows: the LP ones only when ``lp`` and built and solved within what is
    left of ``time_limit`` seconds after the bounds that need no LP (one budget for all)."""
    deadline = deadline_after(time_limit)
    out = list(cheap_bounds(problem))
    if lp:
        for bound in (lp_load_bound, lp_path_load_bound):
            b = bound(problem, None if deadline is None else deadline - time.perf_counter())
            out += [b] if b else []
    return tuple(out)


def bound_budget(time_limit: float | None) -> float:
    """The LP bounds' share of a budget of ``time_limit`` s for solving and bounding together: a tenth
    plus a second, at most a third and at most 30 s (30 s without a budget).

    >>> bound_budget(5.0), bound_budget(1.0), bound_budget(None)
    (1.5, 0.3333333333333333, 30.0)
    """
    return 30.0 if time_limit is None else min(30.0, 0.1 * time_limit + 1.0, time_limit / 3)


def best_bound(problem: Problem, extra: tuple[Bound, ...] = ()) -> Bound:
    """The largest of the classic bounds and any ``extra`` ones (e.g. a solver's proven bound)."""
    return max(classic_bounds(problem) + tuple(extra), key=lambda b: b.value)


def period_bounds(problem: Problem, replicas: int = 1, *, lp: bool = True,
                  time_limit: float | None = 30.0) -> tuple[Bound, ...]:
    """Sound lower bounds on the steady-state period with ``replicas`` data-parallel copies.

    ``period-area``: least total resource-time of all copies over the resources;
    ``period-task``: the dearest task at its cheapest device (it runs on some
    resource every period); ``period-lp-load``: ``replicas`` x the fractional
    load bound with the transfers' loads (the average of the copies' placements is
    a fractional placement, so the busiest resource carries at least that).
    """
    devices = problem.platform.device
    area = sum(min(c * len(devices[d].resources) for d, c in problem.costs[t].items()) for t in problem.tasks)
    out = [Bound("period-area", replicas * area / len(problem.platform.resources)),
           Bound("period-task", max((min(problem.costs[t].values()) for t in problem.tasks), default=0.0))]
    if lp:
        deadline = deadline_after(time_limit)
        load = lp_load_bound(problem, time_limit, transfers=True)
        if load is None:  # the larger LP ran out of time: the plain one may still fit in what is left
            load = lp_load_bound(problem, None if deadline is None else deadline - time.perf_counter())
        if load is not None:
            out.append(Bound("period-lp-load", replicas * load.value))
    return tuple(out)
