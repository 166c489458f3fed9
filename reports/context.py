"""One context for the clinician report: every number and phrase, built once from an answer.

The HTML and the PDF are both rendered from the dict that :func:`build` returns, so they show the
same numbers in the same words. The context is plain data (str, int, float, bool, list, dict): the
figures (:mod:`palsy.reports.figures`) draw from it and never see the model.

One statistic per number (docs/design.md §6): probabilities are **means** over the posterior draws, with an
equal-tailed credible interval; factors on the odds are **geometric means**, exp(mean log LR), with
their interval; the waterfalls are drawn from, and labelled with, the means after each step. The median appears only
where it is labelled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from palsy.model import answer as A
from palsy.model import structure as ST
from palsy.model.criticism.references import PLACEHOLDERS, incomplete_fields
from palsy.model.evidence import Evidence
from palsy.model.rates import factor_levels, interaction_levels
from palsy.reports import wording as W
from palsy.reports.labels import Labels
from palsy.reports.links import safe_url

TITLE = "Facial palsy in acute leukemia: leukemic infiltration or a mimic?"
FAN_LINES = 200  # posterior draws drawn in the Fagan nomogram
FAN_SEED = 20240611

SUPPORTS = "This report supports and does not replace clinical judgment."
DISCLAIMER = ("This report supports and does not replace clinical judgment. It weighs leukemic infiltration "
              "against the modelled causes that mimic it, from published evidence of uneven quality; the "
              "treating team weighs it with everything the model does not see.")


def labels_of(evidence: Evidence) -> Labels:
    """The words of this evidence's schema and causes."""
    return Labels(evidence.schema, evidence.settings.get("cause_labels"))


def _prob(s: dict[str, float], ci: float) -> dict[str, Any]:
    """A probability summary with its phrases (mean as the point, with the interval)."""
    s = {**s, "ci": ci}
    return {"mean": s["mean"], "median": s.get("median"), "lower": s["lower"], "upper": s["upper"], "ci": ci,
            "percent": W.percent(s["mean"]), "interval": W.interval(s["lower"], s["upper"], ci),
            "text": W.probability_with_interval(s), "words": W.words(s["mean"])}


def _refs(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


class _Citations:
    """Numbers references in order of first citation."""

    def __init__(self, evidence: Evidence) -> None:
        self.ev = evidence
        self.order: list[str] = []

    def cite(self, keys: list[str]) -> list[int]:
        out = []
        for k in keys:
            if k not in self.ev.references:
                continue
            if k not in self.order:
                self.order.append(k)
            n = self.order.index(k) + 1
            if n not in out:
                out.append(n)
        return sorted(out)

    def references(self) -> list[dict[str, Any]]:
        out = []
        for n, key in enumerate(self.order, start=1):
            ref = self.ev.references[key]
            links = []
            if ref.get("doi"):
                url = "https://doi.org/" + quote(str(ref["doi"]), safe="/:;()._-<>")
                links.append({"label": f"doi:{ref['doi']}", "url": url})
            if ref.get("pmid"):
                links.append({"label": f"PMID {ref['pmid']}", "url": f"https://pubmed.ncbi.nlm.nih.gov/{quote(str(ref['pmid']))}/"})
            if not links and (url := safe_url(ref.get("url"))):
                links.append({"label": "source page", "url": url})
            out.append({"n": n, "key": key, "text": citation_text(ref), "links": links,
                        "short": short_citation(ref), "incomplete": incomplete_note(ref)})
        return out


#: How each kind of source of uncertainty reads in the report's table.
KIND_WORDS = {"judgment": "expert judgment", "data": "data", "monte_carlo": "Monte Carlo error",
              "unlabelled": "not labelled (the fit predates provenance)"}


def _rests_on_rows(rows: list[dict]) -> list[dict[str, str]]:
    """The table of what the answer rests on: each block's part as judgment or data, its share in words."""
    return [{"source": r["source"], "kind": KIND_WORDS.get(r["kind"], r["kind"]), "share": W.share(r["share"]),
             "error": W.share_error(r.get("mc_error", 0.0)) if r["kind"] != "monte_carlo" else ""}
            for r in rows]


#: How many blocks of expert judgment the report gives the reasoning of (the largest), from which share of the
#: answer's uncertainty, how many judgments of each, and the length of a reasoning shown (the rest is in its file;
#: the report stays within its pages).
JUDGMENT_BLOCKS, JUDGMENT_MIN_SHARE, JUDGMENTS_SHOWN, REASON_CHARS = 3, 0.05, 3, 450


def _reason(node: Any) -> str:
    text = " ".join(str(node.get("reasoning") or "").split()) if isinstance(node, dict) else \
        " ".join(str(node or "").split())
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1].rstrip() + "…"


def _share_reason(doc: dict[str, Any], finding: str, ans: A.Answer) -> str:
    """The reasoning of a context finding's shares where the patient is: down its parents' levels as the patient
    has them (``given``), else the reasonings of every cell, once each."""
    node = doc.get(finding) or {}
    for parent in node.get("given") or []:
        level = ans.patient.level(parent)
        if level is None or not isinstance(node.get(level), dict):
            break
        node = node[level]
    if _reason(node):
        return _reason(node)
    seen = dict.fromkeys(_reason(v) for v in node.values() if isinstance(v, dict) and _reason(v))
    return _reason(" / ".join(seen))


def _known(finding: str, ans: A.Answer, evidence: Evidence) -> bool:
    """Whether the patient has ``finding`` (the LP's: at least one LP; a laboratory node's: the same)."""
    if finding == evidence.schema.lp.name:
        return bool(ans.patient.csf)
    return finding not in evidence.schema.by_name or ans.patient.level(finding) is not None


