"""``portfolio``: every list heuristic and its variants on the problem, and ``chain-cut``; the shortest schedule.

No one list heuristic wins everywhere (saga's benchmark: HEFT on most graphs, CPoP on
out-trees, MinMin and Sufferage on in-trees and pipelines), and each costs
milliseconds, so running them all is the fast heuristic a user wants.  Where memory
forces a model across several accelerators they all crowd one, and ``chain-cut``
(last: it costs up to a second on 800 tasks) is the member that spreads it.  The members
run cheapest first until the time limit (at least one runs); ``info["chosen"]`` names
the winner.

>>> from scheduler.generate import random_problem
>>> s = solve(random_problem(10, seed=3))
>>> s.solver, s.info["chosen"] in {label for label, _ in MEMBERS}
('portfolio', True)
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Callable

from scheduler.problem import Problem
from scheduler.schedule import Schedule

from . import chain_cut, cpop, dp_chain, greedy, heft, linear_clustering, minmin, single
from .common import no_solution

NAME = "portfolio"
MEMBERS: tuple[tuple[str, Callable[..., Schedule]], ...] = (
    ("single", single.solve),
    ("greedy", greedy.solve),
    ("dp-chain", dp_chain.solve),
    ("heft", heft.solve),
    ("heft transfer_mean=all", lambda p, **kw: heft.solve(p, transfer_mean="all", **kw)),
    ("cpop", cpop.solve),
    ("cpop transfer_mean=all", lambda p, **kw: cpop.solve(p, transfer_mean="all", **kw)),
    ("minmin", minmin.solve),
    ("minmin rule=max", lambda p, **kw: minmin.solve(p, rule="max", **kw)),
    ("minmin rule=sufferage", lambda p, **kw: minmin.solve(p, rule="sufferage", **kw)),
    ("linear-clustering", linear_clustering.solve),
    ("chain-cut", chain_cut.solve),
)
"""The members, cheapest first, with the label ``info["chosen"]`` gives them."""


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0) -> Schedule:
    """The shortest valid schedule of the members that ran within ``time_limit``."""
    started = time.perf_counter()
    deadline = started + time_limit if time_limit else math.inf
    best: tuple[Schedule, str] | None = None
    reasons: list[str] = []
    for label, member in MEMBERS:
        if best is not None and time.perf_counter() > deadline:
            break
        s = member(problem, time_limit=None if math.isinf(deadline) else max(0.01, deadline - time.perf_counter()),
                   seed=seed)
        if not s.found:
            reasons.append(f"{label}: {s.info.get('reason', s.status)}")
        elif best is None or s.makespan < best[0].makespan:
            best = (s, label)
    if best is None:
        return no_solution(problem, solver=NAME, started=started, reason="; ".join(reasons))
    s, label = best
    info: dict[str, Any] = {**s.info, "chosen": label}
    return replace(s, solver=NAME, info=info, solve_seconds=time.perf_counter() - started)
