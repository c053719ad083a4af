"""Deployment artefacts: what a user runs in production, without hetsched.

``export_placement`` writes a placement's segments (one ``.onnx`` each), and
``export_plain`` the whole model with the plain ONNX Runtime settings that
measured fastest.  Either way the folder also holds ``manifest.json``
(``hetsched-deploy/1``: the sessions' settings, boundary tensors, run order and
input shapes) and ``runner.py``, a copy of :mod:`scheduler.executor` that needs
only numpy and onnxruntime::

    python deploy/runner.py --inputs in.npz --output out.npz

or, from Python, ``Deployment("deploy").run(feeds)`` after importing ``runner``.
When hetsched ran on the user's inputs (``--inputs``), the folder keeps them as
``inputs.npz``, the runner's inputs when it is given none (random ones of the
declared shapes could not feed a model whose sizes the declaration leaves open).
The manifest's ``files`` lists every other file of the folder with its size (a
model's large values are in ``<file>.onnx.data`` beside it), so that the runner
names a file a copy left out or cut short instead of failing in ONNX Runtime.
Segments cut from a model optimised at level ``all`` hold ORT's CPU-specific
layout ops (NCHWc): the manifest marks them ``host_specific`` (run them on this
CPU type only).
"""

from __future__ import annotations

import io
import os
from typing import Any, Iterator, Mapping

import numpy as np
import onnx
from onnx import helper

from . import __version__, executor
from .fileio import write_bytes, write_json, write_text
from .graph import real_inputs
from .inputs import Feeds, shapes_of
from .optimize import ModelBytes, session_data, unpacked, write_model
from .problem import Problem
from .replay import (plain_configs, prepare_replay, reference_run, runner_parts, segment_data,
                     session_settings, shared_values)
from .segments import SegmentModel
from .schedule import Schedule


def _common(model: onnx.ModelProto, kind: str, level: str) -> dict[str, Any]:
    """The manifest fields of every kind; input specs as the runner's random inputs use them
    (:func:`scheduler.executor.concrete_shape`, as :func:`scheduler.executor.random_inputs`)."""
    inputs = list(real_inputs(model.graph).values())
    return {"format": executor.DEPLOY_FORMAT, "kind": kind, "created_by": f"hetsched {__version__}",
            "graph_optimization": level, "host_specific": level == "all",
            "inputs": [i.name for i in inputs],
            "input_specs": {i.name: [executor.concrete_shape([d.dim_value if d.HasField("dim_value") else None
                                                              for d in i.type.tensor_type.shape.dim]),
                                     str(executor.bits_dtype(np.dtype(helper.tensor_dtype_to_np_dtype(
                                         i.type.tensor_type.elem_type))))]
                            for i in inputs if i.type.HasField("tensor_type")},
            "outputs": [o.name for o in model.graph.output]}


def _storable(value: np.ndarray) -> np.ndarray:
    """An input as ``inputs.npz`` keeps it: strings as numpy's, ``ml_dtypes`` arrays as
    :func:`scheduler.executor.held` holds them."""
    return value.astype(str) if value.dtype == object else executor.held(value)


def _npy(value: np.ndarray, chunk: int = 16 << 20) -> Iterator[bytes | memoryview]:
    """``value`` as the bytes of a ``.npy`` file, in pieces of ``chunk`` bytes (``np.save`` into a buffer held
    a large value twice).

    >>> value = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> np.array_equal(np.load(io.BytesIO(b"".join(bytes(b) for b in _npy(value, 5)))), value)
    True
    """
    value = np.ascontiguousarray(value)
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(value))
    yield head.getvalue()
    flat = memoryview(value.reshape(-1).view(np.uint8))
    for start in range(0, len(flat), chunk):
        yield flat[start:start + chunk]


