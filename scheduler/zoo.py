"""A zoo of small, deterministic ONNX models to schedule, test and benchmark on.

Every model is built from scratch with :mod:`onnx.helper` (no torch, no
downloads), so tests and benchmarks get real transformer / CNN graph shapes
without shipping model files.  All models are float32, batch 1 (``mlp`` has a
``batch`` parameter), fully static in shape, use opset 20 and IR version 10
(which onnxruntime reads), and draw their weights from
``numpy.random.default_rng(seed)``, so the same parameters give the same bytes.

Models: ``bert`` (post-LN encoder), ``gpt2`` (pre-LN causal decoder with an
LM head), ``randwire`` (randomly wired CNN, Xie et al. 2019), ``inception``
(four-branch CNN blocks), ``resnet`` (ResNet-50), ``squeezenet`` (SqueezeNet
1.1), ``mobilenet`` (MobileNetV2), ``siamese`` (two LSTM towers) and ``mlp`` (a
plain chain); their defaults are small, for tests.  :data:`PRESETS` name them at
real sizes (``bert-base``, ``gpt2-small``, ``resnet50``, ``squeezenet1.1``,
``mobilenetv2``, ``siamese-lstm``, and one ImageNet-resolution stage of
``inception`` and ``randwire``).

Naming: every node has a unique, path-like name (``"l0/attn/q_matmul"``,
``"b1/branch3/conv5x5"``, ``"n4/conv"``) and its single output tensor carries
the same name, except for the graph outputs.  Initializers are named
``<node scope>_<role>`` (``"l0/attn/q_weight"``, ``"l0/attn/q_bias"``).

Examples
--------
>>> from scheduler import zoo
>>> [m.name for m in zoo.list_models() if m.extra is None]  # the hf-* ones need the torch extra
['bert', 'gpt2', 'randwire', 'inception', 'resnet', 'squeezenet', 'mobilenet', 'siamese', 'mlp']
>>> model = zoo.build("bert", **zoo.parse_params(["layers=1", "seq_len=8"]))
>>> model.graph.input[0].name, model.graph.output[0].name
('input_ids', 'last_hidden_state')
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import networkx as nx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scheduler import hf
from scheduler.errors import ModelError
from scheduler.schema import Finite, Integer, Text, parse

__all__ = ["PRESETS", "ZooError", "ZooModel", "build", "get_model", "list_models", "parse_params"]

OPSET = 20
"""Default-domain opset of every zoo model (20 is the first with ``Gelu``)."""

IR_VERSION = 10
"""IR version written into every model; onnxruntime rejects onnx's newer default."""

ParamValue = int | float | str


class ZooError(ModelError, ValueError):
    """A zoo request is invalid: unknown model or parameter, or a bad value.

    It is a :class:`ValueError` for library callers and a
    :class:`~scheduler.errors.HetschedError` so the CLI prints its one-line message.
    """


@dataclass(frozen=True)
class ZooModel:
    """One entry of the zoo: a name, what it is, its parameters and its builder.

    Parameters
    ----------
    name : str
        The name :func:`build` takes.
    description : str
        One line saying what the model is.
    defaults : Mapping[str, int | float | str]
        Every parameter the builder accepts with its default; the default's
        type is the type string values are coerced to.  Read-only.
    builder : Callable[..., onnx.GraphProto | onnx.ModelProto]
        Takes every parameter as a keyword argument (already coerced) and
        returns the graph, which :func:`build` wraps in a model, or a whole
        model (an exporter's: the ``hf-*`` models of :mod:`scheduler.hf`).
    extra : str or None
        The optional dependency (``pip install 'hetsched[extra]'``) the builder
        needs; None for the models built with onnx alone.
    """

    name: str
    description: str
    defaults: Mapping[str, ParamValue]
    builder: Callable[..., onnx.GraphProto | onnx.ModelProto] = field(repr=False, compare=False)
    extra: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.defaults, MappingProxyType):
            object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def build(self, **params: object) -> onnx.ModelProto:
        """Build this model; same as ``build(self.name, **params)``."""
        return build(self.name, **params)


# --------------------------------------------------------------------------- helpers


class _ParamError(ValueError):
    """Raised by builders on a bad parameter value; :func:`build` adds the model name."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _ParamError(message)


def _positive(**values: int) -> None:
    for key, value in values.items():
        _require(value >= 1, f"parameter {key!r} must be >= 1, got {value}")


MAX_WEIGHT_BYTES = 2**31 - 2**24
"""Weights a zoo model may hold: ONNX's 2 GiB protobuf limit, less room for the graph itself."""


