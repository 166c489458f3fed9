"""What a clinician and a teacher read (s18): one spelling on every page, and every citation useful.

1. No page palsy renders for a reader mixes British and US spellings of the medical words it uses ("leukaemia team"
   from actions.yaml beside "leukemic infiltration" from the labels; haematologist/hematologist, oedema/edema,
   paediatric/pediatric, ...): the clinician report, the CDS Hooks card, every teaching page (the report of the
   lesson's patient among them) and the statistician's report, each rendered as palsy renders it. Citations are quoted
   as published and left out of the count; identifiers (``leukaemia_team_today``) are not words. Each page kind is in
   the spelling :data:`palsy.reports.wording.PAGE_SPELLING` gives it.
2. No citation of ``priors/references.yaml`` reads as a bare year or nothing (``facialdiplegia_tall2001`` had read
   "2001."), and each incomplete one says "citation incomplete" wherever it is cited: the report's reference list, the
   short citations of the lesson and the interactive page, the teaching cases' sources, the statistician's table.

The words are found here by this file's own patterns, not by the code that respells them.
"""

from __future__ import annotations

import argparse
import json
import re
from html import unescape
from html.parser import HTMLParser

import pytest

from tests.conftest import REPO

# --- the spellings, found independently of palsy.reports.wording ---------------------------------------------------

#: family -> (British pattern, US pattern), each matched against one word (letters only), case aside.
FAMILIES = {
    "leukaemia": (r"leukaem", r"leukem"),
    "-aemia": (r"^(?:an|ur|isch|septic|bacter|vir)aemi|(?:glyc|calc|kal|natr)aemi",
               r"^(?:an|ur|isch|septic|bacter|vir)emi|(?:glyc|calc|kal|natr)emi"),
    "haem-": (r"^haem(?:at|o|angi)", r"^hem(?:at|o|angi)"),
    "oedema": (r"^(?:papill)?oedem", r"^(?:papill)?edem"),
    "paediatric": (r"^(?:ortho)?paed(?:iatr|ic$|ics$)", r"^(?:ortho)?ped(?:iatr|ic$|ics$)"),
    "oesophagus": (r"^oesophag", r"^esophag"),
    "anaesthesia": (r"^(?:an|par|dys|hyper|hypo)aesth", r"^(?:an|par|dys|hyper|hypo)esth"),
    "otorrhoea": (r"[a-z]rrhoea", r"[a-z]rrhea"),
    "aetiology": (r"^aetiol", r"^etiol"),
    "tumour": (r"^tumours?$", r"^tumors?$"),
    "litre": (r"litres?$", r"liters?$"),
}
#: Names spelled one way in both spellings.
PROPER = {"haemophilus", "haematologica", "haematol", "hematol", "paediatrica", "pediatrica"}


def spellings(text: str) -> dict[str, set[str]]:
    """The British and the US words of :data:`FAMILIES` in ``text``: words of letters only (a word joined to an
    underscore or a digit is an identifier, ``fnp_acuteleukaemia_6all``), names of :data:`PROPER` aside."""
    found: dict[str, set[str]] = {"British": set(), "US": set()}
    for m in re.finditer(r"[A-Za-z0-9_]+", text):
        word = m.group(0)
        if not word.isalpha() or word.lower() in PROPER:
            continue
        for british, us in FAMILIES.values():
            if re.search(british, word, re.I):
                found["British"].add(word.lower())
            elif re.search(us, word, re.I):
                found["US"].add(word.lower())
    return found


def assert_one_spelling(text: str, spelling: str, where: str) -> None:
    """``text`` uses the spelling ``spelling`` and not the other (and uses it: a page without a word of the families
    would prove nothing)."""
    found = spellings(text)
    other = "US" if spelling == "British" else "British"
    assert not (found["British"] and found["US"]), (where, "mixes", found)
    assert found[spelling] and not found[other], (where, spelling, found)


def test_the_spelling_finder_sees_a_mix_and_not_an_identifier():
    """The finder this file relies on: both spellings, an identifier and a journal's name."""
    mixed = spellings("Discuss with the leukaemia team today: leukemic infiltration; a haematologist; papilledema.")
    assert mixed["British"] == {"leukaemia", "haematologist"} and mixed["US"] == {"leukemic", "papilledema"}
    assert spellings("leukaemia_team_today fnp_acuteleukaemia_6all Haematologica") == {"British": set(), "US": set()}


