"""Exact solvers (milp, cpsat): brute-force optima, honest statuses and bounds, time limits, throughput."""

from __future__ import annotations

import functools
import itertools
import random
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brute import brute_force, feasible_placement
from scheduler.errors import SolverError
from scheduler.generate import random_platform, random_problem
from scheduler.graph import Edge, Task, TaskGraph
from scheduler.platform import Device, Link, Platform
from scheduler.problem import Problem
from scheduler.schedule import Schedule, validate
from scheduler.semantics import period, replicated_period, resource_loads
from solvers import SOLVERS, get_solver
from solvers.exact_common import exact_data, period_lower_bound, placement_errors
from solvers.exact_solve import Outcome, latency_answer, throughput_answer
from solvers import milp
from solvers.cpsat import placement_exists
from solvers.mip_backends import parse_cbc_log

EXACT = ["milp", "cpsat"]
REL = 1e-6


def tiny(seed: int) -> Problem:
    """Up to 6 tasks on 2-3 devices, with shared resources, transfers, memory, op support and co-location."""
    n = 3 + seed % 4
    plat = random_platform(2 + seed % 2, shared=seed % 3 != 0, seed=seed)
    return random_problem(n, seed=seed, platform=plat, edge_prob=(0.3, 0.6)[seed % 2],
                          unsupported=(0.0, 0.3)[seed % 2], memory_fraction=(None, 0.5, 0.8)[seed % 3],
                          colocate=seed % 3)


TINY = list(range(20))


@functools.lru_cache(maxsize=None)
def brute_latency(seed: int) -> float | None:
    """Brute-force optimal makespan of ``tiny(seed)`` (None: no feasible placement); computed once."""
    best = brute_force(tiny(seed))
    return None if best is None else best.makespan


def placements(problem: Problem) -> list[dict[str, str]]:
    """Every placement that respects op support (memory and co-location unchecked)."""
    combos = itertools.product(*(problem.allowed(t) for t in problem.tasks))
    return [dict(zip(problem.tasks, combo)) for combo in combos]


def brute_period(problem: Problem, replicas: int = 1) -> float | None:
    """Least period over every feasible choice of one placement per copy (memory shared by the copies)."""
    single = placements(problem)
    best = None
    for combo in itertools.product(single, repeat=replicas):
        if replicas == 1 and not feasible_placement(problem, combo[0]):
            continue
        if replicas > 1 and placement_errors(problem, combo):
            continue
        value = replicated_period(problem, combo)
        best = value if best is None else min(best, value)
    return best


def check(problem: Problem, s: Schedule) -> None:
    """Every answer: valid, bound below the makespan, status in line with the gap."""
    assert validate(problem, s) == []
    if s.found:
        assert s.lower_bound is not None and s.lower_bound <= s.makespan * (1 + 1e-9)
        if s.status == "optimal" and s.objective == "latency":
            assert s.makespan <= s.lower_bound * (1 + 1e-6) + 1e-15  # the documented tolerance, written out


# ----------------------------------------------------------------------------- period

def test_period_by_hand():
    """a -> b crossing from A to B: A is busy 2 (a) + 1 (the transfer it drives); B is busy 3 (b)."""
    plat = Platform("p", (Device("A", resources=("ra",)), Device("B", resources=("rb",)),
                          Device("AB", resources=("ra", "rb"))), (Link("A", "B", 1.0, None),),
                    default_link=Link("*", "*", 0.5, None))
    graph = TaskGraph("g", (Task("a"), Task("b")), (Edge("a", "b", 0),))
    p = Problem(graph, plat, {"a": {"A": 2.0, "AB": 1.0}, "b": {"B": 3.0, "AB": 1.5}})
    assert period(p, {"a": "A", "b": "B"}) == 3.0
    assert period(p, {"a": "AB", "b": "AB"}) == 2.5  # both on the two-resource device
    assert period(p, {"a": "AB", "b": "B"}) == 1.0 + 0.5 + 3.0  # AB drives the transfer on both resources
    assert replicated_period(p, [{"a": "A", "b": "B"}, {"a": "AB", "b": "AB"}]) == 3.0 + 2.5
    assert period_lower_bound(p, 2) == pytest.approx(2 * (2.0 + 3.0) / 2)


# ----------------------------------------------------------------------------- latency

