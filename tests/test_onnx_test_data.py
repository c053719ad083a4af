"""Every model of the ``onnx`` package's own test data that ONNX Runtime runs (PyTorch-converted layers and
operators, sequence models; and its operator test cases of several nodes, or with sequence and optional
inputs) goes through the pipeline on its own inputs: task graph, problem, a placement alternating over both
cores, replayed with the whole model's outputs."""

from __future__ import annotations

import glob
import os
import warnings

import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from scheduler.pipeline import load_problem
from scheduler.replay import replay
from scheduler.semantics import simulate

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
CASES = sorted(path for kind in ("pytorch-converted", "pytorch-operator", "simple")
               for path in glob.glob(os.path.join(DATA, kind, "*")))


@pytest.mark.parametrize("folder", CASES, ids=[os.path.basename(c) for c in CASES])
def test_onnx_test_data_models_replay_cut(folder):
    path = os.path.join(folder, "model.onnx")
    model = onnx.load(path)
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if any(not i.type.HasField("tensor_type") for i in inputs):
        pytest.skip("an input that is not a tensor (hetsched takes tensor inputs)")
    feeds = {}
    for k, i in enumerate(inputs):
        proto = onnx.TensorProto()
        with open(os.path.join(folder, "test_data_set_0", f"input_{k}.pb"), "rb") as fh:
            proto.ParseFromString(fh.read())
        feeds[i.name] = numpy_helper.to_array(proto)
    try:
        ort.InferenceSession(path).run(None, feeds)
    except Exception as exc:  # noqa: BLE001 (old opsets and ops ORT lacks: nothing to replay)
        pytest.skip(f"ONNX Runtime does not run it: {str(exc).splitlines()[0][:80]}")
    for level in ("none", "all") if len(model.graph.node) > 1 else ("none",):
        optimised, problem = load_problem(path, platform="cpu", optimization=level, inputs=feeds)
        order = problem.graph.topological_order
        schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
        result = replay(optimised, problem, schedule, repeats=1, warmup=0, baselines=False, feeds=feeds)
        assert result["max_abs_diff"] <= 1e-4 and len(result["segments"]) >= min(2, len(order))


def _node_cases() -> list:
    """ONNX's operator test cases (``onnx.backend.test.case.node``, made in memory: the wheel ships no files of
    them) with more than one node (functions expanded, control flow) or an input that is not a tensor."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cases' own numpy overflows
        cases = collect_testcases(None)
    return [c for c in cases if c.data_sets and (len(c.model.graph.node) > 1 or any(
        not i.type.HasField("tensor_type") for i in c.model.graph.input))]


def test_onnx_operator_cases_of_several_nodes_or_sequence_inputs_replay_cut(tmp_path):
    """Each such case that ONNX Runtime runs on its own inputs is cut node by node over both cores and replayed
    with the whole model's outputs, its graph as written and as ORT optimises it at ``all`` (where ORT 1.32
    writes a ``Loop`` body's ``If`` with a constant defined twice, mended on load)."""
    replayed, failed = 0, []
    for case in _node_cases():
        model = case.model
        inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        feeds = dict(zip((i.name for i in inputs), case.data_sets[0][0]))
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 4
            ort.InferenceSession(model.SerializeToString(), options).run(None, feeds)
        except Exception:  # noqa: BLE001 (ops ORT lacks, or refuses: nothing to replay)
            continue
        path = str(tmp_path / f"{case.name}.onnx")
        onnx.save(model, path)
        for level in ("none", "all"):
            try:
                optimised, problem = load_problem(path, platform="cpu", optimization=level, inputs=feeds)
                order = problem.graph.topological_order
                schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
                result = replay(optimised, problem, schedule, repeats=1, warmup=0, baselines=False, feeds=feeds)
                assert result["max_abs_diff"] <= 1e-4, result["max_abs_diff"]
                replayed += 1
            except Exception as exc:  # noqa: BLE001 (every failure listed at the end)
                failed.append(f"{case.name} at {level}: {type(exc).__name__}: {str(exc)[:160]}")
        os.remove(path)
    assert not failed, "\n".join(failed)
    assert replayed >= 2 * 390  # onnx 1.23, ORT 1.32: ORT runs 402 of the 440 cases
