"""The dashboard page: static HTML, style and script, no data (it asks for a key and calls the
admin API with it), so it is open to anyone. Style and script are files of their own because the
Content-Security-Policy of every answer (`esb.web.SECURITY_HEADERS`) allows no inline ones."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_file

STATIC = Path(__file__).resolve().parent.parent / "static"
"""Where `dashboard.html` lives (package data of `esb`)."""


def add_dashboard_view(blueprint: Blueprint) -> None:
    @blueprint.get("/dashboard")
    def dashboard():
        return send_file(STATIC / "dashboard.html", mimetype="text/html", max_age=0)

    @blueprint.get("/dashboard/dashboard.css")
    def dashboard_style():
        return send_file(STATIC / "dashboard.css", mimetype="text/css", max_age=0)

    @blueprint.get("/dashboard/dashboard.js")
    def dashboard_script():
        return send_file(STATIC / "dashboard.js", mimetype="text/javascript", max_age=0)
