"""Platform: the devices that run tasks and the links that move tensors between them.

A device occupies named ``resources`` while it runs a task; two devices that share
a resource never run at the same time (``cpu-par`` holds ``core0`` and ``core1``,
so it excludes ``cpu0`` and ``cpu1``).  Each device carries the parameters of the
analytic cost model (peak FLOP/s, memory bandwidth, per-task overhead) and how
replay runs it (ONNX Runtime threads / execution provider, or ``simulated``).

Links are directed; one given for ``a -> b`` also serves ``b -> a`` unless that
direction is given too.  Pairs with no link use ``default_link`` when the platform
has one; otherwise the platform is rejected.

Example
-------
>>> p = load_platform("default")
>>> [d.name for d in p.devices]
['cpu0', 'cpu1', 'cpu-par', 'pim']
>>> p.shares_resource("cpu0", "cpu-par")
True
"""

from __future__ import annotations

import math
import reprlib
import os
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from importlib import resources as ilr
from typing import Annotated, Any, Mapping, Sequence

import yaml
from pydantic import BeforeValidator

from .errors import PlatformError
from .fileio import read_yaml
from .schema import Count, FileModel, Finite, Flag, Name, Text, parse, whole
from .ops import op_family


TRANSFER_LOADS = ("send", "staged", "none")
"""What moving tensors costs a device in a pipeline (the throughput objective's busy times):

* ``send``: it drives what it sends: a tensor's transfer time once per device that reads it;
* ``staged``: transfers go through host memory; it writes a tensor out once, however many
  devices read it, and reads in once each tensor it receives, paying its share of each
  transfer's time (half when both ends are staged: an accelerator-to-accelerator copy through
  the host is two copies);
* ``none``: it pays nothing (a host CPU that shares memory with the others).
"""


@dataclass(frozen=True)
class Device:
    """A device: identity, the resources it holds, capacity, op support, model and replay settings."""

    name: str
    kind: str = "cpu"
    resources: tuple[str, ...] = ()
    memory_bytes: int | None = None
    supported_ops: frozenset[str] | None = None
    peak_flops: float = 1e10
    mem_bandwidth: float = 1e10
    overhead_s: float = 0.0
    threads: int = 1
    execution_provider: str = "CPUExecutionProvider"
    simulated: bool = False
    transfer_load: str = "send"  # what moving tensors costs this device in a pipeline (TRANSFER_LOADS)

    def __post_init__(self) -> None:
        if not self.name:
            raise PlatformError("a device has an empty name")
        if not self.resources:
            object.__setattr__(self, "resources", (self.name,))
        if self.memory_bytes is not None and self.memory_bytes < 0:
            raise PlatformError(f"device {self.name!r}: memory_bytes must be >= 0")
        for key in ("peak_flops", "mem_bandwidth"):
            if not 0 < getattr(self, key) < math.inf:
                raise PlatformError(f"device {self.name!r}: {key} must be a finite number > 0")
        if not (math.isfinite(self.overhead_s) and self.overhead_s >= 0):
            raise PlatformError(f"device {self.name!r}: overhead_s must be a finite number >= 0")
        if self.threads < 1:
            raise PlatformError(f"device {self.name!r}: threads must be >= 1")
        if self.transfer_load not in TRANSFER_LOADS:
            raise PlatformError(f"device {self.name!r}: transfer_load must be one of {', '.join(TRANSFER_LOADS)}, "
                                f"got {reprlib.repr(self.transfer_load)}")

    def supports(self, op_type: str) -> bool:
        """Whether a task of this op type may run here (no list = everything).

        A fused or contrib op is supported when its standard family is
        (``FusedMatMul`` where ``MatMul`` is listed; :func:`scheduler.ops.op_family`).
        """
        return self.supported_ops is None or op_type in self.supported_ops or op_family(op_type) in self.supported_ops


