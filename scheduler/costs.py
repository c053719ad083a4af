"""Analytic cost model: roofline time per (task, device) and link transfer time.

``time = max(flops / peak_flops, bytes_moved / mem_bandwidth) + overhead_s`` for a
device that supports the task's op; an unsupported op has no cost (not allowed).
Profiling (measured costs) plugs in at the same seam: anything that returns a
``{task: {device: seconds}}`` table can build a Problem.

Example
-------
>>> from scheduler.graph import Task
>>> from scheduler.platform import Device
>>> task_cost(Task("t", "Add", flops=1e6, bytes_moved=1e6), Device("d", peak_flops=1e9, mem_bandwidth=1e9))
0.001
"""

from __future__ import annotations

from typing import Mapping

from .graph import Task, TaskGraph
from .platform import Device, Platform

CostTable = Mapping[str, Mapping[str, float]]


def task_cost(task: Task, device: Device) -> float | None:
    """Modelled seconds for ``task`` on ``device``, or None when the device cannot run it."""
    if not device.supports(task.op_type):
        return None
    compute = task.flops / device.peak_flops
    memory = task.bytes_moved / device.mem_bandwidth
    return max(compute, memory) + device.overhead_s


def model_costs(graph: TaskGraph, platform: Platform) -> dict[str, dict[str, float]]:
    """The modelled cost table ``{task: {device: seconds}}`` (unsupported pairs left out)."""
    table: dict[str, dict[str, float]] = {}
    for task in graph.tasks:
        row = {}
        for dev in platform.devices:
            cost = task_cost(task, dev)
            if cost is not None:
                row[dev.name] = cost
        table[task.name] = row
    return table
