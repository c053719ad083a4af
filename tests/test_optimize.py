"""Optimise, then partition; cut every model ORT runs (contrib ops, control flow, external data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from scheduler.cli import main
from scheduler.deploy import export_placement
from scheduler.errors import ModelError
from scheduler.graph import lift_large_values, name_nodes_in_place, subgraph_reads, task_graph_from_onnx
from scheduler.executor import grouped, session_call
from scheduler import optimize, zoo
from scheduler.optimize import (IR_VERSION, as_array, model_bytes, model_digest, observed_types, optimize_model,
                                ort_refusal, random_inputs, session, session_bytes, session_data, write_model)
from scheduler.pipeline import ProfileOptions, build_problem, load_graph, load_original, load_problem, measure
from scheduler.platform import load_platform
from scheduler.problem import Problem
from scheduler.replay import checked_diff, prepare_replay, replay
from scheduler.schedule import validate, write_schedule
from scheduler.segments import ReplayError
from scheduler.semantics import simulate
from solvers import get_solver

F = TensorProto.FLOAT


def run_model(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model_bytes(model), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def alternate(problem: Problem, devices: tuple[str, str]) -> dict[str, str]:
    """Every other task (in topological order) on the second device, where allowed."""
    order = problem.graph.topological_order
    return {t: devices[i % 2] if devices[i % 2] in problem.allowed(t) else problem.allowed(t)[0]
            for i, t in enumerate(order)}


def test_model_digest_tells_models_apart_by_every_value():
    """The key of profiles and optimised models: equal for equal models (node names made the same way), and
    changed by one element of a large value (held beside the bytes, by its own hash) or of a small one."""
    original, _ = load_original("mlp", {"layers": 2, "width": 1024})  # 4 MiB weights: beside the bytes
    digest = model_digest(original)
    copy = onnx.ModelProto()
    copy.CopyFrom(original)
    assert model_digest(copy) == digest and len(session_bytes(copy).externals) == 2
    for largest in (True, False):
        changed = onnx.ModelProto()
        changed.CopyFrom(original)
        tensor = sorted(changed.graph.initializer, key=lambda t: numpy_helper.to_array(t).nbytes)[-1 if largest else 0]
        value = numpy_helper.to_array(tensor).copy()
        value.flat[-1] += 1
        tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
        assert model_digest(changed) != digest


@pytest.mark.parametrize("level", ["basic", "extended", "all"])
def test_optimised_model_computes_the_same_and_is_cached(level, tmp_path):
    original, _ = load_original("randwire", {"nodes": 6, "channels": 16})
    cache = tmp_path / "cache"
    opt = optimize_model(original, level, cache_dir=str(cache))
    files = list(cache.iterdir())
    assert len(files) == 1
    inode = files[0].stat().st_ino
    os.utime(files[0], (1e9, 1e9))
    again = optimize_model(original, level, cache_dir=str(cache))
    assert again == opt and files[0].stat().st_ino == inode  # reused, not rewritten (a write replaces the file)
    assert files[0].stat().st_mtime > 1e9  # and marked used (hetsched cache clear drops the least recently used)
    feeds = {"image": np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    np.testing.assert_allclose(run_model(opt, feeds)[0], run_model(original, feeds)[0], atol=1e-4)
    assert len(opt.graph.node) != len(original.graph.node)  # fused: Conv+BatchNorm at least
    assert len({n.name for n in opt.graph.node}) == len(opt.graph.node)


@pytest.mark.parametrize("level", ["none", "basic", "all"])
def test_the_session_data_of_a_model_optimise_as_the_model_does(level, tmp_path):
    """What ``hetsched run`` optimises (the user's model as the session data it keeps for plain ORT, its large
    values beside the bytes) gives the model the proto gives, under the same cache key; at level ``none`` the
    data themselves (nothing to change, no copy)."""
    original, _ = load_original("mlp", {"layers": 3, "width": 640})  # 1.6 MB weights: beside the bytes
    from_proto = optimize_model(original, level, cache_dir=str(tmp_path / "a"))
    data = session_data(original)
    assert data.externals
    from_data = optimize_model(data, level, cache_dir=str(tmp_path / "b"))
    assert model_digest(from_data) == model_digest(from_proto)
    if level == "none":
        assert from_data is data
    else:
        assert sorted(os.listdir(tmp_path / "a")) == sorted(os.listdir(tmp_path / "b"))  # one key


def test_a_cached_model_with_large_values_reads_back_as_optimised(tmp_path):
    """A cache entry of a model with values of 1 MiB or more is ORT's values file copied beside the mended model
    without its values: the entry read back (a hit), the model the miss returned and the model optimised
    without a cache are one model, and the entry's model file holds no value."""
    original, _ = load_original("mlp", {"layers": 3, "width": 640})  # 1.6 MB weights
    cache = tmp_path / "cache"
    missed = optimize_model(original, "all", cache_dir=str(cache))
    entry, = cache.glob("*.onnx")
    assert (cache / (entry.name + ".data")).stat().st_size >= 3 * 640 * 640 * 4
    assert entry.stat().st_size < 1 << 20
    assert optimize_model(original, "all", cache_dir=str(cache)) == missed == optimize_model(original, "all")
    assert not any(t.data_location == TensorProto.EXTERNAL for t in missed.graph.initializer)
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 640)).astype(np.float32)}
    np.testing.assert_allclose(run_model(missed, feeds)[0], run_model(original, feeds)[0], atol=1e-4)


def test_a_cache_entry_of_large_values_is_mapped_not_read(tmp_path, monkeypatch):
    """From FILE_BACKED_BYTES of large values on, the optimised model comes back from its cache entry as session
    data whose values are views of the entry's values file (what ORT then maps too), the miss as the hit: the
    same bytes and values as the session data of the model read whole, so the keys of profiles stay; the
    sessions made of it compute what the model does and leave nothing in the cache.  Below it, a proto."""
    original, _ = load_original("mlp", {"layers": 3, "width": 640})  # 3 values of 1.6 MB
    cache = tmp_path / "cache"
    assert isinstance(optimize_model(original, "all", cache_dir=str(cache)), onnx.ModelProto)
    whole = session_data(optimize_model(original, "all"))
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 4 << 20)
    entries = sorted(cache.iterdir())
    for fresh in (False, True):  # the entry made before, a hit; then a miss in a new cache
        folder = tmp_path / "fresh" if fresh else cache
        data = optimize_model(original, "all", cache_dir=str(folder))
        assert isinstance(data, optimize.ModelBytes) and bytes(data) == bytes(whole)
        assert [name for name, _ in data.externals] == [name for name, _ in whole.externals]
        for (_, value), (_, read) in zip(data.externals, whole.externals):
            np.testing.assert_array_equal(value, read)
            assert value.dtype == read.dtype and not value.flags.writeable
        entry, = folder.glob("*.onnx")
        folder_of, where = optimize._backing_files(data.externals)
        assert folder_of == str(folder) and {name for name, _ in where.values()} == {entry.name + ".data"}
        assert model_digest(data) == model_digest(whole)
        feeds = {"x": np.random.default_rng(0).standard_normal((1, 640)).astype(np.float32)}
        np.testing.assert_allclose(session(data).run(None, feeds)[0], run_model(original, feeds)[0], atol=1e-4)
    assert sorted(cache.iterdir()) == entries and len(entries) == 2


