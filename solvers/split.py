"""``split``: DiviML's modularity splitting, each module solved exactly in topological order.

1. Communities of the task graph by modularity (networkx Louvain, edges weighted
   by tensor bytes), communities above ``max_module`` tasks cut into topological
   chunks.
2. Cut each community by level, the most community changes on any path from a
   source to the task: every edge between two (community, level) pieces raises
   the level, so the module graph is acyclic and every module convex without
   merging communities into giant ones.
3. Solve the modules in topological order with a CP-SAT model of the module
   alone: what earlier modules placed is fixed, so each module sees the time every
   resource becomes free and the time each input arrives on each device; the
   module's latest finish is minimised.  Each module's answer is appended to a
   :class:`~scheduler.schedule.Timeline` with real costs.
4. Polish (optional): start from the shorter of that schedule and the best of
   HEFT, greedy and the best single device (the exact solvers' warm start), slide a
   window over neighbouring modules, re-solve the window with everything before
   it fixed and everything after it keeping its devices, and keep the change when
   the whole re-simulated schedule gets shorter.

The time limit is shared out over modules in proportion to their size (a quarter
kept for polishing).  The result is a heuristic: modules are optimised one after
another, never jointly, so the status is ``heuristic``.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Mapping, Sequence

import networkx as nx
from ortools.sat.python import cp_model
from pydantic import Field

from scheduler.problem import Problem
from scheduler.schedule import Schedule, Timeline, simulate

from .common import Feasibility, Positive, Workers, cpsat_solve, finish, no_solution
from .cpsat import ticks
from .exact_common import latency_hint

NAME = "split"
DEFAULT_MODULE_TIME = 2.0  # seconds per module when no time limit is given
MIN_MODULE_S = 0.02  # a module with less time than this is placed greedily
HINT_SIMULATIONS = 25  # HEFT, greedy and single together cost about 20 simulations of the schedule (measured)


def modules(problem: Problem, *, max_module: int = 40, resolution: float = 1.0, seed: int = 0) -> list[list[str]]:
    """Convex modules of the task graph in a topological order (each listed in topological order)."""
    topo = problem.graph.topological_order
    index = {t: i for i, t in enumerate(topo)}
    und = nx.Graph()
    und.add_nodes_from(topo)
    for e in problem.graph.edges:
        und.add_edge(e.src, e.dst, weight=float(e.bytes) + 1.0)
    comms = nx.community.louvain_communities(und, weight="weight", resolution=resolution, seed=seed)
    community = {t: i for i, c in enumerate(comms) for t in c}
    # level = most community changes on any path from a source: every edge between two
    # (community, level) pieces raises the level, so the piece graph is acyclic
    level: dict[str, int] = {}
    for t in topo:
        level[t] = max((level[e.src] + (community[e.src] != community[t]) for e in problem.preds[t]), default=0)
    groups: dict[tuple[int, int], list[str]] = {}
    for t in topo:
        groups.setdefault((level[t], community[t]), []).append(t)
    pieces: list[list[str]] = []
    for key in sorted(groups, key=lambda k: (k[0], index[groups[k][0]])):
        members = groups[key]
        pieces += [members[i:i + max(1, max_module)] for i in range(0, len(members), max(1, max_module))]
    where = {t: i for i, piece in enumerate(pieces) for t in piece}
    quotient = nx.DiGraph()
    quotient.add_nodes_from(range(len(pieces)))
    quotient.add_edges_from((where[e.src], where[e.dst]) for e in problem.graph.edges if where[e.src] != where[e.dst])
    if not nx.is_directed_acyclic_graph(quotient):  # cannot happen (see above); kept as a guard
        raise AssertionError("split: module graph has a cycle")
    order = nx.lexicographical_topological_sort(quotient, key=lambda n: index[pieces[n][0]])
    return [pieces[n] for n in order]


def _solve_module(problem: Problem, tl: Timeline, feas: Feasibility, members: Sequence[str], limit: float,
                  workers: int, seed: int) -> Mapping[str, str] | None:
    """Place ``members`` on ``tl`` (earlier tasks fixed) minimising their latest finish; returns their devices."""
    inside = set(members)
    allowed = {t: feas.candidates(t) for t in members}
    if any(not a for a in allowed.values()):
        return None
    free = {r: tl.free_at(r) for r in problem.platform.resources}
    horizon_s = max(free.values(), default=0.0) + sum(max(problem.costs[t][d] for d in allowed[t]) for t in members)
    horizon_s += sum(max((problem.transfer(e, a, b) for a in problem.devices for b in problem.devices), default=0.0)
                     for t in members for e in problem.preds[t])
    tick = max(horizon_s, 1e-12) / 10**7
    horizon = ticks(horizon_s, tick) + 2
    m = cp_model.CpModel()
    p = {}
    group_lit: dict[str, dict[str, Any]] = {}
    for t in members:
        g = problem.colocate.get(t)
        if g is not None and g in group_lit:
            p.update({(t, d): group_lit[g][d] for d in allowed[t]})
            continue
        for d in allowed[t]:
            p[t, d] = m.new_bool_var(f"p_{t}_{d}")
        m.add_exactly_one(p[t, d] for d in allowed[t])
        if g is not None:
            group_lit[g] = {d: p[t, d] for d in allowed[t]}
    dur = {(t, d): ticks(problem.costs[t][d], tick) for t in members for d in allowed[t]}
    s = {t: m.new_int_var(0, horizon, f"s_{t}") for t in members}
    end = {t: m.new_int_var(0, horizon, f"e_{t}") for t in members}
    on: dict[str, list[Any]] = {r: [] for r in problem.platform.resources}
    for t in members:
        m.add(end[t] == s[t] + sum(dur[t, d] * p[t, d] for d in allowed[t]))
        for d in allowed[t]:
            for r in problem.platform.device[d].resources:
                m.add(s[t] >= math.ceil(free[r] / tick)).only_enforce_if(p[t, d])
            if dur[t, d]:
                iv = m.new_optional_fixed_size_interval_var(s[t], dur[t, d], p[t, d], f"i_{t}_{d}")
                for r in problem.platform.device[d].resources:
                    on[r].append(iv)
        for e in problem.preds[t]:
            if e.src in inside:
                m.add(s[t] >= end[e.src])
                for a in allowed[e.src]:
                    for b in allowed[t]:
                        w = ticks(problem.transfer(e, a, b), tick)
                        if a != b and w:
                            z = m.new_bool_var("")
                            m.add_bool_or([p[e.src, a].Not(), p[t, b].Not(), z])
                            m.add(s[t] >= end[e.src] + w).only_enforce_if(z)
            else:
                for b in allowed[t]:
                    arrival = tl.finish[e.src] + problem.transfer(e, tl.device_of[e.src], b)
                    m.add(s[t] >= math.ceil(arrival / tick)).only_enforce_if(p[t, b])
    for ivs in on.values():
        if len(ivs) > 1:
            m.add_no_overlap(ivs)
    for d in problem.devices:
        cap = problem.platform.device[d].memory_bytes
        terms = [(feas.need(t), p[t, d]) for t in members if d in allowed[t] and feas.need(t)]
        if cap is not None and terms:
            seen, uniq = set(), []
            for w, lit in terms:
                if lit.index not in seen:
                    seen.add(lit.index)
                    uniq.append((w, lit))
            m.add(sum(w * lit for w, lit in uniq) <= cap - feas.used[d])
    c = m.new_int_var(0, horizon, "C")
    m.add_max_equality(c, list(end.values()))
    m.minimize(c)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.05, limit)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    status = cpsat_solve(solver, m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    chosen = {t: next(d for d in allowed[t] if solver.boolean_value(p[t, d])) for t in members}
    start = {t: solver.value(s[t]) for t in members}
    return dict(sorted(chosen.items(), key=lambda kv: (start[kv[0]], members.index(kv[0]))))


def _fallback(problem: Problem, tl: Timeline, feas: Feasibility, members: Sequence[str]) -> bool:
    """Place a module task by task where each finishes earliest (when CP-SAT found nothing in its time)."""
    for t in members:
        cands = feas.candidates(t)
        if not cands:
            return False
        d = min(cands, key=lambda x: tl.earliest_start(t, x) + problem.costs[t][x])
        tl.place(t, d)
        feas.commit(t, d)
    return True


def _place(problem: Problem, tl: Timeline, feas: Feasibility, chosen: Mapping[str, str]) -> None:
    """Append ``chosen`` (task -> device, in placing order) to the timeline."""
    for t, d in chosen.items():
        if d not in feas.candidates(t):
            d = min(feas.candidates(t), key=lambda x: tl.earliest_start(t, x) + problem.costs[t][x])
        tl.place(t, d)
        feas.commit(t, d)


def _build(problem: Problem, mods: Sequence[Sequence[str]], solve_from: int, solve_to: int,
           prev: Schedule | None, budget: float, workers: int, seed: int) -> tuple[Timeline, int, float] | None:
    """Modules before ``solve_from`` replayed from ``prev``, [solve_from, solve_to) solved, the rest from ``prev``.

    Returns the timeline, how many modules CP-SAT solved, and the seconds spent outside CP-SAT (placing).
    """
    began, in_cpsat = time.perf_counter(), 0.0
    tl, feas = Timeline(problem), Feasibility(problem)
    order = prev.order(problem) if prev is not None else ()
    pos = {t: i for i, t in enumerate(order)}
    solved = 0
    fixed_before = [t for mod in mods[:solve_from] for t in mod]
    _place(problem, tl, feas, {t: prev.placement[t] for t in sorted(fixed_before, key=pos.__getitem__)})
    window = [t for mod in mods[solve_from:solve_to] for t in mod] if solve_to > solve_from else []
    todo = [window] if prev is not None else [list(mod) for mod in mods[solve_from:solve_to]]
    total = sum(len(w) for w in todo) or 1
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    for members in todo:
        if not members:
            continue
        started = time.perf_counter()
        members = sorted(members, key=topo.__getitem__)
        share = budget * len(members) / total
        # past the budget, the remaining modules are placed greedily, not by CP-SAT
        chosen = _solve_module(problem, tl, feas, members, share, workers, seed) if share >= MIN_MODULE_S else None
        in_cpsat += time.perf_counter() - started
        if chosen is None:
            if not _fallback(problem, tl, feas, members):
                return None
        else:
            solved += 1
            _place(problem, tl, feas, chosen)
        budget -= time.perf_counter() - started
        total -= len(members)
    rest = [t for mod in mods[solve_to:] for t in mod] if prev is not None else []
    _place(problem, tl, feas, {t: prev.placement[t] for t in sorted(rest, key=pos.__getitem__)})
    return tl, solved, time.perf_counter() - began - in_cpsat


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0, max_module: Positive = 40,
          resolution: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0, polish: bool = True,
          polish_window: Positive = 2, workers: Workers = 1) -> Schedule:
    """Modularity splitting with per-module CP-SAT solves and an optional polish (see module docstring)."""
    started = time.perf_counter()
    mods = modules(problem, max_module=max_module, resolution=resolution, seed=seed)
    limit = time_limit if time_limit is not None else DEFAULT_MODULE_TIME * len(mods)
    first_budget = limit * (0.75 if polish else 0.95)
    built = _build(problem, mods, 0, len(mods), None, first_budget - (time.perf_counter() - started), workers, seed)
    if built is None:
        return no_solution(problem, solver=NAME, started=started,
                           reason="no module placement keeps memory and co-location limits")
    tl, solved, placing = built  # a polish window places every module again: ``placing`` s besides its solve
    t_sim = time.perf_counter()
    best = simulate(problem, tl.device_of, tl.schedule().order(problem))
    t_sim = time.perf_counter() - t_sim
    start_from = "modules"
    deadline = started + limit * 0.95
    # the windows then polish whichever start is shorter (the heuristics' start only when it fits the time left)
    fits = deadline - time.perf_counter() > HINT_SIMULATIONS * t_sim
    reference = latency_hint(problem, deadline) if fits else None
    if reference is not None and reference.makespan < best.makespan:
        best, start_from = simulate(problem, reference.placement, reference.order(problem)), reference.solver
    windows_tried = windows_kept = sweeps = 0
    improved = polish and len(mods) > 1
    while improved and deadline - time.perf_counter() > placing + 0.05:  # sweep again while a sweep helps
        improved, sweeps = False, sweeps + 1
        steps = max(1, len(mods) - polish_window + 1)
        for i in range(steps):
            left = deadline - time.perf_counter() - placing
            if left <= 0.05:  # the next window would overrun the limit
                break
            again = _build(problem, mods, i, min(len(mods), i + polish_window), best, left / (steps - i), workers, seed)
            windows_tried += 1
            if again is None:
                continue
            placing = again[2]
            cand = simulate(problem, again[0].device_of, again[0].schedule().order(problem))
            if cand.makespan < best.makespan * (1 - 1e-9):
                best, windows_kept, improved = cand, windows_kept + 1, True
    return finish(problem, best.placement, best.order(problem), solver=NAME, started=started,
                  info={"modules": len(mods), "largest_module": max(len(m) for m in mods), "polished": start_from,
                        "modules_solved_by_cpsat": solved, "polish_sweeps": sweeps, "polish_windows": windows_tried,
                        "polish_improvements": windows_kept})
