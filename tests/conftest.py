"""Shared test fixtures: where the external benchmark workloads live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BENCHMARKS = Path(os.environ.get("HETSCHED_BENCHMARKS",
                                 Path(__file__).resolve().parents[2] / "shared" / "benchmarks"))
DNN = BENCHMARKS / "dnn-partitioning"


@pytest.fixture(scope="session")
def dnn_files() -> list[Path]:
    """Every dnn-partitioning workload (skips where shared/ is not beside the checkout)."""
    files = sorted(DNN.glob("*/*/*.json"))
    if not files:
        pytest.skip(f"no dnn-partitioning workloads under {DNN} (set HETSCHED_BENCHMARKS)")
    return files
