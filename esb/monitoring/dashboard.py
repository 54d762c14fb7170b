"""The dashboard page: static HTML and script, no data (it asks for a key and calls the admin
API with it), so it is open to anyone."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_file

STATIC = Path(__file__).resolve().parent.parent / "static"
"""Where `dashboard.html` lives (package data of `esb`)."""


def add_dashboard_view(blueprint: Blueprint) -> None:
    @blueprint.get("/dashboard")
    def dashboard():
        return send_file(STATIC / "dashboard.html", mimetype="text/html", max_age=0)
