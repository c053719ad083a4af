"""Every script in benchmarks/ still imports against the package and parses its command line.

The benchmarks run outside the default test run (they time things), so an API change
in ``scheduler`` could break one unseen until someone ran it (``bench_headroom`` imported
``random_inputs`` from ``scheduler.replay`` long after it had moved).  Importing each
and asking it for ``--help`` costs a second and catches that.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
OURS = ("scheduler", "solvers", "bench_", "packaged_models", "saga_bridge", "saga_instances")


def test_the_benchmarks_folder_has_scripts() -> None:
    assert len(SCRIPTS) >= 20, SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_imports_and_parses_help(name: str, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional package (saga, torch) that this install lacks
        if exc.name is None or exc.name.split(".")[0].startswith(OURS):
            raise
        pytest.skip(f"{name} needs {exc.name}")
    if not hasattr(module, "main"):  # a helper module of the scripts
        return
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as stop:
        module.main()
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out
