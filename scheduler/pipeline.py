"""The main job as plain functions: resolve a model, build its problem, run solvers, write a run.

The solver registry is passed in (``get_solver``), so this core module never imports
the ``solvers`` package; the CLI wires the two together.

Example
-------
>>> from solvers import get_solver
>>> p = build_problem("mlp", {"layers": "2"})
>>> [s.solver for s in run_solvers(p, ["greedy"], get_solver, time_limit=5)]
['greedy']
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import onnx
import pandas as pd
import yaml
from tqdm import tqdm

from . import zoo
from .config import RunConfig, SolverSpec
from .errors import HetschedError, ModelError
from .fileio import write_text
from .graph import load_model, task_graph_from_onnx
from .platform import Platform, load_platform
from .problem import Problem, write_problem
from .schedule import Schedule, validate, write_schedule

GetSolver = Callable[..., Callable[..., Schedule]]


def resolve_model(spec: str, params: Mapping[str, Any] | None = None) -> tuple[onnx.ModelProto, str]:
    """A zoo model name (built with ``params``) or a path to an .onnx file; returns (model, label)."""
    names = [m.name for m in zoo.list_models()]
    if spec in names:
        return zoo.build(spec, **dict(params or {})), spec
    if params:
        raise ModelError(f"model parameters apply to zoo models only, not to {spec!r}")
    if os.path.isfile(spec):
        return load_model(spec), os.path.splitext(os.path.basename(spec))[0]
    raise ModelError(f"model {spec!r} is neither a zoo model ({', '.join(names)}) nor an existing .onnx file")


def build_problem(spec: str, params: Mapping[str, Any] | None = None,
                  platform: str | Mapping[str, Any] | Platform = "default",
                  input_shapes: Mapping[str, Sequence[int]] | None = None) -> Problem:
    """The problem of a model on a platform with modelled costs."""
    model, label = resolve_model(spec, params)
    graph = task_graph_from_onnx(model, input_shapes=input_shapes, name=label)
    return Problem.from_graph(graph, load_platform(platform), name=label)


def run_solvers(problem: Problem, solvers: Sequence[str | SolverSpec], get_solver: GetSolver, *,
                time_limit: float | None = None, seed: int = 0, progress: bool = False) -> list[Schedule]:
    """Run each solver on ``problem``; every returned schedule is validated again here."""
    specs = [SolverSpec(name=s) if isinstance(s, str) else s for s in solvers]
    out = []
    bar = tqdm(specs, desc="solving", unit="solver", disable=not progress, leave=False)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        solve = get_solver(spec.name, **spec.options)
        sched = solve(problem, time_limit=spec.time_limit or time_limit, seed=seed)
        errors = validate(problem, sched)
        if errors:
            raise HetschedError(f"solver {spec.name!r} returned an invalid schedule: {errors[0]}")
        out.append(sched)
    return out


def summary_table(schedules: Sequence[Schedule]) -> pd.DataFrame:
    """One row per solver: makespan, bound, gap, status, solve time."""
    rows = [{
        "solver": s.solver,
        "status": s.status,
        "makespan_s": s.makespan,
        "lower_bound_s": s.lower_bound,
        "gap": s.gap,
        "solve_s": s.solve_seconds,
        "note": s.info.get("reason", ""),
    } for s in schedules]
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> str:
    """The summary table for a terminal: times in ms, gap in %."""
    shown = table.copy()
    for col in ("makespan_s", "lower_bound_s"):
        shown[col.replace("_s", "_ms")] = shown.pop(col).map(lambda v: "-" if pd.isna(v) else f"{v * 1e3:.4f}")
    shown["gap"] = table["gap"].map(lambda v: "-" if pd.isna(v) else f"{v * 100:.1f}%")
    shown["solve_s"] = table["solve_s"].map(lambda v: f"{v:.3f}")
    cols = ["solver", "status", "makespan_ms", "lower_bound_ms", "gap", "solve_s"]
    if shown["note"].astype(bool).any():
        cols.append("note")
    return shown[cols].to_string(index=False)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@dataclass(frozen=True)
class RunResult:
    """Where a run was written and what it found."""

    directory: str
    problem: Problem
    schedules: tuple[Schedule, ...]
    table: pd.DataFrame


def execute_run(config: RunConfig, get_solver: GetSolver, *, progress: bool = True) -> RunResult:
    """Build the problem, run every solver, and write ``<output_dir>/<run-id>/`` atomically.

    The run is written to a hidden temporary folder that is renamed into place only
    when complete, so a failed run leaves nothing behind and no run overwrites another.
    """
    problem = build_problem(config.model.zoo or config.model.path or "", config.model.params,
                            config.platform, config.model.input_shapes)
    schedules = run_solvers(problem, config.solvers, get_solver, time_limit=config.time_limit,
                            seed=config.seed, progress=progress)
    table = summary_table(schedules)
    run_id = f"{_safe(config.name)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    final = os.path.join(config.output_dir, run_id)
    tmp = os.path.join(config.output_dir, f".tmp-{run_id}")
    os.makedirs(tmp)
    try:
        write_text(os.path.join(tmp, "config.yaml"), yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        write_problem(problem, os.path.join(tmp, "problem.json"))
        for s in schedules:
            write_schedule(s, os.path.join(tmp, "schedules", f"{_safe(s.solver)}.json"))
        write_text(os.path.join(tmp, "summary.csv"), table.to_csv(index=False))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunResult(final, problem, tuple(schedules), table)
