"""Throughput on real cores: a stream of inferences pipelined across devices, against plain ONNX Runtime's.

A throughput schedule promises a period: the largest busy time of any resource when
every device works on a different inference at once (``docs/semantics.md``).  Here
that is measured.  The model is cut by each placement (one per data-parallel copy;
inference ``i`` runs copy ``i mod R``) and one worker thread per device runs, from all
the inferences in flight, the oldest segment whose inputs exist (the oldest inference
first across devices that share a core); a segment holds its device's cores while it
runs, so devices that share a core take turns (what the period charges).  The
measured period is the time between the completions of the inferences after the
warm-up ones, over their number, in the second pass of the stream: the first one
warms the segments' memory (on ``randwire-imagenet``'s ``heft`` placement, 105
segments, first passes ran at 81-220 ms per inference and second ones at 42-51 ms,
predicted 37 ms; ``benchmarks/bench_stream_segments.py``).

Plain ONNX Runtime runs the same stream two ways: one session, inference after
inference, in each configuration of :func:`scheduler.replay.plain_configs` (its
best is 1 / the best latency); and as many single-threaded sessions as the host
has cores, each running its share of the stream at once (data parallel).

Example
-------
>>> from scheduler.pipeline import build_problem, load_graph
>>> from scheduler.semantics import simulate
>>> model, _ = load_graph("mlp")
>>> problem = build_problem("mlp", platform="cpu")
>>> s = simulate(problem, {t: "cpu0" for t in problem.tasks})
>>> r = replay_stream(model, problem, s, inferences=6, warmup=2, baselines=False)
>>> r["inferences"], r["max_abs_diff"] == 0.0
(4, True)
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .executor import Part, pin_thread, round_order, session_call
from .inputs import Feeds
from .optimize import ModelBytes, session, session_data
from .platform import usable_cpus
from .problem import Problem
from .recommend import beats_plain, speedup_interval, top_placements
from .replay import (PreparedReplay, Reference, checked_diff, plain_configs, prepare_replay, reference_run,
                     runner_parts, segment_durations, segment_sessions)
from .schedule import Schedule
from .segments import ReplayError, Segment
from .semantics import replicated_period, segment_period, simulate


PASSES = 2
"""The stream runs this many times and the last pass is timed (see the module docstring)."""


@dataclass(frozen=True)
class Plan:
    """One copy's segments: the executor's parts and their sessions (inference ``i`` runs plan ``i mod R``)."""

    parts: tuple[Part, ...]
    sessions: tuple[ort.InferenceSession, ...]


class StreamRunner:
    """Runs a stream of inferences through per-device worker threads, several inferences in flight.

    Each device's worker takes, among the inferences in flight, the oldest whose next
    segment on this device is ready (its inputs exist, the segments it must follow
    are done), unless a device sharing a core has a ready segment of an older one;
    it holds the device's resources (a lock each, taken in one order) while the
    segment runs.  At most ``in_flight`` inferences are started and not
    yet finished, which bounds the tensors held.
    """

    def __init__(self, plans: Sequence[Plan], resources: Mapping[str, Sequence[str]], in_flight: int) -> None:
        self.plans = list(plans)
        self.calls = [[session_call(s, p.outputs) for p, s in zip(plan.parts, plan.sessions)] for plan in plans]
        self.devices = sorted({p.device for plan in plans for p in plan.parts})
        self.queue = [{d: [k for k, p in enumerate(plan.parts) if p.device == d] for d in self.devices}
                      for plan in plans]
        self.locks = {r: threading.Lock() for d in self.devices for r in resources[d]}
        self.held = {d: [self.locks[r] for r in sorted(resources[d])] for d in self.devices}
        self.rivals = {d: [e for e in self.devices if e != d and set(resources[d]) & set(resources[e])]
                       for d in self.devices}
        self.in_flight = max(1, in_flight)
        self.lock = threading.Lock()
        self.wake = {d: threading.Condition(self.lock) for d in self.devices}

    def _next(self, device: str) -> tuple[int, int] | None:
        """(inference, part position) of the segment ``device`` runs next: its oldest ready one, unless a device
        that shares a core with it has a ready segment of an older inference (lock held).  The oldest inference
        goes first everywhere: otherwise the one-core devices keep their cores busy with later inferences and a
        device that needs both waits for them to run dry."""
        item = self._ready(device)
        if item is None or any((other := self._ready(rival)) is not None and other[0] < item[0]
                               for rival in self.rivals[device]):
            return None
        return item

    def _ready(self, device: str) -> tuple[int, int] | None:
        """(inference, part position) of the oldest ready segment of ``device`` (lock held)."""
        for i in range(self.first, min(self.total, self.first + self.in_flight)):
            plan = i % len(self.plans)
            queue = self.queue[plan][device]
            n = self.cursor[i].get(device, 0)
            if n >= len(queue):
                continue
            k = queue[n]
            part = self.plans[plan].parts[k]
            if (all(x in self.tensors[i] for x in part.inputs)
                    and all(q in self.done[i] for q in part.after)):
                return i, k
        return None

    def _worker(self, device: str, cpus: Sequence[int]) -> None:
        pin_thread(cpus)
        try:
            while True:
                with self.lock:
                    while not self.errors and self.completed < self.total and (item := self._next(device)) is None:
                        self.wake[device].wait()
                    if self.errors or self.completed >= self.total:
                        return
                    i, k = item
                    self.cursor[i][device] = self.cursor[i].get(device, 0) + 1
                    plan = self.plans[i % len(self.plans)]
                    part = plan.parts[k]
                    feed = {x: self.tensors[i][x] for x in part.inputs}
                for held in self.held[device]:
                    held.acquire()
                try:
                    result = self.calls[i % len(self.plans)][k](feed)
                finally:
                    for held in reversed(self.held[device]):
                        held.release()
                with self.lock:
                    self.tensors[i].update(zip(part.outputs, result))
                    self.done[i].add(part.index)
                    if len(self.done[i]) == len(plan.parts):
                        self.finish[i] = time.perf_counter() - self.t0
                        self.completed += 1
                        while self.first < self.total and self.first in self.finish:
                            self.first += 1
                    self._wake_ready(device)
        except BaseException as exc:  # reported by run()
            with self.lock:
                self.errors.append(exc)
                self._wake_ready(None)

    def _wake_ready(self, me: str | None) -> None:
        """Wake the other workers that have a segment ready now, every one when the stream ends or fails (lock
        held): a wake-up for all at every hand-over would make the workers fight for the GIL and the cores."""
        over = self.errors or self.completed >= self.total
        for d, cond in self.wake.items():
            if d != me and (over or self._next(d) is not None):
                cond.notify()

    def run(self, feeds: Sequence[Mapping[str, Any]], outputs: Sequence[str],
            cpus: Mapping[str, Sequence[int]]) -> tuple[list[dict[str, Any]], list[float]]:
        """Run inference ``i`` on ``feeds[i]``; its ``outputs`` and completion time (s from the start) each."""
        self.total, self.first, self.completed, self.errors = len(feeds), 0, 0, []
        self.tensors = [dict(f) for f in feeds]
        self.done: list[set[int]] = [set() for _ in feeds]  # segment indices done, per inference
        self.cursor: list[dict[str, int]] = [{} for _ in feeds]
        self.finish: dict[int, float] = {}
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-4)  # hand the GIL over quickly between device workers
        threads = [threading.Thread(target=self._worker, args=(d, cpus.get(d, ())), daemon=True)
                   for d in self.devices]
        try:
            self.t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        finally:
            sys.setswitchinterval(switch)
        if self.errors:
            first = self.errors[0]
            if not isinstance(first, Exception):
                raise first
            raise ReplayError(f"a segment failed in ONNX Runtime: {(str(first).splitlines() or [''])[0]}")
        return [{x: t[x] for x in outputs} for t in self.tensors], [self.finish[i] for i in range(self.total)]


def period_of(finish: Sequence[float], warmup: int) -> float:
    """Seconds per inference once the pipeline is full: the time between the completion of inference
    ``warmup - 1`` (0 without warm-up) and the last one, over the inferences completed in it.

    >>> period_of([1.0, 2.0, 3.0, 4.0], 2)
    1.0
    """
    done = sorted(finish)
    start = done[warmup - 1] if warmup else 0.0
    return (done[-1] - start) / (len(done) - warmup)


def predicted_stream_period(problem: Problem, segments_by_copy: Sequence[Sequence[Segment]]) -> float:
    """The period the stream should show: :func:`scheduler.semantics.segment_period` of each copy's segments
    in schedule order, each lasting what the replay predicts (tasks, contention and session call,
    :func:`scheduler.replay.segment_durations`)."""
    copies = []
    for segments in segments_by_copy:
        durations = segment_durations(problem, segments)
        copies.append([(seg.device, durations[seg.index]) for seg in sorted(segments, key=lambda q: q.start)])
    return segment_period(problem, copies)


AT_ONCE = "_sessions_at_once_optimised"
"""The label's end of plain ONNX Runtime's data-parallel stream (one single-threaded session per core)."""


def plain_stream(model: onnx.ModelProto | ModelBytes, feeds: Sequence[Mapping[str, np.ndarray]], warmup: int,
                 cores: int) -> dict[str, float]:
    """Period (s per inference) of plain ONNX Runtime on the stream: one session per configuration of
    :func:`~scheduler.replay.plain_configs`, and ``cores`` single-threaded sessions at once."""
    data = session_data(model)
    out = {}
    for label, c in plain_configs(cores).items():
        sess = session(data, c.level, c.threads, parallel=c.parallel, packed=c.packed)
        call = session_call(sess)
        finish, t0 = [], time.perf_counter()
        for f in feeds:
            call(f)
            finish.append(time.perf_counter() - t0)
        out[label] = period_of(finish, warmup)
        del sess, call  # the call holds the session: its threads must not spin beside the next one
    calls = [session_call(session(data, "all", 1)) for _ in range(cores)]
    finish: list[float] = []
    lock = threading.Lock()

    def serve(k: int) -> None:
        for f in feeds[k::cores]:
            calls[k](f)
            with lock:
                finish.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=serve, args=(k,), daemon=True) for k in range(cores)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out[f"{cores}{AT_ONCE}"] = period_of(finish, warmup)
    return out


def stream_feeds(reference_feeds: Feeds, count: int, seed: int, vary: bool = True) -> list[dict[str, Any]]:
    """``count`` inputs like ``reference_feeds``: the first is it, the others drawn alike (random floats,
    integers within the range of the reference's, the rest, sequences and maps too, copied), or all the same
    when not ``vary`` (the user gave them: :mod:`scheduler.inputs`)."""
    if not vary:
        return [dict(reference_feeds) for _ in range(count)]
    rng = np.random.default_rng(seed + 1)
    out = [dict(reference_feeds)]
    for _ in range(count - 1):
        feed = {}
        for name, x in reference_feeds.items():
            if not isinstance(x, np.ndarray):  # a sequence, a map or an absent optional: as it is
                feed[name] = x if x is None else x.copy()
            elif np.issubdtype(x.dtype, np.floating):
                feed[name] = rng.standard_normal(x.shape).astype(x.dtype)
            elif np.issubdtype(x.dtype, np.integer) and x.size:  # ids: within the range the reference used
                feed[name] = rng.integers(x.min(), x.max(), x.shape, endpoint=True).astype(x.dtype)
            else:
                feed[name] = x.copy()
        out.append(feed)
    return out


def replay_stream(model: onnx.ModelProto | ModelBytes, problem: Problem, schedule: Schedule, *, inferences: int = 60,
                  warmup: int = 10, in_flight: int | None = None, opt_level: str = "disable",
                  tolerance: float = 1e-4, seed: int = 0, baselines: bool = True,
                  original: onnx.ModelProto | ModelBytes | None = None, reference: Reference | None = None,
                  stage: Callable[[str], None] = lambda text: None, feeds: Feeds | None = None,
                  prepared: Sequence[PreparedReplay] | None = None) -> dict[str, Any]:
    """Measure the throughput of ``schedule``'s placements (:attr:`Schedule.copies`) pipelined on real devices,
    against plain ONNX Runtime's on the same stream (the ``hetsched-stream/1`` structure).  The first inference's
    outputs must equal the whole model's within ``tolerance`` (``reference``: one run of the model, made when
    not given, on ``feeds``, the user's inputs, if any); every device must be real (a simulated one has no
    wall clock).  ``prepared``: the copies already cut and built (:func:`prepare_stream`)."""
    if inferences <= warmup or warmup < 0:
        raise ReplayError("a stream needs inferences > warmup >= 0")
    placements = schedule.copies
    devices = problem.platform.device
    used = sorted({d for p in placements for d in p.values()})
    if any(devices[d].simulated for d in used):
        raise ReplayError(f"a stream runs on real devices only; {', '.join(d for d in used if devices[d].simulated)} "
                          "is simulated")
    reference = reference or reference_run(model, seed, problem.label, feeds)
    stage(f"stream of {inferences} inferences over {len(placements)} cop{'y' if len(placements) == 1 else 'ies'}")
    prepared = prepared or prepare_stream(model, problem, schedule, reference)
    plans = [Plan(tuple(runner_parts(problem, prep.parts)),  # the copies' workers share the host's cores
                  tuple(segment_sessions(problem, prep.parts, opt_level, spinning="during-run")))
             for prep in prepared]
    feeds = stream_feeds(reference.feeds, inferences, seed, vary=not reference.given)
    outputs = list(reference.expected)
    cpus = {p.device: p.cpus for plan in plans for p in plan.parts}
    in_flight = in_flight or 2 * len(used)
    runner = StreamRunner(plans, {d: devices[d].resources for d in used}, in_flight)
    for _ in range(PASSES):  # the last pass is timed
        got, finish = runner.run(feeds, outputs, cpus)
    del runner, plans  # their sessions' threads must not run beside the baselines
    max_diff = checked_diff(reference.expected, got[0], tolerance, "streamed")
    measured = period_of(finish, warmup)
    predicted = predicted_period(problem, schedule)
    by_segment = predicted_stream_period(problem, [p.segments for p in prepared])
    result: dict[str, Any] = {
        "format": "hetsched-stream/1", "solver": schedule.solver, "copies": len(placements),
        "segments": sum(len(p.segments) for p in prepared),
        "inferences": inferences - warmup, "warmup": warmup, "in_flight": in_flight,
        "max_abs_diff": max_diff, "tolerance": tolerance,
        "predicted_period_s": predicted, "predicted_segment_period_s": by_segment,
        "measured_period_s": measured, "measured_throughput_per_s": 1.0 / measured if measured > 0 else None,
        "prediction_error": (measured - predicted) / predicted if predicted else None,
        "segment_prediction_error": (measured - by_segment) / by_segment if by_segment else None,
        "latency_first_s": finish[0],
    }
    if baselines:
        stage("plain ONNX Runtime on the same stream")
        base = plain_stream(original if original is not None else model, feeds, warmup, len(usable_cpus()))
        best = min(base, key=base.get)
        single = min(v for k, v in base.items() if not k.endswith(AT_ONCE))
        result.update(baselines_period_s=base, best_baseline=best,
                      speedup_vs_best_baseline=base[best] / measured if measured > 0 else None,
                      speedup_vs_one_session=single / measured if measured > 0 else None)
    return result


def prepare_stream(model: onnx.ModelProto | ModelBytes, problem: Problem, schedule: Schedule, reference: Reference,
                   shared: dict[str, np.ndarray] | None = None) -> list[PreparedReplay]:
    """Each copy of ``schedule``'s placements cut and built (what every round of streaming it reuses), the
    model's large values held once (:func:`~scheduler.replay.prepare_replay`)."""
    shared = {} if shared is None else shared
    return [prepare_replay(model, problem, schedule if placement == schedule.placement else
                           simulate(problem, placement), reference, shared=shared) for placement in schedule.copies]


