"""What `esb demo` prints: a summary per flow (sent, delivered, dead-lettered, rejected, with what each
target received), and where to look while the demo runs."""

from __future__ import annotations

import json
import time
from decimal import Decimal

from esb.demo.flows import FLOWS
from esb.demo.runner import PO_SAMPLE, Demo, FlowResult

EXCERPT = 150
"""Characters of each received document shown in the summary."""
EVIDENCE = 5
"""Differing lines of a discrepancy shown in the summary."""


def summary(demo: Demo, results: list[FlowResult]) -> str:
    where = (f"RabbitMQ {_redacted(demo.broker_url)} (routes prefixed {demo.prefix})" if demo.broker_url
             else f"embedded transport {demo.data_dir / 'transport.sqlite'}")
    lines = [f"esb demo: the shipped routes on {where}", ""]
    answers = demo.traffic.answers if demo.traffic else {}
    for result in results:
        flow = result.flow
        lines.append(f"{flow.route}: {'DELIVERED' if result.ok else 'NOT DELIVERED'}   ({flow.what})")
        for answer in answers.get(flow.route, ["(nothing sent)"]):
            lines.append(f"  sender:    {answer[:160]}")
        lines.append(f"  sent {len(result.sent)}, delivered {result.delivered}, dead-lettered {result.dead}, "
                     f"rejected {result.rejected}, retried {result.retried}"
                     f"   (expected: delivered {flow.delivered}, dead-lettered {flow.dead}, "
                     f"rejected {flow.rejected})" + (f" ({result.note})" if result.note else ""))
        if result.dead:
            lines.append(f"  dead letters: esb dlq list {result.route}")
        for message_id, call in result.calls.items():
            statuses = demo.simulator(call.system).statuses(message_id)
            answered = ", then ".join(str(status) for status in statuses or [call.status])
            lines.append(f"  - {message_id}  {call.path} answered {answered} (id {call.answered_id})")
            lines.append(f"      received: {_excerpt(call.body)}")
        if flow.route == "erp-po-changes-to-wms" and demo.erp.asked_since:
            asked = ", ".join(since or "(the start)" for since in demo.erp.asked_since[:4])
            lines.append(f"  the ERP was asked for changes since: {asked}"
                         + (", ..." if len(demo.erp.asked_since) > 4 else ""))
        lines.append("")
    lines.extend(book_versus_shelf(demo))
    files = demo.received_files()
    if files:
        names = ", ".join(file.name for file in files)
        lines.append(f"reconciliation directory {demo.reconciliation_dir}: {names}")
    delivered = sum(r.ok for r in results)
    lines.append(f"{delivered} of {len(results)} flows delivered what they should in "
                 f"{time.monotonic() - demo.started_at:.1f} s")
    return "\n".join(lines)


def book_versus_shelf(demo: Demo) -> list[str]:
    """The discrepancies the reconciliation found, their accuracy, and the alerts they fired."""
    lines = []
    for found in demo.discrepancies():
        accuracy = Decimal(str(found["accuracy"])) * 100
        compared, cutoff = found.get("compared_lines", "?"), found.get("cutoff") or found["as_of"]
        shelf = "stock count" if found.get("stock_count_number") else "shelf"
        lines.append(f"discrepancy found: {found['warehouse']} cut-off {cutoff}, "
                     f"book {found['book_snapshot_id']} against "
                     f"{shelf} {found['shelf_snapshot_id']}: "
                     f"inventory accuracy {accuracy:.1f} % ({len(found['lines'])} of {compared} lines "
                     "differ)")
        for line in found["lines"][:EVIDENCE]:
            where = "/".join(str(line[key]) for key in ("sku", "lot", "location") if line.get(key))
            lines.append(f"  - {where}: book {line['book_quantity']} {line['uom']}, shelf "
                         f"{line['shelf_quantity']} {line['uom']} (difference {line['difference']})")
    for alert in demo.alerts():
        lines.append(f"alert {alert['rule']} ({alert['severity']}): {alert['subject']}")
        lines.append(f"  {alert['text'][:300]}")
    if not lines:
        lines.append("book versus shelf: no discrepancy was reconciled (a snapshot is missing)")
    return [*lines, ""]


def directions(demo: Demo) -> str:
    """What to try, and where to look, while the demo runs."""
    bus = demo.bus_url
    return "\n".join([
        f"bus:        {bus}   (inbound: POST {bus}/in/<route>)",
        f"dashboard:  {bus}/dashboard   (admin key: {demo.keys['admin']})",
        f"metrics:    {bus}/metrics   admin API: {bus}/api/routes",
        f"dead letters: {bus}/api/routes/<route>/dead-letters, or esb dlq list <route>; routes: "
        + ", ".join(demo.route(flow.route) for flow in FLOWS),
        f"ERP (sim):  {demo.erp.url}   what it received: GET {demo.erp.url}/_received",
        f"ERP SOAP:   {demo.erp.soap_url}   WSDL: {demo.erp.soap_url}?wsdl",
        f"WMS (sim):  {demo.wms.url}   what it received: GET {demo.wms.url}/_received",
        f"WMS export dir (drop GR_*.csv and STOCK_*.txt files here): {demo.export_dir}"
        f"   refused files: {demo.export_dir / 'error'}",
        f"reconciliation dir: {demo.reconciliation_dir}",
        f"3PL (sim):  SFTP 127.0.0.1:{demo.partner.sftp.port} (X12 940 files: {demo.partner.outbound}), "
        f"AS2 {demo.partner.as2.url}/as2   what it received: GET {demo.partner.as2.url}/_received",
        f"keys:       ERP sender {demo.keys['erp']}   WMS sender {demo.keys['wms']}",
        "try:        curl -H 'X-API-Key: " + demo.keys["erp"] + "' -H 'Content-Type: application/xml' "
        f"--data-binary @{PO_SAMPLE} {bus}/in/{demo.route('erp-po-to-wms')}",
        "Ctrl-C stops the demo.",
    ])


def _excerpt(body: bytes, limit: int = EXCERPT) -> str:
    try:
        text = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        text = body.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _redacted(url: str) -> str:
    from esb.transport.rabbitmq_connection import redacted

    return redacted(url)
