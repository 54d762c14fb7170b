"""Names of written files: the sink's name_template, filled from the envelope and the payload."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^{}]*))?\}")
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
ENVELOPE_FIELDS = ("id", "type", "correlation_id", "causation_id", "source", "schema_version", "occurred_at",
                   "received_at")


def template_problems(template: str) -> list[str]:
    leftover = PLACEHOLDER.sub("", template)
    if "{" in leftover or "}" in leftover:
        return [f"name_template {template!r}: a placeholder is {{name}} or {{timestamp:%Y%m%d}}"]
    if "/" in template or "\\" in template:
        return [f"name_template {template!r}: a file name, without a directory"]
    return []


def safe_part(text: str) -> str:
    """A value fit for a file name: no path separators or control characters."""
    text = _UNSAFE.sub("_", text).strip()
    return "_" if text in ("", ".", "..") else text
