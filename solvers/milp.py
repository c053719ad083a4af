"""``milp``: the exact mixed-integer formulation (DiviML style) in PuLP, CBC by default.

Latency model (times in model units: the warm start's makespan maps to ~1000, so
big-M values and solver tolerances are on a fixed, well-conditioned scale):

* ``x[t,d]`` binary for every allowed pair (co-location members share their
  group leader's variables; devices not every member may use are left out);
  ``sum_d x[t,d] = 1``; memory ``sum_t mem_t x[t,d] <= cap_d``.
* ``s[t] >= 0``; duration ``p[t] = sum_d c[t,d] x[t,d]``; makespan ``C >= s[t] + p[t]``
  for sinks, and ``C >=`` every resource's total load (a valid cut).
* edge (u, v): ``s[v] >= s[u] + p[u] + comm``.  ``comm`` is exact through a
  transportation linearisation of the device pair: continuous ``z[e,a,b] >= 0``
  with ``sum_b z[e,a,b] = x[u,a]``, ``sum_a z[e,a,b] = x[v,b]``, so that
  ``z = x[u,a] x[v,b]`` at integer points and ``comm = sum_{a!=b} T(e,a,b) z``
  (tighter than the pairwise ``T (x[u,a] + x[v,b] - 1)``); when either end has one
  allowed device the product is linear and no ``z`` is needed.
* disjunctions only for task pairs with no path between them that could hold a
  common resource r: binary ``y[i,j]`` (i first) and, with ``X[t,r]`` = sum of x over
  devices holding r at a positive cost (a zero-cost run holds no resource),
  ``s[j] >= s[i] + p[i] - M(1 - y) - M(2 - X[i,r] - X[j,r])`` and
  the mirror; ``M`` = warm start makespan (also imposed as ``C <= M``, valid since
  the warm start is feasible), so every relaxed constraint is slack.

Throughput model (``objective="throughput"``, ``replicas=B``): ``x`` per copy, a
continuous ``m >= x[u,a] + x[v,b] - 1`` per output move (task u's output from a to
b, for every reader v of u allowed on b), ``c >= w m`` per move of a staged sender
(it pays its largest move once), ``P >=`` load of every resource summed over
copies (task costs plus what moves cost its device), memory summed over copies;
minimise ``P``.  No times, no disjunctions.

Honesty.  The backends' verdicts come from CBC's own log, never from PuLP's
``LpStatus`` (:mod:`solvers.mip_backends`).  The proven bound is converted to seconds after subtracting an
absolute slack of :data:`BOUND_SLACK` model units (1e-7 of the warm start's value,
covering CBC's cutoff increment 1e-5 and LP feasibility tolerances), so it can
only err low; status ``optimal`` then follows :mod:`solvers.exact_solve`.
The returned placement and order (by MILP start, ties topological) are re-simulated.
CBC 2.10 itself errs, about once in 5000 random 5-task problems (found by a
property run against brute force): its pre-processing calls feasible models
infeasible, and after a MIP start it can prove the start optimal with a bound
above the optimum.  So every "infeasible" is checked by CP-SAT on the placement
alone (:func:`solvers.cpsat.placement_exists`), and a proof that the start is
optimal is redone without the start and without pre-processing.

Time limit: the backend gets ``time_limit`` minus the time already spent (warm
start, model building) minus a reserve for writing the model file and reading the
solution; CBC counts elapsed (wall) time.

Example
-------
>>> from scheduler.generate import random_problem
>>> s = solve(random_problem(5, seed=2), time_limit=10)
>>> s.status
'optimal'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping, Sequence

import pulp

from scheduler.deadline import check_time
from scheduler.errors import SolverError
from scheduler.problem import Problem
from scheduler.problem_views import Symmetry, first_use_order, mirror_renaming, symmetries
from scheduler.schedule import Schedule

from .common import Objective, Replicas, Workers
from .cpsat import placement_exists
from .exact_common import (ExactData, OutputMove, choice_vars, makespan, output_moves, period_lower_bound,
                           replicated_period, with_pairs_of)
from .exact_solve import Budget, Outcome, Start, solve_exact
from .mip_backends import BackendResult, highs_available, run, run_cbc

NAME = "milp"
UNITS = 1000.0
"""The warm start's objective in model units."""
BOUND_SLACK = 1e-4
"""Model units subtracted from the solver's bound before it is reported as sound."""


