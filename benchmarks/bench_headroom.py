"""Headroom budget: what a placement over the cores may spend on hand-overs and still beat plain ONNX Runtime.

A placement over the cores apart (``cpu0`` + ``cpu1``, one thread each; on platform
``cores``, the finest parts of the host) can beat plain ORT on all cores only by
the headroom, ``T2 - max(critical path, T1 / cores)`` (``T1``, ``T2``: the whole
model at ``ORT_ENABLE_ALL`` on one thread and on every core, timed alone).  Two
things measured here eat into it before any scheduling choice:

* **contention**: a core runs slower while the other works (profiled,
  :func:`scheduler.profile_runs.measure_contention`), so the floor is
  ``max(critical path, T1 (1 + contention) / cores)`` (:func:`scheduler.recommend.ideal_time`);
* **crossing cost**: a segment takes longer inside a run than alone on its own
  inputs (its inputs were written by the other core, the weights left the cache,
  its worker was asleep); the median excess per segment over the best
  cores-apart placement (by segment-level prediction) of ``--solvers``.

``budget = T2 - floor`` is the time a placement may lose to hand-overs and still
tie plain ORT; ``budget / crossing cost`` the segments it pays for, and likewise
for capturing half the headroom (issue 11's target).  The placement itself is
timed in the same rounds as plain ORT.  Writes ``results/bench_headroom.{csv,md}``.

    python benchmarks/bench_headroom.py --repeats 20 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial


from bench_io import per_model, save
from scheduler.executor import SegmentRunner, random_inputs, timed_runs
from scheduler.optimize import model_bytes, session
from scheduler.pipeline import ProfileOptions, load_original, load_problem
from scheduler.platform import usable_cpus
from scheduler.problem_views import disjoint_problems
from scheduler.recommend import ideal_time
from scheduler.replay import predict_replay, prepare_replay, runner_parts, segment_sessions
from solvers import get_solver

MODELS = ["inception-imagenet", "randwire-imagenet", "squeezenet1.1", "siamese-lstm"]


def budget_row(name: str, *, platform: str, solvers: list[str], repeats: int, rounds: int, profile_repeats: int,
               time_limit: float) -> dict[str, object]:
    """One model's headroom budget (times in ms, crossing cost in µs)."""
    model, problem = load_problem(name, None, platform, costs="profile", optimization="auto",
                                  profile=ProfileOptions(folder="results/bench-profiles", repeats=profile_repeats,
                                                         force=True))
    cores = len(usable_cpus())
    sub = disjoint_problems(problem)[0]
    found = [s for s in (get_solver(n)(sub, time_limit=time_limit) for n in solvers) if s.found]
    best = min(found, key=lambda s: predict_replay(sub, s))
    prepared = prepare_replay(model, sub, best)
    data = model_bytes(load_original(name)[0])
    per = max(1, -(-repeats // rounds))
    times: dict[str, list[float]] = {"t1": [], "t2": [], "placement": []}
    inside: dict[int, list[float]] = {p.segment.index: [] for p in prepared.parts}
    alone: dict[int, list[float]] = {k: [] for k in inside}
    for _ in range(rounds):
        for key, threads in (("t1", 1), ("t2", cores)):
            plain = session(data, "all", threads)
            times[key] += timed_runs(partial(plain.run, None, random_inputs(plain)), 3, per)
            del plain  # its spinning threads must not run beside the next timing
        sessions = segment_sessions(sub, prepared.parts)
        runner = SegmentRunner(runner_parts(sub, prepared.parts), sessions)
        try:
            for i in range(3 + per):
                tensors, timing, wall = runner.run(prepared.reference.feeds)
                if i >= 3:
                    times["placement"].append(wall)
                    for k in inside:
                        inside[k].append(timing.end[k] - timing.begin[k])
        finally:
            runner.close()
        for p, s in zip(prepared.parts, sessions):
            alone[p.segment.index] += timed_runs(partial(s.run, list(p.outputs), {x: tensors[x] for x in p.inputs}),
                                                 3, per)
        del runner, sessions
    t1, t2, measured = (statistics.median(times[k]) for k in ("t1", "t2", "placement"))
    contention = problem.executor.contention if problem.executor is not None else 0.0
    headroom = t2 / ideal_time(problem, t1, cores)
    floor = ideal_time(problem, t1, cores, contention)
    half = t2 / (1 + (headroom - 1) / 2)  # the time that captures half the headroom
    crossing = statistics.median(statistics.median(v) - statistics.median(alone[k]) for k, v in inside.items())
    segments = len(prepared.parts)
    return {"model": name, "t1_ms": t1 * 1e3, "t2_ms": t2 * 1e3, "headroom": headroom, "contention": contention,
            "floor_ms": floor * 1e3, "budget_ms": (t2 - floor) * 1e3, "half_budget_ms": (half - floor) * 1e3,
            "crossing_us": crossing * 1e6, "segments_paid": (t2 - floor) / crossing if crossing > 0 else None,
            "segments_paid_half": (half - floor) / crossing if crossing > 0 else None,
            "placement": best.solver, "segments": segments, "predicted_ms": predict_replay(sub, best) * 1e3,
            "placement_ms": measured * 1e3,
            "vs_plain": t2 / measured}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--platform", default="cpu", help="cores: this host's quarters, halves and whole")
    ap.add_argument("--solvers", nargs="*", default=["heft", "cpop", "lns"])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile-repeats", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=5.0, help="per solver")
    ap.add_argument("--out", default="results/bench_headroom")
    args = ap.parse_args()
    table = per_model(args.models, partial(budget_row, platform=args.platform, solvers=args.solvers,
                                           repeats=args.repeats, rounds=args.rounds,
                                           profile_repeats=args.profile_repeats, time_limit=args.time_limit))
    text = "\n".join([
        f"# Headroom budget (`python benchmarks/bench_headroom.py --repeats {args.repeats} --rounds {args.rounds}`)",
        "", f"Platform `{args.platform}`, {len(usable_cpus())} cores, {time.strftime('%Y-%m-%d %H:%M')}; times are "
        "medians, in ms; `crossing_us` is the median excess of a segment inside a run over the same segment alone "
        "on its inputs; `segments_paid` = budget / crossing cost (to tie plain ORT), `segments_paid_half` likewise "
        "to capture half the headroom; "
        f"the placement is the best cores-apart one of {', '.join(args.solvers)} by segment-level prediction "
        "(`predicted_ms`), timed in the same rounds as plain ORT.", "",
        "```\n" + table.round(3).to_string(index=False) + "\n```", ""])
    save(args.out, table, text)


if __name__ == "__main__":
    main()
