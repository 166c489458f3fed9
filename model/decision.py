"""The decision layer (docs/design.md §4): Pauker and Kassirer's threshold model with the posterior carried
through. Pure functions over the answer's draws; the harms and benefits are ``priors/decision.yaml``.

Three actions about infiltration: ``no_test`` (no further test for it), ``test`` (an LP by cytology,
an LP by flow, an MRI) and ``treat`` (in the report: discuss a CNS-relapse work-up and treatment with
the leukaemia team today; a probability never triggers treatment itself). The decision is taken on the
predictive mean P(infiltration), the expected loss under the posterior.

The model is one step: it values a test by whether one result, acted on at once, changes the action. A
positive repeat LP is confirmed, then acted on, which one step does not see, so the lower threshold is at most
``decision.yaml``'s ``testing_floor`` (``thresholds.floored`` says when it set it; never with
``--thresholds``).

After a test's result the clinician acts on what the answer then shows (the mean over the draws of
P(infiltration | x, r), the headline's statistic): a result changes the action when that answer falls in
another zone, and a test's value of information is that of acting on it, for the patients who get the
result (whose share with infiltration is the joint over the draws). The two statistics differ while the
headline lets no finding of the patient reweight the draws (docs/design.md §1, the headline's statistic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import findings as F
from palsy.model import paths, safe_yaml
from palsy.model import schema as SC

ACTIONS = ("no_test", "test", "treat")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Benefit of treating infiltration, harm of treating without it, each test's harm (one unit), and the
    benefit and harm of managing each other cause (so that a test's value counts every cause whose
    management its result changes)."""

    benefit: float
    harm: float
    test_harm: dict[str, float]
    action_text: dict[str, str]
    source: str = "priors/decision.yaml"
    management: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # cause -> (benefit, harm)
    workup_text: str = ""  # with {tests} and {them} (:meth:`workup_sentence`)
    workup_names: dict[str, str] = dataclasses.field(default_factory=dict)  # test -> its words in that sentence
    escalation_text: str = ""  # said first when an action escalates (:func:`with_escalation`)
    testing_floor: float = 0.0  # the lower threshold is at most this (0: no floor)

    def workup_sentence(self, pending: tuple[str, ...]) -> str:
        """The work-up's sentence naming only the tests of ``pending`` still to be done ('' when none)."""
        if not pending:
            return ""
        # in decision.yaml's order of its tests (the MRI before the LP); it names every test of the schema
        names = [words for t, words in self.workup_names.items() if t in pending]
        return self.workup_text.format(tests=" and ".join(names), them="them" if len(names) > 1 else "it")

    @property
    def treatment_threshold(self) -> float:
        return self.harm / (self.harm + self.benefit)


def validate(doc: Any, path: str | Path, sc: SC.Schema, causes: tuple[str, ...] | None) -> list[str]:
    """Every problem of a ``decision.yaml`` document: its shape (the file model: each number with its
    reasoning) and what it names (a harm for each next test of the schema, management of causes of
    ``model.yaml``; :func:`palsy.model.crossref.decision_file`)."""
    from palsy.model import crossref as X
    from palsy.model.file_models import base
    from palsy.model.file_models.care_files import DecisionFile

    found = base.check(DecisionFile, doc, str(path))
    return found + X.decision_file(doc, path, sc, causes)


def load(directory: str | Path | None = None, causes: tuple[str, ...] | None = None) -> Settings:
    """Read and validate ``decision.yaml`` in ``directory`` (default: the evidence shipped with palsy):
    a harm for each test of the schema's ``next_tests``, management of ``causes`` (when given).

    Validated the first time these bytes are read with this schema and these causes; later reads trust the
    record of that (:mod:`palsy.model.validated`), so a warm answer does not import the validation library.

    Raises
    ------
    findings.InputError
        Naming the file, the entry, the field, the value and what is allowed.
    """
    from palsy.model import validated

    folder = paths.priors() if directory is None else Path(directory)
    path = folder / "decision.yaml"
    sc = SC.read(folder)
    try:
        blob = safe_yaml.read_bytes(path)
        doc = safe_yaml.loads(safe_yaml.decode(blob, path), path)
    except safe_yaml.YAMLInputError as exc:
        raise F.InputError([f"cannot read the decision settings: {exc.detail}"], str(path)) from None
    record = validated.key("decision.yaml", blob, sc.hash, None if causes is None else ",".join(causes))
    if not validated.seen(record):
        problems = validate(doc, path, sc, None if causes is None else tuple(causes))
        if problems:
            raise F.InputError(problems, str(path))
        validated.remember(record)
    harms = {t: float(doc["tests"][t]["harm"]) for t in sc.next_tests}
    management = {str(c): (float(m["benefit"]), float(m["harm"])) for c, m in doc["management"].items()}
    return Settings(float(doc["benefit_treat_infiltration"]["value"]), float(doc["harm_treat_without_infiltration"]["value"]),
                    harms, {a: doc["action_text"][a] for a in (*ACTIONS, "test_none_left") if doc["action_text"].get(a)},
                    str(path), management,
                    " ".join(doc["workup_text"].split()),
                    {t: " ".join(str(doc["tests"][t]["workup"]).split()) for t in doc["tests"]},
                    " ".join(doc["escalation_text"].split()),
                    float((doc.get("testing_floor") or {}).get("value") or 0.0))


