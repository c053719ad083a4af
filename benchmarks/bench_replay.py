"""Replay benchmark: replayed vs predicted makespan, and speedup over plain ONNX Runtime.

For branchy zoo models (randwire, inception) and BERT-like models on the real CPU
devices of this machine (platform ``cpu``: cpu0, cpu1, cpu-par), with costs from a
profile: solve with each solver, replay every schedule ``--repeats`` times, and
report per (model, solver) the median replayed makespan, the prediction error, and
the speedup of the placement over the best plain ONNX Runtime configuration
measured in the same run (sequential 1 thread, all threads, ORT_PARALLEL,
optimised).  Targets (issue 7): median |prediction error| under 15%; speedup above
1.0 on the branchy models.

    python benchmarks/bench_replay.py --repeats 30
"""

from __future__ import annotations

import argparse
import statistics

import pandas as pd

from scheduler.fileio import write_text
from scheduler.pipeline import ProfileOptions, build_problem, load_graph
from scheduler.replay import replay
from solvers import get_solver, solver_names

MODELS = {
    "randwire": {"nodes": 16, "channels": 32, "image": 32},
    "inception": {"blocks": 3, "channels": 32, "image": 32},
    "bert": {"layers": 2, "hidden": 256, "heads": 4, "intermediate": 1024, "seq_len": 64},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--profile-repeats", type=int, default=20)
    ap.add_argument("--time-limit", type=float, default=20.0, help="for exact solvers")
    ap.add_argument("--platform", default="cpu")
    ap.add_argument("--solvers", nargs="*", default=None, help="default: every registered solver")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--out", default="results/bench_replay.csv")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        params = MODELS[name]
        model, _ = load_graph(name, params)
        # profile afresh: on a shared host the speed drifts over minutes, so a stored profile goes stale
        problem = build_problem(name, params, args.platform, costs="profile",
                                profile=ProfileOptions(repeats=args.profile_repeats, force=True))
        for solver in args.solvers or solver_names():
            schedule = get_solver(solver)(problem, time_limit=args.time_limit)
            if not schedule.found:
                continue
            r = replay(model, problem, schedule, repeats=args.repeats)
            rows.append({
                "model": name, "tasks": len(problem.tasks), "solver": solver, "segments": len(r["segments"]),
                "predicted_ms": r["predicted_makespan_s"] * 1e3, "measured_ms": r["measured_makespan_s"] * 1e3,
                "error": r["prediction_error"], "spread": r["measured"]["spread"],
                "best_plain_ms": r["baselines"][r["best_baseline"]] * 1e3, "best_plain": r["best_baseline"],
                "speedup": r["speedup_vs_best_baseline"], "max_abs_diff": r["max_abs_diff"],
            })
            print(f"{name:<10} {solver:<18} segments {len(r['segments']):>3}  predicted {rows[-1]['predicted_ms']:.3f} ms"
                  f"  measured {rows[-1]['measured_ms']:.3f} ms  error {r['prediction_error']:+.1%}"
                  f"  speedup {r['speedup_vs_best_baseline']:.2f}x", flush=True)
    table = pd.DataFrame(rows)
    write_text(args.out, table.to_csv(index=False))
    print()
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(table.round(4).to_string(index=False))
    abs_err = table["error"].abs()
    print(f"\nmedian |prediction error|: {statistics.median(abs_err):.1%} (target < 15%)")
    best = table.loc[table.groupby("model")["measured_ms"].idxmin()]
    for _, row in best.iterrows():
        print(f"best placement for {row['model']}: {row['solver']} {row['measured_ms']:.3f} ms vs plain ORT "
              f"{row['best_plain_ms']:.3f} ms ({row['best_plain']}): speedup {row['speedup']:.2f}x")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
