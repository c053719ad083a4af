"""Deployment export: the exported folder runs in a fresh process with numpy + onnxruntime alone, same outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from scheduler import executor, optimize
from scheduler.cli import main
from scheduler.deploy import export_placement, export_plain
from scheduler.errors import ModelError
from scheduler.executor import ort_bits, session_call
from scheduler.optimize import IR_VERSION, ModelBytes, model_bytes, random_inputs, session, session_data
from scheduler.pipeline import ProfileOptions, load_original, load_problem
from scheduler.replay import core_map, prepare_replay, replay
from scheduler.segments import ReplayError
from scheduler.semantics import simulate
from scheduler.stream import replay_stream

# Runs in a fresh interpreter (-I: no user site, no PYTHONPATH, script folder only): load the runner,
# run it on saved inputs, save the outputs, and fail if anything beyond numpy/onnxruntime got imported.
DRIVER = """
import sys
folder, inputs, output = sys.argv[1:4]
sys.path.insert(0, folder)
import numpy as np
import runner
d = runner.Deployment(folder)
with np.load(inputs) as data:
    feeds = {k: data[k] for k in data.files}
np.savez(output, **{k: v if isinstance(v, np.ndarray) else runner.ort_bits(v) for k, v in d.run(feeds).items()})
d.close()
banned = {"scheduler", "solvers", "onnx", "pandas", "networkx", "yaml", "pulp", "ortools", "pydantic", "torch"}
loaded = sorted({m.split(".")[0] for m in sys.modules} & banned)
assert not loaded, f"the runner imported {loaded}"
"""


def _run_exported(folder, feeds, tmp_path) -> dict[str, np.ndarray]:
    np.savez(tmp_path / "in.npz", **feeds)
    (tmp_path / "driver.py").write_text(DRIVER)
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "driver.py"), str(folder), str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as data:
        return {k: data[k] for k in data.files}


def _reference(model, feeds) -> dict[str, np.ndarray]:
    """The whole model's outputs (bfloat16, float8 and int4 ones as the exported runner saves them)."""
    sess = session(model_bytes(model))
    values = session_call(sess)(feeds)
    return {o.name: v if isinstance(v, np.ndarray) else ort_bits(v) for o, v in zip(sess.get_outputs(), values)}


def _assert_close(got, expected):
    assert set(got) == set(expected)
    for name, ref in expected.items():
        assert got[name].shape == ref.shape
        assert float(np.max(np.abs(got[name].astype(np.float64) - ref))) <= 1e-4


@pytest.mark.parametrize("name,params,platform", [("randwire", {"nodes": 8}, "cpu"),
                                                  ("bert", {"layers": 1}, "default")])
def test_exported_placement_runs_standalone_with_equal_outputs(name, params, platform, tmp_path):
    """Segments of an optimised model (NCHWc at level all, contrib ops at extended), simulated PIM included."""
    original, _ = load_original(name, params)
    level = "all" if platform == "cpu" else "extended"
    model, problem = load_problem(name, params, platform, optimization=level,
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles")))
    rng = np.random.default_rng(1)
    schedule = simulate(problem, {t: str(rng.choice(problem.allowed(t))) for t in problem.tasks})
    feeds = random_inputs(session(model_bytes(original)), seed=3)
    folder = tmp_path / "deploy"
    export_placement(model, problem, schedule, str(folder), level)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "segments" and len(manifest["segments"]) > 1
    assert len({e["device"] for e in manifest["segments"]}) > 1
    assert all(e["cpus"] == list(core_map(problem.platform).get(e["device"], ())) for e in manifest["segments"])
    assert manifest["host_specific"] == (level == "all")
    assert manifest["files"] == {f.name: f.stat().st_size for f in folder.iterdir() if f.name != "manifest.json"}
    assert set(manifest["files"]) == {e["file"] for e in manifest["segments"]} | {"runner.py"}
    _assert_close(_run_exported(folder, feeds, tmp_path), _reference(original, feeds))


def test_a_recommended_placement_is_exported_from_the_segments_it_replayed(tmp_path, monkeypatch):
    """When a placement wins (plain ORT made slow here, so that it does), ``recommend`` exports the segments it
    replayed, from the optimised model held once (:func:`session_data`), and they run alone with the whole
    model's outputs."""
    import scheduler.recommend as recommend_module

    monkeypatch.setattr(recommend_module, "plain_samples", lambda model, feeds, repeats, warmup: {
        label: [1.0] * repeats for label in recommend_module.plain_configs()})
    original, _ = load_original("siamese", {"layers": 1})
    model, problem = load_problem("siamese", {"layers": 1}, "cpu", optimization="all",
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles")))
    apart = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(problem.graph.topological_order)})
    folder = tmp_path / "deploy"
    result = recommend_module.recommend(session_data(original), session_data(model), problem, [apart],
                                        candidates=1, repeats=2, warmup=0, rounds=1, export=str(folder), level="all")
    assert result["recommended"].startswith("placement") and result["export"] == str(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "segments" and len(manifest["segments"]) == len(result["segments"]) > 1
    feeds = random_inputs(session(model_bytes(original)), seed=3)
    _assert_close(_run_exported(folder, feeds, tmp_path), _reference(original, feeds))


@pytest.mark.parametrize("packing", ["", "_unpacked"])
def test_exported_plain_model_runs_standalone_with_its_settings(packing, tmp_path):
    original, _ = load_original("inception", {"blocks": 1})
    feeds = random_inputs(session(model_bytes(original)), seed=2)
    folder = tmp_path / "deploy"
    export_plain(original, f"sequential_{os.cpu_count()}_threads_optimised{packing}", str(folder))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "plain" and manifest["session"]["graph_optimization"] == "all"
    assert manifest["session"]["threads"] == os.cpu_count()
    assert manifest["session"]["packed"] == (not packing)
    _assert_close(_run_exported(folder, feeds, tmp_path), _reference(original, feeds))


def test_an_exported_plain_model_keeps_large_values_beside_it(tmp_path, monkeypatch):
    """From FILE_BACKED_BYTES of large values on, the exported model keeps them in model.onnx.data (which ORT
    maps when the runner loads the file), and the runner in a fresh process computes the model's outputs."""
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 1 << 20)
    original, _ = load_original("mlp", {"width": 1024, "layers": 3})  # three 4 MiB weights
    feeds = random_inputs(session(model_bytes(original)), seed=2)
    folder = tmp_path / "deploy"
    export_plain(session_data(original), "sequential_1_thread", str(folder))
    assert (folder / "model.onnx.data").stat().st_size >= 3 * 4 << 20 > (folder / "model.onnx").stat().st_size
    _assert_close(_run_exported(folder, feeds, tmp_path), _reference(original, feeds))
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert files == {f: (folder / f).stat().st_size for f in ("model.onnx", "model.onnx.data", "runner.py")}


