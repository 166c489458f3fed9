"""How numbers are written for people: never 0% or 100%, always with the interval; and each page in one spelling.

The spelling: palsy's pages take their words from files written in two spellings (the schema's and the causes'
labels in US English, "leukemic infiltration"; the actions, decisions, reasonings and scope notes in British,
"leukaemia team", "haematologists", "papilloedema"). Each kind of page declares one spelling
(:data:`PAGE_SPELLING`) and is rendered through :func:`styled` (or :func:`house_style` for text), so no page
mixes the two; citations are quoted as published (:data:`AS_PUBLISHED`).
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Mapping
from typing import Any


def percent(p: float, digits: int = 1) -> str:
    """A probability as a percentage that never reads 0% or 100% ("<0.1%", ">99.9%")."""
    lo = 10 ** -(digits + 2)
    if p < lo:
        return f"<{100 * lo:.{digits}f}%"
    if p > 1 - lo:
        return f">{100 * (1 - lo):.{digits}f}%"
    text = f"{100 * p:.{digits}f}%"
    if text == f"{0:.{digits}f}%":
        return f"<{100 * lo:.{digits}f}%"
    if text == f"{100:.{digits}f}%":
        return f">{100 * (1 - lo):.{digits}f}%"
    return text


def share(x: float) -> str:
    """A share with a Monte Carlo error of a few points (what an answer rests on) as a whole percent that never
    reads 0% or 100% ('<1%', '>99%')."""
    n = round(100 * x)
    if n < 1:  # 0.5 rounds to 0 (to even): below one percent as written, never 0%
        return "<1%"
    if n > 99:
        return ">99%"
    return f"{n}%"


def share_error(err: float) -> str:
    """The Monte Carlo error of a share in percentage points, whole ('±3'; '<±1' below half a point)."""
    n = round(100 * err)
    return "<±1" if n < 1 else f"±{n}"


def mean_outside(s: dict) -> str:
    """What a reader needs when a summary's mean prints outside its own equal-tailed interval (a skewed
    posterior and a narrow interval, e.g. ``--ci 0.5``): '' otherwise (s16 review: "0.8% (50% CrI <0.1% to
    0.3%)" had read as an error)."""
    mean = percent(s["mean"])
    if s["mean"] > s["upper"] and mean != percent(s["upper"]):
        return "the mean lies above its interval: a few draws with a high probability pull it up"
    if s["mean"] < s["lower"] and mean != percent(s["lower"]):
        return "the mean lies below its interval: a few draws with a low probability pull it down"
    return ""


#: What the page says of what the answer rests on under a clinician's pretest (the decomposition is not computed).
RESTS_ON_PRETEST = ("not computed: with a pretest set by hand the base rate is the clinician's value, not the "
                    "model's, so the model's own uncertainty does not describe this answer.")


def pretest_text(p: float) -> str:
    """A pretest set by hand: a point value, never shown with a credible interval of zero width."""
    return f"{percent(p)} (set by hand: a point value, no interval)"


def ci_percent(ci: float) -> str:
    """The mass of a credible interval as a percentage with the digits it needs: '90', '99.9999'
    (never rounded up to '100')."""
    return f"{round(100 * ci, 6):g}"


def probability_with_interval(s: dict) -> str:
    """'84.0% (90% CrI 61.2% to 95.3%)' from a probability summary (mean as the headline)."""
    return f"{percent(s['mean'])} ({ci_percent(s['ci'])}% CrI {percent(s['lower'])} to {percent(s['upper'])})"


def factor(log_lr: float) -> str:
    """A factor on the odds: 'x 9.4' or 'x 0.31' (÷ is avoided so it reads in plain text); two significant
    digits below 1, a trailing zero kept ('x 0.60' beside 'x 0.77', not 'x 0.6': s16 review)."""
    f = math.exp(log_lr)
    if f >= 100:
        return f"x {f:,.0f}"
    if f >= 10:
        return f"x {f:.1f}"
    q = float(f"{f:.2g}")  # two significant digits below 1, written out (never 'x 1e-05')
    if 0 < q < 1:
        return "x " + f"{q:.{1 - math.floor(math.log10(q))}f}"
    if q == 0:
        return f"x {f:.2g}"
    return f"x {f:.2f}"  # 0.996 and up print as 1.00 does, not as 'x 1'


