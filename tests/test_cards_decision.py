"""The CDS Hooks card's summary and decision (a clinician's review, December 2026, findings 4 and 9): the summary
says the statistic is the mean and the interval's mass, stays under 140 characters with any cause's label, and
names an escalation first rather than a mimic; the detail states the decision through the one function the
report uses (escalation, pending work-up), lists the tests its words point to ("the next tests below"), and
does not point a palsy that may be central to the LP. The reviewer's patients are answered as they ran them
(``palsy posterior --json``; their card functions on that JSON)."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml
from conftest import REPO, run_palsy

from palsy.reports import cards
from palsy.reports import wording as W

VIGNETTES = REPO / "tests" / "fixtures" / "vignettes"
REVIEWED = ("positive_cytology_remission", "contaminated_positive", "progressive_bilateral_no_workup", "forehead_spared",
            "bell_like")
#: finding 2b: a negative first LP, then a clean positive cytology (the critical card whose summary named zoster)
FLAGS_2B = ("--lineage", "T-ALL", "--remission", "not_in_remission", "--onset", "acute", "--laterality", "unilateral",
            "--vesicles", "absent", "--eighth-nerve", "none", "--otoscopy", "normal", "--other-cranial-nerves", "none",
            "--mri", "facial_nerve_enhancement", "--csf-profile", "pleocytosis", "--csf", "cytology=negative,flow=negative",
            "--csf", "cytology=positive,flow=negative,traumatic=no", "--circulating-blasts", "absent")


def _plain(markdown: str) -> str:
    """The card's markdown as read: bold marks dropped, the escapes of text from data undone, spaces collapsed."""
    return " ".join(re.sub(r"\\([\\`*_{}\[\]()<>#+!|~])", r"\1", re.sub(r"(?<!\\)\*\*", "", markdown)).split())


@pytest.fixture(scope="module")
def answers(posterior_subtype, tmp_path_factory):
    """The reviewer's patients' JSON answers (default variant) as ``palsy posterior --json`` gives them."""
    pats = tmp_path_factory.mktemp("card-patients")
    got = {}
    for name in REVIEWED:
        doc = yaml.safe_load((VIGNETTES / f"{name}.yaml").read_text(encoding="utf-8"))
        path = pats / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc["patient"], allow_unicode=True), encoding="utf-8")
        got[name] = json.loads(run_palsy("posterior", "--patient", str(path), "--json", check=True).stdout)
    got["2b"] = json.loads(run_palsy("posterior", *FLAGS_2B, "--json", check=True).stdout)
    return got


def _interval(d: dict) -> str:
    p = d["probability"]
    return f"(mean; {W.interval(p['lower'], p['upper'], p['ci'])})"


def test_the_summary_says_mean_and_the_interval_mass(answers):
    """'P(leukaemic infiltration) 34.1% (mean; 90% CrI 0.8% to 94.2%)': the statistic and the interval's mass,
    under 140 characters, for every reviewed patient."""
    for name, d in answers.items():
        s = cards.summary(d)
        assert len(s) <= cards.SUMMARY_MAX, (name, s)
        assert f"P(leukaemic infiltration) {W.percent(d['probability']['mean'])} {_interval(d)}" in s, (name, s)
        assert "90% CrI" in s


def test_an_escalating_card_names_the_escalation_before_a_mimic(answers):
    """Finding 2b: a clean positive cytology escalates (critical) while zoster leads the differential. The summary
    opens with the escalation and says the leading mimic does not settle it; a card that does not escalate opens
    with the palsy and names the leading cause as before."""
    d = answers["2b"]
    assert cards.indicator(d) == "critical" and d["leading_cause"] != "infiltration"
    assert any(a["urgency"] == "escalation" for a in d["actions"][:cards.PAGE1_ACTIONS])
    # its clean positive cytology is what the escalation acts on: the summary names it, not the mimic
    s = cards.summary(d)
    assert s.startswith("Escalate today, whatever leads: P(leukaemic infiltration)") and s.endswith(cards.CSF_POSITIVE)
    d = without_positive_lp(d)  # an escalation without blasts in the CSF names the leading mimic after it
    s = cards.summary(d)
    assert s.startswith("Escalate today, whatever leads: P(leukaemic infiltration)"), s
    mimic_labels = d["model"]["cause_labels"][d["leading_cause"]]
    named = [n for n in (mimic_labels["label"], mimic_labels["short"]) if n in s]
    assert named and s.index("Escalate today") < s.index("P(leukaemic") < s.index(named[0])
    calm = answers["bell_like"]
    assert cards.indicator(calm) != "critical"
    assert cards.summary(calm).startswith("Facial palsy: P(leukaemic infiltration)")
    assert "Escalate" not in cards.summary(calm)
    # the central palsy escalates (its own work-up) and says the number holds only if peripheral
    central = answers["forehead_spared"]
    assert cards.indicator(central) == "critical" and cards.central(central)
    assert "; if peripheral: P(leukaemic infiltration)" in cards.summary(central)


