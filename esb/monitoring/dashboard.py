"""The dashboard page: static HTML, style and scripts, no data (it asks for a key and calls the
admin API with it), so it is open to anyone. Style and scripts are files of their own because the
Content-Security-Policy of every answer (`esb.web.SECURITY_HEADERS`) allows no inline ones; the
scripts are plain ES modules, served as they are (no build step)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, send_file

STATIC = Path(__file__).resolve().parent.parent / "static"
"""Where `dashboard.html` lives (package data of `esb`)."""

ASSETS = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",  # the entry module: key, routes, charts
    "api.js": "text/javascript",  # the key of the session and calls to the admin API
    "dead-letters.js": "text/javascript",  # the dead-letter browser
    "trace.js": "text/javascript",  # trace search
    "business.js": "text/javascript",  # open alerts and inventory accuracy
}
"""The files `/dashboard/<name>` serves, and their media types; any other name is a 404."""


def add_dashboard_view(blueprint: Blueprint) -> None:
    @blueprint.get("/dashboard")
    def dashboard():
        return send_file(STATIC / "dashboard.html", mimetype="text/html", max_age=0)

    @blueprint.get("/dashboard/<asset>")
    def dashboard_asset(asset: str):
        if asset not in ASSETS:
            abort(404)
        return send_file(STATIC / asset, mimetype=ASSETS[asset], max_age=0)
