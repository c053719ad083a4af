"""Tables for people: solver results in the objective that was solved, and replay and stream results.

One row per solver: makespan, its lower bound and gap (latency); or period, its
bound and gap, throughput and the makespan of copy 0 (throughput).  For a terminal
or a report, times show in ms, gaps in % and the note column only when a solver left
one.

Example
-------
>>> from scheduler.generate import random_problem
>>> from scheduler.semantics import simulate
>>> p = random_problem(4, seed=1)
>>> list(summary_table([simulate(p, {t: "cpu0" for t in p.tasks}, solver="single")]).columns)
['solver', 'status', 'makespan_s', 'lower_bound_s', 'gap', 'solve_s', 'note']
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from .schedule import Schedule

_COLUMNS = {
    "latency": ["solver", "status", "makespan_s", "lower_bound_s", "gap", "solve_s", "note"],
    "throughput": ["solver", "status", "period_s", "period_bound_s", "period_gap", "throughput_per_s", "makespan_s",
                   "solve_s", "note"],
}


def summary_table(schedules: Sequence[Schedule], objective: str = "latency") -> pd.DataFrame:
    """One row per solver with the columns of ``objective`` (``latency`` or ``throughput``)."""
    rows = []
    for s in schedules:
        p = s.period
        rows.append({"solver": s.solver, "status": s.status, "makespan_s": s.makespan, "lower_bound_s": s.lower_bound,
                     "gap": s.gap, "period_s": p and p.value, "period_bound_s": p and p.bound,
                     "period_gap": p and p.gap, "throughput_per_s": p and p.throughput, "solve_s": s.solve_seconds,
                     "note": s.info.get("reason", "")})
    return pd.DataFrame(rows, columns=_COLUMNS[objective])


def percent(v: float | None) -> str:
    """A relative error for people, ``-`` when there is none (nothing predicted).

    >>> percent(0.0412), percent(None)
    ('+4.1%', '-')
    """
    return "-" if v is None else f"{v:+.1%}"


def _cell(column: str, value: Any) -> str:
    if column in ("solver", "status", "note"):
        return str(value)
    if value is None or pd.isna(value):
        return "-"
    if column == "solve_s":
        return f"{value:.3f}"
    if column.endswith("gap"):
        return f"{value * 100:.1f}%"
    if column.endswith("_per_s"):
        return f"{value:.1f}"
    return f"{value * 1e3:.4f}"  # a time in s, shown in ms


def format_table(table: pd.DataFrame) -> str:
    """A solver table (:func:`summary_table`, with any further ``*_s`` time columns) for a terminal."""
    shown = pd.DataFrame({(c[:-2] + "_ms" if c.endswith("_s") and c != "solve_s" else c):
                          [_cell(c, v) for v in table[c]]
                          for c in table.columns if c != "note" or table[c].astype(bool).any()})
    return shown.to_string(index=False)


def format_replay(result: Mapping[str, Any]) -> str:
    """A replay result for a terminal: segments, measured vs predicted, baselines and speedup."""
    lines = [f"replay of {result['solver'] or 'schedule'}: {len(result['segments'])} segments, "
             f"outputs match (max abs diff {result['max_abs_diff']:.2e}), {result['timeline']} timeline"]
    seg = pd.DataFrame([{"segment": s["index"], "device": s["device"], "tasks": s["tasks"],
                         "predicted_ms": s["predicted_s"] * 1e3, "measured_ms": s["measured_median_s"] * 1e3}
                        for s in result["segments"]])
    lines.append(seg.round(4).to_string(index=False))
    m = result["measured"]
    lines.append(f"makespan: measured {result['measured_makespan_s'] * 1e3:.4f} ms (median of {result['repeats']}, "
                 f"spread {m['spread']:.0%}), predicted {result['predicted_makespan_s'] * 1e3:.4f} ms "
                 f"(error {percent(result['prediction_error'])}), by segment with the executor's costs "
                 f"{result['predicted_replay_s'] * 1e3:.4f} ms (error {percent(result['replay_prediction_error'])})")
    if result.get("baselines"):
        for label, v in result["baselines"].items():
            lines.append(f"  plain ORT {label}: {v * 1e3:.4f} ms")
        lines.append(f"speedup over the best plain ORT ({result['best_baseline']}): "
                     f"{result['speedup_vs_best_baseline']:.2f}x")
    return "\n".join(lines)


def format_candidates(replayed: Mapping[str, Any]) -> str:
    """The replayed candidates as a fenced table: predicted (schedule, and by segment with the executor's
    costs) vs measured, errors, outputs' difference, and a measured placement's speedup over the best plain
    ORT as the 90% bootstrap interval (:func:`scheduler.recommend.speedup_interval`)."""
    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1e3

    table = pd.DataFrame([{
        "candidate": c["candidate"], "segments": c["segments"],
        "timeline": "real" if c.get("timeline", "wall-clock") == "wall-clock" else "virtual",
        "schedule_ms": ms(c["predicted_makespan_s"]), "by_segment_ms": ms(c.get("predicted_replay_s")),
        "measured_ms": ms(c["measured_makespan_s"]),
        "error": percent(c["prediction_error"]), "segment_error": percent(c.get("replay_prediction_error")),
        "max_abs_diff": f"{c['max_abs_diff']:.1e}",
        "vs_plain_90%": _interval(c),
    } for c in replayed["candidates"]])
    return "```\n" + table.round(4).to_string(index=False) + "\n```"


def _interval(candidate: Mapping[str, Any]) -> str:
    """A candidate's ``speedup_interval`` over plain ORT as ``lo-hix`` (``-`` when it has none)."""
    interval = candidate.get("speedup_interval")
    return "-" if interval is None else f"{interval[0]:.2f}-{interval[1]:.2f}x"