@pytest.mark.parametrize("seed", TINY)
@pytest.mark.parametrize("name", EXACT)
def test_latency_equals_brute_force(name, seed):
    p = tiny(seed)
    opt = brute_latency(seed)
    s = get_solver(name)(p, time_limit=30)
    check(p, s)
    assert s.solver == name and s.objective == "latency"
    if opt is None:
        assert s.status == "infeasible" and not s.tasks and s.makespan is None
        return
    assert s.status == "optimal", s.info
    assert s.makespan == pytest.approx(opt, rel=REL)
    assert s.lower_bound <= opt * (1 + 1e-9)
    if "note_skip" not in s.info:
        assert s.info["proven_bound"] <= opt * (1 + 1e-9)


def with_zero_costs(seed: int) -> Problem:
    """``tiny(seed % 20)`` with about a third of its (task, device) costs set to 0 (such runs hold no resource)."""
    p = tiny(seed % 20)
    rng = random.Random(seed)
    costs = {t: {d: (0.0 if rng.random() < 0.35 else c) for d, c in row.items()} for t, row in p.costs.items()}
    return Problem(p.graph, p.platform, costs, p.transfer_override, p.colocate, name=p.name)


@pytest.mark.parametrize("seed", [22, 31] + list(range(40, 52)))
@pytest.mark.parametrize("name", EXACT)
def test_zero_cost_runs_hold_no_resource(name, seed):
    """Seeds 22 and 31 caught a MILP that kept zero-cost runs out of other tasks' intervals
    (it claimed infeasibility on 22: its model could not reach the warm start's makespan)."""
    p = with_zero_costs(seed)
    best = brute_force(p)
    s = get_solver(name)(p, time_limit=30)
    check(p, s)
    if best is None:
        assert s.status == "infeasible"
        return
    assert s.status == "optimal" and "warning" not in s.info
    assert s.makespan == pytest.approx(best.makespan, rel=REL, abs=1e-15)
    assert s.lower_bound <= best.makespan * (1 + 1e-9) + 1e-15


def test_tiny_set_exercises_the_models():
    """Most tiny instances are solved by the model, not settled by the warm start meeting the bound."""
    solved = sum("variables" in get_solver("cpsat")(tiny(seed), time_limit=30).info for seed in TINY)
    assert solved >= len(TINY) // 2


@pytest.mark.parametrize("workers", [1, 2])
def test_cpsat_without_a_heuristic_start_finds_the_optimum(workers):
    """HEFT and greedy fail on memory here; a coarse first pass gives CP-SAT its start (it used to find none)."""
    p = tiny(19)
    assert get_solver("heft")(p).status == "no-solution" and get_solver("greedy")(p).status == "no-solution"
    s = get_solver("cpsat", workers=workers)(p, time_limit=30)
    check(p, s)
    assert s.status == "optimal" and s.makespan == pytest.approx(brute_latency(19), rel=REL)
    assert "fallback" not in s.info and s.info["coarse_status"] in ("FEASIBLE", "OPTIMAL")