@dataclass(frozen=True)
class BuiltModel:
    """A PuLP model plus what is needed to read its solution back."""

    prob: pulp.LpProblem
    scale: float  # model units per second
    x: Mapping[tuple[int, str, str], pulp.LpVariable]  # (copy, task, device); co-located tasks share
    s: Mapping[str, pulp.LpVariable]  # start per task (latency only)
    objective: pulp.LpVariable
    replicas: int
    moves: tuple[OutputMove, ...] = ()  # throughput only: the output moves the model charges
    mirrors: tuple[Symmetry, ...] = ()  # blocks used in order (_break_symmetry)


# ----------------------------------------------------------------------------- model building

def _placement_vars(prob: pulp.LpProblem, problem: Problem, data: ExactData,
                    copy: int) -> dict[tuple[int, str, str], pulp.LpVariable]:
    """x[copy, t, d] with co-location members sharing the leader's variables; one device per task."""
    def one(t: str, xs: list[pulp.LpVariable]) -> None:
        prob.addConstraint(pulp.lpSum(xs) == 1, f"one_{copy}_{data.index[t]}")

    return choice_vars(problem, data.order, data.allowed, copy, lambda t, d: prob.add_variable(
        f"x_{copy}_{data.index[t]}_{problem.devices.index(d)}", cat="Binary"), one)


def _transfer_terms(prob: pulp.LpProblem, data: ExactData, x: Mapping[tuple[int, str, str], pulp.LpVariable],
                    copy: int, i: int, scale: float) -> list[tuple[str, float, Any]]:
    """For edge i: (source device a, transfer units, 0/1 expression "u on a and v on b") for each a != b.

    The expression is exact at integer points: a single variable when one end has a
    single allowed device, else a transportation variable z[e,a,b].
    """
    e, tr = data.edges[i], data.transfers[i]
    if not tr or data.leader[e.src] == data.leader[e.dst] or max(tr.values()) == 0.0:
        return []
    au, av = data.allowed[e.src], data.allowed[e.dst]
    if len(au) == 1:
        return [(au[0], tr[au[0], b] * scale, x[copy, e.dst, b]) for b in av if b != au[0]]
    if len(av) == 1:
        return [(a, tr[a, av[0]] * scale, x[copy, e.src, a]) for a in au if a != av[0]]
    z = {(a, b): prob.add_variable(f"z_{copy}_{i}_{ia}_{ib}", lowBound=0)
         for ia, a in enumerate(au) for ib, b in enumerate(av)}
    for ia, a in enumerate(au):
        prob += pulp.lpSum(z[a, b] for b in av) == x[copy, e.src, a], f"zu_{copy}_{i}_{ia}"
    for ib, b in enumerate(av):
        prob += pulp.lpSum(z[a, b] for a in au) == x[copy, e.dst, b], f"zv_{copy}_{i}_{ib}"
    return [(a, tr[a, b] * scale, z[a, b]) for (a, b) in z if a != b and tr[a, b] > 0.0]


def _memory(prob: pulp.LpProblem, problem: Problem, data: ExactData,
            x: Mapping[tuple[int, str, str], pulp.LpVariable], replicas: int) -> None:
    """Memory per device, summed over copies (scaled by capacity to keep coefficients <= 1)."""
    for di, d in enumerate(problem.devices):
        cap = problem.platform.device[d].memory_bytes
        if cap is None:
            continue
        terms = [(problem.memory(t), x[k, t, d]) for k in range(replicas) for t in data.order
                 if d in data.allowed[t] and problem.memory(t) > 0]
        if not terms or sum(m for m, _ in terms) <= cap:
            continue
        if cap == 0:
            for _, v in terms:
                prob += v == 0
            continue
        prob += pulp.lpSum((m / cap) * v for m, v in terms) <= 1.0, f"mem_{di}"


