"""Cutting a schedule into segments: convex runs of tasks on one device, each becoming one ONNX model.

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
not initializers), outputs (tensors read by other segments, or graph outputs;
graph outputs that are initializers come out of the first segment, and a segment
of dead ends only returns what they write), only the initializers it uses, the
original opset and a readable IR version (at least 4, whose initializers need not
be listed as inputs).

Example
-------
>>> from scheduler.pipeline import build_problem
>>> from scheduler.semantics import simulate
>>> problem = build_problem("mlp")
>>> s = simulate(problem, {t: "cpu0" for t in problem.tasks})
>>> len(cut(problem, s))
1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import networkx as nx
import onnx
from onnx import helper

from .errors import HetschedError
from .graph import held_beside, large_initializers, name_nodes, node_reads, subgraphs
from .optimize import IR_VERSION, ModelBytes, observed_types
from .problem import Problem
from .schedule import Schedule

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
    boundary_bytes: int = 0  # of the tensors it takes from other segments and gives back to them (each once)


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
    boundary = [0] * len(members)
    counted: set[tuple[int, str, tuple[str, ...]]] = set()  # a tensor read by two tasks of a segment comes once
    for e in problem.graph.edges:
        if seg_of[e.src] != seg_of[e.dst]:
            for k in (seg_of[e.src], seg_of[e.dst]):
                if (k, e.src, e.tensors) not in counted:
                    counted.add((k, e.src, e.tensors))
                    boundary[k] += e.bytes
    return [Segment(i, device_of[i], tuple(m), by[m[0]].start, max(by[t].finish for t in m),
                    sum(problem.costs[t][device_of[i]] for t in m), boundary[i]) for i, m in enumerate(members)]


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
    """A segment as an ONNX model with its boundary tensors.  ``data``, when set (by
    :func:`~scheduler.replay.prepare_replay`), is the model as a session takes it, its large values shared
    with the other segments cut from the same model; ``model`` then holds those values' places only."""

    segment: Segment
    model: onnx.ModelProto
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    data: ModelBytes | None = None


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
    names = [n.name for n in model.graph.node]
    full = model if all(names) and len(set(names)) == len(names) else name_nodes(model)  # read only: no copy
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
    # graph outputs that are initializers (constants, or folded by ORT's optimiser) come out of the first segment
    constant = list(dict.fromkeys(o.name for o in g.output if o.name in inits))
    for k, seg in enumerate(segments):
        seg_nodes = [nodes[t] for t in _node_order(g, seg.tasks)]
        produced = {x for n in seg_nodes for x in n.output if x}
        read = [x for n in seg_nodes for x in node_reads(n)]
        inputs = tuple(dict.fromkeys(x for x in read if x not in produced and x not in inits))
        outputs = tuple(x for n in seg_nodes for x in n.output
                        if x and (x in graph_outputs or consumers.get(x, set()) - {seg.index}))
        if not outputs:  # only dead ends (nodes whose outputs nothing reads): return those, ORT needs an output
            outputs = tuple(x for n in seg_nodes for x in n.output if x and x not in consumers)
        used_inits = [inits[x] for x in dict.fromkeys(read) if x in inits]
        if k == 0 and constant:
            outputs += tuple(constant)
            used_inits += [inits[x] for x in constant if x not in read]
        late = [x for x in inputs if x not in available]
        if late:  # the schedule's order contradicts this model's data flow (a schedule of another model?)
            raise ReplayError(f"the schedule does not fit this model: segment {seg.index} on {seg.device} reads "
                              f"{late[0]!r} before any earlier segment produces it")
        available.update(outputs)
        for x in inputs + outputs:
            if x not in types:
                raise ReplayError(f"tensor {x!r} has no type (it is not a tensor in a run of the model); "
                                  "cannot cut the model there")
        flow = any(subgraphs(n) for n in seg_nodes)
        graph = helper.make_graph(seg_nodes, f"segment{seg.index}_{seg.device}",
                                  [_rank_only(types[x]) if flow else types[x] for x in inputs],
                                  [types[x] for x in outputs])
        m = helper.make_model(graph, opset_imports=list(model.opset_import), functions=list(model.functions))
        m.graph.initializer.extend(used_inits)  # once: make_model copies its graph, which held them twice at once
        # IR 4 is the first whose initializers need not be graph inputs too (older exports: IR 3)
        m.ir_version = min(max(model.ir_version or IR_VERSION, 4), IR_VERSION)
        error = _check_error(m) if strict else None
        if error:
            raise ReplayError(f"segment {seg.index} on {seg.device} is not a valid ONNX model: {error}")
        out.append(SegmentModel(seg, m, inputs, outputs))
    return out


def _rank_only(vi: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    """``vi`` with its tensor's sizes left open and its rank kept: how a segment holding a control-flow node
    declares its inputs, since ORT type-checks every branch of an ``If`` against the sizes its inputs declare,
    the branches a run never takes too (silero-vad's 8 kHz branch refuses its 16 kHz input's fixed length).

    >>> vi = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 512])
    >>> [d.HasField("dim_value") for d in _rank_only(vi).type.tensor_type.shape.dim]
    [False, False]
    """
    if not vi.type.tensor_type.HasField("shape"):
        return vi
    out = onnx.ValueInfoProto()
    out.CopyFrom(vi)
    for d in out.type.tensor_type.shape.dim:
        d.Clear()
    return out


def _check_error(model: onnx.ModelProto) -> str | None:
    """The ONNX checker's first complaint about ``model`` (None when it passes).  Its large initializers
    are checked as graph inputs instead: the checker reads no value, and copying and serialising them for
    it took 1.4 s per segment of a 512 MiB model."""
    graph = model.graph
    large = large_initializers(graph) + [t for t in graph.initializer if held_beside(t)]  # values beside: none here
    if large:
        names = {t.name for t in large}
        model = helper.make_model(
            helper.make_graph(graph.node, graph.name, list(graph.input) + [
                helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in large],
                graph.output, [t for t in graph.initializer if t.name not in names], value_info=graph.value_info),
            opset_imports=model.opset_import, functions=model.functions, ir_version=model.ir_version)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        return str(exc).splitlines()[0]
    except ValueError as exc:  # beyond protobuf's limit in what stays (large values in Constants or subgraphs)
        return f"too large to check: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def _node_order(graph: onnx.GraphProto, tasks: Sequence[str]) -> list[str]:
    """The segment's nodes in the model's (topological) order."""
    inside = set(tasks)
    return [n.name for n in graph.node if n.name in inside]
