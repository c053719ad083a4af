"""Random problem instances for tests and benchmarks (seeded, reproducible).

Example
-------
>>> p = random_problem(8, seed=1)
>>> len(p.tasks), p.devices
(8, ('cpu0', 'cpu1', 'cpu-par', 'pim'))
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .graph import Edge, Task, TaskGraph
from .platform import Device, Link, Platform, load_platform
from .problem import Problem


def random_dag(n: int, *, edge_prob: float = 0.3, max_in: int = 3, seed: int = 0) -> TaskGraph:
    """A random DAG on ``n`` tasks: each edge i -> j (i < j) with ``edge_prob``, at most ``max_in`` inputs."""
    rng = np.random.default_rng(seed)
    tasks = tuple(Task(f"t{i}", "Op", memory_bytes=int(rng.integers(1, 100)) * 1024) for i in range(n))
    edges = []
    for j in range(1, n):
        srcs = [i for i in range(j) if rng.random() < edge_prob][-max_in:]
        edges += [Edge(f"t{i}", f"t{j}", int(rng.integers(1_000, 2_000_000))) for i in srcs]
    return TaskGraph(f"random-{n}-{seed}", tasks, tuple(edges))


def random_platform(n_devices: int = 3, *, shared: bool = True, seed: int = 0) -> Platform:
    """``n_devices`` devices on separate resources, plus (``shared``) one device holding the first two."""
    rng = np.random.default_rng(seed)
    devs = [Device(f"d{i}", resources=(f"r{i}",)) for i in range(n_devices)]
    if shared and n_devices >= 2:
        devs[-1] = Device(f"d{n_devices - 1}", resources=("r0", "r1"))
    links = [Link(a.name, b.name, float(rng.uniform(1e-6, 2e-5)), float(rng.uniform(1e9, 2e10)))
             for i, a in enumerate(devs) for b in devs[i + 1:]]
    return Platform(f"random-{n_devices}", tuple(devs), tuple(links))


def _time_scaled(link: Link | None, k: float) -> Link | None:
    """``link`` with every transfer taking ``k`` times as long."""
    if link is None or k == 1.0:
        return link
    return replace(link, latency=link.latency * k, bandwidth=link.bandwidth / k if link.bandwidth else None)


def random_problem(n: int, *, seed: int = 0, platform: Platform | str = "default", edge_prob: float = 0.3,
                   unsupported: float = 0.0, memory_fraction: float | None = None, colocate: int = 0,
                   time_scale: float = 1.0) -> Problem:
    """A random problem: random DAG, heterogeneous costs (0.1-1 ms x per-device factor 0.3-3).

    ``unsupported``: chance that a (task, device) pair is not allowed (each task keeps one device);
    ``memory_fraction``: give every device a capacity of this fraction of the total task memory;
    ``colocate``: number of random co-location pairs; ``time_scale``: every cost and transfer takes
    that many times as long (1e-2: costs of µs; 1e3: of seconds), for testing numerics at every scale.
    """
    rng = np.random.default_rng(seed + 7919)
    graph = random_dag(n, edge_prob=edge_prob, seed=seed)
    plat = load_platform(platform) if isinstance(platform, str) else platform
    if time_scale != 1.0:
        plat = replace(plat, links=tuple(_time_scaled(l, time_scale) for l in plat.links),
                       default_link=_time_scaled(plat.default_link, time_scale))
    if memory_fraction is not None:
        total = sum(t.memory_bytes for t in graph.tasks)
        cap = int(total * memory_fraction)
        plat = replace(plat, devices=tuple(replace(d, memory_bytes=cap) for d in plat.devices))
    costs: dict[str, dict[str, float]] = {}
    for t in graph.tasks:
        base = rng.uniform(1e-4, 1e-3) * time_scale
        row = {d: float(base * rng.uniform(0.3, 3.0)) for d in plat.device}
        keep = str(rng.choice(list(row)))
        costs[t.name] = {d: c for d, c in row.items() if d == keep or rng.random() >= unsupported}
    groups: dict[str, str] = {}
    names = [t.name for t in graph.tasks]
    for g in range(colocate if n >= 2 else 0):
        a, b = rng.choice(names, size=2, replace=False)
        if a in groups or b in groups:
            continue
        common = set(costs[a]) & set(costs[b])
        if common:
            groups[str(a)] = groups[str(b)] = f"g{g}"
    return Problem(graph, plat, costs, colocate=groups, name=graph.name)


def random_servers_problem(n: int, *, seed: int = 0, servers: int = 2, twins: bool = True) -> Problem:
    """``n`` random tasks on ``servers`` identical servers of a CPU and two GPUs (``twins``: the GPUs are
    identical too), fast links within a server and a slow network between them; costs of µs (seed % 3 == 0),
    ms or tens of ms.

    >>> random_servers_problem(4, seed=1).devices
    ('c@s0', 'g0@s0', 'g1@s0', 'c@s1', 'g0@s1', 'g1@s1')
    """
    rng = np.random.default_rng(seed)
    scale = (1e-2, 1.0, 10.0)[seed % 3]
    server = Platform("server", (Device("c", resources=("c",)), Device("g0", resources=("g0",)),
                                 Device("g1", resources=("g1",))),
                      default_link=Link("*", "*", float(rng.uniform(0, 1e-4)) * scale, 1e9))
    plat = server.servers(servers, Link("*", "*", float(rng.uniform(2e-4, 1e-3)) * scale, 1e8))
    graph = random_dag(n, edge_prob=0.4, seed=seed)
    costs = {}
    for t in graph.tasks:
        c, g = (float(x) * scale for x in rng.uniform(1e-4, 1e-3, 2))
        g1 = g if twins else g * float(rng.uniform(1.2, 2.0))
        costs[t.name] = {f"{d}@s{k}": v for k in range(servers) for d, v in (("c", c), ("g0", g), ("g1", g1))}
    return Problem(graph, plat, costs)