@dataclass(frozen=True)
class Link:
    """Transfer model ``latency + bytes / bandwidth`` from ``src`` to ``dst`` (bandwidth None = infinite).

    ``transfer_scale`` multiplies a problem's explicit per-edge transfer times on
    this link (e.g. 2 between two accelerators that copy through host memory,
    0 between cores that share it); the byte-based model ignores it.
    """

    src: str
    dst: str
    latency: float = 0.0
    bandwidth: float | None = None
    transfer_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.latency < 0 or not math.isfinite(self.latency):
            raise PlatformError(f"link {self.src}->{self.dst}: latency must be a finite number >= 0")
        if self.transfer_scale < 0 or not math.isfinite(self.transfer_scale):
            raise PlatformError(f"link {self.src}->{self.dst}: transfer_scale must be a finite number >= 0")
        if self.bandwidth is not None and not 1.0 <= self.bandwidth < math.inf:
            raise PlatformError(f"link {self.src}->{self.dst}: bandwidth must be a finite number of bytes/s >= 1 "
                                "(or omitted for infinite)")

    def time(self, nbytes: float) -> float:
        """Seconds to move ``nbytes`` over this link."""
        return self.latency + (nbytes / self.bandwidth if self.bandwidth else 0.0)


@dataclass(frozen=True)
class Platform:
    """Devices and links; construction completes links and checks consistency."""

    name: str
    devices: tuple[Device, ...]
    links: tuple[Link, ...] = ()
    default_link: Link | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.devices:
            raise PlatformError(f"platform {self.name!r} has no devices")
        names = [d.name for d in self.devices]
        for n in names:
            if names.count(n) > 1:
                raise PlatformError(f"platform {self.name!r}: device {n!r} is defined twice")
        for link in self.links:
            for end in (link.src, link.dst):
                if end not in names:
                    raise PlatformError(f"platform {self.name!r}: link {link.src}->{link.dst} names unknown device {end!r}")
            if link.src == link.dst:
                raise PlatformError(f"platform {self.name!r}: link from {link.src!r} to itself")
        table = self.link_table  # raises on missing pairs
        del table

    @cached_property
    def device(self) -> Mapping[str, Device]:
        """Devices by name."""
        return {d.name: d for d in self.devices}

    @cached_property
    def link_table(self) -> Mapping[tuple[str, str], Link]:
        """A link for every ordered pair of distinct devices."""
        given = {(l.src, l.dst): l for l in self.links}
        table: dict[tuple[str, str], Link] = {}
        for a in self.devices:
            for b in self.devices:
                if a.name == b.name:
                    continue
                link = given.get((a.name, b.name)) or given.get((b.name, a.name))
                if link is None and self.default_link is not None:
                    link = self.default_link
                if link is None:
                    raise PlatformError(
                        f"platform {self.name!r}: no link between {a.name!r} and {b.name!r} "
                        "(add one under links or set default_link)")
                table[(a.name, b.name)] = replace(link, src=a.name, dst=b.name)
        return table

    def transfer_time(self, src: str, dst: str, nbytes: float) -> float:
        """Seconds to move ``nbytes`` from device ``src`` to ``dst`` (0 on the same device)."""
        if src == dst:
            return 0.0
        return self.link_table[(src, dst)].time(nbytes)

    def shares_resource(self, a: str, b: str) -> bool:
        """Whether devices ``a`` and ``b`` can never run at the same time."""
        return bool(set(self.device[a].resources) & set(self.device[b].resources))

    def subset(self, names: Sequence[str], name: str | None = None) -> "Platform":
        """The platform cut down to the devices ``names`` (in platform order) and the links between them.

        >>> [d.name for d in load_platform("default").subset(["pim", "cpu0"]).devices]
        ['cpu0', 'pim']
        """
        unknown = set(names) - set(self.device)
        if unknown:
            raise PlatformError(f"platform {self.name!r} has no device {sorted(unknown)[0]!r}")
        keep = set(names)
        return Platform(name or self.name, tuple(d for d in self.devices if d.name in keep),
                        tuple(l for l in self.links if l.src in keep and l.dst in keep), self.default_link)

    def servers(self, count: int, network: Link) -> "Platform":
        """``count`` copies of this platform as servers (DiviML's setting): device and resource ``x`` of server
        ``k`` is ``x@s<k>``; links within a server are this platform's, every pair across servers takes
        ``network`` (its endpoints are ignored).

        >>> two = load_platform("cpu2gpu").servers(2, Link("*", "*", 5e-5, 1.25e9))
        >>> [d.name for d in two.devices], two.transfer_time("gpu0@s0", "gpu0@s1", 0) == 5e-5
        (['cpu@s0', 'gpu0@s0', 'gpu1@s0', 'cpu@s1', 'gpu0@s1', 'gpu1@s1'], True)
        """
        if count < 1:
            raise PlatformError(f"platform {self.name!r}: servers must be >= 1, got {count}")
        if count == 1:
            return self
        at = [lambda x, k=k: f"{x}@s{k}" for k in range(count)]
        devices = tuple(replace(d, name=on(d.name), resources=tuple(on(r) for r in d.resources))
                        for on in at for d in self.devices)
        links = [replace(l, src=on(a), dst=on(b)) for on in at for (a, b), l in self.link_table.items()]
        links += [replace(network, src=at[i](a.name), dst=at[j](b.name)) for i in range(count)
                  for j in range(i + 1, count) for a in self.devices for b in self.devices]
        return Platform(f"{self.name}-x{count}", devices, tuple(links))

    @cached_property
    def resources(self) -> tuple[str, ...]:
        """All resource names, in device order."""
        seen: dict[str, None] = {}
        for d in self.devices:
            for r in d.resources:
                seen.setdefault(r, None)
        return tuple(seen)