@pytest.mark.parametrize("damage", ["missing", "cut"])
def test_the_runner_names_a_file_a_copy_left_out_or_cut(tmp_path, monkeypatch, damage):
    """A deployment copied without its values file, or with it cut short, is refused in one line naming the
    file (ORT would fail on its own terms, or a cut file might load)."""
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 1 << 20)
    original, _ = load_original("mlp", {"width": 1024, "layers": 2})
    folder = tmp_path / "deploy"
    export_plain(session_data(original), "sequential_1_thread", str(folder))
    data = folder / "model.onnx.data"
    if damage == "missing":
        data.unlink()
    else:
        data.write_bytes(data.read_bytes()[: 1 << 20])
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py"), "--repeats", "0"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert ("model.onnx.data is missing" if damage == "missing" else "model.onnx.data has 1048576 bytes") \
        in proc.stderr


def test_exported_sequences_and_strings_run_standalone(sequence_model, tmp_path):
    """Segments that pass sequences and strings to each other, run by ``python runner.py`` alone on the
    random inputs it makes from the manifest (an empty string per string input)."""
    model, problem = load_problem(sequence_model, platform="cpu", costs="model")
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    folder = tmp_path / "deploy"
    export_placement(model, problem, schedule, str(folder), "none")
    out = tmp_path / "out.npz"
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py"), "--output", str(out), "--repeats", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with np.load(out, allow_pickle=False) as data:  # strings as numpy's
        assert data["words_out"].tolist() == ["", ""] and data["seq[0]"].shape == data["seq[1]"].shape == (2, 3)
        np.testing.assert_array_equal(data["cat"], np.concatenate([data["seq[0]"], data["seq[1]"]]))


def test_an_export_made_from_the_users_inputs_runs_on_them_by_default(sequence_model, tmp_path):
    """Given the inputs hetsched ran on, the folder keeps them (strings too, without pickles) and ``runner.py``
    without ``--inputs`` runs on them: their values and their sizes, where the model leaves a size open."""
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "words": np.array(["ab", "c"], dtype=object)}
    model, problem = load_problem(sequence_model, platform="cpu", costs="model", inputs=feeds)
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(problem.graph.topological_order)})
    f = TensorProto.FLOAT
    open_size = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")], "open",
        [helper.make_tensor_value_info("x", f, ["n", 4])], [helper.make_tensor_value_info("y", f, ["n", 4])]),
        opset_imports=[helper.make_opsetid("", 17)])
    open_size.ir_version = IR_VERSION
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    export_placement(model, problem, schedule, str(tmp_path / "seq"), "none", feeds)
    export_plain(open_size, "sequential_1_thread", str(tmp_path / "open"), {"x": x})
    assert json.loads((tmp_path / "open" / "manifest.json").read_text())["input_specs"]["x"] == [[5, 4], "float32"]
    for name in ("seq", "open"):
        proc = subprocess.run([sys.executable, "-I", str(tmp_path / name / "runner.py"), "--output",
                               str(tmp_path / f"{name}.npz"), "--repeats", "0"], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "seq.npz", allow_pickle=False) as data:
        assert data["words_out"].tolist() == ["ab", "c"]
        np.testing.assert_array_equal(data["cat"], np.concatenate([feeds["x"], feeds["x"]]))
    with np.load(tmp_path / "open.npz") as data:
        np.testing.assert_array_equal(data["y"], np.maximum(x, 0))


