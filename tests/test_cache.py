"""The model caches: what ``hetsched cache list`` shows, and ``clear`` removing all, by age or down to a size
(least recently used first, a run's read marking an entry used), only ever the caches' own files; an entry
that cannot be read is made again, and a cache that cannot take one leaves the model in memory."""

from __future__ import annotations

import os
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from scheduler import cache, optimize
from scheduler.cli import main
from scheduler.errors import HetschedError
from scheduler.optimize import IR_VERSION, model_bytes, optimize_model, session
from scheduler.pipeline import load_original, optimized_cache

KEY = "0123456789abcdef{:04d}"
DAY = 86400.0
NOW = time.time()


def _entry(folder, n: int, size: int, age_days: float, *, data: int = 0) -> str:
    """A fake entry ``n`` of ``size`` bytes (``data`` more in its values file), last used ``age_days`` ago."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, KEY.format(n) + ".onnx")
    for p, nbytes in ((path, size), (path + ".data", data)):
        if p == path or data:
            with open(p, "wb") as fh:
                fh.write(b"\0" * nbytes)
            os.utime(p, (NOW - age_days * DAY,) * 2)
    return path


def test_entries_group_a_model_with_its_values_and_leave_other_files_alone(tmp_path):
    folder = tmp_path / "optimized"
    model = _entry(folder, 1, 100, 3, data=1000)
    _entry(folder, 2, 50, 1)
    os.remove(_entry(folder, 3, 10, 5, data=7))  # its values file alone: a write that stopped
    (folder / f".{KEY.format(4)}.onnx.a1b2c3d4.tmp").write_bytes(b"12345")  # a temporary file of write_bytes
    for other in ("notes.txt", "model.onnx", KEY.format(5) + ".onnx.bak", "zoo"):  # not the cache's names
        (folder / other).write_bytes(b"x" * 10**6) if other != "zoo" else (folder / other).mkdir()
    os.symlink(model, folder / (KEY.format(6) + ".onnx"))  # a link: neither listed nor followed
    found = cache.entries(str(folder), "optimized")
    assert [(os.path.basename(e.path), e.size, e.unfinished) for e in found] == [
        (KEY.format(3) + ".onnx", 7, True), (KEY.format(1) + ".onnx", 1100, False),
        (KEY.format(2) + ".onnx", 50, False), (f".{KEY.format(4)}.onnx.a1b2c3d4.tmp", 5, True)]
    assert found[1].files == (model, model + ".data") and found[1].last_used == pytest.approx(NOW - 3 * DAY)
    assert cache.entries(str(tmp_path / "none"), "optimized") == []
    assert cache.entries(str(folder), "hf") == []  # hf names its entries <family>-<hash>.onnx


@pytest.mark.parametrize("keep, unused_for, left", [
    (None, None, []),  # all
    (None, 2.5 * DAY, [1, 2, 4]),  # unused for 2.5 days or more
    (1061, None, [1, 2, 3, 4]),  # all 1061 bytes fit
    (1051, None, [1, 2, 4]),  # the least recently used go first
    (1050, None, [2, 4]),
    (0, None, []),
    (10**12, None, [1, 2, 3, 4]),
    (60, 0.5 * DAY, [4]),  # both: the old ones first, then down to the size
])
def test_clear_removes_by_age_then_least_recently_used_down_to_a_size(tmp_path, keep, unused_for, left):
    folder = str(tmp_path)
    for n, size, age in ((1, 1000, 2), (2, 50, 1), (3, 10, 3), (4, 1, 0)):
        _entry(folder, n, size, age)
    found = cache.entries(folder, "optimized")
    gone = cache.to_remove(found, keep=keep, unused_for=unused_for, now=NOW)
    assert cache.remove(gone) == sum(e.size for e in gone)
    assert sorted(int(os.path.basename(e.path)[16:20]) for e in cache.entries(folder, "optimized")) == left
    assert cache.remove(gone) == 0  # already gone: skipped


@pytest.mark.parametrize("text, size", [("0", 0), ("4096", 4096), ("1K", 1024), ("1.5G", 3 << 29),
                                        ("200 MB", 200 << 20), ("2gib", 2 << 30), (".5T", 1 << 39)])
def test_sizes_take_binary_units(text, size):
    assert cache.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "-1G", "1X", "1e3", "nan", "1 G B"])
def test_a_size_that_is_not_one_is_refused(text):
    with pytest.raises(HetschedError, match="is not a number of bytes"):
        cache.parse_size(text)


def test_a_run_marks_its_entry_used_so_clearing_to_a_size_keeps_it(tmp_path, monkeypatch, capsys):
    """Two models optimised into the cache, the older read again: ``clear --keep`` of one entry's size keeps
    the one read last, and the next run builds the other again, computing the same."""
    monkeypatch.setenv("HETSCHED_CACHE", str(tmp_path / "hf"))
    profiles = str(tmp_path / "profiles")
    folder = optimized_cache(profiles)
    first, second = (load_original("randwire", {"nodes": n, "channels": 8})[0] for n in (5, 6))
    opt_first = optimize_model(first, "basic", cache_dir=folder)
    optimize_model(second, "basic", cache_dir=folder)
    found = cache.entries(folder, "optimized")
    assert len(found) == 2
    for e in found:
        os.utime(e.path, (1e9, 1e9))  # both long unused
    assert optimize_model(first, "basic", cache_dir=folder) == opt_first  # a hit marks its entry used
    used = max(cache.entries(folder, "optimized"), key=lambda e: e.last_used)
    assert used.last_used > 1e9 + DAY

    assert main(["cache", "list", "--profiles", profiles, "--entries"]) == 0
    out = capsys.readouterr().out
    assert f"{folder}: 2 entries" in out and "zoo: 0 entries" in out and "randwire" in out
    assert main(["cache", "clear", "--profiles", profiles, "--keep", str(used.size), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would remove 1 of 2 entries")
    assert len(cache.entries(folder, "optimized")) == 2
    assert main(["cache", "clear", "--profiles", profiles, "--keep", str(used.size)]) == 0
    assert capsys.readouterr().out.startswith("removed 1 of 2 entries")
    assert [e.path for e in cache.entries(folder, "optimized")] == [used.path]

    again = optimize_model(second, "basic", cache_dir=folder)  # built again
    feeds = {"image": np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    np.testing.assert_allclose(*(session(model_bytes(m)).run(None, feeds)[0] for m in (again, second)), atol=1e-4)
    assert len(cache.entries(folder, "optimized")) == 2
    assert main(["cache", "clear", "--profiles", profiles, "--kind", "optimized"]) == 0
    assert cache.entries(folder, "optimized") == [] and os.listdir(folder) == []


@pytest.mark.parametrize("damage", ["values gone", "values cut", "model cut", "model not onnx"])
def test_an_optimised_entry_that_cannot_be_read_is_made_again(damage, tmp_path):
    """An entry whose values file is gone or cut (a full disk, a file removed by hand or by ``cache clear``
    while a run read it) or whose model file is cut is made again, as it was, instead of failing the run."""
    model = _large_weight_model()
    folder = str(tmp_path / "optimized")
    first = optimize_model(model, "basic", cache_dir=folder)
    (entry,) = cache.entries(folder, "optimized")
    assert entry.files == (entry.path, entry.path + ".data")
    if damage == "values gone":
        os.remove(entry.path + ".data")
    elif damage == "values cut":
        os.truncate(entry.path + ".data", 1000)
    elif damage == "model cut":  # inside its graph (a cut between two fields would parse: protobuf cannot tell)
        os.truncate(entry.path, 100)
    else:
        with open(entry.path, "wb") as fh:
            fh.write(b"not an ONNX model")
    again = optimize_model(model, "basic", cache_dir=folder)
    assert again == first
    (remade,) = cache.entries(folder, "optimized")
    assert remade.files == entry.files and remade.size == entry.size
    _computes_the_same(again, model)


@pytest.mark.parametrize("failing", ["move_file", "write_bytes"])
def test_a_cache_that_cannot_take_an_entry_leaves_the_model_in_memory(failing, tmp_path, monkeypatch):
    """A full disk when the values file is moved in, or when the model file is written: the optimised model
    comes back as without a cache (what was moved in stays as an unfinished entry)."""
    model = _large_weight_model()
    expected = optimize_model(model, "basic")
    folder = str(tmp_path / "optimized")
    real = getattr(optimize, failing)

    def full(*args, **kwargs):  # into the cache (ORT's temporary files go elsewhere)
        if str(args[1] if failing == "move_file" else args[0]).startswith(folder):
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(optimize, failing, full)
    got = optimize_model(model, "basic", cache_dir=folder)
    assert got == expected
    _computes_the_same(got, model)
    assert [e.unfinished for e in cache.entries(folder, "optimized")] == ([True] if failing == "write_bytes" else [])


def _large_weight_model() -> onnx.ModelProto:
    """MatMul by a 1 MiB weight (ORT writes it to the entry's values file), then Relu."""
    f = TensorProto.FLOAT
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
                               helper.make_node("Relu", ["y"], ["z"], name="relu")], "mlp",
                              [helper.make_tensor_value_info("x", f, [1, 512])],
                              [helper.make_tensor_value_info("z", f, [1, 512])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    return model


def _computes_the_same(optimised, model) -> None:
    x = {"x": np.random.default_rng(1).standard_normal((1, 512)).astype(np.float32)}
    np.testing.assert_allclose(session(model_bytes(optimised)).run(None, x)[0],
                               session(model_bytes(model)).run(None, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["cache", "clear", "--keep", "lots"], "argument --keep: size 'lots' is not a number of bytes"),
    (["cache", "clear", "--unused-for", "-1"], "--unused-for must be a number of days >= 0, got -1.0"),
    (["cache", "clear", "--unused-for", "nan"], "--unused-for must be a number of days >= 0, got nan"),
    (["cache", "list", "--kind", "weights"], "argument --kind: invalid choice: 'weights'"),
])
def test_bad_cache_options_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    argv = [*argv, "--profiles", str(tmp_path)]
    code = None
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
