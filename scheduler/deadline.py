"""Deadlines for work that must stop within a time budget (model building, LP bounds, solvers).

A deadline is a ``time.perf_counter()`` value, or None for no limit; loops that
build large models call :func:`check_time` and the caller catches :class:`OutOfTime`.

>>> d = deadline_after(None)
>>> check_time(d) is None
True
"""

from __future__ import annotations

import time


class OutOfTime(Exception):
    """Raised by work that passed its deadline (caught by whoever set the deadline, never escapes)."""


def deadline_after(time_limit: float | None) -> float | None:
    """The deadline ``time_limit`` seconds from now (None: no limit; a negative limit is already past)."""
    return None if time_limit is None else time.perf_counter() + max(0.0, time_limit)


def check_time(when: float | None) -> None:
    """Raise :class:`OutOfTime` when the deadline ``when`` has passed."""
    if when is not None and time.perf_counter() > when:
        raise OutOfTime
