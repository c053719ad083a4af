"""Multi-server platforms: server symmetry (found, broken in the exact models, renamed) and the hierarchical
solve, against brute force on tiny instances."""

from __future__ import annotations

import itertools
import random

import pytest
from ortools.sat.python import cp_model

from brute import brute_force
from scheduler.errors import SolverError
from scheduler.generate import random_servers_problem
from scheduler.problem import Problem
from scheduler.problem_views import mirror_renaming, server_blocks, symmetries
from scheduler.schedule import validate
from scheduler.semantics import period, replicated_period, simulate
from solvers import cpsat, get_solver, milp
from solvers.exact_common import exact_data

REL = 1e-6


def servers_problem(seed: int, count: int = 2, tasks: int = 4, twins: bool = True) -> Problem:
    return random_servers_problem(tasks, seed=seed, servers=count, twins=twins)


def first_uses(problem: Problem, placement, blocks) -> list[int]:
    """Per block, the index of the first task on it (len(tasks) when none is)."""
    n = len(problem.tasks)
    return [next((i for i, t in enumerate(problem.tasks) if placement[t] in b), n) for b in blocks]


def test_servers_are_found_only_where_they_are_interchangeable():
    p = servers_problem(0)
    assert server_blocks(p) == (("c@s0", "g0@s0", "g1@s0"), ("c@s1", "g0@s1", "g1@s1"))
    assert symmetries(p) == (server_blocks(p), (("g0@s0",), ("g1@s0",)), (("g0@s1",), ("g1@s1",)))
    t = p.tasks[0]
    slower = Problem(p.graph, p.platform, {**p.costs, t: {**p.costs[t], "c@s1": p.costs[t]["c@s1"] * 2}})
    assert server_blocks(slower) == ()  # one task runs slower on server 1's CPU
    pinned = Problem(p.graph, p.platform, {**p.costs, t: {"c@s0": p.costs[t]["c@s0"]}})
    assert server_blocks(pinned) == ()
    three = servers_problem(1, count=3, twins=False)
    assert len(server_blocks(three)) == 3 and symmetries(three) == (server_blocks(three),)
    assert server_blocks(Problem(p.graph, p.platform.subset(["c@s0", "g0@s0"]),
                                 {t: {"c@s0": 1e-3, "g0@s0": 1e-3} for t in p.tasks})) == ()


