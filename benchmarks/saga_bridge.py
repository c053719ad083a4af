"""Bridge between hetsched problems and anrg-saga instances (benchmark helper, not installed).

`anrg-saga <https://github.com/ANRGUSC/saga>`_ (import name ``saga``, >= 2.0.2)
schedules a task graph on a network of *related machines*:

* ``saga.TaskGraph``: tasks with a ``cost`` (work) and dependencies with a ``size``
  (data); ``TaskGraph.create`` adds a zero-cost ``__super_source__`` /
  ``__super_sink__`` (with zero-size edges) when the graph has several sources / sinks;
* ``saga.Network``: an *undirected* complete graph; nodes have a ``speed``, each
  unordered pair of nodes one link ``speed`` (bandwidth), and each node a self-loop
  whose speed divides same-node data (``Network.create`` gives it ``inf``; saga's
  random generators give it ``1e9`` or ``1e9 * U(0.1, 1)``, i.e. a tiny but nonzero time);
* execution time = ``cost / node speed``; communication = ``size / link speed``
  (no latency, no contention); a node runs one task at a time;
* ``saga.Schedule.mapping``: node name -> list of ``ScheduledTask(node, name, start, end)``.

That is a special case of our model (docs/semantics.md): each device on its own resource,
``costs[t][d] = w_t / speed_d``, ``transfer = bytes / bandwidth`` with zero latency
and a symmetric bandwidth, same-device data free, no memory limit, no co-location,
every task allowed everywhere.  This module converts both ways within that case
and checks saga's schedules under our validator and simulator:

* :func:`to_saga` (raises :class:`NotRelatedMachines`, a ValueError, with the reason
  otherwise) and :func:`from_saga`;
* :func:`saga_schedule_to_ours` and :func:`check_saga_schedule`;
* :data:`SAGA_SCHEDULERS` and :func:`run_saga_scheduler`;
* instance builders for the comparison (:func:`saga_random_instances`,
  :func:`zoo_instances`, :func:`dnn_instances`), documented on each function.

Edge sizes in saga are floats, our ``Edge.bytes`` is an integer: :func:`from_saga`
scales every size and every link speed by the same power of two ``2**k`` (the
smallest that makes all sizes whole numbers), which keeps each transfer time
``size / speed`` bit-for-bit identical to saga's.

Example
-------
>>> from saga.schedulers import HeftScheduler
>>> network = Network.create(nodes=[("fast", 2.0), ("slow", 1.0)], edges=[("fast", "slow", 0.5)])
>>> graph = SagaTaskGraph.create(tasks=[("a", 2.0), ("b", 1.0)], dependencies=[("a", "b", 1.0)])
>>> problem = from_saga(network, graph)
>>> problem.costs["a"], problem.transfer(problem.graph.edges[0], "fast", "slow")
({'fast': 1.0, 'slow': 2.0}, 2.0)
>>> check_saga_schedule(problem, HeftScheduler().schedule(network, graph)).verdict
'equal'
>>> sorted((n.name, n.speed) for n in to_saga(problem)[0].nodes)  # speeds relative to the first device
[('fast', 1.0), ('slow', 0.5)]
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

import networkx as nx
import numpy as np

import saga
from saga import Network, TaskGraph as SagaTaskGraph
from saga import schedulers as S

from scheduler.graph import Edge, Task, TaskGraph
from scheduler.platform import Device, Link, Platform
from scheduler.problem import Problem
from scheduler.schedule import Schedule, ScheduledTask, validate
from scheduler.semantics import simulate

SUPER_NODES = ("__super_source__", "__super_sink__")
RTOL = 1e-9
T = TypeVar("T")



def _no_super_node_warnings(rec: logging.LogRecord) -> bool:
    msg = rec.getMessage()
    return "super source" not in msg and "super sink" not in msg


def _quiet(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` without saga's root-logger warning for every graph with several sources or sinks."""
    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> T:
        root = logging.getLogger()
        root.addFilter(_no_super_node_warnings)
        try:
            return fn(*args, **kwargs)
        finally:
            root.removeFilter(_no_super_node_warnings)
    return wrapper


class NotRelatedMachines(ValueError):
    """The problem is outside what saga can express; the message says why."""


# ----------------------------------------------------------------------------- ours -> saga

@dataclass(frozen=True)
class RelatedModel:
    """A problem seen as related machines: work per task, speed per device, bandwidth per pair."""

    work: Mapping[str, float]
    speed: Mapping[str, float]
    bandwidth: Mapping[tuple[str, str], float]  # unordered pair (a, b) with a < b; inf = free


def _close(a: float, b: float, rtol: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)