def test_exported_sequence_and_optional_inputs_run_standalone(sequence_input_model, tmp_path):
    """The folder keeps given sequence inputs by their elements (``seq[0]``, ...) and leaves an absent optional
    out; ``runner.py`` runs on them by default, on an ``--inputs`` file of that form, and on its own random
    inputs (an empty sequence, no optional); a sequence output is saved by its elements too."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    seq = [rng.standard_normal((1, 3)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32)]
    feeds = {"seq": seq, "x": x}
    for name, given in (("given", feeds), ("random", None)):  # segments fix the sizes they were cut at
        model, problem = load_problem(sequence_input_model, platform="cpu", costs="model", inputs=given)
        order = problem.graph.topological_order
        schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
        export_placement(model, problem, schedule, str(tmp_path / name), "none", given)
    with np.load(tmp_path / "given" / "inputs.npz") as data:
        assert sorted(data.files) == ["seq[0]", "seq[1]", "x"]
    np.savez(tmp_path / "in.npz", **{"seq[0]": 2 * seq[0], "seq[1]": seq[1], "x": x, "opt": np.ones(3, np.float32)})
    runs = {"given": ("given", []), "random": ("random", []), "file": ("given", ["--inputs", str(tmp_path / "in.npz")])}
    for name, (folder, extra) in runs.items():
        proc = subprocess.run([sys.executable, "-I", str(tmp_path / folder / "runner.py"), "--output",
                               str(tmp_path / f"{name}.npz"), "--repeats", "0", *extra], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    expected = {"given": (seq + [x], 2.0), "random": ([x], 0.0), "file": ([2 * seq[0], seq[1], x], 3.0)}
    for name, (parts, added) in expected.items():
        with np.load(tmp_path / f"{name}.npz") as data:
            if name != "random":  # random: x is drawn by the runner
                np.testing.assert_allclose(data["y"], np.maximum(np.concatenate(parts), 0) + added, rtol=1e-6)
                grown = [data[f"grown[{k}]"] for k in range(len(parts))]
                assert [g.shape for g in grown] == [p.shape for p in parts] and f"grown[{len(parts)}]" not in data
            else:
                assert data["y"].shape == (2, 3) and data["grown[0]"].shape == (2, 3)


def test_an_exported_map_input_and_sequence_of_maps_output_run_standalone(map_input_model, tmp_path):
    """A map input is kept by its keys and values (``m{keys}``, ``m{values}``) and a sequence of maps output
    saved so (``probs[0]{keys}``, ...), no pickles: ``runner.py`` runs the cut model on the kept inputs, on an
    ``--inputs`` file of that form and on its own random ones (a map of one entry), with the whole model's
    outputs."""
    feeds = {"m": {1: 0.5, 3: -2.0}, "x": np.full((1, 3), 0.5, np.float32)}
    for name, given in (("given", feeds), ("random", None)):
        model, problem = load_problem(map_input_model, platform="cpu", costs="model", inputs=given)
        order = problem.graph.topological_order
        schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
        export_placement(model, problem, schedule, str(tmp_path / name), "none", given)
    with np.load(tmp_path / "given" / "inputs.npz") as data:
        assert sorted(data.files) == ["m{keys}", "m{values}", "x"] and data["m{keys}"].tolist() == [1, 3]
    other = {"m": {2: 4.0}, "x": feeds["x"]}
    np.savez(tmp_path / "in.npz", **executor.flat(other))
    runs = {"given": ("given", []), "random": ("random", []), "file": ("given", ["--inputs", str(tmp_path / "in.npz")])}
    whole = session(model_bytes(onnx.load(map_input_model)))
    for name, (folder, extra) in runs.items():
        proc = subprocess.run([sys.executable, "-I", str(tmp_path / folder / "runner.py"), "--output",
                               str(tmp_path / f"{name}.npz"), "--repeats", "0", *extra], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        with np.load(tmp_path / f"{name}.npz", allow_pickle=False) as data:
            got = executor.grouped({k: data[k] for k in data.files})
        assert sorted(got) == ["label", "probs"] and list(got["probs"][0]) == [10, 11, 12, 13]
        if name != "random":  # random: x is drawn by the runner
            label, probs = whole.run(None, feeds if name == "given" else other)
            assert got["label"].tolist() == label.tolist()
            np.testing.assert_allclose(list(got["probs"][0].values()), list(probs[0].values()), rtol=1e-6)


def test_exported_model_with_an_empty_input_runs_on_its_own_random_inputs(tmp_path):
    """A 0-size input (a key-value cache of length 0) keeps its 0 in the manifest, so ``runner.py`` feeds an
    empty tensor of it (it once fed size 1, which the model refuses)."""
    f = TensorProto.FLOAT
    g = helper.make_graph([helper.make_node("Concat", ["past", "x"], ["y"], axis=1, name="cat")], "kv",
                          [helper.make_tensor_value_info("past", f, [1, 0, 4]),
                           helper.make_tensor_value_info("x", f, [1, 3, 4])],
                          [helper.make_tensor_value_info("y", f, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    folder, out = tmp_path / "deploy", tmp_path / "out.npz"
    export_plain(m, "sequential_1_thread", str(folder))
    assert json.loads((folder / "manifest.json").read_text())["input_specs"]["past"] == [[1, 0, 4], "float32"]
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py"), "--output", str(out), "--repeats", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as data:
        assert data["y"].shape == (1, 3, 4)


def test_constant_output_and_dead_end_replay_and_run_standalone(tmp_path):
    """A graph output that is an initializer (a constant, or one ORT's optimiser folded) comes out of the
    first segment; a segment holding only a node whose output nothing reads returns that output (ORT runs
    no session call without one)."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["y"], name="neg"),
             helper.make_node("Exp", ["r"], ["dead"], name="dead")]
    g = helper.make_graph(nodes, "edges", [helper.make_tensor_value_info("x", f, [2, 3])],
                          [helper.make_tensor_value_info("c", f, [2]), helper.make_tensor_value_info("y", f, [2, 3])],
                          [numpy_helper.from_array(np.array([1.5, 2.5], np.float32), "c")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    path = tmp_path / "edges.onnx"
    onnx.save(m, str(path))
    model, problem = load_problem(str(path), platform="cpu", costs="model")
    schedule = simulate(problem, {"relu": "cpu0", "neg": "cpu0", "dead": "cpu1"})
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert [s["outputs"] for s in result["segments"]] == [["r", "c"], ["y"], ["dead"]]
    assert result["max_abs_diff"] == 0.0
    folder = tmp_path / "deploy"
    export_placement(model, problem, schedule, str(folder), "none")
    feeds = {"x": np.ones((2, 3), np.float32)}
    _assert_close(_run_exported(folder, feeds, tmp_path), _reference(m, feeds))


def _shared_weight_model() -> onnx.ModelProto:
    """Two branches that read one 2 MiB weight ``w`` (and one 1 MiB weight ``u`` each of their own)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.normal(size=shape) / shape[0] ** 0.5).astype(np.float32), name)
             for name, shape in (("w", (1024, 512)), ("u0", (512, 512)), ("u1", (512, 512)))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"], name="left"),
             helper.make_node("MatMul", ["a", "u0"], ["a2"], name="left2"),
             helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w"], ["b"], name="right"),
             helper.make_node("MatMul", ["b", "u1"], ["b2"], name="right2"),
             helper.make_node("Add", ["a2", "b2"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 512])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)


@pytest.mark.parametrize("backed", [False, True])
def test_a_weight_that_segments_share_is_held_once_in_replay_and_in_the_runner(backed, tmp_path, monkeypatch):
    """Segments on two cores that read one weight: their sessions read one copy of it (and pack no copy of
    their own), the replay's outputs equal the whole model's, and the export holds the weight once beside the
    segments for its runner, which reads it the same way in a fresh process.  ``backed``: the values are
    read-only maps of a file, as a large model's are (:func:`session_data`)."""
    from scheduler.replay import segment_sessions

    original = _shared_weight_model()
    path = tmp_path / "m.onnx"
    onnx.save(original, str(path))
    model, problem = load_problem(str(path), None, "cpu", costs="model", optimization="none")
    if backed:
        monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 0)
        model = session_data(model)
        assert isinstance(model.externals[0][1], np.memmap)
    left = {"left", "left2"}
    schedule = simulate(problem, {t: "cpu0" if t in left else "cpu1" for t in problem.tasks})
    prepared = prepare_replay(model, problem, schedule)
    sessions = segment_sessions(problem, prepared.parts)
    pointers = {s.segment.device: [v.data_ptr() for v in sess.shared_values]
                for s, sess in zip(prepared.parts, sessions) if "left" in s.segment.tasks or "right" in s.segment.tasks}
    assert len(pointers) == 2 and pointers["cpu0"] == pointers["cpu1"] and len(pointers["cpu0"]) == 1
    result = replay(model, problem, schedule, repeats=2, warmup=0, baselines=False, prepared=prepared)
    assert result["max_abs_diff"] <= 1e-4
    folder = tmp_path / "deploy"
    export_placement(model, problem, schedule, str(folder))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["shared"] == {"w": "shared000.npy"} and "shared000.npy" in manifest["files"]
    assert sorted(n for e in manifest["segments"] for n in e["shared"]) == ["w", "w"]
    feeds = {"x": np.random.default_rng(2).normal(size=(4, 1024)).astype(np.float32)}
    _assert_close(_run_exported(folder, feeds, tmp_path), _reference(original, feeds))


def test_runner_command_line_in_a_fresh_process(tmp_path):
    """``python runner.py`` alone: random inputs from the manifest, outputs saved, a bad manifest is one line."""
    original, _ = load_original("mlp")
    folder = tmp_path / "deploy"
    export_plain(original, "sequential_1_thread", str(folder))
    out = tmp_path / "out.npz"
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py"), "--output", str(out), "--repeats", "3"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "median" in proc.stdout
    with np.load(out) as data:
        assert set(data.files) == {o.name for o in original.graph.output}
    np.savez(tmp_path / "wrong.npz", not_x=np.zeros(3, np.float32))
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py"), "--inputs", str(tmp_path / "wrong.npz")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "is not given" in proc.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["session"]["cpus"] = [0, 1]  # two CPUs for a one-thread session
    (folder / "manifest.json").write_text(json.dumps(manifest))
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "one CPU per thread" in proc.stderr
    (folder / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "hetsched-deploy/1" in proc.stderr


def test_run_export_needs_the_replay(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--quiet", "--no-replay", "--export"]) == 2
    assert "drop --no-replay" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_export_into_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["problem", "mlp", "--platform", "cpu", "-o", str(tmp_path / "p.json")]) == 0
    assert main(["solve", str(tmp_path / "p.json"), "--solver", "heft", "-o", str(tmp_path / "s.json")]) == 0
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    capsys.readouterr()
    code = main(["replay", "mlp", "--platform", "cpu", "--problem", str(tmp_path / "p.json"), "--schedule",
                 str(tmp_path / "s.json"), "--repeats", "1", "--warmup", "0", "--export", str(blocker / "deploy")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.strip().count("\n") == 0 and "not_a_folder" in err


def test_model_beyond_protobufs_limit_profiles_replays_and_runs_standalone(tmp_path, monkeypatch):
    """A model whose weights pass the 2 GiB one serialised model can hold (an LLM's; the limit is lowered here
    to 2 MiB: a real one takes minutes to write) goes the whole way: its large initializers travel beside
    the model bytes (their checksums in them) and ONNX Runtime takes them from memory; the optimised model is
    cached with external data; a one-segment and a two-device cut replay with equal outputs; the exported
    segments and the plain export keep their large values in ``.data`` files and run alone."""
    import scheduler.graph as graph_module

    path = tmp_path / "big.onnx"
    onnx.save(load_original("mlp", {"layers": 3, "width": 512})[0], str(path), save_as_external_data=True,
              location="big.data", size_threshold=0)  # three 1 MiB weights
    original, _ = load_original(str(path))
    limit = 2 << 20
    monkeypatch.setattr(graph_module, "PROTOBUF_LIMIT", limit)
    profiles = tmp_path / "profiles"
    model, problem = load_problem(str(path), platform="cpu", optimization="all", costs="profile",
                                  profile=ProfileOptions(folder=str(profiles), repeats=2, warmup=0))
    data = model_bytes(model)
    assert len(data) < limit and len(data.externals) == 3
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    big = next(t for t in changed.graph.initializer if t.name == data.externals[0][0])
    big.raw_data = np.zeros(data.externals[0][1].shape, np.float32).tobytes()
    assert model_bytes(changed) != data  # the bytes identify the values (profiles and caches are keyed by them)
    assert list((profiles / "optimized").glob("*.onnx.data"))
    feeds = random_inputs(session(data), seed=3)
    expected = _reference(model, feeds)
    order = problem.graph.topological_order
    schedules = [simulate(problem, {t: "cpu0" for t in order}),
                 simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})]
    for schedule in schedules:  # a device profiled faster with weight packing off rounds its MatMuls otherwise
        assert replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-5
    folder = tmp_path / "segments"
    export_placement(model, problem, schedules[0], str(folder), "all")
    assert (folder / "seg000_cpu0.onnx").stat().st_size < limit < (folder / "seg000_cpu0.onnx.data").stat().st_size
    _assert_close(_run_exported(folder, feeds, tmp_path), expected)
    _assert_held_replays_the_same(model, problem, schedules[0], folder, "all", tmp_path)
    plain = tmp_path / "plain"
    export_plain(original, "sequential_1_thread", str(plain))
    assert (plain / "model.onnx").stat().st_size < limit < (plain / "model.onnx.data").stat().st_size
    _assert_close(_run_exported(plain, feeds, tmp_path), expected)
    _assert_same_export(session_data(original), plain, tmp_path)


def test_a_model_file_with_values_beside_it_runs_from_them_end_to_end(tmp_path, monkeypatch):
    """A user's model whose large values lie in a file beside it (FILE_BACKED_BYTES lowered to 1 MiB here) is
    run from that file, never read into memory: the model as loaded, the profiled problem, a cut over both
    cores, the exported segments and the plain export give the outputs of the model read whole, under the
    key the model read whole has, and nothing is written beside the user's file."""
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 1 << 20)
    folder = tmp_path / "user"
    folder.mkdir()
    path = folder / "m.onnx"
    onnx.save(load_original("mlp", {"layers": 3, "width": 512})[0], str(path), save_as_external_data=True,
              location="m.data", size_threshold=1024)
    original, _ = load_original(str(path))
    assert isinstance(original, ModelBytes) and len(original.externals) == 3
    assert all(os.path.samefile(v.filename, folder / "m.data") for _, v in original.externals)
    read = onnx.load(str(path))
    assert optimize.model_digest(original) == optimize.model_digest(optimize.name_nodes(read))
    model, problem = load_problem(str(path), platform="cpu", optimization="all", costs="profile",
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles"), repeats=2, warmup=0))
    feeds = random_inputs(session(original), seed=3)
    expected = _reference(read, feeds)
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    assert replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-5
    export_placement(model, problem, schedule, str(tmp_path / "segments"), "all")
    _assert_close(_run_exported(tmp_path / "segments", feeds, tmp_path), expected)
    export_plain(original, "sequential_1_thread", str(tmp_path / "plain"))
    _assert_close(_run_exported(tmp_path / "plain", feeds, tmp_path), expected)
    batched, _ = load_original(str(path), batch=2)  # copies side by side read the same mapped values
    assert len(batched.externals) == 3 and all(os.path.samefile(v.filename, folder / "m.data")
                                               for _, v in batched.externals)
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 1 << 40)
    whole, _ = load_original(str(path), batch=2)
    assert isinstance(whole, onnx.ModelProto) and optimize.model_digest(batched) == optimize.model_digest(whole)
    assert sorted(p.name for p in folder.iterdir()) == ["m.data", "m.onnx"]


def _assert_same_export(original: onnx.ModelProto | ModelBytes, plain: Path, tmp_path: Path) -> None:
    """The plain export of the user's model as run keeps it (:func:`session_data`, its values held once) is
    the same, file for file and byte for byte, as the export of the model itself (in ``plain``)."""
    again = tmp_path / "plain-again"
    export_plain(original, "sequential_1_thread", str(again))
    _assert_same_files(again, plain)


def _assert_same_files(folder: Path, other: Path) -> None:
    """Both folders hold the same files, byte for byte."""
    written = sorted(p.name for p in other.iterdir() if p.is_file())  # __pycache__: the runner has run there
    assert sorted(p.name for p in folder.iterdir()) == written
    for name in written:
        assert (folder / name).read_bytes() == (other / name).read_bytes(), name


def _assert_held_replays_the_same(model: onnx.ModelProto, problem, schedule, folder: Path, level: str,
                                  tmp_path: Path) -> None:
    """The optimised model as ``hetsched run`` holds it for the replay (:func:`session_data`: its values
    beside its bytes, once) prepares segments that share those very arrays, replays with the whole model's
    outputs and exports the same files as the proto (in ``folder``); its bytes alone, without the values,
    are refused in one line, not written as a model whose values are missing."""
    held = session_data(model)
    store: dict[str, np.ndarray] = {}
    prepared = prepare_replay(held, problem, schedule, shared=store)
    assert held.externals and all(store[name] is value for name, value in held.externals)
    assert replay(held, problem, schedule, repeats=1, warmup=0, baselines=False, prepared=prepared)[
        "max_abs_diff"] <= 1e-5
    again = tmp_path / f"{folder.name}-held"
    export_placement(held, problem, schedule, str(again), level)
    _assert_same_files(again, folder)
    with pytest.raises(ValueError, match="travels beside the model and was not given"):
        export_placement(onnx.ModelProto.FromString(held), problem, schedule, str(tmp_path / "broken"), level)


@pytest.mark.parametrize("level", ["none", "all"])
def test_model_beyond_the_limit_with_weights_in_constants_and_bodies_replays(level, tmp_path, monkeypatch):
    """Weights in ``Constant`` nodes and inside If and Loop bodies (the limit lowered to 2 MiB, as above): they
    become main-graph initializers where the model is serialised, so the bytes stay under the limit, ONNX
    Runtime takes all four from memory, a cut over both cores replays with the whole model's outputs, and
    the exported segments and the user's model exported whole (its values written from the nodes) run alone."""
    import scheduler.graph as graph_module
    from conftest import weights_inside_model

    path = tmp_path / "inside.onnx"
    onnx.save(weights_inside_model(), str(path))
    limit = 2 << 20
    monkeypatch.setattr(graph_module, "PROTOBUF_LIMIT", limit)
    model, problem = load_problem(str(path), platform="cpu", optimization=level, costs="model")
    data = model_bytes(model)
    assert len(data) < limit and len(data.externals) == 4
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert len(result["segments"]) >= 3 and result["max_abs_diff"] <= 1e-5
    folder, plain = tmp_path / "segments", tmp_path / "plain"
    export_placement(model, problem, schedule, str(folder), level)
    _assert_held_replays_the_same(model, problem, schedule, folder, level, tmp_path)
    export_plain(load_original(str(path))[0], "sequential_1_thread", str(plain))  # the values still in nodes
    assert (plain / "model.onnx").stat().st_size < limit < (plain / "model.onnx.data").stat().st_size
    _assert_same_export(session_data(load_original(str(path))[0]), plain, tmp_path)
    consumed = session_data(load_original(str(path))[0], consume=True)  # lifted in place first: the same
    kept = session_data(load_original(str(path))[0])
    assert bytes(consumed) == bytes(kept) and [n for n, _ in consumed.externals] == [n for n, _ in kept.externals]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(consumed.externals, kept.externals))
    feeds = {"x": np.random.default_rng(4).standard_normal((4, 512)).astype(np.float32), "flag": np.array(True)}
    for exported in (folder, plain):
        _assert_close(_run_exported(exported, feeds, tmp_path), _reference(model, feeds))