def test_a_large_zoo_model_is_built_once_into_the_cache_and_mapped(tmp_path, monkeypatch):
    """From FILE_BACKED_BYTES of values on, a zoo model is built once into the model cache (``zoo/<key>.onnx``)
    and read from there, its values mapped: the same bytes and profile key as the model built in memory, no
    build on a hit; a damaged entry is built again; other parameters are another entry; a smaller model is built
    in memory and not kept.  A run (the CLI's ``replay`` here) goes the whole way on it."""
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 4 << 20)
    args = ("mlp", {"layers": 3, "width": 640})  # 3 values of 1.6 MB
    cache = tmp_path / "profiles" / "optimized"
    built, _ = load_original(*args)
    data, _ = load_original(*args, cache_dir=str(cache))
    entry, = (cache / "zoo").glob("*.onnx")
    assert entry.stem == zoo.build_key(*args[:1], **args[1]) and (cache / "zoo" / f"{entry.name}.data").is_file()
    assert isinstance(data, optimize.ModelBytes) and model_digest(data) == model_digest(built)
    assert all(isinstance(v, np.memmap) and not v.flags.writeable for _, v in data.externals)
    with monkeypatch.context() as m:
        m.setattr(zoo, "build", lambda *a, **k: pytest.fail("a hit builds nothing"))
        assert bytes(load_original(*args, cache_dir=str(cache))[0]) == bytes(data)
    values = cache / "zoo" / f"{entry.name}.data"
    values.write_bytes(values.read_bytes()[:1000])  # cut short: built again
    assert model_digest(load_original(*args, cache_dir=str(cache))[0]) == model_digest(built)
    assert values.stat().st_size >= 3 * 640 * 640 * 4
    load_original("mlp", {"layers": 3, "width": 512}, cache_dir=str(cache))  # 3 x 1 MiB: below, not kept
    tried = []

    def full_disk(path, *args, **kwargs):
        tried.append(path)
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:  # a cache that cannot take it: built in memory, as without one
        m.setattr(optimize, "write_model", full_disk)
        kept, _ = load_original("mlp", {"layers": 3, "width": 600}, cache_dir=str(cache))
    assert len(tried) == 1 and isinstance(kept, onnx.ModelProto)
    assert model_digest(kept) == model_digest(load_original("mlp", {"layers": 3, "width": 600})[0])
    load_original("mlp", {"layers": 4, "width": 640}, cache_dir=str(cache))
    assert len(list((cache / "zoo").glob("*.onnx"))) == 2
    problem = build_problem(*args, platform="cpu", optimization="auto",
                            profile=ProfileOptions(folder=str(tmp_path / "profiles")))
    write_schedule(simulate(problem, alternate(problem, ("cpu0", "cpu1"))), tmp_path / "s.json")
    assert main(["replay", "mlp", "--set", "layers=3", "--set", "width=640", "--schedule", str(tmp_path / "s.json"),
                 "--platform", "cpu", "--costs", "model", "--profiles", str(tmp_path / "profiles"),
                 "--repeats", "1", "-o", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["max_abs_diff"] <= 1e-5
    assert len(list((cache / "zoo").glob("*.onnx"))) == 2  # the run's build was the entry's


def test_a_mapped_cache_entry_keeps_the_profile_and_replays(tmp_path, monkeypatch):
    """The optimised model mapped from its cache entry goes the whole way: profiled on the miss, the profile
    found again on the hit (the same key), a cut over both cores replays with the model's outputs from the
    entry's values file, and nothing is left in the cache but the entry."""
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 4 << 20)
    options = ProfileOptions(folder=str(tmp_path / "profiles"), repeats=2, warmup=0)
    args = ("mlp", {"layers": 3, "width": 640}, "cpu")
    reused = [measure(*args, options=options, optimization="all")[3] for _ in range(2)]
    assert reused == [False, True]
    data, problem = load_problem(*args, costs="profile", profile=options, optimization="all")
    cache = tmp_path / "profiles" / "optimized"
    entry, = cache.glob("*.onnx")
    folder, where = optimize._backing_files(data.externals)
    assert folder == str(cache) and {name for name, _ in where.values()} == {entry.name + ".data"}
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    assert replay(data, problem, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-5
    assert sorted(p.name for p in cache.iterdir()) == [entry.name, entry.name + ".data", "zoo"]  # zoo: its build


def test_a_model_with_a_file_per_value_runs_from_those_files(tmp_path, monkeypatch):
    """Values saved one file each (onnx.save without all_tensors_to_one_file) are mapped from their files, and
    the session made of them reads them there, through ORT's external-initializer folder: the outputs of the
    model read whole, and nothing written beside the user's files."""
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 1 << 20)
    model = load_original("mlp", {"layers": 3, "width": 512})[0]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=1024)
    files = sorted(os.listdir(tmp_path))
    data, _ = load_original(str(path))
    folder, where = optimize._backing_files(data.externals)
    assert folder == str(tmp_path) and len({name for name, _ in where.values()}) == 3
    feeds = random_inputs(session(data), seed=1)
    np.testing.assert_array_equal(session_call(session(data))(feeds)[0],
                                  session_call(session(model_bytes(onnx.load(str(path)))))(feeds)[0])
    assert sorted(os.listdir(tmp_path)) == files


@pytest.mark.parametrize("level", ["none", "all"])
def test_sessions_take_large_values_beside_the_bytes_and_compute_the_same(level):
    """session_bytes hands every value of 1 MiB or more to ONNX Runtime beside the bytes, whatever the model's
    size; the session computes what one of the whole serialised model does.  Keys stay the whole model's
    bytes: model_bytes of a model below protobuf's limit carries every value."""
    model, _ = load_original("mlp", {"layers": 2, "width": 512})  # 1 MiB weights
    beside, whole = session_bytes(model), model_bytes(model)
    assert len(beside.externals) == 2 and len(beside) < 1 << 20 < len(whole)
    assert not getattr(whole, "externals", ())
    a, b = session(beside, level), session(whole, level)
    feeds = random_inputs(b, seed=1)
    np.testing.assert_array_equal(a.run(None, feeds)[0], b.run(None, feeds)[0])


def _read(path) -> onnx.ModelProto:
    """The model file at ``path`` with the values beside it read in, as the optimised-model cache reads one."""
    return optimize._with_values(onnx.load(str(path), load_external_data=False), os.path.dirname(path))


