"""hetsched run: the default and every scenario config complete with every output; bad configs fail cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
import yaml

from scheduler.bounds import bound_budget
from scheduler.cli import _solver_catalog, main
from scheduler.config import config_from_dict, load_config
from scheduler.pipeline import build_problem
from scheduler.recommend import beats_plain
from scheduler.run import _disjoint_candidates, _solve, execute_run, profile_line
from scheduler.problem import write_problem
from scheduler.schedule import validate

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
OUTPUTS = {"config.yaml", "problem.json", "schedules", "summary.csv", "report.md", "gantt.png", "gap.png"}


def _only_run(folder) -> str:
    (name,) = [d for d in os.listdir(folder)]
    assert not name.startswith(".tmp-")
    return os.path.join(folder, name)


def test_default_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default profile store is ./profiles
    assert main(["run", "--quiet", "--export"]) == 0
    out = capsys.readouterr().out
    run = _only_run(tmp_path / "results")
    assert OUTPUTS | {"replay.json", "deploy"} <= set(os.listdir(run))
    table = pd.read_csv(os.path.join(run, "summary.csv"))
    assert {"single", "greedy", "heft", "split", "cpsat", "milp"} <= set(table["solver"])
    assert (table["makespan_s"] >= table["lower_bound_s"] * (1 - 1e-9)).all()
    replay = json.loads(open(os.path.join(run, "replay.json")).read())
    assert replay["max_abs_diff"] <= 1e-4
    report = open(os.path.join(run, "report.md")).read()
    assert "![gantt](gantt.png)" in report and "## Replay on ONNX Runtime" in report
    assert "report:" in out and "recommended:" in out
    # never lose: the recommendation is the fastest measured candidate, plain ORT included, or plain ORT when
    # the fastest is a placement that beat it by less than this run's noise (it measured faster by chance)
    fastest = min(c["measured_makespan_s"] for c in replay["candidates"] if c["timeline"] == "wall-clock")
    assert replay["fastest_measured"]["candidate"] in {c["candidate"] for c in replay["candidates"]
                                                       if c["measured_makespan_s"] == fastest}
    if replay["measured_makespan_s"] != fastest:
        assert replay["recommended"].startswith("plain ONNX Runtime")
        assert not beats_plain(tuple(replay["fastest_measured"]["speedup_interval"]))
    assert replay["speedup_vs_best_baseline"] >= 1.0
    assert any(c["candidate"].startswith("plain ONNX Runtime") for c in replay["candidates"])
    # what a placement can gain by the costs: at least what the best predicted candidate gains over the whole model
    plain = next(c for c in replay["candidates"] if c["candidate"].startswith("plain ONNX Runtime"))
    best = min(c["predicted_makespan_s"] for c in replay["candidates"] if c["timeline"] == "wall-clock")
    assert replay["placement_headroom"] >= plain["predicted_makespan_s"] / best * (1 - 1e-9)
    assert f"no placement runs more than {replay['placement_headroom']:.3f}x" in report
    # the recommendation comes from the real cores alone; the simulated PIM is a what-if on a virtual timeline
    assert {"problem.json", "summary.csv", "gantt.png", "schedules"} <= set(os.listdir(os.path.join(run, "host")))
    recommended = next(c for c in replay["candidates"] if c["candidate"] == replay["recommended"])
    assert recommended["platform"] == "default:host" and recommended["timeline"] == "wall-clock"
    assert all(c["platform"] == "default" for c in replay["candidates"] if c["timeline"] == "virtual")
    assert "simulated pim" in replay["what_if"]["candidate"] and "with the simulated devices of default" in out
    # the export is the recommendation, runnable without hetsched
    manifest = json.loads(open(os.path.join(run, "deploy", "manifest.json")).read())
    assert manifest["kind"] == ("plain" if replay["recommended"].startswith("plain") else "segments")
    proc = subprocess.run([sys.executable, "-I", os.path.join(run, "deploy", "runner.py"), "--repeats", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


SMALL = {
    "pim_bert.yaml": {"model": {"zoo": "bert", "params": {"layers": 1, "hidden": 32, "heads": 2, "seq_len": 8}}},
    "diviml_cpu2gpu.yaml": {"model": {"zoo": "randwire", "params": {"nodes": 6}},
                            "solvers": ["single", "heft", "split", "cpsat"]},
    "diviml_cpu2gpu_throughput.yaml": {"model": {"zoo": "randwire", "params": {"nodes": 6}},
                                       "solvers": ["single", "heft", "cpsat", "milp"]},
    "ramiel_cpu.yaml": {"model": {"zoo": "inception", "params": {"blocks": 1, "channels": 8, "image": 16}}},
    "diviml_multiserver.yaml": {"model": {"zoo": "gpt2", "params": {"layers": 2}},
                                "solvers": ["single", "heft", "cpsat"]},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_scenario_configs_at_small_size(name, tmp_path):
    with open(os.path.join(CONFIGS, name)) as fh:
        data = yaml.safe_load(fh)
    data.update(SMALL[name], time_limit=3, output_dir=str(tmp_path / "out"))
    data["profile"] = {"folder": str(tmp_path / "profiles"), "repeats": 3, "warmup": 1}
    if data.get("replay") not in (False, None):
        data["replay"] = {"repeats": 2, "warmup": 0}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    catalog = _solver_catalog()
    result = execute_run(load_config(str(path), catalog), catalog, progress=False)
    run = _only_run(tmp_path / "out")
    expected = OUTPUTS | ({"replay.json"} if result.replay is not None else set())
    assert expected <= set(os.listdir(run))
    if name == "pim_bert.yaml":  # solved again on the real devices, without the solvers that name the PIM
        assert set(result.host_table["solver"]) == {"dp-chain", "single", "heft", "cpsat"}
        assert result.replay["what_if"]["platform"] == "pim-sequential"
    if data["objective"] == "throughput":
        table = pd.read_csv(os.path.join(run, "summary.csv"))
        found = table[table["period_s"].notna()]
        assert (found["period_s"] >= found["period_bound_s"] * (1 - 1e-9)).all()
        assert (found["throughput_per_s"] * found["period_s"]).round(6).eq(data["replicas"]).all()


BAD = [
    ("model: {zoo: mlp}\nsolverz: all\n", "unknown key 'solverz'"),
    ("model: {zoo: mlp}\ntime_limit: soon\n", "time_limit"),
    ("solvers: [heft]\n", "missing key 'model'"),
    ("model: {zoo: nomodel}\nsolvers: [heft]\n", "neither a zoo model"),
    ("model: {path: broken.onnx}\nsolvers: [heft]\n", "cannot read ONNX model"),
    ("model: {zoo: mlp}\nsolvers: [single:gpu]\n", "unknown device 'gpu'"),
    ("model: {zoo: mlp}\nsolvers: [{name: greedy, options: {priority: [npu]}}]\n", "unknown device 'npu'"),
    ("model: {zoo: mlp}\nsolvers: [heft]\nplatform: {devices: [{name: cpu0, memory_bytes: 10}]}\n",
     "infeasible: task"),
    ("model: {zoo: mlp}\nsolvers: [nope]\n", "unknown solver 'nope'; known: single"),
    ("model: {zoo: mlp}\nsolvers: [heft]\ncosts: problem\n", "costs: problem needs"),
    ("model: {zoo: mlp}\nsolvers: [heft]\ngraph_optimization: fast\n", "graph_optimization must be 'auto', 'none'"),
    ("model: {zoo: resnet50, params: {depth: 3}}\nsolvers: [heft]\n", "unknown parameter 'depth'"),
    ("model: {zoo: mlp, batch: 0}\nsolvers: [heft]\n", "model.batch must be greater than or equal to 1, got 0"),
    ("model: {zoo: mlp}\nsolvers: [heft]\nplatform: {devices: [{name: cpu0}], servers: {count: 99, network: {}}}\n",
     "servers.count must be a whole number from 1 to 64, got 99"),
]


@pytest.mark.parametrize("text, error", BAD)
def test_bad_configs_fail_with_one_line_and_no_run_folder(text, error, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.onnx").write_bytes(b"not onnx at all")
    (tmp_path / "c.yaml").write_text(text + "replay: false\n")
    assert main(["run", "c.yaml", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and error in err, err
    assert not (tmp_path / "results").exists() or os.listdir(tmp_path / "results") == []


@pytest.mark.parametrize("costs", ["model", "problem"])
def test_a_run_loads_the_users_model_once(costs, tmp_path, monkeypatch):
    """The plain ORT baselines and the problem's (optimised) model come from one load of the user's model
    (building ``gpt2-small`` took 10 s); the problem is the one loading it twice gave."""
    import scheduler.pipeline as pipeline
    model = {"zoo": "mlp", "params": {"layers": 3, "width": 640}, "clone": True}  # weights beside the bytes
    data = {"name": "once", "model": model, "platform": "cpu", "costs": "model", "solvers": ["heft"],
            "graph_optimization": "extended", "replay": {"repeats": 2, "rounds": 1, "warmup": 0},
            "output_dir": str(tmp_path / "out"), "profile": {"folder": str(tmp_path / "profiles")}}
    expected = build_problem("mlp", {"layers": 3, "width": 640}, platform="cpu", optimization="extended", clone=True)
    if costs == "problem":
        write_problem(expected, str(tmp_path / "p.json"))
        data.update(costs="problem", problem=str(tmp_path / "p.json"))
    loads = []
    resolve = pipeline.resolve_model
    monkeypatch.setattr(pipeline, "resolve_model", lambda *a, **k: loads.append(a) or resolve(*a, **k))
    result = execute_run(config_from_dict(data, solvers=_solver_catalog()), _solver_catalog(), progress=False)
    assert len(loads) == 1
    assert result.problem.tasks == expected.tasks and result.replay["max_abs_diff"] <= 1e-4


def test_replay_candidates_must_be_positive():
    from scheduler.errors import ConfigError

    with pytest.raises(ConfigError, match=r"replay\.candidates must be greater than or equal to 1, got 0"):
        config_from_dict({"model": {"zoo": "mlp"}, "solvers": ["heft"], "replay": {"candidates": 0}})


def test_a_profile_that_disagrees_with_the_runs_plain_ort_is_flagged():
    """Plain ORT measured 35% below the profile's prediction of it: the profile is out of date and the run
    says so; within 20% nothing is said; with modelled costs the run says to measure them."""
    catalog = _solver_catalog()
    config = load_config(None, catalog)
    assert config.costs == "profile"
    stale = {"candidates": [{"replay_prediction_error": 0.05}, {"replay_prediction_error": -0.35}]}
    assert "plain ONNX Runtime measured -35% against the profile's prediction" in profile_line(config, stale)
    assert profile_line(config, {"candidates": [{"replay_prediction_error": 0.19}]}) is None
    modelled = profile_line(config.model_copy(update={"costs": "model"}), stale)
    assert "-35% against the cost model's prediction" in modelled and "set costs: profile" in modelled
    assert profile_line(config.model_copy(update={"costs": "problem"}), stale) is None


def test_disjoint_candidates_solve_on_the_separate_cores_as_schedules_of_the_whole_platform():
    """On platform cpu the solvers run again on cpu0 + cpu1 (no core passed between sessions), each answer a
    valid schedule of the whole problem; a solver whose options name cpu-par does not run there."""
    catalog = _solver_catalog()
    config = config_from_dict({"model": {"zoo": "siamese"}, "platform": "cpu", "costs": "model",
                               "solvers": ["heft", "single:cpu-par"]}, solvers=catalog)
    problem = build_problem("siamese", platform="cpu")
    found = _disjoint_candidates(problem, config, catalog, False)
    assert [s.solver for s in found] == ["heft on cpu0+cpu1"]
    assert set(found[0].placement.values()) <= {"cpu0", "cpu1"} and validate(problem, found[0]) == []
    throughput = config_from_dict({"model": {"zoo": "siamese"}, "platform": "cpu", "costs": "model",
                                   "objective": "throughput", "solvers": ["cpsat"]}, solvers=catalog)
    assert _disjoint_candidates(problem, throughput, catalog, False) == []


@pytest.mark.parametrize("objective", ["latency", "throughput"])
def test_a_runs_solvers_and_bounds_share_its_time_limit(objective):
    """``hetsched run``'s solvers get their limits less the LP bounds' share (bound_budget of their sum), so
    solving and bounding together stay within the limits; a throughput run certifies every period."""
    catalog = _solver_catalog()
    asked: list[float] = []

    def get(name, **options):
        solve = catalog.get(name, **options)

        def recorded(problem, time_limit=None, seed=0):
            asked.append(time_limit)
            return solve(problem, time_limit=time_limit, seed=seed)
        return recorded

    config = config_from_dict({"model": {"zoo": "mlp"}, "objective": objective, "time_limit": 4,
                               "solvers": ["heft", {"name": "greedy", "time_limit": 2}]}, solvers=catalog)
    problem = build_problem("mlp", platform="cpu")
    schedules, bounds = _solve(problem, config, replace(catalog, get=get), config.solvers, False)
    share = 1 - bound_budget(6.0) / 6.0
    assert asked == pytest.approx([4 * share, 2 * share]) and bounds
    assert all(validate(problem, s) == [] and s.gap is not None and s.gap >= 0 for s in schedules)
    if objective == "throughput":
        assert all(s.period is not None and s.period.bound is not None and s.period.gap >= 0 for s in schedules)
    else:
        assert all(s.period is None for s in schedules)