def _stored_as_model(elem: int, width: int = 2048, layers: int = 2) -> onnx.ModelProto:
    """An MLP whose ``width``-square weights are stored as ONNX type ``elem`` (small integers, exact in every
    type) and cast to float32 where used, as bfloat16, float8 and int4 exports of large models store them."""
    rng = np.random.default_rng(0)
    nodes, weights, x = [], [], "x"
    for k in range(layers):
        value = rng.integers(-2, 3, (width, width)).astype(np.float32).astype(helper.tensor_dtype_to_np_dtype(elem))
        weights.append(numpy_helper.from_array(value, f"w{k}"))
        nodes += [helper.make_node("Cast", [f"w{k}"], [f"c{k}"], to=TensorProto.FLOAT),
                  helper.make_node("MatMul", [x, f"c{k}"], [f"m{k}"]), helper.make_node("Tanh", [f"m{k}"], [f"t{k}"])]
        x = f"t{k}"
    graph = helper.make_graph(nodes, "stored", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, width])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [2, width])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("level", ["none", "all"])
@pytest.mark.parametrize("elem", [TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.INT4])
def test_weights_stored_as_bfloat16_float8_or_int4_profile_replay_and_export(elem, level, tmp_path):
    """Weights of 2 MiB or more stored in types numpy has no dtype of its own for.  bfloat16 and float8 ones
    travel beside the bytes as ``ml_dtypes`` arrays, which ``ortvalue_from_numpy`` and ``memoryview`` refuse
    (every session, checksum and written file failed on them); int4 ones, packed two to a byte, stay in the
    bytes.  The model (``all``: ORT folds the casts, and the optimised model is cached) is profiled, cut over
    both cores and exported, with the whole model's outputs."""
    path = tmp_path / "stored.onnx"
    onnx.save(_stored_as_model(elem), str(path), save_as_external_data=True, location="stored.data")
    profiles = tmp_path / "profiles"
    options = ProfileOptions(folder=str(profiles), repeats=1, warmup=0)
    model, problem = load_problem(str(path), platform="cpu", optimization=level, costs="profile", profile=options)
    if level == "none":
        assert {t.data_type for t in model.graph.initializer} == {elem}
    else:
        assert len(list((profiles / "optimized").glob("*.onnx"))) == 1
        assert load_problem(str(path), platform="cpu", optimization=level, profile=options)[0] == model  # cached
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert len(result["segments"]) >= 3 and result["max_abs_diff"] == 0.0
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 2048)).astype(np.float32)}
    folder = tmp_path / "segments"
    export_placement(model, problem, schedule, str(folder), "all")
    _assert_close(_run_exported(folder, feeds, tmp_path), _reference(model, feeds))


