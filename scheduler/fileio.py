"""Small file helpers: JSON and YAML reads with one-line errors, atomic writes."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from typing import Any, Iterable, Iterator

import yaml

from .errors import HetschedError

YAML_MAX_NODES = 100_000
"""Most nodes a YAML document may have once its aliases are expanded (an alias bomb is refused)."""


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Read a JSON file, turning a missing or malformed file into a one-line error."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise HetschedError(f"{what} file {p!r} does not exist")
    try:
        with open(p, encoding="utf-8") as fh:
            return json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, integers of thousands of digits
        raise HetschedError(f"{p}: not valid JSON ({str(exc).splitlines()[0][:200]})") from None
    except RecursionError:
        raise HetschedError(f"{p}: not valid JSON (nested too deeply)") from None


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes of ``node`` with every alias expanded (an alias is the same node object again)."""
    if id(node) not in memo:
        memo[id(node)] = 1  # a recursive alias counts once
        if isinstance(node, yaml.SequenceNode):
            memo[id(node)] += sum(_expanded_size(n, memo) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[id(node)] += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    return memo[id(node)]


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, reading ``1e-6`` as a number as YAML 1.2 does (1.1 wants ``1.0e-6``)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def load_yaml(text: str | bytes, where: str, error: type[HetschedError] = HetschedError) -> Any:
    """Safe YAML with one-line errors (invalid UTF-8, syntax with its line), refusing documents that are
    larger than :data:`YAML_MAX_NODES` nodes once aliases are expanded (never expanding them to find out).

    >>> load_yaml("a: &x [1, 2e-6]\\nb: *x", "example")
    {'a': [1, 2e-06], 'b': [1, 2e-06]}
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where}: not valid UTF-8 (byte {exc.start})") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > YAML_MAX_NODES:
            raise error(f"{where}: too large once its YAML aliases are expanded (over {YAML_MAX_NODES} nodes)")
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise error(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise error(f"{where}: not valid YAML (nested too deeply)") from None
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike[str], error: type[HetschedError] = HetschedError) -> Any:
    """:func:`load_yaml` of a file, named in errors."""
    p = os.fspath(path)
    with open(p, "rb") as fh:
        return load_yaml(fh.read(), p, error)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically (temporary file + rename), so a reader never sees half a file."""
    write_text(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def write_bytes(path: str | os.PathLike[str], data: bytes | Iterable[bytes | memoryview]) -> None:
    """Write bytes (or a sequence of chunks, written one after another) atomically, creating the folder if
    needed.

    The data goes to a fresh temporary file in the same folder (created
    exclusively, so no existing file or symlink is written through) that is then
    renamed over ``path`` (a symlink at ``path`` is replaced, never followed;
    a folder, device or pipe there is refused).
    """
    p = _replaceable(path)
    folder = os.path.dirname(os.path.abspath(p))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(p)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)
            for chunk in (data,) if isinstance(data, bytes) else data:
                fh.write(chunk)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _replaceable(path: str | os.PathLike[str]) -> str:
    """``path`` as a string, its folder made: where a file may be renamed into place (nothing there, a file
    or a symlink, which is replaced, never followed); a folder, device or pipe there is refused."""
    p = os.fspath(path)
    if not p:
        raise HetschedError("an output path is empty")
    try:
        mode = os.lstat(p).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise HetschedError(f"{p}: exists and is not a regular file; refusing to replace it")
    os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    return p


def move_file(source: str, path: str | os.PathLike[str]) -> None:
    """Move the file at ``source`` (ours: a temporary one) to ``path`` atomically, as :func:`write_bytes` would
    write it: renamed where both lie on one file system (no copy of a large file), else copied through in
    chunks and removed."""
    p = _replaceable(path)
    os.chmod(source, 0o644)  # as write_bytes leaves its files
    try:
        os.replace(source, p)
    except OSError:  # another file system (EXDEV)
        write_bytes(p, _chunks(source))
        os.remove(source)


def _chunks(path: str, size: int = 16 << 20) -> Iterator[bytes]:
    """The bytes of the file at ``path``, ``size`` at a time."""
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def mark_used(path: str | os.PathLike[str]) -> None:
    """Set the file's modification time to now: a cache entry read (:mod:`scheduler.cache` clears the least
    recently used first).  A link is not followed; a file that cannot be touched (a read-only cache) keeps its
    time."""
    try:
        os.utime(path, follow_symlinks=os.utime not in os.supports_follow_symlinks)
    except OSError:
        pass


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(path, text.encode("utf-8"))
