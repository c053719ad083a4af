"""``cpsat``: the exact placement model in OR-Tools CP-SAT (integer time, proven bound).

Latency model, in integer ticks of ``resolution`` seconds:

* presence literal ``p[t,d]`` per allowed pair (co-location members share their
  group's literals), exactly one per task; memory ``sum mem_t p[t,d] <= cap_d``;
* start ``S[t]``; an optional fixed-size interval per (t, d) of ``dur[t,d]`` ticks,
  present iff ``p[t,d]``; one NoOverlap per resource over the intervals of every
  device holding it (a task on a multi-resource device sits in each; zero-length
  runs hold no resource, as in the simulator and validator, and are left out);
* edge (u, v), for each device a of u: ``S[v] >= S[u] + dur[u,a] + sum_{b != a}
  T(e,a,b) p[v,b]`` enforced by ``p[u,a]`` (plus the unconditional ``S[v] >= S[u] +
  p(u)`` for the LP relaxation);
* makespan ``C >= S[t] + p(t)`` for sinks and ``C >=`` every resource's load;
  minimise ``C``.  Hint: the better of HEFT and greedy; when both fail (memory,
  co-location) a coarse first pass (:data:`COARSE_TICKS`) supplies one, because
  without a hint CP-SAT's searches may find no solution of the fine model at all.

Rounding, and why the bound is sound.  Costs and transfers are rounded *down* to
ticks (``floor(v / tick)``).  Any real schedule with starts ``S`` maps to ticks
``floor(S / tick)`` that satisfy every constraint of this rounded model, because
``floor(a + b) >= floor(a) + floor(b)``; so the rounded model is a relaxation and
``tick * (its optimum or proven bound)`` is a lower bound on the true optimum in
seconds.  Its solutions are re-simulated with real times (they may come out a few
ticks later than the model says), and ``optimal`` is claimed only when the
re-simulated makespan is within :data:`~solvers.exact_solve.OPTIMALITY_TOLERANCE`
of that bound, i.e. when the gap closes in real seconds, not merely in ticks.
By default the tick is chosen so that the warm start's makespan spans
:data:`HORIZON_TICKS` ticks; rounding then costs at most ~2 ticks per task on the
critical path, far below the tolerance for graphs of a few hundred tasks.

Throughput model (``objective="throughput"``, ``replicas=B``): literals per copy,
a boolean ``m >= p[u,a] and p[v,b]`` per output move (task u's output from a to b,
any reader v of u allowed on b; a presence literal when that is exact), an integer
``>= w * m`` per move for a staged sender that pays its largest move once, ``P >=``
every resource's load summed over copies (task costs plus what moves cost its
device), memory summed over copies.
Rounding down again makes ``tick * bound`` a sound lower bound on the period.

Symmetry: interchangeable devices (same costs, memory, links and resource
sharing, :func:`scheduler.problem_views.mirror_classes`: six identical accelerators make
720 copies of every placement) and the identical servers of a multi-server platform
(:func:`scheduler.problem_views.server_blocks`) are used in order of first use, in
both models (:func:`_break_symmetry`); hints are renamed to match.  On the published
bert24 training layer graph the proof took 7 s instead of 39.

Search: with 2 or 3 ``workers`` the full-problem subsolvers are set to
``default_lp`` and ``no_lp`` (CP-SAT's own choice for 2 workers is ``default_lp``
plus interleaved LNS, for 3 ``default_lp`` and ``fixed``).  Measured on the issue's
target set (40 tasks, 3 devices, one device holding two resources, 30 s, 2 cores):
default 2 workers proved 0/5 optimal, default 3 workers 0/5, default 4 workers 3/5,
2 workers with ``default_lp`` + ``no_lp`` 3/5 (in 3-7 s); with 60 s the last
setting proved 10/10 (5 with the shared resource, 5 without; max 30 s).  From 4
workers on CP-SAT's default portfolio (which includes ``no_lp``) is used.  Up to
:data:`SMALL_MODEL_TASKS` tasks CP-SAT's own portfolio stays: on a 5-task problem
with co-location (seed 7037 of the property test's distribution) ``default_lp`` +
``no_lp`` proved nothing in 30 s for 6 of 10 random seeds, the default proves it
in 0.01 s for all 10, and 450 other 5-task solves were proven either way.

Time: ``max_time_in_seconds`` (wall) gets ``time_limit`` minus the time already
spent building the warm start and the model, minus a small reserve.

Example
-------
>>> from scheduler.generate import random_problem
>>> s = solve(random_problem(6, seed=2), time_limit=10)
>>> s.status, s.info["backend"]
('optimal', 'cp-sat')
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

from ortools.sat.python import cp_model

from scheduler.deadline import check_time
from scheduler.errors import SolverError
from scheduler.problem import Problem
from scheduler.problem_views import Symmetry, first_use_order, mirror_renaming, symmetries
from scheduler.schedule import Schedule
from scheduler.semantics import simulate

from .common import Objective, Replicas, Seconds, Workers, run_cpsat
from .exact_common import (ExactData, OutputMove, choice_vars, order_from_starts, output_moves, placement_errors,
                           trivial_upper_bound)
from .exact_solve import Budget, Outcome, Start, solve_exact

NAME = "cpsat"
HORIZON_TICKS = 10**8
SMALL_MODEL_TASKS = 20  # up to this many tasks CP-SAT keeps its own portfolio (see module docstring)
"""Ticks spanned by the warm start's objective when ``resolution`` is not given."""
COARSE_TICKS = 10**4
"""Ticks spanned by the trivial upper bound in the coarse first pass (used only without a warm start)."""
_DOWN = 1.0 - 1e-12  # absorbs float error in v / tick so that floor never rounds up