@pytest.mark.parametrize("elem", [TensorProto.BFLOAT16, TensorProto.INT4])
def test_weights_of_other_types_beyond_the_limit(elem, tmp_path, monkeypatch, capsys):
    """Beyond protobuf's limit (lowered to 2 MiB, as above), bfloat16 weights are written to the ``.data`` file
    byte for byte and the exported model runs alone; int4 weights, which must stay in the bytes, make the
    model one that cannot be serialised: refused in one line, exit 2."""
    import scheduler.graph as graph_module

    path = tmp_path / "stored.onnx"
    onnx.save(_stored_as_model(elem, width=1024), str(path))  # 2 MiB of bfloat16 weights, or 0.5 MiB of int4
    monkeypatch.setattr(graph_module, "PROTOBUF_LIMIT", 1 << 20)
    if elem == TensorProto.INT4:
        capsys.readouterr()
        assert main(["problem", str(path), "--platform", "cpu", "-o", str(tmp_path / "p.json")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip().count("\n") == 0 and "2 GiB" in err
        return
    model, _ = load_problem(str(path), platform="cpu", optimization="all")
    plain = tmp_path / "plain"
    export_plain(model, "sequential_1_thread", str(plain))
    assert (plain / "model.onnx").stat().st_size < 1 << 20 < (plain / "model.onnx.data").stat().st_size
    feeds = {"x": np.random.default_rng(2).standard_normal((2, 1024)).astype(np.float32)}
    _assert_close(_run_exported(plain, feeds, tmp_path), _reference(model, feeds))


def _activations_model() -> onnx.ModelProto:
    """float32 in and out, and tensors of types numpy has no dtype for between the nodes: ``h`` cast to bfloat16
    (transposed, concatenated: ``z``, a bfloat16 output), to float8, int4, int2 and float8e8m0, each cast back and
    activated.  ORT's CPU kernels move and cast these types but compute in none of them."""
    rng = np.random.default_rng(0)
    n = helper.make_node
    nodes = [n("MatMul", ["x", "w"], ["h"]),
             n("Cast", ["h"], ["hb"], to=TensorProto.BFLOAT16), n("Transpose", ["hb"], ["hbt"], perm=[1, 0]),
             n("Cast", ["hbt"], ["f1"], to=TensorProto.FLOAT), n("Relu", ["f1"], ["y1"]),
             n("Concat", ["hb", "hb"], ["z"], axis=0),
             n("Cast", ["h"], ["h8"], to=TensorProto.FLOAT8E4M3FN), n("Cast", ["h8"], ["f2"], to=TensorProto.FLOAT),
             n("Sigmoid", ["f2"], ["y2"]),
             n("Cast", ["h"], ["h4"], to=TensorProto.INT4), n("Cast", ["h4"], ["f4"], to=TensorProto.FLOAT),
             n("Tanh", ["f4"], ["y4"]),
             n("Cast", ["h"], ["h2"], to=TensorProto.INT2), n("Cast", ["h2"], ["f5"], to=TensorProto.FLOAT),
             n("Abs", ["f5"], ["y5"]),
             n("Cast", ["h"], ["he"], to=TensorProto.FLOAT8E8M0), n("Cast", ["he"], ["f6"], to=TensorProto.FLOAT),
             n("Neg", ["f6"], ["y6"])]
    graph = helper.make_graph(
        nodes, "activations", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 63])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, None) for y in ("y1", "y2", "y4", "y5", "y6")]
        + [helper.make_tensor_value_info("z", TensorProto.BFLOAT16, None)],
        [numpy_helper.from_array(rng.standard_normal((63, 63)).astype(np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)], ir_version=11)


