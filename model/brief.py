"""A brief answer: what a card in the record shows of a patient's answer (the differential with its
intervals, the decision, what to do now, the atypicality check, the scope notes and the model), computed
without what it does not show.

:func:`palsy.model.answer.answer` computes, besides, the log odds after every finding in clinical order (the
steps and sequential contributions), the Shapley values, every next test's outcomes with their summaries,
the further negative LPs and what the answer rests on. A card shows none of them, and a new patient's card
is what a CDS service computes under load (docs/service.md): :func:`brief` computes the log joint with every
finding known once, and the next tests' outcomes only as the decision weighs them. Every number it gives is
the one ``answer(patient, draws, leave_out=False)`` gives, to the last bit (tests/test_brief.py compares
them over many patients).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from palsy.model import answer as A
from palsy.model import decision as D
from palsy.model import findings as F
from palsy.model import guidance as G
from palsy.model import lookahead as LA
from palsy.model.atypicality import atypicality
from palsy.model.draws import Draws
from palsy.model.game import Game, Tables, players, softmax
from palsy.model.summaries import probability_summary, summary, tied_with

#: The keys of ``Answer.to_dict()`` a brief answer has, each with the same value (``causes`` and ``log_odds``
#: without the prior's summaries, ``decision`` without ``negative_lps_to_low``, which is None).
KEYS = ("patient", "in_scope", "scope_notes", "atypical", "warnings", "probability", "causes", "leading_cause",
        "tied", "log_odds", "decision", "actions", "model", "out_of_population", "schema_version")


def brief(patient: F.Patient, draws: Draws, *, tables: Tables | None = None, ci: float = 0.9, seed: int = 0,
          decision_settings: D.Settings | None = None, guidance: tuple[G.Action, ...] = ()) -> dict[str, Any]:
    """What a card shows of ``patient``'s answer, as JSON (the keys :data:`KEYS`).

    The question is the record's: every cause weighed, no pretest of the clinician's, no library case left out.

    Parameters
    ----------
    patient : Patient
        The findings (parsed with ``draws.schema``).
    draws : Draws
        The posterior.
    tables : Tables, optional
        Precomputed tables of ``draws`` (kept across patients: a service's worker keeps one).
    ci : float
        Mass of the equal-tailed credible intervals.
    seed : int
        Seed of the atypicality check's simulation (as :func:`palsy.model.answer.answer`'s).
    decision_settings : decision.Settings, optional
        ``priors/decision.yaml``: with them the brief carries the decision.
    guidance : tuple of guidance.Action
        ``priors/actions.yaml``: the brief lists those whose triggers hold.

    Raises
    ------
    findings.InputError
        For a ``ci`` that is not allowed or a patient parsed with another schema.
    """
    A.check_question(patient, draws, ci, None)
    t = tables or Tables(draws)
    active = np.ones(len(t.causes), bool)
    game = Game(t, players(patient), patient, active, t.log_prior, np.zeros_like(t.level_lp[:, :, 0]), None)
    # the last of the answer's prefixes (every finding known), computed alone: rows are computed apart, so it is
    # the same number
    lj = game.log_joint(np.ones((1, game.n_players), bool))[0]
    post_cause = softmax(lj, active)
    post_lo = game.log_odds(lj)
    dec = None
    if decision_settings is not None:
        tests = LA.next_tests(game, patient, ci, None, keep_draws=True, summaries=False)
        dec = A.decide(game, patient, tests, post_lo, post_cause, None, decision_settings, None,
                       draws.meta["diagnostics"].get("ess_bulk_min"), negative_lps=False)
    st = t.settings
    atyp = atypicality(game, float(st["atypicality"]["tail"]), np.random.default_rng(seed), None)
    acts, dec = A.actions(guidance, patient, t.causes, active, post_cause, None, dec, decision_settings)
    post = summary(post_lo, ci)
    means = np.average(post_cause, axis=0)
    lead = int(np.argmax(means))
    return {
        "patient": patient.to_dict(),
        "in_scope": patient.in_scope,
        "scope_notes": A.scope_notes(patient, st),
        "atypical": atyp,
        "warnings": A.hallmark_warnings(patient, t.causes, active, st["hallmarks"]),
        "probability": probability_summary(post_lo, ci),
        "causes": [{"cause": c, "probability": summary(post_cause[:, j], ci)} for j, c in enumerate(t.causes)],
        "leading_cause": t.causes[lead],
        "tied": [t.causes[j] for j in tied_with(post_cause, lead, active, None, A.ess_of(draws))],
        "log_odds": {"posterior": {"mean": post["mean"], "median": post["median"]}},
        "decision": dec,
        "actions": list(acts),
        "model": A.model_info(draws, t, active, None),
        "out_of_population": patient.at_diagnosis,
        "schema_version": patient.schema.version,
    }