def ticks(value: float, tick: float) -> int:
    """``value`` seconds in whole ticks, rounded down (never up, even by float error)."""
    return max(0, math.floor(value / tick * _DOWN))


def seconds_below(bound: float, tick: float) -> float | None:
    """CP-SAT's objective bound ``bound`` (ticks) in seconds, rounded down (never up, even by float error);
    None when it is not finite."""
    return max(0.0, math.floor(bound) * tick * _DOWN) if math.isfinite(bound) else None


@dataclass(frozen=True)
class BuiltModel:
    """A CP-SAT model plus what is needed to read its solution back."""

    model: cp_model.CpModel
    tick: float
    p: Mapping[tuple[int, str, str], cp_model.IntVar]  # (copy, task, device) literals
    s: Mapping[str, cp_model.IntVar]  # latency only
    objective: cp_model.IntVar
    replicas: int
    mirrors: tuple[Symmetry, ...] = ()  # blocks used in order (_break_symmetry)


def _presence(model: cp_model.CpModel, problem: Problem, data: ExactData,
              copy: int) -> dict[tuple[int, str, str], cp_model.IntVar]:
    """Literals p[copy, t, d], shared inside co-location groups, exactly one per task."""
    return choice_vars(problem, data.order, data.allowed, copy,
                       lambda t, d: model.new_bool_var(f"p_{copy}_{data.index[t]}_{d}"),
                       lambda t, lits: model.add_exactly_one(lits))


def _memory(model: cp_model.CpModel, problem: Problem, data: ExactData,
            p: Mapping[tuple[int, str, str], cp_model.IntVar], replicas: int) -> None:
    for d in problem.devices:
        cap = problem.platform.device[d].memory_bytes
        if cap is None:
            continue
        terms = [(problem.memory(t), p[k, t, d]) for k in range(replicas) for t in data.order
                 if d in data.allowed[t] and problem.memory(t) > 0]
        if terms and sum(m for m, _ in terms) > cap:
            model.add(sum(m * v for m, v in terms) <= cap)


def placement_exists(problem: Problem, data: ExactData, replicas: int = 1, limit: float | None = None) -> bool | None:
    """Whether ``replicas`` copies can be placed within memory, op support and co-location (None: not decided
    within ``limit`` s).  Every such placement has a schedule, so this decides the exact models' feasibility."""
    model = cp_model.CpModel()
    p: dict[tuple[int, str, str], cp_model.IntVar] = {}
    for k in range(replicas):
        p.update(_presence(model, problem, data, k))
    _memory(model, problem, data, p, replicas)
    _, status = run_cpsat(model, limit)
    return {cp_model.OPTIMAL: True, cp_model.FEASIBLE: True, cp_model.INFEASIBLE: False}.get(status)


def _moved(model: cp_model.CpModel, data: ExactData, p: Mapping[tuple[int, str, str], cp_model.IntVar], copy: int,
           move: OutputMove) -> Any:
    """A literal that is true when ``move`` happens: its task on the source and a reader on the destination
    (it may be true otherwise too: it only adds load, so the optimum sets it false)."""
    u, a, b = move.task, move.src, move.dst
    if len(move.readers) == 1:
        v = move.readers[0]
        if len(data.allowed[u]) == 1:
            return p[copy, v, b]
        if len(data.allowed[v]) == 1:
            return p[copy, u, a]
    z = model.new_bool_var(f"m_{copy}_{data.index[u]}_{a}_{b}")
    for v in move.readers:
        model.add_bool_or([p[copy, u, a].Not(), p[copy, v, b].Not(), z])
    return z


