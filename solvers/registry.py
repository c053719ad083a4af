"""The solver registry: look solvers up by name, as a YAML config names them.

``get_solver("single:cpu0")`` is shorthand for ``get_solver("single", device="cpu0")``.
Every solver has the signature ``solve(problem, *, time_limit=None, seed=0, **options)``
and returns a validated :class:`~scheduler.schedule.Schedule`.

Example
-------
>>> from solvers import get_solver, solver_names
>>> "heft" in solver_names()
True
>>> solve = get_solver("single:cpu0")
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from scheduler.errors import SolverError
from scheduler.schedule import Schedule

from . import cpsat, dp_chain, greedy, heft, linear_clustering, milp, single, split

SolveFn = Callable[..., Schedule]


@dataclass(frozen=True)
class SolverInfo:
    """A registered solver: its name, one-line summary, function, and whether it is exact."""

    name: str
    summary: str
    solve: SolveFn
    exact: bool = False

    @property
    def options(self) -> tuple[str, ...]:
        """Solver-specific option names (besides time_limit and seed)."""
        params = inspect.signature(self.solve).parameters
        return tuple(p for p in params if p not in ("problem", "time_limit", "seed"))


SOLVERS: Mapping[str, SolverInfo] = MappingProxyType({info.name: info for info in (
    SolverInfo("single", "all tasks on the best single device (option device=NAME, or single:NAME)", single.solve),
    SolverInfo("greedy", "topological order, each task where it finishes earliest "
               "(priority=[dev,...]: device-priority baseline)", greedy.solve),
    SolverInfo("heft", "HEFT: upward rank, insertion-based earliest finish time", heft.solve),
    SolverInfo("dp-chain", "PIM paper's DP over a topological chain (exact on chains, sequential execution)",
               dp_chain.solve),
    SolverInfo("linear-clustering", "Ramiel: critical-path linear clusters merged and mapped to parallel devices",
               linear_clustering.solve),
    SolverInfo("split", "DiviML modularity splitting: convex modules solved by CP-SAT in topological order, "
               "then windowed polish", split.solve),
    SolverInfo("milp", "exact MILP (DiviML style) in PuLP/CBC: proven bound, HEFT warm start; "
               "objective=latency|throughput, replicas=B, backend=cbc|highs", milp.solve, exact=True),
    SolverInfo("cpsat", "exact CP-SAT model (intervals, NoOverlap per resource): proven bound, HEFT hint; "
               "objective=latency|throughput, replicas=B, workers, resolution", cpsat.solve, exact=True),
)})


def solver_names() -> tuple[str, ...]:
    """Names of every registered solver."""
    return tuple(SOLVERS)


def list_solvers() -> tuple[SolverInfo, ...]:
    """Every registered solver with its summary."""
    return tuple(SOLVERS.values())


def get_solver(name: str, **options: Any) -> SolveFn:
    """The solver ``name`` with ``options`` bound; unknown names and options raise SolverError.

    The result is called as ``solve(problem, time_limit=..., seed=...)``.
    """
    base, _, arg = name.partition(":")
    if base not in SOLVERS:
        raise SolverError(f"unknown solver {name!r}; known: {', '.join(SOLVERS)}")
    info = SOLVERS[base]
    if arg:
        if base != "single":
            raise SolverError(f"solver {base!r} takes no ':' argument (only single:DEVICE does)")
        options = {**options, "device": arg}
    for key in options:
        if key not in info.options:
            known = ", ".join(info.options) or "none"
            raise SolverError(f"solver {base!r} has no option {key!r} (options: {known})")
    return functools.partial(info.solve, **options)
