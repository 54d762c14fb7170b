"""The options of the file adapter (a JSON-Schema fragment) and the checks of options that only
make sense together."""

from __future__ import annotations

from typing import Any

from adapters.flatfile.names import template_problems
from adapters.flatfile.window import DEFAULT_IN_FLIGHT, MAX_IN_FLIGHT
from esb import codecs
from esb.codecs import decoding_for
from esb.durations import duration_option

DEFAULT_POLL = 10.0
"""Seconds between two scans of a source directory."""

DEFAULT_MAX_FILE_BYTES = 52_428_800
"""Largest message a source reads (50 MiB): the whole file with per: file, one record or group
otherwise; a larger one sends the file to error_dir with a report."""

DEFAULT_RECLAIM_AFTER = 600.0
"""Seconds after which a claim whose worker shows no progress is taken over by another worker."""

DEFAULT_MIN_AGE = 5.0
"""Seconds a file's size and modification time must stay unchanged before it is taken."""

DEFAULT_IGNORE = ["*.tmp", "*.part", "*.partial", "*.filepart", "*.crdownload"]
"""Names writers give a file while they write it (besides dot-names, which are always ignored)."""


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
        "format": {"enum": codecs.formats(), "default": "csv",
                   "description": "File format; a fixed-width layout is declared in the mapping file."},
        "encoding": {"type": "string", "default": "utf-8",
                     "description": "Text encoding, a Python codec name (utf-8, gbk, gb2312, cp1252, ...); "
                                    "a byte order mark is honoured. A destination re-encodes the rendered "
                                    "(UTF-8) document into it; leave utf-8 when the outbound mapping "
                                    "already writes the target's encoding."},
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ",",
                      "description": "CSV field separator (one character, e.g. ; or a tab)."},
        # source options
        "pattern": {"type": "string", "default": "*", "x-esb-role": "source",
                    "description": "Glob of the file names to pick up, e.g. GR_*.csv. Names starting with "
                                   "a dot, names matching ignore and done-file markers are never "
                                   "picked up."},
        "poll": duration_option(
            "Seconds between two scans of dir, or a duration such as 10s.", DEFAULT_POLL,
            **{"x-esb-role": "source"}),
        "min_age": duration_option(
            "Seconds (or a duration such as 5s) a file's size and modification time must have stayed "
            "unchanged before it is taken, so a file still being written is left alone; 0 takes files "
            "at once (for writers that rename a finished file into place). Not used with done_file.",
            DEFAULT_MIN_AGE, **{"x-esb-role": "source"}),
        "done_file": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                      "description": "Name of the marker a writer creates once a file is complete, with "
                                     "{name} (the file's name) or {stem} (its name without the last "
                                     "extension), e.g. {name}.done or {stem}.ok; a file is taken only once "
                                     "its marker exists, and the marker is removed then. Names matching "
                                     "the marker's form are never taken as data."},
        "ignore": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_IGNORE,
                   "x-esb-role": "source",
                   "description": "Globs of names never taken, for writers that write under a temporary "
                                  "name and rename when done; names starting with a dot are always "
                                  "ignored."},
        "follow_symlinks": {"type": "boolean", "default": False, "x-esb-role": "source",
                            "description": "Read the file a symbolic link points to; false: a link is moved "
                                           "to error_dir with a report, unread. FIFOs, sockets, devices and "
                                           "directories matching pattern are always moved aside, never "
                                           "opened."},
        "empty_file": {"enum": ["error", "ignore"], "default": "error", "x-esb-role": "source",
                       "description": "A file that yields no record (0 bytes, or only a header): error "
                                      "moves it to error_dir with a report; ignore moves it to "
                                      "processed_dir."},
        "processed_dir": {"type": ["string", "null"], "default": None, "x-esb-path": True,
                          "x-esb-role": "source",
                          "description": "Where a file goes once every message in it is stored; default: "
                                         "<dir>/processed."},
        "error_dir": {"type": ["string", "null"], "default": None, "x-esb-path": True, "x-esb-role": "source",
                      "description": "Where a file with a bad part goes, with a <name>.error.json report "
                                     "beside it naming each bad line; default: <dir>/error."},
        "per": {"enum": ["file", "record", "group"], "default": "file", "x-esb-role": "source",
                "description": "One message per file, per record (line), or per group of records with the "
                               "same group_by value (e.g. the lines of one receipt)."},
        "in_flight": {"type": "integer", "minimum": 1, "maximum": MAX_IN_FLIGHT, "default": DEFAULT_IN_FLIGHT,
                      "x-esb-role": "source",
                      "description": "per: record or group: parts of a file submitted before the broker "
                                     "confirmed the earlier ones (messages in flight, one thread each); the "
                                     "saved offset only moves past parts confirmed in file order. 1 submits "
                                     "one at a time, which also publishes them in file order."},
        "group_by": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                     "description": "CSV column whose value groups consecutive records into one message "
                                    "(per: group)."},
        "group_starts_with": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                              "description": "per: group: a line starting with this text (e.g. the header "
                                             "record type H of a fixed-width file) begins a new group."},
        "header": {"type": "boolean", "default": True, "x-esb-role": "source",
                   "description": "The first CSV line names the columns; with per: record or group it is "
                                  "sent before the lines of each message."},
        "max_file_bytes": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_FILE_BYTES,
                           "x-esb-role": "source",
                           "description": "Largest message read, in bytes: the whole file with per: file, "
                                          "one record or group otherwise; a larger one sends the file to "
                                          "error_dir."},
        "reclaim_after": duration_option(
            "Seconds (or a duration such as 10m) after which a file claimed by a "
            "worker that shows no progress is taken over by another.",
            DEFAULT_RECLAIM_AFTER, **{"x-esb-role": "source"}),
        # sink options
        "name_template": {"type": "string", "default": "{type}_{id}.{ext}", "x-esb-role": "sink",
                          "description": "Name of each written file; placeholders: {type}, {id}, "
                                         "{correlation_id}, {source}, {ext}, {received_at}, {occurred_at}, "
                                         "{timestamp} (UTC, YYYYmmddTHHMMSS; {timestamp:%Y%m%d} or "
                                         "{received_at:%Y%m%d%H%M%S} for another strftime form), "
                                         "{route} (when the runtime passes it), and any payload field by "
                                         "name or dotted path ({receipt_number}, {payload.warehouse}). "
                                         "Files are written under a temporary name and renamed."},
        "line_ending": {"enum": ["lf", "crlf"], "default": "lf", "x-esb-role": "sink",
                        "description": "Line ending of written text files."},
        "batch_interval": duration_option(
            "Collect the messages of this many seconds (or a duration such as 5m) "
            "into one file; default: one file per message.", None,
            **{"x-esb-role": "sink"}),
    },
}


