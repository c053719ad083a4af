"""Importers for published placement workloads.

``dnn-partitioning``: the profiled DNN graphs of Tarnawski et al. (NeurIPS 2020),
shipped in ``shared/benchmarks/dnn-partitioning`` (format in its README).  Each file
becomes a problem with ``k`` accelerator devices (``acc0``...) and ``l`` CPU-core
devices (``cpu0``...), each on its own resource:

* cost: ``cpuLatency`` on CPU cores, ``fpgaLatency`` on accelerators when
  ``supportedOnFpga`` (otherwise CPU only), times ``time_scale`` (the files use
  milliseconds; the default turns them into seconds);
* transfers: each edge's ``cost`` when it crosses between a CPU and an
  accelerator, twice that between two accelerators (through host memory), free
  between CPU cores (links with ``transfer_scale`` 1, 2 and 0);
* throughput: the paper's max-load model.  Accelerators are ``staged``: one pays a
  node's cost once for sending its output (however many devices read it) and once
  for each node whose output it receives; CPU cores pay no communication
  (``transfer_load: none``).  So a placement's period is the paper's max-load;
* memory: ``maxSizePerFPGA`` per accelerator, node ``size`` as task memory;
* co-location: every ``colorClass`` shared by several nodes is a group.

Example
-------
>>> p = import_dnn_partitioning(BENCHMARKS / "latency-inputs/LayerGraphs/bert24_inference.json")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import reprlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

from .errors import HetschedError
from .fileio import read_json
from .graph import Edge, Task, TaskGraph
from .platform import Device, Link, Platform
from .problem import Problem

_NODE_KEYS = {"id", "name", "supportedOnFpga", "cpuLatency", "fpgaLatency", "isBackwardNode", "colorClass",
              "size", "layerId"}
_EDGE_KEYS = {"sourceId", "destId", "cost", "size"}


def _num(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise HetschedError(f"{where} must be a finite number >= 0, got {value!r}")
    return float(value)


def _count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1024:
        raise HetschedError(f"{where} must be a whole number from 0 to 1024, got {reprlib.repr(value)}")
    return value


def _ident(where: str, value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise HetschedError(f"{where} must be a number or a name, got {reprlib.repr(value)}")
    return value


def import_dnn_partitioning(path: str | os.PathLike[str], *, accelerators: int | None = None,
                            cpus: int | None = None, time_scale: float = 1e-3) -> Problem:
    """A problem from one dnn-partitioning JSON file (device counts default to the file's)."""
    where = os.fspath(path)
    data = read_json(where, "workload")
    if not isinstance(data, dict) or not {"nodes", "edges"} <= set(data):
        raise HetschedError(f"{where}: not a dnn-partitioning workload (needs 'nodes' and 'edges')")
    for key in ("nodes", "edges"):
        if not isinstance(data[key], list):
            raise HetschedError(f"{where}: {key} must be a list")
    k = _count(f"{where}: maxFPGAs", accelerators if accelerators is not None else data.get("maxFPGAs", 1))
    l_ = _count(f"{where}: maxCPUs", cpus if cpus is not None else data.get("maxCPUs", 1))
    if k < 0 or l_ < 0 or k + l_ == 0:
        raise HetschedError(f"{where}: need at least one device (accelerators={k}, cpus={l_})")
    cap = data.get("maxSizePerFPGA")
    if cap is not None:
        cap = _num(f"{where}: maxSizePerFPGA", cap)
    accs = [Device(f"acc{i}", kind="accelerator", resources=(f"acc{i}",), simulated=True,
                   memory_bytes=int(cap) if cap is not None else None, transfer_load="staged") for i in range(k)]
    cores = [Device(f"cpu{i}", kind="cpu", resources=(f"core{i}",), transfer_load="none") for i in range(l_)]
    links = [Link(a.name, b.name, transfer_scale=2.0) for i, a in enumerate(accs) for b in accs[i + 1:]]
    links += [Link(a.name, b.name, transfer_scale=1.0) for a in accs for b in cores]
    links += [Link(a.name, b.name, transfer_scale=0.0) for i, a in enumerate(cores) for b in cores[i + 1:]]
    platform = Platform(Path(where).stem, tuple(accs + cores), tuple(links))

    names: dict[int, str] = {}
    counts = Counter(str(n.get("name", "")) for n in data["nodes"] if isinstance(n, dict))
    tasks, costs, colors = [], {}, {}
    for i, node in enumerate(data["nodes"]):
        at = f"{where}: nodes[{i}]"
        if not isinstance(node, dict) or "id" not in node:
            raise HetschedError(f"{at}: a node must be an object with an 'id'")
        unknown = set(node) - _NODE_KEYS
        if unknown:
            raise HetschedError(f"{at}: unknown key {sorted(unknown)[0]!r}")
        nid = _ident(f"{at}.id", node["id"])
        if nid in names:
            raise HetschedError(f"{at}: node id {nid!r} is used twice")
        label = str(node.get("name") or "")
        name = label if label and counts[label] == 1 else f"n{nid}"
        names[nid] = name
        row = {c.name: _num(f"{at}.cpuLatency", node.get("cpuLatency", 0.0)) * time_scale for c in cores}
        if node.get("supportedOnFpga") in (True, 1):
            row.update({a.name: _num(f"{at}.fpgaLatency", node.get("fpgaLatency", 0.0)) * time_scale for a in accs})
        costs[name] = row
        tasks.append(Task(name, "backward" if node.get("isBackwardNode") else "forward",
                          memory_bytes=int(_num(f"{at}.size", node.get("size", 0.0)))))
        if node.get("colorClass") is not None:
            colors[name] = str(node["colorClass"])
    shared = Counter(colors.values())
    colocate = {t: g for t, g in colors.items() if shared[g] > 1}

    edges, transfer = {}, {}
    for i, e in enumerate(data["edges"]):
        at = f"{where}: edges[{i}]"
        if not isinstance(e, dict) or set(e) - _EDGE_KEYS or not {"sourceId", "destId"} <= set(e):
            raise HetschedError(f"{at}: an edge needs sourceId and destId (and optionally cost, size)")
        _ident(f"{at}.sourceId", e["sourceId"]), _ident(f"{at}.destId", e["destId"])
        if e["sourceId"] not in names or e["destId"] not in names:
            raise HetschedError(f"{at}: edge names unknown node id {e['sourceId'] if e['sourceId'] not in names else e['destId']!r}")
        key = (names[e["sourceId"]], names[e["destId"]])
        nbytes = int(_num(f"{at}.size", e.get("size", 0.0)))
        cost = _num(f"{at}.cost", e.get("cost", 0.0)) * time_scale
        if key in edges:  # parallel edges: one dependency carrying both
            nbytes += edges[key].bytes
            cost += transfer[key]
        edges[key] = Edge(key[0], key[1], nbytes)
        transfer[key] = cost
    graph = TaskGraph(Path(where).stem, tuple(tasks), tuple(edges.values()))
    return Problem(graph, platform, costs, transfer, colocate, name=Path(where).stem)
