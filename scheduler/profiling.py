"""Profiling: measured node and transfer costs on the real devices of a platform.

Node costs come from ONNX Runtime's profiler (``<node>_kernel_time`` events, µs)
with graph optimisations disabled, so that every event maps to a model node.
Transfer costs between real devices are fitted as ``latency + bytes / bandwidth``
from measured crossings (:func:`crossing_points`): what handing a tensor from one
device's worker to another's adds, the way replay does it (a session call, a
thread wake-up, reading what another core wrote); host-memory devices share
tensors, so there is no copy to time.  Simulated devices keep the analytic model;
their links come from the platform.

Fewest runs (after the PIM partitioning paper): real devices with the same
ONNX Runtime settings (execution provider, threads) behave the same, so one
profiling run serves them all (``cpu0`` and ``cpu1`` are both one-thread CPU
sessions); one edge run measures the crossings of every pair of settings at a
few sizes spanning the model's tensors.  On the default platform that is 2 node
runs + 1 edge run for 3 real devices (the paper needed 3 + 1).  What the paper
did not measure costs 3 more: the executor, the contention between cores, and a
check run that times the whole model again at the end (the profile's drift).

Profiles are stored as CSV (one row per task and device) + JSON metadata in a
folder (``profiles/`` by default) and reused when the model bytes, the real
devices' settings, the ONNX Runtime version, the host's core count and the
repeat count all match, and while one run of the whole model still takes what it
took when profiled (within 20%).

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
import os
import statistics
import tempfile
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from functools import cached_property, partial
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto, helper

from .costs import model_costs
from .errors import HetschedError
from .fileio import read_json, write_json, write_text
from .graph import TaskGraph
from .executor import pin_thread, timed_runs
from .optimize import IR_VERSION, model_bytes, random_inputs, session
from .platform import Device, Platform
from .problem import ExecutorCosts, Problem
from .replay import ReplayError, core_map, cut, predict_segments, replay, segment_durations
from .schedule import simulate

PROFILE_FORMAT = "hetsched-profile/3"  # 2: links fitted from measured crossings; 3: contention between cores
NOISY_CV = 0.25  # coefficient of variation above which a node is flagged noisy
DRIFT_LIMIT = 0.2  # a profile whose whole-model run changed by more than this while profiling is measured again
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
    check_runs: int = 0  # the first node run's whole model timed again at the end (the profile's drift)

    @property
    def runs(self) -> int:
        return len(self.node_runs) + len(self.edge_runs) + self.executor_runs + self.check_runs


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
    whole_run_s: Mapping[str, float]  # device -> median whole-model run time, profiler off
    traced_run_s: Mapping[str, float]  # device -> median whole-model run time in the profiler's trace
    executor: ExecutorCosts | None = None  # fitted from the executor run (two or more real devices)
    drift: float | None = None  # whole-model run at the end of profiling / at its node run - 1 (None: not re-timed)

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

        ONNX Runtime spends time between kernels (scheduling, allocation) that no
        kernel event shows: that residual is spread evenly over the nodes.  When the
        kernels add up to more than the plain run (the profiler's own overhead),
        they are scaled down in proportion.
        """
        return self._calibration[device][0] * self._index[(task, device)] + self._calibration[device][1]

    @cached_property
    def _calibration(self) -> dict[str, tuple[float, float]]:
        """Per device: (scale, per-node addition)."""
        out = {}
        for dev, whole in self.whole_run_s.items():
            rows = [n for n in self.nodes if n.device == dev]
            total = sum(n.median_s for n in rows)
            if not rows or total <= 0:
                out[dev] = (1.0, 0.0)
            elif whole >= total:
                out[dev] = (1.0, (whole - total) / len(rows))
            else:
                out[dev] = (whole / total, 0.0)
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
    One executor run (a replay of a fine-grained placement) when there are two or
    more real devices, to fit what the executor adds per segment; one more (the
    whole model on two devices at once, :func:`measure_contention`) when two real
    devices can work at the same time.
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
                         int(len(reals) > 1) + int(contention_pair(platform) is not None), int(bool(node_runs)))