class _GraphBuilder:
    """Collects nodes and initializers, enforcing unique names and seeded weights."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.weight_bytes = 0
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._names: set[str] = set()

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise RuntimeError(f"zoo internal error: duplicate name {name!r}")
        self._names.add(name)
        return name

    def input(self, name: str, elem_type: int, shape: Sequence[int]) -> str:
        self.inputs.append(helper.make_tensor_value_info(self._claim(name), elem_type, list(shape)))
        return name

    def output(self, name: str, elem_type: int, shape: Sequence[int]) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))

    def has(self, name: str) -> bool:
        return name in self._names

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), self._claim(name)))
        return name

    def _reserve(self, shape: Sequence[int]) -> None:
        """Count a float32 weight of ``shape`` before allocating it: the whole model must stay within
        ONNX's 2 GiB protobuf limit (an error naming the size, never a MemoryError)."""
        self.weight_bytes += 4 * math.prod(shape)
        if self.weight_bytes > MAX_WEIGHT_BYTES:
            raise _ParamError(f"these parameters need over {self.weight_bytes / 2**30:.1f} GiB of weights; a zoo "
                           f"model must fit ONNX's 2 GiB protobuf limit")

    def normal(self, name: str, shape: Sequence[int], std: float, mean: float = 0.0) -> str:
        self._reserve(shape)
        values = mean + std * self.rng.standard_normal(tuple(shape), dtype=np.float32)
        return self.const(name, values.astype(np.float32))

    def uniform(self, name: str, shape: Sequence[int], low: float, high: float) -> str:
        self._reserve(shape)
        return self.const(name, self.rng.uniform(low, high, tuple(shape)).astype(np.float32))

    def op(self, op_type: str, name: str, inputs: Sequence[str], output: str | None = None, **attrs: object) -> str:
        """Add one node named ``name``; its output tensor is ``output`` or ``name``."""
        out = self._claim(output if output is not None else name)
        if output is not None and output != name:
            self._claim(name)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
        return out

    def graph(self, name: str) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)

    # -- composite layers ------------------------------------------------------------

    def linear(self, scope: str, x: str, fan_in: int, fan_out: int, output: str | None = None) -> str:
        """``x @ W + b`` as MatMul + Add (nodes ``<scope>_matmul``, ``<scope>_add``)."""
        w = self.normal(f"{scope}_weight", (fan_in, fan_out), 1.0 / math.sqrt(fan_in))
        b = self.normal(f"{scope}_bias", (fan_out,), 0.02)
        y = self.op("MatMul", f"{scope}_matmul", [x, w])
        return self.op("Add", f"{scope}_add", [y, b], output)

    def layer_norm(self, scope: str, x: str, width: int, epsilon: float, output: str | None = None) -> str:
        gamma = self.normal(f"{scope}_scale", (width,), 0.02, mean=1.0)
        beta = self.normal(f"{scope}_bias", (width,), 0.02)
        return self.op("LayerNormalization", scope, [x, gamma, beta], output, axis=-1, epsilon=epsilon)

    def conv(self, scope: str, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1, group: int = 1) -> str:
        """Square Conv with "same" padding and He-initialized weights (node ``scope``)."""
        fan_in = c_in // group * kernel * kernel
        w = self.normal(f"{scope}_weight", (c_out, c_in // group, kernel, kernel), math.sqrt(2.0 / fan_in))
        b = self.normal(f"{scope}_bias", (c_out,), 0.02)
        pad = kernel // 2
        attrs: dict[str, object] = {"group": group} if group > 1 else {}
        return self.op(
            "Conv", scope, [x, w, b], kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride, stride], **attrs
        )

    def conv_bn(self, scope: str, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1, group: int = 1,
                act: str | None = "Relu") -> str:
        """Conv -> BatchNorm -> activation (``Relu``, ``Relu6`` as Clip(0, 6), or None): what ORT fuses."""
        y = self.batch_norm(f"{scope}/bn", self.conv(f"{scope}/conv", x, c_in, c_out, kernel, stride, group), c_out)
        if act == "Relu":
            return self.op("Relu", f"{scope}/relu", [y])
        if act == "Relu6":
            if not self.has("const/zero"):
                self.const("const/zero", np.array(0.0, dtype=np.float32))
                self.const("const/six", np.array(6.0, dtype=np.float32))
            return self.op("Clip", f"{scope}/relu6", [y, "const/zero", "const/six"])
        return y

    def max_pool(self, scope: str, x: str, kernel: int, stride: int, pad: int = 0) -> str:
        return self.op("MaxPool", scope, [x], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4)

    def batch_norm(self, scope: str, x: str, channels: int) -> str:
        scale = self.normal(f"{scope}_scale", (channels,), 0.1, mean=1.0)
        bias = self.normal(f"{scope}_bias", (channels,), 0.1)
        mean = self.normal(f"{scope}_mean", (channels,), 0.1)
        var = self.uniform(f"{scope}_var", (channels,), 0.5, 1.5)
        return self.op("BatchNormalization", scope, [x, scale, bias, mean, var], epsilon=1e-5)

    def classifier(self, scope: str, x: str, channels: int, classes: int, output: str) -> str:
        """GlobalAveragePool -> Flatten -> Gemm to ``classes`` logits."""
        pooled = self.op("GlobalAveragePool", f"{scope}/global_avg_pool", [x])
        flat = self.op("Flatten", f"{scope}/flatten", [pooled], axis=1)
        w = self.normal(f"{scope}/fc_weight", (channels, classes), 1.0 / math.sqrt(channels))
        b = self.normal(f"{scope}/fc_bias", (classes,), 0.02)
        return self.op("Gemm", f"{scope}/fc", [flat, w, b], output)


def _attention(
    g: _GraphBuilder, scope: str, x: str, seq_len: int, hidden: int, heads: int, mask: str | None
) -> str:
    """Multi-head self-attention with separate Q/K/V branches; returns the projected output."""
    head_dim = hidden // heads
    split_shape = f"shape/split_{seq_len}x{heads}x{head_dim}"
    merge_shape = f"shape/merge_{seq_len}x{hidden}"
    scale = f"const/attn_scale_{head_dim}"
    if not g.has(split_shape):  # shared by all layers
        g.const(split_shape, np.array([1, seq_len, heads, head_dim], dtype=np.int64))
        g.const(merge_shape, np.array([1, seq_len, hidden], dtype=np.int64))
        g.const(scale, np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))

    def branch(kind: str, perm: list[int]) -> str:
        y = g.linear(f"{scope}/{kind}", x, hidden, hidden)
        y = g.op("Reshape", f"{scope}/{kind}_reshape", [y, split_shape])
        return g.op("Transpose", f"{scope}/{kind}_transpose", [y], perm=perm)

    q = branch("q", [0, 2, 1, 3])  # [1, heads, seq, head_dim]
    k = branch("k", [0, 2, 3, 1])  # [1, heads, head_dim, seq]  (K^T)
    v = branch("v", [0, 2, 1, 3])  # [1, heads, seq, head_dim]
    scores = g.op("MatMul", f"{scope}/qk_matmul", [q, k])
    scores = g.op("Mul", f"{scope}/scale_mul", [scores, scale])
    if mask is not None:
        scores = g.op("Add", f"{scope}/mask_add", [scores, mask])
    probs = g.op("Softmax", f"{scope}/softmax", [scores], axis=-1)
    ctx = g.op("MatMul", f"{scope}/context_matmul", [probs, v])
    ctx = g.op("Transpose", f"{scope}/context_transpose", [ctx], perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", f"{scope}/context_reshape", [ctx, merge_shape])
    return g.linear(f"{scope}/out", ctx, hidden, hidden)


def _mlp_block(g: _GraphBuilder, scope: str, x: str, hidden: int, intermediate: int, approximate: str) -> str:
    """Feed-forward block: Linear -> Gelu -> Linear."""
    y = g.linear(f"{scope}/fc1", x, hidden, intermediate)
    y = g.op("Gelu", f"{scope}/gelu", [y], approximate=approximate)
    return g.linear(f"{scope}/fc2", y, intermediate, hidden)


def _embeddings(g: _GraphBuilder, vocab: int, seq_len: int, hidden: int) -> str:
    """``input_ids`` -> word-embedding Gather + position-embedding Add."""
    ids = g.input("input_ids", TensorProto.INT64, [1, seq_len])
    table = g.normal("embed/word_weight", (vocab, hidden), 1.0)
    positions = g.normal("embed/position_weight", (seq_len, hidden), 0.1)
    words = g.op("Gather", "embed/word_gather", [table, ids], axis=0)
    return g.op("Add", "embed/position_add", [words, positions])


def _check_transformer(layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int) -> None:
    _positive(layers=layers, hidden=hidden, heads=heads, seq_len=seq_len, intermediate=intermediate, vocab=vocab)
    _require(hidden % heads == 0, f"hidden ({hidden}) must be divisible by heads ({heads})")


# --------------------------------------------------------------------------- builders


def _build_bert(
    *, layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int, seed: int
) -> onnx.GraphProto:
    """BERT encoder: embeddings + LayerNorm, then post-LN attention / FFN layers."""
    _check_transformer(layers, hidden, heads, seq_len, intermediate, vocab)
    g = _GraphBuilder(seed)
    x = _embeddings(g, vocab, seq_len, hidden)
    x = g.layer_norm("embed/layer_norm", x, hidden, 1e-12)
    for i in range(layers):
        last = i == layers - 1
        attn = _attention(g, f"l{i}/attn", x, seq_len, hidden, heads, mask=None)
        x = g.op("Add", f"l{i}/attn/residual_add", [x, attn])
        x = g.layer_norm(f"l{i}/attn/layer_norm", x, hidden, 1e-12)
        ffn = _mlp_block(g, f"l{i}/ffn", x, hidden, intermediate, approximate="none")
        x = g.op("Add", f"l{i}/ffn/residual_add", [x, ffn])
        x = g.layer_norm(f"l{i}/ffn/layer_norm", x, hidden, 1e-12, output="last_hidden_state" if last else None)
    g.output("last_hidden_state", TensorProto.FLOAT, [1, seq_len, hidden])
    return g.graph("bert")


def _build_gpt2(
    *, layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int, seed: int
) -> onnx.GraphProto:
    """GPT-2 decoder: pre-LN causal attention / MLP layers, final LayerNorm, LM head."""
    _check_transformer(layers, hidden, heads, seq_len, intermediate, vocab)
    g = _GraphBuilder(seed)
    x = _embeddings(g, vocab, seq_len, hidden)
    # -1e4 above the diagonal: exp() underflows to exactly 0 in float32, without -inf arithmetic.
    mask = g.const("attn/causal_mask", np.triu(np.full((seq_len, seq_len), -1e4, dtype=np.float32), k=1))
    for i in range(layers):
        h = g.layer_norm(f"l{i}/ln_1", x, hidden, 1e-5)
        attn = _attention(g, f"l{i}/attn", h, seq_len, hidden, heads, mask=mask)
        x = g.op("Add", f"l{i}/attn/residual_add", [x, attn])
        h = g.layer_norm(f"l{i}/ln_2", x, hidden, 1e-5)
        mlp = _mlp_block(g, f"l{i}/mlp", h, hidden, intermediate, approximate="tanh")
        x = g.op("Add", f"l{i}/mlp/residual_add", [x, mlp])
    x = g.layer_norm("ln_f", x, hidden, 1e-5)
    head = g.normal("lm_head_weight", (hidden, vocab), 1.0 / math.sqrt(hidden))
    g.op("MatMul", "lm_head_matmul", [x, head], output="logits")
    g.output("logits", TensorProto.FLOAT, [1, seq_len, vocab])
    return g.graph("gpt2")


def _build_hf(family: str, *, layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int,
              batch: int, seed: int) -> onnx.ModelProto:
    _check_transformer(layers, hidden, heads, seq_len, intermediate, vocab)
    _positive(batch=batch)
    return hf.export(family, layers=layers, hidden=hidden, heads=heads, seq_len=seq_len, intermediate=intermediate,
                     vocab=vocab, batch=batch, seed=seed)


_RANDWIRE_GRAPHS = ("ws", "er", "ba")


def _random_dag(graph: str, nodes: int, k: int, p: float, er_p: float, m: int, seed: int) -> nx.DiGraph:
    """The random undirected graph of the given kind, oriented low -> high index."""
    if graph == "ws":
        _require(2 <= k < nodes, f"parameter 'k' must satisfy 2 <= k < nodes ({nodes}), got {k}")
        _require(0.0 <= p <= 1.0, f"parameter 'p' must be in [0, 1], got {p}")
        undirected = nx.watts_strogatz_graph(nodes, k, p, seed=seed)
    elif graph == "er":
        _require(0.0 <= er_p <= 1.0, f"parameter 'er_p' must be in [0, 1], got {er_p}")
        undirected = nx.erdos_renyi_graph(nodes, er_p, seed=seed)
    else:
        _require(1 <= m < nodes, f"parameter 'm' must satisfy 1 <= m < nodes ({nodes}), got {m}")
        undirected = nx.barabasi_albert_graph(nodes, m, seed=seed)
    dag = nx.DiGraph()
    dag.add_nodes_from(range(nodes))
    dag.add_edges_from((min(u, v), max(u, v)) for u, v in undirected.edges())
    return dag


def _build_randwire(
    *,
    graph: str,
    nodes: int,
    k: int,
    p: float,
    er_p: float,
    m: int,
    channels: int,
    image: int,
    classes: int,
    batchnorm: bool,
    seed: int,
) -> onnx.GraphProto:
    """Randomly wired CNN: stem Conv, one random DAG stage of Relu-Conv3x3(-BN) nodes, classifier."""
    graph = graph.strip().lower()
    _require(
        graph in _RANDWIRE_GRAPHS, f"parameter 'graph' must be one of {', '.join(_RANDWIRE_GRAPHS)}, got {graph!r}"
    )
    _positive(nodes=nodes, channels=channels, image=image, classes=classes)
    dag = _random_dag(graph, nodes, k, p, er_p, m, seed)
    g = _GraphBuilder(seed)
    x = g.input("image", TensorProto.FLOAT, [1, 3, image, image])
    stem = g.conv("stem/conv", x, 3, channels, 3)

    def aggregate(scope: str, sources: list[str]) -> str:
        """Weighted sum (sigmoid-positive weights, as in the paper); a single input passes through."""
        if len(sources) == 1:
            return sources[0]
        weighted = []
        for j, src in enumerate(sources):
            sigmoid = 1.0 / (1.0 + math.exp(-g.rng.standard_normal()))
            w = g.const(f"{scope}/w{j}_weight", np.array(sigmoid, dtype=np.float32))
            weighted.append(g.op("Mul", f"{scope}/w{j}_mul", [src, w]))
        return g.op("Sum", f"{scope}/sum", weighted)

    outs: dict[int, str] = {}
    for n in range(nodes):  # index order is a topological order of the oriented graph
        preds = sorted(dag.predecessors(n))
        y = aggregate(f"n{n}/agg", [outs[q] for q in preds] if preds else [stem])
        y = g.op("Relu", f"n{n}/relu", [y])
        y = g.conv(f"n{n}/conv", y, channels, channels, 3)
        outs[n] = g.batch_norm(f"n{n}/bn", y, channels) if batchnorm else y
    sinks = [outs[n] for n in range(nodes) if dag.out_degree(n) == 0]
    y = aggregate("output/agg", sinks)
    y = g.op("Relu", "output/relu", [y])
    g.classifier("head", y, channels, classes, output="logits")
    g.output("logits", TensorProto.FLOAT, [1, classes])
    return g.graph(f"randwire_{graph}")


def _build_inception(*, blocks: int, channels: int, image: int, classes: int, seed: int) -> onnx.GraphProto:
    """Inception-style CNN: stem Conv, ``blocks`` four-branch blocks concatenated on channels, classifier."""
    _positive(blocks=blocks, channels=channels, image=image, classes=classes)
    g = _GraphBuilder(seed)
    x = g.input("image", TensorProto.FLOAT, [1, 3, image, image])
    x = g.op("Relu", "stem/relu", [g.conv("stem/conv", x, 3, channels, 3)])
    c_in, c = channels, channels

    def conv_relu(scope: str, src: str, cin: int, kernel: int) -> str:
        return g.op("Relu", f"{scope}_relu", [g.conv(scope, src, cin, c, kernel)])

    for i in range(blocks):
        b = f"b{i}"
        b1 = conv_relu(f"{b}/branch1/conv1x1", x, c_in, 1)
        b2 = conv_relu(f"{b}/branch2/conv1x1", x, c_in, 1)
        b2 = conv_relu(f"{b}/branch2/conv3x3", b2, c, 3)
        b3 = conv_relu(f"{b}/branch3/conv1x1", x, c_in, 1)
        b3 = conv_relu(f"{b}/branch3/conv5x5", b3, c, 5)
        b4 = g.op("MaxPool", f"{b}/branch4/maxpool3x3", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
        b4 = conv_relu(f"{b}/branch4/conv1x1", b4, c_in, 1)
        x = g.op("Concat", f"{b}/concat", [b1, b2, b3, b4], axis=1)
        c_in = 4 * c
    g.classifier("head", x, c_in, classes, output="logits")
    g.output("logits", TensorProto.FLOAT, [1, classes])
    return g.graph("inception")


def _build_resnet(*, width: int, image: int, classes: int, seed: int) -> onnx.GraphProto:
    """ResNet-50 (v1.5): 7x7 stem, bottleneck stages of 3, 4, 6, 3 blocks (base ``width``; 64 is the real one)."""
    _positive(width=width, image=image, classes=classes)
    g = _GraphBuilder(seed)
    x = g.input("image", TensorProto.FLOAT, [1, 3, image, image])
    x = g.max_pool("stem/maxpool", g.conv_bn("stem", x, 3, width, 7, stride=2), 3, 2, pad=1)
    c_in = width
    for stage, blocks in enumerate((3, 4, 6, 3)):
        mid, out = width * 2 ** stage, width * 2 ** stage * 4
        for b in range(blocks):
            scope, stride = f"s{stage}/b{b}", (2 if b == 0 and stage > 0 else 1)
            y = g.conv_bn(f"{scope}/conv1", x, c_in, mid, 1)
            y = g.conv_bn(f"{scope}/conv2", y, mid, mid, 3, stride=stride)
            y = g.conv_bn(f"{scope}/conv3", y, mid, out, 1, act=None)
            short = g.conv_bn(f"{scope}/down", x, c_in, out, 1, stride=stride, act=None) if b == 0 else x
            x = g.op("Relu", f"{scope}/relu", [g.op("Add", f"{scope}/add", [y, short])])
            c_in = out
    g.classifier("head", x, c_in, classes, output="logits")
    g.output("logits", TensorProto.FLOAT, [1, classes])
    return g.graph("resnet50")


def _build_squeezenet(*, image: int, classes: int, seed: int) -> onnx.GraphProto:
    """SqueezeNet 1.1: fire modules (1x1 squeeze, then parallel 1x1 and 3x3 expands concatenated)."""
    _positive(image=image, classes=classes)
    _require(image >= 32, f"parameter 'image' must be >= 32, got {image}")
    g = _GraphBuilder(seed)
    x = g.input("image", TensorProto.FLOAT, [1, 3, image, image])
    x = g.op("Relu", "stem/relu", [g.conv("stem/conv", x, 3, 64, 3, stride=2)])
    c_in = 64
    fires = [(16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192), (64, 256), (64, 256)]
    x = g.max_pool("pool0", x, 3, 2)
    for i, spec in enumerate(fires):
        if spec == "pool":
            x = g.max_pool(f"pool{i}", x, 3, 2)
            continue
        squeeze, expand = spec
        s = g.op("Relu", f"fire{i}/squeeze_relu", [g.conv(f"fire{i}/squeeze", x, c_in, squeeze, 1)])
        e1 = g.op("Relu", f"fire{i}/expand1x1_relu", [g.conv(f"fire{i}/expand1x1", s, squeeze, expand, 1)])
        e3 = g.op("Relu", f"fire{i}/expand3x3_relu", [g.conv(f"fire{i}/expand3x3", s, squeeze, expand, 3)])
        x = g.op("Concat", f"fire{i}/concat", [e1, e3], axis=1)
        c_in = 2 * expand
    x = g.op("Relu", "head/conv_relu", [g.conv("head/conv", x, c_in, classes, 1)])
    x = g.op("GlobalAveragePool", "head/global_avg_pool", [x])
    g.op("Flatten", "head/flatten", [x], output="logits", axis=1)
    g.output("logits", TensorProto.FLOAT, [1, classes])
    return g.graph("squeezenet")


def _build_mobilenet(*, width_mult: float, image: int, classes: int, seed: int) -> onnx.GraphProto:
    """MobileNetV2: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project) with Relu6."""
    _positive(image=image, classes=classes)
    _require(width_mult > 0, f"parameter 'width_mult' must be > 0, got {width_mult}")

    def ch(c: int) -> int:
        return max(8, int(c * width_mult + 4) // 8 * 8)

    g = _GraphBuilder(seed)
    x = g.input("image", TensorProto.FLOAT, [1, 3, image, image])
    c_in = ch(32)
    x = g.conv_bn("stem", x, 3, c_in, 3, stride=2, act="Relu6")
    k = 0
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for i in range(n):
            scope, stride, out, hidden = f"b{k}", (s if i == 0 else 1), ch(c), c_in * t
            y = g.conv_bn(f"{scope}/expand", x, c_in, hidden, 1, act="Relu6") if t != 1 else x
            y = g.conv_bn(f"{scope}/depthwise", y, hidden, hidden, 3, stride=stride, group=hidden, act="Relu6")
            y = g.conv_bn(f"{scope}/project", y, hidden, out, 1, act=None)
            x = g.op("Add", f"{scope}/add", [x, y]) if stride == 1 and c_in == out else y
            c_in, k = out, k + 1
    last = max(1280, ch(1280))
    x = g.conv_bn("last", x, c_in, last, 1, act="Relu6")
    g.classifier("head", x, last, classes, output="logits")
    g.output("logits", TensorProto.FLOAT, [1, classes])
    return g.graph("mobilenetv2")


def _build_siamese(*, layers: int, hidden: int, embed: int, seq_len: int, vocab: int, proj: int, head: int,
                   seed: int) -> onnx.GraphProto:
    """Two LSTM towers over two token sequences (one shared embedding table), scored by cosine similarity.

    Each tower: Gather embedding -> time-major Transpose -> ``layers`` LSTMs -> last step -> projection
    head (``head`` linear layers of width ``proj``, Relu between them) -> L2 normalisation.  The
    towers are independent until the score: the recurrent steps are too small for intra-op threads to
    help, so the two towers on two cores is where a placement beats plain ORT.
    """
    _positive(layers=layers, hidden=hidden, embed=embed, seq_len=seq_len, vocab=vocab, proj=proj, head=head)
    g = _GraphBuilder(seed)
    table = g.normal("embedding_weight", (vocab, embed), 0.1)
    squeeze_axes = g.const("const/axis1", np.array([1], dtype=np.int64))
    last_step = g.const("const/last_step", np.array([seq_len - 1], dtype=np.int64))  # -> [1, 1, hidden]
    towers = []
    for tower in ("a", "b"):
        ids = g.input(f"tokens_{tower}", TensorProto.INT64, [1, seq_len])
        x = g.op("Gather", f"{tower}/embed", [table, ids], axis=0)  # [1, seq, embed]
        x, width = g.op("Transpose", f"{tower}/time_major", [x], perm=[1, 0, 2]), embed  # LSTM: [seq, 1, embed]
        for i in range(layers):
            w = g.normal(f"{tower}/lstm{i}_W", (1, 4 * hidden, width), 1.0 / math.sqrt(width))
            r = g.normal(f"{tower}/lstm{i}_R", (1, 4 * hidden, hidden), 1.0 / math.sqrt(hidden))
            b = g.normal(f"{tower}/lstm{i}_B", (1, 8 * hidden), 0.02)
            y = g.op("LSTM", f"{tower}/lstm{i}", [x, w, r, b], hidden_size=hidden)
            x, width = g.op("Squeeze", f"{tower}/lstm{i}_squeeze", [y, squeeze_axes]), hidden
        last = g.op("Gather", f"{tower}/last_step", [x, last_step], axis=0)
        v, width = last, hidden
        for i in range(head):
            scope = f"{tower}/proj" if head == 1 else f"{tower}/proj{i}"
            v, width = g.linear(scope, v, width, proj), proj
            if i < head - 1:
                v = g.op("Relu", f"{scope}_relu", [v])
        towers.append(g.op("LpNormalization", f"{tower}/normalize", [v], axis=-1, p=2))
    prod = g.op("Mul", "score/mul", towers)
    g.op("ReduceSum", "score/sum", [prod, g.const("const/axis_last", np.array([-1], dtype=np.int64))],
         "similarity", keepdims=0)
    g.output("similarity", TensorProto.FLOAT, [1, 1])
    return g.graph("siamese")


def _build_mlp(*, layers: int, width: int, batch: int, seed: int) -> onnx.GraphProto:
    """A plain chain of ``layers`` MatMul + Add (+ Relu except after the last) layers."""
    _positive(layers=layers, width=width, batch=batch)
    g = _GraphBuilder(seed)
    x = g.input("x", TensorProto.FLOAT, [batch, width])
    for i in range(layers):
        last = i == layers - 1
        x = g.linear(f"l{i}/fc", x, width, width, output="y" if last else None)
        if not last:
            x = g.op("Relu", f"l{i}/relu", [x])
    g.output("y", TensorProto.FLOAT, [batch, width])
    return g.graph("mlp")


_TRANSFORMER_DEFAULTS = {"layers": 2, "hidden": 64, "heads": 4, "seq_len": 16, "intermediate": 256}

_MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            "bert",
            "BERT encoder (post-LN): token + position embeddings, self-attention and Gelu FFN layers",
            {**_TRANSFORMER_DEFAULTS, "vocab": 512, "seed": 0},
            _build_bert,
        ),
        ZooModel(
            "gpt2",
            "GPT-2 decoder (pre-LN): causal self-attention, Gelu MLP, final LayerNorm and LM head",
            {**_TRANSFORMER_DEFAULTS, "vocab": 256, "seed": 0},
            _build_gpt2,
        ),
        ZooModel(
            "randwire",
            "randomly wired CNN (Xie et al. 2019): a ws/er/ba random DAG of Relu-Conv3x3-BN nodes",
            {
                "graph": "ws",
                "nodes": 8,
                "k": 4,
                "p": 0.75,
                "er_p": 0.2,
                "m": 2,
                "channels": 8,
                "image": 16,
                "classes": 10,
                "batchnorm": True,
                "seed": 0,
            },
            _build_randwire,
        ),
        ZooModel(
            "inception",
            "Inception-style CNN: blocks of 1x1 / 1x1-3x3 / 1x1-5x5 / maxpool-1x1 branches concatenated",
            {"blocks": 2, "channels": 16, "image": 32, "classes": 10, "seed": 0},
            _build_inception,
        ),
        ZooModel(
            "resnet",
            "ResNet-50 v1.5: bottleneck stages 3-4-6-3 with downsampling shortcuts (width 64 = the real one)",
            {"width": 16, "image": 64, "classes": 10, "seed": 0},
            _build_resnet,
        ),
        ZooModel(
            "squeezenet",
            "SqueezeNet 1.1: fire modules with parallel 1x1 / 3x3 expand branches",
            {"image": 64, "classes": 10, "seed": 0},
            _build_squeezenet,
        ),
        ZooModel(
            "mobilenet",
            "MobileNetV2: inverted residual blocks with depthwise 3x3 convolutions and Relu6",
            {"width_mult": 0.5, "image": 64, "classes": 10, "seed": 0},
            _build_mobilenet,
        ),
        ZooModel(
            "siamese",
            "Siamese LSTM sentence encoder: two LSTM towers, last step, projection, cosine similarity",
            {"layers": 1, "hidden": 16, "embed": 16, "seq_len": 8, "vocab": 100, "proj": 16, "head": 1,
             "seed": 0},
            _build_siamese,
        ),
        ZooModel(
            "mlp",
            "multilayer perceptron: a plain chain of MatMul + Add + Relu layers",
            {"layers": 4, "width": 64, "batch": 1, "seed": 0},
            _build_mlp,
        ),
        *(ZooModel(f"hf-{family}", f"{label} from Hugging Face Transformers, random weights, exported by torch's "
                   "dynamo exporter (needs the torch extra)", {**_TRANSFORMER_DEFAULTS, "vocab": 512, "batch": 1,
                                                               "seed": 0},
                   functools.partial(_build_hf, family), extra="torch")
          for family, label in (("bert", "BERT encoder"), ("roberta", "RoBERTa encoder"),
                                ("gpt2", "GPT-2 decoder (no key/value cache)"))),
    )
}


