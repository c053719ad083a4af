"""saga's schedulers and the instances of the peer comparison (benchmark helper, not installed).

* :data:`SAGA_SCHEDULERS`, :func:`applicable` and :func:`run_saga_scheduler`: every
  scheduler of anrg-saga, with the size limits of the exponential ones;
* instance builders, each documented on its function: saga's own random families
  (:func:`saga_random_instances`), related-machine versions of our zoo models
  (:func:`zoo_instances`) and of the dnn-partitioning workloads (:func:`dnn_instances`).

Each :class:`Instance` exists twice, as saga's (network, task graph) and as our
Problem built from it exactly (:func:`saga_bridge.from_saga`).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import networkx as nx
import numpy as np

import saga
from saga import Network, TaskGraph as SagaTaskGraph
from saga import schedulers as S

from saga_bridge import from_saga, normalize_self_loops, pair_speeds, quiet
from scheduler.graph import TaskGraph
from scheduler.problem import Problem

# ----------------------------------------------------------------------------- saga's schedulers

@dataclass(frozen=True)
class SagaScheduler:
    """One saga scheduler: a factory, and the largest instance it is run on (None = any)."""

    name: str
    make: Callable[[], saga.Scheduler]
    max_tasks: int | None = None
    max_assignments: float | None = None  # devices ** tasks, for exponential ones
    finite_self_loops: bool = False  # SMT turns speeds into exact rationals: inf is refused
    max_path_work: float | None = None  # DPS: cap on :func:`path_work`


# Every scheduler saga 2.0.2 exports except HybridScheduler (the best of a list:
# the comparison takes the best of all of them anyway).  BruteForce (every mapping x
# every topological order) and SMT (z3 binary search, absolute epsilon 1e-3) are
# exponential: tiny instances only.  DPS recomputes its top / bottom levels by
# un-memoised recursion over every path, for every ready task after every step:
# time grows with the number of paths (measured here: ~1e-4 s per unit of
# path_work; 68 s for a 135-task randwire graph, minutes on the dnn layer graphs),
# so it runs only up to path_work 1e5.
# Known defects of saga 2.0.2 seen here (the benchmark records them, never hides them):
# HBMCT, after moving a task between nodes, rebuilds only the two nodes involved and
# drops the group's tasks on the others (schedules with missing tasks: invalid), and
# re-times earlier groups' tasks through a table that lacks them (KeyError); GDL picks
# each task's node by the *minimum* dynamic level (the paper maximises it) and adds
# data sizes to times in its static level, hence makespans 10x the best.
SAGA_SCHEDULERS: tuple[SagaScheduler, ...] = (
    SagaScheduler("HEFT", S.HeftScheduler),
    SagaScheduler("CPoP", S.CpopScheduler),
    SagaScheduler("ETF", S.ETFScheduler),
    SagaScheduler("MinMin", S.MinMinScheduler),
    SagaScheduler("MaxMin", S.MaxMinScheduler),
    SagaScheduler("Duplex", S.DuplexScheduler),
    SagaScheduler("MCT", S.MCTScheduler),
    SagaScheduler("MET", S.METScheduler),
    SagaScheduler("OLB", S.OLBScheduler),
    SagaScheduler("MST", S.MSTScheduler),
    SagaScheduler("Sufferage", S.SufferageScheduler),
    SagaScheduler("WBA", S.WBAScheduler),
    SagaScheduler("BIL", S.BILScheduler),
    SagaScheduler("FCP", S.FCPScheduler),
    SagaScheduler("FLB", S.FLBScheduler),
    SagaScheduler("GDL", S.GDLScheduler),
    SagaScheduler("HBMCT", S.HbmctScheduler),
    SagaScheduler("MSBC", S.MsbcScheduler),
    SagaScheduler("DPS", S.DPSScheduler, max_path_work=1e5),
    SagaScheduler("FastestNode", S.FastestNodeScheduler),
    SagaScheduler("BruteForce", S.BruteForceScheduler, max_tasks=6, max_assignments=3 ** 6),
    SagaScheduler("SMT", S.SMTScheduler, max_tasks=6, max_assignments=3 ** 6, finite_self_loops=True),
)


def path_work(task_graph: SagaTaskGraph) -> float:
    """``tasks * sum over tasks of (paths from a source + paths to a sink)``: DPS's cost driver."""
    g = task_graph.graph
    order = list(nx.topological_sort(g))
    down: dict[str, int] = {}
    up: dict[str, int] = {}
    for t in reversed(order):
        down[t] = max(1, sum(down[s] for s in g.successors(t)))
    for t in order:
        up[t] = max(1, sum(up[p] for p in g.predecessors(t)))
    return float(len(order)) * float(sum(down[t] + up[t] for t in order))


