"""Where a benchmark's results go: its table as CSV and its summary as Markdown, side by side."""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable

import pandas as pd

from scheduler.fileio import write_text


def save(out: str, table: pd.DataFrame, text: str) -> None:
    """Write ``<out>.csv`` (every row) and ``<out>.md`` (``text``) atomically, making the folder, and print
    the summary."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    write_text(f"{out}.csv", table.to_csv(index=False))
    write_text(f"{out}.md", text)
    print(text)


def per_model(models: Iterable[str], row: Callable[[str], dict[str, object]]) -> pd.DataFrame:
    """A table of ``row(name)`` for each model, each row printed as it comes with the seconds it took."""
    rows = []
    for name in models:
        t0 = time.perf_counter()
        rows.append(row(name))
        print(pd.DataFrame([rows[-1]]).round(3).to_string(index=False), f"({time.perf_counter() - t0:.0f} s)",
              flush=True)
    return pd.DataFrame(rows)
