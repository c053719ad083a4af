"""``lns``: anytime adaptive large-neighbourhood search; re-solves windows of the best schedule with CP-SAT.

1. Start from the best list heuristic (``portfolio``).
2. Repeat until the time limit: choose a kind of window, each with a probability
   that follows how often it improved the schedule lately (adaptive LNS), and
   re-solve the window exactly by CP-SAT (:mod:`solvers.window`) with the tasks
   before it fixed:

   * ``slice``: ``window`` consecutive tasks of the current schedule by start time,
     around a task of its critical path (one time in four, anywhere), hinted by
     their current devices and starts.  The objective is the latest ``finish +
     tail``, where a task's tail is the longest path from its finish to the end of
     the current schedule through what follows the window (data edges with their
     transfers, and each resource's next task).  The window grows by a quarter when
     CP-SAT proves it optimal within its time and shrinks by a fifth when it does
     not.  Good where the schedule is already compact (random DAGs).
   * ``modules``: two neighbouring modules of ``split`` (convex communities),
     sweeping the modules in order like ``split``'s polish, after the modules
     before them, minimising their latest finish, without a hint (CP-SAT's own
     search finds compact placements the current one would keep it from).  Good
     on layered models whose list schedules crowd one device (BERT: 1094 to 918
     in 8 s where slices found nothing).

   The tasks after the window keep their devices and order (after a slice, each in
   the first idle gap it fits).  The whole schedule is simulated again and kept
   when it is no longer than the current one (equal ones let the search move).

The answer is the best schedule found, certified like every solver's (the classic
bounds and the path-segments bound; ``hetsched`` adds the LP bounds in ``certify_schedules``).
It is a heuristic: no window proves the whole schedule optimal, except one that
holds every task (small problems): its CP-SAT bound is a bound on the makespan, and
the search stops once CP-SAT proves that window optimal, or once the schedule meets
the path-segments bound (``status="optimal"`` when the makespan meets a bound).

>>> from scheduler.generate import random_problem
>>> p = random_problem(30, seed=2)
>>> s = solve(p, time_limit=2.0)
>>> s.solver, s.makespan <= s.info["start_makespan"]
('lns', True)
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import Mapping

from scheduler.bounds import Bound, path_segments_bound
from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import Timeline, simulate

from . import portfolio, split
from .common import Feasibility, Positive, Workers, certify_placement, no_solution, place_in_order
from .exact_solve import OPTIMALITY_TOLERANCE
from .window import solve_window

NAME = "lns"
DEFAULT_SECONDS_PER_TASK = 0.05  # without a time limit: this much per task, at least 2 s
START_SHARE = 0.2  # at most this share of the limit for the starting heuristics
WINDOW_SECONDS = (0.05, 2.0)  # each window's CP-SAT limit: 1 / WINDOW_SHARE of the time left, within these
WINDOW_SHARE = 10
MIN_WINDOW, MAX_WINDOW = 6, 200
KINDS = ("slice", "modules")  # kinds of window (see _window)
MODULE_TASKS = 40  # the largest module (split's default)
MODULE_SECONDS = 0.1  # a module window's CP-SAT limit (split's polish gives its windows about as much)
REACTION, MIN_WEIGHT = 0.1, 0.05  # how fast a kind's weight follows its success, and its floor


def tails(problem: Problem, current: Schedule) -> dict[str, float]:
    """Per task, the longest path from its start to the end of ``current``: its own cost, then its data
    successors (with their transfers) or its resources' next task, whichever is longer."""
    order = current.order(problem)
    by = current.by_name
    devices = problem.platform.device
    nxt: dict[str, list[str]] = {t: [] for t in order}
    last_on: dict[str, str] = {}
    for t in order:
        if by[t].finish > by[t].start:
            for r in devices[by[t].device].resources:
                if r in last_on:
                    nxt[last_on[r]].append(t)
                last_on[r] = t
    q: dict[str, float] = {}
    for t in reversed(order):
        a = by[t].device
        after = max((problem.transfer(e, a, by[e.dst].device) + q[e.dst] for e in problem.succs[t]), default=0.0)
        q[t] = by[t].finish - by[t].start + max(after, max((q[u] for u in nxt[t]), default=0.0))
    return q


