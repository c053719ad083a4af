"""Gantt and gap charts are drawn as PNG files."""

from __future__ import annotations

import os

import pytest

from scheduler.pipeline import build_problem
from scheduler.plots import gantt, gap_chart
from scheduler.schedule import Schedule
from scheduler.semantics import simulate
from solvers import get_solver


def test_gantt_and_gap_chart(tmp_path):
    p = build_problem("randwire", {"nodes": 6})
    s = get_solver("heft")(p)
    path = gantt(p, s, str(tmp_path / "g" / "gantt.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    gap_chart(["a", "b"], [0.1, 0.5], str(tmp_path / "gap.png"))
    assert (tmp_path / "gap.png").stat().st_size > 1000
    assert sorted(x.name for x in tmp_path.iterdir()) == ["g", "gap.png"]  # no temporary files left
    with pytest.raises(ValueError, match="without a placement"):
        gantt(p, Schedule((), None, status="no-solution"), str(tmp_path / "x.png"))
    single = simulate(p, {t: "cpu0" for t in p.tasks})
    one = gantt(p, single, str(tmp_path / "single.png"))
    assert open(one, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(one) > 1000
    assert open(one, "rb").read() != open(path, "rb").read()  # a different schedule, a different chart


def test_drawing_keeps_the_programs_backend(tmp_path):
    """The charts are drawn without pyplot: importing and drawing leave the backend a program chose."""
    import subprocess
    import sys

    code = ("import matplotlib\nmatplotlib.use('svg')\nfrom scheduler.plots import gap_chart\n"
            f"gap_chart(['a'], [0.1], {str(tmp_path / 'gap.png')!r})\nprint(matplotlib.get_backend())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "svg", done.stderr
    assert (tmp_path / "gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
