"""``hetsched run``: one YAML config from model to report (profile, solve, bound, replay, report).

Stages: build the model and its problem (modelled, profiled, or read from a
problem file), check memory feasibility, compute the lower bounds once, run every
solver (exact solvers get the objective and replicas), solve again on the real
devices alone and on each set of them that shares no core (latency; more
candidates for the replay), replay the best placements on ONNX Runtime against
plain ONNX Runtime, and write ``<output_dir>/<run-id>/``: the resolved ``config.yaml``,
``problem.json``, ``schedules/``, ``summary.csv``, ``report.md`` with the Gantt
chart of the best schedule and the gap chart, and ``replay.json``.  Everything is
written into a hidden folder renamed into place at the end, so a failed run
leaves nothing behind and a run never overwrites another.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd
import yaml

from .config import RunConfig, SolverCatalog, SolverSpec
from .errors import HetschedError
from .fileio import write_json, write_text
from .inputs import load_inputs
from .optimize import session_data
from .pipeline import (ProfileOptions, graph_level, load_graph, load_original, load_problem, optimized_cache,
                       run_solvers, safe_name, tqdm_progress)
from .recommend import as_candidate, recommend
from .plots import gantt, gap_chart
from .problem import Problem, read_problem, write_problem
from .problem_views import disjoint_problems, host_problem
from .schedule import Schedule, write_schedule
from .stream import recommend_stream
from .tables import format_candidates, format_stream_candidates, format_table, summary_table


@dataclass(frozen=True)
class RunResult:
    """Where a run was written and what it found."""

    directory: str
    problem: Problem
    schedules: tuple[Schedule, ...]
    table: pd.DataFrame
    best: Schedule
    replay: Mapping[str, Any] | None
    host_table: pd.DataFrame | None = None  # the solvers on the real devices alone, when the platform has others
    stream: Mapping[str, Any] | None = None  # a throughput run's streamed candidates (scheduler.stream)


def _stage(progress: bool, text: str) -> None:
    if progress:
        print(f"[hetsched] {text}", file=sys.stderr, flush=True)


def _for_objective(spec: SolverSpec, config: RunConfig, catalog: SolverCatalog) -> SolverSpec:
    """``spec`` with the run's objective and replicas for a solver that takes them (its own options win)."""
    if config.objective != "throughput" or "objective" not in catalog.options(spec.name):
        return spec
    return spec.model_copy(update={"options": {"objective": "throughput", "replicas": config.replicas,
                                               **spec.options}})


def _names_device(spec: SolverSpec, names: set[str]) -> bool:
    """Whether a solver spec names one of the devices ``names``: in its options, or as ``single:<device>``."""
    return _names_any(spec.options, names) or _names_any(spec.name.partition(":")[2], names)


def _names_any(value: Any, names: set[str]) -> bool:
    """Whether a solver option value (a device name, or lists / mappings of them) names one of ``names``."""
    if isinstance(value, str):
        return value in names
    if isinstance(value, Mapping):
        return any(_names_any(v, names) for v in (*value.keys(), *value.values()))
    if isinstance(value, (list, tuple)):
        return any(_names_any(v, names) for v in value)
    return False


def _solve(problem: Problem, config: RunConfig, catalog: SolverCatalog, specs: Sequence[SolverSpec], progress: bool,
           where: str = "", lp_bounds: bool | None = None) -> tuple[list[Schedule], list[Any]]:
    """Solve with every spec, validate, bound and certify in the run's objective: schedules and bounds."""
    n = len(problem.devices)
    _stage(progress, f"{len(problem.tasks)} tasks on {n} device{'s' * (n != 1)}{where}")
    return run_solvers(problem, [_for_objective(s, config, catalog) for s in specs], catalog.get,
                       time_limit=config.time_limit, seed=config.seed,
                       lp_bounds=config.lp_bounds if lp_bounds is None else lp_bounds,
                       replicas=config.replicas if config.objective == "throughput" else None,
                       stage=lambda name: _stage(progress, f"solving{where}: {name}"))