def predicted_period(problem: Problem, schedule: Schedule) -> float:
    """The period a schedule promises: its own, else that of its placement (one copy)."""
    return schedule.period.value if schedule.period else replicated_period(problem, schedule.copies)


def recommend_stream(original: onnx.ModelProto | ModelBytes, model: onnx.ModelProto | ModelBytes, problem: Problem,
                     schedules: Sequence[Schedule], *, candidates: int = 3, inferences: int = 40, warmup: int = 8,
                     opt_level: str = "disable", tolerance: float = 1e-4, seed: int = 0,
                     stage: Callable[[str], None] = lambda text: None, feeds: Feeds | None = None,
                     rounds: int = 3) -> dict[str, Any]:
    """Stream the ``candidates`` placements with the best predicted period (mirror images once) and plain ONNX
    Runtime on the same inputs, in ``rounds`` that each stream them all in a rotating order; recommend the
    shortest median period, a placement only when it beats plain ORT beyond the rounds' noise (the lower end of
    :func:`scheduler.recommend.speedup_interval` above 1: with three rounds, every round of the placement
    faster than every round of plain ORT).

    Returns the ``hetsched-stream-recommendation/1`` structure: every candidate's
    :func:`replay_stream` result (without baselines; its period the median over the rounds, ``periods_s``
    each round's), the plain periods, the recommendation and its throughput against the best plain stream.
    """
    top = top_placements(problem, schedules, candidates, lambda s: predicted_period(problem, s))
    reference = reference_run(model, seed, problem.label, feeds)
    shared: dict[str, np.ndarray] = {}
    prepared = [prepare_stream(model, problem, s, reference, shared) for s in top]
    stream = stream_feeds(reference.feeds, inferences, seed, vary=not reference.given)
    plain: dict[str, list[float]] = {}
    rows: list[dict[str, Any]] = [{} for _ in top]
    periods: list[list[float]] = [[] for _ in top]
    rounds = max(1, rounds)
    for r in range(rounds):
        for k in round_order(len(top) + 1, r):  # the last job: plain ORT's stream
            if k == len(top):
                stage(f"round {r + 1}/{rounds}: plain ONNX Runtime on the stream")
                for label, period in plain_stream(original, stream, warmup, len(usable_cpus())).items():
                    plain.setdefault(label, []).append(period)
                continue
            stage(f"round {r + 1}/{rounds}: stream {k + 1}/{len(top)}: placement of {top[k].solver}")
            rows[k] = {**replay_stream(model, problem, top[k], inferences=inferences, warmup=warmup,
                                       opt_level=opt_level, tolerance=tolerance, seed=seed, baselines=False,
                                       reference=reference, prepared=prepared[k]),
                       "candidate": f"placement of {top[k].solver}"}
            periods[k].append(rows[k]["measured_period_s"])
    base = {label: statistics.median(values) for label, values in plain.items()}
    best_plain = min(base, key=base.get)
    rows = [_with_periods(row, values, speedup_interval(plain[best_plain], values, seed=seed))
            for row, values in zip(rows, periods)]
    best = min(rows, key=lambda row: row["measured_period_s"], default=None)
    fastest = {"candidate": best["candidate"], "speedup_interval": best["speedup_interval"]} \
        if best is not None and best["measured_period_s"] < base[best_plain] else None
    placed = fastest is not None and beats_plain(fastest["speedup_interval"])
    measured = best["measured_period_s"] if placed else base[best_plain]
    return {"format": "hetsched-stream-recommendation/1", "inferences": inferences - warmup, "warmup": warmup,
            "rounds": rounds, "candidates": rows, "baselines_period_s": base, "best_baseline": best_plain,
            "recommended": best["candidate"] if placed else f"plain ONNX Runtime ({best_plain})",
            "fastest_measured": fastest, "measured_period_s": measured, "measured_throughput_per_s": 1.0 / measured,
            "speedup_vs_best_baseline": base[best_plain] / measured}


def _with_periods(row: Mapping[str, Any], periods: Sequence[float],
                  interval: tuple[float, float]) -> dict[str, Any]:
    """A streamed candidate measured by the median of its rounds' ``periods`` (errors recomputed), with its
    speedup ``interval`` over the best plain stream."""
    measured = statistics.median(periods)
    out = dict(row, measured_period_s=measured, periods_s=list(periods), speedup_interval=interval,
               measured_throughput_per_s=1.0 / measured if measured > 0 else None)
    for error, key in (("prediction_error", "predicted_period_s"),
                       ("segment_prediction_error", "predicted_segment_period_s")):
        out[error] = (measured - out[key]) / out[key] if out[key] else None
    return out
