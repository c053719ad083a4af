"""The PIM partitioning paper's range: its DP against device-priority baselines over sequence lengths.

The paper reports its DP 1.1-3.0x faster than device-priority baselines on BERT,
RoBERTa and GPT-2 over sequence lengths.  Here the same comparison runs in
simulation: each model at real size (``bert-base``, ``gpt2-small``; with ``--hf``,
the Transformers presets ``hf-bert-base``, ``hf-roberta-base``, ``hf-gpt2-small``,
which need the ``torch`` extra) at each sequence length, on platform
``pim-sequential`` (CPU serial, CPU parallel and a simulated PIM driven by one host
thread) with modelled costs.  ``dp-chain`` (the paper's DP) is compared with the
baselines: each single device, and ``greedy`` with the device priorities PIM first
and CPU-parallel first.  Writes ``results/bench_pim.csv`` and ``results/bench_pim.md``.

    python benchmarks/bench_pim.py --seq-lens 32 64 128 256
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from bench_io import save
from scheduler.compare_report import markdown_table
from scheduler.pipeline import build_problem
from solvers import get_solver

BASELINES = {"single:cpu-serial": ("single:cpu-serial", {}), "single:cpu-par": ("single:cpu-par", {}),
             "pim first": ("greedy", {"priority": ["pim", "cpu-par"]}),
             "cpu-par first": ("greedy", {"priority": ["cpu-par", "pim"]})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["bert-base", "gpt2-small"])
    ap.add_argument("--hf", action="store_true", help="add the Transformers presets (the torch extra)")
    ap.add_argument("--seq-lens", nargs="*", type=int, default=[32, 64, 128, 256])
    ap.add_argument("--platform", default="pim-sequential")
    ap.add_argument("--out", default="results/bench_pim")
    args = ap.parse_args()
    models = args.models + (["hf-bert-base", "hf-roberta-base", "hf-gpt2-small"] if args.hf else [])
    rows = []
    for name in models:
        for seq in args.seq_lens:
            t0 = time.perf_counter()
            problem = build_problem(name, {"seq_len": seq}, platform=args.platform)
            dp = get_solver("dp-chain")(problem)
            row = {"model": name, "seq_len": seq, "tasks": len(problem.tasks), "dp_chain_ms": dp.makespan * 1e3,
                   "dp_on_pim": sum(d == "pim" for d in dp.placement.values())}
            for label, (solver, options) in BASELINES.items():
                s = get_solver(solver, **options)(problem)
                row[f"{label}_ms"] = s.makespan * 1e3
                row[f"{label}_x"] = s.makespan / dp.makespan
            row["best_baseline_x"] = min(row[f"{label}_x"] for label in BASELINES)
            row["worst_baseline_x"] = max(row[f"{label}_x"] for label in BASELINES)
            rows.append(row)
            print(f"{name} seq {seq}: dp-chain {dp.makespan * 1e3:.3f} ms, best baseline "
                  f"{row['best_baseline_x']:.2f}x, worst {row['worst_baseline_x']:.2f}x "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    shown = table[["model", "seq_len", "tasks", "dp_chain_ms", "dp_on_pim"]
                  + [f"{label}_x" for label in BASELINES] + ["best_baseline_x"]].round(3)
    text = (f"# PIM paper's range (`python benchmarks/bench_pim.py --seq-lens {' '.join(map(str, args.seq_lens))}"
            f"{' --hf' if args.hf else ''}`)\n\nPlatform `{args.platform}`, modelled costs, "
            f"{time.strftime('%Y-%m-%d %H:%M')}. `x`: a baseline's makespan over `dp-chain`'s (the paper's DP); "
            "`dp_on_pim`: tasks the DP puts on the PIM.\n\n" + markdown_table(shown) +
            f"\n\nAgainst its best baseline the DP is {table['best_baseline_x'].min():.2f}-"
            f"{table['best_baseline_x'].max():.2f}x faster; against every baseline "
            f"{table[[f'{label}_x' for label in BASELINES]].min().min():.2f}-"
            f"{table[[f'{label}_x' for label in BASELINES]].max().max():.2f}x (paper: 1.1-3.0x).\n")
    save(args.out, table, text)


if __name__ == "__main__":
    main()
