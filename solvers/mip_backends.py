"""The MILP backends: CBC as a watched subprocess, HiGHS in process, and what their answers mean.

PuLP reports ``LpStatus`` "Optimal" when CBC stops on its time limit with an
incumbent, so CBC's verdict is read from its own log ("Result - Optimal solution
found" vs "Stopped on time limit", "Objective value", the best bound printed) and
``LpStatus`` is never used.  CBC misses its own limit inside long root nodes: a
watchdog interrupts it (SIGINT, it writes its incumbent) :data:`GRACE_S` past the
deadline and kills it if it does not answer.  HiGHS runs in process through PuLP;
``highspy`` 1.15 and newer cannot share a process with OR-Tools 9.15 and is refused.
What to make of the verdicts (CBC 2.10's wrong "infeasible" and start proofs) is
:mod:`solvers.milp`'s business.

>>> log = "Result - Optimal solution found", "Objective value:   12.5", "Lower bound: 12.5"
>>> parse_cbc_log(chr(10).join(log))["objective"]
12.5
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import pulp

from scheduler.errors import SolverError


@dataclass(frozen=True)
class BackendResult:
    """What a backend run says, before interpretation (values in model units)."""

    has_solution: bool
    proven_optimal: bool
    infeasible: bool
    objective: float | None
    bound: float | None
    status_text: str
    wall: float


_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def _printed_floor(text: str) -> float:
    """A printed number minus one unit in its last printed digit (CBC rounds what it prints)."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return float(text) - 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def parse_cbc_log(text: str) -> dict[str, Any]:
    """CBC's verdict from its log: result line, objective, and a lower bound rounded down (None where absent).

    The bound is the largest "best possible" printed (every one is valid; they carry
    more digits than "Lower bound:", the fallback), minus one unit in its last digit.
    """
    out: dict[str, Any] = {"result": None, "objective": None, "bound": None}
    m = (re.search(r"^Result - (.*)$", text, re.M) or re.search(r"^(Problem is infeasible)", text, re.M)
         or re.search(r"^(Pre-processing says infeasible.*)$", text, re.M))
    if m:
        out["result"] = m.group(1).strip()
    m = re.search(r"^Objective value:\s+" + _NUM, text, re.M)
    if m:
        out["objective"] = float(m.group(1))
    found = re.findall(r"best possible " + _NUM, text)
    if found:
        out["bound"] = max(_printed_floor(v) for v in found)
    else:
        m = re.search(r"^Lower bound:\s+" + _NUM, text, re.M)
        if m:
            out["bound"] = _printed_floor(m.group(1))
    return out


GRACE_S = 0.1
"""Seconds past the deadline before CBC is interrupted (SIGINT: it stops and writes its incumbent)."""
INTERRUPT_WAIT_S = 0.5
"""Seconds CBC gets to answer SIGINT before it is killed (then nothing it found is used)."""


def _wait(proc: subprocess.Popen[bytes], deadline: float | None) -> str:
    """Wait for CBC, interrupting it past ``deadline`` (CBC misses its own limit in long root nodes)."""
    if deadline is None:
        proc.wait()
        return "finished"
    try:
        proc.wait(timeout=max(0.0, deadline + GRACE_S - time.perf_counter()))
        return "finished"
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=INTERRUPT_WAIT_S)
        return "interrupted"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed"


def _cbc_command() -> pulp.COIN_CMD:
    """A CBC command: one on the PATH (or from ``pulp[cbc]``), else the binary bundled with PuLP 3."""
    cmd = pulp.COIN_CMD(msg=False)
    if cmd.available():
        return cmd
    bundled = getattr(pulp.apis.coin_api, "pulp_cbc_path", None)
    if bundled:
        cmd = pulp.COIN_CMD(msg=False, path=bundled)
        if cmd.available():
            return cmd
    raise SolverError("solver 'milp': no CBC binary found (install it, or pip install 'pulp[cbc]')")