def _disjoint_candidates(problem: Problem, config: RunConfig, catalog: SolverCatalog,
                         progress: bool) -> list[Schedule]:
    """Every solver's schedule on each set of ``problem``'s real devices that share no core
    (:func:`scheduler.problem_views.disjoint_problems`), as replay candidates of ``problem``; latency only
    (solvers whose options name a device left out do not run there; no LP bounds: only the placements count)."""
    out = []
    for sub in disjoint_problems(problem) if config.objective == "latency" else []:
        left_out = set(problem.devices) - set(sub.devices)
        specs = [s for s in config.solvers if not _names_device(s, left_out)]
        schedules, _ = _solve(sub, config, catalog, specs, progress, f" on {'+'.join(sub.devices)}", lp_bounds=False)
        out += [as_candidate(problem, sub, s) for s in schedules if s.found]
    return out


def _best(schedules: Sequence[Schedule], config: RunConfig) -> Schedule:
    """The best schedule found (period for throughput, makespan otherwise); an error naming every
    solver's reason when none found one."""
    found = [s for s in schedules if s.found]
    if not found:
        reasons = "; ".join(f"{s.solver}: {s.info.get('reason', s.status)}" for s in schedules)
        raise HetschedError(f"{config.name}: no solver found a schedule ({reasons})")
    value = (lambda s: s.period.value) if config.objective == "throughput" else (lambda s: s.makespan)
    return min(found, key=lambda s: (value(s), s.status != "optimal"))  # a tie goes to a proven optimum


def _measured_column(table: pd.DataFrame, problem: Problem, replayed: Mapping[str, Any]) -> None:
    """Add ``replay_measured_s`` to a solver table: the replayed candidates of ``problem``'s platform."""
    measured = {c["solver"]: c["measured_makespan_s"] for c in replayed["candidates"]
                if c["solver"] and c["platform"] == problem.platform.name}
    table["replay_measured_s"] = [measured.get(name) for name in table["solver"]]


def _check_writable(folder: str) -> None:
    """Fail before any work when ``folder`` could not hold the results (it is created only at the end)."""
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        raise HetschedError(f"output folder {folder!r} cannot be written ({path!r} is not a writable folder)")


