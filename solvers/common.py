"""Helpers every solver shares: certifying a placement, running CP-SAT, and tracking constraints while placing.

A solver's answer always goes through :func:`certify_placement`, which re-simulates the
placement under the one execution semantics, validates it (an invalid schedule is
a bug and raises), and attaches the lower bound and the solve time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Annotated, Any, Literal, Mapping, Sequence

from ortools.sat.python import cp_model
from pydantic import Field

from scheduler.bounds import Bound, best_bound
from scheduler.errors import SolverError
from scheduler.problem import Problem
from scheduler.schedule import Schedule, validate
from scheduler.semantics import Timeline, simulate


# Option types: the registry checks every option against these (types and ranges) before a solve.
Positive = Annotated[int, Field(ge=1)]
Workers = Annotated[int, Field(ge=1, le=256)]
Replicas = Annotated[int, Field(ge=1, le=1000)]  # B graph copies: the models grow with B
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Objective = Literal["latency", "throughput"]


def certify_placement(problem: Problem, placement: Mapping[str, str], order: Sequence[str] | None = None, *,
                      solver: str, started: float, status: str = "heuristic",
                      info: Mapping[str, Any] | None = None, extra_bounds: tuple[Bound, ...] = ()) -> Schedule:
    """A solver's placement (+ order) as a Schedule: simulated, validated, and given the best classic bound
    (the run then gives every schedule the best bound of all: :func:`scheduler.pipeline.certify_schedules`)."""
    sched = simulate(problem, placement, order)
    errors = validate(problem, sched)
    if errors:
        raise SolverError(f"solver {solver!r} produced an invalid schedule: {errors[0]}")
    bound = best_bound(problem, extra_bounds)
    return replace(sched, solver=solver, status=status, lower_bound=bound.value,
                   solve_seconds=time.perf_counter() - started,
                   info={**(info or {}), "bound": bound.name})


def run_cpsat(model: cp_model.CpModel, limit: float | None = None, *, minimum: float = 0.01,
              workers: int | None = None, seed: int | None = None, first: bool = False,
              subsolvers: Sequence[str] = ()) -> tuple[cp_model.CpSolver, Any]:
    """CP-SAT on ``model`` (every CP-SAT model of the exact solvers and the windows): at most ``limit`` s but
    at least ``minimum``, with ``workers`` and ``seed`` (None: CP-SAT's defaults), ``first``: stop at the
    first solution, ``subsolvers``: the full searches of the portfolio; returns the solver and the status."""
    solver = cp_model.CpSolver()
    solver.parameters.stop_after_first_solution = first
    if workers is not None:
        solver.parameters.num_workers = workers
    if seed is not None:
        solver.parameters.random_seed = seed
    if subsolvers:
        solver.parameters.num_full_subsolvers = len(subsolvers)
        solver.parameters.subsolvers.extend(subsolvers)
    if limit is not None:
        solver.parameters.max_time_in_seconds = max(minimum, limit)
    return solver, _solve_interruptibly(solver, model)


def _solve_interruptibly(solver: cp_model.CpSolver, model: cp_model.CpModel) -> Any:
    """``solver.solve(model)`` that Ctrl-C stops at once, with Python's own handling of it.

    CP-SAT would otherwise catch SIGINT itself (the search ends quietly and the
    run goes on) and leave the process without Python's handler afterwards.  Here
    it does not catch it; the search runs in a thread while the main thread waits
    on an event (a KeyboardInterrupt inside ``Thread.join`` can leave the thread
    looking finished while it still runs), so a KeyboardInterrupt stops the search,
    waits for it to end, and propagates.
    """
    solver.parameters.catch_sigint_signal = False
    result: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            result.append(solver.solve(model))
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    try:
        while not done.wait(0.05):
            pass
    except KeyboardInterrupt:
        solver.stop_search()
        done.wait()
        raise
    if not result:
        raise SolverError("CP-SAT stopped without an answer")
    return result[0]


def no_solution(problem: Problem, *, solver: str, started: float, reason: str,
                status: str = "no-solution") -> Schedule:
    """An empty answer that says why nothing was found (never claims infeasibility unless told)."""
    return Schedule(tasks=(), makespan=None, solver=solver, status=status,
                    lower_bound=best_bound(problem).value, solve_seconds=time.perf_counter() - started,
                    info={"reason": reason})


class Feasibility:
    """Memory and co-location bookkeeping for heuristics that place one task at a time.

    The first member of a co-location group placed on a device reserves the memory
    of the whole group there and fixes the device for the rest of the group.
    A builder used inside one solver call, never shared.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.used: dict[str, int] = {d: 0 for d in problem.devices}
        self.group_device: dict[str, str] = {}

    def need(self, task: str) -> int:
        """Bytes placing ``task`` now adds: its own, its whole group's for a group's first member, else 0."""
        group = self.problem.colocate.get(task)
        if group is None:
            return self.problem.memory(task)
        if group in self.group_device:
            return 0
        return sum(self.problem.memory(m) for m in self.problem.groups[group])

    def candidates(self, task: str) -> tuple[str, ...]:
        """Devices where ``task`` can go now without breaking memory or co-location."""
        group = self.problem.colocate.get(task)
        if group is not None and group in self.group_device:
            return (self.group_device[group],)
        allowed = self.problem.allowed(task)
        if group is not None:
            allowed = tuple(d for d in allowed if all(d in self.problem.costs[m] for m in self.problem.groups[group]))
        need = self.need(task)
        out = []
        for d in allowed:
            cap = self.problem.platform.device[d].memory_bytes
            if cap is None or self.used[d] + need <= cap:
                out.append(d)
        return tuple(out)

    def commit(self, task: str, device: str) -> None:
        """Record that ``task`` sits on ``device``."""
        self.used[device] += self.need(task)
        group = self.problem.colocate.get(task)
        if group is not None:
            self.group_device.setdefault(group, device)


def earliest_finish(problem: Problem, timeline: Timeline, task: str, devices: Sequence[str], *,
                    insertion: bool) -> tuple[str, float]:
    """The device of ``devices`` where ``task`` finishes earliest (ties: the one where it costs less), and its
    start there (``insertion``: in the first idle gap it fits, else after the device's last task)."""
    starts = {d: timeline.earliest_start(task, d, insertion=insertion) for d in devices}
    device = min(devices, key=lambda d: (starts[d] + problem.costs[task][d], problem.costs[task][d]))
    return device, starts[device]


def place_in_order(problem: Problem, tl: Timeline, feas: Feasibility, chosen: Mapping[str, str | None], *,
                   insertion: bool = False) -> bool:
    """Place the tasks of ``chosen`` in its order, each on its device; where that is None or has no room left
    (memory, co-location), on the candidate where it finishes earliest (``insertion``: each into the first
    idle gap it fits).  False when a task has no device left (the timeline then holds the tasks before it).
    """
    for t, d in chosen.items():
        cands = feas.candidates(t)
        if not cands:
            return False
        if d not in cands:
            d = min(cands, key=lambda x: tl.earliest_start(t, x, insertion=insertion) + problem.costs[t][x])
        tl.place(t, d, insertion=insertion)
        feas.commit(t, d)
    return True
