"""Profiling: what a profile is (measured node and transfer costs on a platform's real devices), how its
runs are planned, and the problem it makes.

Node costs come from ONNX Runtime's profiler, transfers between real devices are
fitted as ``latency + bytes / bandwidth`` from measured crossings, and the
executor's costs and the contention between cores are measured too
(:mod:`scheduler.profile_runs`); simulated devices keep the analytic model and
their links come from the platform.  Profiles are stored and reused while they
hold (:mod:`scheduler.profile_store`, whose :func:`~scheduler.profile_store.get_profile`
is the entry point).

Fewest runs (after the PIM partitioning paper): real devices with the same
ONNX Runtime settings (execution provider, threads) behave the same, so one
profiling run serves them all (``cpu0`` and ``cpu1`` are both one-thread CPU
sessions); one edge run measures the crossings of every pair of settings at a
few sizes spanning the model's tensors.  On the default platform that is 2 node
runs + 1 edge run for 3 real devices (the paper needed 3 + 1).  What the paper
did not measure costs more: the executor (three random placements), the
contention between cores, per node run a check run that times the whole model again at
the end (the profile's drift), a chain of tiny nodes that times the profiler's own cost, and
the whole model timed with ONNX Runtime's weight packing on and off, to trace (and later run)
the device the faster way (:func:`~scheduler.profile_runs.packing_choice`).

Example
-------
>>> from scheduler.zoo import build
>>> from scheduler.graph import task_graph_from_onnx
>>> from scheduler.platform import load_platform
>>> plan = plan_profiling(task_graph_from_onnx(build("mlp")), load_platform("default"))
>>> len(plan.node_runs), len(plan.edge_runs)
(2, 1)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Mapping

from .costs import model_costs
from .errors import HetschedError
from .graph import TaskGraph
from .platform import Device, Platform
from .problem import ExecutorCosts, Problem

PROFILE_FORMAT = "hetsched-profile/6"  # 2: links; 3: contention; 4: dispatch; 5: cost per byte; 6: calibration
NOISY_CV = 0.25  # coefficient of variation above which a node is flagged noisy
DRIFT_LIMIT = 0.2  # a profile whose whole-model run changed by more than this while profiling is measured again
EXECUTOR_PLACEMENTS = 3
"""Random placements the executor's costs are fitted on: one placement's switch cost is the residual of one
replay, which a burst of load moves (``benchmarks/bench_executor_fit.py``: 0, 0, 0 and 389 µs in four fits
on ``squeezenet1.1``, none off with three); the median of three is steadier."""
DRIFT_MIN_S = 1e-3  # ... unless the run is shorter than this: µs runs are call overhead and jitter (±40% here)


@dataclass(frozen=True)
class NodeRun:
    """One profiling run: a session with ``threads`` threads on ``provider`` serving ``devices``."""

    provider: str
    threads: int
    devices: tuple[str, ...]


@dataclass(frozen=True)
class EdgeRun:
    """One transfer-profiling run: every size in ``sizes`` between the device pairs in ``pairs``."""

    src_provider: str
    dst_provider: str
    pairs: tuple[tuple[str, str], ...]
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class ProfilingPlan:
    """The fewest runs that measure every node on every real device and every transfer class."""

    node_runs: tuple[NodeRun, ...]
    edge_runs: tuple[EdgeRun, ...]
    transfer_classes: int  # distinct (bytes, src device, dst device) over edges and real pairs
    executor_runs: int = 0  # replays of a fine-grained placement that fit the executor's costs
    check_runs: int = 0  # each node run's whole model timed again at the end (the profile's drift)
    tracer_runs: int = 0  # per node run, a chain of tiny nodes traced and plain: the profiler's own time per node
    packing_runs: int = 0  # per node run, the whole model timed with weight packing on and off: which to trace

    @property
    def runs(self) -> int:
        return (len(self.node_runs) + len(self.edge_runs) + self.executor_runs + self.check_runs + self.tracer_runs
                + self.packing_runs)


@dataclass(frozen=True)
class NodeStat:
    """Measured cost of one task on one device (seconds)."""

    task: str
    device: str
    median_s: float
    min_s: float
    max_s: float
    cv: float
    runs: int
    note: str = ""


@dataclass(frozen=True)
class LinkFit:
    """A fitted link ``latency + bytes / bandwidth`` between two real devices."""

    src: str
    dst: str
    latency: float
    bandwidth: float | None
    boundary_overhead_s: float
    points: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Profile:
    """Everything measured for one (model, platform): node costs, links, and how they were measured."""

    model_sha256: str
    platform_key: str
    platform_name: str
    ort_version: str
    repeats: int
    warmup: int
    date: str
    host_cores: int
    runs: int
    nodes: tuple[NodeStat, ...]
    links: tuple[LinkFit, ...]
    # device -> whole-model run time, profiler off: the mean of its median at the node run and at the end
    # of profiling (the check), when there was one
    whole_run_s: Mapping[str, float]
    traced_run_s: Mapping[str, float]  # device -> median whole-model run time in the profiler's trace
    executor: ExecutorCosts | None = None  # fitted from the executor run (two or more real devices)
    drift: float | None = None  # whole-model run at the end of profiling / at its node run - 1 (None: not re-timed)
    # device -> the profiler's own time per node (s): inside each kernel event, and in all of a traced run
    tracer_s: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    unpacked: tuple[str, ...] = ()  # devices traced (and to be run) with weight packing off: measured faster
    node_run_s: Mapping[str, float] = field(default_factory=dict)  # device -> whole model at its node run alone

    def cost(self, task: str, device: str) -> float | None:
        """The median cost of ``task`` on ``device``, if measured."""
        return self._index.get((task, device))

    @cached_property
    def _index(self) -> dict[tuple[str, str], float]:
        return {(n.task, n.device): n.median_s for n in self.nodes}

    def noisy(self, threshold: float = NOISY_CV) -> tuple[NodeStat, ...]:
        """Nodes whose spread (coefficient of variation) exceeds ``threshold``."""
        return tuple(n for n in self.nodes if n.cv > threshold and n.runs > 1)

    def calibrated(self, task: str, device: str) -> float:
        """The cost of ``task`` on ``device`` calibrated so that a device's node costs sum to its whole run.

        ORT's profiler takes time of its own per node, part of it inside the kernel events (``tracer_s``,
        timed on a chain of tiny nodes: about 2.6 µs of a 0.3 µs Relu's event here, 6 µs per node in all of
        a traced run): that is taken off every kernel and off the traced runs first.  On a model of 670 small
        nodes (a CRNN) the traced runs came out 1.37x the plain run, and scaling the kernels by that cut its
        Convs 27% short of what they take in a segment alone.
        ONNX Runtime spends time between kernels (scheduling, allocation) that no
        kernel event shows: that gap, measured inside the traced runs (their wall
        time less the kernels), is spread evenly over the nodes.  What still parts
        the kernels from the plain run, timed just after, is the host's speed moving
        between the two timings (on ``bert-base`` here the plain run came out 1.04x,
        0.99x and 1.08x the kernels in three profiles, the traced runs 1.02x each
        time): every cost is scaled by it.  Spread evenly instead, a drift of 8%
        inflated small nodes by 34 µs each and left 11 ms segments 10% short.
        Without traced runs, the whole difference is taken as the gap (or, when
        the kernels add up to more than the plain run, scaled away).
        """
        scale, gap, inside = self._calibration[device]
        return scale * max(0.0, self._index[(task, device)] - inside) + gap

    @cached_property
    def _calibration(self) -> dict[str, tuple[float, float, float]]:
        """Per device: (scale, per-node addition, the profiler's time inside a kernel event)."""
        out = {}
        for dev, whole in self.whole_run_s.items():
            inside, per_node = self.tracer_s.get(dev, (0.0, 0.0))
            rows = [n for n in self.nodes if n.device == dev]
            total = sum(max(0.0, n.median_s - inside) for n in rows)
            if not rows or total <= 0:
                out[dev] = (1.0, 0.0, 0.0)
                continue
            traced = self.traced_run_s.get(dev, math.nan) - per_node * sum(n.runs > 0 for n in rows)
            inside_run = max(traced, total) if math.isfinite(traced) else max(whole, total)
            gap = (inside_run - total) / len(rows)
            scale = whole / (total + gap * len(rows))
            out[dev] = (scale, scale * gap, inside)
        return out

    def sum_over_whole(self, traced: bool = False) -> dict[str, float]:
        """Per profiled device: sum of node medians / median whole-model run time.

        ``traced=True`` divides by the run time inside the profiled runs (like for
        like: at most 1, the rest is the executor between kernels); the default
        divides by the plain run, which the profiler's own overhead does not slow.
        """
        out = {}
        for dev, whole in (self.traced_run_s if traced else self.whole_run_s).items():
            total = sum(n.median_s for n in self.nodes if n.device == dev)
            out[dev] = total / whole if whole > 0 else float("nan")
        return out


# ------------------------------------------------------------------------------ planning

def real_devices(platform: Platform) -> tuple[Device, ...]:
    """Devices that replay on ONNX Runtime (not simulated)."""
    return tuple(d for d in platform.devices if not d.simulated)


def plan_profiling(graph: TaskGraph, platform: Platform) -> ProfilingPlan:
    """The fewest profiling runs for ``graph`` on ``platform``'s real devices.

    One node run per distinct (provider, threads) setting: a run measures one
    session configuration, and devices with the same configuration behave alike.
    One edge run per distinct (source provider, destination provider) pair type
    among real devices: one run measures the crossings of every pair of settings.
    :data:`EXECUTOR_PLACEMENTS` executor runs (replays of fine-grained random
    placements) when there are two or more real devices, to fit what the executor
    adds per segment; one more (the
    whole model on two devices at once, :func:`~scheduler.profile_runs.measure_contention`) when two real
    devices can work at the same time; per node run, one of a chain of tiny nodes that times the profiler's own
    cost (:func:`~scheduler.profile_runs.tracer_cost`), and one that times the whole model with weight packing
    on and off (:func:`~scheduler.profile_runs.packing_choice`).
    """
    reals = real_devices(platform)
    groups: dict[tuple[str, int], list[str]] = {}
    for d in reals:
        groups.setdefault((d.execution_provider, d.threads), []).append(d.name)
    node_runs = tuple(NodeRun(p, t, tuple(devs)) for (p, t), devs in groups.items())
    sizes = tuple(sorted({e.bytes for e in graph.edges}))
    pair_groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for a in reals:
        for b in reals:
            if a.name != b.name:
                pair_groups.setdefault((a.execution_provider, b.execution_provider), []).append((a.name, b.name))
    edge_runs = tuple(EdgeRun(sp, dp, tuple(pairs), sizes) for (sp, dp), pairs in pair_groups.items() if sizes)
    classes = len(sizes) * sum(len(r.pairs) for r in edge_runs)
    return ProfilingPlan(node_runs, edge_runs, classes,
                         EXECUTOR_PLACEMENTS * int(len(reals) > 1) + int(contention_pair(platform) is not None),
                         len(node_runs), len(node_runs), len(node_runs))


def contention_pair(platform: Platform) -> tuple[Device, Device] | None:
    """The first two real devices that can work at once (no shared resource), or None."""
    reals = real_devices(platform)
    return next(((a, b) for i, a in enumerate(reals) for b in reals[i + 1:]
                 if not platform.shares_resource(a.name, b.name)), None)


def platform_key(platform: Platform) -> str:
    """Hash of what profiling depends on: the real devices' names and ORT settings."""
    data = [(d.name, d.execution_provider, d.threads) for d in real_devices(platform)]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def drifted(prof: Profile, change: float | None = None) -> bool:
    """Whether the host's load changed while ``prof`` was measured (or, given ``change``, since): its
    whole-model run moved by more than :data:`DRIFT_LIMIT`, on a model that runs for at least
    :data:`DRIFT_MIN_S`."""
    change = prof.drift if change is None else change
    return (change is not None and abs(change) > DRIFT_LIMIT
            and min(prof.whole_run_s.values(), default=0.0) >= DRIFT_MIN_S)


# ------------------------------------------------------------------------------ problem

def problem_from_profile(graph: TaskGraph, platform: Platform, profile: Profile, name: str = "",
                         calibrate: bool = True) -> Problem:
    """A Problem with measured costs on real devices, modelled ones on simulated devices.

    With ``calibrate`` node costs are calibrated to the plain whole-model run
    (:meth:`Profile.calibrated`), so that a single-device schedule predicts it.  Links between
    real devices become the fitted ones, plus each crossing's share of the
    executor's costs (:meth:`ExecutorCosts.fold`: what the solvers can see of
    them); links that touch a simulated device stay as the platform gives them.
    Costs on devices that work beside another (:meth:`ExecutorCosts.contended`)
    are the measured ones times ``1 + contention``: a placement worth making keeps
    both cores busy.  The executor's costs come along for the segment-level
    prediction, which charges contention only where work overlaps.
    """
    costs = model_costs(graph, platform)
    measured = {(n.task, n.device): profile.calibrated(n.task, n.device) if calibrate else n.median_s
                for n in profile.nodes}
    ex = profile.executor
    if profile.unpacked:
        ex = replace(ex or ExecutorCosts({}, 0.0), unpacked=frozenset(profile.unpacked))
    contended = ex.contended(platform) if ex is not None else frozenset()
    for d in real_devices(platform):
        scale = 1.0 + ex.contention if d.name in contended else 1.0
        for t in graph.tasks:
            if d.name in costs[t.name]:
                if (t.name, d.name) not in measured:
                    raise HetschedError(f"profile has no cost for task {t.name!r} on device {d.name!r}; re-profile")
                costs[t.name][d.name] = measured[(t.name, d.name)] * scale
    fitted = {}
    for l in profile.links:
        link = replace(platform.link_table[(l.src, l.dst)], bandwidth=l.bandwidth, latency=l.latency)
        fitted[(l.src, l.dst)] = ex.fold(platform, link) if ex else link
    links = tuple(fitted.get((a, b), link) for (a, b), link in platform.link_table.items())
    plat = Platform(platform.name, platform.devices, links)
    return Problem(graph, plat, costs, name=name or graph.name, executor=ex)