def build_latency(problem: Problem, data: ExactData, upper: float, lower: float, *,
                  deadline: float | None = None, symmetry: bool = True) -> BuiltModel:
    """The makespan MILP with big-M = ``upper`` (a feasible makespan) and C >= ``lower`` (a sound bound);
    ``symmetry``: interchangeable devices and servers used in order (:func:`_break_symmetry`).

    Raises :class:`OutOfTime` when building runs past ``deadline``.
    """
    scale = UNITS / upper if upper > 0 else 1.0
    big_m = upper * scale
    prob = pulp.LpProblem("hetsched_latency", pulp.LpMinimize)
    x = _placement_vars(prob, problem, data, 0)
    dev_res = data.resources
    cost = {(t, d): problem.costs[t][d] * scale for t in data.order for d in data.allowed[t]}
    p = {t: pulp.lpSum(cost[t, d] * x[0, t, d] for d in data.allowed[t]) for t in data.order}
    s = {t: prob.add_variable(f"s_{data.index[t]}", lowBound=0, upBound=big_m) for t in data.order}
    c_max = prob.add_variable("C", lowBound=min(lower * scale, big_m), upBound=big_m)
    prob += c_max
    for t in data.sinks:
        prob += c_max >= s[t] + p[t], f"mk_{data.index[t]}"
    for ri, r in enumerate(problem.platform.resources):
        load = [(cost[t, d], x[0, t, d]) for t in data.order for d in data.allowed[t] if r in dev_res[d]]
        if load:
            prob += c_max >= pulp.lpSum(c * v for c, v in load), f"load_{ri}"
    for i, e in enumerate(data.edges):
        if i % 100 == 0:
            check_time(deadline)
        comm = pulp.lpSum(tr * v for _, tr, v in _transfer_terms(prob, data, x, 0, i, scale))
        prob += s[e.dst] >= s[e.src] + p[e.src] + comm, f"prec_{i}"
    occ: dict[tuple[str, str], Any] = {}
    for t in data.order:
        for r in problem.platform.resources:
            occ[t, r] = pulp.lpSum(x[0, t, d] for d in data.allowed[t] if r in dev_res[d] and cost[t, d] > 0)
    for k, (a, b, common) in enumerate(data.pairs):
        if k % 100 == 0:
            check_time(deadline)
        y = prob.add_variable(f"y_{k}", cat="Binary")
        for ri, r in enumerate(common):
            both = 2 - occ[a, r] - occ[b, r]
            prob += s[b] >= s[a] + p[a] - big_m * (1 - y) - big_m * both, f"dj_{k}_{ri}_a"
            prob += s[a] >= s[b] + p[b] - big_m * y - big_m * both, f"dj_{k}_{ri}_b"
    _memory(prob, problem, data, x, 1)
    mirrors = _break_symmetry(prob, problem, x, 1) if symmetry else ()
    return BuiltModel(prob, scale, x, s, c_max, 1, mirrors=mirrors)


def _break_symmetry(prob: pulp.LpProblem, problem: Problem, x: Mapping[tuple[int, str, str], pulp.LpVariable],
                    replicas: int) -> tuple[Symmetry, ...]:
    """The blocks of each symmetry (:func:`scheduler.problem_views.symmetries`: whole servers, then
    interchangeable devices) are used in order, as in ``cpsat``: a task may go to the next block only if an
    earlier task (problem order, copy 0 first) is on the one before.  ``u`` (in [0, 1]) is at most "some task
    so far is on block a": ``u_i <= u_(i-1) + sum_(d in a) x[i, d]``, and ``x[i, d] <= u_(i-1)`` for d in
    the next block.  Every placement has a renamed twin that obeys this with the same objective
    (:func:`scheduler.problem_views.mirror_renaming`), so the optimum stays.  Returns the symmetries."""
    order = first_use_order(problem, replicas)
    found = symmetries(problem)
    for c, blocks in enumerate(found):
        for j, (a, b) in enumerate(zip(blocks, blocks[1:])):
            used: Any = 0  # 1 at most once some earlier task is on block a
            for i, (k, t) in enumerate(order):
                for n, d in enumerate(b):
                    if (k, t, d) in x:
                        prob += x[k, t, d] <= used, f"sym_{c}_{j}_{i}_{n}"
                on = [x[k, t, d] for d in a if (k, t, d) in x]
                if on:
                    later = prob.add_variable(f"u_{c}_{j}_{i}", lowBound=0, upBound=1)
                    prob += later <= used + pulp.lpSum(on), f"used_{c}_{j}_{i}"
                    used = later
    return found


