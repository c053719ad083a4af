"""The recommendation: replay the best few schedules, time plain ONNX Runtime, keep the fastest measured.

A placement is only worth recommending if it beats what the user already has, so
the candidates are the best ``k`` distinct placements by prediction (the
segment-level one, :func:`scheduler.replay.predict_replay`, which charges the
executor's per-segment costs the schedule cannot see) *and* the
whole model on plain ONNX Runtime with its best settings (timed in the same run).
The recommendation is the fastest **measured** candidate (a placement that uses a
simulated device has a virtual timeline, not a measurement, and is listed but not
recommended), and a placement only when it beats plain ORT beyond the noise of
this run: the lower end of a bootstrap interval of its speedup
(:func:`speedup_interval`) must be above 1, or plain ORT, which the user already
has, is recommended (a one-device placement of the optimised model often measures
a few percent apart from plain ORT on the same model, by chance either way).  The
result also states
the headroom on this host, ``best plain / max(critical path, 1-thread time /
cores)``, and how much of it the recommendation captured; and the part of it a
placement can reach by the measured costs (:func:`placement_headroom`).

Example
-------
>>> from scheduler.pipeline import build_problem, load_original
>>> from scheduler.semantics import simulate
>>> p = build_problem("mlp", platform="cpu")
>>> s = [simulate(p, {t: "cpu0" for t in p.tasks}), simulate(p, {t: "cpu0" for t in p.tasks})]
>>> len(top_placements(p, s, 3))
1
"""

from __future__ import annotations

import statistics
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from .bounds import Bound, all_bounds, critical_path_bound
from .errors import HetschedError
from .executor import round_order
from .inputs import Feeds
from .optimize import ModelBytes, session_data, unpacked
from .problem import Problem
from .problem_views import canonical_placement, symmetries
from .deploy import export_plain, export_segments
from .platform import usable_cpus
from .replay import (plain_configs, plain_samples, predict_replay, prepare_replay, reference_run, replay,
                     with_samples)
from .schedule import Schedule, validate
from .semantics import simulate


def top_placements(problem: Problem, schedules: Sequence[Schedule], k: int,
                   key: Callable[[Schedule], float] = lambda s: s.makespan) -> list[Schedule]:
    """The ``k`` best schedules by ``key`` with pairwise distinct placements, mirror images counted once
    (ties keep the given order)."""
    found = symmetries(problem)
    seen: set[tuple[str, ...]] = set()
    out = []
    for s in sorted((s for s in schedules if s.found), key=key):
        placement = canonical_placement(problem, s.placement, found)
        if placement not in seen:
            seen.add(placement)
            out.append(s)
        if len(out) == k:
            break
    return out


def as_candidate(problem: Problem, sub: Problem, schedule: Schedule) -> Schedule:
    """A schedule solved on ``sub`` (``problem`` on fewer devices, :func:`scheduler.problem_views.disjoint_problems`)
    as a schedule of ``problem``: the same placement and order, named after the devices it was
    limited to, a heuristic for ``problem`` whatever it proved for ``sub``.

    >>> from scheduler.pipeline import build_problem
    >>> from scheduler.problem_views import disjoint_problems
    >>> p = build_problem("mlp", platform="cpu")
    >>> sub = disjoint_problems(p)[0]
    >>> as_candidate(p, sub, simulate(sub, {t: "cpu1" for t in sub.tasks}, solver="single")).solver
    'single on cpu0+cpu1'
    """
    out = simulate(problem, schedule.placement, schedule.order(problem),
                   solver=f"{schedule.solver} on {'+'.join(sub.devices)}", status="heuristic",
                   solve_seconds=schedule.solve_seconds)
    errors = validate(problem, out)
    if errors:
        raise HetschedError(f"{out.solver}: not a schedule of {problem.label!r}: {errors[0]}")
    return out


def _label(problem: Problem, schedule: Schedule) -> str:
    """A candidate's name: the solver, and the simulated devices it uses, if any."""
    sims = sorted({d for d in schedule.placement.values() if problem.platform.device[d].simulated})
    return f"placement of {schedule.solver}" + (f" with simulated {', '.join(sims)}" if sims else "")