def build_latency(problem: Problem, data: ExactData, tick: float, upper: float,
                  deadline: float | None = None, symmetry: bool = True) -> BuiltModel:
    """The makespan model at ``tick`` seconds per tick; ``upper``: a feasible makespan (seconds);
    ``symmetry``: interchangeable devices and servers used in order (:func:`_break_symmetry`).
    Raises :class:`OutOfTime` past ``deadline``."""
    model = cp_model.CpModel()
    horizon = ticks(upper, tick) + 1
    p = _presence(model, problem, data, 0)
    dur = {(t, d): ticks(problem.costs[t][d], tick) for t in data.order for d in data.allowed[t]}
    s = {t: model.new_int_var(0, horizon, f"s_{data.index[t]}") for t in data.order}
    length = {t: sum(dur[t, d] * p[0, t, d] for d in data.allowed[t]) for t in data.order}
    on: dict[str, list[cp_model.IntervalVar]] = {r: [] for r in problem.platform.resources}
    for t in data.order:
        check_time(deadline)
        for d in data.allowed[t]:
            if dur[t, d] == 0:
                continue  # zero-length runs overlap nothing (as in the validator)
            iv = model.new_optional_fixed_size_interval_var(s[t], dur[t, d], p[0, t, d], f"i_{data.index[t]}_{d}")
            for r in data.resources[d]:
                on[r].append(iv)
    for ivs in on.values():
        if len(ivs) > 1:
            model.add_no_overlap(ivs)
    for i, e in enumerate(data.edges):
        check_time(deadline)
        u, v = e.src, e.dst
        model.add(s[v] >= s[u] + length[u])
        if data.leader[u] == data.leader[v]:
            continue
        tr = data.transfers[i]
        for a in data.allowed[u]:
            comm = [(ticks(tr[a, b], tick), p[0, v, b]) for b in data.allowed[v] if b != a]
            comm = [(w, lit) for w, lit in comm if w > 0]
            if not comm:
                continue
            expr = s[u] + dur[u, a] + sum(w * lit for w, lit in comm)
            if len(data.allowed[u]) == 1:
                model.add(s[v] >= expr)
            else:
                model.add(s[v] >= expr).only_enforce_if(p[0, u, a])
    c_max = model.new_int_var(0, horizon, "C")
    for t in data.sinks:
        model.add(c_max >= s[t] + length[t])
    for r in problem.platform.resources:
        load = [(dur[t, d], p[0, t, d]) for t in data.order for d in data.allowed[t]
                if r in data.resources[d] and dur[t, d] > 0]
        if load:
            model.add(c_max >= sum(w * lit for w, lit in load))
    _memory(model, problem, data, p, 1)
    mirrors = _break_symmetry(model, problem, data, p, 1) if symmetry else ()
    model.minimize(c_max)
    return BuiltModel(model, tick, p, s, c_max, 1, mirrors)


def _break_symmetry(model: cp_model.CpModel, problem: Problem, data: ExactData,
                    p: Mapping[tuple[int, str, str], cp_model.IntVar], replicas: int) -> tuple[Symmetry, ...]:
    """The blocks of each symmetry (:func:`scheduler.problem_views.symmetries`: whole servers, then
    interchangeable devices) are used in order: a task may go to the next block only if an earlier task
    (problem order, copy 0 first) is on the one before.  Every placement has a renamed twin that does this
    (:func:`scheduler.problem_views.mirror_renaming`) with the same makespan and period, so the optimum
    stays; the k! mirror images of each placement go.  Returns the symmetries."""
    order = first_use_order(problem, replicas)
    found = symmetries(problem)
    for blocks in found:
        for a, b in zip(blocks, blocks[1:]):
            before = None  # a literal true when some earlier task is on block a
            for k, t in order:
                for d in b:
                    if (k, t, d) in p:
                        if before is None:
                            model.add(p[k, t, d] == 0)
                        else:
                            model.add_implication(p[k, t, d], before)
                on = [p[k, t, d] for d in a if (k, t, d) in p]
                if before is not None and on:
                    on.append(before)
                if len(on) == 1:
                    before = on[0]
                elif on:
                    before = model.new_bool_var("")
                    model.add_max_equality(before, on)
    return found


