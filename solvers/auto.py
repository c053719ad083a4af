"""``auto``: the solver that a problem's size and the time budget call for.

* ``objective="latency"``: ``cpsat`` when the problem is small (tasks x devices at
  most :data:`EXACT_SIZE`, where it usually proves optimality within seconds),
  ``portfolio`` when the budget is under :data:`QUICK_S` (the list heuristics take
  milliseconds), ``lns`` otherwise (the anytime search: the longer it runs, the
  better; on 100-300 tasks it matches 60 s of ``cpsat`` within a few percent in 6 s,
  see ``benchmarks/bench_lns.py``).
* ``objective="throughput"``: ``dp-pipeline`` when the budget is under
  :data:`QUICK_S` and there is one copy, else ``cpsat`` (warm-started by
  ``dp-pipeline`` among others, it was the best on every published workload,
  ``results/bench_published.md``).

* Several identical servers (:func:`scheduler.problem_views.server_blocks`), beyond
  the exact size and with a budget of at least :data:`QUICK_S`: ``hierarchical``
  (servers first, then each server's devices by ``auto``); on a GPT-2-like stack of
  724 tasks it matched or beat ``cpsat`` and ``lns`` on 2 and 4 servers, and with
  one copy per server reached 6.6x the fastest device where ``cpsat`` reached 5.5x
  (``results/bench_multiserver.md``).

Without a time limit the budget is :data:`DEFAULT_LIMIT` seconds.  ``info["chosen"]``
names the solver that ran and ``info["why"]`` the rule.

>>> from scheduler.generate import random_problem
>>> s = solve(random_problem(8, seed=1), time_limit=5)
>>> s.solver, s.info["chosen"]
('auto', 'cpsat')
"""

from __future__ import annotations

import time
from dataclasses import replace

from scheduler.problem import Problem
from scheduler.problem_views import server_blocks
from scheduler.schedule import Schedule

from . import cpsat, dp_pipeline, hierarchical, lns, portfolio
from .common import Objective, Replicas
from .exact_solve import check_options

NAME = "auto"
EXACT_SIZE = 160  # tasks x devices: 40 tasks on 4 devices
QUICK_S = 1.0  # a budget under this gets the fast heuristics
DEFAULT_LIMIT = 10.0


def choose(problem: Problem, time_limit: float, objective: str = "latency", replicas: int = 1) -> tuple[str, str]:
    """(solver name, why) for this problem and budget.

    >>> from scheduler.generate import random_problem
    >>> choose(random_problem(100, seed=1), 0.5)
    ('portfolio', 'a budget under 1 s: the list heuristics')
    """
    size = len(problem.tasks) * len(problem.devices)
    servers = len(server_blocks(problem))
    if servers and size > EXACT_SIZE and time_limit >= QUICK_S:
        return "hierarchical", f"{servers} identical servers: the servers first, then each one's devices"
    if objective == "throughput":
        if time_limit < QUICK_S and replicas == 1:
            return "dp-pipeline", f"a budget under {QUICK_S:g} s: the contiguous-split DP"
        return "cpsat", "throughput: CP-SAT warm-started by the DP and the heuristics"
    if size <= EXACT_SIZE:
        return "cpsat", f"{len(problem.tasks)} tasks x {len(problem.devices)} devices <= {EXACT_SIZE}: exact"
    if time_limit < QUICK_S:
        return "portfolio", f"a budget under {QUICK_S:g} s: the list heuristics"
    return "lns", f"{len(problem.tasks)} tasks x {len(problem.devices)} devices > {EXACT_SIZE}: anytime search"


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0, objective: Objective = "latency",
          replicas: Replicas = 1) -> Schedule:
    """The chosen solver's schedule, named ``auto`` (see the module docstring)."""
    started = time.perf_counter()
    check_options(NAME, objective, replicas)
    limit = DEFAULT_LIMIT if time_limit is None else time_limit
    name, why = choose(problem, limit, objective, replicas)
    if name == "hierarchical":
        s = hierarchical.solve(problem, time_limit=limit, seed=seed, objective=objective, replicas=replicas)
    elif name == "cpsat":
        s = cpsat.solve(problem, time_limit=limit, seed=seed, objective=objective, replicas=replicas)
    elif name == "dp-pipeline":
        s = dp_pipeline.solve(problem, time_limit=limit, seed=seed)
    else:
        s = (lns if name == "lns" else portfolio).solve(problem, time_limit=limit, seed=seed)
    member = {"member": s.info["chosen"]} if "chosen" in s.info else {}  # portfolio's winner
    return replace(s, solver=NAME, info={**s.info, **member, "chosen": name, "why": why},
                   solve_seconds=time.perf_counter() - started)