def format_stream_candidates(streamed: Mapping[str, Any]) -> str:
    """The streamed candidates and plain ONNX Runtime's stream as a fenced table (ms per inference), with a
    placement's throughput over the best plain stream as the 90% bootstrap interval of the rounds."""
    rows = [{"candidate": r["candidate"], "copies": r["copies"], "predicted_ms": r["predicted_period_s"] * 1e3,
             "by_segment_ms": r["predicted_segment_period_s"] * 1e3, "measured_ms": r["measured_period_s"] * 1e3,
             "segment_error": percent(r["segment_prediction_error"]), "max_abs_diff": f"{r['max_abs_diff']:.1e}",
             "vs_plain_90%": _interval(r)}
            for r in streamed["candidates"]]
    rows += [{"candidate": f"plain ONNX Runtime ({label})", "measured_ms": v * 1e3}
             for label, v in streamed["baselines_period_s"].items()]
    table = pd.DataFrame(rows).round(4)
    return "```\n" + table.astype(object).where(table.notna(), "-").to_string(index=False) + "\n```"


def format_stream(result: Mapping[str, Any]) -> str:
    """A stream result for a terminal."""
    lines = [f"stream of {result['solver'] or 'schedule'} ({result['copies']} cop"
             f"{'y' if result['copies'] == 1 else 'ies'}): {result['inferences']} inferences after "
             f"{result['warmup']} warm-up, outputs match (max abs diff {result['max_abs_diff']:.2e})",
             f"period: measured {result['measured_period_s'] * 1e3:.4f} ms "
             f"({result['measured_throughput_per_s']:.1f} inferences/s), predicted "
             f"{result['predicted_period_s'] * 1e3:.4f} ms (error {percent(result['prediction_error'])}), by segment "
             f"with the executor's costs {result['predicted_segment_period_s'] * 1e3:.4f} ms "
             f"(error {percent(result['segment_prediction_error'])})"]
    if result.get("baselines_period_s"):
        for label, v in result["baselines_period_s"].items():
            lines.append(f"  plain ORT {label}: {v * 1e3:.4f} ms per inference")
        lines.append(f"throughput against the best plain ORT ({result['best_baseline']}): "
                     f"{result['speedup_vs_best_baseline']:.2f}x; against one session: "
                     f"{result['speedup_vs_one_session']:.2f}x")
    return "\n".join(lines)