def applicable(sched: SagaScheduler, network: Network, task_graph: SagaTaskGraph) -> bool:
    """Whether ``sched`` runs on this instance in reasonable time."""
    n_tasks, n_nodes = len(task_graph.tasks), len(network.nodes)
    if sched.max_path_work is not None and path_work(task_graph) > sched.max_path_work:
        return False
    if sched.max_tasks is not None and n_tasks > sched.max_tasks:
        return False
    if sched.max_assignments is not None and float(n_nodes) ** n_tasks > sched.max_assignments:
        return False
    return True


def run_saga_scheduler(sched: SagaScheduler, network: Network, task_graph: SagaTaskGraph,
                       seed: int = 0) -> tuple[saga.Schedule, float]:
    """Run one saga scheduler (WBA draws from ``random``: seeded); returns (schedule, seconds).

    For SMT, self-loops get speed 1e15 instead of inf (pysmt cannot make a rational of
    inf): its schedules then also respect a same-node delay of size * 1e-15, so they
    remain valid here and differ from the exact instance by at most that.
    """
    if sched.finite_self_loops:
        speeds = pair_speeds(network)
        network = Network.create(nodes=[(n.name, n.speed) for n in network.nodes],
                                 edges=[(a, b, 1e15 if a == b else v) for (a, b), v in speeds.items()])
    random.seed(seed)
    np.random.seed(seed)
    started = time.perf_counter()
    out = sched.make().schedule(network, task_graph)
    return out, time.perf_counter() - started


# ----------------------------------------------------------------------------- instances

@dataclass(frozen=True)
class Instance:
    """One comparison instance, identical for both sides: our Problem and saga's (network, task graph)."""

    name: str
    family: str
    problem: Problem
    network: Network
    task_graph: SagaTaskGraph
    note: str = ""

    @property
    def n_tasks(self) -> int:
        return len(self.problem.tasks)

    @property
    def n_devices(self) -> int:
        return len(self.problem.devices)


def _instance(name: str, family: str, network: Network, task_graph: SagaTaskGraph, note: str = "",
              task_order: Sequence[str] | None = None) -> Instance:
    network = normalize_self_loops(network)
    problem = from_saga(network, task_graph, name=name, task_order=task_order)
    return Instance(name, family, problem, network, task_graph, note)


class _Uniform:
    """A sampler with saga's ``RandomVariable.sample()`` interface returning a float.

    saga 2.0.2's own ``UniformRandomVariable.sample()`` returns a 1-element ndarray,
    which its pydantic ``TaskGraphNode(cost=...)`` rejects, so
    ``saga.utils.random_graphs`` cannot run with its default distribution; its
    default is also sampled at import time from the unseeded global numpy state.
    """

    def __init__(self, rng: np.random.Generator, low: float = 0.1, high: float = 1.0) -> None:
        self.rng, self.low, self.high = rng, low, high

    def sample(self) -> float:
        return float(self.rng.uniform(self.low, self.high))