@st.composite
def small_problems(draw):
    seed = draw(st.integers(0, 10_000))
    plat = random_platform(draw(st.integers(1, 3)), shared=draw(st.booleans()), seed=seed)
    return random_problem(draw(st.integers(1, 5)), seed=seed, platform=plat,
                          edge_prob=draw(st.sampled_from([0.2, 0.5, 0.9])),
                          unsupported=draw(st.sampled_from([0.0, 0.4])),
                          memory_fraction=draw(st.sampled_from([None, 0.4, 0.7])),
                          colocate=draw(st.integers(0, 2)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=small_problems())
def test_property_both_exact_solvers_hit_the_optimum(problem):
    best = brute_force(problem)
    for name in EXACT:
        s = get_solver(name)(problem, time_limit=30)
        check(problem, s)
        if best is None:
            assert s.status == "infeasible"
        else:
            assert s.status == "optimal" and s.makespan == pytest.approx(best.makespan, rel=REL)
            assert s.lower_bound <= best.makespan * (1 + 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_and_cpsat_agree_on_ten_tasks(seed):
    p = random_problem(10, seed=seed, platform=random_platform(3, shared=True, seed=seed), memory_fraction=0.5,
                       unsupported=0.2, colocate=1)
    a, b = get_solver("milp")(p, time_limit=60), get_solver("cpsat")(p, time_limit=60)
    check(p, a)
    check(p, b)
    assert a.status == b.status == "optimal"
    assert a.makespan == pytest.approx(b.makespan, rel=REL)
    assert max(a.lower_bound, b.lower_bound) <= min(a.makespan, b.makespan) * (1 + 1e-9)


def test_exact_solvers_beat_heft_where_heft_is_greedy():
    """HEFT puts the long first task on the fast device and then pays a transfer; the optimum does not."""
    plat = Platform("p", (Device("F", resources=("f",)), Device("S", resources=("s",))),
                    (Link("F", "S", 10.0, None),))
    graph = TaskGraph("g", (Task("a"), Task("b"), Task("c")), (Edge("a", "b", 0), Edge("a", "c", 0)))
    p = Problem(graph, plat, {"a": {"F": 1.0, "S": 1.1}, "b": {"S": 1.0}, "c": {"F": 1.0, "S": 1.0}})
    heft = get_solver("heft")(p)
    for name in EXACT:
        s = get_solver(name)(p, time_limit=30)
        check(p, s)
        assert s.status == "optimal" and "fallback" not in s.info
        assert s.makespan == pytest.approx(brute_force(p).makespan)
        assert s.makespan < heft.makespan


# ----------------------------------------------------------------------------- honesty

@pytest.mark.parametrize("name", EXACT)
def test_time_limited_large_run_is_honest(name):
    """60 tasks in 1 s: no proof expected; the status says so and the run stops near the limit.

    The margin is generous (the host is shared): this guards against gross overruns
    such as CBC ignoring its limit in a long root node, not against jitter.
    """
    p = random_problem(60, seed=4)
    t0 = time.perf_counter()
    s = get_solver(name)(p, time_limit=1.0)
    elapsed = time.perf_counter() - t0
    check(p, s)
    assert elapsed < 1.0 + 2.5
    assert s.found
    if s.status == "optimal":
        assert s.gap <= 1e-6
        # an independent check, not the solver's own bound: the other exact solver, given 10 s, finds
        # nothing better than a claimed optimum
        other = get_solver(next(n for n in EXACT if n != name))(p, time_limit=10.0)
        assert s.makespan <= other.makespan * (1 + 1e-6)
    else:
        assert s.status in ("feasible", "heuristic") and s.gap > 0
    if s.status == "heuristic":
        assert s.info["fallback"] in ("heft", "greedy") and "note" in s.info


@pytest.mark.parametrize("name", EXACT)
def test_zero_time_limit_returns_the_warm_start_as_heuristic(name):
    p = random_problem(30, seed=5)
    s = get_solver(name)(p, time_limit=0)
    check(p, s)
    assert s.status in ("heuristic", "optimal")
    if s.status == "heuristic":
        assert s.info["fallback"] in ("heft", "greedy") and s.info["fallback"] in s.info["note"]


@pytest.mark.parametrize("name", EXACT)
def test_memory_smaller_than_the_biggest_task_is_infeasible(name):
    p = random_problem(8, seed=3)
    biggest = max(p.memory(t) for t in p.tasks)
    plat = Platform(p.platform.name, tuple(Device(d.name, d.kind, d.resources, memory_bytes=biggest - 1)
                                           for d in p.platform.devices), p.platform.links)
    q = Problem(p.graph, plat, p.costs)
    s = get_solver(name)(q, time_limit=10)
    assert s.status == "infeasible" and s.tasks == () and s.makespan is None
    assert validate(q, s) == []


@pytest.mark.parametrize("objective", ["latency", "throughput"])
@pytest.mark.parametrize("name", EXACT)
def test_solver_proves_infeasibility_heuristics_cannot_see(name, objective):
    """Each task fits on either device alone, but no two fit together: three tasks have no placement."""
    plat = Platform("p", (Device("A", memory_bytes=100), Device("B", memory_bytes=100)), (Link("A", "B", 0.1),))
    graph = TaskGraph("g", tuple(Task(f"t{i}", memory_bytes=60) for i in range(3)), (Edge("t0", "t1", 8),))
    p = Problem(graph, plat, {f"t{i}": {"A": 1.0, "B": 2.0} for i in range(3)})
    s = get_solver(name)(p, time_limit=10, objective=objective)
    assert s.status == "infeasible" and s.makespan is None and not s.tasks
    assert {"backend_status", "coarse_status"} & set(s.info)  # the solver, not a pre-check, proved it


def test_cpsat_coarse_resolution_keeps_its_bound_sound():
    """At a tick of ~1/50 of the makespan the model is crude, but the bound stays below the optimum."""
    for seed in TINY[:8]:
        opt = brute_latency(seed)
        if opt is None:
            continue
        p = tiny(seed)
        s = get_solver("cpsat", resolution=opt / 50)(p, time_limit=10)
        check(p, s)
        assert s.makespan >= opt * (1 - 1e-9)
        if "proven_bound" in s.info and s.info["proven_bound"] is not None:
            assert s.info["proven_bound"] <= opt * (1 + 1e-12)
        if s.status == "optimal":
            assert s.makespan == pytest.approx(opt, rel=REL)


def test_parse_cbc_log_takes_the_best_bound_rounded_down():
    log = ("Cbc0010I After 0 nodes, 1 on tree, 999.999 best solution, best possible 837.27047 (0.43 seconds)\n"
           "Cbc0005I Partial search - best objective 999.76111 (best possible 845.77047), took 22719 iterations\n"
           "Result - Stopped on time limit\n\nObjective value:                999.76111242\n"
           "Lower bound:                    845.770\n")
    out = parse_cbc_log(log)
    assert out["result"] == "Stopped on time limit" and out["objective"] == 999.76111242
    assert out["bound"] == pytest.approx(845.77046) and out["bound"] < 845.77047
    assert parse_cbc_log("Problem is infeasible - 0.00 seconds\n")["result"] == "Problem is infeasible"
    pre = ("Cgl0000I Cut generators found to be infeasible! (or unbounded)\n"
           "Pre-processing says infeasible or unbounded\n")
    assert parse_cbc_log(pre)["result"] == "Pre-processing says infeasible or unbounded"


@pytest.mark.parametrize("seed, shared, edge_prob", [(1659, True, 0.9), (5117, False, 0.5)])
def test_milp_does_not_take_cbcs_word_that_its_start_is_optimal(seed, shared, edge_prob):
    """1659: CBC 2.10 proves the HEFT start optimal (makespan 3.430 ms) though the optimum is 3.242 ms; milp
    used to say "optimal" with a bound above the optimum, which fails any certificate beside CP-SAT's
    schedule.  (Seed 1465 showed it first; since the MILP's lower bound is the path-segments bound, CBC no
    longer errs there.)  The proof is redone without the start; 5117: there CBC's pre-processing then
    "proves" the problem infeasible, so the second proof runs without pre-processing."""
    p = random_problem(5, seed=seed, platform=random_platform(3, shared=shared, seed=seed), edge_prob=edge_prob,
                       unsupported=0.0, memory_fraction=0.4, colocate=0)
    best = brute_force(p)
    s = get_solver("milp")(p, time_limit=30)
    check(p, s)
    assert s.status == "optimal" and s.makespan == pytest.approx(best.makespan, rel=REL), s.info
    assert s.lower_bound <= best.makespan and "start_proof_check" in s.info


def test_cpsat_proves_a_small_colocation_problem_for_every_seed():
    """With default_lp + no_lp as its two searches, CP-SAT proved nothing in 30 s here for 6 of 10 seeds
    (the property test's seed 0 happened to work); small models keep CP-SAT's own portfolio."""
    p = random_problem(5, seed=7037, platform=random_platform(2, shared=True, seed=7037), edge_prob=0.5,
                       unsupported=0.0, memory_fraction=0.7, colocate=2)
    best = brute_force(p)
    for seed in range(6):
        s = get_solver("cpsat")(p, time_limit=10, seed=seed)
        assert s.status == "optimal" and s.makespan == pytest.approx(best.makespan, rel=REL), (seed, s.info)


def cbc_preprocessing_case() -> Problem:
    """An infeasible problem that CBC's pre-processing calls infeasible and stops on, writing no solution."""
    return random_problem(5, seed=8294, platform=random_platform(3, shared=True, seed=8294), edge_prob=0.5,
                          unsupported=0.4, memory_fraction=0.4, colocate=0)


@pytest.mark.parametrize("seed", [*TINY, 8294])
def test_placement_exists_agrees_with_brute_force(seed):
    p = tiny(seed) if seed != 8294 else cbc_preprocessing_case()
    assert placement_exists(p, exact_data(p, with_pairs=False)) is (brute_force(p) is not None)


def test_milp_checks_an_infeasible_verdict_of_cbc_preprocessing(monkeypatch):
    """CBC's pre-processing calls this one infeasible and stops with no result line; milp used to report
    "timeout-no-solution" (found by a 20000-example run of the property test above).  The verdict is checked
    by CP-SAT on the placement alone, and when that finds a placement, milp does not say infeasible."""
    p = cbc_preprocessing_case()
    assert brute_force(p) is None
    s = get_solver("milp")(p, time_limit=30)
    assert s.status == "infeasible" and s.info["infeasibility_check"] == "CP-SAT: no placement", s.info
    monkeypatch.setattr(milp, "placement_exists", lambda *args: True)
    s = get_solver("milp")(p, time_limit=30)
    assert s.status == "timeout-no-solution"
    assert "CBC called the model infeasible (Pre-processing says" in s.info["reason"]


# ----------------------------------------------------------------------------- throughput

@pytest.mark.parametrize("seed", TINY)
@pytest.mark.parametrize("name", EXACT)
def test_throughput_period_equals_brute_force(name, seed):
    p = tiny(seed)
    best = brute_period(p)
    s = get_solver(name, objective="throughput")(p, time_limit=30)
    check(p, s)
    assert s.objective == "throughput"
    if best is None:
        assert s.status == "infeasible" and not s.tasks
        return
    assert s.status == "optimal", s.info
    assert s.period.value == pytest.approx(best, rel=REL)
    assert s.period.value == pytest.approx(period(p, s.placement), rel=1e-12)
    assert s.period.bound <= best * (1 + 1e-9)
    assert s.period.throughput == pytest.approx(1.0 / s.period.value)


def identical_devices(seed: int) -> Problem:
    """A random graph on one device x and three interchangeable ones y0..y2 (same costs, links, memory)."""
    base = random_problem(4 + seed % 3, seed=seed, edge_prob=0.2)  # wide: the optimum needs several y
    rng = np.random.default_rng(seed)
    devices = (Device("x", resources=("rx",)),) + tuple(
        Device(f"y{i}", resources=(f"ry{i}",), memory_bytes=None if seed % 2 else 10**6) for i in range(3))
    plat = Platform("p", devices, default_link=Link("*", "*", float(rng.uniform(0, 2e-4)), 1e9))
    costs = {t: {"x": float(rng.uniform(1e-3, 3e-3)), **dict.fromkeys(("y0", "y1", "y2"),
                                                                       float(rng.uniform(1e-4, 1e-3)))}
             for t in base.tasks}
    return Problem(base.graph, plat, costs)


@pytest.mark.parametrize("solver", ["cpsat", "milp"])
@pytest.mark.parametrize("seed", range(8))
def test_symmetry_breaking_keeps_the_optimum(seed, solver):
    """The exact solvers use interchangeable devices in order; the optimum (latency and period) is still brute
    force's, and the placement uses y0 before y1 before y2."""
    from scheduler.problem_views import mirror_classes

    p = identical_devices(seed)
    assert mirror_classes(p) == (("y0", "y1", "y2"),)
    s = get_solver(solver)(p, time_limit=30)
    check(p, s)
    best = brute_force(p)
    assert s.status == "optimal" and s.makespan == pytest.approx(best.makespan, rel=REL)
    assert len({d for d in best.placement.values() if d.startswith("y")}) >= 2  # a case the breaking touches
    first = [next((i for i, t in enumerate(p.tasks) if s.placement[t] == d), len(p.tasks)) for d in ("y0", "y1", "y2")]
    assert first == sorted(first) or s.info.get("fallback")  # a heuristic warm start kept as it is
    t = get_solver(solver, objective="throughput")(p, time_limit=30)
    assert t.status == "optimal" and t.period.value == pytest.approx(brute_period(p), rel=REL)


def test_an_output_moves_to_a_device_once():
    """a feeds b and c on B: one transfer from A (the default sender pays it per reading device); a staged
    sender pays its largest share once for B and C together, a staged receiver its share of what it reads,
    a device marked none nothing."""
    plat = Platform("p", tuple(Device(n, resources=(n,)) for n in "ABC"), default_link=Link("*", "*", 1.0, None))
    graph = TaskGraph("g", (Task("a"), Task("b"), Task("c")), (Edge("a", "b", 0), Edge("a", "c", 0)))
    p = Problem(graph, plat, {t: {d: 1.0 for d in "ABC"} for t in "abc"})
    assert resource_loads(p, {"a": "A", "b": "B", "c": "B"}) == {"A": 2.0, "B": 2.0, "C": 0.0}
    assert resource_loads(p, {"a": "A", "b": "B", "c": "C"}) == {"A": 3.0, "B": 1.0, "C": 1.0}
    modes = {"A": "staged", "B": "staged", "C": "none"}
    staged = replace(p, platform=Platform("p", tuple(replace(d, transfer_load=modes[d.name]) for d in plat.devices),
                                          default_link=plat.default_link))
    # A pays the larger of its shares once: 1.0 to C (A alone is staged), not also 0.5 to B (both staged)
    assert resource_loads(staged, {"a": "A", "b": "B", "c": "C"}) == {"A": 1.0 + 1.0, "B": 1.0 + 0.5, "C": 1.0}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("name", EXACT)
def test_throughput_with_staged_and_free_transfers_equals_brute_force(name, seed):
    """Devices that pay for transfers in each way (send, staged, none), mixed at random."""
    p = tiny(seed)
    rng = np.random.default_rng(seed)
    devices = tuple(replace(d, transfer_load=str(rng.choice(["send", "staged", "none"])))
                    for d in p.platform.devices)
    p = replace(p, platform=replace(p.platform, devices=devices))
    best = brute_period(p)
    s = get_solver(name, objective="throughput")(p, time_limit=30)
    check(p, s)
    if best is None:
        assert s.status == "infeasible"
        return
    assert s.status == "optimal", s.info
    assert s.period.value == pytest.approx(best, rel=REL)
    assert s.period.bound <= best * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", EXACT)
def test_throughput_with_two_replicas_equals_brute_force(name, seed):
    p = random_problem(3, seed=seed, platform=random_platform(2, shared=seed % 2 == 0, seed=seed), edge_prob=0.6,
                       memory_fraction=(None, 0.9, 1.2)[seed % 3], colocate=seed % 2)
    best = brute_period(p, replicas=2)
    s = get_solver(name, objective="throughput", replicas=2)(p, time_limit=30)
    check(p, s)
    if best is None:
        assert s.status == "infeasible"
        return
    assert s.status == "optimal"
    assert s.period.value == pytest.approx(best, rel=REL)
    assert s.period.value == pytest.approx(replicated_period(p, s.period.placements), rel=1e-12)
    assert placement_errors(p, s.period.placements) == []
    assert s.period.throughput == pytest.approx(2.0 / s.period.value)
    assert s.placement == s.period.placements[0]


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e3])
def test_period_lp_bound_with_transfers_is_sound_and_no_weaker(seed, scale):
    """The fractional load bound with the transfers' loads never exceeds the brute-force period (send, staged
    and free transfers mixed; one and two copies; costs of µs, ms and s), and never falls below the bound
    without them."""
    from scheduler.bounds import lp_load_bound, period_bounds

    n = 3 + seed % 3
    p = random_problem(n, seed=seed, platform=random_platform(2 + seed % 2, shared=seed % 3 == 0, seed=seed),
                       edge_prob=0.6, memory_fraction=(None, 0.8)[seed % 2], colocate=seed % 2, time_scale=scale)
    rng = np.random.default_rng(seed)
    p = replace(p, platform=replace(p.platform, devices=tuple(
        replace(d, transfer_load=str(rng.choice(["send", "staged", "none"]))) for d in p.platform.devices)))
    replicas = 1 + (seed % 4 == 0 and n <= 3)
    best = brute_period(p, replicas)
    if best is None:
        return
    bounds = {b.name: b.value for b in period_bounds(p, replicas)}
    assert max(bounds.values()) <= best * (1 + 1e-9), (bounds, best)
    plain = lp_load_bound(p)
    assert bounds["period-lp-load"] >= replicas * plain.value * (1 - 1e-6)


