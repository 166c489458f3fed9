"""The decision as the report states it (a clinician's review, December 2026, findings 4 and 9): section 5 ("The
decision and each test") carries the escalation and the pending work-up as page 1 does, both from
:func:`palsy.reports.wording.decision_what`; a palsy that may be central (the forehead spared) is not pointed
to the LP of a peripheral palsy; the test table says its sensitivity and false-positive rate are means without
an interval. The reviewer's patients are rerun as they ran them (`palsy report --format html`, the vignettes'
``patient:`` blocks, the flags of finding 2b) and the HTML is read back as text."""

from __future__ import annotations

import html as H
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_palsy

from palsy.reports import wording as W

pytestmark = pytest.mark.xdist_group("report_decision")
VIGNETTES = REPO / "tests" / "fixtures" / "vignettes"
#: the reviewer's patients of finding 4 (the vignettes' patient blocks, as they copied them)
REVIEWED = ("positive_cytology_remission", "contaminated_positive", "progressive_bilateral_no_workup", "forehead_spared")
#: finding 2b: a negative first LP, then a clean positive cytology (critical card, zoster leading)
FLAGS_2B = ("--lineage", "T-ALL", "--remission", "not_in_remission", "--onset", "acute", "--laterality", "unilateral",
            "--vesicles", "absent", "--eighth-nerve", "none", "--otoscopy", "normal", "--other-cranial-nerves", "none",
            "--mri", "facial_nerve_enhancement", "--csf-profile", "pleocytosis", "--csf", "cytology=negative,flow=negative",
            "--csf", "cytology=positive,flow=negative,traumatic=no", "--circulating-blasts", "absent")

PATIENT_2B = {"id": "review-2b", "lineage": "T-ALL", "remission": "not_in_remission", "onset": "acute",
              "laterality": "unilateral", "vesicles": "absent", "eighth_nerve": "none", "otoscopy": "normal",
              "other_cranial_nerves": "none", "mri": "facial_nerve_enhancement", "csf_profile": "pleocytosis",
              "circulating_blasts": "absent",
              "csf": [{"cytology": "negative", "flow": "negative"},
                      {"cytology": "positive", "flow": "negative", "traumatic": "no"}]}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _text(fragment: str) -> str:
    """A fragment of the page as a reader reads it: tags dropped, entities unescaped, spaces collapsed."""
    return _flat(H.unescape(re.sub(r"<[^>]+>", " ", fragment)))


def _between(page: str, start: str, end: str) -> str:
    i = page.index(start)
    return page[i:page.index(end, i)]


@pytest.fixture(scope="module")
def reviewed(posterior_subtype, tmp_path_factory):
    """Each reviewed patient's report (HTML) and JSON answer, with the default variant, as the reviewer ran them."""
    pats = tmp_path_factory.mktemp("reviewed-patients")
    out = tmp_path_factory.mktemp("reviewed-reports")
    files = []
    for name in REVIEWED:
        doc = yaml.safe_load((VIGNETTES / f"{name}.yaml").read_text(encoding="utf-8"))
        path = pats / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc["patient"], allow_unicode=True), encoding="utf-8")
        files.append(path)
    proc = run_palsy("report", *map(str, files), "--out", str(out), "--format", "html", check=True)
    htmls = [Path(p) for p in proc.stdout.split() if p.endswith(".html")]
    assert len(htmls) == len(files)
    got = {}
    for name, path, page in zip(REVIEWED, files, htmls, strict=True):
        d = json.loads(run_palsy("posterior", "--patient", str(path), "--json", check=True).stdout)
        got[name] = {"json": d, "html": page.read_text(encoding="utf-8")}
    # finding 2b was run with flags; a report takes a file: the same findings, the same answer
    path = pats / "2b.yaml"
    path.write_text(yaml.safe_dump(PATIENT_2B), encoding="utf-8")
    proc = run_palsy("report", str(path), "--out", str(out), "--format", "html", check=True)
    d = json.loads(run_palsy("posterior", "--patient", str(path), "--json", check=True).stdout)
    assert d["probability"] == json.loads(run_palsy("posterior", *FLAGS_2B, "--json", check=True).stdout)["probability"]
    got["2b"] = {"json": d, "html": Path(proc.stdout.split()[0]).read_text(encoding="utf-8")}
    return got


def _page1_decision(page: str) -> str:
    return _text(_between(page, '<div id="decision">', "</div>"))


def _section5_decision(page: str) -> str:
    return _text(_between(page, '<p id="decision-statement">', "</p>"))


