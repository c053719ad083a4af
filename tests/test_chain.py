"""The chain DP equals brute force over every device sequence, and its segments add up to its value."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.chain import longest_path, split_chain
from scheduler.generate import random_problem


def brute_split(cost: np.ndarray, memory: np.ndarray, capacity: np.ndarray, moves: np.ndarray) -> float:
    """Least value over every device per item: maximal runs fit memory, each change pays ``moves[j]``."""
    items, devices = cost.shape
    best = np.inf
    for seq in itertools.product(range(devices), repeat=items):
        value = sum(cost[j, d] for j, d in enumerate(seq))
        value += sum(moves[j][seq[j - 1], seq[j]] for j in range(1, items) if seq[j] != seq[j - 1])
        runs = [list(g) for _, g in itertools.groupby(range(items), key=lambda j: seq[j])]
        if all(memory[r].sum() <= capacity[seq[r[0]]] for r in runs):
            best = min(best, value)
    return best


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), items=st.integers(1, 6), devices=st.integers(1, 3),
       scale=st.sampled_from([1e-6, 1e-3, 1.0]))
def test_split_chain_equals_brute_force(seed, items, devices, scale):
    """Costs and transfers in µs, ms and s; some items a device cannot run; capacities of one to three items."""
    rng = np.random.default_rng(seed)
    cost = rng.uniform(0.1, 1.0, (items, devices)) * scale
    cost[rng.random((items, devices)) < 0.15] = np.inf
    memory = rng.integers(1, 4, items).astype(float)
    capacity = np.where(rng.random(devices) < 0.3, np.inf, rng.integers(2, 8, devices)).astype(float)
    moves = rng.uniform(0.0, 1.0, (items, devices, devices)) * scale
    for m in moves:  # a capped device's runs are maximal: it cannot follow itself
        np.fill_diagonal(m, np.where(np.isfinite(capacity), np.inf, 0.0))
    value, segments = split_chain(cost, memory, capacity, lambda j: moves[j])
    expected = brute_split(cost, memory, capacity, moves)
    assert value == pytest.approx(expected, rel=1e-9) if np.isfinite(expected) else not np.isfinite(value)
    if segments:
        assert [s[0] for s in segments] == [0] + [s[1] + 1 for s in segments[:-1]] and segments[-1][1] == items - 1
        total = sum(cost[i:j + 1, d].sum() for i, j, d in segments)
        total += sum(moves[b[0]][a[2], b[2]] for a, b in zip(segments, segments[1:]))
        assert total == pytest.approx(value, rel=1e-9)
        assert all(memory[i:j + 1].sum() <= capacity[d] for i, j, d in segments)


def test_longest_path_is_a_path_of_the_largest_weight():
    p = random_problem(30, seed=4)
    weight = {t: min(p.costs[t].values()) for t in p.tasks}
    path = longest_path(p, weight)
    assert all(any(e.dst == b for e in p.succs[a]) for a, b in zip(path, path[1:]))
    finish = {}
    for t in p.graph.topological_order:
        finish[t] = weight[t] + max((finish[e.src] for e in p.preds[t]), default=0.0)
    assert sum(weight[t] for t in path) == pytest.approx(max(finish.values()))
