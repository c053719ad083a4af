"""One way to read what a user hands over: pydantic models whose first error reads as one line.

Every file boundary (platform YAML, problem and schedule JSON, imported workloads,
run configs, suites) and every typed parameter (zoo ``--set``) is parsed by a
pydantic model or ``TypeAdapter`` built from the value types here, and
:func:`parse` turns a validation error into a :class:`~scheduler.errors.HetschedError`
that names the file and the key:

>>> from pydantic import BaseModel
>>> class Row(FileModel):
...     cost: NonNegative
>>> parse(Row, {"cost": -1}, "costs.json", ValueError)
Traceback (most recent call last):
ValueError: costs.json: cost must be a finite number >= 0, got -1
>>> parse(Row, {"cost": 1, "cots": 2}, "costs.json", ValueError)
Traceback (most recent call last):
ValueError: costs.json: unknown key 'cots'

The value types are strict where a lax conversion would hide a typo (``true`` is
not a number, ``1.5`` is not a count) and accept what YAML 1.1 does to numbers
(``2.0e10`` without an exponent sign is read as a string).
"""

from __future__ import annotations

import math
import numbers
import reprlib
from typing import Annotated, Any, Callable, TypeVar

from pydantic import BaseModel, ConfigDict, PlainValidator, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

M = TypeVar("M")

_OURS = "hetsched"  # the error type of the value types below: their message is the whole sentence


class FileModel(BaseModel):
    """A record of a file: unknown keys are errors, the result is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _fail(text: str, value: Any) -> PydanticCustomError:
    huge = isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63
    return PydanticCustomError(_OURS, "{text}, got {got}",
                               {"text": text, "got": f"{value:.3g}" if huge else reprlib.repr(value)})


def _as_number(value: Any) -> Any:
    """YAML 1.1 reads ``2.0e10`` (no exponent sign) as a string: take it as the number it spells."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _finite(value: Any, *, minimum: float | None = None, text: str = "must be a finite number") -> float:
    value = _as_number(value)
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or (minimum is not None and value < minimum)):
        raise _fail(text, value)
    return float(value)


def _whole(value: Any, *, low: int = 0, high: int = 2**63 - 1) -> int:
    value = _as_number(value)
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value != int(value) or not low <= value <= high):
        span = "" if low < -(2**62) else f" from {low} to {'2**63-1' if high == 2**63 - 1 else high}"
        raise _fail(f"must be a whole number{span}", value)
    return int(value)


def _accept(kind: Any, ok: Callable[[Any], bool], text: str, convert: Callable[[Any], Any] = lambda v: v) -> Any:
    """A value type of ``kind`` that takes the values ``ok`` accepts (``convert``-ed), else says ``text``."""
    def check(value: Any) -> Any:
        if not ok(value):
            raise _fail(text, value)
        return convert(value)
    return Annotated[kind, PlainValidator(check)]


Finite = Annotated[float, PlainValidator(_finite)]
"""A finite number (an int or a float, not a bool)."""
NonNegative = Annotated[float, PlainValidator(lambda v: _finite(v, minimum=0.0,
                                                                text="must be a finite number >= 0"))]
"""A finite number >= 0: a time in seconds, a byte count read as a number."""


def whole(low: int = 0, high: int = 2**63 - 1) -> Any:
    """A whole number from ``low`` to ``high`` (``3.0`` is 3; ``3.5`` and ``true`` are errors)."""
    return Annotated[int, PlainValidator(lambda v: _whole(v, low=low, high=high))]


