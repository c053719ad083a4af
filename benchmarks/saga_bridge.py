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
* :func:`saga_schedule_to_ours` and :func:`check_saga_schedule`.

saga's schedulers and the comparison's instances are in ``saga_instances``.

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
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Mapping, Sequence, TypeVar

import networkx as nx

import saga
from saga import Network, TaskGraph as SagaTaskGraph

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


def quiet(fn: Callable[..., T]) -> Callable[..., T]:
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


@quiet
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


def pair_speeds(network: Network) -> dict[tuple[str, str], float]:
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
    speeds = pair_speeds(network)
    names = net_names(network)
    return {(d.source, d.target, a, b): d.size / speeds[tuple(sorted((a, b)))]  # type: ignore[index]
            for d in task_graph.dependencies for a in names for b in names if a != b}


def normalize_self_loops(network: Network) -> Network:
    """The same network with every self-loop at infinite speed (same-node data free, as in our model).

    saga's generators give self-loops ``1e9`` (or ``1e9 * U(0.1, 1)``), so same-node
    data costs ``size * 1e-9``: close to free, but not free, and our model cannot say it.
    """
    speeds = pair_speeds(network)
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
    speeds = pair_speeds(network)
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
