"""The hetsched command line: each command works, and bad input gives one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import onnx
import pytest

from scheduler import zoo
from scheduler.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_solvers_and_zoo_list(capsys):
    code, out, _ = run(capsys, "solvers")
    assert code == 0 and "heft" in out and "greedy" in out
    code, out, _ = run(capsys, "zoo", "list")
    assert code == 0 and all(m in out for m in ("bert", "gpt2", "randwire", "inception", "mlp"))


def test_problem_solve_validate_chain(tmp_path, capsys):
    onnx_path, prob, sched = tmp_path / "m.onnx", tmp_path / "p.json", tmp_path / "s.json"
    assert run(capsys, "zoo", "export", "mlp", "-o", str(onnx_path), "--set", "layers=3")[0] == 0
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    code, out, _ = run(capsys, "problem", str(onnx_path), "-o", str(prob))
    assert code == 0 and "tasks" in out
    assert json.loads(prob.read_text())["format"] == "hetsched-problem/1"
    code, out, _ = run(capsys, "solve", str(prob), "--solver", "heft", "-o", str(sched))
    assert code == 0 and "heft" in out and sched.exists()
    code, out, _ = run(capsys, "validate", str(prob), str(sched))
    assert code == 0 and out.startswith("valid")
    data = json.loads(sched.read_text())
    data["tasks"][0]["finish"] += 1.0
    sched.write_text(json.dumps(data))
    code, out, _ = run(capsys, "validate", str(prob), str(sched))
    assert code == 1 and "INVALID" in out


def test_problem_with_zoo_params_and_input_shape_error(tmp_path, capsys):
    code, _, _ = run(capsys, "problem", "bert", "--set", "layers=1", "-o", str(tmp_path / "p.json"))
    assert code == 0
    code, _, err = run(capsys, "problem", "bert", "--input-shape", "nope=1,2", "-o", str(tmp_path / "q.json"))
    assert code == 2 and "not a graph input" in err and not (tmp_path / "q.json").exists()


def test_embedded_default_config_is_valid():
    from scheduler.cli import _solver_catalog
    from scheduler.config import load_config
    from solvers import solver_names

    from scheduler.config import config_from_dict
    from solvers import SOLVERS

    cfg = load_config(None, _solver_catalog())  # a latency run: every solver but the throughput-only ones
    assert [s.name for s in cfg.solvers] == [n for n in solver_names(dispatchers=False)
                                             if "latency" in SOLVERS[n].objectives]
    assert "dp-pipeline" not in [s.name for s in cfg.solvers]
    assert "auto" not in [s.name for s in cfg.solvers] and "auto" in solver_names()  # it would repeat another
    pipelined = config_from_dict({"model": {"zoo": "mlp"}, "objective": "throughput", "solvers": "all"},
                                 solvers=_solver_catalog())
    assert [s.name for s in pipelined.solvers] == list(solver_names(dispatchers=False))  # any placement has a period


def test_run_writes_every_output(tmp_path, capsys):
    cfg = tmp_path / "small.yaml"
    cfg.write_text("name: small\nmodel: {zoo: bert, params: {layers: 1}}\nsolvers: [single, greedy, heft]\n")
    code, out, _ = run(capsys, "run", str(cfg), "--output-dir", str(tmp_path / "r"))
    assert code == 0
    (run_dir,) = [d for d in os.listdir(tmp_path / "r")]
    files = set(os.listdir(tmp_path / "r" / run_dir))
    assert {"config.yaml", "problem.json", "summary.csv", "schedules"} <= files
    assert "heft" in out and "gap" in out and str(tmp_path) in out
    # a second run never overwrites the first
    assert run(capsys, "run", str(cfg), "--output-dir", str(tmp_path / "r"))[0] == 0
    assert len(os.listdir(tmp_path / "r")) == 2


@pytest.mark.parametrize("argv, text", [
    (["solve", "missing.json", "--solver", "heft"], "does not exist"),
    (["solve", "{problem}", "--solver", "nope"], "unknown solver 'nope'"),
    (["solve", "{problem}", "--solver", "heft", "--option", "x=1"], "has no option 'x'"),
    (["solve", "{problem}", "--solver", "minmin", "--option", "rule=bogus"], "'min', 'max' or 'sufferage'"),
    (["solve", "{problem}", "--solver", "heft", "--option", "transfer_mean=x"], "'pairs' or 'all'"),
    (["solve", "{problem}", "--solver", "dp-pipeline", "--option", "objective=latency"], "objective=throughput only"),
    (["problem", "nomodel", "-o", "x.json"], "neither a zoo model"),
    (["problem", "{garbage}", "-o", "x.json"], "cannot read ONNX model"),
    (["problem", "{short}", "-o", "x.json"], "cannot read the values of ONNX model"),
    (["problem", "{offset}", "-o", "x.json"], "cannot read the values of ONNX model"),
    (["problem", "bert", "--set", "layers=0", "-o", "x.json"], "layers"),
    (["problem", "mlp", "--platform", "nope", "-o", "x.json"], "neither a file nor a preset"),
    (["run", "{badcfg}"], "unknown key"),
    (["run", "missing.yaml"], "does not exist"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, text):
    (tmp_path / "garbage.onnx").write_bytes(b"\x00\x01not an onnx model")
    (tmp_path / "bad.yaml").write_text("model: {zoo: mlp}\nsolverz: all\n")
    for name in ("short", "offset"):  # values beside the model: a file too short, an offset that is no number
        model = zoo.build("mlp", layers=1, width=512)
        onnx.save(model, str(tmp_path / f"{name}.onnx"), save_as_external_data=True, location=f"{name}.data")
        model = onnx.load(str(tmp_path / f"{name}.onnx"), load_external_data=False)
        if name == "short":
            os.truncate(tmp_path / "short.data", 1000)
        else:
            next(e for e in model.graph.initializer[0].external_data if e.key == "offset").value = "x"
            onnx.save(model, str(tmp_path / "offset.onnx"))
    main(["problem", "mlp", "-o", str(tmp_path / "p.json")])
    capsys.readouterr()
    subs = {"{problem}": str(tmp_path / "p.json"), "{garbage}": str(tmp_path / "garbage.onnx"),
            "{badcfg}": str(tmp_path / "bad.yaml"), "{short}": str(tmp_path / "short.onnx"),
            "{offset}": str(tmp_path / "offset.onnx")}
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *[subs.get(a, a) for a in argv])
    assert code == 2
    assert text in err and err.count("\n") == 1 and err.startswith("hetsched: error:")
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "results").exists()


def test_solve_refuses_a_second_solver(tmp_path, capsys):
    """argparse would keep the last --solver silently; the command says it runs one."""
    main(["problem", "mlp", "-o", str(tmp_path / "p.json")])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["solve", str(tmp_path / "p.json"), "--solver", "heft", "--solver", "cpsat"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--solver given twice" in err and err.count("\n") == 1


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scheduler.cli", "run", str(tmp_path / "none.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_bound_command_and_certified_gap(tmp_path, capsys):
    prob = tmp_path / "p.json"
    assert main(["problem", "bert", "--set", "layers=1", "-o", str(prob)]) == 0
    capsys.readouterr()
    assert main(["bound", str(prob)]) == 0
    out = capsys.readouterr().out
    assert {"critical-path", "resource-load", "path-segments", "lp-load", "lp-path-load"} <= {
        l.split()[0] for l in out.splitlines()}
    assert out.count("<- best") == 1
    best = next(l.split()[0] for l in out.splitlines() if "<- best" in l)
    assert main(["solve", str(prob), "--solver", "heft", "-o", str(tmp_path / "s.json")]) == 0
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["info"]["bound"] == best and data["gap"] == data["makespan"] / data["lower_bound"] - 1


HEAVY = ("onnx", "onnxruntime", "numpy", "pandas", "matplotlib", "ortools", "pulp", "networkx", "pydantic", "scipy")


@pytest.mark.parametrize("argv", [["--help"], ["solvers"], ["run", "--help"]])
def test_light_commands_import_no_heavy_library(argv):
    """``--help`` and ``solvers`` start in a fresh interpreter without the heavy libraries (what made the CLI
    take 1.3-2.1 s to print its help)."""
    code = ("import sys\nfrom scheduler.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
    assert "usage: hetsched" in done.stdout or "heft" in done.stdout
