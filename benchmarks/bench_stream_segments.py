"""Where a many-segment stream loses time: each device's segment runs in the stream against the same runs alone.

For one model and solver on platform ``cpu`` (profiled costs), the placement is
streamed (:class:`scheduler.stream.StreamRunner`) with every session call timed,
wall clock and the calling thread's CPU time; then each session runs again alone,
back to back on the inputs it saw, pinned like its worker.  Per device and
inference: the busy time in the stream, the CPU time of that, and the time alone.
Wall equal to CPU means the segments compute longer, rather than wait (for the
GIL, a core, a lock).  Repeats the stream ``--repeats`` times: its period varies
run to run.  Writes ``results/bench_stream_segments.csv`` / ``.md``.

    python benchmarks/bench_stream_segments.py --model randwire-imagenet --solver heft
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from bench_io import save
from scheduler.compare_report import markdown_table
from scheduler.pipeline import load_problem
from scheduler.replay import prepare_replay, reference_run, runner_parts, segment_sessions
from scheduler.stream import Plan, StreamRunner, period_of, predicted_stream_period, stream_feeds
from solvers import get_solver


class Timed:
    """A session whose calls record (device, wall s, thread CPU s) and keep the first inputs they saw."""

    def __init__(self, session: Any, device: str, log: list, first: dict, key: int) -> None:
        self.session, self.device, self.log, self.first, self.key = session, device, log, first, key

    def run(self, outputs: list[str], feed: dict) -> Any:
        self.first.setdefault(self.key, (outputs, feed))
        t0, c0 = time.perf_counter(), time.thread_time()
        result = self.session.run(outputs, feed)
        self.log.append((self.device, t0, time.perf_counter(), time.thread_time() - c0))
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="randwire-imagenet")
    ap.add_argument("--solver", default="heft")
    ap.add_argument("--inferences", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--out", default="results/bench_stream_segments")
    args = ap.parse_args()
    model, problem = load_problem(args.model, None, "cpu", costs="profile", optimization="auto")
    schedule = get_solver(args.solver)(problem, time_limit=10)
    reference = reference_run(model, 0, problem.label)
    prepared = prepare_replay(model, problem, schedule, reference)
    parts = tuple(runner_parts(problem, prepared.parts))
    sessions = segment_sessions(problem, prepared.parts, "disable", spinning="during-run")
    devices = problem.platform.device
    used = sorted({p.device for p in parts})
    feeds = stream_feeds(reference.feeds, args.inferences, 0)
    predicted = predicted_stream_period(problem, [prepared.segments])
    counted = args.inferences - args.warmup
    rows, first = [], {}
    for repeat in range(args.repeats):
        log: list = []
        plan = Plan(parts, tuple(Timed(s, p.device, log, first, k) for k, (s, p) in enumerate(zip(sessions, parts))))
        runner = StreamRunner([plan], {d: devices[d].resources for d in used}, 2 * len(used))
        _, finish = runner.run(feeds, list(reference.expected), {p.device: p.cpus for p in parts})
        done = sorted(finish)
        lo, hi = runner.t0 + done[args.warmup - 1], runner.t0 + done[-1]
        for d in used:
            inside = [(b - a, c) for dev, a, b, c in log if dev == d and a >= lo and b <= hi]
            rows.append({"repeat": repeat, "device": d, "period_ms": period_of(finish, args.warmup) * 1e3,
                         "predicted_ms": predicted * 1e3, "runs_per_inference": len(inside) / counted,
                         "stream_wall_ms": sum(w for w, _ in inside) / counted * 1e3,
                         "stream_cpu_ms": sum(c for _, c in inside) / counted * 1e3})
    every = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()
    alone: dict[str, float] = defaultdict(float)
    for k, (outputs, feed) in first.items():
        if every:
            os.sched_setaffinity(0, parts[k].cpus or every)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            sessions[k].run(outputs, feed)
            times.append(time.perf_counter() - t0)
        alone[parts[k].device] += float(np.median(times))
    if every:
        os.sched_setaffinity(0, every)
    table = pd.DataFrame(rows)
    table["alone_ms"] = table.device.map(alone) * 1e3
    text = (f"# Stream segments (`python benchmarks/bench_stream_segments.py --model {args.model} --solver "
            f"{args.solver}`)\n\n{len(parts)} segments on platform `cpu`, profiled costs, {counted} inferences "
            f"counted after {args.warmup}, {time.strftime('%Y-%m-%d %H:%M')}. Per device and inference: "
            "`stream_wall_ms`, the segments' time in `session.run` during the stream; `stream_cpu_ms`, the CPU "
            "time of the calling thread in it; `alone_ms`, the same sessions run back to back alone (median of "
            "5, their first inputs).\n\n" + markdown_table(table.round(3)) + "\n")
    save(args.out, table, text)


if __name__ == "__main__":
    main()
