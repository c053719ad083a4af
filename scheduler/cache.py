"""What the model caches hold, and clearing them: all, the entries unused for a while, or down to a size,
least recently used first.

Three caches keep models so that a later run need not make them again, each entry a model file
``<key>.onnx`` and, for one with large values, the values file ``<key>.onnx.data`` beside it:

- ``optimized``: ORT's optimised models (``<profiles>/optimized``, :func:`scheduler.optimize.optimize_model`);
- ``zoo``: zoo models of 64 MiB of weights or more, built once (``<profiles>/optimized/zoo``);
- ``hf``: the Hugging Face exports (``$HETSCHED_CACHE/zoo``, :func:`scheduler.hf.cache_dir`).

Nothing evicts on its own (a run never deletes what another may be reading); a run that reads an entry marks
it used (:func:`scheduler.fileio.mark_used`), which is what "least recently used" goes by.  Only files named
as these caches name them are listed or removed (a symlink is neither followed nor removed), so a folder
given by mistake loses nothing else.  A values file without its model, or a temporary file, is a write that
stopped (or is under way: it was touched last when it was written) and is listed as ``unfinished``.

>>> parse_size("1.5G"), parse_size("200 MB"), parse_size("4096")
(1610612736, 209715200, 4096)
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import HetschedError

KINDS = ("optimized", "zoo", "hf")

_ENTRY = {"optimized": r"[0-9a-f]{20}", "zoo": r"[0-9a-f]{20}", "hf": r"(?:bert|roberta|gpt2)-[0-9a-f]{20}"}
"""The stem each cache names its entries by (a 20-digit hash of what made them)."""

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Entry:
    """One cache entry: its model file (absent when ``unfinished``), every file of it, their bytes, and when it
    was last used (the newest time one of its files was written or marked used, seconds since the epoch)."""

    kind: str
    path: str
    files: tuple[str, ...]
    size: int
    last_used: float
    unfinished: bool = False


def folders(profile_folder: str) -> dict[str, str]:
    """Each cache's folder for the profiles kept in ``profile_folder``."""
    from .hf import cache_dir
    from .pipeline import optimized_cache

    optimized = optimized_cache(profile_folder)
    return {"optimized": optimized, "zoo": os.path.join(optimized, "zoo"), "hf": str(cache_dir())}


def entries(folder: str, kind: str) -> list[Entry]:
    """The entries of cache ``kind`` in ``folder`` (none when it does not exist), least recently used first."""
    stem = _ENTRY[kind]
    ours = re.compile(rf"(?:\.)?({stem}\.onnx)(\.data)?(?:\.[^.]+\.tmp)?")
    groups: dict[str, list[tuple[str, os.stat_result, bool]]] = {}
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise HetschedError(f"cannot read cache folder {folder!r}: {exc.strerror}") from None
    for name in names:
        match = ours.fullmatch(name)
        if match is None or name.startswith(".") != name.endswith(".tmp"):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:  # removed meanwhile
            continue
        if stat.S_ISREG(st.st_mode):
            temporary = name.endswith(".tmp")
            groups.setdefault(path if temporary else os.path.join(folder, match.group(1)), []).append(
                (path, st, temporary))
    found = []
    for model, files in groups.items():
        paths = tuple(sorted(p for p, _, _ in files))
        temporary = files[0][2]  # a temporary file is an entry of its own
        found.append(Entry(kind, model, paths, sum(st.st_size for _, st, _ in files),
                           max(st.st_mtime for _, st, _ in files), unfinished=temporary or model not in paths))
    return sorted(found, key=lambda e: (e.last_used, e.path))


def model_name(entry: Entry) -> str:
    """The graph name of ``entry``'s model (what it was made from), or why there is none."""
    import onnx

    if entry.unfinished:
        return "(unfinished)"
    try:
        return onnx.load(entry.path, load_external_data=False).graph.name or "(no name)"
    except Exception:  # a cut or foreign file: a run builds the entry again
        return "(unreadable)"


def parse_size(text: str) -> int:
    """Bytes of a size such as ``500M``, ``1.5G``, ``2GB`` or ``4096`` (binary units: 1K = 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise HetschedError(f"size {text!r} is not a number of bytes with an optional unit K, M, G or T "
                            "(e.g. 500M, 2G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def to_remove(found: Sequence[Entry], *, keep: int | None = None, unused_for: float | None = None,
              now: float | None = None) -> list[Entry]:
    """Which of ``found`` to remove: with neither limit, all; else those unused for ``unused_for`` seconds or
    more, then the least recently used until what stays takes ``keep`` bytes at most."""
    if keep is None and unused_for is None:
        return list(found)
    now = time.time() if now is None else now
    ordered = sorted(found, key=lambda e: (e.last_used, e.path))
    gone = [e for e in ordered if unused_for is not None and now - e.last_used >= unused_for]
    if keep is not None:
        left = sum(e.size for e in ordered) - sum(e.size for e in gone)
        taken = set(gone)
        for e in ordered:
            if left <= keep:
                break
            if e not in taken:
                gone.append(e)
                left -= e.size
    return gone


def remove(chosen: Iterable[Entry]) -> int:
    """Remove the files of the ``chosen`` entries (one already gone is skipped); the bytes freed.  A running
    session that maps a removed values file keeps reading it (the file system frees it after)."""
    freed = 0
    for entry in chosen:
        for path in entry.files:
            try:
                size = os.lstat(path).st_size
                os.remove(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise HetschedError(f"cannot remove cache file {path!r}: {exc.strerror}") from None
            freed += size
    return freed


def human(size: float) -> str:
    """``size`` bytes for people (binary units).

    >>> human(512), human(1536), human(200 << 20), human(5 << 30)
    ('512 B', '1.5 KB', '200.0 MB', '5.0 GB')
    """
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} GB"