# ------------------------------------------------------------------------------ measuring

def _session(data: bytes, provider: str, threads: int, profile_dir: str | None,
             spinning: str = "always") -> ort.InferenceSession:
    """A profiling session with optimisations off.

    Node costs are measured as a device runs alone (idle threads spinning, like
    plain ORT and a one-device replay); what a multi-device replay loses by
    stopping them between runs is part of the crossings and the executor's costs.
    """
    return session(data, "none", threads, provider, spinning=spinning,
                   profile_prefix=None if profile_dir is None else os.path.join(profile_dir, "ort"))


def _end_trace(session: ort.InferenceSession) -> list[dict]:
    """Stop profiling and return the trace events (the trace file is removed)."""
    path = session.end_profiling()
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    finally:
        os.remove(path)


def _node_durations(events: Sequence[dict], repeats: int) -> tuple[dict[str, list[float]], list[float]]:
    """Per node, the kernel times (s) of the last ``repeats`` runs; and the whole-run times."""
    per_node: dict[str, list[float]] = {}
    runs = []
    for ev in events:
        name = ev.get("name", "")
        if ev.get("cat") == "Node" and name.endswith("_kernel_time"):
            per_node.setdefault(name[: -len("_kernel_time")], []).append(ev["dur"] * 1e-6)
        elif ev.get("cat") == "Session" and name == "model_run":
            runs.append(ev["dur"] * 1e-6)
    return {k: v[-repeats:] for k, v in per_node.items()}, runs[-repeats:]


def _noop() -> None:
    return None


def _stats(task: str, device: str, samples: Sequence[float], note: str = "") -> NodeStat:
    med = statistics.median(samples)
    mean = statistics.fmean(samples)
    cv = statistics.pstdev(samples) / mean if mean > 0 and len(samples) > 1 else 0.0
    return NodeStat(task, device, med, min(samples), max(samples), cv, len(samples), note)


def _relu_chain(elements: int, length: int) -> onnx.ModelProto:
    """``length`` Relus in a chain on a float tensor of ``elements`` values (one read and one write each)."""
    names = ["x"] + [f"r{i}" for i in range(length)]
    nodes = [helper.make_node("Relu", [names[i]], [names[i + 1]], name=f"relu{i}") for i in range(length)]
    graph = helper.make_graph(nodes, "crossing", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [elements])],
                              [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, [elements])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    return model


def _fit_link(points: Sequence[tuple[int, float]]) -> tuple[float, float | None]:
    """Least-squares ``latency + bytes / bandwidth`` (both clipped to be physical)."""
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    if len(points) < 2 or np.ptp(x) == 0:
        return float(max(0.0, y.mean())), None
    slope, intercept = np.polyfit(x, y, 1)
    if slope <= 0:
        return float(max(0.0, y.mean())), None
    return float(max(0.0, intercept)), float(1.0 / slope)


