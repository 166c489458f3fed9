"""Page 1 of the clinician report (docs/design.md §6, issue 10 items 1-5), through the CLI as a user runs it.

- In Debian's headless Chromium at 1280 x 1024: the page-1 elements (any warning, the headline, the
  differential, the three top findings, what to do now, the decision, the limits) are in that order and
  end above 1024 px; every text on page 1 is at least 12 px.
- The PDF's first page carries the same sections and the same numbers as the HTML page 1 (pypdf).
- Scope warnings (forehead spared; palsy at diagnosis) and the atypicality warning (ATRA vignette) come
  first; each action's text appears for the hallmark vignettes as ``palsy posterior --json`` says.
- Any Unicode text renders: every character of a CJK, emoji and right-to-left id has a font
  (fontconfig) and comes back from the PDF's text.
"""

from __future__ import annotations

import json
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest
import yaml
from conftest import PATIENTS, REPO, pdf_pages, run_palsy

pypdf = pytest.importorskip("pypdf")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report_page")]  # its report fixture built once

VIGNETTES = REPO / "tests" / "fixtures" / "vignettes"
HALLMARKS = ("vincristine", "ramsay_hunt", "bell_like", "gbs", "otomastoiditis", "infiltration_flow")
VIEWPORT = {"width": 1280, "height": 1024}
PAGE1 = ("#headline", "#differential", "#top-findings", "#actions", "#decision", "#page1-limits")
UNICODE_ID = "患者-漢字-😀-שלום-مرحبا"
#: the patients whose PDF the tests read (page 1 against the HTML's, warnings, actions, fonts); the others'
#: HTML only
PDF_READ = ("source-000", "source-002", "central", "atdx", "off_model_atra", "ramsay_hunt", "unicode")


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def reports(palsy, tmp_path_factory):
    """Reports and the JSON answer of each patient, with the default variant, as a user runs them."""
    out = tmp_path_factory.mktemp("page1")
    pats = tmp_path_factory.mktemp("page1-patients")
    files = {"source-000": PATIENTS / "source-000-vignette.yaml", "source-002": PATIENTS / "source-002.yaml"}
    (pats / "central.yaml").write_text("id: central\nlineage: B-ALL\nforehead: spared\nlaterality: unilateral\n",
                                       encoding="utf-8")
    (pats / "atdx.yaml").write_text("id: atdx\nlineage: AML\nremission: at_diagnosis\nlaterality: unilateral\n",
                                    encoding="utf-8")
    (pats / "unicode.yaml").write_text(yaml.safe_dump({"id": UNICODE_ID, "description": "漢字 テスト 🩺 עברית العربية",
                                                       "lineage": "T-ALL", "laterality": "unilateral"},
                                                      allow_unicode=True), encoding="utf-8")
    files.update(central=pats / "central.yaml", atdx=pats / "atdx.yaml", unicode=pats / "unicode.yaml")
    for name in ("off_model_atra", *HALLMARKS):
        doc = yaml.safe_load((VIGNETTES / f"{name}.yaml").read_text(encoding="utf-8"))
        (pats / f"{name}.yaml").write_text(yaml.safe_dump(doc["patient"], allow_unicode=True), encoding="utf-8")
        files[name] = pats / f"{name}.yaml"
    got = {}
    # a process for the patients whose PDF is read and one for the rest (HTML only: a PDF no test reads is
    # time spent for nothing), each for its list as a ward list is run: files named by patient id, in the order given
    htmls = []
    for names, formats in ((PDF_READ, "html,pdf"), ([n for n in files if n not in PDF_READ], "html")):
        proc = run_palsy("report", *(str(files[n]) for n in names), "--out", str(out), "--format", formats, check=True)
        htmls += [Path(p) for p in proc.stdout.split() if p.endswith(".html")]
    files = {n: files[n] for n in (*PDF_READ, *(n for n in files if n not in PDF_READ))}
    assert len(htmls) == len(files)
    # the JSON answers through the Python API in this process (equal to `palsy posterior --json`: tests/test_api.py),
    # one command-line answer kept as the user runs it
    from palsy.model import api

    draws = api.posterior_draws()
    for i, ((name, path), html) in enumerate(zip(files.items(), htmls, strict=True)):
        d = (json.loads(run_palsy("posterior", "--patient", str(path), "--json", check=True).stdout) if i == 0 else
             json.loads(api.answer(path, draws=draws).to_json()))
        got[name] = {"json": d, "html": html, "pdf": html.with_suffix(".pdf")}
    return got


