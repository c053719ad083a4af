"""lns, the anytime search, against cpsat at ten times its time and against split.

Two parts (issue 13's latency targets):

* ``random``: random DAGs of 100-300 tasks on ``default`` and ``cpu2gpu``; ``lns`` with
  ``--lns-limit`` s against ``cpsat`` with ``--cpsat-limit`` s (target: within 3% in at
  most a tenth of the time), ``split`` with lns's limit and ``portfolio`` beside them.
* ``published``: the latency graphs of the dnn-partitioning workloads
  (``shared/benchmarks/dnn-partitioning/latency-inputs``, ms); ``lns``, ``split`` and
  ``cpsat`` with ``--published-limit`` s each, and the best bound (classic,
  path-segments, LP bounds within 30 s, the solvers' own).  Target: the gap of the best
  schedule to the best bound half the gap of an earlier run (``--before``, by default
  the results file this run replaces).

Every makespan in one run, so ratios are comparable on a noisy host.

    python benchmarks/bench_lns.py                       # both parts (about 45 minutes), results/bench_lns_*.md
    python benchmarks/bench_lns.py --parts random --sizes 100
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from scheduler.bounds import all_bounds
from scheduler.compare_report import markdown_table
from scheduler.fileio import write_text
from scheduler.generate import random_problem
from scheduler.importers import import_dnn_partitioning
from scheduler.problem import Problem
from scheduler.schedule import Schedule
from solvers import get_solver

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HETSCHED_BENCHMARKS", ROOT.parent / "shared" / "benchmarks")) / "dnn-partitioning"


def timed(name: str, problem: Problem, limit: float | None, seed: int = 0) -> tuple[Schedule, float]:
    """One solve and its seconds."""
    t0 = time.perf_counter()
    s = get_solver(name)(problem, time_limit=limit, seed=seed)
    return s, time.perf_counter() - t0


def random_part(args: argparse.Namespace) -> pd.DataFrame:
    rows = []
    for n in args.sizes:
        for seed in args.seeds:
            for plat in ("default", "cpu2gpu"):
                p = random_problem(n, seed=seed, platform=plat)
                lns, lns_s = timed("lns", p, args.lns_limit, seed)
                cp, cp_s = timed("cpsat", p, args.cpsat_limit, seed)
                lns_ms, cp_ms, cp_status = lns.makespan, cp.makespan, cp.status
                split_ms = timed("split", p, args.lns_limit, seed)[0].makespan
                port_ms = timed("portfolio", p, None)[0].makespan
                rows.append({"instance": f"random{n}-s{seed}@{plat}", "tasks": n, "portfolio_ms": port_ms * 1e3,
                             "split_ms": split_ms * 1e3, "lns_ms": lns_ms * 1e3, "lns_s": round(lns_s, 1),
                             "cpsat_ms": cp_ms * 1e3, "cpsat_s": round(cp_s, 1), "cpsat_status": cp_status,
                             "lns_vs_cpsat": lns_ms / cp_ms, "split_vs_cpsat": split_ms / cp_ms,
                             "lns_s_over_cpsat_limit": lns_s / args.cpsat_limit})
                r = rows[-1]
                print(f"{r['instance']:<24} lns {r['lns_ms']:.4f} ms in {lns_s:.1f} s, cpsat {r['cpsat_ms']:.4f} "
                      f"({cp_status}, {cp_s:.1f} s): {r['lns_vs_cpsat']:.4f}x; split {r['split_vs_cpsat']:.4f}x",
                      flush=True)
    return pd.DataFrame(rows)


def published_part(args: argparse.Namespace, before: pd.DataFrame | None) -> pd.DataFrame:
    """One row per latency file; ``prev_*`` from ``before`` (an earlier run's CSV) where it has the file."""
    earlier = {} if before is None else {r["file"]: r for r in before.to_dict("records")}
    rows = []
    root = DATA / "latency-inputs"
    for path in sorted(root.rglob("*.json")):
        p = import_dnn_partitioning(path, time_scale=1.0)
        row: dict[str, Any] = {"file": str(path.relative_to(root)).removesuffix(".json"), "tasks": len(p.tasks),
                               "devices": len(p.devices)}
        row["heft"] = timed("heft", p, None)[0].makespan
        bounds = all_bounds(p, time_limit=30.0)
        solved = {name: timed(name, p, args.published_limit)[0] for name in ("split", "cpsat", "lns")}
        for name, s in solved.items():
            row[name], row[f"{name}_status"] = s.makespan, s.status
        row["best"] = min(s.makespan for s in solved.values())
        row["bound"] = max([b.value for b in bounds] + [s.lower_bound or 0.0 for s in solved.values()])
        row["gap"] = row["best"] / row["bound"] - 1
        prev = earlier.get(row["file"], {})
        row["prev_best"] = min((prev[k] for k in ("split", "cpsat", "lns") if pd.notna(prev.get(k))), default=math.nan)
        row["prev_bound"] = prev.get("bound", math.nan)
        row["prev_gap"] = row["prev_best"] / row["prev_bound"] - 1
        row["gap_ratio"] = row["gap"] / row["prev_gap"] if row["prev_gap"] > 1e-6 else math.nan
        rows.append(row)
        print(f"{row['file']:<36} heft {row['heft']:.2f} split {row['split']:.2f} cpsat {row['cpsat']:.2f} "
              f"lns {row['lns']:.2f} bound {row['bound']:.2f}: gap {row['prev_gap']:.1%} before, {row['gap']:.1%} "
              "now", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="*", choices=["random", "published"], default=["random", "published"])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 200, 300])
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--lns-limit", type=float, default=6.0)
    ap.add_argument("--cpsat-limit", type=float, default=60.0)
    ap.add_argument("--published-limit", type=float, default=60.0)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench_lns"), help="results/bench_lns_<part>.md, .csv")
    ap.add_argument("--before", default=None, help="an earlier run's published CSV to compare gaps with "
                    "(default: <out>_published.csv as it is before this run)")
    args = ap.parse_args()
    if "random" in args.parts:
        write_part(args.out, "random", random_part(args), args)
    if "published" in args.parts:
        before = Path(args.before or f"{Path(args.out).with_suffix('')}_published.csv")
        earlier = pd.read_csv(before) if before.is_file() else None
        write_part(args.out, "published", published_part(args, earlier), args)


