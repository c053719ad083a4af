"""Which whole-model time should calibrate a profile: the one timed at each device's node run, or the mean of it
and the check's timing at the end of profiling (what profiles keep).

A device's node costs are scaled to its whole-model time (``Profile.calibrated``).  A two-thread session on
this host runs slow for stretches of 0.4-11 s (``bench_host_phases.py``), so one timing lands in one speed or
the other.  For each model, profile ``--trials`` times on platform ``cpu`` and right after each, time every
node run's configuration as a replay's rounds see it: ``--rounds`` rounds of ``--repeats`` runs, each round
followed by ``--gap`` seconds of one-thread runs (the other candidates of a replay), the median of the rounds'
medians.  Reported per model and device: the median and worst |time / measured - 1| of the node run's
timing (``node_run_s``) and of the mean (``whole_run_s``), and in how many trials the mean came closer.
Writes ``results/bench_calibration.{csv,md}``.

    python benchmarks/bench_calibration.py --models siamese-lstm squeezenet1.1 --trials 12
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import pandas as pd

from bench_io import save
from scheduler.executor import random_inputs, session_call, timed_runs
from scheduler.optimize import session, session_data
from scheduler.pipeline import load_graph, optimized_cache
from scheduler.platform import load_platform
from scheduler.profile_runs import profile_model
from scheduler.profiling import plan_profiling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["siamese-lstm"])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=7, help="runs per configuration and round after the profile")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--gap", type=float, default=2.5, help="seconds of one-thread runs after each round")
    ap.add_argument("--out", default="results/bench_calibration")
    args = ap.parse_args()
    platform = load_platform("cpu")
    rows = []
    for name in args.models:
        model, graph = load_graph(name, optimization="all", cache_dir=optimized_cache("results/bench-profiles"))
        data = session_data(model)
        plan = plan_profiling(graph, platform)
        for trial in range(args.trials):
            prof = profile_model(data, graph, platform, seed=trial)

            def timed(run, repeats: int) -> float:  # a fresh session, as a replay of the whole model makes
                sess = session(data, "none", run.threads, run.provider, packed=run.devices[0] not in prof.unpacked)
                return statistics.median(timed_runs(partial(session_call(sess), random_inputs(sess, trial)), 3,
                                                    repeats))

            rounds: dict[str, list[float]] = {run.devices[0]: [] for run in plan.node_runs}
            for _ in range(args.rounds):
                for run in plan.node_runs:
                    rounds[run.devices[0]].append(timed(run, args.repeats))
                until = time.perf_counter() + args.gap
                while time.perf_counter() < until:
                    timed(plan.node_runs[0], 5)
            for dev, values in rounds.items():
                measured = statistics.median(values)
                rows.append({"model": name, "trial": trial, "device": dev, "measured_ms": measured * 1e3,
                             "node_run_ms": prof.node_run_s[dev] * 1e3, "mean_ms": prof.whole_run_s[dev] * 1e3,
                             "node_run_error": abs(prof.node_run_s[dev] / measured - 1),
                             "mean_error": abs(prof.whole_run_s[dev] / measured - 1)})
                print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    table = pd.DataFrame(rows)
    summary = (table.assign(closer=table["mean_error"] < table["node_run_error"])
               .groupby(["model", "device"])
               .agg(trials=("trial", "count"), node_run_median=("node_run_error", "median"),
                    node_run_worst=("node_run_error", "max"), mean_median=("mean_error", "median"),
                    mean_worst=("mean_error", "max"), mean_closer=("closer", "sum")).reset_index())
    save(args.out, table, "\n".join([
        f"# Calibration time: the node run's timing or the mean with the check's (`python "
        f"benchmarks/bench_calibration.py --models {' '.join(args.models)} --trials {args.trials}`)", "",
        f"Platform `cpu`, {time.strftime('%Y-%m-%d %H:%M')}; errors are |time / measured - 1|, measured right "
        f"after each profile in {args.rounds} rounds of {args.repeats} runs, {args.gap:g} s of one-thread runs "
        "after each; `mean_closer`: trials where the mean came closer.", "",
        "```\n" + summary.round(3).to_string(index=False) + "\n```", ""]))


if __name__ == "__main__":
    main()
