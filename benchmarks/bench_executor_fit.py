"""How steady the executor's fitted costs are from one profile to the next: one random placement against three.

``fit_executor`` (:mod:`scheduler.profile_runs`) replays random placements and
fits a call cost per device, one cost per byte a segment takes in or gives back,
and one switch cost; the switch is what the calls leave of a placement's
measured makespan, so a burst of load during the replay moves it.  This fits the
costs ``--fits`` times over on the same stored profile, with one placement and
with :data:`scheduler.profiling.EXECUTOR_PLACEMENTS`, and reports the spread,
``(max - min) / median``.  Writes ``results/bench_executor_fit.{csv,md}``.

    python benchmarks/bench_executor_fit.py --fits 4
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import pandas as pd

from bench_io import save
from scheduler.pipeline import ProfileOptions, load_problem
from scheduler.problem import ExecutorCosts
from scheduler.profile_runs import fit_executor
from scheduler.profiling import EXECUTOR_PLACEMENTS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["randwire-imagenet", "squeezenet1.1"])
    ap.add_argument("--fits", type=int, default=4)
    ap.add_argument("--out", default="results/bench_executor_fit")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        model, problem = load_problem(name, None, "cpu", costs="profile", optimization="auto",
                                      profile=ProfileOptions(folder="results/bench-profiles", repeats=10))
        ex = problem.executor or ExecutorCosts({}, 0.0)  # its fitted costs taken off, its contention and packing kept
        bare = replace(problem, executor=replace(ex, call_s={}, switch_s=0.0, byte_s=0.0))
        for placements in (1, EXECUTOR_PLACEMENTS):
            fits = [fit_executor(model, bare, placements=placements) for _ in range(args.fits)]
            row: dict[str, object] = {"model": name, "placements": placements}
            for key, values in (("switch_us", [f.switch_s * 1e6 for f in fits]),
                                ("cpu0_call_us", [f.call_s["cpu0"] * 1e6 for f in fits]),
                                ("per_mb_us", [f.byte_s * 2**20 * 1e6 for f in fits])):
                row[key] = " ".join(f"{v:.0f}" for v in values)
                row[key.removesuffix("_us") + "_spread"] = ((max(values) - min(values)) / statistics.median(values)
                                                            if statistics.median(values) else None)
            rows.append(row)
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    save(args.out, table, "\n".join([
        f"# Executor fit, one placement against {EXECUTOR_PLACEMENTS} (`python benchmarks/bench_executor_fit.py "
        f"--fits {args.fits}`)", "", f"Platform `cpu`, {time.strftime('%Y-%m-%d %H:%M')}: {args.fits} fits on one "
        "stored profile per model; spread = (max - min) / median.", "",
        "```\n" + table.round(3).to_string(index=False) + "\n```", ""]))


if __name__ == "__main__":
    main()