def summary(part: str, table: pd.DataFrame, args: argparse.Namespace) -> list[str]:
    """The markdown report of one part: title, command, table, what the targets say."""
    stamp = f"on {time.strftime('%Y-%m-%d')}"
    if part == "random":
        within = int((table["lns_vs_cpsat"] <= 1.03).sum())
        return [f"# lns {args.lns_limit:g} s against cpsat {args.cpsat_limit:g} s on random DAGs\n\n"
                f"`python benchmarks/bench_lns.py --parts random` {stamp} (makespans in ms).\n\n",
                markdown_table(table.round(4)), "\n\n",
                f"lns within 3% of cpsat on {within} of {len(table)} instances (target: all), geometric mean "
                f"{math.exp(table['lns_vs_cpsat'].map(math.log).mean()):.4f}x, worst "
                f"{table['lns_vs_cpsat'].max():.4f}x, in {table['lns_s_over_cpsat_limit'].max():.2f}x cpsat's "
                f"limit at most (target <= 0.1; cpsat_s: when cpsat stopped, earlier where it proved optimality).\n"]
    open_gaps = table["gap_ratio"].dropna()  # NaN: no earlier run, or it had closed the gap
    return [f"# lns, split and cpsat on the published latency graphs, {args.published_limit:g} s each\n\n"
            f"`python benchmarks/bench_lns.py --parts published` {stamp} (makespans in ms; `best`: the best of "
            f"the three; `bound`: the best of the classic, path-segments and LP bounds and the solvers' own; "
            f"`prev_*`: the earlier run compared with).\n\n",
            markdown_table(table.round(4)), "\n\n",
            f"gap of the best schedule to the best bound at most half the earlier run's on "
            f"{int((open_gaps <= 0.5).sum())} of the {len(open_gaps)} files where that was open (target: all); "
            f"closed on {int((table['gap'] <= 1e-6).sum())} of {len(table)}; lns shorter than split and cpsat on "
            f"{int((table['lns'] < table[['split', 'cpsat']].min(axis=1)).sum())} of {len(table)}.\n"]


def write_part(out: str, part: str, table: pd.DataFrame, args: argparse.Namespace) -> None:
    """``<out>_<part>.csv`` and ``.md``; the summary printed too."""
    base = Path(out).with_suffix("")
    text = summary(part, table, args)
    write_text(f"{base}_{part}.csv", table.to_csv(index=False))
    write_text(f"{base}_{part}.md", "".join(text))
    print(text[-1])

if __name__ == "__main__":
    main()
