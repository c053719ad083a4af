"""Ramiel's node cloning and dead-code elimination, as a rewrite of the model every solver then schedules.

Ramiel clones cheap producers (a Reshape, a constant, a small shared node) into each
consumer's cluster so that parallel paths stop waiting for one another, then removes
what became dead.  Here the model is rewritten: a cheap node read by several nodes
gets one copy per reader (``<name>/clone<k>``, its outputs renamed alike), walking
the graph from the outputs up so that a chain of cheap nodes is copied whole; then
every node that no graph output depends on is removed.  The task graph of the
rewritten model has a task per copy, so any solver may place each copy beside its
reader, and the replay runs each copy in the segment that holds it (outputs still
equal the model's).

Cheap: a shape or layout op (:data:`CHEAP_OPS`), or any node whose outputs hold at
most ``max_bytes`` together.  The rewrite comes after ONNX Runtime's graph
optimisation, whose common-subexpression elimination would merge the copies again.

Example
-------
>>> from scheduler.zoo import build
>>> m = build("siamese", layers=1)
>>> len(clone_producers(m).graph.node) >= len(m.graph.node)
True
"""

from __future__ import annotations

from collections import defaultdict

import onnx

from .graph import node_reads, subgraph_reads, tensor_bytes

CHEAP_OPS = frozenset({"Constant", "ConstantOfShape", "Shape", "Size", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                       "Identity", "Cast", "Gather", "Slice", "Range", "Expand"})
"""Op types cloned whatever their size: they compute shapes or view data."""


def dead_code(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the nodes that no graph output depends on (and the initializers left unread)."""
    g = model.graph
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(g.node):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(node_reads(n))
    keep.reverse()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(keep)
    inits = [t for t in g.initializer if t.name in needed]
    del out.graph.initializer[:]
    out.graph.initializer.extend(inits)
    return out


def clone_producers(model: onnx.ModelProto, max_bytes: int = 4096) -> onnx.ModelProto:
    """``model`` with every cheap node that several nodes read copied once per reader, then dead code removed.

    Nodes must be in topological order (as ONNX Runtime's optimised models and
    :func:`scheduler.graph.name_nodes` leave them).  A node read through a subgraph
    (``If``, ``Loop``, ``Scan``) or by a graph output is not copied.
    """
    model = dead_code(model)
    g = model.graph
    infos = {vi.name: vi for vi in list(g.value_info) + list(g.output)}
    keep_whole = {o.name for o in g.output} | {x for n in g.node for x in subgraph_reads(n)}
    nodes = [_copy(n) for n in g.node]
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in nodes:
        for x in dict.fromkeys(n.input):
            if x:
                readers[x].append(n)
    copies: dict[int, list[onnx.NodeProto]] = {}
    new_infos = []
    for node in reversed(nodes):  # from the outputs up: a copied reader adds readers to its producers
        produced = [o for o in node.output if o]
        sizes = [tensor_bytes(infos[o]) if o in infos else None for o in produced]
        cheap = node.op_type in CHEAP_OPS or (None not in sizes and sum(sizes) <= max_bytes)
        users = list({id(r): r for o in produced for r in readers[o]}.values())
        if len(users) < 2 or not cheap or any(o in keep_whole for o in produced):
            continue
        copies[id(node)] = []
        for j, user in enumerate(users[1:], 1):
            c = _copy(node)
            c.name = f"{node.name}/clone{j}"
            renamed = {o: f"{o}/clone{j}" for o in produced}
            c.output[:] = [renamed.get(o, o) for o in node.output]
            user.input[:] = [renamed.get(x, x) for x in user.input]
            for o, r in renamed.items():
                readers[o].remove(user)
                readers[r].append(user)
                if o in infos:
                    vi = onnx.ValueInfoProto()
                    vi.CopyFrom(infos[o])
                    vi.name = r
                    new_infos.append(vi)
            for x in dict.fromkeys(c.input):
                if x:
                    readers[x].append(c)
            copies[id(node)].append(c)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    for n in nodes:  # each node's copies right after it: before their readers, after their producers' copies
        out.graph.node.append(n)
        out.graph.node.extend(copies.get(id(n), []))
    out.graph.value_info.extend(new_infos)
    return out


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    c = onnx.NodeProto()
    c.CopyFrom(node)
    return c
