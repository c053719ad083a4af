"""A batch of B independent inferences on real cores (Ramiel's hyperclustering): one makespan for the batch.

For each model (zoo presets at real sizes) and batch size B on platform ``cpu``:
B copies of the model side by side (:mod:`scheduler.batch`), optimised by ORT (level
``auto``) and profiled afresh; every ``--solvers`` placement is replayed and the
fastest measured is recommended (:func:`scheduler.recommend.recommend`), against
plain ONNX Runtime on the same run: the B-copy model in one call (every
configuration, ORT_PARALLEL included, which may overlap the copies) and B calls
of the single model one after the other (its best configuration, timed in the same
run).  Writes ``results/bench_batch.csv`` and ``results/bench_batch.md``.

    python benchmarks/bench_batch.py --batches 2 4
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from bench_io import save
from scheduler.compare_report import markdown_table
from scheduler.pipeline import ProfileOptions, load_original, load_problem
from scheduler.recommend import recommend
from scheduler.replay import plain_baselines, reference_run
from solvers import get_solver

MODELS = ["siamese-lstm", "squeezenet1.1", "inception-imagenet"]
SOLVERS = ["heft", "linear-clustering", "lns", "cpsat"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", nargs="*", type=int, default=[2, 4])
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--solvers", nargs="*", default=SOLVERS)
    ap.add_argument("--time-limit", type=float, default=10.0, help="per solver")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--profile-repeats", type=int, default=10)
    ap.add_argument("--out", default="results/bench_batch")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        single, _ = load_original(name)
        one = plain_baselines(single, reference_run(single, 0, name).feeds, repeats=args.repeats)
        one_best = min(one.values())
        for b in args.batches:
            t0 = time.perf_counter()
            model, problem = load_problem(name, None, "cpu", costs="profile", optimization="auto", batch=b,
                                          profile=ProfileOptions(folder="results/bench-profiles",
                                                                 repeats=args.profile_repeats, force=True))
            original, _ = load_original(name, batch=b)
            found = [s for s in (get_solver(n)(problem, time_limit=args.time_limit) for n in args.solvers) if s.found]
            r = recommend(original, model, problem, found, candidates=len(found), repeats=args.repeats, rounds=2,
                          stage=lambda text: print(f"  {name} x{b}: {text}", flush=True))
            plain_best = r["baselines"][r["best_baseline"]]
            rows.append({"model": name, "batch": b, "tasks": len(problem.tasks), "recommended": r["recommended"],
                         "measured_ms": r["measured_makespan_s"] * 1e3,
                         "plain_one_call_ms": plain_best * 1e3, "plain_one_call": r["best_baseline"],
                         "b_single_calls_ms": b * one_best * 1e3,
                         "vs_one_call": plain_best / r["measured_makespan_s"],
                         "vs_b_calls": b * one_best / r["measured_makespan_s"],
                         **{f"{c['solver']}_ms": c["measured_makespan_s"] * 1e3 for c in r["candidates"]
                            if c["solver"]}})
            print(f"{name} x{b}: {r['recommended']} {r['measured_makespan_s'] * 1e3:.2f} ms, plain one call "
                  f"{plain_best * 1e3:.2f} ms, {b} single calls {b * one_best * 1e3:.2f} ms "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    shown = table[["model", "batch", "tasks", "recommended", "measured_ms", "plain_one_call_ms", "plain_one_call",
                   "b_single_calls_ms", "vs_one_call", "vs_b_calls"]].round(3)
    text = (f"# Batch benchmark (`python benchmarks/bench_batch.py --batches {' '.join(map(str, args.batches))}`)"
            f"\n\nMakespan of a batch of B inferences on platform `cpu`, {time.strftime('%Y-%m-%d %H:%M')}: the "
            "recommendation (every solver's placement of the B-copy model and plain ORT, fastest measured) "
            "against plain ONNX Runtime running the B copies in one call (its best configuration) and B calls "
            "of the single model.\n\n" + markdown_table(shown) + "\n")
    save(args.out, table, text)


if __name__ == "__main__":
    main()
