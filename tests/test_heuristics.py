"""dp-chain, linear-clustering and the device-priority greedy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brute import brute_force
from scheduler.errors import SolverError
from scheduler.generate import random_platform, random_problem
from scheduler.graph import Edge, Task, TaskGraph
from scheduler.pipeline import build_problem
from scheduler.platform import Device, Link, Platform
from scheduler.problem import Problem
from scheduler.schedule import validate
from solvers import get_solver
from solvers.linear_clustering import linear_clusters, merge_clusters, parallel_device_sets


def sequential_chain(n: int, seed: int) -> Problem:
    """A chain on 3 devices that all hold one host resource (the PIM paper's setting)."""
    base = random_problem(n, seed=seed, unsupported=0.3)
    plat = Platform("seq", (Device("cpu", resources=("host",)), Device("par", resources=("host",)),
                            Device("pim", resources=("host",))),
                    (Link("cpu", "par", 1e-6, 2e10), Link("cpu", "pim", 2e-5, 2e9), Link("par", "pim", 2e-5, 2e9)))
    tasks = tuple(Task(f"t{i}") for i in range(n))
    edges = tuple(Edge(f"t{i}", f"t{i + 1}", 100_000 * (i % 3 + 1)) for i in range(n - 1))
    names = dict(zip(base.devices, plat.device))
    costs = {f"t{i}": {names[d]: c for d, c in base.costs[f"t{i}"].items() if d in names} or {"cpu": 1e-4}
             for i in range(n)}
    return Problem(TaskGraph("chain", tasks, edges), plat, costs)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_dp_chain_is_optimal_on_sequential_chains(n, seed):
    p = sequential_chain(n, seed)
    s = get_solver("dp-chain")(p)
    best = brute_force(p)
    assert validate(p, s) == []
    assert s.status == "optimal" and s.makespan == pytest.approx(best.makespan, rel=1e-9)
    assert s.lower_bound == pytest.approx(s.makespan) and s.gap == pytest.approx(0.0, abs=1e-9)


def test_dp_chain_does_not_claim_optimality_elsewhere():
    p = random_problem(10, seed=2)
    s = get_solver("dp-chain")(p)
    assert s.status == "heuristic" and not s.info["exact_case"]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 6), seed=st.integers(0, 10_000), skip=st.integers(0, 3))
def test_dp_chain_on_a_chain_plus_one_edge_claims_no_optimum_it_does_not_have(n, seed, skip):
    """One extra edge (a skip over the chain) and the DP is no longer exact: it must not say optimal,
    and whatever it says is checked against brute force."""
    chain = sequential_chain(n, seed)
    src = min(skip, n - 3)
    extra = Edge(f"t{src}", f"t{src + 2}", 300_000)
    p = Problem(TaskGraph("chain+1", chain.graph.tasks, chain.graph.edges + (extra,)), chain.platform, chain.costs)
    s = get_solver("dp-chain")(p)
    assert validate(p, s) == [] and s.status == "heuristic" and not s.info["exact_case"]
    assert s.makespan >= brute_force(p).makespan * (1 - 1e-9)


def test_device_priority_greedy():
    p = build_problem("bert", {"layers": 1})
    s = get_solver("greedy", priority=["pim", "cpu0"])(p)
    assert validate(p, s) == [] and s.solver == "greedy:pim>cpu0"
    for t in p.tasks:
        assert s.placement[t] == ("pim" if "pim" in p.costs[t] else "cpu0")
    with pytest.raises(SolverError, match="unknown device 'gpu'"):
        get_solver("greedy", priority=["gpu"])(p)


def test_linear_clusters_are_paths_that_partition_the_graph():
    p = build_problem("randwire", {"nodes": 12})
    clusters = linear_clusters(p)
    assert sorted(t for c in clusters for t in c) == sorted(p.tasks)
    g = p.graph.nx
    assert all(g.has_edge(a, b) for c in clusters for a, b in zip(c, c[1:]))
    merged = merge_clusters(p, clusters, 3)
    assert len(merged) == 3 and sorted(t for c in merged for t in c) == sorted(p.tasks)


def test_parallel_device_sets():
    assert parallel_device_sets(build_problem("mlp")) == [("cpu0", "cpu1", "pim")]
    assert parallel_device_sets(build_problem("mlp", platform="pim-sequential")) == [
        ("cpu-serial",), ("cpu-par",), ("pim",)]


def test_linear_clustering_uses_parallel_devices_on_branchy_models():
    p = build_problem("randwire", {"nodes": 12})
    s = get_solver("linear-clustering")(p)
    assert validate(p, s) == [] and s.info["clusters"] == 3
    assert len(set(s.placement.values())) >= 2


