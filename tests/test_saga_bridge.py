"""The anrg-saga bridge (benchmarks/saga_bridge.py, saga_instances.py): conversions, schedule checks, HEFT against saga's HEFT.

Skipped where saga (``pip install -e .[bench]``) is not installed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

saga = pytest.importorskip("saga")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import saga_bridge as sb  # noqa: E402
import saga_instances as si  # noqa: E402
from saga.schedulers.heft import heft_rank_sort  # noqa: E402
from saga.utils import random_graphs as rg  # noqa: E402

from scheduler.generate import random_problem  # noqa: E402
from scheduler.graph import Edge, Task, TaskGraph  # noqa: E402
from scheduler.platform import Device, Link, Platform  # noqa: E402
from scheduler.problem import Problem  # noqa: E402
from scheduler.schedule import validate
from scheduler.semantics import Timeline
from solvers import get_solver  # noqa: E402

HEFT = next(s for s in si.SAGA_SCHEDULERS if s.name == "HEFT")


def _tiny(kind: str, seed: int):
    """A tiny instance from saga's own generators (weights U(0.1, 1)), self-loops made free."""
    u = si._Uniform(np.random.default_rng(seed))
    raw = rg.get_network(3, weight_distribution=u)
    graph = {"diamond": lambda: rg.get_diamond_dag(weight_distribution=u),
             "fork": lambda: rg.get_fork_dag(weight_distribution=u),
             "branching": lambda: rg.get_branching_dag(levels=3, branching_factor=2, weight_distribution=u),
             "chain": lambda: rg.get_chain_dag(num_nodes=6, weight_distribution=u)}[kind]()
    return raw, sb.normalize_self_loops(raw), graph


TINY = [("diamond", 1), ("fork", 2), ("branching", 3)]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b)) if a != b else 0.0


@pytest.mark.parametrize("kind,seed", TINY)
def test_round_trip_keeps_every_time(kind, seed):
    _, net, tg = _tiny(kind, seed)
    p = sb.from_saga(net, tg, name=kind)
    assert set(p.tasks) == {t.name for t in tg.tasks} and set(p.devices) == set(sb.net_names(net))
    # our costs and transfers are saga's, bit for bit
    ex = sb.exec_times(net, tg)
    assert all(p.costs[t][d] == ex[(t, d)] for t in p.tasks for d in p.devices)
    cm = sb.comm_times(net, tg)
    edges = {(e.src, e.dst): e for e in p.graph.edges}
    assert all(p.transfer(edges[(s, t)], a, b) == v for (s, t, a, b), v in cm.items())
    # and back: saga's times again (speeds are re-derived, so up to rounding)
    net2, tg2 = sb.to_saga(p)
    ex2, cm2 = sb.exec_times(net2, tg2), sb.comm_times(net2, tg2)
    assert max(_rel(ex[k], ex2[k]) for k in ex) < 1e-12
    assert max(_rel(cm[k], cm2[k]) for k in cm) < 1e-12
    p2 = sb.from_saga(net2, tg2, name=kind)
    assert max(_rel(p.costs[t][d], p2.costs[t][d]) for t in p.tasks for d in p.devices) < 1e-12


def test_saga_self_loops_must_be_free_unless_ignored():
    raw, _, tg = _tiny("diamond", 1)  # saga's generator: self-loop speed 1e9 * U(0.1, 1)
    with pytest.raises(ValueError, match="self-loop"):
        sb.from_saga(raw, tg)
    assert sb.from_saga(raw, tg, self_loops="ignore").tasks


def _related(**kw) -> Problem:
    devs = (Device("a", resources=("ra",)), Device("b", resources=("rb",)))
    links = (Link("a", "b", kw.get("latency", 0.0), 1e3),)
    graph = TaskGraph("g", (Task("x"), Task("y")), (Edge("x", "y", 500),))
    costs = kw.get("costs", {"x": {"a": 2.0, "b": 1.0}, "y": {"a": 4.0, "b": 2.0}})
    return Problem(graph, Platform("p", devs, links), costs)


def test_to_saga_accepts_related_machines_and_names_what_is_not():
    net, tg = sb.to_saga(_related())
    speeds = {n.name: n.speed for n in net.nodes}
    assert speeds == {"a": 1.0, "b": 2.0}
    assert {t.name: t.cost for t in tg.tasks} == {"x": 2.0, "y": 4.0}
    with pytest.raises(sb.NotRelatedMachines, match="latency"):
        sb.to_saga(_related(latency=1e-6))
    with pytest.raises(sb.NotRelatedMachines, match="related machines"):
        sb.to_saga(_related(costs={"x": {"a": 2.0, "b": 1.0}, "y": {"a": 4.0, "b": 3.0}}))
    with pytest.raises(sb.NotRelatedMachines, match="may not run"):
        sb.to_saga(_related(costs={"x": {"a": 2.0, "b": 1.0}, "y": {"a": 4.0}}))
    with pytest.raises(ValueError, match="share resource"):  # default platform: cpu-par holds both cores
        sb.to_saga(random_problem(5, seed=0))