def _judgment_item(key: str, ans: A.Answer, evidence: Evidence, L: Labels) -> dict[str, str] | None:
    """What a key of a rests-on row's ``evidence`` names, and its reasoning as the evidence files give it."""
    from palsy.model.rests_on import rate_factor

    kind, _, name = key.partition(":")
    if kind == "cohorts":
        e = next((x for x in evidence.entries if x.id == name), None)
        # a finding the patient does not have is marginalised and cannot move the answer: a parameter of it that
        # tracks the answer across draws does so by correlation alone
        if e is None or not _known(e.finding, ans, evidence):
            return None
        what = " ".join([e.finding, *([e.method] if e.method else []), *([e.lp_node] if e.lp_node else [])])
        what += f": {', '.join(e.level)}" if e.level else ""
        return {"what": f"{e.id} ({what}; priors/cohorts.yaml)", "why": _reason(e.raw)}
    if kind == "rates":
        factor, _ = rate_factor(evidence.rates.doc.get("rates") or {}, name)
        cause, rest, levels = factor_levels(name)
        if any(ans.patient.level(f) not in (None, lv) for f, lv in levels.items()):  # strata not the patient's
            return None
        # a multiplier's or an interaction's strata in the schema's words ('acute myeloid leukemia and no vinca
        # alkaloid in the 4 weeks before onset'), not the file's codes
        what = " and ".join(L.value(f, lv) for f, lv in levels.items()) if levels else rest.replace("_", " ")
        return {"what": f"{L.cause(cause)}: {what} (priors/rates.yaml)", "why": _reason(factor)}
    if kind == "shares":
        return {"what": f"share of {L.schema.label(name)} (priors/rates.yaml)",
                "why": _share_reason(evidence.rates.doc.get("shares") or {}, name, ans)}
    if kind == "model":
        return {"what": f"{name.replace('_', ' ')} (priors/model.yaml)",
                "why": _reason((evidence.settings.get("reasoning") or {}).get(name))}
    return None


def _judgments(rows: list[dict], ans: A.Answer, evidence: Evidence, L: Labels) -> list[dict[str, Any]]:
    """The reasoning of the expert judgments this answer rests on most: for each of the largest blocks carried by
    judgment (at least :data:`JUDGMENT_MIN_SHARE` of the uncertainty), the judgments whose parameters explain most
    of this answer's variance (the row's ``evidence``, from the decomposition: the answer's variant, its findings,
    the strata it can be in), with their reasoning as ``priors/`` gives it. A block none of whose judgments has a
    reasoning is not shown (a statistician's review, s16: page 1 named 'an expert judgment' and no page said
    why; a second review: the first version listed judgments of the other variant and of findings unknown)."""
    judged = sorted((r for r in rows if r["kind"] == "judgment" and r["share"] >= JUDGMENT_MIN_SHARE),
                    key=lambda r: -r["share"])
    out = []
    for r in judged:
        items = [i for i in (_judgment_item(k, ans, evidence, L) for k in r.get("evidence") or [])
                 if i and i["why"]][:JUDGMENTS_SHOWN]
        if items:
            out.append({"source": r["source"], "share": W.share(r["share"]), "judgments": items})
        if len(out) == JUDGMENT_BLOCKS:
            break
    return out


#: Words of a note about our curation inside a citation field (what was or was not read, and where): the project's
#: placeholders (model/criticism/references.py) and the notes' own words. A reader's citation shows what was read,
#: never how: the notes stay in the entry's ``verified`` (a teacher's review, s16: "not found after a search of the
#: pages, docs and code corpora (about 15 queries; see verified)" printed as a reference's authors).
CURATION_WORDS = (*PLACEHOLDERS, "unidentified", "as given", "as listed", "inferred", "not seen", "from the address",
                  "see verified", "search", "may be incomplete", "truncated", "position unknown", "not read",
                  "captured")
#: How a field that is itself a note begins (its value was not read, or only guessed): the field is left out.
_NOTE_START = re.compile(r"^(not\b|n\.d\.|probably\b|possibly\b|unknown\b|unverified\b|c\.\s)", re.I)
#: How a note that comes before a field's value, up to a colon, begins ("unidentified images article: ...").
_NOTE_HEAD = re.compile(r"^unidentified\b", re.I)


_CURATION = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in CURATION_WORDS) + ")", re.I)


def _is_note(text: str) -> bool:
    """Whether ``text`` holds a word of :data:`CURATION_WORDS` (at a word's start: "search", not "Research")."""
    return bool(_CURATION.search(text))