def build_throughput(problem: Problem, data: ExactData, replicas: int, upper: float, *,
                     deadline: float | None = None, symmetry: bool = True) -> BuiltModel:
    """The period MILP over ``replicas`` copies (``upper``: a feasible period, for scaling; ``symmetry``: as
    :func:`build_latency`).

    Raises :class:`OutOfTime` when building runs past ``deadline``.
    """
    scale = UNITS / upper if upper > 0 else 1.0
    prob = pulp.LpProblem("hetsched_throughput", pulp.LpMinimize)
    x: dict[tuple[int, str, str], pulp.LpVariable] = {}
    load: dict[str, list[Any]] = {r: [] for r in problem.platform.resources}
    moves = output_moves(problem, data)
    once: dict[tuple[int, str, str], pulp.LpVariable] = {}  # a staged sender pays its largest move
    for k in range(replicas):
        check_time(deadline)
        x.update(_placement_vars(prob, problem, data, k))
        for t in data.order:
            for d in data.allowed[t]:
                for r in data.resources[d]:
                    load[r].append(problem.costs[t][d] * scale * x[k, t, d])
        for j, move in enumerate(moves):
            # >= 1 when the move happens; the optimum keeps it at 0 or 1 (more only adds load)
            moved = prob.add_variable(f"m_{k}_{j}", lowBound=0)
            for v in move.readers:
                prob += moved >= x[k, move.task, move.src] + x[k, v, move.dst] - 1, f"mv_{k}_{j}_{data.index[v]}"
            if move.send and move.once:
                paid = once.get((k, move.task, move.src))
                if paid is None:
                    paid = once[k, move.task, move.src] = prob.add_variable(
                        f"c_{k}_{data.index[move.task]}_{problem.devices.index(move.src)}", lowBound=0)
                    for r in data.resources[move.src]:
                        load[r].append(paid)
                prob += paid >= move.send * scale * moved, f"once_{k}_{j}"
            elif move.send:
                for r in data.resources[move.src]:
                    load[r].append(move.send * scale * moved)
            if move.receive:
                for r in data.resources[move.dst]:
                    load[r].append(move.receive * scale * moved)
    per = prob.add_variable("P", lowBound=period_lower_bound(problem, replicas) * scale)
    prob += per
    for ri, r in enumerate(problem.platform.resources):
        if load[r]:
            prob += per >= pulp.lpSum(load[r]), f"load_{ri}"
    _memory(prob, problem, data, x, replicas)
    return BuiltModel(prob, scale, x, {}, per, replicas, moves,
                      _break_symmetry(prob, problem, x, replicas) if symmetry else ())


# ----------------------------------------------------------------------------- warm start

def _warm_placements(model: BuiltModel, problem: Problem,
                     placements: Sequence[Mapping[str, str]]) -> tuple[dict[str, str], ...]:
    """Every variable at its lower bound, then ``placements`` with interchangeable devices renamed as the
    symmetry breaking asks (and its ``u`` variables set to match); returns the renamed placements."""
    for v in model.prob.variables():
        v.setInitialValue(v.lowBound or 0, check=False)
    rename = mirror_renaming(problem, placements, model.mirrors)
    renamed = tuple({t: rename.get(d, d) for t, d in placement.items()} for placement in placements)
    for (k, t, d), v in model.x.items():
        v.setInitialValue(1 if renamed[k][t] == d else 0)
    names = {v.name: v for v in model.prob.variables()}
    order = first_use_order(problem, model.replicas)
    for c, blocks in enumerate(model.mirrors):
        for j, a in enumerate(blocks[:-1]):
            seen = False
            for i, (k, t) in enumerate(order):
                seen = seen or renamed[k][t] in a
                if f"u_{c}_{j}_{i}" in names:
                    names[f"u_{c}_{j}_{i}"].setInitialValue(1 if seen else 0)
    return renamed


