"""Replay a schedule on ONNX Runtime: cut the model, run the parts per device, check and time them.

Cutting: tasks are taken in schedule order (by start time); a task joins the open
segment of its device when that keeps the segment graph acyclic (so every
segment is convex: no path leaves it and comes back), when no other segment has
used any of the device's resources since (so segments never interleave on a
resource and the per-resource order cannot deadlock), and when all its inputs from
other segments were due by the segment's scheduled start (so running the segment
as one session call does not delay it against the schedule).  A segment ends at
every task whose output another device reads (a session call returns its outputs
only when it ends, so the consumer would otherwise wait for the whole segment).
Each segment
becomes an ONNX model: boundary inputs (tensors read but not produced inside and
not initializers), outputs (tensors read by other segments, or graph outputs),
only the initializers it uses, the original opset and a readable IR version.

Running (:mod:`scheduler.executor`, the same code ``--export`` ships as the stand-alone
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
>>> len(cut(problem, s))
1
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import networkx as nx
import numpy as np
import onnx
from onnx import helper

from .errors import HetschedError
from .executor import Part, SegmentRunner, timed_runs
from .graph import name_nodes, node_reads
from .optimize import IR_VERSION, model_bytes, observed_run, observed_types, random_inputs, session
from .platform import Platform
from .problem import Problem
from .schedule import Schedule
from .semantics import segment_timeline

EPS = 1e-12


@dataclass(frozen=True)
class Segment:
    """A convex run of tasks on one device, replayed as one ONNX Runtime session call."""

    index: int
    device: str
    tasks: tuple[str, ...]
    start: float  # scheduled start of the first task
    finish: float  # scheduled finish of the last task
    predicted_s: float  # sum of the tasks' costs on the device


class ReplayError(HetschedError):
    """The schedule cannot be replayed on this model, or the replay went wrong."""


# ------------------------------------------------------------------------------ cutting

def cut(problem: Problem, schedule: Schedule) -> list[Segment]:
    """Segments of ``schedule`` (see the module docstring for the rules), in schedule order."""
    if not schedule.found:
        raise ReplayError(f"schedule of {schedule.solver or 'unknown solver'} holds no placement "
                          f"(status {schedule.status})")
    missing = set(problem.tasks) ^ set(schedule.placement)
    if missing:
        raise ReplayError(f"the schedule does not fit this model: task {sorted(missing)[0]!r} "
                          f"is in one but not the other")
    by = schedule.by_name
    order = schedule.order(problem)
    seg_of: dict[str, int] = {}
    members: list[list[str]] = []
    device_of: list[str] = []
    seg_start: list[float] = []
    open_seg: dict[str, int] = {}  # device -> its open segment
    last_on: dict[str, int] = {}  # resource -> last segment that used it
    quotient = nx.DiGraph()
    for t in order:
        d = by[t].device
        resources = problem.platform.device[d].resources
        ext = {seg_of[e.src] for e in problem.preds[t]}
        s = open_seg.get(d)
        joinable = (
            s is not None
            and all(last_on.get(r) == s for r in resources)
            and all(not nx.has_path(quotient, s, p) for p in ext if p != s)
            and all(by[e.src].finish + problem.transfer(e, by[e.src].device, d) <= seg_start[s] + EPS
                    for e in problem.preds[t] if seg_of[e.src] != s)
        )
        if not joinable:
            s = len(members)
            members.append([])
            device_of.append(d)
            seg_start.append(by[t].start)
            quotient.add_node(s)
            open_seg[d] = s
        members[s].append(t)
        seg_of[t] = s
        quotient.add_edges_from((p, s) for p in ext if p != s)
        for r in resources:
            last_on[r] = s
        if any(by[e.dst].device != d for e in problem.succs[t]):
            del open_seg[d]  # a session hands its outputs over when it returns: end the segment here
    return [Segment(i, device_of[i], tuple(m), by[m[0]].start, max(by[t].finish for t in m),
                    sum(problem.costs[t][device_of[i]] for t in m)) for i, m in enumerate(members)]


def is_convex(problem: Problem, tasks: Sequence[str]) -> bool:
    """Whether no path leaves ``tasks`` and comes back (the condition for a valid segment)."""
    inside = set(tasks)
    g = problem.graph.nx
    outside_desc: set[str] = set()
    for t in inside:
        for s in g.successors(t):
            if s not in inside:
                outside_desc |= {s} | nx.descendants(g, s)
    return not (outside_desc & inside)


# ------------------------------------------------------------------------------ building

@dataclass(frozen=True)
class SegmentModel:
    """A segment as an ONNX model with its boundary tensors."""

    segment: Segment
    model: onnx.ModelProto
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def build_segments(model: onnx.ModelProto, problem: Problem, segments: Sequence[Segment],
                   types: Mapping[str, onnx.ValueInfoProto] | None = None) -> list[SegmentModel]:
    """One checked ONNX model per segment, boundary sets complete, only used initializers copied.

    Boundary types and shapes come from ``types`` (observed in a run of the whole
    model, :func:`scheduler.optimize.observed_types`; computed here when not
    given), so contrib ops that ONNX shape inference does not know cut as well as
    standard ones.  Values that control-flow subgraphs read from the outer scope
    are inputs of their node's segment.  Opsets, custom domains and model-local
    functions are kept.
    """
    full = name_nodes(model)
    g = full.graph
    nodes = {n.name: n for n in g.node}
    unknown = [t for t in problem.tasks if t not in nodes]
    if unknown:
        raise ReplayError(f"the schedule does not fit this model: task {unknown[0]!r} is not a node of the model "
                          f"({len(nodes)} nodes, {len(problem.tasks)} tasks)")
    tasks = set(problem.tasks)
    missing = [n for n in nodes if n not in tasks]
    if missing:
        raise ReplayError(f"the schedule does not fit this model: node {missing[0]!r} is not a task of the problem "
                          f"({len(nodes)} nodes, {len(problem.tasks)} tasks)")
    if types is None:
        types = observed_types(full)
    inits = {i.name: i for i in g.initializer}
    graph_outputs = {o.name for o in g.output}
    # ORT's optimiser writes some of its own ops into the ONNX domain (SimplifiedLayerNormalization...), which
    # the ONNX checker rejects: check segments only when the whole model passes, else ORT's load is the check
    strict = _check_error(full) is None
    owner = {t: seg.index for seg in segments for t in seg.tasks}
    consumers: dict[str, set[int]] = {}
    for n in g.node:
        for x in node_reads(n):
            consumers.setdefault(x, set()).add(owner[n.name])
    out = []
    available = {i.name for i in g.input} | set(inits)
    for seg in segments:
        seg_nodes = [nodes[t] for t in _node_order(g, seg.tasks)]
        produced = {x for n in seg_nodes for x in n.output if x}
        read = [x for n in seg_nodes for x in node_reads(n)]
        inputs = tuple(dict.fromkeys(x for x in read if x not in produced and x not in inits))
        outputs = tuple(x for n in seg_nodes for x in n.output
                        if x and (x in graph_outputs or consumers.get(x, set()) - {seg.index}))
        used_inits = [inits[x] for x in dict.fromkeys(read) if x in inits]
        late = [x for x in inputs if x not in available]
        if late:  # the schedule's order contradicts this model's data flow (a schedule of another model?)
            raise ReplayError(f"the schedule does not fit this model: segment {seg.index} on {seg.device} reads "
                              f"{late[0]!r} before any earlier segment produces it")
        available.update(outputs)
        for x in inputs + outputs:
            if x not in types:
                raise ReplayError(f"tensor {x!r} has no type (it is not a tensor in a run of the model); "
                                  "cannot cut the model there")
        graph = helper.make_graph(seg_nodes, f"segment{seg.index}_{seg.device}", [types[x] for x in inputs],
                                  [types[x] for x in outputs], initializer=used_inits)
        m = helper.make_model(graph, opset_imports=list(model.opset_import), functions=list(model.functions))
        m.ir_version = min(model.ir_version or IR_VERSION, IR_VERSION)
        error = _check_error(m) if strict else None
        if error:
            raise ReplayError(f"segment {seg.index} on {seg.device} is not a valid ONNX model: {error}")
        out.append(SegmentModel(seg, m, inputs, outputs))
    return out


def _check_error(model: onnx.ModelProto) -> str | None:
    """The ONNX checker's first complaint about ``model`` (None when it passes)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        return str(exc).splitlines()[0]
    return None


