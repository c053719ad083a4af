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

import os
from collections import Counter
from pathlib import Path

from pydantic import ConfigDict

from .errors import HetschedError
from .fileio import read_json
from .graph import Edge, Task, TaskGraph
from .platform import Device, Link, Platform
from .problem import Problem
from .schema import FileModel, Ident, NonNegative, Switch, Text, parse, whole

DeviceCount = whole(0, 1024)

class DnnNode(FileModel):
    id: Ident
    name: Text | None = None
    supportedOnFpga: Switch = False
    cpuLatency: NonNegative = 0.0
    fpgaLatency: NonNegative = 0.0
    isBackwardNode: Switch = False
    colorClass: Ident | None = None
    size: NonNegative = 0.0
    layerId: Ident | None = None


class DnnEdge(FileModel):
    sourceId: Ident
    destId: Ident
    cost: NonNegative = 0.0
    size: NonNegative = 0.0


class DnnWorkload(FileModel):
    """One dnn-partitioning file (its README); unknown top-level keys are kept by the format, so ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    nodes: list[DnnNode]
    edges: list[DnnEdge]
    maxFPGAs: DeviceCount = 1
    maxCPUs: DeviceCount = 1
    maxSizePerFPGA: NonNegative | None = None


def import_dnn_partitioning(path: str | os.PathLike[str], *, accelerators: int | None = None,
                            cpus: int | None = None, time_scale: float = 1e-3) -> Problem:
    """A problem from one dnn-partitioning JSON file (device counts default to the file's)."""
    where = os.fspath(path)
    data = read_json(where, "workload")
    if isinstance(data, dict):  # the arguments replace the file's device counts, and are checked alike
        data = {**data, **{k: v for k, v in (("maxFPGAs", accelerators), ("maxCPUs", cpus)) if v is not None}}
    w = parse(DnnWorkload, data, where, HetschedError)
    k, l_, cap = w.maxFPGAs, w.maxCPUs, w.maxSizePerFPGA
    if k + l_ == 0:
        raise HetschedError(f"{where}: need at least one device (accelerators={k}, cpus={l_})")
    accs = [Device(f"acc{i}", kind="accelerator", resources=(f"acc{i}",), simulated=True,
                   memory_bytes=int(cap) if cap is not None else None, transfer_load="staged") for i in range(k)]
    cores = [Device(f"cpu{i}", kind="cpu", resources=(f"core{i}",), transfer_load="none") for i in range(l_)]
    links = [Link(a.name, b.name, transfer_scale=2.0) for i, a in enumerate(accs) for b in accs[i + 1:]]
    links += [Link(a.name, b.name, transfer_scale=1.0) for a in accs for b in cores]
    links += [Link(a.name, b.name, transfer_scale=0.0) for i, a in enumerate(cores) for b in cores[i + 1:]]
    platform = Platform(Path(where).stem, tuple(accs + cores), tuple(links))

    names: dict[int | str, str] = {}
    counts = Counter(n.name or "" for n in w.nodes)
    tasks, costs, colors = [], {}, {}
    for i, node in enumerate(w.nodes):
        if node.id in names:
            raise HetschedError(f"{where}: nodes[{i}]: node id {node.id!r} is used twice")
        name = node.name if node.name and counts[node.name] == 1 else f"n{node.id}"
        names[node.id] = name
        costs[name] = {c.name: node.cpuLatency * time_scale for c in cores}
        if node.supportedOnFpga:
            costs[name].update({a.name: node.fpgaLatency * time_scale for a in accs})
        tasks.append(Task(name, "backward" if node.isBackwardNode else "forward", memory_bytes=int(node.size)))
        if node.colorClass is not None:
            colors[name] = str(node.colorClass)
    shared = Counter(colors.values())
    colocate = {t: g for t, g in colors.items() if shared[g] > 1}

    edges, transfer = {}, {}
    for i, e in enumerate(w.edges):
        unknown = [n for n in (e.sourceId, e.destId) if n not in names]
        if unknown:
            raise HetschedError(f"{where}: edges[{i}]: edge names unknown node id {unknown[0]!r}")
        key = (names[e.sourceId], names[e.destId])
        nbytes, cost = int(e.size), e.cost * time_scale
        if key in edges:  # parallel edges: one dependency carrying both
            nbytes += edges[key].bytes
            cost += transfer[key]
        edges[key] = Edge(key[0], key[1], nbytes)
        transfer[key] = cost
    graph = TaskGraph(Path(where).stem, tuple(tasks), tuple(edges.values()))
    return Problem(graph, platform, costs, transfer, colocate, name=Path(where).stem)
