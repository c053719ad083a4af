"""ONNX Runtime's graph optimisation levels by the names hetsched uses (none | basic | extended | all).

A light module: the CLI's choices and the run config's type come from here without
importing onnxruntime (``executor.ORT_LEVELS`` maps the names to ORT's enum).

>>> LEVELS
('none', 'basic', 'extended', 'all')
"""

from __future__ import annotations

from typing import Literal, get_args

Level = Literal["none", "basic", "extended", "all"]
LEVELS: tuple[str, ...] = get_args(Level)
