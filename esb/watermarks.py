"""Watermarks of polled sources: the highest value a poll has handed to the bus, kept in the data
dir so that a restart asks only for what is new. Written atomically and durably
(`esb.atomicfile.atomic_write`), and only after what it covers was stored or dead-lettered."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from esb import jsonfmt
from esb.atomicfile import atomic_write

log = logging.getLogger("esb.watermarks")


class WatermarkFile:
    """The highest watermark seen by a poll, in a JSON file replaced atomically and durably.

    `identity` (e.g. `{"operation": "GetOpenOrders"}`) is written beside the value; a file whose
    identity differs (the route now polls something else) reads as no watermark."""

    def __init__(self, path: Path, identity: dict[str, Any]):
        self.path = path
        self.identity = dict(identity)

    def load(self) -> Any:
        return self.load_with_seen()[0]

    def load_with_seen(self) -> tuple[Any, frozenset[str]]:
        """The watermark, and the keys saved with it of what was already handled at it (a source
        whose service answers "since" inclusively skips those instead of handling them again)."""
        try:
            document = jsonfmt.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None, frozenset()
        except ValueError as error:  # fetching everything again is safe: records are de-duplicated
            log.warning("watermark file %s is unreadable (%s); polling from the start", self.path, error)
            return None, frozenset()
        if not isinstance(document, dict) or any(document.get(k) != v for k, v in self.identity.items()):
            return None, frozenset()
        seen = document.get("seen_at_watermark")
        return document.get("watermark"), frozenset(seen if isinstance(seen, list) else ())

    def save(self, value: Any, seen: list[str] | None = None) -> None:
        document = {**self.identity, "watermark": value}
        if seen is not None:
            document["seen_at_watermark"] = list(seen)
        document["saved_at"] = datetime.now().astimezone().isoformat()
        atomic_write(self.path, jsonfmt.dump_bytes(document))
