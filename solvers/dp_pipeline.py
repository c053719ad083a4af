"""``dp-pipeline``: pipeline stages by dynamic programming over contiguous splits (the throughput objective).

After the throughput DP published with the dnn-partitioning workloads: the tasks are
cut into consecutive stages, at most one per device, and the programme finds the
cut whose largest stage load (the period) is least.  Their DP ranges over every
downward-closed set of the graph, which blows up on wide graphs (it did not
finish inceptionv3 in 10 minutes); here the stages are intervals of a few linear
orders of the tasks (the graph's topological order, a depth-first one that keeps
branches together, one that puts each task just after its inputs, and, within a
time limit, shuffled variants of the last), and neighbouring tasks are merged into
at most :data:`MAX_BLOCKS` blocks, so one programme costs at most ``MAX_BLOCKS^2``
per device class and state (fewer blocks where the states are many:
:data:`PROGRAMME_WORK`) and finishes on every published graph (the largest, 2012
tasks, in 3 s).  A local search then moves single units off the busiest device.

* A stage's load on a device: its tasks' costs, plus for each task whose output
  leaves the stage what sending costs the device, and for each output entering it
  what receiving costs (:meth:`scheduler.problem.Problem.transfer_load`, against the
  dearest other end).  With staged accelerators and a CPU that pays nothing (the
  published model) this is the exact load; otherwise an estimate, and the
  placement returned is scored by the exact period in any case.
* Identical devices (same costs, memory and transfer load) form a class, and the
  state counts the devices used per class, like the published DP's (CPUs, FPGAs).
  Devices that share a resource never both take a stage: each maximal set of
  devices with disjoint resources is tried.
* Co-location groups move as one unit (contracted in the graph, :func:`_units`),
  memory and op support are respected per stage.

The result is a heuristic (``status="heuristic"``) with the combinatorial period
bound; ``period`` holds the exact period of the placement and that bound.

Example
-------
>>> from scheduler.generate import random_problem
>>> s = solve(random_problem(8, seed=1))
>>> s.objective, s.period.value > 0
('throughput', True)
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import networkx as nx
import numpy as np

from scheduler.errors import SolverError
from scheduler.problem import Problem
from scheduler.schedule import Period, Schedule
from scheduler.semantics import period, resource_loads

from .common import Objective, Replicas, certify_placement, no_solution
from .exact_common import period_lower_bound, placement_errors

NAME = "dp-pipeline"
MAX_BLOCKS = 1000
"""At most this many blocks of consecutive tasks per order: the programme is quadratic in it."""
MIN_BLOCKS, BLOCK_WORK = 100, 2_000_000
"""Fewer blocks on large graphs: at most BLOCK_WORK // tasks of them (but MIN_BLOCKS)."""
PROGRAMME_WORK = 400_000_000
"""Fewer blocks where the devices form many classes: the programme costs (states x classes) x blocks^2, so at
most sqrt(PROGRAMME_WORK / (states x classes)) blocks (but 8).  Twelve devices that are all different make
4096 states: 90 blocks, about a second, where 1000 took half a minute per order."""
MAX_RANDOM_ORDERS = 200
"""With a time limit, at most this many further orders (shuffled walks back from the sinks) are split."""
MAX_DEVICE_SETS = 8
"""At most this many sets of resource-disjoint devices are tried (the largest first)."""
SPLIT_SHARE = 0.6
"""With a time limit, splitting further orders stops after this share of it; local search gets the rest."""
MAX_MOVES = 500
"""At most this many local-search moves after the split."""


