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
        try:
            document = jsonfmt.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as error:  # fetching everything again is safe: records are de-duplicated
            log.warning("watermark file %s is unreadable (%s); polling from the start", self.path, error)
            return None
        if not isinstance(document, dict) or any(document.get(k) != v for k, v in self.identity.items()):
            return None
        return document.get("watermark")

    def save(self, value: Any) -> None:
        body = jsonfmt.dump_bytes({**self.identity, "watermark": value,
                                   "saved_at": datetime.now().astimezone().isoformat()})
        atomic_write(self.path, body)