def related_model(problem: Problem, rtol: float = RTOL) -> RelatedModel:
    """Work, speeds and bandwidths of ``problem``, or NotRelatedMachines naming the first obstacle.

    Conditions: no resource shared by two devices; no memory capacity that can bind;
    no co-location group of two or more tasks; every task allowed on every device;
    ``costs[t][d] = w_t / speed_d`` for all t, d (relative ``rtol``; the first device
    gets speed 1, the task with the largest cost fixes the other speeds); every
    transfer equal to ``bytes / bandwidth`` with zero latency and one bandwidth per
    unordered device pair (checked through ``problem.transfer`` for every edge and
    ordered pair, so explicit per-edge transfers are accepted only where they agree).
    """
    label = problem.label
    owner: dict[str, str] = {}
    for dev in problem.platform.devices:
        for r in dev.resources:
            if r in owner:
                raise NotRelatedMachines(f"{label}: devices {owner[r]!r} and {dev.name!r} share resource {r!r}")
            owner[r] = dev.name
    total_mem = sum(problem.memory(t) for t in problem.tasks)
    for dev in problem.platform.devices:
        if dev.memory_bytes is not None and total_mem > dev.memory_bytes:
            raise NotRelatedMachines(f"{label}: device {dev.name!r} has a memory limit "
                                     f"({dev.memory_bytes} bytes < {total_mem} bytes of tasks)")
    for group, members in problem.groups.items():
        if len(members) > 1:
            raise NotRelatedMachines(f"{label}: co-location group {group!r} ({len(members)} tasks)")
    devs = problem.devices
    for t in problem.tasks:
        if len(problem.costs[t]) != len(devs):
            missing = next(d for d in devs if d not in problem.costs[t])
            raise NotRelatedMachines(f"{label}: task {t!r} may not run on {missing!r}")
    sources = [t for t in problem.tasks if not problem.preds[t]]
    sinks = [t for t in problem.tasks if not problem.succs[t]]
    for reserved, ends in zip(SUPER_NODES, (sources, sinks)):
        if reserved in problem.costs and len(ends) > 1:  # saga would add a second task of that name
            raise NotRelatedMachines(f"{label}: task name {reserved!r} is reserved by saga")

    ref = devs[0]
    speed = {d: 1.0 for d in devs}
    top = max(problem.tasks, key=lambda t: problem.costs[t][ref])
    if problem.costs[top][ref] > 0:
        for d in devs:
            c = problem.costs[top][d]
            if c <= 0:
                raise NotRelatedMachines(f"{label}: task {top!r} costs 0 on {d!r} but not on {ref!r}")
            speed[d] = problem.costs[top][ref] / c
    work = {t: float(problem.costs[t][ref]) for t in problem.tasks}
    for t in problem.tasks:
        for d in devs:
            want = work[t] / speed[d]
            if not _close(problem.costs[t][d], want, rtol):
                raise NotRelatedMachines(
                    f"{label}: cost of {t!r} on {d!r} is {problem.costs[t][d]!r}, related machines give "
                    f"{want!r} (w={work[t]!r} on {ref!r}, speed {speed[d]!r})")

    bandwidth: dict[tuple[str, str], float] = {}
    for (a, b), link in problem.platform.link_table.items():
        if link.latency != 0:
            raise NotRelatedMachines(f"{label}: link {a}->{b} has latency {link.latency!r} (saga has none)")
        bw = math.inf if link.bandwidth is None else float(link.bandwidth)
        key = (a, b) if a < b else (b, a)
        if key in bandwidth and not _close(bandwidth[key], bw, rtol):
            raise NotRelatedMachines(f"{label}: link {a}<->{b} has different bandwidths per direction "
                                     f"({bandwidth[key]!r}, {bw!r}); saga links are undirected")
        bandwidth.setdefault(key, bw)
    for e in problem.graph.edges:
        for (a, b) in problem.platform.link_table:
            key = (a, b) if a < b else (b, a)
            want = e.bytes / bandwidth[key]
            got = problem.transfer(e, a, b)
            if not _close(got, want, rtol):
                raise NotRelatedMachines(f"{label}: transfer of {e.src}->{e.dst} from {a!r} to {b!r} is {got!r}, "
                                         f"bytes/bandwidth gives {want!r}")
    return RelatedModel(work, speed, bandwidth)


@_quiet
def to_saga(problem: Problem, rtol: float = RTOL) -> tuple[Network, SagaTaskGraph]:
    """``(network, task_graph)`` for saga, or :class:`NotRelatedMachines` (a ValueError).

    Device names become node names and task names task names; edge sizes are the
    edges' bytes; self-loops get infinite speed (same-device data is free, as here).
    """
    m = related_model(problem, rtol)
    nodes = [(d, m.speed[d]) for d in problem.devices]
    links = [(a, b, bw) for (a, b), bw in m.bandwidth.items()] + [(d, d, math.inf) for d in problem.devices]
    network = Network.create(nodes=nodes, edges=links)
    task_graph = SagaTaskGraph.create(tasks=[(t, m.work[t]) for t in problem.tasks],
                                      dependencies=[(e.src, e.dst, float(e.bytes)) for e in problem.graph.edges])
    return network, task_graph