@dataclass(frozen=True)
class _Class:
    """Identical devices: their names and, per task, cost (inf: not allowed), send and receive loads."""

    devices: tuple[str, ...]
    cost: Sequence[float]
    send: Sequence[float]
    receive: Sequence[float]
    memory: int | None


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0,
          objective: Objective = "throughput", replicas: Replicas = 1) -> Schedule:
    """The best contiguous split found over the orders and device sets (see the module docstring)."""
    started = time.perf_counter()
    if objective != "throughput":
        raise SolverError(f"solver {NAME!r} minimises a pipeline's period: it takes objective=throughput only "
                          "(for latency use heft, split or cpsat)")
    if replicas != 1:
        raise SolverError(f"solver {NAME!r} places one copy of the graph (replicas=1); for data-parallel copies "
                          "use milp or cpsat")
    deadline = started + time_limit if time_limit else math.inf
    tasks = problem.tasks
    index = {t: i for i, t in enumerate(tasks)}
    best: tuple[float, dict[str, str]] | None = None
    tried = 0
    most = sum(max(problem.costs[t].values()) for t in problem.tasks)  # no stage does more work
    units = _units(problem, index)
    allowed = [frozenset(problem.costs[t]) for t in tasks]  # per task index: the devices it may run on
    splits = [(order, members) for dag, members in units for order in _orders(dag)]
    rng = random.Random(seed)
    orders_until = started + SPLIT_SHARE * time_limit if time_limit else math.inf  # the rest: local search
    for devices in _device_sets(problem):
        classes = _classes(problem, devices)
        steps = math.prod(len(c.devices) + 1 for c in classes) * len(classes)
        cap = max(8, math.isqrt(PROGRAMME_WORK // steps))
        for order, members in _more(splits, units, rng, orders_until):
            if tried and time.perf_counter() > orders_until:
                break
            tried += 1
            blocks = _blocks(order, members, allowed, cap)
            if best is not None:
                placement = _split(problem, blocks, classes, index, best[0])
            else:  # no period known yet: guess one, from twice the bound up, to prune the stages
                placement, upper = None, max(period_lower_bound(problem), most / 1024)
                while placement is None and upper < math.inf:
                    upper = upper * 2 if 0 < upper < most else math.inf
                    placement = _split(problem, blocks, classes, index, upper)
            if placement is not None and not placement_errors(problem, [placement]):
                value = period(problem, placement)
                if best is None or value < best[0]:
                    best = (value, placement)
    if best is not None:
        best = _improve(problem, best[1], units[0][1], deadline)
    if best is None:
        return replace(no_solution(problem, solver=NAME, started=started,
                                   reason="no contiguous split fits the devices' memory and op support"),
                       objective="throughput")
    value, placement = best
    bound = period_lower_bound(problem)
    return replace(certify_placement(problem, placement, solver=NAME, started=started, info={"splits_tried": tried}),
                   objective="throughput", period=Period(value, bound))


def _improve(problem: Problem, placement: dict[str, str], members: dict[str, list[int]],
             deadline: float) -> tuple[float, dict[str, str]]:
    """Local search after the split: move a unit off the busiest device to a device where one of its neighbours
    runs, while that lowers (period, sum of squared loads); at most MAX_MOVES moves, within the time limit."""
    tasks = problem.tasks
    unit_of = {tasks[x]: u for u, xs in members.items() for x in xs}
    devices = problem.platform.device

    def score(p: dict[str, str]) -> tuple[tuple[float, float], dict[str, float]]:
        loads = resource_loads(problem, p)
        return (max(loads.values(), default=0.0), sum(v * v for v in loads.values())), loads

    current, loads = score(placement)
    for _ in range(MAX_MOVES):
        if time.perf_counter() > deadline:
            break
        busiest = max(loads, key=loads.get)
        moved = False
        for u in dict.fromkeys(unit_of[t] for t in tasks
                               if busiest in devices[placement[t]].resources):
            unit = [tasks[x] for x in members[u]]
            here = placement[unit[0]]
            near = {placement[e.dst] for t in unit for e in problem.succs[t]}
            near |= {placement[e.src] for t in unit for e in problem.preds[t]}
            for d in sorted(near - {here}):
                if time.perf_counter() > deadline:
                    break
                trial = {**placement, **dict.fromkeys(unit, d)}
                if any(d not in problem.costs[t] for t in unit) or placement_errors(problem, [trial]):
                    continue
                value, trial_loads = score(trial)
                if value < current:
                    placement, current, loads, moved = trial, value, trial_loads, True
                    break
            if moved:
                break
        if not moved:
            break
    return current[0], placement


def _more(splits: list[tuple[list[str], dict[str, list[int]]]], units: list[tuple[nx.DiGraph, dict[str, list[int]]]],
          rng: random.Random, deadline: float) -> Iterator[tuple[list[str], dict[str, list[int]]]]:
    """The fixed orders, then, while a time limit leaves time, orders of the walk back from the sinks with
    shuffled inputs (at most MAX_RANDOM_ORDERS)."""
    yield from splits
    for k in range(MAX_RANDOM_ORDERS if math.isfinite(deadline) else 0):
        dag, members = units[k % len(units)]
        yield _late(dag, list(nx.topological_sort(dag)), rng), members


def _device_sets(problem: Problem) -> list[tuple[str, ...]]:
    """Maximal sets of devices with pairwise disjoint resources, largest first (at most MAX_DEVICE_SETS)."""
    g = nx.Graph()
    g.add_nodes_from(problem.devices)
    g.add_edges_from((a, b) for a, b in itertools.combinations(problem.devices, 2)
                     if problem.platform.shares_resource(a, b))
    sets = [tuple(d for d in problem.devices if d in c) for c in nx.find_cliques(nx.complement(g))]
    return sorted(sets, key=lambda s: (-len(s), s))[:MAX_DEVICE_SETS]


def _classes(problem: Problem, devices: Sequence[str]) -> list[_Class]:
    """The devices of one set grouped into classes of identical ones, with per-task loads."""
    out: dict[tuple, list[str]] = {}
    rows: dict[tuple, tuple[list[float], list[float], list[float], int | None]] = {}
    for d in devices:
        others = [x for x in devices if x != d]
        cost = [problem.costs[t].get(d, math.inf) for t in problem.tasks]
        send = [max((problem.transfer_load(t, d, b)[0] for b in others), default=0.0) for t in problem.tasks]
        receive = [max((problem.transfer_load(t, a, d)[1] for a in others), default=0.0) for t in problem.tasks]
        memory = problem.platform.device[d].memory_bytes
        key = (tuple(cost), tuple(send), tuple(receive), memory, problem.platform.device[d].transfer_load)
        out.setdefault(key, []).append(d)
        rows[key] = (cost, send, receive, memory)
    return [_Class(tuple(ds), *rows[key]) for key, ds in out.items()]


def _units(problem: Problem, index: dict[str, int]) -> list[tuple[nx.DiGraph, dict[str, list[int]]]]:
    """The graph with co-location groups contracted into units: DAGs of units, and each unit's task indices.

    Contracting can close cycles (a training graph's group holds a forward task and
    its backward twin); inside each cycle, edges from a unit to one whose first
    member comes earlier in topological order are dropped, so a group goes with its
    forward task, as the published DP attaches backward nodes to their forward ones.
    The second DAG, when there were cycles, condenses each into one unit instead.
    """
    unit = {t: problem.colocate.get(t, t) for t in problem.tasks}
    first: dict[str, int] = {}
    for i, t in enumerate(problem.graph.topological_order):
        first.setdefault(unit[t], i)
    g = nx.DiGraph()
    g.add_nodes_from(sorted(first, key=first.get))
    g.add_edges_from((unit[e.src], unit[e.dst]) for e in problem.graph.edges if unit[e.src] != unit[e.dst])
    condensed = nx.condensation(g)
    scc = condensed.graph["mapping"]
    g.remove_edges_from([(a, b) for a, b in g.edges if scc[a] == scc[b] and first[a] > first[b]])
    members: dict[str, list[int]] = {u: [] for u in g}
    for t in problem.tasks:
        members[unit[t]].append(index[t])
    out = [(g, members)]
    if len(condensed) < len(g):  # the cycles condensed instead: fewer cut points, sometimes better ones
        merged = nx.relabel_nodes(condensed, {c: f"scc{c}" for c in condensed})
        groups: dict[str, list[int]] = {u: [] for u in merged}
        for u, xs in members.items():
            groups[f"scc{scc[u]}"] += xs
        out.append((merged, groups))
    return out


def _orders(dag: nx.DiGraph) -> list[list[str]]:
    """Linear orders of the units to split: a topological order, a depth-first one (branches kept together),
    and one that puts each unit just after its own inputs (a depth-first walk back from the sinks)."""
    topological = list(nx.topological_sort(dag))
    depth_first = list(reversed(list(nx.dfs_postorder_nodes(dag))))  # reverse postorder: topological
    orders = [topological, depth_first, _late(dag, topological)]
    return [o for i, o in enumerate(orders) if o not in orders[:i]]


def _late(dag: nx.DiGraph, topological: Sequence[str], rng: random.Random | None = None) -> list[str]:
    """Each unit just after its own inputs: the postorder of a depth-first walk back from the sinks (the
    inputs of a unit visited in a shuffled order when ``rng`` is given)."""
    done: set[str] = set()
    out: list[str] = []
    for sink in reversed(topological):
        if dag.out_degree(sink) or sink in done:
            continue
        stack = [(sink, iter(_inputs(dag, sink, rng)))]
        done.add(sink)
        while stack:
            u, it = stack[-1]
            nxt = next((v for v in it if v not in done), None)
            if nxt is None:
                stack.pop()
                out.append(u)
            else:
                done.add(nxt)
                stack.append((nxt, iter(_inputs(dag, nxt, rng))))
    return out


def _inputs(dag: nx.DiGraph, u: str, rng: random.Random | None) -> list[str]:
    preds = list(dag.predecessors(u))
    if rng is not None:
        rng.shuffle(preds)
    return preds


def _blocks(order: Sequence[str], members: dict[str, list[int]], allowed: Sequence[frozenset[str]],
            cap: int) -> list[list[int]]:
    """The order as blocks of task indices, neighbouring units merged so that there are at most MAX_BLOCKS, and
    fewer on large graphs (the stage loads cost blocks x tasks) and for many device classes (at most ``cap``).
    A block also ends where the devices the units may run on change, when that happens for less than half
    the blocks: a block that mixes tasks of two devices only (a hierarchical solve's servers) fits no stage.
    ``allowed``: per task index, the devices it may run on."""
    limit = min(MAX_BLOCKS, cap)
    where = [frozenset.intersection(*(allowed[x] for x in members[u])) for u in order]
    changes = [i for i in range(1, len(order)) if where[i] != where[i - 1]]
    changes = changes if len(changes) < limit // 2 else []
    per = -(-len(order) // min(limit - len(changes), max(MIN_BLOCKS, BLOCK_WORK // max(1, len(allowed)))))
    ends = sorted({*range(per, len(order), per), *changes, len(order)})
    return [[x for u in order[i:j] for x in members[u]] for i, j in zip([0, *ends], ends)]


def _loads(problem: Problem, blocks: list[list[int]], classes: list[_Class], index: dict[str, int],
           upper: float) -> np.ndarray:
    """``L[c, j, i]``: the load of blocks ``j..i-1`` on a device of class ``c`` (inf where a task is not allowed,
    the memory does not fit, or the cost alone exceeds ``upper``)."""
    n, k = len(blocks), len(classes)
    tasks = problem.tasks
    readers = [len(problem.succs[t]) for t in tasks]
    preds = [[index[e.src] for e in problem.preds[t]] for t in tasks]
    mem = [problem.memory(t) for t in tasks]
    out = np.full((k, n + 1, n + 1), math.inf)
    for c, cls in enumerate(classes):
        send, receive, cost = cls.send, cls.receive, cls.cost
        for j in range(n):
            inside: set[int] = set()
            count: dict[int, int] = {}  # task -> its readers inside the stage

            def paid(w: int) -> float:
                if w in inside:
                    return send[w] if count.get(w, 0) < readers[w] else 0.0
                return receive[w] if count.get(w, 0) else 0.0

            work = comm = 0.0
            used = 0
            for i in range(j, n):
                block = blocks[i]
                touched = set(block).union(*(preds[x] for x in block))
                before = sum(paid(w) for w in touched)
                for x in block:
                    inside.add(x)
                    work += cost[x]
                    used += mem[x]
                    for w in preds[x]:
                        count[w] = count.get(w, 0) + 1
                comm += sum(paid(w) for w in touched) - before
                if not work <= upper or (cls.memory is not None and used > cls.memory):
                    break  # costs and memory only grow with the stage
                out[c, j, i + 1] = work + comm
    return out


def _split(problem: Problem, blocks: list[list[int]], classes: list[_Class], index: dict[str, int],
           upper: float) -> dict[str, str] | None:
    """The least-period split of ``blocks`` into consecutive stages over the classes' devices (None: none fits)."""
    n = len(blocks)
    loads = _loads(problem, blocks, classes, index, upper)
    counts = [len(c.devices) for c in classes]
    states = sorted(itertools.product(*(range(m + 1) for m in counts)), key=sum)
    start = np.full(n + 1, math.inf)
    start[0] = 0.0
    value = {states[0]: start}
    # state -> per prefix: (c when a device of class c took the last stage, -c-2 when one was left unused; cut j)
    back: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
    for u in states[1:]:
        best = np.full(n + 1, math.inf)
        how_c = np.full(n + 1, -2)
        how_j = np.zeros(n + 1, dtype=np.int64)
        for c in range(len(classes)):
            if not u[c]:
                continue
            prev = value[u[:c] + (u[c] - 1,) + u[c + 1:]]
            better = prev < best  # this class's device left unused
            best = np.where(better, prev, best)
            how_c = np.where(better, -c - 2, how_c)
            options = np.maximum(prev[:, None], loads[c])
            j = np.argmin(options, axis=0)
            cand = options[j, np.arange(n + 1)]
            better = cand < best
            best = np.where(better, cand, best)
            how_c = np.where(better, c, how_c)
            how_j = np.where(better, j, how_j)
        value[u] = best
        back[u] = (how_c, how_j)
    u, i = states[-1], n
    if not math.isfinite(value[u][n]):
        return None
    placement: dict[str, str] = {}
    while i > 0:
        c, j = int(back[u][0][i]), int(back[u][1][i])
        if c < -1:  # a device of class -c-2 left unused
            c = -c - 2
            u = u[:c] + (u[c] - 1,) + u[c + 1:]
            continue
        device = classes[c].devices[u[c] - 1]
        for block in blocks[j:i]:
            for x in block:
                placement[problem.tasks[x]] = device
        u, i = u[:c] + (u[c] - 1,) + u[c + 1:], j
    return placement
