"""The one input-validation layer: value types and one-line errors naming the file, the key and the item."""

from __future__ import annotations

import pytest

from scheduler.errors import HetschedError
from scheduler.schema import Count, FileModel, Finite, Flag, NonNegative, parse, whole


class Row(FileModel):
    name: str
    cost: NonNegative = 0.0


class Doc(FileModel):
    rows: list[Row]
    threads: whole(1, 64) = 1  # type: ignore[valid-type]
    scale: Finite = 1.0
    on: Flag = False


@pytest.mark.parametrize("data, message", [
    ({"rows": [{"name": "a"}, {"name": "b", "cost": -1}]},
     "f.json: rows[1].cost (row 'b') must be a finite number >= 0, got -1"),
    ({"rows": [{"name": "a", "cots": 1}]}, "f.json: rows[0] (row 'a'): unknown key 'cots'"),
    ({"rows": [{"cost": 1}]}, "f.json: rows[0]: missing key 'name'"),
    ({}, "f.json: missing key 'rows'"),
    ({"rows": {}}, "f.json: rows must be a list, got dict"),
    ([], "f.json: must be an object (a mapping of keys to values), got list"),
    ({"rows": [], "threads": 65}, "f.json: threads must be a whole number from 1 to 64, got 65"),
    ({"rows": [], "threads": 2.5}, "f.json: threads must be a whole number from 1 to 64, got 2.5"),
    ({"rows": [], "threads": True}, "f.json: threads must be a whole number from 1 to 64, got True"),
    ({"rows": [], "scale": float("nan")}, "f.json: scale must be a finite number, got nan"),
    ({"rows": [], "scale": "fast"}, "f.json: scale must be a finite number, got 'fast'"),
    ({"rows": [], "on": 1}, "f.json: on must be true or false, got 1"),
    ({"rows": [{"name": 1}], "on": "yes"}, "f.json: rows[0].name must be a valid string, got 1 (+1 more)"),
])
def test_errors_are_one_line_and_name_the_key(data, message) -> None:
    with pytest.raises(HetschedError) as err:
        parse(Doc, data, "f.json", HetschedError)
    assert str(err.value) == message


def test_values_are_converted_where_a_file_format_needs_it() -> None:
    doc = parse(Doc, {"rows": [{"name": "a", "cost": "2.0e10"}], "threads": 4.0}, "f.yaml", HetschedError)
    assert doc.rows[0].cost == 2e10  # YAML 1.1 reads 2.0e10 as a string
    assert doc.threads == 4 and isinstance(doc.threads, int)


def test_a_bare_value_is_named_by_its_key() -> None:
    with pytest.raises(HetschedError, match=r"^cli: option n must be a whole number from 0 to 2\*\*63-1, got 1e\+30$"):
        parse(Count, 10**30, "cli", HetschedError, key="option n")
