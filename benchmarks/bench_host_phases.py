"""How this host's speed moves over time: one two-thread and one one-thread session of a model, timed in turn
in short windows for a while.

Predictions come from a profile taken in a few seconds and are checked by a replay minutes later; what the
host does between them is no part of the model.  On this two-core host a two-thread session of a model whose
threads meet at every small step (``siamese-lstm``'s recurrent steps) runs at one of two speeds, each for
seconds at a time, in the same session, while a one-thread session keeps its speed: so a two-thread device's
profile is taken in one mode or the other.  This times both sessions over ``--seconds`` in windows of
``--runs`` runs each (each session's first run of a window untimed: the other's pool threads may still spin),
with the kernel's steal time of the window (``/proc/stat``: time the hypervisor ran something else on our
CPUs) and writes ``results/bench_host_phases.{csv,md,png}``: per window the two medians; in the summary each
session's fastest tenth, median and slowest tenth, the share of windows more than :data:`SLOW` over the
fastest tenth, and how long such slow stretches lasted.

    python benchmarks/bench_host_phases.py --seconds 90
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from functools import partial

import pandas as pd

from bench_io import save
from scheduler.executor import random_inputs, session_call, timed_runs
from scheduler.optimize import session, session_data
from scheduler.pipeline import load_graph, optimized_cache
from scheduler.plots import series_chart

SLOW = 0.25
"""A window this much slower than the session's fastest tenth of windows counts as slow."""


def steal_seconds() -> float:
    """The kernel's steal time over all CPUs so far (s; 0 where ``/proc/stat`` is not there)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def stretches(table: pd.DataFrame, slow: pd.Series) -> list[float]:
    """How long each run of consecutive slow windows lasted (s: its first window's start to its last one's end).

    >>> t = pd.DataFrame({"start_s": [0.0, 1.0, 2.0, 3.0], "end_s": [1.0, 2.0, 3.0, 4.0]})
    >>> stretches(t, pd.Series([True, True, False, True]))
    [2.0, 1.0]
    """
    out = []
    for is_slow, group in itertools.groupby(zip(slow, table["start_s"], table["end_s"]), key=lambda r: r[0]):
        rows = list(group)
        if is_slow:
            out.append(rows[-1][2] - rows[0][1])
    return out


def summary(table: pd.DataFrame, column: str) -> dict[str, object]:
    """A session's window medians: fastest tenth, median, slowest tenth, share of slow windows, slow stretches."""
    values = table[column]
    fast = float(values.quantile(0.1))
    slow = values > fast * (1 + SLOW)
    lengths = stretches(table, slow)
    return {"session": column.removesuffix("_ms"), "p10_ms": fast, "median_ms": float(values.median()),
            "p90_ms": float(values.quantile(0.9)), "slow_share": float(slow.mean()),
            "slow_stretches": len(lengths), "longest_slow_s": max(lengths, default=0.0),
            "median_slow_s": statistics.median(lengths) if lengths else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="siamese-lstm")
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--runs", type=int, default=20, help="timed runs of each session per window")
    ap.add_argument("--out", default="results/bench_host_phases")
    args = ap.parse_args()
    model, _ = load_graph(args.model, optimization="all", cache_dir=optimized_cache("results/bench-profiles"))
    data = session_data(model)
    sessions = {f"{threads}_thread_ms": session(data, "none", threads) for threads in (2, 1)}
    calls = {k: partial(session_call(s), random_inputs(s, 0)) for k, s in sessions.items()}
    rows, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        row: dict[str, float] = {"start_s": time.perf_counter() - t0}
        steal = steal_seconds()
        for key, call in calls.items():
            row[key] = statistics.median(timed_runs(call, 1, args.runs)) * 1e3
        row["end_s"] = time.perf_counter() - t0
        row["steal_share"] = (steal_seconds() - steal) / (row["end_s"] - row["start_s"])
        rows.append(row)
    table = pd.DataFrame(rows)
    stats = pd.DataFrame([summary(table, k) for k in sessions])
    png = series_chart(table, "start_s", list(sessions), f"{args.out}.png", xlabel="seconds",
                       ylabel="median run (ms)", title=f"{args.model}: windows of {args.runs} runs")
    ratio = table["2_thread_ms"] / table["1_thread_ms"]
    save(args.out, table, "\n".join([
        f"# The host's speed over time (`python benchmarks/bench_host_phases.py --model {args.model} "
        f"--seconds {args.seconds:g} --runs {args.runs}`)", "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {len(table)} windows over {table['end_s'].iloc[-1]:.0f} s: each "
        f"the median of {args.runs} runs of a two-thread and then a one-thread session of `{args.model}` (ORT "
        f"optimisation all, both kept open); a window is slow when more than {SLOW:.0%} over the session's "
        f"fastest tenth. Plot: `{os.path.basename(png)}`.", "",
        "```\n" + stats.round(3).to_string(index=False) + "\n```", "",
        f"Two threads over one, per window: {ratio.quantile(0.1):.2f}x to {ratio.quantile(0.9):.2f}x "
        f"(tenths), median {ratio.median():.2f}x. Kernel steal time: {table['steal_share'].max():.1%} of a "
        f"window at most.", ""]))


if __name__ == "__main__":
    main()
