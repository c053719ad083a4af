"""Building blocks of the main job: resolve a model, build its problem, run and certify solvers.

The solver registry is passed in (``get_solver``), so this core module never imports
the ``solvers`` package; the CLI wires the two together.

Example
-------
>>> from solvers import get_solver
>>> p = build_problem("mlp", {"layers": "2"})
>>> schedules, bounds = run_solvers(p, ["greedy"], get_solver, time_limit=5)
>>> [s.solver for s in schedules]
['greedy']
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
from tqdm import tqdm

from . import optimize, zoo
from .batch import batch_copies
from .clone import clone_producers
from .bounds import Bound, all_bounds, bound_budget, period_bounds
from .config import SolverSpec
from .errors import HetschedError, ModelError
from .fileio import mark_used
from .graph import (TaskGraph, densify_sparse, fix_input_shapes_in_place, load_model_mapped, name_nodes_in_place,
                    real_inputs, subgraphs, task_graph_from_onnx, value_bytes)
from .inputs import Feeds, check_inputs, shapes_of
from .optimize import (ModelBytes, observed_types, optimize_model, ort_refusal, resolve_level, session_bytes,
                       session_data, unpacked)
from .platform import Platform, load_platform
from .problem import Problem
from .profile_store import get_profile
from .profiling import Profile, problem_from_profile, real_devices
from .schedule import Period, Schedule, validate
from .semantics import period

GetSolver = Callable[..., Callable[..., Schedule]]


def resolve_model(spec: str, params: Mapping[str, Any] | None = None, cache_dir: str | None = None
                  ) -> tuple[onnx.ModelProto, str, dict[str, np.ndarray]]:
    """A zoo model name (built with ``params``) or a path to an .onnx file; returns (model, label, values
    beside it): a file's large values, from :data:`~scheduler.optimize.FILE_BACKED_BYTES` of them on, stay in
    the files beside it (:func:`~scheduler.graph.load_model_mapped`), the model holding placeholders; so do a
    large zoo model's, kept in ``cache_dir`` (:func:`_zoo_model`)."""
    names = [m.name for m in zoo.list_models()] + list(zoo.PRESETS)
    if spec in names:
        model, values = _zoo_model(spec, dict(params or {}), cache_dir)
        return model, spec, values
    if params:
        raise ModelError(f"model parameters apply to zoo models only, not to {spec!r}")
    if os.path.isfile(spec):
        proto, values = load_model_mapped(spec, optimize.FILE_BACKED_BYTES)
        return proto, os.path.splitext(os.path.basename(spec))[0], values
    raise ModelError(f"model {spec!r} is neither a zoo model ({', '.join(names)}) nor an existing .onnx file")