# ----------------------------------------------------------------------------- saga -> ours

def net_names(network: Network) -> list[str]:
    """Node names of a saga network, sorted."""
    return sorted(n.name for n in network.nodes)


def _pair_speeds(network: Network) -> dict[tuple[str, str], float]:
    out = {}
    for e in network.edges:
        a, b = sorted((e.source, e.target))
        out[(a, b)] = float(e.speed)
    return out


def exec_times(network: Network, task_graph: SagaTaskGraph) -> dict[tuple[str, str], float]:
    """saga's execution time ``cost / speed`` per (task, node)."""
    return {(t.name, n.name): t.cost / n.speed for t in task_graph.tasks for n in network.nodes}


def comm_times(network: Network, task_graph: SagaTaskGraph) -> dict[tuple[str, str, str, str], float]:
    """saga's communication time ``size / link speed`` per (src task, dst task, src node, dst node), nodes distinct."""
    speeds = _pair_speeds(network)
    names = net_names(network)
    return {(d.source, d.target, a, b): d.size / speeds[tuple(sorted((a, b)))]  # type: ignore[index]
            for d in task_graph.dependencies for a in names for b in names if a != b}


def normalize_self_loops(network: Network) -> Network:
    """The same network with every self-loop at infinite speed (same-node data free, as in our model).

    saga's generators give self-loops ``1e9`` (or ``1e9 * U(0.1, 1)``), so same-node
    data costs ``size * 1e-9``: close to free, but not free, and our model cannot say it.
    """
    speeds = _pair_speeds(network)
    edges = [(a, b, math.inf if a == b else s) for (a, b), s in speeds.items()]
    return Network.create(nodes=[(n.name, n.speed) for n in network.nodes], edges=edges)


def _pow2_exponent(values: Sequence[float]) -> int:
    """Smallest k >= 0 with every value * 2**k a whole number (values are finite binary floats)."""
    k = 0
    for v in values:
        den = Fraction(v).denominator  # a power of two
        k = max(k, den.bit_length() - 1)
    return k


def from_saga(network: Network, task_graph: SagaTaskGraph, *, name: str = "saga",
              self_loops: str = "strict", task_order: Sequence[str] | None = None) -> Problem:
    """Our Problem for a saga instance.

    Devices = network nodes (sorted by name), each on its own resource; costs
    ``cost / speed`` (as saga computes them); links with zero latency and bandwidth
    ``link speed * 2**k`` (None = infinite for an infinite speed), edges with
    ``bytes = size * 2**k``, where ``2**k`` is the smallest power of two making every
    size whole and every link at least 1 byte/s (exact: transfer times equal saga's
    bit for bit).  Tasks keep saga's
    names, including any ``__super_source__`` / ``__super_sink__`` saga added.

    ``self_loops``: ``"strict"`` rejects a finite self-loop speed (our model has free
    same-device data); ``"ignore"`` treats it as infinite (then saga's times may be
    later than ours by ``size / self-loop speed``).  ``task_order``: the order of our
    task list (a topological order; saga's super source first, super sink last);
    default: lexicographic topological order (saga's own order follows its frozensets,
    which change with PYTHONHASHSEED).
    Raises ValueError where saga's instance is outside our model (zero speed, zero link).
    """
    if self_loops not in ("strict", "ignore"):
        raise ValueError(f"self_loops must be 'strict' or 'ignore', got {self_loops!r}")
    names = net_names(network)
    node_speed = {n.name: float(n.speed) for n in network.nodes}
    for n, s in node_speed.items():
        if not (s > 0 and math.isfinite(s)):
            raise ValueError(f"saga node {n!r} has speed {s!r}; need a finite speed > 0")
    speeds = _pair_speeds(network)
    for (a, b), s in speeds.items():
        if a == b:
            if s != math.inf and self_loops == "strict":
                raise ValueError(f"saga self-loop on {a!r} has finite speed {s!r} (same-node data would cost "
                                 "time; our model has it free): use normalize_self_loops or self_loops='ignore'")
        elif not s > 0:
            raise ValueError(f"saga link {a}<->{b} has speed {s!r}; need > 0")
    for a in names:
        for b in names:
            if a < b and (a, b) not in speeds:
                raise ValueError(f"saga network has no link {a}<->{b}")
    sizes = [float(d.size) for d in task_graph.dependencies]
    for d in task_graph.dependencies:
        if not (d.size >= 0 and math.isfinite(d.size)):
            raise ValueError(f"saga dependency {d.source}->{d.target} has size {d.size!r}")
    # also large enough for every link to reach our floor of 1 byte/s (a power of two keeps times exact)
    slowest = min((s for (a, b), s in speeds.items() if a != b and s != math.inf), default=1.0)
    k = max(_pow2_exponent(sizes), max(0, -math.floor(math.log2(slowest))))
    devices = tuple(Device(n, kind="saga", resources=(n,)) for n in names)
    links = tuple(Link(a, b, 0.0, None if s == math.inf else math.ldexp(s, k))
                  for (a, b), s in sorted(speeds.items()) if a != b)
    platform = Platform(name, devices, links)
    rank = {t: i for i, t in enumerate(task_order or ())}

    def key(n: str) -> tuple[int, str]:
        return (-1 if n == SUPER_NODES[0] else rank.get(n, len(rank)), n)

    order = list(nx.lexicographical_topological_sort(task_graph.graph, key=key))
    cost = {t.name: float(t.cost) for t in task_graph.tasks}
    tasks = tuple(Task(t, "saga", flops=cost[t], onnx_nodes=(t,)) for t in order)
    edges = tuple(Edge(d.source, d.target, int(Fraction(d.size) * 2 ** k))
                  for d in sorted(task_graph.dependencies, key=lambda d: (d.source, d.target)))
    graph = TaskGraph(name, tasks, edges)
    costs = {t: {n: cost[t] / node_speed[n] for n in names} for t in order}
    return Problem(graph, platform, costs, name=name)