@quiet
def saga_random_instances(quick: bool = False, seed: int = 0) -> list[Instance]:
    """Instances from saga's own generators, weights U(0.1, 1) (saga's default range).

    * ``saga.utils.random_graphs``: ``get_branching_dag``, ``get_chain_dag``,
      ``get_fork_dag``, ``get_diamond_dag`` task graphs on ``get_network`` networks
      (complete; node speeds and link speeds U(0.1, 1));
    * ``saga.schedulers.data.random``: ``gen_out_trees``, ``gen_in_trees``,
      ``gen_parallel_chains`` on ``gen_random_networks`` (weights passed in: its
      default weight function ``max(min(1e-9, gauss), 2)`` always returns 2);
    * ``saga.schedulers.data.riotbench``: the ETL / STATS / TRAIN / PREDICT IoT
      pipelines on a small ``get_fog_networks`` network (2 edge, 1 fog, 1 cloud node).

    Every self-loop is set to infinite speed (:func:`normalize_self_loops`).
    The tiny diamond / fork instances (3 nodes) are where BruteForce and SMT run.
    """
    from saga.schedulers.data import random as sdr
    from saga.schedulers.data import riotbench as rb
    from saga.utils import random_graphs as rg

    out: list[Instance] = []

    def rngs(k: int) -> tuple[_Uniform, Callable[..., float]]:
        rng = np.random.default_rng([seed, k])
        u = _Uniform(rng)
        return u, (lambda *_: u.sample())

    # tiny, for BruteForce / SMT too
    u, _ = rngs(1)
    out.append(_instance("saga-diamond", "saga-tiny", rg.get_network(3, weight_distribution=u),
                         rg.get_diamond_dag(weight_distribution=u)))
    u, _ = rngs(2)
    out.append(_instance("saga-fork", "saga-tiny", rg.get_network(3, weight_distribution=u),
                         rg.get_fork_dag(weight_distribution=u)))
    shapes = [(3, 3, 0)] if quick else [(3, 3, 0), (4, 3, 1), (4, 4, 2), (5, 3, 3)]
    for levels, bf, s in shapes:
        u, _ = rngs(10 + s)
        tg = rg.get_branching_dag(levels=levels, branching_factor=bf, weight_distribution=u)
        out.append(_instance(f"saga-branching-L{levels}B{bf}-s{s}", "saga-random",
                             rg.get_network(4, weight_distribution=u), tg))
    n_chain = 12 if quick else 30
    u, _ = rngs(20)
    out.append(_instance(f"saga-chain-{n_chain}", "saga-random", rg.get_network(4, weight_distribution=u),
                         rg.get_chain_dag(num_nodes=n_chain, weight_distribution=u)))
    trees = [(3, 2)] if quick else [(5, 2), (3, 4)]
    kinds = (("outtree", sdr.gen_out_trees, 30),) + (() if quick else (("intree", sdr.gen_in_trees, 40),))
    for i, (levels, bf) in enumerate(trees):
        for kind, make_trees, base in kinds:
            u, f = rngs(base + i)
            net = sdr.gen_random_networks(1, 4, get_node_weight=f, get_edge_weight=f)[0]
            out.append(_instance(f"saga-{kind}-L{levels}B{bf}", "saga-random", net,
                                 make_trees(1, levels, bf, get_task_weight=f, get_dependency_weight=f)[0]))
    chains = [(3, 4)] if quick else [(4, 10), (8, 12)]
    for i, (nc, length) in enumerate(chains):
        u, f = rngs(50 + i)
        net = sdr.gen_random_networks(1, 4, get_node_weight=f, get_edge_weight=f)[0]
        out.append(_instance(f"saga-chains-{nc}x{length}", "saga-random", net,
                             sdr.gen_parallel_chains(1, nc, length, get_task_weight=f, get_dependency_weight=f)[0]))
    pipelines = {"etl": rb.get_etl_task_graphs, "stats": rb.get_stats_task_graphs,
                 "train": rb.get_train_task_graphs, "predict": rb.get_predict_task_graphs}
    if quick:
        pipelines = {"etl": pipelines["etl"]}
    for i, (label, fn) in enumerate(pipelines.items()):
        np.random.seed(seed * 1000 + 60 + i)  # riotbench draws from the global numpy state
        net = rb.get_fog_networks(1, num_edges_nodes=2, num_fog_nodes=1, num_cloud_nodes=1)[0]
        out.append(_instance(f"riotbench-{label}", "saga-riotbench", net, fn(1)[0]))
    return out


