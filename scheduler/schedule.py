"""Schedule: a placement with start/finish times (latency) and a period (throughput), the independent
validator, and the schedule file format.

:func:`validate` lists every way a schedule breaks the execution semantics
(``docs/semantics.md``; simulated in :mod:`scheduler.semantics`).  It checks given
times against the rules and never recomputes them, so that a simulator bug cannot
hide itself.

Example
-------
>>> from scheduler.generate import random_problem
>>> from scheduler.semantics import simulate
>>> p = random_problem(5, seed=1)
>>> validate(p, simulate(p, {t: "cpu0" for t in p.tasks}))
[]"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from .errors import HetschedError, ScheduleError
from .fileio import read_json, write_json
from .problem import Problem
from .schema import FileModel, Finite, Positive, Text, exactly, parse

FORMAT = "hetsched-schedule/1"
STATUSES = ("optimal", "feasible", "heuristic", "infeasible", "timeout-no-solution", "no-solution")


@dataclass(frozen=True)
class ScheduledTask:
    """Where and when one task runs."""

    name: str
    device: str
    start: float
    finish: float


def _gap(value: float, bound: float | None) -> float | None:
    """``value / bound - 1`` for a positive bound (None otherwise); negative only when the bound is unsound,
    but for rounding: a bound equal to the value within 1e-9 relative is a 0 gap."""
    if not bound:
        return None
    gap = value / bound - 1.0
    return 0.0 if -1e-9 < gap < 0 else gap


@dataclass(frozen=True)
class Period:
    """A throughput answer: the steady-state period (s) of ``replicas`` pipelined copies of the graph, a sound
    lower bound on it, and each copy's placement when the copies differ (copy 0's is the schedule's own).

    >>> p = Period(0.004, bound=0.003, replicas=2)
    >>> round(p.throughput), round(p.gap, 3)
    (500, 0.333)
    """

    value: float
    bound: float | None = None
    replicas: int = 1
    placements: tuple[Mapping[str, str], ...] = ()

    @property
    def throughput(self) -> float:
        """Inferences per second: ``replicas / value``."""
        return self.replicas / self.value if self.value > 0 else math.inf

    @property
    def gap(self) -> float | None:
        """``value / bound - 1`` when the bound is known and positive, read like :attr:`Schedule.gap`."""
        return _gap(self.value, self.bound)


@dataclass(frozen=True)
class Schedule:
    """A solver's answer: times per task plus status and certificate data.

    ``status``: ``optimal`` (proved), ``feasible`` (valid, optimality not proved by
    an exact solver), ``heuristic`` (valid, from a heuristic), ``infeasible``
    (proved that no schedule exists), ``timeout-no-solution`` and ``no-solution``
    (nothing found; ``tasks`` is empty and ``makespan`` None).
    """

    tasks: tuple[ScheduledTask, ...]
    makespan: float | None
    solver: str = ""
    status: str = "heuristic"
    lower_bound: float | None = None
    solve_seconds: float = 0.0
    objective: str = "latency"
    info: Mapping[str, Any] = field(default_factory=dict)
    period: Period | None = None  # the throughput answer (objective "throughput"); makespan is copy 0's latency

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ScheduleError(f"unknown schedule status {self.status!r} (known: {', '.join(STATUSES)})")

    @property
    def gap(self) -> float | None:
        """``makespan / lower_bound - 1`` when both are known and the bound is positive (negative only
        when the bound is unsound, which :func:`scheduler.pipeline.certify_schedules` refuses)."""
        return None if self.makespan is None else _gap(self.makespan, self.lower_bound)

    @cached_property
    def placement(self) -> Mapping[str, str]:
        """Task -> device."""
        return {t.name: t.device for t in self.tasks}

    @property
    def copies(self) -> tuple[Mapping[str, str], ...]:
        """The placement of every data-parallel copy: its period's, else its own placement (one copy)."""
        return tuple(self.period.placements) if self.period and self.period.placements else (self.placement,)

    @cached_property
    def by_name(self) -> Mapping[str, ScheduledTask]:
        """Task -> its entry."""
        return {t.name: t for t in self.tasks}

    def order(self, problem: Problem) -> tuple[str, ...]:
        """Tasks by start time (ties by finish, then topological order): an order :func:`simulate` accepts."""
        topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
        by = self.by_name
        return tuple(sorted((t.name for t in self.tasks), key=lambda n: (by[n].start, by[n].finish, topo[n])))

    @property
    def found(self) -> bool:
        """Whether the schedule holds a placement."""
        return self.makespan is not None