def test_a_model_written_in_pieces_reads_back_as_the_model(tmp_path):
    """write_model writes a model below protobuf's limit as one file without serialising its large values
    (their bytes come from arrays, each initializer a graph of its own that protobuf merges): it reads back
    as the model serialised whole, initializers in their order, and ONNX Runtime runs it."""
    model, _ = load_original("mlp", {"layers": 3, "width": 512})  # 1 MiB weights between small biases
    assert sum(numpy_helper.to_array(t).nbytes >= 1 << 20 for t in model.graph.initializer) == 3
    path = tmp_path / "m.onnx"
    write_model(str(path), model)
    assert onnx.load(str(path)) == onnx.ModelProto.FromString(model_bytes(model))
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    feeds = random_inputs(session(model_bytes(model)), seed=2)
    np.testing.assert_array_equal(session(path.read_bytes()).run(None, feeds)[0],
                                  session(model_bytes(model)).run(None, feeds)[0])
    data = session_data(model)  # the model as run keeps the user's: the same file comes of it
    assert session_data(data) is data
    write_model(str(tmp_path / "d.onnx"), data)
    assert (tmp_path / "d.onnx").read_bytes() == path.read_bytes()
    write_model(str(tmp_path / "e.onnx"), data, beside=True)  # what ORT maps: the values in e.onnx.data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.onnx", "e.onnx", "e.onnx.data", "m.onnx"]
    assert (tmp_path / "e.onnx.data").stat().st_size >= 3 << 20 > (tmp_path / "e.onnx").stat().st_size
    assert _read(tmp_path / "e.onnx") == onnx.load(str(path))
    np.testing.assert_array_equal(session(str(tmp_path / "e.onnx")).run(None, feeds)[0],
                                  session(model_bytes(model)).run(None, feeds)[0])


def test_values_written_beside_a_model_start_at_pages(tmp_path):
    """write_model puts each value beside the model at a page boundary (where ORT maps it instead of reading it
    in), whatever their sizes, and the model reads back and runs as written."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(n).astype(np.float32) for n in ((1 << 18) + 3, (1 << 18) + 5))
    nodes = [helper.make_node("Add", ["x", "a"], ["s"]), helper.make_node("Concat", ["s", "b"], ["y"], axis=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [a.size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [a.size + b.size])],
                              [numpy_helper.from_array(a, "a"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    path = tmp_path / "m.onnx"
    write_model(str(path), model)  # 2 MiB of large values: below FILE_BACKED_BYTES, one file
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    write_model(str(path), model, beside=True)
    offsets = [int(e.value) for t in onnx.load(str(path), load_external_data=False).graph.initializer
               for e in t.external_data if e.key == "offset"]
    assert offsets == [0, 4096 * -(-a.nbytes // 4096)]
    assert _read(path) == onnx.ModelProto.FromString(model_bytes(model))
    x = rng.standard_normal(a.size).astype(np.float32)
    np.testing.assert_array_equal(session(str(path)).run(None, {"x": x})[0], np.concatenate([x + a, b]))


def test_a_problem_loaded_as_data_is_the_problem_of_the_proto():
    """load_problem(as_data=True) gives the optimised model as its session data (what a replay takes), the
    proto let go: the graph read off its placeholders is the proto's, and a replay of it computes the same."""
    model, problem = load_problem("mlp", {"layers": 3, "width": 640}, "cpu", optimization="all")
    data, same = load_problem("mlp", {"layers": 3, "width": 640}, "cpu", optimization="all", as_data=True)
    assert isinstance(data, optimize.ModelBytes) and len(data.externals) == 3
    assert same.graph == problem.graph
    schedule = simulate(same, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(same.graph.topological_order)})
    assert replay(data, same, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] == 0.0


@pytest.mark.parametrize("name,params,level", [
    ("randwire", {"nodes": 6, "channels": 16}, "all"),  # NCHWc convolutions and reorders
    ("inception", {"blocks": 1, "channels": 16}, "all"),
    ("bert", {"layers": 1}, "extended"),  # fused MatMul/Gelu/LayerNorm contrib ops
    ("gpt2", {"layers": 1}, "all"),
])
def test_optimised_graph_cuts_and_replays_exactly(name, params, level):
    model, graph = load_graph(name, params, optimization=level)
    assert graph.unknown_shape_tensors == ()  # shapes come from a run, contrib ops included
    problem = build_problem(name, params, "cpu", optimization=level)
    assert set(problem.tasks) == {n.name for n in model.graph.node}
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert len(result["segments"]) > 1
    assert result["max_abs_diff"] <= 1e-4


def test_fused_ops_keep_their_family_for_costs_and_support():
    _, graph = load_graph("bert", {"layers": 1}, optimization="extended")
    ops = {t.op_type for t in graph.tasks}
    fused = ops & {"FusedMatMul", "SkipLayerNormalization", "BiasGelu", "FastGelu", "FusedGemm"}
    assert fused, ops
    problem = Problem.from_graph(graph, load_platform("default"))
    for t in graph.tasks:
        if t.op_type in fused:
            assert "pim" in problem.allowed(t.name)  # pim lists MatMul, LayerNormalization, Gelu
        if t.op_type in ("FusedMatMul", "FusedGemm"):
            assert t.flops > 0


# ------------------------------------------------------------------ control flow


def _if_model() -> onnx.ModelProto:
    """``y = If(c) then a + 1 else a * 2`` where ``a = Relu(x)`` is read only inside the branches."""
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    then = helper.make_graph([helper.make_node("Add", ["a", "one"], ["t"], name="then_add")], "then", [],
                             [helper.make_tensor_value_info("t", F, [4])])
    other = helper.make_graph([helper.make_node("Mul", ["a", "two"], ["e"], name="else_mul")], "else", [],
                              [helper.make_tensor_value_info("e", F, [4])])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"], name="greater"),
        helper.make_node("If", ["c"], ["y0"], name="if", then_branch=then, else_branch=other),
        helper.make_node("Neg", ["y0"], ["y"], name="neg"),
    ]
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    g = helper.make_graph(nodes, "if_model", [helper.make_tensor_value_info("x", F, [4])],
                          [helper.make_tensor_value_info("y", F, [4])], [zero, one, two])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m


def _loop_model() -> onnx.ModelProto:
    """A Loop (3 trips) whose body adds an outer initializer ``w`` and an outer node output ``b``."""
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    trips = numpy_helper.from_array(np.array(3, dtype=np.int64), "trips")
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "w"], ["acc_w"], name="body_add_w"),
         helper.make_node("Add", ["acc_w", "b"], ["acc_out"], name="body_add_b"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", F, [4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", F, [4])])
    true = numpy_helper.from_array(np.array(True), "true")
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["b"], name="sigmoid"),
        helper.make_node("Abs", ["x"], ["start"], name="abs"),
        helper.make_node("Loop", ["trips", "true", "start"], ["acc"], name="loop", body=body),
        helper.make_node("Tanh", ["acc"], ["y"], name="tanh"),
    ]
    g = helper.make_graph(nodes, "loop_model", [helper.make_tensor_value_info("x", F, [4])],
                          [helper.make_tensor_value_info("y", F, [4])], [w, trips, true])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m


