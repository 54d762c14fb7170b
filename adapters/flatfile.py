"""Flat files in a directory: poll for new files (a source), write one file per message or batch
(a sink). Formats: CSV, fixed-width records, JSON, XML.

Only the config spec lives here for now; the source and sink come with the file issue.
Keywords `x-esb-*`: see adapters/rest.py.
"""

from __future__ import annotations

from esb.durations import DURATION_PATTERN
from esb.plugins import AdapterSpec, register

DEFAULT_POLL = 10.0
"""Seconds between two scans of a source directory."""

DEFAULT_MAX_FILE_BYTES = 52_428_800
"""Largest file a source reads (50 MiB); a larger one is moved to error_dir with a report."""


def _duration(description: str, default: float | str | None, **extra) -> dict:
    """A duration option: seconds as a number, or a string such as 500ms, 10s, 2m."""
    types = ["number", "string"] if default is not None else ["number", "string", "null"]
    return {"type": types, "minimum": 0, "pattern": DURATION_PATTERN,
            "description": description, "default": default, **extra}


ENDPOINT_SCHEMA = {
    "type": "object",
    "description": "from: pick up files from a directory; to: write files into a directory.",
    "x-esb-source": True,
    "x-esb-sink": True,
    "additionalProperties": False,
    "required": ["dir"],
    "properties": {
        "dir": {"type": "string", "x-esb-path": True,
                "description": "Directory to read from or write to, relative to the routes file."},
        "format": {"enum": ["csv", "fixed", "json", "xml"], "default": "csv",
                   "description": "File format; a fixed-width layout is declared in the mapping file."},
        "encoding": {"type": "string", "default": "utf-8",
                     "description": "Text encoding, a Python codec name (utf-8, gbk, gb2312, cp1252, ...); "
                                    "a byte order mark is honoured."},
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ",",
                      "description": "CSV field separator (one character, e.g. ; or a tab)."},
        # source options
        "pattern": {"type": "string", "default": "*", "x-esb-role": "source",
                    "description": "Glob of the file names to pick up, e.g. GR_*.csv."},
        "poll": _duration("Seconds between two scans of dir, or a duration such as 10s.", DEFAULT_POLL,
                          **{"x-esb-role": "source"}),
        "complete_when": {"enum": ["size-stable", "done-marker", "rename"], "default": "size-stable",
                          "x-esb-role": "source",
                          "description": "When a file counts as fully written: size-stable (same size on "
                                         "two scans), done-marker (a <name>.done file appears beside it), "
                                         "rename (the writer renames it to match pattern when done)."},
        "processed_dir": {"type": ["string", "null"], "default": None, "x-esb-path": True,
                          "x-esb-role": "source",
                          "description": "Where a file goes once every message in it is stored; default: "
                                         "<dir>/processed."},
        "error_dir": {"type": ["string", "null"], "default": None, "x-esb-path": True, "x-esb-role": "source",
                      "description": "Where a bad file goes, with a <name>.error.txt report beside it; "
                                     "default: <dir>/error."},
        "per": {"enum": ["file", "record", "group"], "default": "file", "x-esb-role": "source",
                "description": "One message per file, per record (line), or per group of records with the "
                               "same group_by value (e.g. the lines of one receipt)."},
        "group_by": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                     "description": "Column or field whose value groups records into one message (per: "
                                    "group)."},
        "header": {"type": "boolean", "default": True, "x-esb-role": "source",
                   "description": "The first CSV line names the columns."},
        "max_file_bytes": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_FILE_BYTES,
                           "x-esb-role": "source",
                           "description": "Largest file read, in bytes; a larger one goes to error_dir."},
        # sink options
        "name_template": {"type": "string", "default": "{type}_{id}.{ext}", "x-esb-role": "sink",
                          "description": "Name of each written file; placeholders: {route}, {type}, {id}, "
                                         "{correlation_id}, {timestamp} (UTC, YYYYmmddTHHMMSS), {ext}. "
                                         "Files are written under a temporary name and renamed."},
        "line_ending": {"enum": ["lf", "crlf"], "default": "lf", "x-esb-role": "sink",
                        "description": "Line ending of written text files."},
        "batch_interval": _duration("Collect the messages of this many seconds (or a duration such as 5m) "
                                    "into one file; default: one file per message.", None,
                                    **{"x-esb-role": "sink"}),
    },
}


def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """Grouping needs a group_by field. Directories may be created later, so they are not checked."""
    options = endpoint.options
    if options.get("per") == "group" and not options.get("group_by"):
        return ["per: group needs group_by: (the column whose value groups records)"]
    if options.get("group_by") and options.get("per") != "group":
        return ["group_by is used only with per: group"]
    return []


register(AdapterSpec(
    name="file",
    summary="Flat files (CSV, fixed-width, JSON, XML) picked up from or written to a directory",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema={"type": "object", "additionalProperties": False, "properties": {},
                   "description": "The file adapter has no system settings."},
    source_factory=None,
    sink_factory=None,
    check=check_endpoint,
))
