"""``hierarchical``: DiviML's multi-server solve: servers first, then the devices within each.

On a platform of identical servers (:meth:`scheduler.platform.Platform.servers`,
detected by :func:`scheduler.problem_views.server_blocks`) the problem is cut in two:

1. **Servers.**  Each copy of the graph gets a group of servers.  Throughput with at
   least as many copies as servers: data parallelism, each server runs
   ``ceil(replicas / servers)`` copies on its own (no network at all), so one server
   is solved and its answer copied to the others.  Otherwise (latency, or fewer
   copies than servers) each copy gets ``servers // replicas`` servers, and the tasks
   are split among them on a coarse problem with one device per server (a task's
   cost: its fastest device there for latency; for throughput the server's
   combined rate, ``1 / sum(1 / cost)``), joined by the network: ``portfolio``
   solves it for latency, ``dp-pipeline`` for throughput.
2. **Devices.**  The ``inner`` solver (default ``auto``) solves the group's problem
   with each task kept to its server's devices: a model a fraction the size of the
   whole one.  For a split across servers, the group's first server alone is solved
   too (the coarse costs only estimate a server), and the better answer is kept.

The answer is copied to every group (the servers are interchangeable, so each group's
period is the same) and certified on the whole problem.  A heuristic: the split is
fixed before the devices are chosen.  Without servers it is the ``inner`` solver.

>>> from scheduler.generate import random_problem
>>> from scheduler.platform import Link, load_platform
>>> p = random_problem(12, seed=1)
>>> two = Problem.from_graph(p.graph, load_platform("cpu2gpu").servers(2, Link("*", "*", 5e-5, 1.25e9)))
>>> s = solve(two, time_limit=2, objective="throughput", replicas=2)
>>> s.info["servers"], [sorted({d[-2:] for d in copy.values()}) for copy in s.period.placements]
(2, [['s0'], ['s1']])
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Literal, Mapping, Sequence

from scheduler.errors import SolverError
from scheduler.platform import Device, Platform
from scheduler.problem import Problem
from scheduler.problem_views import server_blocks, sub_problem
from scheduler.schedule import Schedule
from scheduler.semantics import period

from .common import Objective, Replicas, certify_placement, no_solution
from .exact_solve import Outcome, check_options, throughput_answer
from .registry import SOLVERS, get_solver

NAME = "hierarchical"
Inner = Literal["auto", "cpsat", "milp", "lns", "split", "portfolio", "heft", "dp-pipeline"]
ONE_COPY = {"dp-pipeline"}
"""Inner solvers that place one copy of the graph (throughput): each server runs its copies alike."""
COARSE_SHARE = 0.2
"""The share of the time limit the split across servers may take; the devices get the rest."""


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0, objective: Objective = "latency",
          replicas: Replicas = 1, inner: Inner = "auto") -> Schedule:
    """The two-level schedule (see the module docstring)."""
    started = time.perf_counter()
    check_options(NAME, objective, replicas)
    if objective not in SOLVERS[inner].objectives:
        raise SolverError(f"solver {NAME!r}: inner solver {inner!r} does not optimise {objective} (it optimises "
                          f"{' and '.join(SOLVERS[inner].objectives)})")
    deadline = None if time_limit is None else started + time_limit
    servers = server_blocks(problem)
    if not servers:
        s = _inner(problem, inner, objective, replicas, deadline, seed)
        return replace(s, solver=NAME, info={**s.info, "servers": 1, "inner": inner},
                       solve_seconds=time.perf_counter() - started)
    n = len(servers)
    if objective == "throughput" and replicas >= n:
        per_server = math.ceil(replicas / n)
        group = servers[:1]
        answer = _inner(_on(problem, group), inner, objective, per_server, deadline, seed)
        copies = [(k // per_server, k % per_server) for k in range(replicas)]
        split = "data-parallel"
    else:
        size = n // replicas
        group = servers[:size]
        answer, split = _split(problem, group, objective, inner, deadline, seed, time_limit)
        copies = [(k, 0) for k in range(replicas)]
    if not answer.found:
        return no_solution(problem, solver=NAME, started=started,
                           reason=f"{inner} found nothing on one server group: {answer.info.get('reason', '')}")
    found = answer.copies
    width = len(group)
    placements = [_moved(found[i % len(found)], servers[:width], servers[g * width:(g + 1) * width])
                  for g, i in copies]
    info: dict[str, Any] = {"servers": n, "group": width, "split": split, "inner": inner,
                            "inner_status": answer.status}
    if objective == "throughput":
        out = Outcome(tuple(placements), None, None, False, info)
        s = throughput_answer(problem, out, None, solver=NAME, started=started, replicas=replicas)
        return replace(s, status="optimal" if s.status == "optimal" else "heuristic")  # optimal: meets a bound
    return certify_placement(problem, placements[0], answer.order(problem), solver=NAME, started=started, info=info)


def _inner(problem: Problem, inner: str, objective: str, replicas: int, deadline: float | None,
           seed: int) -> Schedule:
    """The inner solver on ``problem`` until ``deadline``."""
    copies = 1 if inner in ONE_COPY else replicas  # the answer's one placement then serves every copy
    options = {"objective": objective, "replicas": copies} if "objective" in SOLVERS[inner].options else {}
    limit = None if deadline is None else max(0.05, deadline - time.perf_counter())
    return get_solver(inner, **options)(problem, time_limit=limit, seed=seed)


def _on(problem: Problem, servers: Sequence[Sequence[str]]) -> Problem:
    """``problem`` on these servers only (all of them: ``problem`` itself)."""
    devices = [d for block in servers for d in block]
    if len(devices) == len(problem.devices):
        return problem
    sub = sub_problem(problem, devices, f"{problem.platform.name}:{len(servers)}-servers")
    assert sub is not None  # a server can run whatever the platform can: the servers are interchangeable
    return sub


def _split(problem: Problem, group: Sequence[Sequence[str]], objective: str, inner: str,
           deadline: float | None, seed: int, time_limit: float | None) -> tuple[Schedule, str]:
    """One copy on the servers of ``group``: the tasks split among them on the coarse problem, then each kept
    to its server's devices; and the first server alone.  The better of the two, and which it is."""
    whole = _on(problem, group)
    first = _on(problem, group[:1])
    if len(group) == 1:
        return _inner(first, inner, objective, 1, deadline, seed), "one server"
    rough = get_solver("dp-pipeline" if objective == "throughput" else "portfolio")(
        _coarse(whole, group, objective), time_limit=None if time_limit is None else COARSE_SHARE * time_limit,
        seed=seed)
    server_of = {t: int(d[1:]) for t, d in rough.placement.items()} if rough.found else {}
    if len(set(server_of.values())) < 2:
        return _inner(first, inner, objective, 1, deadline, seed), "one server"
    halfway = None if deadline is None else time.perf_counter() + (deadline - time.perf_counter()) / 2
    one = _inner(first, inner, objective, 1, halfway, seed)
    kept = {t: {d: c for d, c in row.items() if d in group[server_of[t]]} for t, row in whole.costs.items()}
    spread = _inner(replace(whole, costs=kept), inner, objective, 1, deadline, seed)

    def value(s: Schedule) -> float:
        if not s.found:
            return math.inf
        return period(whole, s.placement) if objective == "throughput" else s.makespan

    return (spread, "across servers") if value(spread) < value(one) else (one, "one server")