# ------------------------------------------------------------------------ YAML / dict I/O

_DEFAULT = {f.name: f.default for f in fields(Device)}


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class DeviceRecord(FileModel):
    """A device as platform and problem files write it: the fields of :class:`Device` (``resources`` may be
    one name)."""

    name: Name
    kind: Text = _DEFAULT["kind"]
    resources: Annotated[tuple[Text, ...], BeforeValidator(_names)] = ()
    memory_bytes: Count | None = None
    supported_ops: tuple[Text, ...] | None = None
    peak_flops: Finite = _DEFAULT["peak_flops"]
    mem_bandwidth: Finite = _DEFAULT["mem_bandwidth"]
    overhead_s: Finite = _DEFAULT["overhead_s"]
    threads: Count = _DEFAULT["threads"]
    execution_provider: Text = _DEFAULT["execution_provider"]
    simulated: Flag = _DEFAULT["simulated"]
    transfer_load: Text = _DEFAULT["transfer_load"]

    def device(self) -> Device:
        ops = self.supported_ops
        return Device(**{**dict(self), "supported_ops": None if ops is None else frozenset(ops)})


class DefaultLinkRecord(FileModel):
    """``default_link``: a link without endpoints."""

    latency: Finite = 0.0
    bandwidth: Finite | None = None
    transfer_scale: Finite | None = 1.0

    def link(self, src: str = "*", dst: str = "*") -> Link:
        return Link(src, dst, self.latency, self.bandwidth,
                    1.0 if self.transfer_scale is None else self.transfer_scale)


class LinkRecord(DefaultLinkRecord):
    """A link between two named devices."""

    src: Text
    dst: Text

    def link(self, src: str = "", dst: str = "") -> Link:
        return super().link(self.src, self.dst)


class ServersRecord(FileModel):
    """``servers``: the platform is one server of ``count`` identical ones, joined by ``network``."""

    count: whole(1, 64)  # type: ignore[valid-type]
    network: DefaultLinkRecord


class PlatformRecord(FileModel):
    """A platform file (README, "Platforms")."""

    name: Text = "platform"
    devices: list[DeviceRecord]
    links: list[LinkRecord] | None = None
    default_link: DefaultLinkRecord | None = None
    servers: ServersRecord | None = None


def platform_from_dict(data: Any, where: str = "platform") -> Platform:
    """Build a Platform from its YAML/JSON structure; every error names the file and the key."""
    record = parse(PlatformRecord, data, where, PlatformError)
    try:
        platform = Platform(name=record.name, devices=tuple(d.device() for d in record.devices),
                            links=tuple(l.link() for l in record.links or ()),
                            default_link=None if record.default_link is None else record.default_link.link())
        if record.servers is None:
            return platform
        return platform.servers(record.servers.count, record.servers.network.link())
    except PlatformError as exc:
        raise PlatformError(f"{where}: {exc}") from None