def parse_thresholds(text: str) -> tuple[float, float]:
    """``LOW,HIGH`` from the command line (InputError naming the flag otherwise)."""
    try:
        parts = text.split(",")
        if not all(F.PLAIN_NUMBER.fullmatch(x.strip()) for x in parts):  # float() reads '٠.١' and '0.1_0' too
            raise ValueError(text)
        low, high = (float(x) for x in parts)
    except ValueError:
        raise F.InputError([f"--thresholds: {text!r} is not LOW,HIGH; give two probabilities, e.g. 0.05,0.8"],
                           "command line") from None
    if not (0 < low < high < 1):
        raise F.InputError([f"--thresholds: {text!r} is not allowed; give 0 < LOW < HIGH < 1"], "command line")
    return low, high


def test_interval(p_result_inf: np.ndarray, p_result_other: np.ndarray, harm: float, benefit: float,
                  test_harm: float) -> tuple[float, float]:
    """Testing and test-treatment thresholds of a test with any number of results (Pauker-Kassirer).

    The interval of pretest probabilities p over which testing beats the better of not testing and
    treating: the expected value of the test, sum over results r of
    max(0, p P(r | inf) benefit - (1 - p) P(r | not inf) harm), minus ``test_harm``, above
    max(0, p benefit - (1 - p) harm). That difference is linear in p between the results' own treatment
    thresholds and the treatment threshold, so its zero crossings are exact. With two results this is
    Pauker and Kassirer's pair (FPR harm + test_harm) / (FPR harm + Se benefit) and its test-treatment
    counterpart; with more it does not dichotomise (a result that barely moves P is not a
    "positive"). Where the test is never worth doing both ends are the treatment threshold.
    """
    a = np.asarray(p_result_inf, float) * benefit
    b = np.asarray(p_result_other, float) * harm
    treat = harm / (harm + benefit)
    knots = np.unique(np.clip(np.r_[0.0, 1.0, treat, b[a + b > 0] / (a + b)[a + b > 0]], 0.0, 1.0))

    def gain(p: np.ndarray) -> np.ndarray:
        with_test = np.maximum(0.0, np.outer(p, a) - np.outer(1 - p, b)).sum(axis=1)
        return with_test - np.maximum(0.0, p * benefit - (1 - p) * harm) - test_harm

    g = gain(knots)
    if not np.any(g > 0):
        return treat, treat
    i, j = int(np.argmax(g > 0)), int(len(g) - 1 - np.argmax(g[::-1] > 0))
    # linear between knots: interpolate the crossings (a positive end knot is its own bound)
    low = knots[i] if i == 0 else knots[i - 1] + (knots[i] - knots[i - 1]) * (-g[i - 1]) / (g[i] - g[i - 1])
    high = knots[j] if j == len(g) - 1 else knots[j] + (knots[j + 1] - knots[j]) * g[j] / (g[j] - g[j + 1])
    return float(low), float(high)


def _acted_on(p: float | np.ndarray, shown: float | np.ndarray, benefit: float, harm: float) -> float | np.ndarray:
    """Expected utility of treating when the probability ``shown`` says to (shown b - (1 - shown) h > 0; no
    treatment = 0), at the probability ``p`` that the cause is there."""
    return np.where(shown * benefit - (1 - shown) * harm > 0, p * benefit - (1 - p) * harm, 0.0)


def _utility(p: float | np.ndarray, s: Settings, shown: float | np.ndarray | None = None) -> float | np.ndarray:
    """Expected utility of treating infiltration or not at P(infiltration) = p, as ``shown`` (p itself by
    default: the better of the two) says."""
    return _acted_on(p, p if shown is None else shown, s.benefit, s.harm)


