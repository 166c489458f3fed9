"""A teacher's review of the teaching pages (s16, /work/lit/notes/s16/teach.md), the defects left after s16: the
guide's classroom link (5), probabilities without their interval (8), one account of the core's length (9), an LP
whose method its source did not state (11), wording (12), the clinician report's reference list (13), where a case
starts (14) and the handout chart's print size (15). The page's behaviour is tests/test_teach_browser.py's.

One ``palsy teach`` run for the module (its files are read); the numbers come from the computation
(``palsy.model.answer``, ``palsy.model.teach``), never written here."""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import urlsplit

import pytest

from palsy.model import answer as A
from palsy.model import safe_yaml
from palsy.model import teach as T
from palsy.reports import teaching as R
from palsy.reports import wording as W
from palsy.reports.labels import Labels
from tests.conftest import REPO

pytestmark = pytest.mark.xdist_group("teach")
CI = 0.9
PAGES = (R.LESSON_NAME, R.HANDOUT_NAME, R.CASES_NAME, R.GUIDE_NAME, R.PAGE_NAME)


@pytest.fixture(scope="module")
def lesson(teach_out):
    return json.loads((teach_out / "lesson.json").read_text())


def _text(path) -> str:
    return " ".join(R.visible_text(path.read_text()).split())


def _page_data(teach_out) -> dict:
    html = (teach_out / R.PAGE_NAME).read_text()
    return json.loads(re.search(r'<script type="application/json" id="palsy-data">(.*?)</script>', html, re.S).group(1))


def _guide_link(teach_out) -> str:
    html = unescape((teach_out / R.GUIDE_NAME).read_text())
    section = html[html.index('id="lp-segment"'):]
    return re.search(r'<a href="(interactive\.html#[^"]+)"', section).group(1)


def _interval(s: dict) -> tuple[str, str, str]:
    return W.percent(s["mean"]), W.percent(s["lower"]), W.percent(s["upper"])


# --- 5: the guide's classroom link -----------------------------------------------------------------------------

def test_the_guides_link_opens_the_preset_it_names_at_its_first_step(teach_out, teaching):
    """The link opens the classroom's one-finding-at-a-time on the lesson's patient with its negative LPs (the page
    then reveals nothing until the room has predicted: test_teach_browser.py), and the guide names that preset in the
    page's own words: a preset the page offers, with those findings."""
    frag = _guide_link(teach_out).split("#", 1)[1]
    parts = frag.split("&")
    assert "mode=classroom" in parts and f"{R.STEP_KEY}=1" in parts
    want = R.fragment(T.typical_with_lps(teaching))
    assert "&".join(p for p in parts if p not in ("mode=classroom", f"{R.STEP_KEY}=1")) == want
    presets = {p["title"]: p for p in _page_data(teach_out)["presets"]}
    assert R.LPS_PRESET_TITLE in presets and presets[R.LPS_PRESET_TITLE]["fragment"] == want
    guide = _text(teach_out / R.GUIDE_NAME)
    assert f'"{R.LPS_PRESET_TITLE}" (under "{R.CASE_LABEL}")' in guide
    assert "with nothing revealed" in guide
    page = (teach_out / R.PAGE_NAME).read_text().split('<script type="application/json"')[0]
    assert f">{R.LPS_PRESET_TITLE}</option>" in unescape(page)  # the title the case list shows


# --- 8 and 14: every probability with its interval, said to be the mean; where a case starts ----------------

def test_the_lessons_source_patients_start_with_their_interval(teach_out, lesson, draws_subtype):
    """Lesson A2: the row 'before any finding' carries its interval, as every row after it (it had none)."""
    text = _text(teach_out / R.LESSON_NAME)
    walks = lesson["walkthroughs"]
    assert walks
    labels = Labels.of(draws_subtype)
    for w in walks:
        p, lo, hi = _interval(w["prior"]["probability"])
        lead = R.leading_text(w["prior"], labels)
        assert f"before any finding {p} ({lo} to {hi}) {lead}" in text, w["id"]
        assert w["prior"]["probability"]["mean"] == pytest.approx(w["prior"]["causes"]["infiltration"], rel=1e-9)