def direction(log_lr: float) -> str:
    """How a factor on the odds moves them, in the words its printed value supports: 'raises', 'lowers',
    or 'barely moves' when :func:`factor` prints it as x 1.00 (within about half a percent of 1), where the
    sign of the log is noise of the third decimal."""
    if factor(log_lr) == "x 1.00":
        return "barely moves"
    return "raises" if log_lr > 0 else "lowers"


def as_written(p: float, digits: int = 1) -> float:
    """A probability as :func:`percent` writes it (94.96% is written 95.0%: 0.95), so that words chosen by
    comparing it with a threshold agree with the number beside them."""
    return float(f"{100 * p:.{digits}f}") / 100


def reads_as(p: float, q: float, digits: int = 1) -> bool:
    """Whether two probabilities are written the same by :func:`percent` (a mean of 9.99% and a threshold of
    10% both read '10.0%'): words that compare a probability with a threshold then say it is at the threshold,
    not on one side of it, since the reader cannot see a side."""
    return percent(p, digits) == percent(q, digits)


def apart(p: float, q: float, most: int = 4) -> tuple[str, str]:
    """``p`` and ``q`` written with the fewest digits (one at least, ``most`` at most) that tell them apart:
    ('0.996%', '1.000%') where one digit writes both as '1.0%' beside words that put one below the other."""
    digits = 1
    while digits < most and reads_as(p, q, digits):
        digits += 1
    return percent(p, digits), percent(q, digits)


def words(p: float) -> str:
    """Plain words for a probability of infiltration against the causes weighed (never 'excluded' or
    'ruled out'), chosen on the number as written (:func:`as_written`: 94.96% reads 95.0% and 'very likely')."""
    p = as_written(p)
    if p >= 0.95:
        return "infiltration is very likely"
    if p >= 0.75:
        return "infiltration is likely"
    if p >= 0.5:
        return "infiltration is more likely than not"
    if p >= 0.25:
        return "infiltration remains a real possibility"
    if p >= 0.05:
        return "infiltration is less likely, but possible"
    return "infiltration is unlikely, though still possible"


# --- the clinician report ----------------------------------------------------

def interval(lower: float, upper: float, ci: float) -> str:
    """'90% CrI 61.2% to 95.3%' (the ends never read 0% or 100%)."""
    return f"{ci_percent(ci)}% CrI {percent(lower)} to {percent(upper)}"


def of_100(p: float) -> str:
    """How many of 100 patients: 'about 84', 'fewer than 1', 'more than 99' (never 0 or 100)."""
    n = round(100 * p)
    if n < 1:
        return "fewer than 1"
    if n > 99:
        return "more than 99"
    return f"about {n}"


def count_of_100(p: float) -> int:
    """The number of filled icons of a 100-icon array for probability ``p`` (0 to 100)."""
    return int(min(100, max(0, round(100 * p))))


def natural_frequency(s: dict, others: list[tuple[str, float]] | None = None) -> str:
    """'Of 100 patients with these findings, about 18 would have leukemic infiltration and about 82
    one of the other causes weighed (about 35 Bell's palsy, ...) (90% CrI: ... of 100 with infiltration).'

    ``others`` lists (name, mean probability) of the other causes weighed, largest first; without it
    the remainder is 'another of the causes weighed'.
    """
    lo, hi = of_100(s["lower"]), of_100(s["upper"])
    rest = f"{of_100(1 - s['mean'])} another of the causes weighed"
    if others:
        detail = ", ".join(f"{of_100(p)} {name}" for name, p in others)
        rest = f"{of_100(1 - s['mean'])} one of the other causes weighed ({detail})"
    return (f"Of 100 patients with these findings, {of_100(s['mean'])} would have leukemic infiltration "
            f"and {rest}; {ci_percent(s['ci'])}% CrI: {lo} to {hi.replace('about ', '')} "
            f"of 100 with infiltration.")