def profile_model(model: onnx.ModelProto, graph: TaskGraph, platform: Platform, *, repeats: int = 20,
                  warmup: int = 3, seed: int = 0, progress: Callable[[str, int], Callable[[], None]] | None = None
                  ) -> Profile:
    """Measure every node on every real device and every transfer class, following the plan.

    ``model`` must be the model ``graph`` was imported from (with fixed input shapes).
    ``progress(label, total)`` may return a callable that is ticked once per ORT run.
    """
    if repeats < 1 or warmup < 0:
        raise HetschedError("profiling needs repeats >= 1 and warmup >= 0")
    plan = plan_profiling(graph, platform)
    data = model_bytes(model)
    task_names = {t.name for t in graph.tasks}
    nodes: list[NodeStat] = []
    whole: dict[str, float] = {}
    traced: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hetsched-prof-") as tmp:
        for run in plan.node_runs:
            sess = _session(data, run.provider, run.threads, tmp)
            tick = progress(f"nodes {run.provider.removesuffix('ExecutionProvider')} x{run.threads}",
                            warmup + repeats) if progress else _noop
            feeds = random_inputs(sess, seed)
            timed_runs(partial(sess.run, None, feeds), warmup, repeats, tick)
            per_node, traced_runs = _node_durations(_end_trace(sess), repeats)
            del sess  # its (spinning) threads must not run beside the next session
            # the profiler slows runs down: time the whole model again with it off
            plain = _session(data, run.provider, run.threads, None)
            wall = timed_runs(partial(plain.run, None, feeds), warmup, repeats)
            del plain
            for dev in run.devices:
                whole[dev] = statistics.median(wall)
                traced[dev] = statistics.median(traced_runs) if traced_runs else float("nan")
                for task in graph.tasks:
                    samples = per_node.get(task.name)
                    if samples:
                        nodes.append(_stats(task.name, dev, samples))
                    else:
                        nodes.append(NodeStat(task.name, dev, 0.0, 0.0, 0.0, 0.0, 0,
                                              "not in the ONNX Runtime trace (constant or folded at load): cost 0"))
            unknown = set(per_node) - task_names
            if unknown:
                raise HetschedError(f"profiling trace names nodes not in the model: {sorted(unknown)[:3]}")
        links = []
        for erun in plan.edge_runs:
            if (erun.src_provider, erun.dst_provider) != ("CPUExecutionProvider", "CPUExecutionProvider"):
                raise HetschedError(f"transfer profiling between {erun.src_provider} and {erun.dst_provider} "
                                    "is not supported yet; give that link in the platform and mark one side simulated")
            links += _profile_transfers(erun, platform, repeats, warmup, progress)
    prof = Profile(
        model_sha256=hashlib.sha256(data).hexdigest(),
        platform_key=platform_key(platform),
        platform_name=platform.name,
        ort_version=ort.__version__,
        repeats=repeats,
        warmup=warmup,
        date=time.strftime("%Y-%m-%dT%H:%M:%S"),
        host_cores=os.cpu_count() or 1,
        runs=plan.runs,
        nodes=tuple(nodes),
        links=tuple(links),
        whole_run_s=whole,
        traced_run_s=traced,
    )
    if plan.executor_runs:
        tick = progress("contention", 2 * (warmup + repeats)) if progress else _noop
        contention = measure_contention(data, platform, repeats=repeats, warmup=warmup, seed=seed, tick=tick)
        prof = replace(prof, executor=ExecutorCosts({}, 0.0, contention))
        if len(real_devices(platform)) > 1:
            try:
                prof = replace(prof, executor=fit_executor(model, problem_from_profile(graph, platform, prof),
                                                           repeats=repeats, warmup=warmup, seed=seed,
                                                           progress=progress))
            except ReplayError:  # the random placement cuts where the model cannot be cut (a non-tensor
                pass  # value): no call or switch costs then; placements are predicted by the schedule alone
    if plan.check_runs:  # the first node run's whole model again, same settings: did the host's load change?
        prof = replace(prof, drift=check_change(data, prof, plan, repeats=repeats, warmup=warmup, seed=seed,
                                                progress=progress))
    return prof


def check_change(data: bytes, prof: Profile, plan: ProfilingPlan, *, repeats: int, warmup: int, seed: int = 0,
                 progress: Callable[[str, int], Callable[[], None]] | None = None) -> float | None:
    """The check run: the whole model timed now with the first node run's settings, against ``prof``'s
    timing of it (``now / then - 1``; None when that was 0)."""
    if not plan.node_runs:
        return None
    first = plan.node_runs[0]
    plain = _session(data, first.provider, first.threads, None)
    tick = progress("check", warmup + repeats) if progress else _noop
    now = statistics.median(timed_runs(partial(plain.run, None, random_inputs(plain, seed)), warmup, repeats, tick))
    del plain
    then = prof.whole_run_s.get(first.devices[0], 0.0)
    return now / then - 1.0 if then > 0 else None