def _drop_notes(text: str) -> str:
    """``text`` without its parenthesised and bracketed notes about curation (a group kept when it holds none:
    "(Baltimore)", "[14]")."""
    out, start, stack = [], 0, []
    pairs = {"(": ")", "[": "]"}
    for i, ch in enumerate(text):
        if ch in pairs:
            if not stack:
                out.append(text[start:i])
                start = i
            stack.append(pairs[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                group = text[start:i + 1]
                if not _is_note(group[1:-1]):
                    out.append(group)
                start = i + 1
    out.append(text[start:])
    return re.sub(r"\s+([,.;:])", r"\1", re.sub(r"\s{2,}", " ", "".join(out))).strip()


def reader_field(value: Any) -> str:
    """A citation field as a reader's citation shows it: its notes about our curation left out (:data:`CURATION_WORDS`;
    they are in the entry's ``verified``). A field that is itself a note ("not shown in the source read", "n.d.",
    "probably ...") is empty; one that opens with a note before a colon ("unidentified images article: ...") keeps
    what follows it. Without notes, the value unchanged."""
    text = " ".join(str(value if value is not None else "").split()).replace(" ...", "…").replace("...", "…")
    if not text or not _is_note(text):  # a title that merely opens "Not ..." or "Unknown ..." is a title
        return text
    head, sep, rest = text.partition(": ")
    if sep and _NOTE_HEAD.match(head):
        text = rest
    text = _drop_notes(text).strip(" ;,")
    return "" if not text or _NOTE_START.match(text) else text


def _reader(ref: dict[str, Any]) -> dict[str, Any]:
    return {**ref, **{k: reader_field(ref.get(k)) for k in ("authors", "title", "journal", "year", "volume", "pages")}}


def _cut(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters at a word, with an ellipsis, and no colon, comma or stop before
    it (a teacher's review, s16: 'hematologic malignancies:….')."""
    if len(text) <= chars:
        return text
    cut = text[: chars - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" .,;:-–") + "…"


def _joined(parts: list[str]) -> str:
    """Parts of a citation joined by full stops (none after an ellipsis), ending with one."""
    out = ""
    for p in (p for p in parts if p):
        out += ("" if not out else " " if out.endswith(("…", ".", "?", "!")) else ". ") + p
    return out if out.endswith(("…", ".", "?", "!")) else out + "."


#: What a citation with neither authors, title nor journal opens with (never a bare year: s18).
UNIDENTIFIED = "[Authors, title and journal not known]"


def _title(ref: dict[str, Any], reader: dict[str, Any]) -> str:
    """The title as a citation shows it: a title that was not read but described from what was (an incomplete title
    with a description: "temporal bone study of a 16-year-old girl with AML ... (title not shown)"; an
    "unidentified ... article: ..."), in square brackets, as a descriptive title is cited, so that it never reads as
    the source's own."""
    title = reader["title"].rstrip(".")
    if title and ("title" in incomplete_fields(ref) or _NOTE_HEAD.match(str(ref.get("title") or "").strip())):
        return f"[{W.sentence_start(title)}]"
    return title


def citation_text(ref: dict[str, Any]) -> str:
    """'Authors. Title. Journal Year;volume:pages.' (identifiers are given as links; notes about our curation left
    out: :func:`reader_field`; a described title in square brackets: :func:`_title`). Volume and pages only with the
    journal they belong to; a citation with neither authors, title nor journal opens with :data:`UNIDENTIFIED`, never
    with a bare year. Whether it is complete is said beside it (:func:`incomplete_note`, :func:`listed_citation`)."""
    reader = _reader(ref)
    parts = [reader["authors"].rstrip("."), _title(ref, reader)]
    journal = " ".join(str(x) for x in (reader["journal"], reader["year"]) if x)
    if reader["journal"] and reader["volume"]:
        journal += f";{reader['volume']}"
        if reader["pages"]:
            journal += f":{reader['pages'].rstrip('-–')}"  # "503-": the last page was not read
    if not any((reader["authors"], reader["title"], reader["journal"])):
        parts = [UNIDENTIFIED]
    if journal:
        parts.append(journal)
    return _joined(parts)


def incomplete_note(ref: dict[str, Any]) -> str:
    """'citation incomplete: authors, doi/pmid' for a citation whose fields the project's rule finds incomplete
    (:func:`palsy.model.criticism.references.incomplete_fields`), '' for a complete one: said wherever the source is
    cited (docs/design.md §3)."""
    bad = incomplete_fields(ref)
    return f"citation incomplete: {', '.join(bad)}" if bad else ""


def listed_citation(ref: dict[str, Any]) -> str:
    """A full citation as a page lists it in text (the teaching cases' sources): :func:`citation_text`, its DOI and
    PMID, and :func:`incomplete_note` in brackets when incomplete."""
    ids = " ".join(x for x in (f"doi:{ref['doi']}" if ref.get("doi") else "", f"PMID {ref['pmid']}" if ref.get("pmid")
                                else "") if x)
    note = incomplete_note(ref)
    return " ".join(x for x in (citation_text(ref), ids, f"({note})" if note else "") if x)


def short_citation(ref: dict[str, Any], title_chars: int = 60) -> str:
    """'First author et al. Title. Journal Year. doi:... PMID ...' (title and journal shortened at a word, a described
    title kept in its brackets; notes about our curation left out: :func:`reader_field`)."""
    incomplete = incomplete_fields(ref)
    reader = _reader(ref)
    authors = re.sub(r"\s*\([^()]*\)", "", reader["authors"])  # "Kanwar VS (Willert JR, chief editor)": the author
    first = authors.split(",")[0].strip().rstrip(".") if authors else ""
    if first and ("," in authors or "et al" in authors):
        first = first.removesuffix(" et al") + " et al"
    title = _title(ref, reader)
    if title.startswith("[") and len(title) > title_chars:
        title = f"[{_cut(title[1:-1], title_chars - 2)}]"
    else:
        title = _cut(title, title_chars)
    journal = _cut(reader["journal"], 45)
    year = reader["year"] if reader["year"][:4].isdigit() else ""
    ids = [f"doi:{ref['doi']}" if ref.get("doi") else "", f"PMID {ref['pmid']}" if ref.get("pmid") else ""]
    parts = [first if (first or title or journal) else UNIDENTIFIED, title, " ".join(x for x in (journal, year) if x),
             " ".join(x for x in ids if x),
             "Citation incomplete" if incomplete else ""]  # wherever a source is cited (docs/design.md §3)
    return _joined(parts)


def _collect_refs(node: Any) -> list[str]:
    """Every ``ref`` key under ``node`` of a YAML document, in order."""
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "ref":
                out += _refs(v)
            else:
                out += _collect_refs(v)
    elif isinstance(node, list):
        for v in node:
            out += _collect_refs(v)
    return out


def _rate_refs(ev: Evidence, finding: str | None = None, value: str | None = None,
               patient: Any = None) -> list[str]:
    """References of the rate model: all of it, or what a context finding's level touches (its
    patient-time share, every cause's multiplier for that level, and the interactions of that level whose other
    levels ``patient`` can have: one of a level the patient is known not to have is not this patient's strata,
    as :func:`_judgment_item` and the rests-on decomposition read it; an s18 review found an AML patient with a
    dose shown the no-dose interaction's references)."""
    doc = ev.rates.doc
    if finding is None:
        return _collect_refs(doc.get("shares")) + _collect_refs(doc.get("rates"))

    def possible(levels: dict[str, str]) -> bool:
        return levels.get(finding) == value and (patient is None or all(
            patient.level(f) in (None, lv) for f, lv in levels.items() if f != finding))

    keys = _collect_refs((doc.get("shares") or {}).get(finding))
    for block in (doc.get("rates") or {}).values():
        mult = ((block or {}).get("multipliers") or {}).get(finding) or {}
        keys += _collect_refs(mult.get(value)) if isinstance(mult, dict) else []
        keys += [k for key, inter in ((block or {}).get("interactions") or {}).items()
                 if possible(interaction_levels(key) or {}) for k in _collect_refs(inter)]
    return keys


def _case_informs(case: Any, finding: str, ev: Evidence) -> bool:
    """Whether a library case enters the likelihood of ``finding`` (cases inform the findings of
    infiltration given its form, not the rate model nor the LPs' results: docs/design.md §3-4)."""
    sc = ev.schema
    if finding in case.proven_by or finding in sc.context or finding == sc.lp.name:
        return False
    if finding == sc.profile:
        return bool(case.csf) and case.values.get(finding) is not None
    return case.values.get(finding) is not None


def _items(p: A.Player, st: ST.Structure) -> set[str]:
    if p.lp is not None:
        return {st.schema.lp.name}
    if p.finding == st.profile_finding:
        return {st.profile_item(r) for r in st.results}
    return {p.finding}


def judgments_used(ev: Evidence, variant: str) -> frozenset[str]:
    """The ids of the expert judgments that set a prior of ``variant`` (``model.design.judgments``): a form's
    judgment sets nothing in the ``independent`` variant, and one for infiltration as a whole nothing in
    ``subtype`` where every form has its own; neither is evidence an answer of that variant rests on."""
    from palsy.model import design as D

    return frozenset(e.id for e in D.judgments(ev, ev.structure, ev.variant(variant)).values())


def _evidence_for(p: A.Player, ev: Evidence, cites: _Citations, L: Labels,
                  used: frozenset[str] | None = None, patient: Any = None) -> list[dict[str, Any]]:
    """The evidence behind one finding: cohort entries of its item for each cause (and those shared by
    every cause), the expert judgments that set a prior of the answer's variant (``used``; all when None), the
    rate model (context findings; the interactions ``patient`` can be in), and library cases."""
    groups: list[dict[str, Any]] = []
    sc = ev.schema
    if p.finding in sc.context:
        groups.append({"label": "rate model (patient-time shares, rate multipliers)",
                       "refs": cites.cite(_rate_refs(ev, p.finding, sc.answered_as(p.finding, p.value), patient))})
    else:
        items = _items(p, ev.structure)
        for cause in (*ev.causes, None):
            entries = [e for e in ev.entries if e.item in items and e.cause == cause]
            counts = [e for e in entries if e.kind != "expert_judgment"]
            judged = [e for e in entries if e.kind == "expert_judgment" and (used is None or e.id in used)]
            who = L.cause(cause) if cause is not None else "every cause (the laboratory)"
            if counts:
                groups.append({"label": f"cohorts, {who} ({len(counts)})",
                               "refs": cites.cite([k for e in counts for k in e.refs])})
            if judged:
                groups.append({"label": f"expert judgment, {who} ({len(judged)})",
                               "refs": cites.cite([k for e in judged for k in e.refs])})
        cases = [c for c in ev.cases if _case_informs(c, p.finding, ev)]
        if cases:
            groups.append({"label": f"case reports of infiltration ({len(cases)}, weight {ev.w_case:g} each)",
                           "refs": cites.cite([c.ref for c in cases])})
    for g in groups:
        g["text"] = f"{g['label']}: " + (", ".join(f"[{n}]" for n in g["refs"]) if g["refs"] else "no citation (expert judgment)")
    return groups


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return float(np.log(p / (1 - p)))


def _fan(ans: A.Answer) -> dict[str, Any]:
    """A deterministic sample of (prior log odds, total log LR) draws for the Fagan nomogram, and
    the bold line joining the mean probability before and after the findings."""
    rng = np.random.default_rng(FAN_SEED)
    n = len(ans.prior_log_odds)
    w = None if ans.weights is None else ans.weights / ans.weights.sum()
    idx = rng.choice(n, size=min(FAN_LINES, n), replace=w is not None, p=w)
    lr = ans.posterior_log_odds - ans.prior_log_odds
    pre, post = ans.prior_probability["mean"], ans.probability["mean"]
    return {"pre": [float(x) for x in ans.prior_log_odds[idx]], "log_lr": [float(x) for x in lr[idx]],
            "mean_pre": _logit(pre), "mean_log_lr": _logit(post) - _logit(pre), "lines": int(len(idx)),
            "pretest_fixed": ans.pretest is not None}


def _waterfall(ans: A.Answer, labels: list[str], shorts: list[str]) -> dict[str, Any]:
    """Bars: the prior, each finding (clinical order), the result. Each bar ends at the mean
    P(infiltration) after that step (drawn on the log-odds scale), the number it carries; the whisker is
    its interval. A finding's geometric-mean factor on the odds, exp(mean log LR), is kept beside it
    (``factor``, for the steps' table) but not drawn on the bar: the bar's step is between means, and the
    two can differ in size and even in direction (source-001's laterality: a step of x 3.5 against a
    geometric mean of x 5.3)."""
    ci, w = ans.ci, ans.weights
    inf = ans.causes.index(A.INFILTRATION)
    step_means = [s["causes"][A.INFILTRATION] for s in ans.steps()]
    q = [(1 - ci) / 2, (1 + ci) / 2]
    steps = []
    for k, p_mean in enumerate(step_means):
        lo, hi = (float(x) for x in A.weighted_quantile(ans.step_cause[k, :, inf], q, w))
        step: dict[str, Any] = {"p_mean": p_mean, "p_lower": lo, "p_upper": hi, "mean": _logit(p_mean),
                                "lower": _logit(lo), "upper": _logit(hi)}
        if k == 0:
            name = "Before any finding" if ans.pretest is None else "Pretest (set by hand)"
            step.update(kind="base", label=name, short=name, start=None)
        else:
            c = ans.contributions[k - 1]
            step.update(kind="finding", label=labels[k - 1], short=shorts[k - 1], start=steps[-1]["mean"],
                        factor=W.factor(c["log_lr"]["mean"]), factor_text=W.factor_with_interval(c["log_lr"], ci))
        steps.append(step)
    last = dict(steps[-1])
    last.update(kind="result", label="After all findings", short="After all findings", start=None)
    last.pop("factor", None)
    last.pop("factor_text", None)
    steps.append(last)
    for s in steps:
        s["p_text"] = f"{W.percent(s['p_mean'])} ({W.interval(s['p_lower'], s['p_upper'], ci)})"
    if ans.pretest is not None:  # the clinician's point value: no interval of zero width
        steps[0]["p_text"] = W.pretest_text(ans.pretest)
    return {"steps": steps, "bars": len(steps)}


def _differential_steps(ans: A.Answer, labels: list[str], shorts: list[str], L: Labels) -> dict[str, Any]:
    """The mean probability of every weighed cause after each step (the differential's waterfall)."""
    causes = list(ans.causes_weighed)
    rows = []
    for k, s in enumerate(ans.steps()):
        label = ("Before any finding" if ans.pretest is None else "Pretest (set by hand)") if k == 0 else labels[k - 1]
        short = label if k == 0 else shorts[k - 1]
        rows.append({"label": label, "short": short, "means": [float(s["causes"][c]) for c in causes],
                     "percents": [W.percent(s["causes"][c]) for c in causes]})
    return {"causes": causes, "names": [L.cause(c) for c in causes], "rows": rows}


def build(ans: A.Answer, evidence: Evidence, *, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report context of ``ans`` (with ``evidence`` for citations and words): every number and phrase.

    Parameters
    ----------
    ans : Answer
        The patient's answer (:func:`palsy.model.answer.answer`).
    evidence : Evidence
        The evidence the posterior was fitted to (for citations, labels, population and w_case).
    record : dict, optional
        What the record's mapping said beside the findings (a service's card: ``not_found``, the findings it
        did not find, in words, and ``notes``, e.g. a positive CSF result it did not use): shown on page 1, as the
        card shows them (the full report a card links to had dropped them, an attacker's review found).

    Returns
    -------
    dict
        Plain data, one key per section of the report (see the section builders below). Rendering never
        computes a number.
    """
    L = labels_of(evidence)
    cites = _Citations(evidence)
    d = ans.to_dict()
    # page 1's actions are cited first, so their sources carry the smallest numbers
    cites.cite([k for a in d["actions"][:6] for k in _refs(a.get("refs"))])
    qualifier = " (only if the palsy is peripheral)" if (not ans.in_scope and ans.patient.central) else ""
    warnings = _warnings(ans, d, L)
    rows, labels, shorts = _findings_rows(ans, evidence, cites, L)
    judgments = _judgments(d.get("rests_on") or [], ans, evidence, L)
    page1 = _page1(ans, d, rows, cites, ans.ci, qualifier, L, reasons=bool(judgments))
    headline = _headline(ans, d, qualifier, rows, L)
    return {
        "page1": page1,
        "actions": _all_actions(d, cites),
        "decision": page1["decision"],
        "title": TITLE,
        "patient": _patient_section(ans, L),
        "warnings": warnings,
        "record": _record(record),
        "in_scope": ans.in_scope,
        "out_of_population": next((w["text"] for w in warnings if w["kind"] == "scope"), None),
        "left_out": _left_out(ans),
        "ci": ans.ci, "ci_percent": W.ci_percent(ans.ci),
        "causes_weighed": [L.cause(c) for c in ans.causes_weighed],
        "headline": headline,
        "differential": _differential(d, qualifier, L, ans.ci),
        "base_rate": _base_rate(ans, evidence, cites),
        "findings_table": rows,
        "steps_table": _steps_table(ans, labels, shorts, L),
        "next_tests": _next_tests(ans, L),
        "population": " ".join(str(evidence.rates.doc.get("population", "")).split()),
        "limits": _limits(ans, evidence, L),
        "rests_on": _rests_on_rows(d.get("rests_on") or []),
        "judgments": judgments,
        "variants": (W.variants_sentence(d.get("variants"), d.get("decision"))
                     or W.variants_agree_sentence(d.get("variants"))),
        "provenance": _provenance(ans),
        "disclaimer": DISCLAIMER,
        "figures": _figures(ans, labels, shorts, headline, L),
        "references": cites.references(),
        "json": {"probability": ans.probability, "prior_probability": ans.prior_probability,
                 "causes": d["causes"]},
    }


def _patient_section(ans: A.Answer, L: Labels) -> dict[str, Any]:
    """The findings as entered, in words; unknown ones listed."""
    pat, sc = ans.patient, ans.patient.schema
    findings = []
    for name in sc.findings:
        if name == sc.lp.name:
            lps = [f"LP {i}: {L.lp(lp)}" for i, lp in enumerate(pat.csf, start=1)]
            findings.append({"name": L.finding(name), "value": "; ".join(lps) if lps else "unknown (none entered)",
                             "known": bool(lps)})
        else:
            v = pat.values.get(name)
            findings.append({"name": L.finding(name), "value": L.value(name, v) if v else "unknown",
                             "known": v is not None})
    return {"id": pat.id, "description": pat.description, "findings": findings,
            "unknown": [f["name"] for f in findings if not f["known"]]}


def _warnings(ans: A.Answer, d: dict[str, Any], L: Labels) -> list[dict[str, str]]:
    """Warnings first: scope, atypicality, hallmarks of causes left out."""
    warnings = [{"kind": "scope", "heading": "Out of scope.", "text": note} for note in d["scope_notes"]]
    atyp = d["atypical"]
    edge = ", within Monte Carlo error of it" if atyp["within_mc_error"] else ""
    if atyp["flag"] or atyp["within_mc_error"]:
        fit = ("fit none of the modelled causes well" if atyp["flag"]
               else "are at the edge of what the modelled causes explain")
        # the flag compares the unrounded tail with the threshold: written with the digits that tell them apart
        tail, threshold = W.apart(atyp["tail_probability"], atyp["threshold"])
        warnings.append({"kind": "atypical", "heading": "Atypical findings." if atyp["flag"] else "Nearly atypical findings.",
                         "text": (f"These findings {fit} (tail probability {tail}, "
                                  f"threshold {threshold}{edge}): the differential below may be "
                                  f"confidently wrong. Consider causes that are not modelled: "
                                  f"{', '.join(ans.model['not_modelled'])}.")})
    warnings += [{"kind": "hallmark", "heading": "Cause left out.", "text": text} for text in d["warnings"]]
    return warnings


def _headline(ans: A.Answer, d: dict[str, Any], qualifier: str, rows: list[dict[str, Any]], L: Labels) -> dict[str, Any]:
    """P(infiltration) in words, with the causes it was weighed against and its natural frequency."""
    prob = _prob(ans.probability, ans.ci)
    others = [c for c in ans.causes_weighed if c != A.INFILTRATION]
    against = ", ".join(L.cause(c) for c in others)
    other_means = sorted(((L.cause(c["cause"]), c["probability"]["mean"]) for c in d["causes"]
                          if c["cause"] != A.INFILTRATION), key=lambda x: -x[1])
    top = sorted(range(len(rows)), key=lambda i: -abs(ans.contributions[i]["log_lr"]["mean"]))[:3]
    return {**prob, "heading": W.sentence_start(prob["words"]), "qualifier": qualifier, "against": against,
            "sentence": (f"P(leukemic infiltration | findings){qualifier}: {prob['text']} (mean over the "
                         f"posterior draws), weighed against {against}."),
            "natural": W.natural_frequency(prob, other_means), "filled": W.count_of_100(prob["mean"]),
            "movers": [f"{rows[i]['label']} ({rows[i]['factor']})" for i in sorted(top)]}


def _differential(d: dict[str, Any], qualifier: str, L: Labels, ci: float) -> dict[str, Any]:
    """Every cause weighed, one row each: mean, interval and the prior; the leading cause's row marked, and
    those tied with it (the answer's ``tied``) marked as well and named in ``tie``."""
    tied = list(d.get("tied") or ())
    rows = []
    for c in d["causes"]:
        s, s0 = c["probability"], c["prior_probability"]
        rows.append({"cause": c["cause"], "name": L.cause(c["cause"]), "mean": s["mean"],
                     "lower": s["lower"], "upper": s["upper"], "percent": W.percent(s["mean"]),
                     "interval": W.interval(s["lower"], s["upper"], ci),
                     "range": f"{W.percent(s['lower'])} to {W.percent(s['upper'])}",
                     "outside": W.mean_outside(s),  # as palsy posterior says it on the cause's line
                     "prior_mean": s0["mean"], "prior_percent": W.percent(s0["mean"]),
                     "prior_interval": W.interval(s0["lower"], s0["upper"], ci),
                     "leading": c["cause"] == d["leading_cause"] or c["cause"] in tied,
                     "tied": bool(tied) and (c["cause"] == d["leading_cause"] or c["cause"] in tied),
                     "line": (f"{L.cause(c['cause'])}: {W.percent(s['mean'])} "
                              f"({W.interval(s['lower'], s['upper'], ci)}); before any finding "
                              f"{W.percent(s0['mean'])}")})
    # page 1 marks the tied rows "(tied)" (it fits one screen) and prints the mark's legend in the caption
    tie = f"Tied: {W.joined([L.cause(d['leading_cause']), *map(L.cause, tied)])} ({W.TIE_MEANING})." if tied else ""
    return {"rows": rows, "leading": L.cause(d["leading_cause"]), "qualifier": qualifier, "tie": tie,
            "tie_legend": W.TIE_LEGEND if tied else ""}


def _base_rate(ans: A.Answer, evidence: Evidence, cites: _Citations) -> dict[str, Any]:
    base = _prob(ans.prior_probability, ans.ci)
    refs = cites.cite(_rate_refs(evidence)) if ans.pretest is None else []
    return {**base, "refs": refs, "pretest": ans.pretest,
            "sentence": ((f"Before any finding, from the rate model for a new facial palsy in a patient "
                          f"with acute leukemia: P(infiltration) {base['text']} (mean).")
                         if ans.pretest is None else
                         f"P(infiltration) given who the patient is was set by hand to {W.percent(ans.pretest)}.")}


def _findings_rows(ans: A.Answer, evidence: Evidence, cites: _Citations,
                   L: Labels) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Each finding entered: its factor on the odds (clinical order and Shapley) and the evidence behind it."""
    ci = ans.ci
    plist = list(ans.players)
    labels = [L.player(p) for p in plist]
    shorts = [L.player_short(p) for p in plist]
    rows = []
    shapley = ans.shapley_values
    used = judgments_used(evidence, ans.model["variant"])
    for p, label, c, s in zip(plist, labels, ans.contributions, shapley, strict=True):
        rows.append({"label": label, "factor": W.factor(c["log_lr"]["mean"]),
                     "factor_text": W.factor_with_interval(c["log_lr"], ci),
                     "interval": f"{W.factor(c['log_lr']['lower'])} to {W.factor(c['log_lr']['upper'])}",
                     "shapley": W.factor(s["log_lr"]["mean"]) if np.isfinite(s["log_lr"]["mean"]) else "not computed",
                     "log_lr": c["log_lr"],
                     "direction": W.direction(c["log_lr"]["mean"]),
                     "evidence": _evidence_for(p, evidence, cites, L, used, ans.patient), "same_as": None})
    for i, r in enumerate(rows):  # repeated LPs share their evidence: say so once
        first = next(q for q in rows[:i + 1] if q["evidence"] == r["evidence"])
        if first is not r:
            r["same_as"] = first["label"].split(":")[0]
    return rows, labels, shorts


def _steps_table(ans: A.Answer, labels: list[str], shorts: list[str], L: Labels) -> list[dict[str, Any]]:
    wf = _waterfall(ans, labels, shorts)
    dsteps = _differential_steps(ans, labels, shorts, L)
    return [{"label": s["label"], "factor_text": s.get("factor_text", ""), "p_text": s["p_text"],
             "causes": r["percents"]}
            for s, r in zip(wf["steps"], dsteps["rows"] + [dsteps["rows"][-1]], strict=True)]


def _next_tests(ans: A.Answer, L: Labels) -> list[dict[str, Any]]:
    """What each pending test could do: each result's chance, P(infiltration) after it, the leading cause (or
    the causes tied)."""
    ci = ans.ci
    tests = []
    for t in ans.next_tests:
        name = L.test(t["test"])
        outs = []
        for o in t["outcomes"]:
            pr = _prob({**o["probability"], "median": None}, ci)
            after = _prob(o["probability_after"], ci)
            res = L.result(t["test"], o["result"])
            lead = W.leading([L.cause(c) for c in [o["leading_cause_after"], *o["tied_after"]]])
            outs.append({"result": res, "probability": pr, "after": after, "leading": lead,
                         "causes_after": {L.cause(c): W.percent(v) for c, v in o["causes_after"].items()},
                         "sentence": (f"If {res} (chance of this result {pr['text']}): P(infiltration) "
                                      f"{after['text']}; {'causes' if o['tied_after'] else 'leading cause'} {lead}.")})
        tests.append({"test": t["test"], "name": W.sentence_start(name), "outcomes": outs})
    return tests


def _limits(ans: A.Answer, evidence: Evidence, L: Labels) -> list[str]:
    weighed = list(ans.causes_weighed)
    variant = ans.model["variant"]
    if variant == "independent":
        assumption = ("Model variant 'independent': the findings, and repeated lumbar punctures, are taken as "
                      "conditionally independent given the cause. Findings that go together within infiltration "
                      "(two negative LPs, for instance) may therefore move the odds more than they should.")
    else:
        assumption = (f"Model variant '{variant}': infiltration is a mixture of forms ({', '.join(evidence.forms)}); "
                      "findings are taken as independent given the form (or the cause), so they are dependent "
                      "given infiltration.")
    limits = [
        f"The causes weighed: {', '.join(L.cause(c) for c in weighed)}. They sum to one, so P(infiltration) "
        f"is relative to these causes only. Not modelled: {', '.join(ans.model['not_modelled'])}; each needs "
        "its own assessment.",
        "Case reports are selected: publication favours striking cases. The case weight w_case "
        f"({evidence.w_case:g}) and the selection term widen the uncertainty and correct the striking features, "
        "but do not remove that bias.",
        assumption,
        "The rates of each cause come from a rate model (priors/rates.yaml): published incidences where they "
        "exist, labelled expert judgment where they do not.",
        "A positive LP read by cytology or flow cytometry is read with its chance of being an artefact or, from a "
        "traumatic tap while blasts circulate, contamination by the blood (the CSF model, docs/design.md §4).",
    ]
    if ans.pretest is not None:
        limits.append(f"P(infiltration) given who the patient is was set by hand (--pretest {ans.pretest:g}): the "
                      "answer is a scenario, not the model's estimate; the other causes keep their relative shares.")
    return limits


def _left_out(ans: A.Answer) -> str | None:
    if not ans.left_out:
        return None
    lo = ans.left_out
    return (f"This patient is a published case of the evidence library ({lo['case']}); it was left out of "
            f"the evidence for this answer (Pareto-smoothed importance sampling, Pareto k "
            f"{lo['pareto_k']:.2f}{'' if lo['reliable'] else ': unreliable, treat the numbers with caution'}).")


def _provenance(ans: A.Answer) -> list[dict[str, str]]:
    m = ans.model
    weighed = list(ans.causes_weighed)
    rows = [
        ("Evidence hash", str(m["evidence_hash"])),
        ("Model variant", str(m["variant"])),
        ("palsy version", str(m["version"])),
        ("Schema version", str(m.get("schema_version"))),
        ("Sampler seed", str(m.get("seed"))),
        ("Posterior draws", str(m["draws"])),
        ("MCMC diagnostics", "passed" if m.get("diagnostics_ok") else "NOT passed: read with caution"),
        ("Credible intervals", f"{W.ci_percent(ans.ci)}% equal-tailed"),
        ("Causes weighed", ", ".join(weighed)),
        ("Prior of the causes", (_registry_words(m.get("registry") or {}) if ans.pretest is None
                                 else f"P(infiltration) set by hand to {W.percent(ans.pretest)}")),
    ]
    return [{"name": k, "value": v} for k, v in rows]


def _registry_words(reg: dict[str, Any]) -> str:
    """Where the prior of the causes comes from: the rate model, and the hospital's registry when the fit used one
    (a registry review, s16: the report had never said so)."""
    if not reg.get("used"):
        return "from the rate model of priors/rates.yaml"
    base = reg.get("base_rate") or {}
    moved = (f"; base rate of infiltration {W.percent(base['prior']['mean'])} before it, "
             f"{W.percent(base['posterior']['mean'])} after it (means)") if base else ""
    return (f"from the rate model of priors/rates.yaml, fitted with the hospital's registry of adjudicated palsies "
            f"({(reg.get('rows') or {}).get('fitted', 0)} rows fitted{moved})")


def _figures(ans: A.Answer, labels: list[str], shorts: list[str], headline: dict[str, Any], L: Labels) -> dict[str, Any]:
    """The figures' data and their words (alt text and captions)."""
    ci_pct = W.ci_percent(ans.ci)
    wf = _waterfall(ans, labels, shorts)
    dsteps = _differential_steps(ans, labels, shorts, L)
    fan = _fan(ans)
    n_filled = headline["filled"]
    return {
        "icons": {"filled": n_filled, "total": 100,
                  "alt": (f"Icon array of 100 patients: {n_filled} filled icons for leukemic infiltration "
                          f"and {100 - n_filled} open icons for the other causes weighed ({headline['against']}).")},
        "waterfall": {**wf, "ci": ans.ci,
                      "alt": ("Waterfall of P(infiltration): " + "; ".join(
                          f"{s['label']}" + (f" {s['factor']}" if s["kind"] == "finding" else "")
                          + f", then {W.percent(s['p_mean'])}" for s in wf["steps"]) + "."),
                      "caption": (f"How P(infiltration), against the other causes weighed, moves from before any "
                                  f"finding through each finding in clinical order. Each bar ends at the mean "
                                  f"probability after that finding; the whisker is its {ci_pct}% credible interval. "
                                  f"The axis is log odds, labelled in probabilities. Numbers on the bars are the "
                                  f"geometric-mean factor on the odds, exp(mean log likelihood ratio).")},
        "differential": {**dsteps,
                         "alt": ("The differential after each step (mean probabilities): " + "; ".join(
                             r["label"] + ": " + ", ".join(f"{n} {p}" for n, p in zip(dsteps["names"], r["percents"],
                                                                                    strict=True))
                             for r in dsteps["rows"]) + "."),
                         "caption": ("The differential after each step in clinical order: each bar splits the whole "
                                     "into the mean probability of every cause weighed. Where the probability "
                                     "taken from infiltration goes is read down the bars.")},
        "fagan": {**fan,
                  "alt": (f"Fagan nomogram: {fan['lines']} lines, one per posterior draw, from P(infiltration) "
                          f"before the findings on the left through the combined likelihood ratio of the findings "
                          f"to the probability after them on the right."),
                  "caption": (f"Fagan nomogram of infiltration against the other causes weighed: each thin line is "
                              f"one of {fan['lines']} posterior draws (before any finding on the left, likelihood "
                              f"ratio of all findings together in the middle, after them on the right); their spread "
                              f"is the uncertainty. The bold line joins the mean probability before and after the "
                              f"findings (section 1).")},
    }


def _page1(ans: A.Answer, d: dict[str, Any], rows: list[dict[str, Any]], cites: _Citations, ci: float,
           qualifier: str, L: Labels, *, reasons: bool = True) -> dict[str, Any]:
    """Page 1 (docs/design.md §6): the headline, the three findings that moved it most, what to do now (at
    most six one-line actions, what changes management today first, and how many more follow), the
    decision, what the answer rests on and two lines of limits. Every number is a mean (factors are
    geometric means); nothing here is computed from the draws, only worded."""
    weighed = list(ans.causes_weighed)
    others = [L.cause(c) for c in weighed if c != A.INFILTRATION]
    p = d["probability"]
    headline = {
        "label": f"P(leukemic infiltration){qualifier}",
        "percent": W.percent(p["mean"]),
        "interval": W.interval(p["lower"], p["upper"], ci) + (f"; {note}" if (note := W.mean_outside(p)) else ""),
        "against": ", ".join(others),
        "sentence": (f"P(leukemic infiltration){qualifier}: {W.percent(p['mean'])} (mean; "
                     f"{W.interval(p['lower'], p['upper'], ci)}), weighed against {', '.join(others)}."),
    }
    order = sorted(range(len(rows)), key=lambda i: -abs(ans.contributions[i]["log_lr"]["mean"]))[:3]
    top = [{"label": rows[i]["label"], "factor": rows[i]["factor"], "direction": rows[i]["direction"],
            "line": (f"{rows[i]['label']}: {rows[i]['factor']} on the odds of infiltration "
                     f"({rows[i]['direction']} it)")} for i in order]
    actions = [{"id": a["id"], "text": a["text"], "refs": cites.cite(_refs(a.get("refs")))}
               for a in d["actions"][:6]]
    more = max(0, len(d["actions"]) - len(actions))
    not_modelled = ", ".join(ans.model["not_modelled"])
    limits = [f"Weighed only against the causes listed; not modelled: {not_modelled}.",
              SUPPORTS + " Rates and factors come from published evidence of uneven quality and labelled "
              "expert judgment (limits in full below)."]
    return {"headline": headline, "top": top, "actions": actions, "n_actions": len(d["actions"]),
            "more_actions": more, "decision": _decision(d["decision"], L, central=ans.patient.central), "limits": limits,
            # section 8 gives the judgments' reasoning only where one carries enough of the answer: said only then
            "rests_on": (W.rests_on_sentence(d.get("rests_on") or [], "section 8 splits each source into the two"
                                             + (", and gives the reasoning of the largest judgments" if reasons else ""))
                         if ans.pretest is None
                         else f"What this answer rests on: {W.RESTS_ON_PRETEST}"),
            "variants": W.variants_sentence(d.get("variants"), d.get("decision"))}


def _record(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the record's mapping said beside the findings, for page 1 (None when there is nothing to say)."""
    if not record:
        return None
    notes = [str(n) for n in record.get("notes") or []]
    not_found = record.get("not_found") or None
    return {"not_found": not_found, "notes": notes} if notes or not_found else None


def _decision(dec: dict[str, Any] | None, L: Labels, *, central: bool = False) -> dict[str, Any] | None:
    """The decision in words: the work-up first while it is pending, the thresholds, whether the patient
    sits on a threshold and what decides it, what each test could change. ``headline`` is what the decision
    says (:func:`palsy.reports.wording.decision_what`: the escalation, the work-up, the zone), the one sentence
    page 1 and section 5 both state; for a palsy that may be central (``central``) it says what the answer does
    instead of the peripheral tests, and the tests' lines are said to apply only if the palsy proves peripheral;
    its count of further negative LPs is not in section 5's decision statement (``negative_lps`` empty) but in
    ``tests_if_peripheral``, as what holds only if the palsy proves peripheral (a clinician's review found the count
    beside a decision saying the LP work-up is not pressed). Every comparison of the mean with a threshold that
    chooses words is made on the numbers as written (:func:`palsy.reports.wording.shown_at`)."""
    if not dec:
        return None
    th = dec["thresholds"]
    tests = []
    for t in dec["tests"]:
        name = W.sentence_start(L.test(t["test"]))
        tests.append({"test": t["test"], "name": name, "can_change": bool(t["can_change_action"]),
                      "line": f"{name}{' (only if the palsy proves peripheral)' if central else ''}: "
                              f"{W.change_by_test(t, dec)}.",
                      "probability_of_change": W.percent(t["probability_of_change"]),
                      "voi": f"{t['value_of_information']:+.3f}",
                      "voi_other": f"{t.get('value_for_other_causes', 0.0):+.3f}",
                      "testing_threshold": W.percent(t["testing_threshold"]),
                      "test_treatment_threshold": W.percent(t["test_treatment_threshold"]),
                      "sensitivity": W.percent(t["sensitivity"]),
                      "false_positive_rate": W.percent(t["false_positive_rate"])})
    source = Path(str(th["source"])).name if th.get("source") else "--thresholds"

    def method(m: str) -> str:
        return " and ".join(L.schema.lp.method_labels.get(x, x).split(" (")[0] for x in m.split("_and_"))

    # the count of further negative LPs is the work-up of a peripheral palsy: for a palsy that may be central it is
    # not stated with the decision (page 1 does not point it to the LP) but with what holds if it proves peripheral
    negative_lps = W.negative_lps_sentence(dec, method, central=central)
    return {
        "action": dec["action"], "action_text": W.sentence_start(dec["action_text"]),
        "headline": W.sentence_start(W.decision_what(dec, central=central)),
        "sentence": W.decision_sentence(dec, central=central),
        "central": central,
        "tests_if_peripheral": (" ".join(x for x in (
            "The tests below and further LPs are those of a peripheral palsy: they apply only if the palsy proves "
            "peripheral; while it may be central (the forehead is spared) its work-up is the central one of what to "
            "do now.", negative_lps) if x) if central else ""),
        "probability": W.percent(dec["probability"]),
        "low": W.percent(th["low"]), "high": W.percent(th["high"]), "treatment": W.percent(th["treatment"]),
        "source": source,
        "thresholds_line": f"{W.thresholds_text(dec)}, from {source}.",
        "at_threshold": W.threshold_sentence(dec, L.test, central=central),
        "tests": tests,
        "negative_lps": "" if central else negative_lps,
    }


def _all_actions(d: dict[str, Any], cites: _Citations) -> list[dict[str, Any]]:
    """Every action that applies, in priority order, with its detail and sources (later pages)."""
    return [{"id": a["id"], "text": a["text"], "detail": a.get("detail", ""),
             "refs": cites.cite(_refs(a.get("refs"))), "on_page1": i < 6}
            for i, a in enumerate(d["actions"])]