def without_positive_lp(d: dict) -> dict:
    """``d`` with every positive LP result read negative: an escalating card then names the differential, where
    one with blasts in the CSF names the CSF (cards.CSF_POSITIVE)."""
    v = copy.deepcopy(d)
    v["patient"]["csf"] = [{k: ("negative" if r == "positive" else r) for k, r in lp.items()}
                           for lp in v["patient"].get("csf") or []]
    return v


def _variants(d: dict, positive_csf: bool = False):
    """``d`` with every cause leading, its labels made as long as the longest real one and far longer, the
    extremes of the probability and of the interval's mass, escalating or not, central or not; its LPs as they
    are (``positive_csf``) or with every positive result read negative."""
    d = d if positive_csf else without_positive_lp(d)
    labels = d["model"]["cause_labels"]
    longest = max((v["label"] for v in labels.values()), key=len)
    for cause in [c["cause"] for c in d["causes"]]:
        for label in (labels[cause]["label"], longest, "x" * 150):
            for mean, lower, upper, ci in ((0.341, 0.008, 0.942, 0.9), (1e-6, 1e-7, 2e-6, 0.999999),
                                           (0.9999999, 0.999999, 0.99999999, 0.95)):
                for critical in (True, False):
                    for central in (True, False):
                        v = copy.deepcopy(d)
                        v["leading_cause"] = cause
                        v["model"]["cause_labels"][cause]["label"] = label
                        v["probability"] = {**v["probability"], "mean": mean, "lower": lower, "upper": upper, "ci": ci}
                        if ci != 0.9:  # the leading cause's own number at its widest ('>99.9%')
                            next(c for c in v["causes"] if c["cause"] == cause)["probability"]["mean"] = 0.99999999
                        for a in v["actions"]:
                            a["urgency"] = "escalation" if critical and a is v["actions"][0] else "care"
                        v["decision"]["action"] = "test"
                        v["in_scope"] = not central
                        v["patient"]["forehead"] = "spared" if central else "involved"
                        v["decision"]["central"] = central  # as the answer's decision carries it
                        yield cause, label, critical, central, v


def test_the_summary_stays_under_140_with_any_label(answers):
    """Every cause as the leading one, with the longest label of model.yaml and a 150-character one, the extremes
    of the probability and an interval of mass 99.9999%: always under 140 characters and always with the mean
    and the interval; the real labels are given in full where they fit (not always shortened)."""
    d = answers["2b"]
    seen_full = set()
    for cause, label, critical, central, v in _variants(d):
        s = cards.summary(v)
        assert len(s) <= cards.SUMMARY_MAX, s
        assert "(mean; " in s and "% CrI " in s and not s.endswith("…"), s
        assert s.startswith("Escalate today") == critical, s
        assert ("if peripheral: " in s.lower()) == central, s
        if len(label) < 60 and not critical and not central and v["probability"]["mean"] == 0.341:
            if cause != "infiltration":
                assert f"; leading: {label} " in s, s
                seen_full.add(cause)
    assert len(seen_full) == len(d["causes"]) - 1
    # with blasts in the CSF an escalating summary ends with the CSF's result, whatever the labels and numbers
    for _cause, _label, critical, _central, v in _variants(d, positive_csf=True):
        s = cards.summary(v)
        assert len(s) <= cards.SUMMARY_MAX and "(mean; " in s, s
        assert s.endswith(cards.CSF_POSITIVE) == critical, s


