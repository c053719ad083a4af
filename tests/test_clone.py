"""Ramiel's cloning as a model rewrite: every cheap shared node copied per reader, dead code removed, the same
outputs, and placements of the rewritten model that replay exactly."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from scheduler.cli import main
from scheduler.clone import CHEAP_OPS, clone_producers, dead_code
from scheduler.config import config_from_dict
from scheduler.optimize import model_bytes, random_inputs, session
from scheduler.pipeline import load_graph, load_problem
from scheduler.problem import read_problem
from scheduler.replay import replay
from scheduler.schedule import validate
from solvers import get_solver


def test_cheap_shared_nodes_get_a_copy_per_reader_and_the_outputs_stay():
    model, _ = load_graph("bert", {"layers": "2"}, optimization="extended")
    cloned = clone_producers(model)
    onnx.checker.check_model(cloned)
    readers = {}
    for n in cloned.graph.node:
        for x in set(n.input):
            readers[x] = readers.get(x, 0) + 1
    shared_cheap = [n.name for n in cloned.graph.node
                    if n.op_type in CHEAP_OPS and sum(readers.get(o, 0) for o in n.output) > 1]
    assert shared_cheap == [] and any("/clone" in n.name for n in cloned.graph.node)
    a, b = session(model_bytes(model), "none", 1), session(model_bytes(cloned), "none", 1)
    feeds = random_inputs(a, 0)
    for x, y in zip(a.run(None, feeds), b.run(None, feeds)):
        np.testing.assert_array_equal(x, y)


def test_dead_code_is_removed():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="live"),
                               helper.make_node("Neg", ["x"], ["unused"], name="dead")], "g", [x], [y])
    assert [n.name for n in dead_code(helper.make_model(graph)).graph.node] == ["live"]


def test_placements_of_a_cloned_model_validate_and_replay_exactly():
    model, problem = load_problem("gpt2", {"layers": "1"}, platform="cpu", optimization="extended", clone=True)
    _, plain = load_problem("gpt2", {"layers": "1"}, platform="cpu", optimization="extended")
    assert len(problem.tasks) > len(plain.tasks)
    for solver in ("heft", "greedy", "linear-clustering"):
        s = get_solver(solver)(problem)
        assert validate(problem, s) == []
        assert replay(model, problem, s, repeats=1, warmup=0, baselines=False)["max_abs_diff"] <= 1e-4


def test_cli_and_config_take_clone(tmp_path):
    assert main(["problem", "bert", "--set", "layers=1", "--clone", "-o", str(tmp_path / "c.json")]) == 0
    assert main(["problem", "bert", "--set", "layers=1", "-o", str(tmp_path / "p.json")]) == 0
    assert len(read_problem(str(tmp_path / "c.json")).tasks) > len(read_problem(str(tmp_path / "p.json")).tasks)
    assert config_from_dict({"model": {"zoo": "mlp", "clone": True}, "solvers": ["heft"]}).model.clone
