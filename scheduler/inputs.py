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
from .executor import PACKED_TYPES, bits_dtype, check_packed, flat, grouped, held
from .graph import is_fixed, real_inputs

FeedValue = np.ndarray | list[np.ndarray] | dict[int | str, float | int | str] | list[dict] | None
"""A tensor, a sequence of tensors, a map (a sequence of maps), or an optional input given as absent."""
Feeds = Mapping[str, FeedValue]
"""Input name -> value, as ``InferenceSession.run`` takes them."""


def load_inputs(path: str) -> dict[str, FeedValue]:
    """The arrays of an ``.npz`` file (``numpy.savez``), one per model input named by its key; a sequence
    input ``x`` as its elements ``x[0]``, ``x[1]``, ... (an empty one as ``x[]``), a map ``m`` as its keys
    ``m{keys}`` and their values ``m{values}``, an optional left out to leave it absent
    (:func:`scheduler.executor.grouped`).

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
    try:
        return grouped({k: v.astype(object) if v.dtype.kind == "U" else v for k, v in arrays.items()})
    except ValueError as exc:
        raise ModelError(f"inputs file {path!r}: {exc}") from None


def shapes_of(feeds: Feeds) -> dict[str, list[int]]:
    """The input shapes the given tensors fix (a sequence's or an optional's are its own)."""
    return {name: [int(d) for d in value.shape] for name, value in feeds.items() if isinstance(value, np.ndarray)}


def check_inputs(model: onnx.ModelProto, feeds: Feeds) -> None:
    """Refuse, in one line, given inputs that do not fit the model's graph inputs: a name it does not
    have, one it needs that is missing (an optional may be: it is then absent), or another kind, element
    type or rank."""
    inputs = real_inputs(model.graph)
    extra = sorted(set(feeds) - set(inputs))
    if extra:
        raise ModelError(f"the given inputs name {extra[0]!r}, which is not an input of the model "
                         f"(inputs: {', '.join(inputs) or 'none'})")
    missing = [name for name, vi in inputs.items() if name not in feeds and not vi.type.HasField("optional_type")]
    if missing:
        raise ModelError(f"the given inputs lack the model's input {missing[0]!r}")
    for name, vi in inputs.items():
        if name in feeds:
            _check_value(name, vi.type, feeds[name])


def _check_value(name: str, kind: onnx.TypeProto, value: FeedValue) -> None:
    """:func:`check_inputs` for one value of type ``kind``: a tensor, a sequence's list (each element checked
    as its type says) or an optional's value or None."""
    which = kind.WhichOneof("value")
    if which == "optional_type":
        if value is not None:
            _check_value(name, kind.optional_type.elem_type, value)
        return
    if which == "sequence_type":
        if not isinstance(value, list):
            raise ModelError(f"given input {name!r} is {'absent' if value is None else 'an array'}, but the model "
                             f"takes a sequence (give its elements as {name}[0], {name}[1], ...; an empty one as "
                             f"{name}[])")
        for k, element in enumerate(value):
            _check_value(f"{name}[{k}]", kind.sequence_type.elem_type, element)
        return
    if which == "map_type":
        _check_map(name, kind.map_type, value)
        return
    if which not in ("tensor_type", None):  # an input of no declared type is taken as a tensor, as ORT does
        raise ModelError(f"input {name!r} is a {which.removesuffix('_type')}; only tensors, sequences, maps and "
                         "optionals can be given")
    if not isinstance(value, np.ndarray):
        raise ModelError(f"given input {name!r} is {'absent' if value is None else 'a sequence'}, but the model "
                         "takes a tensor")
    tt = kind.tensor_type
    want = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
    ort_kind = f"tensor({want.name})" if want is not None else ""
    bits = want is not None and want.kind == "V" and value.dtype == bits_dtype(want)
    packed = ort_kind in PACKED_TYPES
    if want is not None and want != value.dtype and not bits:  # bfloat16, float8: their bits will do
        raise ModelError(f"given input {name!r} is {value.dtype}, but the model takes {want}" + (
            f" (or its {'values' if packed else 'bits'} as {bits_dtype(want)})" if want.kind == "V" else ""))
    if packed:
        try:
            check_packed(name, held(value), ort_kind)
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


def _check_map(name: str, kind: onnx.TypeProto.Map, value: FeedValue) -> None:
    """:func:`check_inputs` for a map: a dict of at least one entry (ORT refuses an empty one) whose keys and
    values are of the declared types (what ``{name}{keys}`` and ``{name}{values}`` of an ``.npz`` give)."""
    if not isinstance(value, dict):
        what = "absent" if value is None else "a sequence" if isinstance(value, list) else "an array"
        raise ModelError(f"given input {name!r} is {what}, but the model takes a map (give its keys as "
                         f"{name}{{keys}} and their values as {name}{{values}})")
    if not value:
        raise ModelError(f"given map {name!r} is empty; ONNX Runtime takes maps of one entry or more")
    for what, got, elem in (("keys", list(value), kind.key_type), ("values", list(value.values()),
                                                                   kind.value_type.tensor_type.elem_type)):
        if not elem:  # values of no declared tensor type: ORT says what it takes
            continue
        want = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
        have = np.array(got).dtype
        if not (have.kind in "US" if want == object else np.can_cast(have, want, "same_kind")):
            raise ModelError(f"given map {name!r} has {what} of {have}, but the model takes "
                             f"{'strings' if want == object else want}")


def inputs_digest(feeds: Feeds | None) -> str:
    """A short hash of the given inputs (names, types, shapes, bytes): a profile measured on them is
    stored under it, apart from one measured on random inputs ('' when none are given)."""
    if not feeds:
        return ""
    h = hashlib.sha256()
    arrays = flat(feeds)  # a sequence by its elements
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{value.dtype}|{value.shape}|".encode())
        h.update(repr(value.tolist()).encode() if value.dtype == object else value.tobytes())
    return h.hexdigest()[:12]
