"""The execution semantics, simulated: a placement and an order become times (latency), a placement
becomes busy times per resource (throughput).

The rules (``docs/semantics.md``, which lists every place that restates them):

* a task runs non-preemptively on one device and holds all of that device's
  resources while it runs;
* the data of edge (u, v) reaches v's device at ``finish(u) + transfer`` when the
  devices differ, at ``finish(u)`` otherwise (links are not contended);
* a task starts once all inputs have arrived and its resources are free (a task
  of zero cost holds no resource: it runs the moment its inputs arrive);
* makespan = latest finish; the period is the largest busy time of a resource,
  a task's output moving once to each other device that reads it.

:func:`simulate` turns a placement and a task order into times (each task starts
as early as possible after the tasks before it in the order: no insertion); the
validator (:func:`scheduler.schedule.validate`) is independent code.  Sorting any
valid schedule by start time and re-simulating it never makes it later, so
placement + order can express every optimal schedule.

Example
-------
>>> from scheduler.graph import Edge, Task, TaskGraph
>>> from scheduler.platform import Device, Link, Platform
>>> plat = Platform("two", (Device("a"), Device("b")), (Link("a", "b", latency=0.5),))
>>> p = Problem(TaskGraph("g", (Task("x"), Task("y")), (Edge("x", "y", 0),)), plat, {"x": {"a": 1.0}, "y": {"b": 2.0}})
>>> [(t.name, t.device, t.start, t.finish) for t in simulate(p, {"x": "a", "y": "b"}).tasks]
[('x', 'a', 0.0, 1.0), ('y', 'b', 1.5, 3.5)]
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from typing import Any, Mapping, Sequence

from .errors import ScheduleError
from .problem import Problem
from .schedule import Schedule, ScheduledTask


class Timeline:
    """Incremental list scheduler under the common semantics.

    Solvers place tasks one at a time (in a topological order), asking first when a
    task could start on each device.  ``insertion=True`` lets a task fill an idle
    gap before the last task on its resources (HEFT); the default appends.
    A builder used inside one function call, never shared.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.device_of: dict[str, str] = {}
        self.start: dict[str, float] = {}
        self.finish: dict[str, float] = {}
        self._busy: dict[str, list[tuple[float, float]]] = {r: [] for r in problem.platform.resources}
        self._free: dict[str, float] = {r: 0.0 for r in problem.platform.resources}

    def ready(self, task: str, device: str) -> float:
        """When all inputs of ``task`` have arrived on ``device`` (predecessors must be placed)."""
        t = 0.0
        for e in self.problem.preds[task]:
            if e.src not in self.finish:
                raise ScheduleError(f"task {task!r} is placed before its predecessor {e.src!r}")
            t = max(t, self.finish[e.src] + self.problem.transfer(e, self.device_of[e.src], device))
        return t

    def earliest_start(self, task: str, device: str, *, insertion: bool = False) -> float:
        """Earliest start of ``task`` on ``device`` given what is placed so far."""
        ready = self.ready(task, device)
        res = self.problem.platform.device[device].resources
        duration = self.problem.costs[task][device]
        if duration == 0:  # a zero-length run holds no resource (as the validator sees it)
            return ready
        if not insertion or all(self._free[r] <= ready for r in res):  # no busy interval ends after ``ready``
            return max([ready] + [self._free[r] for r in res])
        # each resource's busy intervals are disjoint and sorted: only those from the last one starting
        # before ``ready`` on can matter; merge those tails instead of sorting everything (O(log n) + k)
        lists = [self._busy[r] for r in res]
        tails = (itertools.islice(b, max(0, bisect.bisect_left(b, (ready, -math.inf)) - 1), None) for b in lists)
        t = ready
        for s, f in heapq.merge(*tails):
            if f <= t:
                continue
            if s >= t + duration:
                break
            t = max(t, f)
        return t

    def free_at(self, resource: str) -> float:
        """When ``resource`` is last released by what is placed so far."""
        return self._free[resource]

    def place(self, task: str, device: str, start: float | None = None, *, insertion: bool = False) -> float:
        """Place ``task`` on ``device`` at ``start`` (default: earliest); returns its finish."""
        if task in self.device_of:
            raise ScheduleError(f"task {task!r} is placed twice")
        if device not in self.problem.costs[task]:
            raise ScheduleError(f"task {task!r} may not run on device {device!r}")
        if start is None:
            start = self.earliest_start(task, device, insertion=insertion)
        finish = start + self.problem.costs[task][device]
        self.device_of[task], self.start[task], self.finish[task] = device, start, finish
        if finish > start:
            for r in self.problem.platform.device[device].resources:
                bisect.insort(self._busy[r], (start, finish))
                self._free[r] = max(self._free[r], finish)
        return finish

    def schedule(self, **kwargs: Any) -> Schedule:
        """The tasks placed so far as a Schedule (``kwargs`` go to Schedule)."""
        tasks = tuple(ScheduledTask(t, self.device_of[t], self.start[t], self.finish[t])
                      for t in self.problem.tasks if t in self.device_of)
        makespan = max((t.finish for t in tasks), default=0.0)
        return Schedule(tasks=tasks, makespan=makespan, **kwargs)


