"""Records (CSV rows, fixed-width records) into documents, as a mapping's input declares.

A grouped document is ``{"key", "header": first record, "records": [...]}`` (``key`` only with
``group_by``); it carries the source line of its first record under ``__line__``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from esb.codecs import LINE_KEY, RECORD_TYPE_KEY
from esb.errors import DecodeError
from esb.mapping.functions import is_empty
from esb.problems import did_you_mean


def group_by_key(records: Iterable[dict], key: str) -> Iterator[dict]:
    """One document per run of records with the same ``key``; a key seen again later is an error."""
    seen: set[str] = set()
    group: dict | None = None
    for record in records:
        if key not in record:
            columns = [name for name in record if name not in (LINE_KEY, RECORD_TYPE_KEY)]
            raise DecodeError(f"line {record.get(LINE_KEY)}: no field {key!r} to group by"
                              f"{did_you_mean(key, columns)}; fields: {', '.join(columns)}")
        value = record[key]
        if is_empty(value):
            raise DecodeError(f"line {record.get(LINE_KEY)}: {key} is empty, so the record belongs to no "
                              f"document")
        if group is not None and value == group["key"]:
            group["records"].append(record)
            continue
        if group is not None:
            yield group
        if value in seen:
            raise DecodeError(f"line {record.get(LINE_KEY)}: {key} {value} appears again after other "
                              f"documents; keep each document's records together")
        seen.add(value)
        group = {"key": value, "header": record, "records": [record], LINE_KEY: record.get(LINE_KEY)}
    if group is not None:
        yield group


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
