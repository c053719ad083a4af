"""How steady the contention fit is: the same model's contention measured many times, in one round or several.

``measure_contention`` (:mod:`scheduler.profile_runs`) times the whole model on one
core alone and on two cores at once.  A model of a few ms runs its 20 repeats in a
fraction of a second, so a change of the host's load between the two halves decides
the figure (a ``siamese-lstm`` profile once fitted 0.45 where most fits give 0 to
0.2).  This measures it ``--fits`` times for each count of rounds (the same runs in
all, split into that many short fits whose median is taken; the counts' order
shuffled each time), optionally under ``--load``: a process that spins for
0.05-0.4 s and sleeps for 0.2-1 s, on and off, as a neighbour on this shared host
does.  Reports each count's median, standard deviation and worst fit.  Writes
``results/bench_contention.{csv,md}``.

    python benchmarks/bench_contention.py --fits 24 --rounds 1 5
    python benchmarks/bench_contention.py --fits 24 --rounds 1 5 --load --out results/bench_contention_load
    python benchmarks/bench_contention.py --fits 8 --models randwire-imagenet --out results/bench_contention_randwire
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time

import pandas as pd

from bench_io import save
from scheduler.optimize import session_data
from scheduler.pipeline import load_graph, optimized_cache
from scheduler.platform import load_platform
from scheduler.profile_runs import measure_contention

LOAD = """
import random, time
random.seed(1)
while True:
    t = time.time() + random.uniform(0.05, 0.4)
    while time.time() < t:
        pass
    time.sleep(random.uniform(0.2, 1.0))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["siamese-lstm"])
    ap.add_argument("--fits", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=20, help="runs of each half in all (the profile's repeats)")
    ap.add_argument("--rounds", type=int, nargs="+", default=[1, 5], help="short fits the runs are split into")
    ap.add_argument("--load", action="store_true", help="an on-off spinning process beside the fits")
    ap.add_argument("--out", default="results/bench_contention")
    args = ap.parse_args()
    platform = load_platform("cpu")
    neighbour = subprocess.Popen([sys.executable, "-c", LOAD]) if args.load else None
    rows = []
    try:
        for name in args.models:
            model, _ = load_graph(name, optimization="all", cache_dir=optimized_cache("results/bench-profiles"))
            data = session_data(model)
            fits: dict[int, list[float]] = {n: [] for n in args.rounds}
            order = list(args.rounds)
            for _ in range(args.fits):
                random.shuffle(order)
                for n in order:
                    fits[n].append(measure_contention(data, platform, repeats=args.repeats, warmup=3, rounds=n))
            for n, values in fits.items():
                rows.append({"model": name, "rounds": n, "median": statistics.median(values),
                             "stdev": statistics.stdev(values) if len(values) > 1 else 0.0, "worst": max(values),
                             "fits": " ".join(f"{v:.3f}" for v in values)})
                print({k: v for k, v in rows[-1].items() if k != "fits"}, flush=True)
    finally:
        if neighbour is not None:
            neighbour.kill()
    table = pd.DataFrame(rows)
    save(args.out, table, "\n".join([
        f"# Contention fit in one round or several (`python benchmarks/bench_contention.py --fits {args.fits} "
        f"--rounds {' '.join(map(str, args.rounds))}{' --load' if args.load else ''}`)", "",
        f"Platform `cpu`, {time.strftime('%Y-%m-%d %H:%M')}: {args.fits} fits per count of rounds, "
        f"{args.repeats} runs of each half in all"
        + (", an on-off spinning neighbour beside them" if args.load else "") + ".", "",
        "```\n" + table.drop(columns=["fits"]).round(3).to_string(index=False) + "\n```", ""]))


if __name__ == "__main__":
    main()