# ----------------------------------------------------------------------------- schedules

def saga_schedule_to_ours(problem: Problem, saga_schedule: saga.Schedule, solver: str = "saga") -> Schedule:
    """saga's schedule as ours, keeping its placement and start/end times.

    saga's zero-cost ``__super_source__`` / ``__super_sink__`` are dropped when the
    problem does not have them; any other unknown task or node raises ValueError.
    """
    tasks: dict[str, ScheduledTask] = {}
    for node, items in saga_schedule.mapping.items():
        if node not in problem.platform.device:
            raise ValueError(f"saga schedule uses node {node!r}, not a device of {problem.label!r}")
        for st in items:
            if st.name not in problem.costs:
                if st.name in SUPER_NODES and st.end - st.start <= 1e-12:
                    continue
                raise ValueError(f"saga schedule has task {st.name!r}, not in {problem.label!r}")
            if st.name in tasks:
                raise ValueError(f"saga schedule places task {st.name!r} twice")
            tasks[st.name] = ScheduledTask(st.name, node, float(st.start), float(st.end))
    ordered = tuple(tasks[t] for t in problem.tasks if t in tasks)
    makespan = max((t.finish for t in ordered), default=0.0)
    return Schedule(tasks=ordered, makespan=makespan, solver=solver, status="heuristic")


@dataclass(frozen=True)
class SagaCheck:
    """A saga schedule under our validator and simulator.

    ``resim_makespan``: our :func:`simulate` on saga's placement with saga's order
    by start time, ties by finish time (a zero-cost task that starts with another
    task on its device goes first) then topological order.
    ``rel_diff = (saga_makespan - resim_makespan) / saga_makespan``: 0 when our
    simulator reproduces saga's makespan; > 0 when saga left avoidable idle time
    (starting every task as early as possible in the same order is never later for a
    valid schedule whose tasks have positive durations); < 0 is a disagreement.
    ``order_makespan``: the same with ``Schedule.order`` (ties in topological order
    only), which can be later when a zero-cost task shares its start with another task
    on its device (see the report).
    """

    errors: tuple[str, ...]
    saga_makespan: float
    makespan: float
    resim_makespan: float
    rel_diff: float
    tasks_moved_earlier: int
    first_moved: str = ""
    order_makespan: float = math.nan

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def verdict(self) -> str:
        if self.errors:
            return "invalid"
        if abs(self.rel_diff) <= 1e-6:
            return "equal"
        return "resim-earlier" if self.rel_diff > 0 else "resim-LATER"


def start_order(problem: Problem, schedule: Schedule) -> tuple[str, ...]:
    """Tasks by (start, finish, topological position): an order :func:`simulate` accepts."""
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    return tuple(sorted((t.name for t in schedule.tasks),
                        key=lambda n: (schedule.by_name[n].start, schedule.by_name[n].finish, topo[n])))


def check_saga_schedule(problem: Problem, saga_schedule: saga.Schedule, tol: float = 1e-9) -> SagaCheck:
    """Validate saga's schedule under ours, and re-simulate its placement + start order."""
    ours = saga_schedule_to_ours(problem, saga_schedule)
    errors = tuple(validate(problem, ours, tol=tol))
    saga_ms = float(saga_schedule.makespan)
    if len(ours.tasks) != len(problem.tasks):
        return SagaCheck(errors or ("incomplete schedule",), saga_ms, ours.makespan or 0.0, math.nan, math.nan, 0)
    resim = simulate(problem, ours.placement, start_order(problem, ours))
    plain = simulate(problem, ours.placement, ours.order(problem))
    eps = tol * max(1.0, saga_ms)
    moved = [t.name for t in ours.tasks if resim.by_name[t.name].start < t.start - eps]
    first = min(moved, key=lambda n: ours.by_name[n].start) if moved else ""
    rel = (saga_ms - resim.makespan) / saga_ms if saga_ms > 0 else 0.0
    return SagaCheck(errors, saga_ms, float(ours.makespan or 0.0), float(resim.makespan), rel, len(moved), first,
                     float(plain.makespan))


