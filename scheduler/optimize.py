"""The model ONNX Runtime runs: load check, graph optimisation (cached), and observed tensor types.

Optimise, then partition: plain ONNX Runtime fuses operators (Conv+BatchNorm,
MatMul+Add, attention...) and, at level ``all`` on x86, runs convolutions in a
blocked NCHWc layout.  A segment cut from the unoptimised model loses all of that,
so hetsched lets ORT optimise the model once, saves the result, and then imports,
profiles, cuts and replays *that* model with optimisations off (its node names
then hold).  Reloaded with optimisations off, the saved model runs as fast as
plain ORT at that level.

Levels: ``none`` (the model as given), ``basic``, ``extended`` (portable fused and
contrib ops) and ``all`` (adds layout transforms specific to this CPU type).
``auto`` picks ``all`` when every real device of the platform runs on ORT's CPU
provider (the level that wins here), else ``extended``.  Optimised models are
cached by model hash, level, ORT version and (for ``all``) the CPU's identity.

ONNX shape inference does not know ORT's contrib ops, so tensor types and shapes
come from a real run of the model (:func:`observed_types`), never from inference
alone.

Example
-------
>>> from scheduler import zoo
>>> m = optimize_model(zoo.build("mlp", layers=2), "extended")
>>> sorted({n.op_type for n in m.graph.node})
['FusedGemm', 'Gemm']
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import platform as _host
import re
import shutil
import tempfile
import weakref
from typing import Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper
from onnx.checker import ValidationError
from onnx.external_data_helper import load_external_data_for_model

from .errors import HetschedError, ModelError
from .executor import (BITS_TYPES, INPUT_BITS_TYPES, NUMPY_TYPES, ORT_LEVELS, PACKED_TYPES, bits_dtype, ort_bits,
                       open_session, random_inputs, session_call, session_options)
from .fileio import mark_used, move_file, write_bytes
from .graph import (IN_MEMORY, LARGE_TENSOR, copy_taking_out_large, is_large, lift_large_values, lifts_as_copied,
                    map_large_values, name_nodes, name_nodes_in_place, point_to, raw_view, real_inputs,
                    subgraphs, take_out_large)
from .levels import LEVELS

IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 writes 14 by default


def ort_level(level: str) -> ort.GraphOptimizationLevel:
    """ORT's enum for one of :data:`LEVELS` (``disable`` is accepted for ``none``)."""
    key = "none" if level == "disable" else level
    if key not in ORT_LEVELS:
        raise ModelError(f"unknown graph optimisation level {level!r} (known: auto, {', '.join(LEVELS)})")
    return ORT_LEVELS[key]


def resolve_level(level: str, providers: tuple[str, ...]) -> str:
    """``auto`` -> ``all`` when every real device runs on the CPU provider, else ``extended``.

    >>> resolve_level("auto", ("CPUExecutionProvider",)), resolve_level("auto", ("CUDAExecutionProvider",))
    ('all', 'extended')
    """
    if level != "auto":
        ort_level(level)
        return level
    return "all" if all(p == "CPUExecutionProvider" for p in providers) else "extended"


class ModelBytes(bytes):
    """A serialised model whose large initializers' values travel beside the bytes, in ``externals``
    (name, array): a model beyond :data:`~scheduler.graph.PROTOBUF_LIMIT`, which protobuf cannot serialise
    whole.  The bytes name each value's SHA-256, so that hashing them identifies the values too;
    :func:`session` hands the values to ONNX Runtime.
    """

    externals: tuple[tuple[str, np.ndarray], ...] = ()


_Message = TypeVar("_Message", onnx.ModelProto, onnx.TensorProto)


def _copy(message: _Message) -> _Message:
    out = type(message)()
    out.CopyFrom(message)
    return out


def _fit(m: onnx.ModelProto) -> onnx.ModelProto:
    """``m`` (a copy: changed in place) with named nodes, an IR version ONNX Runtime reads, and every large
    value a main-graph initializer (:func:`~scheduler.graph.lift_large_values`)."""
    name_nodes_in_place(m)
    if m.ir_version > IR_VERSION or not m.ir_version:
        m.ir_version = IR_VERSION
    lift_large_values(m)
    return m


def model_bytes(model: onnx.ModelProto) -> bytes:
    """The model serialised with named nodes and an IR version ONNX Runtime reads (a :class:`ModelBytes`
    with its large values beside it when it passes protobuf's limit): what a file of it holds."""
    return _beside(model, checksums=True) if is_large(model) else _fit(_copy(model)).SerializeToString()


def session_bytes(model: onnx.ModelProto, exposed: Iterable[str] = (),
                  shared: dict[str, np.ndarray] | None = None) -> ModelBytes:
    """The model as :func:`session` takes it fastest, every large value beside the bytes whatever the model's
    size: serialising the values and ONNX Runtime parsing them again costs more than handing them over (GPT-2
    small cut in two: 2.5 s to make the two sessions, 0.9 s this way).  Not a key: use :func:`model_digest`.
    ``exposed``: tensors made graph outputs too (untyped: ORT infers them).  ``shared``: large values by name,
    taken from there and added there, so that models cut from one model hold each value once."""
    data = _beside(model, checksums=False, exposed=exposed, known=shared)
    if shared is not None:
        shared.update(data.externals)
    return data


