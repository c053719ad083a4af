"""Every solver's output passes the validator; bounds never exceed a proven optimum."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brute import brute_force
from scheduler.bounds import classic_bounds
from scheduler.errors import SolverError
from scheduler.generate import random_platform, random_problem
from scheduler.graph import Edge, Task, TaskGraph
from scheduler.platform import Device, Platform, Link
from scheduler.problem import Problem
from scheduler.schedule import validate
from scheduler.semantics import Timeline
from solvers import get_solver, list_solvers, solver_names

SOLVERS = ["single", "greedy", "heft", "dp-chain", "linear-clustering", "chain-cut", "dps"]


@st.composite
def problems(draw, max_tasks: int = 40):
    n = draw(st.integers(1, max_tasks))
    seed = draw(st.integers(0, 10_000))
    shared = draw(st.booleans())
    platform = random_platform(draw(st.integers(1, 4)), shared=shared, seed=seed) if draw(st.booleans()) else "default"
    return random_problem(n, seed=seed, platform=platform, edge_prob=draw(st.sampled_from([0.1, 0.3, 0.6])),
                          unsupported=draw(st.sampled_from([0.0, 0.3])),
                          memory_fraction=draw(st.sampled_from([None, 0.6, 1.0])),
                          colocate=draw(st.integers(0, 3)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems())
def test_every_solver_output_is_valid_and_above_every_bound(problem):
    bound = max(b.value for b in classic_bounds(problem))
    for name in SOLVERS:
        s = get_solver(name)(problem)
        assert s.solver == name
        if not s.found:
            assert s.status == "no-solution" and s.info["reason"]
            continue
        assert s.status == "heuristic" or (name == "dp-chain" and s.info["exact_case"])
        assert validate(problem, s) == []
        assert s.makespan >= bound * (1 - 1e-9)
        assert bound * (1 - 1e-9) <= s.lower_bound <= s.makespan * (1 + 1e-9) and s.gap >= 0


@settings(max_examples=25, deadline=None)
@given(problem=problems(max_tasks=5))
def test_bounds_below_brute_force_optimum_below_heuristics(problem):
    best = brute_force(problem)
    if best is None:
        return
    for b in classic_bounds(problem):
        assert b.value <= best.makespan * (1 + 1e-9), b
    for name in SOLVERS:
        s = get_solver(name)(problem)
        if s.found:
            assert s.makespan >= best.makespan * (1 - 1e-9)


def test_single_picks_fastest_device_and_respects_op_support():
    p = random_problem(12, seed=3, unsupported=0.0)
    totals = {d: sum(p.costs[t][d] for t in p.tasks) for d in p.devices}
    s = get_solver("single")(p)
    assert s.info["device"] == min(totals, key=totals.get)
    assert s.makespan == pytest.approx(min(totals.values()))
    assert get_solver("single:cpu1")(p).makespan == pytest.approx(totals["cpu1"])
    q = Problem(p.graph, p.platform, {t: {d: c for d, c in row.items() if d != "pim" or t != "t0"}
                                        for t, row in p.costs.items()})
    s = get_solver("single:pim")(q)
    assert not s.found and "cannot run task 't0'" in s.info["reason"]


def test_heuristics_respect_memory_and_colocation():
    for seed in range(20):
        p = random_problem(15, seed=seed, memory_fraction=0.4, colocate=3)
        for name in ("greedy", "heft"):
            s = get_solver(name)(p)
            if s.found:
                assert validate(p, s) == []


def test_heft_fills_gaps_with_insertion():
    """A short independent task slides into the idle gap before a waiting task."""
    plat = Platform("p", (Device("A"), Device("B")), (Link("A", "B", 5.0, None),))
    graph = TaskGraph("g", (Task("x"), Task("y"), Task("z")), (Edge("x", "y", 0),))
    p = Problem(graph, plat, {"x": {"B": 1.0}, "y": {"A": 1.0}, "z": {"A": 2.0}})
    tl = Timeline(p)
    tl.place("x", "B")
    tl.place("y", "A")  # waits for the transfer: [6, 7]
    assert tl.earliest_start("z", "A", insertion=True) == 0.0
    assert tl.earliest_start("z", "A") == 7.0
    s = get_solver("heft")(p)
    assert s.by_name["z"].start == 0.0 and s.makespan == 7.0


def test_registry_lists_and_rejects():
    assert set(SOLVERS) <= set(solver_names())
    assert all(info.summary for info in list_solvers())
    with pytest.raises(SolverError, match="unknown solver 'nope'; known: single"):
        get_solver("nope")
    with pytest.raises(SolverError, match="has no option 'depth'"):
        get_solver("greedy", depth=3)
    with pytest.raises(SolverError, match="takes no ':' argument"):
        get_solver("heft:cpu0")
    with pytest.raises(SolverError, match="unknown device 'gpu'"):
        get_solver("single:gpu")(random_problem(3))


def test_every_solver_optimises_its_objectives_and_refuses_the_others():
    """An objective a solver does not optimise is refused with a message that says what it does."""
    p = random_problem(5, seed=3)
    for info in list_solvers():
        for objective in ("latency", "throughput"):
            if objective in info.objectives:
                s = get_solver(info.name, **({"objective": objective} if "objective" in info.options else {}))(
                    p, time_limit=2)
                assert s.found and s.objective == objective and validate(p, s) == []
            else:
                with pytest.raises(SolverError, match=f"{info.name}.*(optimises|only)"):
                    get_solver(info.name, objective=objective)(p, time_limit=2)


def test_registry_declares_each_solvers_options_and_module():
    """The registry lists solvers without importing them: what it declares must be what each module's
    ``solve`` takes."""
    import importlib
    import inspect

    for info in list_solvers():
        module = importlib.import_module(info.module)
        params = tuple(p for p in inspect.signature(module.solve).parameters if p not in ("problem", "time_limit",
                                                                                          "seed"))
        assert info.options == params, info.name
        assert info.solve is module.solve


def test_levels_match_onnxruntimes():
    from scheduler.executor import ORT_LEVELS
    from scheduler.levels import LEVELS

    assert tuple(ORT_LEVELS) == LEVELS