def run_cbc(prob: pulp.LpProblem, objective: pulp.LpVariable, deadline: float | None, threads: int, seed: int,
            warm: bool, preprocess: bool = True) -> BackendResult:
    """Run CBC on ``prob``'s MPS file under a wall-clock watchdog (``warm``: from the variables' values); read
    its log for the verdict.  The solution is written into ``prob``'s variables."""
    cmd = _cbc_command()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hetsched-cbc-") as tmp:
        mps, mst, sol, log_path = (os.path.join(tmp, f) for f in ("m.mps", "m.mst", "m.sol", "cbc.log"))
        vs, vnames, cnames, _ = prob.writeMPS(mps, rename=1)
        args = [cmd.path, mps]
        if warm:
            cmd.writesol(mst, prob, vs, vnames, cnames)
            args += ["-mips", mst]
        if deadline is not None:
            left = deadline - time.perf_counter()
            if left <= 0.01:
                return BackendResult(False, False, False, None, None, "not started: time limit spent", 0.0)
            # CBC needs a moment after its own limit to stop and write the solution: ask for a bit less
            args += ["-sec", f"{max(0.01, left - min(0.25, 0.1 * left)):.3f}", "-timeMode", "elapsed"]
        args += ["-ratio", "0", "-allow", "1e-6", "-threads", str(threads)]
        if not preprocess:
            args += ["-preprocess", "off"]
        if seed:
            args += ["-randomCbcSeed", str(seed)]
        args += ["-solve", "-printingOptions", "all", "-solution", sol]
        with open(log_path, "w") as log_fh:
            proc = subprocess.Popen(args, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                how = _wait(proc, deadline)
            except BaseException:  # Ctrl-C: CBC must not outlive us (nor write into a removed folder)
                proc.kill()
                proc.wait()
                raise
        wall = time.perf_counter() - t0
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            log = parse_cbc_log(fh.read())
        if how == "killed" or not os.path.exists(sol) or os.path.getsize(sol) == 0:
            said = log["result"] or f"CBC {how}"  # "Pre-processing says infeasible ..." writes no solution
            return BackendResult(False, False, how == "finished" and "infeasible" in said.lower(), None,
                                 log["bound"], f"{said}, no solution file", wall)
        status, values, _, _, _, sol_status = cmd.readsol_MPS(sol, prob, vs, vnames, cnames)
    prob.assignVarsVals(values)
    prob.assignStatus(status, sol_status)
    result = log["result"] or "no result line"
    if how != "finished":
        result = f"{result} ({how} by the watchdog)"
    has = sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    optimal = (how == "finished" and result.startswith("Optimal solution found")
               and sol_status == pulp.LpSolutionOptimal)
    # CBC's result line ("Problem proven infeasible", "Linear relaxation infeasible") is the proof;
    # the solution file says "Integer infeasible", which PuLP maps to no status at all
    infeasible = how == "finished" and not has and ("infeasible" in result.lower()
                                                    or sol_status == pulp.LpSolutionInfeasible)
    objective = log["objective"] if has else None
    if objective is None and has:
        objective = objective.value()
    bound = log["bound"]
    if optimal and objective is not None:
        proven = objective - 1e-6  # CBC stops within allowableGap (1e-6 units) of its bound
        bound = proven if bound is None else max(bound, proven)
    return BackendResult(has, optimal, infeasible, objective, bound, result, wall)


def highs_available() -> str | None:
    """None when HiGHS can be used here, else why not (never imports a highspy that breaks OR-Tools)."""
    try:
        version = importlib.metadata.version("highspy")
    except importlib.metadata.PackageNotFoundError:
        return "highspy is not installed (pip install 'highspy<1.15')"
    major_minor = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if major_minor >= (1, 15):
        return f"highspy {version} cannot share a process with OR-Tools 9.15; install 'highspy<1.15'"
    if not pulp.HiGHS().available():
        return "PuLP cannot load highspy"
    return None


def run_highs(prob: pulp.LpProblem, limit: float | None, threads: int, seed: int) -> BackendResult:
    params: dict[str, Any] = {"random_seed": seed, "mip_abs_gap": 1e-6, "mip_rel_gap": 0.0}
    cmd = pulp.HiGHS(msg=False, timeLimit=None if limit is None else max(limit, 0.01), threads=threads, **params)
    t0 = time.perf_counter()
    prob.solve(cmd)
    wall = time.perf_counter() - t0
    h = prob.solverModel
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    has = info.primal_solution_status == 2 and prob.sol_status in (pulp.LpSolutionOptimal,
                                                                           pulp.LpSolutionIntegerFeasible)
    optimal = status.lower() == "optimal" and has
    infeasible = status.lower() == "infeasible"
    objective = info.objective_function_value if has else None
    bound = info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else None
    if optimal and bound is None:
        bound = objective
    return BackendResult(has, optimal, infeasible, objective, bound, status, wall)


def run(prob: pulp.LpProblem, objective: pulp.LpVariable, backend: str, deadline: float | None, threads: int,
        seed: int, warm: bool) -> BackendResult:
    """``prob`` solved by ``backend`` (cbc | highs) until ``deadline`` (``time.perf_counter()`` seconds)."""
    if backend == "highs":
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0.01:
            return BackendResult(False, False, False, None, None, "not started: time limit spent", 0.0)
        return run_highs(prob, left, threads, seed)
    return run_cbc(prob, objective, deadline, threads, seed, warm)
