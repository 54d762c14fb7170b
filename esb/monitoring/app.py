"""The monitoring app of a bus: `create_app(bus)` is the whole HTTP app of `esb run` (health and
readiness from `esb.web`, `/metrics`, the admin API, the dashboard); `monitoring_blueprint(bus)`
is the monitoring part alone, for an app built elsewhere.

The bus is anything with the small surface `MonitoredBus` names (`esb.runtime.Runtime` is one):
this package knows the runtime, the runtime never knows this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from flask import Blueprint, Flask, jsonify

from esb import metrics
from esb.accuracy import AccuracyCollector, AccuracyHistory
from esb.admin import AdminService
from esb.aggregator import state_target
from esb.audit import AUDIT_FILE_NAME, AuditLog
from esb.credentials import Credentials
from esb.errors import NotFound
from esb.journal import Journal
from esb.monitoring.api import add_api_views
from esb.monitoring.auth import Access, open_endpoints_from
from esb.monitoring.dashboard import add_dashboard_view
from esb.monitoring.health import add_health_views
from esb.monitoring.reports import add_report_views
from esb.reports import LiveReports, ReportsCollector
from esb.routes import Config
from esb.transport.contract import Transport
from esb.transport.errors import TransportError
from esb.web import ReadinessCheck
from esb.web import create_app as create_web_app


class MonitoredOptions(Protocol):
    credentials: Credentials  # who may call
    data_dir: Path  # where the audit log is written by default


class MonitoredBus(Protocol):
    """What the monitoring app needs of a bus."""

    config: Config
    transport: Transport
    journal: Journal
    options: MonitoredOptions

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        """The checks `/readyz` runs, by name."""
        ...


def monitoring_blueprint(
    bus: MonitoredBus,
    *,
    credentials: Credentials | None = None,
    audit: AuditLog | None = None,
    open_endpoints: set[str] | None = None,
) -> Blueprint:
    """The monitoring blueprint of `bus`.

    - `credentials`: who may call; default `bus.options.credentials`;
    - `audit`: where admin actions go; default `<data_dir>/audit.jsonl`;
    - `open_endpoints`: default from `ESB_OPEN_ENDPOINTS` (`metrics`, `read`, `readyz`).
    """
    credentials = credentials if credentials is not None else bus.options.credentials
    audit = audit or AuditLog(Path(bus.options.data_dir) / AUDIT_FILE_NAME)
    if open_endpoints is None:
        open_endpoints = open_endpoints_from()
    # raw inbound dead letters are replayed through the bus's inbound stage, with its current mapping
    service = AdminService(transport=bus.transport, journal=bus.journal, audit=audit, config=bus.config,
                           resubmit=getattr(bus, "resubmit", None), pauses=getattr(bus, "pauses", None))
    access = Access(credentials, open_endpoints, service)
    queues = metrics.QueueCollector(bus.transport)
    blueprint = Blueprint("monitoring", __name__)
    blueprint.audit = audit  # type: ignore[attr-defined]  # for tests
    blueprint.admin = service  # type: ignore[attr-defined]

    @blueprint.errorhandler(TransportError)
    def broker_error(error: TransportError):
        return jsonify(error="broker_unavailable", message=str(error)), 503

    @blueprint.errorhandler(NotFound)
    def not_found(error: NotFound):  # a name the admin service did not find, wherever it was looked up
        return jsonify(error="not_found", message=str(error)), 404

    target = state_target(bus.options.data_dir, getattr(bus.options, "journal", None))
    history, reports = AccuracyHistory(target), LiveReports(target)
    add_health_views(blueprint, access, queues, AccuracyCollector(history), ReportsCollector(reports))
    add_report_views(blueprint, access, history, reports)
    add_api_views(blueprint, service, access, queues)
    add_dashboard_view(blueprint)
    return blueprint


def create_app(
    bus: MonitoredBus,
    *,
    credentials: Credentials | None = None,
    audit: AuditLog | None = None,
    open_endpoints: set[str] | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """The bus's whole HTTP app: `/healthz`, `/readyz` (the bus's readiness checks), `/metrics`,
    the admin API and the dashboard; the runtime mounts its inbound endpoints on it when it
    starts (`Runtime.start(app=...)`). Keyword arguments as `monitoring_blueprint`."""
    app = create_web_app(readiness=bus.readiness_checks(), test_config=test_config)
    app.register_blueprint(
        monitoring_blueprint(bus, credentials=credentials, audit=audit, open_endpoints=open_endpoints)
    )
    return app
