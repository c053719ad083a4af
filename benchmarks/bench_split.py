"""split vs cpsat on 100-200-task instances: quality and time to reach it.

For each instance, ``split`` runs once with ``--split-limit``; ``cpsat`` runs with
growing limits (``--cpsat-limits``).  Reported: split's makespan against the best
cpsat makespan (target: within 5%), and the smallest cpsat limit at which cpsat
reached split's makespan, as a ratio to split's time (target: at least 20x).
Medians over ``--repeats`` for split's time.

    python benchmarks/bench_split.py --sizes 100 150 200 --cpsat-limits 1 2 5 10 30 60
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

from scheduler.fileio import write_text
from scheduler.generate import random_problem
from scheduler.pipeline import build_problem
from solvers import get_solver


def instances(sizes: list[int], seeds: list[int]) -> list[tuple[str, object]]:
    out = []
    for n in sizes:
        for seed in seeds:
            for plat in ("default", "cpu2gpu"):
                out.append((f"random{n}-s{seed}@{plat}", random_problem(n, seed=seed, platform=plat)))
    out.append(("randwire24@cpu2gpu", build_problem("randwire", {"nodes": 24, "channels": 32, "image": 32},
                                                    "cpu2gpu")))
    out.append(("bert4@default", build_problem("bert", {"layers": 4})))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 200])
    ap.add_argument("--seeds", type=int, nargs="*", default=[1])
    ap.add_argument("--split-limit", type=float, default=10.0)
    ap.add_argument("--cpsat-limits", type=float, nargs="*", default=[1, 5, 20, 60])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default="results/bench_split.csv")
    args = ap.parse_args()
    rows = []
    for label, problem in instances(args.sizes, args.seeds):
        times, split = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            split = get_solver("split")(problem, time_limit=args.split_limit)
            times.append(time.perf_counter() - t0)
        split_s = statistics.median(times)
        cp = {}
        for limit in args.cpsat_limits:
            t0 = time.perf_counter()
            s = get_solver("cpsat")(problem, time_limit=limit)
            cp[limit] = (s.makespan, time.perf_counter() - t0, s.status)
        best_cp = min(v[0] for v in cp.values())
        reach = next((v[1] for k, v in sorted(cp.items()) if v[0] <= split.makespan * (1 + 1e-9)), None)
        heft = get_solver("heft")(problem)
        rows.append({
            "instance": label, "tasks": len(problem.tasks), "split_ms": split.makespan * 1e3, "split_s": split_s,
            "best_cpsat_ms": best_cp * 1e3, "cpsat_status": cp[max(cp)][2], "heft_ms": heft.makespan * 1e3,
            "split_over_cpsat": split.makespan / best_cp - 1,
            "cpsat_s_to_reach_split": reach, "speedup_to_same_quality": (reach / split_s) if reach else None,
        })
        print(f"{label:<24} split {rows[-1]['split_ms']:.4f} ms in {split_s:.1f} s; best cpsat "
              f"{rows[-1]['best_cpsat_ms']:.4f} ms ({rows[-1]['split_over_cpsat']:+.1%}); cpsat reached split's "
              f"makespan after {reach if reach is not None else 'never (within the limits)'} s", flush=True)
    table = pd.DataFrame(rows)
    write_text(args.out, table.to_csv(index=False))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string(index=False))
    within = (table["split_over_cpsat"] <= 0.05).sum()
    print(f"\nsplit within 5% of the best cpsat: {within} of {len(table)} instances (target: all)")
    fast = table["speedup_to_same_quality"].dropna()
    print(f"cpsat needed {fast.median():.1f}x split's time to match it (median over {len(fast)} instances where it did;"
          f" target >= 20x); on {table['speedup_to_same_quality'].isna().sum()} it never matched split")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