@pytest.mark.parametrize("seed", range(6))
def test_renaming_puts_servers_and_devices_in_first_use_order_and_keeps_every_objective(seed):
    """Any placement (and copies of it) renamed: servers, then each server's twin GPUs, in the order tasks
    first use them; the same makespan and period."""
    p = servers_problem(seed, count=2 + seed % 2)
    found = symmetries(p)
    rng = random.Random(seed)
    for _ in range(20):
        copies = [{t: rng.choice(p.devices) for t in p.tasks} for _ in range(1 + seed % 2)]
        rename = mirror_renaming(p, copies, found)
        renamed = [{t: rename[d] for t, d in c.items()} for c in copies]
        assert sorted(rename.values()) == sorted(p.devices)
        uses = first_uses(p, renamed[0], found[0])
        assert uses == sorted(uses)
        for blocks in found[1:]:
            uses = first_uses(p, renamed[0], blocks)
            assert uses == sorted(uses) or len(copies) > 1  # later copies may use a device first
        assert simulate(p, renamed[0]).makespan == pytest.approx(simulate(p, copies[0]).makespan, rel=1e-12)
        assert replicated_period(p, renamed) == pytest.approx(replicated_period(p, copies), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("solver", ["cpsat", "milp"])
def test_exact_models_with_server_breaking_match_brute_force(seed, solver):
    """Latency and period, with and without the breaking: brute force's optimum, proven."""
    p = servers_problem(seed)
    best = brute_force(p)
    for symmetry in (True, False):
        s = get_solver(solver, symmetry=symmetry)(p, time_limit=30)
        assert validate(p, s) == [] and s.status == "optimal"
        assert s.makespan == pytest.approx(best.makespan, rel=REL)
    least = min(period(p, dict(zip(p.tasks, combo))) for combo in itertools.product(p.devices, repeat=len(p.tasks)))
    t = get_solver(solver, objective="throughput")(p, time_limit=30)
    assert t.status == "optimal" and t.period.value == pytest.approx(least, rel=REL)


@pytest.mark.parametrize("seed", range(4))
def test_two_copies_on_two_servers_with_and_without_breaking_agree(seed):
    p = servers_problem(seed)
    a, b = (get_solver("cpsat", objective="throughput", replicas=2, symmetry=s)(p, time_limit=30)
            for s in (True, False))
    assert a.status == b.status == "optimal"
    assert a.period.value == pytest.approx(b.period.value, rel=REL)


@pytest.mark.parametrize("seed", range(4))
def test_a_renamed_placement_satisfies_both_models_breaking(seed):
    """What the hints rely on: any placement, renamed, is feasible in CP-SAT's model with the breaking (its
    presence literals fixed to it), and the MILP's warm values satisfy every symmetry row."""
    p = servers_problem(seed, count=3)
    data = exact_data(p)
    rng = random.Random(seed)
    for _ in range(5):
        placement = {t: rng.choice(p.devices) for t in p.tasks}
        upper = simulate(p, placement).makespan
        built = cpsat.build_latency(p, data, upper / 1000, upper * 1.01)
        rename = mirror_renaming(p, [placement], built.mirrors)
        for (k, t, d), lit in built.p.items():
            built.model.add(lit == int(rename[placement[t]] == d))
        assert cp_model.CpSolver().solve(built.model) in (cp_model.OPTIMAL, cp_model.FEASIBLE)
        model = milp.build_latency(p, data, upper * 1.01, 0.0)
        milp._warm_latency(model, p, data, simulate(p, placement))
        rows = [c for c in model.prob.constraints() if c.name.startswith(("sym_", "used_"))]
        assert rows and all(c.valid(1e-9) for c in rows)


# ----------------------------------------------------------------------------- hierarchical

@pytest.mark.parametrize("seed", range(4))
def test_hierarchical_latency_is_valid_and_no_better_than_the_optimum(seed):
    p = servers_problem(seed, tasks=5)
    s = get_solver("hierarchical", inner="cpsat")(p, time_limit=10)
    assert validate(p, s) == [] and s.solver == "hierarchical" and s.info["servers"] == 2
    assert s.makespan >= brute_force(p).makespan * (1 - REL) and s.lower_bound <= s.makespan * (1 + 1e-9)


@pytest.mark.parametrize("count", [2, 3])
def test_hierarchical_throughput_runs_each_copy_on_its_own_server(count):
    """As many copies as servers: each copy on its server, and the period is one server's optimum."""
    p = servers_problem(2, count=count, tasks=6)
    s = get_solver("hierarchical", objective="throughput", replicas=count, inner="cpsat")(p, time_limit=10)
    assert s.info["split"] == "data-parallel" and len(s.period.placements) == count
    assert [{d.split("@")[1] for d in c.values()} for c in s.period.placements] == [{f"s{k}"} for k in range(count)]
    one = Problem(p.graph, p.platform.subset(server_blocks(p)[0]), {t: {d: c for d, c in row.items() if "@s0" in d}
                                                                    for t, row in p.costs.items()})
    best = get_solver("cpsat", objective="throughput")(one, time_limit=10)
    assert best.status == "optimal" and s.period.value == pytest.approx(best.period.value, rel=REL)
    assert s.period.bound <= s.period.value * (1 + 1e-9)


def test_hierarchical_copies_a_one_copy_inner_answer_to_each_copy_of_a_server():
    """Four copies on two servers with dp-pipeline inside (one copy only): each server runs its two copies
    alike, and the period is twice that of one copy on one server."""
    p = servers_problem(1, tasks=6)
    s = get_solver("hierarchical", objective="throughput", replicas=4, inner="dp-pipeline")(p, time_limit=5)
    copies = s.period.placements
    assert len(copies) == 4 and copies[0] == copies[1] and copies[2] == copies[3] and copies[0] != copies[2]
    assert s.period.value == pytest.approx(2 * period(p, copies[0]), rel=1e-12)


def test_hierarchical_splits_a_pipeline_across_servers_when_that_pays():
    """One copy of a long chain, throughput, on two servers: half the chain on each beats one server."""
    p = servers_problem(5, tasks=12)
    s = get_solver("hierarchical", objective="throughput", inner="cpsat")(p, time_limit=20)
    assert validate(p, s) == [] and s.info["split"] == "across servers"
    assert {d.split("@")[1] for d in s.placement.values()} == {"s0", "s1"}


def test_hierarchical_without_servers_is_its_inner_solver_and_checks_the_inner_objective():
    p = servers_problem(0).platform.subset(["c@s0", "g0@s0", "g1@s0"])
    q = Problem(servers_problem(0).graph, p, {t: {d: c for d, c in row.items() if "@s0" in d}
                                              for t, row in servers_problem(0).costs.items()})
    s = get_solver("hierarchical", inner="cpsat")(q, time_limit=10)
    assert s.info["servers"] == 1 and s.makespan == pytest.approx(get_solver("cpsat")(q).makespan, rel=REL)
    with pytest.raises(SolverError, match="inner solver 'heft' does not optimise throughput"):
        get_solver("hierarchical", objective="throughput", inner="heft")(q)
    with pytest.raises(SolverError, match="option inner must be"):
        get_solver("hierarchical", inner="nope")


def test_placements_mirrored_across_servers_count_once_among_the_candidates():
    from scheduler.recommend import top_placements

    p = servers_problem(3, tasks=5)
    a = {t: ("c@s0", "g0@s0", "c@s1")[i % 3] for i, t in enumerate(p.tasks)}
    b = {t: ("c@s1", "g1@s1", "c@s0")[i % 3] for i, t in enumerate(p.tasks)}  # servers and twin GPUs swapped
    c = {t: ("c@s0", "g0@s0", "g0@s1")[i % 3] for i, t in enumerate(p.tasks)}
    assert len(top_placements(p, [simulate(p, x) for x in (a, b, c)], 3)) == 2
