"""Tests for scheduler.zoo: every model is valid ONNX, runs in onnxruntime, and is deterministic."""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from scheduler import zoo
from scheduler.errors import HetschedError

# One case with defaults and one small non-default case per model.
CASES: list[tuple[str, dict[str, object]]] = [
    ("bert", {}),
    ("bert", {"layers": 1, "hidden": 32, "heads": 2, "seq_len": 8, "intermediate": 64, "vocab": 50, "seed": 3}),
    ("gpt2", {}),
    ("gpt2", {"layers": 3, "hidden": 48, "heads": 6, "seq_len": 12, "intermediate": 96, "vocab": 100, "seed": 5}),
    ("randwire", {}),
    ("randwire", {"graph": "ba", "nodes": 10, "m": 3, "channels": 4, "image": 12, "batchnorm": "false", "seed": 1}),
    ("inception", {}),
    ("inception", {"blocks": 1, "channels": 8, "image": 16, "classes": 5, "seed": 2}),
    ("mlp", {}),
    ("mlp", {"layers": 2, "width": 16, "batch": 3, "seed": 7}),
    ("resnet", {}),
    ("resnet", {"width": 8, "image": 32, "classes": 5, "seed": 1}),
    ("squeezenet", {}),
    ("squeezenet", {"image": 32, "classes": 5, "seed": 1}),
    ("mobilenet", {}),
    ("mobilenet", {"width_mult": 0.25, "image": 32, "classes": 5, "seed": 1}),
    ("siamese", {}),
    ("siamese", {"layers": 2, "hidden": 8, "embed": 12, "seq_len": 5, "vocab": 30, "proj": 6, "seed": 2}),
]
CASE_IDS = [f"{name}-{'defaults' if not params else 'small'}" for name, params in CASES]


@lru_cache(maxsize=None)
def _build_cached(name: str, frozen: tuple[tuple[str, object], ...]) -> bytes:
    return zoo.build(name, **dict(frozen)).SerializeToString()


def build(name: str, **params: object) -> onnx.ModelProto:
    """Build once per (name, params) and hand out a fresh copy."""
    return onnx.load_from_string(_build_cached(name, tuple(sorted(params.items()))))


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def static_shape(value_info: onnx.ValueInfoProto) -> list[int]:
    dims = value_info.type.tensor_type.shape.dim
    assert all(d.HasField("dim_value") and d.dim_value > 0 for d in dims), value_info
    return [d.dim_value for d in dims]


def random_feeds(model: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray]:
    params = json.loads(dict((p.key, p.value) for p in model.metadata_props)["zoo.params"])
    feeds = {}
    for vi in model.graph.input:
        shape = static_shape(vi)
        elem = vi.type.tensor_type.elem_type
        if elem == onnx.TensorProto.INT64:
            feeds[vi.name] = rng.integers(0, params["vocab"], size=shape, dtype=np.int64)
        else:
            assert elem == onnx.TensorProto.FLOAT
            feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def data_inputs(model: onnx.ModelProto, node: onnx.NodeProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in node.input if i and i not in inits]


# --------------------------------------------------------------------------- registry


def test_every_model_has_cases() -> None:
    names = [m.name for m in zoo.list_models() if m.extra is None]
    assert names == ["bert", "gpt2", "randwire", "inception", "resnet", "squeezenet", "mobilenet", "siamese", "mlp"]
    assert [m.name for m in zoo.list_models() if m.extra == "torch"] == ["hf-bert", "hf-roberta", "hf-gpt2"]
    assert set(names) == {name for name, _ in CASES}


def test_zoo_model_is_immutable() -> None:
    entry = zoo.get_model("bert")
    assert entry.defaults["layers"] == 2 and entry.defaults["intermediate"] == 256
    with pytest.raises(TypeError):
        entry.defaults["layers"] = 3  # type: ignore[index]
    with pytest.raises(AttributeError):
        entry.name = "other"  # type: ignore[misc]
    assert all(m.description and "seed" in m.defaults for m in zoo.list_models())


