"""The ``hetsched`` command line.

Every user error prints one line ``hetsched: error: ...`` and exits with code 2;
``validate`` exits 1 when the schedule is invalid.  This module is the composition
root: it is the one place in ``scheduler/`` that imports the solver registry.  It
imports what a command needs when the command runs, so that ``hetsched --help`` and
``hetsched solvers`` start without onnx, ONNX Runtime, pandas, matplotlib, OR-Tools or
PuLP (a test checks it).
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from typing import TYPE_CHECKING, Any, Sequence

from . import __version__
from .cache import KINDS, parse_size
from .errors import HetschedError
from .levels import LEVELS

if TYPE_CHECKING:
    from .config import SolverCatalog
    from .pipeline import ProfileOptions


def _solver_catalog() -> SolverCatalog:
    from solvers import SOLVERS, get_solver, solver_names

    from .config import SolverCatalog

    return SolverCatalog(names=solver_names(dispatchers=False),
                         check=lambda name, options: get_solver(name, **options) and None,
                         get=get_solver, options=lambda name: SOLVERS[name.partition(":")[0]].options,
                         objectives=lambda name: SOLVERS[name.partition(":")[0]].objectives)


class _Once(argparse.Action):
    """An option that may be given once (argparse would keep the last of several, silently)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: typing.Any,
                 option_string: str | None = None) -> None:
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice; this command runs one solver (compare several with a run "
                         "config or a suite)")
        setattr(namespace, self.dest, values)


def _parse_shapes(items: Sequence[str]) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            values = [int(d) for d in dims.split(",")]
        except ValueError:
            values = []
        if not sep or not name or not values:
            raise HetschedError(f"--input-shape takes NAME=D1,D2,... with integer dims, got {item!r}")
        shapes[name] = values
    return shapes


def _parse_options(items: Sequence[str]) -> dict[str, object]:
    """``KEY=VALUE`` solver options, typed as YAML reads them (numbers, booleans, lists)."""
    from . import zoo
    from .fileio import load_yaml

    return {key: load_yaml(value, f"--option {key}")
            for key, value in zoo.parse_params(items, "solver option (--option)").items()}


def cmd_solvers(args: argparse.Namespace) -> int:
    from solvers import list_solvers

    for info in list_solvers():
        opts = f"  [options: {', '.join(info.options)}]" if info.options else ""
        print(f"{info.name:<20} {info.summary}; optimises {' and '.join(info.objectives)}{opts}")
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from . import zoo

    for m in zoo.list_models():
        params = ", ".join(f"{k}={v}" for k, v in m.defaults.items())
        print(f"{m.name:<10} {m.description}\n{'':<10} defaults: {params}")
    print("\npresets at real sizes (use like a model name; --set overrides a parameter):")
    for name, (base, params) in zoo.PRESETS.items():
        print(f"{name:<19} = {base} " + ", ".join(f"{k}={v}" for k, v in params.items()))
    return 0


def cmd_zoo_export(args: argparse.Namespace) -> int:
    from . import zoo
    from .fileio import write_bytes

    model = zoo.build(args.name, **zoo.parse_params(args.set))
    write_bytes(args.output, model.SerializeToString())
    print(f"wrote {args.output} ({len(model.graph.node)} nodes)")
    return 0


def _profile_options(args: argparse.Namespace) -> ProfileOptions:
    from .pipeline import ProfileOptions

    return ProfileOptions(folder=args.profiles, repeats=args.repeats, warmup=args.warmup, force=args.force)


def _inputs(args: argparse.Namespace) -> Any:
    """The model's input values from ``--inputs`` (:func:`scheduler.inputs.load_inputs`), or None."""
    from .inputs import load_inputs

    return load_inputs(args.inputs) if args.inputs else None