def test_the_cases_and_the_key_say_where_each_case_starts_and_without_its_lps(teach_out, lesson, teaching,
                                                                              draws_subtype):
    """Each case starts with P(infiltration) before its first finding (mean, interval, leading cause), from the answer
    of its patient (a library case left out); 'without its LPs' carries its interval and says mean, on the cases page
    and in the guide's answer key."""
    cases, guide = _text(teach_out / R.CASES_NAME), _text(teach_out / R.GUIDE_NAME)
    labels = Labels.of(draws_subtype)
    for case, solved in zip(teaching.cases, lesson["cases"], strict=True):
        ans = A.answer(case.patient, draws_subtype, ci=CI, shapley=False, rests_on=False)
        p, lo, hi = _interval(ans.prior_probability)
        assert _interval(solved["prior"]["probability"]) == (p, lo, hi)
        lead = R.leading_text(solved["prior"], labels)
        assert f"Where it starts, before any finding: P(infiltration) {p} (mean; 90% CrI {lo} to {hi}); leading " \
               f"cause: {lead}." in cases, case.id
        assert f"Before any finding {p} ({lo} to {hi})" in guide, case.id
        if case.patient.csf:
            bare = case.patient.replace(csf=(), **{draws_subtype.schema.profile: None})
            p, lo, hi = _interval(A.answer(bare, draws_subtype, ci=CI, shapley=False).probability)
            said = f"Without its LPs the model would say P(infiltration) {p} (mean; 90% CrI {lo} to {hi};"
            assert said in cases and said in guide, case.id
    assert cases.count("Where it starts, before any finding") == len(teaching.cases)


# --- 9: one account of how long the core takes -----------------------------------------------------------------

def test_one_account_of_how_long_the_core_takes(teach_out):
    """The lesson, the handout and the guide give the same length, from the words of the core as the lesson prints
    it (the claim to the three questions, tables and figures shown rather than read) at the pages' reading pace;
    none says 'ten-minute' or 'a quarter of an hour' any more."""
    html = (teach_out / R.LESSON_NAME).read_text()
    core = html[html.index('<section id="claim"'):html.index('<section id="escalations"')]
    core = re.sub(r"<table\b.*?</table>|<figure\b.*?</figure>", " ", core, flags=re.S)
    words = len(R.visible_text(core).split())
    minutes = max(1, round(words / R.READ_ALOUD_WPM))
    said = {name: re.findall(r"about (\d+) minutes read aloud", _text(teach_out / name))
            for name in (R.LESSON_NAME, R.HANDOUT_NAME, R.GUIDE_NAME)}
    assert all(v == [str(minutes)] for v in said.values()), (said, words)
    assert f"about {round(words, -1)} words" in _text(teach_out / R.GUIDE_NAME).replace("\n", " ")
    for name in PAGES:
        text = _text(teach_out / name).lower()
        assert "ten-minute" not in text and "quarter of an hour" not in text, name


# --- 11: an LP whose method the source did not state ------------------------------------------------------------

def test_an_lp_of_unstated_method_is_said_so_and_read_as_the_models_setting(teach_out, lesson, teaching,
                                                                            draws_subtype):
    """Case 2's source gave two negative LPs without their method: the cases page and the key say so and that the
    model reads them as model.yaml's unknown_csf_method (read from the fit's settings, not written here); the case's
    LPs are coded with that method. A case coded here whose `where` says the method was not stated is read alike."""
    setting = draws_subtype.meta["answer_settings"]["unknown_csf_method"]
    word = draws_subtype.schema.lp.method_labels[setting].split(" (")[0]
    cases_doc = safe_yaml.load(REPO / "priors" / "cases.yaml")
    raw = {c["id"]: c for c in cases_doc["cases"]}
    flagged = {c.id for c in teaching.cases if c.unstated_methods}
    library = {c.id for c in teaching.cases if c.source == "cases.yaml"
               and any(lp.get("method", "unknown") == "unknown" for lp in raw[c.id]["findings"].get("csf") or ())}
    assert library and library <= flagged and "esteller2022_aml34f" in flagged
    cases_text, guide = _text(teach_out / R.CASES_NAME), _text(teach_out / R.GUIDE_NAME)
    for i, (case, solved) in enumerate(zip(teaching.cases, lesson["cases"], strict=True), start=1):
        if not case.unstated_methods:
            assert "method not stated" not in cases_text.split(f"Case {i}.")[1].split(f"Case {i + 1}.")[0]
            continue
        assert solved["unstated"] == {"lps": list(case.unstated_methods), "read_as": setting}
        for j in case.unstated_methods:
            assert case.patient.csf[j - 1].methods == (setting,), case.id
            assert f"LP {j}: negative, method not stated (read as {word})" in cases_text, case.id
        assert f"the model reads an LP whose method is not stated as {word}" in cases_text
        assert f"as {word}, its setting for an LP of unstated method" in guide


# --- 12: wording --------------------------------------------------------------------------------------------------

def _without_citations(html: str) -> str:
    html = re.sub(r'<p class="cite">.*?</p>', " ", html, flags=re.S)  # the cases' sources, quoted as published
    html = re.sub(r'<span class="muted">\((?:[^<]*)\)</span>', " ", html)  # the lesson's escalations' sources
    return R.visible_text(html)