def _warm_latency(model: BuiltModel, problem: Problem, data: ExactData, hint: Schedule) -> None:
    """Initial values from a valid schedule (every variable set, so CBC can check it)."""
    placement = _warm_placements(model, problem, [hint.placement])[0]
    by = hint.by_name
    for t, v in model.s.items():
        v.setInitialValue(by[t].start * model.scale)
    model.objective.setInitialValue(makespan(hint) * model.scale)
    names = {v.name: v for v in model.prob.variables()}
    for k, (a, b, _) in enumerate(data.pairs):
        names[f"y_{k}"].setInitialValue(1 if by[a].finish <= by[b].start + 1e-12 * max(1.0, makespan(hint)) else 0)
    _warm_z(model, problem, data, [placement], names)


def _warm_z(model: BuiltModel, problem: Problem, data: ExactData, placements: list[Mapping[str, str]],
            names: Mapping[str, pulp.LpVariable]) -> None:
    for k, placement in enumerate(placements):
        for i, e in enumerate(data.edges):
            au, av = data.allowed[e.src], data.allowed[e.dst]
            for ia, a in enumerate(au):
                for ib, b in enumerate(av):
                    v = names.get(f"z_{k}_{i}_{ia}_{ib}")
                    if v is not None:
                        v.setInitialValue(1 if placement[e.src] == a and placement[e.dst] == b else 0)


def _warm_throughput(model: BuiltModel, problem: Problem, data: ExactData,
                     placements: tuple[Mapping[str, str], ...]) -> None:
    placements = _warm_placements(model, problem, placements)
    model.objective.setInitialValue(replicated_period(problem, placements) * model.scale)
    names = {v.name: v for v in model.prob.variables()}
    for k, placement in enumerate(placements):
        for j, move in enumerate(model.moves):
            happens = placement[move.task] == move.src and any(placement[v] == move.dst for v in move.readers)
            names[f"m_{k}_{j}"].setInitialValue(1 if happens else 0)
            paid = names.get(f"c_{k}_{data.index[move.task]}_{problem.devices.index(move.src)}")
            if paid is not None and happens:
                paid.setInitialValue(max(paid.varValue or 0.0, move.send * model.scale))


# ----------------------------------------------------------------------------- backend verdicts

def _check_infeasible(problem: Problem, data: ExactData, replicas: int, res: BackendResult, budget: Budget,
                      info: dict[str, Any]) -> BackendResult:
    """CBC says "infeasible" (or its pre-processing does, and stops); CBC 2.10's pre-processing can be
    wrong (a 5-task case in the tests), and CBC crashes when asked again without it.  The models are
    feasible exactly when a placement exists, so CP-SAT decides that; CBC's verdict stands only when
    CP-SAT proves it."""
    exists = placement_exists(problem, data, replicas, budget.remaining())
    info["infeasibility_check"] = {True: "a placement exists", False: "CP-SAT: no placement",
                                   None: "undecided in time"}[exists]
    if exists is not False:
        info["reason"] = (f"{NAME}: CBC called the model infeasible ({res.status_text}), but "
                          + ("a placement exists" if exists else "CP-SAT could not confirm it in time"))
    return replace(res, infeasible=exists is False, bound=None)


def _check_start_proof(model: BuiltModel, res: BackendResult, deadline: float | None, threads: int, seed: int,
                       info: dict[str, Any]) -> BackendResult:
    """CBC proved its MIP start optimal.  CBC 2.10 can do that wrongly (it fathoms better solutions away
    after a start, with a bound above the optimum: a 5-task case in the tests), so the proof is redone
    without the start and without pre-processing, the part that errs (with it, another 5-task case is
    "proven infeasible").  Unconfirmed, the start is kept as a solution without a proof or a bound."""
    values = {v.name: v.varValue for v in model.prob.variables()}
    again = run_cbc(model.prob, model.objective, deadline, threads, seed, warm=False, preprocess=False)
    info["start_proof_check"] = again.status_text
    if again.proven_optimal:
        return again
    if again.has_solution:  # the model's values are this run's now
        return replace(again, proven_optimal=False)
    for v in model.prob.variables():  # a failed run may have written its last LP point into them
        v.varValue = values[v.name]
    return replace(res, proven_optimal=False, bound=None if again.infeasible else again.bound)