def _management_utility(pc: np.ndarray, causes: tuple[str, ...], s: Settings, shown: np.ndarray | None = None) -> np.ndarray:
    """Expected utility (..., ) of managing each other cause of ``management`` as its probability ``shown``
    says (``pc`` itself by default), at its probability ``pc`` (..., cause)."""
    shown = pc if shown is None else shown
    out = np.zeros(pc.shape[:-1])
    for cause, (b, h) in s.management.items():
        if cause in causes:
            j = causes.index(cause)
            out = out + _acted_on(pc[..., j], shown[..., j], b, h)
    return out


def zone(p: float, low: float, high: float) -> str:
    """The action a mean P(infiltration) ``p`` implies against the thresholds ``low`` and ``high``."""
    return "no_test" if p < low else "treat" if p > high else "test"


def at_threshold(p: float, p_draws: np.ndarray, w: np.ndarray | None, low: float, high: float,
                 ess: float) -> dict[str, Any] | None:
    """Whether the decision sits on a threshold: within twice the Monte Carlo error of the mean, or with
    the posterior spread evenly across it (40-60% of P(infiltration)'s mass on either side)."""
    sd = float(np.sqrt(np.average((p_draws - p) ** 2, weights=w)))
    mcse = sd / np.sqrt(max(ess, 1.0))
    for name, th in (("lower", low), ("upper", high)):
        share_above = float(np.average(p_draws > th, weights=w))
        if abs(p - th) <= 2 * mcse or 0.4 <= share_above <= 0.6:
            return {"threshold": name, "value": float(th), "mc_error": float(mcse), "share_above": share_above,
                    "within_mc_error": bool(abs(p - th) <= 2 * mcse)}
    return None


