"""Run configuration (YAML), validated with pydantic at the boundary.

Every error names the file and the key: ``configs/x.yaml: solvers[1].name: unknown
solver 'foo'; known: single, greedy, heft``.

Example
-------
>>> cfg = config_from_dict({"model": {"zoo": "mlp"}, "solvers": ["greedy"]})
>>> cfg.solvers[0].name
'greedy'
"""

from __future__ import annotations

import os
from importlib import resources as ilr
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .batch import MAX_BATCH
from .errors import ConfigError, HetschedError
from .fileio import load_yaml
from .levels import Level
from .schema import FileModel, parse

DEFAULT_CONFIG = "default.yaml"


@dataclass(frozen=True)
class SolverCatalog:
    """The solver registry as the core sees it, injected by the caller (the core never imports solvers).

    ``names``: registered solvers; ``check(name, options)`` raises on a bad name or
    option; ``get(name, **options)`` returns the solve function; ``options(name)``
    lists the solver's own options; ``objectives(name)`` what it optimises
    (``solvers: all`` leaves throughput-only solvers out of a latency run).
    """

    names: tuple[str, ...]
    check: Callable[[str, dict[str, Any]], None]
    get: Callable[..., Callable[..., Any]]
    options: Callable[[str], tuple[str, ...]]
    objectives: Callable[[str], tuple[str, ...]] = lambda name: ("latency", "throughput")


class ModelSpec(FileModel):
    """Which model: a zoo name with parameters, or an ONNX file with fixed input shapes; optionally the
    values of its inputs (an .npz, :mod:`scheduler.inputs`) that every run takes instead of random ones."""

    zoo: str | None = None
    path: str | None = None
    params: dict[str, int | float | str] = Field(default_factory=dict)
    input_shapes: dict[str, list[int]] = Field(default_factory=dict)
    inputs: str | None = None
    batch: int = Field(default=1, ge=1, le=MAX_BATCH)  # independent inferences: copies of the model side by side
    clone: bool = False  # copy cheap shared nodes once per reader (scheduler.clone)

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        if (self.zoo is None) == (self.path is None):
            raise ValueError("give exactly one of 'zoo' (a zoo model name) or 'path' (an .onnx file)")
        if self.path is not None and self.params:
            raise ValueError("'params' applies to zoo models only")
        return self