def test_period_lp_bound_counts_what_a_sender_pays():
    """a (only on A) -> b (only on B), 1 s each, the transfer 3 s paid by the sender: A is busy 4 s.  The
    bound without transfers says 1; with them, 4."""
    from scheduler.bounds import lp_load_bound, period_bounds

    plat = Platform("p", tuple(Device(n, resources=(n,)) for n in "AB"), default_link=Link("*", "*", 3.0, None))
    p = Problem(TaskGraph("g", (Task("a"), Task("b")), (Edge("a", "b", 0),)), plat, {"a": {"A": 1.0}, "b": {"B": 1.0}})
    assert brute_period(p) == 4.0
    assert lp_load_bound(p).value == pytest.approx(1.0, rel=1e-5)
    assert max(b.value for b in period_bounds(p)) == pytest.approx(4.0, rel=1e-5)


# ----------------------------------------------------------------------------- registry and options

def test_registered_as_exact_with_their_options():
    for name in EXACT:
        info = SOLVERS[name]
        assert info.exact and info.summary
        assert {"objective", "replicas", "symmetry"} <= set(info.options)
    assert {"backend", "threads", "warm_start"} <= set(SOLVERS["milp"].options)
    assert {"workers", "resolution", "hint"} <= set(SOLVERS["cpsat"].options)


