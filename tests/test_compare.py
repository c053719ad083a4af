"""Comparison suites: CSV, report and plots are written; finished cells are reused."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from scheduler.cli import _solver_catalog, main
from scheduler.compare import load_suite, run_suite
from scheduler.errors import ConfigError
from solvers import get_solver

SUITE = """
name: tiny
instances:
  - {zoo: randwire, params: {nodes: 6}}
  - {random: 12, seed: 3}
platforms: [default, cpu2gpu]
solvers: [heft, greedy, {name: greedy, options: {priority: [cpu0]}}]
time_limits: [5]
workers: 1
"""


def _suite(tmp_path, text=SUITE, **over):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "suite.yaml"
    path.write_text(text + f"output_dir: {tmp_path / 'out'}\n")
    suite = load_suite(str(path), _solver_catalog())
    return suite.model_copy(update=over) if over else suite


def test_suite_writes_outputs_and_resumes(tmp_path):
    suite = _suite(tmp_path)
    first = run_suite(suite, get_solver, progress=False)
    assert (first.computed, first.reused) == (12, 0)
    folder = tmp_path / "out" / "tiny"
    table = pd.read_csv(folder / "cells.csv", keep_default_na=False, na_values=[""])
    assert len(table) == 12
    # greedy priority=[cpu0] names a device cpu2gpu lacks: those cells are error rows, the rest valid
    errors = table[table["status"] == "error"]
    assert set(errors["instance"].str.endswith("@cpu2gpu")) == {True} and len(errors) == 2
    assert errors["error"].str.contains("unknown device 'cpu0'").all()
    ok = table[table["status"] != "error"]
    assert ok["valid"].all() and (ok["makespan"] >= ok["lower_bound"] * (1 - 1e-9)).all()
    report = (folder / "report.md").read_text()
    assert "## Per solver" in report and "geomean_gap" in report and "gantt_" in report
    for plot in ("gap_per_solver.png", "solve_time_vs_size.png", "makespan_over_bound.png"):
        assert (folder / "plots" / plot).stat().st_size > 1000
    assert len(list((folder / "plots").glob("gantt_*.png"))) == 4
    again = run_suite(suite, get_solver, progress=False)
    assert (again.computed, again.reused) == (0, 12)
    os.remove(next((folder / "cells").iterdir()))
    assert run_suite(suite, get_solver, progress=False).computed == 1


def test_worker_processes_give_the_same_results(tmp_path):
    one = run_suite(_suite(tmp_path / "a"), get_solver, progress=False).table
    two = run_suite(_suite(tmp_path / "b", workers=2), get_solver, progress=False).table
    cols = ["instance", "solver", "makespan", "lower_bound", "status"]
    assert one[cols].sort_values(cols[:2]).reset_index(drop=True).equals(
        two[cols].sort_values(cols[:2]).reset_index(drop=True))


@pytest.mark.parametrize("text, error", [
    (SUITE.replace("platforms", "platformz"), "unknown key 'platformz'"),
    (SUITE.replace("heft, greedy", "heft, nope"), "unknown solver 'nope'"),
    (SUITE.replace("{random: 12, seed: 3}", "{random: 12, zoo: mlp}"), "exactly one of"),
    (SUITE.replace("{random: 12, seed: 3}", "{random: 12, inputs: x.npz}"), "'inputs' applies to zoo and onnx"),
])
def test_bad_suites(tmp_path, text, error):
    with pytest.raises(ConfigError, match=error):
        _suite(tmp_path, text)


def test_shipped_suites_are_valid():
    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    for name in ("suite_diviml.yaml", "suite_pim.yaml", "suite_published.yaml"):
        suite = load_suite(os.path.join(root, name), _solver_catalog())
        assert suite.instances and suite.solvers


def test_cli_compare(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SUITE.replace("  - {random: 12, seed: 3}\n", ""))
    assert main(["compare", str(tmp_path / "s.yaml"), "--output-dir", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "6 cells computed, 0 reused" in out and "report:" in out


@pytest.mark.slow
def test_ray_executor_gives_the_same_results(tmp_path):
    pytest.importorskip("ray")
    local = run_suite(_suite(tmp_path / "a"), get_solver, progress=False).table
    ray_run = run_suite(_suite(tmp_path / "b", executor="ray"), get_solver, progress=False).table
    cols = ["instance", "solver", "makespan", "lower_bound", "status"]
    assert local[cols].sort_values(cols[:2]).reset_index(drop=True).equals(
        ray_run[cols].sort_values(cols[:2]).reset_index(drop=True))
