"""``greedy``: topological order, each task on the device where it finishes earliest.

The classic list-scheduling baseline: it looks one task ahead and never revisits a
choice.  Ties go to the cheaper device, then to platform order.

With ``priority=[dev, ...]`` it is instead the PIM partitioning paper's
device-priority baseline: each task goes to the first device of the list that can
run it (devices not listed come last, in platform order).
"""

from __future__ import annotations

import time
from typing import Sequence

from scheduler.errors import SolverError
from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import Timeline

from .common import Feasibility, earliest_finish, certify_placement, no_solution


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0,
          priority: Sequence[str] | None = None) -> Schedule:
    """Earliest-finish-time (or device-priority) placement in the graph's topological order."""
    started = time.perf_counter()
    name = "greedy" if priority is None else f"greedy:{'>'.join(priority)}"
    rank: dict[str, int] = {}
    if priority is not None:
        if isinstance(priority, str):
            priority = [priority]
        unknown = [d for d in priority if d not in problem.platform.device]
        if unknown:
            raise SolverError(f"solver 'greedy': priority names unknown device {unknown[0]!r} "
                              f"(devices: {', '.join(problem.devices)})")
        order = list(priority) + [d for d in problem.devices if d not in priority]
        rank = {d: i for i, d in enumerate(order)}
    timeline, feas = Timeline(problem), Feasibility(problem)
    topo = problem.graph.topological_order
    for t in topo:
        cands = feas.candidates(t)
        if not cands:
            return no_solution(problem, solver=name, started=started,
                               reason=f"no device left for task {t!r} within memory and co-location limits")
        if rank:
            device = min(cands, key=rank.__getitem__)
        else:
            device, _ = earliest_finish(problem, timeline, t, cands, insertion=False)
        timeline.place(t, device)
        feas.commit(t, device)
    return certify_placement(problem, timeline.device_of, topo, solver=name, started=started)
