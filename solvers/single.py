"""``single``: every task on one device (DiviML's "fastest single device" baseline).

With no ``device`` option it tries every device that can run the whole graph
within its memory and keeps the fastest.
"""

from __future__ import annotations

import time

from scheduler.errors import SolverError
from scheduler.problem import Problem
from scheduler.schedule import Schedule

from .common import certify_placement, no_solution


def _fits(problem: Problem, device: str) -> str | None:
    """Why ``device`` cannot hold the whole graph, or None when it can."""
    bad = next((t for t in problem.tasks if device not in problem.costs[t]), None)
    if bad is not None:
        return f"device {device!r} cannot run task {bad!r}"
    cap = problem.platform.device[device].memory_bytes
    total = sum(problem.memory(t) for t in problem.tasks)
    if cap is not None and total > cap:
        return f"the graph needs {total} bytes, over device {device!r}'s {cap}"
    return None


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0, device: str | None = None) -> Schedule:
    """All tasks on ``device`` (or on the best single device), in topological order."""
    started = time.perf_counter()
    name = f"single:{device}" if device else "single"
    if device is not None and device not in problem.platform.device:
        raise SolverError(f"solver {name!r}: unknown device {device!r} (devices: {', '.join(problem.devices)})")
    candidates = [device] if device else list(problem.devices)
    best, reasons = None, []
    for d in candidates:
        why = _fits(problem, d)
        if why:
            reasons.append(why)
            continue
        sched = certify_placement(problem, {t: d for t in problem.tasks}, solver=name, started=started,
                                  info={"device": d})
        if best is None or sched.makespan < best.makespan:
            best = sched
    if best is None:
        return no_solution(problem, solver=name, started=started, reason="; ".join(reasons))
    return best
