"""Tests for scheduler.platform: devices, links, presets, YAML/dict I/O and validation."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import yaml

from scheduler.errors import HetschedError, PlatformError
from scheduler.graph import task_graph_from_onnx
from scheduler.platform import (
    Device,
    Link,
    Platform,
    cores_platform,
    load_platform,
    platform_from_dict,
    platform_to_dict,
    preset_names,
    usable_cpus,
)
from scheduler.problem import Problem
from scheduler.problem_views import mirror_classes
from scheduler.zoo import build


def _two(**extra):
    """A minimal valid platform mapping with two devices and one link."""
    data = {
        "name": "two",
        "devices": [{"name": "a", "resources": ["r0"]}, {"name": "b", "resources": ["r1"]}],
        "links": [{"src": "a", "dst": "b", "latency": 1e-6, "bandwidth": 1e9}],
    }
    data.update(extra)
    return data


def _err(data) -> str:
    with pytest.raises(PlatformError) as info:
        platform_from_dict(data)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- default preset

@pytest.fixture(scope="module")
def default():
    return load_platform("default")


def test_default_preset_devices(default):
    assert [d.name for d in default.devices] == ["cpu0", "cpu1", "cpu-par", "pim"]
    assert "default" in preset_names()
    assert load_platform() == default


def test_default_preset_resources(default):
    assert default.shares_resource("cpu-par", "cpu0")
    assert default.shares_resource("cpu0", "cpu-par")
    assert default.shares_resource("cpu-par", "cpu1")
    assert not default.shares_resource("cpu0", "cpu1")
    assert not default.shares_resource("pim", "cpu0")
    assert not default.shares_resource("pim", "cpu-par")
    assert default.shares_resource("cpu0", "cpu0")
    assert set(default.resources) == {"core0", "core1", "pim"}


def test_default_preset_pim_support(default):
    pim = default.device["pim"]
    assert pim.simulated and pim.kind == "pim"
    assert pim.supports("Add") and pim.supports("MatMul")
    assert not pim.supports("Gather") and not pim.supports("Conv")
    assert default.device["cpu0"].supports("Gather")  # no list = everything
    assert default.device["cpu-par"].threads == 2


def test_default_preset_links_are_complete(default):
    names = [d.name for d in default.devices]
    assert set(default.link_table) == {(a, b) for a in names for b in names if a != b}
    # host <-> PIM given once, serves both ways
    assert default.transfer_time("pim", "cpu0", 2e9) == pytest.approx(1e-5 + 1.0)
    assert default.transfer_time("cpu0", "pim", 2e9) == pytest.approx(1e-5 + 1.0)


def test_load_platform_passes_a_platform_through(default):
    assert load_platform(default) is default


# ----------------------------------------------------------------------------- links

LINKS_YAML = """
name: links
devices:
  - {name: a, resources: [r0]}
  - {name: b, resources: [r1]}
  - {name: c, resources: [r2]}
links:
  - {src: a, dst: b, latency: 1.0e-6, bandwidth: 1.0e+9}
  - {src: b, dst: a, latency: 5.0e-6, bandwidth: 2.0e+9}
  - {src: a, dst: c, latency: 3.0e-6, bandwidth: 4.0e+9}
  - {src: c, dst: b, latency: 7.0e-6}