class _Text(HTMLParser):
    """A page's visible text without its citations: scripts, styles, the references section, the teaching cases'
    sources (``p.cite``) and the lesson's short citations (a muted span in brackets) left out."""

    SKIP_TAGS = ("script", "style")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []

    def _skipping(self) -> bool:
        return any(skip for _tag, skip in self.stack)

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "meta", "link", "input", "hr", "source", "wbr"):
            return
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        skip = (tag in self.SKIP_TAGS or a.get("id") == "references" or (tag == "p" and "cite" in classes))
        self.stack.append((tag, skip))
        if tag == "span" and classes == ["muted"]:
            self.stack[-1] = (tag, None)  # decided by its text: a citation in brackets

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        if self._skipping():
            return
        if self.stack and self.stack[-1][1] is None and data.strip().startswith("("):
            return
        self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        p = cls()
        p.feed(html)
        return " ".join(" ".join(p.parts).split())


def _prose(x) -> list[str]:
    """The texts with a space in them under ``x`` (a page's JSON data): the words it shows."""
    if isinstance(x, dict):
        return [t for v in x.values() for t in _prose(v)]
    if isinstance(x, list):
        return [t for v in x for t in _prose(v)]
    return [x] if isinstance(x, str) and " " in x else []


# --- the pages -----------------------------------------------------------------------------------------------------

#: Patients whose reports and cards are read: the examples' sources and every vignette, and a palsy that led to the
#: diagnosis (its scope note is the model's words).
ATDX = {"id": "atdx", "lineage": "AML", "remission": "at_diagnosis", "laterality": "unilateral"}


