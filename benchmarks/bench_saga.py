"""Peer comparison: our solvers against every scheduler of anrg-saga, on identical instances.

Instances (see ``saga_instances``): saga's own random generators (branching, chain,
trees, parallel chains, riotbench pipelines; tiny diamond / fork ones where saga's
BruteForce and SMT also run), related-machine versions of our zoo models, and
related-machine versions of the dnn-partitioning workloads.  Each instance exists
once, as a saga (network, task graph) and as our Problem built from it exactly
(``saga_bridge.from_saga``).

Steps, all in one run:

1. every applicable saga scheduler schedules the instance; its schedule is checked
   under our validator, and its placement + order (by start time) re-simulated by
   our simulator (``saga_bridge.check_saga_schedule``): the makespans must agree;
2. every registered solver of ours (exact ones with ``--time-limit`` and only up to
   ``--exact-max-tasks`` tasks) solves the same instance;
3. report makespan ratios ours / best valid saga schedule, solve times, a summary per
   solver (geometric mean ratio, wins / ties / losses, ties within 1e-6 relative),
   and whether our best heuristic is no worse than the best saga scheduler on at least
   95% of the instances and at least 3% better on geometric mean (issue 13's target).

Writes ``--out`` (CSV, one row per instance and solver) and a Markdown summary next
to it, atomically.  saga's schedulers break ties by iterating frozensets, whose
order follows PYTHONHASHSEED: the script re-executes itself with PYTHONHASHSEED=0
so that runs are reproducible.

    python benchmarks/bench_saga.py --quick
    python benchmarks/bench_saga.py --time-limit 10 --out results/saga_compare.csv
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

TIE = 1e-6
SAGA_EXACT = ("BruteForce", "SMT")  # exponential, tiny instances only


def _reexec_with_fixed_hash_seed() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _geomean(values: list[float]) -> float:
    vals = [v for v in values if v > 0 and math.isfinite(v)]
    return float(np.exp(np.mean(np.log(vals)))) if vals else math.nan


def _verdict(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "n/a"
    if ratio < 1 - TIE:
        return "win"
    if ratio > 1 + TIE:
        return "loss"
    return "tie"


def run_instance(inst, our_solvers, exact, args, log) -> list[dict]:
    """All saga schedulers and all our solvers on one instance; one row each."""
    import saga_bridge as sb
    import saga_instances as si
    from solvers import get_solver
    from scheduler.schedule import validate

    base = {"instance": inst.name, "family": inst.family, "tasks": inst.n_tasks, "devices": inst.n_devices,
            "ccr": round(si.instance_ccr(inst), 4)}
    rows = []
    for sched in si.SAGA_SCHEDULERS:
        row = {**base, "side": "saga", "solver": sched.name}
        if not si.applicable(sched, inst.network, inst.task_graph):
            rows.append({**row, "status": "skipped (size)"})
            continue
        try:
            out, secs = si.run_saga_scheduler(sched, inst.network, inst.task_graph, seed=args.seed)
        except Exception as exc:  # a peer's failure is data, not a crash
            rows.append({**row, "status": "error", "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        chk = sb.check_saga_schedule(inst.problem, out)
        rows.append({**row, "status": "valid" if chk.valid else "invalid", "makespan": chk.saga_makespan,
                     "solve_s": secs, "resim_makespan": chk.resim_makespan, "resim_rel_diff": chk.rel_diff,
                     "agreement": chk.verdict, "tasks_moved_earlier": chk.tasks_moved_earlier,
                     "order_makespan": chk.order_makespan,
                     "error": chk.errors[0][:200] if chk.errors else ""})
    for name in our_solvers:
        row = {**base, "side": "ours", "solver": name}
        if name in exact and inst.n_tasks > args.exact_max_tasks:
            rows.append({**row, "status": "skipped (size)"})
            continue
        started = time.perf_counter()
        try:
            s = get_solver(name)(inst.problem, time_limit=args.time_limit, seed=args.seed)
        except Exception as exc:
            rows.append({**row, "status": "error", "error": f"{type(exc).__name__}: {exc}"[:200],
                         "solve_s": time.perf_counter() - started})
            continue
        secs = time.perf_counter() - started
        errs = validate(inst.problem, s) if s.found else []
        rows.append({**row, "status": s.status if not errs else "invalid", "makespan": s.makespan,
                     "solve_s": secs, "lower_bound": s.lower_bound, "error": errs[0][:200] if errs else ""})
    saga_ok = [r for r in rows if r["side"] == "saga" and r["status"] == "valid"]
    best = min(saga_ok, key=lambda r: r["makespan"]) if saga_ok else None
    saga_heur = [r for r in saga_ok if r["solver"] not in SAGA_EXACT]
    best_h = min(saga_heur, key=lambda r: r["makespan"]) if saga_heur else None
    for r in rows:
        r["best_saga"] = best["solver"] if best else ""
        r["best_saga_makespan"] = best["makespan"] if best else math.nan
        r["best_saga_heuristic_makespan"] = best_h["makespan"] if best_h else math.nan
        ms = r.get("makespan")
        r["ratio"] = ms / best["makespan"] if best and ms is not None and not pd.isna(ms) and best["makespan"] > 0 \
            else math.nan
    ours = [r for r in rows if r["side"] == "ours" and math.isfinite(r["ratio"])]
    heur = [r for r in ours if r["solver"] not in exact]
    bh = min(heur, key=lambda r: r["makespan"]) if heur else None
    bo = min(ours, key=lambda r: r["makespan"]) if ours else None
    log(f"  {inst.name:40s} n={inst.n_tasks:4d} best saga {best['solver'] if best else '-':>10s} "
        f"{best['makespan'] if best else math.nan:10.4g} | our best heuristic {bh['solver'] if bh else '-':>17s} "
        f"x{bh['ratio'] if bh else math.nan:.4f}" + (f" | best ours {bo['solver']} x{bo['ratio']:.4f}"
                                                       if bo and bo is not bh else ""))
    return rows


def agreement_report(df: pd.DataFrame) -> list[str]:
    """Lines on how our simulator agrees with saga's schedules."""
    s = df[(df.side == "saga") & df.status.isin(["valid", "invalid"])]
    lines = ["Simulator agreement (saga's schedule: our validator; its placement + start order re-simulated by ours):"]
    lines.append(f"  saga schedules checked: {len(s)} on {s.instance.nunique()} instances; "
                 f"valid under our validator: {(s.status == 'valid').sum()}; invalid: {(s.status == 'invalid').sum()}")
    for _, r in s[s.status == "invalid"].iterrows():
        lines.append(f"    INVALID {r.solver} on {r.instance}: {r.error}")
    v = s[s.status == "valid"]
    if len(v):
        eq = v[v.agreement == "equal"]
        lines.append(f"  makespan equal within 1e-6 relative: {len(eq)}/{len(v)}; max |rel diff| among them "
                     f"{eq.resim_rel_diff.abs().max():.2e}")
        later = v[v.agreement == "resim-LATER"]
        lines.append(f"  ours later than saga (a disagreement): {len(later)}")
        for _, r in later.iterrows():
            lines.append(f"    MISMATCH {r.solver} on {r.instance}: saga {r.makespan:.6g}, ours {r.resim_makespan:.6g}")
        earlier = v[v.agreement == "resim-earlier"]
        lines.append(f"  ours earlier (saga left avoidable idle time, same placement and order): {len(earlier)}; "
                     f"max rel diff {earlier.resim_rel_diff.max() if len(earlier) else 0:.3g}")
        if len(earlier):
            by = earlier.groupby("solver").agg(n=("instance", "size"), max_rel=("resim_rel_diff", "max"))
            lines.append("    by scheduler: " + ", ".join(f"{k} {int(r.n)}x (max {r.max_rel:.3g})"
                                                          for k, r in by.iterrows()))
        lat = v[v.order_makespan > v.resim_makespan * (1 + 1e-6)]
        lines.append(f"  re-simulated in Schedule.order (start, ties in topological order only) instead: later on "
                     f"{len(lat)} of {len(v)}" + (f" (max +{(lat.order_makespan / lat.resim_makespan - 1).max():.3g}"
                                                   f" relative; zero-cost tasks starting with another task on "
                                                   f"their device)" if len(lat) else ""))
    errs = df[(df.side == "saga") & (df.status == "error")]
    for _, r in errs.iterrows():
        lines.append(f"  saga {r.solver} failed on {r.instance}: {r.error}")
    return lines