def execute_run(config: RunConfig, catalog: SolverCatalog, *, progress: bool = True) -> RunResult:
    """Run the whole job of ``config`` and write its folder atomically (see the module docstring)."""
    _check_writable(config.output_dir)
    spec = config.model.zoo or config.model.path or ""
    feeds = load_inputs(config.model.inputs) if config.model.inputs else None
    # kept as the bytes sessions take, its large values beside them (from 64 MiB on in a file that sessions map):
    # the model's proto held them once more; made first, before the optimised model is held beside it
    proto, label = load_original(spec, config.model.params, config.model.input_shapes, batch=config.model.batch,
                                 inputs=feeds, cache_dir=optimized_cache(config.profile.folder))
    original = session_data(proto, consume=True)
    del proto  # the problem's model is optimised from ``original``: the user's model is loaded once
    if config.costs == "problem":
        problem = read_problem(config.problem)
        level = graph_level(config.graph_optimization, problem.platform)
        model, graph = load_graph(spec, config.model.params, config.model.input_shapes, level,
                                  optimized_cache(config.profile.folder), batch=config.model.batch,
                                  clone=config.model.clone, inputs=feeds, as_data=True, original=(original, label))
        missing = set(problem.tasks) ^ {t.name for t in graph.tasks}
        if missing:
            raise HetschedError(f"{config.problem}: the problem's tasks are not the nodes of model {spec!r} "
                                f"(at ORT optimisation {level}): {len(missing)} differ, e.g. {sorted(missing)[0]!r}")
    else:
        _stage(progress, f"costs: {config.costs}")
        model, problem = load_problem(spec, config.model.params, config.platform, config.model.input_shapes,
                                      costs=config.costs, progress=progress,
                                      optimization=config.graph_optimization, batch=config.model.batch,
                                      clone=config.model.clone, inputs=feeds,
                                      profile=ProfileOptions(config.profile.folder, config.profile.repeats,
                                                             config.profile.warmup, config.profile.force),
                                      as_data=True, original=(original, label))  # its values held once
        level = graph_level(config.graph_optimization, problem.platform)
    _stage(progress, f"model {spec} (ORT graph optimisation: {level})")
    why = problem.infeasibility()
    if why:
        raise HetschedError(f"{config.name}: infeasible: {why}")
    schedules, bounds = _solve(problem, config, catalog, config.solvers, progress)
    table = summary_table(schedules, config.objective)
    best = _best(schedules, config)
    host = host_problem(problem) if config.replay.enabled else None
    host_schedules: list[Schedule] = []
    host_bounds = bounds
    if host is not None:
        # the recommendation must run for real: solve again on the real devices alone; the platform's
        # simulated devices stay a what-if (solvers whose options name one cannot run here)
        simulated = set(problem.devices) - set(host.devices)
        specs = [s for s in config.solvers if not _names_device(s, simulated)]
        host_schedules, host_bounds = _solve(host, config, catalog, specs, progress, " on the real devices")
        host_table = summary_table(host_schedules, config.objective)
        host_best = _best(host_schedules, config)
    throughput = config.objective == "throughput"
    replayed = None
    tmp_export = None
    run_id = f"{safe_name(config.name)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    final = os.path.join(config.output_dir, run_id)
    tmp = os.path.join(config.output_dir, f".tmp-{run_id}")
    os.makedirs(tmp)
    streamed = None
    try:
        if config.replay.enabled and throughput:
            streamed = recommend_stream(original, model, host or problem, host_schedules if host else schedules,
                                        candidates=config.replay.candidates, inferences=config.replay.inferences,
                                        warmup=config.replay.inferences // 5, opt_level=config.replay.opt_level,
                                        tolerance=config.replay.tolerance, seed=config.seed,
                                        stage=lambda text: _stage(progress, text), feeds=feeds,
                                        rounds=config.replay.rounds)
            write_json(os.path.join(tmp, "stream.json"), streamed)
        elif config.replay.enabled:
            tmp_export = os.path.join(tmp, "deploy") if config.replay.export else None
            apart = _disjoint_candidates(host or problem, config, catalog, progress)
            replayed = recommend(original, model, host or problem, (host_schedules if host else schedules) + apart,
                                 simulated=(problem, schedules) if host else None,
                                 candidates=config.replay.candidates,
                                 key=(lambda s: s.period.value) if throughput else None,
                                 repeats=config.replay.repeats, rounds=config.replay.rounds,
                                 warmup=config.replay.warmup,
                                 opt_level=config.replay.opt_level, tolerance=config.replay.tolerance,
                                 seed=config.seed, export=tmp_export, level=level,
                                 progress=tqdm_progress(progress and sys.stderr.isatty()),
                                 stage=lambda text: _stage(progress, text), feeds=feeds, bounds=host_bounds)
            if replayed.get("export"):
                replayed = {**replayed, "export": os.path.join(final, "deploy")}
            _measured_column(table, problem, replayed)
            if host is not None:
                _measured_column(host_table, host, replayed)
            write_json(os.path.join(tmp, "replay.json"), replayed)
        _stage(progress, "writing results")
        write_text(os.path.join(tmp, "config.yaml"), yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        write_problem(problem, os.path.join(tmp, "problem.json"))
        for s in schedules:
            write_schedule(s, os.path.join(tmp, "schedules", f"{safe_name(s.solver)}.json"))
        write_text(os.path.join(tmp, "summary.csv"), table.to_csv(index=False))
        gantt(problem, best, os.path.join(tmp, "gantt.png"))
        found = [s for s in schedules if s.found]
        gaps = [((s.period and s.period.gap) if throughput else s.gap) or 0.0 for s in found]
        gap_chart([s.solver for s in found], gaps, os.path.join(tmp, "gap.png"),
                  title=f"{problem.label}: {'period' if throughput else 'makespan'} gap to the lower bound")
        if host is not None:
            write_problem(host, os.path.join(tmp, "host", "problem.json"))
            for s in host_schedules:
                write_schedule(s, os.path.join(tmp, "host", "schedules", f"{safe_name(s.solver)}.json"))
            write_text(os.path.join(tmp, "host", "summary.csv"), host_table.to_csv(index=False))
            gantt(host, host_best, os.path.join(tmp, "host", "gantt.png"))
        write_text(os.path.join(tmp, "report.md"), _report(config, problem, table, best, bounds, replayed,
                                                           (host, host_table) if host else None, streamed))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunResult(final, problem, tuple(schedules), table, best, replayed,
                     host_table if host is not None else None, streamed)


PROFILE_MISMATCH = 0.2
"""Plain ONNX Runtime measured this far from the profile's prediction of it: the profile is out of date."""


def profile_line(config: RunConfig, replayed: Mapping[str, Any]) -> str | None:
    """A warning when the run's plain ONNX Runtime timing is more than :data:`PROFILE_MISMATCH` off the
    profile's prediction of it: the profile was measured under another load (a profile taken in one slow
    minute drifts nowhere, so profiling's own check cannot see it), and the predictions may be off alike.
    With ``costs: model`` the same miss says that the roofline's estimate of the real devices is what is off
    (silero-vad: 8 us predicted, 194 us measured), and how to measure them instead."""
    error = replayed["candidates"][-1].get("replay_prediction_error")  # the plain ORT row
    if config.costs not in ("profile", "model") or error is None or abs(error) <= PROFILE_MISMATCH:
        return None
    if config.costs == "model":
        return (f"warning: plain ONNX Runtime measured {error:+.0%} against the cost model's prediction of it; "
                "costs: model estimates the real devices with a roofline, so the predictions and the headroom may "
                "be off by as much (set costs: profile to measure them)")
    return (f"warning: plain ONNX Runtime measured {error:+.0%} against the profile's prediction of it; the host's "
            "load differs from when the model was profiled, and the predictions may be off by as much "
            "(set profile: {force: true} to measure it again)")


def noise_line(replayed: Mapping[str, Any]) -> str | None:
    """One sentence when the fastest measured candidate was a placement that did not beat plain ONNX
    Runtime beyond this run's noise (so plain ORT is recommended; :func:`scheduler.recommend.recommend`)."""
    fastest = replayed.get("fastest_measured") or {}
    interval = fastest.get("speedup_interval")
    if interval is None or fastest["candidate"] == replayed["recommended"]:
        return None
    return (f"the fastest measured, {fastest['candidate']}, is {interval[0]:.2f}x-{interval[1]:.2f}x plain ONNX "
            "Runtime (90% bootstrap interval): not faster beyond this run's noise, so plain ONNX Runtime is "
            "recommended")


def _sentence(line: str) -> str:
    """A one-line message (``noise_line`` and its kin, printed as they are) as a sentence of the report."""
    return line[0].upper() + line[1:] + "."


def what_if_line(replayed: Mapping[str, Any]) -> str | None:
    """One sentence on the simulated devices' what-if (see :func:`scheduler.recommend.recommend`), if any."""
    what = replayed.get("what_if")
    if not what:
        return None
    if what["candidate"] is None:
        return f"with the simulated devices of {what['platform']}: no solver placed anything on them"
    return (f"with the simulated devices of {what['platform']}: {what['candidate']}, "
            f"{what['virtual_makespan_s'] * 1e3:.4f} ms on a virtual timeline (real segments measured, simulated "
            f"ones modelled), {what['speedup_vs_recommended']:.2f}x the recommendation")


def _report(config: RunConfig, problem: Problem, table: pd.DataFrame, best: Schedule, bounds: Sequence[Any],
            replayed: Mapping[str, Any] | None, host: tuple[Problem, pd.DataFrame] | None = None,
            streamed: Mapping[str, Any] | None = None) -> str:
    g = problem.graph
    lines = [f"# Run `{config.name}`", "",
             f"Model `{problem.label}`: {len(g.tasks)} tasks, {len(g.edges)} edges; platform "
             f"`{problem.platform.name}` ({', '.join(problem.devices)}); costs: {config.costs}; objective: "
             f"{config.objective}" + (f" with {config.replicas} replicas" if config.replicas > 1 else "") + ".", "",
             "## Solvers", "", "```", format_table(table), "```", "",
             "Lower bounds: " + ", ".join(f"{b.name} {b.value * 1e3:.4f} ms" for b in bounds) + ".", "",
             f"## Best schedule: `{best.solver}` ({best.status})", "", "![gantt](gantt.png)", "",
             "![gap to the lower bound](gap.png)", ""]
    if host is not None:
        lines += ["## On the real devices alone", "",
                  f"A placement that uses a simulated device cannot be measured, so the solvers ran again on "
                  f"platform `{host[0].platform.name}` ({', '.join(host[0].devices)}); the recommendation is "
                  "chosen from these (files under `host/`).", "", "```", format_table(host[1]), "```", "",
                  "![gantt of the best placement on the real devices](host/gantt.png)", ""]
    if replayed is not None:
        lines += ["## Replay on ONNX Runtime and the recommendation", "",
                  f"Replayed the best {len(replayed['candidates']) - 1} placement(s) by prediction and timed the "
                  f"whole model on plain ONNX Runtime in the same run (medians of {replayed['repeats']}).", "",
                  format_candidates(replayed), "",
                  f"**Recommended: {replayed['recommended']}**, {replayed['measured_makespan_s'] * 1e3:.4f} ms, "
                  f"{replayed['speedup_vs_best_baseline']:.2f}x the best plain ONNX Runtime "
                  f"({replayed['best_baseline']}).", ""]
        if replayed.get("headroom"):
            captured = replayed.get("headroom_captured")
            lines += [f"Headroom on this host (best plain / max(critical path, 1-thread time / cores)): "
                      f"{replayed['headroom']:.2f}x" + (f"; captured {captured:.0%} of it." if captured is not None
                                                        else ": none to capture."), ""]
        if replayed.get("placement_headroom"):
            lines += [f"By the problem's costs, no placement runs more than {replayed['placement_headroom']:.3f}x "
                      "faster than the whole model on plain ORT's device (its predicted time over the best lower "
                      "bound on any schedule).", ""]
        for line in (noise_line(replayed), what_if_line(replayed)):
            if line:
                lines += [_sentence(line), ""]
        stale = profile_line(config, replayed)
        if stale:
            lines += [f"**{_sentence(stale)}**", ""]
        lines += [f"- plain ONNX Runtime {k}: {v * 1e3:.4f} ms" for k, v in replayed["baselines"].items()]
        lines.append("")
    if streamed is not None:
        lines += ["## Throughput on ONNX Runtime: streamed placements and the recommendation", "",
                  f"Streamed the best {len(streamed['candidates'])} placement(s) by predicted period, "
                  f"{streamed['inferences']} inferences each after {streamed['warmup']} that fill the pipeline, and "
                  f"plain ONNX Runtime on the same inputs, in {streamed['rounds']} rounds (medians, ms per "
                  "inference).", "",
                  format_stream_candidates(streamed), "",
                  f"**Recommended: {streamed['recommended']}**, {streamed['measured_period_s'] * 1e3:.4f} ms per "
                  f"inference ({streamed['measured_throughput_per_s']:.1f}/s), "
                  f"{streamed['speedup_vs_best_baseline']:.2f}x the throughput of the best plain ONNX Runtime "
                  f"({streamed['best_baseline']}).", ""]
        line = noise_line(streamed)
        if line:
            lines += [_sentence(line), ""]
    return "\n".join(lines)