def _node_order(graph: onnx.GraphProto, tasks: Sequence[str]) -> list[str]:
    """The segment's nodes in the model's (topological) order."""
    inside = set(tasks)
    return [n.name for n in graph.node if n.name in inside]


# ------------------------------------------------------------------------------ running

def session_settings(problem: Problem, parts: Sequence[SegmentModel]) -> list[dict[str, Any]]:
    """Per segment, the ORT settings it runs with (in replay, and in an exported runner).

    Its device's threads and execution provider (a simulated device: one CPU
    thread, for the values only).  Idle ORT threads spin (busy-wait) by default:
    right for one device alone, wrong between runs when devices share cores (a
    spinning pool steals the core another device's worker needs).
    """
    spinning = "always" if len({p.segment.device for p in parts}) == 1 else "during-run"
    out = []
    for p in parts:
        dev = problem.platform.device[p.segment.device]
        out.append({"threads": 1 if dev.simulated else dev.threads, "spinning": spinning,
                    "execution_provider": "CPUExecutionProvider" if dev.simulated else dev.execution_provider})
    return out


def core_map(platform: Platform) -> dict[str, tuple[int, ...]]:
    """OS CPUs per real CPU-provider device that owns some of the host's cores but not all.

    The resources of those devices are taken as cores, in platform order, and
    matched to the CPUs this process may use; when there are more resources than
    CPUs, nothing is pinned.
    """
    cpu_devices = [d for d in platform.devices
                   if not d.simulated and d.execution_provider == "CPUExecutionProvider"]
    cores = list(dict.fromkeys(r for d in cpu_devices for r in d.resources))
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cores or len(cores) > len(available):
        return {}
    cpu_of = dict(zip(cores, available))
    return {d.name: tuple(cpu_of[r] for r in d.resources) for d in cpu_devices if len(d.resources) < len(cores)}


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
    cores charged for the time another device actually works beside it, plus its session call.

    Costs of contended devices (:meth:`ExecutorCosts.contended`) hold the full
    slow-down (the solvers' view); here it is taken out and charged again in
    proportion to the segment's overlap with work on other contended devices,
    found by composing the timeline a few times (a fixed point; overlaps move little).
    """
    ex = problem.executor
    call = ex.call_s if ex is not None and calls else {}
    contended = ex.contended(problem.platform) if ex is not None else frozenset()
    rate = 1.0 + (ex.contention if ex is not None else 0.0)
    base = {seg.index: seg.predicted_s / (rate if seg.device in contended else 1.0) for seg in segments}
    durations = {seg.index: seg.predicted_s + call.get(seg.device, 0.0) for seg in segments}
    busy = [seg for seg in segments if seg.device in contended]
    for _ in range(4 if busy else 0):
        span = _timeline(problem, segments, durations)
        for seg in busy:
            a0, a1 = span[seg.index]
            beside = sum(max(0.0, min(a1, span[o.index][1]) - max(a0, span[o.index][0])) for o in busy
                         if not problem.platform.shares_resource(o.device, seg.device))
            share = min(1.0, beside / (a1 - a0)) if a1 > a0 else 0.0
            durations[seg.index] = base[seg.index] * (1.0 + (rate - 1.0) * share) + call.get(seg.device, 0.0)
    return durations


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
    """The whole model's run that replays check against: its inputs, its outputs, every tensor's type."""

    feeds: Mapping[str, np.ndarray]
    expected: Mapping[str, np.ndarray]
    types: Mapping[str, onnx.ValueInfoProto]


def reference_run(model: onnx.ModelProto, seed: int = 0, label: str = "model") -> Reference:
    """Random inputs (``seed``) and one run of ``model`` on them (:func:`scheduler.optimize.observed_run`)."""
    feeds = random_inputs(session(model_bytes(model), label=label), seed)
    types, expected = observed_run(model, feeds, label=label)
    return Reference(feeds, expected, types)


@dataclass(frozen=True)
class PreparedReplay:
    """A schedule cut and built into segment models: what every round of timing it reuses (building a large
    model's segments and running the reference took 28 s per candidate and round on GPT-2 small)."""

    reference: Reference
    segments: tuple[Segment, ...]
    parts: tuple[SegmentModel, ...]


def prepare_replay(model: onnx.ModelProto, problem: Problem, schedule: Schedule,
                   reference: Reference | None = None, seed: int = 0) -> PreparedReplay:
    """Cut ``schedule`` and build its segments, against ``reference`` (one run of ``model``, made when not
    given)."""
    segments = cut(problem, schedule)
    reference = reference or reference_run(model, seed, problem.label)
    return PreparedReplay(reference, tuple(segments), tuple(build_segments(model, problem, segments,
                                                                           reference.types)))


def replay(model: onnx.ModelProto, problem: Problem, schedule: Schedule, *, repeats: int = 20, warmup: int = 3,
           opt_level: str = "disable", tolerance: float = 1e-4, seed: int = 0, baselines: bool = True,
           original: onnx.ModelProto | None = None, prepared: PreparedReplay | None = None,
           progress: Callable[[str, int], Callable[[], None]] | None = None) -> dict[str, Any]:
    """Cut, build, run and time ``schedule`` on ``model``; the result is the ``replay.json`` structure.

    ``model`` is the model the problem's task graph was built from (the optimised
    one, :mod:`scheduler.optimize`); the plain ORT baselines run ``original`` (the
    user's model, default ``model``) at its best settings.  ``prepared`` is the
    schedule already cut and built (:func:`prepare_replay`); the sessions are made
    anew on every call, so that no idle session's threads run beside other work.
    Raises ReplayError when the schedule does not fit the model or when the
    replayed outputs differ from the whole model's by more than ``tolerance``.
    """
    if repeats < 1 or warmup < 0:
        raise ReplayError("replay needs repeats >= 1 and warmup >= 0")
    prepared = prepared or prepare_replay(model, problem, schedule, seed=seed)
    segments, parts = prepared.segments, prepared.parts
    feeds, expected = prepared.reference.feeds, prepared.reference.expected
    devices = problem.platform.device
    simulated = any(devices[p.segment.device].simulated for p in parts)
    sessions = [session(p.model.SerializeToString(), opt_level, s["threads"], s["execution_provider"],
                        spinning=s["spinning"], label=f"segment {p.segment.index}")
                for p, s in zip(parts, session_settings(problem, parts))]

    tick = progress("replay", warmup + repeats) if progress else (lambda: None)
    walls, virtual, per_seg = [], [], {p.segment.index: [] for p in parts}
    max_diff = 0.0
    runner = SegmentRunner(runner_parts(problem, parts), sessions)
    try:
        for i in range(warmup + repeats):
            try:
                tensors, run, wall = runner.run(feeds)
            except RuntimeError as exc:
                raise ReplayError(str(exc)) from None
            if i == 0:
                max_diff = _max_abs_diff(expected, tensors)
                if max_diff > tolerance:
                    raise ReplayError(f"replayed outputs differ from the whole model's by {max_diff:.3g} "
                                      f"(tolerance {tolerance:g})")
            if i >= warmup:
                walls.append(wall)
                durations = {}
                for p in parts:
                    k = p.segment.index
                    per_seg[k].append(run.end[k] - run.begin[k])
                    durations[k] = p.segment.predicted_s if devices[p.segment.device].simulated else per_seg[k][-1]
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
            "predicted_s": p.segment.predicted_s, "measured_median_s": statistics.median(per_seg[p.segment.index]),
        } for p in parts],
    }, virtual if simulated else walls)
    measured = result["measured_makespan_s"]
    if baselines:
        base = plain_baselines(original if original is not None else model, feeds, repeats=repeats, warmup=warmup)
        best = min(base, key=base.get)
        result["baselines"] = base
        result["best_baseline"] = best
        result["speedup_vs_best_baseline"] = base[best] / measured if measured > 0 else None
    return result


