"""Lower bounds are sound (never above a proven optimum) and the LP ones dominate the classic ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from brute import brute_force
from scheduler.bounds import all_bounds, classic_bounds, lp_load_bound, lp_path_load_bound
from scheduler.generate import random_platform, random_problem
from solvers import get_solver


@st.composite
def problems(draw, max_tasks: int):
    seed = draw(st.integers(0, 10_000))
    plat = random_platform(draw(st.integers(1, 3)), shared=draw(st.booleans()), seed=seed) \
        if draw(st.booleans()) else "default"
    return random_problem(draw(st.integers(1, max_tasks)), seed=seed, platform=plat,
                          edge_prob=draw(st.sampled_from([0.2, 0.5])), unsupported=draw(st.sampled_from([0.0, 0.3])),
                          memory_fraction=draw(st.sampled_from([None, 0.7])), colocate=draw(st.integers(0, 2)))


@settings(max_examples=30, deadline=None)
@given(problem=problems(max_tasks=5))
def test_every_bound_is_below_the_brute_force_optimum(problem):
    best = brute_force(problem)
    if best is None:
        return
    for b in all_bounds(problem):
        assert b.value <= best.makespan * (1 + 1e-7) + 1e-12, (b, best.makespan)


@settings(max_examples=30, deadline=None)
@given(problem=problems(max_tasks=30))
def test_bounds_below_every_solver_and_lp_dominates_classic(problem):
    bounds = {b.name: b.value for b in all_bounds(problem)}
    for name in ("greedy", "heft", "dp-chain", "linear-clustering"):
        s = get_solver(name)(problem)
        if s.found:
            assert max(bounds.values()) <= s.makespan * (1 + 1e-7) + 1e-12
    if "lp-path-load" in bounds:
        assert bounds["lp-path-load"] >= max(b.value for b in classic_bounds(problem)) * (1 - 3e-6) - 1e-12
    if "lp-load" in bounds:
        assert bounds["lp-load"] >= bounds["resource-load"] * (1 - 3e-6) - 1e-12


def test_lp_bounds_are_tighter_on_a_zoo_model():
    from scheduler.pipeline import build_problem

    p = build_problem("bert")
    classic = max(b.value for b in classic_bounds(p))
    path = lp_path_load_bound(p)
    assert path is not None and path.value > classic * 1.05
    assert lp_load_bound(p).value > 0
