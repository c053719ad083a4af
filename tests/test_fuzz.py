"""Fuzz the command line's file inputs: any mutation of a valid problem, schedule, platform, run config or
suite gives success or one line `hetsched: error: ...` with exit 2 (1 from `validate`), never a traceback."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.cli import main

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(10**18, 10**30),
                    st.floats(allow_nan=False), st.sampled_from([float("inf"), -0.0, 1e-320, 1e308]),
                    st.text(max_size=8), st.sampled_from(["cpu0", "pim", "heft", "", "1e-6", "t0"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indexes) into a JSON-like value."""
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw, base: Any) -> Any:
    """``base`` with one to three values replaced, deleted or given an extra key."""
    data = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        if not path:
            data = draw(VALUES)
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace" or (action == "delete" and isinstance(parent, list) and len(parent) <= 1):
            parent[path[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(VALUES)
        if not isinstance(data, (dict, list)):
            break
    return data


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, Any]:
    """One valid input of each kind, as data."""
    folder = tmp_path_factory.mktemp("valid")
    assert main(["problem", "mlp", "--set", "layers=2", "-o", str(folder / "p.json")]) == 0
    assert main(["solve", str(folder / "p.json"), "--solver", "heft", "-o", str(folder / "s.json")]) == 0
    return {
        "problem": json.loads((folder / "p.json").read_text()),
        "schedule": json.loads((folder / "s.json").read_text()),
        "platform": yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "scheduler", "data",
                                                     "platforms", "cpu.yaml"))),
        "run": {"name": "fuzz", "model": {"zoo": "mlp", "params": {"layers": 2}}, "platform": "cpu",
                "costs": "model", "solvers": ["heft", "greedy"], "lp_bounds": False,
                "replay": {"enabled": False}, "output_dir": "results"},
        "suite": {"name": "fuzz", "instances": [{"zoo": "mlp", "params": {"layers": 2}}], "platforms": ["cpu"],
                  "solvers": ["heft"], "time_limits": [1], "output_dir": "results"},
    }


def _check(argv: list[str], capsys, allowed: tuple[int, ...] = (0, 2)) -> None:
    capsys.readouterr()
    code = main(argv)  # any exception escaping main is a traceback for the user: the test fails
    err = capsys.readouterr().err
    assert code in allowed, (code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if not line.startswith("[hetsched]")]
        assert len(lines) == 1 and lines[0].startswith("hetsched: error:"), err


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


def _fuzz(kind: str, write: Callable[[Any, Any], str], argv: Callable[[str], list[str]],
          allowed: tuple[int, ...] = (0, 2)):
    @FUZZ
    @given(data=st.data())
    def test(data, valid, tmp_path, capsys, monkeypatch):
        monkeypatch.chdir(tmp_path)
        path = write(data.draw(mutated(valid[kind])), tmp_path)
        (tmp_path / "p.json").write_text(json.dumps(valid["problem"]))
        _check(argv(path), capsys, allowed)
    return test


def _json(name: str) -> Callable[[Any, Any], str]:
    def write(value: Any, folder) -> str:
        (folder / name).write_text(json.dumps(value))
        return str(folder / name)
    return write


def _yaml(name: str) -> Callable[[Any, Any], str]:
    def write(value: Any, folder) -> str:
        (folder / name).write_text(yaml.safe_dump(value))
        return str(folder / name)
    return write


test_fuzz_problem_file = _fuzz("problem", _json("q.json"), lambda f: ["solve", f, "--solver", "heft"])
test_fuzz_problem_bounds = _fuzz("problem", _json("q.json"), lambda f: ["bound", f])
test_fuzz_schedule_file = _fuzz("schedule", _json("s.json"), lambda f: ["validate", "p.json", f], (0, 1, 2))
test_fuzz_platform_file = _fuzz("platform", _yaml("plat.yaml"),
                                lambda f: ["problem", "mlp", "--set", "layers=2", "--platform", f, "-o", "x.json"])
test_fuzz_run_config = _fuzz("run", _yaml("run.yaml"), lambda f: ["run", "--quiet", f])
test_fuzz_suite = _fuzz("suite", _yaml("suite.yaml"), lambda f: ["compare", f])


def test_the_unmutated_inputs_succeed(valid, tmp_path, capsys, monkeypatch):
    """The fuzzers start from inputs that work (so their mutations test rejection, not a broken base)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.json").write_text(json.dumps(valid["problem"]))
    for kind, write, argv in [("problem", _json("q.json"), lambda f: ["solve", f, "--solver", "heft"]),
                              ("schedule", _json("s.json"), lambda f: ["validate", "p.json", f]),
                              ("platform", _yaml("plat.yaml"),
                               lambda f: ["problem", "mlp", "--set", "layers=2", "--platform", f, "-o", "x.json"]),
                              ("run", _yaml("run.yaml"), lambda f: ["run", "--quiet", f]),
                              ("suite", _yaml("suite.yaml"), lambda f: ["compare", f])]:
        capsys.readouterr()
        assert main(argv(write(valid[kind], tmp_path))) == 0, (kind, capsys.readouterr().err)
