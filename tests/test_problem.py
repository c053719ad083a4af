"""Tests for scheduler.problem and scheduler.costs: problems from graphs, the problem file, validation."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from scheduler import zoo
from scheduler.costs import model_costs, task_cost
from scheduler.errors import HetschedError, ProblemError
from scheduler.graph import Edge, Task, TaskGraph, task_graph_from_onnx
from scheduler.platform import Device, Platform, load_platform
from scheduler.problem import (ExecutorCosts, FORMAT, Problem, problem_from_dict, problem_to_dict, read_problem,
                               write_problem)
from scheduler.problem_views import disjoint_problems, host_problem


@pytest.fixture(scope="module")
def default():
    return load_platform("default")


@pytest.fixture(scope="module")
def bert_graph():
    return task_graph_from_onnx(zoo.build("bert", layers=1, seq_len=8))


def minimal() -> dict:
    """A hand-written problem: three devices, a diamond of four tasks, one transfer override, one colocation."""
    return {
        "format": "hetsched-problem/1",
        "name": "mini",
        "devices": [
            {"name": "cpu", "kind": "cpu", "resources": ["core0"]},
            {"name": "par", "kind": "cpu", "resources": ["core0", "core1"]},
            {"name": "acc", "kind": "accelerator", "resources": ["acc"]},
        ],
        "links": [
            {"src": "cpu", "dst": "par", "latency": 1e-6, "bandwidth": 1e9},
            {"src": "cpu", "dst": "acc", "latency": 1e-5, "bandwidth": 1e8},
            {"src": "par", "dst": "acc", "latency": 2e-5, "bandwidth": 1e8},
        ],
        "tasks": [
            {"name": "a", "op_type": "MatMul", "cost": {"cpu": 3.0, "par": 2.0, "acc": 1.0}, "memory_bytes": 100},
            {"name": "b", "cost": {"cpu": 1.0, "acc": 0.5}, "colocate": "g"},
            {"name": "c", "cost": {"cpu": 1.0, "par": 0.7}, "colocate": "g"},
            {"name": "d", "cost": {"cpu": 0}},
        ],
        "edges": [
            {"src": "a", "dst": "b", "bytes": 1000, "transfer": 0.25},
            {"src": "a", "dst": "c", "bytes": 2000},
            {"src": "b", "dst": "d", "bytes": 10},
            {"src": "c", "dst": "d"},
        ],
    }


def _err(data) -> str:
    with pytest.raises(ProblemError) as info:
        problem_from_dict(data)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("model", ["mlp", "bert", "randwire"])
def test_zoo_problem_round_trips_through_a_file(tmp_path, default, model):
    graph = task_graph_from_onnx(zoo.build(model))
    problem = Problem.from_graph(graph, default)
    path = tmp_path / "p.json"
    write_problem(problem, path)
    raw = json.loads(path.read_text())
    assert raw["format"] == "hetsched-problem/1" == FORMAT
    back = read_problem(path)
    assert back == problem
    assert back.tasks == problem.tasks
    assert back.devices == problem.devices
    assert {(e.src, e.dst, e.bytes) for e in back.graph.edges} == {(e.src, e.dst, e.bytes) for e in graph.edges}
    for t in problem.tasks:
        assert back.allowed(t) == problem.allowed(t)
        assert back.costs[t] == pytest.approx(problem.costs[t], rel=0, abs=0)
        assert back.memory(t) == problem.memory(t)
    for e in problem.graph.edges:
        for a in problem.devices:
            for b in problem.devices:
                assert back.transfer(e, a, b) == problem.transfer(e, a, b)
    # writing again gives the same bytes
    path2 = tmp_path / "p2.json"
    write_problem(back, path2)
    assert path2.read_text() == path.read_text()


def test_minimal_problem_round_trips(tmp_path):
    p = problem_from_dict(minimal())
    path = tmp_path / "mini.json"
    write_problem(p, path)
    back = read_problem(path)
    assert back == p
    assert back.transfer_override == {("a", "b"): 0.25}
    assert back.colocate == {"b": "g", "c": "g"}
    assert problem_to_dict(back) == problem_to_dict(p)


def test_executor_costs_round_trip(tmp_path):
    data = minimal()
    data["executor"] = {"call_s": {"cpu": 4e-5, "par": 6e-5}, "switch_s": 1e-4, "contention": 0.07,
                        "byte_s": 5e-11}
    p = problem_from_dict(data)
    assert p.executor == ExecutorCosts({"cpu": 4e-5, "par": 6e-5}, 1e-4, 0.07, 5e-11)
    older = {**data, "executor": {k: v for k, v in data["executor"].items() if k != "byte_s"}}
    assert problem_from_dict(older).executor == ExecutorCosts({"cpu": 4e-5, "par": 6e-5}, 1e-4, 0.07)
    write_problem(p, tmp_path / "p.json")
    assert read_problem(tmp_path / "p.json") == p and problem_to_dict(p)["executor"] == data["executor"]
    assert problem_from_dict(minimal()).executor is None and "executor" not in problem_to_dict(problem_from_dict(minimal()))


def test_equality_sees_a_changed_cost():
    a = problem_from_dict(minimal())
    data = minimal()
    data["tasks"][0]["cost"]["cpu"] = 3.5
    assert a != problem_from_dict(data)
    assert a == problem_from_dict(minimal())


# ----------------------------------------------------------------------------- the minimal problem

def test_minimal_problem_parses():
    p = problem_from_dict(minimal())
    assert p.label == "mini"
    assert p.tasks == ("a", "b", "c", "d")
    assert p.devices == ("cpu", "par", "acc")
    assert p.allowed("a") == ("cpu", "par", "acc")
    assert p.allowed("b") == ("cpu", "acc")
    assert p.allowed("d") == ("cpu",)
    assert p.costs["d"]["cpu"] == 0
    assert p.memory("a") == 100 and p.memory("d") == 0
    assert p.graph.task["a"].op_type == "MatMul"
    assert p.groups == {"g": ("b", "c")}
    assert [e.dst for e in p.succs["a"]] == ["b", "c"]
    assert [e.src for e in p.preds["d"]] == ["b", "c"]
    assert p.preds["a"] == () and p.succs["d"] == ()
    assert p.platform.shares_resource("cpu", "par") and not p.platform.shares_resource("cpu", "acc")


def test_transfer_override_and_link_times():
    p = problem_from_dict(minimal())
    edges = {(e.src, e.dst): e for e in p.graph.edges}
    ab, ac, cd = edges[("a", "b")], edges[("a", "c")], edges[("c", "d")]
    # explicit transfer: used for every pair of distinct devices, 0 on one device
    for src in p.devices:
        for dst in p.devices:
            assert p.transfer(ab, src, dst) == (0.0 if src == dst else 0.25)
    # no override: latency + bytes / bandwidth, in both directions (link given once)
    assert p.transfer(ac, "cpu", "acc") == pytest.approx(1e-5 + 2000 / 1e8)
    assert p.transfer(ac, "acc", "cpu") == pytest.approx(1e-5 + 2000 / 1e8)
    assert p.transfer(ac, "par", "acc") == pytest.approx(2e-5 + 2000 / 1e8)
    assert p.transfer(ac, "par", "par") == 0.0
    assert cd.bytes == 0
    assert p.transfer(cd, "cpu", "par") == pytest.approx(1e-6)


def test_override_of_zero_is_kept():
    data = minimal()
    data["edges"][1]["transfer"] = 0
    p = problem_from_dict(data)
    e = next(e for e in p.graph.edges if (e.src, e.dst) == ("a", "c"))
    assert p.transfer(e, "cpu", "acc") == 0.0


def test_edges_and_links_are_optional():
    p = problem_from_dict({"format": FORMAT, "devices": [{"name": "solo"}], "tasks": [{"name": "t", "cost": {"solo": 1}}]})
    assert p.tasks == ("t",) and p.graph.edges == ()


# ----------------------------------------------------------------------------- rejected files

def _mutate(fn):
    data = minimal()
    fn(data)
    return data


REJECTED = {
    "unknown top-level key": (lambda d: d.update(solver="milp"), ["'solver'"]),
    "unknown task key": (lambda d: d["tasks"][1].update(device="cpu"), ["'device'", "tasks[1]"]),
    "unknown edge key": (lambda d: d["edges"][0].update(weight=3), ["'weight'", "edges[0]"]),
    "unknown device key": (lambda d: d["devices"][0].update(speed=3), ["'speed'"]),
    "unknown link key": (lambda d: d["links"][0].update(cost=3), ["'cost'"]),
    "wrong format": (lambda d: d.update(format="hetsched-problem/2"), ["hetsched-problem/2", "format"]),
    "missing format": (lambda d: d.pop("format"), ["'format'"]),
    "missing tasks": (lambda d: d.pop("tasks"), ["'tasks'"]),
    "missing devices": (lambda d: d.pop("devices"), ["'devices'"]),
    "cost on unknown device": (lambda d: d["tasks"][0]["cost"].update(gpu=1.0), ["'gpu'", "'a'"]),
    "negative cost": (lambda d: d["tasks"][1]["cost"].update(cpu=-1.0), ["'b'", "cost.cpu"]),
    "non-number cost": (lambda d: d["tasks"][1]["cost"].update(cpu="fast"), ["'b'", "'fast'"]),
    "boolean cost": (lambda d: d["tasks"][1]["cost"].update(cpu=True), ["'b'", "cost.cpu"]),
    "null cost": (lambda d: d["tasks"][1]["cost"].update(cpu=None), ["'b'", "cost.cpu"]),
    "cost not an object": (lambda d: d["tasks"][1].update(cost=[1.0]), ["'b'", "cost"]),
    "empty cost row": (lambda d: d["tasks"][3].update(cost={}), ["'d'", "empty cost row"]),
    "task without cost": (lambda d: d["tasks"][3].pop("cost"), ["'cost'", "tasks[3]"]),
    "task without name": (lambda d: d["tasks"][3].pop("name"), ["'name'", "tasks[3]"]),
    "empty task name": (lambda d: d["tasks"][3].update(name=""), ["tasks[3]"]),
    "negative memory": (lambda d: d["tasks"][0].update(memory_bytes=-5), ["'a'", "memory_bytes"]),
    "edge to unknown task": (lambda d: d["edges"].append({"src": "d", "dst": "zz"}), ["'zz'"]),
    "edge without dst": (lambda d: d["edges"][0].pop("dst"), ["'dst'", "edges[0]"]),
    "negative edge bytes": (lambda d: d["edges"][1].update(bytes=-1), ["a->c", "bytes"]),
    "negative transfer": (lambda d: d["edges"][0].update(transfer=-0.1), ["a->b", "transfer"]),
    "infinite transfer": (lambda d: d["edges"][0].update(transfer=float("inf")), ["a->b", "transfer"]),
    "duplicate edge": (lambda d: d["edges"].append({"src": "a", "dst": "b"}), ["a->b", "twice"]),
    "self loop": (lambda d: d["edges"].append({"src": "c", "dst": "c"}), ["'c'"]),
    "cycle": (lambda d: d["edges"].append({"src": "d", "dst": "a"}), ["cycle"]),
    "colocation without a common device": (lambda d: d["tasks"][2]["cost"].pop("cpu"), ["'g'"]),
    "duplicated task name": (lambda d: d["tasks"].append({"name": "b", "cost": {"cpu": 1}}), ["'b'", "twice"]),
    "missing link": (lambda d: d["links"].pop(), ["'par'", "'acc'"]),
    "link to unknown device": (lambda d: d["links"].append({"src": "cpu", "dst": "gpu"}), ["'gpu'"]),
    "duplicate device": (lambda d: d["devices"].append({"name": "acc"}), ["'acc'", "twice"]),
    "tasks not a list": (lambda d: d.update(tasks={"a": 1}), ["tasks", "list"]),
    "edges not a list": (lambda d: d.update(edges="a->b"), ["edges", "list"]),
    "executor call on unknown device": (lambda d: d.update(executor={"call_s": {"gpu": 1e-5}, "switch_s": 0}),
                                        ["executor", "'gpu'"]),
    "negative executor switch": (lambda d: d.update(executor={"call_s": {}, "switch_s": -1}), ["executor.switch_s"]),
    "executor without switch": (lambda d: d.update(executor={"call_s": {}}), ["executor", "'switch_s'"]),
    "negative executor byte cost": (lambda d: d.update(executor={"call_s": {}, "switch_s": 0, "byte_s": -1e-9}),
                                    ["executor.byte_s"]),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_bad_problem_is_rejected(case):
    mutate, needles = REJECTED[case]
    msg = _err(_mutate(mutate))
    for needle in needles:
        assert needle in msg, f"{case}: {needle!r} not in {msg!r}"


def test_not_an_object_is_rejected():
    assert "object" in _err(["format"])
    assert "object" in _err(_mutate(lambda d: d["tasks"].__setitem__(0, "a")))


def test_colocation_with_a_common_device_is_accepted():
    # b may use {cpu, acc}, c may use {cpu, par}: cpu is common
    assert problem_from_dict(minimal()).groups == {"g": ("b", "c")}
    # a and b share cpu and acc; c leaves its group with a null colocate
    data = minimal()
    data["tasks"][0]["colocate"] = "h"
    data["tasks"][1]["colocate"] = "h"
    data["tasks"][2]["colocate"] = None  # null means no group
    assert problem_from_dict(data).groups == {"h": ("a", "b")}


def test_read_problem_file_errors(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(HetschedError) as info:
        read_problem(missing)
    assert str(missing) in str(info.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(HetschedError) as info:
        read_problem(bad)
    assert str(bad) in str(info.value) and "JSON" in str(info.value)
    # errors in the content name the file
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(_mutate(lambda d: d.update(extra=1))))
    with pytest.raises(ProblemError) as info:
        read_problem(wrong)
    assert str(wrong) in str(info.value) and "'extra'" in str(info.value)


def test_parsing_does_not_modify_the_input():
    data = minimal()
    before = copy.deepcopy(data)
    problem_from_dict(data)
    assert data == before


# ----------------------------------------------------------------------------- Problem construction checks

def _tiny_graph():
    return TaskGraph("tiny", (Task("x", "Add"), Task("y", "Relu")), (Edge("x", "y", 8),))


def test_problem_constructor_checks(default):
    g = _tiny_graph()
    ok = {"x": {"cpu0": 1.0}, "y": {"cpu1": 1.0}}
    Problem(g, default, ok)
    with pytest.raises(ProblemError, match="'ghost'"):
        Problem(g, default, {**ok, "ghost": {"cpu0": 1.0}})
    with pytest.raises(ProblemError, match="'y'"):
        Problem(g, default, {"x": {"cpu0": 1.0}})
    with pytest.raises(ProblemError, match="'gpu'"):
        Problem(g, default, {"x": {"gpu": 1.0}, "y": {"cpu0": 1.0}})
    with pytest.raises(ProblemError, match="'cpu0'"):
        Problem(g, default, {"x": {"cpu0": float("nan")}, "y": {"cpu0": 1.0}})
    with pytest.raises(ProblemError, match="y->x"):
        Problem(g, default, ok, transfer_override={("y", "x"): 1.0})
    with pytest.raises(ProblemError, match="x->y"):
        Problem(g, default, ok, transfer_override={("x", "y"): -1.0})
    with pytest.raises(ProblemError, match="'nobody'"):
        Problem(g, default, ok, colocate={"nobody": "g"})
    with pytest.raises(ProblemError, match="'grp'"):
        Problem(g, default, ok, colocate={"x": "grp", "y": "grp"})


# ----------------------------------------------------------------------------- costs and op support

def test_from_graph_leaves_out_unsupported_devices(default, bert_graph):
    p = Problem.from_graph(bert_graph, default)
    pim = default.device["pim"]
    gathers = [t for t in bert_graph.tasks if t.op_type == "Gather"]
    assert gathers
    for t in bert_graph.tasks:
        allowed = set(p.allowed(t.name))
        assert {"cpu0", "cpu1", "cpu-par"} <= allowed
        assert ("pim" in allowed) == (t.op_type in pim.supported_ops)
    assert all("pim" not in p.costs[t.name] for t in gathers)
    assert any("pim" in p.costs[t.name] for t in bert_graph.tasks if t.op_type == "MatMul")
    assert all(c > 0 for row in p.costs.values() for c in row.values())


def _gather_model():
    table = numpy_helper.from_array(np.zeros((10, 4), dtype=np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], name="gather"),
             helper.make_node("Relu", ["e"], ["r"], name="relu")]
    graph = helper.make_graph(nodes, "gather", [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
                              [helper.make_tensor_value_info("r", TensorProto.FLOAT, None)], [table])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_gather_is_not_allowed_on_pim(default):
    p = Problem.from_graph(task_graph_from_onnx(_gather_model()), default)
    assert p.allowed("gather") == ("cpu0", "cpu1", "cpu-par")
    assert p.allowed("relu") == ("cpu0", "cpu1", "cpu-par", "pim")
    e = p.graph.edges[0]
    assert (e.src, e.dst, e.bytes) == ("gather", "relu", 3 * 4 * 4)
    assert p.transfer(e, "cpu0", "pim") == pytest.approx(1e-5 + 48 / 2e9)


def test_problem_without_any_device_for_a_task_is_rejected():
    plat = Platform("only-pim", (Device("pim", supported_ops=frozenset({"Relu"})),))
    with pytest.raises(ProblemError, match="'gather'"):
        Problem.from_graph(task_graph_from_onnx(_gather_model()), plat)


def _with_simulated_acc(data: dict) -> Problem:
    data = copy.deepcopy(data)
    data["devices"][2]["simulated"] = True
    return problem_from_dict(data)


def test_host_problem_keeps_the_real_devices_their_links_and_everything_else():
    full = problem_from_dict(minimal())
    assert host_problem(full) is None  # nothing simulated: the host problem is the problem
    sim = _with_simulated_acc(minimal())
    sim = Problem(sim.graph, sim.platform, sim.costs, sim.transfer_override, sim.colocate, sim.name,
                  ExecutorCosts({"cpu": 1e-5, "acc": 2e-5}, 3e-6))
    host = host_problem(sim)
    assert host.devices == ("cpu", "par") and host.platform.name == f"{sim.platform.name}:host"
    assert host.platform.link_table[("cpu", "par")] == sim.platform.link_table[("cpu", "par")]
    assert host.costs["a"] == {"cpu": 3.0, "par": 2.0} and host.costs["b"] == {"cpu": 1.0}
    assert host.transfer_override == sim.transfer_override and host.colocate == sim.colocate
    assert host.executor == ExecutorCosts({"cpu": 1e-5}, 3e-6)
    assert host.graph is sim.graph and host.label == sim.label


def test_host_problem_of_several_servers_is_one_server():
    """This host is one server: the real devices of the first server alone, whether the others are simulated
    (cpu2gpu) or all real (cpu)."""
    from scheduler.generate import random_problem
    from scheduler.platform import Link, load_platform

    graph = random_problem(4, seed=1).graph
    network = Link("*", "*", 5e-5, 1.25e9)
    gpus = Problem.from_graph(graph, load_platform("cpu2gpu").servers(2, network))
    assert host_problem(gpus).devices == ("cpu@s0",)
    cores = Problem.from_graph(graph, load_platform("cpu").servers(3, network))
    assert host_problem(cores).devices == ("cpu0@s0", "cpu1@s0", "cpu-par@s0")


def test_host_problem_is_none_when_a_task_needs_a_simulated_device():
    data = minimal()
    data["tasks"][0]["cost"] = {"acc": 1.0}  # a only on the simulated acc
    assert host_problem(_with_simulated_acc(data)) is None
    data = minimal()
    data["tasks"][1]["cost"] = {"cpu": 1.0, "acc": 0.5}  # b and c must share a device: only acc is common
    data["tasks"][2]["cost"] = {"par": 0.7, "acc": 0.7}
    assert host_problem(_with_simulated_acc(data)) is None


def test_disjoint_problems_keep_devices_that_share_no_resource():
    """cpu and par share core0, acc shares nothing: the sets are cpu+acc and par+acc, and par+acc is left
    out because d may only run on cpu (and b, c must share a device); without the shared core, no set."""
    p = problem_from_dict(minimal())
    p = replace(p, executor=ExecutorCosts({"cpu": 1e-5, "par": 2e-5, "acc": 3e-5}, 4e-6))
    (sub,) = disjoint_problems(p)
    assert sub.devices == ("cpu", "acc") and sub.platform.name == f"{p.platform.name}:cpu+acc"
    assert sub.costs["a"] == {"cpu": 3.0, "acc": 1.0} and sub.costs["c"] == {"cpu": 1.0}
    assert sub.platform.link_table[("cpu", "acc")] == p.platform.link_table[("cpu", "acc")]
    assert sub.executor == ExecutorCosts({"cpu": 1e-5, "acc": 3e-5}, 4e-6) and sub.graph is p.graph
    data = minimal()
    data["devices"][1]["resources"] = ["core1"]
    assert disjoint_problems(problem_from_dict(data)) == []


def test_roofline_cost_of_a_hand_computed_task(default):
    w = numpy_helper.from_array(np.ones((8, 4), dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")], "mm",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 4])], [w])
    g = task_graph_from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9))
    flops = 2 * 2 * 8 * 4  # 128
    nbytes = (2 * 8 + 8 * 4 + 2 * 4) * 4  # 224: read X and W, write Y
    p = Problem.from_graph(g, default)
    expected = {
        "cpu0": max(flops / 2.0e10, nbytes / 1.0e10) + 4.0e-6,
        "cpu1": max(flops / 2.0e10, nbytes / 1.0e10) + 4.0e-6,
        "cpu-par": max(flops / 3.6e10, nbytes / 1.5e10) + 8.0e-6,
        "pim": max(flops / 1.0e11, nbytes / 2.0e11) + 2.0e-6,
    }
    assert p.costs["mm"] == pytest.approx(expected, rel=1e-12)
    assert model_costs(g, default) == {"mm": pytest.approx(expected, rel=1e-12)}
    assert task_cost(g.task["mm"], default.device["cpu0"]) == pytest.approx(expected["cpu0"], rel=1e-12)


@pytest.mark.parametrize(
    "flops,nbytes,peak,bw,overhead",
    [(1e9, 1e6, 1e10, 1e10, 0.0), (1e3, 1e9, 1e10, 1e9, 5e-6), (0.0, 0.0, 1e9, 1e9, 1e-6), (4e6, 4e6, 2e9, 2e9, 0.0)],
)
def test_task_cost_is_the_roofline(flops, nbytes, peak, bw, overhead):
    dev = Device("d", peak_flops=peak, mem_bandwidth=bw, overhead_s=overhead)
    cost = task_cost(Task("t", "MatMul", flops=flops, bytes_moved=nbytes), dev)
    assert cost == pytest.approx(max(flops / peak, nbytes / bw) + overhead, rel=1e-12)


def test_task_cost_is_none_for_unsupported_ops():
    dev = Device("d", supported_ops=frozenset({"Add"}))
    assert task_cost(Task("t", "Gather", flops=1.0), dev) is None
    assert task_cost(Task("t", "Add", flops=1.0), dev) is not None


def test_model_costs_are_positive_for_every_zoo_model(default):
    for m in zoo.list_models():
        if m.extra:
            continue  # tests/test_hf.py
        g = task_graph_from_onnx(zoo.build(m.name))
        table = model_costs(g, default)
        assert set(table) == {t.name for t in g.tasks}
        for t in g.tasks:
            row = table[t.name]
            assert row, t.name
            assert all(c > 0 for c in row.values())
            # a faster device (cpu-par: more peak and bandwidth) never loses on the roofline part
            assert row["cpu-par"] - 8e-6 <= row["cpu0"] - 4e-6 + 1e-18
