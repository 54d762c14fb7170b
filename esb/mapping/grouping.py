"""Records (CSV rows, fixed-width records) into documents, as a mapping's input declares.

A grouped document is ``{"key", "header": first record, "records": [...]}`` (``key`` only with
``group_by``); it carries the source line of its first record under ``__line__``. ``per: file``
makes one such document (without ``key``) of every record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from esb.codecs import LINE_KEY, RECORD_TYPE_KEY
from esb.errors import DecodeError
from esb.mapping.functions import is_empty
from esb.problems import did_you_mean

PER_VALUES = ("record", "group", "file")
"""input.per: one document per record, per group of records, or of the whole input."""


@dataclass(frozen=True, slots=True)
class Grouping:
    """How a mapping's input makes documents of records (CSV, fixed-width)."""

    per: str = "record"  # one of PER_VALUES
    group_by: str | None = None
    group_starts_with: str | None = None
    group_sorted: bool = True  # group_by: each document's records come together


def group_by_key(records: Iterable[dict], key: str) -> Iterator[dict]:
    """One document per run of records with the same ``key``; a key seen again later is an error
    (the records are streamed: one document is in memory at a time)."""
    seen: set[str] = set()
    group: dict | None = None
    for record in records:
        value = _key_of(record, key)
        if group is not None and value == group["key"]:
            group["records"].append(record)
            continue
        if group is not None:
            yield group
        if value in seen:
            raise DecodeError(f"line {record.get(LINE_KEY)}: {key} {value} appears again after other "
                              f"documents; keep each document's records together, or set group_sorted: false")
        seen.add(value)
        group = _new_group(record, value)
    if group is not None:
        yield group


def group_by_key_unsorted(records: Iterable[dict], key: str) -> Iterator[dict]:
    """One document per ``key`` value wherever its records are, in the order the values first
    appear (``group_sorted: false``: every record is read before the first document is made)."""
    groups: dict[Any, dict] = {}
    for record in records:
        value = _key_of(record, key)
        if value in groups:
            groups[value]["records"].append(record)
        else:
            groups[value] = _new_group(record, value)
    yield from groups.values()


def whole_file(records: Iterable[dict]) -> Iterator[dict]:
    """One document of every record (``per: file``); none when there is no record."""
    document: dict | None = None
    for record in records:
        if document is None:
            document = {"header": record, "records": [record], LINE_KEY: record.get(LINE_KEY)}
        else:
            document["records"].append(record)
    if document is not None:
        yield document


def _key_of(record: dict, key: str) -> Any:
    if key not in record:
        columns = [name for name in record if name not in (LINE_KEY, RECORD_TYPE_KEY)]
        raise DecodeError(f"line {record.get(LINE_KEY)}: no field {key!r} to group by"
                          f"{did_you_mean(key, columns)}; fields: {', '.join(columns)}")
    value = record[key]
    if is_empty(value):
        raise DecodeError(f"line {record.get(LINE_KEY)}: {key} is empty, so the record belongs to no "
                          f"document")
    return value


def _new_group(record: dict, value: Any) -> dict:
    return {"key": value, "header": record, "records": [record], LINE_KEY: record.get(LINE_KEY)}


def group_by_header(records: Iterable[dict], header_type: str) -> Iterator[dict]:
    """One document per header record (of type ``header_type``) and the records after it."""
    group: dict | None = None
    for record in records:
        if record.get(RECORD_TYPE_KEY) == header_type:
            if group is not None:
                yield group
            group = {"header": record, "records": [], LINE_KEY: record.get(LINE_KEY)}
        elif group is None:
            raise DecodeError(f"line {record.get(LINE_KEY)}: a {record.get(RECORD_TYPE_KEY)} record before "
                              f"the first {header_type} record")
        else:
            group["records"].append(record)
    if group is not None:
        yield group


def grouped(records: Iterable[Any], grouping: Grouping) -> Iterable[Any]:
    """The documents a mapping's ``input`` makes of the records (``records`` itself for per: record)."""
    if grouping.per == "file":
        return whole_file(records)
    if grouping.group_by is not None:
        group = group_by_key if grouping.group_sorted else group_by_key_unsorted
        return group(records, grouping.group_by)
    if grouping.group_starts_with is not None:
        return group_by_header(records, grouping.group_starts_with)
    return records
