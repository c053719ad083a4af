"""A large model (by default beyond protobuf's 2 GiB limit), the whole way: profile, replay a two-core cut,
export, run alone.

Builds an MLP whose weights (float32, ``--width`` square, ``--layers`` of them)
pass 2 GiB, saved with ONNX external data as an LLM's export is, then: the
problem on platform ``cpu`` with profiled costs (ORT optimisation ``all``), a
replay of a placement that alternates ``cpu0`` and ``cpu1`` layer by layer against
plain ORT in the same run, an export of that placement, and the exported runner
in a fresh process, and ``hetsched run`` on the model in a process of its own
(four solvers, the profile reused, three replay repeats).  Reports the seconds
of each stage, the replay's largest difference from the whole model, its time
against plain ORT, and the peak memory (RSS) of this process and of the run's
against the model's size.  Needs about 4x the model's size in memory.
``--weights constants`` keeps the weights in ``Constant`` nodes instead of
initializers (saved with ``convert_attribute``, their values in the data file too).

    python benchmarks/bench_large_model.py --width 14336 --layers 3
    python benchmarks/bench_large_model.py --width 14336 --layers 3 --weights constants
    python benchmarks/bench_large_model.py --width 8192 --layers 4 --out results/bench_large_model_1gib
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import pandas as pd
import yaml
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data

from bench_io import save
from scheduler.deploy import export_placement
from scheduler.graph import PROTOBUF_LIMIT
from scheduler.pipeline import ProfileOptions, load_problem
from scheduler.replay import replay
from scheduler.semantics import simulate


def write_mlp(path: str, width: int, layers: int, constants: bool = False) -> int:
    """An MLP of ``layers`` square float32 MatMul+Relu layers, its weights (initializers, or ``Constant``
    nodes) in ``<path>.data``; its bytes."""
    rng = np.random.default_rng(0)
    nodes, weights, x = [], [], "x"
    for k in range(layers):
        weight = numpy_helper.from_array(rng.standard_normal((width, width), dtype=np.float32)
                                         / np.sqrt(width, dtype=np.float32), f"w{k}")
        if constants:
            nodes.append(helper.make_node("Constant", [], [f"w{k}"], value=weight))
        else:
            weights.append(weight)
        nodes += [helper.make_node("MatMul", [x, f"w{k}"], [f"m{k}"]), helper.make_node("Relu", [f"m{k}"], [f"r{k}"])]
        x = f"r{k}"
    graph = helper.make_graph(nodes, "large-mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, width])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    convert_model_to_external_data(model, location=os.path.basename(path) + ".data", size_threshold=0,
                                   convert_attribute=True)
    onnx.save(model, path)
    return width * width * 4 * layers


RUN = """
import sys
from scheduler.cli import main
try:
    main(["run", sys.argv[1]])
finally:
    with open("/proc/self/status", encoding="utf-8") as fh:
        print(next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:")), file=sys.stderr)
"""
"""``hetsched run`` on a config, its peak RSS (bytes) on the last line of its error stream: the process's
own high-water mark (``VmHWM``), since ``ru_maxrss`` after ``fork`` and ``exec`` keeps the parent's RSS at
the fork when that is larger (this benchmark's own, once its model is built)."""


def run_peak(path: str, tmp: str) -> tuple[int, float]:
    """``hetsched run`` on the model at ``path`` in a process of its own, the profile in ``tmp`` reused: its
    peak RSS (bytes) and its seconds."""
    config = os.path.join(tmp, "run.yaml")
    with open(config, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"name": "large", "model": {"path": path}, "platform": "cpu", "costs": "profile",
                        "graph_optimization": "all", "solvers": ["heft", "greedy", "single", "dp-chain"],
                        "replay": {"enabled": True, "repeats": 3, "rounds": 1},
                        "profile": {"folder": os.path.join(tmp, "profiles"), "repeats": 3},
                        "output_dir": os.path.join(tmp, "results")}, fh)
    t0 = time.perf_counter()
    ran = subprocess.run([sys.executable, "-c", RUN, config], capture_output=True, text=True)
    if ran.returncode:
        raise SystemExit(f"hetsched run failed: {ran.stderr.strip().splitlines()[-2:]}")
    return int(ran.stderr.strip().splitlines()[-1]), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=14336)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--weights", choices=("initializers", "constants"), default="initializers")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", help="default: results/bench_large_model, with _constants for --weights constants")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hetsched-large-") as tmp:
        path = os.path.join(tmp, "large.onnx")
        # written by another process, so that the peak memory below is hetsched's alone
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            size = pool.submit(write_mlp, path, args.width, args.layers, args.weights == "constants").result()
        t0 = time.perf_counter()
        model, problem = load_problem(path, platform="cpu", optimization="all", costs="profile",
                                      profile=ProfileOptions(folder=os.path.join(tmp, "profiles"), repeats=3),
                                      progress=True)
        t1 = time.perf_counter()
        order = problem.graph.topological_order
        schedule = simulate(problem, {t: ("cpu0", "cpu1")[i // 2 % 2] for i, t in enumerate(order)})
        result = replay(model, problem, schedule, repeats=args.repeats, warmup=1)
        t2 = time.perf_counter()
        folder = os.path.join(tmp, "deploy")
        export_placement(model, problem, schedule, folder, "all")
        ran = subprocess.run([sys.executable, "-I", os.path.join(folder, "runner.py"), "--repeats", "1"],
                             capture_output=True, text=True)
        t3 = time.perf_counter()
        if ran.returncode:
            raise SystemExit(f"the exported runner failed: {ran.stderr.strip().splitlines()[-1]}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        run, run_s = run_peak(path, tmp)
    row = {"model_gib": size / 2**30, "beyond_limit": size > PROTOBUF_LIMIT, "tasks": len(problem.tasks), "problem_s": t1 - t0, "replay_s": t2 - t1,
           "export_and_run_s": t3 - t2, "max_abs_diff": result["max_abs_diff"],
           "replay_ms": result["measured_makespan_s"] * 1e3, "best_plain": result["best_baseline"],
           "best_plain_ms": result["baselines"][result["best_baseline"]] * 1e3,
           "vs_plain": result["speedup_vs_best_baseline"], "peak_rss_gib": peak / 2**30,
           "peak_over_model": peak / size, "run_s": run_s, "run_peak_gib": run / 2**30,
           "run_peak_over_model": run / size}
    table = pd.DataFrame([row])
    text = "\n".join([
        f"# A model of {size / 2**30:.2f} GiB (`python benchmarks/bench_large_model.py --width {args.width} "
        f"--layers {args.layers} --weights {args.weights}`)", "",
        f"{time.strftime('%Y-%m-%d')}; an MLP of {args.layers} float32 {args.width}x{args.width} MatMul layers "
        f"(weights as {args.weights}) with external data, platform `cpu`, ORT optimisation `all`, profiled costs; "
        f"a placement alternating cpu0 and cpu1 layer by layer, replayed {args.repeats} times beside plain ORT, exported and run alone "
        "(`runner.py`); then `hetsched run` on the model (solvers heft, greedy, single, dp-chain; 3 replay "
        "repeats; the profile reused) in a process of its own (`run_peak_gib`).", "",
        "```\n" + table.round(3).to_string(index=False) + "\n```", ""])
    save(args.out or "results/bench_large_model" + ("_constants" if args.weights == "constants" else ""), table, text)


if __name__ == "__main__":
    main()
