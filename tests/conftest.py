"""Shared test fixtures: where the external benchmark workloads live; a model of sequences and strings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

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
    m.ir_version = 10
    path = tmp_path / "seq.onnx"
    onnx.save(m, str(path))
    return str(path)
