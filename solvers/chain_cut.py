"""``chain-cut``: the graph as a chain of device segments along its critical path.

Every task joins the block of the first critical-path task it feeds (a task that
feeds none joins the block of the last one it depends on, else the first block);
co-located tasks join their first member's block.  Along an edge the block index
never falls, except into such a trailing task, so the blocks in path order are a
chain of convex pieces.  :func:`scheduler.chain.split_chain` cuts that chain into
segments that fit memory, each on one device: a block costs its tasks' costs
there (one after another, as the device runs them), and a boundary costs the
transfer of the path edge there (``boundary=path``) or of the heaviest edges that
cross it (``boundary=crossing``).  By default both run and the shorter simulated
schedule wins.  The DP sees each segment's memory, not each device's: a segment
whose device is already full goes to an interchangeable one
(:func:`scheduler.problem_views.mirror_classes`), else to the device with room that
runs it soonest.

It is made for models that memory forces across several accelerators, where list
heuristics crowd one device: on the published BERT-12 and ResNet-50 operator
graphs it finds 763 and 603 ms where HEFT finds 1094 and 2500.  It costs
``O(tasks x devices²)``: under a second on 800 tasks and 16 devices.

>>> from scheduler.generate import random_problem
>>> s = solve(random_problem(12, seed=2, memory_fraction=0.5))
>>> s.solver, s.found
('chain-cut', True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from scheduler.chain import longest_path, split_chain
from scheduler.graph import Edge
from scheduler.problem import Problem
from scheduler.problem_views import mirror_classes
from scheduler.schedule import Schedule

from .common import certify_placement, no_solution

NAME = "chain-cut"
Boundary = Literal["path", "crossing", "both"]


def blocks(problem: Problem, path: list[str]) -> dict[str, int]:
    """Each task's block: the index on ``path`` of the first path task it feeds, else of the last it depends on
    (0 when neither); a co-location group takes its earliest member's block."""
    index = {t: i for i, t in enumerate(path)}
    order = problem.graph.topological_order
    feeds: dict[str, int | None] = {}
    for t in reversed(order):
        later = [feeds[e.dst] for e in problem.succs[t] if feeds[e.dst] is not None]
        feeds[t] = index[t] if t in index else min(later, default=None)
    after: dict[str, int] = {}
    for t in order:
        after[t] = index[t] if t in index else max((after[e.src] for e in problem.preds[t]), default=0)
    out = {t: feeds[t] if feeds[t] is not None else after[t] for t in order}
    for members in problem.groups.values():
        first = min(out[m] for m in members)
        out.update(dict.fromkeys(members, first))
    return out


def _boundaries(problem: Problem, path: list[str], block: dict[str, int], kind: str) -> list[list[Edge]]:
    """Per boundary before block ``j``, the edges whose transfer it costs: the path edge, or the crossing edges
    with the largest explicit transfer and the most bytes (a transfer grows with either)."""
    if kind == "path":
        return [[]] + [[e for e in problem.succs[a] if e.dst == b] for a, b in zip(path, path[1:])]
    best: list[dict[bool, tuple[float, Edge]]] = [{} for _ in path]
    for e in problem.graph.edges:
        override = problem.transfer_override.get((e.src, e.dst))
        key, size = override is not None, override if override is not None else float(e.bytes)
        for j in range(block[e.src] + 1, block[e.dst] + 1):
            if key not in best[j] or size > best[j][key][0]:
                best[j][key] = (size, e)
    return [[e for _, e in b.values()] for b in best]


@dataclass(frozen=True)
class Chain:
    """The critical path, each task's block on it, and each block's cost per device and memory."""

    path: list[str]
    block: dict[str, int]
    cost: np.ndarray  # blocks x devices
    memory: np.ndarray  # per block


def chain_of(problem: Problem) -> Chain:
    """The chain both boundary models cut (built once per solve)."""
    devs = problem.devices
    path = longest_path(problem, {t: min(problem.costs[t].values()) for t in problem.tasks})
    block = blocks(problem, path)
    cost = np.zeros((len(path), len(devs)))
    memory = np.zeros(len(path))
    for t, b in block.items():
        memory[b] += problem.memory(t)
        cost[b] += [problem.costs[t].get(d, np.inf) for d in devs]
    return Chain(path, block, cost, memory)


def _placement(problem: Problem, chain: Chain, kind: str) -> tuple[dict[str, str] | None, str]:
    """One boundary model's placement of ``chain``, or None and why not."""
    devs = problem.devices
    path, block, cost, memory = chain.path, chain.block, chain.cost, chain.memory
    cap = np.array([problem.platform.device[d].memory_bytes or np.inf for d in devs], dtype=float)
    stay = np.where(np.isfinite(cap), np.inf, 0.0)
    crossing = _boundaries(problem, path, block, kind)

    def moves(j: int) -> np.ndarray:
        m = np.array([[max((problem.transfer(e, a, b) for e in crossing[j]), default=0.0) for b in devs]
                      for a in devs])
        np.fill_diagonal(m, stay)
        return m

    _, segments = split_chain(cost, memory, cap, moves)
    if not segments:
        return None, "no split of the critical-path chain fits memory and support"
    mirrors = {d: c for c in mirror_classes(problem) for d in c}
    held = np.zeros(len(devs))
    device_of_block: dict[int, str] = {}
    for first, last, d in segments:
        need, work = float(memory[first:last + 1].sum()), cost[first:last + 1].sum(axis=0)
        room = held + need <= cap
        # the DP's device, else one like it, else the device with room that runs the segment soonest
        like = [devs.index(x) for x in (devs[d], *mirrors.get(devs[d], ())) if room[devs.index(x)]]
        spare = np.where(room, work, np.inf)
        k = like[0] if like else int(np.argmin(spare))
        if not np.isfinite(spare[k]):
            return None, f"no device has room for the segment of path tasks {first}..{last} after the others"
        held[k] += need
        device_of_block.update(dict.fromkeys(range(first, last + 1), devs[k]))
    return {t: device_of_block[b] for t, b in block.items()}, ""


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0,
          boundary: Boundary = "both") -> Schedule:
    """The shorter schedule of the boundary models asked for (see the module docstring); once one has a
    schedule, the next starts only if it fits in what is left of ``time_limit`` (taking as long)."""
    started = time.perf_counter()
    best, reasons = None, []
    chain = chain_of(problem)
    for kind in (("path", "crossing") if boundary == "both" else (boundary,)):
        spent = time.perf_counter() - started
        if best is not None and time_limit is not None and 2 * spent > time_limit:
            break
        placement, why = _placement(problem, chain, kind)
        if placement is None:
            reasons.append(f"boundary={kind}: {why}")
            continue
        s = certify_placement(problem, placement, solver=NAME, started=started, info={"boundary": kind})
        if best is None or s.makespan < best.makespan:
            best = s
    return best if best is not None else no_solution(problem, solver=NAME, started=started, reason="; ".join(reasons))
