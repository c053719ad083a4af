"""The steps every exact solver takes, once: check, warm start, bounds, build and solve, answer.

``milp`` and ``cpsat`` differ only in their models and backends; both run
:func:`solve_exact`, which

1. refuses options that do not go together and proves infeasibility it can see at
   once (a task or group that fits no device);
2. makes the warm start (the better of HEFT and greedy; for throughput the
   load-balancing placement too), or, where none exists, asks the solver for a
   first schedule of its own (``cpsat``'s coarse pass);
3. brackets the objective: a sound lower bound (the classic and path-segments
   bounds for latency) and a feasible upper value; a warm start that meets the
   bound is the answer, with no model built;
4. calls the solver's ``run`` (build the model within the budget, warm-start it,
   solve, read the solution back as an :class:`Outcome`);
5. turns the outcome and the warm start into the answer with an honest status
   (:func:`latency_answer`, :func:`throughput_answer`).

The windowed re-solves of ``split`` and ``lns`` (:mod:`solvers.window`) take the
same steps on a window of tasks with the rest fixed: their model is built from the
same pieces (:func:`~solvers.exact_common.choice_vars`, ticks that round durations
down), warm-started from the current schedule, solved by the same
:func:`~solvers.common.run_cpsat`, and read back as a placement and a bound; the
search that calls them gives the answer, through
:func:`~solvers.common.certify_placement` like every heuristic.

Honesty rules both exact solvers follow:

* Every answer is re-simulated and validated (:func:`solvers.common.certify_placement`); the
  makespan (or period) reported is the simulated one, never the solver's value.
* ``optimal`` is claimed only when the re-simulated objective is within
  :data:`OPTIMALITY_TOLERANCE` (relative) of a *sound* lower bound: the classic
  bounds of :mod:`scheduler.bounds` or the solver's proven bound converted to real
  seconds so that it can only err low.  A solver saying "optimal" is not enough.
* ``feasible``: the exact solver's own solution, optimality not proved.
  ``heuristic``: the exact solver found nothing better than its warm start (or
  nothing at all), so the schedule returned is the heuristic's; ``info["fallback"]``
  names the heuristic and ``info["note"]`` says why.
* ``infeasible``: proved (by the solver or by a task that fits in no device's
  memory); the schedule is empty.  ``timeout-no-solution``: nothing found in time
  and no heuristic schedule exists either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from scheduler.bounds import Bound, cheap_bounds, classic_bounds
from scheduler.deadline import OutOfTime
from scheduler.errors import SolverError
from scheduler.problem import Problem
from scheduler.schedule import Period, Schedule
from scheduler.semantics import replicated_period

from .common import certify_placement, no_solution
from .exact_common import (ExactData, exact_data, infeasibility_reason, latency_hint, makespan, order_from_starts,
                           period_lower_bound, placement_errors, throughput_hint, trivial_upper_bound)

OPTIMALITY_TOLERANCE = 1e-6
"""``optimal`` means: re-simulated objective <= sound lower bound * (1 + this)."""


# ----------------------------------------------------------------------------- budget

@dataclass(frozen=True)
class Budget:
    """Wall-clock budget of one solve, counted from ``started`` (``time.perf_counter``)."""

    started: float
    time_limit: float | None

    def elapsed(self) -> float:
        """Seconds since the solve started."""
        return time.perf_counter() - self.started

    def remaining(self, reserve: float = 0.0) -> float | None:
        """Seconds left for the backend after keeping ``reserve`` for post-processing (None = no limit)."""
        if self.time_limit is None:
            return None
        return self.time_limit - self.elapsed() - reserve

    def deadline(self, reserve: float = 0.0) -> float | None:
        """The ``time.perf_counter`` value by which the backend must stop (None = no limit)."""
        if self.time_limit is None:
            return None
        return self.started + self.time_limit - reserve


def check_options(solver: str, objective: str, replicas: int) -> None:
    """Reject options that do not go together (each one's type and range the registry checks)."""
    if replicas > 1 and objective != "throughput":
        raise SolverError(f"solver {solver!r}: replicas applies to objective='throughput' only")


# ----------------------------------------------------------------------------- outcomes

@dataclass(frozen=True)
class Outcome:
    """What an exact backend found, in real seconds.

    ``placements``: one placement per copy (latency: exactly one), or None when the
    backend found nothing.  ``starts``: solver start times of copy 0 (latency only).
    ``bound``: a *sound* lower bound on the optimal objective (seconds), or None.
    ``infeasible``: the backend proved that no placement exists.
    """

    placements: tuple[Mapping[str, str], ...] | None
    starts: Mapping[str, float] | None
    bound: float | None
    infeasible: bool
    info: Mapping[str, Any]


def _status(value: float, bound: float, from_solver: bool) -> str:
    if value <= bound * (1 + OPTIMALITY_TOLERANCE) + 1e-15:
        return "optimal"
    return "feasible" if from_solver else "heuristic"


def empty_answer(problem: Problem, *, solver: str, started: float, status: str, reason: str,
                 objective: str, info: Mapping[str, Any]) -> Schedule:
    """An answer with no tasks (``infeasible`` or ``timeout-no-solution``), with the backend's info."""
    s = no_solution(problem, solver=solver, started=started, reason=reason, status=status)
    return replace(s, objective=objective, info={**info, **s.info})


def objective_range(problem: Problem, data: ExactData, objective: str, replicas: int, latency: Schedule | None,
                    throughput: tuple[Mapping[str, str], ...] | None,
                    known: tuple[Bound, ...] = ()) -> tuple[float, float | None, float]:
    """(sound lower bound, warm start's value or None, a feasible upper value) of the objective; ``known``:
    latency bounds already computed (:func:`scheduler.bounds.cheap_bounds`), else the classic ones."""
    if objective == "throughput":
        lower = period_lower_bound(problem, replicas)
        found = replicated_period(problem, throughput) if throughput is not None else None
        return lower, found, found if found is not None else replicas * trivial_upper_bound(problem, data)
    found = latency.makespan if latency is not None else None
    trivial = trivial_upper_bound(problem, data)
    lower = max(b.value for b in known or classic_bounds(problem))
    return lower, found, trivial if found is None else min(found, trivial)


def _trust_hint_over_infeasible(outcome: Outcome, has_hint: bool, info: dict[str, Any], solver: str) -> Outcome:
    """A backend's "infeasible" cannot stand against a valid warm start: keep the hint and warn."""
    if outcome.infeasible and has_hint:
        info["warning"] = f"{solver} reported infeasible although its warm start is valid (model bug)"
        return replace(outcome, infeasible=False, bound=None)
    return outcome


def _adopt(problem: Problem, hint: Schedule, *, solver: str, started: float, info: Mapping[str, Any],
           extra_bounds: tuple[Bound, ...]) -> Schedule:
    """The hint as this solver's answer.  A heuristic's hint was simulated, validated and bounded when it
    was made: only the solver's own bound is added (simulating 20000 tasks again costs a second)."""
    if hint.lower_bound is None:  # a coarse first pass: not certified yet
        return certify_placement(problem, hint.placement, hint.order(problem), solver=solver, started=started,
                                 status="heuristic", info=info, extra_bounds=extra_bounds)
    bound = max((Bound(hint.info.get("bound", "classic"), hint.lower_bound), *extra_bounds), key=lambda b: b.value)
    return replace(hint, solver=solver, status="heuristic", lower_bound=bound.value,
                   solve_seconds=time.perf_counter() - started, info={**info, "bound": bound.name})


def latency_answer(problem: Problem, outcome: Outcome, hint: Schedule | None, *, solver: str,
                   started: float, hint_is_exact: bool = False, known: tuple[Bound, ...] = ()) -> Schedule:
    """The final latency Schedule: the better of the backend's and the hint's, with an honest status.

    ``hint_is_exact``: the hint came from the exact solver itself (a coarse first
    pass), so returning it is ``feasible``, not a heuristic fallback.  ``known``:
    bounds computed before solving (a schedule that meets one is optimal too).
    """
    info = dict(outcome.info)
    outcome = _trust_hint_over_infeasible(outcome, hint is not None, info, solver)
    if outcome.infeasible:
        return empty_answer(problem, solver=solver, started=started, status="infeasible", objective="latency",
                            reason=info.get("reason", f"{solver} proved the problem infeasible"), info=info)
    extra = tuple(known) + ((Bound(f"{solver}-dual", outcome.bound),) if outcome.bound is not None else ())
    mine: Schedule | None = None
    if outcome.placements is not None:
        placement = outcome.placements[0]
        errs = placement_errors(problem, [placement])
        if errs:
            info["rejected_solution"] = errs[0]
        else:
            order = order_from_starts(problem, outcome.starts or {t: 0.0 for t in problem.tasks})
            mine = certify_placement(problem, placement, order, solver=solver, started=started, status="feasible",
                                     info=info, extra_bounds=extra)
    theirs: Schedule | None = None
    if hint is not None and (mine is None or makespan(hint) < makespan(mine) * (1 - 1e-12)):
        if hint_is_exact:
            info = {**info, "source": hint.solver}
        else:
            info = {**info, "fallback": hint.solver,
                    "note": (f"{solver} found no solution better than its {hint.solver} warm start; "
                             f"this is the {hint.solver} schedule")}
        theirs = _adopt(problem, hint, solver=solver, started=started, info=info, extra_bounds=extra)
        if hint_is_exact:
            mine = theirs
    best = theirs or mine
    if best is None:
        return empty_answer(problem, solver=solver, started=started, status="timeout-no-solution",
                            objective="latency", info=info,
                            reason=info.get("reason", f"{solver} found no solution within the time limit"))
    status = _status(makespan(best), best.lower_bound or 0.0, from_solver=best is mine)
    return replace(best, status=status, info={**best.info, "gap": best.gap})


def throughput_answer(problem: Problem, outcome: Outcome, hint: tuple[Mapping[str, str], ...] | None, *,
                      solver: str, started: float, replicas: int) -> Schedule:
    """The final throughput Schedule: ``period`` is the objective (with every copy's placement when there are
    several); ``makespan`` is copy 0's latency."""
    info = dict(outcome.info)
    outcome = _trust_hint_over_infeasible(outcome, hint is not None, info, solver)
    if outcome.infeasible:
        return empty_answer(problem, solver=solver, started=started, status="infeasible", objective="throughput",
                            reason=info.get("reason", f"{solver} proved the problem infeasible"), info=info)
    candidates: list[tuple[tuple[Mapping[str, str], ...], bool]] = []
    if outcome.placements is not None:
        errs = placement_errors(problem, outcome.placements)
        if errs:
            info["rejected_solution"] = errs[0]
        else:
            candidates.append((outcome.placements, True))
    if hint is not None:
        candidates.append((hint, False))
    if not candidates:
        return empty_answer(problem, solver=solver, started=started, status="timeout-no-solution",
                            objective="throughput", info=info,
                            reason=info.get("reason", f"{solver} found no solution within the time limit"))
    placements, from_solver = min(candidates, key=lambda c: (replicated_period(problem, c[0]), not c[1]))
    value = replicated_period(problem, placements)
    bound = max(period_lower_bound(problem, replicas), outcome.bound if outcome.bound is not None else 0.0)
    if not from_solver:
        info["fallback"] = "load-greedy/heft"
        info["note"] = f"{solver} found no placement better than its heuristic warm start; this is the heuristic's"
    s = certify_placement(problem, placements[0], None, solver=solver, started=started, info=info)
    per = Period(value, bound, replicas, tuple(dict(p) for p in placements) if replicas > 1 else ())
    return replace(s, objective="throughput", status=_status(value, bound, from_solver), period=per)


# ----------------------------------------------------------------------------- the steps

@dataclass(frozen=True)
class Start:
    """What a solver's model is built from: the instance data, the warm starts, the objective's range
    (seconds), the budget, and the info dict the run fills in (build time, backend status...)."""

    problem: Problem
    data: ExactData
    budget: Budget
    objective: str
    replicas: int
    latency: Schedule | None  # the latency warm start (for throughput too: copy 0's order)
    throughput: tuple[Mapping[str, str], ...] | None  # the throughput warm start, one placement per copy
    lower: float
    found: float | None  # the warm start's objective
    upper: float  # a feasible objective value
    info: dict[str, Any]


Run = Callable[[Start], Outcome]
"""A solver's model: build it within ``start.budget`` (raising OutOfTime when the budget runs out), solve it,
and read its answer back."""
FirstSchedule = Callable[[ExactData, Budget, dict[str, Any]], tuple[Schedule | None, str | None]]
"""Where no heuristic finds a schedule: (a first schedule or None, the proof that none exists or None)."""


def solve_exact(problem: Problem, *, solver: str, time_limit: float | None, objective: str, replicas: int,
                info: dict[str, Any], run: Run, first_schedule: FirstSchedule | None = None) -> Schedule:
    """The steps of the module docstring for ``solver`` with its ``run``; ``info`` starts the answer's info."""
    started = time.perf_counter()
    check_options(solver, objective, replicas)
    budget = Budget(started, time_limit)
    data = exact_data(problem, with_pairs=False)  # the pairs (quadratic) are the run's to add, within its time
    reason = infeasibility_reason(problem, data)
    if reason:
        return empty_answer(problem, solver=solver, started=started, status="infeasible", objective=objective,
                            reason=reason, info=info)
    latency = latency_hint(problem, budget.deadline())
    throughput = throughput_hint(problem, data, replicas, latency) if objective == "throughput" else None
    coarse = False
    if latency is None and objective == "latency" and first_schedule is not None:
        latency, proof = first_schedule(data, budget, info)
        if proof is not None:
            info["reason"] = proof
            return empty_answer(problem, solver=solver, started=started, status="infeasible", objective=objective,
                                reason=info["reason"], info=info)
        coarse = latency is not None
    known: tuple[Bound, ...] = cheap_bounds(problem) if objective == "latency" else ()

    def answer(out: Outcome) -> Schedule:
        if objective == "throughput":
            return throughput_answer(problem, out, throughput, solver=solver, started=started, replicas=replicas)
        return latency_answer(problem, out, latency, solver=solver, started=started, hint_is_exact=coarse,
                              known=known)

    nothing = Outcome(None, None, None, False, info)
    lower, found, upper = objective_range(problem, data, objective, replicas, latency, throughput, known)
    if found is not None and found <= lower * (1 + 1e-6):
        info["note_skip"] = "the warm start meets the lower bound; no model solved"
        return answer(nothing)
    t0 = time.perf_counter()
    try:
        outcome = run(Start(problem, data, budget, objective, replicas, latency, throughput, lower, found, upper,
                            info))
    except OutOfTime:
        info["reason"] = f"time limit reached while building the model ({time.perf_counter() - t0:.2f} s)"
        return answer(nothing)
    return answer(outcome)