def test_subgraph_reads_are_dependencies():
    m = _if_model()
    if_node = next(n for n in m.graph.node if n.op_type == "If")
    assert sorted(subgraph_reads(if_node)) == ["a", "one", "two"]
    graph = task_graph_from_onnx(m)
    assert ("relu", "if") in {(e.src, e.dst) for e in graph.edges}
    loop = task_graph_from_onnx(_loop_model())
    assert ("sigmoid", "loop") in {(e.src, e.dst) for e in loop.edges}


@pytest.mark.parametrize("build", [_if_model, _loop_model])
def test_control_flow_replays_on_one_device_and_split(build, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(build(), str(path))
    model, _ = load_graph(str(path))
    problem = build_problem(str(path), platform="cpu")
    for placement in ({t: "cpu0" for t in problem.tasks}, alternate(problem, ("cpu0", "cpu1"))):
        schedule = simulate(problem, placement)
        assert validate(problem, schedule) == []
        assert replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-6
    # an exact solver must not start the If before the value its branches read exists
    best = get_solver("cpsat")(problem, time_limit=5)
    assert validate(problem, best) == []
    assert replay(model, problem, best, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-6


def test_a_branch_ort_refuses_at_fixed_sizes_keeps_the_inputs_as_declared(tmp_path):
    """ORT type-checks every branch against the declared sizes: with the user's values given, the model keeps its
    inputs as declared (a scalar one too), segments holding the If declare ranks only, and a cut between the
    producer and the If replays; without values, one line says what to do."""
    from conftest import branch_refusing_fixed_sizes

    path = tmp_path / "m.onnx"
    onnx.save(branch_refusing_fixed_sizes(), str(path))
    feeds = {"x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8), "flag": np.array(True)}
    with pytest.raises(ModelError, match="cannot load.*LSTM.*as declared it loads: give the inputs' values"):
        load_original(str(path), input_shapes={"x": [1, 8], "flag": []})
    original, _ = load_original(str(path), inputs=feeds)
    assert [d.dim_param for d in original.graph.input[0].type.tensor_type.shape.dim] == ["n", "len"]
    for level in ("none", "all"):
        model, problem = load_problem(str(path), platform="cpu", optimization=level, inputs=feeds)
        split = {t: "cpu1" if t in ("if", "neg") else "cpu0" for t in problem.tasks}
        for placement in ({t: "cpu0" for t in problem.tasks}, split):
            r = replay(model, problem, simulate(problem, placement), repeats=1, warmup=0, baselines=False,
                       feeds=feeds)
            assert r["max_abs_diff"] == 0.0
    assert run_model(original, feeds)[0] == pytest.approx(-np.maximum(feeds["x"], 0).sum())


def _zipmap_classifier() -> onnx.ModelProto:
    """A classifier as scikit-learn's converter writes one: a label and the probabilities as ZipMap's sequence
    of maps from class to probability (ai.onnx.ml), which ORT gives as a list of dicts."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["logits"], name="matmul"),
             helper.make_node("Softmax", ["logits"], ["probs"], name="softmax"),
             helper.make_node("ArgMax", ["probs"], ["label"], name="argmax", axis=1, keepdims=0),
             helper.make_node("ZipMap", ["probs"], ["probability"], name="zipmap", domain="ai.onnx.ml",
                              classlabels_int64s=[0, 1, 2])]
    prob = helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(
        F, [])))
    g = helper.make_graph(nodes, "zipmap", [helper.make_tensor_value_info("x", F, [2, 4])],
                          [helper.make_tensor_value_info("label", TensorProto.INT64, [2]),
                           helper.make_value_info("probability", prob)], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = IR_VERSION
    return m


def test_a_sequence_of_maps_output_cuts_replays_and_exports(tmp_path):
    """ZipMap's output (a sequence of maps) is typed as the model declares it, so a segment can return it: cut
    over two cores, it replays with the whole model's probabilities, and the exported runner gives them too
    (saved without pickles: ``probability[0]{keys}``, ``probability[0]{values}``, ...)."""
    path = tmp_path / "zipmap.onnx"
    onnx.save(_zipmap_classifier(), str(path))
    model, problem = load_problem(str(path), platform="cpu")
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert result["max_abs_diff"] == 0.0 and len(result["segments"]) >= 3
    export_placement(model, problem, schedule, str(tmp_path / "deploy"), "none")
    feeds = {"x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)}
    np.savez(tmp_path / "in.npz", **feeds)
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "deploy" / "runner.py"), "--inputs",
                           str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"), "--repeats", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["probability"], feeds)[0]
    with np.load(tmp_path / "out.npz", allow_pickle=False) as data:  # each map by its keys and values
        got = grouped({k: data[k] for k in data.files})
    assert got["probability"] == expected and len(expected) == 2


def test_model_with_external_data_replays(tmp_path):
    original, _ = load_original("mlp", {"layers": 3, "width": 128})
    path = tmp_path / "ext.onnx"
    onnx.save(original, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").stat().st_size > 128 * 128 * 4
    model, _ = load_graph(str(path), optimization="all", cache_dir=str(tmp_path / "cache"))
    problem = build_problem(str(path), platform="cpu", optimization="all")
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    assert replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-5


@pytest.mark.parametrize("dynamo", [False, True])
def test_pytorch_exported_model_replays_like_torch(tmp_path, dynamo):
    """A model from PyTorch's exporters (TorchScript-based, and the dynamo one, torch 2.13's default, which
    writes opset 18+ through onnxscript), optimised at ``all``, cut by a random placement over two cores:
    replayed outputs equal the whole model's and torch's.  Runs where the ``torch`` extra is installed."""
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.bn = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.c2, self.c3 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 1)
            self.fc = torch.nn.Linear(16, 10)

        def forward(self, x):
            y = torch.relu(self.bn(self.c1(x)))
            return self.fc(torch.cat([self.c2(y), torch.sigmoid(self.c3(y))], 1).mean((2, 3)))

    torch.manual_seed(0)
    net, x = Net().eval(), torch.randn(1, 3, 16, 16)
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x,), str(path), dynamo=dynamo, input_names=["x"], output_names=["y"])
    model, problem = load_problem(str(path), platform="cpu", optimization="all",
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles")))
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    assert len({schedule.placement[t] for t in problem.tasks}) == 2
    assert replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-5
    with torch.no_grad():
        expected = net(x).numpy()
    sess = ort.InferenceSession(model_bytes(model), providers=["CPUExecutionProvider"])
    assert np.max(np.abs(sess.run(None, {"x": x.numpy()})[0] - expected)) <= 1e-4


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet", "inception_v1"])
def test_onnx_test_zoo_caffe2_exports_replay_against_plain_ort(name):
    """The ONNX package's own test zoo (Caffe2 exports at ImageNet size, IR 3, every weight a
    ``ConstantOfShape``): optimised, cut by a random placement over platform cpu, replayed with the whole
    model's outputs, and timed beside plain ORT on the user's model (which once refused the replay's inputs)."""
    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")
    if not os.path.isfile(path):
        pytest.skip(f"this onnx package ships no {path}")
    model, graph = load_graph(path, optimization="all")
    problem = build_problem(path, platform="cpu", optimization="all")
    rng = np.random.default_rng(0)
    schedule = simulate(problem, {t: str(rng.choice(problem.allowed(t))) for t in problem.tasks})
    result = replay(model, problem, schedule, repeats=1, warmup=0, original=load_original(path)[0])
    assert len(result["segments"]) > 10 and result["max_abs_diff"] <= 1e-4 and result["baselines"]


def _replay_alternating(path: str, level: str = "none") -> dict:
    """Cut the model at ``path`` by :func:`alternate` placement over cpu0 and cpu1 and replay it once."""
    model, problem = load_problem(path, platform="cpu", costs="model", optimization=level)
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    return replay(model, problem, schedule, repeats=1, warmup=0, original=load_original(path)[0])


def test_ir3_model_with_initializers_listed_as_inputs_cuts(tmp_path):
    """IR 3 (exports before 2019) lists every initializer as a graph input too; a segment built at IR 3
    without those listings was refused by the checker ("in initializer but not in graph input")."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), k) for k in ("w1", "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")]
    g = helper.make_graph(nodes, "ir3", [helper.make_tensor_value_info("x", F, [2, 4])]
                          + [helper.make_tensor_value_info(k, F, [4, 4]) for k in ("w1", "w2")],
                          [helper.make_tensor_value_info("y", F, [2, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 8)])
    m.ir_version = 3
    onnx.checker.check_model(m)
    path = tmp_path / "ir3.onnx"
    onnx.save(m, str(path))
    result = _replay_alternating(str(path))
    assert len(result["segments"]) == 3 and result["max_abs_diff"] <= 1e-6


def test_sequences_and_strings_cross_segments(sequence_model):
    """Sequence values (one built, one started empty) and string tensors are cut like tensors: their types
    come from the run (an empty sequence's from ONNX inference), and the outputs compare element by element."""
    result = _replay_alternating(sequence_model)
    crossing = {x for seg in result["segments"] for x in seg["inputs"]}
    assert {"seq", "empty", "same"} <= crossing and result["max_abs_diff"] == 0.0


@pytest.mark.parametrize("level", ["none", "all"])
def test_empty_input_tensors_cut_and_replay(level, tmp_path):
    """A 0-size input is a tensor like any other: a key-value cache of length 0 concatenated with the new
    step, fixed by an input shape, and the ONNX backend's ``test_sequence_model8`` (an empty tensor split
    into a sequence) on its own test inputs. Both replay cut by an alternating placement."""
    g = helper.make_graph([helper.make_node("Concat", ["past", "x"], ["kv"], axis=1, name="cat"),
                           helper.make_node("Relu", ["kv"], ["r"], name="relu"),
                           helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1], name="tr"),
                           helper.make_node("MatMul", ["r", "t"], ["y"], name="mm")], "kv",
                          [helper.make_tensor_value_info("past", F, [1, "p", 4]),
                           helper.make_tensor_value_info("x", F, [1, 3, 4])],
                          [helper.make_tensor_value_info("y", F, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    onnx.save(m, str(tmp_path / "kv.onnx"))
    path, shapes = str(tmp_path / "kv.onnx"), {"past": [1, 0, 4]}
    model, problem = load_problem(path, platform="cpu", costs="model", optimization=level, input_shapes=shapes)
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    result = replay(model, problem, schedule, repeats=1, warmup=0, original=load_original(path, None, shapes)[0])
    assert len(result["segments"]) >= 2 and result["max_abs_diff"] == 0.0
    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "simple", "test_sequence_model8")
    if not os.path.isdir(folder):
        pytest.skip(f"this onnx package ships no {folder}")
    tensors = [onnx.load_tensor(os.path.join(folder, "test_data_set_0", f"input_{i}.pb")) for i in range(2)]
    feeds = {t.name or name: numpy_helper.to_array(t) for t, name in zip(tensors, ("X", "Splits"))}
    assert feeds["X"].shape == (0,)
    model, problem = load_problem(os.path.join(folder, "model.onnx"), platform="cpu", costs="model",
                                  optimization=level, inputs=feeds)
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False, feeds=feeds)
    assert len(result["segments"]) == 2 and result["max_abs_diff"] == 0.0


def test_quantized_and_half_precision_models_cut(tmp_path):
    """int8 (ORT's dynamic quantisation: ConvInteger, MatMulInteger, DynamicQuantizeLinear) and float16 models.
    ORT runs a float16 MatMul in float32 (it inserts casts), so the whole model keeps float32 between ops
    where a cut rounds to float16: the check allows the output's rounding, and no more."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    original, _ = load_original("inception", {"blocks": 1, "channels": 16})
    onnx.save(original, str(tmp_path / "f32.onnx"))
    quantize_dynamic(str(tmp_path / "f32.onnx"), str(tmp_path / "int8.onnx"), weight_type=QuantType.QInt8)
    half = helper.make_tensor_value_info
    w = numpy_helper.from_array(np.random.default_rng(0).random((8, 8)).astype(np.float16), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
                           helper.make_node("Relu", ["h"], ["r"], name="relu"),
                           helper.make_node("Sigmoid", ["h"], ["s"], name="sig"),
                           helper.make_node("Add", ["r", "s"], ["y"], name="add")], "f16",
                          [half("x", TensorProto.FLOAT16, [4, 8])], [half("y", TensorProto.FLOAT16, [4, 8])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    onnx.save(m, str(tmp_path / "f16.onnx"))
    int8 = _replay_alternating(str(tmp_path / "int8.onnx"))
    assert int8["max_abs_diff"] <= 1e-4 and len(int8["segments"]) > 10
    f16 = _replay_alternating(str(tmp_path / "f16.onnx"))
    assert 0 < f16["max_abs_diff"] < 0.01  # float16 roundings, which a check at 1e-4 alone refused
    ref = {"y": np.array([1.0, 2.0], np.float16)}
    assert checked_diff(ref, {"y": np.array([1.0, 2.001953125], np.float16)}, 1e-4, "replayed") > 1e-4
    with pytest.raises(ReplayError, match="differ from the whole model's by 0.0156 at 'y'"):
        checked_diff(ref, {"y": np.array([1.0, 2.015625], np.float16)}, 1e-4, "replayed")
    with pytest.raises(ReplayError, match="by 0.001 at 'z'"):
        checked_diff({"z": np.array([2.0], np.float32)}, {"z": np.array([2.001], np.float32)}, 1e-4, "replayed")


def test_ort_internal_op_in_the_onnx_domain_cuts(tmp_path):
    """ORT fuses an RMSNorm into SimplifiedLayerNormalization in the ONNX domain, an op the ONNX checker does
    not know (PaddleOCR's PP-OCRv4 recogniser failed so): its segments are still cut and replayed exactly."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
             numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "g")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Pow", ["h", "two"], ["p"], name="pow"),
             helper.make_node("ReduceMean", ["p"], ["m"], name="mean", axes=[-1], keepdims=1),
             helper.make_node("Add", ["m", "eps"], ["a"], name="add"),
             helper.make_node("Sqrt", ["a"], ["r"], name="sqrt"),
             helper.make_node("Div", ["h", "r"], ["n"], name="div"),
             helper.make_node("Mul", ["n", "g"], ["s"], name="scale"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "rms", [helper.make_tensor_value_info("x", F, [4, 16])],
                          [helper.make_tensor_value_info("y", F, [4, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = IR_VERSION
    path = tmp_path / "rms.onnx"
    onnx.save(m, str(path))
    model, problem = load_problem(str(path), platform="cpu", optimization="extended",
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles")))
    assert ("SimplifiedLayerNormalization", "") in {(n.op_type, n.domain) for n in model.graph.node}
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    assert replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-5


def test_folded_initializer_listed_as_input_does_not_become_an_input(tmp_path):
    """Before IR 4 initializers are listed as graph inputs too (the ONNX test zoo's Caffe2 exports); when ORT
    merges two equal ``ConstantOfShape`` and folds them, the one it drops must not stay behind as an input,
    or plain ORT on the user's model refuses the replay's inputs."""
    fill = numpy_helper.from_array(np.array([0.5], np.float32))
    nodes = [helper.make_node("ConstantOfShape", [f"{k}__SHAPE"], [k], name=f"fill_{k}", value=fill) for k in "ab"]
    nodes += [helper.make_node("Add", ["x", "a"], ["s"], name="add"),
              helper.make_node("Mul", ["s", "b"], ["y"], name="mul")]
    g = helper.make_graph(nodes, "caffe2", [helper.make_tensor_value_info("x", F, [2, 3])]
                          + [helper.make_tensor_value_info(f"{k}__SHAPE", TensorProto.INT64, [2]) for k in "ab"],
                          [helper.make_tensor_value_info("y", F, [2, 3])],
                          [numpy_helper.from_array(np.array([2, 3], np.int64), f"{k}__SHAPE") for k in "ab"])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)])
    m.ir_version = 3
    path = tmp_path / "caffe2.onnx"
    onnx.save(m, str(path))
    model, problem = load_problem(str(path), platform="cpu", optimization="basic",
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles")))
    assert "ConstantOfShape" not in {n.op_type for n in model.graph.node}  # folded
    inits = {i.name for i in model.graph.initializer}
    assert [i.name for i in model.graph.input if i.name not in inits] == ["x"]
    schedule = simulate(problem, {t: "cpu0" for t in problem.tasks})
    result = replay(model, problem, schedule, repeats=1, warmup=0, original=m)
    assert result["max_abs_diff"] <= 1e-6 and result["baselines"]


def test_shapeless_contrib_model_cuts(tmp_path):
    """A model as exporters ship it: a contrib op, no value_info; ONNX shape inference leaves tensors unknown."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w2")
    nodes = [helper.make_node("FusedMatMul", ["x", "w1"], ["h"], name="fmm", domain="com.microsoft", alpha=0.5),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Sigmoid", ["h"], ["s"], name="sig"),
             helper.make_node("MatMul", ["r", "w2"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "s"], ["y"], name="add")]
    g = helper.make_graph(nodes, "shapeless", [helper.make_tensor_value_info("x", F, [2, 8])],
                          [helper.make_tensor_value_info("y", F, None)], [w1, w2])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = IR_VERSION
    assert task_graph_from_onnx(m).unknown_shape_tensors  # what inference alone gives
    types = observed_types(m)
    assert list(types["h"].type.tensor_type.shape.dim) and types["y"].type.tensor_type.elem_type == F
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    model, graph = load_graph(str(path))
    assert graph.unknown_shape_tensors == ()
    problem = build_problem(str(path), platform="cpu")
    schedule = simulate(problem, {"fmm": "cpu0", "relu": "cpu0", "sig": "cpu1", "mm": "cpu0", "add": "cpu1"})
    assert replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-6


@pytest.mark.parametrize("op, domain, opset, says", [
    ("Frobnicate", "com.example", 17, "Frobnicate"),  # a custom op without its library
    ("Frobnicate", "", 17, "No Op registered for Frobnicate with domain_version of 17"),
    ("Relu", "", 99, "Opset 99 is under development")])
def test_model_ort_cannot_load_is_refused_in_one_line(op, domain, opset, says, tmp_path, capsys):
    """One line that names the op or the opset, and neither the temporary file ORT was given nor ORT's own
    source file and C++ signature, which some of its errors begin with."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node(op, ["r"], ["y"], name="op",
                                                                                  domain=domain)]
    g = helper.make_graph(nodes, "custom", [helper.make_tensor_value_info("x", F, [4])],
                          [helper.make_tensor_value_info("y", F, [4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]
                          + ([helper.make_opsetid(domain, 1)] if domain else []))
    m.ir_version = IR_VERSION
    path = tmp_path / "custom.onnx"
    onnx.save(m, str(path))
    code = main(["problem", str(path), "-o", str(tmp_path / "p.json")])
    out, err = capsys.readouterr()
    assert code == 2 and not (tmp_path / "p.json").exists()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert says in err and "hetsched-opt" not in err and "onnxruntime_src" not in err and "Load model" not in err


@pytest.mark.parametrize("elem", [TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2,
                                  TensorProto.FLOAT8E8M0, TensorProto.INT4, TensorProto.UINT4, TensorProto.INT2,
                                  TensorProto.UINT2])
@pytest.mark.parametrize("count", [0, 1, 7, 8])
def test_values_numpy_has_no_dtype_for_read_back_exactly(elem, count):
    """A model output of a type ORT's ``run`` refuses is read through ``session_call`` and :func:`as_array`
    as the ``ml_dtypes`` array of the same values (exact in every type): odd counts leave part of a byte of
    int4 and int2 unused, negative values are sign-extended, an empty tensor has no data at all."""
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    width = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.INT2: 2, TensorProto.UINT2: 2}.get(elem, 4)
    signed = elem not in (TensorProto.UINT4, TensorProto.UINT2)
    values = (np.arange(count) % (1 << width) - ((1 << (width - 1)) if signed else 0)).astype(np.float32)
    if elem == TensorProto.FLOAT8E8M0:  # powers of two only
        values = np.exp2(np.arange(count) % 8 - 4).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=elem)], "cast",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [count])],
                              [helper.make_tensor_value_info("y", elem, [count])])
    sess = session(model_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)], ir_version=11)))
    got, = session_call(sess)({"x": values})
    assert isinstance(got, ort.OrtValue)
    read = as_array(got)
    assert read.dtype == dtype and read.shape == (count,)
    assert np.array_equal(read.astype(np.float32), values.astype(dtype).astype(np.float32))