def build_throughput(problem: Problem, data: ExactData, replicas: int, tick: float, upper: float,
                     deadline: float | None = None, symmetry: bool = True) -> BuiltModel:
    """The period model over ``replicas`` copies; ``upper``: a feasible period (seconds); ``symmetry``: as
    :func:`build_latency`.  Raises :class:`OutOfTime` past ``deadline``."""
    model = cp_model.CpModel()
    p: dict[tuple[int, str, str], cp_model.IntVar] = {}
    load: dict[str, list[Any]] = {r: [] for r in problem.platform.resources}
    moves = output_moves(problem, data)
    for k in range(replicas):
        p.update(_presence(model, problem, data, k))
        for t in data.order:
            check_time(deadline)
            for d in data.allowed[t]:
                w = ticks(problem.costs[t][d], tick)
                if w:
                    for r in data.resources[d]:
                        load[r].append(w * p[k, t, d])
        once: dict[tuple[str, str], list[tuple[int, Any]]] = {}  # a staged sender pays its largest move
        for move in moves:
            w_send, w_receive = ticks(move.send, tick), ticks(move.receive, tick)
            if not (w_send or w_receive):
                continue
            lit = _moved(model, data, p, k, move)
            if w_send and move.once:
                once.setdefault((move.task, move.src), []).append((w_send, lit))
            elif w_send:
                for r in data.resources[move.src]:
                    load[r].append(w_send * lit)
            if w_receive:
                for r in data.resources[move.dst]:
                    load[r].append(w_receive * lit)
        for (u, a), terms in once.items():
            paid = model.new_int_var(0, max(w for w, _ in terms), f"once_{k}_{data.index[u]}_{a}")
            for w, lit in terms:
                model.add(paid >= w * lit)
            for r in data.resources[a]:
                load[r].append(paid)
    per = model.new_int_var(0, ticks(upper, tick) + 1, "P")
    for terms in load.values():
        if terms:
            model.add(per >= sum(terms))
    _memory(model, problem, data, p, replicas)
    mirrors = _break_symmetry(model, problem, data, p, replicas) if symmetry else ()
    model.minimize(per)
    return BuiltModel(model, tick, p, {}, per, replicas, mirrors)


def _hint_placements(built: BuiltModel, problem: Problem, placements: list[Mapping[str, str]]) -> None:
    """Hint the presence literals (once each: co-located tasks share theirs), interchangeable devices renamed
    as the symmetry breaking asks."""
    rename = mirror_renaming(problem, placements, built.mirrors)
    seen: set[int] = set()
    for (k, t, d), lit in built.p.items():
        if lit.index not in seen:
            seen.add(lit.index)
            built.model.add_hint(lit, rename.get(placements[k][t], placements[k][t]) == d)


def _hint_latency(built: BuiltModel, problem: Problem, hint: Schedule) -> None:
    """Hint a valid schedule: its rounded-down starts satisfy the rounded model (see module docstring)."""
    m, tick = built.model, built.tick
    _hint_placements(built, problem, [hint.placement])
    for t, v in built.s.items():
        m.add_hint(v, ticks(hint.by_name[t].start, tick))


def _solve_model(built: BuiltModel, limit: float | None, workers: int, seed: int,
                 first: bool = False) -> tuple[cp_model.CpSolver, Any]:
    """Run CP-SAT (``first``: stop at the first solution)."""
    # CP-SAT's default portfolio for 2-3 workers runs one full search (default_lp) plus LNS;
    # the propagation-only search (no_lp) is what proves these models optimal (see module docstring)
    portfolio = workers in (2, 3) and len({t for _, t, _ in built.p}) > SMALL_MODEL_TASKS
    return run_cpsat(built.model, limit, workers=workers, seed=seed, first=first,
                     subsolvers=("default_lp", "no_lp") if portfolio else ())


def _outcome(built: BuiltModel, data: ExactData, solver: cp_model.CpSolver, status: Any,
             info: dict[str, Any]) -> Outcome:
    tick = built.tick
    name = solver.status_name(status)
    info.update(backend_status=name, solver_wall_s=solver.wall_time, conflicts=solver.num_conflicts,
                branches=solver.num_branches)
    if status == cp_model.MODEL_INVALID:
        raise SolverError(f"solver {NAME!r}: CP-SAT rejected the model ({built.model.validate()})")
    if status == cp_model.INFEASIBLE:
        info["reason"] = f"{NAME}: CP-SAT proved that no placement satisfies memory, support and co-location"
        return Outcome(None, None, None, True, info)
    has = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    bound = seconds_below(solver.best_objective_bound, tick) if has or status == cp_model.UNKNOWN else None
    bound_ticks = math.floor(solver.best_objective_bound) if bound is not None else None
    info.update(objective=solver.objective_value * tick if has else None,
                best_bound=bound, proven_bound=bound, objective_ticks=solver.objective_value if has else None,
                bound_ticks=bound_ticks)
    if not has:
        return Outcome(None, None, bound, False, info)
    placements = []
    for k in range(built.replicas):
        placements.append({t: next(d for d in data.allowed[t] if solver.boolean_value(built.p[k, t, d]))
                           for t in data.order})
    starts = {t: solver.value(v) * tick for t, v in built.s.items()} if built.s else None
    return Outcome(tuple(placements), starts, bound, False, info)