# ----------------------------------------------------------------------------- saga's schedulers

@dataclass(frozen=True)
class SagaScheduler:
    """One saga scheduler: a factory, and the largest instance it is run on (None = any)."""

    name: str
    make: Callable[[], saga.Scheduler]
    max_tasks: int | None = None
    max_assignments: float | None = None  # devices ** tasks, for exponential ones
    finite_self_loops: bool = False  # SMT turns speeds into exact rationals: inf is refused
    max_path_work: float | None = None  # DPS: cap on :func:`path_work`


# Every scheduler saga 2.0.2 exports except HybridScheduler (the best of a list:
# the comparison takes the best of all of them anyway).  BruteForce (every mapping x
# every topological order) and SMT (z3 binary search, absolute epsilon 1e-3) are
# exponential: tiny instances only.  DPS recomputes its top / bottom levels by
# un-memoised recursion over every path, for every ready task after every step:
# time grows with the number of paths (measured here: ~1e-4 s per unit of
# path_work; 68 s for a 135-task randwire graph, minutes on the dnn layer graphs),
# so it runs only up to path_work 1e5.
# Known defects of saga 2.0.2 seen here (the benchmark records them, never hides them):
# HBMCT, after moving a task between nodes, rebuilds only the two nodes involved and
# drops the group's tasks on the others (schedules with missing tasks: invalid), and
# re-times earlier groups' tasks through a table that lacks them (KeyError); GDL picks
# each task's node by the *minimum* dynamic level (the paper maximises it) and adds
# data sizes to times in its static level, hence makespans 10x the best.
SAGA_SCHEDULERS: tuple[SagaScheduler, ...] = (
    SagaScheduler("HEFT", S.HeftScheduler),
    SagaScheduler("CPoP", S.CpopScheduler),
    SagaScheduler("ETF", S.ETFScheduler),
    SagaScheduler("MinMin", S.MinMinScheduler),
    SagaScheduler("MaxMin", S.MaxMinScheduler),
    SagaScheduler("Duplex", S.DuplexScheduler),
    SagaScheduler("MCT", S.MCTScheduler),
    SagaScheduler("MET", S.METScheduler),
    SagaScheduler("OLB", S.OLBScheduler),
    SagaScheduler("MST", S.MSTScheduler),
    SagaScheduler("Sufferage", S.SufferageScheduler),
    SagaScheduler("WBA", S.WBAScheduler),
    SagaScheduler("BIL", S.BILScheduler),
    SagaScheduler("FCP", S.FCPScheduler),
    SagaScheduler("FLB", S.FLBScheduler),
    SagaScheduler("GDL", S.GDLScheduler),
    SagaScheduler("HBMCT", S.HbmctScheduler),
    SagaScheduler("MSBC", S.MsbcScheduler),
    SagaScheduler("DPS", S.DPSScheduler, max_path_work=1e5),
    SagaScheduler("FastestNode", S.FastestNodeScheduler),
    SagaScheduler("BruteForce", S.BruteForceScheduler, max_tasks=6, max_assignments=3 ** 6),
    SagaScheduler("SMT", S.SMTScheduler, max_tasks=6, max_assignments=3 ** 6, finite_self_loops=True),
)


def path_work(task_graph: SagaTaskGraph) -> float:
    """``tasks * sum over tasks of (paths from a source + paths to a sink)``: DPS's cost driver."""
    g = task_graph.graph
    order = list(nx.topological_sort(g))
    down: dict[str, int] = {}
    up: dict[str, int] = {}
    for t in reversed(order):
        down[t] = max(1, sum(down[s] for s in g.successors(t)))
    for t in order:
        up[t] = max(1, sum(up[p] for p in g.predecessors(t)))
    return float(len(order)) * float(sum(down[t] + up[t] for t in order))


def applicable(sched: SagaScheduler, network: Network, task_graph: SagaTaskGraph) -> bool:
    """Whether ``sched`` runs on this instance in reasonable time."""
    n_tasks, n_nodes = len(task_graph.tasks), len(network.nodes)
    if sched.max_path_work is not None and path_work(task_graph) > sched.max_path_work:
        return False
    if sched.max_tasks is not None and n_tasks > sched.max_tasks:
        return False
    if sched.max_assignments is not None and float(n_nodes) ** n_tasks > sched.max_assignments:
        return False
    return True


