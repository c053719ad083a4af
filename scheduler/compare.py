"""Solver-quality comparison suites: instances x platforms x solvers x time limits x seeds.

A suite (YAML, :class:`Suite`) expands into cells, one solver run each.  The main
process builds every instance's problem once (``problems/``) with its lower bounds,
then an executor runs the cells (local worker processes by default, or a Ray
cluster with ``executor: ray``; a cell's result depends only on the cell, so both
give the same results).  Every finished cell is stored under ``cells/`` at once,
so an interrupted or repeated run recomputes nothing that is done.  The outputs:
``cells.csv`` (one tidy row per instance x solver x limit x seed), ``report.md``
(per-solver geometric-mean gap, wins and time; a per-instance table), plots (gap
per solver, solve time vs graph size, makespan normalised to the bound) and a
Gantt chart of the best schedule of each instance.

Example suite::

    name: tiny
    instances:
      - {zoo: randwire, params: {nodes: 8}}
      - {random: 20, seed: 1}
    platforms: [default]
    solvers: [heft, greedy]
    time_limits: [5]
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Sequence

import pandas as pd
from pydantic import Field, model_validator
from tqdm import tqdm

from .bounds import Bound, all_bounds
from .compare_report import suite_report
from .config import SolverCatalog, SolverSpec
from .errors import ConfigError, HetschedError
from .fileio import read_json, read_yaml, write_json, write_text
from .generate import random_problem
from .importers import import_dnn_partitioning
from .inputs import load_inputs
from .pipeline import GetSolver, build_problem, safe_name
from .problem import Problem, read_problem, write_problem
from .schedule import schedule_to_dict, validate
from .schema import FileModel, parse


class Instance(FileModel):
    """One instance: a zoo model, an ONNX file, a problem file, an imported workload, or a random DAG."""

    label: str | None = None
    zoo: str | None = None
    onnx: str | None = None
    params: dict[str, int | float | str] = Field(default_factory=dict)
    input_shapes: dict[str, list[int]] = Field(default_factory=dict)
    inputs: str | None = None  # an .npz of the ONNX model's input values (scheduler.inputs)
    problem: str | None = None
    dnn_partitioning: str | None = None
    accelerators: int | None = None
    cpus: int | None = None
    random: int | None = Field(default=None, ge=1)
    seed: int = 0
    costs: Literal["model", "profile"] = "model"

    @model_validator(mode="after")
    def _one_source(self) -> "Instance":
        given = [k for k in ("zoo", "onnx", "problem", "dnn_partitioning", "random") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of zoo, onnx, problem, dnn_partitioning, random")
        if self.inputs is not None and self.zoo is None and self.onnx is None:
            raise ValueError("'inputs' applies to zoo and onnx instances only")
        return self

    @property
    def source(self) -> str:
        return next(k for k in ("zoo", "onnx", "problem", "dnn_partitioning", "random") if getattr(self, k) is not None)

    @property
    def platform_bound(self) -> bool:
        """Whether the instance carries its own devices (problem files and imported workloads do)."""
        return self.source in ("problem", "dnn_partitioning")

    def name(self) -> str:
        if self.label:
            return self.label
        if self.source == "random":
            return f"random{self.random}-s{self.seed}"
        base = str(getattr(self, self.source))
        base = os.path.splitext(os.path.basename(base))[0] if self.source != "zoo" else base
        extra = "".join(f"-{k}{v}" for k, v in sorted(self.params.items()))
        return base + extra


class Suite(FileModel):
    """A comparison suite (see the module docstring)."""

    name: str
    instances: list[Instance] = Field(min_length=1)
    platforms: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    solvers: list[SolverSpec] = Field(min_length=1)
    time_limits: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default_factory=lambda: [10.0],
                                                                                   min_length=1)
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(default_factory=lambda: [0], min_length=1)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    executor: Literal["local", "ray"] = "local"
    lp_bounds: bool = True
    gantt: Literal["best", "none"] = "best"
    output_dir: str = "results"


def load_suite(path: str, solvers: SolverCatalog | None = None) -> Suite:
    """Read and validate a suite YAML; errors name the file and the key."""
    if not os.path.isfile(path):
        raise ConfigError(f"suite file {path!r} does not exist")
    data = read_yaml(path, ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite must be a mapping")
    if isinstance(data.get("solvers"), list):
        data["solvers"] = [{"name": s} if isinstance(s, str) else s for s in data["solvers"]]
    base = os.path.dirname(os.path.abspath(path))
    instances = data.get("instances")
    for inst in instances if isinstance(instances, list) else []:  # file paths are relative to the suite file
        for key in ("onnx", "inputs", "problem", "dnn_partitioning"):
            if isinstance(inst, dict) and isinstance(inst.get(key), str):
                inst[key] = os.path.normpath(os.path.join(base, inst[key]))
    context = {} if solvers is None else {"check_solver": solvers.check, "solver_names": solvers.names}
    return parse(Suite, data, path, ConfigError, context=context)


# ------------------------------------------------------------------------------ cells

@dataclass(frozen=True)
class Cell:
    """One solver run of a suite; ``key`` names its stored result."""

    instance: str
    platform: str
    problem_file: str
    solver: str
    options: str  # JSON of the solver options
    time_limit: float
    seed: int

    @property
    def key(self) -> str:
        text = json.dumps([self.instance, self.platform, self.solver, self.options, self.time_limit, self.seed])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _problem_for(inst: Instance, platform: str) -> Problem:
    feeds = load_inputs(inst.inputs) if inst.inputs else None
    if inst.source == "zoo":
        return build_problem(inst.zoo, inst.params, platform, inst.input_shapes, costs=inst.costs, inputs=feeds)
    if inst.source == "onnx":
        return build_problem(inst.onnx, None, platform, inst.input_shapes, costs=inst.costs, inputs=feeds)
    if inst.source == "problem":
        return read_problem(inst.problem)
    if inst.source == "dnn_partitioning":
        return import_dnn_partitioning(inst.dnn_partitioning, accelerators=inst.accelerators, cpus=inst.cpus)
    return random_problem(inst.random, seed=inst.seed, platform=platform)


def run_cell(cell: Cell, get_solver: GetSolver) -> dict[str, Any]:
    """Solve one cell in this process (the unit of work executors ship around)."""
    problem = read_problem(cell.problem_file)
    started = time.perf_counter()
    try:
        solve = get_solver(cell.solver, **json.loads(cell.options))
        sched = solve(problem, time_limit=cell.time_limit, seed=cell.seed)
    except HetschedError as exc:  # e.g. an option naming a device this platform lacks: a row, not a crash
        return {"key": cell.key, "schedule": None, "valid": False, "error": str(exc),
                "wall_s": time.perf_counter() - started}
    wall = time.perf_counter() - started
    errors = validate(problem, sched)
    return {"key": cell.key, "schedule": schedule_to_dict(sched), "valid": not errors,
            "error": f"invalid schedule: {errors[0]}" if errors else "", "wall_s": wall}


CellFn = Callable[[Cell], dict[str, Any]]
Executor = Callable[[CellFn, Sequence[Cell], Callable[[Cell, dict[str, Any]], None]], None]


def local_executor(workers: int) -> Executor:
    """Run cells in ``workers`` local processes (in this process when 1)."""
    def run(fn: CellFn, cells: Sequence[Cell], done: Callable[[Cell, dict[str, Any]], None]) -> None:
        if workers == 1:
            for c in cells:
                done(c, fn(c))
            return
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(fn, c): c for c in cells}
            for fut in cf.as_completed(futures):
                done(futures[fut], fut.result())
    return run


def _apply(fn: CellFn, cell: Cell) -> dict[str, Any]:
    """``fn(cell)``: a plain function that Ray can ship (it cannot wrap a functools.partial)."""
    return fn(cell)


def ray_executor(address: str | None = None) -> Executor:
    """Run cells as Ray tasks (``pip install ray``); the same function as local workers, so the same results."""
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError("executor 'ray' needs Ray: pip install 'hetsched[ray]'") from None

    def run(fn: CellFn, cells: Sequence[Cell], done: Callable[[Cell, dict[str, Any]], None]) -> None:
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True)
        remote = ray.remote(_apply)
        pending = {remote.remote(fn, c): c for c in cells}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done(pending.pop(ref), ray.get(ref))
    return run


# ------------------------------------------------------------------------------ running

@dataclass(frozen=True)
class SuiteResult:
    """Where a suite wrote its outputs, its table, and how many cells were reused."""

    directory: str
    table: pd.DataFrame
    computed: int
    reused: int


def expand(suite: Suite, folder: str) -> tuple[list[Cell], dict[str, Problem], dict[str, Bound]]:
    """Build every (instance, platform) problem once, with its bounds, and list the cells."""
    problems: dict[str, Problem] = {}
    bounds: dict[str, Bound] = {}
    cells = []
    for inst in suite.instances:
        for platform in (["-"] if inst.platform_bound else suite.platforms):
            label = f"{inst.name()}@{platform}" if platform != "-" else inst.name()
            if label in problems:
                raise ConfigError(f"suite {suite.name!r}: instance {label!r} appears twice (give a label)")
            path = os.path.join(folder, "problems", f"{safe_name(label)}.json")
            bpath = path.removesuffix(".json") + ".bounds.json"
            if os.path.isfile(path) and os.path.isfile(bpath):
                problem = read_problem(path)
                best = read_json(bpath, "bounds")
                bound = Bound(best["name"], best["value"])
            else:
                problem = _problem_for(inst, platform)
                bound = max(all_bounds(problem, lp=suite.lp_bounds), key=lambda b: b.value)
                write_problem(problem, path)
                write_json(bpath, {"name": bound.name, "value": bound.value})
            problems[label], bounds[label] = problem, bound
            for spec in suite.solvers:
                for limit in suite.time_limits:
                    for seed in suite.seeds:
                        cells.append(Cell(label, platform, path, spec.name, json.dumps(spec.options, sort_keys=True),
                                          limit, seed))
    return cells, problems, bounds


def run_suite(suite: Suite, get_solver: GetSolver, *, progress: bool = True,
              executor: Executor | None = None) -> SuiteResult:
    """Run (or resume) a suite and write its CSV, report, plots and Gantt charts.

    ``get_solver`` is the solver registry's lookup (passed in: the core does not
    import solvers); it must be a module-level function so workers can receive it.
    """
    folder = os.path.join(suite.output_dir, safe_name(suite.name))
    cells, problems, bounds = expand(suite, folder)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for c in cells:
        path = os.path.join(folder, "cells", f"{c.key}.json")
        if os.path.isfile(path):
            results[c.key] = read_json(path, "cell")
        else:
            todo.append(c)
    bar = tqdm(total=len(todo), desc=f"suite {suite.name}", unit="cell", disable=not progress)

    def done(cell: Cell, result: dict[str, Any]) -> None:
        write_json(os.path.join(folder, "cells", f"{cell.key}.json"), result)
        results[cell.key] = result
        bar.set_postfix_str(f"{cell.instance} {cell.solver}")
        bar.update()

    if todo:
        run = executor or (ray_executor() if suite.executor == "ray" else local_executor(suite.workers))
        run(functools.partial(run_cell, get_solver=get_solver), todo, done)
    bar.close()
    table = _table(cells, problems, bounds, results)
    write_text(os.path.join(folder, "cells.csv"), table.to_csv(index=False))
    suite_report(suite, folder, table, problems, results, cells)
    return SuiteResult(folder, table, len(todo), len(cells) - len(todo))


def _table(cells: Sequence[Cell], problems: dict[str, Problem], bounds: dict[str, Bound],
           results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    # a sound bound of any cell (e.g. an exact solver's proof) bounds its instance for every solver
    best = {name: b.value for name, b in bounds.items()}
    for c in cells:
        sched = results[c.key]["schedule"]
        if sched and sched.get("lower_bound") is not None and sched.get("objective", "latency") == "latency":
            best[c.instance] = max(best[c.instance], sched["lower_bound"])
    rows = []
    for c in cells:
        r = results[c.key]
        s = r["schedule"] or {"status": "error", "makespan": None, "lower_bound": None, "solve_seconds": r["wall_s"]}
        p = problems[c.instance]
        bound = best[c.instance]
        rows.append({
            "instance": c.instance, "tasks": len(p.tasks), "edges": len(p.graph.edges), "devices": len(p.devices),
            "solver": c.solver + (f" {c.options}" if c.options != "{}" else ""), "time_limit": c.time_limit,
            "seed": c.seed, "status": s["status"], "makespan": s["makespan"], "lower_bound": bound,
            "gap": (s["makespan"] / bound - 1) if s["makespan"] is not None and bound > 0 else None,
            "solve_s": s["solve_seconds"], "valid": r["valid"], "error": r.get("error", ""),
        })
    return pd.DataFrame(rows)