@pytest.mark.parametrize("name", EXACT)
def test_bad_options_are_rejected(name):
    p = random_problem(3, seed=0)
    with pytest.raises(SolverError, match="option objective must be 'latency' or 'throughput', got 'energy'"):
        get_solver(name, objective="energy")(p)
    with pytest.raises(SolverError, match="option replicas must be greater than or equal to 1, got 0"):
        get_solver(name, objective="throughput", replicas=0)(p)
    with pytest.raises(SolverError, match="replicas applies to objective='throughput' only"):
        get_solver(name, replicas=2)(p)
    with pytest.raises(SolverError, match="option symmetry must be a valid boolean, got 'maybe'"):
        get_solver(name, symmetry="maybe")


def test_milp_backend_checks():
    p = random_problem(3, seed=0)
    with pytest.raises(SolverError, match="option backend must be 'cbc' or 'highs', got 'gurobi'"):
        get_solver("milp", backend="gurobi")(p)
    try:
        import importlib.metadata
        importlib.metadata.version("highspy")
    except importlib.metadata.PackageNotFoundError:
        with pytest.raises(SolverError, match="highspy is not installed"):
            get_solver("milp", backend="highs")(p)


# ----------------------------------------------------------------------------- slow

@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_milp_and_cpsat_agree_on_fourteen_tasks(seed):
    p = random_problem(14, seed=seed, platform=random_platform(3, shared=True, seed=seed), memory_fraction=0.6)
    a, b = get_solver("milp")(p, time_limit=300), get_solver("cpsat")(p, time_limit=300)
    check(p, a)
    check(p, b)
    assert a.status == b.status == "optimal"
    assert a.makespan == pytest.approx(b.makespan, rel=REL)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXACT)
def test_throughput_on_a_zoo_model_is_valid(name):
    from scheduler.pipeline import build_problem
    p = build_problem("mlp", {"layers": "3"})
    s = get_solver(name, objective="throughput", replicas=2)(p, time_limit=30)
    check(p, s)
    assert s.period.value >= s.period.bound * (1 - 1e-9)


def test_a_reported_infeasible_never_beats_a_valid_warm_start():
    """A backend that says "infeasible" while its warm start is valid has a model bug: the answer keeps the
    warm start (with a warning), never an infeasibility claim."""
    p = random_problem(6, seed=1)
    hint = get_solver("heft")(p)
    wrong = Outcome(None, None, None, True, {})
    s = latency_answer(p, wrong, hint, solver="cpsat", started=time.perf_counter())
    assert s.found and s.status != "infeasible" and "model bug" in s.info["warning"]
    assert validate(p, s) == [] and s.makespan == pytest.approx(hint.makespan)
    t = throughput_answer(p, wrong, (hint.placement,), solver="milp", started=time.perf_counter(), replicas=1)
    assert t.found and t.status != "infeasible" and "model bug" in t.info["warning"]
    assert latency_answer(p, wrong, None, solver="cpsat", started=time.perf_counter()).status == "infeasible"
