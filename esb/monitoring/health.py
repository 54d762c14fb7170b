"""What probes and scrapers read: `/metrics` (Prometheus text) and who may read `/readyz`
(served by `esb.web`, which runs the runtime's readiness checks)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from esb import metrics
from esb.monitoring.auth import Access, forbidden, unauthorized


def add_health_views(blueprint: Blueprint, access: Access, queues: metrics.QueueCollector,
                     *collectors: object) -> None:
    """Register `/metrics` and the guard of `/readyz` on `blueprint`."""

    @blueprint.before_app_request
    def guard_readiness():
        """/readyz tells what is failing: viewers only, unless opened for probes."""
        if request.endpoint != "readyz" or "readyz" in access.open_endpoints:
            return None
        principal = access.identify()
        if principal is None:
            return unauthorized()
        if not principal.has("viewer"):
            return forbidden("viewer")
        return None

    @blueprint.get("/metrics")
    @access.requires("viewer", opened_by="metrics")
    def metrics_page():
        return Response(metrics.scrape(queues, *collectors), mimetype=metrics.CONTENT_TYPE)
