"""Solvers: one module per algorithm behind one registry (``get_solver`` / ``list_solvers``)."""

from .registry import SOLVERS, SolverInfo, get_solver, list_solvers, solver_names

__all__ = ["SOLVERS", "SolverInfo", "get_solver", "list_solvers", "solver_names"]
