"""The model's inputs when the user gives them (an ``.npz``), instead of random ones.

Random inputs (normal floats, zero integers, empty strings) run most models, but
not one whose integer inputs are shapes, counts or indices (an ``Expand`` target,
a ``Loop`` trip count), and a model whose work depends on its data (control flow,
non-maximum suppression) is profiled on what the user runs.  Given inputs are
what every step runs: the observed tensor types, profiling, the reference the
replay checks against, and the plain ONNX Runtime baselines.  Their shapes fix
the model's dynamic dimensions, so ``--input-shape`` is then not needed.

Example
-------
>>> import numpy as np
>>> shapes_of({"x": np.zeros((2, 3), np.float32)})
{'x': [2, 3]}
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from typing import Mapping

import numpy as np
import onnx
from onnx import helper

from .errors import ModelError
from .executor import PACKED_TYPES, bits_dtype, check_packed, held
from .graph import is_fixed, real_inputs

Feeds = Mapping[str, np.ndarray]
"""Input name -> value, as ``InferenceSession.run`` takes them."""


def load_inputs(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (``numpy.savez``), one per model input named by its key.

    Pickled objects are refused (a data file must not run code); string arrays come back as
    the object arrays ONNX Runtime takes.
    """
    if not os.path.isfile(path):
        raise ModelError(f"inputs file {path!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ModelError(f"inputs file {path!r} holds one array; save the inputs by name with numpy.savez")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"inputs file {path!r} is not a readable .npz of arrays: {exc}") from None
    if not arrays:
        raise ModelError(f"inputs file {path!r} holds no arrays")
    return {k: v.astype(object) if v.dtype.kind == "U" else v for k, v in arrays.items()}


def shapes_of(feeds: Feeds) -> dict[str, list[int]]:
    """The input shapes the given values fix."""
    return {name: [int(d) for d in value.shape] for name, value in feeds.items()}


def check_inputs(model: onnx.ModelProto, feeds: Feeds) -> None:
    """Refuse, in one line, given inputs that do not fit the model's graph inputs: a name it does not
    have, one it needs that is missing, or another element type or rank."""
    inputs = real_inputs(model.graph)
    extra = sorted(set(feeds) - set(inputs))
    if extra:
        raise ModelError(f"the given inputs name {extra[0]!r}, which is not an input of the model "
                         f"(inputs: {', '.join(inputs) or 'none'})")
    missing = [name for name in inputs if name not in feeds]
    if missing:
        raise ModelError(f"the given inputs lack the model's input {missing[0]!r}")
    for name, vi in inputs.items():
        tt, value = vi.type.tensor_type, feeds[name]
        if not vi.type.HasField("tensor_type"):
            raise ModelError(f"input {name!r} is not a tensor; only tensor inputs can be given")
        want = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
        kind = f"tensor({want.name})" if want is not None else ""
        bits = want is not None and want.kind == "V" and value.dtype == bits_dtype(want)
        packed = kind in PACKED_TYPES
        if want is not None and want != value.dtype and not bits:  # bfloat16, float8: their bits will do
            raise ModelError(f"given input {name!r} is {value.dtype}, but the model takes {want}" + (
                f" (or its {'values' if packed else 'bits'} as {bits_dtype(want)})" if want.kind == "V" else ""))
        if packed:
            try:
                check_packed(name, held(value), kind)
            except ValueError as exc:  # a value out of the type's range
                raise ModelError(f"given {exc}") from None
        if tt.HasField("shape") and len(tt.shape.dim) != value.ndim:
            raise ModelError(f"given input {name!r} has rank {value.ndim}, but the model's has rank "
                             f"{len(tt.shape.dim)}")
        fixed = [(i, d.dim_value) for i, d in enumerate(tt.shape.dim) if is_fixed(d)]
        for i, size in fixed:
            if value.shape[i] != size:
                raise ModelError(f"given input {name!r} has shape {list(value.shape)}, but the model fixes "
                                 f"dimension {i} at {size}")


def inputs_digest(feeds: Feeds | None) -> str:
    """A short hash of the given inputs (names, types, shapes, bytes): a profile measured on them is
    stored under it, apart from one measured on random inputs ('' when none are given)."""
    if not feeds:
        return ""
    h = hashlib.sha256()
    for name in sorted(feeds):
        value = np.ascontiguousarray(feeds[name])
        h.update(f"{name}|{value.dtype}|{value.shape}|".encode())
        h.update(repr(value.tolist()).encode() if value.dtype == object else value.tobytes())
    return h.hexdigest()[:12]
