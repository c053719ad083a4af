"""Profiling benchmark: runs used, node coverage, per-node spread, sum-of-nodes vs whole run.

For the zoo BERT and GPT-2 models on the default platform, profile ``--trials``
times (fresh measurements, nothing reused) and report per real device:
runs used by the plan, fraction of (task, device) pairs measured, median and 90th
percentile coefficient of variation, noisy nodes, and the ratio of the sum of
per-node medians to the whole-model run time (median over trials), both inside
the profiled runs (like for like) and for plain runs with the profiler off.

    python benchmarks/bench_profiling.py --repeats 20 --trials 3
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import pandas as pd

from scheduler.fileio import write_text
from scheduler.pipeline import load_graph
from scheduler.platform import load_platform
from scheduler.profile_runs import profile_model
from scheduler.profiling import NOISY_CV, plan_profiling

MODELS = {"bert": {}, "gpt2": {}, "bert-seq64": {"seq_len": 64},
          "bert-base-layer": {"layers": 1, "hidden": 768, "heads": 12, "intermediate": 3072, "seq_len": 128}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--platform", default="default")
    ap.add_argument("--out", default="results/bench_profiling.csv")
    args = ap.parse_args()
    platform = load_platform(args.platform)
    rows = []
    for label, params in MODELS.items():
        model, graph = load_graph(label.split("-")[0], params)
        plan = plan_profiling(graph, platform)
        trials = [profile_model(model, graph, platform, repeats=args.repeats, warmup=args.warmup, seed=k)
                  for k in range(args.trials)]
        for dev in trials[0].whole_run_s:
            nodes = [n for n in trials[-1].nodes if n.device == dev]
            cvs = [n.cv for n in nodes if n.runs > 0]
            rows.append({
                "model": label, "tasks": len(graph.tasks), "device": dev,
                "runs": plan.runs, "node_runs": len(plan.node_runs), "edge_runs": len(plan.edge_runs),
                "transfer_classes": plan.transfer_classes,
                "coverage": sum(n.runs > 0 for n in nodes) / len(nodes),
                "cv_median": statistics.median(cvs), "cv_p90": float(np.percentile(cvs, 90)),
                "noisy": sum(c > NOISY_CV for c in cvs),
                "plain_run_ms": statistics.median(t.whole_run_s[dev] for t in trials) * 1e3,
                "traced_run_ms": statistics.median(t.traced_run_s[dev] for t in trials) * 1e3,
                "sum_over_traced": statistics.median(t.sum_over_whole(traced=True)[dev] for t in trials),
                "sum_over_plain": statistics.median(t.sum_over_whole()[dev] for t in trials),
                "sum_over_plain_spread": float(np.ptp([t.sum_over_whole()[dev] for t in trials])),
            })
    table = pd.DataFrame(rows)
    write_text(args.out, table.to_csv(index=False))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