def decide(p_draws: np.ndarray, tests: list[dict[str, Any]], negative_curves: dict[str, Iterable[float]] | None,
           s: Settings, thresholds: tuple[float, float] | None = None, w: np.ndarray | None = None, *,
           causes: tuple[str, ...] = (), cause_draws: np.ndarray | None = None, ess: float | None = None,
           workup_pending: tuple[str, ...] = ()) -> dict[str, Any]:
    """The decision for one patient.

    Parameters
    ----------
    p_draws : array (draw,)
        P(infiltration | findings) per draw.
    tests : list of dict
        The answer's next tests with per-draw outcomes: each outcome's ``_draws`` is
        (P(result | x) per draw, P(cause | x, result) per draw and cause) and ``p_inf`` its
        P(infiltration | x, result) per draw.
    negative_curves : dict
        For each set of LP methods, the mean P(infiltration) after 1, 2, ... further negative LPs (read up to
        the first below the lower threshold, and not at all when the answer is below it: they may be computed
        as they are read, :func:`palsy.model.lookahead.negative_steps`). None: not counted (a card in the record
        does not show them), and ``negative_lps_to_low`` is None.
    s : Settings
        Benefit, harms, test harms and the other causes' management.
    thresholds : (low, high), optional
        Overrides the pair the settings give (``--thresholds``).
    causes, cause_draws : optional
        The causes and P(cause | findings) per draw (draw, cause): a test's value of information counts
        every cause whose management its result changes (``s.management``), not only infiltration.
    ess : float, optional
        The effective sample size of the draws (for the Monte Carlo error at a threshold; default: their number).
    workup_pending : tuple of str
        The tests of the work-up (the MRI, the LP read by flow) not yet done: recommended whatever the
        probability; the decision says what comes after them.
    """
    p = float(np.average(p_draws, weights=w))
    pc_now = np.average(cause_draws, axis=0, weights=w) if cause_draws is not None else None
    rows = []
    for t in tests:
        pr = np.array([np.average(o["_draws"][0], weights=w) for o in t["outcomes"]])  # P(r | x)
        joint = np.array([np.average(o["_draws"][0] * o["p_inf"], weights=w) for o in t["outcomes"]])
        # P(infiltration | x, r) two ways: the share of the patients with result r who have it (the joint over
        # the draws, with which the result's outcomes are weighed), and what the answer says once r is entered
        # (the mean over the draws of P(infiltration | x, r), the headline's statistic), on which the clinician
        # then acts: a result changes the action only if the answer with it entered is in another zone
        p_after = joint / np.maximum(pr, 1e-300)
        shown = np.array([np.average(o["p_inf"], weights=w) for o in t["outcomes"]])
        positive = p_after > p  # sensitivity and false-positive rate: descriptive (the thresholds use every result)
        se = float(joint[positive].sum() / max(p, 1e-300))
        fpr = float((pr - joint)[positive].sum() / max(1 - p, 1e-300))
        tt, trx = test_interval(joint / max(p, 1e-300), (pr - joint) / max(1 - p, 1e-300), s.harm, s.benefit,
                                s.test_harm[t["test"]])
        pc_after = pc_shown = None
        if cause_draws is not None:  # P(cause | x, r): the share among the patients with r, and as entered
            pc_after = np.array([np.average(o["_draws"][0][:, None] * o["_draws"][1], axis=0, weights=w) / max(q, 1e-300)
                                 for o, q in zip(t["outcomes"], pr, strict=True)])
            pc_shown = np.array([np.average(o["_draws"][1], axis=0, weights=w) for o in t["outcomes"]])
        rows.append({"test": t["test"], "sensitivity": se, "false_positive_rate": fpr,
                     "testing_threshold": tt, "test_treatment_threshold": trx, "useful": bool(tt < trx),
                     "_pr": pr, "_after": p_after, "_shown": shown, "_pc_after": pc_after, "_pc_shown": pc_shown})
    useful = [r for r in rows if r["useful"]]
    if thresholds is not None:
        low, high, source = thresholds[0], thresholds[1], "--thresholds"
    elif useful:
        low = min(r["testing_threshold"] for r in useful)
        high = max(r["test_treatment_threshold"] for r in useful)
        source = s.source
    else:
        low = high = s.treatment_threshold
        source = s.source
    # the one-step model's lower threshold, at most the floor (a result is confirmed, then acted on: testing_floor)
    floored = thresholds is None and 0 < s.testing_floor < low
    if floored:
        low = s.testing_floor
    action = zone(p, low, high)
    out_tests = []
    for r in rows:
        change = [zone(float(q), low, high) != action for q in r["_shown"]]
        # the value of acting on what the answer will show after the result, for the patients who get that result
        voi = float(np.sum(r["_pr"] * _utility(r["_after"], s, r["_shown"])) - _utility(p, s) - s.test_harm[r["test"]])
        voi_other = 0.0
        if r["_pc_after"] is not None and s.management:
            voi_other = float(np.sum(r["_pr"] * _management_utility(r["_pc_after"], causes, s, r["_pc_shown"]))
                              - _management_utility(pc_now, causes, s))
        out_tests.append({
            "test": r["test"], "can_change_action": bool(any(change)),
            "probability_of_change": float(np.sum(r["_pr"][change])) if any(change) else 0.0,
            "value_of_information": voi + voi_other, "value_for_infiltration": voi,
            "value_for_other_causes": voi_other, "sensitivity": r["sensitivity"],
            "false_positive_rate": r["false_positive_rate"], "testing_threshold": r["testing_threshold"],
            "test_treatment_threshold": r["test_treatment_threshold"]})
    to_low: dict[str, int | None] | None = None if negative_curves is None else {}
    for methods, curve in (negative_curves or {}).items():  # 0 when already below; None when not reachable
        to_low[methods] = 0 if p < low else next((k for k, q in enumerate(curve, start=1) if q < low), None)
    edge = at_threshold(p, p_draws, w, low, high, ess if ess is not None else len(p_draws))
    if edge is not None:
        deciding = max(out_tests, key=lambda t: (t["probability_of_change"], t["value_of_information"]), default=None)
        edge["decided_by"] = deciding["test"] if deciding and deciding["can_change_action"] else None
    return {"thresholds": {"low": float(low), "high": float(high), "treatment": s.treatment_threshold,
                           "source": source, "floored": bool(floored)},
            "probability": p, "action": action, "tests": out_tests,
            # 'test' with no test of the schema left (every LP it reads given, the MRI known): its own words
            "action_text": (s.action_text["test_none_left"] if action == "test" and not out_tests
                            and "test_none_left" in s.action_text else s.action_text[action]),
            "negative_lps_to_low": to_low, "at_threshold": edge, "workup_pending": list(workup_pending),
            "workup_text": s.workup_sentence(tuple(workup_pending)), "escalation_text": ""}


def with_escalation(dec: dict[str, Any], s: Settings, escalated: bool) -> dict[str, Any]:
    """``dec`` saying first, when an action of ``actions.yaml`` escalates (``escalated``), that the
    escalation comes first whatever the zone (``escalation_text``; '' otherwise): the zone's words alone
    ("repeat testing before deciding") read as if nothing were urgent beside a positive CSF."""
    return {**dec, "escalation_text": s.escalation_text if escalated else ""}
