"""The links a report may carry: http(s) addresses, DOIs and PubMed ids, nothing else.

Evidence files are written by people and could be written by an attacker: a reference ``url`` of
``javascript:alert(1)`` (or ``data:``, ``file:``, ``vbscript:``, a link with hidden characters that a
browser strips) must never become a clickable link in the HTML nor a URI action in the PDF, which is the
same HTML printed. Every link of a report goes through :func:`safe_url` (and DOIs and PubMed ids through
:func:`doi_url` and :func:`pmid_url`, which build https addresses); :func:`unsafe_links` checks a finished
page, so that a template that one day writes a link another way is caught by the tests and at run time.
Standard library only.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

#: The schemes a report links to.
SCHEMES = ("http", "https")
#: The longest address kept (a longer one is refused, not cut: a cut address goes somewhere else).
MAX_LENGTH = 2000

_DOI = re.compile(r"10\.\d{4,9}/\S+")
_PMID = re.compile(r"[1-9]\d{0,9}")
#: The attributes whose value a browser (or the PDF's printer, Chromium) follows or loads.
LINK_ATTRIBUTES = frozenset({"href", "src", "xlink:href", "action", "formaction", "poster", "srcset", "data",
                             "background", "cite", "longdesc", "ping", "manifest"})


def safe_url(url: object) -> str | None:
    """``url`` if it is an absolute http(s) address a report may link to, else None.

    Refused: any other scheme (``javascript:``, ``data:``, ``file:``, a relative path), control,
    space or invisible characters anywhere (browsers strip some of them, so ``java\\tscript:`` would
    run), user names or passwords in the address (``https://bank.example@evil.example``), no host,
    and addresses longer than :data:`MAX_LENGTH`.

    Parameters
    ----------
    url : object
        The address as given in a file (anything: a number or None is refused too).

    Returns
    -------
    str or None
        The address unchanged, or None when it may not be a link.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_LENGTH:
        return None
    if not url.isascii() or not url.isprintable() or any(ch.isspace() for ch in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # a malformed port raises
    except ValueError:
        return None
    del port
    if parts.scheme.lower() not in SCHEMES or not parts.hostname or "@" in parts.netloc or "\\" in url:
        return None
    return url


def doi_url(doi: object) -> str | None:
    """The https://doi.org/ address of a DOI (``10.<registrant>/<suffix>``), or None if it is not one."""
    text = str(doi).strip() if isinstance(doi, str | int) else ""
    if not _DOI.fullmatch(text) or not text.isprintable():
        return None
    return safe_url("https://doi.org/" + quote(text, safe="/:;()._-<>"))


def pmid_url(pmid: object) -> str | None:
    """The PubMed address of a PubMed id (digits only), or None if it is not one."""
    text = str(pmid).strip() if isinstance(pmid, str | int) and not isinstance(pmid, bool) else ""
    if not _PMID.fullmatch(text):
        return None
    return f"https://pubmed.ncbi.nlm.nih.gov/{text}/"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in LINK_ATTRIBUTES or name.startswith("on"):
                self.found.append((tag, name, value or ""))

    handle_startendtag = handle_starttag


def unsafe_links(page: str) -> list[str]:
    """Every link target in an HTML ``page`` that is neither an anchor in the page (``#...``), an inline
    image (``data:image/...`` in an ``img``'s ``src``) nor a :func:`safe_url`, and every event handler
    attribute (``onclick``...): empty for a page a report may carry. Text is not looked at (a description
    that reads ``href=javascript:...`` is escaped text, not a link)."""
    parser = _Links()
    parser.feed(page)
    parser.close()
    bad = []
    for tag, name, value in parser.found:
        if name.startswith("on"):
            bad.append(f"<{tag} {name}>")
        elif name == "href" and value.startswith("#") and value[1:].replace("-", "").replace("_", "").isalnum():
            continue
        elif tag == "img" and name == "src" and value.startswith("data:image/"):
            continue
        elif name == "srcset" or safe_url(value) is None:
            bad.append(f"<{tag} {name}={value[:80]!r}>")
    return bad