@pytest.mark.parametrize("level", ["none", "all"])
def test_bfloat16_float8_int4_and_int2_activations_profile_replay_stream_and_export(level, tmp_path):
    """Tensors that ORT's ``run`` will not give as numpy arrays (it did refuse them, so ``problem`` refused the
    model), between segments and as a graph output: the segments hand them over as OrtValues.  The model is
    profiled, cut over both cores (the casts to those types on one, their readers on the other), replayed,
    streamed and exported, plain and cut, each with the whole model's outputs; the odd width packs int4 values
    into a half-filled byte, int2 ones into three quarters of one."""
    path = tmp_path / "activations.onnx"
    onnx.save(_activations_model(), str(path))
    options = ProfileOptions(folder=str(tmp_path / "profiles"), repeats=1, warmup=0)
    model, problem = load_problem(str(path), platform="cpu", optimization=level, costs="profile", profile=options)
    casts = {node.name for node in model.graph.node if set(node.output) & {"hb", "h8", "h4", "h2", "he"}}
    assert len(casts) == 5  # what makes them stays; their readers run on the other core
    schedule = simulate(problem, {t: "cpu1" if t in casts else "cpu0" for t in problem.tasks})
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=True)
    assert len(result["segments"]) >= 3 and result["max_abs_diff"] == 0.0
    assert replay_stream(model, problem, schedule, inferences=4, warmup=1)["max_abs_diff"] == 0.0
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 63)).astype(np.float32)}
    expected = _reference(model, feeds)
    assert expected["z"].dtype == np.uint16 and expected["z"].shape == (4, 63)
    for kind in ("segments", "plain"):
        folder = tmp_path / kind
        if kind == "plain":
            export_plain(model, "sequential_1_thread", str(folder))
        else:
            export_placement(model, problem, schedule, str(folder), level)
        got = _run_exported(folder, feeds, tmp_path)
        assert set(got) == set(expected) and all(np.array_equal(got[k], v) for k, v in expected.items())