def run_saga_scheduler(sched: SagaScheduler, network: Network, task_graph: SagaTaskGraph,
                       seed: int = 0) -> tuple[saga.Schedule, float]:
    """Run one saga scheduler (WBA draws from ``random``: seeded); returns (schedule, seconds).

    For SMT, self-loops get speed 1e15 instead of inf (pysmt cannot make a rational of
    inf): its schedules then also respect a same-node delay of size * 1e-15, so they
    remain valid here and differ from the exact instance by at most that.
    """
    if sched.finite_self_loops:
        speeds = _pair_speeds(network)
        network = Network.create(nodes=[(n.name, n.speed) for n in network.nodes],
                                 edges=[(a, b, 1e15 if a == b else v) for (a, b), v in speeds.items()])
    random.seed(seed)
    np.random.seed(seed)
    started = time.perf_counter()
    out = sched.make().schedule(network, task_graph)
    return out, time.perf_counter() - started


# ----------------------------------------------------------------------------- instances

@dataclass(frozen=True)
class Instance:
    """One comparison instance, identical for both sides: our Problem and saga's (network, task graph)."""

    name: str
    family: str
    problem: Problem
    network: Network
    task_graph: SagaTaskGraph
    note: str = ""

    @property
    def n_tasks(self) -> int:
        return len(self.problem.tasks)

    @property
    def n_devices(self) -> int:
        return len(self.problem.devices)


def _instance(name: str, family: str, network: Network, task_graph: SagaTaskGraph, note: str = "",
              task_order: Sequence[str] | None = None) -> Instance:
    network = normalize_self_loops(network)
    problem = from_saga(network, task_graph, name=name, task_order=task_order)
    return Instance(name, family, problem, network, task_graph, note)


class _Uniform:
    """A sampler with saga's ``RandomVariable.sample()`` interface returning a float.

    saga 2.0.2's own ``UniformRandomVariable.sample()`` returns a 1-element ndarray,
    which its pydantic ``TaskGraphNode(cost=...)`` rejects, so
    ``saga.utils.random_graphs`` cannot run with its default distribution; its
    default is also sampled at import time from the unseeded global numpy state.
    """

    def __init__(self, rng: np.random.Generator, low: float = 0.1, high: float = 1.0) -> None:
        self.rng, self.low, self.high = rng, low, high

    def sample(self) -> float:
        return float(self.rng.uniform(self.low, self.high))