# ----------------------------------------------------------------------------- validation

def validate(problem: Problem, schedule: Schedule, tol: float = 1e-9) -> list[str]:
    """Every violation of the execution semantics and constraints, one line each ([] = valid).

    Checks: each task placed once on a known, allowed device; duration equals the
    cost; start >= 0; precedence including the transfer delay; no overlap on a
    shared resource; memory per device; co-location; makespan = latest finish.
    Times compare with tolerance ``tol * makespan`` (relative: costs may be µs or hours).
    """
    if not schedule.found:
        return [] if not schedule.tasks else ["a schedule without makespan lists tasks"]
    errs: list[str] = []
    eps = tol * abs(schedule.makespan or 0.0) + 1e-300
    seen: dict[str, ScheduledTask] = {}
    for st in schedule.tasks:
        if st.name in seen:
            errs.append(f"task {st.name!r} is scheduled twice")
            continue
        seen[st.name] = st
        if st.name not in problem.costs:
            errs.append(f"unknown task {st.name!r}")
            continue
        if st.device not in problem.platform.device:
            errs.append(f"task {st.name!r} is on unknown device {st.device!r}")
            continue
        cost = problem.costs[st.name].get(st.device)
        if cost is None:
            errs.append(f"task {st.name!r} is on device {st.device!r}, which may not run it")
            continue
        if st.start < -eps:
            errs.append(f"task {st.name!r} starts before 0 ({st.start:g})")
        if abs((st.finish - st.start) - cost) > eps:
            errs.append(f"task {st.name!r} runs {st.finish - st.start:g} s on {st.device!r}, but costs {cost:g} s")
    for t in problem.tasks:
        if t not in seen:
            errs.append(f"task {t!r} is not scheduled")
    if errs:
        return errs

    for e in problem.graph.edges:
        u, v = seen[e.src], seen[e.dst]
        arrival = u.finish + problem.transfer(e, u.device, v.device)
        if v.start < arrival - eps:
            errs.append(f"task {v.name!r} starts at {v.start:g} before its input from {u.name!r} arrives at {arrival:g}")

    by_resource: dict[str, list[ScheduledTask]] = {r: [] for r in problem.platform.resources}
    for st in schedule.tasks:
        for r in problem.platform.device[st.device].resources:
            by_resource[r].append(st)
    for r, items in by_resource.items():
        items.sort(key=lambda s: (s.start, s.finish))
        latest: ScheduledTask | None = None
        for st in items:
            if latest is not None and st.start < latest.finish - eps and st.finish > st.start:
                errs.append(f"tasks {latest.name!r} ({latest.device}) and {st.name!r} ({st.device}) overlap on resource {r!r}")
            if latest is None or st.finish > latest.finish:
                latest = st

    used: dict[str, int] = {}
    for st in schedule.tasks:
        used[st.device] = used.get(st.device, 0) + problem.memory(st.name)
    for dname, total in used.items():
        cap = problem.platform.device[dname].memory_bytes
        if cap is not None and total > cap:
            errs.append(f"device {dname!r} holds {total} bytes, over its capacity of {cap}")

    for group, members in problem.groups.items():
        devs = {seen[m].device for m in members}
        if len(devs) > 1:
            errs.append(f"colocation group {group!r} is split over devices {sorted(devs)}")

    latest_finish = max((st.finish for st in schedule.tasks), default=0.0)
    if abs(latest_finish - schedule.makespan) > eps:
        errs.append(f"makespan {schedule.makespan:g} differs from the latest finish {latest_finish:g}")
    if schedule.objective == "latency":  # what the file claims must agree with its own numbers
        bound = schedule.lower_bound
        if bound is not None and bound > schedule.makespan + eps:
            errs.append(f"lower bound {bound:g} is above the makespan {schedule.makespan:g}")
        if schedule.status == "optimal" and (bound is None or schedule.makespan > bound * (1 + 1e-6) + eps):
            errs.append("status 'optimal' without a lower bound that proves it" if bound is None else
                        f"status 'optimal', but the makespan is {schedule.makespan / bound - 1:.3%} above the "
                        f"lower bound {bound:g}")
    return errs


