"""Profiling's calibration timed in rounds against one device after the other: how well a profile predicts
the ratio of its devices' whole-model times.

Each device's node costs are scaled to its whole-model time (``Profile.calibrated``). For each model,
profile ``--trials`` times on platform ``cpu`` with ``rounds=1`` (each device's whole model timed right after
its trace, one device after the other) and with ``--rounds`` (timed in rotating rounds over the devices),
alternating which goes first; right after each profile, time every profiled configuration again in rounds
(the same sessions as a one-device replay, optimisations off). Reported per model and mode: the median and
worst |predicted / measured - 1| of each device's whole model, and of the ratio of two devices' times
(what decides a placement across them; a load change between the devices' timings shows there).

    python benchmarks/bench_profile_rounds.py --trials 4
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from functools import partial

import pandas as pd

from scheduler.compare_report import markdown_table
from scheduler.executor import session_call
from scheduler.fileio import write_text
from scheduler.optimize import random_inputs, session, session_bytes
from scheduler.pipeline import load_graph
from scheduler.platform import load_platform
from scheduler.profile_runs import interleaved_runs, profile_model
from scheduler.profiling import plan_profiling


def measured_now(model, plan, repeats: int, rounds: int) -> dict[str, float]:
    """Every node run's configuration, whole model, timed in rounds: device -> median (s)."""
    data = session_bytes(model)
    sessions = [session(data, "none", run.threads, run.provider) for run in plan.node_runs]
    calls = [partial(session_call(s), random_inputs(s, 0, None)) for s in sessions]
    walls = interleaved_runs(calls, 3, repeats, rounds)
    return {dev: statistics.median(w) for run, w in zip(plan.node_runs, walls) for dev in run.devices}


def errors(predicted: dict[str, float], measured: dict[str, float]) -> tuple[list[float], list[float]]:
    """|predicted / measured - 1| per device, and per ordered pair of devices' ratio."""
    devices = [d for d in predicted if d in measured]
    one = [abs(predicted[d] / measured[d] - 1) for d in devices]
    pairs = [abs((predicted[a] / predicted[b]) / (measured[a] / measured[b]) - 1)
             for a, b in itertools.combinations(devices, 2)]
    return one, pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["squeezenet1.1", "mobilenetv2", "inception-imagenet"])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--out", default="results/bench_profile_rounds")
    args = ap.parse_args()
    platform = load_platform("cpu")
    rows = []
    for name in args.models:
        model, graph = load_graph(name, {})
        plan = plan_profiling(graph, platform)
        for trial in range(args.trials):
            modes = (1, args.rounds) if trial % 2 == 0 else (args.rounds, 1)
            for rounds in modes:
                prof = profile_model(model, graph, platform, repeats=args.repeats, seed=trial, rounds=rounds)
                now = measured_now(model, plan, args.repeats, args.rounds)
                one, pairs = errors(dict(prof.whole_run_s), now)
                rows.append({"model": name, "trial": trial, "rounds": rounds, "device_error": max(one),
                             "ratio_error": max(pairs), **{f"{d}_ms": now[d] * 1e3 for d in now}})
                print(f"{name} trial {trial} rounds={rounds}: device {max(one):.1%}, ratio {max(pairs):.1%}",
                      flush=True)
    table = pd.DataFrame(rows)
    summary = (table.groupby(["model", "rounds"])
               .agg(trials=("trial", "count"), device_median=("device_error", "median"),
                    device_worst=("device_error", "max"), ratio_median=("ratio_error", "median"),
                    ratio_worst=("ratio_error", "max")).reset_index())
    write_text(args.out + ".csv", table.to_csv(index=False))
    text = (f"# Profiling calibration: rounds=1 against rounds={args.rounds}\n\n"
            f"`python benchmarks/bench_profile_rounds.py --models {' '.join(args.models)} --trials {args.trials} "
            f"--repeats {args.repeats}` ({time.strftime('%Y-%m-%d %H:%M')}); "
            "errors are |predicted / measured - 1| of each trial's worst device and worst device pair, "
            "measured right after the profile.\n\n" + markdown_table(summary.round(3)) + "\n")
    write_text(args.out + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
