"""dp-pipeline: contiguous pipeline splits for the throughput objective."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from conftest import DNN
from scheduler.errors import SolverError
from scheduler.generate import random_platform, random_problem
from scheduler.importers import import_dnn_partitioning
from scheduler.schedule import validate
from scheduler.semantics import period
from solvers import get_solver
from solvers.exact_common import placement_errors


def published_chain(tmp_path, n: int, seed: int, accelerators: int = 2):
    """A chain of ``n`` nodes in the published format (staged accelerators, a CPU that pays nothing)."""
    rng = np.random.default_rng(seed)
    nodes = [{"id": i, "supportedOnFpga": int(rng.random() < 0.8), "cpuLatency": float(rng.uniform(1, 10)),
              "fpgaLatency": float(rng.uniform(0.2, 3)), "size": float(rng.uniform(0, 1))} for i in range(n)]
    edges = [{"sourceId": i, "destId": i + 1, "cost": float(rng.uniform(0, 2))} for i in range(n - 1)]
    path = tmp_path / f"chain{seed}.json"
    path.write_text(json.dumps({"maxSizePerFPGA": 2.0, "maxFPGAs": accelerators, "maxCPUs": 1, "nodes": nodes,
                                "edges": edges}))
    return import_dnn_partitioning(path, time_scale=1.0)


def contiguous(problem, placement) -> bool:
    """Whether every device's tasks form one interval of the chain."""
    seq = [placement[t] for t in problem.graph.topological_order]
    runs = [d for i, d in enumerate(seq) if i == 0 or seq[i - 1] != d]
    return len(runs) == len(set(runs))


@pytest.mark.parametrize("seed", range(12))
def test_on_chains_it_is_at_least_as_good_as_every_contiguous_split(tmp_path, seed):
    """The programme is exact over intervals of a chain (the published DP's setting); local search may only
    improve on it, and nothing beats the optimum over all placements."""
    p = published_chain(tmp_path, 3 + seed % 4, seed)
    s = get_solver("dp-pipeline")(p)
    assert s.found and validate(p, s) == [] and placement_errors(p, [s.placement]) == []
    assert s.objective == "throughput" and s.period.value == pytest.approx(period(p, s.placement), rel=1e-12)
    feasible = [dict(zip(p.tasks, c)) for c in itertools.product(p.devices, repeat=len(p.tasks))]
    feasible = [x for x in feasible if not placement_errors(p, [x])]
    best = min(period(p, x) for x in feasible)
    best_contiguous = min(period(p, x) for x in feasible if contiguous(p, x))
    assert best * (1 - 1e-12) <= s.period.value <= best_contiguous * (1 + 1e-12)
    assert s.period.bound <= best * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_valid_on_random_problems(seed):
    """Shared resources, memory, op support and co-location: a valid placement or an honest no-solution."""
    p = random_problem(12, seed=seed, platform=random_platform(3, shared=seed % 2 == 0, seed=seed),
                       unsupported=0.2, memory_fraction=(None, 0.6)[seed % 2], colocate=seed % 3)
    s = get_solver("dp-pipeline")(p, time_limit=2)
    if s.found:
        assert validate(p, s) == [] and placement_errors(p, [s.placement]) == []
        assert s.period.value == pytest.approx(period(p, s.placement))
    else:
        assert s.status == "no-solution" and "memory" in s.info["reason"]


@pytest.mark.parametrize("name, figure", [("LayerGraphs/bert24_inference.json", 17.7899),
                                          ("LayerGraphs/resnet50_inference.json", 33.7747),
                                          ("LayerGraphs/bert24_training.json", 41.7458)])
def test_matches_the_published_dp_figures(dnn_files, name, figure):
    """RESULTS.md's DP max-load (6 significant digits), reached in well under a second."""
    p = import_dnn_partitioning(DNN / "throughput-inputs" / name, time_scale=1.0)
    s = get_solver("dp-pipeline")(p)
    assert validate(p, s) == [] and s.period.value <= figure * (1 + 1e-5)


def test_it_refuses_what_it_does_not_do():
    p = random_problem(4, seed=0)
    with pytest.raises(SolverError, match="objective=throughput only"):
        get_solver("dp-pipeline", objective="latency")(p)
    with pytest.raises(SolverError, match="replicas=1"):
        get_solver("dp-pipeline", replicas=2)(p)


def test_exact_solvers_start_from_it(dnn_files):
    """cpsat's throughput hint includes dp-pipeline's split, so it is never worse than it."""
    p = import_dnn_partitioning(DNN / "throughput-inputs" / "LayerGraphs/bert24_inference.json", time_scale=1.0)
    split = get_solver("dp-pipeline")(p)
    exact = get_solver("cpsat", objective="throughput")(p, time_limit=2)
    assert exact.found and exact.period.value <= split.period.value * (1 + 1e-9)


def test_a_graph_of_free_tasks():
    """Every cost 0: the period bound is 0, and the first guess of a period must not loop on it."""
    from scheduler.graph import Edge, Task, TaskGraph
    from scheduler.platform import Device, Link, Platform
    from scheduler.problem import Problem

    plat = Platform("p", (Device("A"), Device("B")), default_link=Link("*", "*", 0.0, None))
    p = Problem(TaskGraph("g", (Task("a"), Task("b")), (Edge("a", "b", 0),)), plat,
                {t: {"A": 0.0, "B": 0.0} for t in "ab"})
    s = get_solver("dp-pipeline")(p, time_limit=5)
    assert s.found and s.period.value == 0.0 and validate(p, s) == []