def platform_to_dict(platform: Platform) -> dict[str, Any]:
    """The YAML/JSON structure of a platform (only non-default device fields)."""
    defaults = Device(name="_")
    devs = []
    for d in platform.devices:
        row: dict[str, Any] = {"name": d.name}
        for f in fields(Device):
            v = getattr(d, f.name)
            if f.name == "name" or v == getattr(defaults, f.name):
                continue
            if f.name == "resources":
                v = list(v)
            elif f.name == "supported_ops":
                v = sorted(v)
            row[f.name] = v
        devs.append(row)
    out: dict[str, Any] = {"name": platform.name, "devices": devs, "links": [link_to_dict(l) for l in platform.links]}
    if platform.default_link is not None:
        out["default_link"] = {k: v for k, v in link_to_dict(platform.default_link).items() if k not in ("src", "dst")}
    return out


def link_to_dict(link: Link) -> dict[str, Any]:
    """The YAML/JSON structure of a link (``transfer_scale`` only when not 1)."""
    row: dict[str, Any] = {"src": link.src, "dst": link.dst, "latency": link.latency, "bandwidth": link.bandwidth}
    if link.transfer_scale != 1.0:
        row["transfer_scale"] = link.transfer_scale
    return row


CORES = "cores"
"""The preset made from this machine's cores when it is loaded (:func:`cores_platform`)."""


def usable_cpus() -> tuple[int, ...]:
    """The OS CPUs this process may run on (all of ``os.cpu_count()`` where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def cores_platform(count: int) -> Platform:
    """A host of ``count`` cores as a platform: its quarters, its halves and the whole, all real.

    Each device is one ONNX Runtime session with a thread per core it holds, so
    the solvers choose between running an operator on the whole host and running
    independent operators side by side on parts of it.  Parts of one core are
    ``cpu<k>``, the whole host ``cpu-par``, other parts ``cpu<a>-<b>`` (cores a to b):
    on two cores this is the ``cpu`` preset.  Cost-model numbers are analytic
    guesses that profiling replaces: a thread's 20 GFLOP/s at 90% parallel
    efficiency per doubling, memory bandwidth 1.5x per doubling.

    >>> [(d.name, d.resources) for d in cores_platform(2).devices]
    [('cpu0', ('core0',)), ('cpu1', ('core1',)), ('cpu-par', ('core0', 'core1'))]
    >>> [d.name for d in cores_platform(8).devices]
    ['cpu0-1', 'cpu2-3', 'cpu4-5', 'cpu6-7', 'cpu0-3', 'cpu4-7', 'cpu-par']
    """
    if count < 1:
        raise PlatformError(f"a host needs at least one core, got {count}")
    parts = [2 ** level for level in (2, 1, 0) if 2 ** level <= count]
    devices = []
    for n in parts:
        bounds = [round(i * count / n) for i in range(n + 1)]
        for a, b in zip(bounds, bounds[1:]):
            threads, doublings = b - a, math.log2(b - a)
            name = "cpu-par" if threads == count > 1 else f"cpu{a}" if threads == 1 else f"cpu{a}-{b - 1}"
            devices.append(Device(name, "cpu", tuple(f"core{c}" for c in range(a, b)), threads=threads,
                                  peak_flops=2e10 * threads * 0.9 ** doublings,
                                  mem_bandwidth=1e10 * 1.5 ** doublings, overhead_s=4e-6 * (1 + doublings)))
    return Platform(CORES, tuple(devices), default_link=Link("*", "*", 2e-6, 2e10))


def preset_names() -> tuple[str, ...]:
    """Names of the platforms shipped with hetsched (``cores`` is made from this machine when loaded)."""
    folder = ilr.files("scheduler") / "data" / "platforms"
    return tuple(sorted([CORES, *(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))]))


def load_platform(source: str | os.PathLike[str] | Mapping[str, Any] | Platform = "default") -> Platform:
    """Load a platform from a preset name, a YAML file, or an inline mapping."""
    if isinstance(source, Platform):
        return source
    if isinstance(source, Mapping):
        return platform_from_dict(dict(source))
    src = os.fspath(source)
    if os.path.isfile(src):
        where = src
        data = read_yaml(src, PlatformError)
    elif src == CORES:
        return cores_platform(len(usable_cpus()))
    elif src in preset_names():
        where = f"preset {src!r}"
        data = yaml.safe_load((ilr.files("scheduler") / "data" / "platforms" / f"{src}.yaml").read_text("utf-8"))
    else:
        raise PlatformError(f"platform {src!r} is neither a file nor a preset (presets: {', '.join(preset_names())})")
    return platform_from_dict(data, where)