def _finish(folder: str, manifest: Mapping[str, Any], written: list[str], feeds: Feeds | None = None) -> str:
    """Write the runner, the user's ``feeds`` (if any) as ``inputs.npz`` (strings as numpy's, no pickles),
    then the manifest, which lists them with the ``written`` model files and their sizes."""
    written = [*written, os.path.join(folder, "runner.py")]
    with open(executor.__file__, encoding="utf-8") as fh:
        write_text(written[-1], fh.read())
    if feeds:
        stored = {k: _storable(v) for k, v in executor.flat(feeds).items()}
        buffer = io.BytesIO()
        np.savez(buffer, **stored)
        written.append(os.path.join(folder, executor.INPUTS_FILE))
        write_bytes(written[-1], buffer.getvalue())
        manifest = {**manifest, "inputs_file": executor.INPUTS_FILE,
                    "input_specs": {k: [shape, str(stored[k].dtype)] for k, shape in shapes_of(feeds).items()}}
    manifest = {**manifest, "files": {os.path.relpath(f, folder): os.path.getsize(f) for f in written}}
    path = os.path.join(folder, "manifest.json")
    write_json(path, manifest)
    return path


def export_segments(parts: list[SegmentModel], problem: Problem, folder: str, model: onnx.ModelProto,
                    level: str = "none", feeds: Feeds | None = None) -> str:
    """Write built segments as ``segNNN_<device>.onnx`` + manifest + runner, and each value that several read as
    ``sharedNNN.npy`` (:func:`~scheduler.replay.shared_values`); returns the manifest's path.

    ``model`` is the model the segments were cut from (for its graph inputs and
    outputs), ``level`` the optimisation it went through.  Segments of simulated
    devices run on the CPU provider (their values only) and are marked so.  A segment
    prepared for a session is written from its :attr:`~scheduler.segments.SegmentModel.data`.  ``feeds``, the
    user's inputs, are kept beside them (:func:`_finish`).
    """
    datas = segment_data(parts)
    values = shared_values(datas)
    shared = {name: f"shared{k:03d}.npy" for k, name in enumerate(values)}
    entries, written = [], []
    for p, data, rp, settings in zip(parts, datas, runner_parts(problem, parts), session_settings(problem, parts)):
        name = f"seg{p.segment.index:03d}_{p.segment.device}.onnx"
        written += write_model(os.path.join(folder, name), data)
        entries.append({"segment": p.segment.index, "file": name, "device": p.segment.device,
                        "simulated": problem.platform.device[p.segment.device].simulated,
                        "inputs": list(p.inputs), "outputs": list(p.outputs),
                        "after": list(rp.after), "cpus": list(rp.cpus), "scheduled_start_s": p.segment.start,
                        "session": {**settings, "graph_optimization": "none", "parallel": False},
                        "shared": [n for n, _ in data.externals if n in shared]})
    for value_name, file in shared.items():  # one copy of each value that segments share, for all of them
        written.append(os.path.join(folder, file))
        write_bytes(written[-1], _npy(values[value_name]))
    manifest = _common(model, "segments", level)
    manifest.update({"model": problem.label, "platform": problem.platform.name, "segments": entries,
                     "shared": shared})
    return _finish(folder, manifest, written, feeds)


def export_placement(model: onnx.ModelProto | ModelBytes, problem: Problem, schedule: Schedule, folder: str,
                     level: str = "none", feeds: Feeds | None = None) -> str:
    """Cut ``model`` (or what :func:`~scheduler.optimize.session_data` made of it) by ``schedule`` and export
    the segments (:func:`export_segments`), their boundaries typed by a run on ``feeds`` (the user's inputs,
    whose sizes a sequence or a data-dependent shape carries into the cuts), else on random inputs."""
    model = session_data(model)  # a proto's large values taken out once, for the reference run and the segments
    reference = reference_run(model, label=problem.label, feeds=feeds)
    parts = list(prepare_replay(model, problem, schedule, reference).parts)
    return export_segments(parts, problem, folder, unpacked(model)[0], level, feeds)


def export_plain(original: onnx.ModelProto | ModelBytes, config: str, folder: str,
                 feeds: Feeds | None = None) -> str:
    """Write the user's model as ``model.onnx`` with the plain ORT configuration ``config``.

    ``config`` is a label of :func:`scheduler.replay.plain_configs` (the fastest
    measured); ORT optimises at load time, so the file stays portable.
    """
    c = plain_configs()[config]
    written = write_model(os.path.join(folder, "model.onnx"), original)
    manifest = _common(unpacked(original)[0], "plain", "none")
    manifest.update({"model": "model.onnx", "configuration": config,
                     "session": {"threads": c.threads, "graph_optimization": c.level, "parallel": c.parallel,
                                 "packed": c.packed, "spinning": "always",
                                 "execution_provider": "CPUExecutionProvider"}})
    return _finish(folder, manifest, written, feeds)
