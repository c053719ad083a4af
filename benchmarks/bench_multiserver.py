"""DiviML's setting: a GPT-2-like decoder stack on 1, 2 and 4 identical servers of CPU + 2 GPUs.

Each server is the ``cpu2gpu`` platform (GPUs simulated, modelled costs); servers are
joined by a 10 Gb/s network (50 us, 1.25 GB/s; :meth:`scheduler.platform.Platform.servers`).

* Scenario: every solver's latency and throughput against the fastest single device
  (``single``), ``cpsat`` with and without its symmetry breaking (whole servers and
  interchangeable devices), and ``hierarchical`` (servers first, then devices within).
  Throughput with one copy (a pipeline) and with one copy per server.  DiviML reports
  >3x latency and 2.9x throughput over one GPU on one server.
* Branchy models (``--branchy``, latency only, 1 and 2 servers): where one inference
  has parallel work (RandWire, Inception at ImageNet size), what the placements gain
  over the fastest single device, DiviML's latency setting.
* Proofs (``--proof-seeds``): time for ``cpsat`` and ``milp`` to prove random small
  multi-server instances (:func:`scheduler.generate.random_servers_problem`) optimal
  with and without the breaking.

Writes ``results/bench_multiserver.csv`` / ``.md``, ``results/bench_multiserver_branchy.csv`` and
``results/bench_multiserver_proofs.csv``.

    python benchmarks/bench_multiserver.py --layers 24 --time-limit 20
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from bench_io import save
from scheduler.compare_report import markdown_table
from scheduler.fileio import write_text
from scheduler.generate import random_servers_problem
from scheduler.pipeline import build_problem
from scheduler.platform import Link, load_platform
from solvers import get_solver

LATENCY = [("single", {}), ("heft", {}), ("lns", {}), ("cpsat", {}), ("cpsat", {"symmetry": False}),
           ("hierarchical", {})]
THROUGHPUT = [("dp-pipeline", {}), ("cpsat", {}), ("hierarchical", {})]
PER_SERVER = [("cpsat", {}), ("cpsat", {"symmetry": False}), ("hierarchical", {})]
PROOFS = [("cpsat", "latency", 1, 30, 2), ("cpsat", "throughput", 3, 16, 3), ("milp", "latency", 1, 10, 2),
          ("milp", "throughput", 2, 8, 2)]
"""(solver, objective, copies, tasks, servers) of the proof instances."""


def label(name: str, options: dict) -> str:
    return name + ("" if options.get("symmetry", True) else " (no symmetry breaking)")


def scenario(args: argparse.Namespace) -> list[dict]:
    rows = []
    for n in args.servers:
        platform = load_platform("cpu2gpu").servers(n, Link("*", "*", 5e-5, 1.25e9))
        problem = build_problem("gpt2-small", {"layers": args.layers, "seq_len": args.seq_len}, platform=platform)
        base = get_solver("single")(problem).makespan
        runs = [("latency", 1, LATENCY), ("throughput", 1, THROUGHPUT)]
        runs += [("throughput", n, PER_SERVER)] if n > 1 else []
        for objective, copies, solvers in runs:
            for name, options in solvers:
                extra = {"objective": objective, "replicas": copies} if objective == "throughput" else {}
                t0 = time.perf_counter()
                s = get_solver(name, **options, **extra)(problem, time_limit=args.time_limit)
                per = s.period.value / copies if objective == "throughput" else s.makespan
                rows.append({"servers": n, "devices": len(platform.devices), "tasks": len(problem.tasks),
                             "objective": objective, "copies": copies, "solver": label(name, options),
                             "status": s.status, "ms_per_inference": per * 1e3, "vs_single": base / per,
                             "gap": s.period.gap if objective == "throughput" else s.gap,
                             "how": s.info.get("split", ""), "solve_s": time.perf_counter() - t0})
                print(f"{n} servers, {objective} x{copies}, {label(name, options)}: {per * 1e3:.3f} ms "
                      f"({s.status}), {base / per:.2f}x the best single device, {rows[-1]['solve_s']:.1f} s",
                      flush=True)
    return rows


def branchy(args: argparse.Namespace) -> list[dict]:
    rows = []
    for model in args.branchy:
        for n in (1, 2):
            platform = load_platform("cpu2gpu").servers(n, Link("*", "*", 5e-5, 1.25e9))
            problem = build_problem(model, platform=platform)
            base = get_solver("single")(problem).makespan
            for name, options in LATENCY:
                t0 = time.perf_counter()
                s = get_solver(name, **options)(problem, time_limit=args.time_limit)
                rows.append({"model": model, "servers": n, "tasks": len(problem.tasks),
                             "solver": label(name, options), "status": s.status, "makespan_ms": s.makespan * 1e3,
                             "vs_single": base / s.makespan, "gap": s.gap, "solve_s": time.perf_counter() - t0})
                print(f"{model} on {n} servers, {label(name, options)}: {s.makespan * 1e3:.3f} ms ({s.status}), "
                      f"{base / s.makespan:.2f}x the best single device", flush=True)
    return rows


def proofs(args: argparse.Namespace) -> list[dict]:
    rows = []
    for solver, objective, copies, tasks, servers in PROOFS:
        for seed in range(args.proof_seeds):
            problem = random_servers_problem(tasks, seed=3 * seed + 1, servers=servers)
            for symmetry in ((True, False) if seed % 2 == 0 else (False, True)):  # alternate which runs first
                t0 = time.perf_counter()
                s = get_solver(solver, objective=objective, replicas=copies, symmetry=symmetry)(
                    problem, time_limit=args.proof_limit)
                rows.append({"solver": solver, "objective": objective, "copies": copies, "tasks": tasks,
                             "servers": servers, "seed": seed, "symmetry": symmetry, "status": s.status,
                             "solve_s": time.perf_counter() - t0})
                print(f"proof {solver} {objective} x{copies} {tasks} tasks on {servers} servers, seed {seed}, "
                      f"symmetry {symmetry}: {s.status} in {rows[-1]['solve_s']:.2f} s", flush=True)
    return rows


def proof_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per instance family: proved and median seconds with and without the breaking, and the median ratio."""
    out = []
    for key, g in rows.groupby(["solver", "objective", "copies", "tasks", "servers"], sort=False):
        on, off = g[g.symmetry], g[~g.symmetry]
        ratio = (off.set_index("seed").solve_s / on.set_index("seed").solve_s).median()
        out.append(dict(zip(["solver", "objective", "copies", "tasks", "servers"], key),
                        proved_with=f"{(on.status == 'optimal').sum()} of {len(on)}",
                        median_s_with=on.solve_s.median(),
                        proved_without=f"{(off.status == 'optimal').sum()} of {len(off)}",
                        median_s_without=off.solve_s.median(), median_speedup=ratio))
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--servers", nargs="*", type=int, default=[1, 2, 4])
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--branchy", nargs="*", default=["randwire-imagenet", "inception-imagenet"])
    ap.add_argument("--proof-seeds", type=int, default=5)
    ap.add_argument("--proof-limit", type=float, default=60.0)
    ap.add_argument("--out", default="results/bench_multiserver")
    args = ap.parse_args()
    table = pd.DataFrame(scenario(args))
    wide = pd.DataFrame(branchy(args))
    raw = pd.DataFrame(proofs(args)) if args.proof_seeds else pd.DataFrame()
    text = (f"# Multi-server benchmark (`python benchmarks/bench_multiserver.py --layers {args.layers} "
            f"--time-limit {args.time_limit:g} --proof-seeds {args.proof_seeds}`)\n\nGPT-2-like stack "
            f"({args.layers} layers, hidden 768, {args.seq_len} tokens) on servers of `cpu2gpu` joined by a "
            f"10 Gb/s network, modelled costs, {time.strftime('%Y-%m-%d %H:%M')}. `ms_per_inference`: the "
            "makespan (latency) or the period over the copies (throughput); `vs_single`: the fastest single "
            "device's makespan over it (one device runs one inference at a time, so its period is its "
            "makespan). `how`: the hierarchical solve's choice.\n\n" + markdown_table(table.round(3)) + "\n")
    if not wide.empty:
        text += ("\n## Branchy models, latency\n\nOne inference with parallel work, on one and two `cpu2gpu` "
                 f"servers ({args.time_limit:g} s per solve).\n\n" + markdown_table(wide.round(3)) + "\n")
        write_text(f"{args.out}_branchy.csv", wide.to_csv(index=False))
    if not raw.empty:
        text += ("\n## Proof times with and without the symmetry breaking\n\nRandom DAGs on servers of a CPU "
                 "and two identical GPUs (`scheduler.generate.random_servers_problem`), "
                 f"{args.proof_seeds} seeds, {args.proof_limit:g} s limit; `median_speedup`: the median over "
                 "seeds of the time without over the time with.\n\n"
                 + markdown_table(proof_table(raw).round(3)) + "\n")
        write_text(f"{args.out}_proofs.csv", raw.to_csv(index=False))
    save(args.out, table, text)


if __name__ == "__main__":
    main()
