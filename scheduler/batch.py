"""A batch of independent inferences as one model: Ramiel's hyperclustering, solved for one makespan.

For a small batch ``B``, Ramiel runs ``B`` copies of the clustered graph interleaved.
Here the model itself becomes ``B`` copies of its graph, side by side in one ONNX
model: copy ``k``'s nodes, tensors, inputs and outputs are named ``b<k>/<name>``, and
the copies share the weights (one initializer, read by every copy).  Its task graph
is ``B`` disjoint copies of the model's, so every solver, bound, replay and export
works on it unchanged: a latency schedule of it is the makespan of the whole batch,
and its replay checks every copy's outputs.

Example
-------
>>> from scheduler.zoo import build
>>> m = batch_copies(build("mlp", layers=2), 3)
>>> [i.name for i in m.graph.input]
['b0/x', 'b1/x', 'b2/x']
"""

from __future__ import annotations

import onnx
from onnx import helper

from .errors import ModelError
from .graph import subgraph_reads, with_graph

MAX_BATCH = 64
"""The most copies a batch may have (the models and the exact solvers grow with it)."""


def copy_name(copy: int, name: str) -> str:
    """The name of tensor or node ``name`` in copy ``copy`` (an empty name stays empty: an absent input)."""
    return f"b{copy}/{name}" if name else name


def batch_copies(model: onnx.ModelProto, copies: int) -> onnx.ModelProto:
    """``copies`` side-by-side copies of ``model``'s graph sharing its initializers (``copies == 1``: the model).

    Nodes must be named (:func:`scheduler.graph.name_nodes`).  A model whose nodes have
    subgraphs (``If``, ``Loop``, ``Scan``) reading outer tensors is refused: their
    bodies would need renaming too.
    """
    if not 1 <= copies <= MAX_BATCH:
        raise ModelError(f"batch must be from 1 to {MAX_BATCH}, got {copies}")
    if copies == 1:
        return model
    g = model.graph
    shared = {t.name for t in g.initializer} | {t.name for t in g.sparse_initializer}
    if any(subgraph_reads(n) for n in g.node):
        raise ModelError(f"model {g.name!r}: a batch of copies needs a model without subgraphs that read outer "
                         "tensors (If, Loop, Scan)")

    def rename(copy: int, name: str) -> str:
        return name if name in shared else copy_name(copy, name)

    nodes, inputs, outputs, infos = [], [], [], []
    for k in range(copies):
        for n in g.node:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.name = copy_name(k, n.name)
            c.input[:] = [rename(k, x) for x in n.input]
            c.output[:] = [rename(k, x) for x in n.output]
            nodes.append(c)
        for group, out in ((g.input, inputs), (g.output, outputs), (g.value_info, infos)):
            for vi in group:
                if vi.name in shared:  # an initializer listed as an input: stays one
                    if k == 0:
                        out.append(vi)
                    continue
                c = onnx.ValueInfoProto()
                c.CopyFrom(vi)
                c.name = copy_name(k, vi.name)
                out.append(c)
    graph = helper.make_graph(nodes, f"{g.name}_batch{copies}", inputs, outputs, value_info=infos,
                              sparse_initializer=list(g.sparse_initializer))
    return with_graph(model, graph, g.initializer)
