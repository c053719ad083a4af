"""Stored profiles: a CSV table (one row per task and device) and JSON metadata per (model, platform).

A stored profile is reused when the model bytes, the real devices' settings, the
ONNX Runtime version, the host's core count and the repeat count all match, and
while one run of the whole model still takes what it took when profiled (within
:data:`~scheduler.profiling.DRIFT_LIMIT`); :func:`get_profile` measures and stores
a new one otherwise.  A damaged store is said on stderr and measured again.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from typing import Callable, Collection

import onnx
import onnxruntime as ort
import pandas as pd

from .errors import HetschedError
from .fileio import read_json, write_json, write_text
from .graph import TaskGraph
from .inputs import Feeds, inputs_digest
from .optimize import ModelBytes, model_digest, session_data
from .platform import Platform
from .problem import ExecutorRecord
from .profile_runs import check_change, profile_model
from .profiling import PROFILE_FORMAT, LinkFit, NodeStat, Profile, drifted, plan_profiling, platform_key
from .schema import Count, FileModel, Finite, Text, exactly, parse


_CSV_COLUMNS = ["task", "device", "median_s", "min_s", "max_s", "cv", "runs", "note"]


def profile_label(name: str, feeds: Feeds | None = None) -> str:
    """The name a model's profiles are stored under: a profile on the user's inputs apart from one on
    random inputs (:func:`scheduler.inputs.inputs_digest`)."""
    return f"{name}-inputs-{inputs_digest(feeds)}" if feeds else name


def profile_paths(folder: str, label: str, model_sha256: str, key: str) -> tuple[str, str]:
    """CSV and JSON paths of a stored profile."""
    stem = os.path.join(folder, f"{label}-{model_sha256[:12]}-{key[:8]}")
    return f"{stem}.csv", f"{stem}.json"


def save_profile(profile: Profile, folder: str, label: str) -> tuple[str, str]:
    """Write the profile's table (CSV) and metadata (JSON) atomically; returns their paths."""
    csv_path, json_path = profile_paths(folder, label, profile.model_sha256, profile.platform_key)
    table = pd.DataFrame([asdict(n) for n in profile.nodes], columns=_CSV_COLUMNS)
    write_text(csv_path, table.to_csv(index=False))
    meta = {k: v for k, v in asdict(profile).items() if k != "nodes"}
    meta["links"] = [{**asdict(l), "points": [list(p) for p in l.points]} for l in profile.links]
    meta["executor"] = None if profile.executor is None else profile.executor.to_dict()
    meta["format"] = PROFILE_FORMAT
    meta["table"] = os.path.basename(csv_path)
    write_json(json_path, meta)
    return csv_path, json_path


class _NodeRecord(FileModel):
    """A row of the CSV table."""

    task: Text
    device: Text
    median_s: Finite
    min_s: Finite
    max_s: Finite
    cv: Finite
    runs: Count
    note: Text


class _LinkRecord(FileModel):
    src: Text
    dst: Text
    latency: Finite
    bandwidth: Finite | None
    boundary_overhead_s: Finite
    points: list[tuple[Count, Finite]]


class _ProfileRecord(FileModel):
    """The JSON metadata (what :func:`save_profile` writes)."""

    format: exactly(PROFILE_FORMAT)  # type: ignore[valid-type]
    table: Text
    model_sha256: Text
    platform_key: Text
    platform_name: Text
    ort_version: Text
    repeats: Count
    warmup: Count
    date: Text
    host_cores: Count
    runs: Count
    links: list[_LinkRecord]
    whole_run_s: dict[Text, Finite]
    traced_run_s: dict[Text, Finite]
    executor: ExecutorRecord | None = None
    drift: Finite | None = None
    tracer_s: dict[Text, tuple[Finite, Finite]] = {}  # absent from profiles stored before it
    unpacked: list[Text] = []  # absent from profiles stored before the choice: all traced packed
    node_run_s: dict[Text, Finite] = {}  # absent from profiles stored before the check's timing was averaged in