def summaries(df: pd.DataFrame, our_solvers: list[str], exact: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Per-solver summary (ours and saga), per-instance best heuristic table, and the target verdict lines."""
    ours = df[df.side == "ours"]
    rows = []
    for name in our_solvers:
        sub = ours[(ours.solver == name) & ours.ratio.notna()]
        verd = [_verdict(x) for x in sub.ratio]
        rows.append({"solver": name, "side": "ours", "instances": len(sub), "geomean_ratio": _geomean(list(sub.ratio)),
                     "max_ratio": sub.ratio.max(), "wins": verd.count("win"), "ties": verd.count("tie"),
                     "losses": verd.count("loss"), "mean_s": sub.solve_s.mean(), "max_s": sub.solve_s.max()})
    per_inst = []
    for inst, g in df.groupby("instance", sort=False):
        o = g[(g.side == "ours") & g.ratio.notna()]
        h = o[~o.solver.isin(exact)]
        bh = h.loc[h.makespan.idxmin()] if len(h) else None
        bo = o.loc[o.makespan.idxmin()] if len(o) else None
        per_inst.append({"instance": inst, "tasks": int(g.tasks.iloc[0]), "best_saga": g.best_saga.iloc[0],
                         "best_saga_makespan": g.best_saga_makespan.iloc[0],
                         "best_heuristic": bh.solver if bh is not None else "",
                         "best_heuristic_ratio": bh.ratio if bh is not None else math.nan,
                         "vs_saga_heuristics": (bh.makespan / g.best_saga_heuristic_makespan.iloc[0]
                                                if bh is not None else math.nan),
                         "best_ours": bo.solver if bo is not None else "",
                         "best_ours_ratio": bo.ratio if bo is not None else math.nan})
    pi = pd.DataFrame(per_inst)
    for label, col in (("our best heuristic", "best_heuristic_ratio"), ("our best (any)", "best_ours_ratio")):
        verd = [_verdict(x) for x in pi[col]]
        rows.append({"solver": label, "side": "ours", "instances": int(pi[col].notna().sum()),
                     "geomean_ratio": _geomean(list(pi[col])), "max_ratio": pi[col].max(),
                     "wins": verd.count("win"), "ties": verd.count("tie"), "losses": verd.count("loss")})
    saga = df[(df.side == "saga") & (df.status == "valid")]
    for name, sub in saga.groupby("solver", sort=False):
        verd = [_verdict(x) for x in sub.ratio]
        rows.append({"solver": f"saga:{name}", "side": "saga", "instances": len(sub),
                     "geomean_ratio": _geomean(list(sub.ratio)), "max_ratio": sub.ratio.max(),
                     "wins": verd.count("win"), "ties": verd.count("tie"), "losses": verd.count("loss"),
                     "mean_s": sub.solve_s.mean(), "max_s": sub.solve_s.max()})
    summary = pd.DataFrame(rows)
    hv = [_verdict(x) for x in pi.best_heuristic_ratio]
    gm = _geomean(list(pi.best_heuristic_ratio))
    losses = pi[[v == "loss" for v in hv]]
    ok_all = len(losses) == 0
    met = len(losses) <= 0.05 * len(hv) and gm <= 0.97
    lines = [f"Target: our best heuristic no worse than the best saga scheduler on at least 95% of the instances, "
             f"and at least 3% better on geometric mean -> {'MET' if met else 'NOT MET'}",
             f"  no worse on every instance: {'yes' if ok_all else 'no'} ({hv.count('win')} better, "
             f"{hv.count('tie')} tied, {hv.count('loss')} worse of {len(hv)}); geometric mean ratio {gm:.4f}"]
    for _, r in losses.sort_values("best_heuristic_ratio", ascending=False).iterrows():
        lines.append(f"    worse on {r.instance}: {r.best_heuristic} x{r.best_heuristic_ratio:.4f} vs saga {r.best_saga}")
    hv2 = [_verdict(x) for x in pi.vs_saga_heuristics]
    lines.append(f"  against saga's heuristics only (without BruteForce / SMT, which run on the tiny instances): "
                 f"{hv2.count('win')} better, {hv2.count('tie')} tied, {hv2.count('loss')} worse; geometric mean "
                 f"{_geomean(list(pi.vs_saga_heuristics)):.4f}")
    wins_by = pi.best_saga.value_counts()
    lines.append("  best saga scheduler per instance: " + ", ".join(f"{k} {v}" for k, v in wins_by.items()))
    bh_by = pi.best_heuristic.value_counts()
    lines.append("  our best heuristic per instance: " + ", ".join(f"{k} {v}" for k, v in bh_by.items()))
    return summary, pi, lines


def ratio_table(df: pd.DataFrame, our_solvers: list[str]) -> pd.DataFrame:
    """Instances x our solvers: ratio to the best saga schedule (and the best saga scheduler)."""
    ours = df[df.side == "ours"].pivot(index="instance", columns="solver", values="ratio")
    ours = ours.reindex(columns=[s for s in our_solvers if s in ours.columns])
    meta = df.groupby("instance", sort=False).agg(tasks=("tasks", "first"), best_saga=("best_saga", "first"),
                                                  best_saga_ms=("best_saga_makespan", "first"))
    return meta.join(ours).loc[list(meta.index)]


def time_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean / max solve seconds per solver, ours and saga's."""
    t = df[df.solve_s.notna()].groupby(["side", "solver"], sort=False).solve_s.agg(["mean", "max", "sum"])
    return t


def to_markdown(table: pd.DataFrame, floatfmt: str = ".4g") -> str:
    cols = [str(c) for c in table.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = []
        for v in r:
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else format(v, floatfmt))
            else:
                cells.append(str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small instances and fewer of them (smoke test)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds per exact solver run (default 10; 2 with --quick)")
    ap.add_argument("--exact-max-tasks", type=int, default=150, help="run exact solvers only up to this many tasks")
    ap.add_argument("--out", default="results/saga_compare.csv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dnn-root", default=os.environ.get("HETSCHED_BENCHMARKS", str(
        Path(__file__).resolve().parents[2] / "shared" / "benchmarks")) + "/dnn-partitioning")
    ap.add_argument("--solvers", default="", help="comma-separated subset of our solvers (default: all registered)")
    args = ap.parse_args(argv)
    if args.time_limit is None:
        args.time_limit = 2.0 if args.quick else 10.0

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from importlib.metadata import version

    import saga_instances as si
    from scheduler.fileio import write_text
    from solvers import SOLVERS, solver_names

    our = [s for s in solver_names(dispatchers=False) if "latency" in SOLVERS[s].objectives
           and (not args.solvers or s in args.solvers.split(","))]
    exact = {s for s in our if SOLVERS[s].exact}
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    log(f"anrg-saga {version('anrg-saga')}; our solvers: {', '.join(our)} (exact: {', '.join(sorted(exact)) or 'none'}"
        f"{', time limit %gs, up to %d tasks' % (args.time_limit, args.exact_max_tasks) if exact else ''}); "
        f"PYTHONHASHSEED={os.environ.get('PYTHONHASHSEED')}")
    missing = [s for s in ("milp", "cpsat") if s not in SOLVERS]
    if missing:
        log(f"not registered (skipped): {', '.join(missing)}")

    started = time.perf_counter()
    instances = (si.saga_random_instances(args.quick, seed=args.seed) + si.zoo_instances(args.quick)
                 + si.dnn_instances(args.dnn_root, args.quick))
    log(f"{len(instances)} instances ({time.perf_counter() - started:.1f}s to build)")
    rows = []
    for inst in instances:
        rows += run_instance(inst, our, exact, args, log)
    df = pd.DataFrame(rows)
    for col in ("makespan", "solve_s", "resim_makespan", "resim_rel_diff", "ratio", "lower_bound", "order_makespan"):
        if col not in df:
            df[col] = np.nan
        df[col] = pd.to_numeric(df[col])

    agree = agreement_report(df)
    summary, per_inst, target = summaries(df, our, exact)
    ratios = ratio_table(df, our)
    times = time_table(df)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_rows", 200)
    log("\n" + "\n".join(agree))
    log("\nMakespan ratio ours / best saga (per instance; < 1 = ours better):")
    log(ratios.to_string(float_format=lambda v: f"{v:.4f}"))
    log("\nOur best heuristic per instance:")
    log(per_inst.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    log("\nSummary (ratio to the best saga schedule of each instance; ties within 1e-6):")
    log(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    log("\nSolve seconds:")
    log(times.to_string(float_format=lambda v: f"{v:.4f}"))
    log("\n" + "\n".join(target))
    log(f"\ntotal {time.perf_counter() - started:.1f}s")

    out = Path(args.out)
    write_text(out, df.to_csv(index=False))
    md = [f"# Peer comparison with anrg-saga {version('anrg-saga')}", "",
          f"Command: `python benchmarks/bench_saga.py {' '.join(argv if argv is not None else sys.argv[1:])}`; "
          f"{len(instances)} instances; exact solvers: {', '.join(sorted(exact)) or 'none registered'}.", "",
          "Ratios are makespan / best valid saga schedule of the instance (< 1: ours better).", "",
          "## Target", "", *[f"- {line.strip()}" for line in target], "",
          "## Summary", "", to_markdown(summary), "",
          "## Per instance", "", to_markdown(ratios.reset_index()), "",
          "## Simulator agreement", "", *[f"- {line.strip()}" for line in agree], ""]
    write_text(out.with_suffix(".md"), "\n".join(md))
    log(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    _reexec_with_fixed_hash_seed()
    sys.exit(main())