PRESETS: Mapping[str, tuple[str, Mapping[str, ParamValue]]] = MappingProxyType({
    "bert-base": ("bert", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128, "intermediate": 3072,
                           "vocab": 30522}),
    "gpt2-small": ("gpt2", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128, "intermediate": 3072,
                            "vocab": 50257}),
    "resnet50": ("resnet", {"width": 64, "image": 224, "classes": 1000}),
    "squeezenet1.1": ("squeezenet", {"image": 224, "classes": 1000}),
    "mobilenetv2": ("mobilenet", {"width_mult": 1.0, "image": 224, "classes": 1000}),
    "inception-imagenet": ("inception", {"blocks": 4, "channels": 64, "image": 56, "classes": 1000}),
    "randwire-imagenet": ("randwire", {"nodes": 32, "channels": 64, "image": 56, "classes": 1000}),
    "siamese-lstm": ("siamese", {"layers": 2, "hidden": 128, "embed": 128, "seq_len": 256, "vocab": 30000,
                                 "proj": 2048, "head": 2}),
    "hf-bert-base": ("hf-bert", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128, "intermediate": 3072,
                                 "vocab": 30522}),
    "hf-roberta-base": ("hf-roberta", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128,
                                       "intermediate": 3072, "vocab": 50265}),
    "hf-gpt2-small": ("hf-gpt2", {"layers": 12, "hidden": 768, "heads": 12, "seq_len": 128, "intermediate": 3072,
                                  "vocab": 50257}),
})
"""Models at real sizes: name -> (zoo model, parameters).  ``build("bert-base", seq_len=64)`` overrides one.

The CNN stages ``inception-imagenet`` and ``randwire-imagenet`` are one
ImageNet-resolution stage (56x56, 64 channels), where their branches run.
"""