def ideal_time(problem: Problem, one_thread_s: float, cores: int, contention: float = 0.0) -> float:
    """The least time any placement over ``cores`` cores can take (s): the critical path, or the whole model's
    one-thread time spread evenly over the cores, each slowed by ``contention`` while the others work.

    ``best plain / ideal_time`` is the headroom the recommendation reports.
    """
    return max(critical_path_bound(problem).value, one_thread_s * (1 + contention) / cores)


def placement_headroom(problem: Problem, whole: Schedule | None, schedules: Sequence[Schedule],
                       bounds: Sequence[Bound] | None = None) -> float | None:
    """How many times faster than ``whole`` (the whole model on plain ORT's device) any placement of ``problem``
    can run by its costs: ``whole``'s makespan over the best lower bound known, of ``bounds`` (by default
    :func:`~scheduler.bounds.all_bounds`) and the certificates among ``schedules`` (an exact solver's proof).
    Sound under the costs, where the headroom is not: its floor, ``T1 / cores``, assumes one-thread work
    spreads evenly over the cores, which a model whose one-core critical path exceeds its two-thread time
    cannot do.  None without ``whole``.

    >>> from scheduler.pipeline import build_problem
    >>> p = build_problem("mlp", platform="cpu")
    >>> round(placement_headroom(p, whole_model_schedule(p, 1), []), 6)  # a chain, on its fastest device
    1.0
    """
    if whole is None or not whole.makespan:
        return None
    known = all_bounds(problem) if bounds is None else (*bounds, critical_path_bound(problem))
    floor = max([b.value for b in known] + [s.lower_bound for s in schedules if s.found and s.lower_bound])
    return whole.makespan / floor if floor > 0 else None


HEADROOM_FLOOR = 1.01
"""Below this headroom there is nothing to capture: the captured share would divide one run's noise by
another's (a headroom of 1.00005x made a 1.3% gain read as 27 713% captured)."""


def captured_share(speedup: float | None, headroom: float | None) -> float | None:
    """The share of the headroom that a speedup over the best plain ORT captured, ``(speedup - 1) / (headroom
    - 1)``; None without a headroom of at least :data:`HEADROOM_FLOOR`.

    >>> round(captured_share(1.15, 1.3), 6), captured_share(1.013, 1.00005)
    (0.5, None)
    """
    if speedup is None or headroom is None or headroom < HEADROOM_FLOOR:
        return None
    return (speedup - 1) / (headroom - 1)