"""


def test_link_one_way_serves_both_directions_unless_reverse_given(tmp_path):
    path = tmp_path / "links.yaml"
    path.write_text(LINKS_YAML)
    p = load_platform(path)
    t = p.link_table
    assert (t[("a", "b")].latency, t[("a", "b")].bandwidth) == (1e-6, 1e9)
    assert (t[("b", "a")].latency, t[("b", "a")].bandwidth) == (5e-6, 2e9)  # explicit reverse
    assert (t[("a", "c")].latency, t[("a", "c")].bandwidth) == (3e-6, 4e9)
    assert (t[("c", "a")].latency, t[("c", "a")].bandwidth) == (3e-6, 4e9)  # mirrored
    assert (t[("b", "c")].latency, t[("b", "c")].bandwidth) == (7e-6, None)
    assert all((l.src, l.dst) == k for k, l in t.items())
    # loading by str path works too
    assert load_platform(str(path)) == p


def test_transfer_time(tmp_path):
    path = tmp_path / "links.yaml"
    path.write_text(LINKS_YAML)
    p = load_platform(path)
    assert p.transfer_time("a", "b", 1e6) == pytest.approx(1e-6 + 1e6 / 1e9)
    assert p.transfer_time("b", "a", 1e6) == pytest.approx(5e-6 + 1e6 / 2e9)
    assert p.transfer_time("c", "a", 0) == pytest.approx(3e-6)
    assert p.transfer_time("b", "c", 1e12) == pytest.approx(7e-6)  # no bandwidth: infinite
    for d in "abc":
        assert p.transfer_time(d, d, 1e9) == 0.0


def test_link_time_is_latency_plus_bytes_over_bandwidth():
    link = Link("x", "y", latency=2e-6, bandwidth=5e8)
    for nbytes in (0, 1, 1000, 10**9):
        assert link.time(nbytes) == pytest.approx(2e-6 + nbytes / 5e8)


def test_default_link_fills_missing_pairs():
    data = _two(devices=[{"name": "a"}, {"name": "b"}, {"name": "c"}],
                default_link={"latency": 9e-6, "bandwidth": 1e8})
    p = platform_from_dict(data)
    assert p.link_table[("a", "b")].latency == 1e-6  # given link wins
    assert p.link_table[("b", "a")].latency == 1e-6
    for pair in [("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")]:
        link = p.link_table[pair]
        assert (link.src, link.dst, link.latency, link.bandwidth) == (*pair, 9e-6, 1e8)
    assert p.transfer_time("c", "b", 1e8) == pytest.approx(9e-6 + 1.0)


def test_missing_link_is_rejected_naming_both_devices():
    data = _two(devices=[{"name": "a"}, {"name": "b"}, {"name": "lonely"}])
    msg = _err(data)
    assert "'lonely'" in msg and ("'a'" in msg or "'b'" in msg)
    assert "default_link" in msg


def test_single_device_needs_no_links():
    p = platform_from_dict({"devices": [{"name": "solo"}]})
    assert p.link_table == {}
    assert p.device["solo"].resources == ("solo",)  # a device with no resources holds its own


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("where,key", [("device", "colour"), ("link", "speed"), ("top", "extra")])
def test_unknown_keys_are_rejected(where, key):
    data = _two()
    if where == "device":
        data["devices"][0][key] = 1
    elif where == "link":
        data["links"][0][key] = 1
    else:
        data[key] = 1
    msg = _err(data)
    assert repr(key) in msg


def test_unknown_key_in_default_link_is_rejected():
    assert "'src'" in _err(_two(default_link={"src": "a", "latency": 0.0}))


def test_duplicate_device_is_rejected():
    data = _two(devices=[{"name": "a"}, {"name": "b"}, {"name": "a"}])
    msg = _err(data)
    assert "'a'" in msg and "twice" in msg


def test_link_to_unknown_device_is_rejected():
    data = _two()
    data["links"].append({"src": "a", "dst": "ghost", "latency": 0.0})
    assert "'ghost'" in _err(data)


def test_link_to_itself_is_rejected():
    data = _two()
    data["links"].append({"src": "a", "dst": "a"})
    assert "'a'" in _err(data)


@pytest.mark.parametrize("latency", [-1e-6, float("inf"), float("nan"), "-1.0e-6"])
def test_bad_latency_is_rejected(latency):
    data = _two()
    data["links"][0]["latency"] = latency
    assert "latency" in _err(data)


@pytest.mark.parametrize("bandwidth", [0, 0.0, -5.0])
def test_non_positive_bandwidth_is_rejected(bandwidth):
    data = _two()
    data["links"][0]["bandwidth"] = bandwidth
    assert "bandwidth" in _err(data)


def test_missing_link_endpoint_is_rejected():
    data = _two()
    del data["links"][0]["dst"]
    assert "'dst'" in _err(data)


@pytest.mark.parametrize(
    "field,value",
    [
        ("peak_flops", 0), ("peak_flops", -1.0), ("mem_bandwidth", 0.0), ("mem_bandwidth", float("nan")),
        ("overhead_s", -1e-6), ("overhead_s", float("nan")), ("overhead_s", float("inf")),
        ("threads", 0), ("threads", 1.5), ("threads", float("nan")),
        ("memory_bytes", -1), ("memory_bytes", 2.5), ("memory_bytes", float("inf")),
        ("peak_flops", "fast"), ("peak_flops", True), ("peak_flops", [1]),
        ("resources", 3), ("resources", [1, 2]), ("supported_ops", "Add"),
        ("kind", 5), ("simulated", "yes"), ("transfer_load", "sometimes"), ("transfer_load", 1),
    ],
)
def test_bad_device_values_are_rejected(field, value):
    data = _two()
    data["devices"][0][field] = value
    msg = _err(data)
    assert field in msg and "'a'" in msg


def test_device_without_name_and_non_mapping_entries_are_rejected():
    assert "'name'" in _err({"devices": [{"kind": "cpu"}]})
    assert "mapping" in _err({"devices": ["cpu0"]})
    assert "mapping" in _err(["not", "a", "mapping"])
    assert "'devices'" in _err({"name": "x"})
    assert "no devices" in _err({"devices": []})
    assert "list" in _err({"devices": {"name": "a"}})
    assert "list" in _err(_two(links={"src": "a"}))


def test_resources_may_be_a_single_name():
    p = platform_from_dict({"devices": [{"name": "a", "resources": "core0"}]})
    assert p.device["a"].resources == ("core0",)


def test_numbers_written_yaml_1_1_style_are_accepted(tmp_path):
    text = """
