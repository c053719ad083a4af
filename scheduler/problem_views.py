"""Views of a problem through its devices: devices that can stand in for one another (mirror classes, and
whole servers), and the same problem on fewer devices (the real ones alone, or those that share no core).

The symmetries let the exact solvers break them and the replay count mirror
images of a placement once; the problems on fewer devices are what a host can
measure (:func:`host_problem`) and the replay's cores-apart candidates
(:func:`disjoint_problems`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Mapping, Sequence

import networkx as nx

from .problem import Problem


# ----------------------------------------------------------------------------- interchangeable devices

Symmetry = tuple[tuple[str, ...], ...]
"""Blocks of devices that can stand in for one another as wholes, position by position: permuting the blocks
maps the problem onto itself.  A mirror class (two identical cores) is a symmetry of one-device blocks; the
servers of a multi-server platform are one of whole servers."""

_SERVER = re.compile(r"^(.+)@s(\d+)$")  # device x of server k, as Platform.servers names it


def _automorphism(problem: Problem, perm: Mapping[str, str]) -> bool:
    """Whether renaming devices by ``perm`` (a permutation of some of them) maps the problem onto itself:
    same settings, costs, memory, transfers between any two devices, and resource sharing."""
    plat = problem.platform

    def image(d: str) -> str:
        return perm.get(d, d)

    def settings(d: str) -> tuple:
        x = plat.device[d]
        return x.threads, x.execution_provider, x.simulated, x.kind, x.memory_bytes, x.transfer_load

    if any(settings(d) != settings(image(d)) for d in perm):
        return False
    if any(row.get(d) != row.get(image(d)) for row in problem.costs.values() for d in perm):
        return False
    pairs = [(a, b) for a in problem.devices for b in problem.devices if a != b and (a in perm or b in perm)]
    if any(plat.shares_resource(a, b) != plat.shares_resource(image(a), image(b)) for a, b in pairs):
        return False
    kinds = {(problem.transfer_override.get((e.src, e.dst)), e.bytes): e for e in problem.graph.edges}
    return all(problem.transfer(e, a, b) == problem.transfer(e, image(a), image(b))
               for e in kinds.values() for a, b in pairs)


def mirror_classes(problem: Problem) -> tuple[tuple[str, ...], ...]:
    """Devices that can stand in for one another (two identical cores, say), in classes of two or more."""
    classes: list[list[str]] = []
    for d in problem.devices:
        home = next((c for c in classes if _automorphism(problem, {c[0]: d, d: c[0]})), None)
        if home is None:
            classes.append([d])
        else:
            home.append(d)
    return tuple(tuple(c) for c in classes if len(c) > 1)


def server_blocks(problem: Problem) -> Symmetry:
    """The servers of a multi-server platform (:meth:`scheduler.platform.Platform.servers`: device ``x`` of
    server ``k`` is ``x@s<k>``) as blocks of devices in one order, when there are two or more and swapping
    any two of them maps the problem onto itself; else ().

    >>> from scheduler.generate import random_problem
    >>> from scheduler.platform import Link, load_platform
    >>> p = random_problem(4, seed=1)
    >>> two = load_platform("cpu2gpu").servers(2, Link("*", "*", 5e-5, 1.25e9))
    >>> server_blocks(Problem.from_graph(p.graph, two))
    (('cpu@s0', 'gpu0@s0', 'gpu1@s0'), ('cpu@s1', 'gpu0@s1', 'gpu1@s1'))
    """
    parts = [_SERVER.match(d) for d in problem.devices]
    if not all(parts):
        return ()
    servers: dict[int, list[str]] = {}
    for m in parts:
        servers.setdefault(int(m.group(2)), []).append(m.group(1))
    inner = next(iter(servers.values()))
    if len(servers) < 2 or sorted(servers) != list(range(len(servers))) or \
            any(sorted(v) != sorted(inner) for v in servers.values()):
        return ()
    blocks = tuple(tuple(f"{x}@s{k}" for x in inner) for k in range(len(servers)))
    # adjacent swaps generate every permutation of the servers
    if all(_automorphism(problem, {**dict(zip(a, b)), **dict(zip(b, a))}) for a, b in zip(blocks, blocks[1:])):
        return blocks
    return ()


def symmetries(problem: Problem) -> tuple[Symmetry, ...]:
    """Every symmetry the exact solvers break and the replay counts once: the servers as wholes (if any),
    then each mirror class (split by server, so that renaming a class keeps every task on its server)."""
    servers = server_blocks(problem)
    home = {d: k for k, block in enumerate(servers) for d in block}
    classes = [[d for d in c if home.get(d) == k] for c in mirror_classes(problem)
               for k in sorted({home.get(d) for d in c}, key=str)]
    return ((servers,) if servers else ()) + tuple(tuple((d,) for d in c) for c in classes if len(c) > 1)


def first_use_order(problem: Problem, copies: int = 1) -> list[tuple[int, str]]:
    """(copy, task) in the order that decides which block of a symmetry counts as used first: copy 0's
    tasks in problem order, then copy 1's...  The renaming below and the exact models' symmetry breaking
    must agree on it."""
    return [(k, t) for k in range(copies) for t in problem.tasks]


def mirror_renaming(problem: Problem, placements: Sequence[Mapping[str, str]],
                    symmetry: Sequence[Symmetry]) -> dict[str, str]:
    """Device names that put the blocks of each symmetry in the order the tasks first use them (the tasks of
    ``placements[0]`` in problem order, then of the next copy...), one symmetry after the other: applied to
    every copy, it gives mirror images one form, and the form the exact solvers' symmetry breaking asks for.
    Unused blocks take the names left, in order."""
    rename = {d: d for d in problem.devices}
    for blocks in symmetry:
        block_of = {d: i for i, block in enumerate(blocks) for d in block}
        order: list[int] = []  # blocks by first use
        for k, t in first_use_order(problem, len(placements)):
            i = block_of.get(rename[placements[k][t]])
            if i is not None and i not in order:
                order.append(i)
        order += [i for i in range(len(blocks)) if i not in order]
        step = {d: blocks[new][pos] for new, old in enumerate(order) for pos, d in enumerate(blocks[old])}
        rename = {d: step.get(x, x) for d, x in rename.items()}
    return rename


def canonical_placement(problem: Problem, placement: Mapping[str, str],
                        symmetry: Sequence[Symmetry]) -> tuple[str, ...]:
    """The placement renamed by :func:`mirror_renaming`: mirror images (two towers swapped between two
    identical cores, two servers swapped) get one form."""
    rename = mirror_renaming(problem, [placement], symmetry)
    return tuple(rename[placement[t]] for t in problem.tasks)


# ----------------------------------------------------------------------------- problems on fewer devices

def host_problem(problem: Problem) -> Problem | None:
    """The problem on the platform's real devices alone: what can be measured on this host.

    None when that is no different problem or none at all: the platform has no
    simulated device, or no real one, or some task (or co-location group) only a
    simulated device may run.  The platform keeps its links between real devices
    and is named ``<platform>:host``.  On a multi-server platform this host is one
    server: the real devices of the first server alone (those of the others would
    run on the same cores).

    >>> from scheduler.zoo import build
    >>> from scheduler.graph import task_graph_from_onnx
    >>> from scheduler.platform import load_platform
    >>> p = Problem.from_graph(task_graph_from_onnx(build("mlp", layers=2)), load_platform("default"))
    >>> host_problem(p).devices
    ('cpu0', 'cpu1', 'cpu-par')
    """
    real = [d.name for d in problem.platform.devices if not d.simulated]
    servers = {m.group(2) for m in map(_SERVER.match, problem.devices) if m}
    if len(servers) > 1:
        first = min(servers, key=int)
        real = [d for d in real if (m := _SERVER.match(d)) and m.group(2) == first]
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
                                            call_s={d: c for d, c in problem.executor.call_s.items() if d in keep},
                                            unpacked=problem.executor.unpacked & keep)
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
