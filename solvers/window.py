"""One window of tasks re-solved exactly by CP-SAT, with the tasks placed before it fixed.

``split`` solves its modules one after another this way and ``lns`` re-solves
windows of its current schedule.  The tasks already on the
:class:`~scheduler.semantics.Timeline` are fixed: the model sees when each resource
becomes free and when each input reaches each device; the window's tasks get a
device and a start, with the common semantics inside the window.

What follows the window is summed up by ``tails``: seconds from a task's finish on a
device to the end of the schedule through the tasks after the window (what ``lns``
computes from its current schedule).  The model minimises the latest ``finish + tail``;
without tails, the window's latest finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ortools.sat.python import cp_model

from scheduler.problem import Problem
from scheduler.semantics import Timeline

from .common import Feasibility, run_cpsat
from .cpsat import seconds_below, ticks
from .exact_common import choice_vars

TICKS = 10**7  # ticks over the window's horizon


@dataclass(frozen=True)
class Window:
    """CP-SAT's answer for a window: the devices in placing order (by start), whether it proved them best, and
    its bound on the latest ``finish + tail`` in seconds (durations and transfers are rounded down to ticks,
    so the model relaxes the real one: with nothing placed before the window and no tails, a bound on the
    makespan)."""

    chosen: Mapping[str, str]
    optimal: bool
    bound: float


def solve_window(problem: Problem, tl: Timeline, feas: Feasibility, members: Sequence[str], limit: float, *,
                 workers: int = 1, seed: int = 0, tails: Mapping[str, Mapping[str, float]] | None = None,
                 hint: Mapping[str, tuple[str, float]] | None = None) -> Window | None:
    """Place ``members`` (in topological order) after what ``tl`` holds; None when CP-SAT found nothing.

    ``hint``: a (device, start) per member to start the search from.
    """
    inside = set(members)
    allowed = {t: feas.candidates(t) for t in members}
    if any(not a for a in allowed.values()):
        return None
    free = {r: tl.free_at(r) for r in problem.platform.resources}
    tail = {(t, d): (tails or {}).get(t, {}).get(d, 0.0) for t in members for d in allowed[t]}
    horizon_s = max(free.values(), default=0.0) + sum(max(problem.costs[t][d] for d in allowed[t]) for t in members)
    horizon_s += sum(max((problem.transfer(e, a, b) for a in problem.devices for b in problem.devices), default=0.0)
                     for t in members for e in problem.preds[t])
    horizon_s += max(tail.values(), default=0.0)
    tick = max(horizon_s, 1e-12) / TICKS
    horizon = ticks(horizon_s, tick) + 2
    m = cp_model.CpModel()
    p = {(t, d): lit for (_, t, d), lit in choice_vars(problem, members, allowed, 0,
                                                        lambda t, d: m.new_bool_var(f"p_{t}_{d}"),
                                                        lambda t, lits: m.add_exactly_one(lits)).items()}
    dur = {(t, d): ticks(problem.costs[t][d], tick) for t in members for d in allowed[t]}
    s = {t: m.new_int_var(0, horizon, f"s_{t}") for t in members}
    end = {t: m.new_int_var(0, horizon, f"e_{t}") for t in members}
    c = m.new_int_var(0, horizon, "C")
    on: dict[str, list[Any]] = {r: [] for r in problem.platform.resources}
    for t in members:
        m.add(end[t] == s[t] + sum(dur[t, d] * p[t, d] for d in allowed[t]))
        m.add(c >= end[t])
        for d in allowed[t]:
            if tail[t, d]:
                m.add(c >= end[t] + ticks(tail[t, d], tick)).only_enforce_if(p[t, d])
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
    hinted: set[int] = set()  # co-located tasks share their literals: each is hinted once (twice is invalid)
    for t, (d, start) in (hint or {}).items():
        if t in inside and d in allowed[t]:
            for x in allowed[t]:
                if p[t, x].index not in hinted:
                    hinted.add(p[t, x].index)
                    m.add_hint(p[t, x], x == d)
            m.add_hint(s[t], min(horizon, math.ceil(start / tick)))
    m.minimize(c)
    solver, status = run_cpsat(m, limit, minimum=0.05, workers=workers, seed=seed)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    chosen = {t: next(d for d in allowed[t] if solver.boolean_value(p[t, d])) for t in members}
    start = {t: solver.value(s[t]) for t in members}
    return Window(dict(sorted(chosen.items(), key=lambda kv: (start[kv[0]], members.index(kv[0])))),
                  optimal=status == cp_model.OPTIMAL,
                  bound=seconds_below(solver.best_objective_bound, tick) or 0.0)