def _zoo_model(name: str, params: Mapping[str, Any], cache_dir: str | None
               ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Zoo model ``name`` and the values beside it: one of :data:`~scheduler.optimize.FILE_BACKED_BYTES` of
    values or more built once into ``cache_dir`` (``zoo/<key>.onnx`` and its values file,
    :func:`~scheduler.zoo.build_key`) and read from there as a model file is, its values mapped
    (``gpt2-small``: 3.8 s of building it and 1.3 s of writing its values to a temporary file a run); a smaller
    one, or any without ``cache_dir`` or where it cannot be written, built in memory.  An entry that cannot be
    read is built again."""
    if cache_dir is None:
        return zoo.build(name, **params), {}
    path = os.path.join(cache_dir, "zoo", f"{zoo.build_key(name, **params)}.onnx")
    if os.path.isfile(path):
        mark_used(path)
        try:
            return load_model_mapped(path, optimize.FILE_BACKED_BYTES)
        except ModelError:  # its values file gone or cut: build it again
            pass
    model = zoo.build(name, **params)
    if sum(value_bytes(t) for t in model.graph.initializer) < optimize.FILE_BACKED_BYTES:
        return model, {}
    try:  # write_model makes the folder
        optimize.write_model(path, model, beside=True)
    except OSError:  # a cache that cannot take it (a full disk, a read-only folder): as without one
        return model, {}
    del model  # read back as a later run reads it: the same bytes, so the same profile keys
    return load_model_mapped(path, optimize.FILE_BACKED_BYTES)


def tqdm_progress(enabled: bool, what: str = "") -> Callable[[str, int], Callable[[], None]] | None:
    """A progress factory for long loops: ``progress(label, total)`` returns a tick function.

    On a terminal, a bar per loop; else (a log, a pipe) one line per loop on stderr, ``[hetsched] <what>:
    <label> (<total> runs)``, so that a log shows what a long run is doing (profiling ``bert-base`` takes
    minutes) without a bar's redrawn lines."""
    if not enabled:
        return None
    if not sys.stderr.isatty():
        def line(label: str, total: int) -> Callable[[], None]:
            print(f"[hetsched] {what + ': ' if what else ''}{label} ({total} runs)", file=sys.stderr, flush=True)
            return _no_tick
        return line

    def start(label: str, total: int) -> Callable[[], None]:
        bar = tqdm(total=total, desc=label, unit="run", leave=False)

        def tick() -> None:
            bar.update()
            if bar.n >= total:
                bar.close()
        return tick
    return start


def _no_tick() -> None:
    return None


@dataclass(frozen=True)
class ProfileOptions:
    """Where profiles are stored and how they are measured."""

    folder: str = "profiles"
    repeats: int = 20
    warmup: int = 3
    force: bool = False


def load_original(spec: str, params: Mapping[str, Any] | None = None,
                  input_shapes: Mapping[str, Sequence[int]] | None = None, *, batch: int = 1,
                  inputs: Feeds | None = None, cache_dir: str | None = None
                  ) -> tuple[onnx.ModelProto | ModelBytes, str]:
    """The user's model with named nodes and fixed input shapes (what plain ORT baselines run), and its label;
    ``batch`` > 1: that many copies of it side by side (:mod:`scheduler.batch`); ``inputs``: the values the
    user gave for its inputs (:mod:`scheduler.inputs`), checked against it, their shapes fixing its own.
    A model file whose large values stay in their files (:func:`resolve_model`; a large zoo model's in
    ``cache_dir``) comes as ModelBytes of those values."""
    model, label, beside = resolve_model(spec, params, cache_dir)
    # the model is ours (resolve_model made or read it): changed in place, not copied (a large model's peak)
    densify_sparse(model.graph)
    name_nodes_in_place(model)
    if inputs is not None:
        if batch != 1:
            raise ModelError("given inputs apply to one inference (batch 1); the batch's copies have their own")
        check_inputs(model, inputs)
        shapes = {name: list(dims) for name, dims in (input_shapes or {}).items()}
        tensors = {name for name, vi in real_inputs(model.graph).items() if vi.type.HasField("tensor_type")}
        for name, dims in shapes_of(inputs).items():
            if name in tensors and shapes.setdefault(name, dims) != dims:  # an optional's value: its own shape
                raise ModelError(f"--input-shape gives {name!r} shape {shapes[name]}, but its given value has "
                                 f"shape {dims}")
        input_shapes = shapes
    declared = [copy.deepcopy(vi) for vi in model.graph.input]
    fix_input_shapes_in_place(model, input_shapes)
    if list(model.graph.input) != declared and any(subgraphs(n) for n in model.graph.node):
        model = _declared_if_refused(model, declared, label, given=inputs is not None, beside=beside)
    model = batch_copies(model, batch)
    label = label if batch == 1 else f"{label}-batch{batch}"
    return _joined(model, beside), label


def _joined(model: onnx.ModelProto, beside: Mapping[str, np.ndarray]) -> onnx.ModelProto | ModelBytes:
    """``model`` with the values ``beside`` it that its placeholders stand for (ModelBytes), or as it is when
    there are none."""
    return session_bytes(model, shared=dict(beside)) if beside else model


def _declared_if_refused(fixed: onnx.ModelProto, declared: Sequence[onnx.ValueInfoProto], label: str,
                         given: bool, beside: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """``fixed``; or, when ONNX Runtime refuses this control-flow model with its input dimensions fixed but takes
    it with its inputs as ``declared``, a copy with those inputs, where every run takes the user's values
    (``given``), whose shapes fix the dimensions.  ``beside``: the values of the model's placeholders.

    ORT type-checks every branch of an ``If`` against the inputs' declared sizes when it optimises a
    model, the branches a run never takes too: silero-vad's 8 kHz branch fails that check once its
    input's length is fixed at 512, and runs at that length.  Checked at ORT's highest level, which
    the optimisation and the plain baselines may use: one more session of the model, made only when
    fixing changed a control-flow model's inputs.
    """
    def refusal(model: onnx.ModelProto) -> str | None:
        return ort_refusal(_joined(model, beside), "all", label)

    refused = refusal(fixed)
    if refused is None:
        return fixed
    out = copy.deepcopy(fixed)
    del out.graph.input[:]
    out.graph.input.extend(declared)
    if refusal(out) is not None:
        return fixed
    if not given:
        raise ModelError(f"{refused} (with its input dimensions fixed; as declared it loads: give the inputs' "
                         "values with --inputs, or inputs: in a run config, and they stay as declared)")
    return out


def optimized_cache(profile_folder: str) -> str:
    """Where optimised models are cached: beside the stored profiles."""
    return os.path.join(profile_folder, "optimized")


def load_graph(spec: str, params: Mapping[str, Any] | None = None,
               input_shapes: Mapping[str, Sequence[int]] | None = None, optimization: str = "none",
               cache_dir: str | None = None, *, batch: int = 1, clone: bool = False,
               inputs: Feeds | None = None, as_data: bool = False,
               original: tuple[ModelBytes, str] | None = None) -> tuple[onnx.ModelProto | ModelBytes, TaskGraph]:
    """The model ORT runs at ``optimization`` and its task graph (dynamic input dimensions fixed by ``input_shapes``).

    The returned model is the one to profile, cut and replay (with ORT's
    optimisations off); tensor shapes come from a run of it.  ``clone`` copies its
    cheap shared nodes once per reader (:mod:`scheduler.clone`).  A model ORT cannot
    load is refused here with one line naming the problem.  ``inputs``: the user's input values, which the run
    that gives tensor types uses (random ones otherwise).  ``as_data``: the model is returned as its
    :func:`~scheduler.optimize.session_data` (what replays take; large values in a file), its proto let go.
    ``original``: the user's model already loaded (see :func:`_model_data_graph`).
    """
    model, _, graph = _model_data_graph(spec, params, input_shapes, optimization, cache_dir, batch, clone, inputs,
                                        as_data, original)
    return model, graph


def _model_data_graph(spec: str, params: Mapping[str, Any] | None, input_shapes: Mapping[str, Sequence[int]] | None,
                      optimization: str, cache_dir: str | None, batch: int, clone: bool, inputs: Feeds | None,
                      as_data: bool = False, original: tuple[ModelBytes, str] | None = None
                      ) -> tuple[onnx.ModelProto | ModelBytes, ModelBytes, TaskGraph]:
    """:func:`load_graph`'s model and graph, and the model's :func:`~scheduler.optimize.session_data`, which
    the run that types the graph used and profiling uses again (a large model's values put in a file once).
    The graph is read off the session data's model, whose large values are placeholders (the same graph), so
    that ``as_data`` lets the proto go before the sessions that type and profile it (a 0.5 GiB MLP's
    ``hetsched run`` peaked at 2.8x its size with the proto held beside them).  ``original``: the user's
    model as :func:`load_original` and ``session_data`` made it from these arguments, and its label, taken
    instead of loading it again (``gpt2-small`` took 10 s to build); the model returned is then ModelBytes."""
    model, label = original or load_original(spec, params, input_shapes, batch=batch, inputs=inputs,
                                             cache_dir=cache_dir)
    had_nodes = bool(unpacked(model)[0].graph.node)
    model = optimize_model(model, optimization, cache_dir=cache_dir, label=label)
    if had_nodes and not unpacked(model)[0].graph.node:
        raise ModelError(f"model {label!r} computes constants only: ONNX Runtime's optimisation at level "
                         f"{optimization!r} folds every one of its nodes, which leaves nothing to place")
    if clone:  # after ORT's optimisation, whose common-subexpression elimination would merge the copies
        proto, values = unpacked(model)
        model = clone_producers(proto) if not values else session_bytes(clone_producers(proto), shared=values)
    data = session_data(model, consume=as_data)
    if as_data:
        model = data
    graph = task_graph_from_onnx(unpacked(data)[0], name=label, types=observed_types(data, inputs, label=label))
    return model, data, graph


def graph_level(optimization: str, platform: Platform) -> str:
    """The concrete optimisation level for a platform (``auto``: see :func:`scheduler.optimize.resolve_level`)."""
    return resolve_level(optimization, tuple(d.execution_provider for d in real_devices(platform)))


def measure(spec: str, params: Mapping[str, Any] | None = None,
            platform: str | Mapping[str, Any] | Platform = "default",
            input_shapes: Mapping[str, Sequence[int]] | None = None, options: ProfileOptions = ProfileOptions(),
            progress: bool = False, optimization: str = "none", *, batch: int = 1,
            clone: bool = False, inputs: Feeds | None = None) -> tuple[TaskGraph, Platform, Profile, bool]:
    """Profile a model on a platform's real devices (or reuse the stored profile): graph, platform, profile, reused."""
    return _load(spec, params, platform, input_shapes, options, progress, optimization, profiled=True,
                 batch=batch, clone=clone, inputs=inputs)[1:]


def _load(spec: str, params: Mapping[str, Any] | None, platform: str | Mapping[str, Any] | Platform,
          input_shapes: Mapping[str, Sequence[int]] | None, options: ProfileOptions, progress: bool,
          optimization: str, profiled: bool, batch: int = 1, clone: bool = False, inputs: Feeds | None = None,
          as_data: bool = False, original: tuple[ModelBytes, str] | None = None
          ) -> tuple[onnx.ModelProto | ModelBytes, TaskGraph, Platform, Profile | None, bool]:
    """Model (at the platform's optimisation level), graph, platform, and the profile when ``profiled``."""
    plat = load_platform(platform)
    model, data, graph = _model_data_graph(spec, params, input_shapes, graph_level(optimization, plat),
                                           optimized_cache(options.folder), batch, clone, inputs, as_data, original)
    if not profiled:
        return model, graph, plat, None, False
    prof, reused = get_profile(data, graph, plat, folder=options.folder, repeats=options.repeats,
                               warmup=options.warmup, force=options.force, progress=tqdm_progress(progress, "profile"),
                               feeds=inputs)
    return model, graph, plat, prof, reused


def load_problem(spec: str, params: Mapping[str, Any] | None = None,
                 platform: str | Mapping[str, Any] | Platform = "default",
                 input_shapes: Mapping[str, Sequence[int]] | None = None, costs: str = "model",
                 profile: ProfileOptions = ProfileOptions(), progress: bool = False,
                 optimization: str = "none", *, batch: int = 1, clone: bool = False,
                 inputs: Feeds | None = None, as_data: bool = False,
                 original: tuple[ModelBytes, str] | None = None) -> tuple[onnx.ModelProto | ModelBytes, Problem]:
    """The model to replay and its problem on a platform, with modelled (``costs="model"``) or measured
    (``"profile"``) costs.

    ``optimization`` (``none``, ``basic``, ``extended``, ``all`` or ``auto``) is the
    ORT graph optimisation level whose output becomes the task graph (and the model returned);
    ``batch`` > 1 makes the model that many copies of itself (:mod:`scheduler.batch`); ``clone`` copies its
    cheap shared nodes once per reader (:mod:`scheduler.clone`); ``inputs``: the user's input values
    (:mod:`scheduler.inputs`), which every run of the model uses; ``as_data``: the model is returned as its
    :func:`~scheduler.optimize.session_data`, what replays take (:func:`load_graph`); ``original``: the
    user's model already loaded (see :func:`_model_data_graph`).
    """
    if costs not in ("model", "profile"):
        raise HetschedError(f"unknown cost source {costs!r} (known: model, profile)")
    model, graph, plat, prof, _ = _load(spec, params, platform, input_shapes, profile, progress, optimization,
                                        profiled=costs == "profile", batch=batch, clone=clone, inputs=inputs,
                                        as_data=as_data, original=original)
    if prof is None:
        return model, Problem.from_graph(graph, plat, name=graph.name)
    return model, problem_from_profile(graph, plat, prof)


def build_problem(spec: str, params: Mapping[str, Any] | None = None,
                  platform: str | Mapping[str, Any] | Platform = "default",
                  input_shapes: Mapping[str, Sequence[int]] | None = None, costs: str = "model",
                  profile: ProfileOptions = ProfileOptions(), progress: bool = False,
                  optimization: str = "none", *, batch: int = 1, clone: bool = False,
                  inputs: Feeds | None = None) -> Problem:
    """The problem alone of :func:`load_problem`."""
    return load_problem(spec, params, platform, input_shapes, costs, profile, progress, optimization, batch=batch,
                        clone=clone, inputs=inputs)[1]


BOUND_TOLERANCE = 1e-9
"""Relative excess of a bound over a makespan that is still taken as float rounding, not unsoundness."""


def _unsound(bound: float, value: float) -> bool:
    return bound > value * (1 + BOUND_TOLERANCE) + 1e-15


def certify_schedules(problem: Problem, schedules: Sequence[Schedule], bounds: Sequence[Bound]) -> list[Schedule]:
    """Give every schedule the best lower bound known for the problem, and say which it is.

    Sound bounds on the optimum hold for every schedule of the problem, so the
    best of ``bounds`` and of every schedule's own (e.g. an exact solver's proven
    bound) serves them all.  (A solver certifies its own placement with the classic
    bounds: :func:`solvers.common.certify_placement`.)

    A bound above a schedule's makespan is a bug, never a result: it raises
    (a gap rounded up to 0 would hide it).
    """
    own = [Bound(s.info.get("bound", s.solver), s.lower_bound) for s in schedules if s.lower_bound is not None]
    best = max(list(bounds) + own, key=lambda b: b.value, default=None)
    out = []
    for s in schedules:
        if best is not None and (s.lower_bound is None or best.value > s.lower_bound):
            s = replace(s, lower_bound=best.value, info={**s.info, "bound": best.name})
        if s.found and best is not None and _unsound(best.value, s.makespan):
            raise HetschedError(f"internal error: lower bound {best.name} ({best.value:.9g} s) is above the "
                                f"makespan of {s.solver} ({s.makespan:.9g} s); the bound is unsound, please report")
        out.append(s)
    return out


def certify_periods(problem: Problem, schedules: Sequence[Schedule], replicas: int,
                    bounds: Sequence[Bound]) -> list[Schedule]:
    """Give every schedule found its period (``replicas`` copies of its placement, unless the solver placed
    copies itself) and the best period bound known: of ``bounds`` and of every solver's own; an unsound
    one raises, as in :func:`certify_schedules`."""
    best = max([b.value for b in bounds] + [s.period.bound or 0.0 for s in schedules if s.period is not None],
               default=0.0)
    out = []
    for s in schedules:
        if s.found:
            own = s.period or Period(period(problem, s.placement) * replicas, None, replicas)
            s = replace(s, period=replace(own, bound=max(best, own.bound or 0.0)))
            if _unsound(s.period.bound, s.period.value):
                raise HetschedError(f"internal error: period bound {s.period.bound:.9g} s is above the period of "
                                    f"{s.solver} ({s.period.value:.9g} s); the bound is unsound, please report")
        out.append(s)
    return out


def run_solvers(problem: Problem, solvers: Sequence[str | SolverSpec], get_solver: GetSolver, *,
                time_limit: float | None = None, seed: int = 0, lp_bounds: bool = True, replicas: int | None = None,
                stage: Callable[[str], None] | None = None) -> tuple[list[Schedule], list[Bound]]:
    """Run each solver on ``problem``; every schedule is validated again and certified with the best bound.
    Returns the schedules and the problem's bounds.

    The time limits are budgets for solving and bounding together: the LP bounds' share
    (:func:`~scheduler.bounds.bound_budget` of their sum) is taken from each in proportion.
    ``replicas`` makes it a throughput run (:func:`certify_periods`; the LP bounds' share is
    split between the makespan and the period bound).  ``stage(name)`` is called before each solver.
    """
    specs = [SolverSpec(name=s) if isinstance(s, str) else s for s in solvers]
    limits = [spec.time_limit or time_limit for spec in specs]
    total = None if None in limits else sum(limits)
    budget = bound_budget(total) if lp_bounds else 0.0
    share = 1.0 - budget / total if total else 1.0
    out = []
    for spec, limit in zip(specs, limits):
        if stage is not None:
            stage(spec.name)
        solve = get_solver(spec.name, **spec.options)
        sched = solve(problem, time_limit=None if limit is None else limit * share, seed=seed)
        errors = validate(problem, sched)
        if errors:
            raise HetschedError(f"solver {spec.name!r} returned an invalid schedule: {errors[0]}")
        out.append(sched)
    split = 1 if replicas is None else 2
    bounds = all_bounds(problem, lp=lp_bounds, time_limit=budget / split)
    out = certify_schedules(problem, out, bounds)
    if replicas is not None:
        out = certify_periods(problem, out, replicas,
                              period_bounds(problem, replicas, lp=lp_bounds, time_limit=budget / split))
    return out, bounds


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits and ``-_.@`` replaced, for file names."""
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
