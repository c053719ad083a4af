"""Run a model cut into segments, one worker thread per device: the replay's executor and the deployed runner.

This module imports only the standard library, numpy and onnxruntime, so that
``--export`` can copy it, unchanged, next to the exported model as ``runner.py``:
production then runs the placement without hetsched.  The folder holds
``manifest.json`` (format ``hetsched-deploy/1``) and either

* ``kind: plain``: one model and the ORT settings that measured fastest, or
* ``kind: segments``: one ``.onnx`` per segment with its device's settings, the
  tensors it reads and writes, and the segments that must finish before it
  starts (earlier segments on a shared core); and one ``.npy`` of each large
  value that several segments read, which their sessions read as one copy
  (:func:`open_session`).

Each device gets one worker thread that runs its segments in order, each as soon
as its inputs exist; ``session.run`` releases the GIL, so devices on separate
cores overlap.  A worker whose device owns some of the host's cores, not all, is
pinned to them.  Tensors pass from segment to segment as ORT gives them: numpy arrays, and
OrtValues for the types numpy has no dtype for (bfloat16, float8, int4, int2: :func:`session_call`).
ORT's own multi-stream session (``session.node_partition_config_file``) accepts a partition of
CPU nodes but, in ONNX Runtime 1.31 and 1.32 on CPU, runs every stream on one thread
(``benchmarks/bench_executors.py``), so it is not used.

Command line of the exported copy::

    python runner.py                                  # random inputs, times 20 runs
    python runner.py --inputs in.npz --output out.npz # run on given inputs, save the outputs

Example
-------
>>> runner = SegmentRunner([], [])
>>> runner.run({"x": np.zeros(1)})[0]["x"]
array([0.])
>>> runner.close()
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnxruntime as ort

DEPLOY_FORMAT = "hetsched-deploy/1"
INPUTS_FILE = "inputs.npz"  # the user's inputs, kept by an export made from them
ORT_LEVELS = {
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
NUMPY_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint64)": np.uint64, "tensor(uint32)": np.uint32, "tensor(uint16)": np.uint16, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_, "tensor(string)": np.object_, "tensor(complex64)": np.complex64,
    "tensor(complex128)": np.complex128,
}
"""numpy's dtype of each ONNX Runtime tensor type that ORT's Python API takes and gives as numpy arrays."""
BITS_TYPES = {
    "tensor(bfloat16)": np.uint16, "tensor(float8e4m3fn)": np.uint8, "tensor(float8e4m3fnuz)": np.uint8,
    "tensor(float8e5m2)": np.uint8, "tensor(float8e5m2fnuz)": np.uint8, "tensor(float8e8m0)": np.uint8,
    "tensor(int4)": np.int8, "tensor(uint4)": np.uint8, "tensor(int2)": np.int8, "tensor(uint2)": np.uint8,
}
"""Tensor types that numpy has no dtype for (``run`` refuses to give them): segments hand them over as
OrtValues, and :func:`ort_bits` reads them as numpy arrays of these dtypes."""
PACKED_TYPES = {"tensor(int4)": 4, "tensor(uint4)": 4, "tensor(int2)": 2, "tensor(uint2)": 2}
"""Bits per element of the integer types that ORT packs into bytes, the first element in the lowest bits:
numpy holds their values as int8 or uint8 (:data:`BITS_TYPES`), one to a byte."""
INPUT_BITS_TYPES = {"tensor(bfloat16)": 16, "tensor(float8e4m3fn)": 17, "tensor(float8e4m3fnuz)": 18,
                    "tensor(float8e5m2)": 19, "tensor(float8e5m2fnuz)": 20, "tensor(uint4)": 21,
                    "tensor(int4)": 22, "tensor(float8e8m0)": 24, "tensor(uint2)": 25, "tensor(int2)": 26}
"""ONNX's element type of each of :data:`BITS_TYPES` a model's input may have: its value is given as an array
of :data:`BITS_TYPES`' dtype, the bits of its elements for bfloat16 and float8, the values themselves, one to
a byte, for the :data:`PACKED_TYPES` (or as ``ml_dtypes``' array of the type), which :func:`session_call`
hands to ORT as an OrtValue."""


SPINNING = ("always", "during-run")


def session_options(level: str = "none", threads: int = 1, *, parallel: bool = False,
                    spinning: str = "always", cpus: Sequence[int] = (), packed: bool = True) -> ort.SessionOptions:
    """ORT settings: ``threads`` intra-op threads (inter-op too when ``parallel``), optimisation ``level``.

    ``cpus`` (one OS CPU per thread) keeps the session's pool threads on the
    device's cores: the calling thread takes the first (:func:`pin_thread`), its
    pool the others, so that two devices on parts of the host do not meet on one core.

    Idle pool threads busy-wait for work (``spinning="always"``, ORT's default:
    right for a device alone).  ``"during-run"`` stops them when a run returns
    (``session.force_spinning_stop``): sessions that share cores with other
    devices' workers must not spin between their runs and starve them, but
    turning spinning off altogether makes every step of a recurrent op wake
    the pool (a two-LSTM placement ran 3.0 ms instead of 2.1 ms).

    ``packed=False`` turns off ORT's packing of weights for its kernels (``session.disable_prepacking``):
    what sessions that share weights need (:func:`open_session`), and on some models faster (here
    the Siamese LSTM preset on two threads, 4.9 ms against 5.1).
    """
    if spinning not in SPINNING:
        raise ValueError(f"spinning must be one of {', '.join(SPINNING)}, got {spinning!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = ORT_LEVELS[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = threads if parallel else 1
    so.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if spinning == "during-run":
        so.add_session_config_entry("session.force_spinning_stop", "1")
    if not packed:
        so.add_session_config_entry("session.disable_prepacking", "1")
    if cpus:
        if len(cpus) != threads:
            raise ValueError(f"cpus must name one CPU per thread ({threads}), got {list(cpus)}")
        if threads > 1:  # ORT numbers logical processors from 1 and leaves the calling thread alone
            so.add_session_config_entry("session.intra_op_thread_affinities", ";".join(str(c + 1) for c in cpus[1:]))
    return so


def open_session(model: bytes | str, so: ort.SessionOptions, provider: str,
                 shared: Mapping[str, np.ndarray] | None = None) -> ort.InferenceSession:
    """An ORT session of ``model`` (bytes or a file's path) with options ``so``, given the ``shared`` values as
    its initializers of those names, read where they lie: segments that read one weight then hold it once
    between them, not a copy each.  Only with ``packed=False`` in :func:`session_options` (ORT packs a copy
    per session): copies of one weight in many sessions push each other out of the caches (an unrolled
    recurrent layer's steps cut into 24 segments, each reading a 6.5 MB weight: 0.70 ms a step instead of
    0.36).  The values' OrtValues live on the session (``shared_values``): ORT does not keep them alive.
    """
    kept = [ort.OrtValue.ortvalue_from_numpy(value) for value in (shared or {}).values()]
    for name, value in zip(shared or {}, kept):
        so.add_initializer(name, value)
    sess = ort.InferenceSession(model, so, providers=[provider])
    sess.shared_values = kept  # type: ignore[attr-defined]
    return sess


def session_call(sess: ort.InferenceSession,
                 outputs: Sequence[str] | None = None) -> Callable[[Mapping[str, Any]], list[Any]]:
    """How to run ``sess`` for ``outputs`` (default: all): ``sess.run`` when numpy has a dtype for each; else
    ``run_with_ort_values``, which gives the outputs of :data:`BITS_TYPES` (bfloat16, float8, int4) as OrtValues
    that a later ``run`` takes as they are, and the others as numpy arrays.  An input of one of these types
    takes the bits of its values (:data:`INPUT_BITS_TYPES`).

    >>> # call = session_call(sess, ["y"]); y, = call({"x": x})
    """
    names = list(outputs) if outputs is not None else [o.name for o in sess.get_outputs()]
    call = _outputs_call(sess, names)
    bits = {i.name: i.type for i in sess.get_inputs() if i.type in BITS_TYPES}
    if not bits:
        return call
    return lambda feed: call({k: _bits_value(k, v, bits[k]) if k in bits else v for k, v in feed.items()})


def _outputs_call(sess: ort.InferenceSession, names: Sequence[str]) -> Callable[[Mapping[str, Any]], list[Any]]:
    """:func:`session_call` for feeds that ``run`` takes as they are."""
    types = {o.name: o.type for o in sess.get_outputs()}
    kept = [n for n in names if types.get(n) in BITS_TYPES]
    if not kept:
        return lambda feed: sess.run(names, feed)
    rest = [n for n in names if n not in kept]
    if any(not types.get(n, "").startswith("tensor(") for n in rest):  # sequences and maps: ``run`` alone
        return _split_call(sess, names, kept, rest)

    def call(feed: Mapping[str, Any]) -> list[Any]:
        values = sess.run_with_ort_values(names, _ort_feed(feed))
        return [v if n in kept else v.numpy() for n, v in zip(names, values)]

    return call


def bits_dtype(dtype: np.dtype) -> np.dtype:
    """How numpy without ``ml_dtypes`` (which the runner does not import) holds values of ``dtype``: ``dtype``
    itself unless it is one of ``ml_dtypes``' (kind ``V``); the unsigned integers of their bits for bfloat16 and
    float8; int8 or uint8 values for the :data:`PACKED_TYPES`.

    >>> str(bits_dtype(np.dtype("V2"))), str(bits_dtype(np.dtype(np.float32)))
    ('uint16', 'float32')
    """
    if dtype.kind != "V":
        return dtype
    return np.dtype(BITS_TYPES[f"tensor({dtype.name})"]) if f"tensor({dtype.name})" in PACKED_TYPES \
        else np.dtype(f"u{dtype.itemsize}")


def held(value: np.ndarray) -> np.ndarray:
    """``value`` as :func:`bits_dtype` holds it: an ``ml_dtypes`` array's bits (bfloat16, float8) or values
    (int4, int2 and their unsigned twins, which ``ml_dtypes`` keeps in the low bits of a byte), else itself."""
    if value.dtype.kind != "V":
        return value
    return value.astype(bits_dtype(value.dtype)) if f"tensor({value.dtype.name})" in PACKED_TYPES \
        else value.view(bits_dtype(value.dtype))


def packed_range(kind: str) -> tuple[int, int]:
    """Least and greatest value of one of :data:`PACKED_TYPES`.

    >>> packed_range("tensor(int4)"), packed_range("tensor(uint2)")
    ((-8, 7), (0, 3))
    """
    width = PACKED_TYPES[kind]
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if kind.startswith("tensor(int") else (0, (1 << width) - 1)


def _bits_value(name: str, value: Any, kind: str) -> ort.OrtValue:
    """The value of an input of type ``kind`` (one of :data:`INPUT_BITS_TYPES`), given as :func:`bits_dtype`
    holds it, as an OrtValue of that type (``run`` takes no numpy array for it)."""
    if isinstance(value, ort.OrtValue):
        return value
    if kind not in INPUT_BITS_TYPES:
        raise ValueError(f"input {name!r} is a {kind}, which hetsched cannot give a model from Python")
    bits = np.dtype(BITS_TYPES[kind])
    array = np.asarray(value)
    if bits_dtype(array.dtype) != bits or (array.dtype.kind == "V" and kind in PACKED_TYPES
                                           and f"tensor({array.dtype.name})" != kind):
        what = "values" if kind in PACKED_TYPES else "bits of its values"
        raise ValueError(f"input {name!r} is a {kind}: give the {what} as {bits} (or an ml_dtypes array of its "
                         f"type), not {array.dtype}")
    array = np.ascontiguousarray(held(array))
    if kind in PACKED_TYPES:
        array = pack(name, array, kind)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(array, INPUT_BITS_TYPES[kind])


def check_packed(name: str, values: np.ndarray, kind: str) -> None:
    """Refuse (ValueError) values of input ``name`` that lie outside the range of ``kind``, one of
    :data:`PACKED_TYPES`."""
    lo, hi = packed_range(kind)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"input {name!r} is a {kind}: its values must lie in {lo}..{hi}")


def pack(name: str, values: np.ndarray, kind: str) -> np.ndarray:
    """``values`` (int8 or uint8) of an input of one of :data:`PACKED_TYPES` as ORT reads them: packed from the
    start of an array of their own shape and dtype (the inverse of :func:`ort_bits`).

    >>> pack("x", np.array([1, -2, 3], np.int8), "tensor(int4)").view(np.uint8).tolist()
    [225, 3, 0]
    """
    check_packed(name, values, kind)
    width = PACKED_TYPES[kind]
    per = 8 // width
    flat = values.reshape(-1).astype(np.uint8) & ((1 << width) - 1)
    flat = np.concatenate([flat, np.zeros(-flat.size % per, np.uint8)]).reshape(-1, per)
    packed = np.bitwise_or.reduce(flat << (np.arange(per, dtype=np.uint8) * width), axis=1).astype(np.uint8)
    out = np.zeros(values.shape, dtype=values.dtype)
    out.reshape(-1)[:packed.size] = packed.view(values.dtype)
    return out


def _split_call(sess: ort.InferenceSession, names: Sequence[str], kept: Sequence[str],
                rest: Sequence[str]) -> Callable[[Mapping[str, Any]], list[Any]]:
    """Two runs of ``sess``: ``run`` for the sequences, maps and numpy tensors, ``run_with_ort_values`` for the
    :data:`BITS_TYPES` tensors, since neither gives both kinds (an OrtValue of a sequence cannot be read, nor
    made, from Python).  Right values at twice the time: what a whole-model run that exposes every value needs
    (``observed_run``); a segment that mixes them is timed twice over (none found in a real model)."""
    def call(feed: Mapping[str, Any]) -> list[Any]:
        got = dict(zip(rest, sess.run(list(rest), feed)))
        got.update(zip(kept, sess.run_with_ort_values(list(kept), _ort_feed(feed))))
        return [got[n] for n in names]

    return call


def _ort_feed(feed: Mapping[str, Any]) -> dict[str, ort.OrtValue]:
    """``feed`` as OrtValues, what ``run_with_ort_values`` takes; a sequence or a map has none to be made."""
    out = {}
    for name, value in feed.items():
        if isinstance(value, (list, dict)):
            raise ValueError(f"input {name!r} is a sequence or a map, which cannot go into the same session call "
                             "as a bfloat16, float8 or int4 output (ONNX Runtime makes OrtValues of tensors only "
                             "from Python)")
        out[name] = value if isinstance(value, ort.OrtValue) else \
            ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value))
    return out


def ort_bits(value: ort.OrtValue) -> np.ndarray:
    """A copy of a CPU tensor of one of :data:`BITS_TYPES` as numpy can hold it, in its shape (``numpy()``
    refuses these types): bfloat16 and float8 values as the unsigned integers of their bits, those of the
    :data:`PACKED_TYPES` (several to a byte, the first in the lowest bits) as int8 and uint8 values.  What the
    exported runner saves of such an output.
    """
    kind = value.data_type()
    dtype = np.dtype(BITS_TYPES[kind])
    if value.device_name().lower() != "cpu":
        raise ValueError(f"a {kind} on {value.device_name()} cannot be read here")
    shape = value.shape()
    count = int(np.prod(shape))
    width = PACKED_TYPES.get(kind, 0)
    size = -(-count * width // 8) if width else count * dtype.itemsize
    if not size:
        return np.zeros(shape, dtype=dtype)
    raw = np.frombuffer((ctypes.c_char * size).from_address(value.data_ptr()), dtype=np.uint8 if width else dtype)
    if not width:
        return raw.reshape(shape).copy()
    fields = ((raw[:, None] >> (np.arange(8 // width, dtype=np.uint8) * width)) & ((1 << width) - 1))
    fields = fields.reshape(-1)[:count].astype(np.int16)
    if kind.startswith("tensor(int"):  # two's complement of ``width`` bits
        fields = (fields ^ (1 << (width - 1))) - (1 << (width - 1))
    return fields.reshape(shape).astype(dtype)


def random_inputs(sess: ort.InferenceSession, seed: int = 0,
                  given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Inputs for every graph input of ``sess``: normal floats, zeros for integers and booleans, empty strings,
    empty sequences, absent optionals, maps of one entry (:func:`other_value`); or the ``given`` ones, when the
    user gave them (:mod:`scheduler.inputs`), an optional left out as absent.

    Shapes as :func:`concrete_shape` makes them.
    """
    if given is not None:
        return {**{i.name: None for i in sess.get_inputs() if i.type.startswith("optional(")}, **given}
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for inp in sess.get_inputs():
        if inp.type in NUMPY_TYPES:
            out[inp.name] = random_array(rng, concrete_shape(inp.shape), NUMPY_TYPES[inp.type])
        elif inp.type in INPUT_BITS_TYPES:
            out[inp.name] = random_bits(rng, concrete_shape(inp.shape), inp.type)
        elif inp.type.startswith(("seq(", "optional(", "map(")):
            out[inp.name] = other_value(rng, inp.type)
        else:
            raise ValueError(f"no random value of input {inp.name!r} can be made: it is a {inp.type}")
    return out


MAP_TYPE = re.compile(r"^map\((?P<key>\w+),tensor\((?P<value>\w+)\)\)$")
"""ONNX Runtime's name of a map type: ``map(int64,tensor(float))``."""


def other_value(rng: np.random.Generator, kind: str) -> dict[Any, Any] | list[Any] | None:
    """The value a random input of ORT type ``kind`` takes when it is not a tensor: a sequence an empty one, an
    optional none (``run`` takes ``None`` for an optional input as absent), a map one entry of a zero (or
    empty string) key and a random value as :func:`random_array` makes it (ORT refuses an empty map).

    >>> rng = np.random.default_rng(0)
    >>> other_value(rng, "seq(tensor(float))"), other_value(rng, "optional(seq(tensor(float)))")
    ([], None)
    >>> other_value(rng, "map(string,tensor(int64))")
    {'': 0}
    """
    if kind.startswith("seq("):
        return []
    match = MAP_TYPE.match(kind)
    if match is None:
        return None
    key, value = (np.dtype(NUMPY_TYPES[f"tensor({match[part]})"]) for part in ("key", "value"))
    return {random_array(rng, [], key).item(): random_array(rng, [], value).item()}


SEQUENCE_KEY = re.compile(r"^(?P<name>.*)\[(?P<index>\d*)\]$")
"""How an ``.npz`` of inputs holds a sequence input ``x``: its elements as ``x[0]``, ``x[1]``, ... (an empty
sequence as one key ``x[]``, whose array is ignored); an absent optional input has no key."""
MAP_KEY = re.compile(r"^(?P<name>.*)\{(?P<part>keys|values)\}$")
"""How an ``.npz`` holds a map ``m``: its keys as the array ``m{keys}`` and their values, in that order, as
``m{values}``; a sequence of maps ``s`` each element so (``s[0]{keys}``, ``s[0]{values}``, ...)."""


def grouped(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The inputs an ``.npz``'s ``arrays`` hold: each map's keys and values joined (:data:`MAP_KEY`), the
    elements of each sequence (:data:`SEQUENCE_KEY`) gathered into its list in index order; the inverse of
    :func:`flat`.

    >>> grouped({"x[1]": np.ones(1), "x[0]": np.zeros(2), "y": np.ones(3), "z[]": np.zeros(0)})["x"][0].shape
    (2,)
    >>> grouped({"m{keys}": np.array([3, 5]), "m{values}": np.array([0.5, 1.0])})
    {'m': {3: 0.5, 5: 1.0}}
    """
    parts: dict[str, dict[str, np.ndarray]] = {}
    values: dict[str, Any] = {}
    for key, value in arrays.items():
        match = MAP_KEY.match(key)
        if match is None:
            values[key] = value
        else:
            parts.setdefault(match["name"], {})[match["part"]] = value
    for name, held in parts.items():
        if name in values:
            raise ValueError(f"the inputs hold {name!r} both as an array and as a map's keys and values")
        values[name] = _joined_map(name, held)
    out: dict[str, Any] = {}
    items: dict[str, dict[int, Any]] = {}
    for key, value in values.items():
        match = SEQUENCE_KEY.match(key)
        if match is None:
            out[key] = value
        else:
            elements = items.setdefault(match["name"], {})
            if match["index"]:
                elements[int(match["index"])] = value
    for name, elements in items.items():
        if name in out:
            raise ValueError(f"the inputs hold {name!r} both as an array and as a sequence's elements")
        if sorted(elements) != list(range(len(elements))):
            raise ValueError(f"the elements of sequence input {name!r} are not numbered 0, 1, ... "
                             f"(keys {name}[0], {name}[1], ...)")
        out[name] = [elements[k] for k in range(len(elements))]
    return out


def _joined_map(name: str, parts: Mapping[str, np.ndarray]) -> dict[Any, Any]:
    """The map whose keys and values :func:`grouped` found as ``name{keys}`` and ``name{values}``."""
    if len(parts) < 2:
        have, lacks = ("keys", "values") if "keys" in parts else ("values", "keys")
        raise ValueError(f"the inputs hold the {have} of map {name!r} but not its {lacks} ({name}{{{lacks}}})")
    keys, values = parts["keys"], parts["values"]
    if keys.ndim != 1 or keys.shape != values.shape:
        raise ValueError(f"the keys and values of map {name!r} must be two 1-D arrays of one length, got shapes "
                         f"{list(keys.shape)} and {list(values.shape)}")
    joined = dict(zip(keys.tolist(), values.tolist()))
    if len(joined) < len(keys):
        raise ValueError(f"the keys of map {name!r} repeat a key")
    return joined


def flat(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``values`` as an ``.npz`` holds them (:data:`SEQUENCE_KEY`, :data:`MAP_KEY`; an absent optional left
    out).

    >>> sorted(flat({"x": [np.zeros(1), np.ones(1)], "e": [], "o": None, "t": np.ones(2), "s": [{1: 0.5}]}))
    ['e[]', 's[0]{keys}', 's[0]{values}', 't', 'x[0]', 'x[1]']
    """
    out: dict[str, np.ndarray] = {}
    for name, value in values.items():
        _flatten(name, value, out)
    return out


def _flatten(name: str, value: Any, out: dict[str, np.ndarray]) -> None:
    """:func:`flat` of one value, into ``out``: a map's keys in order and their values, a sequence's elements."""
    if isinstance(value, dict):
        keys = sorted(value)
        out[f"{name}{{keys}}"] = np.array(keys)
        out[f"{name}{{values}}"] = np.array([value[k] for k in keys])
    elif isinstance(value, list):
        if not value:
            out[f"{name}[]"] = np.zeros(0)
        for k, element in enumerate(value):
            _flatten(f"{name}[{k}]", element, out)
    elif value is not None:
        out[name] = value


def random_bits(rng: np.random.Generator, shape: Sequence[int], kind: str) -> np.ndarray:
    """One random input of type ``kind`` (one of :data:`INPUT_BITS_TYPES`) as :func:`bits_dtype` holds it:
    bfloat16 normal floats (a float32's upper half), float8 values from 0 to about 2 (bits below 0x40: none is
    a NaN in any format; float8e8m0, a power of two, from 2^-7 to 2^7), any value of the :data:`PACKED_TYPES`.

    >>> random_bits(np.random.default_rng(0), [2], "tensor(bfloat16)").dtype
    dtype('uint16')
    """
    if kind == "tensor(bfloat16)":
        return (rng.standard_normal(shape).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    if kind in PACKED_TYPES:
        lo, hi = packed_range(kind)
        return rng.integers(lo, hi + 1, size=shape, dtype=BITS_TYPES[kind])
    if kind == "tensor(float8e8m0)":  # bits are the exponent, biased by 127
        return rng.integers(127 - 7, 127 + 8, size=shape, dtype=np.uint8)
    return rng.integers(0, 0x40, size=shape, dtype=np.uint8)


def concrete_shape(dims: Sequence[int | str | None]) -> list[int]:
    """A shape to make an input of: a dimension without a fixed size (a name, or None) gets 1; a fixed 0 (an
    empty tensor, as a key-value cache of length 0) stays 0.

    >>> concrete_shape(["batch", 0, 4, None])
    [1, 0, 4, 1]
    """
    return [d if isinstance(d, int) and d >= 0 else 1 for d in dims]


def random_array(rng: np.random.Generator, shape: Sequence[int], dtype: Any) -> np.ndarray:
    """One random input: normal floats, empty strings, zeros for integers and booleans."""
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.floating):
        return rng.standard_normal(shape).astype(dt)
    return np.full(shape, "", dtype=dt) if dt == object else np.zeros(shape, dtype=dt)


def pin_thread(cpus: Sequence[int]) -> None:
    """Keep the calling thread, a device's worker, on the first of its device's ``cpus`` (nothing when empty or
    unsupported); its sessions' pool threads take the others (:func:`session_options`).  Left to the OS, two
    workers can share one core of a busy host and run one after the other, and a worker can meet its own
    session's pool thread on one core."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, list(cpus)[:1])


def timed_runs(run: Callable[[], object], warmup: int, repeats: int,
               tick: Callable[[], None] = lambda: None) -> list[float]:
    """Call ``run`` ``warmup + repeats`` times; the wall times (s) of the repeats (``tick`` after each call).

    >>> len(timed_runs(lambda: None, warmup=1, repeats=3))
    3
    """
    wall = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        run()
        if i >= warmup:
            wall.append(time.perf_counter() - t0)
        tick()
    return wall


def round_shares(repeats: int, rounds: int) -> list[int]:
    """How ``repeats`` timed runs spread over ``rounds`` rounds (at most one round per run, at least one).

    >>> round_shares(10, 3), round_shares(2, 5)
    ([4, 3, 3], [1, 1])
    """
    rounds = max(1, min(rounds, repeats))
    return [repeats // rounds + (r < repeats % rounds) for r in range(rounds)]


def round_order(jobs: int, r: int) -> list[int]:
    """Round ``r``'s order of ``jobs`` timed jobs: rotated by one each round, so that a burst of load on a
    shared host does not always fall on the same one.

    >>> round_order(3, 1)
    [1, 2, 0]
    """
    return [(r + k) % jobs for k in range(jobs)]


@dataclass(frozen=True)
class Part:
    """What the runner needs of a segment: its device, boundary tensors, and who must finish first."""

    index: int
    device: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    after: tuple[int, ...] = ()  # earlier segments on a core this one uses
    cpus: tuple[int, ...] = ()  # OS CPUs the device's worker is pinned to (none: the OS decides)


@dataclass
class Timing:
    """Begin and end of each segment in one run (seconds from the run's start)."""

    begin: dict[int, float] = field(default_factory=dict)
    end: dict[int, float] = field(default_factory=dict)


class SegmentRunner:
    """Persistent per-device worker threads that run the segments once per :meth:`run` call.

    Threads live across runs so that thread start-up is not paid (or timed) per
    run.  All shared state is guarded by one lock; each worker sleeps on its own
    condition and is woken only when its next segment may have become ready (a
    wake-up for all would make every worker fight for the GIL at every hand-over).
    When every segment is on one device they run in the calling thread.
    """

    def __init__(self, parts: Sequence[Part], sessions: Sequence[ort.InferenceSession]) -> None:
        self.parts, self.sessions = list(parts), list(sessions)
        self.calls = [session_call(sess, p.outputs) for p, sess in zip(self.parts, self.sessions)]
        self.index = {p.index: i for i, p in enumerate(self.parts)}
        self.queues: dict[str, list[int]] = {}
        for p in self.parts:
            self.queues.setdefault(p.device, []).append(p.index)
        self.lock = threading.Lock()
        self.wake = {d: threading.Condition(self.lock) for d in self.queues}
        self.finished = threading.Condition(self.lock)
        self.generation = 0
        self.stopping = False
        self.tensors: dict[str, Any] = {}
        self.done: set[int] = set()
        self.position = {d: 0 for d in self.queues}  # each device's next segment in its queue
        self.idle = 0
        self.errors: list[BaseException] = []
        self.timing = Timing()
        self.t0 = 0.0
        produced = {x for p in self.parts for x in p.outputs}
        self.needed = sorted({x for p in self.parts for x in p.inputs} - produced)  # the model's inputs
        self.inline = next(iter(self.queues), None) if len(self.queues) <= 1 else None
        self.threads = [] if len(self.queues) <= 1 else [
            threading.Thread(target=self._worker, args=(d,), daemon=True) for d in self.queues]
        for th in self.threads:
            th.start()

    def _ready(self, k: int) -> bool:
        p = self.parts[self.index[k]]
        return all(x in self.tensors for x in p.inputs) and all(q in self.done for q in p.after)

    def _wake_ready(self) -> None:
        """Wake the workers whose next segment can start now (lock held)."""
        for d, queue in self.queues.items():
            i = self.position[d]
            if i < len(queue) and self._ready(queue[i]):
                self.wake[d].notify()

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)
            for cond in self.wake.values():
                cond.notify()
            self.finished.notify()

    def _process(self, device: str) -> None:
        """Run one device's segments of the current run, each once its inputs and cores are free."""
        try:
            for n, k in enumerate(self.queues[device]):
                with self.lock:
                    while not self._ready(k) and not self.errors:
                        self.wake[device].wait()
                    if self.errors:
                        return
                    p = self.parts[self.index[k]]
                    feed = {x: self.tensors[x] for x in p.inputs}
                begin = time.perf_counter()
                result = self.calls[self.index[k]](feed)
                end = time.perf_counter()
                with self.lock:
                    self.timing.begin[k], self.timing.end[k] = begin - self.t0, end - self.t0
                    self.tensors.update(zip(p.outputs, result))
                    self.done.add(k)
                    self.position[device] = n + 1
                    self._wake_ready()
        except BaseException as exc:  # reported by run()
            self._fail(exc)

    def _worker(self, device: str) -> None:
        pin_thread(next(p.cpus for p in self.parts if p.device == device))
        seen = 0
        while True:
            with self.lock:
                while self.generation == seen and not self.stopping:
                    self.wake[device].wait()
                if self.stopping:
                    return
                seen = self.generation
            self._process(device)
            with self.lock:
                self.idle += 1
                if self.idle == len(self.threads):
                    self.finished.notify()

    def run(self, feeds: Mapping[str, Any]) -> tuple[dict[str, Any], Timing, float]:
        """One run: every tensor by name, per-segment timings, wall-clock makespan (s).

        Raises RuntimeError naming the first segment failure, or a missing input (a segment would wait
        for it forever).
        """
        missing = [x for x in self.needed if x not in feeds]
        if missing:
            raise RuntimeError(f"input {missing[0]!r} is not given (the model's inputs: {', '.join(self.needed)})")
        switch = sys.getswitchinterval()
        if self.threads:
            sys.setswitchinterval(1e-4)  # hand the GIL over quickly between device workers
        try:
            with self.lock:
                self.tensors, self.done, self.idle, self.errors, self.timing = dict(feeds), set(), 0, [], Timing()
                self.position = {d: 0 for d in self.queues}
                self.t0 = time.perf_counter()
                self.generation += 1
                for cond in self.wake.values():
                    cond.notify()
            if self.inline is not None:  # one device: no hand-over between threads to pay for
                self._process(self.inline)
            with self.lock:
                while self.idle < len(self.threads):
                    self.finished.wait()
                wall = max(self.timing.end.values(), default=0.0)
        finally:
            sys.setswitchinterval(switch)
        if self.errors:
            first = self.errors[0]
            if not isinstance(first, Exception):  # Ctrl-C or exit while a segment ran: not a segment failure
                raise first
            text = (str(first).splitlines() or [type(first).__name__])[0]
            raise RuntimeError(f"a segment failed in ONNX Runtime: {text}")
        return self.tensors, self.timing, wall

    def close(self) -> None:
        """Stop the worker threads."""
        with self.lock:
            self.stopping = True
            for cond in self.wake.values():
                cond.notify()
        for th in self.threads:
            th.join()


class Deployment:
    """An exported folder, loaded: ``run(feeds)`` returns the model's outputs by name.

    >>> # d = Deployment("exported/"); outputs = d.run(d.random_inputs()); d.close()
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as fh:
            self.manifest = json.load(fh)
        if self.manifest.get("format") != DEPLOY_FORMAT:
            raise ValueError(f"{folder}: manifest.json is not {DEPLOY_FORMAT}")
        check_files(folder, self.manifest.get("files", {}))
        self.outputs = list(self.manifest["outputs"])
        if self.manifest["kind"] == "plain":
            s = self.manifest["session"]
            parts = [Part(0, "plain", tuple(self.manifest["inputs"]), tuple(self.outputs))]
            sessions = [self._session(folder, self.manifest["model"], s)]
        else:
            segments = self.manifest["segments"]
            parts = [Part(e["segment"], e["device"], tuple(e["inputs"]), tuple(e["outputs"]), tuple(e["after"]),
                          tuple(e.get("cpus", ()))) for e in segments]
            shared = {name: np.load(os.path.join(folder, file), allow_pickle=False)
                      for name, file in self.manifest.get("shared", {}).items()}
            sessions = [self._session(folder, e["file"], e["session"], {n: shared[n] for n in e.get("shared", ())})
                        for e in segments]
        self.runner = SegmentRunner(parts, sessions)
        self.optional = {i.name for sess in sessions for i in sess.get_inputs()
                         if i.type.startswith("optional(") and i.name in self.manifest["inputs"]}

    @staticmethod
    def _session(folder: str, file: str, s: Mapping[str, Any],
                 shared: Mapping[str, np.ndarray] | None = None) -> ort.InferenceSession:
        """A session of ``file`` with settings ``s``, reading the ``shared`` values (each one copy for all
        the segments that read it) in place of its own."""
        so = session_options(s["graph_optimization"], s["threads"], parallel=s["parallel"], spinning=s["spinning"],
                             cpus=s.get("cpus", ()), packed=s.get("packed", True) and not shared)
        return open_session(os.path.join(folder, file), so, s["execution_provider"], shared)

    def random_inputs(self, seed: int = 0) -> dict[str, Any]:
        """Random inputs of the model's input shapes (from the manifest's recorded inputs), as
        :func:`scheduler.executor.random_inputs` makes them (those of :data:`INPUT_BITS_TYPES` by the sessions'
        types: the manifest has only the dtype that holds them; sequences, maps and optionals, which it has no
        spec of, by :func:`other_value`)."""
        rng = np.random.default_rng(seed)
        kinds = {i.name: i.type for sess in self.runner.sessions for i in sess.get_inputs()}
        specs = self.manifest["input_specs"]
        return {name: random_bits(rng, specs[name][0], kinds[name]) if kinds.get(name) in INPUT_BITS_TYPES
                else random_array(rng, *specs[name]) if name in specs
                else other_value(rng, kinds.get(name, "optional("))
                for name in self.manifest["inputs"]}

    def default_inputs(self) -> dict[str, Any]:
        """The inputs the export was made from (``inputs.npz``, written with the folder) if it keeps them,
        else :meth:`random_inputs`."""
        if "inputs_file" not in self.manifest:
            return self.random_inputs()
        return load_arrays(os.path.join(self.folder, self.manifest["inputs_file"]))

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """The model's outputs for ``feeds`` (an optional input left out is absent): numpy arrays, lists for
        sequences, OrtValues for those numpy has no dtype for (:data:`BITS_TYPES`)."""
        tensors, _, _ = self.runner.run({**dict.fromkeys(self.optional), **feeds})
        return {name: tensors[name] for name in self.outputs}

    def time(self, feeds: Mapping[str, Any], repeats: int = 20, warmup: int = 3) -> float:
        """Median wall time of ``repeats`` runs (s)."""
        return statistics.median(timed_runs(lambda: self.run(feeds), warmup, repeats))

    def close(self) -> None:
        self.runner.close()


def check_files(folder: str, files: Mapping[str, int]) -> None:
    """Refuse, in one line, a folder that lacks a file its manifest lists (``{name: size}``) or holds it at
    another size: a deployment copied in part would otherwise fail inside ONNX Runtime, or run on a cut
    ``.onnx.data``."""
    for name, size in files.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ValueError(f"{folder}: {name} is missing (manifest.json lists it: copy the whole folder)")
        held = os.path.getsize(path)
        if held != size:
            raise ValueError(f"{folder}: {name} has {held} bytes, manifest.json lists {size} (copied in part?)")


def load_arrays(path: str) -> dict[str, Any]:
    """The inputs an ``.npz`` file holds by name (no pickles; a sequence's elements gathered, :func:`grouped`);
    strings as the object arrays ONNX Runtime takes."""
    with np.load(path) as data:
        return grouped({k: data[k].astype(object) if data[k].dtype.kind == "U" else data[k] for k in data.files})


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the exported ``runner.py``."""
    ap = argparse.ArgumentParser(description="Run a model exported by hetsched (numpy + onnxruntime only).")
    ap.add_argument("--inputs", help=".npz of the model's inputs (default: the inputs.npz the export kept, "
                    "else random ones of the manifest's shapes)")
    ap.add_argument("--output", help="save the outputs here (.npz, no pickles; a bfloat16 or float8 output as "
                    "the unsigned integers of its bits, an int4 one as int8; a sequence s as s[0], s[1], ...; a map "
                    "m as m{keys} and m{values})")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs (0: run once, no timing)")
    args = ap.parse_args(argv)
    folder = os.path.dirname(os.path.abspath(__file__))
    try:
        deployment = Deployment(folder)
        if args.inputs:
            feeds = load_arrays(args.inputs)
        else:
            feeds = deployment.default_inputs()
        outputs = deployment.run(feeds)
        if args.output:  # bfloat16, float8 and int4 outputs as ort_bits gives them, strings as numpy's
            saved = flat({k: ort_bits(v) if isinstance(v, ort.OrtValue) else v for k, v in outputs.items()})
            np.savez(args.output, **{k: v.astype(str) if v.dtype == object else v for k, v in saved.items()})
        if args.repeats > 0:
            median = deployment.time(feeds, args.repeats)
            print(f"{deployment.manifest['kind']}: median {median * 1e3:.3f} ms over {args.repeats} runs")
        deployment.close()
    except Exception as exc:  # the command line's boundary: one line, exit 2 (ORT raises several types)
        print(f"runner: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
