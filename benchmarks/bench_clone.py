"""Ramiel's cloning on real cores: makespan and replayed time of each solver's placement with and without it.

For each model on platform ``cpu``: ORT optimises it (level ``auto``); the
model is profiled afresh twice, as it is and with its cheap shared nodes copied per
reader (:mod:`scheduler.clone`); the list schedulers and ``linear-clustering`` place
both, and every placement is replayed ``--repeats`` times (rounds that time every
candidate in turn, plain ONNX Runtime in the same run).  Writes
``results/bench_clone.csv`` and ``results/bench_clone.md``.

    python benchmarks/bench_clone.py
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from bench_io import save
from scheduler.compare_report import markdown_table
from scheduler.pipeline import ProfileOptions, graph_level, load_graph, load_original, load_problem
from scheduler.platform import load_platform
from scheduler.recommend import recommend
from solvers import get_solver

MODELS = {"bert-base": {"seq_len": "64"}, "gpt2-small": {"seq_len": "64"}, "siamese-lstm": {},
          "bert": {"layers": "4"}, "gpt2": {"layers": "4"}}
SOLVERS = ["greedy", "heft", "cpop", "linear-clustering"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--solvers", nargs="*", default=SOLVERS)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--profile-repeats", type=int, default=10)
    ap.add_argument("--out", default="results/bench_clone")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        params = MODELS.get(name)
        original, _ = load_original(name, params)
        sizes = [len(load_graph(name, params, optimization=graph_level("auto", load_platform("cpu")), clone=c)[1].tasks)
                 for c in (False, True)]
        if sizes[0] == sizes[1]:
            rows.append({"model": name, "clone": False, "tasks": sizes[1], "solver": "(nothing to clone)"})
            print(f"{name}: nothing to clone ({sizes[0]} tasks)", flush=True)
            continue
        for clone in (False, True):
            t0 = time.perf_counter()
            model, problem = load_problem(name, params, "cpu", costs="profile", optimization="auto", clone=clone,
                                          profile=ProfileOptions(folder="results/bench-profiles",
                                                                 repeats=args.profile_repeats, force=True))
            found = [s for s in (get_solver(n)(problem, time_limit=10) for n in args.solvers) if s.found]
            r = recommend(original, model, problem, found, candidates=len(found), repeats=args.repeats, rounds=2,
                          stage=lambda text: print(f"  {name}{' cloned' if clone else ''}: {text}", flush=True))
            measured = {c["solver"]: c for c in r["candidates"] if c["solver"]}
            for s in found:
                c = measured.get(s.solver)
                rows.append({"model": name, "clone": clone, "tasks": len(problem.tasks), "solver": s.solver,
                             "predicted_ms": s.makespan * 1e3,
                             "measured_ms": None if c is None else c["measured_makespan_s"] * 1e3,
                             "best_plain_ms": r["baselines"][r["best_baseline"]] * 1e3})
            print(f"{name}{' cloned' if clone else ''}: {len(problem.tasks)} tasks, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    changed = table[table["solver"] != "(nothing to clone)"]
    wide = changed.pivot_table(index=["model", "solver"], columns="clone",
                               values=["predicted_ms", "measured_ms"]).round(3)
    wide.columns = [f"{v}_{'cloned' if c else 'as_is'}" for v, c in wide.columns]
    text = (f"# Cloning benchmark (`python benchmarks/bench_clone.py`)\n\nPlatform `cpu`, profiled, "
            f"{time.strftime('%Y-%m-%d %H:%M')}: each solver's makespan (predicted) and replayed time (measured, "
            "median) on the model as it is and with its cheap shared nodes cloned; unmeasured: a placement "
            "that equals another's.\n\n" + markdown_table(wide.reset_index()) + "\n\n"
            + "".join(f"Nothing to clone: {', '.join(sorted(unchanged))}.\n\n" for unchanged in
                      [set(table["model"]) - set(changed["model"])] if unchanged) + "Tasks: "
            + ", ".join(f"{m} {g['tasks'].iloc[0]}" + (" cloned" if c else "") for (m, c), g in
                        table.groupby(["model", "clone"])) + "; best plain ONNX Runtime: "
            + ", ".join(f"{m} {g['best_plain_ms'].min():.2f} ms" for m, g in changed.groupby("model")) + ".\n")
    save(args.out, table, text)


if __name__ == "__main__":
    main()
