"""Time limits at scale: every solver on a long chain, solving + bounding time and peak memory.

Target (issue 12): ``--time-limit T`` bounds solving and bounding to ``T + 10% + 2 s``
on a 20000-task graph, in at most 2 GB.  Each solver runs in a fresh process that
times ``run_solvers`` (solve, validation, LP bounds, certificate) and reads its own
peak memory; the whole ``hetsched solve`` command (start-up and reading the 6 MB
problem file included) is timed beside it.  Writes ``results/bench_time_limits.md``.

    python benchmarks/bench_time_limits.py --tasks 20000 --time-limit 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from scheduler.fileio import write_text
from scheduler.graph import Edge, Task, TaskGraph
from scheduler.platform import load_platform
from scheduler.problem import Problem, write_problem
from solvers import solver_names


def chain(n: int, seed: int = 0) -> Problem:
    """``n`` tasks in a chain on the default platform, costs 0.1-1 ms, 4 KiB between neighbours."""
    rng = np.random.default_rng(seed)
    plat = load_platform("default")
    tasks = tuple(Task(f"t{i}", op_type="MatMul", memory_bytes=1000) for i in range(n))
    edges = tuple(Edge(f"t{i}", f"t{i + 1}", 4096) for i in range(n - 1))
    costs = {f"t{i}": {d: float(rng.uniform(1e-4, 1e-3)) for d in plat.device} for i in range(n)}
    return Problem(TaskGraph(f"chain{n}", tasks, edges), plat, costs)


def child(name: str, path: str, time_limit: float) -> None:
    """One solver in this process: print what the target measures, solving + bounding (``run_solvers``:
    the solve, its validation, the bounds inside their budget and the certificate), and the peak memory."""
    from scheduler.pipeline import run_solvers
    from scheduler.problem import read_problem
    from solvers import get_solver

    problem = read_problem(path)
    t0 = time.perf_counter()
    (sched,), _ = run_solvers(problem, [name], get_solver, time_limit=time_limit)
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"status": sched.status, "solve_s": round(sched.solve_seconds, 3),
                      "solve_and_bound_s": round(took, 3), "peak_mb": round(peak)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--time-limit", type=float, default=5.0)
    ap.add_argument("--out", default="results/bench_time_limits.md")
    ap.add_argument("--child", nargs=2, metavar=("SOLVER", "PROBLEM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.time_limit)
        return
    target = args.time_limit * 1.1 + 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "chain.json")
        write_problem(chain(args.tasks), path)
        for name in solver_names():
            proc = subprocess.run([sys.executable, __file__, "--child", name, path, "--time-limit",
                                   str(args.time_limit)], capture_output=True, text=True)
            row = {"solver": name, **(json.loads(proc.stdout.splitlines()[-1]) if proc.returncode == 0
                                      else {"status": f"exit {proc.returncode}"})}
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "scheduler", "solve", path, "--solver", name, "--time-limit",
                            str(args.time_limit)], capture_output=True, check=False)
            row["command_s"] = round(time.perf_counter() - t0, 2)
            row["target_met"] = row.get("solve_and_bound_s", math.inf) <= target and row.get("peak_mb", 0) <= 2048
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows)
    text = (f"# Time limits at scale (`python benchmarks/bench_time_limits.py --tasks {args.tasks} "
            f"--time-limit {args.time_limit:g}`)\n\n"
            f"A {args.tasks}-task chain on platform `default`; each solver in a fresh process. Target: solving and "
            f"bounding (`solve_and_bound_s`: the solve, its validation, the LP bounds and the certificate) within "
            f"{target:.1f} s, peak memory within 2 GB. `solve_s` is the solver's own time; `command_s` is the whole "
            f"`hetsched solve` command, start-up and reading the problem file included.\n\n"
            f"```\n{table.to_string(index=False)}\n```\n")
    write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