Integer = whole(-(2**63), 2**63 - 1)
"""A whole number of either sign."""
Count = whole()
"""A whole number from 0 to 2**63-1 (``3.0`` is 3; ``3.5`` and ``true`` are errors)."""
Positive = whole(1)
"""A whole number >= 1 (threads, replicas)."""
Text = _accept(str, lambda v: isinstance(v, str), "must be a string")
"""A string, never a number turned into one."""
Name = _accept(str, lambda v: isinstance(v, str) and v != "", "must be a non-empty string")
"""A non-empty string."""
Flag = _accept(bool, lambda v: isinstance(v, bool), "must be true or false")
"""true or false, never ``1`` or ``"yes"``."""
Switch = _accept(bool, lambda v: isinstance(v, (bool, int)) and v in (True, False), "must be true, false, 1 or 0",
                 bool)
"""true or false, or 1 or 0 (as other tools' JSON writes flags)."""
Ident = _accept(int | str, lambda v: not isinstance(v, bool) and isinstance(v, (int, str)),
                "must be a number or a name")
"""An identifier: a whole number or a name."""


def exactly(expected: str) -> Any:
    """A field that must equal ``expected`` (a file's ``format`` tag)."""
    return _accept(str, lambda v: v == expected, f"must be {expected!r}")


_OBJECT = "an object (a mapping of keys to values)"
_SHAPES = {"model_type": _OBJECT, "dict_type": _OBJECT, "list_type": "a list", "tuple_type": "a list"}


def _path(key: str, loc: tuple[Any, ...], data: Any) -> str:
    """``key`` followed by the location ``loc`` in ``data``."""
    return key + ("." if key and loc and not isinstance(loc[0], int) else "") + _where(loc, data)


def _where(loc: tuple[Any, ...], data: Any = None) -> str:
    """``tasks[1].cost.cpu``, with ``(task 'b')`` after it when the innermost listed item has a name."""
    text, named, item = "", "", data
    for i, part in enumerate(loc):
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
        try:
            item = item[part]
        except (KeyError, IndexError, TypeError):
            item = None
        if isinstance(part, int) and i and isinstance(item, dict):
            label = (repr(item["name"]) if isinstance(item.get("name"), str)
                     else f"{item['src']}->{item['dst']}" if {"src", "dst"} <= set(item) else None)
            named = f" ({str(loc[i - 1]).removesuffix('s')} {label})" if label else named
    return text.lstrip(".") + named


def one_line(exc: ValidationError, where: str, data: Any = None, key: str = "") -> str:
    """The first error of ``exc`` as ``where: key must be ..., got X`` (``+N more`` when there are more).

    ``data``, the input, lets a list item be named by its ``name``; ``key`` names
    the value itself (a ``TypeAdapter``'s errors have no location).
    """
    errors = exc.errors()
    err = errors[0]
    loc, kind, msg = tuple(err["loc"]), err["type"], err["msg"]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    if kind in ("extra_forbidden", "missing"):
        path = _path(key, loc[:-1], data)
        what = ("unknown key" if kind == "extra_forbidden" else "missing key") + (f" {loc[-1]!r}" if loc else "")
        return f"{where}: {path + ': ' if path else ''}{what}{more}"
    path = _path(key, loc, data)
    if kind == _OURS or msg.startswith("Input should be"):
        got = err.get("input")
        if kind in _SHAPES:
            msg = f"must be {_SHAPES[kind]}, got {type(got).__name__}"
        elif kind != _OURS:
            msg = f"{msg.replace('Input should be', 'must be', 1)}, got {reprlib.repr(got)}"
        return f"{where}: {path + ' ' if path else ''}{msg}{more}"
    return f"{where}: {path + ': ' if path else ''}{msg.removeprefix('Value error, ')}{more}"


def parse(model: type[M] | Any, data: Any, where: str, error: type[Exception], *, key: str = "",
          context: dict[str, Any] | None = None, strict: bool | None = None) -> M:
    """``data`` validated by ``model`` (a pydantic model, or a type for a ``TypeAdapter``), else ``error``
    with :func:`one_line`'s message."""
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(data, context=context, strict=strict)
        return TypeAdapter(model).validate_python(data, context=context, strict=strict)
    except ValidationError as exc:
        raise error(one_line(exc, where, data, key)) from None
