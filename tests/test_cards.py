"""The CDS Hooks card's summary marks a tie and the atypical flag (a clinician's review, December 2026, finding 8:
"Escalate today: P(leukaemic infiltration) 44.7% (mean; 90% CrI 0.9% to 97.6%); the leading cause" with
vincristine neuropathy at 43.0% and the answer flagged atypical).

A tie is the answer's ``tied`` (the causes tied with the leading one), by the one rule the project has for it,
:func:`palsy.model.summaries.tied_with` (the teaching pages' near-tie: means that differ by less than ``TIE_MC_ERRORS``
Monte Carlo errors of their difference); the card sets no rule of its own. Its summary then says no cause leads,
and an answer the atypicality check flags ends with the flag; under 140 characters with every label, in every
case (the forms of tests/test_cards_decision.py's length test, each with ties and the flag)."""

from __future__ import annotations

import pytest
from test_cards_decision import _variants, without_positive_lp
from test_report_decision import PATIENT_2B  # finding 2b: critical, zoster leading; the length test's base

from palsy.model import answer as A
from palsy.model import decision, guidance, paths, teach
from palsy.model import findings as F
from palsy.reports import cards
from palsy.reports import wording as W

#: finding 8 of the review: escalating, infiltration 44.7% against vincristine neuropathy 43.0%, atypical
TIED = {"id": "review-8", "lineage": "AML", "remission": "remission_on_treatment", "onset": "progressive",
        "laterality": "bilateral", "other_cranial_nerves": "one_or_more", "peripheral_nerves": "one_or_more",
        "vesicles": "unknown", "otoscopy": "abnormal", "otalgia": "present", "mri": "otomastoid_inflammation",
        "recent_vincristine": "yes"}


@pytest.fixture(scope="module")
def answered(draws_subtype):
    """Answers as ``palsy posterior --json`` gives them (default variant, decision and actions): their ``tied``
    is the teaching pages' (:func:`palsy.model.teach.ties`), one rule."""
    ds = decision.load(paths.priors(), draws_subtype.causes)
    gs = guidance.load(paths.priors(), draws_subtype.causes, draws_subtype.schema)
    tables = A.Tables(draws_subtype)
    ess = teach.ess_of(draws_subtype)
    out = {}
    for name, data in (("tied", TIED), ("2b", PATIENT_2B)):
        ans = A.answer(F.parse_patient(data), draws_subtype, tables=tables, decision_settings=ds, guidance=gs,
                       shapley=False, rests_on=False)
        out[name] = ans.to_dict()
        assert out[name]["tied"] == teach.ties(ans, ess)
    return out


def _said_to_lead(summary: str) -> bool:
    """Whether a summary names one cause as leading ('; leading: ...', '; the leading cause'; 'whatever leads' says
    the opposite)."""
    return "leading" in summary


def _tail(summary: str) -> str:
    """What follows the interval, the atypical mark left out."""
    for mark in cards.ATYPICAL:
        if summary.endswith(mark):
            summary = summary[:-len(mark)]
            break
    return summary[summary.index("CrI "):].partition(")")[2]


def test_the_reviewed_tie_is_named_as_a_tie_and_the_flag_said(answered):
    """Finding 8: infiltration and vincristine neuropathy within the Monte Carlo error of their difference (the
    teaching pages' rule), the answer atypical. The summary escalates, says neither leads, names the tie with
    vincristine's mean and the flag."""
    d = answered["tied"]
    assert d["leading_cause"] == "infiltration" and d["tied"] == ["vincristine"], d["tied"]
    assert d["atypical"]["flag"]
    s = cards.summary(d)
    assert len(s) <= cards.SUMMARY_MAX, s
    assert s.startswith("Escalate today, whatever leads: P(leukaemic infiltration)"), s  # a mimic is level with it
    assert not _said_to_lead(s) and "the leading cause" not in s, s
    vinc = next(c for c in d["causes"] if c["cause"] == "vincristine")["probability"]["mean"]
    assert f"; tied with vincristine {W.percent(vinc)}" in s, s
    assert s.endswith(cards.ATYPICAL), s
    # the same answer without the tie names infiltration as the leading cause, and still the flag
    alone = cards.summary({**d, "tied": []})
    assert "; the leading cause; atypical findings" in alone, alone
    # the card itself carries the summary, and its extension the leading cause as before
    card = cards.card(d, uuid="u", source_label="palsy")
    assert card["summary"] == s and card["extension"]["palsy"]["leading_cause"] == "infiltration"


def test_a_tie_between_mimics_names_no_leader(answered):
    """Two mimics tied ahead of infiltration: '; tied: A a%, B b%', never 'leading'; the escalation keeps 'whatever
    leads'."""
    d = without_positive_lp(answered["2b"])  # an escalation that names the differential (not blasts in the CSF)
    others = [c["cause"] for c in sorted(d["causes"], key=lambda c: -c["probability"]["mean"]) if c["cause"] != "infiltration"]
    d["leading_cause"], d["tied"] = others[0], [others[1]]
    d["atypical"] = {**d["atypical"], "flag": False}
    s = cards.summary(d)
    assert "; tied: " in s and not _said_to_lead(s), s
    assert s.startswith("Escalate today, whatever leads: ") == (cards.indicator(d) == "critical")
    names = [cards.cause_name(d, c) for c in (others[0], others[1])]
    shorts = [d["model"]["cause_labels"][c]["short"] for c in (others[0], others[1])]
    assert all(n in s for n in names) or all(n in s for n in shorts), s
    assert not s.endswith(cards.ATYPICAL)


