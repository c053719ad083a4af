"""The ONNX Runtime runs that measure a profile (:mod:`scheduler.profiling` says what one is and plans them).

Node costs come from ONNX Runtime's profiler (``<node>_kernel_time`` events, µs) in
sessions with graph optimisations disabled, so that every event maps to a model
node; crossings between real devices are timed the way replay hands tensors over
(:func:`crossing_points`) and fitted as ``latency + bytes / bandwidth``; the
executor's per-segment call and switch costs come from replays of a fine-grained
placement (:func:`fit_executor`), the contention between cores from a model run
on both at once (:func:`measure_contention`), and the profile's drift from timing
the whole model again at the end (:func:`check_times`), whose mean with the node run's timing calibrates the
costs.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from functools import partial
from typing import Callable, Collection, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from .errors import HetschedError
from .executor import pin_thread, round_order, round_shares, session_call, timed_runs
from .graph import TaskGraph, subgraphs
from .inputs import Feeds
from .optimize import (IR_VERSION, ModelBytes, model_bytes, model_digest, random_inputs, session, session_data,
                       unpacked)
from .platform import Device, Platform
from .problem import ExecutorCosts, Problem
from .profiling import (EXECUTOR_PLACEMENTS, EdgeRun, LinkFit, NodeStat, Profile, ProfilingPlan, contention_pair,
                        plan_profiling, platform_key, problem_from_profile, real_devices)
from .replay import core_map, pool_cpus, predict_segments, prepare_replay, reference_run, replay, segment_durations
from .segments import ReplayError, Segment, cut
from .semantics import simulate


def _session(data: bytes, provider: str, threads: int, profile_dir: str | None,
             spinning: str = "always", cpus: Sequence[int] = (), packed: bool = True) -> ort.InferenceSession:
    """A profiling session with optimisations off (weight packing as ``packed``).

    Node costs are measured as a device runs alone (idle threads spinning, like
    plain ORT and a one-device replay); what a multi-device replay loses by
    stopping them between runs is part of the crossings and the executor's costs.
    """
    return session(data, "none", threads, provider, spinning=spinning, cpus=cpus, packed=packed,
                   profile_prefix=None if profile_dir is None else os.path.join(profile_dir, "ort"))


def _whole_runs(data: bytes, provider: str, threads: int, *, packed: bool, warmup: int, repeats: int, seed: int,
                feeds: Feeds | None, tick: Callable[[], None]) -> list[float]:
    """Wall times of the whole model in a fresh plain session of these settings, dropped on return (its
    spinning threads must not run beside the next one)."""
    sess = _session(data, provider, threads, None, packed=packed)
    return timed_runs(partial(session_call(sess), random_inputs(sess, seed, feeds)), warmup, repeats, tick)


PACKING_MARGIN = 0.03
"""Weight packing (ORT's default) stays on unless the model runs this much faster without it."""


def packing_choice(data: bytes, provider: str, threads: int, *, repeats: int, warmup: int, rounds: int = 2,
                   seed: int = 0, feeds: Feeds | None = None,
                   progress: Callable[[str, int], Callable[[], None]] | None = None) -> tuple[bool, list[float]]:
    """Whether sessions of these settings should run ``data`` with ONNX Runtime's weight packing on, and the
    wall times of the whole model so: the whole model timed with packing on and off (in at least two rounds,
    :func:`interleaved_runs`; one after the other when two sessions of it would not fit in :data:`KEEP_BYTES`),
    on unless off is faster by more than :data:`PACKING_MARGIN` at the median.  It depends on the model: off,
    the Siamese LSTM preset ran 12-14% faster on one thread, BERT-base 12% slower.  Profiling traces the device
    so, takes these times as its whole-model time, and replays run it so; a session given values that other
    sessions share runs unpacked whatever this says (:func:`~scheduler.executor.open_session`).
    """
    settings = (True, False)
    if _footprint(data) * len(settings) > KEEP_BYTES:
        walls = [_whole_runs(data, provider, threads, packed=packed, warmup=warmup, repeats=repeats, seed=seed,
                             feeds=feeds, tick=progress(f"packing x{threads}", warmup + repeats) if progress else _noop)
                 for packed in settings]
    else:
        sessions = [_session(data, provider, threads, None, packed=packed) for packed in settings]
        calls = [partial(session_call(sess), random_inputs(sess, seed, feeds)) for sess in sessions]
        walls = interleaved_runs(calls, warmup, repeats, max(2, rounds), progress, f"packing x{threads}")
    on, off = (statistics.median(w) for w in walls)
    packed = not off < on * (1.0 - PACKING_MARGIN)
    return packed, walls[0] if packed else walls[1]


def _end_trace(session: ort.InferenceSession) -> list[dict]:
    """Stop profiling and return the trace events (the trace file is removed)."""
    path = session.end_profiling()
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    finally:
        os.remove(path)


def _node_durations(events: Sequence[dict], repeats: int,
                    parents: Collection[str] = ()) -> tuple[dict[str, list[float]], list[float]]:
    """Per node, the kernel times (s) of the last ``repeats`` runs; and the whole-run times.

    ``parents``: the nodes that hold control-flow bodies.  ORT traces each run of a body's nodes too, inside
    its parent's time, under the body node's name or one ORT makes up for it: a node event that lies within
    a parent's event is left out (nodes run one after another here, so a parent's events do not overlap).
    """
    nodes = [(ev["name"].removesuffix("_kernel_time"), ev["ts"], ev["ts"] + ev["dur"]) for ev in events
             if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time")]
    spans = sorted((start, end) for name, start, end in nodes if name in parents)
    starts = [start for start, _ in spans]

    def inside_parent(start: float, end: float) -> bool:
        k = bisect.bisect_right(starts, start) - 1
        return k >= 0 and end <= spans[k][1] and (start, end) != spans[k]

    per_node: dict[str, list[float]] = {}
    for name, start, end in nodes:
        if not inside_parent(start, end):
            per_node.setdefault(name, []).append((end - start) * 1e-6)
    runs = [ev["dur"] * 1e-6 for ev in events if ev.get("cat") == "Session" and ev.get("name") == "model_run"]
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


TRACER_CHAIN = (256, 200)
"""The chain :func:`tracer_cost` times: Relus on 256 floats, 200 of them (0.3 µs each here)."""


def tracer_cost(provider: str, threads: int, profile_dir: str, repeats: int, warmup: int) -> tuple[float, float]:
    """What ORT's profiler adds per node in a session of these settings (s): inside each kernel event, and in
    all of a traced run; from a chain of tiny nodes (:data:`TRACER_CHAIN`) timed traced and plain, its nodes'
    own time being the plain run's share per node.  Each at least 0."""
    elements, length = TRACER_CHAIN
    data = _relu_chain(elements, length).SerializeToString()
    feed = {"x": np.ones(elements, np.float32)}
    run = _session(data, provider, threads, None).run
    plain = statistics.median(timed_runs(partial(run, None, feed), warmup, repeats)) / length
    del run  # its session's idle threads must not spin beside the traced session
    traced = _session(data, provider, threads, profile_dir)
    timed_runs(partial(traced.run, None, feed), warmup, repeats)
    per_node, runs = _node_durations(_end_trace(traced), repeats)
    kernel = statistics.median(v for samples in per_node.values() for v in samples)
    return max(0.0, kernel - plain), max(0.0, statistics.median(runs) / length - plain)


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


KEEP_BYTES = 4 << 30
"""The most the node runs' sessions may hold together (model bytes times runs) to be timed in rounds."""


def _footprint(data: bytes) -> int:
    """Bytes of a serialised model and the large values beside it."""
    return len(data) + sum(value.nbytes for _, value in getattr(data, "externals", ()))


def interleaved_runs(calls: Sequence[Callable[[], object]], warmup: int, repeats: int, rounds: int,
                     progress: Callable[[str, int], Callable[[], None]] | None = None,
                     label: str = "whole model") -> list[list[float]]:
    """Time every call ``repeats`` times, spread over ``rounds`` rounds in a rotating order
    (:func:`~scheduler.executor.round_order`), each call's turn after ``warmup`` untimed runs: the wall
    times of each call.

    Each device's costs are calibrated to its whole-model time; timed one device after the other, a change
    in the host's load between them skews their ratio (ddddocr's detector here: the 2-thread session -35%
    against its replay, the 1-thread one +16%); in rounds, every device sees the same load.  The untimed
    runs also take what the previous session's spinning pool threads cost.

    >>> [len(w) for w in interleaved_runs([lambda: None, lambda: None], warmup=1, repeats=5, rounds=2)]
    [5, 5]
    """
    shares = round_shares(repeats, rounds)
    tick = progress(label, len(calls) * (len(shares) * warmup + repeats)) if progress else _noop
    walls: list[list[float]] = [[] for _ in calls]
    for r, share in enumerate(shares):
        for k in round_order(len(calls), r):
            walls[k] += timed_runs(calls[k], warmup, share, tick)
    return walls


def profile_model(model: onnx.ModelProto | ModelBytes, graph: TaskGraph, platform: Platform, *, repeats: int = 20,
                  warmup: int = 3, seed: int = 0, progress: Callable[[str, int], Callable[[], None]] | None = None,
                  feeds: Feeds | None = None, model_sha256: str | None = None, rounds: int = 1) -> Profile:
    """Measure every node on every real device and every transfer class, following the plan.

    ``model`` must be the model ``graph`` was imported from (with fixed input shapes); every run takes the
    given ``feeds`` (the user's inputs), or random inputs from ``seed``.
    ``progress(label, total)`` may return a callable that is ticked once per ORT run.  ``model_sha256``:
    :func:`~scheduler.optimize.model_digest` when the caller has it (computed otherwise: seconds on a
    large model).  ``rounds``: the whole-model timings that calibrate each device's costs
    (:meth:`~scheduler.profiling.Profile.calibrated`) are spread over that many rounds of every node run
    (:func:`interleaved_runs`); 1 takes each from its packing choice (:func:`packing_choice`), timed right
    before its trace.
    """
    if repeats < 1 or warmup < 0:
        raise HetschedError("profiling needs repeats >= 1 and warmup >= 0")
    plan = plan_profiling(graph, platform)
    data = session_data(model)  # the values taken out once, for every session and replay below
    sha256 = model_sha256 or model_digest(data)
    task_names = {t.name for t in graph.tasks}
    # If, Loop, Scan: their bodies run inside them
    parents = {n.name for n in unpacked(data)[0].graph.node if subgraphs(n)}
    nodes: list[NodeStat] = []
    whole: dict[str, float] = {}
    traced: dict[str, float] = {}
    tracer: dict[str, tuple[float, float]] = {}
    no_packing: list[str] = []  # the devices traced with weight packing off
    # each run's whole model is timed in rounds over the runs with the profiler off in its session when their
    # sessions fit in memory together, else as the packing choice timed it in a plain session of the same
    # settings, right before its trace (a session as fast as the traced one with its profiler off: 3.65
    # against 3.62 ms on randwire), not once more (resnet50 on cpu: 4 s of 34 s of profiling)
    together = rounds > 1 and len(plan.node_runs) > 1 and _footprint(data) * len(plan.node_runs) <= KEEP_BYTES
    calls: list[Callable[[], object]] = []
    walls: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="hetsched-prof-") as tmp:
        for run in plan.node_runs:
            packed, plain = packing_choice(data, run.provider, run.threads, repeats=repeats, warmup=warmup,
                                           rounds=rounds, seed=seed, feeds=feeds, progress=progress)
            no_packing += [] if packed else list(run.devices)
            sess = _session(data, run.provider, run.threads, tmp, packed=packed)
            tick = progress(f"nodes {run.provider.removesuffix('ExecutionProvider')} x{run.threads}",
                            warmup + repeats) if progress else _noop
            call = partial(session_call(sess), random_inputs(sess, seed, feeds))
            timed_runs(call, warmup, repeats, tick)
            per_node, traced_runs = _node_durations(_end_trace(sess), repeats, parents)
            if together:
                calls.append(call)
            else:
                walls.append(plain)
            del sess, call  # unless kept, its (spinning) threads must not run beside the next session
            for dev in run.devices:
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
            tracer.update(dict.fromkeys(run.devices, tracer_cost(run.provider, run.threads, tmp, repeats, warmup)))
        if calls:
            walls = interleaved_runs(calls, warmup, repeats, rounds, progress)
            del calls
        for run, wall in zip(plan.node_runs, walls):
            whole.update(dict.fromkeys(run.devices, statistics.median(wall)))
        links = []
        for erun in plan.edge_runs:
            if (erun.src_provider, erun.dst_provider) != ("CPUExecutionProvider", "CPUExecutionProvider"):
                raise HetschedError(f"transfer profiling between {erun.src_provider} and {erun.dst_provider} "
                                    "is not supported yet; give that link in the platform and mark one side simulated")
            links += _profile_transfers(erun, platform, repeats, warmup, progress)
    prof = Profile(
        model_sha256=sha256,
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
        tracer_s=tracer,
        unpacked=tuple(no_packing),
    )
    if plan.executor_runs:
        tick = progress("contention", contention_ticks(repeats, warmup)) if progress else _noop
        contention = measure_contention(data, platform, repeats=repeats, warmup=warmup, seed=seed, tick=tick,
                                        feeds=feeds, unpacked=no_packing)
        prof = replace(prof, executor=ExecutorCosts({}, 0.0, contention))
    if plan.executor_runs and len(real_devices(platform)) > 1:
        try:
            prof = replace(prof, executor=fit_executor(data, problem_from_profile(graph, platform, prof),
                                                       repeats=repeats, warmup=warmup, seed=seed,
                                                       progress=progress, feeds=feeds))
        except ReplayError:  # the random placement cuts where the model cannot be cut (a non-tensor
            pass  # value): no call or switch costs then; placements are predicted by the schedule alone
    if plan.check_runs:  # each node run's whole model again, same settings: did the host's load change?
        # Its time is then the mean of the two timings, seconds apart: a two-thread session here runs slow for
        # stretches of 0.4-11 s (benchmarks/bench_host_phases.py), and one timing lands in one speed or the
        # other (benchmarks/bench_calibration.py, 12 profiles against the time a replay's rounds measure right
        # after: siamese-lstm on both cores 14.3% off at the median from the first timing, 12.7% from the mean)
        end = check_times(data, prof, plan, repeats=repeats, warmup=warmup, seed=seed, progress=progress, feeds=feeds)
        prof = replace(prof, drift=largest_change(prof.whole_run_s, end), node_run_s=dict(prof.whole_run_s),
                       whole_run_s={d: (t + end[d]) / 2 if d in end else t for d, t in prof.whole_run_s.items()})
    return prof


def check_times(model: onnx.ModelProto | ModelBytes, prof: Profile, plan: ProfilingPlan, *, repeats: int,
                warmup: int, seed: int = 0, progress: Callable[[str, int], Callable[[], None]] | None = None,
                feeds: Feeds | None = None) -> dict[str, float]:
    """The check runs: the whole model timed now with each node run's settings (device -> median s), for the
    runs that ``prof`` timed."""
    now: dict[str, float] = {}
    data = session_data(model)
    for run in plan.node_runs:
        if prof.whole_run_s.get(run.devices[0], 0.0) <= 0:
            continue
        tick = progress(f"check x{run.threads}", warmup + repeats) if progress else _noop
        now.update(dict.fromkeys(run.devices, statistics.median(_whole_runs(
            data, run.provider, run.threads, packed=run.devices[0] not in prof.unpacked, warmup=warmup,
            repeats=repeats, seed=seed, feeds=feeds, tick=tick))))
    return now


def largest_change(then: Mapping[str, float], now: Mapping[str, float]) -> float | None:
    """``now / then - 1`` of the largest size over the devices timed both times (None when none).

    >>> largest_change({"a": 2e-3, "b": 1.0}, {"a": 1e-3, "b": 1.2})
    -0.5
    """
    return max((now[d] / then[d] - 1.0 for d in now if then.get(d, 0.0) > 0), key=abs, default=None)


def check_change(model: onnx.ModelProto | ModelBytes, prof: Profile, plan: ProfilingPlan, *, repeats: int, warmup: int,
                 seed: int = 0, progress: Callable[[str, int], Callable[[], None]] | None = None,
                 feeds: Feeds | None = None) -> float | None:
    """The whole model timed now with each node run's settings (:func:`check_times`), against ``prof``'s
    timing of it (``now / then - 1``); the change of largest size (None when none was timed).  Each run,
    not the first alone: a run on every core is the one that another load on the host starves (a two-thread
    profile of the Siamese LSTM timed 8.04 ms, against 5.46 an hour later, while its one-thread check said
    -5%)."""
    return largest_change(prof.whole_run_s, check_times(model, prof, plan, repeats=repeats, warmup=warmup, seed=seed,
                                                        progress=progress, feeds=feeds))


def fit_executor(model: onnx.ModelProto | ModelBytes, problem: Problem, *, repeats: int = 20, warmup: int = 3,
                 seed: int = 0, progress: Callable[[str, int], Callable[[], None]] | None = None,
                 feeds: Feeds | None = None, placements: int = EXECUTOR_PLACEMENTS) -> ExecutorCosts:
    """Fit the executor's per-segment costs from replays of ``placements`` (default
    :data:`~scheduler.profiling.EXECUTOR_PLACEMENTS`) random placements over the real devices.

    A random placement cuts the model into many segments on every device and
    passes cores between devices often.  Each device's call cost and one cost per
    boundary byte are fitted (:func:`fit_calls`) to the segments of every
    placement: their measured minus predicted time
    (:func:`scheduler.replay.segment_durations` without calls: the problem's
    contention stays) against the bytes they take in and give back (randwire at
    ImageNet size here: about 40 µs per MB beyond a call of about 40 µs).  Each
    call also holds the median time its worker takes from one segment to the next
    that was already waiting (the replay's ``dispatch_s``,
    :func:`scheduler.replay.worker_gaps`: 7-22 µs here, which a placement of many
    segments on one core pays each time).  The switch cost is the median over the
    placements of the one that makes :func:`scheduler.replay.predict_segments`
    meet that placement's measured makespan (found by bisection): a switch costs
    more than its gap, since the segment after it also runs slower (another
    session's threads wake up, the caches hold the other device's data).
    """
    reals = {d.name for d in real_devices(problem.platform)}
    contention = problem.executor.contention if problem.executor is not None else 0.0
    runs = []
    reference = reference_run(model, seed, problem.label, feeds)  # one run of the whole model serves all
    for k in range(placements):
        rng = np.random.default_rng(seed + k)
        placement = {}
        for t in problem.tasks:
            allowed = [d for d in problem.allowed(t) if d in reals] or list(problem.allowed(t))
            placement[t] = allowed[int(rng.integers(len(allowed)))]
        schedule = simulate(problem, placement)
        label = f"executor {k + 1}/{placements}"
        result = replay(model, problem, schedule, repeats=repeats, warmup=warmup, baselines=False, seed=seed,
                        progress=(lambda _, total, label=label: progress(label, total)) if progress else None,
                        prepared=prepare_replay(model, problem, schedule, reference))
        runs.append((cut(problem, schedule), result))

    def median(values: Sequence[float | None]) -> float:
        known = [v for v in values if v is not None]
        return max(0.0, statistics.median(known)) if known else 0.0

    rows = []  # (a replayed segment, its predicted time without calls, its boundary bytes)
    for segments, result in runs:
        work = segment_durations(problem, segments, calls=False)
        size = {seg.index: seg.boundary_bytes for seg in segments}
        rows += [(g, work[g["index"]], size[g["index"]]) for g in result["segments"]]
    call, byte_s = fit_calls([(g["device"], g["measured_median_s"] - w, b) for g, w, b in rows], MAX_BYTE_S)
    call = {d: call.get(d, 0.0) + median([g["dispatch_s"] for g, _, _ in rows if g["device"] == d])
            for d in sorted(reals)}
    switches = [_fit_switch(problem, segments, result["measured_makespan_s"], call, contention, byte_s)
                for segments, result in runs]
    return ExecutorCosts(call, statistics.median(switches), contention, byte_s)


MAX_BYTE_S = 1e-7
"""The most a boundary byte may cost a segment (s): 10 MB/s, slower than a USB 2.0 bus, let alone a copy between
cores (fits here give 2e-11 to 3.4e-10)."""


def fit_calls(rows: Sequence[tuple[str, float, int]], most: float = math.inf) -> tuple[dict[str, float], float]:
    """A call cost per device and one cost per boundary byte that fit segments' excess times: rows of
    (device, measured minus predicted work (s), boundary bytes), least absolute deviations.

    ``excess = call[device] + byte_s * bytes``: the slope is shared (copying a
    tensor out of ORT and reading it on another core costs the same on every
    core), found by golden-section search (the deviations are convex in it), each
    call the median of what the slope leaves.  Least absolute deviations, since a
    burst of load on a shared host throws single segments far off.  Neither
    is negative, and the slope is at most ``most`` (:func:`fit_executor` gives
    :data:`MAX_BYTE_S`): where the segments' sizes differ by a few bytes (a
    model of scalars and short vectors), noise alone would fit any slope.

    >>> call, byte_s = fit_calls([("a", 1e-4 + 1e-9 * b, b) for b in (0, 10**5, 10**6)])
    >>> round(call["a"], 9), round(byte_s * 1e9, 4)
    (0.0001, 1.0)
    >>> round(fit_calls([("a", 1e-5, 4), ("a", 2e-3, 8), ("a", 3e-3, 12)], MAX_BYTE_S)[1] / MAX_BYTE_S, 6)
    1.0
    """
    devices = sorted({d for d, _, _ in rows})
    excess = {d: np.array([e for dd, e, _ in rows if dd == d]) for d in devices}
    size = {d: np.array([b for dd, _, b in rows if dd == d], dtype=float) for d in devices}

    def spread(slope: float) -> float:
        rest = [excess[d] - slope * size[d] for d in devices]
        return float(sum(np.abs(r - np.median(r)).sum() for r in rest))

    every = np.concatenate([excess[d] for d in devices]) if devices else np.zeros(0)
    gaps = np.diff(np.unique(np.concatenate([size[d] for d in devices]))) if devices else np.zeros(0)
    # the best line passes through two rows: no steeper than the whole range over the closest two sizes
    lo, hi = 0.0, min(float(every.max() - every.min()) / float(gaps.min()), most) if gaps.size else 0.0
    golden = (5 ** 0.5 - 1) / 2
    for _ in range(200 if hi > 0 else 0):
        a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
        lo, hi = (lo, b) if spread(a) <= spread(b) else (a, hi)
    slope = (lo + hi) / 2
    if spread(0.0) <= spread(slope) * (1 + 1e-9):  # bytes that explain nothing: no slope
        slope = 0.0
    return {d: max(0.0, float(np.median(excess[d] - slope * size[d]))) for d in devices}, slope


def _fit_switch(problem: Problem, segments: Sequence[Segment], measured: float, call: Mapping[str, float],
                contention: float, byte_s: float = 0.0) -> float:
    """The switch cost that makes :func:`scheduler.replay.predict_segments` of ``segments`` meet ``measured``
    (bisection; 0 when the calls alone reach it)."""

    def predicted(switch: float) -> float:
        return predict_segments(replace(problem, executor=ExecutorCosts(call, switch, contention, byte_s)),
                                segments)

    lo, hi = 0.0, 1e-4
    if predicted(0.0) >= measured:
        return 0.0
    while predicted(hi) < measured and hi < 1.0:
        lo, hi = hi, 2 * hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if predicted(mid) < measured else (lo, mid)
    return hi


SHARED_SESSION_BYTES = 256 << 20
"""Model size from which :func:`measure_contention` runs both devices in one session (their runs' allocations
then share one arena, which a model of µs kernels would feel)."""


CONTENTION_ROUNDS = 5
"""Short fits, each the model alone and then beside itself, whose median :func:`measure_contention` takes:
one fit's two halves lie a fraction of a second apart, so a change of the host's load between them moves few
fits.  Standard deviation (worst fit) of 24 fits of 20 runs a half in all, one round against five
(``benchmarks/bench_contention.py``): ``siamese-lstm`` (10 ms a run) 0.138 (0.455) against 0.038 (0.127), and
in an earlier run 0.142 (0.571) against 0.044 (0.178); beside an on-off spinning neighbour 0.073 (0.308)
against 0.099 (0.394), earlier 0.178 (0.533) against 0.037 (0.137); randwire-imagenet (50 ms), 8 fits, 0.226
(0.640) against 0.027 (0.067).  The halves of one block timed in turn, rounds pooled, were no steadier."""


def contention_ticks(repeats: int, warmup: int, rounds: int = CONTENTION_ROUNDS) -> int:
    """The runs :func:`measure_contention` ticks for (its first worker's, warm-up runs included)."""
    return 2 * (warmup + (len(round_shares(repeats, rounds)) - 1) * min(warmup, 1) + repeats)


def measure_contention(data: bytes, platform: Platform, *, repeats: int = 20, warmup: int = 3, seed: int = 0,
                       tick: Callable[[], None] = lambda: None, feeds: Feeds | None = None,
                       unpacked: Collection[str] = (), rounds: int = CONTENTION_ROUNDS) -> float:
    """How much slower the model runs on a device while another runs it beside it on other cores.

    The whole model on the two devices of :func:`contention_pair` at once, each
    worker pinned to its device's cores as the replay pins them, against the first
    device alone: median over median, minus 1, at least 0, the median of ``rounds`` such fits, each of its
    share of the ``repeats`` runs (:data:`CONTENTION_ROUNDS`; the first after ``warmup`` runs, the next after
    one, the halves' order alternating).  Two devices that
    share caches and memory bandwidth slow each other down; what the node
    profile (one device at a time) cannot see.  0 without such a pair.  The GIL is handed
    over as quickly as the replay's executor hands it (else two threads calling ORT wait
    for each other and a µs model looks several times slower beside another).  A model of
    :data:`SHARED_SESSION_BYTES` or more runs in one session on both devices when they have the same
    settings: each session holds the weights, and a second one was profiling's peak in memory (a 0.5 GiB MLP:
    4.8x its size, 3.8x without).  The devices in ``unpacked`` run with weight packing off
    (:func:`packing_choice`).
    """
    pair = contention_pair(platform)
    if pair is None:
        return 0.0
    cpus = core_map(platform)
    settings = [(d.execution_provider, d.threads, pool_cpus(cpus, d), d.name not in unpacked) for d in pair]
    if settings[0] == settings[1] and _footprint(data) >= SHARED_SESSION_BYTES:
        settings = settings[:1]  # one session for both workers (ORT runs a session from several threads)
    sessions = [_session(data, provider, threads, None, spinning="during-run", cpus=pool, packed=packed)
                for provider, threads, pool, packed in settings]
    feeds = random_inputs(sessions[0], seed, feeds)
    calls = [session_call(sessions[min(k, len(sessions) - 1)]) for k in range(2)]

    def timed(workers: int, warm: int, share: int) -> list[float]:
        times: list[list[float]] = [[] for _ in range(workers)]
        start = threading.Barrier(workers)

        def worker(k: int) -> None:
            pin_thread(cpus.get(pair[k].name, ()))
            start.wait()
            times[k] = timed_runs(partial(calls[k], feeds), warm, share, tick if k == 0 else _noop)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return [t for ts in times for t in ts]

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    fits = []
    try:
        for r, share in enumerate(round_shares(repeats, rounds)):
            warm = warmup if r == 0 else min(warmup, 1)
            halves = {k: timed(k + 1, warm, share) for k in round_order(2, r)}  # alone (0), beside (1)
            fits.append((halves[0], halves[1]))
    finally:
        sys.setswitchinterval(switch)
    return contention_of(fits)


def contention_of(fits: Sequence[tuple[Sequence[float], Sequence[float]]]) -> float:
    """The contention of short fits, each the wall times of the model alone and beside itself: the median over
    the fits of median over median, minus 1, at least 0.  A fit taken while the host's load changed is
    outvoted, where pooling the halves compares one phase's times with another's.

    >>> contention_of([([1.0], [1.1]), ([1.0], [1.1]), ([2.0], [2.2]), ([2.0], [1.0]), ([2.0], [1.0])])
    0.1...
    """
    ratios = [statistics.median(both) / statistics.median(alone) for alone, both in fits
              if statistics.median(alone) > 0]
    return max(0.0, statistics.median(ratios) - 1.0) if ratios else 0.0


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
