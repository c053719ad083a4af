"""Exact-solver benchmark: time to prove optimality, or the gap at the time limit, for milp and cpsat.

Instances: zoo models (modelled costs, default platform) and random DAGs of
``--sizes`` tasks on the default platform.  For each (instance, solver, repeat) it
records the status, the re-simulated makespan, the sound lower bound and gap, the
solve time (the time to proof when the status is ``optimal``), and the model size.

``--target`` runs the issues' target instead: "CP-SAT proves optimality on every
40-task instance of ``--target-devices`` devices (4 for issue 13, 3 for the first)
within 60 s", on ``random_problem(40, platform=random_platform(D, shared=...))``
for ``--target-seeds`` seeds with and without a shared resource, and reports how
many were proved and how long each took.

``--symmetry`` measures what the symmetry breaking saves: random DAGs of ``--sizes``
tasks on a CPU and four identical accelerators (:func:`scheduler.problem.mirror_classes`),
each exact solver with ``symmetry=True`` and ``False``, and how many each proves and
how fast.

    python benchmarks/bench_exact.py --sizes 20 50 --time-limit 10
    python benchmarks/bench_exact.py --target --time-limit 60 --target-seeds 10
    python benchmarks/bench_exact.py --symmetry --sizes 12 16 --time-limit 60 --target-seeds 3
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scheduler.fileio import write_text
from scheduler.generate import random_platform, random_problem
from scheduler.pipeline import build_problem
from scheduler.platform import Device, Link, Platform
from scheduler.problem import Problem
from solvers import get_solver

ZOO = ("mlp", "inception", "randwire", "bert", "gpt2")


@dataclass(frozen=True)
class Instance:
    """A named benchmark problem."""

    name: str
    kind: str
    problem: Problem


def instances(models: list[str], sizes: list[int], seed: int) -> list[Instance]:
    """Zoo models first (smallest first), then random DAGs on the default platform."""
    out = [Instance(m, "zoo", build_problem(m)) for m in models]
    out += [Instance(f"random-{n}", "random", random_problem(n, seed=seed + n)) for n in sizes]
    return out


def target_instances(seeds: int, devices: int = 4) -> list[Instance]:
    """The issues' target set: 40 tasks on ``devices`` devices, with and without a shared resource."""
    out = []
    for shared in (True, False):
        for s in range(seeds):
            p = random_problem(40, seed=s, platform=random_platform(devices, shared=shared, seed=s))
            out.append(Instance(f"r40-{'shared' if shared else 'separate'}-{s}", "target", p))
    return out


def mirror_instances(sizes: list[int], seeds: int, accelerators: int = 4) -> list[Instance]:
    """Random DAGs on a CPU and ``accelerators`` identical ones (costs 0.1-1 ms there, 1-3 ms on the CPU)."""
    devices = (Device("cpu", resources=("cpu",)),) + tuple(
        Device(f"acc{i}", kind="accelerator", resources=(f"acc{i}",)) for i in range(accelerators))
    out = []
    for n in sizes:
        for s in range(seeds):
            base = random_problem(n, seed=s, edge_prob=0.3)
            rng = np.random.default_rng(s)
            plat = Platform("mirrors", devices, default_link=Link("*", "*", float(rng.uniform(0, 2e-4)), 1e9))
            costs = {t: {"cpu": float(rng.uniform(1e-3, 3e-3)),
                         **dict.fromkeys((d.name for d in devices[1:]), float(rng.uniform(1e-4, 1e-3)))}
                     for t in base.tasks}
            out.append(Instance(f"mirrors{n}-s{s}", "mirrors", Problem(base.graph, plat, costs)))
    return out


def run_one(inst: Instance, solver: str, time_limit: float, repeat: int, options: dict[str, Any]) -> dict[str, Any]:
    """Solve once and flatten the answer into a table row."""
    p = inst.problem
    t0 = time.perf_counter()
    s = get_solver(solver, **options)(p, time_limit=time_limit, seed=repeat)
    wall = time.perf_counter() - t0
    info = s.info
    return {
        "instance": inst.name, "kind": inst.kind, "tasks": len(p.tasks), "edges": len(p.graph.edges),
        "devices": len(p.devices), "solver": solver, "repeat": repeat, "status": s.status,
        "makespan_ms": None if s.makespan is None else s.makespan * 1e3,
        "lower_bound_ms": None if s.lower_bound is None else s.lower_bound * 1e3,
        "gap": s.gap, "bound_source": info.get("bound", ""),
        "time_s": wall, "time_to_optimal_s": wall if s.status == "optimal" else None,
        "over_limit_s": wall - time_limit,
        "variables": info.get("variables"), "constraints": info.get("constraints"),
        "backend_status": info.get("backend_status", info.get("note_skip", "")),
        "fallback": info.get("fallback", ""),
    }