def _max_abs_diff(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> float:
    """Largest absolute difference over every graph output (missing or misshapen output: error)."""
    worst = 0.0
    for name, ref in expected.items():
        out = got.get(name)
        if out is None or out.shape != ref.shape:
            raise ReplayError(f"replayed output {name!r} is missing or has the wrong shape")
        if ref.size:
            worst = max(worst, float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))))
    return worst


def plain_configs(cores: int | None = None) -> dict[str, tuple[int, str, bool]]:
    """The plain ORT configurations a user would try, by label: (threads, optimisation level, ORT_PARALLEL).

    Sequential on 1 thread and on every core, unoptimised and at ORT_ENABLE_ALL, and
    ORT_PARALLEL on every core.
    """
    n = cores or os.cpu_count() or 1
    return {"sequential_1_thread": (1, "none", False), "sequential_1_thread_optimised": (1, "all", False),
            f"sequential_{n}_threads": (n, "none", False), f"sequential_{n}_threads_optimised": (n, "all", False),
            f"parallel_{n}_threads_optimised": (n, "all", True)}


def plain_baselines(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], *, repeats: int = 20,
                    warmup: int = 3) -> dict[str, float]:
    """Median run time of the whole model in each of :func:`plain_configs`.

    Each configuration is timed on its own, one after the other, so no session's
    spinning threads steal a core from another.
    """
    return {label: statistics.median(times) for label, times in
            plain_samples(model, feeds, repeats=repeats, warmup=warmup).items()}


def plain_samples(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], *, repeats: int = 20,
                  warmup: int = 3) -> dict[str, list[float]]:
    """Run times (s) of the whole model in each of :func:`plain_configs`, each timed on its own."""
    data = model_bytes(model)
    out = {}
    for label, (threads, opt, parallel) in plain_configs().items():
        sess = session(data, opt, threads, parallel=parallel)
        out[label] = timed_runs(partial(sess.run, None, feeds), warmup, repeats)
        del sess
    return out
