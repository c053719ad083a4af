"""Where a benchmark's results go: its table as CSV and its summary as Markdown, side by side."""

from __future__ import annotations

import os

import pandas as pd

from scheduler.fileio import write_text


def save(out: str, table: pd.DataFrame, text: str) -> None:
    """Write ``<out>.csv`` (every row) and ``<out>.md`` (``text``) atomically, making the folder, and print
    the summary."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    write_text(f"{out}.csv", table.to_csv(index=False))
    write_text(f"{out}.md", text)
    print(text)