# ----------------------------------------------------------------------------- solve

def _read_reserve(model: BuiltModel) -> float:
    """Seconds kept back after the backend's deadline for reading the solution and re-simulating."""
    return 0.05 + 1e-5 * model.prob.numVariables()


def _outcome(model: BuiltModel, data: ExactData, res: BackendResult, info: dict[str, Any]) -> Outcome:
    sec = 1.0 / model.scale
    info.update(backend_status=res.status_text, solver_wall_s=res.wall,
                objective=None if res.objective is None else res.objective * sec,
                best_bound=None if res.bound is None else res.bound * sec)
    bound = None
    if res.bound is not None:
        bound = max(0.0, (res.bound - BOUND_SLACK) * sec)
    info["proven_bound"] = bound
    if res.infeasible:
        info["reason"] = f"{NAME}: the solver proved that no placement satisfies memory, support and co-location"
        return Outcome(None, None, None, True, info)
    if not res.has_solution:
        return Outcome(None, None, bound, False, info)
    placements = []
    for k in range(model.replicas):
        placements.append({t: max(data.allowed[t], key=lambda d: model.x[k, t, d].value() or 0.0)
                           for t in data.order})
    starts = {t: (v.value() or 0.0) * sec for t, v in model.s.items()} if model.s else None
    return Outcome(tuple(placements), starts, bound, False, info)


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0, objective: Objective = "latency",
          replicas: Replicas = 1, backend: Literal["cbc", "highs"] = "cbc", threads: Workers = 2,
          warm_start: bool = True, symmetry: bool = True) -> Schedule:
    """Solve the placement exactly with a MILP (latency, or ``objective="throughput"`` with ``replicas``).

    ``backend``: ``cbc`` (bundled with PuLP) or ``highs`` (needs ``highspy<1.15``;
    PuLP's HiGHS interface takes no warm start).  ``threads``: CBC/HiGHS threads.
    ``warm_start``: start from the better of HEFT and greedy; ``symmetry``: use interchangeable
    devices and servers in order (False: to measure what that saves).
    """
    if backend == "highs":
        why = highs_available()
        if why:
            raise SolverError(f"solver {NAME!r}: backend 'highs' unavailable: {why}")

    def run_model(start: Start) -> Outcome:
        data, budget, info = start.data, start.budget, start.info
        upper = start.upper * (1 + 1e-6) + 1e-12
        t0 = time.perf_counter()
        if objective == "throughput":
            model = build_throughput(problem, data, replicas, upper, deadline=budget.deadline(), symmetry=symmetry)
            if warm_start and start.throughput is not None:
                _warm_throughput(model, problem, data, start.throughput)
        else:
            data = with_pairs_of(problem, data, budget.deadline())
            model = build_latency(problem, data, upper, start.lower, deadline=budget.deadline(), symmetry=symmetry)
            if warm_start and start.latency is not None:
                _warm_latency(model, problem, data, start.latency)
            info["disjunctive_pairs"] = len(data.pairs)
        info.update(build_s=time.perf_counter() - t0, variables=model.prob.numVariables(),
                    constraints=model.prob.numConstraints())
        warm = warm_start and (start.throughput if objective == "throughput" else start.latency) is not None
        deadline = budget.deadline(_read_reserve(model))
        res = run(model.prob, model.objective, backend, deadline, threads, seed, warm)
        if backend == "cbc" and res.infeasible:
            res = _check_infeasible(problem, data, replicas, res, budget, info)
        elif warm and backend == "cbc" and res.proven_optimal and res.objective >= start.found * model.scale - 1e-6:
            res = _check_start_proof(model, res, deadline, threads, seed, info)
        return _outcome(model, data, res, info)

    return solve_exact(problem, solver=NAME, time_limit=time_limit, objective=objective, replicas=replicas,
                       info={"backend": backend, "objective_kind": objective}, run=run_model)
