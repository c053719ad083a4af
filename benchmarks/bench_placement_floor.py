"""Placement floor: how fast any placement this search finds is *predicted* to run, beside the whole model.

The replay's segment-level prediction (:func:`scheduler.replay.predict_replay`,
median error 1.6% in ``bench_replay``) is the best model we have of what a
placement measures.  For each model, on its stored profile (profiled first when
there is none), this prints:

* ``whole_ms``: the whole model on the platform's all-core device (what plain ORT runs);
* ``t1_half_ms``: its one-thread time over the cores, and ``lp_bound_ms``, the
  problem's best lower bound: the floors the headroom and the certificate state;
* ``apart_cp_ms``: the critical path with every task on one core, which a
  placement over the cores apart cannot beat;
* ``solvers_ms`` / ``segments``: the best prediction among ``--solvers`` (on the
  whole platform and on the cores apart, :func:`scheduler.problem_views.disjoint_problems`),
  ``apart_ms`` the best over the cores apart;
* ``searched_ms`` / ``searched_segments``: after an iterated local search on the
  prediction itself (move one task; then a random task and its successors a few
  levels down to one device, searched again) for ``--seconds`` per start, from
  plain ORT's placement and from each solver's distinct placement over the cores
  apart (``apart_searched_ms`` / ``apart_segments``: the best of those);
* ``gain``: ``whole_ms / min(solvers, searched)``, what a placement may gain over
  plain ORT by this model: the part of the headroom a placement can capture.

No timing is done here (only the profile, when missing), so the figures are
deterministic for a stored profile.  Writes ``results/bench_placement_floor.{csv,md}``.

    python benchmarks/bench_placement_floor.py --seconds 30
"""

from __future__ import annotations

import argparse
import random
import time
from functools import partial
from typing import Mapping

import networkx as nx

from bench_headroom import MODELS
from bench_io import per_model, save
from scheduler.bounds import all_bounds, critical_path_bound
from scheduler.pipeline import ProfileOptions, load_problem
from scheduler.platform import usable_cpus
from scheduler.problem import Problem
from scheduler.problem_views import disjoint_problems
from scheduler.recommend import top_placements, whole_model_schedule
from scheduler.replay import predict_replay
from scheduler.segments import cut
from scheduler.semantics import simulate
from solvers import get_solver



def _predicted(problem: Problem, placement: Mapping[str, str], order: list[str]) -> float:
    """The segment-level prediction of ``placement`` with its tasks started in ``order``."""
    return predict_replay(problem, simulate(problem, placement, order))


def _descend(problem: Problem, placement: dict[str, str], order: list[str]) -> tuple[dict[str, str], float]:
    """First-improvement descent from ``placement``: move one task to another device while the prediction
    drops; the placement reached and its prediction."""
    best = _predicted(problem, placement, order)
    improved = True
    while improved:
        improved = False
        for t in order:
            for d in problem.allowed(t):
                if d != placement[t]:
                    cand = {**placement, t: d}
                    value = _predicted(problem, cand, order)
                    if value < best - 1e-12:
                        placement, best, improved = cand, value, True
    return placement, best


def search(problem: Problem, placement: Mapping[str, str], order: list[str], seconds: float,
           seed: int = 0) -> tuple[dict[str, str], float]:
    """Iterated local search on the segment-level prediction from ``placement`` for ``seconds``."""
    rng = random.Random(seed)
    dag = nx.DiGraph([(e.src, e.dst) for e in problem.graph.edges])
    dag.add_nodes_from(order)
    best_pl, best = _descend(problem, dict(placement), order)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start, device = rng.choice(order), rng.choice(problem.devices)
        moved = nx.bfs_tree(dag, start, depth_limit=rng.randint(1, 4)).nodes
        cand, value = _descend(problem, {**best_pl, **{t: device for t in moved if device in problem.allowed(t)}},
                               order)
        if value < best - 1e-12:
            best_pl, best = cand, value
    return best_pl, best