@pytest.mark.parametrize("kind,seed", TINY)
def test_saga_heft_schedule_is_valid_and_our_simulator_agrees(kind, seed):
    _, net, tg = _tiny(kind, seed)
    p = sb.from_saga(net, tg, name=kind)
    out, _ = si.run_saga_scheduler(HEFT, net, tg)
    chk = sb.check_saga_schedule(p, out)
    assert chk.errors == ()
    assert chk.makespan == pytest.approx(out.makespan, rel=1e-12)
    # saga's placement + its order by start time, re-simulated by us: same makespan
    assert abs(chk.rel_diff) <= 1e-6 and chk.verdict == "equal"


@pytest.mark.parametrize("kind,seed", TINY)
def test_our_timeline_in_saga_heft_order_reproduces_saga_heft(kind, seed):
    """Same priority list + insertion EFT -> the same schedule: the engines agree."""
    _, net, tg = _tiny(kind, seed)
    p = sb.from_saga(net, tg, name=kind)
    out, _ = si.run_saga_scheduler(HEFT, net, tg)
    tl = Timeline(p)
    for t in heft_rank_sort(net, tg):
        starts = {d: tl.earliest_start(t, d, insertion=True) for d in p.devices}
        d = min(p.devices, key=lambda d: starts[d] + p.costs[t][d])
        tl.place(t, d, starts[d])
    assert tl.schedule().makespan == pytest.approx(out.makespan, rel=1e-9)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_our_heft_equals_saga_heft_where_ranks_coincide(seed):
    """Our heft and saga's differ only in the task priority: saga averages a transfer
    over every network edge *including the n self-loops* (time 0), we over the
    n(n-1) ordered pairs of distinct devices (Topcuoglu et al.).  Without data
    (sizes 0) the ranks coincide, and on a chain the order is forced: then both
    give the same makespan.  Elsewhere they differ by a few percent either way."""
    _, net, tg = _tiny("branching", seed)
    no_data = saga.TaskGraph.create(tasks=[(t.name, t.cost) for t in tg.tasks],
                                    dependencies=[(d.source, d.target, 0.0) for d in tg.dependencies])
    _, net_c, chain = _tiny("chain", seed)
    for n, g in ((net, no_data), (net_c, chain)):
        p = sb.from_saga(n, g)
        out, _ = si.run_saga_scheduler(HEFT, n, g)
        ours = get_solver("heft")(p)
        assert validate(p, ours) == []
        assert ours.makespan == pytest.approx(out.makespan, rel=1e-9)


def test_instance_builders_are_consistent_both_ways():
    zoo = si.zoo_instances(quick=True)[:1]
    for inst in si.saga_random_instances(quick=True)[:3] + zoo:
        net, tg = sb.to_saga(inst.problem)
        ex, ex2 = sb.exec_times(inst.network, inst.task_graph), sb.exec_times(net, tg)
        assert max(_rel(ex[k], ex2[k]) for k in ex) < 1e-12
    assert math.isclose(si.instance_ccr(zoo[0]), 1.0, rel_tol=1e-9)  # scaled to the target CCR


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_our_cpop_equals_saga_cpop_where_ranks_coincide(seed):
    """As for HEFT: saga averages transfers over the self-loops too, and its downward rank divides a task's
    cost by the mean speed where the upward rank averages the times.  Without data and with equal speeds
    both ranks coincide, and so do the schedules."""
    _, net, tg = _tiny("branching", seed)
    same = saga.Network.create(nodes=[(n.name, 1.0) for n in net.nodes],
                               edges=[(e.source, e.target, e.speed) for e in net.edges])
    no_data = saga.TaskGraph.create(tasks=[(t.name, t.cost) for t in tg.tasks],
                                    dependencies=[(d.source, d.target, 0.0) for d in tg.dependencies])
    p = sb.from_saga(same, no_data)
    out, _ = si.run_saga_scheduler(next(s for s in si.SAGA_SCHEDULERS if s.name == "CPoP"), same, no_data)
    ours = get_solver("cpop")(p)
    assert validate(p, ours) == []
    assert ours.makespan == pytest.approx(out.makespan, rel=1e-9)