def test_a_tie_the_answer_does_not_carry_is_not_invented(answered):
    """The card has no rule of its own: without ``tied`` (or with a cause not weighed) it names the leader."""
    d = {k: v for k, v in without_positive_lp(answered["2b"]).items() if k != "tied"}
    assert cards.leaders(d) == [d["leading_cause"]]
    assert cards.leaders({**d, "tied": ["no_such_cause"]}) == [d["leading_cause"]]
    assert "; leading: " in cards.summary(d)


def _ties(d: dict, cause: str) -> list[list[str]]:
    """Ties to try with ``cause`` leading: none, one other (infiltration when a mimic leads, so the 'tied with' form;
    the longest-labelled mimic otherwise), two mimics, every other cause."""
    others = [c["cause"] for c in d["causes"] if c["cause"] != cause]
    mimics = [c for c in others if c != "infiltration"]
    labels = d["model"]["cause_labels"]
    longest = max(mimics, key=lambda c: len(labels[c]["label"]))
    return [[], ["infiltration"] if cause != "infiltration" else [longest], mimics[:2], others]


def test_the_summary_stays_under_140_with_ties_and_the_flag(answered):
    """tests/test_cards_decision.py's forms (every cause leading, the longest label and a 150-character one, the
    extremes of the probability and of the interval's mass, escalating or not, central or not), each with no tie,
    one, two and every cause tied, flagged atypical or not: under 140 characters, the mean and the interval always
    there, the flag whenever flagged, and no cause said to lead in a tie. The real labels are given in full where
    they fit."""
    base = answered["2b"]
    seen_full_tie = seen_flag_with_name = 0
    for cause, label, critical, central, v in _variants(base):
        for tied in _ties(v, cause):
            for flag in (False, True):
                w = {**v, "tied": tied, "atypical": {**v["atypical"], "flag": flag}}
                s = cards.summary(w)
                assert len(s) <= cards.SUMMARY_MAX, s
                assert "(mean; " in s and "% CrI " in s and not s.endswith("…"), s
                assert s.startswith("Escalate today") == critical, s
                assert ("if peripheral: " in s.lower()) == central, s
                assert s.endswith(cards.ATYPICAL) == flag, s
                tail = _tail(s)
                if tied:
                    assert not _said_to_lead(s), s
                    assert tail.startswith(("; tied with ", "; tied: ")) or tail in ("; no cause clearly leads", ""), s
                    if critical:
                        assert s.startswith("Escalate today, whatever leads"), s
                    if len(label) < 60 and not critical and not central and v["probability"]["mean"] == 0.341 \
                            and len(tied) == 1:
                        named = [cards.cause_name(w, c) for c in cards.leaders(w) if c != "infiltration"]
                        seen_full_tie += all(n in s for n in named)
                else:
                    assert tail in ("; the leading cause", "") or tail.startswith("; leading: "), s
                    if flag and len(label) < 60 and not central and cause != "infiltration":
                        seen_flag_with_name += tail.startswith("; leading: ")
    assert seen_full_tie and seen_flag_with_name


def test_the_tie_rule_analytically():
    """The rule of a tie (palsy.model.summaries.tied_with), analytically: a cause whose mean is the lead's less
    one Monte Carlo error of the difference is tied, one ten errors behind is not, a cause not weighed never is,
    and PSIS weights count (a draw weighted zero does not move it)."""
    import numpy as np

    from palsy.model.summaries import TIE_MC_ERRORS, tied_with

    rng = np.random.default_rng(3)
    n, ess = 4000, 1000.0
    noise = rng.normal(0.0, 0.1, n)
    noise -= noise.mean()
    se = noise.std() / np.sqrt(ess)  # the Monte Carlo error of the difference lead - near
    lead = np.full(n, 0.4)
    near = lead - noise - 1.0 * se  # mean difference: one error
    far = lead - noise - 10.0 * se  # ten errors
    p = np.stack([lead, near, far, near], axis=1)
    active = np.array([True, True, True, False])
    assert TIE_MC_ERRORS == 2.0
    assert tied_with(p, 0, active, None, ess) == [1]
    assert tied_with(p, 0, np.ones(4, bool), None, ess) == [1, 3]
    w = np.ones(n)
    w[0] = 0.0
    p2 = p.copy()
    p2[0, 1] = -100.0  # a draw weighted zero: not counted
    assert tied_with(p2, 0, active, w / w.sum(), ess) == tied_with(p2[1:], 0, active, None, ess * (n - 1) / n)
    # weights that spend the draws: all the mass on 40 of them leaves a hundredth of the ESS, ten times the
    # error, so ten errors behind becomes about one and ties (the same draws unweighted do not)
    w = np.zeros(n)
    w[:40] = 1.0
    sub = p[:40]
    assert tied_with(sub, 0, active, None, ess) == [1]
    assert tied_with(p, 0, active, w, ess) == tied_with(sub, 0, active, None, ess * 40 / n)