# Related-machine version of a heterogeneous board: speeds relative to cpu0, link
# bandwidths relative to each other (scaled per instance to a target CCR).
RELATED_SPEEDS = {"cpu0": 1.0, "cpu1": 1.0, "npu": 3.0, "gpu": 8.0}
RELATED_LINKS = {("cpu0", "cpu1"): 8.0, ("cpu0", "gpu"): 1.0, ("cpu1", "gpu"): 1.0,
                 ("cpu0", "npu"): 2.0, ("cpu1", "npu"): 2.0, ("gpu", "npu"): 1.0}


@quiet
def _related_instance(name: str, family: str, graph: TaskGraph, work: Mapping[str, float],
                      speeds: Mapping[str, float], rel_links: Mapping[tuple[str, str], float],
                      ccr: float | None = None, note: str = "") -> Instance:
    """saga instance from work, speeds and link bandwidths; ``ccr`` rescales all bandwidths.

    CCR = (mean over edges of the mean transfer time over distinct device pairs) /
    (mean over tasks of the mean execution time over devices).
    """
    links = dict(rel_links)
    if ccr is not None and graph.edges:
        mean_comp = float(np.mean([w / s for w in work.values() for s in speeds.values()]))
        mean_bytes = float(np.mean([e.bytes for e in graph.edges]))
        mean_inv = float(np.mean([1.0 / b for b in links.values()]))
        scale = mean_bytes * mean_inv / (ccr * mean_comp)
        links = {k: v * scale for k, v in links.items()}
    net = Network.create(nodes=list(speeds.items()),
                         edges=[(a, b, bw) for (a, b), bw in links.items()] + [(d, d, math.inf) for d in speeds])
    tg = SagaTaskGraph.create(tasks=[(t.name, float(work[t.name])) for t in graph.tasks],
                              dependencies=[(e.src, e.dst, float(e.bytes)) for e in graph.edges])
    return _instance(name, family, net, tg, note, task_order=[t.name for t in graph.tasks])


ZOO_QUICK = {"mlp": {}, "bert": {}, "inception": {}}
ZOO_DEFAULT = {"mlp": {"layers": 16}, "bert": {"layers": 4}, "gpt2": {"layers": 4},
               "randwire": {"nodes": 24}, "inception": {"blocks": 4}}


def zoo_instances(quick: bool = False, ccrs: Sequence[float] | None = None) -> list[Instance]:
    """Related-machine versions of the zoo models.

    Task graph of each zoo model (``scheduler.pipeline.build_problem``, default
    platform); ``w_t`` = the task's modelled cost on the reference device ``cpu0``
    (roofline + overhead), in milliseconds (so that times are O(1): saga uses an
    absolute 1e-9 tolerance); edges keep their bytes.  Network: :data:`RELATED_SPEEDS`
    (cpu0, cpu1 speed 1; npu 3; gpu 8), links :data:`RELATED_LINKS` scaled to the
    target CCR (1.0 in quick mode; 0.5 and 2.0 otherwise).  This drops what makes
    our default platform interesting (the shared-core cpu-par, PIM op support and
    memory, per-op device affinity): it is the related-machines shadow of the model.
    """
    from scheduler.pipeline import build_problem

    models = ZOO_QUICK if quick else ZOO_DEFAULT
    ccrs = tuple(ccrs) if ccrs is not None else ((1.0,) if quick else (0.5, 2.0))
    out = []
    for model, params in models.items():
        base = build_problem(model, params)
        work = {t: base.costs[t]["cpu0"] * 1e3 for t in base.tasks}
        for ccr in ccrs:
            out.append(_related_instance(f"zoo-{model}-ccr{ccr:g}", "zoo-related", base.graph, work,
                                         RELATED_SPEEDS, RELATED_LINKS, ccr,
                                         note=f"{model} {params or 'defaults'}"))
    return out