@pytest.mark.parametrize("named", [True, False])
def test_constants_lifted_while_copied_give_the_bytes_of_the_lifted_model(named):
    """Large weights in main-graph ``Constant`` nodes (no control flow) are lifted while the model is copied
    for its bytes, not copied with their nodes and lifted after: the same bytes, values and digest as the
    model lifted first (with unnamed nodes, whose names count the Constants' places, the copy lifts after)."""
    rng = np.random.default_rng(0)
    nodes, x = [], "x"
    for k in range(2):
        weight = numpy_helper.from_array(rng.standard_normal((512, 512), dtype=np.float32), f"t{k}")
        nodes += [helper.make_node("Constant", [], [f"w{k}"], value=weight, name=f"c{k}" if named else ""),
                  helper.make_node("MatMul", [x, f"w{k}"], [f"m{k}"], name=f"m{k}" if named else "")]
        x = f"m{k}"
    graph = helper.make_graph(nodes, "constants", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 512])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 512])],
                              [numpy_helper.from_array(np.ones(4, np.float32), "small")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    lifted = onnx.ModelProto()
    lifted.CopyFrom(model)
    name_nodes_in_place(lifted)  # as the bytes name them, before the Constants leave their places
    assert lift_large_values(lifted) == 2
    ours, theirs = session_bytes(model), session_bytes(lifted)
    assert bytes(ours) == bytes(theirs) and [n for n, _ in ours.externals] == ["w0", "w1"]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(ours.externals, theirs.externals))
    assert model_digest(model) == model_digest(lifted)
    assert len(model.graph.node) == 4  # the caller's model is left as it was


