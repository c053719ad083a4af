"""Views of a problem through its devices: devices that can stand in for one another (mirror classes), and
the same problem on fewer devices (the real ones alone, or those that share no core).

Mirror classes let the exact solvers break symmetry and the replay count mirror
images of a placement once; the problems on fewer devices are what a host can
measure (:func:`host_problem`) and the replay's cores-apart candidates
(:func:`disjoint_problems`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import networkx as nx

from .problem import Problem


# ----------------------------------------------------------------------------- interchangeable devices

def _mirror(problem: Problem, a: str, b: str) -> bool:
    """Whether swapping devices ``a`` and ``b`` maps the problem onto itself: same settings, costs, memory,
    transfers to, from and between them, and resource sharing with every other device."""
    plat = problem.platform
    da, db = plat.device[a], plat.device[b]
    if (da.threads, da.execution_provider, da.simulated, da.kind, da.memory_bytes, da.transfer_load) != (
            db.threads, db.execution_provider, db.simulated, db.kind, db.memory_bytes, db.transfer_load):
        return False
    if any(problem.costs[t].get(a) != problem.costs[t].get(b) for t in problem.tasks):
        return False
    others = [c for c in problem.devices if c not in (a, b)]
    if any(plat.shares_resource(a, c) != plat.shares_resource(b, c) for c in others):
        return False
    edges = problem.graph.edges
    return (all(problem.transfer(e, a, b) == problem.transfer(e, b, a) for e in edges)
            and all(problem.transfer(e, a, c) == problem.transfer(e, b, c)
                    and problem.transfer(e, c, a) == problem.transfer(e, c, b) for e in edges for c in others))


def mirror_classes(problem: Problem) -> tuple[tuple[str, ...], ...]:
    """Devices that can stand in for one another (two identical cores, say), in classes of two or more."""
    classes: list[list[str]] = []
    for d in problem.devices:
        home = next((c for c in classes if _mirror(problem, c[0], d)), None)
        if home is None:
            classes.append([d])
        else:
            home.append(d)
    return tuple(tuple(c) for c in classes if len(c) > 1)


def first_use_order(problem: Problem, copies: int = 1) -> list[tuple[int, str]]:
    """(copy, task) in the order that decides which device of a mirror class counts as used first: copy 0's
    tasks in problem order, then copy 1's...  The renaming below and the exact models' symmetry breaking
    must agree on it."""
    return [(k, t) for k in range(copies) for t in problem.tasks]


def mirror_renaming(problem: Problem, placements: Sequence[Mapping[str, str]],
                    classes: Sequence[Sequence[str]]) -> dict[str, str]:
    """Names for the devices of each mirror class in the order the tasks first use them (the tasks of
    ``placements[0]`` in problem order, then of the next copy...): applied to every copy, it gives mirror
    images one form, and the form the exact solvers' symmetry breaking asks for."""
    rename: dict[str, str] = {}
    unused = {}  # device -> its class's names not yet given out (one list per class)
    for c in classes:
        names = list(c)
        unused.update({d: names for d in c})
    for k, t in first_use_order(problem, len(placements)):
        d = placements[k][t]
        if d in unused and d not in rename:
            rename[d] = unused[d].pop(0)
    for d, names in unused.items():  # devices no task uses take the names left, in order
        if d not in rename:
            rename[d] = names.pop(0)
    return rename


def canonical_placement(problem: Problem, placement: Mapping[str, str],
                        classes: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The placement with the devices of each mirror class renamed in the order the tasks first use them:
    mirror images (two towers swapped between two identical cores) get one form."""
    rename = mirror_renaming(problem, [placement], classes)
    return tuple(rename.get(placement[t], placement[t]) for t in problem.tasks)


# ----------------------------------------------------------------------------- problems on fewer devices

def host_problem(problem: Problem) -> Problem | None:
    """The problem on the platform's real devices alone: what can be measured on this host.

    None when that is no different problem or none at all: the platform has no
    simulated device, or no real one, or some task (or co-location group) only a
    simulated device may run.  The platform keeps its links between real devices
    and is named ``<platform>:host``.

    >>> from scheduler.zoo import build
    >>> from scheduler.graph import task_graph_from_onnx
    >>> from scheduler.platform import load_platform
    >>> p = Problem.from_graph(task_graph_from_onnx(build("mlp", layers=2)), load_platform("default"))
    >>> host_problem(p).devices
    ('cpu0', 'cpu1', 'cpu-par')
    """
    real = [d.name for d in problem.platform.devices if not d.simulated]
    if not real or len(real) == len(problem.devices):
        return None
    return sub_problem(problem, real, f"{problem.platform.name}:host")


def sub_problem(problem: Problem, devices: Sequence[str], platform_name: str) -> Problem | None:
    """``problem`` with only ``devices`` (and the links between them) on a platform named ``platform_name``;
    None when some task (or co-location group) could then run nowhere."""
    keep = set(devices)
    costs = {t: {d: c for d, c in row.items() if d in keep} for t, row in problem.costs.items()}
    if not all(costs.values()) or any(not set.intersection(*(set(costs[t]) for t in members))
                                      for members in problem.groups.values()):
        return None
    executor = problem.executor and replace(problem.executor,
                                            call_s={d: c for d, c in problem.executor.call_s.items() if d in keep})
    return Problem(problem.graph, problem.platform.subset(list(devices), platform_name), costs,
                   problem.transfer_override, problem.colocate, problem.name, executor)


def disjoint_problems(problem: Problem) -> list[Problem]:
    """``problem`` on each largest set of its real devices that share no resource (core), when that
    is fewer devices than it has: placements that never pass a core from one device to another.

    On platform ``cpu`` (``cpu0``, ``cpu1`` and ``cpu-par`` on both cores) that is
    ``cpu0`` + ``cpu1``: solvers given all three mix ``cpu-par`` in, and each hand-over
    of a core between a two-thread and a one-thread session costs the replay more
    than the task-level schedule sees (the executor's ``switch_s``), so the best
    placement on the two separate cores is a candidate of its own.  Sets of one
    device are left out: the ``single`` solver covers them.

    >>> from scheduler.zoo import build
    >>> from scheduler.graph import task_graph_from_onnx
    >>> from scheduler.platform import load_platform
    >>> p = Problem.from_graph(task_graph_from_onnx(build("mlp", layers=2)), load_platform("cpu"))
    >>> [(q.platform.name, q.devices) for q in disjoint_problems(p)]
    [('cpu:cpu0+cpu1', ('cpu0', 'cpu1'))]
    """
    platform = problem.platform
    real = [d.name for d in platform.devices if not d.simulated]
    apart = nx.Graph()
    apart.add_nodes_from(real)
    apart.add_edges_from((a, b) for i, a in enumerate(real) for b in real[i + 1:]
                         if not platform.shares_resource(a, b))
    # every real device in one set: none shares a resource, and the problem itself is that set
    sets = sorted((sorted(c, key=real.index) for c in nx.find_cliques(apart) if 1 < len(c) < len(real)),
                  key=lambda c: [real.index(d) for d in c])
    subs = [sub_problem(problem, c, f"{platform.name}:{'+'.join(c)}") for c in sets]
    return [q for q in subs if q is not None]