def _tick(resolution: float | None, upper: float) -> float:
    if resolution is not None:  # a positive number: the registry checks options
        return float(resolution)
    return upper / HORIZON_TICKS if upper > 0 else 1e-9


def _first_schedule(problem: Problem, data: ExactData, budget: Budget, workers: int, seed: int,
                    info: dict[str, Any]) -> tuple[Schedule | None, bool]:
    """A first schedule when no heuristic could give one (memory, co-location), from a coarse model.

    CP-SAT's full searches can struggle to find any solution of the fine model
    (1e8-tick horizon) without a hint; at :data:`COARSE_TICKS` they find one at once.
    Its placement and order, re-simulated, become the hint.  The coarse model is a
    relaxation too (rounded down), so its infeasibility proves the problem's.
    Returns (schedule or None, proven infeasible).
    """
    upper = trivial_upper_bound(problem, data)
    built = build_latency(problem, data, upper / COARSE_TICKS if upper > 0 else 1e-9, upper)
    limit = budget.remaining(_reserve(budget.time_limit))
    if limit is not None and limit <= 0.01:
        return None, False
    solver, status = _solve_model(built, limit, workers, seed, first=True)
    info["coarse_status"] = solver.status_name(status)
    if status == cp_model.INFEASIBLE:
        return None, True
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, False
    placement = {t: next(d for d in data.allowed[t] if solver.boolean_value(built.p[0, t, d])) for t in data.order}
    if placement_errors(problem, [placement]):
        return None, False
    order = order_from_starts(problem, {t: float(solver.value(v)) for t, v in built.s.items()})
    return simulate(problem, placement, order, solver=f"{NAME} (coarse first pass)", status="feasible"), False


def _reserve(limit: float | None) -> float:
    """Seconds kept back from CP-SAT for reading the solution and re-simulating."""
    return 0.0 if limit is None else min(0.05, 0.1 * limit)


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0, objective: Objective = "latency",
          replicas: Replicas = 1, workers: Workers = 2, resolution: Seconds | None = None,
          hint: bool = True, symmetry: bool = True) -> Schedule:
    """Solve the placement exactly with CP-SAT (latency, or ``objective="throughput"`` with ``replicas``).

    ``workers``: CP-SAT search workers (2 suits a 2-core host); ``resolution``:
    seconds per tick (default: the warm start's objective / :data:`HORIZON_TICKS`);
    ``hint``: warm-start from the better of HEFT and greedy; ``symmetry``: use interchangeable
    devices and servers in order (False: to measure what that saves).
    """

    def run(start: Start) -> Outcome:
        info, budget = start.info, start.budget
        tick = _tick(resolution, start.upper)
        t0 = time.perf_counter()
        if objective == "throughput":
            built = build_throughput(problem, start.data, replicas, tick, start.upper, deadline=budget.deadline(),
                                     symmetry=symmetry)
            if hint and start.throughput is not None:
                _hint_placements(built, problem, list(start.throughput))
        else:
            built = build_latency(problem, start.data, tick, start.upper, deadline=budget.deadline(),
                                  symmetry=symmetry)
            if hint and start.latency is not None:
                _hint_latency(built, problem, start.latency)
        proto = built.model.proto
        info.update(build_s=time.perf_counter() - t0, resolution_s=tick, variables=len(proto.variables),
                    constraints=len(proto.constraints))
        limit = budget.remaining(_reserve(time_limit))
        if limit is not None and limit <= 0.01:
            info["reason"] = "time limit spent before CP-SAT could start"
            return Outcome(None, None, None, False, info)
        solver, status = _solve_model(built, limit, workers, seed)
        return _outcome(built, start.data, solver, status, info)

    def first(data: ExactData, budget: Budget, info: dict[str, Any]) -> tuple[Schedule | None, str | None]:
        schedule, infeasible = _first_schedule(problem, data, budget, workers, seed, info)
        proof = f"{NAME}: CP-SAT proved that no placement satisfies memory, support and co-location"
        return schedule, proof if infeasible else None

    return solve_exact(problem, solver=NAME, time_limit=time_limit, objective=objective, replicas=replicas,
                       info={"backend": "cp-sat", "objective_kind": objective, "workers": workers}, run=run,
                       first_schedule=first)