DNN_QUICK = ("latency-inputs/LayerGraphs/bert24_inference.json", "latency-inputs/LayerGraphs/gnmt_inference.json")
DNN_DEFAULT = DNN_QUICK + ("latency-inputs/LayerGraphs/resnet50_inference.json",
                           "latency-inputs/OperatorGraphs/bert_l-3_inference.json")
DNN_BANDWIDTH = 2_147_000.0  # bytes per ms: every latency input has edge cost = size / 2,147,000


def dnn_instances(root: str | Path, quick: bool = False) -> list[Instance]:
    """Related-machine versions of the dnn-partitioning workloads (Tarnawski et al.).

    Graph from ``scheduler.importers.import_dnn_partitioning`` (parallel edges merged,
    bytes = the edges' ``size``); ``w_t`` = ``cpuLatency`` (ms).  Network: cpu0, cpu1
    (speed 1) and acc0, acc1 (speed = geometric mean of cpuLatency / fpgaLatency over
    the nodes with both > 0); CPU-accelerator links 2,147,000 bytes/ms (the files'
    own cost = size / 2,147,000), accelerator-accelerator half that (through host
    memory, as the importer does), CPU-CPU 10x (the importer makes it free; saga
    needs a finite link speed to stay clear of inf arithmetic in its averages).
    The restriction changes the problem: per-node accelerator speed-ups become one
    average, memory limits, co-location (colorClass) and accelerator op support are
    dropped, and the 8 CPUs / k accelerators of the file become 2 + 2.
    """
    from scheduler.importers import import_dnn_partitioning

    out = []
    for rel in (DNN_QUICK if quick else DNN_DEFAULT):
        path = Path(root) / rel
        if not path.exists():
            continue
        base = import_dnn_partitioning(path, accelerators=1, cpus=1, time_scale=1.0)
        work = {t: base.costs[t]["cpu0"] for t in base.tasks}
        ratios = [base.costs[t]["cpu0"] / base.costs[t]["acc0"] for t in base.tasks
                  if base.costs[t].get("acc0", 0) > 0 and base.costs[t]["cpu0"] > 0]
        s_acc = float(np.exp(np.mean(np.log(ratios)))) if ratios else 1.0
        speeds = {"cpu0": 1.0, "cpu1": 1.0, "acc0": s_acc, "acc1": s_acc}
        links = {("cpu0", "cpu1"): 10 * DNN_BANDWIDTH, ("acc0", "acc1"): DNN_BANDWIDTH / 2}
        links.update({(c, a): DNN_BANDWIDTH for c in ("cpu0", "cpu1") for a in ("acc0", "acc1")})
        kind, stem = path.parent.name, path.stem
        out.append(_related_instance(f"dnn-{kind}-{stem}", "dnn-related", base.graph, work, speeds, links,
                                     note=f"acc speed-up {s_acc:.3g}"))
    return out


def instance_ccr(inst: Instance) -> float:
    """Communication-to-computation ratio of an instance (as in :func:`_related_instance`)."""
    p = inst.problem
    comp = float(np.mean([c for row in p.costs.values() for c in row.values()]))
    pairs = list(p.platform.link_table)
    if not p.graph.edges or not pairs or comp == 0:
        return 0.0
    comm = float(np.mean([np.mean([p.transfer(e, a, b) for a, b in pairs]) for e in p.graph.edges]))
    return comm / comp
