"""A stream of inferences pipelined across real devices: right outputs for every inference, every copy of a
throughput schedule used, devices that share a core taking turns, and the CLI."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest

from scheduler.cli import _solver_catalog, main
from scheduler.config import config_from_dict
from scheduler.errors import HetschedError
from scheduler.graph import Edge, Task, TaskGraph
from scheduler.optimize import model_bytes, session
from scheduler.pipeline import build_problem, load_graph
from scheduler.platform import Device, Link, Platform
from scheduler.problem import ExecutorCosts, Problem, read_problem
from scheduler.replay import prepare_replay, runner_parts, session_settings
from scheduler.run import execute_run
from scheduler.schedule import write_schedule
from scheduler.segments import ReplayError, cut
from scheduler.semantics import simulate
from scheduler.stream import Plan, StreamRunner, predicted_stream_period, replay_stream, stream_feeds
from solvers import get_solver


def _plan(model, problem, schedule, reference=None):
    prep = prepare_replay(model, problem, schedule, reference)
    sessions = tuple(session(p.model.SerializeToString(), "disable", s["threads"], spinning="during-run")
                     for p, s in zip(prep.parts, session_settings(problem, prep.parts)))
    return prep, Plan(tuple(runner_parts(problem, prep.parts)), sessions)


@pytest.mark.parametrize("placement", [
    lambda i, t: ("cpu0", "cpu1")[i % 2],  # two cores, segments alternating
    lambda i, t: ("cpu-par", "cpu0")[i % 3 == 0],  # cpu-par shares both cores with cpu0: they take turns
])
def test_every_inference_of_a_stream_gets_the_whole_models_outputs(placement):
    model, _ = load_graph("inception")
    problem = build_problem("inception", platform="cpu")
    schedule = simulate(problem, {t: placement(i, t) for i, t in enumerate(problem.tasks)})
    prep, plan = _plan(model, problem, schedule)
    feeds = stream_feeds(prep.reference.feeds, 7, seed=3)
    whole = session(model_bytes(model), "none", 1)
    outputs = list(prep.reference.expected)
    devices = {p.device for p in plan.parts}
    runner = StreamRunner([plan], {d: problem.platform.device[d].resources for d in devices}, in_flight=3)
    got, finish = runner.run(feeds, outputs, {})
    assert len(got) == 7 and len(finish) == 7 and all(f > 0 for f in finish)
    for feed, out in zip(feeds, got):
        for name, expected in zip(outputs, whole.run(outputs, feed)):
            np.testing.assert_allclose(out[name], expected, atol=1e-5)
    assert len({round(float(np.sum(out[outputs[0]])), 6) for out in got}) > 1  # the inputs differ


def test_a_throughput_schedules_copies_all_run_and_its_prediction_is_reported():
    model, _ = load_graph("mlp", {"layers": "4"})
    problem = build_problem("mlp", {"layers": "4"}, platform="cpu")
    schedule = get_solver("cpsat", objective="throughput", replicas=2)(problem, time_limit=10)
    assert schedule.period is not None and len(schedule.period.placements) == 2
    result = replay_stream(model, problem, schedule, inferences=12, warmup=4, baselines=False)
    assert result["copies"] == 2 and result["inferences"] == 8 and result["max_abs_diff"] <= 1e-4
    assert result["predicted_period_s"] == schedule.period.value and result["measured_period_s"] > 0
    segments = [prepare_replay(model, problem, simulate(problem, p)).segments for p in schedule.period.placements]
    assert result["predicted_segment_period_s"] == pytest.approx(predicted_stream_period(problem, segments))


def test_a_stream_needs_real_devices_and_enough_inferences():
    model, _ = load_graph("mlp")
    problem = build_problem("mlp", platform="default")
    on_pim = simulate(problem, {t: "pim" for t in problem.tasks})
    with pytest.raises(ReplayError, match="real devices only; pim is simulated"):
        replay_stream(model, problem, on_pim, inferences=4, warmup=1, baselines=False)
    with pytest.raises(ReplayError, match="inferences > warmup"):
        replay_stream(model, problem, simulate(problem, {t: "cpu0" for t in problem.tasks}), inferences=3, warmup=3)


def test_cli_stream_reports_the_period_against_plain_ort(tmp_path, capsys):
    assert main(["problem", "mlp", "--platform", "cpu", "-o", str(tmp_path / "p.json")]) == 0
    problem = read_problem(str(tmp_path / "p.json"))
    write_schedule(simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(problem.tasks)}),
                   str(tmp_path / "s.json"))
    out_file = tmp_path / "stream.json"
    assert main(["replay", "mlp", "--problem", str(tmp_path / "p.json"), "--schedule", str(tmp_path / "s.json"),
                 "--stream", "8", "--warmup", "2", "-o", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "period: measured" in out and "_sessions_at_once_optimised" in out
    result = json.loads(out_file.read_text())
    assert result["format"] == "hetsched-stream/1" and result["inferences"] == 6
    assert main(["replay", "mlp", "--problem", str(tmp_path / "p.json"), "--schedule", str(tmp_path / "s.json"),
                 "--stream", "3", "--warmup", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a stream needs inferences > warmup >= 0" in err
    assert result["best_baseline"] in result["baselines_period_s"] and result["speedup_vs_best_baseline"] > 0


def test_a_throughput_run_streams_its_best_placements_and_recommends_by_measured_period(tmp_path):
    catalog = _solver_catalog()
    config = config_from_dict({"model": {"zoo": "mlp", "params": {"layers": 4}}, "platform": "cpu",
                               "objective": "throughput", "solvers": ["single", "dp-pipeline", "cpsat"],
                               "time_limit": 3, "lp_bounds": False, "output_dir": str(tmp_path),
                               "replay": {"candidates": 2, "inferences": 10}}, solvers=catalog)
    result = execute_run(config, catalog, progress=False)
    assert result.replay is None and result.stream is not None
    streamed = json.loads(open(os.path.join(result.directory, "stream.json")).read())
    assert streamed["format"] == "hetsched-stream-recommendation/1" and streamed["inferences"] == 8
    assert 1 <= len(streamed["candidates"]) <= 2 and all(c["max_abs_diff"] <= 1e-4 for c in streamed["candidates"])
    assert streamed["rounds"] == 3 and all(len(c["periods_s"]) == 3 for c in streamed["candidates"])
    periods = [c["measured_period_s"] for c in streamed["candidates"]] + list(streamed["baselines_period_s"].values())
    fastest, plain = min(periods), streamed["baselines_period_s"][streamed["best_baseline"]]
    placed = streamed["recommended"].startswith("placement")
    assert streamed["measured_period_s"] == (fastest if placed else plain)
    if streamed["fastest_measured"] is not None:  # a placement measured fastest: recommended beyond the noise only
        assert placed == (streamed["fastest_measured"]["speedup_interval"][0] > 1.0)
    report = open(os.path.join(result.directory, "report.md")).read()
    assert "## Throughput on ONNX Runtime" in report and streamed["recommended"] in report
    with pytest.raises(HetschedError, match="applies to objective: latency only"):
        config_from_dict({"model": {"zoo": "mlp"}, "objective": "throughput", "solvers": ["single"],
                          "replay": {"export": True}}, solvers=catalog)


@pytest.mark.parametrize("gain,noise,placed", [(1.03, 0.05, False), (1.5, 0.05, True)])
def test_a_streamed_placement_is_recommended_only_when_every_round_beats_plain_ort(monkeypatch, gain, noise, placed):
    """Periods stand in for the host: plain ORT's rounds spread by ``noise`` around 10 ms, the placement's
    ``gain`` times shorter; three rounds each.  A 3% gain inside 5% noise keeps plain ORT."""
    import scheduler.stream as stream_module
    from scheduler.run import noise_line

    rng = np.random.default_rng(2)
    real = stream_module.replay_stream
    monkeypatch.setattr(stream_module, "replay_stream", lambda *a, **k: {
        **real(*a, **k), "measured_period_s": 0.01 / gain * (1 + noise * rng.uniform(-1, 1))})
    monkeypatch.setattr(stream_module, "plain_stream", lambda model, feeds, warmup, cores: {
        "sequential_1_thread": 0.01 * (1 + noise * rng.uniform(-1, 1)), "sequential_2_threads": 0.02})
    model, _ = load_graph("mlp")
    problem = build_problem("mlp", platform="cpu")
    schedule = simulate(problem, {t: "cpu0" for t in problem.tasks}, solver="single")
    r = stream_module.recommend_stream(model, model, problem, [schedule], candidates=1, inferences=6, warmup=1)
    c = r["candidates"][0]
    assert len(c["periods_s"]) == 3 and c["measured_period_s"] == pytest.approx(float(np.median(c["periods_s"])))
    lo, hi = c["speedup_interval"]
    assert (r["recommended"] == "placement of single") == placed and (lo > 1.0) == placed
    assert (noise_line(r) is None) == (placed or r["fastest_measured"] is None)


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0])
def test_the_stream_period_charges_each_resource_its_segments_calls_and_switches(scale):
    """Resource a runs x (A) and y (AB), b runs y (AB) and z (B): each is busy with its segments, their session
    calls, and a switch each time it passes to another device, round the inference (x follows z); µs to s."""
    plat = Platform("p", (Device("A", resources=("a",)), Device("B", resources=("b",)),
                          Device("AB", resources=("a", "b"))), (), default_link=Link("*", "*", 0.0, None))
    graph = TaskGraph("g", (Task("x"), Task("y"), Task("z")), (Edge("x", "y", 4), Edge("y", "z", 4)))
    p = Problem(graph, plat, {t: {"A": 2 * scale, "B": 3 * scale, "AB": 1 * scale} for t in "xyz"})
    segments = cut(p, simulate(p, {"x": "A", "y": "AB", "z": "B"}))
    assert predicted_stream_period(p, [segments]) == pytest.approx(4 * scale)  # b: y 1 + z 3
    ex = ExecutorCosts({"B": 0.5 * scale}, 0.125 * scale)  # a and b each pass A->AB->A or AB->B->AB: 2 switches
    assert predicted_stream_period(replace(p, executor=ex), [segments]) == pytest.approx((4 + 0.5 + 0.25) * scale)
    assert predicted_stream_period(replace(p, executor=ex), [segments, segments]) == pytest.approx(
        2 * (4 + 0.5 + 0.25) * scale)  # two copies share the resources


def test_cli_export_of_a_throughput_run_is_refused_by_the_configs_own_check(tmp_path, capsys):
    (tmp_path / "t.yaml").write_text("model: {zoo: mlp}\nplatform: cpu\nobjective: throughput\nsolvers: [single]\n")
    assert main(["run", str(tmp_path / "t.yaml"), "--export", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "with the command-line options: replay.export writes a latency runner" in err
    assert not (tmp_path / "out").exists()