def _coarse(problem: Problem, group: Sequence[Sequence[str]], objective: str) -> Problem:
    """One device ``s<k>`` per server of ``group``, joined by the network between them; a task's cost on it:
    its fastest device there (latency) or the server's combined rate (throughput)."""
    link = problem.platform.link_table[group[0][0], group[1][0]]
    devices = []
    for k, block in enumerate(group):
        caps = [problem.platform.device[d].memory_bytes for d in block]
        devices.append(Device(f"s{k}", resources=(f"s{k}",),
                              memory_bytes=None if None in caps else sum(c for c in caps if c is not None)))
    costs: dict[str, dict[str, float]] = {}
    for t, row in problem.costs.items():
        costs[t] = {}
        for k, block in enumerate(group):
            here = [row[d] for d in block if d in row]
            if here:
                costs[t][f"s{k}"] = min(here) if objective == "latency" or 0.0 in here else \
                    1.0 / sum(1.0 / c for c in here)
    platform = Platform(f"{problem.platform.name}:servers", tuple(devices),
                        default_link=replace(link, src="*", dst="*"))
    return Problem(problem.graph, platform, costs, problem.transfer_override, problem.colocate, problem.name)


def _moved(placement: Mapping[str, str], src: Sequence[Sequence[str]],
           dst: Sequence[Sequence[str]]) -> dict[str, str]:
    """``placement`` on the servers ``src`` moved to the servers ``dst``, device by device."""
    to = {a: b for x, y in zip(src, dst) for a, b in zip(x, y)}
    return {t: to[d] for t, d in placement.items()}