def speedup_interval(baseline: Sequence[float], candidate: Sequence[float], *, confidence: float = 0.9,
                     resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval (two-sided ``confidence``) of ``median(baseline) / median(candidate)``, from
    the two sets of timed runs resampled independently: a speedup whose lower end is above 1 is one
    this run's noise does not explain (at ``confidence`` 0.9, one time in 20 by chance).

    >>> lo, hi = speedup_interval([2.0, 2.1, 1.9, 2.05, 1.95], [1.0, 1.05, 0.95, 1.02, 0.98])
    >>> 1.8 < lo <= hi < 2.2
    True
    """
    rng = np.random.default_rng(seed)
    a, b = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    ratios = (np.median(rng.choice(a, (resamples, a.size)), axis=1)
              / np.median(rng.choice(b, (resamples, b.size)), axis=1))
    tail = (1 - confidence) / 2
    return float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail))


def beats_plain(interval: tuple[float, float]) -> bool:
    """Whether a placement with this :func:`speedup_interval` over plain ORT may be recommended: only when
    the run's noise does not explain its gain (the lower end above 1)."""
    return interval[0] > 1.0


def whole_model_schedule(problem: Problem, threads: int) -> Schedule | None:
    """The whole model on the real device closest to ``threads`` intra-op threads (a plain ORT
    configuration), fewer rather than more, as a schedule."""
    reals = [d for d in problem.platform.devices if not d.simulated
             and all(d.name in problem.allowed(t) for t in problem.tasks)]
    if not reals:
        return None
    dev = min(reals, key=lambda d: (abs(d.threads - threads), d.threads, problem.platform.devices.index(d)))
    return simulate(problem, {t: dev.name for t in problem.tasks})


def recommend(original: onnx.ModelProto | ModelBytes, model: onnx.ModelProto | ModelBytes, problem: Problem,
              schedules: Sequence[Schedule], *,
              candidates: int = 3, key: Callable[[Schedule], float] | None = None, repeats: int = 10,
              warmup: int = 2, opt_level: str = "disable", tolerance: float = 1e-4, seed: int = 0,
              export: str | None = None, level: str = "none", progress: Callable[[str, int], Callable[[], None]] | None = None,
              stage: Callable[[str], None] = lambda text: None,
              simulated: tuple[Problem, Sequence[Schedule]] | None = None, rounds: int = 3,
              feeds: Feeds | None = None, bounds: Sequence[Bound] | None = None) -> dict[str, Any]:
    """Replay the best ``candidates`` placements, time plain ORT, and recommend the fastest measured.

    Returns the ``replay.json`` structure: the recommended candidate's fields
    (``measured_makespan_s``, ``predicted_makespan_s``, ``max_abs_diff``, plus the
    replay details when it is a placement), ``best_baseline`` and
    ``speedup_vs_best_baseline``, every candidate measured vs predicted, the plain
    baselines, and the headroom.  ``export`` writes the recommendation as a
    deployment folder (:mod:`scheduler.deploy`); ``level`` is the optimisation
    ``model`` went through.  ``original``, the user's model that plain ORT runs, and ``model`` may
    each be given as its :func:`~scheduler.optimize.session_data`, which holds its large values once.

    The ``repeats`` are spread over ``rounds``: each round times every candidate
    and every plain configuration, in a rotating order, and the samples are
    pooled (one burst of load on a shared host would otherwise hit one candidate).
    Every run takes ``feeds`` (the user's inputs), or random inputs from ``seed``.

    ``bounds``: lower bounds on ``problem`` already known (default: computed), for :func:`placement_headroom`.

    ``simulated`` is the what-if: the same model on a platform that adds simulated
    devices to ``problem``'s real ones (:func:`scheduler.problem_views.host_problem`),
    with its schedules.  Its best placement by prediction that uses a simulated
    device is replayed too, listed on its virtual timeline and summed up under
    ``what_if``; it is never recommended.
    """
    original, model = session_data(original), session_data(model)  # a proto's large values once for all rounds
    rank = key or (lambda s: predict_replay(problem, s))
    chosen = [(problem, s) for s in top_placements(problem, schedules, candidates, rank)]
    if simulated is not None:
        sim_problem, sim_schedules = simulated
        sims = [s for s in sim_schedules if s.found and any(sim_problem.platform.device[d].simulated
                                                            for d in set(s.placement.values()))]
        chosen += [(sim_problem, s) for s in top_placements(
            sim_problem, sims, 1, key or (lambda s: predict_replay(sim_problem, s)))]
    # rounds: every candidate and every plain configuration is timed in each round, in a rotating order,
    # and the samples are pooled, so that a burst of load on this shared host hits them all alike
    rounds = max(1, min(rounds, repeats))
    per = -(-repeats // rounds)
    # one reference run and one cut per candidate, reused by every round (sessions are made anew per round)
    reference = reference_run(model, seed, problem.label, feeds)
    shared: dict[str, np.ndarray] = {}  # the model's large values, once for all candidates
    prepared = [prepare_replay(model, p, s, reference, shared=shared) for p, s in chosen]
    replays: list[dict[str, Any]] = [{} for _ in chosen]
    samples: list[list[float]] = [[] for _ in chosen]
    plain: dict[str, list[float]] = {}
    for r in range(rounds):
        for i in round_order(len(chosen) + 1, r):  # the last job: the plain ORT configurations
            if i == len(chosen):
                stage(f"round {r + 1}/{rounds}: plain ONNX Runtime baselines ({per} repeats each)")
                for label, times in plain_samples(original, reference.feeds, repeats=per, warmup=warmup).items():
                    plain.setdefault(label, []).extend(times)
                continue
            p, s = chosen[i]
            stage(f"round {r + 1}/{rounds}: replay {i + 1}/{len(chosen)}: {s.solver} on {p.platform.name} "
                  f"({per} repeats)")
            replays[i] = replay(model, p, s, repeats=per, warmup=warmup, opt_level=opt_level,
                                tolerance=tolerance, baselines=False, prepared=prepared[i], progress=progress)
            samples[i] += replays[i]["samples_s"]
    replays = [with_samples(res, times) for res, times in zip(replays, samples)]
    base = {label: statistics.median(times) for label, times in plain.items()}
    best_plain = min(base, key=base.get)
    keys = ("predicted_makespan_s", "predicted_replay_s", "measured_makespan_s", "prediction_error",
            "replay_prediction_error", "max_abs_diff")
    # a measured placement's speedup over the best plain configuration, as an interval this run's noise allows
    rows = [{"candidate": _label(p, s), "solver": r["solver"], "platform": p.platform.name,
             "segments": len(r["segments"]), "timeline": r["timeline"], **{k: r[k] for k in keys},
             "speedup_interval": speedup_interval(plain[best_plain], times, seed=seed)
             if r["timeline"] == "wall-clock" else None}
            for (p, s), r, times in zip(chosen, replays, samples)]
    whole = whole_model_schedule(problem, plain_configs()[best_plain].threads)
    plain_pred = whole.makespan if whole is not None else None
    plain_replay = predict_replay(problem, whole) if whole is not None else None
    rows.append({"candidate": f"plain ONNX Runtime ({best_plain})", "solver": None,
                 "platform": problem.platform.name, "segments": 1,
                 "timeline": "wall-clock",
                 "predicted_makespan_s": plain_pred, "predicted_replay_s": plain_replay,
                 "measured_makespan_s": base[best_plain],
                 "prediction_error": (base[best_plain] - plain_pred) / plain_pred if plain_pred else None,
                 "replay_prediction_error": (base[best_plain] - plain_replay) / plain_replay if plain_replay else None,
                 "max_abs_diff": 0.0, "speedup_interval": None})
    # only what ran for real can be recommended: a placement on a simulated device has a virtual timeline
    win = min((i for i, r in enumerate(rows) if r["timeline"] == "wall-clock"),
              key=lambda i: rows[i]["measured_makespan_s"])
    fastest = {"candidate": rows[win]["candidate"], "speedup_interval": rows[win]["speedup_interval"]}
    if win < len(replays) and not beats_plain(rows[win]["speedup_interval"]):
        win = len(rows) - 1
    result: dict[str, Any] = dict(replays[win]) if win < len(replays) else {
        "format": "hetsched-replay/1", "solver": None, "timeline": "wall-clock", "repeats": len(plain[best_plain]),
        "segments": [], "tolerance": tolerance}
    result.update({k: rows[win][k] for k in keys})
    measured = result["measured_makespan_s"]
    cores = len(usable_cpus())
    one_thread = min(v for k, v in base.items() if "_1_thread" in k)
    ideal = ideal_time(problem, one_thread, cores)
    headroom = base[best_plain] / ideal if ideal > 0 else None
    speedup = base[best_plain] / measured if measured > 0 else None
    reachable = placement_headroom(problem, whole, schedules, bounds)
    result.update({
        "recommended": rows[win]["candidate"],
        "fastest_measured": fastest,
        "candidates": rows,
        "baselines": base,
        "best_baseline": best_plain,
        "speedup_vs_best_baseline": speedup,
        "headroom": headroom,
        "headroom_captured": captured_share(speedup, headroom),
        "placement_headroom": reachable,
        "placement_headroom_captured": captured_share(speedup, reachable),
    })
    if simulated is not None:
        what = next((r for r in rows if r["platform"] != problem.platform.name), None)
        result["what_if"] = {"platform": simulated[0].platform.name, "candidate": None} if what is None else {
            "platform": what["platform"], "candidate": what["candidate"],
            "predicted_replay_s": what["predicted_replay_s"], "virtual_makespan_s": what["measured_makespan_s"],
            "speedup_vs_recommended": measured / what["measured_makespan_s"] if what["measured_makespan_s"] > 0
            else None}
    if export:
        if win < len(replays):
            export_segments(list(prepared[win].parts), chosen[win][0], export, unpacked(model)[0], level, feeds)
        else:
            export_plain(original, best_plain, export, feeds)
        result["export"] = export
    return result
