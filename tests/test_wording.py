"""Words that compare a probability with a threshold agree with the numbers written beside them (a clinician's
review, December 2026: "Mean P(infiltration) 10.0% against the thresholds 10.0% (lower: the testing floor):
below the lower threshold: no further test"). The decision's zone compares the unrounded numbers; where the mean
and a threshold are written alike (:func:`palsy.reports.wording.reads_as`) the words say the mean is at the
threshold, not on a side of it: the decision's sentence, a central palsy's place, the further negative LPs, the
one-step note of a test at the testing floor, the other variant's zone, the plain words of a probability and the
atypicality check's numbers. Pure: decisions are made by :func:`palsy.model.decision.decide` and
:func:`palsy.model.decision.zone` or written by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from palsy.model import decision as D
from palsy.model import paths
from palsy.reports import wording as W

ESCALATION = ("an escalation comes first, today (the first of what to do now), whatever the probability; by the "
              "thresholds alone:")
WORKUP = "first, whatever the probability: an LP read by cytology and flow cytometry (what to do now); after it"


@pytest.fixture(scope="module")
def settings():
    """decision.yaml as shipped (its testing floor, 0.10, and its zones' words)."""
    return D.load(paths.priors())


def _useless_lp(p_inf: float) -> list[dict]:
    """One LP whose results move nobody: never worth doing in one step, so the floor sets the lower threshold."""
    p = np.full(4, p_inf)
    return [{"test": "lp", "outcomes": [{"_draws": (np.full(4, 0.9), None), "p_inf": p},
                                        {"_draws": (np.full(4, 0.1), None), "p_inf": p}]}]


def _at_the_floor(settings, p: float, **extra) -> dict:
    """decision.yaml's decision for a mean ``p`` near its testing floor, with the further negative LPs counted."""
    curves = {"cytology": [p * 0.8], "flow": [p * 0.7], "cytology_and_flow": [p * 0.6]}
    dec = D.decide(np.full(4, p), _useless_lp(p), curves, settings)
    return {**dec, "escalation_text": "", "central": False, **extra}


@pytest.mark.parametrize("p", [0.09996, 0.09951, 0.10004, 0.10049])
def test_a_mean_written_as_the_testing_floor_is_at_it_on_either_side(settings, p):
    """The review's knife edge, both ways: a mean just below the floor (the zone 'no further test') or just above
    it ('repeat testing'), written '10.0%' as the floor is. The words say it is at the testing floor, where testing
    goes on, and name neither zone; the thresholds' sentence keeps the numbers."""
    dec = _at_the_floor(settings, p)
    assert dec["thresholds"]["floored"] and dec["thresholds"]["low"] == pytest.approx(0.10)
    assert dec["action"] == ("no_test" if p < 0.10 else "test")  # the model's zone: the unrounded comparison
    assert W.percent(dec["probability"]) == W.percent(dec["thresholds"]["low"]) == "10.0%"
    assert W.shown_at(dec) == "lower"
    said = W.decision_what(dec)
    # at the floor the words say what it is for (a second review: 'does not settle which side' instructed no one)
    assert said.startswith("at the testing floor (the mean reads 10.0%, as the floor does): testing goes on"), said
    assert "does not settle" not in said
    unfloored = W.decision_what({**dec, "thresholds": {**dec["thresholds"], "floored": False}})
    assert unfloored.startswith("at the lower threshold (the mean reads 10.0%, as the threshold does)"), unfloored
    assert dec["action_text"] not in said
    for zone in settings.action_text.values():  # neither side's words, whichever the unrounded mean is on
        assert zone not in said
    assert "no further test" not in said and "repeat testing" not in said
    assert W.decision_sentence(dec) == (f"Mean P(infiltration) 10.0% against the thresholds 10.0% (lower: the testing "
                                        f"floor) and 80.0% (upper): {said}.")
    # the escalation and the pending work-up still come first
    first = W.decision_what({**dec, "escalation_text": ESCALATION, "workup_text": WORKUP})
    assert first == f"{ESCALATION} {WORKUP} {said}"


@pytest.mark.parametrize("p, action", [(0.0994, "no_test"), (0.1005, "test")])
def test_a_mean_written_apart_from_the_floor_keeps_its_zone(settings, p, action):
    """One digit apart (9.9%, 10.1%): the zone's words, as before."""
    dec = _at_the_floor(settings, p)
    assert dec["action"] == action and W.shown_at(dec) is None
    assert W.decision_what(dec) == settings.action_text[action]


def test_the_upper_threshold_and_thresholds_written_alike():
    """At the upper threshold the same; with both thresholds at one number (no test pays), 'the thresholds'."""
    dec = {"thresholds": {"low": 0.032, "high": 0.8487, "floored": False}, "probability": 0.8486, "action": "test",
           "action_text": "between the thresholds: repeat testing (the next tests below) before deciding",
           "escalation_text": "", "workup_text": ""}
    assert W.shown_at(dec) == "upper"
    assert W.decision_what(dec).startswith("at the upper threshold (the mean reads 84.9%, as the threshold does)")
    same = {**dec, "thresholds": {"low": 0.8, "high": 0.8, "floored": False}, "probability": 0.80001, "action": "treat"}
    assert W.shown_at(same) == "both" and W.decision_what(same).startswith("at the thresholds (the mean reads 80.0%")


def test_a_central_palsy_at_a_threshold_is_placed_at_it(settings):
    """A palsy that may be central gets no zone's words but where the mean falls: 'at the lower one' at the knife
    edge, not 'below the lower one'."""
    dec = _at_the_floor(settings, 0.09996, central=True)
    said = W.decision_what(dec)
    assert "(the mean is at the lower one)" in said and W.ZONE_PLACE["no_test"] not in said
    assert "only if the palsy proves peripheral" in said


def test_every_comparison_with_a_threshold_agrees_with_the_numbers_written():
    """The class, over a grid of means and thresholds around the knife edges: whenever the decision's words name a
    side of a threshold (the model's :func:`~palsy.model.decision.zone`), the numbers as written are on that side;
    where they read alike the words say the mean is at the threshold."""
    lows, highs = (0.03, 0.0996, 0.1, 0.1004), (0.8, 0.8487)
    offsets = (-0.0006, -0.0004, -0.0001, 0.0, 0.0001, 0.0004, 0.0006)
    texts = {"no_test": "below the lower threshold", "test": "between the thresholds", "treat": "above the upper threshold"}
    seen_edge = 0
    for low, high, off, base in itertools.product(lows, highs, offsets, ("low", "high")):
        p = (low if base == "low" else high) + off
        action = D.zone(p, low, high)
        dec = {"thresholds": {"low": low, "high": high, "floored": False}, "probability": p, "action": action,
               "action_text": texts[action], "escalation_text": "", "workup_text": ""}
        said, mean = W.decision_what(dec), W.as_written(p)
        if "at the" in said:
            seen_edge += 1
            assert W.reads_as(p, low) or W.reads_as(p, high), (p, low, high, said)
        elif action == "no_test":
            assert mean < W.as_written(low), (p, low, said)
        elif action == "treat":
            assert mean > W.as_written(high), (p, high, said)
        else:
            assert W.as_written(low) < mean < W.as_written(high), (p, low, high, said)
        central = W.decision_what({**dec, "central": True})
        assert ("(the mean is at the" in central) == ("at the" in said)
    assert seen_edge


def test_the_negative_lps_at_the_floor_are_not_already_below(settings):
    """The review: 'P(infiltration) is already below the lower threshold 10.0%' beside a mean written 10.0%. At the
    knife edge the sentence says the mean reads as the threshold and the LPs were not counted; the work-up still
    due is said as before; a mean written below it keeps 'already below'."""
    dec = _at_the_floor(settings, 0.09996)
    assert set(dec["negative_lps_to_low"].values()) == {0}
    line = W.negative_lps_sentence(dec, str)
    assert "already below" not in line and "reads as the lower threshold 10.0%" in line
    assert "not counted" in line
    due = W.negative_lps_sentence({**dec, "workup_text": WORKUP}, str)
    assert due.endswith("The work-up is still due first, whatever the probability (what to do now).")
    below = _at_the_floor(settings, 0.0994)
    assert "already below the lower threshold 10.0%" in W.negative_lps_sentence(below, str)
    above = _at_the_floor(settings, 0.10004)  # just above: the LPs are counted (one here) and said
    assert W.negative_lps_sentence(above, str).startswith("Further negative LPs to fall below 10.0%: cytology: 1")


def test_a_test_at_the_floor_as_written_carries_the_one_step_note(settings):
    """At the floor the decision keeps testing by decision.yaml's own rule ('at or above it'): a test below 0 in one
    step says so, just under the floor as just over it, not 'its harm outweighs' (the review, finding 5)."""
    for p in (0.09996, 0.10004):
        dec = _at_the_floor(settings, p)
        lp = dec["tests"][0]
        assert lp["value_of_information"] < 0
        text = W.change_by_test(lp, dec)
        assert W.ONE_STEP in text and "its harm outweighs" not in text, (p, text)
    apart = _at_the_floor(settings, 0.0994)
    assert "its harm outweighs" in W.change_by_test(apart["tests"][0], apart)


def test_the_other_variant_written_as_a_threshold():
    """The other variant's mean written as a threshold: no zone named for it, the decision said only to possibly
    differ; a mean in another zone of this answer's thresholds says so, and that the decision may differ (the other
    variant's own thresholds are not computed: a teacher's review, s16)."""
    dec = {"thresholds": {"low": 0.1, "high": 0.85}, "action": "test", "probability": 0.3}
    v = {"variant": "independent", "differs": True, "threshold": 0.1, "action": "no_test",
         "probability": {"mean": 0.09996, "lower": 0.01, "upper": 0.4, "ci": 0.9}}
    text = W.variants_sentence(v, dec)
    assert "reads as a threshold of the decision" in text and "another zone" not in text
    assert "may differ under it" in text
    v["probability"]["mean"] = 0.05
    assert "falls in another zone of this answer's decision" in W.variants_sentence(v, dec)
    assert "would differ" not in W.variants_sentence(v, dec)


@pytest.mark.parametrize("p, said", [(0.9496, "very likely"), (0.9494, "infiltration is likely"),
                                     (0.74996, "infiltration is likely"), (0.04996, "less likely, but possible"),
                                     (0.0494, "unlikely, though still possible"), (0.24996, "a real possibility")])
def test_plain_words_follow_the_number_as_written(p, said):
    """94.96% is written 95.0%: the words of 95% ('very likely'), not those of 94.9%."""
    assert said in W.words(p), (W.percent(p), W.words(p))


def test_numbers_written_apart():
    """The atypicality check's tail probability and its threshold written with the digits that tell them apart."""
    assert W.apart(0.00996, 0.01) == ("0.996%", "1.000%")
    assert W.apart(0.00125, 0.01) == ("0.1%", "1.0%")
    assert W.apart(0.01, 0.01) == ("1.0000%", "1.0000%")


def test_a_central_palsy_gets_the_lp_count_and_the_decider_only_if_peripheral(settings):
    """Forehead spared: the further negative LPs and the test that decides a threshold are a peripheral palsy's
    work-up; they are said only as what holds if the palsy proves peripheral (page 1's qualifier)."""
    dec = _at_the_floor(settings, 0.3, central=True)
    dec = {**dec, "negative_lps_to_low": {"cytology": 2, "flow": None}}
    line = W.negative_lps_sentence(dec, str)
    assert line == ("Only if the palsy proves peripheral: further negative LPs to fall below the lower threshold 10.0%: "
                    "cytology: 2; flow: not reachable within the LPs allowed.")
    assert W.negative_lps_sentence(dec, str, central=False).startswith("Further negative LPs")
    edge = {**dec, "at_threshold": {"threshold": "lower", "value": 0.1, "within_mc_error": True, "share_above": 0.5,
                                    "decided_by": "lp"}}
    assert W.threshold_sentence(edge, str).startswith("Only if the palsy proves peripheral: at the lower threshold")
    assert W.threshold_sentence(edge, str, central=False).startswith("At the lower threshold")