# ----------------------------------------------------------------------------- file I/O

def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """The ``hetsched-schedule/1`` structure."""
    return {
        "format": FORMAT,
        "solver": schedule.solver,
        "status": schedule.status,
        "objective": schedule.objective,
        "makespan": schedule.makespan,
        "lower_bound": schedule.lower_bound,
        "gap": schedule.gap,
        "solve_seconds": schedule.solve_seconds,
        "info": dict(schedule.info),
        "period": None if schedule.period is None else {
            "value": schedule.period.value, "bound": schedule.period.bound, "replicas": schedule.period.replicas,
            "throughput": schedule.period.throughput, "gap": schedule.period.gap,
            "placements": [dict(p) for p in schedule.period.placements]},
        "tasks": [{"name": t.name, "device": t.device, "start": t.start, "finish": t.finish} for t in schedule.tasks],
    }


class TaskTimesRecord(FileModel):
    name: Text
    device: Text
    start: Finite
    finish: Finite


class PeriodRecord(FileModel):
    """A schedule file's ``period``; throughput and gap are derived from it, never read."""

    value: Finite
    bound: Finite | None = None
    replicas: Positive = 1
    throughput: Finite | None = None
    gap: Finite | None = None
    placements: list[dict[Text, Text]] = []


class ScheduleRecord(FileModel):
    """A ``hetsched-schedule/1`` file (``gap`` is derived, never read)."""

    format: exactly(FORMAT)  # type: ignore[valid-type]
    solver: Text = ""
    status: Text = "feasible"
    objective: Text = "latency"
    makespan: Finite | None = None
    lower_bound: Finite | None = None
    gap: Finite | None = None
    solve_seconds: Finite | None = None
    info: dict[Text, Any] | None = None
    period: PeriodRecord | None = None
    tasks: list[TaskTimesRecord] = []


def schedule_from_dict(data: Any, where: str = "schedule") -> Schedule:
    """Parse the ``hetsched-schedule/1`` structure; every error names the file and the key."""
    record = parse(ScheduleRecord, data, where, ScheduleError)
    period = record.period
    try:
        return Schedule(
            tasks=tuple(ScheduledTask(t.name, t.device, t.start, t.finish) for t in record.tasks),
            makespan=record.makespan, solver=record.solver, status=record.status,
            lower_bound=record.lower_bound, solve_seconds=record.solve_seconds or 0.0,
            objective=record.objective, info=dict(record.info or {}),
            period=None if period is None else Period(period.value, period.bound, period.replicas,
                                                      tuple(dict(p) for p in period.placements)),
        )
    except HetschedError as exc:
        raise ScheduleError(f"{where}: {exc}") from None


def read_schedule(path: str | os.PathLike[str]) -> Schedule:
    """Read a schedule file."""
    return schedule_from_dict(read_json(path, "schedule"), where=os.fspath(path))


def write_schedule(schedule: Schedule, path: str | os.PathLike[str]) -> None:
    """Write a schedule file atomically."""
    write_json(path, schedule_to_dict(schedule))