def test_the_card_states_the_decision_as_the_report_does(answers):
    """The card's decision is :func:`wording.decision_what`: the escalation first and the pending work-up, as
    page 1 says it; where its words point to 'the next tests below' the card lists them below (a card has no
    section of next tests: the review found the words pointing to nothing)."""
    for name, d in answers.items():
        dec = d["decision"]
        text = _plain(cards.detail(d))
        is_central = cards.central(d)
        said = " ".join(W.decision_what(dec, central=is_central).split())
        assert said in text, name
        for part in (dec["escalation_text"], dec["workup_text"]):
            if part:
                assert " ".join(part.split()) in text, (name, part)
        decision = text[text.index("Decision on the mean"):text.index("Limits:")]
        names = [W.sentence_start(cards.next_test_name(t["test"])) for t in dec["tests"]]
        if is_central:
            continue
        if "below" in said:
            assert dec["tests"], name
            for n in names:
                assert decision.index(said) < decision.index(f"- {n}: "), (name, n)
    # the reviewer's escalating patients carry the escalation before the zone's words
    for name in ("positive_cytology_remission", "2b", "progressive_bilateral_no_workup"):
        dec = answers[name]["decision"]
        text = _plain(cards.detail(answers[name]))
        assert dec["escalation_text"] and text.index(" ".join(dec["escalation_text"].split())) < text.index(
            " ".join(dec["action_text"].split()))
    # the work-up still due is said in the card too
    no_workup = answers["progressive_bilateral_no_workup"]["decision"]
    assert no_workup["workup_text"] and " ".join(no_workup["workup_text"].split()) in _plain(
        cards.detail(answers["progressive_bilateral_no_workup"]))


def test_a_central_palsy_card_does_not_point_to_the_lp(answers):
    """Forehead spared: the card's decision says the central work-up comes first and that the thresholds apply
    only if the palsy proves peripheral; it neither says 'repeat testing (the next tests below)' nor lists the
    LP. A palsy at diagnosis is out of scope too but peripheral: not treated as central."""
    d = answers["forehead_spared"]
    text = _plain(cards.detail(d))
    decision = text[text.index("Decision on the mean"):text.index("Limits:")]
    assert "repeat testing" not in decision and "next tests below" not in decision
    assert "the central work-up of what to do now comes first" in decision
    assert "only if the palsy proves peripheral" in decision
    assert cards.next_test_name("lp") not in decision.lower()
    atdx = copy.deepcopy(answers["bell_like"])
    atdx["in_scope"], atdx["out_of_population"] = False, True
    atdx["patient"]["remission"] = "at_diagnosis"
    assert not cards.central(atdx)
    assert cards.summary(atdx).startswith(("Facial palsy: ", "Escalate today"))
    assert "if peripheral" not in cards.summary(atdx).lower()


def test_the_card_reads_the_answers_schema_not_palsys_own(answers):
    """A service configured with another evidence folder names its tests with that folder's labels, and reads
    whether the palsy may be central from the decision the answer carries."""
    from types import SimpleNamespace

    d = copy.deepcopy(answers["bell_like"])
    tests = [t["test"] for t in d["decision"]["tests"]]
    assert tests, "the bell-like answer has next tests"
    site = SimpleNamespace(next_tests={t: SimpleNamespace(label=f"the site's {t} ({i})") for i, t in enumerate(tests)},
                           categorical=(), scope_note=lambda *a: None)
    text = _plain(cards.detail(d, schema=site))
    for i, t in enumerate(tests):
        assert f"The site's {t} ({i})" in text
    central = copy.deepcopy(d)
    central["in_scope"] = False
    central["decision"]["central"] = True
    assert cards.central(central, site) and "The site's" not in _plain(cards.detail(central, schema=site))
    central["decision"]["central"] = False
    assert not cards.central(central, site)


@pytest.mark.parametrize("mean,action,expected", [
    (0.0998, "no_test", "warning"),   # reads as the floor, 10.0%: testing goes on there, so a work-up
    (0.0949, "no_test", "info"),      # 9.5%: clearly below it
    (0.1002, "test", "warning"),
    (0.9556, "test", "critical"),     # reads as the upper threshold, 95.6%: its words say the mean does not settle it
    (0.9540, "test", "warning"),
    (0.9570, "treat", "critical"),
])
def test_a_mean_that_reads_as_a_threshold_takes_its_more_urgent_side(answers, mean, action, expected):
    """The card's indicator at the knife edge: the zone is the unrounded comparison, the words the written one (a
    mean of 9.98% against a floor of 10% is 'at the testing floor: testing goes on'), and the indicator follows the
    words to the more urgent side; away from the edge it is the zone's."""
    d = copy.deepcopy(answers["bell_like"])
    d["actions"] = [a for a in d["actions"] if a.get("urgency") not in ("escalation", "workup")]
    d["decision"] = {**d["decision"], "action": action, "probability": mean,
                     "thresholds": {**d["decision"]["thresholds"], "low": 0.10, "high": 0.9558, "floored": True}}
    assert cards.indicator(d) == expected