def _bfloat16_and_sequence_model() -> onnx.ModelProto:
    """A bfloat16 output and a sequence made of the same tensor; the sequence read on into another bfloat16
    output."""
    f, bf = TensorProto.FLOAT, TensorProto.BFLOAT16
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Cast", ["r"], ["b"], name="to_bf16", to=bf),
             helper.make_node("SequenceConstruct", ["r", "r"], ["s"], name="construct"),
             helper.make_node("ConcatFromSequence", ["s"], ["cat"], name="concat", axis=0),
             helper.make_node("Add", ["cat", "cat"], ["y"], name="add"),
             helper.make_node("Cast", ["y"], ["yb"], name="y_to_bf16", to=bf)]
    g = helper.make_graph(nodes, "bf16_seq", [helper.make_tensor_value_info("x", f, [2, 3])],
                          [helper.make_tensor_value_info("yb", bf, [4, 3]),
                           helper.make_tensor_value_info("b", bf, [2, 3])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_a_bfloat16_tensor_beside_a_sequence_profiles_and_replays(tmp_path):
    """ORT's ``run`` gives no bfloat16 tensor and ``run_with_ort_values`` no sequence: a run that must give both
    (the whole model's run that types every value, a segment that makes both) runs the session for each kind.  A
    segment that would take a sequence and give a bfloat16 tensor is refused in one line."""
    path = tmp_path / "bf16_seq.onnx"
    onnx.save(_bfloat16_and_sequence_model(), str(path))
    options = ProfileOptions(folder=str(tmp_path / "profiles"), repeats=1, warmup=0)
    model, problem = load_problem(str(path), platform="cpu", costs="profile", profile=options)
    # the first segment gives the bfloat16 output and the sequence
    schedule = simulate(problem, {t: "cpu0" if t in ("concat", "add") else "cpu1" for t in problem.tasks})
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert [g["device"] for g in result["segments"]] == ["cpu1", "cpu0", "cpu1"] and result["max_abs_diff"] == 0.0
    mixed = simulate(problem, {t: "cpu1" if t in ("relu", "to_bf16", "construct") else "cpu0" for t in problem.tasks})
    with pytest.raises(ReplayError, match="input 's' is a sequence or a map, which cannot go into the same session"):
        replay(model, problem, mixed, repeats=1, warmup=0, baselines=False)


def _bits_inputs_model() -> onnx.ModelProto:
    """A bfloat16 input ``x`` and a float8 input ``q``, each cast to float32 by its own node, multiplied and
    activated; the bfloat16 input also goes straight on to an output (``z``)."""
    n = helper.make_node
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), "w")
    nodes = [n("Cast", ["x"], ["xf"], to=TensorProto.FLOAT, name="x_to_f"), n("MatMul", ["xf", "w"], ["h"], name="mm"),
             n("Cast", ["q"], ["qf"], to=TensorProto.FLOAT, name="q_to_f"), n("Mul", ["h", "qf"], ["m"], name="mul"),
             n("Relu", ["m"], ["y"], name="relu"), n("Transpose", ["x"], ["z"], perm=[1, 0], name="xt")]
    graph = helper.make_graph(
        nodes, "bits_inputs", [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [2, 64]),
                               helper.make_tensor_value_info("q", TensorProto.FLOAT8E4M3FN, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("z", TensorProto.BFLOAT16, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def test_bfloat16_and_float8_inputs_profile_replay_stream_and_export(tmp_path):
    """Inputs of types numpy has no dtype for go in as the bits of their values (random ones, or the user's as
    unsigned integers): the model is profiled, cut over both cores, replayed, streamed, and exported with the
    user's inputs, whose runner needs nothing else; every run gives the whole model's outputs.  Bits of another size are refused naming the input."""
    path = tmp_path / "bits.onnx"
    onnx.save(_bits_inputs_model(), str(path))
    rng = np.random.default_rng(3)
    feeds = {"x": (rng.standard_normal((2, 64)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16),
             "q": rng.integers(0, 0x40, (2, 64), dtype=np.uint8)}
    options = ProfileOptions(folder=str(tmp_path / "profiles"), repeats=1, warmup=0)
    for given in (None, feeds):
        model, problem = load_problem(str(path), platform="cpu", costs="profile", profile=options, inputs=given)
        schedule = simulate(problem, {t: "cpu0" if t in ("mm", "relu") else "cpu1" for t in problem.tasks})
        result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=True)
        assert len(result["segments"]) >= 3 and result["max_abs_diff"] == 0.0
        assert replay_stream(model, problem, schedule, inferences=4, warmup=1)["max_abs_diff"] == 0.0
    expected = _reference(model, feeds)
    assert expected["z"].dtype == np.uint16 and np.array_equal(expected["z"], feeds["x"].T)
    folder = tmp_path / "export"
    export_placement(model, problem, schedule, str(folder), feeds=feeds)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["input_specs"] == {"x": [[2, 64], "uint16"], "q": [[2, 64], "uint8"]}
    got = _run_exported(folder, feeds, tmp_path)
    assert set(got) == set(expected) and all(np.array_equal(got[k], v) for k, v in expected.items())
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py"), "--repeats", "0", "--output",
                           str(tmp_path / "kept.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "kept.npz") as data:  # the kept inputs.npz: the user's
        assert all(np.array_equal(data[k], v) for k, v in expected.items())
    with pytest.raises(ModelError, match="given input 'x' is float32, but the model takes bfloat16 \\(or its bits as "
                                         "uint16\\)"):
        load_original(str(path), inputs={**feeds, "x": np.zeros((2, 64), np.float32)})
    call = session_call(session(model_bytes(model)))
    with pytest.raises(ValueError, match="input 'x' is a tensor\\(bfloat16\\): give the bits of its values as "
                                         "uint16 .*, not float32"):
        call({"x": np.zeros((2, 64), np.float32), "q": feeds["q"]})


def _packed_inputs_model() -> onnx.ModelProto:
    """An int4 input ``x``, a uint2 ``u`` and a float8e8m0 ``e`` (powers of two), 15 values each (packed
    inputs end in part of a byte), cast to float32, combined through a MatMul; ``x`` also goes on, transposed,
    to an int4 output (``z``)."""
    n = helper.make_node
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((5, 32)).astype(np.float32), "w")
    nodes = [n("Cast", ["x"], ["xf"], to=TensorProto.FLOAT, name="x_to_f"),
             n("Cast", ["u"], ["uf"], to=TensorProto.FLOAT, name="u_to_f"),
             n("Cast", ["e"], ["ef"], to=TensorProto.FLOAT, name="e_to_f"), n("Mul", ["xf", "uf"], ["xu"], name="mul"),
             n("Add", ["xu", "ef"], ["s"], name="add"), n("MatMul", ["s", "w"], ["h"], name="mm"),
             n("Relu", ["h"], ["y"], name="relu"), n("Transpose", ["x"], ["z"], perm=[1, 0], name="xz")]
    graph = helper.make_graph(
        nodes, "packed_inputs", [helper.make_tensor_value_info("x", TensorProto.INT4, [3, 5]),
                                 helper.make_tensor_value_info("u", TensorProto.UINT2, [3, 5]),
                                 helper.make_tensor_value_info("e", TensorProto.FLOAT8E8M0, [3, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("z", TensorProto.INT4, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)], ir_version=11)


def test_int4_uint2_and_float8e8m0_inputs_profile_replay_stream_and_export(tmp_path):
    """Inputs that ORT packs several to a byte (int4, uint2) are given as their int8 or uint8 values (or
    ``ml_dtypes`` arrays), packed for ORT; a float8e8m0 one as its bits: random and given inputs profile, cut
    over both cores, replay, stream and export, every run with the whole model's outputs; the exported runner's
    own random inputs span each type's values.  Values out of an input's range are refused in one line."""
    import ml_dtypes

    path = tmp_path / "packed.onnx"
    onnx.save(_packed_inputs_model(), str(path))
    rng = np.random.default_rng(5)
    feeds = {"x": rng.integers(-8, 8, (3, 5), dtype=np.int8), "u": rng.integers(0, 4, (3, 5), dtype=np.uint8),
             "e": rng.integers(120, 135, (3, 5), dtype=np.uint8)}
    options = ProfileOptions(folder=str(tmp_path / "profiles"), repeats=1, warmup=0)
    for given in (None, feeds, {**feeds, "x": feeds["x"].astype(ml_dtypes.int4)}):
        model, problem = load_problem(str(path), platform="cpu", costs="profile", profile=options, inputs=given)
        schedule = simulate(problem, {t: "cpu0" if t in ("mm", "relu", "u_to_f") else "cpu1" for t in problem.tasks})
        result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=True)
        assert len(result["segments"]) >= 3 and result["max_abs_diff"] == 0.0
        assert replay_stream(model, problem, schedule, inferences=4, warmup=1)["max_abs_diff"] == 0.0
    expected = _reference(model, feeds)
    assert expected["z"].dtype == np.int8 and np.array_equal(expected["z"], feeds["x"].T)
    w = numpy_helper.to_array(_packed_inputs_model().graph.initializer[0])
    s = feeds["x"].astype(np.float32) * feeds["u"] + np.exp2(feeds["e"].astype(np.float32) - 127)
    assert np.allclose(expected["y"], np.maximum(s @ w, 0), atol=1e-4)
    folder = tmp_path / "export"
    export_placement(model, problem, schedule, str(folder), feeds=feeds)
    assert json.loads((folder / "manifest.json").read_text())["input_specs"] == {
        "x": [[3, 5], "int8"], "u": [[3, 5], "uint8"], "e": [[3, 5], "uint8"]}
    got = _run_exported(folder, feeds, tmp_path)
    assert all(np.array_equal(got[k], v) for k, v in expected.items())
    proc = subprocess.run([sys.executable, "-I", "-c", "import sys, json; sys.path.insert(0, sys.argv[1]); "
                           "import runner; d = runner.Deployment(sys.argv[1]); f = d.random_inputs(); d.run(f); "
                           "d.close(); print(json.dumps({k: sorted(set(v.ravel().tolist())) for k, v in f.items()}))",
                           str(folder)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    values = json.loads(proc.stdout)  # the runner's own random inputs: spread over each type's values
    assert len(values["x"]) > 4 and -8 <= min(values["x"]) and max(values["x"]) <= 7
    assert len(values["u"]) > 1 and max(values["u"]) <= 3 and 120 <= min(values["e"]) <= max(values["e"]) <= 134
    with pytest.raises(ModelError, match="given input 'x' is a tensor\\(int4\\): its values must lie in -8..7"):
        load_original(str(path), inputs={**feeds, "x": np.full((3, 5), 8, np.int8)})
    with pytest.raises(ModelError, match="given input 'u' is float32, but the model takes uint2 \\(or its values as "
                                         "uint8\\)"):
        load_original(str(path), inputs={**feeds, "u": np.zeros((3, 5), np.float32)})
    call = session_call(session(model_bytes(model)))
    with pytest.raises(ValueError, match="input 'x' is a tensor\\(int4\\): its values must lie in -8..7"):
        call({**feeds, "x": np.full((3, 5), -9, np.int8)})
    with pytest.raises(ValueError, match="input 'x' is a tensor\\(int4\\): give the values as int8 .*, not uint8"):
        call({**feeds, "x": feeds["u"]})
