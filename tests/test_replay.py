"""Replay: cut models by placement, run the parts on ONNX Runtime, outputs equal the whole model's."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from scheduler.cli import main
from scheduler.executor import pin_thread, random_inputs, session_options
from scheduler.graph import Edge, Task, TaskGraph
from scheduler.pipeline import build_problem, load_graph, load_problem
from scheduler.platform import Device, Link, Platform, cores_platform
from scheduler.problem import Problem
from scheduler.problem import ExecutorCosts
from scheduler.optimize import observed_run
from scheduler.problem_views import canonical_placement, mirror_classes, symmetries
from scheduler.recommend import recommend, top_placements
from scheduler.replay import (_timeline, checked_diff, core_map, predict_segments, prepare_replay, replay,
                              segment_durations, session_settings)
from scheduler.segments import ReplayError, build_segments, cut, is_convex
from scheduler.semantics import simulate
from scheduler.zoo import list_models
from solvers import get_solver, solver_names

ZOO = [m.name for m in list_models() if m.extra is None]  # the hf-* ones: tests/test_hf.py
SMALL = {"bert": {"layers": 1}, "gpt2": {"layers": 1}, "randwire": {"nodes": 6}, "inception": {"blocks": 1},
         "mlp": {"layers": 3}, "resnet": {"width": 4, "image": 32}, "squeezenet": {"image": 32},
         "mobilenet": {"width_mult": 0.25, "image": 32}, "siamese": {}}


def random_placement(problem: Problem, seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    return {t: str(rng.choice(problem.allowed(t))) for t in problem.tasks}


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("platform", ["cpu", "default"])
def test_random_placements_replay_exactly(name, platform):
    model, _ = load_graph(name, SMALL[name])
    problem = build_problem(name, SMALL[name], platform)
    for seed in range(2):
        schedule = simulate(problem, random_placement(problem, seed))
        segments = cut(problem, schedule)
        assert len(segments) > 1
        assert all(is_convex(problem, s.tasks) for s in segments)
        assert sorted(t for s in segments for t in s.tasks) == sorted(problem.tasks)
        result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False, seed=seed)
        assert result["max_abs_diff"] <= 1e-4
        simulated = any(problem.platform.device[s.device].simulated for s in segments)
        assert result["timeline"] == ("virtual" if simulated else "wall-clock")


@pytest.mark.parametrize("solver", solver_names())
def test_every_solver_schedule_replays(solver):
    model, _ = load_graph("randwire", SMALL["randwire"])
    problem = build_problem("randwire", SMALL["randwire"], "cpu")
    result = replay(model, problem, get_solver(solver)(problem, time_limit=3), repeats=2, warmup=1)
    assert result["max_abs_diff"] <= 1e-4
    assert result["measured_makespan_s"] > 0 and result["predicted_makespan_s"] > 0
    n = os.cpu_count()
    assert set(result["baselines"]) == {"sequential_1_thread", "sequential_1_thread_optimised",
                                        "sequential_1_thread_optimised_unpacked",
                                        f"sequential_{n}_threads", f"sequential_{n}_threads_optimised",
                                        f"parallel_{n}_threads_optimised", f"sequential_{n}_threads_unpacked",
                                        f"sequential_{n}_threads_optimised_unpacked"}
    assert result["speedup_vs_best_baseline"] == pytest.approx(
        min(result["baselines"].values()) / result["measured_makespan_s"])


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0])
def test_segment_prediction_charges_calls_and_switches(scale):
    """Without executor costs the segment-level prediction is the schedule's makespan; each call adds to its
    segment, each switch of a shared core between devices adds once; costs in µs, ms and s."""
    plat = Platform("p", (Device("A", resources=("a",)), Device("B", resources=("b",)),
                          Device("AB", resources=("a", "b"))), (), default_link=Link("*", "*", 0.0, None))
    graph = TaskGraph("g", (Task("x"), Task("y"), Task("z")), (Edge("x", "y", 4), Edge("y", "z", 4)))
    costs = {t: {"A": 2 * scale, "B": 3 * scale, "AB": 1 * scale} for t in "xyz"}
    p = Problem(graph, plat, costs)
    s = simulate(p, {"x": "A", "y": "AB", "z": "B"})
    segments = cut(p, s)
    assert predict_segments(p, segments) == pytest.approx(s.makespan) == pytest.approx(6 * scale)
    with_calls = replace(p, executor=ExecutorCosts({"A": 0.5 * scale, "AB": 0.25 * scale}, 0.0))
    assert predict_segments(with_calls, segments) == pytest.approx(6.75 * scale)
    # x (A) -> y (AB) passes core a from A to AB; y (AB) -> z (B) passes core b: two switches
    with_switch = replace(p, executor=ExecutorCosts({}, 0.125 * scale))
    assert predict_segments(with_switch, segments) == pytest.approx(6.25 * scale)
    single = simulate(p, {t: "A" for t in "xyz"})
    assert predict_segments(with_calls, cut(p, single)) == pytest.approx(single.makespan + 0.5 * scale)
    # links that carry the executor's share of each crossing (as profiled problems do) are not charged twice
    ex = ExecutorCosts({"A": 0.5 * scale, "AB": 0.25 * scale, "B": 0.125 * scale}, 0.0625 * scale, 0.0,
                       scale / 64)
    folded = Platform("p", plat.devices, tuple(
        ex.fold(plat, Link(a, b)) for a in ("A", "B", "AB") for b in ("A", "B", "AB") if a != b))
    assert Problem(graph, folded, costs).transfer(graph.edges[0], "A", "AB") == pytest.approx(
        ex.call_s["AB"] + ex.switch_s + 2 * 4 * ex.byte_s)
    assert predict_segments(Problem(graph, folded, costs, executor=ex), segments) == pytest.approx(
        predict_segments(replace(p, executor=ex), segments))


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0])
def test_segment_prediction_charges_each_boundary_tensor_once_per_segment(scale):
    """A segment's call takes in and gives back its boundary tensors: x's output, read by y and z in one
    segment, counts once on each side, and y's output to z inside it not at all; each byte costs
    ``byte_s`` on top of the calls; costs in µs, ms and s."""
    plat = Platform("p", (Device("A", resources=("a",)), Device("B", resources=("b",))), (),
                    default_link=Link("*", "*", 0.0, None))
    graph = TaskGraph("g", (Task("x"), Task("y"), Task("z")), (
        Edge("x", "y", 8, ("tx",)), Edge("x", "z", 8, ("tx",)), Edge("y", "z", 4, ("ty",))))
    p = Problem(graph, plat, {t: {"A": scale, "B": scale} for t in "xyz"})
    segments = cut(p, simulate(p, {"x": "A", "y": "B", "z": "B"}))
    assert [(seg.tasks, seg.boundary_bytes) for seg in segments] == [(("x",), 8), (("y", "z"), 8)]
    assert [seg.boundary_bytes for seg in cut(p, simulate(p, {t: "A" for t in "xyz"}))] == [0]
    charged = replace(p, executor=ExecutorCosts({"A": scale, "B": scale}, 0.0, 0.0, scale / 8))
    assert predict_segments(charged, segments) == pytest.approx(3 * scale + 2 * scale + 2 * scale)


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0])
def test_segment_prediction_charges_contention_only_where_work_overlaps(scale):
    """Costs of devices that can work beside another carry the full slow-down (the solvers' view); the
    segment-level prediction takes it out and charges it for the share of a segment's time that another
    core works beside it; costs in µs, ms and s."""
    plat = Platform("p", (Device("A", resources=("a",)), Device("B", resources=("b",)),
                          Device("AB", resources=("a", "b"))), (), default_link=Link("*", "*", 0.0, None))
    ex = ExecutorCosts({}, 0.0, 0.25)
    assert ex.contended(plat) == {"A", "B"} and ExecutorCosts({}, 0.0).contended(plat) == frozenset()
    # x and y in parallel, then z after both: x on A and y on B overlap entirely
    graph = TaskGraph("g", (Task("x"), Task("y"), Task("z")), (Edge("x", "z", 4), Edge("y", "z", 4)))
    alone = {"x": 4.0, "y": 2.0, "z": 1.0}  # measured alone
    costs = {t: {"A": c * 1.25 * scale, "B": c * 1.25 * scale, "AB": c * scale} for t, c in alone.items()}
    p = Problem(graph, plat, costs, executor=ex)
    parallel = cut(p, simulate(p, {"x": "A", "y": "B", "z": "A"}))
    # y (2, slowed by a quarter: 2.5) overlaps x all the time; x overlaps y for 2.5 of its duration d:
    # x = 4 * (1 + 0.25 * 2.5 / d) with d = x's duration: d = 4 + 2.5 / d -> d^2 - 4 d - 2.5 = 0
    x = (4 + (16 + 10) ** 0.5) / 2
    assert predict_segments(p, parallel) == pytest.approx((x + 1.0) * scale, rel=1e-3)
    # everything on A: no overlap, so no contention (the measured-alone costs), though the costs carry it
    serial = cut(p, simulate(p, {t: "A" for t in alone}))
    assert predict_segments(p, serial) == pytest.approx(7.0 * scale)
    assert predict_segments(p, cut(p, simulate(p, {t: "AB" for t in alone}))) == pytest.approx(7.0 * scale)


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0])
def test_segment_durations_charge_each_overlap_as_defined_on_many_segments(scale):
    """The contention each segment pays is its base time times 1 + contention x (the share of its span that
    segments of devices sharing no core with it overlap), composed over the timeline four times: checked pair by pair on a placement with over 512 segments
    on the contended devices (the overlaps are summed 512 rows at a time); costs in µs, ms and s."""
    plat = Platform("p", (Device("A", resources=("a",)), Device("B", resources=("b",)),
                          Device("AB", resources=("a", "b"))), (), default_link=Link("*", "*", 0.0, None))
    ex = ExecutorCosts({"A": 0.1 * scale, "B": 0.2 * scale, "AB": 0.0}, 0.05 * scale, 0.3, 1e-9)
    rng = np.random.default_rng(1)
    n = 1300
    tasks = tuple(Task(f"t{i}") for i in range(n))
    edges = tuple(Edge(f"t{int(rng.integers(max(0, i - 40), i))}", f"t{i}", 8) for i in range(1, n))  # wide
    costs = {f"t{i}": {d: float(rng.uniform(0.5, 2.0)) * scale for d in ("A", "B", "AB")} for i in range(n)}
    p = Problem(TaskGraph("g", tasks, edges), plat, costs, executor=ex)
    placement = {f"t{i}": ("A", "B", "A", "B", "AB")[int(rng.integers(0, 5))] for i in range(n)}
    segments = cut(p, simulate(p, placement))
    busy = [seg for seg in segments if seg.device in ("A", "B")]
    assert len(busy) > 512
    call = {seg.index: ex.call_s[seg.device] + ex.byte_s * seg.boundary_bytes for seg in segments}
    want = {seg.index: seg.predicted_s + call[seg.index] for seg in segments}
    for _ in range(4):  # the definition, pair by pair, over the same four rounds of the timeline
        span = _timeline(p, segments, want)
        for seg in busy:
            a0, a1 = span[seg.index]
            beside = sum(max(0.0, min(a1, span[o.index][1]) - max(a0, span[o.index][0])) for o in busy
                         if o.device != seg.device)
            want[seg.index] = seg.predicted_s / 1.3 * (1 + 0.3 * min(1.0, beside / (a1 - a0))) + call[seg.index]
    got = segment_durations(p, segments)
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k], rel=1e-9) for k in want)
    assert any(got[seg.index] > seg.predicted_s / 1.3 + call[seg.index] * 1.001 for seg in busy)  # some overlap


def test_workers_of_one_core_devices_are_pinned_to_their_core():
    available = sorted(os.sched_getaffinity(0))
    cpu = build_problem("mlp", platform="cpu")
    if len(available) >= 2:
        assert core_map(cpu.platform) == {"cpu0": (available[0],), "cpu1": (available[1],),
                                          "cpu-par": (available[0], available[1])}
    many = Platform("many", tuple(Device(f"c{i}", resources=(f"core{i}",)) for i in range(len(available) + 1)), (),
                    default_link=Link("*", "*", 0.0, None))
    assert core_map(many) == {}  # more cores named than the host has
    sim = Platform("sim", (Device("a", resources=("r0",)), Device("b", resources=("r1",), simulated=True)), (),
                   default_link=Link("*", "*", 0.0, None))
    assert "b" not in core_map(sim)


def test_devices_on_part_of_the_host_keep_their_pool_threads_on_their_cores(monkeypatch):
    """On a host of four CPUs (stood in for), the two-core halves of platform ``cores`` and the whole host get
    one CPU per thread: the worker the first, the session's pool the others
    (``session.intra_op_thread_affinities``)."""
    monkeypatch.setattr("scheduler.replay.usable_cpus", lambda: (0, 1, 4, 5))
    problem = build_problem("mlp", {"layers": 3}, cores_platform(4))
    assert core_map(problem.platform)["cpu2-3"] == (4, 5)
    placement = {t: ("cpu0-1", "cpu2-3", "cpu-par", "cpu3")[i % 4] for i, t in enumerate(problem.tasks)}
    parts = build_segments(load_graph("mlp", {"layers": 3})[0], problem, cut(problem, simulate(problem, placement)))
    settings = {p.segment.device: s for p, s in zip(parts, session_settings(problem, parts))}
    assert settings["cpu0-1"]["cpus"] == [0, 1] and settings["cpu2-3"]["cpus"] == [4, 5]
    assert settings["cpu-par"]["cpus"] == [0, 1, 4, 5] and "cpus" not in settings["cpu3"]  # one thread


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2
                    or not os.path.isdir("/proc/self/task"), reason="needs Linux and two CPUs")
def test_session_pool_threads_go_to_the_given_cpus():
    def affinities() -> dict[str, str]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/status", encoding="utf-8") as fh:
                out[tid] = next(line.split()[1] for line in fh if line.startswith("Cpus_allowed_list"))
        return out

    first, second = sorted(os.sched_getaffinity(0))[:2]
    model = load_graph("mlp", {"layers": 1})[0]
    before = affinities()
    sess = ort.InferenceSession(model.SerializeToString(), session_options("none", 2, cpus=(first, second)))
    sess.run(None, random_inputs(sess))
    for _ in range(100):  # a pool thread pins itself once it has started: give it the time
        new = {tid: cpus for tid, cpus in affinities().items() if tid not in before}
        if list(new.values()) == [str(second)]:
            break
        time.sleep(0.01)
    assert list(new.values()) == [str(second)]  # one pool thread, on the second CPU
    del sess
    with pytest.raises(ValueError, match="one CPU per thread"):
        session_options("none", 2, cpus=(first,))
    pinned = []  # ... and the device's worker, which calls the session, on the first: the two never meet
    worker = threading.Thread(target=lambda: (pin_thread((first, second)), pinned.append(os.sched_getaffinity(0))))
    worker.start()
    worker.join()
    assert pinned == [{first}]


def test_non_convex_segment_is_detected_and_split():
    """x -> y -> z with x, z on A and y on B: {x, z} is not convex, so z starts a segment of its own; x's output
    goes to B, so x's segment ends at x (y must not wait for w, which the schedule runs alongside y)."""
    plat = Platform("p", (Device("A", resources=("a",)), Device("B", resources=("b",))), (Link("A", "B"),))
    graph = TaskGraph("g", (Task("x"), Task("y"), Task("z"), Task("w")),
                      (Edge("x", "y", 4), Edge("y", "z", 4), Edge("x", "w", 4)))
    p = Problem(graph, plat, {t: {"A": 1.0, "B": 1.0} for t in "xyzw"})
    assert not is_convex(p, ("x", "z")) and is_convex(p, ("x", "w"))
    s = simulate(p, {"x": "A", "y": "B", "z": "A", "w": "A"}, order=["x", "w", "y", "z"])
    segments = cut(p, s)
    assert [s.tasks for s in segments if s.device == "A"] == [("x",), ("w",), ("z",)]
    assert all(is_convex(p, s.tasks) for s in segments)


def test_segments_are_valid_models_with_minimal_initializers():
    model, _ = load_graph("bert", SMALL["bert"])
    problem = build_problem("bert", SMALL["bert"], "cpu")
    parts = build_segments(model, problem, cut(problem, simulate(problem, random_placement(problem, 3))))
    total_inits = {i.name for i in model.graph.initializer}
    for part in parts:
        onnx.checker.check_model(part.model)
        used = {x for n in part.model.graph.node for x in n.input}
        assert {i.name for i in part.model.graph.initializer} <= used & total_inits
        assert part.model.ir_version <= 10 and part.model.opset_import == model.opset_import


def test_schedule_for_another_model_is_rejected(tmp_path, capsys):
    mlp = build_problem("mlp")
    model, _ = load_graph("bert", SMALL["bert"])
    bert = build_problem("bert", SMALL["bert"])
    with pytest.raises(ReplayError, match="does not fit this model"):
        replay(model, bert, get_solver("heft")(mlp), repeats=1)
    main(["problem", "mlp", "-o", str(tmp_path / "p.json")])
    main(["solve", str(tmp_path / "p.json"), "--solver", "heft", "-o", str(tmp_path / "s.json")])
    capsys.readouterr()
    assert main(["replay", "bert", "--set", "layers=1", "--schedule", str(tmp_path / "s.json")]) == 2
    assert "does not fit this model" in capsys.readouterr().err


def test_cli_replay_writes_result_and_export(tmp_path, capsys):
    args = ["--set", "nodes=6", "--platform", "cpu"]
    assert main(["problem", "randwire", *args, "-o", str(tmp_path / "p.json")]) == 0
    assert main(["solve", str(tmp_path / "p.json"), "--solver", "heft", "-o", str(tmp_path / "s.json")]) == 0
    assert main(["replay", "randwire", *args, "--problem", str(tmp_path / "p.json"), "--schedule",
                 str(tmp_path / "s.json"), "--repeats", "2", "--warmup", "0", "-o", str(tmp_path / "r.json"),
                 "--export", str(tmp_path / "seg")]) == 0
    out = capsys.readouterr().out
    assert "outputs match" in out and "speedup over the best plain ORT" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert {"max_abs_diff", "segments", "measured_makespan_s", "predicted_makespan_s", "baselines"} <= set(result)
    manifest = json.loads((tmp_path / "seg" / "manifest.json").read_text())
    assert len(manifest["segments"]) == len(result["segments"])
    for entry in manifest["segments"]:
        onnx.checker.check_model(onnx.load(str(tmp_path / "seg" / entry["file"])))


def test_recommend_pools_rounds_that_time_every_candidate_in_turn(monkeypatch):
    """The repeats are spread over rounds; each candidate's and each plain configuration's samples are pooled,
    and what is reported is their median; the recommendation is the fastest measured, plain ORT included.
    The model runs once for reference and each candidate is cut and built once, whatever the rounds."""
    from scheduler import replay as replay_module
    from scheduler.pipeline import load_original

    built = []
    monkeypatch.setattr(replay_module, "observed_run",
                        lambda *a, **k: built.append("reference") or observed_run(*a, **k))
    monkeypatch.setattr(replay_module, "build_segments",
                        lambda *a, **k: built.append("segments") or build_segments(*a, **k))
    model, _ = load_graph("randwire", {"nodes": 6})
    original, _ = load_original("randwire", {"nodes": 6})
    problem = build_problem("randwire", {"nodes": 6}, "cpu")
    schedules = [get_solver(name)(problem, time_limit=2) for name in ("heft", "single", "linear-clustering")]
    stages: list[str] = []
    r = recommend(original, model, problem, schedules, candidates=2, repeats=4, rounds=2, warmup=0,
                  stage=stages.append)
    assert built == ["reference", "segments", "segments"]
    assert sum("round 1/2" in s for s in stages) == sum("round 2/2" in s for s in stages) == 3
    assert stages[0].startswith("round 1/2: replay 1/2") and stages[3].startswith("round 2/2: replay 2/2")
    placements = [c for c in r["candidates"] if c["solver"]]
    assert len(placements) == 2 and all(c["max_abs_diff"] <= 1e-4 for c in r["candidates"])
    fastest = min(c["measured_makespan_s"] for c in r["candidates"])
    plain = r["candidates"][-1]["measured_makespan_s"]
    assert r["measured_makespan_s"] == fastest or (r["measured_makespan_s"] == plain and r["solver"] is None
                                                   and r["fastest_measured"]["speedup_interval"][0] <= 1.0)
    assert r["speedup_vs_best_baseline"] >= 1.0
    if r["solver"] is not None:  # a placement won: its samples are the two rounds pooled
        assert r["repeats"] == len(r["samples_s"]) == 4
        assert r["measured_makespan_s"] == pytest.approx(float(np.median(r["samples_s"])))


@pytest.mark.parametrize("gain,noise,placed", [(1.03, 0.2, False), (1.3, 0.05, True), (0.9, 0.01, False)])
def test_a_placement_is_recommended_only_when_it_beats_plain_ort_beyond_the_noise(monkeypatch, gain, noise,
                                                                                  placed):
    """Timings stand in for the host: plain ORT's runs in its best configuration spread by ``noise`` around
    10 ms, the placement's ``gain`` times faster with the same spread.  A 3% gain inside 20% noise is no
    reason to leave plain ORT."""
    import scheduler.recommend as rec
    from scheduler.run import noise_line
    from scheduler.tables import format_candidates

    rng = np.random.default_rng(1)

    def timings(centre: float, n: int) -> list[float]:  # spread evenly, in random order: no lucky draw
        return list(centre * (1 + noise * rng.permutation(np.linspace(-1, 1, n))))

    real_replay, real_plain = rec.replay, rec.plain_samples
    monkeypatch.setattr(rec, "replay", lambda *a, **k: {**real_replay(*a, **k),
                                                         "samples_s": timings(0.01 / gain, k["repeats"])})
    monkeypatch.setattr(rec, "plain_samples", lambda *a, **k: {  # one best configuration, the others well behind
        label: timings(0.01 * (1 + k), len(times)) for k, (label, times) in enumerate(real_plain(*a, **k).items())})
    model, _ = load_graph("mlp")
    problem = build_problem("mlp", platform="cpu")
    schedule = simulate(problem, {t: "cpu0" for t in problem.tasks}, solver="single")
    r = recommend(model, model, problem, [schedule], candidates=1, repeats=12, rounds=2, warmup=0)
    lo, hi = r["candidates"][0]["speedup_interval"]  # the placement's, shown in the candidates table
    assert r["candidates"][-1]["speedup_interval"] is None and f"{lo:.2f}-{hi:.2f}x" in format_candidates(r)
    assert (r["solver"] == "single") == placed and bool(r["speedup_vs_best_baseline"] > 1.1) == placed
    if r["fastest_measured"]["candidate"] == "placement of single":
        assert r["fastest_measured"]["speedup_interval"] == (lo, hi)
        assert lo <= gain <= hi and (lo > 1.0) == placed and (noise_line(r) is None) == placed
    else:
        assert not placed and noise_line(r) is None and r["recommended"].startswith("plain ONNX Runtime")


def test_mirror_placements_count_once_among_the_candidates():
    """Two towers swapped between two identical cores are one candidate, not two; a placement that differs
    for real (a tower on the two-thread device) is another; cores with other costs are no mirrors."""
    p = build_problem("siamese", platform="cpu")
    assert mirror_classes(p) == (("cpu0", "cpu1"),)
    tasks = p.tasks
    a = {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(tasks)}
    b = {t: ("cpu1", "cpu0")[i % 2] for i, t in enumerate(tasks)}
    c = {t: ("cpu-par", "cpu0")[i % 2] for i, t in enumerate(tasks)}
    assert canonical_placement(p, a, symmetries(p)) == canonical_placement(p, b, symmetries(p))
    assert len(top_placements(p, [simulate(p, x) for x in (a, b, c)], 3)) == 2
    slower = replace(p, costs={t: {**row, "cpu1": row["cpu1"] * 1.5} for t, row in p.costs.items()})
    assert mirror_classes(slower) == () and len(top_placements(slower, [simulate(slower, x) for x in (a, b)], 3)) == 2


def test_prepared_candidates_hold_the_models_large_values_once():
    """Schedules prepared with one ``shared`` store hold each large value of the model in one array (each
    candidate of a ``run`` held a copy of the model's values); their segments keep only the values' places,
    and replay with the whole model's outputs."""
    model, problem = load_problem("mlp", {"layers": 3, "width": 512}, platform="cpu")  # three 1 MiB weights
    order = problem.graph.topological_order
    schedules = [simulate(problem, {t: "cpu0" for t in order}),
                 simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})]
    shared: dict = {}
    first = prepare_replay(model, problem, schedules[0], shared=shared)
    second = prepare_replay(model, problem, schedules[1], first.reference, shared=shared)
    assert len(shared) == 3 and len(second.parts) > 1
    held = [value for prepared in (first, second) for p in prepared.parts for _, value in p.data.externals]
    assert len(held) == 6 and {id(v) for v in held} == {id(v) for v in shared.values()}
    assert all(p.model.ByteSize() < 1 << 20 for prepared in (first, second) for p in prepared.parts)
    for schedule, prepared in zip(schedules, (first, second)):
        result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False, prepared=prepared)
        assert result["max_abs_diff"] == 0.0


def test_output_check_takes_nan_and_infinity_as_values():
    """NaN and infinities match only themselves: a replay that gives NaN where the whole model gave a number
    failed no tolerance before (``nan > tol`` is false) and reported a max_abs_diff of nan; one that gives
    the model's own NaN (the square root of a negative input) reported nan too, where it matches."""
    ref = {"y": np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)}
    assert checked_diff(ref, {"y": ref["y"].copy()}, 1e-4, "replayed") == 0.0
    for bad in ([0.0, np.inf, -np.inf, 1.0], [np.nan, np.nan, -np.inf, 1.0], [np.nan, np.inf, np.inf, 1.0],
                [np.nan, np.inf, -np.inf, np.nan]):
        with pytest.raises(ReplayError, match="differ from the whole model's by inf at 'y'"):
            checked_diff(ref, {"y": np.array(bad, np.float32)}, 1e-4, "replayed")
    half = {"h": np.array([np.nan, 2.0], np.float16)}  # a NaN does not widen a float16 output's allowance
    with pytest.raises(ReplayError, match="by 0.0156 at 'h'"):
        checked_diff(half, {"h": np.array([np.nan, 2.015625], np.float16)}, 1e-4, "replayed")