def test_an_escalation_with_blasts_in_the_csf_names_the_csf_not_a_mimic(draws_subtype):
    """A clinician's review (December 2026): AML off treatment, blasts in the blood, an LP positive by cytology and
    flow from a tap not recorded as clean: Bell's palsy led the differential and the card read 'Escalate today,
    whatever leads: ...; leading: Bell's palsy 53.2%'. The summary now ends with the CSF's result."""
    ds = decision.load(paths.priors(), draws_subtype.causes)
    gs = guidance.load(paths.priors(), draws_subtype.causes, draws_subtype.schema)
    data = {"id": "review-s14-1", "lineage": "AML", "recent_vincristine": "no", "onset": "acute",
            "laterality": "unilateral", "vesicles": "absent", "otoscopy": "normal", "mri": "normal",
            "remission": "remission_off_treatment", "circulating_blasts": "present",
            "csf": [{"cytology": "positive", "flow": "positive"}]}
    d = A.answer(F.parse_patient(data), draws_subtype, decision_settings=ds, guidance=gs, shapley=False,
                 rests_on=False).to_dict()
    assert cards.indicator(d) == "critical"
    s = cards.summary(d)
    assert s.endswith(cards.CSF_POSITIVE) and "leading" not in s and "tied" not in s, s
    assert s.startswith(cards.ESCALATE) and len(s) <= cards.SUMMARY_MAX
    # the same patient with every LP negative: the differential is named again
    neg = A.answer(F.parse_patient({**data, "csf": [{"cytology": "negative", "flow": "negative"}]}), draws_subtype,
                   decision_settings=ds, guidance=gs, shapley=False, rests_on=False).to_dict()
    assert cards.CSF_POSITIVE not in cards.summary(neg)
    assert not cards.csf_positive(neg) and cards.csf_positive(d)


def test_the_detail_says_what_page_1_says_of_the_rest(answered):
    """The card's detail says how many actions page 1 lists beyond its six, that the variants were not compared
    (a brief answer computes one) or what the other gives when they differ, and that what the answer rests on is in
    the full report (s16: the card had dropped actions 7-8 and both lines unsaid)."""
    d = dict(answered["tied"])
    text = cards.detail(d)
    more = len(d["actions"]) - cards.PAGE1_ACTIONS
    assert more > 0 and f"And {more} more in the full report." in text
    assert "variant alone: the model's uncertainty between its variants is not assessed here" in text
    assert "What the answer rests on" in text and "full report" in text
    fewer = {**d, "actions": d["actions"][:cards.PAGE1_ACTIONS]}
    assert "more in the full report" not in cards.detail(fewer)
    prob = {"mean": 0.58, "median": 0.6, "lower": 0.062, "upper": 0.97, "ci": 0.9}
    differ = {"variant": "independent", "probability": prob, "difference": 0.2, "threshold": 0.1, "differs": True}
    shown = cards.detail({**d, "variants": differ})
    assert "The other model variant \\(independent\\) gives a mean of 58.0%" in shown and "not assessed" not in shown
    agree = cards.detail({**d, "variants": {**differ, "difference": 0.05, "differs": False}})
    assert "not assessed" not in agree and "other model variant" not in agree


@pytest.mark.parametrize("text", [
    'the report\'s text reads "Suspicious: atypical blasts, see https://evil.example/login or www.evil.example now, '
    'mail x@evil.example"', "FTP://EVIL.EXAMPLE/x; mailto:a@evil.example and xmpp:b@evil.example",
    "evil.example.com/login", "evil.example.рф/login and evil.example.de",
    "[click](https://evil.example) ![i](http://evil.example/p.png) <a href='https://evil.example'>x</a>"])
def test_record_text_on_a_card_never_becomes_a_link(answered, text):
    """s16 attack review S3: markdown's punctuation was escaped, but a renderer's autolinks (a scheme, www., an
    e-mail address, a linkified bare domain) still made the record's text clickable on the card."""
    import re

    detail = cards.detail(answered["2b"], notes=[text])
    line = next(x for x in detail.splitlines() if "evil" in x)
    outside = re.sub(r"`[^`]*`", "", line)  # code spans are never links
    assert not re.search(r"(?i)https?:|ftp:|www\.|mailto:|xmpp:|@|evil\.example", outside), line
    assert "evil.example" in line  # shown, as it is, inside code


def test_ordinary_record_text_with_dots_is_not_set_as_code():
    """What no renderer links stays text: 'Dr.Smith', 'cytology.positive', an ICD code, e.g. (a second review)."""
    assert cards._md("Dr.Smith: cytology.positive, C91.0, e.g. fhir_map.yaml") == \
        "Dr.Smith: cytology.positive, C91.0, e.g. fhir\\_map.yaml"
    assert cards._md("mañana.com/login, пример.рф") == "`mañana.com/login`, `пример.рф`"