def window_tails(problem: Problem, current: Schedule, order: tuple[str, ...], lo: int, hi: int,
                 q: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Per task of the window ``order[lo:hi]`` and device, seconds from its finish to the end through the tasks
    after the window: its data successors there, and the earliest of them on each resource the device holds."""
    by = current.by_name
    after = sorted(order[hi:], key=lambda t: by[t].start)
    first_on: dict[str, float] = {}
    for t in after:
        if by[t].finish > by[t].start:
            for r in problem.platform.device[by[t].device].resources:
                first_on.setdefault(r, q[t])
    later = set(after)
    out: dict[str, dict[str, float]] = {}
    for t in order[lo:hi]:
        succs = [e for e in problem.succs[t] if e.dst in later]
        out[t] = {d: max([problem.transfer(e, d, by[e.dst].device) + q[e.dst] for e in succs]
                         + [first_on.get(r, 0.0) for r in problem.platform.device[d].resources], default=0.0)
                  for d in problem.allowed(t)}
    return out


def critical_tasks(current: Schedule, q: Mapping[str, float]) -> list[str]:
    """Tasks on a longest path of ``current`` (their start plus tail is its makespan)."""
    span = current.makespan or 0.0
    return [t.name for t in current.tasks if t.start + q[t.name] >= span * (1 - 1e-9) - 1e-15]


def _rebuild(problem: Problem, current: Schedule, order: tuple[str, ...], hi: int,
             before: tuple[Timeline, Feasibility], chosen: Mapping[str, str], insertion: bool) -> Schedule | None:
    """``current`` with the window placed as ``chosen`` says (``before``: the tasks before it, placed), the tasks
    ``order[hi:]`` after it on their devices in their order (``insertion``: each in the first idle gap it
    fits); simulated again.  None when a later task finds no device with room left (memory)."""
    tl, feas = before
    if not (place_in_order(problem, tl, feas, chosen)
            and place_in_order(problem, tl, feas, {t: current.placement[t] for t in order[hi:]}, insertion=insertion)):
        return None
    return simulate(problem, tl.device_of, tl.schedule().order(problem))


def _window(problem: Problem, current: Schedule, q: Mapping[str, float], kind: str, size: int,
            mods: list[list[str]], sweep: int, rng: random.Random) -> tuple[tuple[str, ...], int, int]:
    """(order, lo, hi): every task, predecessors first, and a window ``order[lo:hi]`` of the kind ``kind``.

    ``slice``: ``current``'s tasks by start time and ``size`` of them, holding a task of the critical path
    three times in four, any task otherwise; ``modules``: the ``sweep``-th pair of neighbouring modules,
    after the modules before them and before the rest (each part by start time)."""
    order = current.order(problem)
    if kind == "modules":
        i = sweep % (len(mods) - 1)
        window = set(mods[i] + mods[i + 1])
        before = {t for mod in mods[:i] for t in mod}
        parts = ([t for t in order if t in before], [t for t in order if t in window],
                 [t for t in order if t not in window and t not in before])
        return tuple(parts[0] + parts[1] + parts[2]), len(parts[0]), len(parts[0]) + len(parts[1])
    crit = critical_tasks(current, q)
    centre = rng.choice(crit) if crit and rng.random() < 0.75 else rng.choice(order)
    k = min(size, len(order))
    lo = max(0, min(order.index(centre) - rng.randrange(k), len(order) - k))
    return order, lo, lo + k


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0, window: Positive = 30,
          workers: Workers = 2) -> Schedule:
    """Large-neighbourhood search from the best list heuristic until ``time_limit`` (see the module docstring).

    ``window``: tasks per window to begin with; ``workers``: CP-SAT workers per window (2 suits a 2-core host).
    """
    started = time.perf_counter()
    limit = time_limit if time_limit is not None else max(2.0, DEFAULT_SECONDS_PER_TASK * len(problem.tasks))
    deadline = started + 0.95 * limit
    first = portfolio.solve(problem, time_limit=START_SHARE * limit, seed=seed)
    if not first.found:
        return no_solution(problem, solver=NAME, started=started, reason=first.info.get("reason", first.status))
    current = simulate(problem, first.placement, first.order(problem))
    path = path_segments_bound(problem)  # once: a schedule that meets it is optimal
    rng = random.Random(seed)
    size = float(min(max(window, MIN_WINDOW), len(problem.tasks)))
    tried = kept = improved = proved = 0
    whole = 0.0  # CP-SAT's bound from a window that held every task
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    mods = split.modules(problem, max_module=MODULE_TASKS, seed=seed)
    kinds = KINDS if len(mods) > 1 else KINDS[:1]
    weight = dict.fromkeys(kinds, 1.0)
    sweeps = 0  # module windows taken so far: they sweep the modules in order, like split's polish
    while (len(problem.tasks) > 1 and current.makespan > path.value * (1 + OPTIMALITY_TOLERANCE)
           and (left := deadline - time.perf_counter()) > WINDOW_SECONDS[0]):
        kind = rng.choices(kinds, weights=[weight[k] for k in kinds])[0]
        q = tails(problem, current) if kind == "slice" else {}  # only slices use the tails
        order, lo, hi = _window(problem, current, q, kind, int(size), mods, sweeps, rng)
        sweeps += kind == "modules"
        members = sorted(order[lo:hi], key=topo.__getitem__)
        tl, feas = Timeline(problem), Feasibility(problem)
        sliced = kind == "slice"
        # the tasks before the window on their own devices, which had room for them: this cannot fail
        place_in_order(problem, tl, feas, {t: current.placement[t] for t in order[:lo]}, insertion=sliced)
        by = current.by_name
        limit = min(WINDOW_SECONDS[1], max(WINDOW_SECONDS[0], left / WINDOW_SHARE)) if sliced else MODULE_SECONDS
        found = solve_window(problem, tl, feas, members, limit, workers=workers, seed=seed + tried,
                             tails=window_tails(problem, current, order, lo, hi, q) if sliced else None,
                             hint={t: (by[t].device, by[t].start) for t in members} if sliced else None)
        tried += 1
        proved += found is not None and found.optimal
        if sliced:
            size = min(size * 1.25, MAX_WINDOW, len(problem.tasks)) if found is not None and found.optimal \
                else max(size * 0.8, MIN_WINDOW)
        everything = found is not None and lo == 0 and hi == len(order)
        if everything:  # the whole problem in one window: CP-SAT's bound holds for it
            whole = max(whole, found.bound)
        cand = _rebuild(problem, current, order, hi, (tl, feas), found.chosen, sliced) if found else None
        gain = 0.0
        if cand is not None and cand.makespan <= current.makespan * (1 + 1e-12):
            better = cand.makespan < current.makespan * (1 - 1e-9)
            improved, kept, gain = improved + better, kept + 1, 1.0 if better else 0.1
            current = cand
        weight[kind] = max(MIN_WEIGHT, (1 - REACTION) * weight[kind] + REACTION * gain)
        if everything and found.optimal:  # no window can do better (but for rounding to ticks)
            break
    extra = (path,) + ((Bound("lns-whole-window", whole),) if whole > 0 else ())
    s = certify_placement(problem, current.placement, current.order(problem), solver=NAME, started=started,
                          extra_bounds=extra,
                          info={"start": first.info.get("chosen", first.solver), "start_makespan": first.makespan,
                                "windows": tried, "windows_proved": proved, "windows_kept": kept,
                                "improvements": improved, "final_window": int(size),
                                "kind_weights": {k: round(w, 3) for k, w in weight.items()}})
    proven = s.lower_bound is not None and s.makespan <= s.lower_bound * (1 + OPTIMALITY_TOLERANCE)
    return replace(s, status="optimal" if proven else "heuristic")