def load_profile(folder: str, label: str, model_sha256: str, platform: Platform, repeats: int,
                 timed: Collection[tuple[str, str]]) -> Profile | None:
    """The stored profile when everything it depends on matches, else None (a damaged store is said on stderr).
    ``timed``: every (task, device) its table must hold, no more (a table cut at a row's end parses)."""
    csv_path, json_path = profile_paths(folder, label, model_sha256, platform_key(platform))
    if not (os.path.isfile(csv_path) and os.path.isfile(json_path)):
        return None
    try:
        data = read_json(json_path, "profile metadata")
        if isinstance(data, dict) and data.get("format") != PROFILE_FORMAT:
            return None  # another version's store
        meta = parse(_ProfileRecord, data, json_path, HetschedError)
        if (meta.model_sha256, meta.platform_key, meta.ort_version, meta.host_cores, meta.repeats) != (
                model_sha256, platform_key(platform), ort.__version__, os.cpu_count() or 1, repeats):
            return None
        table = pd.read_csv(csv_path, keep_default_na=False, dtype={"task": str, "device": str, "note": str})
        rows = parse(list[_NodeRecord], table.to_dict("records"), csv_path, HetschedError)
        if {(r.task, r.device) for r in rows} != set(timed):
            raise HetschedError(f"its table has {len(rows)} node timings, not the {len(set(timed))} of this model "
                                "and platform")
    except (HetschedError, ValueError, pd.errors.ParserError) as exc:
        # a damaged store is not the user's input: say so and measure again (the new profile replaces it)
        print(f"hetsched: stored profile is damaged ({exc}); measuring again", file=sys.stderr)
        return None
    ex = meta.executor
    return Profile(meta.model_sha256, meta.platform_key, meta.platform_name, meta.ort_version, meta.repeats,
                   meta.warmup, meta.date, meta.host_cores, meta.runs, tuple(NodeStat(**dict(r)) for r in rows),
                   tuple(LinkFit(**{**dict(l), "points": tuple(l.points)}) for l in meta.links),
                   dict(meta.whole_run_s), dict(meta.traced_run_s),
                   None if ex is None else ex.costs(), meta.drift, dict(meta.tracer_s), tuple(meta.unpacked),
                   dict(meta.node_run_s))


def get_profile(model: onnx.ModelProto | ModelBytes, graph: TaskGraph, platform: Platform, *,
                folder: str = "profiles", label: str | None = None, repeats: int = 20, warmup: int = 3,
                force: bool = False,
                progress: Callable[[str, int], Callable[[], None]] | None = None,
                feeds: Feeds | None = None) -> tuple[Profile, bool]:
    """A stored profile when it matches and still holds (``reused=True``), else a fresh one that is then stored.

    ``feeds``: the user's input values, which every profiling run uses; a profile on them is stored
    apart from one on random inputs (:func:`scheduler.inputs.inputs_digest`).

    A stored profile is checked by one run of the whole model (:func:`~scheduler.profile_runs.check_change`):
    when the host runs it more than :data:`DRIFT_LIMIT` faster or slower than when
    it was profiled (another load, another machine state), every cost in it is off
    alike, and it is measured again.
    """
    label = profile_label(label or graph.name, feeds)
    model = session_data(model)  # its values taken out once for the digest, the check and every profiling session
    sha = model_digest(model)
    if not force:
        plan = plan_profiling(graph, platform)
        stored = load_profile(folder, label, sha, platform, repeats, timed={
            (task.name, dev) for run in plan.node_runs for dev in run.devices for task in graph.tasks})
        if stored is not None:
            change = check_change(model, stored, plan, repeats=repeats, warmup=warmup, progress=progress, feeds=feeds)
            if not drifted(stored, change):
                return stored, True
            print(f"hetsched: the whole model now runs {change:+.0%} against the stored profile of {stored.date} "
                  "(the host's load changed since); measuring again", file=sys.stderr)
    prof = profile_model(model, graph, platform, repeats=repeats, warmup=warmup, progress=progress,
                         feeds=feeds, model_sha256=sha)
    if drifted(prof):  # the host's load changed while profiling
        print(f"hetsched: the whole model's run time changed by {prof.drift:+.0%} between the start and the end of "
              "profiling (the host's load changed); measuring once more", file=sys.stderr)
        again = profile_model(model, graph, platform, repeats=repeats, warmup=warmup, progress=progress,
                              feeds=feeds, model_sha256=sha)
        prof = min(prof, again, key=lambda p: abs(p.drift or 0.0))
        if drifted(prof):
            print(f"hetsched: warning: the profile still drifted by {prof.drift:+.0%}; its predictions are off "
                  "by as much (profile again on a quieter host with --force)", file=sys.stderr)
    save_profile(prof, folder, label)
    return prof, False
