"""A batch of independent inferences as copies of the model: names, shared weights, every copy's outputs,
solving and replaying the batch, and the CLI and config."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from scheduler.batch import batch_copies
from scheduler.cli import main
from scheduler.config import config_from_dict
from scheduler.errors import ModelError
from scheduler.optimize import model_bytes, random_inputs, session
from scheduler.pipeline import build_problem, load_problem
from scheduler.problem import read_problem
from scheduler.replay import replay
from scheduler.schedule import validate
from scheduler.zoo import build
from solvers import get_solver


def test_copies_share_the_weights_and_each_gives_the_models_outputs():
    model = build("inception", blocks=1, channels=8, image=16)
    batched = batch_copies(model, 3)
    onnx.checker.check_model(batched, full_check=True)
    assert len(batched.graph.initializer) == len(model.graph.initializer)
    assert len(batched.graph.node) == 3 * len(model.graph.node)
    single, both = session(model_bytes(model), "none", 1), session(model_bytes(batched), "none", 1)
    feeds = [random_inputs(single, seed) for seed in range(3)]
    got = both.run(None, {f"b{k}/{name}": x for k, feed in enumerate(feeds) for name, x in feed.items()})
    for k, feed in enumerate(feeds):
        np.testing.assert_allclose(got[k], single.run(None, feed)[0], rtol=1e-6, atol=1e-6)
    assert batch_copies(model, 1) is model


def test_a_batch_is_solved_for_one_makespan_and_replays_exactly():
    model, problem = load_problem("siamese", platform="cpu", batch=2)
    one = build_problem("siamese", platform="cpu")
    assert len(problem.tasks) == 2 * len(one.tasks) and problem.label == "siamese-batch2"
    for solver in ("heft", "linear-clustering", "cpsat"):
        s = get_solver(solver)(problem, time_limit=5)
        assert validate(problem, s) == [] and s.makespan >= get_solver("cpsat")(one, time_limit=5).makespan - 1e-12
    result = replay(model, problem, s, repeats=2, warmup=0, baselines=False)
    assert result["max_abs_diff"] <= 1e-4


def test_bad_batches_are_refused():
    model = build("mlp")
    with pytest.raises(ModelError, match="batch must be from 1 to 64, got 0"):
        batch_copies(model, 0)
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="id")], "then", [],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    cond = helper.make_graph([helper.make_node("If", ["c"], ["z"], name="if", then_branch=then, else_branch=then)],
                             "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                   helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                             [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])])
    with pytest.raises(ModelError, match="without subgraphs that read outer tensors"):
        batch_copies(helper.make_model(cond), 2)


def test_cli_and_config_take_a_batch(tmp_path, capsys):
    assert main(["problem", "mlp", "--batch", "3", "-o", str(tmp_path / "p.json")]) == 0
    assert main(["problem", "mlp", "-o", str(tmp_path / "one.json")]) == 0
    assert len(read_problem(str(tmp_path / "p.json")).tasks) == 3 * len(read_problem(str(tmp_path / "one.json")).tasks)
    assert main(["problem", "mlp", "--batch", "65", "-o", str(tmp_path / "q.json")]) == 2
    assert "batch must be from 1 to 64" in capsys.readouterr().err
    assert config_from_dict({"model": {"zoo": "mlp", "batch": 4}, "solvers": ["heft"]}).model.batch == 4
