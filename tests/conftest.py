"""Shared test fixtures: where the external benchmark workloads live; a model of sequences and strings; one
whose inputs are a sequence, an optional and a tensor; one that takes a map and gives a sequence of maps."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from scheduler.optimize import IR_VERSION

BENCHMARKS = Path(os.environ.get("HETSCHED_BENCHMARKS",
                                 Path(__file__).resolve().parents[2] / "shared" / "benchmarks"))
DNN = BENCHMARKS / "dnn-partitioning"


@pytest.fixture(scope="session")
def dnn_files() -> list[Path]:
    """Every dnn-partitioning workload (skips where shared/ is not beside the checkout)."""
    files = sorted(DNN.glob("*/*/*.json"))
    if not files:
        pytest.skip(f"no dnn-partitioning workloads under {DNN} (set HETSCHED_BENCHMARKS)")
    return files


@pytest.fixture
def sequence_model(tmp_path) -> str:
    """Path of a model whose values include sequences (one built, one started empty) and strings."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("SequenceConstruct", ["x", "x"], ["seq"], name="construct"),
             helper.make_node("SequenceEmpty", [], ["empty"], name="empty", dtype=f),
             helper.make_node("SequenceInsert", ["empty", "x"], ["one"], name="insert"),
             helper.make_node("ConcatFromSequence", ["seq"], ["cat"], name="concat", axis=0),
             helper.make_node("SequenceAt", ["one", "zero"], ["first"], name="at"),
             helper.make_node("Identity", ["words"], ["same"], name="words_id"),
             helper.make_node("Identity", ["same"], ["words_out"], name="words_out")]
    g = helper.make_graph(nodes, "seq", [helper.make_tensor_value_info("x", f, [2, 3]),
                                         helper.make_tensor_value_info("words", TensorProto.STRING, [2])],
                          [helper.make_tensor_value_info("cat", f, None),
                           helper.make_tensor_value_info("first", f, None),
                           helper.make_tensor_sequence_value_info("seq", f, None),
                           helper.make_tensor_value_info("words_out", TensorProto.STRING, [2])],
                          [numpy_helper.from_array(np.array(0, np.int64), "zero")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    path = tmp_path / "seq.onnx"
    onnx.save(m, str(path))
    return str(path)


@pytest.fixture
def sequence_input_model(tmp_path) -> str:
    """Inputs of every kind a session takes from Python: a sequence ``seq`` of (k, 3) tensors, an optional
    ``opt`` and a tensor ``x``; ``y`` = relu(concat(seq + [x])) + len(seq) + has(opt), and the sequence
    ``grown`` = seq + [x].  An empty ``seq`` and an absent ``opt`` (the random inputs) run it too."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("SequenceInsert", ["seq", "x"], ["grown"], name="insert"),
             helper.make_node("ConcatFromSequence", ["grown"], ["cat"], axis=0, name="concat"),
             helper.make_node("Relu", ["cat"], ["r"], name="relu"),
             helper.make_node("SequenceLength", ["seq"], ["n"], name="length"),
             helper.make_node("Cast", ["n"], ["nf"], to=f, name="n_float"),
             helper.make_node("OptionalHasElement", ["opt"], ["has"], name="has"),
             helper.make_node("Cast", ["has"], ["hf"], to=f, name="has_float"),
             helper.make_node("Add", ["nf", "hf"], ["t"], name="count"),
             helper.make_node("Add", ["r", "t"], ["y"], name="add")]
    tensor = helper.make_tensor_type_proto(f, ["k", 3])
    g = helper.make_graph(nodes, "kinds", [
        helper.make_value_info("seq", helper.make_sequence_type_proto(tensor)),
        helper.make_value_info("opt", helper.make_optional_type_proto(helper.make_tensor_type_proto(f, [3]))),
        helper.make_tensor_value_info("x", f, [2, 3])],
        [helper.make_tensor_value_info("y", f, None), helper.make_value_info("grown", helper.make_sequence_type_proto(
            helper.make_tensor_type_proto(f, None)))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = IR_VERSION
    path = tmp_path / "kinds.onnx"
    onnx.save(m, str(path))
    return str(path)


@pytest.fixture
def map_input_model(tmp_path) -> str:
    """scikit-learn's way in and out (ai.onnx.ml): a map input ``m`` (int64 keys 1, 2, 3 -> float) that
    ``DictVectorizer`` turns into a (1, 3) row, plus a tensor ``x``; ``label`` = argmax(p) and ``probs``, ``p``
    as a sequence of one map (``ZipMap``, keys 10..13), where p = softmax(relu((row + x) @ w))."""
    f = TensorProto.FLOAT
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10 - 0.5, "w")
    nodes = [helper.make_node("DictVectorizer", ["m"], ["v"], domain="ai.onnx.ml", int64_vocabulary=[1, 2, 3],
                              name="vectorize"),
             helper.make_node("Add", ["v", "x"], ["a"], name="add"),
             helper.make_node("MatMul", ["a", "w"], ["h"], name="matmul"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["p"], axis=-1, name="softmax"),
             helper.make_node("ArgMax", ["p"], ["label"], axis=-1, keepdims=0, name="argmax"),
             helper.make_node("ZipMap", ["p"], ["probs"], domain="ai.onnx.ml", classlabels_int64s=[10, 11, 12, 13],
                              name="zipmap")]
    to_float = helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(f, []))
    g = helper.make_graph(nodes, "mapped", [helper.make_value_info("m", to_float),
                                            helper.make_tensor_value_info("x", f, [1, 3])],
                          [helper.make_tensor_value_info("label", TensorProto.INT64, None),
                           helper.make_value_info("probs", helper.make_sequence_type_proto(to_float))], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = IR_VERSION
    path = tmp_path / "mapped.onnx"
    onnx.save(m, str(path))
    return str(path)


def weights_inside_model() -> onnx.ModelProto:
    """A model whose four 1 MiB weights lie where none is a main-graph initializer: a main-graph ``Constant``,
    an If branch's initializer, the other branch's ``Constant``, and a ``Constant`` in a Loop body."""
    f, rng = TensorProto.FLOAT, np.random.default_rng(0)

    def weight(name: str) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal((512, 512)) / 24).astype(np.float32), name)

    def out(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, f, None)

    then = helper.make_graph([helper.make_node("MatMul", ["h", "w_then"], ["t"], name="mm_then")], "then", [],
                             [out("t")], [weight("w_then")])
    other = helper.make_graph([helper.make_node("Constant", [], ["w_else"], value=weight("v"), name="c_else"),
                               helper.make_node("MatMul", ["h", "w_else"], ["e"], name="mm_else")], "else", [],
                              [out("e")])
    body = helper.make_graph([helper.make_node("Constant", [], ["w_loop"], value=weight("v"), name="c_loop"),
                              helper.make_node("MatMul", ["acc", "w_loop"], ["m"], name="mm_loop"),
                              helper.make_node("Tanh", ["m"], ["acc_out"], name="tanh_loop"),
                              helper.make_node("Identity", ["cond"], ["cond_out"], name="cond_loop")], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond", TensorProto.BOOL, []), out("acc")],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), out("acc_out")])
    nodes = [helper.make_node("Constant", [], ["w0"], value=weight("v"), name="c0"),
             helper.make_node("MatMul", ["x", "w0"], ["h"], name="mm0"),
             helper.make_node("If", ["flag"], ["b"], then_branch=then, else_branch=other, name="branch"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Loop", ["trips", "", "r"], ["looped"], body=body, name="loop"),
             helper.make_node("Add", ["b", "looped"], ["y"], name="add")]
    g = helper.make_graph(nodes, "inside", [helper.make_tensor_value_info("x", f, [4, 512]),
                                            helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info("y", f, [4, 512])],
                          [numpy_helper.from_array(np.array(2, np.int64), "trips")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    return m


def branch_refusing_fixed_sizes() -> onnx.ModelProto:
    """An If whose then-branch ONNX Runtime refuses once the input ``x`` has fixed sizes (Squeeze of [1, 8] is
    rank 1, an LSTM wants rank 3) and a run never takes: the condition is a scalar input the user gives.  As
    silero-vad declares it, with ``x``'s sizes open, it loads and runs."""
    hidden, width = 2, 8
    rng = np.random.default_rng(0)
    then = helper.make_graph(
        [helper.make_node("Squeeze", ["a"], ["sq"], name="then_squeeze"),
         helper.make_node("Unsqueeze", ["sq", "axis"], ["u"], name="then_unsqueeze"),
         helper.make_node("LSTM", ["u", "W", "R"], ["", "h"], name="then_lstm", hidden_size=hidden),
         helper.make_node("ReduceSum", ["h"], ["t"], name="then_sum", keepdims=0)], "then", [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([0], dtype=np.int64), "axis"),
         numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, width)).astype(np.float32), "W"),
         numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32), "R")])
    other = helper.make_graph([helper.make_node("ReduceSum", ["a"], ["e"], name="else_sum", keepdims=0)], "else",
                              [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"], name="relu"),
         helper.make_node("Not", ["flag"], ["nf"], name="not"),
         helper.make_node("If", ["nf"], ["y0"], name="if", then_branch=then, else_branch=other),
         helper.make_node("Neg", ["y0"], ["y"], name="neg")], "branchy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "len"]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m
