"""Small file helpers: JSON read with one-line errors, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Collection

from .errors import HetschedError


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Read a JSON file, turning a missing or malformed file into a one-line error."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise HetschedError(f"{what} file {p!r} does not exist")
    try:
        with open(p, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HetschedError(f"{p}: not valid JSON ({exc})") from None


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically (temporary file + rename), so a reader never sees half a file."""
    write_text(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes atomically, creating the folder if needed.

    The data goes to a fresh temporary file in the same folder (created
    exclusively, so no existing file or symlink is written through) that is then
    renamed over ``path`` (a symlink at ``path`` is replaced, never followed).
    """
    p = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(p))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(p)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)
            fh.write(data)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(path, text.encode("utf-8"))


def check_keys(where: str, data: Any, allowed: Collection[str], required: Collection[str] = (),
               error: type[HetschedError] = HetschedError) -> dict[str, Any]:
    """``data`` as a mapping with only ``allowed`` keys and every ``required`` one, else ``error`` naming the key."""
    if not isinstance(data, dict):
        raise error(f"{where}: expected a mapping (an object), got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise error(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if key not in data:
            raise error(f"{where}: missing key {key!r}")
    return data
