"""The zoo's Transformers models (``hf-*``, the torch extra): outputs equal torch's, cached by configuration,
and a placement of one replays with outputs equal to the whole model's.  Without the extra they skip, and
asking for one is a one-line error."""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError

import numpy as np
import onnxruntime as ort
import pytest

from scheduler import hf, zoo
from scheduler.errors import ModelError
from scheduler.pipeline import build_problem, load_graph
from scheduler.replay import replay
from solvers import get_solver

HAVE_EXTRA = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "onnxscript"))
needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason="the torch extra is not installed: pip install '.[torch]'")
TINY = {"layers": 1, "hidden": 32, "heads": 2, "seq_len": 8, "intermediate": 64, "vocab": 100}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HETSCHED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "zoo"


@needs_extra
@pytest.mark.parametrize("family", hf.FAMILIES)
def test_exported_model_computes_what_torch_computes(family, cache):
    import torch
    import transformers

    model = zoo.build(f"hf-{family}", **TINY, seed=3)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["zoo.name"] == f"hf-{family}" and '"seed": 3' in props["zoo.params"]
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    ids = np.random.default_rng(0).integers(0, TINY["vocab"], (1, TINY["seq_len"]))
    mask = np.ones_like(ids)
    mask[0, -2:] = 0  # a padded batch: where the legacy exporter went wrong
    (out,) = ort.InferenceSession(model.SerializeToString()).run(None, {"input_ids": ids, "attention_mask": mask})
    torch.manual_seed(3)
    reference = hf._model(transformers, family, **TINY).eval()
    with torch.no_grad():
        expected = reference(input_ids=torch.from_numpy(ids),
                             attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    assert out.shape == (1, TINY["seq_len"], TINY["hidden"])
    assert np.abs(out - expected).max() <= 1e-4
    cached = list(cache.glob(f"{family}-*.onnx"))
    assert len(cached) == 1  # one export per configuration ...
    again = zoo.build(f"hf-{family}", **TINY, seed=3)
    assert again.graph.SerializeToString() == model.graph.SerializeToString() and list(cache.iterdir()) == cached
    if family == "gpt2":  # the quickest export: one that cannot be read is exported again
        cached[0].write_bytes(cached[0].read_bytes()[:1000])
        assert zoo.build(f"hf-{family}", **TINY, seed=3).graph.SerializeToString() == model.graph.SerializeToString()
    zoo.build(f"hf-{family}", **TINY, seed=4)
    assert len(list(cache.glob(f"{family}-*.onnx"))) == 2  # ... and another for another seed


@needs_extra
def test_placement_of_a_transformers_model_replays_exactly(cache):
    params = {**TINY, "layers": 2}
    model, _ = load_graph("hf-gpt2", params)
    problem = build_problem("hf-gpt2", params, "cpu")
    schedule = get_solver("heft")(problem)
    assert len({t.device for t in schedule.tasks}) >= 1
    result = replay(model, problem, schedule, repeats=1, warmup=0, baselines=False)
    assert result["max_abs_diff"] <= 1e-4


def test_without_the_extra_a_hf_model_is_a_one_line_error(cache, monkeypatch):
    def missing(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(hf, "version", missing)
    with pytest.raises(ModelError, match=r"need the torch extra \(torch is missing\): pip install") as info:
        zoo.build("hf-bert", **TINY)
    assert "\n" not in str(info.value)
    with pytest.raises(zoo.ZooError, match="divisible by heads"):  # parameters are checked before any import
        zoo.build("hf-gpt2", hidden=30, heads=4)