def model_digest(model: onnx.ModelProto | ModelBytes) -> str:
    """The SHA-256 that keys profiles and optimised models: of the model's bytes with each large value's own
    SHA-256 in its place (:func:`session_bytes` with checksums), which identify it as the whole bytes do, and
    take a quarter of the time to hash (``bert-base``: 0.6 s, against 2.3 s to serialise and hash it whole).
    ModelBytes (:func:`session_data`) give their model's digest, from the arrays they hold.

    >>> m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [], []))
    >>> model_digest(session_data(m)) == model_digest(m)
    True
    """
    if not isinstance(model, ModelBytes):
        return hashlib.sha256(_beside(model, checksums=True)).hexdigest()
    m = onnx.ModelProto.FromString(model)
    _add_checksums(m, model.externals)
    release_pages(model.externals)
    return hashlib.sha256(m.SerializeToString()).hexdigest()


def _add_checksums(m: onnx.ModelProto, externals: Iterable[tuple[str, np.ndarray]]) -> None:
    """Each value's SHA-256 beside its placeholder in ``m`` (what keys a model without hashing all its bytes)."""
    by_name = {t.name: t for t in m.graph.initializer}
    for name, value in externals:
        by_name[name].external_data.add(key="checksum", value=hashlib.sha256(raw_view(value)).hexdigest())


def _beside(model: onnx.ModelProto, checksums: bool, exposed: Iterable[str] = (),
            known: Mapping[str, np.ndarray] | None = None) -> ModelBytes:
    """``model`` as :func:`_fit` has it, serialised with its large values beside it (those in ``known``, the
    arrays there), their SHA-256 in the bytes when ``checksums``, and ``exposed`` tensors graph outputs too."""
    m, externals = _taken_out(model, IN_MEMORY, known)
    if checksums:
        _add_checksums(m, externals)
    m.graph.output.extend(onnx.ValueInfoProto(name=name) for name in exposed)
    data = ModelBytes(_serialised(m))
    data.externals = tuple(externals)
    return data


def _serialised(m: onnx.ModelProto) -> bytes:
    """``m`` (its large values taken out) serialised, or a ModelError when what stays in it passes protobuf's
    limit, which protobuf would only say with a traceback."""
    if is_large(m):
        raise ModelError(f"model {m.graph.name!r} passes protobuf's 2 GiB even without its values of "
                         f"{LARGE_TENSOR >> 20} MiB or more (what stays: values packed below a byte, strings, "
                         "smaller ones); hetsched cannot serialise it")
    return m.SerializeToString()


def _taken_out(model: onnx.ModelProto, location: str, known: Mapping[str, np.ndarray] | None = None
               ) -> tuple[onnx.ModelProto, list[tuple[str, np.ndarray]]]:
    """A copy of ``model`` as :func:`_fit` has it, its large values out of it (external at ``location``), and
    those values; the values already main-graph initializers are not copied into the copy on the way (nor
    made anew when ``known`` has them)."""
    m, externals = copy_taking_out_large(model, location, known)
    _fit(m)  # Constants and subgraphs' values become initializers here, and are taken out after the others
    externals += take_out_large(m, location, offset=sum(value.nbytes for _, value in externals))
    return m, externals


FILE_BACKED_BYTES = 64 << 20
"""From this many bytes of large values on, :func:`session_data` keeps them in a file (:func:`file_backed`)."""


def file_backed(data: ModelBytes) -> ModelBytes:
    """``data`` with its large values moved into a temporary file of their own, each a read-only
    ``np.memmap`` view of it; the file goes once no view of it is left.

    :func:`session` makes a session of such values from the model's bytes pointing into that file, which ONNX
    Runtime maps instead of copying what it is handed (a 0.5 GiB MLP: 0.9 s less per session, and no copy in memory
    beside the arrays); models built from the same views, as the segments cut from a model are
    (:func:`session_bytes` with ``shared``), share the file.  Where the file cannot be written (a full
    temporary disk), ``data`` stays as it is.
    """
    if not data.externals:
        return data
    folder = None
    try:
        folder = tempfile.mkdtemp(prefix="hetsched-values-")
        path = os.path.join(folder, "values.bin")
        values = [value for _, value in data.externals]
        offsets = _page_offsets([value.nbytes for value in values])  # as a memory map holds them
        with open(path, "xb") as fh:  # a folder of our own: nothing there to follow
            fh.writelines(_padded(values, offsets))
        whole = np.memmap(path, dtype=np.uint8, mode="r")
    except OSError:  # no room for them on the temporary disk: they stay in memory, as smaller models' do
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return data
    # the views hold the map (the memmap's ``base``), the map the file
    mapping = whole.base if isinstance(whole.base, mmap.mmap) else whole
    weakref.finalize(mapping, shutil.rmtree, folder, True)
    out = ModelBytes(data)
    out.externals = tuple((name, whole[at:at + value.nbytes].view(value.dtype).reshape(value.shape))
                          for (name, value), at in zip(data.externals, offsets))
    return out