def _prose(x) -> list[str]:
    """The texts with a space in them under ``x`` (JSON data): words a reader sees, not identifiers (an action's id
    ``leukaemia_team_today`` stays what the files call it)."""
    if isinstance(x, dict):
        return [t for v in x.values() for t in _prose(v)]
    if isinstance(x, list):
        return [t for v in x for t in _prose(v)]
    return [x] if isinstance(x, str) and " " in x else []


def test_one_spelling_and_the_syndromes_accent_on_every_page(teach_out):
    """One spelling of leukemia on each page, the schema's labels' (US: 'Leukemia type', 'leukemic infiltration'),
    citations as published aside; Guillain-Barré with its accent wherever a reader sees it (a teacher's review:
    'leukemia team' beside 'leukaemia team', 'Guillain-Barre' beside 'Guillain-Barré')."""
    schema = safe_yaml.load(REPO / "priors" / "schema.yaml")
    labels = json.dumps(schema).lower()
    assert "leukemia" in labels and "leukaemia" not in labels  # the schema's labels decide the pages' spelling
    for name in PAGES:
        text = _without_citations((teach_out / name).read_text())
        if name == R.PAGE_NAME:  # the words its data shows (its references are short citations, as published)
            data = _page_data(teach_out)
            data["rules"].pop("references")
            text = R.visible_text((teach_out / name).read_text().split('<script type="application/json"')[0])
            models = re.findall(r'<script type="application/json" id="palsy-model-[^"]+">(.*?)</script>',
                                (teach_out / name).read_text(), re.S)
            text += " ".join(_prose([data, *(json.loads(m)["settings"] for m in models)]))  # scope notes, hallmarks
        assert not re.search(r"leuk(ae|\u00e6)m", text, re.I), (name, re.findall(r".{40}leukaem.{20}", text, re.I)[:3])
        assert not re.search(r"Guillain.Barre(?!\u00e9)", text), name


def test_the_handouts_escalations_say_each_sign_once(teach_out, draws_subtype, evidence):
    """The handout lists each sign then what to do, without the action's own restatement of the sign after it
    ('Blasts in the CSF, not from a known bloody tap, whichever cause leads: Blasts in the CSF, not from a known
    bloody tap, with this palsy ...'): no run of four words comes twice in one item."""
    from palsy.model import guidance

    html = unescape((teach_out / R.HANDOUT_NAME).read_text())
    section = html[html.index('<section id="escalations"'):]
    items = [R.visible_text(x) for x in re.findall(r"<li>(.*?)</li>", section[:section.index("</section>")], re.S)]
    actions = [a for a in guidance.load(REPO / "priors", draws_subtype.causes, draws_subtype.schema)
               if a.urgency == "escalation"]
    assert len(items) == len(actions)
    for item, a in zip(items, sorted(actions, key=lambda a: a.priority), strict=True):
        words = re.findall(r"[a-z0-9]+", item.lower())
        runs = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
        assert len(runs) == len(set(runs)), item
        tail = R.house_style(a.text).partition(": ")[2] or R.house_style(a.text)
        assert tail in item, (a.id, item)  # what to do is there


def test_short_citations_are_cut_at_a_word_without_stray_punctuation(evidence):
    """Every short citation (the lesson's escalations, the page's actions) is cut at a word, with nothing between the
    last word and the ellipsis, and no full stop after it (s16: 'hematologic malignancies:….')."""
    from palsy.reports.context import short_citation

    cut = 0
    for key, ref in evidence.references.items():
        text = short_citation(ref)
        assert not re.search(r"[:;,.\-\u2013]\s*\u2026|\u2026\.", text), (key, text)
        cut += "\u2026" in text
    assert cut  # some are cut


# --- 13: the reference list a reader sees ----------------------------------------------------------------------

#: Words of our curation (what was read, where, how sure): never in a reader's citation.
CURATION = ("not shown", "not found", "not captured", "not seen", "not read", "attrib", "probably", "possibly",
            "unverified", "unidentified", "verified", "a search", "via search", "n.d.", "as given", "as listed",
            "inferred", "truncated", "position unknown", "from the address", "captured", "corpora", "queries")


def _bad_host(url: str) -> str | None:
    """Why ``url`` is not a link to the article a citation names: a proxy, a staging or test copy of a site, a site's
    root or a search, a copy on a document-sharing site or a blog; None if none of those."""
    u = urlsplit(url)
    host = (u.hostname or "").lower()
    labels = re.split(r"[.\-]", host)
    if u.port is not None or re.fullmatch(r"[\d.]+", host):
        return "a proxy (a port or a bare address)"
    if "proxy" in host or any(x in labels for x in ("staging", "dev", "test")):
        return "a proxy, staging or test site"
    if u.path in ("", "/"):
        return "a site's root or a search"
    if any(x in host for x in ("scribd.", "blogspot.")):
        return "a copy on a document-sharing site or a blog"
    return None