def fit_executor(model: onnx.ModelProto, problem: Problem, *, repeats: int = 20, warmup: int = 3, seed: int = 0,
                 progress: Callable[[str, int], Callable[[], None]] | None = None) -> ExecutorCosts:
    """Fit the executor's per-segment costs from one replay of a random placement over the real devices.

    A random placement cuts the model into many segments on every device and
    passes cores between devices often.  Each device's call cost is the median of
    its segments' measured minus predicted time (:func:`scheduler.replay.segment_durations`
    without calls: the problem's contention stays); the switch cost is then the one
    that makes :func:`scheduler.replay.predict_segments` meet the measured makespan
    (found by bisection; the prediction grows with it).
    """
    reals = {d.name for d in real_devices(problem.platform)}
    rng = np.random.default_rng(seed)
    placement = {}
    for t in problem.tasks:
        allowed = [d for d in problem.allowed(t) if d in reals] or list(problem.allowed(t))
        placement[t] = allowed[int(rng.integers(len(allowed)))]
    schedule = simulate(problem, placement)
    segments = cut(problem, schedule)
    result = replay(model, problem, schedule, repeats=repeats, warmup=warmup, baselines=False, seed=seed,
                    progress=(lambda label, total: progress("executor", total)) if progress else None)
    contention = problem.executor.contention if problem.executor is not None else 0.0
    work = segment_durations(problem, segments, calls=False)
    call = {}
    for d in sorted(reals):
        excess = [g["measured_median_s"] - work[g["index"]] for g in result["segments"] if g["device"] == d]
        call[d] = max(0.0, statistics.median(excess)) if excess else 0.0
    measured = result["measured_makespan_s"]

    def predicted(switch: float) -> float:
        return predict_segments(replace(problem, executor=ExecutorCosts(call, switch, contention)), segments)

    lo, hi = 0.0, 1e-4
    if predicted(0.0) >= measured:
        return ExecutorCosts(call, 0.0, contention)
    while predicted(hi) < measured and hi < 1.0:
        lo, hi = hi, 2 * hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if predicted(mid) < measured else (lo, mid)
    return ExecutorCosts(call, hi, contention)


def contention_pair(platform: Platform) -> tuple[Device, Device] | None:
    """The first two real devices that can work at once (no shared resource), or None."""
    reals = real_devices(platform)
    return next(((a, b) for i, a in enumerate(reals) for b in reals[i + 1:]
                 if not platform.shares_resource(a.name, b.name)), None)


def measure_contention(data: bytes, platform: Platform, *, repeats: int = 20, warmup: int = 3, seed: int = 0,
                       tick: Callable[[], None] = lambda: None) -> float:
    """How much slower the model runs on a device while another runs it beside it on other cores.

    The whole model on the two devices of :func:`contention_pair` at once, each
    worker pinned to its device's cores as the replay pins them, against the first
    device alone: median over median, minus 1, at least 0.  Two devices that
    share caches and memory bandwidth slow each other down; what the node
    profile (one device at a time) cannot see.  0 without such a pair.  The GIL is handed
    over as quickly as the replay's executor hands it (else two threads calling ORT wait
    for each other and a µs model looks several times slower beside another).
    """
    pair = contention_pair(platform)
    if pair is None:
        return 0.0
    cpus = core_map(platform)
    sessions = [_session(data, d.execution_provider, d.threads, None, spinning="during-run") for d in pair]
    feeds = random_inputs(sessions[0], seed)

    def timed(workers: int) -> list[float]:
        times: list[list[float]] = [[] for _ in range(workers)]
        start = threading.Barrier(workers)

        def worker(k: int) -> None:
            pin_thread(cpus.get(pair[k].name, ()))
            start.wait()
            times[k] = timed_runs(partial(sessions[k].run, None, feeds), warmup, repeats, tick if k == 0 else _noop)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return [t for ts in times for t in ts]

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        single = statistics.median(timed(1))
        both = statistics.median(timed(2))
    finally:
        sys.setswitchinterval(switch)
    return max(0.0, both / single - 1.0) if single > 0 else 0.0


