"""Monitoring and admin over HTTP: `/metrics`, the admin API (`/api/...`, described by
`/api/openapi.json`) and the dashboard page, built for a bus by `create_app(bus)`.

- `app`: the app factory and the surface of the bus it needs (`MonitoredBus`);
- `auth`: keys, roles and the endpoints `ESB_OPEN_ENDPOINTS` opens;
- `health`: `/metrics` and who may read `/readyz`;
- `api`: the admin API views (their actions are `esb.admin`'s), `arguments`: what they read
  from a request, `state`: what they show of a route;
- `openapi`: the OpenAPI document; `dashboard`: the dashboard page.
"""

from esb.journal import ERROR_STEPS, LAST_ERROR_WINDOW
from esb.monitoring.app import MonitoredBus, create_app, monitoring_blueprint
from esb.monitoring.arguments import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from esb.monitoring.auth import OPEN_ENDPOINTS_ENV
from esb.monitoring.dashboard import STATIC
from esb.monitoring.openapi import OPENAPI
from esb.monitoring.state import route_state

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "ERROR_STEPS",
    "LAST_ERROR_WINDOW",
    "MAX_PAGE_SIZE",
    "OPENAPI",
    "OPEN_ENDPOINTS_ENV",
    "STATIC",
    "MonitoredBus",
    "create_app",
    "monitoring_blueprint",
    "route_state",
]
