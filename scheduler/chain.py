"""The cheapest split of a chain into device segments: a dynamic programme shared by a bound and a heuristic.

Both follow a long path of the task graph (:func:`longest_path`).

A chain is a sequence of items (tasks of a path, or blocks of tasks) with a cost
per device (``inf`` where the device cannot run the item) and a memory each.  A
split cuts it into consecutive segments, each on one device, whose items' memory
fits that device; a segment after one on another device pays the boundary's
transfer, given per boundary as a devices x devices matrix (the diagonal: what
staying on the device costs, ``inf`` where a device's segments must be maximal
runs because it has a memory limit).  Its value is the sum of the costs and the
transfers: the time the chain takes when its items run one after another.

:func:`scheduler.bounds.path_segments_bound` reads the least value as a bound on the
makespan; ``solvers.chain_cut`` turns the segments into a placement.

>>> import numpy as np
>>> cost = np.array([[1.0, 9.0], [1.0, 9.0], [1.0, 8.0]])  # three items, two devices
>>> move = np.array([[np.inf, 5.0], [5.0, np.inf]])  # both devices keep their segments maximal
>>> split_chain(cost, np.array([2.0, 2.0, 2.0]), np.array([4.0, 4.0]), lambda j: move)  # two items fit a device
(15.0, ((0, 1, 0), (2, 2, 1)))
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from .problem import Problem


def split_chain(cost: np.ndarray, memory: np.ndarray, capacity: np.ndarray,
                moves: Callable[[int], np.ndarray]) -> tuple[float, tuple[tuple[int, int, int], ...]]:
    """(least value, its segments as (first item, last item, device index)); ``(inf, ())`` when no split fits.

    ``cost``: items x devices; ``memory``: per item; ``capacity``: per device
    (``inf``: no limit); ``moves(j)``: the transfer matrix of the boundary before
    item ``j`` (from row device to column device).

    ``g[j, d]``: the least value of items ``0..j`` with the last segment on ``d``.
    A segment ``[i..j]`` on ``d`` costs its items' costs there (prefix sums); it may
    start at ``i`` when its memory fits ``d`` and ``d`` runs all its items, so the
    feasible starts form a window that only moves right, and a monotone deque per
    device keeps the window's minimum: ``O(items x devices²)`` in all.
    """
    items, devices = cost.shape
    if items == 0:
        return 0.0, ()
    prefix = np.vstack([np.zeros(devices), np.cumsum(np.where(np.isfinite(cost), cost, 0.0), axis=0)])
    held = np.concatenate([[0.0], np.cumsum(memory)])
    g = np.full((items, devices), np.inf)
    start = np.zeros((items, devices), dtype=np.int64)
    came = np.full((items, devices), -1, dtype=np.int64)  # the previous segment's device
    windows: list[deque[tuple[int, float, int]]] = [deque() for _ in range(devices)]
    barred = np.full(devices, -1)  # per device, the last item it cannot run
    for j in range(items):
        if j == 0:
            enter, source = np.zeros(devices), np.full(devices, -1)
        else:
            options = g[j - 1][:, None] + moves(j)
            enter, source = options.min(axis=0), options.argmin(axis=0)
        for d, window in enumerate(windows):
            if not np.isfinite(cost[j, d]):
                barred[d] = j
                window.clear()
                continue
            value = enter[d] - prefix[j, d]
            while window and window[-1][1] >= value:
                window.pop()
            window.append((j, value, int(source[d])))
            while window and (window[0][0] <= barred[d] or held[j + 1] - held[window[0][0]] > capacity[d]):
                window.popleft()
            if window:
                g[j, d] = window[0][1] + prefix[j + 1, d]
                start[j, d], came[j, d] = window[0][0], window[0][2]
    d = int(np.argmin(g[-1]))
    best = float(g[-1, d])
    if not np.isfinite(best):
        return best, ()
    segments = []
    j = items - 1
    while j >= 0:
        i = int(start[j, d])
        segments.append((i, j, d))
        j, d = i - 1, int(came[j, d])
    return best, tuple(reversed(segments))


def longest_path(problem: Problem, weight: dict[str, float]) -> list[str]:
    """The tasks of a path with the largest total ``weight``, first to last."""
    total: dict[str, float] = {}
    prev: dict[str, str | None] = {}
    for t in problem.graph.topological_order:
        before = max(problem.preds[t], key=lambda e: total[e.src], default=None)
        total[t] = weight[t] + (total[before.src] if before is not None else 0.0)
        prev[t] = before.src if before is not None else None
    out: list[str] = []
    t: str | None = max(total, key=total.__getitem__) if total else None
    while t is not None:
        out.append(t)
        t = prev[t]
    return out[::-1]
