"""Throughput on real cores: pipelined placements measured as a stream against plain ONNX Runtime's stream.

For each model (zoo presets at real sizes) on platform ``cpu`` (this machine's
cores): optimise with ORT (level ``auto``), profile afresh, solve for throughput
with every solver that takes the objective and place with the others
(``--time-limit`` s each; every placement has a period), and run each
distinct placement as a stream of ``--inferences`` inferences pipelined across
the devices (:func:`scheduler.stream.replay_stream`; the first ``--warmup`` fill
the pipeline).  Plain ONNX Runtime runs the same stream in the same run: one
session in each configuration, and one single-threaded session per core at once.

Reports per placement the predicted period (the schedule's, and by segment with
the executor's costs), the measured one, and the throughput against the best plain
stream and against the best single session.  Writes ``results/bench_stream.csv`` and
``results/bench_stream.md``.

    python benchmarks/bench_stream.py --inferences 40 --warmup 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

from bench_io import save
from scheduler.compare_report import markdown_table
from scheduler.pipeline import ProfileOptions, load_original, load_problem
from scheduler.platform import usable_cpus
from scheduler.replay import reference_run
from scheduler.stream import AT_ONCE, plain_stream, replay_stream, stream_feeds
from solvers import SOLVERS, get_solver, solver_names

MODELS = ["inception-imagenet", "randwire-imagenet", "squeezenet1.1", "siamese-lstm"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inferences", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--profile-repeats", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=10.0, help="per solver")
    ap.add_argument("--platform", default="cpu")
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--out", default="results/bench_stream")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        t0 = time.perf_counter()
        model, problem = load_problem(name, None, args.platform, costs="profile", optimization="auto",
                                      profile=ProfileOptions(folder="results/bench-profiles",
                                                             repeats=args.profile_repeats, force=True))
        original, _ = load_original(name)
        seen, schedules = set(), []
        for n in solver_names(dispatchers=False):  # every placement has a period: the latency solvers' too
            options = {"objective": "throughput"} if "objective" in SOLVERS[n].options else {}
            s = get_solver(n, **options)(problem, time_limit=args.time_limit)
            if not s.found:
                continue
            key = tuple(tuple(p[t] for t in problem.tasks) for p in s.copies)
            if key not in seen:
                seen.add(key)
                schedules.append(s)
        print(f"{name}: {len(problem.tasks)} tasks, {len(schedules)} distinct placements", flush=True)
        reference = reference_run(model, 0, name)
        feeds = stream_feeds(reference.feeds, args.inferences, 0)
        plain = plain_stream(original, feeds, args.warmup, len(usable_cpus()))
        best = min(plain, key=plain.get)
        single = min(v for k, v in plain.items() if not k.endswith(AT_ONCE))
        for s in schedules:
            r = replay_stream(model, problem, s, inferences=args.inferences, warmup=args.warmup, baselines=False,
                              reference=reference)
            rows.append({"model": name, "tasks": len(problem.tasks), "solver": s.solver, "copies": r["copies"],
                         "segments": r["segments"],
                         "devices": len({d for p in s.copies for d in p.values()}),
                         "predicted_ms": r["predicted_period_s"] * 1e3,
                         "by_segment_ms": r["predicted_segment_period_s"] * 1e3,
                         "measured_ms": r["measured_period_s"] * 1e3,
                         "segment_error": r["segment_prediction_error"],
                         "best_plain": best, "best_plain_ms": plain[best] * 1e3,
                         "one_session_ms": single * 1e3,
                         "vs_best_plain": plain[best] / r["measured_period_s"],
                         "vs_one_session": single / r["measured_period_s"]})
            print(f"  {s.solver}: measured {r['measured_period_s'] * 1e3:.2f} ms/inference, by segment "
                  f"{r['predicted_segment_period_s'] * 1e3:.2f}, best plain {plain[best] * 1e3:.2f} ({best})",
                  flush=True)
        print(f"  {name} took {time.perf_counter() - t0:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    summary = table.loc[table.groupby("model")["measured_ms"].idxmin()][
        ["model", "tasks", "solver", "copies", "segments", "devices", "by_segment_ms", "measured_ms", "segment_error",
         "one_session_ms", "best_plain", "best_plain_ms", "vs_one_session", "vs_best_plain"]]
    errors = table["segment_error"].abs()
    few = table["segments"] <= 20
    by_size = (f" Placements of at most 20 segments ({few.sum()}): median {errors[few].median():.1%}, worst "
               f"{errors[few].max():.1%}; of more ({(~few).sum()}): median {errors[~few].median():.1%}, worst "
               f"{errors[~few].max():.1%}." if few.any() and (~few).any() else "")
    text = (f"# Stream benchmark (`python benchmarks/bench_stream.py --inferences {args.inferences} "
            f"--warmup {args.warmup}`)\n\nPeriods in ms per inference on platform `{args.platform}`, "
            f"{time.strftime('%Y-%m-%d %H:%M')}; the best measured placement per model, against plain ONNX "
            "Runtime on the same stream (one session in its best configuration; one single-threaded session per "
            f"core at once).\n\n{markdown_table(summary.round(3))}\n\nSegment-level period prediction over "
            f"all {len(table)} placements: median |error| {statistics.median(errors):.1%}, worst {errors.max():.1%}."
            + by_size + "\n\nAll placements:\n\n" + markdown_table(table.drop(columns=["best_plain"]).round(3)) + "\n")
    save(args.out, table, text)


if __name__ == "__main__":
    main()