def options_of(endpoint) -> dict[str, Any]:
    """The endpoint's options with every default filled in."""
    options = {name: spec.get("default") for name, spec in ENDPOINT_SCHEMA["properties"].items()}
    options.update(endpoint.options)
    return options


def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """Options that only make sense together. Directories may be created later: not checked."""
    options = endpoint.options
    problems = []
    per, file_format = options.get("per", "file"), options.get("format", "csv")
    if per in ("record", "group") and file_format not in ("csv", "fixedwidth"):
        problems.append(f"per: {per} needs format csv or fixedwidth ({file_format} files are read whole)")
    if per == "group" and not (options.get("group_by") or options.get("group_starts_with")):
        problems.append("per: group needs group_by: (the CSV column whose value groups records) or "
                        "group_starts_with: (the text that starts a group's first line)")
    if options.get("group_by") and options.get("group_starts_with"):
        problems.append("use group_by or group_starts_with, not both")
    if (options.get("group_by") or options.get("group_starts_with")) and per != "group":
        problems.append("group_by and group_starts_with are used only with per: group")
    if options.get("group_by") and (file_format != "csv" or not options.get("header", True)):
        problems.append("group_by names a column of a CSV file with a header; for fixed-width files use "
                        "group_starts_with")
    done_file = options.get("done_file")
    if done_file is not None and ("{name}" not in done_file and "{stem}" not in done_file
                                  or "/" in done_file or done_file.startswith(".")):
        problems.append(f"done_file {done_file!r}: a file name with {{name}} or {{stem}}, e.g. {{name}}.done")
    template = options.get("name_template")
    if template is not None:
        problems.extend(template_problems(template))
    try:
        decoding_for(options.get("encoding") or "utf-8")
    except LookupError:
        problems.append(f"unknown encoding {options.get('encoding')!r} (a Python codec name such as utf-8, "
                        f"gbk, cp1252)")
    return problems

