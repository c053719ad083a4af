"""The solver registry: look solvers up by name, as a YAML config names them.

``get_solver("single:cpu0")`` is shorthand for ``get_solver("single", device="cpu0")``.
Every solver has the signature ``solve(problem, *, time_limit=None, seed=0, **options)``
and returns a validated :class:`~scheduler.schedule.Schedule`.

The registry names each solver's module and options instead of importing it: listing
solvers (``hetsched solvers``, ``--help``) then costs no import of OR-Tools, PuLP or
the models' libraries; a solver's module is imported when it is first asked to solve
or to check its options (a test keeps the declared options equal to the signatures).

Example
-------
>>> from solvers import get_solver, solver_names
>>> "heft" in solver_names()
True
>>> solve = get_solver("single:cpu0")
"""

from __future__ import annotations

import functools
import importlib
import typing
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from scheduler.errors import SolverError

if TYPE_CHECKING:
    from scheduler.schedule import Schedule

SolveFn = Callable[..., "Schedule"]


@dataclass(frozen=True)
class SolverInfo:
    """A registered solver: its name, one-line summary, module (holding ``solve``), option names (besides
    time_limit and seed, in the signature's order), what it optimises, and whether it is exact."""

    name: str
    summary: str
    module: str
    options: tuple[str, ...] = ()
    exact: bool = False
    objectives: tuple[str, ...] = ("latency",)  # what it optimises (it refuses the others)
    dispatcher: bool = False  # it runs another registered solver: ``solvers: all`` leaves it out (a repeat)

    @property
    def solve(self) -> SolveFn:
        """The module's ``solve`` (imported on first use)."""
        return importlib.import_module(self.module).solve


SOLVERS: Mapping[str, SolverInfo] = MappingProxyType({info.name: info for info in (
    SolverInfo("single", "all tasks on the best single device (option device=NAME, or single:NAME)",
               "solvers.single", ("device",)),
    SolverInfo("greedy", "topological order, each task where it finishes earliest "
               "(priority=[dev,...]: device-priority baseline)", "solvers.greedy", ("priority",)),
    SolverInfo("heft", "HEFT: upward rank, insertion-based earliest finish time", "solvers.heft", ("transfer_mean",)),
    SolverInfo("minmin", "batch-mode list scheduling: the ready task that finishes first (rule=max: last; "
               "rule=sufferage: that loses most without its best device) to its best device", "solvers.minmin",
               ("rule",)),
    SolverInfo("cpop", "CPoP: the critical path on its fastest device, the rest by priority to earliest finish",
               "solvers.cpop", ("transfer_mean",)),
    SolverInfo("dps", "Dynamic Priority Scheduling: the ready task of highest bottom level minus top level, "
               "levels recomputed after each placement, to its earliest-finish device", "solvers.dps"),
    SolverInfo("dp-chain", "PIM paper's DP over a topological chain (exact on chains, sequential execution)",
               "solvers.dp_chain"),
    SolverInfo("chain-cut", "the critical path's blocks cut into device segments that fit memory, by DP "
               "(boundary=path|crossing|both)", "solvers.chain_cut", ("boundary",)),
    SolverInfo("dp-pipeline", "throughput: pipeline stages by DP over contiguous splits of a few task orders "
               "(objective=throughput only)", "solvers.dp_pipeline", ("objective", "replicas"),
               objectives=("throughput",)),
    SolverInfo("portfolio", "every list heuristic and its variants (HEFT and CPoP with both transfer means, "
               "MinMin, MaxMin, Sufferage...) and chain-cut, the shortest schedule", "solvers.portfolio"),
    SolverInfo("linear-clustering", "Ramiel: critical-path linear clusters merged and mapped to parallel devices",
               "solvers.linear_clustering", ("clusters",)),
    SolverInfo("split", "DiviML modularity splitting: convex modules solved by CP-SAT in topological order, "
               "then windowed polish", "solvers.split",
               ("max_module", "resolution", "polish", "polish_window", "workers")),
    SolverInfo("lns", "anytime large-neighbourhood search: windows of the best heuristic schedule re-solved by "
               "CP-SAT until the time limit", "solvers.lns", ("window", "workers")),
    SolverInfo("auto", "picks the solver for the size and time budget: cpsat when small, lns when large, portfolio "
               "under 1 s (throughput: cpsat, dp-pipeline under 1 s; hierarchical on several servers)", "solvers.auto",
               ("objective", "replicas"), objectives=("latency", "throughput"), dispatcher=True),
    SolverInfo("hierarchical", "DiviML's multi-server solve: the graph's copies and tasks split among identical "
               "servers, then each server's devices by the inner solver (inner=auto|cpsat|lns|...)",
               "solvers.hierarchical", ("objective", "replicas", "inner"), objectives=("latency", "throughput"),
               dispatcher=True),
    SolverInfo("milp", "exact MILP (DiviML style) in PuLP/CBC: proven bound, HEFT warm start; "
               "objective=latency|throughput, replicas=B, backend=cbc|highs", "solvers.milp",
               ("objective", "replicas", "backend", "threads", "warm_start", "symmetry"), exact=True,
               objectives=("latency", "throughput")),
    SolverInfo("cpsat", "exact CP-SAT model (intervals, NoOverlap per resource): proven bound, HEFT hint; "
               "objective=latency|throughput, replicas=B, workers, resolution", "solvers.cpsat",
               ("objective", "replicas", "workers", "resolution", "hint", "symmetry"), exact=True,
               objectives=("latency", "throughput")),
)})


