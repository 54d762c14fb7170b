"""SFTP to and from trading partners: `from: {sftp: ...}` picks up files on the partner's server
with every option and guarantee of the file source (claims by rename, `processed/` and `error/`
there, resume without a lost or doubled record); `to: {sftp: ...}` writes one file per message
under a temporary name, then renames it.

Library: **paramiko**, not asyncssh. The bus is synchronous (pika's blocking connection, polling
sources on a scheduler thread, sinks in worker threads), and paramiko's blocking, thread-safe
`SFTPClient` fits it as it is; asyncssh would need an event loop thread and a bridge for every
call, for a speed (many parallel transfers) this bus does not need. paramiko reads OpenSSH
`known_hosts` files (hashed names, `[host]:port`) and OpenSSH key files as they are.

Modules: `connection` (one SSH connection per system, known_hosts, reconnect with backoff, and
`esb check --connect`: the server, its host key, the login),
`store` (`SftpStore`, the file source's `FileStore` on the server), `source` (`FileSource` with
that store), `sink`. The options are the file adapter's (`adapters.flatfile.spec`), without
`batch_interval`, plus `system` and the sink's `overwrite`.
"""

from __future__ import annotations

import copy

from adapters.flatfile.spec import ENDPOINT_SCHEMA as FILE_ENDPOINT_SCHEMA
from adapters.flatfile.spec import check_endpoint
from adapters.sftp.connection import (
    DEFAULT_BACKOFF,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PORT,
    SftpConnection,
    connect_problems,
)
from adapters.sftp.sink import SftpSink
from adapters.sftp.source import SftpSource
from adapters.sftp.store import SftpStore
from esb.durations import duration_option
from esb.plugins import AdapterSpec, register

__all__ = ["ENDPOINT_SCHEMA", "SYSTEM_SCHEMA", "SftpConnection", "SftpSink", "SftpSource", "SftpStore"]

SYSTEM_SCHEMA = {
    "type": "object",
    "description": "An SFTP server. The password or key passphrase comes from ${ENV} only; the server's "
                   "host key must be in known_hosts.",
    "additionalProperties": False,
    "required": ["host", "user", "known_hosts"],
    "properties": {
        "host": {"type": "string", "description": "Server name or address."},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": DEFAULT_PORT,
                 "description": "SSH port."},
        "user": {"type": "string", "description": "Login name."},
        "password": {"type": ["string", "null"], "default": None, "x-esb-secret": True,
                     "description": "Password of user, as ${ENV} (e.g. ${ACME_SFTP_PASSWORD}); never "
                                    "inline."},
        "key_file": {"type": ["string", "null"], "default": None, "x-esb-path": True,
                     "description": "Private key file (OpenSSH format), relative to the routes file; tried "
                                    "before password."},
        "key_passphrase": {"type": ["string", "null"], "default": None, "x-esb-secret": True,
                           "description": "Passphrase of key_file, as ${ENV}; never inline."},
        "known_hosts": {"type": "string", "x-esb-path": True,
                        "description": "OpenSSH known_hosts file holding the server's host key, relative to "
                                       "the routes file. An unknown or changed key is refused, never "
                                       "accepted on first sight (ssh-keyscan -p PORT HOST, checked with "
                                       "the partner, makes the line)."},
        "connect_timeout": duration_option("Seconds to wait for the server when connecting and logging in, "
                                           "and for each answer, or a duration such as 10s.",
                                           DEFAULT_CONNECT_TIMEOUT),
        "reconnect_backoff": duration_option(
            "Seconds before the first new attempt after a failed connection, doubled at each failure up "
            "to 60 s; attempts in between fail at once.", DEFAULT_BACKOFF),
    },
}


def _endpoint_schema() -> dict:
    schema = copy.deepcopy(FILE_ENDPOINT_SCHEMA)
    properties = schema["properties"]
    del properties["batch_interval"]
    for name in ("dir", "processed_dir", "error_dir"):
        properties[name].pop("x-esb-path")
    properties["dir"]["description"] = ("Folder on the server (relative to the user's login folder, or "
                                        "absolute) to read from or write to.")
    properties["processed_dir"]["description"] = ("Folder on the server for finished files; default: "
                                                  "<dir>/processed.")
    properties["error_dir"]["description"] = ("Folder on the server for files with a bad part, with a "
                                              "<name>.error.json report beside each; default: <dir>/error.")
    properties["system"] = {"type": "string", "description": "The system (with an sftp block) to connect to."}
    properties["overwrite"] = {"type": "boolean", "default": False, "x-esb-role": "sink",
                               "description": "Replace a file of the same name with other content; false: "
                                              "such a message is refused (dead-lettered)."}
    schema["required"] = ["system", "dir"]
    schema["description"] = ("from: pick up files from a folder on an SFTP server; to: write files into "
                             "one. The options of the file adapter, on the partner's server.")
    return schema


ENDPOINT_SCHEMA = _endpoint_schema()

register(AdapterSpec(
    name="sftp",
    summary="Files picked up from or written to a trading partner's SFTP server",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema=SYSTEM_SCHEMA,
    source_factory=SftpSource,
    sink_factory=lambda endpoint, system, route_name=None: SftpSink(endpoint, system, route_name=route_name),
    check=check_endpoint,
    connect_check=connect_problems,
))