devices:
  - {name: a, peak_flops: 2.0e10, mem_bandwidth: 1e9, overhead_s: 4.0e-6, memory_bytes: 1e6}
  - {name: b, peak_flops: 3e10}
links:
  - {src: a, dst: b, latency: 2.0e-6, bandwidth: 2.0e10}
"""
    raw = yaml.safe_load(text)
    assert isinstance(raw["devices"][0]["peak_flops"], str)  # the reason this matters
    path = tmp_path / "p.yaml"
    path.write_text(text)
    p = load_platform(path)
    a = p.device["a"]
    assert a.peak_flops == 2.0e10 and isinstance(a.peak_flops, float)
    assert a.mem_bandwidth == 1e9 and a.overhead_s == 4.0e-6
    assert a.memory_bytes == 10**6 and isinstance(a.memory_bytes, int)
    assert p.device["b"].peak_flops == 3e10
    assert p.link_table[("b", "a")].bandwidth == 2.0e10
    assert p.link_table[("a", "b")].latency == 2.0e-6


def test_invalid_yaml_file_is_rejected(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("devices: [ {name: a\n  - : :\n")
    with pytest.raises(PlatformError) as info:
        load_platform(path)
    msg = str(info.value)
    assert str(path) in msg and "YAML" in msg and "\n" not in msg


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path, text):
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(PlatformError, match="mapping"):
        load_platform(path)


def test_yaml_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("devices:\n  - {name: a, colour: red}\n")
    with pytest.raises(PlatformError) as info:
        load_platform(path)
    assert str(path) in str(info.value) and "'colour'" in str(info.value)


# ----------------------------------------------------------------------------- the host's cores

def test_cores_of_a_two_core_host_are_the_cpu_preset():
    assert replace(cores_platform(2), name="cpu") == load_platform("cpu")


@pytest.mark.parametrize("count", [1, 3, 4, 8, 16])
def test_cores_platform_splits_the_host_into_quarters_halves_and_the_whole(count):
    p = cores_platform(count)
    cores = {f"core{c}" for c in range(count)}
    assert p.devices[-1].name == ("cpu-par" if count > 1 else "cpu0") and set(p.devices[-1].resources) == cores
    levels: dict[int, list] = {}
    for d in p.devices:
        assert d.threads == len(d.resources) and not d.simulated
        first, last = (int(r.removeprefix("core")) for r in (d.resources[0], d.resources[-1]))
        assert list(d.resources) == [f"core{c}" for c in range(first, last + 1)]  # a run of cores
        if 1 < d.threads < count:
            assert d.name == f"cpu{first}-{last}"
        levels.setdefault(len([e for e in p.devices if set(d.resources) <= set(e.resources)]), []).append(d)
    for devices in levels.values():  # each level covers every core exactly once
        assert sorted(r for d in devices for r in d.resources) == sorted(cores)
    assert len(levels) == min(3, count.bit_length())
    if count in (4, 8, 16):  # the two quarters of a half are interchangeable (the halves only with their
        # quarters, which one swap of two devices cannot express): the solvers break that symmetry
        problem = Problem.from_graph(task_graph_from_onnx(build("mlp", layers=2)), p)
        assert [[p.device[d].resources[0] for d in c] for c in mirror_classes(problem)] == [
            ["core0", f"core{count // 4}"], [f"core{count // 2}", f"core{3 * count // 4}"]]


def test_cores_preset_is_this_host():
    p = load_platform("cores")
    assert p.name == "cores" and len(p.devices[-1].resources) == len(usable_cpus())
    assert "cores" in preset_names()
    with pytest.raises(PlatformError, match="at least one core"):
        cores_platform(0)


def test_unknown_preset_lists_presets():
    with pytest.raises(PlatformError) as info:
        load_platform("no-such-platform")
    msg = str(info.value)
    assert "'no-such-platform'" in msg
    for name in preset_names():
        assert name in msg


def test_missing_yaml_path_is_an_error(tmp_path):
    with pytest.raises(PlatformError, match="neither a file nor a preset"):
        load_platform(tmp_path / "missing.yaml")


def test_platform_error_is_a_hetsched_error():
    assert issubclass(PlatformError, HetschedError)


# ----------------------------------------------------------------------------- round trip

def test_round_trip_default(default):
    data = platform_to_dict(default)
    assert platform_from_dict(data) == default
    # the dict is plain data: it survives YAML
    assert platform_from_dict(yaml.safe_load(yaml.safe_dump(data))) == default


def test_round_trip_with_default_link_and_all_fields():
    p = Platform(
        name="full",
        devices=(
            Device("x", kind="gpu", resources=("g0", "bus"), memory_bytes=1 << 30, supported_ops=frozenset({"MatMul", "Add"}),
                   peak_flops=1e12, mem_bandwidth=5e11, overhead_s=1e-5, threads=4, execution_provider="CUDAExecutionProvider",
                   simulated=True),
            Device("y"),
            Device("z", resources=("bus",)),
        ),
        links=(Link("x", "y", 1e-6, 1e9), Link("y", "x", 2e-6, None)),
        default_link=Link("*", "*", 3e-6, 2e9),
    )
    back = platform_from_dict(platform_to_dict(p))
    assert back == p
    assert back.link_table == p.link_table
    assert back.shares_resource("x", "z") and not back.shares_resource("x", "y")


def test_load_platform_from_mapping_equals_from_dict():
    assert load_platform(_two()) == platform_from_dict(_two())


def test_link_table_is_symmetric_when_one_way_only():
    p = platform_from_dict(_two())
    ab, ba = p.link_table[("a", "b")], p.link_table[("b", "a")]
    assert (ab.latency, ab.bandwidth) == (ba.latency, ba.bandwidth)
    assert p.transfer_time("a", "b", 12345) == p.transfer_time("b", "a", 12345)
    assert math.isclose(p.transfer_time("a", "b", 1e9), 1e-6 + 1.0)


def test_servers_copy_the_platform_and_join_the_copies_by_the_network():
    base = load_platform("cpu2gpu")
    two = load_platform("cpu2gpu-x2")
    assert two.name == "cpu2gpu-x2" and len(two.devices) == 2 * len(base.devices)
    assert two.device["gpu1@s1"].resources == ("gpu1@s1",) and two.device["gpu1@s1"].simulated
    for k in (0, 1):
        for (a, b), link in base.link_table.items():
            assert two.transfer_time(f"{a}@s{k}", f"{b}@s{k}", 1e6) == link.time(1e6)
    assert two.transfer_time("cpu@s0", "gpu1@s1", 1.25e9) == pytest.approx(5e-5 + 1.0)
    assert platform_from_dict(platform_to_dict(two)) == two
    with pytest.raises(PlatformError, match=r"servers.count must be a whole number from 1 to 64, got 0"):
        platform_from_dict({**platform_to_dict(base), "servers": {"count": 0, "network": {}}}, "p.yaml")


def test_a_problem_on_two_servers_is_solved_and_validated():
    from scheduler.pipeline import build_problem
    from scheduler.schedule import validate
    from solvers import get_solver

    problem = build_problem("gpt2", {"layers": "2"}, platform="cpu2gpu-x2")
    for solver in ("heft", "single:gpu0@s1"):
        assert validate(problem, get_solver(solver)(problem)) == []