def _pingpong_s(sessions: Sequence[ort.InferenceSession], x: np.ndarray, hops: int) -> float:
    """Seconds per hop of passing ``x`` back and forth between two worker threads, as replay hands over.

    Each hop is one run of the worker's own session on the tensor the other worker
    produced, then a condition-variable wake-up of the other worker.
    """
    cond = threading.Condition()
    state: dict[str, object] = {"turn": 0, "left": hops, "value": x}
    start = threading.Barrier(3)

    def worker(me: int) -> None:
        start.wait()
        while True:
            with cond:
                while state["turn"] != me and state["left"] > 0:  # type: ignore[operator]
                    cond.wait()
                if state["left"] <= 0:  # type: ignore[operator]
                    return
                value = state["value"]
            out = sessions[me].run(None, {"x": value})[0]
            with cond:
                state.update(value=out, left=state["left"] - 1, turn=1 - me)  # type: ignore[operator]
                cond.notify_all()

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for th in workers:
        th.start()
    start.wait()  # thread start-up is not timed
    t0 = time.perf_counter()
    for th in workers:
        th.join()
    return (time.perf_counter() - t0) / hops


def crossing_points(src: Device, dst: Device, sizes: Sequence[int], warmup: int, repeats: int,
                    tick: Callable[[], None] = lambda: None, hops: int = 16) -> tuple[tuple[int, float], ...]:
    """What handing a tensor of each size over between ``src``'s and ``dst``'s workers adds (s).

    Per size: a ping-pong of one Relu per hop between a session with ``src``'s
    settings and one with ``dst``'s (threads spinning during runs only, as in a multi-device replay), minus
    the same Relus run as a chain inside one session of each (what the profiled
    node costs already hold).  The difference is the session call, the worker
    wake-up and reading data another core wrote: what a segment boundary costs.
    """
    points = []
    for n in sizes:
        elements = max(1, n // 4)
        x = np.random.default_rng(0).standard_normal(elements).astype(np.float32)
        one = model_bytes(_relu_chain(elements, 1))
        chain = model_bytes(_relu_chain(elements, hops))
        pair = [_session(one, d.execution_provider, d.threads, None, spinning="during-run") for d in (src, dst)]
        inside = []
        for d in (src, dst):
            sess = _session(chain, d.execution_provider, d.threads, None)
            walls = timed_runs(partial(sess.run, None, {"x": x}), warmup, repeats)
            inside.append(statistics.median(walls) / hops)
            del sess
        hop = []
        for i in range(warmup + repeats):
            t = _pingpong_s(pair, x, hops)
            if i >= warmup:
                hop.append(t)
            tick()
        points.append((n, max(0.0, statistics.median(hop) - statistics.fmean(inside))))
    return tuple(points)


def _crossing_sizes(sizes: Sequence[int], cap: int = 16 << 20) -> tuple[int, ...]:
    """A few transfer sizes spanning the model's (smallest, median, largest; capped), for the crossing fit."""
    s = sorted(sizes)
    return tuple(sorted({min(cap, max(4, v)) for v in (s[0], s[len(s) // 2], s[-1])}))


def _profile_transfers(erun: EdgeRun, platform: Platform, repeats: int, warmup: int,
                       progress: Callable[[str, int], Callable[[], None]] | None) -> list[LinkFit]:
    """Fit ``latency + bytes / bandwidth`` per device pair from measured crossings (:func:`crossing_points`).

    Host-memory devices share tensors without a copy, so what a transfer costs is
    the crossing itself.  Pairs with the same settings (provider, threads, both
    ways) share one measurement.
    """
    sizes = _crossing_sizes(erun.sizes)
    dev = platform.device

    def settings(a: str, b: str) -> tuple[tuple[str, int], ...]:
        return tuple(sorted((dev[d].execution_provider, dev[d].threads) for d in (a, b)))

    classes = {settings(a, b): (a, b) for a, b in erun.pairs}
    tick = progress("transfers", len(classes) * len(sizes) * (warmup + repeats)) if progress else _noop
    points = {key: crossing_points(dev[a], dev[b], sizes, warmup, repeats, tick) for key, (a, b) in classes.items()}
    out = []
    for a, b in erun.pairs:
        measured = points[settings(a, b)]
        out.append(LinkFit(a, b, *_fit_link(measured), measured[0][1], measured))
    return out


def platform_key(platform: Platform) -> str:
    """Hash of what profiling depends on: the real devices' names and ORT settings."""
    data = [(d.name, d.execution_provider, d.threads) for d in real_devices(platform)]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------ store

_CSV_COLUMNS = ["task", "device", "median_s", "min_s", "max_s", "cv", "runs", "note"]


def profile_paths(folder: str, label: str, model_sha256: str, key: str) -> tuple[str, str]:
    """CSV and JSON paths of a stored profile."""
    stem = os.path.join(folder, f"{label}-{model_sha256[:12]}-{key[:8]}")
    return f"{stem}.csv", f"{stem}.json"


def save_profile(profile: Profile, folder: str, label: str) -> tuple[str, str]:
    """Write the profile's table (CSV) and metadata (JSON) atomically; returns their paths."""
    csv_path, json_path = profile_paths(folder, label, profile.model_sha256, profile.platform_key)
    table = pd.DataFrame([asdict(n) for n in profile.nodes], columns=_CSV_COLUMNS)
    write_text(csv_path, table.to_csv(index=False))
    meta = {k: v for k, v in asdict(profile).items() if k != "nodes"}
    meta["links"] = [{**asdict(l), "points": [list(p) for p in l.points]} for l in profile.links]
    meta["executor"] = None if profile.executor is None else {"call_s": dict(profile.executor.call_s),
                                                              "switch_s": profile.executor.switch_s,
                                                              "contention": profile.executor.contention}
    meta["format"] = PROFILE_FORMAT
    meta["table"] = os.path.basename(csv_path)
    write_json(json_path, meta)
    return csv_path, json_path


def load_profile(folder: str, label: str, model_sha256: str, platform: Platform, repeats: int) -> Profile | None:
    """The stored profile when everything it depends on matches, else None."""
    csv_path, json_path = profile_paths(folder, label, model_sha256, platform_key(platform))
    if not (os.path.isfile(csv_path) and os.path.isfile(json_path)):
        return None
    try:
        meta = read_json(json_path, "profile metadata")
    except HetschedError as exc:
        meta = {}
        print(f"hetsched: stored profile {json_path} is damaged ({exc}); measuring again", file=sys.stderr)
    if (not isinstance(meta, dict) or meta.get("format") != PROFILE_FORMAT or meta.get("model_sha256") != model_sha256
            or meta.get("platform_key") != platform_key(platform) or meta.get("ort_version") != ort.__version__
            or meta.get("host_cores") != (os.cpu_count() or 1) or meta.get("repeats") != repeats):
        return None
    try:
        table = pd.read_csv(csv_path, keep_default_na=False)
        nodes = tuple(NodeStat(str(r.task), str(r.device), float(r.median_s), float(r.min_s), float(r.max_s),
                               float(r.cv), int(r.runs), str(r.note)) for r in table.itertuples(index=False))
        links = tuple(LinkFit(l["src"], l["dst"], l["latency"], l["bandwidth"], l["boundary_overhead_s"],
                              tuple((int(a), float(b)) for a, b in l["points"])) for l in meta["links"])
        return Profile(meta["model_sha256"], meta["platform_key"], meta["platform_name"], meta["ort_version"],
                       meta["repeats"], meta["warmup"], meta["date"], meta["host_cores"], meta["runs"], nodes, links,
                       meta["whole_run_s"], meta["traced_run_s"],
                       None if meta.get("executor") is None else ExecutorCosts(meta["executor"]["call_s"],
                                                                              meta["executor"]["switch_s"],
                                                                              meta["executor"]["contention"]),
                       None if meta.get("drift") is None else float(meta["drift"]))
    except (KeyError, ValueError, TypeError, AttributeError, pd.errors.ParserError) as exc:
        # a damaged store is not the user's input: say so and measure again (the new profile replaces it)
        print(f"hetsched: stored profile {csv_path} is damaged ({type(exc).__name__}: {exc}); measuring again",
              file=sys.stderr)
        return None


def drifted(prof: Profile, change: float | None = None) -> bool:
    """Whether the host's load changed while ``prof`` was measured (or, given ``change``, since): its
    whole-model run moved by more than :data:`DRIFT_LIMIT`, on a model that runs for at least
    :data:`DRIFT_MIN_S`."""
    change = prof.drift if change is None else change
    return (change is not None and abs(change) > DRIFT_LIMIT
            and min(prof.whole_run_s.values(), default=0.0) >= DRIFT_MIN_S)


def get_profile(model: onnx.ModelProto, graph: TaskGraph, platform: Platform, *, folder: str = "profiles",
                label: str | None = None, repeats: int = 20, warmup: int = 3, force: bool = False,
                progress: Callable[[str, int], Callable[[], None]] | None = None) -> tuple[Profile, bool]:
    """A stored profile when it matches and still holds (``reused=True``), else a fresh one that is then stored.

    A stored profile is checked by one run of the whole model (:func:`check_change`):
    when the host runs it more than :data:`DRIFT_LIMIT` faster or slower than when
    it was profiled (another load, another machine state), every cost in it is off
    alike, and it is measured again.
    """
    label = label or graph.name
    data = model_bytes(model)
    sha = hashlib.sha256(data).hexdigest()
    if not force:
        stored = load_profile(folder, label, sha, platform, repeats)
        if stored is not None:
            change = check_change(data, stored, plan_profiling(graph, platform), repeats=repeats, warmup=warmup,
                                  progress=progress)
            if not drifted(stored, change):
                return stored, True
            print(f"hetsched: the whole model now runs {change:+.0%} against the stored profile of {stored.date} "
                  "(the host's load changed since); measuring again", file=sys.stderr)
    prof = profile_model(model, graph, platform, repeats=repeats, warmup=warmup, progress=progress)
    if drifted(prof):  # the host's load changed while profiling
        print(f"hetsched: the whole model's run time changed by {prof.drift:+.0%} between the start and the end of "
              "profiling (the host's load changed); measuring once more", file=sys.stderr)
        again = profile_model(model, graph, platform, repeats=repeats, warmup=warmup, progress=progress)
        prof = min(prof, again, key=lambda p: abs(p.drift or 0.0))
        if drifted(prof):
            print(f"hetsched: warning: the profile still drifted by {prof.drift:+.0%}; its predictions are off "
                  "by as much (profile again on a quieter host with --force)", file=sys.stderr)
    save_profile(prof, folder, label)
    return prof, False


# ------------------------------------------------------------------------------ problem

def problem_from_profile(graph: TaskGraph, platform: Platform, profile: Profile, name: str = "",
                         calibrate: bool = True) -> Problem:
    """A Problem with measured costs on real devices, modelled ones on simulated devices.

    With ``calibrate`` node costs are calibrated to the plain whole-model run
    (:meth:`Profile.calibrated`), so that a single-device schedule predicts it.  Links between
    real devices become the fitted ones, plus each crossing's share of the
    executor's costs (:meth:`ExecutorCosts.edge_s`: what the solvers can see of
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
    contended = ex.contended(platform) if ex is not None else frozenset()
    for d in real_devices(platform):
        scale = 1.0 + ex.contention if d.name in contended else 1.0
        for t in graph.tasks:
            if d.name in costs[t.name]:
                if (t.name, d.name) not in measured:
                    raise HetschedError(f"profile has no cost for task {t.name!r} on device {d.name!r}; re-profile")
                costs[t.name][d.name] = measured[(t.name, d.name)] * scale
    fitted = {(l.src, l.dst): replace(platform.link_table[(l.src, l.dst)], bandwidth=l.bandwidth,
                                      latency=l.latency + (ex.edge_s(platform, l.src, l.dst) if ex else 0.0))
              for l in profile.links}
    links = tuple(fitted.get((a, b), link) for (a, b), link in platform.link_table.items())
    plat = Platform(platform.name, platform.devices, links)
    return Problem(graph, plat, costs, name=name or graph.name, executor=profile.executor)
