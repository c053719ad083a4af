"""Time limits at scale: every solver on a long chain through the CLI, wall time and peak memory.

Target (issue 12): ``hetsched solve --time-limit T`` spends at most ``T + 10% + 2 s``
solving and bounding on a 20000-task graph, in at most 2 GB.  Each solver runs in
a fresh process (``/usr/bin/time`` reports its peak memory); the table separates
the solver's own time (``solve_s``, as the schedule reports it) from the whole
command (start-up and reading the 6 MB problem file included).  Writes
``results/bench_time_limits.md``.

    python benchmarks/bench_time_limits.py --tasks 20000 --time-limit 5
"""

from __future__ import annotations

import argparse
import os
import re
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--time-limit", type=float, default=5.0)
    ap.add_argument("--out", default="results/bench_time_limits.md")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "chain.json")
        write_problem(chain(args.tasks), path)
        for name in solver_names():
            t0 = time.perf_counter()
            proc = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", sys.executable, "-m", "scheduler.cli",
                                   "solve", path, "--solver", name, "--time-limit", str(args.time_limit)],
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t0
            line = next((row for row in proc.stdout.splitlines() if row.strip().startswith(name)), "")
            rss = re.search(r"maxrss_kb=(\d+)", proc.stderr)
            fields = line.split()
            rows.append({"solver": name, "status": fields[1] if len(fields) > 1 else f"exit {proc.returncode}",
                         "solve_s": float(fields[5]) if len(fields) > 5 else None, "command_s": round(wall, 2),
                         "peak_mb": round(int(rss.group(1)) / 1024) if rss else None})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    target = args.time_limit * 1.1 + 2
    text = (f"# Time limits at scale (`python benchmarks/bench_time_limits.py --tasks {args.tasks} "
            f"--time-limit {args.time_limit:g}`)\n\n"
            f"A {args.tasks}-task chain on platform `default`; each solver in a fresh `hetsched solve` process. "
            f"Target: solving and bounding within {target:.1f} s, memory within 2 GB; `command_s` also counts "
            f"start-up and reading the problem file.\n\n```\n{table.to_string(index=False)}\n```\n")
    write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
