"""`to: {item_units: {}}`: keeps the units of each `item` message (its base unit and conversion
factors, `esb.units.ItemUnits`) in the aggregator's state database, so reconciliation compares
stock counted in cartons with stock booked in pieces.

    - name: erp-items-to-wms
      ...
      to:
        - rest: {system: wms, method: PUT, path: /items/{itemCode}}
        - item_units: {}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esb.errors import Permanent, Retryable
from esb.plugins import AdapterSpec, Sink, register
from esb.units import ItemUnits


class ItemUnitsSink(Sink):
    def __init__(self, endpoint: Any):
        self.units: ItemUnits | None = None

    def bind_state(self, target: str | Path) -> None:
        """The runtime says where the state database is."""
        self.units = ItemUnits(target)

    def deliver(self, envelope: Any, body: bytes, content_type: str) -> str | None:
        if self.units is None:
            raise Retryable("the item units store is not bound yet")
        payload = envelope.payload
        if envelope.type != "item" or not isinstance(payload, dict):
            raise Permanent(f"item_units keeps the units of item messages, not of {envelope.type}")
        try:
            count = self.units.record(payload)
        except Exception as error:  # the database is down or busy: try again later
            raise Retryable(f"could not keep the units: {type(error).__name__}: {error}") from error
        return f"{payload['sku']}: {count} units besides {payload['base_uom']}"


register(AdapterSpec(
    name="item_units",
    summary="Keep each item's base unit and conversion factors, for reconciliation in base units",
    endpoint_schema={"type": "object", "additionalProperties": False, "properties": {},
                     "description": "Keeps the units of each item message (base unit, uom_conversions) "
                                    "for the reconciliation, which compares stock in base units."},
    sink_factory=lambda endpoint, system: ItemUnitsSink(endpoint),
))