def floor_row(name: str, *, platform: str, solvers: list[str], seconds: float, profile_repeats: int,
              time_limit: float) -> dict[str, object]:
    """One model's figures (ms)."""
    _, problem = load_problem(name, None, platform, costs="profile", optimization="auto",
                              profile=ProfileOptions(folder="results/bench-profiles", repeats=profile_repeats))
    cores = len(usable_cpus())
    whole = whole_model_schedule(problem, cores)
    one = whole_model_schedule(problem, 1)
    apart = disjoint_problems(problem)[0]
    found = [(p, s) for p in (problem, apart) for s in (get_solver(n)(p, time_limit=time_limit) for n in solvers)
             if s.found]
    p0, s0 = min(found, key=lambda f: predict_replay(*f))
    solved = predict_replay(p0, s0)
    best = {"all": (solved, len(cut(p0, s0))), "apart": (float("inf"), 0)}
    # the starts: plain ORT's placement, and each solver's distinct placement over the cores apart
    starts = [(problem, whole)] + [(apart, s) for s in top_placements(apart, [s for p, s in found if p is apart], 9)]
    for p, s in starts:
        order = list(s.order(p))
        placement, value = search(p, s.placement, order, seconds)
        key = "apart" if p is apart else "all"
        if value < best[key][0]:
            best[key] = (value, len(cut(p, simulate(p, placement, order))))
    whole_ms = predict_replay(problem, whole) * 1e3
    found_ms, found_segments = min(best.values())
    return {"model": name, "tasks": len(problem.tasks), "whole_ms": whole_ms,
            "t1_half_ms": predict_replay(problem, one) / cores * 1e3,
            "lp_bound_ms": max(b.value for b in all_bounds(problem)) * 1e3,
            "apart_cp_ms": critical_path_bound(apart).value * 1e3,
            "solver": s0.solver, "solvers_ms": solved * 1e3, "segments": len(cut(p0, s0)),
            "apart_ms": min(predict_replay(apart, s) for p, s in starts[1:]) * 1e3,
            "apart_searched_ms": best["apart"][0] * 1e3, "apart_segments": best["apart"][1],
            "searched_ms": found_ms * 1e3, "searched_segments": found_segments, "gain": whole_ms / (found_ms * 1e3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--platform", default="cpu")
    ap.add_argument("--solvers", nargs="*", default=["heft", "cpop", "greedy", "portfolio", "cpsat"])
    ap.add_argument("--seconds", type=float, default=30.0, help="local search per start")
    ap.add_argument("--profile-repeats", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=10.0, help="per solver")
    ap.add_argument("--out", default="results/bench_placement_floor")
    args = ap.parse_args()
    table = per_model(args.models, partial(floor_row, platform=args.platform, solvers=args.solvers,
                                           seconds=args.seconds, profile_repeats=args.profile_repeats,
                                           time_limit=args.time_limit))
    text = "\n".join([
        f"# Placement floor (`python benchmarks/bench_placement_floor.py --seconds {args.seconds:g}`)", "",
        f"Platform `{args.platform}`, {time.strftime('%Y-%m-%d %H:%M')}; segment-level predictions on the stored "
        "profiles, in ms (no timing): the whole model on all cores (`whole_ms`), its one-thread time over the cores "
        "(`t1_half_ms`), the best lower bound (`lp_bound_ms`), the critical path with every task on one core "
        f"(`apart_cp_ms`), the best of {', '.join(args.solvers)} (`solvers_ms`; over the cores apart: `apart_ms`), "
        "and after a local search on the prediction from the whole model and from each distinct cores-apart "
        "placement (`searched_ms`; over the cores apart: `apart_searched_ms`). `gain` = "
        "whole / best found: what a placement may gain over plain ORT by this model.", "",
        "```\n" + table.round(3).to_string(index=False) + "\n```", ""])
    save(args.out, table, text)


if __name__ == "__main__":
    main()
