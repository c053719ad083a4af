"""The user's input values (``--inputs FILE.npz``, ``model: {inputs: ...}``): checked, used by every run."""

from __future__ import annotations

import os
import re

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from scheduler import executor
from scheduler.cli import main
from scheduler.errors import ModelError
from scheduler.inputs import check_inputs, load_inputs
from scheduler.optimize import IR_VERSION, model_bytes, session
from scheduler.pipeline import ProfileOptions, load_original, load_problem
from scheduler.replay import replay
from scheduler.semantics import simulate
from scheduler.stream import replay_stream, stream_feeds

F = TensorProto.FLOAT
SHAPE = np.array([3, 4], np.int64)


@pytest.fixture
def expand_model(tmp_path) -> str:
    """A model whose integer input is a shape (``Expand``'s target): zeros, the random default, cannot run it."""
    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"], name="expand"),
             helper.make_node("Relu", ["e"], ["r"], name="relu"),
             helper.make_node("Sigmoid", ["e"], ["s"], name="sigmoid"),
             helper.make_node("Add", ["r", "s"], ["y"], name="add")]
    g = helper.make_graph(nodes, "expand", [helper.make_tensor_value_info("x", F, ["n", 1]),
                                            helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
                          [helper.make_tensor_value_info("y", F, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    path = tmp_path / "expand.onnx"
    onnx.save(m, str(path))
    return str(path)


@pytest.fixture
def inputs_file(tmp_path) -> str:
    path = tmp_path / "inputs.npz"
    np.savez(path, x=np.arange(3, dtype=np.float32).reshape(3, 1) - 1, shape=SHAPE)
    return str(path)


def test_given_inputs_run_a_model_random_inputs_cannot(expand_model, inputs_file, tmp_path):
    with pytest.raises(ModelError, match="on random inputs: give its input values with --inputs"):
        load_problem(expand_model, platform="cpu", input_shapes={"x": [3, 1]})
    feeds = load_inputs(inputs_file)
    model, problem = load_problem(expand_model, platform="cpu", inputs=feeds)  # x's dim 'n' fixed by the value
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 1]
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    result = replay(model, problem, schedule, repeats=2, warmup=0, feeds=feeds,
                    original=load_original(expand_model, inputs=feeds)[0])
    assert len(result["segments"]) > 1 and result["max_abs_diff"] == 0.0 and result["baselines"]


def test_profile_on_given_inputs_is_stored_apart(expand_model, inputs_file, tmp_path):
    folder = tmp_path / "profiles"
    feeds = load_inputs(inputs_file)
    _, problem = load_problem(expand_model, platform="cpu", costs="profile", inputs=feeds,
                              profile=ProfileOptions(folder=str(folder), repeats=2, warmup=0))
    assert problem.executor is not None
    stored = sorted(f for f in os.listdir(folder) if f.endswith(".json"))
    assert len(stored) == 1 and stored[0].startswith("expand-inputs-")


def test_given_inputs_are_checked_against_the_model(expand_model, tmp_path):
    model = onnx.load(expand_model)
    good = {"x": np.zeros((2, 1), np.float32), "shape": SHAPE}
    check_inputs(model, good)
    for feeds, message in [({**good, "z": SHAPE}, "'z', which is not an input of the model"),
                           ({"x": good["x"]}, "lack the model's input 'shape'"),
                           ({**good, "shape": SHAPE.astype(np.int32)}, "'shape' is int32, but the model takes int64"),
                           ({**good, "x": np.zeros(2, np.float32)}, "'x' has rank 1, but the model's has rank 2"),
                           ({**good, "x": np.zeros((2, 2), np.float32)}, "fixes dimension 1 at 1")]:
        with pytest.raises(ModelError, match=message):
            check_inputs(model, feeds)
    with pytest.raises(ModelError, match=r"--input-shape gives 'x' shape \[4, 1\], but its given value"):
        load_original(expand_model, input_shapes={"x": [4, 1]}, inputs=good)


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    (b"not a zip", "is not a readable .npz"),
    ("npy", "holds one array"),
    ("pickle", "is not a readable .npz"),
    ("empty", "holds no arrays"),
])
def test_bad_inputs_file_is_one_line_and_exit_2(expand_model, tmp_path, capsys, content, message):
    path = tmp_path / "bad.npz"
    if content == "npy":
        with open(path, "wb") as f:
            np.save(f, SHAPE)
    elif content == "pickle":
        np.savez(path, x=np.array([{"a": 1}], dtype=object))  # loading it would unpickle: refused
    elif content == "empty":
        np.savez(path)
    elif content is not None:
        path.write_bytes(content)
    code = main(["problem", expand_model, "--platform", "cpu", "--inputs", str(path), "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()


def test_run_config_takes_inputs_beside_it(expand_model, inputs_file, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "name": "given", "model": {"path": os.path.basename(expand_model), "inputs": os.path.basename(inputs_file)},
        "platform": "cpu", "costs": "model", "solvers": ["single", "heft"], "time_limit": 2,
        "replay": {"repeats": 2, "rounds": 1, "candidates": 2}, "output_dir": str(tmp_path / "out")}))
    assert main(["run", "--quiet", str(config)]) == 0
    assert "recommended:" in capsys.readouterr().out


def test_comparison_suite_instance_takes_inputs_beside_it(expand_model, inputs_file, tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "given", "instances": [{"onnx": os.path.basename(expand_model),
                                        "inputs": os.path.basename(inputs_file)}],
        "platforms": ["cpu"], "solvers": ["heft"], "time_limits": [2], "workers": 1,
        "output_dir": str(tmp_path / "out")}))
    assert main(["compare", str(suite)]) == 0
    assert "1 cells computed" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "compare"])