def _boxes(browser, html: Path) -> dict:
    """Bounding boxes (document order) and the smallest computed font size of the page-1 text."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.resolve().as_uri())
    sels = ["#warnings", *PAGE1]
    info = page.evaluate("""(sels) => {
        const out = {};
        for (const s of sels) {
            const e = document.querySelector(s);
            if (!e) { out[s] = null; continue; }
            const r = e.getBoundingClientRect();
            out[s] = {top: r.top, bottom: r.bottom, left: r.left, right: r.right, text: e.innerText};
        }
        const order = sels.filter(s => document.querySelector(s));
        out.domOrder = order.every((s, i) => i === 0 ||
            (document.querySelector(order[i - 1]).compareDocumentPosition(document.querySelector(s))
             & Node.DOCUMENT_POSITION_FOLLOWING));
        let small = [];
        const walker = document.createTreeWalker(document.querySelector('#page1'), NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const n = walker.currentNode;
            if (!n.textContent.trim()) continue;
            const size = parseFloat(getComputedStyle(n.parentElement).fontSize);
            if (size < 12) small.push([n.textContent.trim().slice(0, 40), size]);
        }
        out.small = small;
        out.scrollWidth = document.documentElement.scrollWidth;
        return out;
    }""", sels)
    context.close()
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
    return info


@pytest.mark.parametrize("name", ["source-000", "source-002", "central", "atdx", "off_model_atra", "gbs",
                                  "unicode"])
def test_page1_on_one_screen_in_order(reports, browser, name):
    info = _boxes(browser, reports[name]["html"])
    assert info["domOrder"], info
    present = [s for s in ("#warnings", *PAGE1) if info[s] is not None]
    assert present[-6:] == list(PAGE1), present
    for a, b in zip(present, present[1:], strict=False):  # reading order: never above the element before it
        assert info[b]["top"] >= info[a]["top"] - 1, (a, b, info[a], info[b])
    for s in present:
        assert info[s]["bottom"] <= VIEWPORT["height"], (s, info[s]["bottom"])
    assert not info["small"], info["small"]
    assert info["scrollWidth"] <= VIEWPORT["width"]


def _page1_numbers(d: dict) -> list[str]:
    """What page 1 must say, from the JSON: the mean and interval, every cause's line, the decision."""
    from palsy.reports import cards
    from palsy.reports import wording as W

    p = d["probability"]
    out = [f"{W.percent(p['mean'])} (mean; {W.interval(p['lower'], p['upper'], p['ci'])})"]
    for c in d["causes"]:
        s = c["probability"]
        out.append(f"{W.percent(s['mean'])} {W.percent(s['lower'])} to {W.percent(s['upper'])}")
    for c in sorted(d["contributions"], key=lambda c: -abs(c["log_lr"]["mean"]))[:3]:
        out.append(W.factor(c["log_lr"]["mean"]))
    dec = d["decision"]
    out += [W.percent(dec["thresholds"]["low"]), W.percent(dec["thresholds"]["high"]),
            _flat(W.decision_what(dec, central=cards.central(d))[1:])]  # the decision as stated (capitalised on the page)
    for t in dec["tests"]:
        out.append(f"{t['value_of_information']:+.3f}")
        if t["can_change_action"]:
            out.append(W.percent(t["probability_of_change"]))
    out += [a["text"] for a in d["actions"][:6]]
    out += d["model"]["not_modelled"]
    out.append("supports and does not replace clinical judgment")
    # the JSON's prose comes from files in British spelling; the report shows it in its own (wording.PAGE_SPELLING)
    return [W.house_style(x, W.PAGE_SPELLING["report"]) for x in out]


