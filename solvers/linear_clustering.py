"""``linear-clustering``: Ramiel-style critical-path clusters mapped to parallel devices.

1. Weigh tasks by their mean cost and edges by their mean transfer; repeatedly
   peel the heaviest remaining path off the graph as one linear cluster (tasks on a
   path run one after another anyway, so keeping them together saves transfers).
2. Merge clusters down to ``clusters`` (default: every count from the most devices
   that can run at once, i.e. the largest set of devices with pairwise disjoint
   resources, down to one, keeping the best): the lightest cluster joins the one
   it exchanges the most data with.
3. Map clusters onto such a set of devices: every assignment is simulated when
   there are few, else the heaviest cluster takes its cheapest device first.
   Tasks a device cannot run, or that would break memory or co-location, go to
   the allowed device where they finish earliest.
"""

from __future__ import annotations

import itertools
import math
import time
from statistics import fmean

import networkx as nx

from scheduler.problem import Problem
from scheduler.schedule import Schedule
from scheduler.semantics import Timeline

from .common import Feasibility, Positive, certify_placement, no_solution, place_in_order
from .heft import upward_rank

MAX_MAPPINGS = 720


def parallel_device_sets(problem: Problem, limit: int = 64) -> list[tuple[str, ...]]:
    """The largest sets of devices whose resources are pairwise disjoint (that can all run at once).

    These are the maximum cliques of the "never share a resource" graph; at most
    ``limit`` of them are returned, in platform order.
    """
    g = nx.Graph()
    g.add_nodes_from(problem.devices)
    g.add_edges_from((a, b) for a, b in itertools.combinations(problem.devices, 2)
                     if not problem.platform.shares_resource(a, b))
    index = {d: i for i, d in enumerate(problem.devices)}
    cliques = [tuple(sorted(c, key=index.__getitem__)) for c in itertools.islice(nx.find_cliques(g), 10_000)]
    size = max(len(c) for c in cliques)
    return sorted({c for c in cliques if len(c) == size}, key=lambda c: [index[d] for d in c])[:limit]


def linear_clusters(problem: Problem) -> list[list[str]]:
    """Peel heaviest paths (mean cost + mean transfer) until every task is in a cluster."""
    pairs = list(itertools.permutations(problem.devices, 2))
    w = {t: fmean(problem.costs[t].values()) for t in problem.tasks}
    comm = {(e.src, e.dst): (fmean(problem.transfer(e, a, b) for a, b in pairs) if pairs else 0.0)
            for e in problem.graph.edges}
    remaining = set(problem.tasks)
    topo = problem.graph.topological_order
    clusters = []
    while remaining:
        best: dict[str, tuple[float, str | None]] = {}
        for t in topo:
            if t not in remaining:
                continue
            prev = max(((best[e.src][0] + comm[(e.src, t)], e.src) for e in problem.preds[t] if e.src in best),
                       default=(0.0, None))
            best[t] = (prev[0] + w[t], prev[1])
        t = max(best, key=lambda x: best[x][0])
        path = []
        while t is not None:
            path.append(t)
            t = best[t][1]
        path.reverse()
        clusters.append(path)
        remaining -= set(path)
    return clusters


def merge_clusters(problem: Problem, clusters: list[list[str]], target: int) -> list[list[str]]:
    """Merge the lightest cluster into its heaviest communication partner until ``target`` remain."""
    clusters = [list(c) for c in clusters]
    w = {t: fmean(problem.costs[t].values()) for t in problem.tasks}
    while len(clusters) > max(1, target):
        where = {t: i for i, c in enumerate(clusters) for t in c}
        light = min(range(len(clusters)), key=lambda i: sum(w[t] for t in clusters[i]))
        traffic = {i: 0.0 for i in range(len(clusters)) if i != light}
        for e in problem.graph.edges:
            a, b = where[e.src], where[e.dst]
            if light in (a, b) and a != b:
                traffic[b if a == light else a] += e.bytes + 1.0
        partner = max(traffic, key=lambda i: (traffic[i], -sum(w[t] for t in clusters[i])))
        clusters[partner] += clusters[light]
        del clusters[light]
    return clusters


def _realise(problem: Problem, preferred: dict[str, str], order: list[str]) -> Timeline | None:
    """Place tasks in ``order`` on their preferred device when allowed, else where they finish earliest."""
    tl = Timeline(problem)
    return tl if place_in_order(problem, tl, Feasibility(problem), {t: preferred[t] for t in order}) else None


def _mappings(problem: Problem, groups: list[list[str]], device_sets: list[tuple[str, ...]]) -> list[dict[str, str]]:
    """Preferred device per task for each way of mapping ``groups`` onto a parallel device set."""
    work = [sum(fmean(problem.costs[t].values()) for t in g) for g in groups]
    by_work = sorted(range(len(groups)), key=lambda i: -work[i])
    candidates: list[dict[str, str]] = []
    usable = [s for s in device_sets if len(s) >= len(groups)] or device_sets
    mappings = sum(math.perm(len(s), min(len(s), len(groups))) for s in usable)
    for s in usable:
        if mappings <= MAX_MAPPINGS // 4:
            perms = itertools.permutations(s, min(len(s), len(groups)))
        else:  # heaviest cluster first, each to its cheapest free device of the set
            free, perm = list(s), {}
            for i in by_work:
                d = min(free or list(s), key=lambda x: sum(problem.costs[t].get(x, float("inf")) for t in groups[i]))
                perm[i] = d
                if d in free:
                    free.remove(d)
            perms = [tuple(perm[i] for i in range(len(groups)))]
        for perm in perms:
            candidates.append({t: perm[i % len(perm)] for i, g in enumerate(groups) for t in g})
    return candidates


def solve(problem: Problem, *, time_limit: float | None = None, seed: int = 0,
          clusters: Positive | None = None) -> Schedule:
    """Linear clustering, merging and mapping (see the module docstring)."""
    started = time.perf_counter()
    device_sets = parallel_device_sets(problem)
    linear = linear_clusters(problem)
    rank = upward_rank(problem)
    topo = {t: i for i, t in enumerate(problem.graph.topological_order)}
    order = sorted(problem.tasks, key=lambda t: (-rank[t], topo[t]))
    # fewer clusters than parallel devices can win (slow devices are better left idle): try each count
    counts = [clusters] if clusters else range(len(device_sets[0]), 0, -1)
    candidates: list[tuple[int, dict[str, str]]] = []
    groups = linear
    for target in counts:  # merging down step by step costs no more than one merge to the smallest count
        groups = merge_clusters(problem, groups, target)
        candidates += [(len(groups), m) for m in _mappings(problem, groups, device_sets)]
    best = None
    for count, preferred in candidates:
        tl = _realise(problem, preferred, order)
        if tl is None:
            continue
        makespan = max(tl.finish.values(), default=0.0)
        if best is None or makespan < best[0]:
            best = (makespan, tl, count)
    if best is None:
        return no_solution(problem, solver="linear-clustering", started=started,
                           reason="no mapping of the clusters keeps memory and co-location limits")
    _, tl, count = best
    return certify_placement(problem, tl.device_of, order, solver="linear-clustering", started=started,
                             info={"clusters": count, "mappings_tried": len(candidates)})