def cmd_profile(args: argparse.Namespace) -> int:
    from . import zoo
    from .pipeline import measure
    from .profile_store import profile_label, profile_paths
    from .profiling import DRIFT_LIMIT, DRIFT_MIN_S, plan_profiling

    params = zoo.parse_params(args.set) if args.set else None
    feeds = _inputs(args)
    graph, platform, prof, reused = measure(args.model, params, args.platform, _parse_shapes(args.input_shape),
                                            _profile_options(args), progress=True,
                                            optimization=args.graph_optimization, batch=args.batch, clone=args.clone,
                                            inputs=feeds)
    plan = plan_profiling(graph, platform)
    csv_path, json_path = profile_paths(args.profiles, profile_label(graph.name, feeds), prof.model_sha256,
                                        prof.platform_key)
    measured = [n for n in prof.nodes if n.runs > 0]
    print(f"{'reused stored' if reused else 'measured'} profile of {graph.name} on {platform.name}: "
          f"{plan.runs} runs ({len(plan.node_runs)} node, {len(plan.edge_runs)} edge, {plan.executor_runs} executor, "
          f"{plan.check_runs} check, {plan.tracer_runs} tracer, {plan.packing_runs} packing) "
          f"x {prof.repeats} repeats")
    for run in plan.node_runs:
        packing = "off (measured faster)" if run.devices[0] in prof.unpacked else "on"
        print(f"  node run: {run.provider} threads={run.threads} serves {', '.join(run.devices)}; "
              f"weight packing {packing}")
    print(f"  nodes measured: {len(measured)} of {len(prof.nodes)} (task, device) pairs; "
          f"{len(prof.nodes) - len(measured)} absent from the trace, cost 0")
    print(f"  transfer classes: {plan.transfer_classes} (sizes x real device pairs), fitted links: {len(prof.links)}")
    if prof.executor is not None:
        calls = ", ".join(f"{d} {v * 1e6:.0f}" for d, v in prof.executor.call_s.items())
        print(f"  executor: per segment call (µs) {calls}; per MB in or out of a segment "
              f"{prof.executor.byte_s * 2**20 * 1e6:.0f} µs; core switch {prof.executor.switch_s * 1e6:.0f} µs; "
              f"contention between cores {prof.executor.contention:.1%}")
    if prof.drift is not None:
        print(f"  whole model timed again at the end of profiling: {prof.drift:+.1%} against its node run "
              f"(measured again beyond ±{DRIFT_LIMIT:.0%} on runs of {DRIFT_MIN_S * 1e3:g} ms or more; the "
              "plain run below is the mean of the two)")
    noisy = prof.noisy()
    print(f"  noisy nodes (cv > 25%): {len(noisy)}" + (f", e.g. {noisy[0].task} on {noisy[0].device} "
                                                      f"cv {noisy[0].cv:.0%}" if noisy else ""))
    traced = prof.sum_over_whole(traced=True)
    for dev, (inside, per_node) in prof.tracer_s.items():
        print(f"  {dev}: the profiler's own time per node {inside * 1e6:.1f} µs inside a kernel's event, "
              f"{per_node * 1e6:.1f} µs in all (taken off the node costs and the traced run)")
    for dev, ratio in prof.sum_over_whole().items():
        print(f"  {dev}: sum of node medians = {traced[dev]:.2f} x the traced run "
              f"({prof.traced_run_s[dev] * 1e3:.3f} ms), {ratio:.2f} x the plain run "
              f"({prof.whole_run_s[dev] * 1e3:.3f} ms)")
    print(f"table: {csv_path}\nmetadata: {json_path}")
    return 0


def cmd_problem(args: argparse.Namespace) -> int:
    from . import zoo
    from .pipeline import build_problem
    from .problem import write_problem

    params = zoo.parse_params(args.set) if args.set else None
    problem = build_problem(args.model, params, args.platform, _parse_shapes(args.input_shape), costs=args.costs,
                            profile=_profile_options(args), progress=True,
                            optimization=args.graph_optimization, batch=args.batch, clone=args.clone,
                            inputs=_inputs(args))
    write_problem(problem, args.output)
    g = problem.graph
    zero = [f"{len(names)} {what}" for names, what in ((g.unknown_shape_tensors, "tensors of unknown shape"),
                                                       (g.unsized_values, "sequences or maps")) if names]
    print(f"wrote {args.output}: {len(g.tasks)} tasks, {len(g.edges)} edges, {len(problem.devices)} devices"
          + (f" ({' and '.join(zero)} counted as 0 bytes)" if zero else ""))
    return 0


