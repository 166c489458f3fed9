"""What the next test could do (docs/design.md §4): for each pending test of the schema's ``next_tests``,
the predictive probability of each result, P(infiltration) and the leading cause after it; and how far
further negative LPs would take P(infiltration). Per draw, sum_r P(r | x) P(c | x, r) = P(c | x) for
every cause (the identity the tests check).

"After r" is what the answer says once r is entered: the mean over the draws of P(c | x, r) per draw, the
headline's own statistic, so that what a result is shown to give is what entering it gives (tested). Until
5 December it was the predictive of the draws reweighted by P(r | x) per draw, a ratio of means: the
number a clinician saw here was then not the number entering the result gave (0.932 shown, 0.880 entered,
for a flow-positive LP in source-000-vignette), and the decision's "can change the action" rested on it.
The decision still weighs each result's outcomes by that joint (:mod:`palsy.model.decision`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from palsy.model import findings as F
from palsy.model.game import Game, logsumexp


def lp_results(methods: tuple[str, ...], results: tuple[str, ...]) -> list[dict[str, str]]:
    """Every combination of results of ``methods`` read on one sample."""
    return [dict(zip(methods, combo, strict=True)) for combo in itertools.product(results, repeat=len(methods))]


def result_code(results: dict[str, str]) -> str:
    """``cytology=negative,flow=positive`` (an LP's results as the command line writes them)."""
    return ",".join(f"{m}={r}" for m, r in results.items())


def outcomes(game: Game, patient: F.Patient) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Each pending test and its results, with the extra log probability each result adds (S, K)."""
    t, sc, st = game.t, game.t.schema, game.t.st
    options = []
    for name, test in sc.next_tests.items():
        if test.reads == sc.lp.name:
            if len(patient.csf) >= sc.lp.max_lps:
                continue
            results = []
            for res in lp_results(test.methods, sc.lp.results):
                extra = game.lp_extra(res)
                if game.first is None and game.profile is None:  # the first LP reveals its CSF profile too
                    cls = "positive" if "positive" in res.values() else "negative"
                    for level in sc.levels[sc.profile]:
                        results.append((f"{result_code(res)}; {level}",
                                        extra + t.level(st.profile_item(cls), level)[..., None]))
                else:
                    results.append((result_code(res), extra))
            options.append((name, results))
        elif patient.level(test.reads) is None:
            options.append((name, [(lv, t.level(test.reads, lv)) for lv in sc.levels[test.reads]]))
    return options


def next_tests(game: Game, patient: F.Patient, ci: float, w: np.ndarray | None,
               keep_draws: bool = False, summaries: bool = True, ess: float | None = None) -> list[dict[str, Any]]:
    """Predictive probability of each result of each pending test, P(infiltration) and the leading
    cause after it, with the causes tied with it (``tied_after``: :func:`palsy.model.summaries.tied_with` at
    ``ess``, the answer's own rule, so that no outcome names a winner on noise; none without ``ess``); with
    ``keep_draws``, each outcome's per-draw (P(r | x), P(c | x, r)) as ``_draws`` (what the decision weighs);
    without ``summaries``, each outcome is only its ``result`` and ``_draws`` (a card shows no next test,
    only the decision)."""
    from palsy.model.summaries import probability_summary, summary, tied_with

    lj = game.log_joint_full()  # (S, C)
    act = game.active
    log_px = logsumexp(np.where(act, lj, -np.inf))
    causes = game.t.causes
    tests = []
    for test, results in outcomes(game, patient):
        outs = []
        for result, extra in results:
            ljr = game.log_joint_full(extra)
            weighed = np.where(act, ljr, -np.inf)
            log_pxr = logsumexp(weighed)
            pr = np.exp(log_pxr - log_px)
            pc = np.exp(weighed - log_pxr[..., None])  # softmax(ljr, act), its log-sum-exp shared with pr
            if not summaries:
                outs.append({"result": result, "_draws": (pr, pc)})
                continue
            after = game.log_odds(ljr)
            means = np.average(pc, axis=0, weights=w)  # what the answer with r entered says (module docstring)
            ps = summary(pr, ci, w)
            lead = int(np.argmax(np.where(act, means, -1)))
            o = {"result": result,
                 "probability": {"mean": ps["mean"], "lower": ps["lower"], "upper": ps["upper"]},
                 "probability_after": {k: v for k, v in probability_summary(after, ci, w).items() if k != "ci"},
                 "leading_cause_after": causes[lead],
                 "tied_after": [causes[j] for j in tied_with(pc, lead, act, w, ess)] if ess is not None else [],
                 "causes_after": {c: float(m) for c, m, a in zip(causes, means, act, strict=True) if a}}
            if keep_draws:
                o["_draws"] = (pr, pc)
            outs.append(o)
        tests.append({"test": test, "outcomes": outs})
    return tests


#: The method sets whose further negative LPs are counted (keys of the decision's ``negative_lps_to_low``).
def method_sets(methods: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {**{m: (m,) for m in methods}, "_and_".join(methods): tuple(methods)}


def negative_curves(game: Game, patient: F.Patient, w: np.ndarray | None) -> dict[str, list[float]]:
    """Mean P(infiltration) after 1, 2, ... further negative LPs (up to the schema's maximum in all), by
    the methods each LP is read with."""
    return {key: list(curve) for key, curve in negative_steps(game, patient, w).items()}


def negative_steps(game: Game, patient: F.Patient, w: np.ndarray | None) -> dict[str, Iterator[float]]:
    """:func:`negative_curves`, each curve computed a further LP at a time as it is read: the decision reads
    a curve only until it falls below the lower threshold, and none when the answer is already below it."""
    t, sc = game.t, game.t.schema
    room = sc.lp.max_lps - len(patient.csf)  # none when every LP the schema reads is known

    def curve(methods: tuple[str, ...]) -> Iterator[float]:
        negative = {m: sc.lp.results[0] for m in methods}
        first = game.lp_extra(negative)
        further = t.lp_logp(_mask(negative, t), None)
        for more in range(room):  # further LPs after the first
            # the first alone is the term itself (adding 0 x further changes no number): its log joint is
            # the next test's, computed once
            lj = np.where(game.active, game.log_joint_full(first + more * further if more else first), -np.inf)
            p_inf = np.exp(lj[..., game.inf] - logsumexp(lj))  # softmax(lj, active)[..., inf]: the one cause needed
            yield float(np.average(p_inf, weights=w))

    return {key: curve(methods) for key, methods in method_sets(sc.lp.methods).items()}


def _mask(results: dict[str, str], t) -> np.ndarray:
    from palsy.model import lp as LP

    return LP.obs_mask(results, t.ix.methods)