@pytest.fixture(scope="module")
def answers(posterior_independent, posterior_subtype):
    """Each patient answered as ``palsy report`` answers it (the model's default variant, decision and actions)."""
    import yaml

    from palsy.model import evidence as E
    from palsy.model import findings as F
    from palsy.model import variants
    from palsy.scripts.commands import common
    from palsy.scripts.commands.report import answer_for, answer_options

    args = argparse.Namespace(priors=None, variant=variants.DEFAULT_VARIANT, draws=None, tune=None, chains=None,
                              seed=None, causes="all", ci=0.9, pretest=None, thresholds=None)
    draws = common.load_draws(args)
    options = answer_options(args, draws)
    patients = {f.stem: common.patient_from(argparse.Namespace(), str(f)) for f in sorted((REPO / "patients").glob("*.yaml"))}
    for f in sorted((REPO / "tests" / "fixtures" / "vignettes").glob("*.yaml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        patients[f.stem] = F.parse_patient(doc["patient"], str(f), schema=draws.schema)
    patients["atdx"] = F.parse_patient(ATDX, "atdx", schema=draws.schema)
    return {name: answer_for(args, p, draws, options) for name, p in patients.items()}, E.load(common.priors_dir(args))


@pytest.fixture(scope="module")
def reports_html(answers):
    from palsy.reports import context, render

    by_name, ev = answers
    return {name: render.html(context.build(ans, ev)) for name, ans in by_name.items()}


def test_each_clinician_report_is_in_one_spelling(reports_html, answers):
    """Every report (page 1, the sections, the figures' alt texts and captions, the actions and their details, the
    judgments' reasonings), its reference list aside, in the report's spelling."""
    from palsy.reports import wording as W

    by_name, _ = answers
    for name, html in reports_html.items():
        # the patient's description is the clinician's own words, shown as entered (test_report_s18b)
        own = by_name[name].patient.description or ""
        assert_one_spelling(_Text.of(html).replace(own, " ") if own else _Text.of(html), W.PAGE_SPELLING["report"],
                            name)
    # the words that had mixed (s18): the actions' "leukaemia team" beside the labels' "leukemic infiltration"
    text = " ".join(_Text.of(h) for h in reports_html.values())
    assert "leukemia team today" in text and "P(leukemic infiltration)" in text


def test_a_report_quotes_its_citations_as_published(reports_html, answers):
    """The reference list is left as published: a British title keeps its spelling on a US page ("Facial Nerve Palsy
    in Acute Leukaemia", the Scandinavian Journal of Haematology) and each item is its citation as palsy writes it."""
    from palsy.reports.context import citation_text

    _, ev = answers
    items = [unescape(i) for html in reports_html.values()
             for i in re.findall(r'<li id="ref-\d+">(.*?)</li>', html, re.S)]
    texts = {citation_text(r) for r in ev.references.values()}
    assert items and all(any(i.startswith(t) for t in texts) for i in items)
    assert any("Leukaemia" in i for i in items) and any("leukemia" in i for i in items)


def test_each_card_is_in_one_spelling(answers):
    """The CDS Hooks card of every answer (summary, detail, the reasons offered for dismissing it, its link): in the
    card's spelling, the labels the answer carries with the actions and decisions."""
    from palsy.reports import cards
    from palsy.reports import wording as W

    by_name, _ = answers
    note = "every leukemia Condition dates the diagnosis after the palsy's onset"  # the record's words, respelled
    for name, ans in by_name.items():
        card = cards.card(ans.to_dict(), uuid="u", source_label="palsy", report_url="https://example.org/r",
                          notes=[note])
        text = " ".join([card["summary"], card["detail"], *(r["display"] for r in card["overrideReasons"]),
                         *(link["label"] for link in card["links"])])
        assert_one_spelling(text, W.PAGE_SPELLING["card"], name)


@pytest.mark.xdist_group("teach")
def test_each_teaching_page_is_in_one_spelling(teach_out):
    """Every page of ``palsy teach``: the lesson, the handout, the cases, the guide, the report of the lesson's patient
    (the report's spelling) and the interactive page with the words its data and script show (its short citations
    aside)."""
    from palsy.reports import teaching as R
    from palsy.reports import wording as W

    pages = [R.LESSON_NAME, R.HANDOUT_NAME, R.CASES_NAME, R.GUIDE_NAME, R.TYPICAL_REPORT_NAME, R.PAGE_NAME]
    for name in pages:
        html = (teach_out / name).read_text(encoding="utf-8")
        text = _Text.of(html)
        if name == R.PAGE_NAME:
            data = json.loads(re.search(r'<script type="application/json" id="palsy-data">(.*?)</script>', html,
                                        re.S).group(1))
            data["rules"].pop("references")  # short citations, as published
            models = [json.loads(m)["settings"] for m in re.findall(
                r'<script type="application/json" id="palsy-model-[^"]+">(.*?)</script>', html, re.S)]
            js = (REPO / "reports" / "static" / "teach.js").read_text(encoding="utf-8")
            strings = re.findall(r'"((?:[^"\\\n]|\\.)*)"', re.sub(r"/\*.*?\*/|//[^\n]*", " ", js, flags=re.S))
            text += " " + " ".join(_prose([data, *models]) + strings)
        kind = "report" if name == R.TYPICAL_REPORT_NAME else "teaching"
        assert_one_spelling(text, W.PAGE_SPELLING[kind], name)


@pytest.mark.slow  # the statistician's numbers for one variant and one patient, without refits (as test_check's)
def test_the_statisticians_report_is_in_one_spelling_and_lists_no_empty_field(tmp_path, evidence,
                                                                               posterior_independent, posterior_plain):
    """``palsy check``'s page in its spelling, its references aside; its reference table prints no missing field as
    "None" and flags every incomplete citation."""
    from palsy.model import criticism
    from palsy.model.criticism import heavy
    from palsy.model.criticism.references import incomplete_fields
    from palsy.reports import check as report
    from palsy.reports import wording as W

    pats = criticism.load_patients(REPO / "patients")[1:2]
    with heavy.runner("serial") as run_:
        res = criticism.run_all(evidence, {"independent": posterior_independent.draws}, pats, refit=False,
                                plain=posterior_plain.draws, quick=(1, 1), loo_refits=0, prior_n=500,
                                validation_path=REPO / "priors" / "validation.yaml", runner=run_,
                                source_patients=[p.id for p in pats])
    html = report.render(res, sbc_path=tmp_path / "no-sbc.json")
    assert_one_spelling(_Text.of(html), W.PAGE_SPELLING["check"], "check.html")
    section = html[html.index('<section id="references">'):]
    section = section[:section.index("</section>")]
    rows = re.findall(r"<tr class=\"([^\"]*)\"><td>([^<]*)</td>\s*<td>(.*?)</td>.*?<td>([^<]*)</td></tr>", section, re.S)
    assert len(rows) == len(res["references"]["rows"])
    for cls, key, cite, flag in rows:
        assert "None" not in cite.split(), (key, cite)
        assert ("citation incomplete" in flag) == bool(incomplete_fields(evidence.references[key])) == (cls == "bad"), key


# --- the respelling itself -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("british,us", [
    ("Discuss with the leukaemia team today", "Discuss with the leukemia team today"),
    ("haematologists; Haematology; haemorrhage; haematopoietic", "hematologists; Hematology; hemorrhage; hematopoietic"),
    ("papilloedema and Oedema", "papilledema and Edema"),
    ("anaemia, ischaemic, hypoglycaemia, neuroleukaemiosis, anti-leukaemic", "anemia, ischemic, hypoglycemia, "
     "neuroleukemiosis, anti-leukemic"),
    ("paediatric orthopaedic oesophagus anaesthesia paraesthesias aetiology tumours otorrhoea", "pediatric orthopedic "
     "esophagus anesthesia paresthesias etiology tumors otorrhea"),
    ("cells per microlitre", "cells per microliter"),
], ids=["team", "haem", "oedema", "aemia", "others", "litre"])
def test_house_style_respells_both_ways(british, us):
    from palsy.reports import wording as W

    assert W.house_style(british, "US") == us
    assert W.house_style(us, "British") == british


