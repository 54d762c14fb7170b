"""The SFTP sink: each message becomes one file on the partner's server, written under a temporary
dot-name and renamed, so the partner never sees half a file. Names come from `name_template`, as
for the file sink (`FileSink.file_name`, reused).

A name already taken is refused (`Permanent`: the message goes to the dead-letter queue) unless
the route says `overwrite: true`; the same content already there is a redelivery, done.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime
from pathlib import PurePosixPath

import paramiko

from adapters.flatfile.sink import FileSink
from adapters.flatfile.spec import options_of
from adapters.flatfile.store import StoreUnavailable
from adapters.sftp.connection import connection_for
from adapters.sftp.store import SftpStore
from esb.errors import Permanent, Retryable


class SftpSink(FileSink):
    """`to: {sftp: {system: partner, dir: ..., name_template: ..., overwrite: false}}`."""

    def __init__(self, endpoint, system: dict | None, *, route_name: str | None = None):
        if not system:
            raise ValueError("the sftp adapter needs system: naming a system with an sftp block")
        options = options_of(endpoint)
        self.connection = connection_for(system)
        self.store = SftpStore(self.connection)
        self.remote_dir = PurePosixPath(options["dir"])
        self.overwrite = bool(endpoint.options.get("overwrite", False))
        self._configure(options, route_name)
        self._folder_made = False

    def deliver(self, envelope, body: bytes, content_type: str) -> str | None:
        data = self.converted(body)
        name = self.file_name(envelope, datetime.now(UTC))
        try:
            if not self._folder_made:
                self.store.make_folder(self.remote_dir)
                self._folder_made = True
            self.store.call(lambda sftp: self._put(sftp, self.remote_dir / name, data))
        except StoreUnavailable as error:
            raise Retryable(str(error)) from None
        except OSError as error:
            where = f"{self.remote_dir / name} on {self.connection.where}"
            raise Retryable(f"cannot write {where}: {error}") from None
        return name

    def _put(self, sftp: paramiko.SFTPClient, target: PurePosixPath, data: bytes) -> None:
        temporary = str(target.with_name(f".{target.name}.{secrets.token_hex(4)}.part"))
        renamed = False
        try:
            with sftp.open(temporary, "wb") as handle:
                handle.set_pipelined(True)
                handle.write(data)
            if self.overwrite:
                sftp.posix_rename(temporary, str(target))
                renamed = True
                return
            try:
                sftp.rename(temporary, str(target))  # OpenSSH: link + unlink, fails when target exists
                renamed = True
            except OSError:
                if not self._taken(sftp, target):
                    raise
                if not self._same(sftp, target, data):
                    raise Permanent(f"{target} already exists on {self.connection.where} with other content; "
                                    "not overwritten (overwrite: true replaces it)") from None
        finally:
            if not renamed:
                with contextlib.suppress(OSError):
                    sftp.remove(temporary)

    @staticmethod
    def _taken(sftp: paramiko.SFTPClient, target: PurePosixPath) -> bool:
        try:
            sftp.lstat(str(target))
        except FileNotFoundError:
            return False
        return True

    @staticmethod
    def _same(sftp: paramiko.SFTPClient, target: PurePosixPath, data: bytes) -> bool:
        """The file there holds `data`: this message written before (a redelivery)."""
        if sftp.lstat(str(target)).st_size != len(data):
            return False
        with sftp.open(str(target), "rb") as handle:
            return handle.read() == data

    def readiness(self) -> str | None:
        return self.connection.problem

    def close(self) -> None:
        """Nothing to finish: the connection is the system's, shared with its other routes."""