def show(table: pd.DataFrame) -> str:
    """The table for a terminal: ms with 4 decimals, gap in %."""
    t = table.copy()
    for col in ("makespan_ms", "lower_bound_ms"):
        t[col] = t[col].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    t["gap"] = t["gap"].map(lambda v: "-" if pd.isna(v) else f"{v * 100:.2f}%")
    t["time_s"] = t["time_s"].map(lambda v: f"{v:.2f}")
    t["size"] = ["-" if pd.isna(v) else f"{int(v)}x{int(c)}" for v, c in zip(table["variables"], table["constraints"])]
    cols = ["instance", "tasks", "solver", "status", "makespan_ms", "lower_bound_ms", "gap", "time_s", "size",
            "backend_status"]
    return t[cols].to_string(index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[20, 50, 100, 200], help="random DAG sizes")
    ap.add_argument("--models", nargs="*", default=list(ZOO), help=f"zoo models (default: {' '.join(ZOO)})")
    ap.add_argument("--solvers", nargs="*", default=["cpsat", "milp"])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=1, help="runs per (instance, solver), seeds 0..repeats-1")
    ap.add_argument("--seed", type=int, default=0, help="base seed of the random DAGs")
    ap.add_argument("--workers", type=int, default=2, help="CP-SAT workers")
    ap.add_argument("--target", action="store_true", help="run the 40-task CP-SAT target instead")
    ap.add_argument("--target-devices", type=int, default=4, help="devices of the target instances")
    ap.add_argument("--target-seeds", type=int, default=5, help="seeds per platform kind (shared / separate), "
                    "or per size with --symmetry")
    ap.add_argument("--symmetry", action="store_true", help="each exact solver with and without symmetry breaking "
                    "on identical accelerators")
    ap.add_argument("--out", default=None, help="CSV path (default results/bench_exact.csv, "
                                                "results/bench_exact_target.csv with --target)")
    args = ap.parse_args()

    if args.target:
        insts, solvers = target_instances(args.target_seeds, args.target_devices), ["cpsat"]
    elif args.symmetry:
        insts, solvers = mirror_instances(args.sizes, args.target_seeds), args.solvers
    else:
        insts, solvers = instances(args.models, args.sizes, args.seed), args.solvers
    out = args.out or ("results/bench_exact_target.csv" if args.target else
                       "results/bench_symmetry.csv" if args.symmetry else "results/bench_exact.csv")
    rows = []
    for inst in insts:
        for solver in solvers:
            for symmetry in ((True, False) if args.symmetry else (True,)):
                options = {"workers": args.workers} if solver == "cpsat" else {}
                options["symmetry"] = symmetry
                for r in range(args.repeats):
                    row = {**run_one(inst, solver, args.time_limit, r, options), "symmetry": symmetry}
                    rows.append(row)
                    print(f"  {inst.name:<22} {solver:<6} symmetry={symmetry!s:<5} {row['status']:<10} "
                          f"{row['time_s']:7.2f} s", flush=True)
    table = pd.DataFrame(rows)
    write_text(out, table.to_csv(index=False))
    print()
    print(show(table))
    worst = table["over_limit_s"].max()
    print(f"\nworst overrun of the {args.time_limit:g} s limit: {worst:+.2f} s" if worst > 0 else
          f"\nno run exceeded the {args.time_limit:g} s limit")
    if args.target:
        proved = table[table["status"] == "optimal"]
        print(f"target: CP-SAT proved {len(proved)}/{len(table)} 40-task {args.target_devices}-device instances optimal "
              f"within {args.time_limit:g} s"
              + (f" (median {proved['time_s'].median():.1f} s, max {proved['time_s'].max():.1f} s)" if len(proved)
                 else "")
              + (f"; open gaps: {', '.join(f'{g * 100:.1f}%' for g in table[table['status'] != 'optimal']['gap'])}"
                 if len(proved) < len(table) else ""))
    if args.symmetry:
        summary = table.groupby(["solver", "symmetry"]).agg(
            instances=("status", "size"), proved=("status", lambda v: int((v == "optimal").sum())),
            median_s=("time_s", "median"), max_s=("time_s", "max")).reset_index()
        print("\nwith and without symmetry breaking (time_s: to proof, or the limit):\n"
              + summary.to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