@pytest.mark.parametrize("text", [
    "leukaemia_team_today fnp_acuteleukaemia_6all #leukaemia",
    "see priors/leukaemia.yaml and https://example.org/acute-leukaemia-cns",
    "British Journal of Haematology, Haematologica, Acta Paediatrica, Haemophilus influenzae",
    "the hemisphere, a pedicle, systemic, the literature, aesthetic",
], ids=["identifiers", "paths", "names", "lookalikes"])
def test_house_style_leaves_what_is_not_a_word_to_respell(text):
    from palsy.reports import wording as W

    assert W.house_style(text, "US") == text and W.house_style(text, "British") == text


def test_house_style_refuses_an_unknown_spelling():
    from palsy.reports import wording as W

    with pytest.raises(ValueError, match="not one of British, US"):
        W.house_style("leukaemia", "Canadian")


def test_styled_respells_prose_and_leaves_citations_identifiers_and_markup_as_they_are():
    from markupsafe import Markup

    from palsy.reports import wording as W

    ctx = {"text": "the leukaemia team", "id": "a leukaemia id", "references": [{"text": "Acute Leukaemia. 1979."}],
           "list": ("haematology ward", "leukaemia_team_today"), "html": Markup("<b>leukaemia</b> team"), "n": 3}
    out = W.styled(ctx, "US")
    assert out == {"text": "the leukemia team", "id": "a leukaemia id", "references": [{"text": "Acute Leukaemia. 1979."}],
                   "list": ("hematology ward", "leukaemia_team_today"), "html": "<b>leukemia</b> team", "n": 3}
    assert isinstance(out["html"], Markup)


# --- 2: citations --------------------------------------------------------------------------------------------------

def _substance(text: str) -> str:
    """What a citation says beyond its year, volume, pages, identifiers and flag: the words that identify it."""
    from palsy.reports.context import UNIDENTIFIED

    text = re.sub(r"\(?citation incomplete[^)]*\)?\.?", " ", text, flags=re.I)
    text = re.sub(r"doi:\S+|PMID \d+", " ", text).replace(UNIDENTIFIED, " ")
    return " ".join(re.findall(r"[^\W\d_]{2,}", text))


def _forms(key: str, ref: dict, evidence) -> dict[str, str]:
    """Every form a reader sees a citation in: the report's list item (citation and flag), the short citation (the
    lesson's escalations, the interactive page), the listed citation (the teaching cases' sources)."""
    from palsy.reports import context as C

    cites = C._Citations(evidence)
    cites.cite([key])
    row = cites.references()[0]
    return {"report": f"{row['text']} {row['incomplete']}", "short": C.short_citation(ref),
            "listed": C.listed_citation(ref)}


def test_no_citation_is_a_bare_year_and_each_incomplete_one_says_so(evidence):
    """Over every reference of references.yaml, in every form a reader sees it: authors, a title or a journal (never a
    bare year or nothing: "2001." had been all of facialdiplegia_tall2001), and "citation incomplete" exactly when
    the project's rule finds it incomplete."""
    from palsy.model.criticism.references import incomplete_fields

    refs = evidence.references
    assert len(refs) > 100
    incomplete = 0
    for key, ref in refs.items():
        bad = bool(incomplete_fields(ref))
        incomplete += bad
        for form, text in _forms(key, ref, evidence).items():
            assert len(_substance(text).split()) >= 2, (key, form, text)
            assert ("citation incomplete" in text.lower()) == bad, (key, form, text)
    assert incomplete >= 30


def test_a_described_title_reads_as_a_description_not_as_the_sources_title(evidence):
    """A title not read but described from the abstract read is in square brackets, as a descriptive title is cited,
    and what was only a probable title, journal or author is never printed (docs/design.md §3: never guessed)."""
    from palsy.reports import context as C

    ref = evidence.references["facialdiplegia_tall2001"]
    for text in (C.citation_text(ref), C.short_citation(ref), C.listed_citation(ref)):
        assert text.startswith("[Facial diplegia"), text
        assert "2001" in text and "Mount Sinai" not in text and "presenting manifestation" not in text, text
    assert C.listed_citation(ref).endswith("(citation incomplete: authors, title, journal, doi/pmid)")
    short = C.short_citation(evidence.references["pracneurol2024_recurrentfp"])
    assert short.startswith("[Recurrent right facial palsy") and "…]" in short, short  # cut inside its brackets