def _expanded_ops_model() -> onnx.ModelProto:
    """Mish and HardSwish (ONNX ops with function bodies that ORT 1.32 has no kernel for) and two calls of a
    model-local function (``local.Swish``), between float32 MatMuls."""
    n, f = helper.make_node, TensorProto.FLOAT
    swish = helper.make_function("local", "Swish", ["a"], ["b"],
                                 [n("Sigmoid", ["a"], ["s"]), n("Mul", ["a", "s"], ["b"])],
                                 opset_imports=[helper.make_opsetid("", 18)])
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32), "w")
    nodes = [n("MatMul", ["x", "w"], ["h"], name="mm"), n("Mish", ["h"], ["m"], name="mish"),
             n("HardSwish", ["h"], ["hs"], name="hardswish"), n("Swish", ["m"], ["s1"], domain="local", name="swish1"),
             n("Swish", ["hs"], ["s2"], domain="local", name="swish2"), n("Add", ["s1", "s2"], ["a"], name="add"),
             n("MatMul", ["a", "w"], ["y"], name="mm_out")]
    graph = helper.make_graph(nodes, "expanded", [helper.make_tensor_value_info("x", f, [4, 16])],
                              [helper.make_tensor_value_info("y", f, [4, 16])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)],
                             functions=[swish])


