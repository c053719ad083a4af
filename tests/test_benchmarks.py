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


def test_host_phases_summary_finds_the_slow_stretches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """bench_host_phases: a window more than SLOW over the session's fastest tenth is slow; runs of slow windows
    are measured from the first one's start to the last one's end; the chart is drawn."""
    import pandas as pd

    from scheduler.plots import series_chart

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    phases = importlib.import_module("bench_host_phases")
    two = [5.0, 5.1, 9.0, 9.2, 5.0, 8.9, 9.1, 9.0, 5.2, 5.0]
    table = pd.DataFrame({"start_s": [0.5 * k for k in range(10)], "end_s": [0.5 * k + 0.4 for k in range(10)],
                          "2_thread_ms": two, "1_thread_ms": [7.0 + 0.01 * k for k in range(10)]})
    fast = phases.summary(table, "2_thread_ms")
    assert fast["session"] == "2_thread" and fast["slow_share"] == 0.5 and fast["slow_stretches"] == 2
    assert fast["longest_slow_s"] == pytest.approx(3.9 - 2.5) and fast["median_slow_s"] == pytest.approx(
        ((1.9 - 1.0) + (3.9 - 2.5)) / 2)
    steady = phases.summary(table, "1_thread_ms")
    assert steady["slow_share"] == 0.0 and steady["slow_stretches"] == 0 and steady["longest_slow_s"] == 0.0
    png = series_chart(table, "start_s", ["2_thread_ms", "1_thread_ms"], str(tmp_path / "t.png"),
                       title="t", xlabel="seconds", ylabel="ms")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