@_quiet
def saga_random_instances(quick: bool = False, seed: int = 0) -> list[Instance]:
    """Instances from saga's own generators, weights U(0.1, 1) (saga's default range).

    * ``saga.utils.random_graphs``: ``get_branching_dag``, ``get_chain_dag``,
      ``get_fork_dag``, ``get_diamond_dag`` task graphs on ``get_network`` networks
      (complete; node speeds and link speeds U(0.1, 1));
    * ``saga.schedulers.data.random``: ``gen_out_trees``, ``gen_in_trees``,
      ``gen_parallel_chains`` on ``gen_random_networks`` (weights passed in: its
      default weight function ``max(min(1e-9, gauss), 2)`` always returns 2);
    * ``saga.schedulers.data.riotbench``: the ETL / STATS / TRAIN / PREDICT IoT
      pipelines on a small ``get_fog_networks`` network (2 edge, 1 fog, 1 cloud node).

    Every self-loop is set to infinite speed (:func:`normalize_self_loops`).
    The tiny diamond / fork instances (3 nodes) are where BruteForce and SMT run.
    """
    from saga.schedulers.data import random as sdr
    from saga.schedulers.data import riotbench as rb
    from saga.utils import random_graphs as rg

    out: list[Instance] = []

    def rngs(k: int) -> tuple[_Uniform, Callable[..., float]]:
        rng = np.random.default_rng([seed, k])
        u = _Uniform(rng)
        return u, (lambda *_: u.sample())

    # tiny, for BruteForce / SMT too
    u, _ = rngs(1)
    out.append(_instance("saga-diamond", "saga-tiny", rg.get_network(3, weight_distribution=u),
                         rg.get_diamond_dag(weight_distribution=u)))
    u, _ = rngs(2)
    out.append(_instance("saga-fork", "saga-tiny", rg.get_network(3, weight_distribution=u),
                         rg.get_fork_dag(weight_distribution=u)))
    shapes = [(3, 3, 0)] if quick else [(3, 3, 0), (4, 3, 1), (4, 4, 2), (5, 3, 3)]
    for levels, bf, s in shapes:
        u, _ = rngs(10 + s)
        tg = rg.get_branching_dag(levels=levels, branching_factor=bf, weight_distribution=u)
        out.append(_instance(f"saga-branching-L{levels}B{bf}-s{s}", "saga-random",
                             rg.get_network(4, weight_distribution=u), tg))
    n_chain = 12 if quick else 30
    u, _ = rngs(20)
    out.append(_instance(f"saga-chain-{n_chain}", "saga-random", rg.get_network(4, weight_distribution=u),
                         rg.get_chain_dag(num_nodes=n_chain, weight_distribution=u)))
    trees = [(3, 2)] if quick else [(5, 2), (3, 4)]
    for i, (levels, bf) in enumerate(trees):
        u, f = rngs(30 + i)
        net = sdr.gen_random_networks(1, 4, get_node_weight=f, get_edge_weight=f)[0]
        out.append(_instance(f"saga-outtree-L{levels}B{bf}", "saga-random", net,
                             sdr.gen_out_trees(1, levels, bf, get_task_weight=f, get_dependency_weight=f)[0]))
        if not quick:
            u, f = rngs(40 + i)
            net = sdr.gen_random_networks(1, 4, get_node_weight=f, get_edge_weight=f)[0]
            out.append(_instance(f"saga-intree-L{levels}B{bf}", "saga-random", net,
                                 sdr.gen_in_trees(1, levels, bf, get_task_weight=f, get_dependency_weight=f)[0]))
    chains = [(3, 4)] if quick else [(4, 10), (8, 12)]
    for i, (nc, length) in enumerate(chains):
        u, f = rngs(50 + i)
        net = sdr.gen_random_networks(1, 4, get_node_weight=f, get_edge_weight=f)[0]
        out.append(_instance(f"saga-chains-{nc}x{length}", "saga-random", net,
                             sdr.gen_parallel_chains(1, nc, length, get_task_weight=f, get_dependency_weight=f)[0]))
    pipelines = {"etl": rb.get_etl_task_graphs, "stats": rb.get_stats_task_graphs,
                 "train": rb.get_train_task_graphs, "predict": rb.get_predict_task_graphs}
    if quick:
        pipelines = {"etl": pipelines["etl"]}
    for i, (label, fn) in enumerate(pipelines.items()):
        np.random.seed(seed * 1000 + 60 + i)  # riotbench draws from the global numpy state
        net = rb.get_fog_networks(1, num_edges_nodes=2, num_fog_nodes=1, num_cloud_nodes=1)[0]
        out.append(_instance(f"riotbench-{label}", "saga-riotbench", net, fn(1)[0]))
    return out


# Related-machine version of a heterogeneous board: speeds relative to cpu0, link
# bandwidths relative to each other (scaled per instance to a target CCR).
RELATED_SPEEDS = {"cpu0": 1.0, "cpu1": 1.0, "npu": 3.0, "gpu": 8.0}
RELATED_LINKS = {("cpu0", "cpu1"): 8.0, ("cpu0", "gpu"): 1.0, ("cpu1", "gpu"): 1.0,
                 ("cpu0", "npu"): 2.0, ("cpu1", "npu"): 2.0, ("gpu", "npu"): 1.0}


@_quiet
def _related_instance(name: str, family: str, graph: TaskGraph, work: Mapping[str, float],
                      speeds: Mapping[str, float], rel_links: Mapping[tuple[str, str], float],
                      ccr: float | None = None, note: str = "") -> Instance:
    """saga instance from work, speeds and link bandwidths; ``ccr`` rescales all bandwidths.

    CCR = (mean over edges of the mean transfer time over distinct device pairs) /
    (mean over tasks of the mean execution time over devices).
    """
    links = dict(rel_links)
    if ccr is not None and graph.edges:
        mean_comp = float(np.mean([w / s for w in work.values() for s in speeds.values()]))
        mean_bytes = float(np.mean([e.bytes for e in graph.edges]))
        mean_inv = float(np.mean([1.0 / b for b in links.values()]))
        scale = mean_bytes * mean_inv / (ccr * mean_comp)
        links = {k: v * scale for k, v in links.items()}
    net = Network.create(nodes=list(speeds.items()),
                         edges=[(a, b, bw) for (a, b), bw in links.items()] + [(d, d, math.inf) for d in speeds])
    tg = SagaTaskGraph.create(tasks=[(t.name, float(work[t.name])) for t in graph.tasks],
                              dependencies=[(e.src, e.dst, float(e.bytes)) for e in graph.edges])
    return _instance(name, family, net, tg, note, task_order=[t.name for t in graph.tasks])


ZOO_QUICK = {"mlp": {}, "bert": {}, "inception": {}}
ZOO_DEFAULT = {"mlp": {"layers": 16}, "bert": {"layers": 4}, "gpt2": {"layers": 4},
               "randwire": {"nodes": 24}, "inception": {"blocks": 4}}


