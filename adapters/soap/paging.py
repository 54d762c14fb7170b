"""Paging of a SOAP poll: one poll run follows the pages of the answer instead of taking the first.

Two kinds of service are met:
- a page parameter (`page_param`): the request carries the page number (`page_by: number`, from
  `first_page`, default 1) or the offset of the page's first record (`page_by: offset`: the
  records received so far, from 0); the run ends at a page with no record;
- a continuation token (`next_page`, a JMESPath into the answer; `page_token_param` sends it back):
  the run ends at an answer without a token, or with no record.

Either way a run stops after `max_pages` pages (the rest comes at the next poll, from the
watermark), and when a page repeats the one before (a service that ignores the page parameter),
so that a run never loops. The watermark is written only once the run has ended and every record
of every page was stored or dead-lettered (`adapters.soap.poll`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import jmespath

from esb import jsonfmt

DEFAULT_MAX_PAGES = 100
"""Pages one poll run fetches at most; the rest is fetched by the next run, from the watermark."""

_SOURCE = {"x-esb-role": "source"}

PAGING_OPTIONS: dict[str, dict[str, Any]] = {
    "records": {"type": ["string", "null"], "default": None, **_SOURCE,
                "description": "JMESPath giving the records of one answer (a list, or one record), e.g. "
                               "PurchaseOrder; default: the answer unwrapped down to its records (a "
                               "wrapper with one child is unwrapped, a list gives one record per item). "
                               "Needed with next_page, whose token sits beside the records."},
    "page_param": {"type": ["string", "null"], "default": None, **_SOURCE,
                   "description": "Request parameter that receives the page number (page_by: number) or "
                                  "the offset of the page's first record (page_by: offset); the poll "
                                  "fetches pages until one has no record, or max_pages."},
    "page_by": {"enum": ["number", "offset"], "default": "number", **_SOURCE,
                "description": "With page_param: number sends first_page, first_page + 1, ...; offset "
                               "sends the count of records received so far (0, then the size of the "
                               "first page, ...)."},
    "first_page": {"type": "integer", "minimum": 0, "default": 1, **_SOURCE,
                   "description": "With page_param and page_by: number, the number of the first page "
                                  "(1, or 0 for services that count from 0)."},
    "next_page": {"type": ["string", "null"], "default": None, **_SOURCE,
                  "description": "JMESPath into the answer giving the token of the next page (e.g. "
                                 "NextPageToken); an answer without one (null or empty) is the last "
                                 "page. Needs page_token_param and records."},
    "page_token_param": {"type": ["string", "null"], "default": None, **_SOURCE,
                         "description": "Request parameter that sends next_page's token back for the next "
                                        "page."},
    "max_pages": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_PAGES, **_SOURCE,
                  "description": "Pages one poll fetches at most (a safety limit); the rest is fetched by "
                                 "the next poll, from the watermark (without a watermark, the next poll "
                                 "starts at the first page again)."},
}


def paging_problems(options: dict[str, Any]) -> list[str]:
    """The paging options that do not fit together, one sentence each, naming the option."""
    problems = []
    page_param, next_page = options.get("page_param"), options.get("next_page")
    token_param = options.get("page_token_param")
    for name in ("records", "next_page"):
        if options.get(name):
            try:
                jmespath.compile(options[name])
            except jmespath.exceptions.JMESPathError as error:
                problems.append(f"{name} is not a valid JMESPath expression: {error}")
    if page_param and next_page:
        problems.append("use page_param (a page number or offset) or next_page (a token from the answer), "
                        "not both")
    if next_page and not token_param:
        problems.append("next_page needs page_token_param: (the request parameter that sends the token back)")
    if token_param and not next_page:
        problems.append("page_token_param needs next_page: (the JMESPath of the next page's token in the "
                        "answer)")
    if next_page and not options.get("records"):
        problems.append("next_page needs records: (the JMESPath of the records in the answer, e.g. "
                        "PurchaseOrder), since the token sits beside them")
    if not page_param and (options.get("page_by", "number") != "number" or options.get("first_page", 1) != 1):
        problems.append("page_by and first_page are used only with page_param")
    if not (page_param or next_page) and options.get("max_pages", DEFAULT_MAX_PAGES) != DEFAULT_MAX_PAGES:
        problems.append("max_pages is used only with page_param or next_page")
    if (page_param or next_page) and options.get("inbound"):
        problems.append("page_param and next_page page a poll; an inbound source has no pages")
    for name in (page_param, token_param):
        if name and name in (options.get("params") or {}):
            problems.append(f"params: {name} is set by the paging, leave it out of params")
    return problems


class Pages:
    """The pages of one poll run: `start()`, then for each call `arguments()`, and after its answer
    `advance()`, which says why the run ends (None: fetch the next page)."""

    def __init__(self, options: dict[str, Any]):
        self.page_param = options.get("page_param")
        self.by_offset = options.get("page_by") == "offset"
        self.first_page = int(options.get("first_page", 1))
        expression = options.get("next_page")
        self._next_page = jmespath.compile(expression) if expression else None
        self.token_param = options.get("page_token_param")
        self.max_pages = int(options.get("max_pages") or DEFAULT_MAX_PAGES)
        self.start()

    @property
    def enabled(self) -> bool:
        return bool(self.page_param or self._next_page)

    def start(self) -> None:
        self.fetched, self.received = 0, 0
        self.token: Any = None
        self._last_page: str | None = None

    def arguments(self, base: dict[str, Any]) -> dict[str, Any]:
        """The request parameters of the next page: `base` plus the page number, offset or token."""
        arguments = dict(base)
        if self.page_param:
            arguments[self.page_param] = self.received if self.by_offset else self.first_page + self.fetched
        if self.token is not None and self.token_param:
            arguments[self.token_param] = self.token
        return arguments

    def advance(self, answer: Any, records: list[Any]) -> str | None:
        """Count the page just answered; None when another page is to be fetched, else why not."""
        self.fetched += 1
        self.received += len(records)
        if not self.enabled:
            return "one page"
        if not records:
            return "a page with no record"
        page = hashlib.sha256(jsonfmt.dump_bytes(records)).hexdigest()
        if page == self._last_page:
            return "the same page again (does the service read the page parameter?)"
        self._last_page = page
        if self._next_page is not None:
            token = self._next_page.search(answer)
            if token is None or token == "" or token == []:
                return "the last page"
            if token == self.token:
                return "the same token again"
            self.token = token
        if self.fetched >= self.max_pages:
            return "max_pages"
        return None
