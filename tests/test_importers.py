"""The dnn-partitioning importer maps the published workloads faithfully."""

from __future__ import annotations

import itertools
import json

import pytest

from scheduler.cli import main
from scheduler.errors import HetschedError
from scheduler.importers import import_dnn_partitioning
from scheduler.schedule import validate
from scheduler.semantics import period, resource_loads
from solvers import get_solver


def _tiny(tmp_path, **over):
    data = {"maxSizePerFPGA": 100, "maxFPGAs": 2, "maxCPUs": 2, "nodes": [
        {"id": 1, "name": "a", "supportedOnFpga": 1, "cpuLatency": 4.0, "fpgaLatency": 1.0, "size": 60, "colorClass": 7},
        {"id": 2, "name": "b", "supportedOnFpga": 0, "cpuLatency": 2.0, "fpgaLatency": 0.5, "size": 10},
        {"id": 3, "name": "c", "supportedOnFpga": True, "cpuLatency": 3.0, "fpgaLatency": 1.5, "size": 50, "colorClass": 7},
    ], "edges": [{"sourceId": 1, "destId": 2, "cost": 0.25, "size": 8}, {"sourceId": 2, "destId": 3, "cost": 0.5, "size": 8}]}
    data.update(over)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    return path


def test_tiny_workload_semantics(tmp_path):
    p = import_dnn_partitioning(_tiny(tmp_path), time_scale=1.0)
    assert p.devices == ("acc0", "acc1", "cpu0", "cpu1")
    assert p.costs["a"] == {"acc0": 1.0, "acc1": 1.0, "cpu0": 4.0, "cpu1": 4.0}
    assert p.allowed("b") == ("cpu0", "cpu1")  # not supported on the accelerator
    assert p.platform.device["acc0"].memory_bytes == 100 and p.memory("a") == 60
    assert p.groups == {"7": ("a", "c")}
    e = p.preds["b"][0]
    assert p.transfer(e, "acc0", "cpu1") == 0.25 and p.transfer(e, "cpu1", "acc0") == 0.25
    assert p.transfer(e, "acc0", "acc1") == 0.5  # through host memory: twice
    assert p.transfer(e, "cpu0", "cpu1") == 0.0 and p.transfer(e, "acc0", "acc0") == 0.0
    # a + c (110 bytes) do not fit one accelerator together: co-location forces them to a CPU
    s = get_solver("heft")(p)
    assert validate(p, s) == [] and s.placement["a"] == s.placement["c"] and s.placement["a"].startswith("cpu")


def _paper_loads(data: dict, placement: dict[int, str]) -> dict[str, float]:
    """The published model's load of every device, written out from its description (RESULTS.md): a
    device's nodes' latencies, plus on an accelerator each crossing edge's source node's cost, once per
    source node, whether the node is sent from here or received here."""
    cost = {e["sourceId"]: e["cost"] for e in data["edges"]}
    node = {n["id"]: n for n in data["nodes"]}
    loads = {}
    for dev in set(placement.values()):
        inside = {i for i, d in placement.items() if d == dev}
        acc = dev.startswith("acc")
        load = sum(node[i]["fpgaLatency" if acc else "cpuLatency"] for i in inside)
        if acc:
            crossing = {e["sourceId"] for e in data["edges"] if (e["sourceId"] in inside) != (e["destId"] in inside)}
            load += sum(cost[w] for w in crossing)
        loads[dev] = load
    return loads