def test_split_modules_are_convex_and_acyclic():
    from solvers.split import modules

    for p in (build_problem("randwire", {"nodes": 12}), random_problem(60, seed=4), build_problem("bert")):
        mods = modules(p, max_module=10)
        assert sorted(t for m in mods for t in m) == sorted(p.tasks)
        assert max(len(m) for m in mods) <= 10
        where = {t: i for i, m in enumerate(mods) for t in m}
        # listed in a topological order of the module graph: every edge goes forward
        assert all(where[e.src] <= where[e.dst] for e in p.graph.edges)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 25))
def test_split_is_valid_and_never_worse_than_heft(seed, n):
    p = random_problem(n, seed=seed, memory_fraction=0.6 if seed % 2 else None, colocate=seed % 3)
    s = get_solver("split")(p, time_limit=3)
    h = get_solver("heft")(p)
    if s.found:
        assert validate(p, s) == [] and s.status == "heuristic"
        if h.found:
            assert s.makespan <= h.makespan * (1 + 1e-9)


def test_split_falls_back_when_cpsat_has_no_time():
    p = build_problem("randwire", {"nodes": 8})
    s = get_solver("split")(p, time_limit=0.001)
    assert s.found and validate(p, s) == []


@pytest.mark.parametrize("seed", range(10))
def test_cpop_is_valid_and_runs_the_critical_path_on_one_device(seed):
    """Shared resources, op support, memory and co-location respected; without memory and co-location limits,
    every task of the critical path (largest upward + downward rank) is on one device, the one that runs the
    path fastest."""
    from solvers.cpop import downward_rank
    from solvers.heft import upward_rank

    limits = seed % 2 == 1
    p = random_problem(15, seed=seed, platform=random_platform(3, shared=seed % 3 == 0, seed=seed), unsupported=0.2,
                       memory_fraction=0.7 if limits else None, colocate=2 if limits else 0)
    s = get_solver("cpop")(p)
    if not s.found:
        assert limits and "memory" in s.info["reason"]
        return
    assert validate(p, s) == []
    if not limits:
        up, down = upward_rank(p), downward_rank(p)
        top = max(up[t] + down[t] for t in p.tasks)
        critical = [t for t in p.tasks if up[t] + down[t] >= top * (1 - 1e-9)]
        able = [d for d in p.devices if all(d in p.costs[t] for t in critical)]
        if able:
            fastest = min(able, key=lambda d: sum(p.costs[t][d] for t in critical))
            assert {s.placement[t] for t in critical} == {fastest}


@pytest.mark.parametrize("seed", range(8))
def test_minmin_rules_and_the_portfolio_are_valid_and_the_portfolio_is_the_best_of_its_members(seed):
    from solvers.portfolio import MEMBERS

    limits = seed % 2 == 1
    p = random_problem(14, seed=seed, platform=random_platform(3, shared=seed % 3 == 0, seed=seed), unsupported=0.2,
                       memory_fraction=0.7 if limits else None, colocate=2 if limits else 0)
    runs = {label: member(p, time_limit=None, seed=0) for label, member in MEMBERS}
    for label, s in runs.items():
        assert validate(p, s) == [], label
    best = get_solver("portfolio")(p)
    found = [s.makespan for s in runs.values() if s.found]
    if not found:
        assert not best.found and "memory" in best.info["reason"]
        return
    assert validate(p, best) == [] and best.makespan == min(found)
    assert runs[best.info["chosen"]].makespan == best.makespan


def test_minmin_rules_pick_what_they_say():
    """Three independent tasks (1, 2 and 4 s on A; twice that on B): the first pick takes A from time 0:
    MinMin the shortest, MaxMin the longest, Sufferage the one that loses most on B (the longest, 4 s)."""
    plat = Platform("p", (Device("A"), Device("B")), default_link=Link("*", "*", 0.0, None))
    p = Problem(TaskGraph("g", (Task("s"), Task("m"), Task("l")), ()),
                plat, {"s": {"A": 1.0, "B": 2.0}, "m": {"A": 2.0, "B": 4.0}, "l": {"A": 4.0, "B": 8.0}})
    for rule, first in (("min", "s"), ("max", "l"), ("sufferage", "l")):
        s = get_solver("minmin", rule=rule)(p)
        assert validate(p, s) == []
        assert [t.name for t in s.tasks if t.device == "A" and t.start == 0.0] == [first], rule


