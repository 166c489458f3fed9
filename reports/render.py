"""Render the clinician report (HTML and PDF) from one context (:mod:`palsy.reports.context`).

One template, two formats. HTML: a Jinja2 template (``templates/report.html``, autoescaping on, so every
user-supplied string is escaped) with the CSS inline and the figures inline as base64 SVG: the page loads
nothing from the network. PDF: the *same* HTML printed by headless Chromium (:mod:`palsy.reports.pdf`), through the
template's ``@media print`` rules: page 1 of the PDF is the one-screen page 1 (``#page1`` ends with a page
break), later pages flow. Fonts come from fontconfig, so any text a font on the machine covers (CJK, emoji,
right-to-left) is drawn and extractable; the PDF carries no dates, so the same context gives the same bytes.

:func:`write` renders every report of a set in memory, writes into a temporary folder next to the target
and only then moves the files into place, so bad input or a failure leaves nothing half-written.
"""

from __future__ import annotations

import base64
import hashlib
import re
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from palsy.model.findings import InputError
from palsy.reports import links, templating
from palsy.reports import wording as W
from palsy.reports.output import write_all
from palsy.reports.pdf import Printer

FORMATS = ("html", "pdf")
#: Names a file may not have on Windows, whatever its extension (``con.html`` is the console there).
_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})


def svg_images(ctx: dict[str, Any]) -> dict[str, str]:
    """Each figure as base64 SVG (for ``<img src="data:...">``)."""
    from palsy.reports import figures as FG  # matplotlib: imported while the PDF helper starts (reports.pdf)

    return {name: base64.b64encode(FG.svg(name, ctx["figures"][name]).encode("utf-8")).decode("ascii")
            for name in FG.NAMES}


def _safe_references(ctx: dict[str, Any]) -> dict[str, Any]:
    """``ctx`` with every reference link that :func:`palsy.reports.links.safe_url` refuses left out (the
    reference itself stays, as text)."""
    refs = ctx.get("references")
    if not refs:
        return ctx
    kept = [{**r, "links": [link for link in r.get("links", ()) if links.safe_url(link.get("url"))]} for r in refs]
    return {**ctx, "references": kept}


def html(ctx: dict[str, Any]) -> str:
    """The self-contained HTML report.

    Its words are in the report's one spelling (:data:`palsy.reports.wording.PAGE_SPELLING`), its citations as
    published. Every link it carries is an anchor in the page or an http(s) address (:mod:`palsy.reports.links`):
    a reference whose address is anything else is shown without a link, and the finished page is
    checked, so the PDF printed from it carries no other URI action either.

    Raises
    ------
    RuntimeError
        If the finished page still carries a link that is not allowed (a template bug, never input).
    """
    # one spelling on the page, the labels' (wording.PAGE_SPELLING): the actions' and reasonings' words follow them,
    # the citations are quoted as published, the figures drawn from the same words
    raw = ctx
    ctx = W.styled(_safe_references(ctx), W.PAGE_SPELLING["report"])
    # the patient's description is the clinician's own words ("Haemate P" is a product, not a misspelling): shown
    # as entered (a second review, s18)
    if isinstance(raw.get("patient"), dict) and "description" in raw["patient"]:
        ctx["patient"] = {**ctx["patient"], "description": raw["patient"]["description"]}
    page = templating.environment().get_template("report.html").render(**ctx, svg=svg_images(ctx))
    bad = links.unsafe_links(page)
    if bad:
        raise RuntimeError(f"the report would carry links it may not: {', '.join(bad[:5])}")
    return page


# --- files ---------------------------------------------------------------------------------------

def parse_formats(text: str) -> tuple[str, ...]:
    """'html,pdf' -> ('html', 'pdf').

    Raises
    ------
    palsy.model.findings.InputError
        Naming ``--format``, the value and the allowed formats.
    """
    got = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in got if f not in FORMATS]
    if bad or not got:
        raise InputError([f"--format: {text!r} is not allowed; allowed: a comma-separated list of {', '.join(FORMATS)}"],
                         "command line")
    return got