def test_no_reference_shows_our_curation_or_links_a_non_article_page(evidence):
    """Every reference, as the clinician report lists it (citation, links) and as the short citation reads: no note of
    our curation (those stay in `verified`), no link to a proxy, a staging site, a site's root or a copy."""
    from palsy.reports import context as C

    cites = C._Citations(evidence)
    cites.cite(list(evidence.references))
    rows = cites.references()
    assert len(rows) == len(evidence.references)
    for r in rows:
        ref = evidence.references[r["key"]]
        for text in (r["text"], r["short"], C.citation_text(ref)):
            low = text.lower()
            assert not [w for w in CURATION if w in low], (r["key"], text)
        for link in r["links"]:
            assert _bad_host(link["url"]) is None, (r["key"], link["url"], _bad_host(link["url"]))


def test_the_typical_reports_reference_list_is_a_readers(teach_out):
    """The report the lesson's A3 sends the teacher to: no curation note in any item of its reference list."""
    html = (teach_out / R.TYPICAL_REPORT_NAME).read_text()
    items = re.findall(r'<li id="ref-\d+">(.*?)</li>', html, re.S)
    assert items
    for item in items:
        text = unescape(re.sub(r'<span class="flag">.*?</span>', "", item)).lower()
        assert not [w for w in CURATION if w in text], item
        for url in re.findall(r'href="([^"]+)"', item):
            assert _bad_host(unescape(url)) is None, url


def test_a_citation_keeps_what_was_read_and_drops_the_notes():
    """The rule on made-up fields: a note in brackets goes, a field that is a note goes, what was read stays."""
    from palsy.reports.context import citation_text, reader_field

    assert reader_field("Smith AB, Jones C (attrib.)") == "Smith AB, Jones C"
    assert reader_field("not shown in the source read (Dept of X; names not shown)") == ""
    assert reader_field("n.d. (not shown in the source read)") == ""
    assert reader_field("probably Practical Neurology (BMJ)") == ""
    assert reader_field("Medicine (Baltimore)") == "Medicine (Baltimore)"
    assert reader_field("Cancer Research (Philadelphia)") == "Cancer Research (Philadelphia)"
    assert reader_field("unidentified images article: facial palsy in relapse (T-ALL)") == "facial palsy in relapse (T-ALL)"
    ref = {"authors": "not found after a search (see verified)", "title": "A title", "journal": "A Journal",
           "year": "2001 (inferred)", "volume": None, "pages": None}
    assert citation_text(ref) == "A title. A Journal 2001."


# --- 15: the handout's chart prints its labels at a readable size ----------------------------------------------

def test_the_handouts_chart_prints_its_text_at_7_pt_or_more(teach_out):
    """The chart is drawn at the size the handout's CSS gives it (width within the A4 margins, its height cap), so its
    text prints at its own size: at least 7 pt, read in the SVG against the CSS box and in the PDF itself."""
    import base64

    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    css = (R.STATIC / "teach_handout.css").read_text()
    margins = re.search(r"@page \{ size: A4; margin: ([\d.]+)mm ([\d.]+)mm", css)
    side_mm = float(margins.group(2))
    box_w = (210 - 2 * side_mm) / 25.4 * 72  # points
    box_h = float(re.search(r"figure img \{[^}]*max-height: ([\d.]+)cm", css).group(1)) / 2.54 * 72
    html = (teach_out / R.HANDOUT_NAME).read_text()
    svg = base64.b64decode(re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)).decode()
    w, h = (float(re.search(rf'{k}="([\d.]+)pt"', svg).group(1)) for k in ("width", "height"))
    scale = min(box_w / w, box_h / h, 1e9)
    sizes = [float(x) for x in re.findall(r"font-size: ?([\d.]+)px", svg)]  # px: the viewBox's unit, its points
    assert sizes and min(sizes) * scale >= 7.0, (min(sizes), scale)
    pdf = pdfium.PdfDocument(str(teach_out / R.HANDOUT_PDF))
    small = []
    for i in range(len(pdf)):
        tp = pdf[i].get_textpage()
        for j in range(tp.count_chars()):
            ch = chr(raw.FPDFText_GetUnicode(tp.raw, j))
            if ch.isspace() or raw.FPDFText_IsGenerated(tp.raw, j):
                continue
            size = raw.FPDFText_GetFontSize(tp.raw, j) * 0.75  # Chromium's CSS pixels to points
            if size < 7.0:
                small.append((i, ch, round(size, 1)))
    assert not small, small[:20]
    assert len(pdf) == 2
