"""Flat files in a directory: poll for new files (a source), write one file per message or a batch
per interval (a sink). Formats: CSV, fixed-width records, JSON, XML.

The source, at each poll:

1. resumes its own claims and stale ones (a worker on this host that died, or any worker silent
   for `reclaim_after`);
2. lists `dir` for `pattern` (dot-files, `ignore` globs and done-file markers are never taken)
   and keeps the complete files (`done_file` marker present, else unchanged for `min_age`); what
   matches but is not a regular file (a directory, FIFO, socket, or a symbolic link unless
   `follow_symlinks`) is moved to `error_dir` with a report, never opened (`readiness`);
3. claims each by renaming it into a new folder `<dir>/.claimed/<ms>.<pid>.<token>.<host>/`
   (the file keeps its name, however long): the rename is atomic, so of two workers only one
   gets a file;
4. submits one message per file, record or group, in file order, each with the idempotency key
   `<name>:<size>:<mtime_ns>[:<first line>]`, so a resumed or re-posted file publishes nothing twice;
5. remembers the confirmed byte offset and line in `<dir>/.progress/` (beside the claims rather
   than in the worker's data_dir, so that a worker on another host taking over a stale claim
   resumes from it too);
6. moves the file to `processed_dir`, or to `error_dir` with `<name>.error.json` beside it naming
   each bad line when any part was refused (each refused part went to the dead-letter queue),
   or when it yielded no record (unless `empty_file: ignore`).

Whatever goes wrong with one file (a mapping that raises, a name the file system or the idempotency
store chokes on, a read error) sends that file to `error_dir` with a report naming the error and
counts it (`esb_files_set_aside{route, reason}`); the poll goes on with the next file. A file that
cannot even be moved is logged and counted once, then skipped until the process restarts. Names
that are not UTF-8 are kept as they are on disk and shown with `\\xNN` escapes in keys, message
headers, reports and logs.

Records are streamed: one record (or group) is in memory at a time, whatever the file's size. A
refused record does not stop the file: the others are still published. A record or group is
sent as the file's own bytes (the CSV header line, then its lines), so the route's mapping
decodes it exactly as it would decode the whole file.

The sink writes each message under a temporary dot-name, fsyncs it and links it to its final
name (never overwriting another file), or appends it to a batch file that is renamed when
`batch_interval` has passed. `deliver` returns only after the data is on disk (fsync), so a
message is never acked before it is durable.

Modules: `spec` (options and checks), `store` (the `FileStore` the source reads through, and
`LocalDirectory`), `readiness` (which files are complete), `claims`, `records` (reading a file
as records or groups), `progress`, `reports` (the error report and the error folder), `source`,
`names` (the sink's name_template), `sink` (writes through `esb.atomicfile`). Keywords
`x-esb-*`: see adapters/rest.py.
"""

from __future__ import annotations

from adapters.flatfile.claims import CLAIM_MARK, Claim
from adapters.flatfile.records import FileReader, Record, group_records
from adapters.flatfile.sink import FileSink
from adapters.flatfile.source import FileSource
from adapters.flatfile.spec import ENDPOINT_SCHEMA, check_endpoint
from adapters.flatfile.store import FileStore, LocalDirectory
from esb.plugins import AdapterSpec, register

__all__ = ["CLAIM_MARK", "ENDPOINT_SCHEMA", "Claim", "FileReader", "FileSink", "FileSource", "FileStore",
           "LocalDirectory", "Record",
           "check_endpoint", "group_records"]

register(AdapterSpec(
    name="file",
    summary="Flat files (CSV, fixed-width, JSON, XML) picked up from or written to a directory",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema={"type": "object", "additionalProperties": False, "properties": {},
                   "description": "The file adapter has no system settings."},
    source_factory=FileSource,
    sink_factory=lambda endpoint, system, route_name=None: FileSink(endpoint, system, route_name=route_name),
    check=check_endpoint,
))
