"""Tests for scheduler.graph: ONNX model -> task graph (tasks, edges, sizes, FLOPs, errors)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from scheduler import zoo
from scheduler.errors import ModelError
from scheduler.inputs import check_inputs
from scheduler.graph import (LARGE_TENSOR, Edge, Task, TaskGraph, copy_taking_out_large, fix_input_shapes,
                             fix_input_shapes_in_place, held_beside, is_large, large_initializers, lift_large_values,
                             load_model, load_model_mapped, name_nodes, subgraphs, take_out_large,
                             task_graph_from_onnx)

F32 = 4  # bytes per float32


# ----------------------------------------------------------------------------- helpers

def _model(nodes, inputs, outputs, initializers=(), name="hand"):
    """A model built with onnx.helper only (no checker), opset 17 / IR 9."""
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs), list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def hand_model(batch_dim=2):
    """X[b,8] @ W[8,4] -> Y; Relu(Y) -> Z; Add(Y, Z) -> S; Mul(Z, Z) -> Q; Split(S) -> S1, S2; Concat(S1, S2) -> out.

    Mul reads the same tensor twice; Split -> Concat carries two tensors between one node pair.
    """
    w = numpy_helper.from_array(np.arange(32, dtype=np.float32).reshape(8, 4), "W")
    split = numpy_helper.from_array(np.array([2, 2], dtype=np.int64), "split_sizes")
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm"),
        helper.make_node("Relu", ["Y"], ["Z"], name="relu"),
        helper.make_node("Add", ["Y", "Z"], ["S"], name="add"),
        helper.make_node("Mul", ["Z", "Z"], ["Q"], name="square"),
        helper.make_node("Split", ["S", "split_sizes"], ["S1", "S2"], name="split", axis=1),
        helper.make_node("Concat", ["S1", "S2"], ["out"], name="concat", axis=1),
    ]
    return _model(nodes, [_vi("X", [batch_dim, 8])], [_vi("out", None), _vi("Q", None)], [w, split])


@pytest.fixture(scope="module")
def hand_graph() -> TaskGraph:
    return task_graph_from_onnx(hand_model())


def _edge(graph: TaskGraph, src: str, dst: str) -> Edge:
    matches = [e for e in graph.edges if (e.src, e.dst) == (src, dst)]
    assert len(matches) == 1, f"expected one edge {src}->{dst}, got {matches}"
    return matches[0]


# ----------------------------------------------------------------------------- hand-built model

def test_tasks_are_the_nodes_in_order(hand_graph):
    assert [t.name for t in hand_graph.tasks] == ["mm", "relu", "add", "square", "split", "concat"]
    assert [t.op_type for t in hand_graph.tasks] == ["MatMul", "Relu", "Add", "Mul", "Split", "Concat"]
    assert all(t.onnx_nodes == (t.name,) for t in hand_graph.tasks)


def test_graph_inputs_and_initializers_are_not_tasks(hand_graph):
    names = {t.name for t in hand_graph.tasks}
    assert not names & {"X", "W", "split_sizes", "Y", "out"}
    ends = {e.src for e in hand_graph.edges} | {e.dst for e in hand_graph.edges}
    assert ends <= names


def test_edges_and_their_sizes(hand_graph):
    pairs = {(e.src, e.dst): e for e in hand_graph.edges}
    assert set(pairs) == {
        ("mm", "relu"), ("mm", "add"), ("relu", "add"), ("relu", "square"), ("add", "split"), ("split", "concat"),
    }
    assert len(hand_graph.edges) == 6
    y_bytes = 2 * 4 * F32  # 32
    for key in [("mm", "relu"), ("mm", "add"), ("relu", "add"), ("add", "split")]:
        assert pairs[key].bytes == y_bytes
    # the same tensor read twice by one node counts once
    assert pairs[("relu", "square")].bytes == y_bytes
    assert pairs[("relu", "square")].tensors == ("Z",)
    # two tensors between one pair: one edge, bytes summed
    sc = pairs[("split", "concat")]
    assert sc.tensors == ("S1", "S2")
    assert sc.bytes == 2 * (2 * 2 * F32)


def test_matmul_flops_bytes_and_memory(hand_graph):
    mm = hand_graph.task["mm"]
    assert mm.flops == 2 * 2 * 8 * 4
    # reads X (2x8) and W (8x4), writes Y (2x4)
    assert mm.bytes_moved == (2 * 8 + 8 * 4 + 2 * 4) * F32
    # resident: the weight it reads plus its output (graph input X is not counted)
    assert mm.memory_bytes == 8 * 4 * F32 + 2 * 4 * F32


def test_elementwise_and_copy_ops(hand_graph):
    t = hand_graph.task
    assert t["relu"].flops == 2 * 4
    assert t["add"].flops == 2 * 4
    assert t["relu"].memory_bytes == 2 * 4 * F32  # no weights, only its output
    assert t["concat"].flops == 0
    # Split reads an int64 initializer of 2 elements: that counts as a weight
    assert t["split"].memory_bytes == 2 * 8 + 2 * (2 * 2 * F32)
    assert hand_graph.unknown_shape_tensors == ()


def test_graph_is_a_dag_with_topological_order(hand_graph):
    order = hand_graph.topological_order
    pos = {n: i for i, n in enumerate(order)}
    assert sorted(order) == sorted(t.name for t in hand_graph.tasks)
    assert all(pos[e.src] < pos[e.dst] for e in hand_graph.edges)
    assert hand_graph.nx.number_of_edges() == len(hand_graph.edges)


def test_name_argument_and_default_name():
    assert task_graph_from_onnx(hand_model()).name == "hand"
    assert task_graph_from_onnx(hand_model(), name="mine").name == "mine"


def test_saved_model_imports_like_in_memory(tmp_path):
    model = hand_model()
    path = tmp_path / "hand.onnx"
    onnx.save(model, os.fspath(path))
    from_disk = task_graph_from_onnx(path)
    from_str = task_graph_from_onnx(os.fspath(path))
    assert from_disk == task_graph_from_onnx(model)
    assert from_str == from_disk


def test_import_does_not_modify_the_callers_model():
    model = _model([helper.make_node("Relu", ["X"], ["Y"])], [_vi("X", ["n", 3])], [_vi("Y", None)])
    before = model.SerializeToString()
    task_graph_from_onnx(model, input_shapes={"X": [2, 3]})
    assert model.SerializeToString() == before


# ----------------------------------------------------------------------------- node naming

def _unnamed_chain():
    nodes = [
        helper.make_node("Relu", ["X"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Neg", ["b"], ["c"], name="dup"),
        helper.make_node("Neg", ["c"], ["d"], name="dup"),
        helper.make_node("Relu", ["d"], ["e"], name="Relu_0"),  # collides with a generated name
    ]
    return _model(nodes, [_vi("X", [1, 3])], [_vi("e", None)])


def test_unnamed_and_repeated_nodes_get_unique_names():
    g = task_graph_from_onnx(_unnamed_chain())
    names = [t.name for t in g.tasks]
    assert len(set(names)) == len(names) == 5
    assert all(names)
    assert names[2] == "dup"
    assert names[3] != "dup"
    # an explicit, unique name is kept even where a generated one could collide with it
    assert names[4] == "Relu_0"
    assert [(e.src, e.dst) for e in g.edges] == list(zip(names, names[1:]))


def test_name_nodes_is_deterministic_and_pure():
    model = _unnamed_chain()
    before = model.SerializeToString()
    a, b = name_nodes(model), name_nodes(model)
    assert [n.name for n in a.graph.node] == [n.name for n in b.graph.node]
    assert model.SerializeToString() == before
    # naming is idempotent: an already named model keeps its names
    assert [n.name for n in name_nodes(a).graph.node] == [n.name for n in a.graph.node]
    # the task graph uses exactly these names
    assert [t.name for t in task_graph_from_onnx(model).tasks] == [n.name for n in a.graph.node]


# ----------------------------------------------------------------------------- input shapes

def _dynamic_model():
    w = numpy_helper.from_array(np.ones((8, 4), dtype=np.float32), "W")
    nodes = [helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm"),
             helper.make_node("Relu", ["Y"], ["Z"], name="relu")]
    return _model(nodes, [_vi("X", ["batch", 8])], [_vi("Z", None)], [w])


def test_dynamic_input_dim_without_shapes_is_rejected():
    with pytest.raises(ModelError) as info:
        task_graph_from_onnx(_dynamic_model())
    msg = str(info.value)
    assert "'X'" in msg and "batch" in msg
    assert "\n" not in msg


def test_input_without_shape_is_rejected():
    model = _model([helper.make_node("Relu", ["X"], ["Y"])], [_vi("X", None)], [_vi("Y", None)])
    with pytest.raises(ModelError, match="'X'"):
        task_graph_from_onnx(model)


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_input_shapes_fix_dynamic_dims(batch):
    g = task_graph_from_onnx(_dynamic_model(), input_shapes={"X": [batch, 8]})
    assert g.unknown_shape_tensors == ()
    assert _edge(g, "mm", "relu").bytes == batch * 4 * F32
    assert g.task["mm"].flops == 2 * batch * 8 * 4
    assert g.task["mm"].memory_bytes == 8 * 4 * F32 + batch * 4 * F32


def test_input_shapes_override_static_dims():
    g = task_graph_from_onnx(hand_model(), input_shapes={"X": [6, 8]})
    assert _edge(g, "mm", "relu").bytes == 6 * 4 * F32


@pytest.mark.parametrize("bad", [{"Y": [2, 8]}, {"W": [8, 4]}, {"nope": [1]}])
def test_input_shapes_naming_a_non_input_is_rejected(bad):
    with pytest.raises(ModelError) as info:
        task_graph_from_onnx(_dynamic_model(), input_shapes=bad)
    assert repr(next(iter(bad))) in str(info.value)


def test_input_shapes_must_not_be_negative():
    """0 is an empty tensor (a key-value cache of length 0); a negative size is refused naming the input."""
    with pytest.raises(ModelError, match=r"input shape for 'X' must be integers >= 0, got \[-1, 8\]"):
        task_graph_from_onnx(_dynamic_model(), input_shapes={"X": [-1, 8]})
    assert {e.bytes for e in task_graph_from_onnx(_dynamic_model(), input_shapes={"X": [0, 8]}).edges} <= {0}


def test_input_shapes_with_wrong_rank_is_rejected():
    with pytest.raises(ModelError, match="rank"):
        task_graph_from_onnx(_dynamic_model(), input_shapes={"X": [2, 8, 1]})


def test_a_scalar_input_shape_stays_a_shape():
    """A shape with no dims is a scalar's (silero-vad's sample rate), not a missing shape: fixing it again
    (as every later stage does) must not refuse it."""
    model = _model([helper.make_node("Relu", ["X"], ["Y"])], [_vi("X", [])], [_vi("Y", [])])
    for given in (None, {"X": []}):
        fixed = fix_input_shapes(model, given)
        assert fixed.graph.input[0].type.tensor_type.HasField("shape")
        assert fix_input_shapes(fixed, None).graph.input[0].type.tensor_type.shape.dim == []


def test_a_negative_declared_size_is_dynamic():
    """PaddlePaddle declares a dynamic size as -1: ORT runs any size there, so given values of another size are
    taken, and without them the size must be given like any dynamic one."""
    model = _model([helper.make_node("Relu", ["X"], ["Y"])], [_vi("X", [-1, 8])], [_vi("Y", [-1, 8])])
    check_inputs(model, {"X": np.zeros((3, 8), np.float32)})
    with pytest.raises(ModelError, match="'X' has a dynamic dimension without a name"):
        fix_input_shapes(model, None)
    assert [d.dim_value for d in fix_input_shapes(model, {"X": [3, 8]}).graph.input[0].type.tensor_type.shape.dim] \
        == [3, 8]


def test_fix_input_shapes_returns_a_copy():
    model = _dynamic_model()
    fixed = fix_input_shapes(model, {"X": [4, 8]})
    dims = [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 8]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    fix_input_shapes_in_place(model, {"X": [4, 8]})  # what load_original does to a model of its own
    assert model == fixed


# ----------------------------------------------------------------------------- malformed graphs

def test_cyclic_graph_is_rejected():
    nodes = [helper.make_node("Add", ["X", "b"], ["a"], name="A"),
             helper.make_node("Relu", ["a"], ["b"], name="B")]
    model = _model(nodes, [_vi("X", [2, 2])], [_vi("b", None)])
    with pytest.raises(ModelError) as info:
        task_graph_from_onnx(model)
    msg = str(info.value)
    assert "cycle" in msg and "A" in msg and "B" in msg


def test_node_reading_its_own_output_is_rejected():
    model = _model([helper.make_node("Add", ["X", "a"], ["a"], name="A")], [_vi("X", [2])], [_vi("a", None)])
    with pytest.raises(ModelError, match="'A'"):
        task_graph_from_onnx(model)


def test_dangling_tensor_is_rejected():
    nodes = [helper.make_node("Add", ["X", "ghost"], ["a"], name="A")]
    model = _model(nodes, [_vi("X", [2, 2])], [_vi("a", None)])
    with pytest.raises(ModelError) as info:
        task_graph_from_onnx(model)
    assert "'ghost'" in str(info.value) and "'A'" in str(info.value)


def test_tensor_produced_twice_is_rejected():
    nodes = [helper.make_node("Relu", ["X"], ["a"], name="A"), helper.make_node("Neg", ["X"], ["a"], name="B")]
    model = _model(nodes, [_vi("X", [2])], [_vi("a", None)])
    with pytest.raises(ModelError, match="'a'"):
        task_graph_from_onnx(model)


def test_missing_file_is_a_model_error(tmp_path):
    path = tmp_path / "missing.onnx"
    with pytest.raises(ModelError) as info:
        task_graph_from_onnx(path)
    assert os.fspath(path) in str(info.value)


@pytest.mark.parametrize("seed", range(5))
def test_garbage_file_is_a_model_error(tmp_path, seed):
    path = tmp_path / "bad.onnx"
    path.write_bytes(np.random.default_rng(seed).bytes(64 + 97 * seed))
    with pytest.raises(ModelError) as info:  # no other exception type
        task_graph_from_onnx(path)
    msg = str(info.value)
    assert os.fspath(path) in msg
    assert "\n" not in msg


@pytest.mark.parametrize("content", [b"", b"hello, world\n"])
def test_empty_or_text_file_is_a_model_error(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert os.fspath(path) in str(info.value)


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path)


def test_task_graph_checks_its_own_structure():
    a, b = Task("a"), Task("b")
    with pytest.raises(ModelError, match="twice"):
        TaskGraph("g", (a, Task("a")), ())
    with pytest.raises(ModelError, match="'zz'"):
        TaskGraph("g", (a, b), (Edge("a", "zz"),))
    with pytest.raises(ModelError, match="self-loop"):
        TaskGraph("g", (a, b), (Edge("a", "a"),))
    with pytest.raises(ModelError, match="twice"):
        TaskGraph("g", (a, b), (Edge("a", "b"), Edge("a", "b")))
    with pytest.raises(ModelError, match="negative"):
        TaskGraph("g", (a, b), (Edge("a", "b", -1),))
    with pytest.raises(ModelError, match="cycle"):
        TaskGraph("g", (a, b), (Edge("a", "b"), Edge("b", "a")))


# ----------------------------------------------------------------------------- zoo models

@pytest.mark.parametrize("name", [m.name for m in zoo.list_models() if m.extra is None])
def test_zoo_models_import_cleanly(name, tmp_path):
    model = zoo.build(name)
    g = task_graph_from_onnx(model)
    assert g.unknown_shape_tensors == ()
    assert sum(t.flops for t in g.tasks) > 0
    assert g.edges and all(e.bytes > 0 for e in g.edges)
    assert [t.name for t in g.tasks] == [n.name for n in model.graph.node]
    assert [t.op_type for t in g.tasks] == [n.op_type for n in model.graph.node]
    assert all(t.memory_bytes > 0 and t.bytes_moved > 0 for t in g.tasks)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, os.fspath(path))
    assert task_graph_from_onnx(path, name=g.name) == g


def test_mlp_is_a_chain_with_exact_sizes():
    g = task_graph_from_onnx(zoo.build("mlp", layers=2, width=16, batch=3))
    # every activation between layers is batch x width float32
    assert {e.bytes for e in g.edges} == {3 * 16 * F32}
    assert len(g.edges) == len(g.tasks) - 1
    mms = [t for t in g.tasks if t.op_type == "MatMul"]
    assert len(mms) == 2
    assert {t.flops for t in mms} == {2 * 3 * 16 * 16}


def test_copy_taking_out_large_equals_a_copy_with_its_large_values_taken_out(monkeypatch):
    """The copy that never holds the large values serialises to the same bytes as a whole copy that
    :func:`take_out_large` then empties, gives the same values, and leaves the model as it was."""
    n = LARGE_TENSOR // 4
    raw = numpy_helper.from_array(np.arange(n, dtype=np.float32), "raw")
    raw.doc_string = "kept"
    typed = helper.make_tensor("typed", TensorProto.INT64, [n], list(range(n)))
    small = numpy_helper.from_array(np.ones(4, np.float32), "small")
    graph = helper.make_graph([helper.make_node("Identity", ["raw"], ["y"], name="id")], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [small, raw, typed],
                              doc_string="graph doc")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    before = model.SerializeToString()
    whole = onnx.ModelProto()
    whole.CopyFrom(model)
    expected = take_out_large(whole, "m.data")
    light, values = copy_taking_out_large(model, "m.data")
    values += take_out_large(light, "m.data", offset=8)  # nothing left to take
    assert light.SerializeToString() == whole.SerializeToString() and model.SerializeToString() == before
    assert [k for k, _ in values] == [k for k, _ in expected] == ["raw", "typed"]
    for (_, got), (_, want) in zip(values, expected):
        np.testing.assert_array_equal(got, want)


def _all_graphs(g: onnx.GraphProto) -> list[onnx.GraphProto]:
    return [g] + [s for n in g.node for s in subgraphs(n) for s in _all_graphs(s)]


def test_lifting_leaves_no_reference_cycle():
    """The model lifted (a copy, as every session's bytes lift one) is freed when dropped, not when the garbage
    collector next runs: recursive closures made a cycle that held a 1 GiB model's copy and the Constants it
    left (3 GiB more in the optimisation session)."""
    import gc

    from conftest import weights_inside_model

    model = weights_inside_model()
    gc.collect()
    gc.disable()
    try:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        assert lift_large_values(copy) == 4
        del copy
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_lift_large_values_makes_every_large_value_a_main_graph_initializer():
    """Weights in a main-graph Constant, an If branch's initializer, the other branch's Constant and a Loop
    body's Constant all become main-graph initializers (the bodies read them from the outer scope), and the
    model computes the same on both branches; two sibling branches that define one name keep theirs."""
    import onnxruntime as ort

    from conftest import weights_inside_model

    feeds = {"x": np.random.default_rng(1).standard_normal((4, 512)).astype(np.float32)}
    model = weights_inside_model()
    lifted = onnx.ModelProto()
    lifted.CopyFrom(model)
    lift_large_values(lifted)
    onnx.checker.check_model(lifted)
    assert sorted(t.name for t in large_initializers(lifted.graph)) == ["w0", "w_else", "w_loop", "w_then"]
    assert not [n for g in _all_graphs(lifted.graph) for n in g.node if n.op_type == "Constant"]
    assert not [t for g in _all_graphs(lifted.graph)[1:] for t in g.initializer]
    assert lifted.ByteSize() < model.ByteSize() + 4096
    for flag in (True, False):
        run = {**feeds, "flag": np.array(flag)}
        want = ort.InferenceSession(model.SerializeToString()).run(None, run)[0]
        np.testing.assert_array_equal(ort.InferenceSession(lifted.SerializeToString()).run(None, run)[0], want)
    sibling = onnx.ModelProto()
    sibling.CopyFrom(model)
    other = next(a.g for n in sibling.graph.node if n.op_type == "If" for a in n.attribute if a.name == "else_branch")
    other.node[0].output[0] = other.node[1].input[1] = "w_then"
    lift_large_values(sibling)
    branches = {a.name: a.g for n in sibling.graph.node if n.op_type == "If" for a in n.attribute}
    assert sorted(t.name for t in large_initializers(sibling.graph)) == ["w0", "w_loop"]
    assert [t.name for t in branches["then_branch"].initializer] == ["w_then"]
    assert [n.op_type for n in branches["else_branch"].node] == ["Constant", "MatMul"]


def test_take_out_large_moves_every_large_value_and_keeps_the_rest(monkeypatch):
    """Large values leave the model whatever field holds them (raw bytes or typed lists), with offsets as if
    written one after another; small ones and strings stay; the model is then no longer beyond the limit."""
    import scheduler.graph as graph_module

    n = LARGE_TENSOR // 4
    raw = numpy_helper.from_array(np.arange(n, dtype=np.float32), "raw")
    typed = helper.make_tensor("typed", TensorProto.INT64, [n], list(range(n)))
    small = numpy_helper.from_array(np.ones(4, np.float32), "small")
    words = helper.make_tensor("words", TensorProto.STRING, [1], [b"x" * LARGE_TENSOR])
    graph = helper.make_graph([helper.make_node("Identity", ["raw"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [raw, typed, small, words])
    model = helper.make_model(graph)
    monkeypatch.setattr(graph_module, "PROTOBUF_LIMIT", 2 * LARGE_TENSOR)
    assert is_large(model)
    out = take_out_large(model, "m.data")
    assert [name for name, _ in out] == ["raw", "typed"] and not is_large(model)
    np.testing.assert_array_equal(out[1][1], np.arange(n, dtype=np.int64))
    by_name = {t.name: t for t in model.graph.initializer}
    assert not by_name["typed"].int64_data and not by_name["raw"].raw_data
    assert {e.key: e.value for e in by_name["typed"].external_data} == {
        "location": "m.data", "offset": str(n * 4), "length": str(n * 8)}
    assert by_name["small"].raw_data and by_name["words"].string_data


@pytest.mark.parametrize("elem, nbytes", [(TensorProto.INT4, 32), (TensorProto.UINT4, 32),
                                          (TensorProto.BFLOAT16, 126), (TensorProto.FLOAT8E4M3FN, 63)])
def test_an_edge_carries_the_bytes_onnx_stores(elem, nbytes):
    """63 values of a type packed below a byte take 32 bytes (the last one half used), not one byte each as
    numpy holds them: what a hand-over of such a tensor costs."""
    from scheduler.optimize import observed_types

    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["b"], to=elem),
                               helper.make_node("Cast", ["b"], ["y"], to=TensorProto.FLOAT)], "packed",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [63])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [63])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    g = task_graph_from_onnx(model, types=observed_types(model))
    assert [(e.tensors, e.bytes) for e in g.edges] == [(("b",), nbytes)]


def _matmul_body(name: str, rows: int) -> onnx.GraphProto:
    """A subgraph multiplying the outer ``X`` (rows x 8) by its own 8x4 weight."""
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), f"{name}_w")
    return helper.make_graph([helper.make_node("MatMul", ["X", f"{name}_w"], [f"{name}_y"], name=f"{name}_mm")],
                             name, [], [_vi(f"{name}_y", [rows, 4])], [w], value_info=[_vi("X", [rows, 8])])


def test_recurrent_and_control_flow_nodes_count_what_they_compute():
    """An LSTM counts its input and state products at every step; an If its costlier branch; a Loop its body
    times a constant trip count; a Scan its body once per slice. Each counted 0-ish before (its outputs only),
    so a simulated device took it for free."""
    seq, batch, size, hidden = 5, 2, 8, 16
    w = numpy_helper.from_array(np.zeros((1, 4 * hidden, size), np.float32), "W")
    r = numpy_helper.from_array(np.zeros((1, 4 * hidden, hidden), np.float32), "R")
    cheap = helper.make_graph([helper.make_node("Identity", ["X"], ["c_y"], name="c_id")], "cheap", [],
                              [_vi("c_y", [2, 8])])
    mm = 2 * 2 * 8 * 4  # one MatMul of the bodies: (2 x 8) @ (8 x 4)
    scan_body = helper.make_graph(
        [helper.make_node("MatMul", ["s_in", "s_w"], ["s_out"], name="s_mm"),
         helper.make_node("Identity", ["s_state"], ["s_next"], name="s_id")], "scan_body",
        [_vi("s_state", [1]), _vi("s_in", [2, 8])], [_vi("s_next", [1]), _vi("s_out", [2, 4])],
        [numpy_helper.from_array(np.ones((8, 4), np.float32), "s_w")])
    loop_body = helper.make_graph(
        [helper.make_node("MatMul", ["X", "l_w"], ["l_y"], name="l_mm"),
         helper.make_node("Identity", ["cond"], ["cond_out"], name="l_cond")], "loop_body",
        [_vi("i", [], TensorProto.INT64), _vi("cond", [], TensorProto.BOOL)],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("l_y", [2, 4])],
        [numpy_helper.from_array(np.ones((8, 4), np.float32), "l_w")])
    nodes = [helper.make_node("LSTM", ["seq", "W", "R"], ["Y"], name="lstm", hidden_size=hidden),
             helper.make_node("If", ["flag"], ["IF"], name="if", then_branch=_matmul_body("t", 2),
                              else_branch=cheap),
             helper.make_node("Loop", ["trips", "always"], ["LOOP"], name="loop", body=loop_body),
             helper.make_node("Scan", ["state0", "XS"], ["state", "SCAN"], name="scan", body=scan_body,
                              num_scan_inputs=1)]
    consts = [w, r, numpy_helper.from_array(np.array(7, np.int64), "trips"),
              numpy_helper.from_array(np.array(True), "always"),
              numpy_helper.from_array(np.zeros(1, np.float32), "state0")]
    model = _model(nodes, [_vi("seq", [seq, batch, size]), _vi("flag", [], TensorProto.BOOL), _vi("X", [2, 8]),
                           _vi("XS", [3, 2, 8])],
                   [_vi("Y", None), _vi("IF", None), _vi("LOOP", None), _vi("SCAN", None), _vi("state", None)], consts)
    t = task_graph_from_onnx(model).task
    assert t["lstm"].flops == 2 * seq * batch * 4 * hidden * (size + hidden) + 8 * seq * batch * hidden
    assert t["if"].flops == mm
    assert t["loop"].flops == 7 * mm
    assert t["scan"].flops == 3 * mm


def _saved_with_values_beside(folder, location: str = "m.data") -> tuple[str, onnx.ModelProto]:
    """An MLP (1 MiB weights, small biases) saved with every value of 1 KiB or more in ``location``."""
    model = zoo.build("mlp", layers=3, width=512)
    path = os.path.join(folder, "m.onnx")
    onnx.save(model, path, save_as_external_data=True, location=location, size_threshold=1024)
    return path, model


def test_a_models_large_values_are_mapped_where_they_lie(tmp_path):
    """load_model_mapped keeps a file's large values in their file (read-only views, placeholders held beside
    the model), reads its small external ones in as onnx.load does, and the model so held is the model read
    whole: the same bytes beside the same values; below ``least``, it is read whole."""
    path, model = _saved_with_values_beside(str(tmp_path))
    proto, values = load_model_mapped(path, least=1 << 20)
    whole = load_model(path)
    assert len(values) == 3 and all(isinstance(v, np.memmap) and not v.flags.writeable for v in values.values())
    assert all(os.path.samefile(v.filename, tmp_path / "m.data") for v in values.values())
    by_name = {t.name: t for t in whole.graph.initializer}
    for name, value in values.items():
        np.testing.assert_array_equal(value, numpy_helper.to_array(by_name[name]))
    for tensor in proto.graph.initializer:
        assert held_beside(tensor) == (tensor.name in values)
        if tensor.name not in values:
            assert tensor == by_name[tensor.name]  # read in, ONNX's mark included
    (held, _), (read, _) = copy_taking_out_large(proto, "x", values), copy_taking_out_large(whole, "x")
    assert held == read
    assert load_model_mapped(path, least=4 << 20) == (whole, {})


@pytest.mark.parametrize("case", ["subfolder", "link", "short", "in a body"])
def test_values_that_lie_elsewhere_read_the_model_whole(case, tmp_path):
    """A value beside the model that ONNX Runtime could not map from the model's folder (in a subfolder, inside
    a control-flow body) makes load_model_mapped read the model whole; a values file that is a link or
    shorter than the model says is refused in one line, as onnx.load refuses it."""
    (tmp_path / "sub").mkdir()
    path, _ = _saved_with_values_beside(str(tmp_path), "sub/m.data" if case == "subfolder" else "m.data")
    if case in ("link", "short"):
        if case == "link":
            os.replace(tmp_path / "m.data", tmp_path / "sub" / "m.data")
            os.symlink(tmp_path / "sub" / "m.data", tmp_path / "m.data")
        else:
            os.truncate(tmp_path / "m.data", 1 << 20)
        with pytest.raises(ModelError, match="cannot read the values of ONNX model .*m.onnx'"):
            load_model_mapped(path, least=1)
        return
    if case == "in a body":
        model = onnx.load(path, load_external_data=False)
        weight = model.graph.initializer[0]
        body = helper.make_graph([helper.make_node("Identity", [weight.name], ["w_out"])], "body", [],
                                 [helper.make_tensor_value_info("w_out", TensorProto.FLOAT, None)], [weight])
        model.graph.node.append(helper.make_node("If", ["flag"], ["w_if"], then_branch=body, else_branch=body))
        del model.graph.initializer[0]
        onnx.save(model, path)
    assert load_model_mapped(path, least=1)[1] == {}
