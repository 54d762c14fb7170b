"""The outcomes and failures of the bus, as types.

A sink or stage raises `Retryable` or `Permanent`; one function in the route runtime turns
them into ack, retry or dead-letter. Input problems (`DecodeError`, `MappingError`,
`ValidationError`) are permanent: retrying the same bytes gives the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass


class EsbError(Exception):
    """Base of every error the bus raises on purpose."""


class Retryable(EsbError):
    """A delivery failed for a reason that may pass: timeout, connection error, HTTP 5xx/408/429."""


class Unavailable(EsbError):
    """The bus cannot store a message right now (broker down, publish not confirmed): try later."""


class WouldWait(Exception):
    """Storing would wait (for another request of this process holding the same key) on a thread
    that must not wait: the HTTP server's loop. Its request is run again on a thread that may."""


class Permanent(EsbError):
    """A delivery failed for a reason that retrying will not fix: HTTP 4xx, SOAP client fault."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with a document: where, what was expected, what came."""

    path: str
    expected: str
    got: str = ""

    def __str__(self) -> str:
        text = f"{self.path or '(document)'}: {self.expected}"
        return f"{text} (got {self.got})" if self.got else text

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "expected": self.expected, "got": self.got}


class InputError(Permanent):
    """Input that cannot become a canonical message; carries one or more `FieldProblem`s."""

    kind = "input"

    def __init__(self, message: str, problems: list[FieldProblem] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])
        self.document_numbers: tuple[str, ...] = ()  # of the documents refused, when they were read

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "".join(f"\n  - {p}" for p in self.problems)

    def as_dict(self) -> dict:
        return {"error": self.kind, "message": self.message, "problems": [p.as_dict() for p in self.problems]}


class DecodeError(InputError):
    """Bytes that are not valid JSON, XML, CSV or fixed-width records as declared."""

    kind = "decode"


class MappingError(InputError):
    """A mapping could not produce its output: names the mapping file, target field and source value."""

    kind = "mapping"


class ValidationError(InputError):
    """A payload does not match the JSON Schema of its canonical type."""

    kind = "validation"


class Conflict(InputError):
    """A request key (`Idempotency-Key`) used before with another body: answered 409, naming the key."""

    kind = "conflict"


class ConfigError(EsbError):
    """The configuration cannot be used; `problems` lists every `Problem` found."""

    def __init__(self, problems: list):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NotFound(EsbError, LookupError):
    """A name (route, destination, system, queue, message id) that is not there.

    Its text is the sentence for the user, with "did you mean" where one is close. It is a
    `LookupError`, as `KeyError` is, so callers that catch lookups keep working; it never
    carries a bare key as `KeyError` does (whose `str()` wraps the sentence in quotes).
    """