def simulate(problem: Problem, placement: Mapping[str, str], order: Sequence[str] | None = None,
             **schedule_fields: Any) -> Schedule:
    """Times for ``placement`` when tasks start as early as possible in ``order``.

    ``order`` must list every task once, predecessors first (default: the graph's
    topological order).  Extra keyword arguments are passed to :class:`Schedule`.
    """
    missing = [t for t in problem.tasks if t not in placement]
    if missing:
        raise ScheduleError(f"placement has no device for task {missing[0]!r} ({len(missing)} missing)")
    extra = [t for t in placement if t not in problem.costs]
    if extra:
        raise ScheduleError(f"placement names unknown task {extra[0]!r}")
    seq = tuple(order) if order is not None else problem.graph.topological_order
    if len(seq) != len(problem.tasks) or set(seq) != set(problem.tasks):
        raise ScheduleError("order must list every task exactly once")
    tl = Timeline(problem)
    for t in seq:
        tl.place(t, placement[t])
    return tl.schedule(**schedule_fields)


def segment_timeline(problem: Problem, segments: Sequence[tuple[str, Sequence[str]]],
                     durations: Sequence[float]) -> list[tuple[float, float]]:
    """(start, finish) of runs of tasks executed as units (a replay's segments: one session call each), in the
    given order, under the same rules, plus what the problem's executor costs add.

    A segment ``(device, tasks)`` lasting ``durations[i]`` starts when its device's
    resources are free, plus the executor's switch cost on a resource that passes
    between devices, and when the inputs of its tasks from other segments have
    arrived: the problem's transfer times less the executor's share of a crossing,
    which links carry for the task-level solvers (:meth:`~scheduler.problem.ExecutorCosts.fold`)
    and the replay charges per segment, per byte and per switch instead.
    """
    ex = problem.executor
    switch = ex.switch_s if ex is not None else 0.0
    owner = {t: i for i, (_, tasks) in enumerate(segments) for t in tasks}
    span: list[tuple[float, float]] = []
    free: dict[str, tuple[float, str]] = {}  # resource -> (free at, last device)
    for i, (device, tasks) in enumerate(segments):
        resources = problem.platform.device[device].resources
        start = max([0.0] + [at + (switch if dev != device else 0.0)
                             for at, dev in (free[r] for r in resources if r in free)])
        for t in tasks:
            for e in problem.preds[t]:
                src = owner[e.src]
                if src != i:
                    a = segments[src][0]
                    share = ex.edge_s(problem.platform, a, device, e.bytes) if ex is not None else 0.0
                    start = max(start, span[src][1] + max(0.0, problem.transfer(e, a, device) - share))
        span.append((start, start + durations[i]))
        for r in resources:
            free[r] = (span[i][1], device)
    return span


# ----------------------------------------------------------------------------- throughput

def resource_loads(problem: Problem, placement: Mapping[str, str]) -> dict[str, float]:
    """Busy seconds per resource for one inference of ``placement``: its tasks plus the transfers it pays.

    A task's output moves to each other device that reads it once, however many
    readers it has there; what that costs the sender and the receiver (charged to
    every resource of each) is :meth:`Problem.transfer_load`: by default the sender
    pays the transfer for each such device; a ``staged`` sender pays the largest of
    its shares once.
    """
    devices = problem.platform.device
    busy = {r: 0.0 for r in problem.platform.resources}
    for t, a in placement.items():
        for r in devices[a].resources:
            busy[r] += problem.costs[t][a]
        readers = {placement[e.dst] for e in problem.succs[t]} - {a}
        if not readers:
            continue
        loads = {b: problem.transfer_load(t, a, b) for b in readers}
        sent = [send for send, _ in loads.values()]
        for r in devices[a].resources:
            busy[r] += max(sent) if devices[a].transfer_load == "staged" else sum(sent)
        for b, (_, received) in loads.items():
            for r in devices[b].resources:
                busy[r] += received
    return busy


def period(problem: Problem, placement: Mapping[str, str]) -> float:
    """Steady-state period of pipelined inferences of ``placement``: the largest resource busy time."""
    return max(resource_loads(problem, placement).values(), default=0.0)


def segment_period(problem: Problem, copies: Sequence[Sequence[tuple[str, float]]]) -> float:
    """Period of pipelined inferences run as segments: ``copies`` holds, per data-parallel copy, its
    segments as (device, duration) in schedule order.  Each resource is busy with the segments of every
    copy on it and a switch (``problem.executor.switch_s``) each time it passes to another device, going
    round each copy (the next inference follows the last segment); the period is the largest.

    >>> from scheduler.generate import random_problem
    >>> segment_period(random_problem(3, seed=1), [[("cpu0", 2.0), ("cpu1", 1.0), ("cpu0", 0.5)]])
    2.5
    """
    switch = problem.executor.switch_s if problem.executor is not None else 0.0
    busy: dict[str, float] = {}
    for segments in copies:
        users: dict[str, list[str]] = {}
        for device, duration in segments:
            for r in problem.platform.device[device].resources:
                busy[r] = busy.get(r, 0.0) + duration
                users.setdefault(r, []).append(device)
        for r, devices in users.items():
            busy[r] += switch * sum(a != b for a, b in zip(devices, devices[1:] + devices[:1]))
    return max(busy.values(), default=0.0)


def replicated_period(problem: Problem, placements: Sequence[Mapping[str, str]]) -> float:
    """Period when each placement is one data-parallel copy of the graph, all sharing the resources.

    Throughput is ``len(placements) / replicated_period``.
    """
    total = {r: 0.0 for r in problem.platform.resources}
    for placement in placements:
        for r, v in resource_loads(problem, placement).items():
            total[r] += v
    return max(total.values(), default=0.0)
