"""The toolkit the zoo's models are built with: a graph builder with seeded weights, the layers the
transformers share (attention, MLP block, embeddings), and the parameter checks of the builders.

Every node gets a unique path-like name and its single output tensor the same name;
initializers are named ``<node scope>_<role>`` (the conventions of :mod:`scheduler.zoo`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class ParamError(ValueError):
    """Raised by builders on a bad parameter value; :func:`build` adds the model name."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ParamError(message)


def positive(**values: int) -> None:
    for key, value in values.items():
        require(value >= 1, f"parameter {key!r} must be >= 1, got {value}")


MAX_WEIGHT_BYTES = 2**31 - 2**24
"""Weights a zoo model may hold: ONNX's 2 GiB protobuf limit, less room for the graph itself."""


class GraphBuilder:
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
            raise ParamError(f"these parameters need over {self.weight_bytes / 2**30:.1f} GiB of weights; a zoo "
                           f"model must fit ONNX's 2 GiB protobuf limit")

    def normal(self, name: str, shape: Sequence[int], std: float, mean: float = 0.0) -> str:
        self._reserve(shape)
        values = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        values *= np.float32(std)  # in place: a weight of gpt2-small's is 154 MB
        values += np.float32(mean)
        return self.const(name, values)

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


def attention(
    g: GraphBuilder, scope: str, x: str, seq_len: int, hidden: int, heads: int, mask: str | None
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


def mlp_block(g: GraphBuilder, scope: str, x: str, hidden: int, intermediate: int, approximate: str) -> str:
    """Feed-forward block: Linear -> Gelu -> Linear."""
    y = g.linear(f"{scope}/fc1", x, hidden, intermediate)
    y = g.op("Gelu", f"{scope}/gelu", [y], approximate=approximate)
    return g.linear(f"{scope}/fc2", y, intermediate, hidden)


def embeddings(g: GraphBuilder, vocab: int, seq_len: int, hidden: int) -> str:
    """``input_ids`` -> word-embedding Gather + position-embedding Add."""
    ids = g.input("input_ids", TensorProto.INT64, [1, seq_len])
    table = g.normal("embed/word_weight", (vocab, hidden), 1.0)
    positions = g.normal("embed/position_weight", (seq_len, hidden), 0.1)
    words = g.op("Gather", "embed/word_gather", [table, ids], axis=0)
    return g.op("Add", "embed/position_add", [words, positions])


def check_transformer(layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int) -> None:
    positive(layers=layers, hidden=hidden, heads=heads, seq_len=seq_len, intermediate=intermediate, vocab=vocab)
    require(hidden % heads == 0, f"hidden ({hidden}) must be divisible by heads ({heads})")