def factor_with_interval(s: dict, ci: float) -> str:
    """'x 9.4 (90% CrI x 2.1 to x 40)' from a log likelihood ratio summary: the point is the
    geometric mean, exp(mean log LR), one statistic per number (docs/design.md §6)."""
    return f"{factor(s['mean'])} ({ci_percent(ci)}% CrI {factor(s['lower'])} to {factor(s['upper'])})"


def sentence_start(text: str) -> str:
    """``text`` with its first letter capitalised."""
    return text[:1].upper() + text[1:]


#: What '(tied)' beside causes of the differential means, printed where the mark is (a tooltip is lost in a PDF).
TIE_MEANING = "means within Monte Carlo error, no cause clearly leads"
TIE_LEGEND = f"(tied): {TIE_MEANING}"


def joined(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def leading(names: list[str]) -> str:
    """The leading cause's name, or for a near-tie (``names``: the leader, then those tied with it) 'a and b,
    tied': never a winner on noise."""
    return joined(names) + (", tied" if len(names) > 1 else "")


# --- the decision, in the words the command line and the report share ------------------------------

#: Why a test the decision keeps doing can show a value below 0 (decision.yaml's testing floor).
ONE_STEP = ("when counted in one step, where no single result is acted on at once; above the testing floor the decision "
            "keeps testing, because a positive result is confirmed and then acted on")


def lower_label(th: dict) -> str:
    """'lower', or 'lower: the testing floor' when decision.yaml's floor set it (the one-step model's was higher)."""
    return "lower: the testing floor" if th.get("floored") else "lower"


def thresholds_text(dec: dict) -> str:
    """'Mean P(infiltration) 27.3% against the thresholds 3.5% (lower) and 91.2% (upper)'."""
    th = dec["thresholds"]
    return (f"Mean P(infiltration) {percent(dec['probability'])} against the thresholds {percent(th['low'])} "
            f"({lower_label(th)}) and {percent(th['high'])} (upper)")


def decision_sentence(dec: dict, *, central: bool | None = None) -> str:
    """'Mean P(infiltration) 27.3% against the thresholds 3.5% and 91.2%: first, whatever the probability:
    ...; after them between the thresholds: repeat testing ...' (:func:`decision_what` after the numbers)."""
    return f"{thresholds_text(dec)}: {decision_what(dec, central=central)}."


#: Where the mean falls against the thresholds, for a palsy that may be central (:func:`decision_what`).
ZONE_PLACE = {"no_test": "below the lower one", "test": "between them", "treat": "above the upper one"}
#: Where the mean falls when it reads as a threshold (:func:`shown_at`), for a palsy that may be central.
EDGE_PLACE = {"lower": "at the lower one", "upper": "at the upper one", "both": "at them"}
#: The threshold a mean reads as, in words (:func:`edge_text`).
EDGE_NAME = {"lower": "the lower threshold", "upper": "the upper threshold", "both": "the thresholds"}


def shown_at(dec: dict) -> str | None:
    """Which threshold the decision's mean P(infiltration) reads as (:func:`reads_as`): 'lower', 'upper', 'both'
    (the two thresholds written alike) or None. The decision's zone compares the unrounded numbers, so at 9.99%
    against a floor of 10% it is 'below the lower threshold' while the page writes '10.0% against 10.0%' (a
    clinician's review, December 2026): there the words say the mean is at the threshold, not on a side of it."""
    th, p = dec["thresholds"], dec["probability"]
    low, high = reads_as(p, th["low"]), reads_as(p, th["high"])
    if low and high:
        return "both"
    return "lower" if low else "upper" if high else None


def edge_text(dec: dict, edge: str) -> str:
    """The zone's words for a mean that reads as a threshold (:func:`shown_at`): at it, the action on either side
    not settled by the mean (what decides it is :func:`threshold_sentence`'s, where the decision has it). At the
    testing floor (the lower threshold set by decision.yaml's ``testing_floor``) the words say what the floor is
    for: testing goes on at it (a clinician's review, December 2026, found 'the mean alone does not settle which
    side' at 10.0% against 10.0%, an instruction to no one)."""
    if edge == "lower" and (dec.get("thresholds") or {}).get("floored"):
        return (f"at the testing floor (the mean reads {percent(dec['probability'])}, as the floor does): testing "
                f"goes on at the floor; it stops only once the mean is clearly below it")
    them = "the thresholds do" if edge == "both" else "the threshold does"
    return (f"at {EDGE_NAME[edge]} (the mean reads {percent(dec['probability'])}, as {them}): the mean alone does "
            f"not settle which side of {'them' if edge == 'both' else 'it'} the decision falls on")


def decision_what(dec: dict, *, central: bool | None = None) -> str:
    """What the decision says, in order, wherever it is stated (the command, the report's page 1 and its
    section 5, the card: the one function, so that none drops a part): an escalation first (when an action
    escalates), the work-up while it is pending, then the zone's words (``action_text`` of decision.yaml).

    A palsy that may be central (the forehead spared: ``central``; when not given, the decision's own
    ``central`` key, False without it) gets no zone's words: they point to the tests of a peripheral palsy
    (an LP and an MRI of the facial nerve; a clinician's review, December 2026, found "repeat testing (the
    next tests below)" beside an LP in a patient whose work-up is for stroke, PRES or venous thrombosis). It
    says instead what the answer does (docs/design.md, out of scope): the central work-up of what to do now
    comes first, the peripheral work-up is not pressed, and the thresholds weigh the causes only if the palsy
    proves peripheral, with where the mean falls against them.

    A mean that reads as a threshold (:func:`shown_at`: '10.0% against 10.0%') gets neither zone's words but
    :func:`edge_text`: at the threshold, not settled by the mean (a review found 'below the lower threshold: no
    further test' printed beside a mean and a testing floor that both read 10.0%)."""
    if central is None:
        central = bool(dec.get("central"))
    escalation = dec.get("escalation_text") or ""
    edge = shown_at(dec)
    if central:
        place = EDGE_PLACE[edge] if edge else ZONE_PLACE[dec["action"]]
        core = ("while the palsy may be central (the forehead is spared): the central work-up of what to do now "
                "comes first, the LP and MRI work-up of a peripheral palsy is not pressed, and the thresholds weigh "
                f"the causes only if the palsy proves peripheral (the mean is {place})")
        return f"{escalation} nothing {core}" if escalation else f"nothing by the thresholds {core}"
    zone = edge_text(dec, edge) if edge else dec["action_text"]
    return " ".join(x for x in (escalation, dec.get("workup_text"), zone) if x)


def _keeps_testing(dec: dict) -> bool:
    """Whether the testing floor keeps the decision testing: it set the lower threshold and the mean is between
    the thresholds, or reads as the floor (:func:`shown_at`: the floor's own rule, decision.yaml, is 'at or above
    it'), where a test's value counted in one step needs :data:`ONE_STEP`'s explanation."""
    if not (dec.get("thresholds") or {}).get("floored"):
        return False
    return dec.get("action") == "test" or shown_at(dec) in ("lower", "both")


def change_by_test(t: dict, dec: dict, *, voi: bool = True, digits: int = 3) -> str:
    """What a test could do to the decision: 'could change the action (probability 4.4%); value of
    information +0.078' or 'cannot change the action; ...' (without the value when ``voi`` is False)."""
    one_step = _keeps_testing(dec)
    text = (f"could change the action (probability {percent(t['probability_of_change'])})"
            if t["can_change_action"] else "cannot change the action in one step" if one_step
            else "cannot change the action")
    return f"{text}; {voi_text(t, dec, digits)}" if voi else text


def threshold_sentence(dec: dict, test_name, *, central: bool | None = None) -> str:
    """What to say when the patient sits on a threshold ('' otherwise); ``test_name(test)`` names a test. For a
    palsy that may be central (``central``; the decision's own ``central`` when not given) the test that decides it
    is a peripheral palsy's: the sentence says it holds only if the palsy proves peripheral (:data:`IF_PERIPHERAL`)."""
    edge = dec.get("at_threshold")
    if not edge:
        return ""
    if central is None:
        central = bool(dec.get("central"))
    why = ("within the Monte Carlo error of the estimate" if edge["within_mc_error"] else
           f"the posterior spreads evenly across it: {percent(edge['share_above'])} of its mass above")
    decides = (f"the {test_name(edge['decided_by'])} decides it" if edge.get("decided_by")
               else "the clinician's weighing of harms decides it")  # no flag's name: cards and reports say it
    at = "at" if central else "At"
    return (f"{IF_PERIPHERAL if central else ''}{at} the {edge['threshold']} threshold ({percent(dec['probability'])} "
            f"against {percent(edge['value'])}; {why}): {decides}.")


def voi_text(t: dict, dec: dict, digits: int = 3) -> str:
    """'value of information +0.078', saying what a value below 0 means (a clinician's review found -0.004
    printed, unexplained, beside a test the page recommends): its expected harm is larger than what its result
    could change in the decision; for a test of the work-up still due, that it is done whatever the probability."""
    v = float(t["value_of_information"])
    text = f"value of information {v:+.{digits}f}"
    if v > 0 and float(t.get("value_for_infiltration", v)) <= 0:  # all of it from another cause's management
        text += " (from the other causes' management)"
    elif v > 0 and not t.get("can_change_action", True):
        # the value acts on a result at the treatment threshold, the zones at the test-treatment threshold above
        # it: 'cannot change the action' beside a value from treating had read as a contradiction (s16 review)
        treat = (dec.get("thresholds") or {}).get("treatment")
        at = f" of {percent(treat)}" if treat is not None else ""
        text += (f" (counted as if a result that moves the answer across the treatment threshold{at} were acted "
                 f"on at once; the decision would test again first)")
    if v < 0:
        why = "its harm outweighs what its result could change in the decision"
        if t["test"] in (dec.get("workup_pending") or ()):
            text += f" (below 0: {why}; the work-up asks for it whatever the probability)"
        elif _keeps_testing(dec):
            text += f" (below 0 {ONE_STEP})"
        else:
            text += f" (below 0: {why})"
    return text


#: How the count of further negative LPs opens for a palsy that may be central (:func:`negative_lps_sentence`).
IF_PERIPHERAL = "Only if the palsy proves peripheral: "


def negative_lps_sentence(dec: dict, method_name, *, central: bool | None = None) -> str:
    """'Further negative LPs to fall below 3.5%: already below' or '...: cytology 2; flow 1; ...'; '' when they were
    not counted (a card's answer).

    A mean below the lower threshold that reads as it (:func:`shown_at`) is said to be at it: the LPs were not
    counted there, and 'already below' would contradict the two numbers written alike. A palsy that may be central
    (``central``; the decision's own ``central`` when not given), whose work-up is not the LP's, gets the count
    only as what holds if the palsy proves peripheral (:data:`IF_PERIPHERAL`), as page 1 qualifies its tests."""
    th = dec["thresholds"]
    neg = dec["negative_lps_to_low"]
    if neg is None:
        return ""
    if central is None:
        central = bool(dec.get("central"))
    if neg and all(k == 0 for k in neg.values()):
        # never 'no further LP is needed': an LP of the work-up may not be done yet (a clinician's review found
        # it printed beside the work-up's LP, December 2026)
        due = " The work-up is still due first, whatever the probability (what to do now)." if dec.get("workup_text") else ""
        if shown_at(dec) in ("lower", "both"):
            text = (f"P(infiltration) reads as the lower threshold {percent(th['low'])} (below it by less than the "
                    f"last digit shown): further negative LPs were not counted.{due}")
        else:
            text = (f"P(infiltration) is already below the lower threshold {percent(th['low'])}: further negative LPs "
                    f"would not change the decision.{due}")
    else:
        parts = [f"{method_name(m)}: {'not reachable within the LPs allowed' if k is None else k}" for m, k in neg.items()]
        text = f"Further negative LPs to fall below {percent(th['low'])}: {'; '.join(parts)}."
    if central:  # set apart from the decision's numbers: the threshold named with its number
        return IF_PERIPHERAL + (text.replace("Further negative LPs to fall below ", "further negative LPs to fall "
                                             "below the lower threshold ", 1) if text.startswith("Further") else text)
    return text


def rests_on_sentence(rests_on: list[dict], where: str = "the table below splits each source into the two") -> str:
    """What the answer's uncertainty rests on, for page 1 ('' when not computed): its largest block and
    whether judgment or data carries it (:func:`palsy.model.rests_on.sentence`), then the shares of expert
    judgment and of data across the whole answer when the fit labelled them, in whole percents (each share
    has a Monte Carlo error of a few points), with the answer's own Monte Carlo error when it rounds to a
    percent (the three add up to the whole)."""
    if not rests_on:
        return ""
    from palsy.model.rests_on import sentence

    judgment = sum(r["share"] for r in rests_on if r["kind"] == "judgment")
    data = sum(r["share"] for r in rests_on if r["kind"] == "data")
    if judgment + data == 0:
        return sentence(rests_on)
    mc = sum(r["share"] for r in rests_on if r["kind"] == "monte_carlo")
    rest = f", Monte Carlo error {share(mc)}" if mc >= 0.005 else ""
    return (f"{sentence(rests_on)} Across the answer, expert judgment carries {share(judgment)} of that "
            f"uncertainty and data {share(data)}{rest} ({where}).")


def variants_sentence(variants: dict | None, dec: dict | None = None) -> str:
    """The other model variant's answer when the two differ by more than the design's margin, saying too
    when its mean implies another action with ``dec``'s thresholds (``variants['action']``); that the variants
    were not compared when the other one was not computed; '' when they agree (a clinician's review found a decision that flips with
    the variant, and a page silent that the comparison had not been made)."""
    if variants is None:
        return ("The other model variant was not computed for this answer: the model's own uncertainty between "
                "its variants is not assessed here.")
    if not variants.get("differs") or not variants.get("probability"):
        return ""
    p = variants["probability"]
    text = (f"The other model variant ({variants['variant']}) gives a mean of {percent(p['mean'])} "
            f"({interval(p['lower'], p['upper'], p['ci'])}), more than {round(100 * variants['threshold'])} percentage points "
            f"from this answer: the variants disagree for this patient and the case library cannot yet tell "
            f"them apart.")
    if dec:
        th = dec["thresholds"]
        pair = f"thresholds {percent(th['low'])} and {percent(th['high'])}"
        if shown_at({"thresholds": th, "probability": p["mean"]}):  # written as a threshold: no side to name
            text += f" Its mean reads as a threshold of the decision ({pair}): the decision may differ under it."
        elif variants.get("action") not in (None, dec["action"]):
            # against this answer's thresholds: the other variant's own decision is not computed (a teacher's review)
            text += (f" Its mean falls in another zone of this answer's decision ({pair}): the decision may differ "
                     f"under it.")
    return text


def variants_agree_sentence(variants: dict | None) -> str:
    """The other model variant's answer when the two agree within the design's margin (the report's section
    8 says so; page 1 and the terminal name only a disagreement, :func:`variants_sentence`); '' when the
    other variant is not fitted."""
    if not variants or not variants.get("probability"):
        return ""
    return (f"The other model variant ({variants['variant']}) gives a mean of "
            f"{percent(variants['probability']['mean'])}, within {round(100 * variants['threshold'])} percentage points of "
            f"this answer.")


# --- one spelling per page ------------------------------------------------------------------------------------

#: The spelling of each kind of page a reader sees (a review, s18: the clinician report said "leukaemia team"
#: from actions.yaml beside "leukemic infiltration" from the labels). The clinician report (and so its PDF, the
#: service's page and the teaching set's report) and the teaching pages follow the labels they show most (US); the
#: CDS Hooks card and the statistician's report follow the actions, decisions and reasonings they are mostly made
#: of (British). A page kind's tests pin its words: changing an entry here changes what they read.
PAGE_SPELLING = {"report": "US", "teaching": "US", "card": "British", "check": "British"}
SPELLINGS = ("British", "US")

#: The words that differ between the two spellings, as (British pattern, its replacement for US, US pattern, its
#: replacement for British), each matched within one word, case aside (a word's capital is kept): the medical
#: words the evidence files and labels use (the -aemia words, haem-, oedema, paediatric, oesophagus,
#: anaesthesia and paraesthesia, otorrhoea, aetiology, tumour) and the litre of "cells per microlitre". A pattern names its stems so that no
#: other word matches ("pedicle", "hemisphere", "systemic", "literature" stay as they are). The spelling of
#: everyday words ("favour", "modelled", "recognised") is not changed: the pages' own sentences write them.
SPELLING_PAIRS: tuple[tuple[str, str, str, str], ...] = (
    (r"(leuk|isch|glyc|calc|kal|natr|septic|bacter|vir)aem(?=i)", r"\1em",
     r"(leuk|isch|glyc|calc|kal|natr|septic|bacter|vir)em(?=i)", r"\1aem"),
    (r"^(an|ur)aem(?=i)", r"\1em", r"^(an|ur)em(?=i)", r"\1aem"),
    (r"^haem(?=at|o|angi)", "hem", r"^hem(?=at|o|angi)", "haem"),
    (r"^(papill|)oedem", r"\1edem", r"^(papill|)edem", r"\1oedem"),
    (r"^(ortho|)paed(?=iatr|ic$|ics$|ist)", r"\1ped", r"^(ortho|)ped(?=iatr|ic$|ics$|ist)", r"\1paed"),
    (r"^oesophag", "esophag", r"^esophag", "oesophag"),
    (r"^(an|par|dys|hyper|hypo)aesth", r"\1esth", r"^(an|par|dys|hyper|hypo)esth", r"\1aesth"),
    (r"(?<=[a-z])rrhoe(?=a)", "rrhe", r"(?<=[a-z])rrhe(?=a)", "rrhoe"),
    (r"^aetiol", "etiol", r"^etiol", "aetiol"),
    (r"^tumour", "tumor", r"^tumor(?=s?$)", "tumour"),
    (r"^(micro|milli|)litre(?=s?$)", r"\1liter", r"^(micro|milli|)liter(?=s?$)", r"\1litre"),
)
_PAIRS = {"US": tuple((re.compile(b, re.I), rb) for b, rb, _u, _ru in SPELLING_PAIRS),
          "British": tuple((re.compile(u, re.I), ru) for _b, _rb, u, ru in SPELLING_PAIRS)}
#: Names spelled one way in both spellings (a genus, journals, a journal's abbreviated word: "Pediatr Blood Cancer",
#: "J Pediatr Hematol Oncol" are never prose): never respelled.
PROPER_NAMES = frozenset({"haemophilus", "haematologica", "haematol", "hematol", "paediatrica", "pediatrica", "pediatr",
                          "paediatr"})
#: What comes before a journal's name in prose ("British Journal of Haematology", "Acta Paediatrica"): a capitalised
#: word after it is the journal's, and keeps its spelling.
_JOURNAL_BEFORE = re.compile(r"(?:Journal of|Acta|Annals of|Archives of)\s+$")
#: Addresses, paths and identifiers inside prose, left exactly as they are: a path has a file's extension
#: (``priors/leukaemia.yaml``; "haematology/oncology" is prose); a record's identifiers, which a reader looks up, are a
#: FHIR reference (``Condition/leukaemia-dx-1``), a ``urn:`` and any hyphenated token with a digit in it
#: (``cond-leukemia-2``; a review, s18: record notes had named resources that do not exist).
_ADDRESS = re.compile(r"(?:https?|ftp)://{u}+|www\.{u}+|doi:{u}+|urn:{u}+"
                      r"|(?<!{u}){u}+@{u}+\.{u}+|(?<!{u}){u}*/{u}*\.[A-Za-z]{{2,5}}\b{u}*"  # from a token's start
                      r"|\b(?:Patient|Condition|Observation|DiagnosticReport|Procedure|Encounter|Specimen|ImagingStudy"
                      r"|Medication[A-Za-z]*|Bundle|OperationOutcome)/[A-Za-z0-9.\-]+"
                      r"|(?<![\w.-])(?=[\w.-]*\d)(?=[\w.-]*-)[A-Za-z][\w.-]*\w"
                      .format(u=r"[^\s\"'<>]"), re.I)
_GUILLAIN_BARRE = re.compile(r"Guillain[- ]Barre(?!\u00e9)")
#: Per spelling, a word that can be respelled: letters, not part of an identifier or a file name
#: (``leukaemia_team_today``, ``fnp_acuteleukaemia_6all``, ``leukaemia.yaml``, ``#ref-2``), that one of its patterns
#: can change (the patterns of :data:`SPELLING_PAIRS` held within one word), so the regular-expression engine
#: skips every other word: the service respells each card it answers with.
_CANDIDATE = {sp: re.compile(r"(?<![\w#=@\\])(?=[A-Za-z]*?(?:{}))[A-Za-z]+(?![\w@]|\.[A-Za-z])".format(
    "|".join(p.pattern.replace("^", "(?<![A-Za-z])").replace("$", "(?![A-Za-z])") for p, _r in pairs)), re.I)
    for sp, pairs in _PAIRS.items()}
#: Marked-up text is respelled between its tags, never inside one (a class, an address, an attribute).
_TAG = re.compile(r"(<[^>]*>)")


def _respell(m: re.Match, spelling: str) -> str:
    word = m.group(0)
    if word.lower() in PROPER_NAMES or (word[0].isupper() and _JOURNAL_BEFORE.search(m.string, 0, m.start())):
        return word
    for pattern, repl in _PAIRS[spelling]:
        found = pattern.search(word)
        if found is None:
            continue
        new = found.expand(repl)
        if found.group(0)[:1].isupper():
            new = new[:1].upper() + new[1:]
        if word.isupper() and len(word) > 1:
            new = new.upper()
        return word[:found.start()] + new + word[found.end():]
    return word


def house_style(text: str, spelling: str) -> str:
    """``text`` in one spelling, ``"US"`` or ``"British"`` (:data:`SPELLING_PAIRS`), Guillain-Barré with its accent;
    identifiers, paths, addresses and names spelled one way in both (:data:`PROPER_NAMES`, a journal's name) left
    as they are.

    Raises
    ------
    ValueError
        For a spelling other than those of :data:`SPELLINGS`.
    """
    if spelling not in _PAIRS:
        raise ValueError(f"spelling {spelling!r} is not one of {', '.join(SPELLINGS)}")
    return _house_style(text, spelling)


@functools.lru_cache(maxsize=4096)  # the data's texts recur on every card and page; a record's are few
def _house_style(text: str, spelling: str) -> str:
    out, at = [], 0
    candidate = _CANDIDATE[spelling]
    for m in [*_ADDRESS.finditer(text), None]:
        part = text[at:m.start() if m else len(text)]
        part = _GUILLAIN_BARRE.sub("Guillain-Barr\u00e9", part)
        out.append(candidate.sub(lambda w: _respell(w, spelling), part))
        if m:
            out.append(m.group(0))
            at = m.end()
    return "".join(out)


#: Keys of a page's context whose values are left as they are: citations, quoted as published ("Haematologica",
#: "acute lymphoblastic leukemia" in a British title); identifiers (``id``: a patient's, an action's, a case's, which
#: the reader searches for and the page's script names); styles, scripts and data already in the page's spelling.
AS_PUBLISHED = ("citations", "references", "refs", "id", "css", "js", "data_json", "models")


def styled(value: Any, spelling: str, as_published: tuple[str, ...] = AS_PUBLISHED) -> Any:
    """``value`` (a page's context: mappings, lists and texts) in one spelling (:func:`house_style`), but for the
    keys of ``as_published`` and for texts without a space (an identifier, an address, a figure's data, never
    prose: an action's id ``leukaemia_team_today`` stays what the files and the page's script call it); marked-up
    text stays marked up, respelled between its tags only."""
    if isinstance(value, str):
        if not any(ch.isspace() for ch in value):
            return value
        markupsafe = sys.modules.get("markupsafe")  # a Markup only exists once markupsafe is imported
        if markupsafe is not None and isinstance(value, markupsafe.Markup):
            return markupsafe.Markup("".join(part if i % 2 else house_style(part, spelling)
                                             for i, part in enumerate(_TAG.split(str(value)))))
        return house_style(value, spelling)
    if isinstance(value, Mapping):
        return {k: (v if k in as_published else styled(v, spelling, as_published)) for k, v in value.items()}
    if isinstance(value, list):
        return [styled(v, spelling, as_published) for v in value]
    if isinstance(value, tuple):
        return tuple(styled(v, spelling, as_published) for v in value)
    return value