def solver_names(*, dispatchers: bool = True) -> tuple[str, ...]:
    """Names of every registered solver (``dispatchers=False``: without those that run another one)."""
    return tuple(name for name, info in SOLVERS.items() if dispatchers or not info.dispatcher)


def list_solvers() -> tuple[SolverInfo, ...]:
    """Every registered solver with its summary."""
    return tuple(SOLVERS.values())


MAX_SEED = 2**31 - 1  # CP-SAT and CBC take 32-bit seeds


@functools.lru_cache(maxsize=None)
def _hints(info: SolverInfo) -> Mapping[str, Any]:
    """The solve function's parameter types, with their ``Annotated`` constraints."""
    return typing.get_type_hints(info.solve, include_extras=True)


def _checked(solver: str, key: str, annotation: Any, value: Any) -> Any:
    """``value`` validated strictly against ``annotation`` (types and ranges), else a one-line SolverError."""
    from scheduler.schema import parse

    return parse(annotation, value, f"solver {solver!r}", SolverError, key=f"option {key}", strict=True)


def check_run(solver: str, time_limit: Any, seed: Any) -> None:
    """The time limit (None, or seconds >= 0) and seed (an integer in 0..2^31-1) every solver takes."""
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or not 0 <= time_limit < float("inf")):
        raise SolverError(f"solver {solver!r}: time limit must be a finite number of seconds >= 0, "
                          f"got {time_limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SolverError(f"solver {solver!r}: seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")


def get_solver(name: str, **options: Any) -> SolveFn:
    """The solver ``name`` with ``options`` bound; unknown names, options of the wrong type or out of range,
    a bad time limit or seed raise SolverError.

    The result is called as ``solve(problem, time_limit=..., seed=...)``.  Options are
    checked against the solve function's annotations (``Annotated`` ranges included).
    """
    base, _, arg = name.partition(":")
    if base not in SOLVERS:
        raise SolverError(f"unknown solver {name!r}; known: {', '.join(SOLVERS)}")
    info = SOLVERS[base]
    if arg:
        if base != "single":
            raise SolverError(f"solver {base!r} takes no ':' argument (only single:DEVICE does)")
        options = {**options, "device": arg}
    def checked(given: Mapping[str, Any]) -> dict[str, Any]:
        for key in given:
            if key == "objective" and key not in info.options:
                both = ", ".join(n for n, i in SOLVERS.items() if len(i.objectives) > 1)
                raise SolverError(f"solver {base!r} optimises {' and '.join(info.objectives)} only (it takes no "
                                  f"objective option; {both} take both, dp-pipeline throughput)")
            if key not in info.options:
                known = ", ".join(info.options) or "none"
                raise SolverError(f"solver {base!r} has no option {key!r} (options: {known})")
        return {key: _checked(base, key, _hints(info)[key], value) for key, value in given.items()}

    bound = checked(options)

    def solve(problem: Any, *, time_limit: float | None = None, seed: int = 0, **more: Any) -> Schedule:
        """The solver with its options (more may be given here, checked the same way)."""
        check_run(base, time_limit, seed)
        return info.solve(problem, time_limit=time_limit, seed=seed, **{**bound, **checked(more)})

    return solve