#: The width of an A4 page inside the print CSS's margins (210 mm less 2 x 11 mm), in CSS pixels.
A4_CONTENT_PX = int((210 - 2 * 11) / 25.4 * 96)


def test_nothing_is_wider_than_the_printed_page(reports, browser):
    """Laid out for print at the width of an A4 page's content, no report has an element wider than the page:
    Chromium shrinks every page of a document whose content overflows one (the steps table, a column per
    cause, had printed the whole report at 85%, its text below 9 pt)."""
    context = browser.new_context(viewport={"width": A4_CONTENT_PX, "height": 1000}, java_script_enabled=True)
    page = context.new_page()
    page.emulate_media(media="print")
    try:
        for name, r in reports.items():
            page.goto(r["html"].resolve().as_uri())
            wide = page.evaluate("""(w) => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > w + 1)
                .map(e => e.tagName + (e.id ? '#' + e.id : '')).slice(0, 5)""", A4_CONTENT_PX)
            assert wide == [], (name, wide)
    finally:
        context.close()


@pytest.mark.parametrize("name", [n for n in PDF_READ if n != "unicode"])
def test_pdf_first_page_is_html_page1(reports, browser, name):
    """The same sections and the same numbers on the HTML's page 1 and on the PDF's first page."""
    r = reports[name]
    info = _boxes(browser, r["html"])
    html1 = _flat(" ".join(info[s]["text"] for s in ("#warnings", *PAGE1) if info[s]))
    pages = pdf_pages(r["pdf"])
    first, rest = _flat(pages[0]), _flat(" ".join(pages[1:]))
    for phrase in ("P(leukemic infiltration)", "The differential", "Moved it most", "What to do now", "The decision",
                   *_page1_numbers(r["json"])):
        assert phrase in html1, (name, phrase)
        assert phrase in first, (name, phrase)
    assert "2. Findings as entered" not in first and "2. Findings as entered" in rest[:200]
    for phrase in ("3. How each finding moved", "4. Findings, their weight", "5. What the next test could do",
                   "6. What to do now, in full", "7. Fagan nomogram", "8. Population and limits", "9. Provenance",
                   "References"):
        assert phrase in rest, (name, phrase)
    # no text on the PDF's page 1 below 9 pt (12 px)
    sizes: list[tuple[float, str]] = []

    def visit(text, cm, tm, font, size):  # noqa: ANN001, ANN202
        if text.strip():
            sizes.append((size * tm[3] * cm[3], text.strip()[:40]))

    pypdf.PdfReader(str(r["pdf"])).pages[0].extract_text(visitor_text=visit)
    assert sizes and not [x for x in sizes if x[0] < 8.99], [x for x in sizes if x[0] < 8.99]
    # one statistic per number: the median appears nowhere on page 1 (the patient's own words aside)
    desc = _flat(r["json"]["patient"].get("description") or "")
    assert "median" not in html1.replace(desc, "").lower() and "median" not in first.replace(desc, "").lower()
    for text in (html1, first):
        assert not re.search(r"(?<![\d.<>])(0|100)(\.0+)?\s?%", text), text
        assert "excluded" not in text.lower() and "ruled out" not in text.lower()


@pytest.mark.parametrize("name,phrase", [("central", "forehead is spared"),
                                         ("atdx", "led to the leukemia diagnosis"),
                                         ("off_model_atra", "Atypical findings.")])