def test_missing_inputs_file_in_a_config_is_one_line_and_exit_2(expand_model, tmp_path, capsys, command):
    config = tmp_path / "c.yaml"
    model = {"path": expand_model, "inputs": "missing.npz"}
    config.write_text(yaml.safe_dump(
        {"model": model, "platform": "cpu", "solvers": ["heft"], "output_dir": str(tmp_path / "out")}
        if command == "run" else
        {"name": "s", "instances": [{"onnx": expand_model, "inputs": "missing.npz"}], "platforms": ["cpu"],
         "solvers": ["heft"], "time_limits": [2], "workers": 1, "output_dir": str(tmp_path / "out")}))
    assert main([command, str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.npz' does not exist" in err and "Traceback" not in err


def test_a_stream_of_given_inputs_repeats_them():
    given = {"shape": SHAPE, "x": np.ones((3, 1), np.float32)}
    stream = stream_feeds(given, 4, seed=0, vary=False)
    assert len(stream) == 4 and all(np.array_equal(f["shape"], SHAPE) and np.array_equal(f["x"], given["x"])
                                    for f in stream)
    varied = stream_feeds(given, 4, seed=0)
    assert not np.array_equal(varied[1]["x"], given["x"])


def _cut_and_replayed(path, feeds, tmp_path):
    """The model at ``path`` profiled on ``feeds`` (random inputs when None), its nodes alternating over the two
    cores, replayed on them: (model, problem, schedule, replay result)."""
    model, problem = load_problem(path, platform="cpu", costs="profile", inputs=feeds,
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles"), repeats=2, warmup=0))
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    result = replay(model, problem, schedule, repeats=2, warmup=0, feeds=feeds,
                    original=load_original(path, inputs=feeds)[0])
    return model, problem, schedule, result


def test_sequence_and_optional_inputs_are_given_by_their_elements(sequence_input_model, tmp_path):
    """An ``.npz`` holds a sequence input as ``seq[0]``, ``seq[1]``, ... and leaves an absent optional out;
    the model is profiled, cut and replayed on them, and on its random inputs (an empty sequence, no
    optional), with the whole model's outputs."""
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((1, 3)).astype(np.float32), rng.standard_normal((2, 3)).astype(np.float32)]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.savez(tmp_path / "given.npz", **{"seq[1]": parts[1], "seq[0]": parts[0], "x": x, "opt": np.ones(3, np.float32)})
    np.savez(tmp_path / "absent.npz", **{"seq[]": np.zeros(0), "x": x})
    given = load_inputs(str(tmp_path / "given.npz"))
    assert isinstance(given["seq"], list) and [p.shape for p in given["seq"]] == [(1, 3), (2, 3)]
    absent = load_inputs(str(tmp_path / "absent.npz"))
    assert set(absent) == {"seq", "x"} and absent["seq"] == []
    for feeds in (given, absent, None):
        result = _cut_and_replayed(sequence_input_model, feeds, tmp_path)[-1]
        assert len(result["segments"]) > 1 and result["max_abs_diff"] == 0.0 and result["baselines"]
    stored = sorted(f for f in os.listdir(tmp_path / "profiles") if f.endswith(".json"))
    assert len(stored) == 3  # one per set of inputs: given ones under their values' digest


def test_sequence_and_optional_inputs_are_checked(sequence_input_model, tmp_path, capsys):
    model = onnx.load(sequence_input_model)
    x = np.zeros((2, 3), np.float32)
    check_inputs(model, {"seq": [np.zeros((4, 3), np.float32)], "x": x})  # an optional may be left out
    untyped = helper.make_model(helper.make_graph([helper.make_node("Relu", ["u"], ["v"])], "untyped",
                                                  [helper.make_value_info("u", onnx.TypeProto())], []))
    check_inputs(untyped, {"u": x})  # an input of no declared type takes a tensor, as ORT reads it
    for feeds, message in [({"seq": np.zeros((1, 3), np.float32), "x": x}, "'seq' is an array, but the model takes "
                            r"a sequence \(give its elements as seq\[0\]"),
                           ({"seq": [np.zeros(3, np.float32)], "x": x}, r"'seq\[0\]' has rank 1, but the model's has "
                            "rank 2"),
                           ({"seq": [], "x": [x]}, "'x' is a sequence, but the model takes a tensor"),
                           ({"seq": [], "x": x, "opt": np.zeros(3, np.int64)}, "'opt' is int64, but the model takes "
                            "float32")]:
        with pytest.raises(ModelError, match=message):
            check_inputs(model, feeds)
    for arrays, message in [({"seq[1]": x}, r"sequence input 'seq' are not numbered 0, 1, \.\.\."),
                            ({"seq": x, "seq[0]": x}, "'seq' both as an array and as a sequence's elements")]:
        np.savez(tmp_path / "bad.npz", **arrays)
        code = main(["problem", sequence_input_model, "--platform", "cpu", "--inputs", str(tmp_path / "bad.npz"),
                     "-o", str(tmp_path / "p.json")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and re.search(message, err), err
    code = main(["problem", sequence_input_model, "--platform", "cpu", "--input-shape", "seq=1,3",
                 "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and "input 'seq' is a sequence, whose shapes come with its values (--inputs)" in err
    assert not (tmp_path / "p.json").exists()


def _whole(path, feeds):
    """The whole model's outputs on ``feeds``, by name."""
    sess = session(model_bytes(onnx.load(path)))
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def test_a_map_input_is_given_by_its_keys_and_values(map_input_model, tmp_path):
    """An ``.npz`` holds a map input ``m`` as ``m{keys}`` and ``m{values}``; the model is profiled, cut between
    the two cores and replayed on it, and on its random inputs (a map of one entry), with the whole model's
    outputs (a sequence of maps among them); flat and grouped undo each other, maps of strings too."""
    x = np.full((1, 3), 0.25, np.float32)
    np.savez(tmp_path / "given.npz", **{"m{keys}": np.array([3, 1, 7]), "m{values}": np.array([2.0, -1.0, 5.0]),
                                        "x": x})
    given = load_inputs(str(tmp_path / "given.npz"))
    assert given["m"] == {3: 2.0, 1: -1.0, 7: 5.0} and all(type(k) is int for k in given["m"])
    expected = _whole(map_input_model, given)
    for feeds in (given, None):
        model, problem, schedule, result = _cut_and_replayed(map_input_model, feeds, tmp_path)
        assert len(result["segments"]) > 1 and result["max_abs_diff"] <= 1e-6 and result["baselines"]
        streamed = replay_stream(model, problem, schedule, inferences=4, warmup=1, feeds=feeds, baselines=False)
        assert streamed["max_abs_diff"] <= 1e-6
    assert [f["m"] for f in stream_feeds(given, 3, seed=0)] == [given["m"]] * 3
    row = np.float32([[-1.0, 0.0, 2.0]]) + x  # DictVectorizer's row of keys 1, 2, 3 (7 is not in its vocabulary)
    p = np.exp(np.maximum(row @ (np.arange(12, dtype=np.float32).reshape(3, 4) / 10 - 0.5), 0))
    np.testing.assert_allclose(list(expected["probs"][0].values()), (p / p.sum())[0], rtol=1e-5)
    for values in ({"s": [{"b": 1.5, "a": 2.0}, {"c": 0.0}], "m": {2: 7}, "e": []}, given):
        again = executor.grouped(executor.flat(values))
        assert again.keys() == values.keys() and all(
            np.array_equal(again[k], values[k]) if isinstance(values[k], np.ndarray) else again[k] == values[k]
            for k in values)


def test_maps_and_sequences_are_counted_apart_from_tensors_of_unknown_shape(map_input_model, tmp_path, capsys):
    """A map input and a sequence of maps have no one shape: ``problem`` says they count 0 bytes as what they
    are, not as tensors whose shape is unknown (every tensor's shape came from the run)."""
    out = tmp_path / "p.json"
    assert main(["problem", map_input_model, "--platform", "cpu", "--costs", "model", "-o", str(out)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("(2 sequences or maps counted as 0 bytes)")
    graph = load_problem(map_input_model, platform="cpu")[1].graph
    assert graph.unknown_shape_tensors == () and graph.unsized_values == ("m", "probs")


@pytest.mark.parametrize("feeds, message", [
    ({"m": np.zeros(3, np.float32)}, r"'m' is an array, but the model takes a map \(give its keys as m\{keys\} "
     r"and their values as m\{values\}\)"),
    ({"m": [{1: 0.5}]}, "'m' is a sequence, but the model takes a map"),
    ({"m": {}}, "given map 'm' is empty; ONNX Runtime takes maps of one entry or more"),
    ({"m": {"a": 0.5}}, "given map 'm' has keys of <U1, but the model takes int64"),
    ({"m": {1: "a"}}, "given map 'm' has values of <U1, but the model takes float32"),
    ({"m": {1.5: 0.5}}, "given map 'm' has keys of float64, but the model takes int64")])
def test_map_inputs_are_checked(map_input_model, feeds, message):
    with pytest.raises(ModelError, match=message):
        check_inputs(onnx.load(map_input_model), {"x": np.zeros((1, 3), np.float32), **feeds})


@pytest.mark.parametrize("arrays, message", [
    ({"m{keys}": np.array([1])}, r"hold the keys of map 'm' but not its values \(m\{values\}\)"),
    ({"m{values}": np.array([1.0])}, r"hold the values of map 'm' but not its keys \(m\{keys\}\)"),
    ({"m{keys}": np.array([1, 2]), "m{values}": np.array([1.0])}, r"the keys and values of map 'm' must be two 1-D "
     r"arrays of one length, got shapes \[2\] and \[1\]"),
    ({"m{keys}": np.array([1, 1]), "m{values}": np.array([1.0, 2.0])}, "the keys of map 'm' repeat a key"),
    ({"m": np.ones(1), "m{keys}": np.array([1]), "m{values}": np.array([1.0])},
     "'m' both as an array and as a map's keys and values")])
def test_a_bad_map_in_an_inputs_file_is_one_line_and_exit_2(map_input_model, tmp_path, capsys, arrays, message):
    np.savez(tmp_path / "bad.npz", x=np.zeros((1, 3), np.float32), **arrays)
    code = main(["problem", map_input_model, "--platform", "cpu", "--inputs", str(tmp_path / "bad.npz"),
                 "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and re.search(message, err), err
    assert not (tmp_path / "p.json").exists()
    code = main(["problem", map_input_model, "--platform", "cpu", "--input-shape", "m=1",
                 "-o", str(tmp_path / "p.json")])
    assert code == 2 and "input 'm' is a map, whose shapes come with its values (--inputs)" in capsys.readouterr().err