class SolverSpec(FileModel):
    """One solver run: registry name, options, and optionally its own time limit."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    time_limit: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _known(self, info: ValidationInfo) -> "SolverSpec":
        check = (info.context or {}).get("check_solver")
        if check is not None:
            try:
                check(self.name, self.options)
            except HetschedError as exc:
                raise ValueError(str(exc)) from None
        return self


class ProfileSpec(FileModel):
    """How measured costs are obtained when ``costs: profile``."""

    folder: str = "profiles"
    repeats: int = Field(default=20, ge=1)
    warmup: int = Field(default=3, ge=0)
    force: bool = False


class ReplaySpec(FileModel):
    """Replay of the best ``candidates`` schedules on ONNX Runtime, against plain ORT (the fastest measured wins).

    A throughput run streams them instead: ``inferences`` pipelined inferences, the
    first fifth of them filling the pipeline (:mod:`scheduler.stream`).
    """

    enabled: bool = True
    candidates: int = Field(default=3, ge=1)
    inferences: int = Field(default=40, ge=5)
    repeats: int = Field(default=10, ge=1)
    rounds: int = Field(default=3, ge=1)  # rounds that time (or stream) every candidate and plain ORT in turn
    warmup: int = Field(default=2, ge=0)
    opt_level: Literal["disable", "basic", "all"] = "disable"
    tolerance: float = Field(default=1e-4, gt=0)
    export: bool = False
    baselines: bool = True


class RunConfig(FileModel):
    """A whole run: model, platform, costs, objective, solvers, limits, replay, output."""

    name: str = "run"
    model: ModelSpec
    platform: str | dict[str, Any] = "default"
    graph_optimization: Literal["auto", Level] = "auto"
    costs: Literal["model", "profile", "problem"] = "model"
    problem: str | None = None
    profile: ProfileSpec = Field(default_factory=ProfileSpec)
    objective: Literal["latency", "throughput"] = "latency"
    replicas: int = Field(default=1, ge=1)
    solvers: list[SolverSpec] = Field(default_factory=list)
    time_limit: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    lp_bounds: bool = True
    replay: ReplaySpec = Field(default_factory=ReplaySpec)
    output_dir: str = "results"

    @field_validator("replay", mode="before")
    @classmethod
    def _replay_flag(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _costs_source(self) -> "RunConfig":
        if (self.costs == "problem") != (self.problem is not None):
            raise ValueError("costs: problem needs 'problem: FILE.json', and 'problem' needs costs: problem")
        if self.replicas > 1 and self.objective != "throughput":
            raise ValueError("replicas applies to objective: throughput only")
        if self.replay.export and self.objective == "throughput":
            raise ValueError("replay.export writes a latency runner: it applies to objective: latency only")
        return self

    @field_validator("solvers", mode="before")
    @classmethod
    def _expand(cls, value: Any, info: ValidationInfo) -> Any:
        if value in (None, "all"):  # a throughput-only solver has no place in a latency run; in a throughput
            context = info.context or {}  # run every placement has a period, so every solver takes part
            objective = info.data.get("objective", "latency")
            optimises = context.get("solver_objectives", lambda name: (objective,))
            return [{"name": n} for n in context.get("solver_names", ())
                    if objective == "throughput" or objective in optimises(n)]
        if not isinstance(value, list):
            raise ValueError("solvers must be 'all' or a list of solver names / {name, options, time_limit}")
        return [{"name": v} if isinstance(v, str) else v for v in value]

    @field_validator("solvers")
    @classmethod
    def _non_empty(cls, value: list[SolverSpec]) -> list[SolverSpec]:
        if not value:
            raise ValueError("solvers must name at least one solver")
        return value


def config_from_dict(data: Any, where: str = "config", solvers: SolverCatalog | None = None) -> RunConfig:
    """Validate a config mapping; the first error names its key.

    ``solvers`` lets the caller check solver names and options and expand
    ``solvers: all`` (the core does not import the solver registry itself).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the config must be a mapping of keys to values")
    context = {} if solvers is None else {"check_solver": solvers.check, "solver_names": solvers.names,
                                          "solver_objectives": solvers.objectives}
    return parse(RunConfig, data, where, ConfigError, context=context)


def default_config_text() -> str:
    """The embedded default config (also shipped as configs/default.yaml)."""
    return (ilr.files("scheduler") / "data" / DEFAULT_CONFIG).read_text("utf-8")


def load_config(path: str | os.PathLike[str] | None = None, solvers: SolverCatalog | None = None) -> RunConfig:
    """Load a YAML run config, or the embedded default when ``path`` is None."""
    if path is None:
        where, text = f"embedded {DEFAULT_CONFIG}", default_config_text()
    else:
        where = os.fspath(path)
        if not os.path.isfile(where):
            raise ConfigError(f"config file {where!r} does not exist")
        with open(where, "rb") as fh:
            text = fh.read()
    data = load_yaml(text, where, ConfigError)
    if path is not None and isinstance(data, dict):
        _relative_to(data, os.path.dirname(os.path.abspath(where)))
    return config_from_dict(data, where, solvers)


def _relative_to(data: dict[str, Any], base: str) -> None:
    """Resolve the config's file paths against its own folder when they exist there."""
    def fix(value: Any) -> Any:
        if isinstance(value, str) and not os.path.isabs(value) and os.path.exists(os.path.join(base, value)):
            return os.path.normpath(os.path.join(base, value))
        return value

    if isinstance(data.get("model"), dict):
        for key in ("path", "inputs"):
            data["model"][key] = fix(data["model"].get(key))
            if data["model"][key] is None:
                del data["model"][key]
    for key in ("problem", "platform"):
        if key in data:
            data[key] = fix(data[key])