def test_scope_and_atypicality_warnings_come_first(reports, browser, name, phrase):
    r = reports[name]
    if name == "off_model_atra":
        assert r["json"]["atypical"]["flag"]
    else:
        assert r["json"]["scope_notes"]
    info = _boxes(browser, r["html"])
    assert info["#warnings"] is not None and phrase in _flat(info["#warnings"]["text"])
    assert info["#warnings"]["bottom"] <= info["#headline"]["top"] + 1
    first = _flat(pdf_pages(r["pdf"])[0])
    assert phrase in first and first.index(phrase) < first.index("P(leukemic infiltration)")
    assert "not modelled" in first


@pytest.mark.parametrize("name", HALLMARKS)
def test_actions_as_the_json_says(reports, name):
    """Page 1 lists the first six actions of the JSON in its order; section 6 lists all of them."""
    r = reports[name]
    actions = r["json"]["actions"]
    assert actions, name
    raw = r["html"].read_text(encoding="utf-8")
    page1, rest = raw.split('<section id="findings">', 1)
    ids = re.findall(r'<li data-action="([a-z0-9_]+)"', page1)
    assert ids == [a["id"] for a in actions[:6]]
    assert re.findall(r'<li data-action="([a-z0-9_]+)"', rest) == [a["id"] for a in actions]
    import html as H

    text = _flat(H.unescape(re.sub(r"<[^>]+>", " ", raw)))
    pdf = _flat(" ".join(pdf_pages(r["pdf"]))) if name in PDF_READ else None  # the same HTML, printed
    from palsy.reports import wording as W

    for a in actions:  # in the report's spelling (wording.PAGE_SPELLING), the JSON's as written in actions.yaml
        said, detail = (_flat(W.house_style(a[k], W.PAGE_SPELLING["report"])) for k in ("text", "detail"))
        assert said in text and (pdf is None or said in pdf), a["id"]
        assert detail[:80] in text, a["id"]


def test_unicode_text_has_fonts_and_comes_back(reports):
    """Every character of a CJK, emoji and right-to-left id: a font covers it, and the PDF's text has it."""
    r = reports["unicode"]
    chars = sorted({c for c in UNICODE_ID if not c.isascii()})
    missing = [c for c in chars if not subprocess.run(["fc-list", f":charset={ord(c):x}", "family"],
                                                      capture_output=True, text=True, check=True).stdout.strip()]
    assert not missing, f"no font for {missing}: run `make setup-test` (fonts-noto-cjk, fonts-noto-color-emoji, ...)"
    # pypdf here: PDFium leaves out the colour emoji's text (its glyphs are bitmaps), pypdf reads its ToUnicode map.
    # Chromium maps the Arabic glyphs to their presentation forms (U+FEE3 for a medial meem), which are the
    # letters themselves under compatibility normalisation, as a viewer's search reads them
    first = unicodedata.normalize("NFKC", pypdf.PdfReader(str(r["pdf"])).pages[0].extract_text())
    for word in UNICODE_ID.split("-"):
        assert word in first, (word, first[:300])
    assert UNICODE_ID in r["html"].read_text(encoding="utf-8")


def test_thresholds_flag(palsy, tmp_path):
    """--thresholds LOW,HIGH for one report: page 1 shows the pair and the action it implies."""
    proc = run_palsy("report", str(PATIENTS / "source-000-vignette.yaml"), "--out", str(tmp_path), "--format", "html",
                     "--thresholds", "0.01,0.2", check=True)
    html = Path(proc.stdout.split()[0]).read_text(encoding="utf-8")
    page1 = html.split('<section id="findings">', 1)[0]
    d = json.loads(run_palsy("posterior", "--patient", str(PATIENTS / "source-000-vignette.yaml"), "--json",
                             "--thresholds", "0.01,0.2", check=True).stdout)
    assert "1.0% (lower) and 20.0% (upper)" in page1
    import html as H

    from palsy.reports import wording as W

    # the page escapes its words (' as &#39;) and writes them in its spelling (wording.PAGE_SPELLING)
    assert W.house_style(d["decision"]["action_text"], W.PAGE_SPELLING["report"])[1:] in H.unescape(page1)
