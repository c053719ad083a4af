"""Sound lower bounds on the optimal makespan of a problem.

Each bound is provably <= the makespan of every valid schedule:

* ``critical-path``: the longest path with every task at its cheapest allowed
  device and every transfer free;
* ``resource-load``: total resource-time divided by the number of resources,
  with each task at the device that uses the least resource-time (a task on a
  device with k resources occupies k of them).

Example
-------
>>> from scheduler.zoo import build
>>> from scheduler.graph import task_graph_from_onnx
>>> from scheduler.platform import load_platform
>>> from scheduler.problem import Problem
>>> p = Problem.from_graph(task_graph_from_onnx(build("mlp", layers=2)), load_platform("default"))
>>> best_bound(p).value > 0
True
"""

from __future__ import annotations

from dataclasses import dataclass

from .problem import Problem


@dataclass(frozen=True)
class Bound:
    """A lower bound on the optimal makespan, with the name of the argument behind it."""

    name: str
    value: float


def critical_path_bound(problem: Problem) -> Bound:
    """Longest path with cheapest costs and zero transfers."""
    finish: dict[str, float] = {}
    for t in problem.graph.topological_order:
        start = max((finish[e.src] for e in problem.preds[t]), default=0.0)
        finish[t] = start + min(problem.costs[t].values())
    return Bound("critical-path", max(finish.values(), default=0.0))


def resource_load_bound(problem: Problem) -> Bound:
    """Least total resource-time over the number of resources."""
    devices = problem.platform.device
    total = sum(min(c * len(devices[d].resources) for d, c in problem.costs[t].items()) for t in problem.tasks)
    return Bound("resource-load", total / len(problem.platform.resources))


def classic_bounds(problem: Problem) -> tuple[Bound, ...]:
    """All cheap bounds of this module."""
    return (critical_path_bound(problem), resource_load_bound(problem))


def best_bound(problem: Problem, extra: tuple[Bound, ...] = ()) -> Bound:
    """The largest of the classic bounds and any ``extra`` ones (e.g. a solver's proven bound)."""
    return max(classic_bounds(problem) + tuple(extra), key=lambda b: b.value)