# --------------------------------------------------------------------------- public API


def list_models() -> tuple[ZooModel, ...]:
    """All zoo models, in a fixed order, so a CLI or a test can enumerate them.

    Returns
    -------
    tuple of ZooModel
    """
    return tuple(_MODELS.values())


def get_model(name: str) -> ZooModel:
    """The zoo entry called ``name``.

    Raises
    ------
    ValueError
        (a :class:`ZooError`) if there is no such model; the message lists the known ones.
    """
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise ZooError(f"unknown zoo model {name!r}; known: {', '.join(_MODELS)}") from None


_PARAM_TYPES: dict[type, Any] = {bool: bool, int: Integer, float: Finite, str: Text}


def _coerce(model: str, key: str, value: object, default: ParamValue) -> ParamValue:
    """``value`` (often a CLI string) as the type of ``default``: ``"3"`` is 3, ``"yes"`` is True, ``true`` is
    not a number."""
    value = value.strip() if isinstance(value, str) else value
    return parse(_PARAM_TYPES[type(default)], value, f"zoo model {model!r}", ZooError, key=f"parameter {key}")


def build(name: str, **params: object) -> onnx.ModelProto:
    """Build zoo model ``name`` with ``params`` overriding its defaults.

    Values may be strings (as the CLI's ``--set key=value`` passes them); they
    are coerced to the type of the parameter's default.  The model is
    shape-inferred, so every intermediate tensor has a static shape in
    ``graph.value_info``; its ``doc_string`` and ``metadata_props``
    (``zoo.name``, ``zoo.params`` as JSON) record how it was built.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    **params
        Parameter overrides, e.g. ``layers=2`` or ``layers="2"``.

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    ValueError
        (a :class:`ZooError`) for an unknown model, an unknown parameter, a
        value that does not convert, or a value the model cannot use.
    """
    if name in PRESETS:
        base, preset = PRESETS[name]
        return build(base, **{**preset, **params})
    entry = get_model(name)
    unknown = sorted(set(params) - set(entry.defaults))
    if unknown:
        raise ZooError(
            f"unknown parameter {unknown[0]!r} for zoo model {name!r}; known: {', '.join(entry.defaults)}"
        )
    values = {key: _coerce(name, key, params.get(key, default), default) for key, default in entry.defaults.items()}
    if "seed" in values and values["seed"] < 0:
        raise ZooError(f"zoo model {name!r}: parameter 'seed' must be >= 0, got {values['seed']}")
    try:
        built = entry.builder(**values)
    except _ParamError as exc:
        raise ZooError(f"zoo model {name!r}: {exc}") from None

    params_json = json.dumps(values, sort_keys=True)
    if isinstance(built, onnx.ModelProto):  # an exporter's model, with its own opsets and shapes
        built.doc_string = f"scheduler.zoo model {name!r} built with {params_json}"
        helper.set_model_props(built, {"zoo.name": name, "zoo.params": params_json})
        return built
    built.doc_string = f"scheduler.zoo model {name!r}: {entry.description}"
    model = helper.make_model(
        built,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="scheduler.zoo",
        doc_string=f"scheduler.zoo model {name!r} built with {params_json}",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"zoo.name": name, "zoo.params": params_json})
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def parse_params(items: Sequence[str], what: str = "zoo parameter") -> dict[str, str]:
    """Turn CLI ``key=value`` items into a dict of strings for :func:`build`.

    The value is everything after the first ``=``; a later item for the same
    key overrides an earlier one.

    Parameters
    ----------
    items : sequence of str
        E.g. ``["layers=2", "seq_len=16"]``.
    what : str
        What the items are, for the error message (``--option`` items are solver options).

    Returns
    -------
    dict of str to str
        E.g. ``{"layers": "2", "seq_len": "16"}``.

    Raises
    ------
    ValueError
        (a :class:`ZooError`) for an item without ``=`` or with an empty key.
    """
    if isinstance(items, str):
        items = [items]
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ZooError(f"bad {what} {item!r}: expected key=value")
        result[key] = value.strip()
    return result