def test_nodes_ort_expands_even_unoptimised_become_the_tasks(tmp_path):
    """ORT runs a local function's calls and an op without a kernel (Mish, HardSwish) through their bodies even
    at level ``none``, and its profile times those nodes: the task graph at level ``none`` is then the model as
    ORT writes it (profiling stopped at "trace names nodes not in the model" before).  Profiled, cut over
    both cores, replayed with the whole model's outputs; a model without such nodes stays as it is."""
    path = tmp_path / "expanded.onnx"
    onnx.save(_expanded_ops_model(), str(path))
    model, problem = load_problem(str(path), platform="cpu", costs="profile", optimization="none",
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles"), repeats=1, warmup=0))
    ops = {node.op_type for node in model.graph.node}
    assert not model.functions and not ops & {"Mish", "HardSwish", "Swish"} and {"Softplus", "Tanh", "Sigmoid"} <= ops
    assert set(problem.tasks) == {node.name for node in model.graph.node}
    schedule = simulate(problem, alternate(problem, ("cpu0", "cpu1")))
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert len(result["segments"]) > 4 and result["max_abs_diff"] <= 1e-5
    plain = _expanded_ops_model()
    del plain.functions[:]
    del plain.graph.node[1:6]
    plain.graph.node[1].input[0] = "h"
    assert [node.name for node in optimize_model(plain, "none").graph.node] == ["mm", "mm_out"]


def _sparse_initializer_model() -> onnx.ModelProto:
    """Two MatMuls whose weights are sparse initializers, one by flat positions, one by coordinates; the
    second inside an If branch."""
    n, f = helper.make_node, TensorProto.FLOAT
    flat = helper.make_sparse_tensor(numpy_helper.from_array(np.float32([1, 2, 3]), "w"),
                                     numpy_helper.from_array(np.int64([0, 5, 11])), [3, 4])
    coords = helper.make_sparse_tensor(numpy_helper.from_array(np.float32([4, -5]), "v"),
                                       numpy_helper.from_array(np.int64([[0, 1], [3, 2]])), [4, 4])
    branch = helper.make_graph([n("MatMul", ["r", "v"], ["a"], name="mm_v")], "then", [],
                               [helper.make_tensor_value_info("a", f, [2, 4])])
    branch.sparse_initializer.extend([coords])
    other = helper.make_graph([n("Neg", ["r"], ["b"], name="neg_r")], "else", [],
                              [helper.make_tensor_value_info("b", f, [2, 4])])
    graph = helper.make_graph(
        [n("MatMul", ["x", "w"], ["h"], name="mm_w"), n("Relu", ["h"], ["r"], name="relu"),
         n("Neg", ["h"], ["m"], name="neg"), n("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"),
         n("Greater", ["s", "low"], ["c"], name="gt"),  # always true: the branch with the coordinates runs
         n("If", ["c"], ["i"], then_branch=branch, else_branch=other, name="if"),
         n("Add", ["i", "m"], ["y"], name="add")], "sparse", [helper.make_tensor_value_info("x", f, [2, 3])],
        [helper.make_tensor_value_info("y", f, [2, 4])], [numpy_helper.from_array(np.float32(-1e9), "low")])
    graph.sparse_initializer.extend([flat])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _optionals_model() -> onnx.ModelProto:
    """Optionals as values between nodes: one holding a tensor, an empty one, one holding a sequence."""
    n, f = helper.make_node, TensorProto.FLOAT
    nodes = [n("Optional", ["x"], ["o"], name="opt"), n("OptionalHasElement", ["o"], ["has"], name="has"),
             n("OptionalGetElement", ["o"], ["e"], name="get"), n("Relu", ["e"], ["y"], name="relu"),
             n("Optional", [], ["none"], type=helper.make_tensor_type_proto(f, None), name="empty"),
             n("OptionalHasElement", ["none"], ["has_none"], name="has_empty"),
             n("SequenceConstruct", ["x", "y"], ["sq"], name="seq"), n("Optional", ["sq"], ["osq"], name="opt_seq"),
             n("OptionalGetElement", ["osq"], ["sq2"], name="get_seq"),
             n("SequenceAt", ["sq2", "one"], ["z"], name="at")]
    graph = helper.make_graph(nodes, "optionals", [helper.make_tensor_value_info("x", f, [2, 3])],
                              [helper.make_tensor_value_info("z", f, [2, 3]),
                               helper.make_tensor_value_info("has", TensorProto.BOOL, []),
                               helper.make_tensor_value_info("has_none", TensorProto.BOOL, [])],
                              [numpy_helper.from_array(np.array(1, np.int64), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("level", ["none", "all"])
@pytest.mark.parametrize("build", [_sparse_initializer_model, _optionals_model])
def test_sparse_initializers_and_optionals_cut(build, level, tmp_path):
    """Sparse initializers (ORT makes them dense; the task graph said nothing produced their tensors) and
    optional values between segments (ORT gives an optional's element, or None, which typed the boundary as a
    tensor that ORT then refused): profiled, cut over both cores either way round, the whole model's outputs."""
    path = tmp_path / "model.onnx"
    onnx.save(build(), str(path))
    x = {"x": np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)}
    as_given, as_loaded = (ort.InferenceSession(m).run(None, x) for m in (str(path), load_original(str(path))[0]
                                                                       .SerializeToString()))
    assert all(np.array_equal(a, b) for a, b in zip(as_given, as_loaded))  # ORT's densifying and ours agree
    model, problem = load_problem(str(path), platform="cpu", costs="profile", optimization=level,
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles"), repeats=1, warmup=0))
    for devices in (("cpu0", "cpu1"), ("cpu1", "cpu0")):
        schedule = simulate(problem, alternate(problem, devices))
        result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
        assert len(result["segments"]) >= 3 and result["max_abs_diff"] == 0.0


def test_sessions_made_only_to_load_or_write_a_model_pack_no_weights(monkeypatch, tmp_path):
    """The session that writes the optimised model and the one that checks that ORT loads a model never run:
    they are made with weight packing off (half the memory of the optimisation on a MatMul model), the
    sessions that run keep it."""
    made = []
    real = ort.InferenceSession

    def spy(data, so, **kwargs):
        try:
            made.append(so.get_session_config_entry("session.disable_prepacking"))
        except Exception:  # not set (ORT raises its own type)
            made.append(None)
        return real(data, so, **kwargs)

    model, _ = load_original("mlp")
    monkeypatch.setattr(ort, "InferenceSession", spy)
    optimize_model(model, "all")
    assert made == ["1"]
    assert ort_refusal(model, "all") is None and made == ["1", "1"]
    session(model_bytes(model), "all")
    assert made == ["1", "1", None]


def test_large_values_live_in_one_file_that_sessions_map_and_segments_share(tmp_path, monkeypatch):
    """From FILE_BACKED_BYTES of large values on, session_data moves them into a file of their own (read-only
    memory-map views): sessions map it instead of copying them, a cut's segments share it, the outputs
    stay the model's, an export writes the values beside each segment, values read through (hashed,
    written) and released from the map read back the same, and the file goes with the last view of it."""
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 1 << 20)
    model, _ = load_original("mlp", {"width": 1024, "layers": 3})  # built in memory
    problem = build_problem("mlp", {"width": 1024, "layers": 3}, platform="cpu",
                            profile=ProfileOptions(folder=str(tmp_path / "profiles")))
    data = session_data(model)
    values = dict(data.externals)
    assert len(values) == 3 and all(isinstance(v, np.memmap) and not v.flags.writeable for v in values.values())
    folder = os.path.dirname(values["l0/fc_weight"].filename)
    assert os.listdir(folder) == ["values.bin"] and model_digest(data) == model_digest(model)
    weight = next(t for t in model.graph.initializer if t.name == "l0/fc_weight")
    assert np.array_equal(values["l0/fc_weight"], numpy_helper.to_array(weight))  # read back after the digest
    plain = session(session_bytes(model))
    feeds = random_inputs(plain)
    assert np.array_equal(session_call(session(data))(feeds)[0], session_call(plain)(feeds)[0])
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(problem.graph.topological_order)})
    prepared = prepare_replay(data, problem, schedule)
    shared = [v for p in prepared.parts for _, v in p.data.externals]
    assert len(prepared.parts) >= 3 and len(shared) == 3
    assert all(np.shares_memory(v, values[n]) for p in prepared.parts for n, v in p.data.externals)
    result = replay(data, problem, schedule, repeats=1, warmup=0, baselines=False, prepared=prepared)
    assert result["max_abs_diff"] <= 1e-4 and os.listdir(folder) == ["values.bin"]  # the model files are gone
    export_placement(data, problem, schedule, str(tmp_path / "deploy"))
    written = sorted((tmp_path / "deploy").glob("*.onnx.data"))  # values beside each segment, at pages: ORT maps
    assert len(written) == 3  # them instead of parsing and copying them
    for path in written:
        skeleton = onnx.load(str(path)[:-len(".data")], load_external_data=False)
        assert all(int(e.value) % 4096 == 0 for t in skeleton.graph.initializer for e in t.external_data
                   if e.key == "offset")
    np.savez(tmp_path / "in.npz", **feeds)
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "deploy" / "runner.py"), "--inputs",
                           str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"), "--repeats", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as got:
        assert np.abs(got[model.graph.output[0].name] - session_call(plain)(feeds)[0]).max() <= 1e-4
    del data, values, prepared, shared, result, plain
    assert not os.path.exists(folder)


