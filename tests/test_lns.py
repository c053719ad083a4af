"""lns (anytime windows re-solved by CP-SAT) and auto (the solver for the size and budget)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brute import brute_force
from scheduler.bounds import classic_bounds
from scheduler.errors import SolverError
from scheduler.generate import random_platform, random_problem, random_servers_problem
from scheduler.schedule import validate
from scheduler.semantics import simulate
from solvers import get_solver
from solvers.auto import EXACT_SIZE, choose
from solvers.lns import critical_tasks, tails


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), scale=st.sampled_from([1e-2, 1.0, 1e3]))
def test_lns_is_valid_and_never_worse_than_its_start(seed, n, scale):
    """Shared resources, op support, memory and co-location, costs of µs, ms and s: valid, at or below the
    portfolio schedule it starts from, above every bound."""
    plat = random_platform(3, shared=True, seed=seed) if seed % 2 else "default"
    p = random_problem(n, seed=seed, platform=plat, unsupported=0.3 * (seed % 2),
                       memory_fraction=0.6 if seed % 3 == 0 else None, colocate=seed % 3, time_scale=scale)
    s = get_solver("lns", window=8)(p, time_limit=1.0)
    start = get_solver("portfolio")(p)
    assert s.found == start.found
    if not s.found:
        return
    assert s.solver == "lns" and validate(p, s) == []
    assert s.makespan <= start.makespan * (1 + 1e-9) and s.makespan <= s.info["start_makespan"] * (1 + 1e-9)
    bound = max(b.value for b in classic_bounds(p))
    assert bound * (1 - 1e-9) <= s.lower_bound <= s.makespan * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e3])
def test_lns_on_tiny_problems_is_optimal_and_says_so(seed, scale):
    """One window holds every task: CP-SAT's bound is a bound on the makespan, and the search stops at the
    brute-force optimum with status optimal; the bound never exceeds that optimum."""
    p = random_problem(3 + seed % 3, seed=seed, platform=random_platform(2 + seed % 2, seed=seed),
                       edge_prob=0.5, time_scale=scale)
    best = brute_force(p)
    s = get_solver("lns")(p, time_limit=5.0)
    assert validate(p, s) == []
    assert s.lower_bound <= best.makespan * (1 + 1e-9)
    assert s.makespan == pytest.approx(best.makespan, rel=1e-6)
    assert s.status == "optimal" and s.info["bound"] in {"lns-whole-window", "critical-path", "resource-load",
                                                                 "path-segments"}
    assert s.solve_seconds < 5.0  # it stopped at the proof, not at the limit


def test_lns_improves_on_the_heuristics_of_a_large_problem():
    """150 tasks: the windows find a shorter schedule than every list heuristic."""
    p = random_problem(150, seed=1, platform="cpu2gpu")
    s = get_solver("lns")(p, time_limit=4.0)
    assert validate(p, s) == [] and s.status == "heuristic"
    assert s.makespan < s.info["start_makespan"] * (1 - 1e-3) and s.info["improvements"] >= 1


@pytest.mark.parametrize("seed", range(5))
def test_tails_are_the_longest_paths_to_the_end(seed):
    """start + tail <= makespan for every task, with equality on a path from a source to the last task; the
    tail is at least the task's own cost and its successors' tails behind it."""
    p = random_problem(40, seed=seed, platform=random_platform(3, seed=seed))
    s = get_solver("heft")(p)
    s = simulate(p, s.placement, s.order(p))
    q = tails(p, s)
    by = s.by_name
    for t in p.tasks:
        assert by[t].start + q[t] <= s.makespan * (1 + 1e-9)
        assert q[t] >= by[t].finish - by[t].start - 1e-15
        for e in p.succs[t]:
            assert q[t] >= by[t].finish - by[t].start + p.transfer(e, by[t].device, by[e.dst].device) + q[e.dst] - 1e-12
    crit = critical_tasks(s, q)
    assert any(by[t].finish == s.makespan for t in crit) and any(by[t].start == 0 for t in crit)


def test_auto_chooses_by_size_and_budget():
    small, large = random_problem(30, seed=1), random_problem(120, seed=1)
    assert len(small.tasks) * len(small.devices) <= EXACT_SIZE < len(large.tasks) * len(large.devices)
    assert choose(small, 10)[0] == "cpsat"
    assert choose(large, 10)[0] == "lns"
    assert choose(large, 0.5)[0] == "portfolio"
    assert choose(large, 0.5, "throughput")[0] == "dp-pipeline"
    assert choose(large, 0.5, "throughput", replicas=2)[0] == "cpsat"
    assert choose(large, 10, "throughput")[0] == "cpsat"
    servers = random_servers_problem(60, seed=1)  # 60 tasks x 6 devices
    assert choose(servers, 10)[0] == choose(servers, 10, "throughput", replicas=2)[0] == "hierarchical"
    assert choose(servers, 0.5)[0] == "portfolio" and choose(random_servers_problem(20, seed=1), 10)[0] == "cpsat"


@pytest.mark.parametrize("n, limit, objective, chosen", [
    (20, 3.0, "latency", "cpsat"), (80, 2.0, "latency", "lns"), (80, 0.5, "latency", "portfolio"),
    (20, 3.0, "throughput", "cpsat"), (80, 0.5, "throughput", "dp-pipeline")])
def test_auto_runs_what_it_chose(n, limit, objective, chosen):
    p = random_problem(n, seed=2)
    s = get_solver("auto", objective=objective)(p, time_limit=limit)
    assert s.solver == "auto" and s.info["chosen"] == chosen and s.info["why"]
    assert s.objective == objective and validate(p, s) == []
    if chosen == "portfolio":
        assert s.info["member"]  # portfolio's winner is kept


def test_auto_refuses_replicas_for_latency():
    with pytest.raises(SolverError, match="replicas applies to objective='throughput' only"):
        get_solver("auto", replicas=2)(random_problem(5), time_limit=1)


def test_window_with_co_located_tasks_and_a_hint():
    """Co-located tasks share their device literals: hinting each once keeps the model valid (hinting one
    literal twice made CP-SAT refuse it), and the group stays on one device."""
    from scheduler.semantics import Timeline
    from solvers.common import Feasibility
    from solvers.window import solve_window

    p = random_problem(12, seed=5, colocate=3)
    assert any(len(g) > 1 for g in p.groups.values())
    start = get_solver("heft")(p)
    found = solve_window(p, Timeline(p), Feasibility(p), list(p.graph.topological_order), 5.0,
                         hint={t.name: (t.device, t.start) for t in start.tasks})
    assert found is not None and found.optimal
    for members in p.groups.values():
        assert len({found.chosen[t] for t in members}) == 1
    s = simulate(p, found.chosen, list(found.chosen))
    assert validate(p, s) == [] and found.bound <= s.makespan


def test_module_windows_shorten_a_layered_model(dnn_files):
    """The published BERT-12 latency graph (783 tasks, 16 devices): slices of HEFT's schedule find next to
    nothing (HEFT crowds one accelerator), module windows take it below 95% of HEFT's makespan (a 20 s run
    here reached 84%)."""
    from conftest import DNN
    from scheduler.importers import import_dnn_partitioning

    p = import_dnn_partitioning(DNN / "latency-inputs" / "OperatorGraphs" / "bert_l-12_inference.json", time_scale=1.0)
    heft = get_solver("heft")(p)
    s = get_solver("lns")(p, time_limit=10)
    assert validate(p, s) == [] and s.makespan < 0.95 * heft.makespan, s.info