def zoo_instances(quick: bool = False, ccrs: Sequence[float] | None = None) -> list[Instance]:
    """Related-machine versions of the zoo models.

    Task graph of each zoo model (``scheduler.pipeline.build_problem``, default
    platform); ``w_t`` = the task's modelled cost on the reference device ``cpu0``
    (roofline + overhead), in milliseconds (so that times are O(1): saga uses an
    absolute 1e-9 tolerance); edges keep their bytes.  Network: :data:`RELATED_SPEEDS`
    (cpu0, cpu1 speed 1; npu 3; gpu 8), links :data:`RELATED_LINKS` scaled to the
    target CCR (1.0 in quick mode; 0.5 and 2.0 otherwise).  This drops what makes
    our default platform interesting (the shared-core cpu-par, PIM op support and
    memory, per-op device affinity): it is the related-machines shadow of the model.
    """
    from scheduler.pipeline import build_problem

    models = ZOO_QUICK if quick else ZOO_DEFAULT
    ccrs = tuple(ccrs) if ccrs is not None else ((1.0,) if quick else (0.5, 2.0))
    out = []
    for model, params in models.items():
        base = build_problem(model, params)
        work = {t: base.costs[t]["cpu0"] * 1e3 for t in base.tasks}
        for ccr in ccrs:
            out.append(_related_instance(f"zoo-{model}-ccr{ccr:g}", "zoo-related", base.graph, work,
                                         RELATED_SPEEDS, RELATED_LINKS, ccr,
                                         note=f"{model} {params or 'defaults'}"))
    return out


DNN_QUICK = ("latency-inputs/LayerGraphs/bert24_inference.json", "latency-inputs/LayerGraphs/gnmt_inference.json")
DNN_DEFAULT = DNN_QUICK + ("latency-inputs/LayerGraphs/resnet50_inference.json",
                           "latency-inputs/OperatorGraphs/bert_l-3_inference.json")
DNN_BANDWIDTH = 2_147_000.0  # bytes per ms: every latency input has edge cost = size / 2,147,000


def dnn_instances(root: str | Path, quick: bool = False) -> list[Instance]:
    """Related-machine versions of the dnn-partitioning workloads (Tarnawski et al.).

    Graph from ``scheduler.importers.import_dnn_partitioning`` (parallel edges merged,
    bytes = the edges' ``size``); ``w_t`` = ``cpuLatency`` (ms).  Network: cpu0, cpu1
    (speed 1) and acc0, acc1 (speed = geometric mean of cpuLatency / fpgaLatency over
    the nodes with both > 0); CPU-accelerator links 2,147,000 bytes/ms (the files'
    own cost = size / 2,147,000), accelerator-accelerator half that (through host
    memory, as the importer does), CPU-CPU 10x (the importer makes it free; saga
    needs a finite link speed to stay clear of inf arithmetic in its averages).
    The restriction changes the problem: per-node accelerator speed-ups become one
    average, memory limits, co-location (colorClass) and accelerator op support are
    dropped, and the 8 CPUs / k accelerators of the file become 2 + 2.
    """
    from scheduler.importers import import_dnn_partitioning

    out = []
    for rel in (DNN_QUICK if quick else DNN_DEFAULT):
        path = Path(root) / rel
        if not path.exists():
            continue
        base = import_dnn_partitioning(path, accelerators=1, cpus=1, time_scale=1.0)
        work = {t: base.costs[t]["cpu0"] for t in base.tasks}
        ratios = [base.costs[t]["cpu0"] / base.costs[t]["acc0"] for t in base.tasks
                  if base.costs[t].get("acc0", 0) > 0 and base.costs[t]["cpu0"] > 0]
        s_acc = float(np.exp(np.mean(np.log(ratios)))) if ratios else 1.0
        speeds = {"cpu0": 1.0, "cpu1": 1.0, "acc0": s_acc, "acc1": s_acc}
        links = {("cpu0", "cpu1"): 10 * DNN_BANDWIDTH, ("acc0", "acc1"): DNN_BANDWIDTH / 2}
        links.update({(c, a): DNN_BANDWIDTH for c in ("cpu0", "cpu1") for a in ("acc0", "acc1")})
        kind, stem = path.parent.name, path.stem
        out.append(_related_instance(f"dnn-{kind}-{stem}", "dnn-related", base.graph, work, speeds, links,
                                     note=f"acc speed-up {s_acc:.3g}"))
    return out


def instance_ccr(inst: Instance) -> float:
    """Communication-to-computation ratio of an instance (as in :func:`_related_instance`)."""
    p = inst.problem
    comp = float(np.mean([c for row in p.costs.values() for c in row.values()]))
    pairs = list(p.platform.link_table)
    if not p.graph.edges or not pairs or comp == 0:
        return 0.0
    comm = float(np.mean([np.mean([p.transfer(e, a, b) for a, b in pairs]) for e in p.graph.edges]))
    return comm / comp