# --------------------------------------------------------------------------- every model


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_model_is_valid_onnx(name: str, params: dict[str, object]) -> None:
    model = build(name, **params)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 10
    assert [(o.domain, o.version) for o in model.opset_import] == [("", zoo.OPSET)]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["zoo.name"] == name
    recorded = json.loads(props["zoo.params"])
    assert set(recorded) == set(zoo.get_model(name).defaults)
    assert name in model.doc_string and props["zoo.params"] in model.doc_string
    # Static shapes everywhere: inputs, outputs and every inferred intermediate.
    for vi in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        static_shape(vi)
        assert vi.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64)
    assert static_shape(model.graph.input[0])[0] == recorded.get("batch", 1)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_names_are_unique_and_readable(name: str, params: dict[str, object]) -> None:
    model = build(name, **params)
    graph = model.graph
    node_names = [n.name for n in graph.node]
    assert all(node_names) and len(set(node_names)) == len(node_names)
    assert all(" " not in n for n in node_names)
    produced = [o for n in graph.node for o in n.output]
    sources = [t.name for t in graph.initializer] + [i.name for i in graph.input]
    counts = Counter(produced + sources)
    assert not [k for k, c in counts.items() if c > 1]
    # Intermediate tensors are named after their producer; graph outputs keep their own names.
    outputs = {o.name for o in graph.output}
    assert all(n.output[0] == n.name for n in graph.node if n.output[0] not in outputs)
    assert outputs <= set(produced)
    assert len(graph.value_info) == len(produced) - len(outputs)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_runs_in_onnxruntime(name: str, params: dict[str, object]) -> None:
    model = build(name, **params)
    sess = session(model)
    feeds = random_feeds(model, np.random.default_rng(0))
    results = sess.run(None, feeds)
    assert len(results) == len(model.graph.output)
    for out, vi in zip(results, model.graph.output):
        assert out.dtype == np.float32
        assert list(out.shape) == static_shape(vi)
        assert np.isfinite(out).all()
        assert np.abs(out).max() > 0


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_deterministic_in_seed(name: str, params: dict[str, object]) -> None:
    first = zoo.build(name, **params).SerializeToString()
    assert first == zoo.build(name, **params).SerializeToString()
    seed = int(params.get("seed", 0))  # type: ignore[call-overload]
    other = weights(zoo.build(name, **{**params, "seed": seed + 1}))
    mine = weights(onnx.load_from_string(first))
    shared = set(mine) & set(other)
    assert shared
    changed = [k for k in shared if mine[k].dtype == np.float32 and not np.array_equal(mine[k], other[k])]
    assert changed


def test_string_params_are_coerced() -> None:
    assert zoo.build("bert", layers="1", seq_len="8").SerializeToString() == (
        zoo.build("bert", layers=1, seq_len=8).SerializeToString()
    )
    assert zoo.build("randwire", p="0.5").SerializeToString() == zoo.build("randwire", p=0.5).SerializeToString()
    with_bn = zoo.build("randwire", batchnorm="true")
    without = zoo.build("randwire", batchnorm="0")
    assert any(n.op_type == "BatchNormalization" for n in with_bn.graph.node)
    assert not any(n.op_type == "BatchNormalization" for n in without.graph.node)



# --------------------------------------------------------------------------- model specifics


@pytest.mark.parametrize("kind", ["ws", "er", "ba"])
def test_randwire_graph_kinds_branch(kind: str) -> None:
    model = zoo.build("randwire", graph=kind, nodes=8)
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.name == f"randwire_{kind}"
    assert any(len(data_inputs(model, n)) > 1 for n in model.graph.node), "no node merges branches"
    consumers = Counter(i for n in model.graph.node for i in data_inputs(model, n))
    assert max(consumers.values()) > 1, "no tensor fans out"
    out = session(model).run(None, random_feeds(model, np.random.default_rng(1)))[0]
    assert out.shape == (1, 10) and np.isfinite(out).all()


def test_randwire_kinds_differ_and_seed_changes_wiring() -> None:
    def wiring(**params: object) -> list[tuple[str, ...]]:
        return [tuple(n.input) for n in zoo.build("randwire", **params).graph.node if n.op_type == "Sum"]

    assert len({tuple(wiring(graph=k, nodes=12)) for k in ("ws", "er", "ba")}) == 3
    assert wiring(graph="er", nodes=12, er_p=0.3, seed=0) != wiring(graph="er", nodes=12, er_p=0.3, seed=1)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_attention_has_parallel_qkv_branches(name: str) -> None:
    nodes = {n.name: n for n in zoo.build(name, layers=1).graph.node}
    q, k, v = (nodes[f"l0/attn/{b}_matmul"] for b in "qkv")
    assert q.input[0] == k.input[0] == v.input[0]
    assert "l0/attn/softmax" in nodes
    assert nodes["l0/attn/qk_matmul"].input[:] == ["l0/attn/q_transpose", "l0/attn/k_transpose"]
    ops = Counter(n.op_type for n in nodes.values())
    assert ops["LayerNormalization"] >= 2 and ops["Gelu"] == 1 and ops["Softmax"] == 1


def _position0_changes(name: str) -> tuple[bool, bool]:
    """Change only the last token; report whether outputs at positions 0 and -1 change."""
    model = build(name, layers=2, seq_len=8)
    sess = session(model)
    ids = np.random.default_rng(3).integers(0, 200, size=(1, 8), dtype=np.int64)
    changed = ids.copy()
    changed[0, -1] = (ids[0, -1] + 17) % 200
    a = sess.run(None, {"input_ids": ids})[0]
    b = sess.run(None, {"input_ids": changed})[0]
    return (not np.allclose(a[0, 0], b[0, 0], rtol=0, atol=1e-6), not np.allclose(a[0, -1], b[0, -1]))


def test_gpt2_is_causal() -> None:
    first_changes, last_changes = _position0_changes("gpt2")
    assert not first_changes, "gpt2 position 0 depends on a later token: causal mask broken"
    assert last_changes


def test_bert_is_bidirectional() -> None:
    # Guards the causality test above: without a mask, position 0 does see the last token.
    first_changes, last_changes = _position0_changes("bert")
    assert first_changes and last_changes


