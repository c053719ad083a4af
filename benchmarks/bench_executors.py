"""Executors for a two-core placement: hetsched's per-device workers vs ORT's multi-stream session.

The same split (two independent branches, one per core) runs three ways, each
timed on its own (medians of ``--repeats``), beside plain ORT on 1 and 2 threads:

* ``workers``: hetsched's executor (:mod:`scheduler.executor`): one session per
  segment, one worker thread per device, 1 intra-op thread each;
* ``multistream``: one ORT session with ``session.node_partition_config_file``
  naming the two streams (``DeviceBasedPartitioner``), ORT_PARALLEL, 2 inter-op
  threads, 1 intra-op thread;
* ``one stream``: the same session with both branches in one stream (what the
  multi-stream session costs when it does not overlap).

Models: two chains of 512x512 MatMuls (about 1 ms each) joined by an Add, and
``inception-imagenet`` optimised at level ``all`` (branches 1-2 vs 3-4).  Writes
``results/bench_executors.md``.

    python benchmarks/bench_executors.py --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
from functools import partial
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from scheduler.executor import session_options, timed_runs
from scheduler.fileio import write_bytes, write_text
from scheduler.optimize import model_bytes
from scheduler.pipeline import load_problem
from scheduler.replay import replay
from scheduler.semantics import simulate


def two_chains(n: int = 512, length: int = 8) -> onnx.ModelProto:
    """Two independent MatMul chains from one input, added at the end."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    for b in range(2):
        x = "x"
        for i in range(length):
            w = f"w{b}_{i}"
            inits.append(numpy_helper.from_array((rng.random((n, n)) * 0.01).astype(np.float32), w))
            nodes.append(helper.make_node("MatMul", [x, w], [f"y{b}_{i}"], name=f"branch{b}/mm{i}"))
            x = f"y{b}_{i}"
    nodes.append(helper.make_node("Add", [f"y0_{length - 1}", f"y1_{length - 1}"], ["out"], name="join"))
    graph = helper.make_graph(nodes, "two_chains", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [n, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def multistream(data: bytes, streams: list[list[str]], folder: str) -> ort.InferenceSession:
    path = os.path.join(folder, f"streams{len(streams)}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"type": "DeviceBasedPartitioner", "devices": ["0"] * len(streams), "streams": streams}, fh)
    so = session_options("none", 1, parallel=True, spinning="during-run")
    so.inter_op_num_threads = 2
    so.add_session_config_entry("session.node_partition_config_file", path)
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def compare(spec: str, second: Callable[[str], bool], repeats: int) -> dict[str, float]:
    """Median ms of each executor for the split that puts the nodes ``second`` picks on cpu1."""
    model, problem = load_problem(spec, platform="cpu", optimization="all" if not spec.endswith(".onnx") else "none")
    data = model_bytes(model)
    placement = {t: "cpu1" if second(t) else "cpu0" for t in problem.tasks}
    feeds = {i.name: np.random.default_rng(0).standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim])
             .astype(np.float32) for i in model.graph.input}
    order = [n.name for n in model.graph.node]
    streams = [[t for t in order if placement[t] == d] for d in ("cpu0", "cpu1")]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in (("plain, 1 thread", lambda: ort.InferenceSession(data, session_options("none", 1))),
                            ("plain, 2 threads", lambda: ort.InferenceSession(data, session_options("none", 2))),
                            ("ORT one stream", lambda: multistream(data, [order], tmp)),
                            ("ORT multistream, 2 streams", lambda: multistream(data, streams, tmp))):
            sess = make()
            out[label] = statistics.median(timed_runs(partial(sess.run, None, feeds), 3, repeats)) * 1e3
            del sess
    r = replay(model, problem, simulate(problem, placement), repeats=repeats, warmup=3, baselines=False)
    out["hetsched workers, 2 devices"] = r["measured_makespan_s"] * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default="results/bench_executors.md")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "two_chains.onnx")
        write_bytes(path, model_bytes(two_chains()))
        cases = {"two MatMul chains (8 x 512^2 each)": (path, lambda t: t.startswith("branch1/")),
                 "inception-imagenet (all)": ("inception-imagenet",
                                              lambda t: re.search(r"branch[34]", t) is not None)}
        for name, (spec, second) in cases.items():
            res = compare(spec, second, args.repeats)
            print(name, {k: round(v, 2) for k, v in res.items()}, flush=True)
            rows.append((name, res))
    labels = list(rows[0][1])
    lines = ["# Executors for a two-core placement", "",
             f"`python benchmarks/bench_executors.py --repeats {args.repeats}`: medians in ms, ORT {ort.__version__}, "
             f"{os.cpu_count()} cores. Each configuration timed on its own.", "",
             "| model | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {name} | " + " | ".join(f"{res[k]:.2f}" for k in labels) + " |" for name, res in rows]
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
