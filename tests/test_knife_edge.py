"""The decision at its knife edges and a central palsy's section 5, as the command, the report and the card
say them (a clinician's review, December 2026, findings 5 and 7).

- Finding 5: "Mean P(infiltration) 10.0% against the thresholds 10.0% (lower: the testing floor): below the lower
  threshold: no further test", "P(infiltration) is already below the lower threshold 10.0%", and a test "below 0:
  its harm outweighs" beside the floor's rule that testing goes on at or above it. The reviewer's patient is
  answered with the lower threshold set just above and just below its own mean (``--thresholds``: the fit moves
  the mean, so the floor itself is checked in tests/test_wording.py with decision.yaml's floor), written alike:
  both say the mean is at the lower threshold, neither names a zone.
- Finding 7: section 5 printed "Further negative LPs to fall below 3.2%: ..." for a forehead-sparing palsy whose
  LP work-up page 1 says is not pressed: the count is now said only as what holds if the palsy proves peripheral,
  with the note that says the tests apply only then, not in the decision's statement."""

from __future__ import annotations

import html as H
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_palsy

from palsy.reports import cards
from palsy.reports import wording as W

pytestmark = pytest.mark.xdist_group("knife_edge")
VIGNETTES = REPO / "tests" / "fixtures" / "vignettes"
#: finding 5: B-ALL not in remission, two negative LPs by both methods, MRI normal (10.0% at the floor then)
EDGE = {"id": "review-5", "lineage": "B-ALL", "remission": "not_in_remission", "onset": "acute", "laterality": "unilateral",
        "vesicles": "unknown", "otoscopy": "normal", "recent_vincristine": "no", "eighth_nerve": "none",
        "other_cranial_nerves": "none", "mri": "normal", "csf_profile": "normal",
        "csf": [{"cytology": "negative", "flow": "negative"}, {"cytology": "negative", "flow": "negative"}]}


def _text(fragment: str) -> str:
    return " ".join(H.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _between(page: str, start: str, end: str) -> str:
    i = page.index(start)
    return page[i:page.index(end, i)]


def _sides(p: float) -> dict[str, float]:
    """Lower thresholds just below and just above ``p``, each written as ``p`` is."""
    shown = W.as_written(p)
    lo_end, hi_end = shown - 0.0005, shown + 0.0005  # the numbers written as ``shown``
    out = {"above": (lo_end + p) / 2, "below": (p + hi_end) / 2}  # the mean above the threshold, below it
    for th in out.values():
        assert W.reads_as(p, th) and th != p
    return out


@pytest.fixture(scope="module")
def edge(posterior_subtype, tmp_path_factory):
    """The reviewer's patient: its mean, then its answer (JSON, text, report) with each lower threshold."""
    folder = tmp_path_factory.mktemp("knife-edge")
    path = folder / "review-5.yaml"
    path.write_text(yaml.safe_dump(EDGE), encoding="utf-8")
    p = json.loads(run_palsy("posterior", "--patient", str(path), "--json", check=True).stdout)["probability"]["mean"]
    got = {}
    for side, low in _sides(p).items():
        flag = f"{low!r},0.9"
        d = json.loads(run_palsy("posterior", "--patient", str(path), "--thresholds", flag, "--json", check=True).stdout)
        text = run_palsy("posterior", "--patient", str(path), "--thresholds", flag, check=True).stdout
        out = folder / side
        proc = run_palsy("report", str(path), "--thresholds", flag, "--out", str(out), "--format", "html", check=True)
        page = Path(proc.stdout.split()[0]).read_text(encoding="utf-8")
        got[side] = {"json": d, "text": text, "html": page}
    return got


def test_either_side_of_a_threshold_written_alike_reads_at_it(edge):
    """Just above and just below the lower threshold, written alike: the model's zones differ (test, no_test), the
    words do not; the command, page 1, section 5 and the card all say the mean is at the lower threshold, and none
    says 'no further test' or 'repeat testing'."""
    assert edge["above"]["json"]["decision"]["action"] == "test"
    assert edge["below"]["json"]["decision"]["action"] == "no_test"
    for side, got in edge.items():
        dec = got["json"]["decision"]
        pct = W.percent(dec["probability"])
        assert pct == W.percent(dec["thresholds"]["low"])
        at = f"at the lower threshold (the mean reads {pct}, as the threshold does)"
        decision_line = next(line for line in got["text"].splitlines() if line.startswith("Decision"))
        page1 = _text(_between(got["html"], '<div id="decision">', "</div>"))
        section5 = _text(_between(got["html"], '<p id="decision-statement">', "</p>"))
        detail = cards.detail(got["json"]).replace("\\", "")
        for where, text in (("command", decision_line), ("page 1", page1), ("section 5", section5), ("card", detail)):
            assert at in text.replace("At the lower", "at the lower"), (side, where, text[:400])
            for zone in ("no further test", "repeat testing"):
                assert zone not in text, (side, where, zone)
        # the further negative LPs: never 'already below' a threshold written as the mean
        assert "already below" not in got["text"] and "already below" not in section5, side


@pytest.fixture(scope="module")
def central(posterior_subtype, tmp_path_factory):
    """The forehead-sparing vignette, as the reviewer ran it: its report and JSON answer."""
    folder = tmp_path_factory.mktemp("central")
    doc = yaml.safe_load((VIGNETTES / "forehead_spared.yaml").read_text(encoding="utf-8"))
    path = folder / "forehead_spared.yaml"
    path.write_text(yaml.safe_dump(doc["patient"], allow_unicode=True), encoding="utf-8")
    proc = run_palsy("report", str(path), "--out", str(folder), "--format", "html", check=True)
    page = Path(proc.stdout.split()[0]).read_text(encoding="utf-8")
    d = json.loads(run_palsy("posterior", "--patient", str(path), "--json", check=True).stdout)
    text = run_palsy("posterior", "--patient", str(path), check=True).stdout
    return {"html": page, "json": d, "text": text}


def test_section_5_of_a_central_palsy_does_not_count_lps_with_its_decision(central):
    """Finding 7: the decision's statement in section 5 has no count of further negative LPs; the count is said
    only if the palsy proves peripheral, after the note that the tests apply only then (as page 1 qualifies each
    test); page 1 states no count at all; the command says it with the same qualifier."""
    d = central["json"]
    assert not d["in_scope"] and d["decision"]["central"] and d["decision"]["negative_lps_to_low"]
    statement = _text(_between(central["html"], '<p id="decision-statement">', "</p>"))
    assert "negative LPs" not in statement, statement
    note = _text(_between(central["html"], '<p class="if-peripheral" id="tests-if-peripheral">', "</p>"))
    assert note.startswith("The tests below and further LPs are those of a peripheral palsy")
    count = note[note.index(W.IF_PERIPHERAL):]
    assert "negative LPs to fall below" in count or "P(infiltration)" in count, note
    page1 = _text(_between(central["html"], '<div id="decision">', "</div>"))
    assert "negative LPs" not in page1
    line = next(x for x in central["text"].splitlines() if "negative LPs" in x)
    assert line.strip().startswith(W.IF_PERIPHERAL.strip()), line


def test_an_in_scope_palsy_keeps_its_count_in_the_statement(edge):
    """A peripheral palsy: the count (or 'at the threshold') stays in section 5's statement, with no qualifier."""
    statement = _text(_between(edge["above"]["html"], '<p id="decision-statement">', "</p>"))
    assert "negative LPs" in statement and W.IF_PERIPHERAL not in statement
    assert '<p class="if-peripheral"' not in edge["above"]["html"]
