"""The pages a browser opens from a card's link: the report as served (the record's id kept out of its title, a
notice at its top when another model than its card's rendered it) and the page of a report that has expired.

A card's link is loaded "via GET, in a browser context" (CDS Hooks 2.0, Link), and a record system may keep a
card on screen for hours: an expired or unknown report is then a page that says so to the clinician, JSON only
for a client that asks for JSON (until s17 a browser was shown the raw JSON 404). A browser's history keeps a
page's title after the report is gone, on a shared ward workstation too: the title carries no record id (it
carried ``Patient/<id>``, while the logs hash it).
"""

from __future__ import annotations

import html
import re

from markupsafe import escape

#: The headers of every page the service serves: not kept by the browser's cache, no referrer, nothing fetched.
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'"}
_TITLE = re.compile(rb"<title>(.*?)</title>", re.S)
_BODY = re.compile(rb"<body[^>]*>", re.I)


def model_changed(card_summary: str | None) -> str:
    """The notice at the top of a report rendered by another model than its card's (the service re-read its model,
    evidence or decision settings after the card, SIGHUP): what the card said, and that the numbers below are the
    model's now (second review #2: the card and its report disagreed, and nothing said why)."""
    said = f" The card said: \u201c{html.escape(card_summary)}\u201d." if card_summary else ""
    return ("<div role=\"alert\" style=\"border: 2px solid #b35806; padding: 0.6em 1em; margin: 0 0 1em 0\">"
            "<strong>The model has changed since this card was issued.</strong> The service re-read its model, "
            f"evidence or decision settings after the card was answered.{said} The numbers below are the current "
            "model's and may differ from the card's; reopen the patient's chart for a card of the current model.</div>")


def with_notice(page: bytes, notice: str) -> bytes:
    """The report's HTML with ``notice`` (HTML) first in its body."""
    m = _BODY.search(page)
    at = m.end() if m is not None else 0
    return page[:at] + notice.encode("utf-8") + page[at:]


def without_record_id(page: bytes, record_id: str) -> bytes:
    """The report's HTML with ``record_id`` (as the template escaped it, with its parentheses) out of its title."""
    m = _TITLE.search(page)
    if m is None or not record_id:
        return page
    shown = str(escape(record_id)).encode("utf-8")
    title = m.group(1).replace(b" (" + shown + b")", b"").replace(shown, b"")
    return page[:m.start(1)] + title + page[m.end(1):]


def wants_html(accept: str | None) -> bool:
    """Whether a request's ``Accept`` prefers an HTML page to JSON (a browser's does; ``*/*`` and JSON clients'
    do not): text/html listed, with a quality above application/json's (equal: the one listed first)."""
    if not accept:
        return False
    quality: dict[str, tuple[float, int]] = {}
    for i, part in enumerate(accept.lower().split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        quality.setdefault(media, (q, -i))
    page, data = quality.get("text/html"), quality.get("application/json")
    return page is not None and page[0] > 0 and (data is None or page > data)


def expired_page(ttl_seconds: int) -> str:
    """The page of a report that has expired, or never was: what happened and what to do."""
    kept = f"{ttl_seconds // 3600} hour{'s' if ttl_seconds >= 7200 else ''}" if ttl_seconds % 3600 == 0 \
        else f"{ttl_seconds // 60} minutes" if ttl_seconds % 60 == 0 else f"{ttl_seconds} seconds"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>palsy: this report has expired"
            "</title></head>\n<body style=\"font-family: sans-serif; max-width: 40em; margin: 2em auto\">\n"
            "<h1>This report is no longer available</h1>\n"
            f"<p>A card's full report is kept for {html.escape(kept)} after the card, and this one has expired (or "
            "the link is not one of this service's).</p>\n"
            "<p>Reopen the patient's chart for a current card: its link opens a report of the record as it is "
            "now.</p>\n</body></html>\n")