def test_inception_blocks_have_four_branches() -> None:
    model = zoo.build("inception", blocks=3, channels=4, image=8)
    concats = [n for n in model.graph.node if n.op_type == "Concat"]
    assert [c.name for c in concats] == ["b0/concat", "b1/concat", "b2/concat"]
    assert all(len(c.input) == 4 for c in concats)
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["MaxPool"] == 3 and ops["Gemm"] == 1


def test_mlp_is_a_chain() -> None:
    model = zoo.build("mlp", layers=5)
    assert all(len(data_inputs(model, n)) == 1 for n in model.graph.node)
    assert Counter(n.op_type for n in model.graph.node) == {"MatMul": 5, "Add": 5, "Relu": 4}


def test_bert_base_layer_sizes_build() -> None:
    # One BERT-base-sized layer (the full 12 layers build too, in a few seconds).
    model = zoo.build("bert", layers=1, hidden=768, heads=12, intermediate=3072, seq_len=32, vocab=64)
    w = weights(model)
    per_layer = sum(a.size for k, a in w.items() if k.startswith("l0/"))
    assert per_layer == 4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768 + 2 * 2 * 768
    assert static_shape(model.graph.output[0]) == [1, 32, 768]


# --------------------------------------------------------------------------- errors and parsing


def test_unknown_model() -> None:
    with pytest.raises(ValueError, match=r"unknown zoo model 'vgg'; known: bert, gpt2, randwire, inception, resnet, "
                                         r"squeezenet, mobilenet, siamese, mlp"):
        zoo.build("vgg")
    with pytest.raises(zoo.ZooError):
        zoo.get_model("vgg")


def test_presets_build_their_model_at_real_size() -> None:
    for name, (base, params) in zoo.PRESETS.items():
        assert base in [m.name for m in zoo.list_models()] and set(params) <= set(zoo.get_model(base).defaults)
    model = zoo.build("resnet50", image=32)  # a preset with one parameter overridden
    recorded = json.loads(dict((p.key, p.value) for p in model.metadata_props)["zoo.params"])
    assert recorded["width"] == 64 and recorded["classes"] == 1000 and recorded["image"] == 32
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 53  # ResNet-50: 1 stem + 16 blocks x 3 + 4 downsampling shortcuts


def test_unknown_parameter() -> None:
    with pytest.raises(ValueError, match=r"'depth'.*'bert'.*known: layers, hidden, heads") as info:
        zoo.build("bert", depth=3)
    assert isinstance(info.value, HetschedError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "params", "mentions"),
    [
        ("bert", {"layers": 0}, "layers"),
        ("bert", {"layers": "two"}, "parameter layers must be a whole number, got 'two'"),
        ("bert", {"layers": 2.5}, "layers"),
        ("bert", {"hidden": 60, "heads": 8}, "heads"),
        ("gpt2", {"seq_len": -1}, "seq_len"),
        ("gpt2", {"vocab": "0"}, "vocab"),
        ("randwire", {"graph": "grid"}, "graph"),
        ("randwire", {"k": 8}, "'k'"),
        ("randwire", {"graph": "ba", "m": 0}, "'m'"),
        ("randwire", {"graph": "er", "er_p": 1.5}, "er_p"),
        ("randwire", {"p": "inf"}, "parameter p must be a finite number, got inf"),
        ("randwire", {"batchnorm": "maybe"}, "batchnorm"),
        ("inception", {"channels": 0}, "channels"),
        ("mlp", {"seed": -1}, "seed"),
        ("mlp", {"width": True}, "parameter width must be a whole number, got True"),
    ],
)
def test_bad_values(name: str, params: dict[str, object], mentions: str) -> None:
    with pytest.raises(ValueError) as info:
        zoo.build(name, **params)
    message = str(info.value)
    assert mentions in message and repr(name) in message and "\n" not in message


def test_parse_params() -> None:
    assert zoo.parse_params(["layers=2", "seq_len=16"]) == {"layers": "2", "seq_len": "16"}
    assert zoo.parse_params([" graph = er ", "x=a=b", "layers=1", "layers=3"]) == {
        "graph": "er",
        "x": "a=b",
        "layers": "3",
    }
    assert zoo.parse_params([]) == {}
    model = zoo.build("gpt2", **zoo.parse_params(["layers=1", "seq_len=4", "vocab=32"]))
    assert static_shape(model.graph.output[0]) == [1, 4, 32]


@pytest.mark.parametrize("item", ["layers", "=2", "", " =x"])
def test_parse_params_rejects_bad_items(item: str) -> None:
    with pytest.raises(ValueError, match="key=value"):
        zoo.parse_params(["seed=1", item])


@pytest.mark.slow
def test_bert_base_full_builds() -> None:
    model = zoo.build("bert", layers=12, hidden=768, heads=12, intermediate=3072, seq_len=128, vocab=30522)
    assert sum(numpy_helper.to_array(t).size for t in model.graph.initializer) > 100_000_000
    assert sum(n.op_type == "Softmax" for n in model.graph.node) == 12
