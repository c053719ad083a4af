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
   :class:`~scheduler.semantics.Timeline` with real costs.
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

import time
from typing import Annotated, Sequence

import networkx as nx
from pydantic import Field

from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import Timeline, simulate

from .common import Feasibility, Positive, Workers, certify_placement, no_solution, place_in_order
from .exact_common import latency_hint
from .window import solve_window

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
    if not place_in_order(problem, tl, feas, {t: prev.placement[t] for t in sorted(fixed_before, key=pos.__getitem__)}):
        return None
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
        found = solve_window(problem, tl, feas, members, share, workers=workers, seed=seed) \
            if share >= MIN_MODULE_S else None
        in_cpsat += time.perf_counter() - started
        if found is None:
            if not place_in_order(problem, tl, feas, dict.fromkeys(members)):  # each where it finishes earliest
                return None
        else:
            solved += 1
            if not place_in_order(problem, tl, feas, found.chosen):
                return None
        budget -= time.perf_counter() - started
        total -= len(members)
    rest = [t for mod in mods[solve_to:] for t in mod] if prev is not None else []
    if not place_in_order(problem, tl, feas, {t: prev.placement[t] for t in sorted(rest, key=pos.__getitem__)}):
        return None
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
    return certify_placement(problem, best.placement, best.order(problem), solver=NAME, started=started,
                             info={"modules": len(mods), "largest_module": max(len(m) for m in mods),
                                   "polished": start_from, "modules_solved_by_cpsat": solved, "polish_sweeps": sweeps,
                                   "polish_windows": windows_tried, "polish_improvements": windows_kept})