def test_large_values_stay_in_memory_when_the_temporary_disk_refuses_them(monkeypatch, tmp_path):
    """A temporary disk that cannot take the values' file (full, read-only) leaves them in memory: the
    session is made from memory as for a small model, and nothing is left behind."""
    monkeypatch.setattr(optimize, "FILE_BACKED_BYTES", 1 << 20)
    monkeypatch.setattr(optimize.tempfile, "tempdir", str(tmp_path))

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    model, _ = load_original("mlp", {"width": 1024, "layers": 2})  # built in memory
    with monkeypatch.context() as m:
        m.setattr(optimize.np, "memmap", full)
        data = session_data(model)
    assert all(not isinstance(v, np.memmap) for _, v in data.externals) and len(data.externals) == 2
    assert list(tmp_path.iterdir()) == []
    plain = session(session_bytes(model))
    feeds = random_inputs(plain)
    assert np.array_equal(session_call(session(data))(feeds)[0], session_call(plain)(feeds)[0])


def _resident_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the resident size from /proc")
def test_sessions_given_a_shared_value_hold_no_copy_of_it():
    """Four sessions given one 32 MiB weight (:func:`scheduler.executor.open_session`) hold no copy of it
    and no placeholder of its size (zeros in each model held 32 MiB more per session), and compute with it."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(2048, 4096)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2048])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])],
                              [numpy_helper.from_array(w, "w")])
    data = session_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION))
    shared = dict(data.externals)
    x = rng.normal(size=(1, 2048)).astype(np.float32)
    before = _resident_mb()
    sessions = [session(data, shared=shared) for _ in range(4)]
    grown = _resident_mb() - before
    assert grown < w.nbytes / 2**20, f"4 sessions grew the process by {grown:.0f} MB"
    for sess in sessions:
        assert float(np.max(np.abs(sess.run(None, {"x": x})[0] - x @ w))) < 1e-3
