"""Start-up time of the command line: ``hetsched --help`` and ``hetsched solvers`` against a bare interpreter.

Target (issue 14): both under 0.3 s on this machine.  Each command runs in a fresh
process, interleaved with the others, ``--repeats`` times; the table gives medians and
the ratio to ``python -c pass`` measured in the same run.  Writes ``--out`` (Markdown).

    python benchmarks/bench_cli.py --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scheduler.fileio import write_text

TARGET_S = 0.3
SCRIPT = Path(sys.executable).with_name("hetsched")  # the console script the package installs beside python
HETSCHED = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scheduler.cli"]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "hetsched --help": [*HETSCHED, "--help"],
    "hetsched solvers": [*HETSCHED, "solvers"],
    "hetsched zoo list": [*HETSCHED, "zoo", "list"],
}
TARGETED = ("hetsched --help", "hetsched solvers")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", default="results/bench_cli.md")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(args.repeats):
        for label, cmd in COMMANDS.items():
            started = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[label].append(time.perf_counter() - started)
    base = statistics.median(times["python -c pass"])
    lines = [f"# CLI start-up ({args.repeats} runs each, interleaved; medians)", "",
             f"Command: `python benchmarks/bench_cli.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
             "| command | median s | min s | x bare interpreter | target |", "|---|---|---|---|---|"]
    met = True
    for label, ts in times.items():
        med = statistics.median(ts)
        verdict = "-"
        if label in TARGETED:
            met &= med < TARGET_S
            verdict = f"{'met' if med < TARGET_S else 'NOT met'} (< {TARGET_S} s)"
        lines.append(f"| {label} | {med:.3f} | {min(ts):.3f} | {med / base:.1f} | {verdict} |")
    lines += ["", f"Target: `hetsched --help` and `hetsched solvers` under {TARGET_S} s -> {'MET' if met else 'NOT MET'}"]
    print("\n".join(lines))
    write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
