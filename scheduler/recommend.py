"""The recommendation: replay the best few schedules, time plain ONNX Runtime, keep the fastest measured.

A placement is only worth recommending if it beats what the user already has, so
the candidates are the best ``k`` distinct placements by prediction (the
segment-level one, :func:`scheduler.replay.predict_replay`, which charges the
executor's per-segment costs the schedule cannot see) *and* the
whole model on plain ONNX Runtime with its best settings (timed in the same run).
The recommendation is the fastest **measured** candidate (a placement that uses a
simulated device has a virtual timeline, not a measurement, and is listed but not
recommended); the result also states
the headroom on this host, ``best plain / max(critical path, 1-thread time /
cores)``, and how much of it the recommendation captured.

Example
-------
>>> from scheduler.pipeline import build_problem, load_original
>>> from scheduler.schedule import simulate
>>> p = build_problem("mlp", platform="cpu")
>>> s = [simulate(p, {t: "cpu0" for t in p.tasks}), simulate(p, {t: "cpu0" for t in p.tasks})]
>>> len(top_placements(p, s, 3))
1
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import onnx

from .bounds import critical_path_bound
from .optimize import model_bytes, random_inputs, session
from .problem import Problem
from .deploy import export_placement, export_plain
from .replay import plain_baselines, plain_configs, predict_replay, replay
from .schedule import Schedule, simulate


def top_placements(problem: Problem, schedules: Sequence[Schedule], k: int,
                   key: Callable[[Schedule], float] = lambda s: s.makespan) -> list[Schedule]:
    """The ``k`` best schedules by ``key`` with pairwise distinct placements (ties keep the given order)."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for s in sorted((s for s in schedules if s.found), key=key):
        placement = tuple(s.placement[t] for t in problem.tasks)
        if placement not in seen:
            seen.add(placement)
            out.append(s)
        if len(out) == k:
            break
    return out


def whole_model_schedule(problem: Problem, threads: int) -> Schedule | None:
    """The whole model on the real device closest to ``threads`` intra-op threads (a plain ORT
    configuration), fewer rather than more, as a schedule."""
    reals = [d for d in problem.platform.devices if not d.simulated
             and all(d.name in problem.allowed(t) for t in problem.tasks)]
    if not reals:
        return None
    dev = min(reals, key=lambda d: (abs(d.threads - threads), d.threads, problem.platform.devices.index(d)))
    return simulate(problem, {t: dev.name for t in problem.tasks})


def recommend(original: onnx.ModelProto, model: onnx.ModelProto, problem: Problem, schedules: Sequence[Schedule], *,
              candidates: int = 3, key: Callable[[Schedule], float] | None = None, repeats: int = 10,
              warmup: int = 2, opt_level: str = "disable", tolerance: float = 1e-4, seed: int = 0,
              export: str | None = None, level: str = "none", progress: Callable[[str, int], Callable[[], None]] | None = None,
              stage: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Replay the best ``candidates`` placements, time plain ORT, and recommend the fastest measured.

    Returns the ``replay.json`` structure: the recommended candidate's fields
    (``measured_makespan_s``, ``predicted_makespan_s``, ``max_abs_diff``, plus the
    replay details when it is a placement), ``best_baseline`` and
    ``speedup_vs_best_baseline``, every candidate measured vs predicted, the plain
    baselines, and the headroom.  ``export`` writes the recommendation as a
    deployment folder (:mod:`scheduler.deploy`); ``level`` is the optimisation
    ``model`` went through.
    """
    chosen = top_placements(problem, schedules, candidates, key or (lambda s: predict_replay(problem, s)))
    replays = []
    for i, s in enumerate(chosen):
        stage(f"replay {i + 1}/{len(chosen)}: {s.solver} ({repeats} repeats)")
        replays.append(replay(model, problem, s, repeats=repeats, warmup=warmup, opt_level=opt_level,
                              tolerance=tolerance, seed=seed, baselines=False, progress=progress))
    stage(f"plain ONNX Runtime baselines ({repeats} repeats each)")
    feeds = random_inputs(session(model_bytes(original), label=problem.label), seed)
    base = plain_baselines(original, feeds, repeats=repeats, warmup=warmup)
    best_plain = min(base, key=base.get)
    keys = ("predicted_makespan_s", "predicted_replay_s", "measured_makespan_s", "prediction_error",
            "replay_prediction_error", "max_abs_diff")
    rows = [{"candidate": f"placement of {r['solver']}", "solver": r["solver"], "segments": len(r["segments"]),
             "timeline": r["timeline"], **{k: r[k] for k in keys}} for r in replays]
    whole = whole_model_schedule(problem, plain_configs()[best_plain][0])
    plain_pred = whole.makespan if whole is not None else None
    plain_replay = predict_replay(problem, whole) if whole is not None else None
    rows.append({"candidate": f"plain ONNX Runtime ({best_plain})", "solver": None, "segments": 1,
                 "timeline": "wall-clock",
                 "predicted_makespan_s": plain_pred, "predicted_replay_s": plain_replay,
                 "measured_makespan_s": base[best_plain],
                 "prediction_error": (base[best_plain] - plain_pred) / plain_pred if plain_pred else None,
                 "replay_prediction_error": (base[best_plain] - plain_replay) / plain_replay if plain_replay else None,
                 "max_abs_diff": 0.0})
    # only what ran for real can be recommended: a placement on a simulated device has a virtual timeline
    win = min((i for i, r in enumerate(rows) if r["timeline"] == "wall-clock"),
              key=lambda i: rows[i]["measured_makespan_s"])
    result: dict[str, Any] = dict(replays[win]) if win < len(replays) else {
        "format": "hetsched-replay/1", "solver": None, "timeline": "wall-clock", "repeats": repeats, "segments": [],
        "tolerance": tolerance}
    result.update({k: rows[win][k] for k in keys})
    measured = result["measured_makespan_s"]
    cores = os.cpu_count() or 1
    one_thread = min(v for k, v in base.items() if "_1_thread" in k)
    ideal = max(critical_path_bound(problem).value, one_thread / cores)
    headroom = base[best_plain] / ideal if ideal > 0 else None
    speedup = base[best_plain] / measured if measured > 0 else None
    result.update({
        "recommended": rows[win]["candidate"],
        "candidates": rows,
        "baselines": base,
        "best_baseline": best_plain,
        "speedup_vs_best_baseline": speedup,
        "headroom": headroom,
        "headroom_captured": (speedup - 1) / (headroom - 1) if headroom and speedup and headroom > 1 else None,
    })
    if export:
        if win < len(replays):
            export_placement(model, problem, chosen[win], export, level)
        else:
            export_plain(original, best_plain, export)
        result["export"] = export
    return result