def test_the_period_is_the_published_max_load(tmp_path):
    """By hand: x and z on acc0, y on acc1, w on the CPU.  acc0: 1 + 3 for its nodes, 0.5 for sending x (once,
    to acc1 and the CPU) and 0.125 for z; acc1: 2 for y, 0.5 for receiving x, 0.25 for sending y; the CPU
    pays no communication.  Then every placement of the workload against the model written out."""
    data = {"maxSizePerFPGA": 100, "maxFPGAs": 2, "maxCPUs": 1, "nodes": [
        {"id": 1, "name": "x", "supportedOnFpga": 1, "cpuLatency": 5.0, "fpgaLatency": 1.0},
        {"id": 2, "name": "y", "supportedOnFpga": 1, "cpuLatency": 6.0, "fpgaLatency": 2.0},
        {"id": 3, "name": "z", "supportedOnFpga": 1, "cpuLatency": 7.0, "fpgaLatency": 3.0},
        {"id": 4, "name": "w", "supportedOnFpga": 1, "cpuLatency": 1.0, "fpgaLatency": 0.75},
    ], "edges": [{"sourceId": 1, "destId": 2, "cost": 0.5}, {"sourceId": 1, "destId": 3, "cost": 0.5},
                 {"sourceId": 1, "destId": 4, "cost": 0.5}, {"sourceId": 2, "destId": 4, "cost": 0.25},
                 {"sourceId": 3, "destId": 4, "cost": 0.125}]}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    p = import_dnn_partitioning(path, time_scale=1.0)
    loads = resource_loads(p, {"x": "acc0", "y": "acc1", "z": "acc0", "w": "cpu0"})
    assert loads == {"acc0": pytest.approx(4.625), "acc1": pytest.approx(2.75), "core0": pytest.approx(1.0)}
    ids = {"x": 1, "y": 2, "z": 3, "w": 4}
    for combo in itertools.product(p.devices, repeat=4):
        placement = dict(zip(ids, combo))
        expected = _paper_loads(data, {ids[t]: d for t, d in placement.items()})
        assert period(p, placement) == pytest.approx(max(expected.values()), rel=1e-12), placement


def test_device_counts_can_be_overridden(tmp_path):
    p = import_dnn_partitioning(_tiny(tmp_path), accelerators=1, cpus=3)
    assert p.devices == ("acc0", "cpu0", "cpu1", "cpu2")
    assert p.costs["a"]["acc0"] == pytest.approx(1e-3)  # milliseconds -> seconds by default


@pytest.mark.parametrize("over, text", [
    ({"nodes": [{"id": 1, "cpuLatency": -1}]}, "cpuLatency must be a finite number >= 0"),
    ({"nodes": [{"id": 1, "bogus": 1}]}, "unknown key 'bogus'"),
    ({"edges": [{"sourceId": 1, "destId": 99}]}, "unknown node id 99"),
    ({"nodes": [{"id": 1}, {"id": 1}], "edges": []}, "used twice"),
    ({"edges": [{"sourceId": 1, "destId": 2}, {"sourceId": 2, "destId": 1}]}, "cycle"),
    ({"nodes": [{"id": [1]}], "edges": []}, r"nodes\[0\].id must be a number or a name, got \[1\]"),
    ({"edges": [{"sourceId": {"a": 1}, "destId": 2}]}, "sourceId must be a number or a name"),
    ({"nodes": 5}, "nodes must be a list"),
    ({"maxFPGAs": "two"}, "maxFPGAs must be a whole number from 0 to 1024, got 'two'"),
    ({"maxSizePerFPGA": "big"}, "maxSizePerFPGA must be a finite number >= 0"),
])
def test_bad_workloads(tmp_path, over, text):
    with pytest.raises(HetschedError, match=text):
        import_dnn_partitioning(_tiny(tmp_path, **over))


def test_every_published_workload_imports_and_heuristics_are_valid(dnn_files):
    for f in dnn_files:
        raw = json.loads(f.read_text())
        p = import_dnn_partitioning(f)
        assert len(p.tasks) == len(raw["nodes"])
        assert len(p.devices) == raw["maxFPGAs"] + raw["maxCPUs"]
        cpu_only = [t for t in p.tasks if not any(d.startswith("acc") for d in p.allowed(t))]
        assert len(cpu_only) == sum(not n["supportedOnFpga"] for n in raw["nodes"]) if raw["maxFPGAs"] else True
        groups = [g for g in {n.get("colorClass") for n in raw["nodes"]} - {None}
                  if sum(n.get("colorClass") == g for n in raw["nodes"]) > 1]
        assert len(p.groups) == len(groups)
        for name in ("single", "greedy", "heft", "dp-chain", "linear-clustering"):
            s = get_solver(name)(p)
            assert s.found and validate(p, s) == [], (f.name, name)
        if len(p.tasks) <= 100:  # the exact-backed solvers, at CI-sized sizes and time limits
            for name in ("split", "cpsat"):
                s = get_solver(name)(p, time_limit=1)
                assert s.found and validate(p, s) == [], (f.name, name)


def test_cli_import(tmp_path, capsys, dnn_files):
    out = tmp_path / "p.json"
    assert main(["import", "dnn-partitioning", str(dnn_files[0]), "-o", str(out), "--accelerators", "2"]) == 0
    assert "co-location groups" in capsys.readouterr().out
    assert main(["solve", str(out), "--solver", "greedy"]) == 0