def cmd_solve(args: argparse.Namespace) -> int:
    from solvers import get_solver

    from .config import SolverSpec
    from .pipeline import run_solvers
    from .problem import read_problem
    from .schedule import write_schedule
    from .tables import format_table, summary_table

    problem = read_problem(args.problem)
    options = _parse_options(args.option)
    get_solver(args.solver, **options)  # fail fast on a bad name or option
    (sched,), _ = run_solvers(problem, [SolverSpec(name=args.solver, options=options)], get_solver,
                              time_limit=args.time_limit, seed=args.seed)
    print(format_table(summary_table([sched], "throughput" if sched.period is not None else "latency")))
    if args.output:
        write_schedule(sched, args.output)
        print(f"wrote {args.output}")
    return 0 if sched.found else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from . import zoo
    from .deploy import export_placement
    from .fileio import write_json
    from .optimize import session_data
    from .pipeline import graph_level, load_graph, load_original, load_problem, optimized_cache, tqdm_progress
    from .problem import read_problem
    from .replay import replay as replay_schedule
    from .schedule import read_schedule
    from .tables import format_replay

    params = zoo.parse_params(args.set) if args.set else None
    shapes = _parse_shapes(args.input_shape)
    feeds = _inputs(args)
    if args.problem:
        problem = read_problem(args.problem)
        level = graph_level(args.graph_optimization, problem.platform)
        model, _ = load_graph(args.model, params, shapes, level, optimized_cache(args.profiles), batch=args.batch,
                              clone=args.clone, inputs=feeds)
    else:
        model, problem = load_problem(args.model, params, args.platform, shapes, costs=args.costs,
                                      profile=_profile_options(args), progress=True,
                                      optimization=args.graph_optimization, batch=args.batch, clone=args.clone,
                                      inputs=feeds)
    schedule = read_schedule(args.schedule)
    original = session_data(load_original(args.model, params, shapes, batch=args.batch, inputs=feeds,
                                          cache_dir=optimized_cache(args.profiles))[0], consume=True)
    model = session_data(model, consume=True)  # its values held once, and shared by the segments cut from it
    if args.stream is not None:
        from .stream import replay_stream
        from .tables import format_stream

        result = replay_stream(model, problem, schedule, inferences=args.stream, warmup=args.warmup,
                               opt_level=args.opt_level, tolerance=args.tolerance, original=original, feeds=feeds)
        print(format_stream(result))
    else:
        result = replay_schedule(model, problem, schedule, repeats=args.repeats, warmup=args.warmup,
                                 opt_level=args.opt_level, tolerance=args.tolerance, original=original,
                                 progress=tqdm_progress(sys.stderr.isatty()), feeds=feeds)
        print(format_replay(result))
    if args.export:
        export_placement(model, problem, schedule, args.export, graph_level(args.graph_optimization, problem.platform),
                         feeds)
        print(f"wrote {args.export}: segments, manifest.json and runner.py (numpy + onnxruntime only)")
    if args.output:
        write_json(args.output, result)
        print(f"wrote {args.output}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .importers import import_dnn_partitioning
    from .problem import write_problem

    problem = import_dnn_partitioning(args.file, accelerators=args.accelerators, cpus=args.cpus,
                                      time_scale=args.time_scale)
    write_problem(problem, args.output)
    print(f"wrote {args.output}: {len(problem.tasks)} tasks, {len(problem.graph.edges)} edges, "
          f"{len(problem.devices)} devices, {len(problem.groups)} co-location groups")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from solvers import get_solver

    from .compare import load_suite, run_suite

    suite = load_suite(args.suite, _solver_catalog())
    updates = {k: v for k, v in (("workers", args.workers), ("output_dir", args.output_dir)) if v is not None}
    if updates:
        suite = suite.model_copy(update=updates)
    result = run_suite(suite, get_solver, progress=sys.stderr.isatty())
    print(f"suite {suite.name}: {result.computed} cells computed, {result.reused} reused")
    table = result.table
    summary = table.groupby("solver").agg(cells=("status", "size"), median_gap=("gap", "median"),
                                          mean_solve_s=("solve_s", "mean")).reset_index()
    print(summary.round(4).to_string(index=False))
    print(f"report: {os.path.join(result.directory, 'report.md')}")
    return 0


def cmd_bound(args: argparse.Namespace) -> int:
    from .bounds import all_bounds
    from .problem import read_problem

    problem = read_problem(args.problem)
    if args.time_limit is not None and not 0 <= args.time_limit < float("inf"):
        raise HetschedError(f"--time-limit must be a finite number of seconds >= 0, got {args.time_limit}")
    bounds = all_bounds(problem, lp=not args.no_lp, time_limit=args.time_limit)
    best = max(bounds, key=lambda b: b.value)
    for b in bounds:
        print(f"{b.name:<16} {b.value * 1e3:.6f} ms{'  <- best' if b is best else ''}")
    return 0


def _cached(args: argparse.Namespace) -> list[tuple[str, str, list[Any]]]:
    """Each cache ``args`` names (``--kind``, default all): kind, folder and entries."""
    from . import cache

    return [(kind, folder, cache.entries(folder, kind)) for kind, folder in cache.folders(args.profiles).items()
            if kind in (args.kind or cache.KINDS)]


def cmd_cache_list(args: argparse.Namespace) -> int:
    import time

    from . import cache

    total = 0
    for kind, folder, found in _cached(args):
        size = sum(e.size for e in found)
        total += size
        stopped = sum(e.unfinished for e in found)
        print(f"{kind:<10} {folder}: {len(found)} entr{'y' if len(found) == 1 else 'ies'}, {cache.human(size)}"
              + (f" ({stopped} unfinished)" if stopped else ""))
        for e in reversed(found) if args.entries else ():
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
            print(f"  {used}  {cache.human(e.size):>9}  {os.path.basename(e.path)}  {cache.model_name(e)}")
    print(f"total {cache.human(total)}; free space with: hetsched cache clear [--keep SIZE] [--unused-for DAYS]")
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from . import cache

    if args.unused_for is not None and not args.unused_for >= 0:
        raise HetschedError(f"--unused-for must be a number of days >= 0, got {args.unused_for}")
    cached = _cached(args)
    found = [e for _, _, entries in cached for e in entries]
    gone = cache.to_remove(found, keep=args.keep, unused_for=None if args.unused_for is None
                           else args.unused_for * 86400)
    size = sum(e.size for e in gone)
    freed = size if args.dry_run else cache.remove(gone)
    kept = sum(e.size for e in found) - size
    print(f"{'would remove' if args.dry_run else 'removed'} {len(gone)} of {len(found)} entries "
          f"({cache.human(freed)}) from {', '.join(f for _, f, _ in cached)}; {cache.human(kept)} kept")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .problem import read_problem
    from .schedule import read_schedule, schedule_to_dict, validate

    problem = read_problem(args.problem)
    sched = read_schedule(args.schedule)
    errors = validate(problem, sched)
    if not sched.found:
        errors = ["the schedule holds no placement (status " + sched.status + ")"]
    if errors:
        print(f"INVALID: {len(errors)} violation(s)")
        for e in errors:
            print(f"  - {e}")
        return 1
    d = schedule_to_dict(sched)
    print(f"valid: makespan {d['makespan']:.6g} s, {len(sched.tasks)} tasks, solver {sched.solver or '?'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .config import config_from_dict, load_config
    from .run import execute_run, noise_line, profile_line, what_if_line
    from .tables import format_candidates, format_stream_candidates, format_table

    catalog = _solver_catalog()
    config = load_config(args.config, catalog)
    if args.no_replay and args.export:
        raise HetschedError("--export writes the recommendation the replay measures: drop --no-replay")
    data = config.model_dump(mode="json")  # the options go through the config's own checks
    if args.output_dir:
        data["output_dir"] = args.output_dir
    if args.no_replay or args.export:
        data["replay"].update(enabled=not args.no_replay, export=args.export)
    config = config_from_dict(data, f"{args.config or 'the embedded config'} with the command-line options", catalog)
    result = execute_run(config, catalog, progress=not args.quiet)
    g = result.problem.graph
    print(f"{config.name}: model {result.problem.label} ({len(g.tasks)} tasks, {len(g.edges)} edges) "
          f"on {len(result.problem.devices)} devices ({', '.join(result.problem.devices)})")
    print(format_table(result.table))
    if result.host_table is not None:
        print("on the real devices alone (the recommendation is chosen from these):")
        print(format_table(result.host_table))
    if result.replay is not None:
        r = result.replay
        print(format_candidates(r).strip("`\n"))
        print(f"recommended: {r['recommended']}: {r['measured_makespan_s'] * 1e3:.4f} ms measured, "
              f"{r['speedup_vs_best_baseline']:.2f}x the best plain ONNX Runtime"
              + (f"; headroom on this host {r['headroom']:.2f}x" if r.get("headroom") else "")
              + (f", {r['placement_headroom']:.3f}x for a placement by the costs" if r.get("placement_headroom")
                 else ""))
        for line in (noise_line(r), what_if_line(r), profile_line(config, r)):
            if line:
                print(line)
    if result.stream is not None:
        r = result.stream
        print(format_stream_candidates(r).strip("`\n"))
        print(f"recommended: {r['recommended']}: {r['measured_period_s'] * 1e3:.4f} ms per inference measured, "
              f"{r['speedup_vs_best_baseline']:.2f}x the throughput of the best plain ONNX Runtime")
        line = noise_line(r)
        if line:
            print(line)
    print(f"report: {os.path.join(result.directory, 'report.md')}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the tool's one-line errors (``hetsched: error: ...``, exit 2); subcommands inherit it."""

    def error(self, message: str) -> typing.NoReturn:
        sys.stderr.write(f"hetsched: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _path(value: str) -> str:
    """A path argument: never empty (an empty one would silently write nothing)."""
    if not value:
        raise argparse.ArgumentTypeError("an empty path")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = _Parser(prog="hetsched", description="Place ONNX operators on heterogeneous devices.")
    p.add_argument("--version", action="version", version=f"hetsched {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solvers", help="list registered solvers")
    s.set_defaults(func=cmd_solvers)

    z = sub.add_parser("zoo", help="built-in models")
    zsub = z.add_subparsers(dest="zoo_command", required=True)
    zl = zsub.add_parser("list", help="list zoo models and their parameters")
    zl.set_defaults(func=cmd_zoo_list)
    ze = zsub.add_parser("export", help="write a zoo model as .onnx")
    ze.add_argument("name")
    ze.add_argument("-o", "--output", required=True, type=_path)
    ze.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model parameter")
    ze.set_defaults(func=cmd_zoo_export)

    def size(text: str) -> int:
        try:
            return parse_size(text)
        except HetschedError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    ca = sub.add_parser("cache", help="list or clear the cached models (optimised, built, exported)")
    csub = ca.add_subparsers(dest="cache_command", required=True)
    for name, func, what in (("list", cmd_cache_list, "what each model cache holds"),
                             ("clear", cmd_cache_clear, "remove cached models: all, or by age or size "
                                                          "(least recently used first)")):
        c = csub.add_parser(name, help=what)
        c.add_argument("--profiles", default="profiles", type=_path,
                       help="folder of stored profiles, whose optimized/ holds the optimised and built models")
        c.add_argument("--kind", action="append", choices=KINDS,
                       help="only this cache (repeatable; default: all)")
        c.set_defaults(func=func)
    csub.choices["list"].add_argument("--entries", action="store_true", help="one line per entry, newest first")
    csub.choices["clear"].add_argument("--keep", type=size, metavar="SIZE",
                                       help="keep the most recently used entries up to SIZE in all (e.g. 2G)")
    csub.choices["clear"].add_argument("--unused-for", type=float, metavar="DAYS",
                                       help="remove the entries not used for DAYS days")
    csub.choices["clear"].add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")

    def model_args(parser: argparse.ArgumentParser, *profile_flags: str) -> None:
        parser.add_argument("model", help="zoo model name or path to an .onnx file")
        parser.add_argument("--platform", default="default", help="preset name or platform YAML file")
        parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1,D2,...")
        parser.add_argument("--inputs", metavar="FILE.npz", type=_path,
                            help="the model's input values (numpy.savez, one array per input name; a sequence input "
                                 "s as s[0], s[1], ...; a map m as m{keys} and m{values}; an absent optional left "
                                 "out), which every run takes instead of random inputs; their shapes fix dynamic "
                                 "dimensions")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="zoo model parameter")
        parser.add_argument("--batch", type=int, default=1, metavar="B",
                            help="B independent inferences: B copies of the model side by side, one makespan")
        parser.add_argument("--clone", action="store_true",
                            help="copy cheap shared nodes once per reader (Ramiel's cloning), after ORT's optimisation")
        parser.add_argument(*profile_flags, "--profiles", default="profiles", type=_path,
                            help="folder of stored profiles")
        parser.add_argument("--repeats", type=int, default=20, help="profiling repeats per run")
        parser.add_argument("--warmup", type=int, default=3, help="profiling warm-up runs")
        parser.add_argument("--force", action="store_true", help="re-measure even if a stored profile matches")
        parser.add_argument("--graph-optimization", choices=["auto", *LEVELS], default="auto",
                            help="ONNX Runtime graph optimisation applied before partitioning (auto: 'all' when "
                                 "every real device is a CPU, else 'extended')")

    pf = sub.add_parser("profile", help="measure node and transfer costs on the platform's real devices")
    model_args(pf, "-o")
    pf.set_defaults(func=cmd_profile)

    pr = sub.add_parser("problem", help="build a problem file from a model and a platform")
    model_args(pr)
    pr.add_argument("--costs", choices=["model", "profile"], default="model",
                    help="analytic cost model, or measured costs for real devices")
    pr.add_argument("-o", "--output", required=True, type=_path)
    pr.set_defaults(func=cmd_problem)

    so = sub.add_parser("solve", help="solve a problem file with one solver")
    so.add_argument("problem")
    so.add_argument("--solver", required=True, action=_Once, help="one solver (given twice: an error)")
    so.add_argument("--time-limit", type=float, default=None)
    so.add_argument("--seed", type=int, default=0)
    so.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="solver option")
    so.add_argument("-o", "--output", type=_path)
    so.set_defaults(func=cmd_solve)

    rp = sub.add_parser("replay", help="run a schedule's placement on ONNX Runtime sessions and time it")
    model_args(rp)
    rp.add_argument("--schedule", required=True, help="schedule file (hetsched-schedule/1)")
    rp.add_argument("--problem", default=None, help="the problem file the schedule was solved on "
                    "(default: rebuild it from the model, platform and --costs)")
    rp.add_argument("--costs", choices=["model", "profile"], default="model")
    rp.add_argument("--opt-level", choices=["disable", "basic", "all"], default="disable",
                    help="ORT graph optimisation per segment (disable keeps node names faithful)")
    rp.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed vs the whole model")
    rp.add_argument("--export", default=None, metavar="DIR", type=_path,
                    help="write the placement for production: segments, manifest.json and a stand-alone runner.py")
    rp.add_argument("--stream", type=int, default=None, metavar="N",
                    help="measure throughput instead: N inferences pipelined across the devices (the first --warmup "
                         "of them fill the pipeline), against plain ORT on the same stream")
    rp.add_argument("-o", "--output", default=None, type=_path, help="write replay.json (stream.json) here")
    rp.set_defaults(func=cmd_replay)

    im = sub.add_parser("import", help="convert a published workload into a problem file")
    im.add_argument("format", choices=["dnn-partitioning"])
    im.add_argument("file")
    im.add_argument("-o", "--output", required=True, type=_path)
    im.add_argument("--accelerators", type=int, default=None, help="number of accelerators (default: the file's)")
    im.add_argument("--cpus", type=int, default=None, help="number of CPU cores (default: the file's)")
    im.add_argument("--time-scale", type=float, default=1e-3, help="seconds per time unit of the file (ms: 1e-3)")
    im.set_defaults(func=cmd_import)

    co = sub.add_parser("compare", help="run a comparison suite (resumable) and write CSV, report and plots")
    co.add_argument("suite", help="suite YAML")
    co.add_argument("--workers", type=int, default=None, help="override the suite's worker processes")
    co.add_argument("--output-dir", default=None, type=_path, help="override the suite's output_dir")
    co.set_defaults(func=cmd_compare)

    bo = sub.add_parser("bound", help="print every lower bound of a problem and the best")
    bo.add_argument("problem")
    bo.add_argument("--no-lp", action="store_true", help="only the combinatorial bounds")
    bo.add_argument("--time-limit", type=float, default=60.0, help="per LP bound")
    bo.set_defaults(func=cmd_bound)

    va = sub.add_parser("validate", help="check a schedule against a problem (exit 1 when invalid)")
    va.add_argument("problem")
    va.add_argument("schedule")
    va.set_defaults(func=cmd_validate)

    ru = sub.add_parser("run", help="run a YAML config (default: the embedded default run)")
    ru.add_argument("config", nargs="?", default=None)
    ru.add_argument("--output-dir", default=None, type=_path, help="override the config's output_dir")
    ru.add_argument("--no-replay", action="store_true", help="skip the replay on ONNX Runtime")
    ru.add_argument("--export", action="store_true",
                    help="write the recommendation for production into <run>/deploy/ (manifest.json, runner.py and "
                    "the model or its segments)")
    ru.add_argument("--quiet", action="store_true", help="no stage messages on stderr")
    ru.set_defaults(func=cmd_run)
    return p


def _one_line(text: str) -> str:
    """An error message on one line: line breaks and other control characters (from the user's own keys
    or values) are shown escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hetsched`` script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HetschedError as exc:
        print(f"hetsched: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped (e.g. head)
        return 141
    except OSError as exc:
        print(_one_line(f"hetsched: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hetsched: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
