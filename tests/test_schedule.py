"""simulate() against hand-computed timelines; validate() catches each kind of violation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scheduler.errors import ScheduleError
from scheduler.graph import Edge, Task, TaskGraph
from scheduler.platform import Device, Link, Platform
from scheduler.problem import Problem
from scheduler.schedule import (Period, Schedule, ScheduledTask, read_schedule, schedule_from_dict, validate,
                                write_schedule)
from scheduler.semantics import simulate


def two_device_problem(**kw) -> Problem:
    """x -> y (20 bytes); A and B separate; link latency 1 s, 10 B/s."""
    plat = Platform("p", (Device("A", resources=("a",)), Device("B", resources=("b",))), (Link("A", "B", 1.0, 10.0),))
    graph = TaskGraph("g", (Task("x"), Task("y")), (Edge("x", "y", 20),))
    return Problem(graph, plat, {"x": {"A": 2.0, "B": 3.0}, "y": {"A": 4.0, "B": 1.0}}, **kw)


def cores_problem() -> Problem:
    """Independent a, b and c <- (a, b) on cpu0 / cpu1 / cpu-par (cpu-par holds both cores); free links."""
    plat = Platform("cores", (Device("cpu0", resources=("core0",)), Device("cpu1", resources=("core1",)),
                              Device("cpu-par", resources=("core0", "core1"))), default_link=Link("*", "*"))
    graph = TaskGraph("g", (Task("a"), Task("b"), Task("c")), (Edge("a", "c", 0), Edge("b", "c", 0)))
    costs = {"a": {"cpu0": 3.0, "cpu1": 3.0, "cpu-par": 2.0}, "b": {"cpu0": 2.0, "cpu1": 2.0, "cpu-par": 1.0},
             "c": {"cpu0": 4.0, "cpu1": 4.0, "cpu-par": 2.5}}
    return Problem(graph, plat, costs)


def test_transfer_delay_across_devices():
    s = simulate(two_device_problem(), {"x": "A", "y": "B"})
    # x on A [0, 2]; data arrives 2 + 1 + 20/10 = 5; y on B [5, 6]
    assert [(t.start, t.finish) for t in s.tasks] == [(0.0, 2.0), (5.0, 6.0)]
    assert s.makespan == 6.0


def test_no_transfer_on_same_device():
    s = simulate(two_device_problem(), {"x": "B", "y": "B"})
    assert s.makespan == 4.0


def test_explicit_transfer_overrides_link():
    p = two_device_problem(transfer_override={("x", "y"): 0.5})
    assert simulate(p, {"x": "A", "y": "B"}).makespan == 2.0 + 0.5 + 1.0


def test_separate_cores_run_in_parallel():
    s = simulate(cores_problem(), {"a": "cpu0", "b": "cpu1", "c": "cpu0"})
    assert s.by_name["b"].start == 0.0 and s.by_name["a"].start == 0.0
    assert s.makespan == 3.0 + 4.0


def test_device_sharing_two_cores_waits_for_both():
    p = cores_problem()
    s = simulate(p, {"a": "cpu0", "b": "cpu1", "c": "cpu-par"})
    assert s.by_name["c"].start == 3.0 and s.makespan == 5.5
    # b on cpu-par needs core0, busy with a until 3: in order a, b it starts at 3
    s = simulate(p, {"a": "cpu0", "b": "cpu-par", "c": "cpu1"}, order=["a", "b", "c"])
    assert (s.by_name["b"].start, s.makespan) == (3.0, 8.0)
    # in order b, a it runs first and a waits for it
    s = simulate(p, {"a": "cpu0", "b": "cpu-par", "c": "cpu1"}, order=["b", "a", "c"])
    assert (s.by_name["b"].start, s.by_name["a"].start, s.makespan) == (0.0, 1.0, 8.0)
    assert validate(p, s) == []


def test_simulate_rejects_bad_input():
    p = cores_problem()
    with pytest.raises(ScheduleError, match="no device for task"):
        simulate(p, {"a": "cpu0"})
    with pytest.raises(ScheduleError, match="before its predecessor"):
        simulate(p, {"a": "cpu0", "b": "cpu0", "c": "cpu0"}, order=["c", "a", "b"])
    with pytest.raises(ScheduleError, match="every task exactly once"):
        simulate(p, {"a": "cpu0", "b": "cpu0", "c": "cpu0"}, order=["a", "b"])
    with pytest.raises(ScheduleError, match="may not run"):
        simulate(two_device_problem(), {"x": "A", "y": "C"})


def _valid() -> tuple[Problem, Schedule]:
    p = cores_problem()
    return p, simulate(p, {"a": "cpu0", "b": "cpu1", "c": "cpu-par"})


def _edit(s: Schedule, name: str, **kw) -> Schedule:
    return replace(s, tasks=tuple(replace(t, **kw) if t.name == name else t for t in s.tasks))


def test_valid_schedule_has_no_violation():
    p, s = _valid()
    assert validate(p, s) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda s: _edit(s, "c", start=2.0, finish=4.5), "before its input"),
    (lambda s: _edit(s, "a", finish=2.0), "but costs"),
    (lambda s: _edit(s, "a", device="gpu"), "unknown device"),
    (lambda s: _edit(s, "b", start=-1.0, finish=1.0), "starts before 0"),
    (lambda s: replace(s, makespan=7.0), "differs from the latest finish"),
    (lambda s: replace(s, tasks=s.tasks[:2]), "is not scheduled"),
    (lambda s: replace(s, tasks=s.tasks + s.tasks[:1]), "scheduled twice"),
    (lambda s: replace(s, tasks=s.tasks + (ScheduledTask("zz", "cpu0", 0, 1),)), "unknown task"),
    # b moved to cpu-par [0, 1] overlaps a on cpu0 [0, 3] through core0
    (lambda s: _edit(s, "b", device="cpu-par", finish=1.0), "overlap on resource 'core0'"),
])
def test_validate_catches(mutate, expected):
    p, s = _valid()
    errors = validate(p, mutate(s))
    assert errors and any(expected in e for e in errors), errors


@pytest.mark.parametrize("scale", [1e-9, 1e-6, 1e-3, 1.0])
def test_validate_catches_violations_a_hundredth_of_a_task_long_at_every_scale(scale):
    """The same schedule in ns, µs, ms and s: a start 1% of a task early, an overlap of 1% of a task, a
    duration 1% short are caught; the exact schedule passes."""
    base = cores_problem()
    p = Problem(base.graph, base.platform, {t: {d: c * scale for d, c in row.items()} for t, row in base.costs.items()})
    s = simulate(p, {"a": "cpu0", "b": "cpu1", "c": "cpu-par"})  # a [0, 3], b [0, 2], c [3, 5.5] (x scale)
    assert validate(p, s) == []
    d = 0.01 * scale
    early = _edit(s, "c", start=3 * scale - d, finish=5.5 * scale - d)
    assert any("before its input" in e for e in validate(p, replace(early, makespan=5.5 * scale - d)))
    overlap = _edit(_edit(s, "b", device="cpu-par", start=3 * scale - d, finish=4 * scale - d), "c",
                    start=4 * scale - d, finish=6.5 * scale - d)
    assert any("overlap on resource" in e for e in validate(p, replace(overlap, makespan=6.5 * scale - d)))
    assert any("but costs" in e for e in validate(p, _edit(s, "a", finish=3 * scale - d)))


def test_validate_catches_disallowed_device():
    p = two_device_problem()
    p = Problem(p.graph, p.platform, {"x": {"A": 2.0}, "y": {"A": 4.0, "B": 1.0}})
    s = Schedule((ScheduledTask("x", "B", 0, 3), ScheduledTask("y", "B", 3, 4)), makespan=4)
    assert any("may not run it" in e for e in validate(p, s))


def test_validate_catches_memory_and_colocation():
    base = two_device_problem()
    plat = Platform("p", (Device("A", resources=("a",), memory_bytes=10), Device("B", resources=("b",))),
                    base.platform.links)
    graph = TaskGraph("g", (Task("x", memory_bytes=8), Task("y", memory_bytes=8)), base.graph.edges)
    p = Problem(graph, plat, base.costs, colocate={"x": "g1", "y": "g1"})
    over = simulate(p, {"x": "A", "y": "A"})
    assert any("over its capacity" in e for e in validate(p, over))
    split = simulate(p, {"x": "A", "y": "B"})
    assert any("colocation group 'g1' is split" in e for e in validate(p, split))
    assert validate(p, simulate(p, {"x": "B", "y": "B"})) == []


def test_schedule_file_round_trip(tmp_path):
    p, s = _valid()
    s = replace(s, solver="x", status="heuristic", lower_bound=4.0, solve_seconds=0.1, info={"k": 1})
    write_schedule(s, tmp_path / "s.json")
    back = read_schedule(tmp_path / "s.json")
    assert back == s and back.gap == pytest.approx(5.5 / 4.0 - 1)
    copies = ({"x": "A", "y": "A"}, {"x": "B", "y": "B"})
    t = replace(s, objective="throughput", period=Period(3.0, 2.5, replicas=2, placements=copies))
    write_schedule(t, tmp_path / "t.json")
    back = read_schedule(tmp_path / "t.json")
    assert back == t and back.period.throughput == pytest.approx(2 / 3.0) and back.period.gap == pytest.approx(0.2)


@pytest.mark.parametrize("data, expected", [
    ({"format": "nope", "tasks": []}, "format must be"),
    ({"format": "hetsched-schedule/1", "tasks": [], "extra": 1}, "unknown key 'extra'"),
    ({"format": "hetsched-schedule/1", "tasks": [{"name": "a"}]}, r"tasks\[0\] \(task 'a'\): missing key 'device'"),
    ({"format": "hetsched-schedule/1", "makespan": "x", "tasks": []}, "makespan must be a finite number"),
    ({"format": "hetsched-schedule/1", "status": "great", "makespan": 1.0, "tasks": []}, "unknown schedule status"),
    ({"format": "hetsched-schedule/1", "period": {"bound": 1.0}, "tasks": []}, "period: missing key 'value'"),
    ({"format": "hetsched-schedule/1", "period": {"value": 1.0, "replicas": 0}, "tasks": []},
     "period.replicas must be a whole number from 1"),
    ({"format": "hetsched-schedule/1", "period": {"value": "x"}, "tasks": []}, "period.value must be a finite"),
    ({"format": "hetsched-schedule/1", "period": {"value": 1.0, "placements": [["a"]]}, "tasks": []},
     r"period.placements\[0\] must be an object"),
])
def test_schedule_file_errors(data, expected):
    with pytest.raises(ScheduleError, match=expected):
        schedule_from_dict(data)


def test_zero_cost_tasks_hold_no_resource_and_resimulation_never_delays():
    """b on d0 [0, 1]; zero-cost a on d0 runs at 0.5 inside b's run; its consumer c is not delayed."""
    plat = Platform("p", (Device("d0"), Device("d1")), (Link("d0", "d1"),))
    graph = TaskGraph("g", (Task("b"), Task("z"), Task("a"), Task("c")),
                      (Edge("z", "a", 0), Edge("a", "c", 0)))
    p = Problem(graph, plat, {"b": {"d0": 1.0}, "z": {"d1": 0.5}, "a": {"d0": 0.0}, "c": {"d1": 1.0}})
    s = Schedule((ScheduledTask("b", "d0", 0, 1), ScheduledTask("z", "d1", 0, 0.5),
                  ScheduledTask("a", "d0", 0.5, 0.5), ScheduledTask("c", "d1", 0.5, 1.5)), makespan=1.5)
    assert validate(p, s) == []
    again = simulate(p, s.placement, s.order(p))
    assert again.makespan == 1.5 and validate(p, again) == []


def test_insertion_search_equals_a_scan_of_every_busy_interval(monkeypatch):
    """Timeline.earliest_start(insertion=True) looks only at the tails of the sorted busy lists from the
    ready time on; HEFT's schedules equal those of a scan of every busy interval, on random problems."""
    from scheduler.generate import random_platform, random_problem
    from scheduler.semantics import Timeline
    from solvers import get_solver

    def scan(self, task, device, *, insertion=False):
        ready = self.ready(task, device)
        duration = self.problem.costs[task][device]
        if duration == 0 or not insertion:
            return fast(self, task, device, insertion=insertion)
        t = ready
        for s, f in sorted(iv for r in self.problem.platform.device[device].resources for iv in self._busy[r]):
            if f > t and s < t + duration:
                t = max(t, f)
            elif s >= t + duration:
                break
        return t

    fast = Timeline.earliest_start
    for seed in range(40):
        p = random_problem(25, seed=seed, edge_prob=0.15,
                           platform=random_platform(3, seed=seed) if seed % 2 else "default")
        a = get_solver("heft")(p)
        with monkeypatch.context() as m:
            m.setattr(Timeline, "earliest_start", scan)
            b = get_solver("heft")(p)
        assert a.placement == b.placement and a.makespan == b.makespan
