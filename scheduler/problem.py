"""Problem: task graph + platform + cost tables; the one input every solver takes.

``costs[task][device]`` is the run time in seconds; a device missing from a task's
row may not run it.  Moving the data of edge ``(u, v)`` between different devices
takes ``transfer[(u, v)]`` seconds when the problem gives an explicit value, else
the link's ``latency + bytes / bandwidth``.  Tasks sharing a ``colocate`` group
must sit on one device.

Problem file (JSON, ``"format": "hetsched-problem/1"``)::

    {"format": "hetsched-problem/1", "name": "...",
     "devices": [{"name", "kind", "resources", "memory_bytes"?, ...Device fields}],
     "links": [{"src", "dst", "latency", "bandwidth", "transfer_scale"?}],
     "tasks": [{"name", "op_type"?, "cost": {device: s}, "memory_bytes"?, "colocate"?}],
     "edges": [{"src", "dst", "bytes", "transfer"?}],
     "executor"?: {"call_s": {device: s}, "switch_s": s, "contention"?: fraction, "byte_s"?: s,
                   "unpacked"?: [device]}}

``executor`` (fitted by profiling, :class:`ExecutorCosts`) is what running a
placement as ONNX Runtime segments adds beyond the node costs.  Problems built
from a profile fold each crossing's share of it into the link latencies, so that
every solver sees it; the replay's segment-level prediction
(:func:`scheduler.replay.predict_segments`) charges it per segment instead.

Example
-------
>>> from scheduler.zoo import build
>>> from scheduler.graph import task_graph_from_onnx
>>> from scheduler.platform import load_platform
>>> p = Problem.from_graph(task_graph_from_onnx(build("mlp", layers=2)), load_platform("default"))
>>> problem_from_dict(problem_to_dict(p)) == p
True
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Mapping

from .costs import CostTable, model_costs
from .errors import HetschedError, ProblemError
from .graph import Edge, Task, TaskGraph
from .fileio import read_json, write_json
from .platform import DeviceRecord, Link, LinkRecord, Platform, link_to_dict, platform_to_dict
from .schema import Count, FileModel, Name, NonNegative, Text, exactly, parse

FORMAT = "hetsched-problem/1"


MIN_TIME = 1e-12
"""Shortest non-zero time (s) a cost or transfer may take: below it, numbers are noise (or denormal)."""
MAX_TIME = 1e9
"""Longest time (s) a cost or transfer may take (about 30 years): beyond it, sums lose every digit."""


def _is_time(value: Any) -> bool:
    """Whether ``value`` is 0 or a number of seconds from :data:`MIN_TIME` to :data:`MAX_TIME`."""
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and (value == 0 or MIN_TIME <= value <= MAX_TIME))


@dataclass(frozen=True)
class ExecutorCosts:
    """What the replay executor adds to a placement beyond node costs and transfers (seconds).

    ``call_s[device]``: each segment's session call on that device (entering and
    leaving ORT, waking its thread pool, reading inputs another core wrote);
    ``switch_s``: a core passing from one device's worker to another's (a
    thread wake-up); ``contention``: how much slower a device's work runs while
    another device works on other cores beside it (see :meth:`contended`);
    ``byte_s``: each byte of the tensors a segment's call takes from other
    segments or gives back to them (ORT copies outputs out of its arena into
    fresh arrays, and reads inputs another core wrote).  Per segment and per
    overlap, not per task, so the common task-level semantics cannot hold them;
    :func:`scheduler.replay.predict_segments` does.  ``unpacked``: the devices
    whose sessions run with ONNX Runtime's weight packing off, which profiling
    measured faster on them for this model and traced their costs with.
    """

    call_s: Mapping[str, float]
    switch_s: float
    contention: float = 0.0
    byte_s: float = 0.0
    unpacked: frozenset[str] = frozenset()

    def fold(self, platform: Platform, link: Link) -> Link:
        """``link`` carrying what :meth:`edge_s` charges on it: the calls and switch in its latency, the bytes
        in its bandwidth (what problems built from a profile give the solvers).

        >>> from scheduler.platform import load_platform
        >>> ex = ExecutorCosts({"cpu1": 2e-5}, 0.0, 0.0, 5e-10)
        >>> link = ex.fold(load_platform("cpu"), Link("cpu0", "cpu1", 1e-5, 1e9))
        >>> round(link.latency, 9), round(link.bandwidth)
        (3e-05, 500000000)
        """
        per_byte = (1.0 / link.bandwidth if link.bandwidth else 0.0) + 2 * self.byte_s
        return replace(link, latency=link.latency + self.edge_s(platform, link.src, link.dst),
                       bandwidth=1.0 / per_byte if per_byte > 0 else None)

    def to_dict(self) -> dict[str, Any]:
        """The ``executor`` entry of problem and profile files."""
        out = {"call_s": {d: float(v) for d, v in self.call_s.items()}, "switch_s": float(self.switch_s),
               "contention": float(self.contention), "byte_s": float(self.byte_s)}
        return {**out, "unpacked": sorted(self.unpacked)} if self.unpacked else out

    def contended(self, platform: Platform) -> frozenset[str]:
        """Devices whose work ``contention`` slows: real devices that another real device can run beside
        (no shared resource), whose work then competes for caches and memory bandwidth.

        Problems built from a profile carry that slow-down in these devices' costs
        (``1 + contention`` times the cost measured alone), so that the solvers see it;
        :func:`scheduler.replay.predict_segments` charges it for the time another core
        is actually busy instead.

        >>> from scheduler.platform import load_platform
        >>> sorted(ExecutorCosts({}, 0.0, 0.05).contended(load_platform("default")))
        ['cpu0', 'cpu1']
        """
        if self.contention <= 0:
            return frozenset()
        reals = [d for d in platform.devices if not d.simulated]
        return frozenset(a.name for a in reals
                         if any(b.name != a.name and not platform.shares_resource(a.name, b.name) for b in reals))

    def edge_s(self, platform: Platform, src: str, dst: str, nbytes: int = 0) -> float:
        """What the executor adds to a crossing of ``nbytes``, as task-level links carry it: the consumer's
        session call, a core switch when the two devices share a core, and the bytes one call gives back and
        the other takes in.

        >>> from scheduler.platform import load_platform
        >>> round(ExecutorCosts({"cpu-par": 5e-5}, 1e-4).edge_s(load_platform("cpu"), "cpu0", "cpu-par"), 9)
        0.00015
        """
        if src == dst:
            return 0.0
        return (self.call_s.get(dst, 0.0) + (self.switch_s if platform.shares_resource(src, dst) else 0.0)
                + 2 * self.byte_s * nbytes)


@dataclass(frozen=True, eq=False)
class Problem:
    """A placement problem; construction rejects anything inconsistent with a one-line message."""

    graph: TaskGraph
    platform: Platform
    costs: CostTable
    transfer_override: Mapping[tuple[str, str], float] = field(default_factory=dict)
    colocate: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    executor: ExecutorCosts | None = None

    def __post_init__(self) -> None:
        devs = self.platform.device
        if self.executor is not None:
            for what, named in (("call cost given", self.executor.call_s),
                                ("weight packing off", self.executor.unpacked)):
                unknown = set(named) - set(devs)
                if unknown:
                    raise ProblemError(f"problem {self.label!r}: executor {what} for unknown device "
                                       f"{sorted(unknown)[0]!r}")
        if not self.graph.tasks:
            raise ProblemError(f"problem {self.label!r} has no tasks: nothing to place")
        for tname in self.costs:
            if tname not in self.graph.task:
                raise ProblemError(f"problem {self.label!r}: cost given for unknown task {tname!r}")
        for task in self.graph.tasks:
            row = self.costs.get(task.name)
            if not row:
                raise ProblemError(f"problem {self.label!r}: task {task.name!r} has no allowed device (empty cost row)")
            for dname, c in row.items():
                if dname not in devs:
                    raise ProblemError(f"problem {self.label!r}: task {task.name!r} has a cost on unknown device {dname!r}")
                if not _is_time(c):
                    raise ProblemError(f"problem {self.label!r}: cost of task {task.name!r} on {dname!r} must be 0 "
                                       f"or from {MIN_TIME:g} to {MAX_TIME:g} seconds, got {c!r}")
        edges = {(e.src, e.dst) for e in self.graph.edges}
        for key, c in self.transfer_override.items():
            if key not in edges:
                raise ProblemError(f"problem {self.label!r}: transfer given for {key[0]}->{key[1]}, which is not an edge")
            if not _is_time(c):
                raise ProblemError(f"problem {self.label!r}: transfer of edge {key[0]}->{key[1]} must be 0 or from "
                                   f"{MIN_TIME:g} to {MAX_TIME:g} seconds, got {c!r}")
        most = max((e.bytes for e in self.graph.edges), default=0)
        for (a, b), link in self.platform.link_table.items():
            if link.time(most) > MAX_TIME:
                raise ProblemError(f"problem {self.label!r}: moving {most} bytes from {a!r} to {b!r} would take "
                                   f"{link.time(most):.3g} s, more than {MAX_TIME:g} s (check the link's bandwidth)")
        for tname in self.colocate:
            if tname not in self.graph.task:
                raise ProblemError(f"problem {self.label!r}: colocate names unknown task {tname!r}")
        for group, members in self.groups.items():
            common = set.intersection(*(set(self.costs[t]) for t in members))
            if not common:
                raise ProblemError(f"problem {self.label!r}: colocation group {group!r} has no device that every member may use")

    @property
    def label(self) -> str:
        return self.name or self.graph.name

    # ---- derived views for solvers (computed once) ----
    @classmethod
    def from_graph(cls, graph: TaskGraph, platform: Platform, costs: CostTable | None = None, name: str = "") -> "Problem":
        """A problem from a task graph, with modelled costs unless a table is given."""
        return cls(graph, platform, costs if costs is not None else model_costs(graph, platform), name=name or graph.name)

    @cached_property
    def tasks(self) -> tuple[str, ...]:
        """Task names in graph order."""
        return tuple(t.name for t in self.graph.tasks)

    @cached_property
    def devices(self) -> tuple[str, ...]:
        """Device names in platform order."""
        return tuple(d.name for d in self.platform.devices)

    @cached_property
    def preds(self) -> Mapping[str, tuple[Edge, ...]]:
        """Incoming edges per task."""
        out: dict[str, list[Edge]] = {t: [] for t in self.tasks}
        for e in self.graph.edges:
            out[e.dst].append(e)
        return {t: tuple(v) for t, v in out.items()}

    @cached_property
    def succs(self) -> Mapping[str, tuple[Edge, ...]]:
        """Outgoing edges per task."""
        out: dict[str, list[Edge]] = {t: [] for t in self.tasks}
        for e in self.graph.edges:
            out[e.src].append(e)
        return {t: tuple(v) for t, v in out.items()}

    @cached_property
    def groups(self) -> Mapping[str, tuple[str, ...]]:
        """Colocation groups: group name -> member tasks."""
        out: dict[str, list[str]] = defaultdict(list)
        for t in self.tasks:
            if t in self.colocate:
                out[self.colocate[t]].append(t)
        return {g: tuple(m) for g, m in out.items()}

    def allowed(self, task: str) -> tuple[str, ...]:
        """Devices that may run ``task``, in platform order."""
        row = self.costs[task]
        return tuple(d for d in self.devices if d in row)

    def transfer(self, edge: Edge, src_device: str, dst_device: str) -> float:
        """Seconds from ``edge.src`` finishing on ``src_device`` to its data being usable on ``dst_device``."""
        if src_device == dst_device:
            return 0.0
        override = self.transfer_override.get((edge.src, edge.dst))
        if override is not None:
            return override * self.platform.link_table[(src_device, dst_device)].transfer_scale
        return self.platform.transfer_time(src_device, dst_device, edge.bytes)

    def output_transfer(self, task: str, src_device: str, dst_device: str) -> float:
        """Seconds to move ``task``'s output from ``src_device`` to ``dst_device``: its largest outgoing edge's
        transfer (an output moves to a device once, however many of its readers are there)."""
        return max((self.transfer(e, src_device, dst_device) for e in self.succs[task]), default=0.0)

    def transfer_load(self, task: str, src_device: str, dst_device: str) -> tuple[float, float]:
        """Busy seconds that moving ``task``'s output from ``src_device`` to ``dst_device`` costs the sender and
        the receiver, per inference (the devices' ``transfer_load``, :data:`scheduler.platform.TRANSFER_LOADS`).

        A ``staged`` sender pays its share once however many devices read the output
        (:func:`scheduler.semantics.resource_loads` takes the largest); a ``send`` one pays it
        for each of them.
        """
        sends, receives = (self.platform.device[src_device].transfer_load,
                           self.platform.device[dst_device].transfer_load)
        staged = (sends == "staged") + (receives == "staged")
        if sends != "send" and not staged:
            return 0.0, 0.0
        time = self.output_transfer(task, src_device, dst_device)
        share = time / staged if staged else 0.0
        return time if sends == "send" else share if sends == "staged" else 0.0, share if receives == "staged" else 0.0

    def memory(self, task: str) -> int:
        """Bytes ``task`` keeps resident on its device."""
        return self.graph.task[task].memory_bytes

    def infeasibility(self) -> str | None:
        """A one-line proof that no placement fits in memory (a task or co-location group fits
        on no device that may run it), or None when this quick check finds none."""
        for t in self.tasks:
            group = self.colocate.get(t)
            members = self.groups[group] if group is not None else (t,)
            allowed = [d for d in self.allowed(t) if all(d in self.costs[m] for m in members)]
            need = sum(self.memory(m) for m in members)
            caps = [self.platform.device[d].memory_bytes for d in allowed]
            if all(c is not None and need > c for c in caps):
                what = f"co-location group {group!r}" if group is not None else f"task {t!r}"
                return (f"{what} needs {need} bytes, more than the memory of every device that may run it "
                        f"({', '.join(allowed)})")
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return problem_to_dict(self) == problem_to_dict(other)

    __hash__ = None  # type: ignore[assignment]


# ----------------------------------------------------------------------------- file I/O

def problem_to_dict(problem: Problem) -> dict[str, Any]:
    """The ``hetsched-problem/1`` structure of a problem."""
    plat = platform_to_dict(problem.platform)
    links = [link_to_dict(l) for l in problem.platform.link_table.values()]
    tasks = []
    for t in problem.graph.tasks:
        row: dict[str, Any] = {"name": t.name}
        if t.op_type:
            row["op_type"] = t.op_type
        row["cost"] = {d: float(problem.costs[t.name][d]) for d in problem.allowed(t.name)}
        if t.memory_bytes:
            row["memory_bytes"] = int(t.memory_bytes)
        if t.name in problem.colocate:
            row["colocate"] = problem.colocate[t.name]
        tasks.append(row)
    edges = []
    for e in problem.graph.edges:
        row = {"src": e.src, "dst": e.dst, "bytes": int(e.bytes)}
        if (e.src, e.dst) in problem.transfer_override:
            row["transfer"] = float(problem.transfer_override[(e.src, e.dst)])
        edges.append(row)
    out = {"format": FORMAT, "name": problem.label, "devices": plat["devices"], "links": links,
           "tasks": tasks, "edges": edges}
    if problem.executor is not None:
        out["executor"] = problem.executor.to_dict()
    return out


class TaskRecord(FileModel):
    name: Name
    op_type: Text = ""
    cost: dict[Text, NonNegative]
    memory_bytes: Count = 0
    colocate: Text | None = None


class EdgeRecord(FileModel):
    src: Text
    dst: Text
    bytes: Count = 0
    transfer: NonNegative | None = None


class ExecutorRecord(FileModel):
    call_s: dict[Text, NonNegative]
    switch_s: NonNegative
    contention: NonNegative = 0.0
    byte_s: NonNegative = 0.0
    unpacked: list[Text] = []

    def costs(self) -> ExecutorCosts:
        return ExecutorCosts(dict(self.call_s), self.switch_s, self.contention, self.byte_s, frozenset(self.unpacked))


class ProblemRecord(FileModel):
    """A ``hetsched-problem/1`` file (the module docstring)."""

    format: exactly(FORMAT)  # type: ignore[valid-type]
    name: Text = ""
    devices: list[DeviceRecord]
    links: list[LinkRecord] = []
    tasks: list[TaskRecord]
    edges: list[EdgeRecord] = []
    executor: ExecutorRecord | None = None


def problem_from_dict(data: Any, where: str = "problem") -> Problem:
    """Parse the ``hetsched-problem/1`` structure; every error names the file and the key."""
    record = parse(ProblemRecord, data, where, ProblemError)
    graph_name = record.name or "problem"
    tasks = tuple(Task(name=t.name, op_type=t.op_type, memory_bytes=t.memory_bytes, onnx_nodes=(t.name,))
                  for t in record.tasks)
    ex = record.executor
    try:
        platform = Platform(name=graph_name, devices=tuple(d.device() for d in record.devices),
                            links=tuple(l.link() for l in record.links))
        graph = TaskGraph(name=graph_name, tasks=tasks, edges=tuple(Edge(e.src, e.dst, e.bytes) for e in record.edges))
        return Problem(graph, platform, {t.name: dict(t.cost) for t in record.tasks},
                       {(e.src, e.dst): e.transfer for e in record.edges if e.transfer is not None},
                       {t.name: t.colocate for t in record.tasks if t.colocate is not None}, name=record.name,
                       executor=None if ex is None else ex.costs())
    except HetschedError as exc:
        raise ProblemError(f"{where}: {exc}") from None


def read_problem(path: str | os.PathLike[str]) -> Problem:
    """Read a problem file."""
    return problem_from_dict(read_json(path, "problem"), where=os.fspath(path))


def write_problem(problem: Problem, path: str | os.PathLike[str]) -> None:
    """Write a problem file atomically."""
    write_json(path, problem_to_dict(problem))