def test_section_5_states_the_decision_as_page_1_does(reviewed):
    """Section 5's decision says the escalation first and the pending work-up, before the zone's words, in the
    same words as page 1 (the review: section 5 read only 'Between the thresholds: repeat testing ...' beside
    a page 1 that escalated)."""
    for name, r in reviewed.items():
        d, page = r["json"], r["html"]
        dec = d["decision"]
        central = not d["in_scope"] and d["patient"].get("forehead") == "spared"
        said = _flat(W.sentence_start(W.decision_what(dec, central=central)))
        p1, s5 = _page1_decision(page), _section5_decision(page)
        assert said in p1, name
        assert s5.startswith(said + "."), (name, s5[:300])
        for part in (dec["escalation_text"], dec["workup_text"]):
            if part:
                assert _flat(part)[1:] in s5 and _flat(part)[1:] in p1, (name, part)
        if not central:
            zone = _flat(dec["action_text"])[1:]
            assert zone in s5
            for part in (dec["escalation_text"], dec["workup_text"]):
                if part:
                    assert s5.index(_flat(part)[1:]) < s5.index(zone), name
    # the reviewer's cases do escalate, and some still have the work-up due
    assert reviewed["positive_cytology_remission"]["json"]["decision"]["escalation_text"]
    assert reviewed["2b"]["json"]["decision"]["escalation_text"]
    assert any(r["json"]["decision"]["workup_text"] for r in reviewed.values())


def test_a_central_palsy_is_not_pointed_to_the_lp(reviewed):
    """Forehead spared: neither page 1 nor section 5 says 'repeat testing (the next tests below)' (those tests
    include an LP); they say that the central work-up comes first, that the peripheral work-up is not pressed
    and that the thresholds and the tests apply only if the palsy proves peripheral."""
    r = reviewed["forehead_spared"]
    d, page = r["json"], r["html"]
    assert d["in_scope"] is False and d["decision"]["action_text"]
    assert any(a["id"] == "central_workup" for a in d["actions"])
    for text in (_page1_decision(page), _section5_decision(page)):
        assert "repeat testing" not in text and "next tests below" not in text
        assert _flat(d["decision"]["action_text"]) not in text
        assert "the central work-up of what to do now comes first" in text
        assert "only if the palsy proves peripheral" in text
        assert "LP and MRI work-up of a peripheral palsy is not pressed" in text
    section5 = _text(_between(page, '<h3 id="decision-detail">', "</section>"))
    assert "apply only if the palsy proves peripheral" in section5
    page1 = _page1_decision(page)
    qualified = re.findall(r"\(only if the palsy proves peripheral\): (?:could|cannot) change the action", page1)
    assert d["decision"]["tests"] and len(qualified) == len(d["decision"]["tests"])
    # an in-scope patient keeps the zone's words and its tests without the qualifier
    other = _page1_decision(reviewed["positive_cytology_remission"]["html"])
    assert "repeat testing (the next tests below)" in other and "only if the palsy proves peripheral" not in other


def test_the_test_table_labels_its_means(reviewed):
    """Section 5's test table: sensitivity and false-positive rate are said to be means with no interval (the
    decision layer gives one number per test), and the note below says why."""
    page = reviewed["positive_cytology_remission"]["html"]
    table = _between(page, '<table class="small" id="decision-tests">', "</table>")
    head = _text(_between(table, "<thead>", "</thead>"))
    assert "Sensitivity: mean, no interval (below)" in head
    assert "False-positive rate: mean, no interval (below)" in head
    section5 = _text(_between(page, '<h3 id="decision-detail">', "</section>"))
    assert "descriptive means over the posterior, without an interval" in section5
    dec = reviewed["positive_cytology_remission"]["json"]["decision"]
    assert all(isinstance(t["sensitivity"], float) for t in dec["tests"])  # one number: no interval to give
    for t in dec["tests"]:  # each number labelled where it stands
        assert f"{W.percent(t['sensitivity'])} (mean)" in _text(table)
        assert f"{W.percent(t['false_positive_rate'])} (mean)" in _text(table)


@pytest.mark.parametrize("action", ["no_test", "test", "treat"])
@pytest.mark.parametrize("escalation", ["", "an escalation comes first, today (the first of what to do now), whatever "
                                            "the probability; by the thresholds alone:"])
def test_decision_what_for_a_central_palsy_drops_the_zone_words(action, escalation):
    """The one function: a central palsy's decision never carries the zone's words (which point to a peripheral
    palsy's tests), says where the mean falls, and keeps the escalation first; an in-scope one joins the
    escalation, the work-up and the zone in that order."""
    dec = {"action": action, "action_text": f"zone words of {action} (the next tests below)",
           "escalation_text": escalation, "workup_text": "first, whatever the probability: an LP (what to do now); after it",
           "thresholds": {"low": 0.05, "high": 0.9}, "probability": 0.3}
    text = W.decision_what({**dec, "workup_text": ""}, central=True)
    assert "zone words" not in text and "next tests below" not in text
    assert W.ZONE_PLACE[action] in text and "only if the palsy proves peripheral" in text
    assert text.startswith(escalation or "nothing by the thresholds")
    assert W.decision_what({**dec, "central": True}) == W.decision_what(dec, central=True)  # the decision's own flag
    peripheral = W.decision_what(dec)
    assert peripheral == " ".join(x for x in (escalation, dec["workup_text"], dec["action_text"]) if x)
    assert W.decision_sentence(dec, central=True).endswith(text + ".")
