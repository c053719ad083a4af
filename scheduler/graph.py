"""Task graph: the dataflow DAG of an ONNX model, one task per node.

Tasks are ONNX nodes (initializers and graph inputs are data, not tasks); an edge
``u -> v`` carries every tensor that ``u`` produces and ``v`` consumes, with its
size in bytes.  Each task keeps its op type, a FLOPs estimate, the bytes it moves
and the bytes it keeps resident (weights + outputs), which the cost model and the
memory constraints use.

Example
-------
>>> from scheduler.zoo import build
>>> g = task_graph_from_onnx(build("mlp", layers=2))
>>> len(g.tasks) > 0 and all(e.bytes > 0 for e in g.edges)
True
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator, Mapping, Sequence

import networkx as nx
import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference
from onnx.external_data_helper import load_external_data_for_model

from .errors import ModelError
from .ops import op_family


@dataclass(frozen=True)
class Task:
    """One schedulable unit (an ONNX node, or a group of them)."""

    name: str
    op_type: str = ""
    flops: float = 0.0
    bytes_moved: float = 0.0
    memory_bytes: int = 0
    onnx_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Edge:
    """Data dependency ``src -> dst`` carrying ``bytes`` (possibly several tensors)."""

    src: str
    dst: str
    bytes: int = 0
    tensors: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskGraph:
    """A DAG of tasks; construction checks names, endpoints and acyclicity."""

    name: str
    tasks: tuple[Task, ...]
    edges: tuple[Edge, ...]
    unknown_shape_tensors: tuple[str, ...] = field(default=())
    unsized_values: tuple[str, ...] = field(default=())  # sequences, maps, optionals: counted as 0 bytes too

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ModelError(f"task graph {self.name!r}: task name {dup!r} is used twice")
        known = set(names)
        seen: set[tuple[str, str]] = set()
        for e in self.edges:
            for end in (e.src, e.dst):
                if end not in known:
                    raise ModelError(f"task graph {self.name!r}: edge {e.src}->{e.dst} names unknown task {end!r}")
            if e.src == e.dst:
                raise ModelError(f"task graph {self.name!r}: self-loop on task {e.src!r}")
            if (e.src, e.dst) in seen:
                raise ModelError(f"task graph {self.name!r}: edge {e.src}->{e.dst} is given twice")
            if e.bytes < 0:
                raise ModelError(f"task graph {self.name!r}: edge {e.src}->{e.dst} has negative bytes")
            seen.add((e.src, e.dst))
        if not nx.is_directed_acyclic_graph(self.nx):
            cycle = nx.find_cycle(self.nx)
            path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
            raise ModelError(f"task graph {self.name!r} has a cycle: {path}")

    @cached_property
    def nx(self) -> nx.DiGraph:
        """The graph as a networkx DiGraph (edge attribute ``bytes``)."""
        g = nx.DiGraph()
        g.add_nodes_from(t.name for t in self.tasks)
        g.add_edges_from((e.src, e.dst, {"bytes": e.bytes}) for e in self.edges)
        return g

    @cached_property
    def task(self) -> Mapping[str, Task]:
        """Tasks by name."""
        return {t.name: t for t in self.tasks}

    @cached_property
    def topological_order(self) -> tuple[str, ...]:
        """A topological order that keeps the file order among independent tasks."""
        index = {t.name: i for i, t in enumerate(self.tasks)}
        return tuple(nx.lexicographical_topological_sort(self.nx, key=index.__getitem__))


# --------------------------------------------------------------------------- ONNX import

_ZERO_FLOP_OPS = frozenset(
    "Reshape Transpose Gather GatherElements GatherND Concat Slice Split Flatten Squeeze Unsqueeze "
    "Identity Cast Shape Size Constant ConstantOfShape Expand Tile Pad Range Dropout ScatterND "
    "ScatterElements DepthToSpace SpaceToDepth NonZero TopK Resize".split()
)
# FLOPs per output element for element-wise and normalisation ops (rough, order of magnitude).
_PER_ELEMENT = {
    "Softmax": 5, "LogSoftmax": 5, "LayerNormalization": 8, "BatchNormalization": 2,
    "InstanceNormalization": 8, "Gelu": 8, "Erf": 4, "Tanh": 4, "Sigmoid": 4, "Exp": 4,
    "Log": 4, "Sqrt": 2, "Pow": 4, "HardSigmoid": 3, "Softplus": 4, "Elu": 3,
}
_REDUCE_OPS = frozenset("ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL2 ReduceL1 "
                        "ReduceSumSquare ReduceLogSumExp GlobalAveragePool GlobalMaxPool ArgMax ArgMin".split())


def _dtype_bits(elem_type: int) -> int:
    """Bits of one element of ONNX type ``elem_type`` as ONNX stores it (int4: 4; 0 when unknown)."""
    if elem_type in _PACKED_BITS:
        return _PACKED_BITS[elem_type]
    try:
        return 8 * int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 0


def _packed_bytes(elements: int, bits: int) -> int:
    """Bytes of ``elements`` values of ``bits`` each, packed (the last byte may be half used)."""
    return -(-elements * bits // 8)


@dataclass(frozen=True)
class _TensorInfo:
    shape: tuple[int, ...] | None  # None: unknown
    bits: int  # of one element

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if self.shape is not None else 0

    @property
    def nbytes(self) -> int:
        return _packed_bytes(self.elements, self.bits)


def _value_info(vi: onnx.ValueInfoProto) -> _TensorInfo:
    tt = vi.type.tensor_type
    bits = _dtype_bits(tt.elem_type)
    if not tt.HasField("shape"):
        return _TensorInfo(None, bits)
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            return _TensorInfo(None, bits)
    return _TensorInfo(tuple(dims), bits)


def tensor_bytes(vi: onnx.ValueInfoProto) -> int | None:
    """Bytes of the tensor ``vi`` types, packed as ONNX stores it (int4: two to a byte); None when its shape
    or type is not known."""
    info = _value_info(vi)
    return info.nbytes if info.shape is not None and info.bits else None


PROTOBUF_LIMIT = 2**31 - 1
"""Bytes one serialised ONNX model can hold (protobuf's limit); beyond it, large initializers travel beside
the model (:func:`take_out_large`)."""

LARGE_TENSOR = 1 << 20
"""Initializers of at least this many bytes are the ones :func:`take_out_large` moves out."""


_PACKED_BITS = {getattr(onnx.TensorProto, name): bits for name, bits in (
    ("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2), ("FLOAT6E2M3", 6), ("FLOAT6E3M2", 6))
    if hasattr(onnx.TensorProto, name)}
"""Bits of the element types packed below a byte.  numpy holds them one element per byte, so an array cannot
give ONNX Runtime such a value: these stay in the model's bytes (:func:`_is_large_value`)."""


def value_bytes(tensor: onnx.TensorProto) -> int:
    """Bytes of ``tensor``'s value held in the model (0 when it lies in external data), from its shape."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return 0
    return _packed_bytes(math.prod(tensor.dims), _dtype_bits(tensor.data_type))


def is_large(model: onnx.ModelProto, beside: int = 0) -> bool:
    """Whether ``model`` passes :data:`PROTOBUF_LIMIT`, so that protobuf cannot serialise it whole: its
    initializers' values (counted from their shapes: protobuf's own ``ByteSize`` took 1 s on 512 MiB), the
    ``beside`` bytes of its values held outside it, and its nodes."""
    values = beside + sum(value_bytes(t) for t in model.graph.initializer)
    return values > PROTOBUF_LIMIT or values + sum(n.ByteSize() for n in model.graph.node) > PROTOBUF_LIMIT


def large_initializers(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """The initializers whose values :func:`take_out_large` moves: at least :data:`LARGE_TENSOR` bytes held in
    the model, strings left aside."""
    return [t for t in graph.initializer if _is_large_value(t)]


def take_out_large(model: onnx.ModelProto, location: str, offset: int = 0) -> list[tuple[str, np.ndarray]]:
    """Move the values of ``model``'s :func:`large_initializers` (main graph) out of it, **in place**: each
    becomes an external tensor at ``location`` (offsets from ``offset``, as if the values were written there
    one after another, in the returned order) and its value is returned as ``(name, array)``.

    What lets hetsched handle models beyond :data:`PROTOBUF_LIMIT`: the rest serialises, and ONNX Runtime
    takes the values from memory (``SessionOptions.add_external_initializers``) or from the file.
    """
    out = []
    for tensor in large_initializers(model.graph):
        value = numpy_helper.to_array(tensor)
        for data in _TENSOR_DATA:
            tensor.ClearField(data)
        point_to(tensor, location, offset, value.nbytes)
        out.append((tensor.name, value))
        offset += value.nbytes
    return out


def without_large_values(model: onnx.ModelProto, location: str = "values-elsewhere") -> onnx.ModelProto:
    """A copy of ``model`` whose :func:`large_initializers` are placeholders (their type and dims, external at
    ``location``, no value): what ONNX shape inference needs, which serialises the model it is given (the
    values of ``gpt2-small``, 619 MiB, took 2.3 s to serialise and 1.9 s more to infer through).

    >>> from onnx import helper, numpy_helper
    >>> w = numpy_helper.from_array(np.zeros((512, 1024), np.float32), "w")
    >>> m = helper.make_model(helper.make_graph([], "g", [], [], [w]))
    >>> t = without_large_values(m).graph.initializer[0]
    >>> list(t.dims), t.raw_data, t.data_location == onnx.TensorProto.EXTERNAL
    ([512, 1024], b'', True)
    """
    out = onnx.ModelProto()
    _copy_fields(model, out, skip=("graph",))
    _copy_fields(model.graph, out.graph, skip=("initializer",))
    for tensor in model.graph.initializer:
        if _is_large_value(tensor):
            held = out.graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
            point_to(held, location, 0, value_bytes(tensor))
        else:
            out.graph.initializer.append(tensor)
    return out


def copy_taking_out_large(model: onnx.ModelProto, location: str, known: Mapping[str, np.ndarray] | None = None
                          ) -> tuple[onnx.ModelProto, list[tuple[str, np.ndarray]]]:
    """What a copy of ``model`` and :func:`take_out_large` on it give, without copying the large values into
    the copy first: they are most of a large model, and every session made of one paid a copy of it.  A value
    named in ``known`` is that array, not a new one (the segments of one model share their values); so is
    the value of a placeholder (:func:`held_beside`), which must be there.

    A large main-graph ``Constant`` is lifted on the way (:func:`lift_large_values`), not copied with its
    node, when that gives what lifting the copy would: no control flow (whose bodies' values lift in
    between), nodes named (naming counts the Constants' places) and IR 4 or later.  A model of 1 GiB of
    weights in Constants then takes 1 GiB more here, not 3 (the nodes copied, lifted, taken out).
    """
    out = onnx.ModelProto()
    _copy_fields(model, out, skip=("graph",))
    _copy_fields(model.graph, out.graph, skip=("initializer", "node"))
    lift = lifts_as_copied(model)
    constants = []
    for node in model.graph.node:
        value = _large_constant(node) if lift else None
        if value is None:
            out.graph.node.append(node)
        else:
            constants.append((node.output[0], value))
    values, offset = [], 0
    for name, tensor in [(t.name, t) for t in model.graph.initializer] + constants:
        beside = held_beside(tensor)
        if beside and not (known and name in known):
            raise ValueError(f"the value of initializer {name!r} travels beside the model and was not given")
        if not beside and not _is_large_value(tensor):
            out.graph.initializer.append(tensor)
            continue
        value = known[name] if known and name in known else numpy_helper.to_array(tensor)
        placeholder = _copy_fields(tensor, out.graph.initializer.add(), skip=_TENSOR_DATA + ("external_data",))
        placeholder.name = name
        point_to(placeholder, location, offset, value.nbytes)
        values.append((name, value))
        offset += value.nbytes
    return out, values


def lifts_as_copied(model: onnx.ModelProto) -> bool:
    """Whether :func:`copy_taking_out_large` may lift ``model``'s large Constants itself (see there)."""
    names = [node.name for node in model.graph.node]
    return (not model.ir_version or model.ir_version >= 4) and all(names) and len(set(names)) == len(names) \
        and not any(subgraphs(node) for node in model.graph.node)


IN_MEMORY = "in-memory"
"""The external-data location of a value that travels beside a model's bytes, not in a file
(:class:`~scheduler.optimize.ModelBytes`)."""


def held_beside(tensor: onnx.TensorProto) -> bool:
    """Whether ``tensor`` is a placeholder whose value travels beside the model (external at
    :data:`IN_MEMORY`): what the large initializers of a ModelBytes' model are."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL and any(
        e.key == "location" and e.value == IN_MEMORY for e in tensor.external_data)


def raw_view(value: np.ndarray) -> memoryview:
    """``value``'s bytes as a tensor's raw data holds them, without a copy (``value.data`` refuses the
    ``ml_dtypes`` arrays of bfloat16 and float8 values)."""
    return np.ascontiguousarray(value).reshape(-1).view(np.uint8).data


_TENSOR_DATA = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data")
"""The fields of a ``TensorProto`` that can hold a (non-string) value."""


def point_to(tensor: onnx.TensorProto, location: str, offset: int, nbytes: int) -> None:
    """Make ``tensor`` (its value already out of it) an external tensor at ``location``."""
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, text in (("location", location), ("offset", str(offset)), ("length", str(nbytes))):
        tensor.external_data.add(key=key, value=text)


def with_graph(model: onnx.ModelProto, graph: onnx.GraphProto,
               initializers: Sequence[onnx.TensorProto] = ()) -> onnx.ModelProto:
    """A copy of ``model`` with ``graph`` in place of its own, ``initializers`` added to it: each value copied
    once (copying the model, then setting its graph, held the model's values three times at once).

    >>> m = helper.make_model(helper.make_graph([], "a", [], []), producer_name="p")
    >>> w = helper.make_tensor("w", onnx.TensorProto.FLOAT, [1], [1.0])
    >>> out = with_graph(m, helper.make_graph([], "b", [], []), [w])
    >>> out.producer_name, out.graph.name, [t.name for t in out.graph.initializer]
    ('p', 'b', ['w'])
    """
    out = _copy_fields(model, onnx.ModelProto(), skip=("graph",))
    out.graph.CopyFrom(graph)
    out.graph.initializer.extend(initializers)
    return out


def _copy_fields(src: Any, dst: Any, skip: Sequence[str] = ()) -> Any:
    """Copy the set fields of protobuf message ``src`` into ``dst`` but those named in ``skip``; ``dst``.

    A skipped field is never read: ``ListFields`` would give a tensor's raw data as a new bytes object
    (a copy of 256 MB for one weight of 8192 x 8192 floats, 0.2 s) only for it to be skipped.
    """
    for fd in src.DESCRIPTOR.fields:
        if fd.name in skip:
            continue
        if fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED:  # protobuf < 6.31
            if len(getattr(src, fd.name)):
                getattr(dst, fd.name).extend(getattr(src, fd.name))
        elif not src.HasField(fd.name):
            continue
        elif fd.message_type is not None:
            getattr(dst, fd.name).CopyFrom(getattr(src, fd.name))
        else:
            setattr(dst, fd.name, getattr(src, fd.name))
    return dst


def _is_large_value(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location != onnx.TensorProto.EXTERNAL and _large_by_shape(tensor)


def _large_constant(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor of a ``Constant`` node whose ``value`` is large (:data:`LARGE_TENSOR`), else None."""
    if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        for at in node.attribute:
            if at.name == "value" and at.type == onnx.AttributeProto.TENSOR and _is_large_value(at.t):
                return at.t
    return None


def lift_large_values(model: onnx.ModelProto) -> int:
    """Make ``model``'s large values main-graph initializers, **in place**, computing the same: the only ones
    :func:`take_out_large` can move, and the only ones ONNX Runtime takes from memory (a subgraph's, it
    looks for in a file).  Without it, a model beyond :data:`PROTOBUF_LIMIT` that keeps its weights in
    ``Constant`` nodes or inside a control-flow body could not be serialised.

    - A large ``Constant`` node of the main graph becomes an initializer named by its output (what ONNX
      Runtime does when it loads a model).
    - A large initializer or ``Constant`` of a subgraph becomes a main-graph initializer, which the subgraph
      reads from the outer scope, when its name is defined nowhere else in the model (nothing to shadow)
      and is not one of the subgraph's own outputs.

    Models before IR 4 are left as they are (their initializers must be graph inputs too).  Returns how
    many values moved: the memory of the nodes and tensors they left is protobuf's until ``model`` is
    dropped, so a model to keep is best copied afresh after a move.
    """
    if model.ir_version and model.ir_version < 4:
        return 0
    counts: dict[str, int] = defaultdict(int)
    main = model.graph
    _count_definitions(main, counts)
    return _lift(main, main, counts)


# Module functions, not closures: a recursive closure is a reference cycle that kept the graph it lifted,
# with the values it left behind, until the garbage collector ran (2 GiB of a 1 GiB model's Constants).
def _count_definitions(g: onnx.GraphProto, counts: dict[str, int]) -> None:
    for name in [i.name for i in g.input] + [i.name for i in g.initializer] + \
                [i.values.name for i in g.sparse_initializer]:
        counts[name] += 1
    for node in g.node:
        for name in node.output:
            counts[name] += 1
        for sub in subgraphs(node):
            _count_definitions(sub, counts)


def _lift(g: onnx.GraphProto, main: onnx.GraphProto, counts: Mapping[str, int]) -> int:
    """Lift what ``g`` and its bodies hold into ``main`` (:func:`lift_large_values`); how many values moved."""
    outputs, lifted, inner = {o.name for o in g.output}, [], 0
    for i, node in enumerate(g.node):
        inner += sum(_lift(sub, main, counts) for sub in subgraphs(node))
        value = _large_constant(node)
        if value is not None and (g is main or (counts[node.output[0]] == 1 and node.output[0] not in outputs)):
            main.initializer.append(value)
            main.initializer[-1].name = node.output[0]
            lifted.append(i)
    for i in reversed(lifted):
        del g.node[i]
    moved = [] if g is main else [i for i, t in enumerate(g.initializer)
                                  if _is_large_value(t) and counts[t.name] == 1 and t.name not in outputs]
    main.initializer.extend(g.initializer[i] for i in moved)
    for i in reversed(moved):
        del g.initializer[i]
    return inner + len(lifted) + len(moved)


def load_model(model: str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    """Read an ONNX model from a path (external data included), or pass a ModelProto through, with a clear
    error."""
    if isinstance(model, onnx.ModelProto):
        return model
    return _read_model(os.fspath(model), values=True)


def load_model_mapped(path: str, least: int) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """:func:`load_model` of the file at ``path`` whose large values, when they come to ``least`` bytes or more
    and lie in files beside it, stay there: the model's placeholders are held beside it and their values,
    returned by name, are views of those files (:func:`map_large_values`).  Otherwise the model is read
    whole and no value is returned."""
    proto = _read_model(path, values=False)
    folder = os.path.dirname(os.path.abspath(path))
    values = map_large_values(proto, folder, least)
    if values is not None:
        return proto, values
    try:
        load_external_data_for_model(proto, folder)  # as onnx.load reads them (keys of stored profiles stay)
        return proto, {}
    except Exception as exc:  # a missing or short values file: OSError, ValueError...
        raise ModelError(f"cannot read the values of ONNX model {path!r}: {type(exc).__name__}: {exc}"
                         .splitlines()[0]) from None


def _read_model(path: str, values: bool) -> onnx.ModelProto:
    """The model file at ``path``, with its external values read or not, refused in one line when it is no
    model with nodes and outputs."""
    if not os.path.isfile(path):
        raise ModelError(f"ONNX model {path!r} does not exist")
    try:
        proto = onnx.load(path, load_external_data=values)
    except Exception as exc:  # protobuf raises several unrelated types
        raise ModelError(f"cannot read ONNX model {path!r}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not proto.graph.node:
        raise ModelError(f"ONNX model {path!r} has no nodes (is it an ONNX file?)")
    if not proto.graph.output:
        raise ModelError(f"ONNX model {path!r} has no graph outputs: nothing it computes is returned")
    return proto


def map_large_values(model: onnx.ModelProto, folder: str, least: int = 0) -> dict[str, np.ndarray] | None:
    """Make the large main-graph initializers of ``model``, read without its external values from a file in
    ``folder``, placeholders held beside it (:func:`held_beside`), **in place**, and return their values:
    read-only views of the files in ``folder`` where they lie, which ONNX Runtime maps in turn.  Their
    bytes are then neither read into the proto nor copied out of it (a model of 1 GiB of weights: 12 s and
    twice its size in memory less).  Smaller external values are read into ``model`` as ONNX's loader reads
    them.

    None, ``model`` untouched, when the large values come to fewer than ``least`` bytes, or when a value lies
    elsewhere: in a subgraph, a sparse or attribute tensor, a file that is no regular file directly in
    ``folder`` (ONNX Runtime refuses links out of it), or beyond its file's end (read the model whole then,
    which says what is wrong).
    """
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if not external or any(t.data_location == onnx.TensorProto.EXTERNAL for t in _other_tensors(model.graph)):
        return None
    sizes: dict[str, int] = {}
    found = [_placed(tensor, folder, sizes) for tensor in external]
    placed = [p for p in found if p is not None]
    if len(placed) < len(found) or sum(p[3] for p in placed if _large_by_shape(p[0])) < max(least, 1):
        return None
    files = {name: np.memmap(os.path.join(folder, name), dtype=np.uint8, mode="r") for name in sizes}
    values = {}
    for tensor, name, offset, nbytes, dtype in placed:
        view = files[name][offset:offset + nbytes]
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT  # what ONNX's loader leaves on a value it read
        if _large_by_shape(tensor):
            values[tensor.name] = view.view(dtype).reshape(tuple(tensor.dims))
            point_to(tensor, IN_MEMORY, 0, nbytes)
        else:
            tensor.raw_data = view.tobytes()
    return values


def _placed(tensor: onnx.TensorProto, folder: str, sizes: dict[str, int]
            ) -> tuple[onnx.TensorProto, str, int, int, np.dtype] | None:
    """Where ``tensor``'s external value lies (the tensor, its file's name in ``folder``, offset, bytes, numpy
    type), or None when it cannot be mapped there (:func:`map_large_values`); ``sizes``: the files' sizes,
    added to."""
    where = {e.key: e.value for e in tensor.external_data}
    name = where.get("location", "")
    path = os.path.join(folder, name)
    if name in ("", ".", "..") or os.path.basename(name) != name or os.path.islink(path) \
            or not os.path.isfile(path) or tensor.data_type in _PACKED_BITS:
        return None
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
        nbytes = math.prod(tensor.dims) * dtype.itemsize
        offset, length = int(where.get("offset", 0)), int(where.get("length", nbytes))
    except (KeyError, TypeError, ValueError):  # an unknown type, a malformed number: ONNX's loader says so
        return None
    size = sizes.setdefault(name, os.path.getsize(path))
    if dtype.hasobject or length != nbytes or offset < 0 or offset + length > size:
        return None
    return tensor, name, offset, nbytes, dtype


def _large_by_shape(tensor: onnx.TensorProto) -> bool:
    """Whether ``tensor``'s value is large (:data:`LARGE_TENSOR`, strings and values packed below a byte left
    aside) by its type and dims, wherever it lies: :func:`_is_large_value` when it lies in the model."""
    return _packed_bytes(math.prod(tensor.dims), _dtype_bits(tensor.data_type)) >= LARGE_TENSOR \
        and tensor.data_type != onnx.TensorProto.STRING and tensor.data_type not in _PACKED_BITS


def _other_tensors(graph: onnx.GraphProto, main: bool = True) -> Iterator[onnx.TensorProto]:
    """Every tensor of ``graph`` and its bodies but the main graph's (``main``) dense initializers: sparse
    ones' values and indices, attributes' tensors, the bodies' initializers."""
    if not main:
        yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for at in node.attribute:
            yield from ([at.t] if at.HasField("t") else []) + list(at.tensors)
            for sparse in ([at.sparse_tensor] if at.HasField("sparse_tensor") else []) + list(at.sparse_tensors):
                yield from (sparse.values, sparse.indices)
        for sub in subgraphs(node):
            yield from _other_tensors(sub, main=False)


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy whose nodes all have unique names (``op_type_i`` for blank or repeated ones).

    Task names are node names, so replay and import must agree on them: both call this
    (or :func:`name_nodes_in_place` on a copy of their own).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    name_nodes_in_place(out)
    return out


def name_nodes_in_place(model: onnx.ModelProto) -> None:
    """:func:`name_nodes` on ``model`` itself."""
    used: set[str] = set()
    given = {node.name for node in model.graph.node if node.name}  # generated names avoid these
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in used:
            base = f"{node.op_type}_{i}"
            name, k = base, 0
            while name in used or name in given:
                k += 1
                name = f"{base}_{k}"
            node.name = name
        used.add(node.name)


def real_inputs(graph: onnx.GraphProto) -> dict[str, onnx.ValueInfoProto]:
    """The graph's inputs a caller feeds, by name: its listed inputs less its initializers (before IR 4
    every initializer is listed as an input too)."""
    inits = {i.name for i in graph.initializer}
    return {vi.name: vi for vi in graph.input if vi.name not in inits}


def is_fixed(dim: onnx.TensorShapeProto.Dimension) -> bool:
    """Whether a declared dimension has a size: a negative one, as PaddlePaddle's exporter writes for a
    dynamic size (-1), is dynamic to ONNX Runtime."""
    return dim.HasField("dim_value") and dim.dim_value >= 0


def fix_input_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None) -> onnx.ModelProto:
    """Return a copy with the graph inputs' dimensions fixed; reject any dynamic dim left open."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    fix_input_shapes_in_place(out, input_shapes)
    return out


def fix_input_shapes_in_place(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None) -> None:
    """:func:`fix_input_shapes` on ``model`` itself (a model of 1 GiB copied for its inputs' sake took 1 GiB
    more); on a refusal some inputs may be fixed already."""
    shapes = dict(input_shapes or {})
    inputs = real_inputs(model.graph)
    for name in shapes:
        if name not in inputs:
            raise ModelError(f"--input-shape names {name!r}, which is not a graph input (inputs: {', '.join(inputs) or 'none'})")
    for name, vi in inputs.items():
        kind = vi.type.WhichOneof("value")
        if kind in ("sequence_type", "optional_type", "map_type"):  # its values' shapes are their own
            if name in shapes:
                what = {"optional_type": "an optional", "sequence_type": "a sequence"}.get(kind, "a map")
                raise ModelError(f"input {name!r} is {what}, whose shapes come with its values (--inputs), "
                                 "not --input-shape")
            continue
        if kind not in (None, "tensor_type"):  # a shape given would turn it into a tensor
            raise ModelError(f"input {name!r} is a {kind.removesuffix('_type')}; hetsched takes models whose "
                             "inputs are tensors, sequences, maps and optionals")
        tt = vi.type.tensor_type
        if name in shapes:
            dims = [int(d) for d in shapes[name]]
            if any(d < 0 for d in dims):
                raise ModelError(f"input shape for {name!r} must be integers >= 0, got {dims}")
            if tt.HasField("shape") and len(tt.shape.dim) not in (0, len(dims)):
                raise ModelError(f"input {name!r} has rank {len(tt.shape.dim)}, but the given shape {dims} has rank {len(dims)}")
            tt.ClearField("shape")
            tt.shape.SetInParent()  # a scalar's shape has no dims, but is there
            for d in dims:
                tt.shape.dim.add().dim_value = d
            continue
        if not tt.HasField("shape"):
            raise ModelError(f"input {name!r} has no shape; give one with --input-shape {name}=D1,D2,...")
        for d in tt.shape.dim:
            if not is_fixed(d):
                kind = f"dynamic dimension {d.dim_param!r}" if d.dim_param else "a dynamic dimension without a name"
                sizes = [d.dim_value if is_fixed(d) else 1 for d in tt.shape.dim]
                raise ModelError(f"input {name!r} has {kind}; fix it, e.g. with --input-shape {name}="
                                 f"{','.join(map(str, sizes))} (in a run config: model: {{input_shapes: {{{name}: "
                                 f"{sizes}}}}}), or give its values (--inputs FILE.npz; model: {{inputs: FILE.npz}})")


def _constants(graph: onnx.GraphProto) -> list[tuple[str, onnx.TensorProto]]:
    """A graph's values known before it runs: its initializers and its ``Constant`` nodes' tensors."""
    return [(t.name, t) for t in graph.initializer] + [
        (n.output[0], at.t) for n in graph.node if n.op_type == "Constant" and n.output
        for at in n.attribute if at.name == "value"]


def _scope(graph: onnx.GraphProto, outer: Mapping[str, _TensorInfo],
           seen: Mapping[str, onnx.ValueInfoProto] | None = None) -> dict[str, _TensorInfo]:
    """What a (sub)graph's values are known to be: the outer scope's, then its own inputs, typed values and
    outputs, the types ``seen`` in a run, its initializers and constants (a subgraph's own names shadow the
    outer ones)."""
    info = dict(outer)
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.HasField("tensor_type"):
            info[vi.name] = _value_info(vi)
    info.update({vi.name: _value_info(vi) for vi in (seen or {}).values()})
    for name, t in _constants(graph):
        info[name] = _TensorInfo(tuple(int(d) for d in t.dims), _dtype_bits(t.data_type))
    return info


def _int_scalars(graph: onnx.GraphProto) -> dict[str, int]:
    """The integer scalars a graph holds as initializers or constants (a Loop's trip count, when fixed)."""
    return {name: int(numpy_helper.to_array(t).reshape(-1)[0]) for name, t in _constants(graph)
            if math.prod(t.dims) == 1 and t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
            and not t.external_data}


def _body_flops(graph: onnx.GraphProto, outer: Mapping[str, _TensorInfo], scalars: Mapping[str, int]) -> float:
    """FLOPs of one run of a subgraph: the sum over its nodes (:func:`_node_flops`, nested control flow too)."""
    info = _scope(graph, outer)
    scalars = {**scalars, **_int_scalars(graph)}
    return sum(_node_flops(n, [info.get(t) if t else None for t in n.input],
                           [info.get(t) if t else None for t in n.output], info, scalars) for n in graph.node)


def _control_flops(node: onnx.NodeProto, ins: list[_TensorInfo | None], scope: Mapping[str, _TensorInfo],
                   scalars: Mapping[str, int]) -> float:
    """FLOPs of an If (its costlier branch), a Loop (its body times the trip count, once when the count is
    not a constant) or a Scan (its body once per slice of the first scanned input)."""
    bodies = [_body_flops(g, scope, scalars) for g in subgraphs(node)]
    if node.op_type == "If":
        return max(bodies, default=0.0)
    if node.op_type == "Loop":
        trips = scalars.get(node.input[0], 1) if node.input and node.input[0] else 1
        return max(0, trips) * sum(bodies)
    attrs = {at.name: at for at in node.attribute}
    scanned = attrs["num_scan_inputs"].i if "num_scan_inputs" in attrs else 0
    first = ins[len(ins) - scanned] if 0 < scanned <= len(ins) else None
    axis = attrs["scan_input_axes"].ints[0] if "scan_input_axes" in attrs and attrs["scan_input_axes"].ints else 0
    steps = first.shape[axis] if first is not None and first.shape and -len(first.shape) <= axis < len(
        first.shape) else 1
    return max(1, steps) * sum(bodies)


def _node_flops(node: onnx.NodeProto, ins: list[_TensorInfo | None], outs: list[_TensorInfo | None],
                scope: Mapping[str, _TensorInfo] | None = None, scalars: Mapping[str, int] | None = None) -> float:
    """FLOPs estimate for one node from its tensor shapes (0 when shapes are unknown).

    A control-flow node counts what its subgraphs compute (:func:`_control_flops`), whose values are
    looked up in ``scope`` (the enclosing graph's) and, for a Loop's trip count, ``scalars``.
    """
    out = outs[0] if outs else None
    out_el = out.elements if out is not None else 0
    op = op_family(node.op_type)
    if op in _ZERO_FLOP_OPS:
        return 0.0
    if subgraphs(node):
        return _control_flops(node, ins, scope or {}, scalars or {})
    if op in ("LSTM", "GRU", "RNN"):  # every step multiplies the input by W and the state by R, per direction
        x, w, r = (list(ins) + [None] * 3)[:3]
        if x is None or x.shape is None or len(x.shape) != 3 or w is None or w.shape is None or r is None \
                or r.shape is None:
            return float(out_el)
        layout = next((at.i for at in node.attribute if at.name == "layout"), 0)
        seq, batch = x.shape[:2] if layout == 0 else x.shape[1::-1]
        return 2.0 * seq * batch * (w.elements + r.elements) + 8.0 * out_el
    if op == "MatMul":
        a = ins[0] if ins else None
        k = a.shape[-1] if a is not None and a.shape else 0
        return 2.0 * out_el * k
    if op == "Gemm":
        a = ins[0] if ins else None
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        k = 0
        if a is not None and a.shape and len(a.shape) == 2:
            k = a.shape[0] if trans_a else a.shape[1]
        return 2.0 * out_el * k + (out_el if len(ins) > 2 else 0)
    if op in ("Conv", "ConvTranspose"):
        w = ins[1] if len(ins) > 1 else None
        if w is None or w.shape is None or len(w.shape) < 2:
            return float(out_el)
        group = next((at.i for at in node.attribute if at.name == "group"), 1) or 1
        kernel = math.prod(w.shape[2:])
        if op == "Conv":
            per_out = w.shape[1] * kernel  # (C_in / group) * kernel
        else:
            per_out = (w.shape[0] // group) * kernel
        bias = out_el if len(ins) > 2 else 0
        return 2.0 * out_el * per_out + bias
    if op == "Attention":  # contrib Attention: packed QKV projection + scores + context
        x = ins[0] if ins else None
        w = ins[1] if len(ins) > 1 else None
        if x is None or x.shape is None or len(x.shape) != 3 or w is None or w.shape is None:
            return float(out_el)
        b, s, h_in = x.shape
        h = w.shape[-1] // 3
        return 2.0 * b * s * h_in * w.shape[-1] + 4.0 * b * s * s * h
    if op in ("MaxPool", "AveragePool", "LpPool"):
        ks = next((list(at.ints) for at in node.attribute if at.name == "kernel_shape"), [1])
        return float(out_el * math.prod(ks))
    if op in _REDUCE_OPS:
        src = ins[0] if ins else None
        return float(src.elements if src is not None else out_el)
    return float(out_el * _PER_ELEMENT.get(op, 1))


def subgraph_reads(node: onnx.NodeProto) -> list[str]:
    """Outer-scope values that the subgraphs of a control-flow node (If, Loop, Scan) read, recursively.

    They are inputs of the node as much as its listed inputs: a dependency, a
    boundary tensor when the node is cut into a segment, an initializer to copy.

    >>> then = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "then", [],
    ...                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    >>> subgraph_reads(helper.make_node("If", ["c"], ["z"], then_branch=then, else_branch=then))
    ['x']
    """
    free: list[str] = []
    for g in subgraphs(node):
        defined = {i.name for i in g.input} | {i.name for i in g.initializer} | \
                  {i.values.name for i in g.sparse_initializer}
        for n in g.node:
            free += [x for x in list(n.input) + subgraph_reads(n) if x and x not in defined]
            defined.update(n.output)
        free += [o.name for o in g.output if o.name not in defined]
    return list(dict.fromkeys(free))


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs held in ``node``'s attributes (an If's branches, a Loop's or Scan's body)."""
    return [g for at in node.attribute
            for g in ([at.g] if at.type == onnx.AttributeProto.GRAPH else at.graphs)]


def densify_sparse(graph: onnx.GraphProto) -> None:
    """Make each sparse initializer of ``graph`` and of its subgraphs a dense one, **in place**, as ONNX
    Runtime does when it loads the model: the task graph, the segments and their sessions then see one
    kind of initializer.

    >>> g = helper.make_graph([], "g", [], [])
    >>> g.sparse_initializer.extend([helper.make_sparse_tensor(numpy_helper.from_array(np.float32([5, 6]), "w"),
    ...                                                        numpy_helper.from_array(np.int64([1, 3])), [2, 2])])
    >>> densify_sparse(g)
    >>> numpy_helper.to_array(g.initializer[0]).tolist(), len(g.sparse_initializer)
    ([[0.0, 5.0], [0.0, 6.0]], 0)
    """
    for sparse in graph.sparse_initializer:
        values, indices = numpy_helper.to_array(sparse.values), numpy_helper.to_array(sparse.indices)
        dense = np.zeros(list(sparse.dims), dtype=values.dtype)
        if indices.ndim == 1:  # positions in the flattened tensor
            dense.reshape(-1)[indices] = values
        else:  # one row of coordinates per value
            dense[tuple(indices.T)] = values
        graph.initializer.append(numpy_helper.from_array(dense, sparse.values.name))
    del graph.sparse_initializer[:]
    for node in graph.node:
        for sub in subgraphs(node):
            densify_sparse(sub)


def node_reads(node: onnx.NodeProto) -> list[str]:
    """Every value a node reads: its inputs, then what its subgraphs read from the outer scope."""
    return list(dict.fromkeys([x for x in node.input if x] + subgraph_reads(node)))


def task_graph_from_onnx(
    model: str | os.PathLike[str] | onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    name: str | None = None,
    types: Mapping[str, onnx.ValueInfoProto] | None = None,
) -> TaskGraph:
    """Build the task graph of an ONNX model.

    Without ``types``, dynamic input dimensions must be fixed through ``input_shapes``
    (``{"input_ids": [1, 16]}``); shapes of the inputs and inner tensors come from ``types``
    (observed in a run: :func:`scheduler.optimize.observed_types`) when given,
    else from ONNX shape inference.  Tensors whose shape stays unknown count 0
    bytes and are listed in ``unknown_shape_tensors``; sequences, maps and optionals,
    which have no one shape, count 0 bytes too and are listed in ``unsized_values``.  A control-flow node
    depends on every outer-scope value its subgraphs read.  Graph inputs and
    initializers are available on every device at time 0; a shared initializer
    counts in the memory of every task that reads it (conservative).
    """
    proto = load_model(model)
    label = name or proto.graph.name or "model"
    if not proto.graph.node:
        raise ModelError(f"model {label!r} has no nodes")
    proto = name_nodes(proto)
    if types is None:  # else the run gave every input's shape
        proto = fix_input_shapes(proto, input_shapes)
        if is_large(proto):  # inference reads dims, not values
            proto = without_large_values(proto)
        try:
            proto = shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
        except Exception as exc:
            raise ModelError(f"shape inference failed on model {label!r}: {str(exc).splitlines()[0]}") from None

    graph = proto.graph
    info = _scope(graph, {}, types)
    not_tensors = {vi.name for vi in [*graph.input, *graph.value_info, *graph.output, *(types or {}).values()]
                   if vi.type.WhichOneof("value") not in (None, "tensor_type")}
    init_bytes = {init.name: info[init.name].nbytes for init in graph.initializer}
    scalars = _int_scalars(graph)

    graph_inputs = {vi.name for vi in graph.input}
    producer: dict[str, str] = {}
    for node in graph.node:
        for t in node.output:
            if t:
                if t in producer:
                    raise ModelError(f"model {label!r}: tensor {t!r} is produced by two nodes ({producer[t]!r}, {node.name!r})")
                producer[t] = node.name

    tasks: list[Task] = []
    edge_bytes: dict[tuple[str, str], int] = defaultdict(int)
    edge_tensors: dict[tuple[str, str], list[str]] = defaultdict(list)
    unknown: set[str] = set()
    for node in graph.node:
        reads = node_reads(node)
        ins = [info.get(t) for t in reads]
        outs = [info.get(t) if t else None for t in node.output]
        for t, ti in zip(reads + list(node.output), ins + outs):
            if t and (ti is None or ti.shape is None):
                unknown.add(t)
        read_bytes = 0
        weights = 0
        for t, ti in zip(reads, ins):
            nb = ti.nbytes if ti is not None else 0
            read_bytes += nb
            if t in init_bytes:
                weights += nb
            elif t in producer:
                key = (producer[t], node.name)
                if key[0] == node.name:
                    raise ModelError(f"model {label!r}: node {node.name!r} reads its own output {t!r}")
                if t not in edge_tensors[key]:
                    edge_bytes[key] += nb
                    edge_tensors[key].append(t)
            elif t not in graph_inputs:
                raise ModelError(f"model {label!r}: node {node.name!r} reads tensor {t!r}, which nothing produces "
                                 "(not a graph input, initializer or node output)")
        writes = sum(ti.nbytes for ti in outs if ti is not None)
        tasks.append(Task(
            name=node.name,
            op_type=node.op_type,
            flops=_node_flops(node, [info.get(t) if t else None for t in node.input], outs, info, scalars),
            bytes_moved=float(read_bytes + writes),
            memory_bytes=int(weights + writes),
            onnx_nodes=(node.name,),
        ))
    edges = tuple(Edge(u, v, edge_bytes[(u, v)], tuple(edge_tensors[(u, v)])) for (u, v) in edge_bytes)
    return TaskGraph(name=label, tasks=tuple(tasks), edges=edges,
                     unknown_shape_tensors=tuple(sorted(unknown - not_tensors)),
                     unsized_values=tuple(sorted(unknown & not_tensors)))
