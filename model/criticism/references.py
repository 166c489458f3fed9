"""Every reference the evidence cites, where, and whether its citation is complete (issue 19 item 5).

A citation is *incomplete* when its authors, title, journal or year were not read on a source page (a
placeholder such as "not captured" stands in their place) or it has neither a DOI nor a PMID without
saying in ``no_id`` why the source has none (the rule of ``tests/test_evidence.py``). Such a source is
kept only where it is the best evidence for its quantity, and flagged "citation incomplete: ..." wherever
the report lists it. The citations are collected from every file of the evidence folder (``ref`` and
``refs`` keys, at any depth: cohorts, cases, rates, actions, decision, validation, model settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Words that mark a citation field as not read on a source page (docs/design.md §3: no placeholders).
PLACEHOLDERS = ("not captured", "not shown", "not found", "unknown", "probably", "possibly", "unverified", "attrib",
                "n.d.")
FIELDS = ("authors", "title", "journal", "year")
REF_KEYS = ("ref", "refs")


def incomplete_fields(ref: dict[str, Any]) -> list[str]:
    """The citation fields of one reference that are missing or only attributed."""
    bad = []
    for field in FIELDS:
        value = str(ref.get(field) or "")
        if not value or any(p in value.lower() for p in PLACEHOLDERS):
            bad.append(field)
    if not ref.get("doi") and not ref.get("pmid") and not str(ref.get("no_id") or "").strip():
        bad.append("doi/pmid")
    return bad


def _keys(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def citations(folder: str | Path) -> dict[str, list[str]]:
    """Reference key -> where it is cited (``file: path``), over every YAML file of ``folder`` but the
    reference list itself."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out: dict[str, list[str]] = {}

    def walk(node: Any, path: list[str], file: str) -> None:
        if isinstance(node, dict):
            label = next((str(node[k]) for k in ("id", "name") if isinstance(node.get(k), str)), None)
            here = path + ([label] if label else [])
            for k, v in node.items():
                if k in REF_KEYS:
                    for key in _keys(v):
                        out.setdefault(key, []).append(f"{file}: {'/'.join(here) or '(top)'}")
                else:
                    walk(v, here if isinstance(v, list) else here + [str(k)], file)
        elif isinstance(node, list):
            for item in node:
                walk(item, path, file)

    for f in sorted(Path(folder).glob("*.yaml")):
        if f.name == "references.yaml":
            continue
        walk(yaml.load(f.read_text(encoding="utf-8"), Loader=loader), [], f.name)
    return out


def table(references: dict[str, dict[str, Any]], folder: str | Path) -> dict[str, Any]:
    """The reference table of the check report: every cited key with its citation, where it is used and
    the fields still incomplete (``flag``: "citation incomplete: ..." or None); keys cited but absent
    from the reference list are listed apart."""
    cited = citations(folder)
    rows = []
    for key in sorted(cited):
        ref = references.get(key)
        if ref is None:
            continue
        bad = incomplete_fields(ref)
        rows.append({"key": key, "authors": ref.get("authors"), "title": ref.get("title"), "journal": ref.get("journal"),
                     "year": ref.get("year"), "doi": ref.get("doi"), "pmid": ref.get("pmid"),
                     "verified": ref.get("verified"), "where": cited[key], "incomplete": bad,
                     "flag": f"citation incomplete: {', '.join(bad)}" if bad else None})
    return {"rows": rows, "missing": sorted(k for k in cited if k not in references),
            "incomplete_references": sum(bool(r["incomplete"]) for r in rows),
            "incomplete_fields": sum(len(r["incomplete"]) for r in rows)}
