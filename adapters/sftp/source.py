"""The SFTP source: the file source (`adapters.flatfile.source.FileSource`) reading through an
`SftpStore`, so every option and guarantee of `from: {file: ...}` holds on the partner's server.

A server that is down does not stop the bus: `start` and `poll` log one line, `/readyz` shows it
(`readiness`), claims stay on the server and are resumed when it is back.
"""

from __future__ import annotations

from adapters.flatfile.source import FileSource
from adapters.flatfile.store import StoreUnavailable
from adapters.sftp.connection import connection_for
from adapters.sftp.store import SftpStore
from esb.plugins import SourceContext


class SftpSource(FileSource):
    """`from: {sftp: {system: partner, dir: ..., ...}}`; `system` is the system's `sftp` block."""

    def __init__(self, endpoint, system: dict | None, route_name: str):
        if not system:
            raise ValueError("the sftp adapter needs system: naming a system with an sftp block")
        self.connection = connection_for(system)
        super().__init__(endpoint, system, route_name, store=SftpStore(self.connection))
        self._folders_made = False

    def start(self, context: SourceContext) -> None:
        try:
            super().start(context)
        except StoreUnavailable:
            return  # logged by the connection; the folders are made at the first poll that connects
        self._folders_made = True

    def poll(self) -> None:
        if not self._folders_made:
            try:
                self.make_folders()
            except StoreUnavailable:
                return
            self._folders_made = True
        super().poll()

    def readiness(self) -> str | None:
        return self.connection.problem
