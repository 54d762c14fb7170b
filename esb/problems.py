"""Problems are values: the checker collects them, the CLI prints them all."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from esb.errors import NotFound


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a configuration file, at a line (1-based; 0 when unknown)."""

    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}" if self.line else f"{self.file}: {self.what}"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest known name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def unknown(kind: str, name: str, known: Iterable[str]) -> str:
    """A sentence for an unknown name, with a suggestion and the known names."""
    known = sorted(known)
    listing = ", ".join(known) if known else "none"
    return f'unknown {kind} "{name}"{did_you_mean(name, known)}; known: {listing}'


class UnknownName(NotFound, KeyError):
    """An unknown route, destination, format or canonical type; its text is the `unknown()` sentence.

    A `NotFound`. It is also a `KeyError` only for the callers that still catch `KeyError` (the CLI,
    the monitoring API, the mapping checker, the transport tests); drop that base once they catch
    `LookupError` or `NotFound`.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
