"""One semantics (docs/semantics.md): every registered solver's schedule is what the simulator makes of its
placement and start order, and passes the independent validator; its period is the simulator's."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings

from scheduler.schedule import validate
from scheduler.semantics import period, simulate
from solvers import get_solver, list_solvers
from test_solvers import problems


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(max_tasks=10))
def test_every_solvers_schedule_is_its_re_simulation(problem):
    for info in list_solvers():
        options = {"objective": "latency"} if "objective" in info.options else {}
        if "latency" not in info.objectives:
            options = {"objective": "throughput"}
        s = get_solver(info.name, **options)(problem, time_limit=0.5)
        if not s.found:
            continue
        assert validate(problem, s) == [], info.name
        again = simulate(problem, s.placement, s.order(problem))
        for mine in s.tasks:
            ref = again.by_name[mine.name]
            assert mine.device == ref.device, info.name
            assert math.isclose(mine.start, ref.start, rel_tol=1e-12, abs_tol=1e-15), (info.name, mine, ref)
            assert math.isclose(mine.finish, ref.finish, rel_tol=1e-12, abs_tol=1e-15), (info.name, mine, ref)
        assert math.isclose(s.makespan, again.makespan, rel_tol=1e-12, abs_tol=1e-15), info.name
        if s.objective == "throughput":
            assert s.period is not None and s.period.replicas == 1, info.name
            assert math.isclose(s.period.value, period(problem, s.placement), rel_tol=1e-9), info.name
        else:
            assert s.period is None, info.name