def _page_offsets(sizes: Sequence[int], page: int = 4096) -> list[int]:
    """Where values of these sizes lie in a file, one after another, each from a page boundary.

    >>> _page_offsets([10, 5000, 1])
    [0, 4096, 12288]
    """
    offsets, end = [], 0
    for size in sizes:
        offsets.append(-(-end // page) * page)
        end = offsets[-1] + size
    return offsets


def _padded(values: Iterable[np.ndarray], offsets: Iterable[int]) -> Iterator[bytes | memoryview]:
    """The bytes of ``values`` at their ``offsets`` (increasing, as :func:`_page_offsets` gives), zeros between."""
    end = 0
    for value, at in zip(values, offsets):
        yield bytes(at - end)
        yield raw_view(value)
        end = at + value.nbytes


def _backing_files(externals: Sequence[tuple[str, np.ndarray]]) -> tuple[str, dict[str, tuple[str, int]]] | None:
    """The one folder whose files every value is a contiguous memory-map view of (:func:`file_backed`, a
    mapped model file: :func:`~scheduler.graph.map_large_values`), and each value's file name and offset
    there; None when there is no such folder."""
    folder, where = None, {}
    for name, value in externals:
        root = _map_root(value)
        if not isinstance(root, np.memmap) or not value.flags.c_contiguous \
                or folder not in (None, os.path.dirname(root.filename)):
            return None
        folder = os.path.dirname(root.filename)
        where[name] = (os.path.basename(root.filename), root.offset + value.ctypes.data - root.ctypes.data)
    return (folder, where) if folder else None


def _map_root(value: np.ndarray) -> np.ndarray:
    """The array ``value`` is a view of, through every view between."""
    while isinstance(value.base, np.ndarray):
        value = value.base
    return value


def release_pages(externals: Iterable[tuple[str, np.ndarray]]) -> None:
    """Take the pages of file-backed values (:func:`file_backed`) out of this process's memory maps once they
    have been read through (hashed, written out): they stay in the page cache, which ONNX Runtime's map of
    the same file shares, and come back on the next read, but would otherwise count in this process's
    resident size a second time beside ORT's."""
    maps = {id(root.base): root.base for root in (_map_root(value) for _, value in externals)
            if isinstance(root, np.memmap) and isinstance(root.base, mmap.mmap)}
    for mapping in maps.values():
        mapping.madvise(mmap.MADV_DONTNEED)


def session_data(model: onnx.ModelProto | ModelBytes, *, consume: bool = False) -> ModelBytes:
    """What :func:`session` takes for ``model``: :func:`session_bytes` of a model, ModelBytes as they are.

    A model kept for many sessions is best kept as its ModelBytes: its large values
    are then held once, as arrays, where the model would hold them in the proto and
    each session's bytes again (``hetsched run`` keeps the user's model so).
    ``consume``: ``model`` is the caller's to change and drop: its values in ``Constant``
    nodes and subgraphs are lifted in place first, not copied with the nodes and lifted
    in the copy (a model of 2.3 GiB in Constants made ``run`` peak at 5.1x its size),
    unless the copy lifts them as it goes (:func:`~scheduler.graph.copy_taking_out_large`),
    which takes less: lifting in place grows protobuf's memory by the values.
    """
    if isinstance(model, ModelBytes):
        return model
    if consume and not lifts_as_copied(model):
        lift_large_values(model)
    data = session_bytes(model)
    return file_backed(data) if sum(value.nbytes for _, value in data.externals) >= FILE_BACKED_BYTES else data


def unpacked(model: onnx.ModelProto | ModelBytes) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """``model`` as a proto and the large values that travel beside it, by name: a proto and none, or
    ModelBytes parsed (their large initializers placeholders, :func:`~scheduler.graph.held_beside`) and
    their values, the same arrays.  What :func:`session_bytes` takes as ``model`` and ``shared``.
    """
    if isinstance(model, ModelBytes):
        return onnx.ModelProto.FromString(model), dict(model.externals)
    return model, {}


def write_model(path: str, model: onnx.ModelProto | ModelBytes, *, beside: bool | None = None) -> list[str]:
    """Write ``model`` (or what :func:`session_data` made of it) as :func:`model_bytes` has it, atomically;
    returns the paths written (``<file>.data`` first, when there is one).
    One beyond protobuf's limit, or with ``beside`` (by default: from :data:`FILE_BACKED_BYTES` of large
    values on), keeps its large values in ``<file>.data`` beside it (ONNX external data, which ONNX Runtime
    maps from the file instead of parsing and copying them: a 0.5 GiB MLP's session took 0.7 s so, 2.5 s
    from one file; at level all 1.4 s and 0.5x its size in ORT, against 2.9 s and 1.5x); any other is one
    file, written in pieces (:func:`_pieces`): protobuf serialising a model whole holds about four times its
    size at once (1 GiB of weights: a peak of 5.3 GiB)."""
    m, values = unpacked(model) if isinstance(model, ModelBytes) else _taken_out(model, IN_MEMORY)
    values = dict(values)  # in the order of their offsets
    total = sum(value.nbytes for value in values.values())
    if beside is None:
        beside = total >= FILE_BACKED_BYTES
    try:
        if not (beside and values) and not is_large(m, beside=total):
            write_bytes(path, _pieces(m, values))
            return [path]
        location = os.path.basename(path) + ".data"
        data_path = os.path.join(os.path.dirname(path), location)
        offsets = dict(zip(values, _page_offsets([value.nbytes for value in values.values()])))
        for tensor in m.graph.initializer:  # each value at a page, where ORT maps it rather than reading it in
            if tensor.name in values:
                point_to(tensor, location, offsets[tensor.name], values[tensor.name].nbytes)
        write_bytes(data_path, _padded(values.values(), offsets.values()))
        write_bytes(path, _serialised(m))
        return [data_path, path]
    finally:
        release_pages(values.items())


def _pieces(m: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> Iterator[bytes | memoryview]:
    """The bytes of ``m`` with ``values``, its large values taken out, back in it: ``m`` without its
    initializers, then each initializer in order as a graph of its own, which protobuf merges into the one
    graph (a message field given again is merged into the first, a repeated one's items appended).  A large
    value's bytes come straight from its array, never serialised.

    >>> m = helper.make_model(helper.make_graph([], "g", [], [], [helper.make_tensor("w", 1, [2], [1.0, 2.0])]))
    >>> onnx.ModelProto.FromString(b"".join(_pieces(m, {}))) == m
    True
    """
    head = _copy(m)
    del head.graph.initializer[:]
    yield head.SerializeToString()
    for tensor in m.graph.initializer:
        value = values.get(tensor.name) if tensor.data_location == TensorProto.EXTERNAL else None
        if value is None:
            yield _field(7, _field(5, tensor.SerializeToString()))
            continue
        header = _copy(tensor)
        header.ClearField("external_data")
        header.ClearField("data_location")
        raw = raw_view(value)
        start = header.SerializeToString() + _key(9) + _varint(raw.nbytes)  # raw_data, its bytes next
        initializer = _key(5) + _varint(len(start) + raw.nbytes)
        yield _key(7) + _varint(len(initializer) + len(start) + raw.nbytes) + initializer + start
        yield raw


def _key(number: int) -> bytes:
    """Protobuf's key of length-delimited field ``number``."""
    return _varint(number << 3 | 2)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _key(number) + _varint(len(payload)) + payload


def _ort_message(exc: Exception) -> str:
    """ORT's error, first line only, without what names ORT's insides or our temporary files: its
    ``[ONNXRuntimeError] : N : CODE :`` prefix, ``Load model from <file> failed:`` (a file of ours) and the
    source line and C++ signature some errors begin with.

    >>> _ort_message(RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Load model from /tmp/x/m.onnx failed:/src/a.h:46 "
    ...                           "void f(const std::string&, int) Opset 99 is under development."))
    'Opset 99 is under development.'
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*", "", text)
    text = re.sub(r"^Load model from .*? failed:\s*", "", text)
    return re.sub(r"^/\S+:\d+ [^(]*\(.*?\)\s+(const\s+)?", "", text)


def session(data: bytes | str, level: str = "none", threads: int = 1, provider: str = "CPUExecutionProvider", *,
            parallel: bool = False, spinning: str = "always", cpus: Sequence[int] = (),
            profile_prefix: str | None = None, optimized_path: str | None = None, runs: bool = True,
            label: str = "model", shared: Mapping[str, np.ndarray] | None = None,
            packed: bool = True) -> ort.InferenceSession:
    """An ORT session of ``data`` (:func:`session_bytes` or :func:`model_bytes`; a :class:`ModelBytes` brings
    its large values; or a model file's path) with :func:`scheduler.executor.session_options`, after checking
    ``level``.

    ``profile_prefix`` turns ORT's profiler on; ``optimized_path`` saves the optimised model.  ``runs=False``:
    a session made only to load or write the model, which packs no weights for its kernels (a 0.5 GiB MLP at
    level all: a peak of 1.5x its size in ORT and 3.3 s, 0.5x and 1.2 s so; the nodes written are the same,
    packing being the kernels' business, not the graph's); ``packed=False``: a session that runs so.
    ``shared``: large values by name that other sessions read too (those ``data`` holds beside it are read
    from there, not copied, and its weights are not packed: :func:`~scheduler.executor.open_session`).
    A model ORT refuses (unknown op or opset) raises ModelError naming it.
    """
    if provider not in ort.get_available_providers():
        raise HetschedError(f"execution provider {provider!r} is not available here "
                            f"(available: {', '.join(ort.get_available_providers())})")
    ort_level(level)  # an unknown level is a ModelError naming it
    externals = getattr(data, "externals", ())
    given = {name: shared[name] for name, _ in externals if name in (shared or {})}
    so = session_options("none" if level == "disable" else level, threads, parallel=parallel, spinning=spinning,
                         cpus=cpus, packed=packed and runs and not given)
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    backing = _backing_files(externals)
    if backing:  # ORT maps them from their files (the given ones too: it checks that their files are there)
        so.add_session_config_entry("session.model_external_initializers_file_folder_path", backing[0])
    elif externals:  # ORT takes them from our arrays, no serialising (it still makes its own copy: a 0.5 GiB
        # MLP's session at level none held 0.5 GiB beside them, weight packing on or off)
        kept = [(name, value) for name, value in externals if name not in given]
        so.add_external_initializers([name for name, _ in kept], [_ort_value(value) for _, value in kept])
    if optimized_path:  # the optimised model may be too large to be written whole
        so.optimized_model_filepath = optimized_path
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                    os.path.basename(optimized_path) + ".data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                    str(LARGE_TENSOR))
    try:
        if backing:
            return open_session(_pointed(data, backing[1]), so, provider, given)
        if not given:
            return open_session(data, so, provider)
        with _model_file(data, given) as path:
            return open_session(path, so, provider, given)
    except Exception as exc:  # ORT raises several types (Fail, InvalidGraph, NotImplemented...)
        raise ModelError(f"ONNX Runtime cannot load model {label!r}: {_ort_message(exc)}") from None


def _pointed(data: ModelBytes, where: Mapping[str, tuple[str, int]]) -> bytes:
    """The bytes of ``data`` with each value's placeholder pointing where ``where`` has it (file, offset)."""
    m = onnx.ModelProto.FromString(data)
    nbytes = {name: value.nbytes for name, value in data.externals}
    for tensor in m.graph.initializer:
        if tensor.name in where:
            point_to(tensor, *where[tensor.name], nbytes[tensor.name])
    return _serialised(m)


@contextlib.contextmanager
def _model_file(data: ModelBytes, given: Mapping[str, np.ndarray]) -> Iterator[str]:
    """A model file of ``data`` in a folder of its own, removed on exit (a session has read it by then), the
    placeholders of the values ``given`` to the session (:func:`~scheduler.executor.open_session`)
    pointing at an empty file: ORT wants the initializer in the model and a file where it points, and takes
    the given value in its place, without reading it.  Filled with zeros instead, each session held them
    (a 196 MB weight: 190 MB more per session)."""
    with tempfile.TemporaryDirectory(prefix="hetsched-model-") as folder:
        open(os.path.join(folder, "empty.none"), "xb").close()
        path = os.path.join(folder, "model.onnx")
        with open(path, "xb") as fh:
            fh.write(_pointed(data, {name: ("empty.none", 0) for name in given}))
        yield path


def ort_refusal(model: onnx.ModelProto | ModelBytes, level: str = "none", label: str = "model") -> str | None:
    """Why ONNX Runtime refuses to load ``model`` at optimisation ``level`` (:func:`session`'s one line), or
    None when it loads it."""
    try:
        session(session_data(model), level, runs=False, label=label)
    except ModelError as exc:
        return str(exc)
    return None


def _ort_value(value: np.ndarray) -> ort.OrtValue:
    """An OrtValue on ``value`` of the ONNX type its dtype stands for: ``ortvalue_from_numpy`` refuses the
    ``ml_dtypes`` arrays that hold bfloat16 and float8 values."""
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(value, helper.np_dtype_to_tensor_dtype(value.dtype))


def as_array(value: ort.OrtValue) -> np.ndarray:
    """A copy of a tensor of one of :data:`~scheduler.executor.BITS_TYPES` (bfloat16, float8, int4, int2) as an
    ``ml_dtypes`` array, the form ``onnx.numpy_helper`` gives these types in."""
    return _typed(ort_bits(value), value.data_type())


def _typed(values: np.ndarray, kind: str) -> np.ndarray:
    """``values`` of ORT type ``kind`` (one of :data:`~scheduler.executor.BITS_TYPES`), held as
    :func:`~scheduler.executor.bits_dtype` holds them, as the ``ml_dtypes`` array of that type."""
    elem = TensorProto.DataType.Value(kind.removeprefix("tensor(").removesuffix(")").upper())
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    return values.astype(dtype) if kind in PACKED_TYPES else values.view(dtype)  # packed: values, not bits


def typed_inputs(sess: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feeds`` with each input of one of :data:`~scheduler.executor.INPUT_BITS_TYPES` (bfloat16, float8, int4,
    int2), given as :func:`~scheduler.executor.bits_dtype` holds it, as the ``ml_dtypes`` array of its type, so
    that the value says its type.

    A value that is not so held is left alone (and refused, naming the input, when the model runs)."""
    out = dict(feeds)
    for arg in sess.get_inputs():
        value = out.get(arg.name)
        if arg.type in INPUT_BITS_TYPES and isinstance(value, np.ndarray):
            if value.dtype == bits_dtype(np.dtype(helper.tensor_dtype_to_np_dtype(INPUT_BITS_TYPES[arg.type]))):
                out[arg.name] = _typed(value, arg.type)
    return out


def cpu_identity() -> str:
    """What makes an ``all``-level model specific to this host: machine, CPU model and feature flags."""
    model, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    return f"{_host.machine()}|{model or _host.processor()}|{hashlib.sha256(flags.encode()).hexdigest()[:12]}"


def optimize_model(model: onnx.ModelProto | ModelBytes, level: str, *, cache_dir: str | None = None,
                   label: str = "model") -> onnx.ModelProto | ModelBytes:
    """The model as ONNX Runtime optimises it at ``level`` (``none``: unchanged, nodes named, unless ORT
    :func:`expands` some of its nodes), its large values main-graph initializers as ORT holds them
    (:func:`~scheduler.graph.lift_large_values`: a large ``Constant`` is no task, and what follows copies no
    value that lies in a node).

    With ``cache_dir`` the result is stored there and reused while the model (:func:`model_digest`),
    the level, the ORT version and (for ``all``) :func:`cpu_identity` match.  ModelBytes
    (:func:`session_data`: what ``hetsched run`` holds of the user's model for plain ORT) are optimised
    without a proto of them being made, and come back as they are where nothing changes them (their nodes
    are named, their values lifted); a proto gives a proto, except from a cache entry of
    :data:`FILE_BACKED_BYTES` of large values on, whose values stay in its file
    (:func:`~scheduler.graph.map_large_values`).
    """
    skeleton = unpacked(model)[0]  # ModelBytes' nodes, inputs and initializers (their values placeholders)
    plain = level == "none" and not expands(skeleton)
    if plain and isinstance(model, ModelBytes):
        return model
    out = name_nodes(model) if plain else _optimized(model, skeleton, level, cache_dir, label)
    if isinstance(out, ModelBytes):  # a cache entry's values, mapped: lifted already
        return out
    # a fresh copy after a move: the moved values' old memory stays with ``out`` (protobuf's arena)
    return _copy(out) if lift_large_values(out) else out


def expands(model: onnx.ModelProto) -> bool:
    """Whether ONNX Runtime runs some main-graph nodes of ``model`` as other nodes even with its optimisations
    off: a call of one of the model's local functions, or an ONNX op that has a function body and no kernel
    here (Mish, HardSwish, Swish in ORT 1.32), which ORT runs through its body.  ORT's profile then times nodes
    the model does not have, so the task graph must be what ORT writes at level ``none``, those nodes in place.

    >>> from onnx import helper
    >>> graph = helper.make_graph([helper.make_node("Mish", ["x"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
    ...                           "g", [], [])
    >>> expands(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    True
    >>> del graph.node[0]
    >>> expands(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    False
    """
    if model.functions:
        return True
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        return False
    kernels = _onnx_kernels()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, "")
        except onnx.defs.SchemaError:  # not an ONNX op at this opset: loading the model says so
            continue
        if not (schema.has_function or schema.has_context_dependent_function):
            continue
        if not any(lo <= schema.since_version <= hi for lo, hi in kernels.get(node.op_type, ())):
            return True
    return False


def _onnx_kernels() -> dict[str, list[tuple[int, int]]]:
    """The opset ranges of ORT's kernels for each ONNX op, on the providers available here; empty when this
    ORT does not list them (then every op with a function body counts as one ORT may expand)."""
    try:
        from onnxruntime.capi import _pybind_state
        defs = _pybind_state.get_all_opkernel_def()
    except (ImportError, AttributeError):
        return {}
    available = set(ort.get_available_providers())
    out: dict[str, list[tuple[int, int]]] = {}
    for k in defs:
        if k.domain in ("", "ai.onnx") and k.provider in available:
            out.setdefault(k.op_name, []).append(tuple(k.version_range))
    return out


UNREADABLE = (OSError, ValueError, DecodeError, ValidationError)
"""What ONNX's loader raises for a model file that is cut or not ONNX, or whose values file is gone or short:
a cache entry that raises one is made again."""


def _optimized(model: onnx.ModelProto | ModelBytes, skeleton: onnx.ModelProto, level: str, cache_dir: str | None,
               label: str) -> onnx.ModelProto | ModelBytes:
    """:func:`optimize_model`'s ORT output (at level ``none``: what ORT runs), from the cache when there.

    A new cache entry is ORT's file as ORT wrote it, its values file moved in (:func:`move_file`), and only the
    model without its values mended and written (mending the whole model and writing it took its values out
    once more: a 0.5 GiB MLP peaked at 3.3x its size, the user's model and the optimised one held beside that
    copy); the entry is then read like any other.  An entry that cannot be read is made again; a read marks it
    used (:mod:`scheduler.cache`); a cache that cannot take a new one (a full disk, a read-only folder) leaves
    the model in memory, as without a cache.  ``skeleton``: ``model``'s proto, its values placeholders when ``model`` is
    ModelBytes (:func:`unpacked`).
    """
    ort_level(level)
    key_parts = [model_digest(model), level, ort.__version__, cpu_identity() if level == "all" else ""]
    key = hashlib.sha256("|".join(key_parts).encode()).hexdigest()[:20]
    cached = os.path.join(cache_dir, f"{key}.onnx") if cache_dir else None
    if cached and os.path.isfile(cached):
        mark_used(cached)
        try:
            return _cache_entry(cached, skeleton)
        except UNREADABLE:  # a full disk, a file removed by hand or by `hetsched cache clear` meanwhile
            pass
    with tempfile.TemporaryDirectory(prefix="hetsched-opt-") as tmp:
        source, path = os.path.join(tmp, "model.onnx"), os.path.join(tmp, f"{key}.onnx")
        # ORT reads the model from a file, its values from one beside it (write_model): made from memory
        # (session_bytes), the session held them twice beside our copy while it optimised
        write_model(source, model, beside=True)
        session(source, level, label=label, optimized_path=path, runs=False)
        out = onnx.load(path, load_external_data=False)  # its values stay in ORT's file for now
        _original_inputs(out, skeleton)  # in place: a copy of the optimised model beside it and ours made 3x
        _unshadowed_constants(out.graph)
        _stable_names(out)
        out.ir_version = min(out.ir_version or IR_VERSION, IR_VERSION)
        if not cached:
            return _with_values(out, tmp)
        try:
            if os.path.isfile(path + ".data"):  # the name ORT's placeholders give, beside the entry
                move_file(path + ".data", cached + ".data")
            elif os.path.lexists(cached + ".data"):  # a damaged entry's, which names none now
                os.remove(cached + ".data")
            write_bytes(cached, out.SerializeToString())
        except OSError:  # a cache that cannot take it (a full disk, a read-only folder): as without one
            return _with_values(out, tmp if os.path.isfile(path + ".data") else cache_dir)
    return _cache_entry(cached, skeleton)


def _cache_entry(cached: str, skeleton: onnx.ModelProto) -> onnx.ModelProto | ModelBytes:
    """The optimised model of cache entry ``cached`` (:func:`_optimized`) for the model ``skeleton`` is of.

    From FILE_BACKED_BYTES of large values on, they stay in the entry's values file, which sessions map (the
    bytes are those session_data makes of the model read whole: keys stay; gpt2-small 2 s less a run).  An
    entry whose values file is gone or shorter than its model says raises one of :data:`UNREADABLE`.
    """
    out = onnx.load(cached, load_external_data=False)
    _original_inputs(out, skeleton)  # these two also mend files cached before them
    _unshadowed_constants(out.graph)
    name_nodes_in_place(out)
    folder = os.path.dirname(cached)
    values = map_large_values(out, folder, FILE_BACKED_BYTES)
    return _with_values(out, folder) if values is None else session_bytes(out, shared=values)


def _with_values(m: onnx.ModelProto, folder: str) -> onnx.ModelProto:
    """``m`` with the external values it names in ``folder`` read into it, without the mark (``data_location``
    DEFAULT) that ONNX's loader leaves on each: a model is the same whether ORT or :func:`write_model` wrote
    it, and whether its values lay beside it."""
    load_external_data_for_model(m, folder)
    for tensor in m.graph.initializer:
        if tensor.HasField("data_location") and tensor.data_location == TensorProto.DEFAULT:
            tensor.ClearField("data_location")
    return m


def _original_inputs(out: onnx.ModelProto, model: onnx.ModelProto) -> None:
    """Drop from ``out``, **in place**, the graph inputs that were initializers of ``model`` and that ORT folded
    away.

    Before IR 4 every initializer is also listed as a graph input; ORT's optimised
    model keeps those listings after constant folding drops the initializers, so
    they would turn into inputs that the user's model does not have (the ONNX test
    zoo's Caffe2 exports: one per folded ``ConstantOfShape``).
    """
    kept = set(real_inputs(model.graph)) | {i.name for i in out.graph.initializer}
    inputs = [_copy(i) for i in out.graph.input if i.name in kept]
    if len(inputs) < len(out.graph.input):
        del out.graph.input[:]
        out.graph.input.extend(inputs)


def _unshadowed_constants(graph: onnx.GraphProto) -> None:
    """Drop, **in place**, each ``Constant`` node of ``graph`` and its bodies whose output an initializer of
    the same graph defines.

    ORT 1.32 writes an ``If`` nested in a ``Loop`` body (ONNX's ``test_loop16_seq_none``) with its branch's
    ``Constant`` turned into an initializer and the node still there: a second definition, which ORT refuses
    when the model is loaded as it wrote it ("Graph must be in single static assignment (SSA) form").
    """
    held = {t.name for t in graph.initializer}
    dropped = [i for i, node in enumerate(graph.node) if node.op_type == "Constant" and node.domain in ("", "ai.onnx")
               and list(node.output) and node.output[0] in held]
    for i in reversed(dropped):
        del graph.node[i]
    for node in graph.node:
        for sub in subgraphs(node):
            _unshadowed_constants(sub)


def _stable_names(out: onnx.ModelProto) -> None:
    """Give ``out``'s nodes, **in place**, names that do not depend on ORT's process-wide name counter.

    ORT names the nodes it creates ``<base>_token_<n>`` with a counter shared by
    every session of the process, so optimising the same model twice can name a
    node differently.  Task names must hold across runs (a schedule names tasks):
    drop the counter and number repeats in graph order instead.
    """
    used: set[str] = set()
    for node in out.graph.node:
        base = re.sub(r"(_token_\d+)+$", "", node.name) or node.op_type
        name, k = base, 0
        while name in used:
            k += 1
            name = f"{base}_{k}"
        node.name = name
        used.add(name)


def observed_types(model: onnx.ModelProto | ModelBytes, feeds: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                   label: str = "model") -> dict[str, onnx.ValueInfoProto]:
    """Type and shape of every graph input and node output, from one ONNX Runtime run (:func:`observed_run`)."""
    return observed_run(model, feeds, seed, label)[0]


def observed_run(model: onnx.ModelProto | ModelBytes, feeds: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                 label: str = "model") -> tuple[dict[str, onnx.ValueInfoProto], dict[str, np.ndarray],
                                                dict[str, np.ndarray]]:
    """One ONNX Runtime run of ``model``: the type and shape of every graph input and node output, the
    graph outputs' values (what a replay must reproduce), and the inputs it ran on (``feeds``, else random
    ones from ``seed``).

    Every node output is exposed as a graph output (untyped: ORT infers it), the
    model runs once with optimisations off, and each value's dtype and shape are
    read off the result.  Works for contrib and fused ops that ONNX shape
    inference does not know.  ``model`` may be what :func:`session_data` made of one.
    """
    model, beside = unpacked(model)
    outputs = {o.name for o in model.graph.output}
    exposed = dict.fromkeys(t for node in model.graph.node for t in node.output if t and t not in outputs)
    sess = session(session_bytes(model, exposed, shared=beside), "none", label=label)
    for arg in sess.get_inputs():
        if arg.type.startswith("tensor(") and arg.type not in NUMPY_TYPES and arg.type not in INPUT_BITS_TYPES:
            raise ModelError(f"model {label!r}: input {arg.name!r} is a {arg.type}, which hetsched cannot give a "
                             "model from Python")
    for arg in sess.get_outputs():
        if arg.type.startswith("tensor(") and arg.type not in NUMPY_TYPES and arg.type not in BITS_TYPES:
            raise ModelError(f"model {label!r}: tensor {arg.name!r} is a {arg.type}, which hetsched cannot hand "
                             "over between segments yet")
    hint = "" if feeds is not None else " (on random inputs: give its input values with --inputs FILE.npz)"
    try:
        feeds = random_inputs(sess, seed, feeds)
    except ValueError as exc:
        raise ModelError(f"cannot run model {label!r}: {exc}; give its input values with --inputs FILE.npz") from None
    feeds = typed_inputs(sess, feeds)
    try:
        values = [as_array(v) if isinstance(v, ort.OrtValue) else v for v in session_call(sess)(dict(feeds))]
    except Exception as exc:
        raise ModelError(f"ONNX Runtime cannot run model {label!r}{hint}: {_ort_message(exc)}") from None
    named = list(zip([o.name for o in sess.get_outputs()], values)) + list(feeds.items())
    declared: dict[str, onnx.ValueInfoProto] | None = None  # as the model declares or ONNX infers them
    types = {}
    optional = {o.name: o.type for o in (*sess.get_outputs(), *sess.get_inputs()) if o.type.startswith("optional(")}
    for name, value in named:
        if name in optional:  # ORT gives (and takes) the element or None, not the optional that holds it
            if isinstance(value, np.ndarray):
                kind = helper.make_optional_type_proto(_value_info(name, value).type)
            else:  # empty, or not a tensor: ORT's own name of the type
                kind = _ort_type(optional[name])
            types[name] = helper.make_value_info(name, kind)
            continue
        if isinstance(value, np.ndarray) or (isinstance(value, list) and value
                                             and all(isinstance(v, np.ndarray) for v in value)):
            types[name] = _value_info(name, value)
            continue
        # an empty sequence (its element type), a map or a sequence of maps (scikit-learn's ZipMap): declared
        declared = _declared_types(model) if declared is None else declared
        if name in declared:
            types[name] = declared[name]
    # what neither the run nor the model types stays unknown, and a cut there is refused
    return types, {name: v for name, v in named if name in outputs}, feeds


def _value_info(name: str, value: np.ndarray | list[np.ndarray]) -> onnx.ValueInfoProto:
    """The type of a run's value: a tensor's dtype and shape, or a sequence of tensors (its elements' dtype;
    their shapes may differ, so none is given)."""
    first = value[0] if isinstance(value, list) else value
    elem = helper.np_dtype_to_tensor_dtype(first.dtype) if first.dtype != object else TensorProto.STRING
    if isinstance(value, list):
        return helper.make_tensor_sequence_value_info(name, elem, None)
    return helper.make_tensor_value_info(name, elem, list(value.shape))


def _ort_type(text: str) -> onnx.TypeProto:
    """ONNX's type for ONNX Runtime's name of one (``NodeArg.type``), without shapes.

    >>> t = _ort_type("optional(seq(tensor(float16)))")
    >>> t.optional_type.elem_type.sequence_type.elem_type.tensor_type.elem_type
    10
    """
    kind, _, inner = text.partition("(")
    inner = inner[:-1]
    if kind == "tensor":
        return helper.make_tensor_type_proto(TensorProto.DataType.Value(inner.upper()), None)
    if kind == "seq":
        return helper.make_sequence_type_proto(_ort_type(inner))
    if kind == "optional":
        return helper.make_optional_type_proto(_ort_type(inner))
    if kind == "map":
        key, _, value = inner.partition(",")
        return helper.make_map_type_proto(TensorProto.DataType.Value(key.strip().upper()), _ort_type(value.strip()))
    raise ModelError(f"ONNX Runtime names a type hetsched does not know: {text!r}")


def _declared_types(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """The complete sequence and map types of ``model``'s values, as its graph outputs declare them or ONNX
    shape inference gives them (only the declared ones when inference fails)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
        found = list(inferred.value_info) + list(inferred.output) + list(inferred.input)
    except Exception:  # contrib ops and the like: inference is only a fallback here
        found = []
    return {v.name: v for v in found + list(model.graph.output)
            if v.type.WhichOneof("value") != "tensor_type" and _complete(v.type)}


def _complete(t: onnx.TypeProto) -> bool:
    """Whether ``t`` is a sequence or map type down to its tensors' element types."""
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        return bool(t.tensor_type.elem_type)
    if kind == "sequence_type":
        return t.sequence_type.HasField("elem_type") and _complete(t.sequence_type.elem_type)
    if kind == "map_type":
        return bool(t.map_type.key_type) and _complete(t.map_type.value_type)
    return False