#: Hex digits of the id's SHA-256 in a file name that had to be changed: all of them, so that two ids
#: never share a name (8 digits, 32 bits, gave a colliding pair of ids in about 20,000 tries).
DIGEST_DIGITS = 64


def file_stem(patient_id: str) -> str:
    """A safe file name from a patient id that no other id shares.

    Letters, digits, '.', '_' and '-' are kept; when anything had to change (another character, a
    leading dot or dash, an empty id, a very long one, a name Windows reserves, a name that ends like
    a digest), the id's whole SHA-256 is added, so that 'ward-3/bed-12' and 'ward-3_bed-12', or two ids
    in a non-Latin script, never write one file, whichever runs write them.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", patient_id).strip("._-")[:100]
    if (stem != patient_id or not stem or re.search(rf"-[0-9a-f]{{{DIGEST_DIGITS}}}$", stem)
            or stem.split(".")[0].lower() in _RESERVED):
        digest = hashlib.sha256(patient_id.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_DIGITS]
        stem = f"{stem or 'patient'}-{digest}"
    return stem


def _formats(ctx: dict[str, Any], formats: tuple[str, ...], printer: Printer) -> dict[str, bytes | Future]:
    """The HTML at once and the PDF as ``printer``'s future (the same HTML printed by Chromium)."""
    text = html(ctx)
    out: dict[str, bytes | Future] = {}
    if "html" in formats:
        out["html"] = text.encode("utf-8")
    if "pdf" in formats:
        out["pdf"] = printer.submit(text)
    return out


def _done(blob: bytes | Future) -> bytes:
    return blob if isinstance(blob, bytes) else blob.result()


def render(ctx: dict[str, Any], formats: tuple[str, ...] = FORMATS) -> dict[str, bytes]:
    """Every requested format in memory, made in this process: ``{'html': bytes, 'pdf': bytes}``."""
    return {fmt: _done(blob) for fmt, blob in _formats(ctx, formats, Printer(helper=False)).items()}


def write(ctxs: dict[str, Any] | list[dict[str, Any]], out_dir: str | Path, formats: tuple[str, ...] = FORMATS,
          printer: Printer | None = None) -> list[Path]:
    """Render every format of one report or of several in memory, then write them as one set (all or
    nothing). The PDFs are printed by ``printer`` (in this process when None), each while the next
    report's HTML is made. Two reports whose patients would share a file name are an InputError naming
    both ids."""
    ctxs = [ctxs] if isinstance(ctxs, dict) else list(ctxs)
    printer = printer or Printer(helper=False)
    stems = file_stems([ctx["patient"]["id"] for ctx in ctxs])
    pending = {f"{stem}.{fmt}": blob for ctx, stem in zip(ctxs, stems, strict=True)
               for fmt, blob in _formats(ctx, formats, printer).items()}
    return list(write_all(out_dir, {name: _done(blob) for name, blob in pending.items()}).values())


def file_stems(patient_ids: list[str], sources: list[str] | None = None) -> list[str]:
    """The file stem of each patient id (:func:`file_stem`).

    Raises
    ------
    palsy.model.findings.InputError
        Naming both ids (and the files they come from, ``sources``) when two patients would write the
        same files, here or on a file system that ignores case ('P-1' and 'p-1').
    """
    seen: dict[str, int] = {}
    stems = []
    for i, pid in enumerate(patient_ids):
        stem = file_stem(pid)
        if stem.casefold() in seen:
            j = seen[stem.casefold()]
            where = f" (in {sources[j]} and {sources[i]})" if sources else ""
            raise InputError([f"patients {patient_ids[j]!r} and {pid!r}{where} would write the same report files "
                              f"{stem}.*; allowed: one id per patient (ids that differ only in case are one id "
                              f"on many file systems)"], "patients")
        seen[stem.casefold()] = i
        stems.append(stem)
    return stems
