"""The builders of the zoo's models (:mod:`scheduler.zoo` registers them with their defaults).

Each takes every parameter as a keyword argument (already type-checked) and returns
an ONNX graph (or, for the ``hf-*`` models, a whole exported model), raising
:class:`~scheduler.zoo_layers.ParamError` on a bad value.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import onnx
from onnx import TensorProto

from scheduler import hf
from scheduler.zoo_layers import GraphBuilder, attention, check_transformer, embeddings, mlp_block, positive, require


def build_bert(
    *, layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int, seed: int
) -> onnx.GraphProto:
    """BERT encoder: embeddings + LayerNorm, then post-LN attention / FFN layers."""
    check_transformer(layers, hidden, heads, seq_len, intermediate, vocab)
    g = GraphBuilder(seed)
    x = embeddings(g, vocab, seq_len, hidden)
    x = g.layer_norm("embed/layer_norm", x, hidden, 1e-12)
    for i in range(layers):
        last = i == layers - 1
        attn = attention(g, f"l{i}/attn", x, seq_len, hidden, heads, mask=None)
        x = g.op("Add", f"l{i}/attn/residual_add", [x, attn])
        x = g.layer_norm(f"l{i}/attn/layer_norm", x, hidden, 1e-12)
        ffn = mlp_block(g, f"l{i}/ffn", x, hidden, intermediate, approximate="none")
        x = g.op("Add", f"l{i}/ffn/residual_add", [x, ffn])
        x = g.layer_norm(f"l{i}/ffn/layer_norm", x, hidden, 1e-12, output="last_hidden_state" if last else None)
    g.output("last_hidden_state", TensorProto.FLOAT, [1, seq_len, hidden])
    return g.graph("bert")


def build_gpt2(
    *, layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int, seed: int
) -> onnx.GraphProto:
    """GPT-2 decoder: pre-LN causal attention / MLP layers, final LayerNorm, LM head."""
    check_transformer(layers, hidden, heads, seq_len, intermediate, vocab)
    g = GraphBuilder(seed)
    x = embeddings(g, vocab, seq_len, hidden)
    # -1e4 above the diagonal: exp() underflows to exactly 0 in float32, without -inf arithmetic.
    mask = g.const("attn/causal_mask", np.triu(np.full((seq_len, seq_len), -1e4, dtype=np.float32), k=1))
    for i in range(layers):
        h = g.layer_norm(f"l{i}/ln_1", x, hidden, 1e-5)
        attn = attention(g, f"l{i}/attn", h, seq_len, hidden, heads, mask=mask)
        x = g.op("Add", f"l{i}/attn/residual_add", [x, attn])
        h = g.layer_norm(f"l{i}/ln_2", x, hidden, 1e-5)
        mlp = mlp_block(g, f"l{i}/mlp", h, hidden, intermediate, approximate="tanh")
        x = g.op("Add", f"l{i}/mlp/residual_add", [x, mlp])
    x = g.layer_norm("ln_f", x, hidden, 1e-5)
    head = g.normal("lm_head_weight", (hidden, vocab), 1.0 / math.sqrt(hidden))
    g.op("MatMul", "lm_head_matmul", [x, head], output="logits")
    g.output("logits", TensorProto.FLOAT, [1, seq_len, vocab])
    return g.graph("gpt2")


def build_hf(family: str, *, layers: int, hidden: int, heads: int, seq_len: int, intermediate: int, vocab: int,
              batch: int, seed: int) -> onnx.ModelProto:
    check_transformer(layers, hidden, heads, seq_len, intermediate, vocab)
    positive(batch=batch)
    return hf.export(family, layers=layers, hidden=hidden, heads=heads, seq_len=seq_len, intermediate=intermediate,
                     vocab=vocab, batch=batch, seed=seed)


RANDWIRE_GRAPHS = ("ws", "er", "ba")


def _random_dag(graph: str, nodes: int, k: int, p: float, er_p: float, m: int, seed: int) -> nx.DiGraph:
    """The random undirected graph of the given kind, oriented low -> high index."""
    if graph == "ws":
        require(2 <= k < nodes, f"parameter 'k' must satisfy 2 <= k < nodes ({nodes}), got {k}")
        require(0.0 <= p <= 1.0, f"parameter 'p' must be in [0, 1], got {p}")
        undirected = nx.watts_strogatz_graph(nodes, k, p, seed=seed)
    elif graph == "er":
        require(0.0 <= er_p <= 1.0, f"parameter 'er_p' must be in [0, 1], got {er_p}")
        undirected = nx.erdos_renyi_graph(nodes, er_p, seed=seed)
    else:
        require(1 <= m < nodes, f"parameter 'm' must satisfy 1 <= m < nodes ({nodes}), got {m}")
        undirected = nx.barabasi_albert_graph(nodes, m, seed=seed)
    dag = nx.DiGraph()
    dag.add_nodes_from(range(nodes))
    dag.add_edges_from((min(u, v), max(u, v)) for u, v in undirected.edges())
    return dag


def build_randwire(
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
    require(
        graph in RANDWIRE_GRAPHS, f"parameter 'graph' must be one of {', '.join(RANDWIRE_GRAPHS)}, got {graph!r}"
    )
    positive(nodes=nodes, channels=channels, image=image, classes=classes)
    dag = _random_dag(graph, nodes, k, p, er_p, m, seed)
    g = GraphBuilder(seed)
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


def build_inception(*, blocks: int, channels: int, image: int, classes: int, seed: int) -> onnx.GraphProto:
    """Inception-style CNN: stem Conv, ``blocks`` four-branch blocks concatenated on channels, classifier."""
    positive(blocks=blocks, channels=channels, image=image, classes=classes)
    g = GraphBuilder(seed)
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


def build_resnet(*, width: int, image: int, classes: int, seed: int) -> onnx.GraphProto:
    """ResNet-50 (v1.5): 7x7 stem, bottleneck stages of 3, 4, 6, 3 blocks (base ``width``; 64 is the real one)."""
    positive(width=width, image=image, classes=classes)
    g = GraphBuilder(seed)
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


def build_squeezenet(*, image: int, classes: int, seed: int) -> onnx.GraphProto:
    """SqueezeNet 1.1: fire modules (1x1 squeeze, then parallel 1x1 and 3x3 expands concatenated)."""
    positive(image=image, classes=classes)
    require(image >= 32, f"parameter 'image' must be >= 32, got {image}")
    g = GraphBuilder(seed)
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


def build_mobilenet(*, width_mult: float, image: int, classes: int, seed: int) -> onnx.GraphProto:
    """MobileNetV2: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project) with Relu6."""
    positive(image=image, classes=classes)
    require(width_mult > 0, f"parameter 'width_mult' must be > 0, got {width_mult}")

    def ch(c: int) -> int:
        return max(8, int(c * width_mult + 4) // 8 * 8)

    g = GraphBuilder(seed)
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


def build_siamese(*, layers: int, hidden: int, embed: int, seq_len: int, vocab: int, proj: int, head: int,
                   seed: int) -> onnx.GraphProto:
    """Two LSTM towers over two token sequences (one shared embedding table), scored by cosine similarity.

    Each tower: Gather embedding -> time-major Transpose -> ``layers`` LSTMs -> last step -> projection
    head (``head`` linear layers of width ``proj``, Relu between them) -> L2 normalisation.  The
    towers are independent until the score: the recurrent steps are too small for intra-op threads to
    help, so the two towers on two cores is where a placement beats plain ORT.
    """
    positive(layers=layers, hidden=hidden, embed=embed, seq_len=seq_len, vocab=vocab, proj=proj, head=head)
    g = GraphBuilder(seed)
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


def build_mlp(*, layers: int, width: int, batch: int, seed: int) -> onnx.GraphProto:
    """A plain chain of ``layers`` MatMul + Add (+ Relu except after the last) layers."""
    positive(layers=layers, width=width, batch=batch)
    g = GraphBuilder(seed)
    x = g.input("x", TensorProto.FLOAT, [batch, width])
    for i in range(layers):
        last = i == layers - 1
        x = g.linear(f"l{i}/fc", x, width, width, output="y" if last else None)
        if not last:
            x = g.op("Relu", f"l{i}/relu", [x])
    g.output("y", TensorProto.FLOAT, [batch, width])
    return g.graph("mlp")
