"""Throughput on the published dnn-partitioning workloads against the published DP's max-load.

Every file of ``shared/benchmarks/dnn-partitioning/throughput-inputs`` is imported
(its time unit, ms, kept) with the published throughput model, so a period here is
that paper's max-load.  ``dp-pipeline`` runs with ``--dp-limit`` seconds and ``cpsat``
(hinted by ``dp-pipeline``'s fixed orders among others) with ``--time-limit``; the
best placement within the time limit is cpsat's (its hint is inside its limit).
The table compares it with the DP figures of ``RESULTS.md`` (optimal over contiguous
splits; a non-contiguous placement may be better) and gives the best proven bound.
Target (issue 13): best <= the DP figure on every file that has one, within 60 s,
and a schedule with a bound for inceptionv3, where the published DP did not finish.

    python benchmarks/bench_published.py --time-limit 60
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import pandas as pd

from scheduler.fileio import write_text
from scheduler.compare_report import markdown_table
from scheduler.importers import import_dnn_partitioning
from solvers import get_solver

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HETSCHED_BENCHMARKS", ROOT.parent / "shared" / "benchmarks")) / "dnn-partitioning"


def published() -> dict[str, float | None]:
    """DP max-load per file from RESULTS.md (None where the DP did not finish)."""
    out: dict[str, float | None] = {}
    for line in (DATA / "RESULTS.md").read_text().splitlines():
        m = re.match(r"\|\s*(\S+\.json)\s*\|\s*([^|]+?)\s*\|", line)
        if m:
            value = m.group(2).replace(",", "")
            out[m.group(1)] = float(value) if re.fullmatch(r"[0-9.]+", value) else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=60.0, help="cpsat's limit (s), its hint included")
    ap.add_argument("--dp-limit", type=float, default=10.0, help="dp-pipeline's limit (s)")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench_published.md"))
    ap.add_argument("files", nargs="*", help="files under throughput-inputs/ (default: all)")
    args = ap.parse_args()
    figures = published()
    files = args.files or sorted(str(p.relative_to(DATA / "throughput-inputs"))
                                 for p in (DATA / "throughput-inputs").rglob("*.json"))
    rows = []
    for name in files:
        problem = import_dnn_partitioning(DATA / "throughput-inputs" / name, time_scale=1.0)
        t0 = time.perf_counter()
        dp = get_solver("dp-pipeline")(problem, time_limit=args.dp_limit)
        dp_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cp = get_solver("cpsat", objective="throughput")(problem, time_limit=args.time_limit)
        cp_s = time.perf_counter() - t0
        best = min(s.period.value for s in (cp,) if s.found)
        bound = max(s.period.bound or 0.0 for s in (dp, cp) if s.period is not None)
        figure = figures.get(name)
        rows.append({"file": name, "tasks": len(problem.tasks), "devices": len(problem.devices),
                     "published_dp": figure, "dp_pipeline": dp.period.value, "dp_pipeline_s": dp_s,
                     "cpsat": cp.period.value, "cpsat_status": cp.status, "cpsat_s": cp_s,
                     "best_vs_dp": best / figure if figure else None, "bound": bound,
                     "gap": best / bound - 1 if bound > 0 else None})
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    table = pd.DataFrame(rows)
    write_text(args.out.replace(".md", ".csv"), table.to_csv(index=False))
    shown = table.copy()
    for col in ("published_dp", "dp_pipeline", "cpsat", "bound"):
        shown[col] = shown[col].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    for col in ("dp_pipeline_s", "cpsat_s"):
        shown[col] = shown[col].map(lambda v: f"{v:.1f}")
    shown["best_vs_dp"] = table["best_vs_dp"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}x")
    shown["gap"] = table["gap"].map(lambda v: "-" if pd.isna(v) else f"{v:.1%}")
    met = table.dropna(subset=["best_vs_dp"])
    text = "\n".join([
        "# Published throughput workloads: hetsched against the published DP", "",
        f"`python benchmarks/bench_published.py --time-limit {args.time_limit:g} --dp-limit {args.dp_limit:g}` "
        f"on {time.strftime('%Y-%m-%d')}. Periods (max-load) in the files' unit, ms, under the published model. "
        "`best_vs_dp`: cpsat's period (within its limit, dp-pipeline's hint included) over the DP figure of "
        "RESULTS.md; `bound`: the best proven lower bound on the period.", "",
        markdown_table(shown), "",
        f"Best <= the DP figure on {int((met['best_vs_dp'] <= 1 + 1e-5).sum())} of {len(met)} files with a figure "
        f"(the figures have 6 significant digits; geometric mean ratio "
        f"{float(met['best_vs_dp'].prod() ** (1 / len(met))):.3f})." if len(met) else "", ""])
    write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