def _accelerator_chain(n: int, accelerators: int, scale: float = 1.0) -> Problem:
    """A chain of ``n`` 60-byte tasks on identical accelerators of 130 bytes (two tasks each) and a slow CPU;
    1 unit per task on an accelerator, 20 on the CPU, 5 per crossing between accelerators, 2 to or from the
    CPU (a unit: ``scale`` ms)."""
    unit = scale * 1e-3
    tasks = tuple(Task(f"t{i}", memory_bytes=60) for i in range(n))
    edges = tuple(Edge(f"t{i}", f"t{i + 1}", 1) for i in range(n - 1))
    accs = [Device(f"acc{i}", resources=(f"acc{i}",), memory_bytes=130) for i in range(accelerators)]
    links = [Link(a.name, b.name, latency=5 * unit) for i, a in enumerate(accs) for b in accs[i + 1:]]
    links += [Link(a.name, "cpu", latency=2 * unit) for a in accs]
    plat = Platform("accs", (*accs, Device("cpu", resources=("cpu",))), tuple(links))
    costs = {t.name: {**{a.name: unit for a in accs}, "cpu": 20 * unit} for t in tasks}
    return Problem(TaskGraph("chain", tasks, edges), plat, costs)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_chain_cut_splits_a_chain_over_identical_accelerators_optimally(scale):
    """Six tasks, two per accelerator: three accelerators, two crossings (16 units), the brute-force optimum
    on a 4-task version too.  The DP may alternate two accelerators; the segments still get three distinct
    ones, so memory holds."""
    unit = scale * 1e-3
    p = _accelerator_chain(6, 3, scale)
    s = get_solver("chain-cut")(p)
    assert validate(p, s) == [] and s.makespan == pytest.approx(16 * unit)
    assert len({t.device for t in s.tasks}) == 3
    small = _accelerator_chain(4, 2, scale)
    assert get_solver("chain-cut")(small).makespan == pytest.approx(brute_force(small).makespan)
    assert get_solver("chain-cut")(p, time_limit=0.0).info["boundary"] == "path"  # no time for the second model


def test_chain_cut_says_why_when_no_split_fits():
    """Seven tasks, two accelerators of two tasks: the CPU takes what does not fit (a valid schedule).
    Without the CPU the segments have nowhere to go, and with a task too large for every device no split
    fits: the answer says so."""
    p = _accelerator_chain(7, 2)
    s = get_solver("chain-cut")(p)
    assert s.found and validate(p, s) == [] and {t.device for t in s.tasks} >= {"cpu"}
    costs = {t: {d: c for d, c in row.items() if d != "cpu"} for t, row in p.costs.items()}
    stuck = Problem(p.graph, p.platform, costs)
    s = get_solver("chain-cut")(stuck)
    assert not s.found and s.status == "no-solution" and "no device has room" in s.info["reason"]
    big = Problem(TaskGraph("big", (Task("t0", memory_bytes=200),), ()), p.platform, {"t0": costs["t0"]})
    s = get_solver("chain-cut")(big)
    assert not s.found and "fits memory" in s.info["reason"]
    with pytest.raises(SolverError, match="boundary"):
        get_solver("chain-cut", boundary="edges")


def test_chain_cut_shortens_the_published_operator_graphs(dnn_files):
    """BERT-12 and ResNet-50 operator graphs (latency inputs): memory forces them over 5-7 accelerators and
    HEFT crowds one; chain-cut's segments take them below 75% and 30% of HEFT's makespan."""
    from conftest import DNN
    from scheduler.importers import import_dnn_partitioning

    for name, ratio in (("bert_l-12_inference", 0.75), ("resnet50_inference", 0.3)):
        p = import_dnn_partitioning(DNN / "latency-inputs" / "OperatorGraphs" / f"{name}.json")
        s, heft = get_solver("chain-cut")(p), get_solver("heft")(p)
        assert validate(p, s) == [] and s.makespan < ratio * heft.makespan, (name, s.makespan, heft.makespan)


@pytest.mark.parametrize("seed", range(4))
def test_dps_priorities_peak_on_the_critical_path_and_its_schedules_are_valid(seed):
    """Before any placement, bottom minus top level is the mean-cost critical path's length on that path and
    less off it; the schedule is valid with levels recomputed and with them frozen (time limit 0)."""
    from solvers.dps import levels
    from solvers.heft import mean_transfer, upward_rank

    p = random_problem(25, seed=seed, platform=random_platform(3, seed=seed), memory_fraction=0.6, colocate=1)
    mean_cost = {t: sum(p.costs[t].values()) / len(p.costs[t]) for t in p.tasks}
    prio = levels(p, {}, mean_cost, {(e.src, e.dst): mean_transfer(p, e) for e in p.graph.edges})
    longest = max(upward_rank(p).values())
    assert max(prio.values()) == pytest.approx(longest) and all(v <= longest * (1 + 1e-9) for v in prio.values())
    for limit in (None, 0.0):
        s = get_solver("dps")(p, time_limit=limit)
        assert s.found and validate(p, s) == [] and s.solver == "dps"
