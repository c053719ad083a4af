"""Replay a schedule on ONNX Runtime: run the parts of the model per device, check and time them, and predict
what that should take.

The model is cut into segments by :mod:`scheduler.segments`.  Running
(:mod:`scheduler.executor`, the same code ``--export`` ships as the stand-alone
runner): one ONNX Runtime session per segment with its device's settings; one
worker thread per device runs its segments in schedule order, each starting when
its inputs exist and every earlier segment on its resources has finished
(``session.run`` releases the GIL, so devices on separate cores overlap).
Simulated devices run their segments on the CPU for the values and are charged
their modelled time on a virtual clock; when any device is simulated the
reported makespan is that virtual timeline (measured durations for real
segments, modelled ones for simulated segments and their links).

Example
-------
>>> from scheduler.pipeline import build_problem, load_graph
>>> from scheduler.semantics import simulate
>>> model, graph = load_graph("mlp")
>>> problem = build_problem("mlp")
>>> s = simulate(problem, {t: "cpu0" for t in problem.tasks})
>>> predict_replay(problem, s) > 0
True
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .executor import Part, SegmentRunner, Timing, session_call, timed_runs
from .inputs import Feeds
from .optimize import ModelBytes, as_array, observed_run, session, session_bytes, session_data, unpacked
from .platform import Device, Platform, usable_cpus
from .problem import Problem
from .schedule import Schedule
from .segments import ReplayError, Segment, SegmentModel, build_segments, cut
from .semantics import segment_timeline


# ------------------------------------------------------------------------------ running

def session_settings(problem: Problem, parts: Sequence[SegmentModel]) -> list[dict[str, Any]]:
    """Per segment, the ORT settings it runs with (in replay, and in an exported runner).

    Its device's threads and execution provider (a simulated device: one CPU
    thread, for the values only), and the CPUs of a device that holds some of
    the host's cores (:func:`core_map`) when it has a thread on each.  Idle ORT
    threads spin (busy-wait) by default: right for one device alone, wrong
    between runs when devices share cores (a spinning pool steals the core
    another device's worker needs).  Weight packing is off on the devices profiling measured faster so
    (``problem.executor.unpacked``).
    """
    spinning = "always" if len({p.segment.device for p in parts}) == 1 else "during-run"
    cpus = core_map(problem.platform)
    out = []
    for p in parts:
        dev = problem.platform.device[p.segment.device]
        settings: dict[str, Any] = {"threads": 1 if dev.simulated else dev.threads, "spinning": spinning,
                                    "execution_provider": "CPUExecutionProvider" if dev.simulated
                                    else dev.execution_provider}
        pool = pool_cpus(cpus, dev)
        if pool:
            settings["cpus"] = list(pool)
        if problem.executor is not None and dev.name in problem.executor.unpacked:
            settings["packed"] = False
        out.append(settings)
    return out


def pool_cpus(cpus: Mapping[str, tuple[int, ...]], device: Device) -> tuple[int, ...]:
    """The CPUs of :func:`core_map` (``cpus``) that ``device``'s sessions keep their threads on: one per thread
    (the calling worker the first), else none."""
    own = cpus.get(device.name, ())
    return own if len(own) == device.threads > 1 and not device.simulated else ()


def shared_values(datas: Sequence[ModelBytes]) -> dict[str, np.ndarray]:
    """The large values (beside the bytes) that two or more of the segments ``datas`` read, by name, of numpy's
    own dtypes (``ml_dtypes`` ones, bfloat16 and float8, need ONNX's helper, which the runner does without):
    each segment's session reads them where they lie (:func:`scheduler.executor.open_session`), in
    replay and in an exported runner alike.

    >>> a, b = ModelBytes(b""), ModelBytes(b"")
    >>> w = np.zeros(4, np.float32)
    >>> a.externals, b.externals = (("w", w), ("u", w)), (("w", w),)
    >>> list(shared_values([a, b]))
    ['w']
    >>> import ml_dtypes
    >>> a.externals = b.externals = (("w", w.astype(ml_dtypes.bfloat16)),)
    >>> shared_values([a, b])
    {}
    """
    readers: dict[str, list[np.ndarray]] = {}
    for data in datas:
        for name, value in getattr(data, "externals", ()):
            readers.setdefault(name, []).append(value)
    return {name: values[0] for name, values in readers.items()
            if len(values) > 1 and values[0].dtype.isbuiltin == 1}


def segment_data(parts: Sequence[SegmentModel]) -> list[ModelBytes]:
    """What each built segment's session is made of."""
    return [session_bytes(p.model) if p.data is None else p.data for p in parts]


def segment_sessions(problem: Problem, parts: Sequence[SegmentModel], opt_level: str = "disable",
                     spinning: str | None = None) -> list[Any]:
    """One ONNX Runtime session per built segment with its :func:`session_settings` (``spinning`` overrides
    theirs), the values segments share held once (:func:`shared_values`)."""
    datas = segment_data(parts)
    shared = shared_values(datas)
    return [session(data, opt_level, s["threads"], s["execution_provider"], spinning=spinning or s["spinning"],
                    cpus=s.get("cpus", ()), label=f"segment {p.segment.index}", shared=shared,
                    packed=s.get("packed", True))
            for p, data, s in zip(parts, datas, session_settings(problem, parts))]


def core_map(platform: Platform) -> dict[str, tuple[int, ...]]:
    """OS CPUs per real CPU-provider device: its resources taken as cores, in platform order, and matched to
    the CPUs this process may use; when there are more resources than CPUs, nothing is pinned.

    A device of one core keeps its worker there.  A device of several, the whole
    host's too, gives its worker the first and its sessions' pool threads the
    others (:func:`session_settings`), so that they never meet on one core: left
    free, the pool thread was woken onto the core where the worker waited for
    it, spinning, until the OS took the core away a few ms later (PP-OCRv4's
    detector replayed in 4.4 ms or 6.9 ms by the luck of where threads landed,
    `randwire-imagenet`'s `heft` placement in 30.9-35.7 ms; pinned, 4.4-4.5 and
    30.6-31.5 ms, 2026-12-02).
    """
    cpu_devices = [d for d in platform.devices
                   if not d.simulated and d.execution_provider == "CPUExecutionProvider"]
    cores = list(dict.fromkeys(r for d in cpu_devices for r in d.resources))
    available = usable_cpus()
    if not cores or len(cores) > len(available):
        return {}
    cpu_of = dict(zip(cores, available))
    return {d.name: tuple(cpu_of[r] for r in d.resources) for d in cpu_devices}


def runner_parts(problem: Problem, parts: Sequence[SegmentModel]) -> list[Part]:
    """The executor's view of the segments: each waits for the earlier segments on any of its resources,
    and runs on its device's cores (:func:`core_map`)."""
    out, queue_on, cpus = [], {}, core_map(problem.platform)
    for p in parts:
        resources = problem.platform.device[p.segment.device].resources
        after = sorted({q for r in resources for q in queue_on.get(r, [])})
        for r in resources:
            queue_on.setdefault(r, []).append(p.segment.index)
        out.append(Part(p.segment.index, p.segment.device, p.inputs, p.outputs, tuple(after),
                        cpus.get(p.segment.device, ())))
    return out


def _timeline(problem: Problem, segments: Sequence[Segment],
              durations: Mapping[int, float]) -> dict[int, tuple[float, float]]:
    """(start, finish) per segment index: :func:`scheduler.semantics.segment_timeline` in scheduled order."""
    ordered = sorted(segments, key=lambda q: q.start)
    spans = segment_timeline(problem, [(seg.device, seg.tasks) for seg in ordered],
                             [durations[seg.index] for seg in ordered])
    return {seg.index: span for seg, span in zip(ordered, spans)}


def predict_replay(problem: Problem, schedule: Schedule) -> float:
    """:func:`predict_segments` of the segments ``schedule`` is cut into."""
    return predict_segments(problem, cut(problem, schedule))


def segment_durations(problem: Problem, segments: Sequence[Segment], calls: bool = True) -> dict[int, float]:
    """How long each segment should run in a replay (s): its tasks' costs, with the contention between
    cores charged for the time another device actually works beside it, plus its session call and the
    bytes it takes in and gives back (``calls``; :class:`~scheduler.problem.ExecutorCosts`).

    Costs of contended devices (:meth:`ExecutorCosts.contended`) hold the full
    slow-down (the solvers' view); here it is taken out and charged again in
    proportion to the segment's overlap with work on other contended devices,
    found by composing the timeline a few times (a fixed point; overlaps move little).
    """
    ex = problem.executor
    call = {seg.index: ex.call_s.get(seg.device, 0.0) + ex.byte_s * seg.boundary_bytes
            if ex is not None and calls else 0.0 for seg in segments}
    contended = ex.contended(problem.platform) if ex is not None else frozenset()
    rate = 1.0 + (ex.contention if ex is not None else 0.0)
    base = {seg.index: seg.predicted_s / (rate if seg.device in contended else 1.0) for seg in segments}
    durations = {seg.index: seg.predicted_s + call[seg.index] for seg in segments}
    busy = [seg for seg in segments if seg.device in contended]
    if not busy:
        return durations
    devices = sorted({seg.device for seg in busy})
    apart = np.array([[not problem.platform.shares_resource(a, b) for b in devices] for a in devices])
    kind = np.array([devices.index(seg.device) for seg in busy])
    work = np.array([base[seg.index] for seg in busy])
    fixed = np.array([call[seg.index] for seg in busy])
    for _ in range(4):
        span = _timeline(problem, segments, durations)
        a0, a1 = (np.array([span[seg.index][k] for seg in busy]) for k in (0, 1))
        beside = np.concatenate([_overlaps(a0[rows], a1[rows], a0, a1, apart[np.ix_(kind[rows], kind)])
                                 for rows in np.array_split(np.arange(len(busy)), -(-len(busy) // 512))])
        length = a1 - a0
        share = np.where(length > 0, np.minimum(1.0, beside / np.where(length > 0, length, 1.0)), 0.0)
        durations.update(zip((seg.index for seg in busy), (work * (1.0 + (rate - 1.0) * share) + fixed).tolist()))
    return durations


def _overlaps(s0: np.ndarray, s1: np.ndarray, a0: np.ndarray, a1: np.ndarray, apart: np.ndarray) -> np.ndarray:
    """For each span ``(s0, s1)``, the time spans ``(a0, a1)`` overlap it, summed over those ``apart`` marks
    (a row per span: a device that shares no core with its own); rows at a time, so that a placement of
    thousands of segments never holds all pairs at once."""
    overlap = np.minimum.outer(s1, a1) - np.maximum.outer(s0, a0)
    return np.where(apart, np.maximum(overlap, 0.0), 0.0).sum(axis=1)


def predict_segments(problem: Problem, segments: Sequence[Segment]) -> float:
    """The makespan the replay executor should measure for these segments (s).

    Node costs and transfers as the schedule has them, plus what the executor adds
    per segment and per overlap (``problem.executor``: a session call per segment,
    a switch cost when a core passes between devices, the contention between
    cores working at once; :func:`segment_durations`), which the task-level
    schedule cannot see.  Without executor costs it is the schedule's makespan
    re-composed by segment.
    """
    span = _timeline(problem, segments, segment_durations(problem, segments))
    return max((f for _, f in span.values()), default=0.0)


def with_samples(result: Mapping[str, Any], samples: Sequence[float]) -> dict[str, Any]:
    """``result`` (a ``replay.json`` structure) measured by ``samples`` (makespans, s): the median,
    its spread, the prediction errors and the samples themselves (so that rounds can be pooled)."""
    measured = statistics.median(samples)
    out = dict(result)
    out.update(repeats=len(samples), measured_makespan_s=measured, measured=_summary(samples),
               samples_s=list(samples))
    for error, key in (("prediction_error", "predicted_makespan_s"), ("replay_prediction_error", "predicted_replay_s")):
        predicted = out.get(key)
        out[error] = (measured - predicted) / predicted if predicted else None
    return out


def _summary(samples: Sequence[float]) -> dict[str, float]:
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "spread": (max(samples) - min(samples)) / statistics.median(samples) if statistics.median(samples) else 0.0}


@dataclass(frozen=True)
class Reference:
    """The whole model's run that replays check against: its inputs, its outputs, every tensor's type, and
    whether the inputs are the user's (``given``) rather than random."""

    feeds: Mapping[str, np.ndarray]
    expected: Mapping[str, np.ndarray]
    types: Mapping[str, onnx.ValueInfoProto]
    given: bool = False


def reference_run(model: onnx.ModelProto | ModelBytes, seed: int = 0, label: str = "model",
                  feeds: Feeds | None = None) -> Reference:
    """The user's inputs (``feeds``), else random ones (``seed``), and one run of ``model`` on them
    (:func:`scheduler.optimize.observed_run`)."""
    types, expected, inputs = observed_run(model, feeds, seed, label=label)
    return Reference(inputs, expected, types, feeds is not None)


@dataclass(frozen=True)
class PreparedReplay:
    """A schedule cut and built into segment models: what every round of timing it reuses (building a large
    model's segments and running the reference took 28 s per candidate and round on GPT-2 small)."""

    reference: Reference
    segments: tuple[Segment, ...]
    parts: tuple[SegmentModel, ...]


def prepare_replay(model: onnx.ModelProto | ModelBytes, problem: Problem, schedule: Schedule,
                   reference: Reference | None = None, seed: int = 0,
                   shared: dict[str, np.ndarray] | None = None) -> PreparedReplay:
    """Cut ``schedule`` and build its segments, against ``reference`` (one run of ``model``, made when not
    given), each as a session takes it (:attr:`SegmentModel.data`), its large values in ``shared``: one
    array per value for all the schedules of ``model`` prepared with one ``shared`` (each candidate of a
    ``run`` held a copy of the model's values).  ``model`` may be what
    :func:`~scheduler.optimize.session_data` made of one: its values are then the arrays it holds, and
    ``hetsched run`` holds the optimised model once, not as a proto and its values again."""
    segments = cut(problem, schedule)
    reference = reference or reference_run(model, seed, problem.label)
    proto, values = unpacked(model)
    shared = {} if shared is None else shared
    shared.update(values)
    parts = []
    for p in build_segments(proto, problem, segments, reference.types):
        data = session_bytes(p.model, shared=shared)
        parts.append(replace(p, model=onnx.ModelProto.FromString(data), data=data))
    return PreparedReplay(reference, tuple(segments), tuple(parts))


def replay(model: onnx.ModelProto | ModelBytes, problem: Problem, schedule: Schedule, *, repeats: int = 20,
           warmup: int = 3, opt_level: str = "disable", tolerance: float = 1e-4, seed: int = 0, baselines: bool = True,
           original: onnx.ModelProto | ModelBytes | None = None, prepared: PreparedReplay | None = None,
           progress: Callable[[str, int], Callable[[], None]] | None = None,
           feeds: Feeds | None = None) -> dict[str, Any]:
    """Cut, build, run and time ``schedule`` on ``model``; the result is the ``replay.json`` structure.

    ``model`` is the model the problem's task graph was built from (the optimised
    one, :mod:`scheduler.optimize`); the plain ORT baselines run ``original`` (the
    user's model, default ``model``; or its :func:`~scheduler.optimize.session_data`) at
    its best settings.  ``prepared`` is the schedule already cut and built
    (:func:`prepare_replay`); the sessions are made anew on every call, so that no
    idle session's threads run beside other work.  A proto's large values are taken out once
    (:func:`~scheduler.optimize.session_data`: from 64 MiB on, into a file every session maps), not copied
    into the bytes of the reference run's session (a 0.5 GiB MLP's replay peaked at 3.8x its size).
    Every run takes ``feeds`` (the user's inputs), or random inputs from ``seed``.
    Raises ReplayError when the schedule does not fit the model or when the
    replayed outputs differ from the whole model's by more than ``tolerance``.
    """
    if repeats < 1 or warmup < 0:
        raise ReplayError("replay needs repeats >= 1 and warmup >= 0")
    own = prepared is None
    if own:
        model = session_data(model)  # a proto's large values taken out once, for the reference, segments, baselines
        prepared = prepare_replay(model, problem, schedule, reference_run(model, seed, problem.label, feeds))
    segments, parts = prepared.segments, prepared.parts
    feeds, expected = prepared.reference.feeds, prepared.reference.expected
    devices = problem.platform.device
    simulated = any(devices[p.segment.device].simulated for p in parts)
    sessions = segment_sessions(problem, parts, opt_level)

    tick = progress("replay", warmup + repeats) if progress else (lambda: None)
    walls, virtual = [], []
    per_seg: dict[int, list[float]] = {p.segment.index: [] for p in parts}
    gaps: dict[int, list[float]] = {k: [] for k in per_seg}
    max_diff = 0.0
    queued = runner_parts(problem, parts)
    runner = SegmentRunner(queued, sessions)
    try:
        for i in range(warmup + repeats):
            try:
                tensors, run, wall = runner.run(feeds)
            except RuntimeError as exc:
                raise ReplayError(str(exc)) from None
            if i == 0:
                max_diff = checked_diff(expected, tensors, tolerance, "replayed")
            if i >= warmup:
                walls.append(wall)
                durations = {}
                for seg in [p.segment for p in parts]:  # (no name left holding a part: see below)
                    k = seg.index
                    per_seg[k].append(run.end[k] - run.begin[k])
                    durations[k] = seg.predicted_s if devices[seg.device].simulated else per_seg[k][-1]
                for k, gap in worker_gaps(queued, run).items():
                    gaps[k].append(gap)
                virtual.append(max(f for _, f in _timeline(problem, segments, durations).values()))
            tick()
    finally:
        runner.close()
        del runner, sessions  # their thread pools must not run (or spin) beside the baselines
    result: dict[str, Any] = with_samples({
        "format": "hetsched-replay/1",
        "solver": schedule.solver,
        "max_abs_diff": max_diff,
        "tolerance": tolerance,
        "timeline": "virtual" if simulated else "wall-clock",
        "predicted_makespan_s": schedule.makespan,
        "predicted_replay_s": predict_segments(problem, segments),
        "segments": [{
            "index": p.segment.index, "device": p.segment.device, "simulated": devices[p.segment.device].simulated,
            "tasks": len(p.segment.tasks), "inputs": list(p.inputs), "outputs": list(p.outputs),
            "boundary_bytes": p.segment.boundary_bytes,
            "predicted_s": p.segment.predicted_s, "measured_median_s": statistics.median(per_seg[p.segment.index]),
            "dispatch_s": statistics.median(gaps[p.segment.index]) if gaps[p.segment.index] else None,
        } for p in parts],
    }, virtual if simulated else walls)
    measured = result["measured_makespan_s"]
    if baselines:
        if own:  # the segments' copy of the model's values must not sit beside the baselines' own copy
            del prepared, parts  # (a large model's peak in memory: 4.8x a 0.5 GiB MLP's size, 3.8x without)
        base = plain_baselines(original if original is not None else model, feeds, repeats=repeats, warmup=warmup)
        best = min(base, key=base.get)
        result["baselines"] = base
        result["best_baseline"] = best
        result["speedup_vs_best_baseline"] = base[best] / measured if measured > 0 else None
    return result


def worker_gaps(parts: Sequence[Part], timing: Timing) -> dict[int, float]:
    """For each segment that its device's previous segment was the last to hold up, the time from that
    segment's end to its own start in one run (s): the worker passing from one session call to the next
    (taking the lock, gathering the inputs, and Python between), which neither call's time holds."""
    owner = {x: p.index for p in parts for x in p.outputs}
    device = {p.index: p.device for p in parts}
    out = {}
    for p in parts:
        waits = [owner[x] for x in p.inputs if x in owner] + list(p.after)
        last = max(waits, key=timing.end.__getitem__, default=None)
        if last is not None and last in p.after and device[last] == p.device:
            out[p.index] = timing.begin[p.index] - timing.end[last]
    return out


def checked_diff(expected: Mapping[str, Any], got: Mapping[str, Any], tolerance: float, what: str) -> float:
    """The largest absolute difference over every graph output (missing or misshapen output: error), after
    checking every output against ``tolerance``, widened for a half-precision
    output by its rounding (4 units in the last place of its largest value): ORT computes a float16 model's
    ops in float32 where it has no float16 kernel, so a cut, which stores the boundary in float16, rounds
    where the whole model did not."""
    rows = _output_diffs(expected, got)
    for name, diff, allowed in rows:
        if diff > tolerance + allowed:
            raise ReplayError(f"{what} outputs differ from the whole model's by {diff:.3g} at {name!r} "
                              f"(tolerance {tolerance + allowed:g})")
    return max((diff for _, diff, _ in rows), default=0.0)


def _output_diffs(expected: Mapping[str, Any], got: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """(output, largest absolute difference, rounding allowance) per graph output; sequences element by
    element, strings equal (difference 0) or not (inf); an absent optional (None) only where the whole model
    gave none."""
    rows = []
    for name, value in expected.items():
        out = got.get(name)
        if value is None:
            if out is not None:
                raise ReplayError(f"replayed output {name!r} holds a value where the whole model's is absent")
            continue
        out = as_array(out) if isinstance(out, ort.OrtValue) else out  # bfloat16, float8
        value, out = _unmapped(value), _unmapped(out)
        refs, outs = (value, out) if isinstance(value, list) else ([value], [out])
        if out is None or not isinstance(outs, list) or len(outs) != len(refs) or any(
                not isinstance(o, np.ndarray) or o.shape != r.shape for o, r in zip(outs, refs)):
            raise ReplayError(f"replayed output {name!r} is missing or has the wrong shape")
        for o, r in zip(outs, refs):
            if not r.size:
                continue
            if r.dtype == object:
                rows.append((name, 0.0 if np.array_equal(o, r) else float("inf"), 0.0))
                continue
            half = "float" in r.dtype.name and r.dtype.itemsize < 4  # float16, ml_dtypes' bfloat16 and float8
            finite = np.abs(r[np.isfinite(r)]) if half else np.zeros(0)
            rows.append((name, largest_diff(o, r), 4 * float(np.spacing(np.max(finite))) if finite.size else 0.0))
    return rows


def largest_diff(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest absolute difference between two arrays of one shape, where a NaN or an infinity matches
    only itself (difference 0) and differs from anything else by an infinite amount: a replay that gives
    NaN where the whole model gave a number must not pass a tolerance (``nan > tolerance`` is false).

    >>> largest_diff(np.array([np.nan, np.inf, 1.0]), np.array([np.nan, np.inf, 1.5]))
    0.5
    >>> largest_diff(np.array([np.nan, 1.0]), np.array([2.0, 1.0]))
    inf
    """
    a = got.astype(np.complex128 if np.iscomplexobj(got) or np.iscomplexobj(expected) else np.float64)
    b = expected.astype(a.dtype)
    with np.errstate(invalid="ignore"):  # inf - inf, where both are the same infinity
        diff = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
    return float(np.max(np.where(np.isnan(diff), np.inf, diff)))


def _unmapped(value: Any) -> Any:
    """A map as its keys and its values (two arrays, in key order), a sequence of maps as theirs in turn, anything
    else as it is: what the output comparison reads (scikit-learn's ZipMap gives a list of dicts).

    >>> _unmapped([{1: 0.25, 0: 0.75}])
    [array([0, 1]), array([0.75, 0.25])]
    """
    if isinstance(value, dict):
        keys = sorted(value)
        return [np.array(keys), np.array([value[k] for k in keys])]
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return [a for v in value for a in _unmapped(v)]
    return value


class PlainConfig(NamedTuple):
    """A plain ORT configuration: intra-op ``threads`` (inter-op too when ``parallel``: ORT_PARALLEL),
    optimisation ``level``, and whether ORT packs the weights for its kernels (its default)."""

    threads: int
    level: str
    parallel: bool = False
    packed: bool = True


def plain_configs(cores: int | None = None) -> dict[str, PlainConfig]:
    """The plain ORT configurations a user would try, by label.

    Sequential on 1 thread and on every core, unoptimised and at ORT_ENABLE_ALL,
    ORT_PARALLEL on every core, and sequential with weight packing off
    (``session.disable_prepacking``: on the Siamese LSTM preset 4% faster on two threads and 12%
    on one, on BERT 12% slower; what the sessions of segments that share a weight, and of devices
    profiled faster so, run with, so plain ORT is given it too, and the headroom's one-thread time
    is the faster of the two).
    """
    n = cores or len(usable_cpus())
    return {"sequential_1_thread": PlainConfig(1, "none"), "sequential_1_thread_optimised": PlainConfig(1, "all"),
            "sequential_1_thread_optimised_unpacked": PlainConfig(1, "all", packed=False),
            f"sequential_{n}_threads": PlainConfig(n, "none"),
            f"sequential_{n}_threads_optimised": PlainConfig(n, "all"),
            f"parallel_{n}_threads_optimised": PlainConfig(n, "all", True),
            f"sequential_{n}_threads_unpacked": PlainConfig(n, "none", packed=False),
            f"sequential_{n}_threads_optimised_unpacked": PlainConfig(n, "all", packed=False)}


def plain_baselines(model: onnx.ModelProto | ModelBytes, feeds: Mapping[str, np.ndarray], *, repeats: int = 20,
                    warmup: int = 3) -> dict[str, float]:
    """Median run time of the whole model in each of :func:`plain_configs`.

    Each configuration is timed on its own, one after the other, so no session's
    spinning threads steal a core from another.
    """
    return {label: statistics.median(times) for label, times in
            plain_samples(model, feeds, repeats=repeats, warmup=warmup).items()}


def plain_samples(model: onnx.ModelProto | ModelBytes, feeds: Mapping[str, np.ndarray], *, repeats: int = 20,
                  warmup: int = 3) -> dict[str, list[float]]:
    """Run times (s) of the whole model in each of :func:`plain_configs`, each timed on its own."""
    data = session_data(model)
    out = {}
    for label, c in plain_configs().items():
        sess = session(data, c.level, c.threads, parallel=c.parallel, packed=c.packed)
        out[label] = timed_runs(partial(session_call(sess), feeds), warmup, repeats)
        del sess
    return out
