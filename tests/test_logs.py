"""Structured logs: JSON lines with the message's ids and route, and no secrets."""

from __future__ import annotations

import json
import logging

from esb.logs import JsonFormatter, message_fields


def test_a_log_line_is_json_with_the_message_id_correlation_id_and_route():
    record = logging.LogRecord("esb.runtime", logging.INFO, __file__, 1, "accepted", None, None)
    for name, value in message_fields(message_id="m-1", correlation_id="PO-9", route="erp-po").items():
        setattr(record, name, value)

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "accepted" and line["level"] == "info"
    assert (line["message_id"], line["correlation_id"], line["route"]) == ("m-1", "PO-9", "erp-po")
    assert "destination" not in line  # fields without a value are left out
    assert line["time"].endswith("+00:00")
