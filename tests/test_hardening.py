"""Hostile input and faults: one line `hetsched: error: ...`, exit 2, no traceback, nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import onnx
import pytest

from conftest import branch_refusing_fixed_sizes
from scheduler.bounds import Bound
from scheduler.cli import main
from scheduler.errors import HetschedError
from scheduler.fileio import move_file
from scheduler.generate import random_problem
from scheduler.pipeline import certify_schedules
from scheduler.problem import read_problem
from scheduler.schedule import write_schedule
from scheduler.semantics import simulate
from scheduler.zoo import build

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)
) + "name: *i\n"


def _problem_variants(tmp_path) -> dict[str, tuple[str, bytes]]:
    """A valid problem file and variants with costs, links or tasks out of range."""
    assert main(["problem", "mlp", "-o", str(tmp_path / "p.json")]) == 0
    base = json.loads((tmp_path / "p.json").read_text())

    def variant(change) -> bytes:
        data = json.loads(json.dumps(base))
        change(data)
        return json.dumps(data).encode()

    def costs(value):
        return lambda d: [t.update(cost={k: value for k in t["cost"]}) for t in d["tasks"]]

    return {
        "{p}": ("p.json", json.dumps(base).encode()),
        "{huge}": ("huge.json", variant(costs(1e308))),
        "{denormal}": ("denormal.json", variant(costs(5e-320))),
        "{slowlink}": ("slowlink.json", variant(lambda d: [l.update(bandwidth=1e-320) for l in d["links"]])),
        "{empty}": ("empty.json", variant(lambda d: d.update(tasks=[], edges=[]))),
    }


def _relu_model(shape: list) -> onnx.ModelProto:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def _typed_model(elem: int, between: int, name: str, opset: int = 21) -> onnx.ModelProto:
    """``x`` of type ``elem`` cast to ``between`` and then to float32 (a model plain ONNX Runtime runs, unless
    it has no Cast for ``elem``)."""
    helper, tp = onnx.helper, onnx.TensorProto
    nodes = [helper.make_node("Cast", ["x"], ["b"], to=between), helper.make_node("Cast", ["b"], ["f"], to=tp.FLOAT),
             helper.make_node("Relu", ["f"], ["y"])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", elem, [2, 4])],
                              [helper.make_tensor_value_info("y", tp.FLOAT, [2, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=10 if opset <= 21 else 11)


def _files(tmp_path) -> dict[str, str]:
    """Hostile files, by placeholder."""
    files = {
        **_problem_variants(tmp_path),
        "{infplat}": ("inf.yaml", b"name: inf\ndevices: [{name: cpu0, peak_flops: .inf}]\n"),
        "{bomb}": ("bomb.yaml", BOMB.encode()),
        "{latin1_platform}": ("latin1.yaml", "name: caf\xe9\ndevices: [{name: cpu0}]\n".encode("latin-1")),
        "{latin1_config}": ("latin1_run.yaml", "name: caf\xe9\nmodel: {zoo: mlp}\n".encode("latin-1")),
        "{latin1_suite}": ("latin1_suite.yaml", "name: caf\xe9\n".encode("latin-1")),
        "{deep}": ("deep.json", b"[" * 100_000 + b"]" * 100_000),
        "{bigint}": ("bigint.json", b'{"format": "hetsched-problem/1", "name": ' + b"9" * 5000 + b"}"),
        "{badload}": ("badload.yaml", b"name: p\ndevices: [{name: cpu0, transfer_load: sometimes}]\n"),
        "{bigmem}": ("bigmem.yaml", b"name: big\ndevices: [{name: cpu0, memory_bytes: " + b"1" + b"0" * 30 + b"}]\n"),
        "{unnamed}": ("unnamed.onnx", _relu_model([None, 4]).SerializeToString()),
        "{float4}": ("float4.onnx", _typed_model(onnx.TensorProto.FLOAT4E2M1, onnx.TensorProto.FLOAT, "float4",
                                                 opset=25).SerializeToString()),
        "{sparse}": ("sparse.onnx", onnx.helper.make_model(onnx.helper.make_graph(
            [onnx.helper.make_node("SparseToDenseMatMul", ["s", "d"], ["y"], domain="com.microsoft")], "sparse",
            [onnx.helper.make_sparse_tensor_value_info("s", onnx.TensorProto.FLOAT, [2, 3]),
             onnx.helper.make_tensor_value_info("d", onnx.TensorProto.FLOAT, [3, 2])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]),
            opset_imports=[onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid("com.microsoft", 1)],
            ir_version=10).SerializeToString()),
        "{no_outputs}": ("no_outputs.onnx", onnx.helper.make_model(onnx.helper.make_graph(
            [onnx.helper.make_node("Relu", ["x"], ["y"])], "no_outputs",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])], []),
            opset_imports=[onnx.helper.make_opsetid("", 17)]).SerializeToString()),
        "{branchy}": ("branchy.onnx", branch_refusing_fixed_sizes().SerializeToString()),
        "{constant}": ("constant.onnx", onnx.helper.make_model(onnx.helper.make_graph(
            [onnx.helper.make_node("Relu", ["c"], ["y"], name="relu")], "constant", [],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
            [onnx.helper.make_tensor("c", onnx.TensorProto.FLOAT, [2], [1.0, -1.0])]),
            opset_imports=[onnx.helper.make_opsetid("", 17)]).SerializeToString()),
    }
    out = {}
    for key, (name, data) in files.items():
        (tmp_path / name).write_bytes(data)
        out[key] = str(tmp_path / name)
    return out


@pytest.mark.parametrize("argv, text", [
    (["problem", "mlp", "--platform", "{bomb}", "-o", "x.json"], "too large once its YAML aliases are expanded"),
    (["problem", "mlp", "--platform", "{latin1_platform}", "-o", "x.json"], "not valid UTF-8"),
    (["run", "{latin1_config}"], "not valid UTF-8"),
    (["compare", "{latin1_suite}"], "not valid UTF-8"),
    (["solve", "{deep}", "--solver", "heft"], "nested too deeply"),
    (["solve", "{bigint}", "--solver", "heft"], "not valid JSON"),
    (["problem", "mlp", "--platform", "{infplat}", "-o", "x.json"],
     "peak_flops (device 'cpu0') must be a finite number, got inf"),
    (["problem", "mlp", "--platform", "{badload}", "-o", "x.json"],
     "transfer_load must be one of send, staged, none, got 'sometimes'"),
    (["problem", "mlp", "--platform", "{bigmem}", "-o", "x.json"], 
     "memory_bytes (device 'cpu0') must be a whole number from 0 to 2**63-1, got 1e+30"),
    (["problem", "{unnamed}", "--input-shape", "x=-1,4", "-o", "x.json"],
     "input shape for 'x' must be integers >= 0, got [-1, 4]"),
    (["problem", "{unnamed}", "-o", "x.json"], "input 'x' has a dynamic dimension without a name; fix it, e.g. "
     "with --input-shape x=1,4 (in a run config: model: {input_shapes: {x: [1, 4]}}), or give its values"),
    (["problem", "{float4}", "-o", "x.json"],
     "ONNX Runtime cannot load model 'float4': Could not find an implementation for Cast(25)"),
    (["problem", "{sparse}", "-o", "x.json"],
     "input 's' is a sparse_tensor; hetsched takes models whose inputs are tensors, sequences, maps and optionals"),
    (["problem", "{no_outputs}", "-o", "x.json"], "has no graph outputs: nothing it computes is returned"),
    (["problem", "{branchy}", "--input-shape", "x=1,8", "-o", "x.json"],
     "with its input dimensions fixed; as declared it loads: give the inputs' values with --inputs"),
    (["problem", "{constant}", "--graph-optimization", "all", "-o", "x.json"],
     "model 'constant' computes constants only: ONNX Runtime's optimisation at level 'all' folds every one"),
    (["solve", "{huge}", "--solver", "heft"], "must be 0 or from 1e-12 to 1e+09 seconds, got 1e+308"),
    (["bound", "{huge}"], "must be 0 or from 1e-12 to 1e+09 seconds"),
    (["solve", "{denormal}", "--solver", "cpsat"], "must be 0 or from 1e-12 to 1e+09 seconds, got 5e-320"),
    (["solve", "{slowlink}", "--solver", "milp"], "bandwidth must be a finite number of bytes/s >= 1"),
    (["solve", "{empty}", "--solver", "split"], "has no tasks: nothing to place"),
    (["solve", "{empty}", "--solver", "dp-chain"], "has no tasks: nothing to place"),
    (["solve", "{p}", "--solver", "greedy", "--option", "priority=5"],
     "option priority must be an instance of Sequence, got 5"),
    (["solve", "{p}", "--solver", "greedy", "--option", "priority=[[pim]]"],
     "option priority[0] must be a valid string"),
    (["solve", "{p}", "--solver", "single", "--option", "device=[cpu0]"],
     "option device must be a valid string, got ['cpu0']"),
    (["solve", "{p}", "--solver", "split", "--option", "max_module=abc"], "option max_module must be a valid integer"),
    (["solve", "{p}", "--solver", "split", "--option", "max_module=0"], "greater than or equal to 1"),
    (["solve", "{p}", "--solver", "split", "--option", "polish_window=-1"], "greater than or equal to 1"),
    (["solve", "{empty}", "--solver", "lns"], "has no tasks: nothing to place"),
    (["solve", "{p}", "--solver", "lns", "--option", "window=0"], "greater than or equal to 1"),
    (["solve", "{p}", "--solver", "auto", "--option", "objective=speed"],
     "option objective must be 'latency' or 'throughput', got 'speed'"),
    (["solve", "{p}", "--solver", "linear-clustering", "--option", "clusters=abc"], "valid integer"),
    (["solve", "{p}", "--solver", "cpsat", "--option", "workers=1e11"],
     "option workers must be a valid integer, got 100000000000.0"),
    (["solve", "{p}", "--solver", "heft", "--time-limit", "-1"], "time limit must be a finite number"),
    (["solve", "{p}", "--solver", "heft", "--seed", "1e20"], "argument --seed: invalid int value"),
    (["solve", "{p}", "--solver", "heft", "-o", ""], "argument -o/--output: an empty path"),
    (["zoo", "export", "mlp", "--set", "width=200000", "-o", "x.json"], "a zoo model must fit ONNX's 2 GiB"),
])
def test_hostile_files_give_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, text):
    subs = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    started = time.perf_counter()
    try:
        code = main([subs.get(a, a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and text in err and err.count("\n") == 1 and err.startswith("hetsched: error:"), err
    assert time.perf_counter() - started < 30  # the bomb is refused, never expanded
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "results").exists()


def test_output_onto_a_folder_or_pipe_is_refused(tmp_path, capsys):
    assert main(["problem", "mlp", "-o", str(tmp_path / "p.json")]) == 0
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    for target in ("pipe", "folder"):
        capsys.readouterr()
        code = main(["solve", str(tmp_path / "p.json"), "--solver", "heft", "-o", str(tmp_path / target)])
        err = capsys.readouterr().err
        assert code == 2 and "not a regular file" in err and err.count("\n") == 1
    assert (tmp_path / "folder").is_dir() and not list((tmp_path / "folder").iterdir())
    assert sorted(os.listdir(tmp_path)) == ["folder", "p.json", "pipe"]  # no temp file left behind


@pytest.mark.parametrize("same_file_system", [True, False])
def test_a_file_moved_into_place_is_renamed_or_copied_and_never_written_through(tmp_path, monkeypatch,
                                                                               same_file_system):
    """move_file (a new optimised-model cache entry's values file) renames the file where it can, so a large
    file is not copied; across file systems it is copied through and removed; a symlink in the way is
    replaced, not followed; a folder in the way is refused and the file left where it was."""
    source, target, elsewhere = tmp_path / "tmp.data", tmp_path / "cache" / "k.data", tmp_path / "elsewhere"
    source.write_bytes(b"values" * 1000)
    inode = source.stat().st_ino
    elsewhere.write_bytes(b"keep")
    target.parent.mkdir()
    os.symlink(elsewhere, target)
    if not same_file_system:
        real = os.replace

        def across(src, dst):
            if str(src) == str(source):
                raise OSError(18, "Invalid cross-device link")
            real(src, dst)
        monkeypatch.setattr(os, "replace", across)
    move_file(str(source), target)
    assert not target.is_symlink() and target.read_bytes() == b"values" * 1000 and not source.exists()
    assert (target.stat().st_ino == inode) == same_file_system and elsewhere.read_bytes() == b"keep"
    assert sorted(os.listdir(target.parent)) == ["k.data"]
    source.write_bytes(b"again")
    (tmp_path / "folder").mkdir()
    with pytest.raises(HetschedError, match="not a regular file"):
        move_file(str(source), tmp_path / "folder")
    assert source.read_bytes() == b"again"


def test_every_float_spelling_is_a_number(tmp_path, capsys):
    assert main(["problem", "mlp", "-o", str(tmp_path / "p.json")]) == 0
    code = main(["solve", str(tmp_path / "p.json"), "--solver", "cpsat", "--time-limit", "5",
                 "--option", "resolution=1e-6"])
    assert code == 0, capsys.readouterr().err


def test_a_bound_above_a_makespan_is_an_error_not_a_zero_gap():
    p = random_problem(4, seed=3)
    s = simulate(p, {t: p.allowed(t)[0] for t in p.tasks})
    assert certify_schedules(p, [s], [Bound("honest", s.makespan * 0.5)])[0].gap == pytest.approx(1.0)
    with pytest.raises(HetschedError, match="lower bound broken .* is above the makespan"):
        certify_schedules(p, [s], [Bound("broken", s.makespan * 1.01)])


def _interrupt(argv: list[str], stage: str, cwd, delay: float = 1.0) -> tuple[int, str, float]:
    """Run the CLI in a fresh process, send SIGINT ``delay`` seconds after it reports a line starting with
    ``stage`` on stderr; exit code, stderr, seconds from the signal to the exit."""
    # a test runner started in the background ignores SIGINT, and a child would inherit that: restore it
    proc = subprocess.Popen([sys.executable, "-m", "scheduler", *argv], cwd=cwd, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stderr:  # the stage messages, as they come
        seen.append(line)
        if line.startswith(stage):
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    sent = time.perf_counter()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, "".join(seen) + err, time.perf_counter() - sent


RUN = """name: interrupted
model: {{zoo: randwire, params: {{nodes: 40}}}}
platform: default
costs: model
solvers: [{{name: cpsat, time_limit: 1}}, {{name: {last}, time_limit: 60}}]
lp_bounds: false
replay: {{enabled: false}}
output_dir: results
"""


@pytest.mark.parametrize("last", ["cpsat", "milp"])
def test_ctrl_c_during_and_after_cpsat_stops_at_once_and_leaves_nothing(tmp_path, last):
    """CP-SAT neither swallows Ctrl-C during its search nor takes Python's handler away after one; an
    interrupted CBC is stopped with its files.  The run: CP-SAT for 1 s, then ``last`` for up to 60 s,
    interrupted a second into it."""
    (tmp_path / "run.yaml").write_text(RUN.format(last=last))
    before = set(os.listdir(tempfile.gettempdir()))
    code, err, took = _interrupt(["run", "run.yaml"], f"[hetsched] solving: {last}", tmp_path)
    assert code == 130 and err.strip().endswith("hetsched: interrupted") and "Traceback" not in err, (code, err)
    assert took < 2.0
    assert not os.path.exists(tmp_path / "results") or not os.listdir(tmp_path / "results")
    time.sleep(0.5)
    assert not {f for f in set(os.listdir(tempfile.gettempdir())) - before if "hetsched" in f or f.endswith(".mps")}


def test_schedule_files_must_agree_with_themselves(tmp_path, capsys):
    """A schedule whose info is not an object is refused; one that says optimal with its own lower bound at
    half its makespan, or with a bound above it, is invalid (exit 1, the violation named)."""
    assert main(["problem", "mlp", "-o", str(tmp_path / "p.json")]) == 0
    assert main(["solve", str(tmp_path / "p.json"), "--solver", "heft", "-o", str(tmp_path / "s.json")]) == 0
    good = json.loads((tmp_path / "s.json").read_text())
    cases = [({"info": ["a", "b"]}, 2, "info must be an object"),
             ({"status": "optimal", "lower_bound": good["makespan"] / 2}, 1, "above the lower bound"),
             ({"lower_bound": good["makespan"] * 2}, 1, "is above the makespan")]
    for change, code, text in cases:
        (tmp_path / "bad.json").write_text(json.dumps({**good, **change}))
        capsys.readouterr()
        assert main(["validate", str(tmp_path / "p.json"), str(tmp_path / "bad.json")]) == code
        out, err = capsys.readouterr()
        assert text in out + err


def test_run_refuses_a_problem_of_another_model_and_an_unwritable_output_before_any_work(tmp_path, capsys):
    assert main(["problem", "bert", "--set", "layers=1", "-o", str(tmp_path / "bert.json")]) == 0
    (tmp_path / "wrong.yaml").write_text(f"model: {{zoo: mlp}}\ncosts: problem\nproblem: {tmp_path / 'bert.json'}\n"
                                         "solvers: [heft]\nreplay: {enabled: false}\n")
    capsys.readouterr()
    assert main(["run", "--quiet", "--output-dir", str(tmp_path / "out"), str(tmp_path / "wrong.yaml")]) == 2
    assert "the problem's tasks are not the nodes of model 'mlp'" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    started = time.perf_counter()
    assert main(["run", "--quiet", "--no-replay", "--output-dir", str(tmp_path / "afile" / "sub")]) == 2
    assert "cannot be written" in capsys.readouterr().err and time.perf_counter() - started < 5
    assert not (tmp_path / "out").exists()


def test_a_problem_missing_a_node_of_the_model_names_that_node(tmp_path, capsys):
    """A problem with one node of the model left out is refused at replay, naming the node."""
    assert main(["problem", "mlp", "-o", str(tmp_path / "p.json")]) == 0
    data = json.loads((tmp_path / "p.json").read_text())
    dropped = data["tasks"].pop()["name"]
    data["edges"] = [e for e in data["edges"] if e["dst"] != dropped]
    (tmp_path / "p.json").write_text(json.dumps(data))
    assert main(["solve", str(tmp_path / "p.json"), "--solver", "heft", "-o", str(tmp_path / "s.json")]) == 0
    capsys.readouterr()
    assert main(["replay", "mlp", "--problem", str(tmp_path / "p.json"), "--schedule", str(tmp_path / "s.json"),
                 "--repeats", "1"]) == 2
    assert f"node {dropped!r} is not a task of the problem (4 nodes, 3 tasks)" in capsys.readouterr().err


REPLAY_RUN = """name: interrupted
model: {{zoo: siamese}}
platform: cpu
costs: profile
profile: {{repeats: {profile}, warmup: 0}}
solvers: [single, linear-clustering]
lp_bounds: false
replay: {{repeats: {replay}, rounds: 1, warmup: 0}}
output_dir: results
"""


@pytest.mark.parametrize("stage, profile, replay, later", [
    ("[hetsched] costs: profile", 300, 3, "[hetsched] solving"),
    ("[hetsched] round 1/1: replay 1/", 2, 30000, "[hetsched] round 1/1: replay 2/")])
def test_ctrl_c_during_profiling_and_replay_stops_at_once_and_leaves_nothing(tmp_path, stage, profile, replay, later):
    """ONNX Runtime sessions and the executor's worker threads stop too; no results folder is left.  The
    interrupt must land inside the stage (no line of a ``later`` stage printed)."""
    (tmp_path / "run.yaml").write_text(REPLAY_RUN.format(profile=profile, replay=replay))
    code, err, took = _interrupt(["run", "run.yaml"], stage, tmp_path, delay=0.3)
    assert code == 130 and err.strip().endswith("hetsched: interrupted"), (code, err)
    assert later not in err and "Traceback" not in err, err
    assert took < 2.0
    assert not (tmp_path / "results").exists() or not os.listdir(tmp_path / "results")


def test_a_model_with_its_nodes_out_of_topological_order_imports_and_replays(tmp_path, capsys):
    """ONNX asks for nodes in topological order, but ORT runs a model without; hetsched does too: the
    problem is built, a placement over two cores is cut and replayed, and the outputs equal the model's."""
    model = build("mlp", layers=3)
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    path = tmp_path / "reversed.onnx"
    path.write_bytes(model.SerializeToString())
    assert main(["problem", str(path), "--platform", "cpu", "-o", str(tmp_path / "p.json")]) == 0
    problem = read_problem(str(tmp_path / "p.json"))
    write_schedule(simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(problem.tasks)}),
                   str(tmp_path / "s.json"))
    capsys.readouterr()
    assert main(["replay", str(path), "--platform", "cpu", "--problem", str(tmp_path / "p.json"),
                 "--schedule", str(tmp_path / "s.json"), "--repeats", "2", "-o", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["max_abs_diff"] <= 1e-4 and len(result["segments"]) == len(problem.tasks) >= 3


@pytest.mark.parametrize("elem", [onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64])
def test_unsigned_inputs_get_random_values_and_replay(elem, tmp_path):
    """Inputs of unsigned 16, 32 and 64-bit integers were made float32 ("Unexpected input data type")."""
    from scheduler.pipeline import load_problem
    from scheduler.replay import replay

    path = tmp_path / "unsigned.onnx"
    onnx.save(_typed_model(elem, onnx.TensorProto.FLOAT16, "unsigned"), str(path))
    model, problem = load_problem(str(path), platform="cpu")
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert len(result["segments"]) == 3 and result["max_abs_diff"] == 0.0
