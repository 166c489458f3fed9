"""``palsy evidence``: validate every file of priors/ against the others and print the evidence table with
citations.

Every file is read: the fit's (schema, references, cases, cohorts, rates, model) and the ones an answer,
the lesson and a FHIR record read (decision, actions, validation, teaching cases, the FHIR map). Each
problem is one line naming the file, the entry, the field, the value and what is allowed; any problem is
bad input (exit status 2) and nothing is printed on standard output."""

from __future__ import annotations

import argparse
import json

from palsy.model import crossref as X
from palsy.model import evidence as E
from palsy.reports import terminal as T
from palsy.scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--priors", help="evidence folder (default: the repository's priors/)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")


def citation(ref: dict) -> str:
    """'Authors. Title. Journal Year. doi:... PMID ...' from a references.yaml entry."""
    parts = [str(ref.get("authors", "")).rstrip("."), str(ref.get("title", "")).rstrip(".")]
    journal = " ".join(str(x) for x in (ref.get("journal"), ref.get("year")) if x)
    if journal:
        parts.append(journal)
    ids = []
    if ref.get("doi"):
        ids.append(f"doi:{ref['doi']}")
    if ref.get("pmid"):
        ids.append(f"PMID {ref['pmid']}")
    return ". ".join(p for p in parts if p) + (". " + " ".join(ids) if ids else "")


def rows(ev: E.Evidence) -> list[dict]:
    """One row per cohort entry and per case, with its citation."""
    out = []
    for e in ev.entries:
        if e.kind == "expert_judgment":
            what = f"expert judgment Beta({e.beta[0]:g}, {e.beta[1]:g})"
        else:
            what = f"{e.x:g}/{e.n:g} (weight {e.weight:g})"
        group = "/".join(e.level) + ("" if set(e.of) == set(_levels(ev, e)) else f" of {'/'.join(e.of)}")
        if e.quantity == "node":
            group = e.lp_node
        cause = "every cause (shared)" if e.cause is None else e.cause + (f" ({e.form})" if e.form else "")
        out.append({"kind": e.kind, "id": e.id, "finding": e.item, "cause": cause,
                    "level": group, "evidence": what,
                    "citation": "; ".join(citation(ev.references[r]) for r in e.refs) or e.raw.get("reasoning", "")})
    for c in ev.cases:
        out.append({"kind": "case", "id": c.id, "finding": "case report", "cause": "infiltration" + (f" ({c.form})" if c.form else ""),
                    "level": c.phase, "evidence": f"proven by {', '.join(c.proven_by)} (weight w_case {ev.w_case:g})",
                    "citation": citation(ev.references[c.ref])})
    return out


def _levels(ev: E.Evidence, e: E.Entry) -> tuple[str, ...]:
    """The levels an entry's ``of`` is compared with: a tree item's own levels (an LP entry's are its own)."""
    if e.quantity != "tree":
        return tuple(e.of)
    return ev.structure.items.get(e.item) or ev.schema.levels[e.finding]


def rate_rows(ev: E.Evidence) -> list[dict]:
    """One row per factor and multiplier of the rate model (priors/rates.yaml)."""
    out = []
    for f in ev.rates.factors:
        if f.kind == "lognormal":
            import math
            what = f"log-normal median {math.exp(f.params[0]):.3g}, 90% interval x/{math.exp(1.6448536269514722 * f.params[1]):.3g}"
        elif f.kind == "beta":
            what = f"Beta({f.params[0]:g}, {f.params[1]:g})"
        else:
            what = f"fixed {f.params[0]:g}"
        out.append({"kind": "rate", "id": f.name, "finding": "rate", "cause": f.cause, "level": "", "evidence": what,
                    "citation": ""})
    return out


def run(args: argparse.Namespace) -> int:
    ev, problems = X.check_folder(common.priors_dir(args))
    if problems:
        raise E.EvidenceError(problems)
    table = rows(ev) + rate_rows(ev)
    if args.json:
        print(json.dumps({"evidence_hash": ev.hash, "w_case": ev.w_case, "rows": table}))
        return 0
    # ids, citations and reasoning are file text: each printed line goes through the terminal sanitiser
    print(T.line(f"Evidence {ev.hash[:12]}: {len(ev.entries)} cohort entries, {len(ev.cases)} cases, "
                 f"{len(ev.references)} references; w_case = {ev.w_case:g}") + "\n")
    for r in table:
        print(T.lines([f"[{r['kind']}] {r['id']}: {r['finding']} | {r['cause']} | {r['level']} | {r['evidence']}",
                       f"    {r['citation']}"]))
    return 0
