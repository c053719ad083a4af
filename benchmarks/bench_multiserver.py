"""DiviML's setting: a GPT-2-like decoder stack on 1, 2 and 4 identical servers of CPU + 2 GPUs.

Each server is the ``cpu2gpu`` platform (GPUs simulated, modelled costs); servers are
joined by a 10 Gb/s network (50 us, 1.25 GB/s; :meth:`scheduler.platform.Platform.servers`).
Latency: every solver's makespan against the fastest single device (``single``), and
``cpsat``'s solve with and without its symmetry breaking (interchangeable devices;
servers are not yet broken as a whole).  Throughput: ``dp-pipeline`` and ``cpsat``'s
period against the fastest single device's.  DiviML reports >3x latency and 2.9x
throughput over one GPU on one server.  Writes ``results/bench_multiserver.csv`` and ``.md``.

    python benchmarks/bench_multiserver.py --layers 24 --time-limit 30
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from bench_io import save
from scheduler.compare_report import markdown_table
from scheduler.pipeline import build_problem
from scheduler.platform import Link, load_platform
from solvers import get_solver

LATENCY = [("single", {}), ("heft", {}), ("split", {}), ("lns", {}), ("cpsat", {}), ("cpsat", {"symmetry": False})]
THROUGHPUT = [("dp-pipeline", {"objective": "throughput"}), ("cpsat", {"objective": "throughput"})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--servers", nargs="*", type=int, default=[1, 2, 4])
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--out", default="results/bench_multiserver")
    args = ap.parse_args()
    rows = []
    for n in args.servers:
        platform = load_platform("cpu2gpu").servers(n, Link("*", "*", 5e-5, 1.25e9))
        problem = build_problem("gpt2-small", {"layers": args.layers, "seq_len": args.seq_len}, platform=platform)
        base = get_solver("single")(problem)
        for objective, solvers in (("latency", LATENCY), ("throughput", THROUGHPUT)):
            for name, options in solvers:
                t0 = time.perf_counter()
                s = get_solver(name, **options)(problem, time_limit=args.time_limit)
                value = s.period.value if objective == "throughput" else s.makespan
                ref = base.makespan
                label = name + ("" if options.get("symmetry", True) else " (no symmetry breaking)")
                rows.append({"servers": n, "devices": len(platform.devices), "tasks": len(problem.tasks),
                             "objective": objective, "solver": label, "status": s.status,
                             "value_ms": value * 1e3, "vs_single": ref / value,
                             "gap": s.period.gap if objective == "throughput" else s.gap,
                             "solve_s": time.perf_counter() - t0})
                print(f"{n} servers, {objective}, {label}: {value * 1e3:.2f} ms ({s.status}), "
                      f"{ref / value:.2f}x the best single device, {time.perf_counter() - t0:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    text = (f"# Multi-server benchmark (`python benchmarks/bench_multiserver.py --layers {args.layers} "
            f"--time-limit {args.time_limit:g}`)\n\nGPT-2-like stack ({args.layers} layers, hidden 768, "
            f"{args.seq_len} tokens) on servers of `cpu2gpu` joined by a 10 Gb/s network, modelled costs, "
            f"{time.strftime('%Y-%m-%d %H:%M')}. `vs_single`: the fastest single device's makespan over the "
            "makespan (latency) or over the period (throughput: one device runs one inference at a time, so its "
            "period is its makespan).\n\n" + markdown_table(table.round(3)) + "\n")
    save(args.out, table, text)


if __name__ == "__main__":
    main()