def test_a_citation_with_only_a_year_says_what_is_missing():
    """The rule for any future entry: neither authors, title nor journal gives a citation that says so, with the
    flag, never the year alone."""
    from palsy.reports import context as C

    ref = {"authors": "not shown in the source read", "title": "[title not shown]", "journal": None, "year": 2020,
           "volume": "3", "pages": "12-", "doi": None, "pmid": None}
    for text in (C.citation_text(ref), C.short_citation(ref)):
        assert text.startswith(C.UNIDENTIFIED) and "2020" in text and ";3" not in text, text
    assert C.listed_citation(ref) == f"{C.UNIDENTIFIED}. 2020. (citation incomplete: authors, title, journal, doi/pmid)"


def test_the_report_lists_incomplete_citations_with_their_flag(reports_html, evidence):
    """On the reports themselves: every item of a reference list has a name, title or journal, and says "citation
    incomplete" exactly when its reference is incomplete."""
    from palsy.model.criticism.references import incomplete_fields
    from palsy.reports.context import citation_text

    by_text = sorted(((citation_text(r), bool(incomplete_fields(r))) for r in evidence.references.values()),
                     key=lambda x: -len(x[0]))
    seen = {True: 0, False: 0}
    for html in reports_html.values():
        for item in re.findall(r'<li id="ref-\d+">(.*?)</li>', html, re.S):
            text = unescape(re.sub(r"<[^>]+>", " ", item))
            bad = next(b for t, b in by_text if text.startswith(t))
            assert len(_substance(text.split(" doi:")[0]).split()) >= 2, text
            assert ("citation incomplete" in text) == bad, text
            seen[bad] += 1
    assert seen[True] and seen[False]


@pytest.mark.xdist_group("teach")
def test_the_teaching_pages_flag_their_incomplete_short_citations(teach_out, evidence):
    """The lesson's escalations and the interactive page cite by short citation: each incomplete one says so."""
    from palsy.model.criticism.references import incomplete_fields
    from palsy.reports import teaching as R
    from palsy.reports.context import short_citation

    html = (teach_out / R.PAGE_NAME).read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="palsy-data">(.*?)</script>', html, re.S).group(1))
    shown = data["rules"]["references"]
    assert shown
    for key, text in shown.items():
        assert text == short_citation(evidence.references[key])
        assert ("Citation incomplete" in text) == bool(incomplete_fields(evidence.references[key])), key


def test_an_interactions_references_are_cited_only_for_a_patient_who_can_be_in_its_strata(tmp_path, draws_subtype):
    """The findings table's rate-model references for a context finding list an interaction's references only
    when the patient can have every level it names (an s18 review: an AML patient given a recent dose was shown
    the no-dose interaction's references under the lineage); the rests-on judgments name its strata in words."""
    import shutil

    from palsy.model import answer as A
    from palsy.model import evidence as E
    from palsy.model import findings as F
    from palsy.reports import context

    pdir = tmp_path / "priors"
    shutil.copytree(REPO / "priors", pdir)
    rates = (pdir / "rates.yaml").read_text(encoding="utf-8")
    head, tail = rates.split('"lineage=AML & recent_vincristine=no":', 1)
    assert "ref: null" in tail.split("reasoning:", 1)[0]
    (pdir / "rates.yaml").write_text(head + '"lineage=AML & recent_vincristine=no":'
                                     + tail.replace("ref: null", "ref: [sejvar2011]", 1), encoding="utf-8")
    ev = E.load(pdir)

    def lineage_refs(vincristine: str | None) -> str:
        patient = F.parse_patient({"id": "x", "lineage": "AML", "laterality": "bilateral",
                                   **({"recent_vincristine": vincristine} if vincristine else {})})
        ans = A.answer(patient, draws_subtype, shapley=False)
        (row,) = [r for r in context.build(ans, ev)["findings_table"] if r["label"].startswith("Leuk")]
        (group,) = [g for g in row["evidence"] if g["label"].startswith("rate model")]
        return list(group["refs"])  # the references' numbers on the page

    # the interaction's one reference (Sejvar 2011, put there for the test) for a patient without a dose, and one
    # whose dose is unknown (it can be theirs), not for one given a dose
    assert len(lineage_refs("no")) == len(lineage_refs(None)) == len(lineage_refs("yes")) + 1
