"""A patient's answer over the differential, as pure functions over posterior draws (docs/design.md §4).

For each draw s, cause c and observed findings x:

    log P_s(c | x) = log P_s(c) + log p_s(x | c) - logsumexp over the causes

with p(x | infiltration) a mixture over the forms in the subtype variant. The likelihood of any
subset of the findings is :class:`palsy.model.game.Game`; how each finding moves the odds is
:mod:`palsy.model.contributions`; what the next test could do is :mod:`palsy.model.lookahead`; how
typical the findings are is :mod:`palsy.model.atypicality`; the decision :mod:`palsy.model.decision`;
what to do now :mod:`palsy.model.guidance`. This module puts them together in :func:`answer`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from palsy.model import contributions as CO
from palsy.model import decision as D
from palsy.model import findings as F
from palsy.model import guidance as G
from palsy.model import lookahead as LA
from palsy.model import registry as RG
from palsy.model import rests_on as RO
from palsy.model.atypicality import atypicality
from palsy.model.draws import Draws
from palsy.model.game import INFILTRATION, Game, Player, Tables, players, softmax
from palsy.model.psis import psis_weights
from palsy.model.summaries import expit, probability_summary, summary, tied_with, weighted_quantile

__all__ = ["INFILTRATION", "Answer", "Player", "Tables", "answer", "expit", "players", "probability_summary",
           "summary", "weighted_quantile"]


@dataclasses.dataclass(frozen=True)
class Answer:
    """A patient's answer; per-draw arrays for figures, :meth:`to_dict` for the JSON (docs/design.md §7) and
    :meth:`to_datatree` for ArviZ."""

    patient: F.Patient
    ci: float
    pretest: float | None
    causes: tuple[str, ...]  # every modelled cause
    active: np.ndarray  # (cause,) bool: the causes weighed (``--causes``)
    prior_cause: np.ndarray  # (draw, cause) P(c) before any finding
    posterior_cause: np.ndarray  # (draw, cause) P(c | findings)
    prior_log_odds: np.ndarray  # (draw,)
    posterior_log_odds: np.ndarray  # (draw,)
    players: tuple[Player, ...]
    sequential: np.ndarray  # (player, draw)
    shapley: np.ndarray  # (player, draw)
    shapley_method: dict[str, Any]
    step_cause: np.ndarray  # (step, draw, cause): P(c) after each prefix, step 0 the prior
    next_tests: tuple[dict[str, Any], ...]
    atypical: dict[str, Any]
    scope_notes: tuple[str, ...]
    warnings: tuple[str, ...]
    weights: np.ndarray | None
    model: dict[str, Any]
    left_out: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    actions: tuple[dict[str, Any], ...] = ()
    # what the answer rests on, computed when first read (most answers a program makes are never shown)
    rests_on_of: Callable[[], tuple[dict[str, Any], ...]] | None = dataclasses.field(default=None, repr=False,
                                                                                      compare=False)
    variants: dict[str, Any] | None = None
    ess: float | None = None  # the fit's smallest bulk ESS: the Monte Carlo errors of a tie (None: the draws')

    @functools.cached_property
    def rests_on(self) -> tuple[dict[str, Any], ...]:
        """``[{source, kind, share}]``: the shares of the variance of the log odds of infiltration by where
        they come from (:mod:`palsy.model.rests_on`), largest first; empty when not asked for or under a
        pretest. Computed on first use (about 0.1 s) and kept."""
        return self.rests_on_of() if self.rests_on_of is not None else ()

    @property
    def in_scope(self) -> bool:
        return self.patient.in_scope

    @property
    def causes_weighed(self) -> tuple[str, ...]:
        return tuple(c for c, a in zip(self.causes, self.active, strict=True) if a)

    @property
    def probability(self) -> dict[str, float]:
        return probability_summary(self.posterior_log_odds, self.ci, self.weights)

    @property
    def prior_probability(self) -> dict[str, float]:
        return probability_summary(self.prior_log_odds, self.ci, self.weights)

    @property
    def probability_draws(self) -> np.ndarray:
        return expit(self.posterior_log_odds)

    def cause_summaries(self) -> list[dict[str, Any]]:
        """Every weighed cause: P(c | findings) and P(c) (mean, median, interval), means summing to one."""
        out = []
        for j, c in enumerate(self.causes):
            if not self.active[j]:
                continue
            post = summary(self.posterior_cause[:, j], self.ci, self.weights)
            pri = summary(self.prior_cause[:, j], self.ci, self.weights)
            out.append({"cause": c, "probability": post, "prior_probability": pri})
        return out

    @property
    def leading_cause(self) -> str:
        means = np.average(self.posterior_cause, axis=0, weights=self.weights)
        return self.causes[int(np.argmax(np.where(self.active, means, -1)))]

    @property
    def tied(self) -> list[str]:
        """The causes tied with the leading cause (:func:`palsy.model.summaries.tied_with`): an order of means the
        computation cannot tell, so no report or card may say that one of them leads."""
        lead = self.causes.index(self.leading_cause)
        ess = self.ess if self.ess is not None else len(self.posterior_cause)
        return [self.causes[j] for j in tied_with(self.posterior_cause, lead, self.active, self.weights, ess)]

    def _contrib(self, arr: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for p, row in zip(self.players, arr, strict=True):
            s = summary(row, self.ci, self.weights)
            out.append({"finding": p.finding, "index": p.index, "value": p.value,
                        "log_lr": s, "factor_geometric_mean": math.exp(s["mean"]),
                        "factor_median": math.exp(s["median"])})
        return out

    @property
    def contributions(self) -> list[dict[str, Any]]:
        return self._contrib(self.sequential)

    @property
    def shapley_values(self) -> list[dict[str, Any]]:
        return self._contrib(self.shapley)

    def steps(self) -> list[dict[str, Any]]:
        """The differential after each step in clinical order (mean probabilities), from the prior."""
        out = []
        labels = [("prior", None, None)] + [(p.finding, p.index, p.value) for p in self.players]
        # every step at once: numpy sums each (step, cause) over the draws as it does one step's
        every = np.average(self.step_cause, axis=1, weights=self.weights)
        for (finding, index, value), means in zip(labels, every, strict=True):
            out.append({"finding": finding, "index": index, "value": value,
                        "causes": {c: float(m) for c, m, a in zip(self.causes, means, self.active, strict=True) if a}})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of docs/design.md §7 (floats unrounded), plus the patient and provenance."""
        pri = summary(self.prior_log_odds, self.ci, self.weights)
        post = summary(self.posterior_log_odds, self.ci, self.weights)
        return {
            "patient": self.patient.to_dict(),
            "in_scope": self.in_scope,
            "scope_notes": list(self.scope_notes),
            "atypical": self.atypical,
            "warnings": list(self.warnings),
            "probability": self.probability,
            "prior_probability": self.prior_probability,
            "causes": self.cause_summaries(),
            "leading_cause": self.leading_cause,
            "tied": self.tied,
            "log_odds": {"prior": {"mean": pri["mean"], "median": pri["median"]},
                         "posterior": {"mean": post["mean"], "median": post["median"]}},
            "contributions": self.contributions,
            "shapley": self.shapley_values,
            "shapley_method": self.shapley_method,
            "steps": self.steps(),
            "next_tests": list(self.next_tests),
            "decision": self.decision,
            "actions": list(self.actions),
            "model": self.model,
            "out_of_population": self.patient.at_diagnosis,
            "left_out_case": self.left_out,
            "rests_on": list(self.rests_on),
            "variants": self.variants,
            "schema_version": self.patient.schema.version,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_datatree(self):
        """The answer's draws as an ``xarray.DataTree`` with named dims (``draw``, ``cause``, ``step``,
        ``player``), so that ArviZ's summaries and plots work on one patient's answer.

        A library case is answered with itself left out: its draws carry Pareto-smoothed importance weights,
        which the answer's own summaries apply and ArviZ's do not. They are then the variable ``psis_weight``
        (draw; they sum to one), and the attribute ``weights`` says so; weigh by them (or resample) to
        reproduce the answer's numbers."""
        import xarray as xr

        causes = list(self.causes)
        players = [p.label for p in self.players]
        steps = ["prior", *players]
        post = xr.Dataset({
            "p_cause": (("draw", "cause"), self.posterior_cause),
            "prior_cause": (("draw", "cause"), self.prior_cause),
            "log_odds_infiltration": (("draw",), self.posterior_log_odds),
            "prior_log_odds_infiltration": (("draw",), self.prior_log_odds),
            "step_p_cause": (("step", "draw", "cause"), self.step_cause),
            "sequential": (("player", "draw"), self.sequential),
            "shapley": (("player", "draw"), self.shapley),
        }, coords={"cause": causes, "player": players, "step": steps, "draw": np.arange(len(self.posterior_log_odds))})
        if self.weights is not None:
            post["psis_weight"] = (("draw",), np.asarray(self.weights, float) / float(np.sum(self.weights)))
        post = post.expand_dims(chain=[0])
        tree = xr.DataTree.from_dict({"posterior": post})
        tree.attrs = {"patient": self.patient.id, "ci": self.ci, "weights": "PSIS leave-one-out: weigh the draws by psis_weight"
                      if self.weights is not None else "none", "variant": str(self.model.get("variant"))}
        return tree


def active_causes(causes: tuple[str, ...], selected: tuple[str, ...] | None) -> np.ndarray:
    """The causes weighed (``--causes``) as a boolean mask over every modelled cause."""
    if selected is None:
        return np.ones(len(causes), bool)
    unknown = [c for c in selected if c not in causes]
    if unknown or INFILTRATION not in selected or len(set(selected)) < 2:
        raise F.InputError([f"--causes: {','.join(selected)!r} is not allowed; give 'all' or a comma-separated list "
                            f"of at least two of {', '.join(causes)} including {INFILTRATION}"], "command line")
    return np.array([c in selected for c in causes])


def hallmark_warnings(patient: F.Patient, causes: tuple[str, ...], active: np.ndarray,
                      hallmarks: dict[str, list[dict[str, str]]]) -> list[str]:
    """Warnings for hallmarks of causes that ``--causes`` leaves out."""
    out = []
    for c, a in zip(causes, active, strict=True):
        if a:
            continue
        for mark in hallmarks.get(c) or []:
            if patient.level(mark["finding"]) == mark["value"]:
                out.append(f"{mark['finding']}: {mark['value']} is a hallmark of {c}, which --causes leaves out")
    return out


def workup_pending(patient: F.Patient) -> tuple[str, ...]:
    """The tests of the work-up (source 000: contrast MRI, an LP read by cytology and flow) not yet done for a
    patient whose palsy may be peripheral: recommended whatever the probability (docs/design.md §4)."""
    if patient.central:
        return ()
    sc = patient.schema
    out = []
    for name, test in sc.next_tests.items():
        if test.reads == sc.lp.name:  # until an LP is read by the more sensitive method (flow cytometry)
            if not any(lp.result(test.methods[-1]) is not None for lp in patient.csf):
                out.append(name)
        elif patient.level(test.reads) is None:
            out.append(name)
    return tuple(out)


def answer(patient: F.Patient, draws: Draws, *, ci: float = 0.9, pretest: float | None = None,
           causes: tuple[str, ...] | None = None, tables: Tables | None = None, leave_out: bool = True,
           keep_draws: bool = False, seed: int = 0, decision_settings: D.Settings | None = None,
           thresholds: tuple[float, float] | None = None, guidance: tuple[G.Action, ...] = (),
           shapley: bool = True, next_tests: bool = True, rests_on: bool = True,
           negative_lps: bool = True, other: Draws | None = None) -> Answer:
    """The answer for ``patient`` from posterior ``draws``.

    Parameters
    ----------
    ci : float
        Mass of the equal-tailed credible intervals.
    pretest : float, optional
        The clinician's own P(infiltration) for this patient given the context findings (who the
        patient is). The context findings then move nothing further; the other causes keep their
        relative shares.
    causes : tuple of str, optional
        Condition on the cause being one of these (must include infiltration); all by default.
    tables : Tables, optional
        Precomputed tables of ``draws`` (reuse across many patients).
    leave_out : bool
        If the patient is a library case (same id or alias), answer with that case left out
        (Pareto-smoothed importance weights; k-hat reported).
    keep_draws : bool
        Keep per-draw arrays of the next tests (for figures and the identity test).
    seed : int
        Seed of the Monte Carlo parts (sampled Shapley values, atypicality): answers are reproducible.
    decision_settings : decision.Settings, optional
        Harms and benefits of ``priors/decision.yaml``: with them the answer carries the decision.
    thresholds : (low, high), optional
        Overrides the decision's pair of thresholds for this query.
    guidance : tuple of guidance.Action
        The actions of ``priors/actions.yaml``: the answer lists those whose triggers hold.
    shapley : bool
        Compute the Shapley values (the costliest part; a card in the record does not show them).
    next_tests : bool
        Compute what the next tests could do (the lesson's many answers do not show it); always computed
        when ``decision_settings`` is given, since the decision weighs them.
    rests_on : bool
        Split the uncertainty of the answer's log odds into what it rests on (:mod:`palsy.model.rests_on`:
        blocks of parameters, each as expert judgment or data, and Monte Carlo error), about 0.1 s.
    negative_lps : bool
        Count, with the decision, the further negative LPs that would bring P(infiltration) below the lower
        threshold (``negative_lps_to_low``; about 13 ms for a patient above it). A card in the record does not
        show them: without, ``negative_lps_to_low`` is None and every other number is the same.
    other : Draws, optional
        The other variant's posterior (same evidence): the answer then gives its P(infiltration) for this
        patient under it, and whether the two differ by more than ``variants.differ_by`` of
        ``priors/model.yaml`` (model uncertainty, named on page 1).

    Raises
    ------
    findings.InputError
        For a ``ci``, ``pretest`` or ``causes`` that is not allowed.
    """
    check_question(patient, draws, ci, pretest)
    t = tables or Tables(draws)
    active = active_causes(t.causes, causes)
    inf = t.causes.index(INFILTRATION)
    rng = np.random.default_rng(seed)
    prior_pc = softmax(t.log_prior, active)
    ctx = {name: patient.level(name) for name in t.schema.context}
    if pretest is None:
        plist = players(patient)
        base, offset, known = t.log_prior, np.zeros_like(t.level_lp[:, :, 0]), None
    else:
        plist = players(patient, context=False)
        log_ctx_c = t.by_cause(t.context_term(ctx))  # log P(context | c)
        # the game adds log P(context, k | c) for the context known (whether blasts circulate sets the LPs'
        # contamination); less log P(context | c), the context moves nothing: log P(k | c, context) remains
        offset = -log_ctx_c[:, t.component_cause]
        q = softmax(t.log_prior + log_ctx_c, active & (np.arange(len(t.causes)) != inf))
        with np.errstate(divide="ignore"):
            base = np.log(q * (1 - pretest))
        base[:, inf] = math.log(pretest)
        prior_pc = softmax(base, active)
        known = ctx
    game = Game(t, plist, patient, active, base, offset, known)
    seq, prefix_lj = CO.sequential(game)
    phi, phi_method = CO.shapley(game, rng) if shapley else (np.full_like(seq, np.nan), {"method": "not computed"})
    step_cause = softmax(prefix_lj, active)
    prior_lo = game.log_odds(prefix_lj[0])
    post_lo = game.log_odds(prefix_lj[-1])
    w, left = None, None
    idx = draws.case_index(patient.id) if leave_out else None
    if idx is not None:
        w, k = psis_weights(-draws.case_loglik[idx])
        left = {"case": draws.meta["case_ids"][idx], "method": "PSIS", "pareto_k": k, "reliable": bool(k < 0.7)}
    tests = (LA.next_tests(game, patient, ci, w, keep_draws=True, ess=ess_of(draws))
             if next_tests or decision_settings is not None else [])
    dec = None
    if decision_settings is not None:
        dec = decide(game, patient, tests, post_lo, step_cause[-1], w, decision_settings, thresholds,
                     draws.meta["diagnostics"].get("ess_bulk_min"), negative_lps)
    if not keep_draws:
        tests = [{"test": t_["test"], "outcomes": [{k: v for k, v in o.items() if k not in ("_draws", "p_inf")}
                                                    for o in t_["outcomes"]]} for t_ in tests]
    st = t.settings
    # its own generator: the check reads the same whether or not Shapley values were sampled before it
    # (a card in the record leaves them out and must give the command line's answer)
    atyp = atypicality(game, float(st["atypicality"]["tail"]), np.random.default_rng(seed), w)
    notes = scope_notes(patient, st)
    warns = hallmark_warnings(patient, t.causes, active, st["hallmarks"])
    model = model_info(draws, t, active, pretest)
    acts, dec = actions(guidance, patient, t.causes, active, step_cause[-1], w, dec, decision_settings)
    # with a clinician's pretest the base rate is theirs, not the model's: the decomposition (of the model's
    # own uncertainty, the rate block among it) does not describe that answer and is left out
    def rests() -> tuple[dict[str, Any], ...]:
        return tuple({**r, "share": float(r["share"])}
                     for r in RO.rests_on(game, draws.meta.get("rests_on"), weights=w, seed=seed))

    variants = _other_variant(patient, other, ci, pretest, causes, leave_out, seed,
                              probability_summary(post_lo, ci, w)["mean"], float(st["variants"]["differ_by"]))
    if variants is not None and variants.get("probability") and dec is not None:
        # the action the other variant's mean would imply with this answer's thresholds: whether the decision
        # itself rests on the choice of variant
        th = dec["thresholds"]
        variants["action"] = D.zone(variants["probability"]["mean"], th["low"], th["high"])
    return Answer(patient, ci, pretest, t.causes, active, prior_pc, step_cause[-1], prior_lo, post_lo,
                  tuple(plist), seq, phi, phi_method, step_cause, tuple(tests), atyp, tuple(notes), tuple(warns),
                  w, model, left, dec, acts, rests if rests_on and pretest is None else None, variants,
                  ess_of(draws))


def ess_of(draws: Draws) -> float:
    """The effective sample size an answer's Monte Carlo errors use: the fit's smallest bulk ESS (the draws'
    number when the fit recorded none)."""
    return float(draws.meta.get("diagnostics", {}).get("ess_bulk_min") or draws.n)


def check_question(patient: F.Patient, draws: Draws, ci: float, pretest: float | None) -> None:
    """An InputError for a ``ci`` or ``pretest`` that is not allowed, or a patient parsed with another schema
    than the posterior's."""
    lo, hi = F.CI_RANGE
    if not lo <= ci <= hi:
        raise F.InputError([f"ci: {ci!r} is not allowed; give the interval's mass from {lo:g} to {hi:g} (e.g. 0.9)"],
                           "command line")
    if pretest is not None and not 0 < pretest < 1:
        raise F.InputError([f"pretest: {pretest!r} is not allowed; give a probability strictly between 0 and 1"],
                           "command line")
    if patient.schema != draws.schema:
        raise F.InputError([f"the patient follows schema {patient.schema.hash[:12]}, the posterior {draws.schema.hash[:12]}: "
                            "parse the patient with the posterior's schema (draws.schema)"], "patient")


def decide(game: Game, patient: F.Patient, tests: list[dict[str, Any]], post_lo: np.ndarray,
           cause_draws: np.ndarray, w: np.ndarray | None, settings: D.Settings,
           thresholds: tuple[float, float] | None, ess: float | None, negative_lps: bool) -> dict[str, Any]:
    """The decision (:func:`palsy.model.decision.decide`) from the answer's parts: the next ``tests`` with their
    per-draw outcomes (``keep_draws``), each given its P(infiltration) per draw here; the further negative
    LPs counted when ``negative_lps``."""
    inf = game.inf
    for t_ in tests:
        for o in t_["outcomes"]:
            o["p_inf"] = o["_draws"][1][:, inf]
    return D.decide(expit(post_lo), tests, LA.negative_steps(game, patient, w) if negative_lps else None,
                    settings, thresholds, w, causes=game.t.causes, cause_draws=cause_draws, ess=ess,
                    workup_pending=workup_pending(patient))


def actions(guidance: tuple[G.Action, ...], patient: F.Patient, causes: tuple[str, ...], active: np.ndarray,
            cause_draws: np.ndarray, w: np.ndarray | None, dec: dict[str, Any] | None,
            settings: D.Settings | None) -> tuple[tuple[dict[str, Any], ...], dict[str, Any] | None]:
    """What to do now (the actions of ``guidance`` whose triggers hold, from the mean P(cause) of
    ``cause_draws``) and the decision ``dec`` saying first when one of them escalates."""
    means = dict(zip(causes, np.average(cause_draws, axis=0, weights=w).tolist(), strict=True))
    todo = G.applicable(guidance, patient, {c: m for (c, m), a in zip(means.items(), active, strict=True) if a},
                        dec["action"] if dec else None)
    acts = tuple({"id": g.id, "text": g.text, "detail": g.detail, "refs": list(g.refs), "urgency": g.urgency}
                 for g in todo)
    if dec is not None and settings is not None:
        dec = {**D.with_escalation(dec, settings, any(g.urgency == "escalation" for g in todo)),
               "central": bool(patient.central)}
    return acts, dec


def model_info(draws: Draws, t: Tables, active: np.ndarray, pretest: float | None) -> dict[str, Any]:
    """The answer's ``model``: which posterior answered (variant, draws, evidence, version, seed, diagnostics),
    the causes weighed and those not modelled."""
    st = t.settings
    return {"variant": draws.variant, "draws": draws.n, "evidence_hash": draws.meta["evidence_hash"],
            "version": draws.meta["version"], "pretest": pretest, "seed": draws.meta["settings"]["seed"],
            "diagnostics_ok": draws.meta["diagnostics"]["ok"], "causes": list(t.causes),
            "causes_weighed": [c for c, a in zip(t.causes, active, strict=True) if a],
            "not_modelled": list(st["not_modelled"]), "schema_version": t.schema.version,
            "cause_labels": st.get("cause_labels") or {},
            # whether a hospital registry informed the fit, its rows fitted and what it moved: numbers only, never
            # a site code, a file name or an 'other' row's text (every answer's JSON and the service's log carry it)
            "registry": RG.for_answer(draws.meta.get("registry"))}


def scope_notes(patient: F.Patient, settings: dict[str, Any]) -> list[str]:
    """The notes of ``priors/model.yaml``'s ``scope`` that apply to ``patient`` (out of scope, at diagnosis)."""
    return [" ".join(settings["scope"][key].split()) for key in patient.scope_keys]


def _other_variant(patient: F.Patient, other: Draws | None, ci: float, pretest: float | None,
                   causes: tuple[str, ...] | None, leave_out: bool, seed: int,
                   this: float, threshold: float) -> dict[str, Any] | None:
    """The patient's P(infiltration) under the other variant (the same question: pretest, causes, the
    library case left out), against this answer's mean (``differs`` beyond ``threshold``); None without the
    other variant's draws."""
    if other is None:
        return None
    if other.schema != patient.schema:
        return {"variant": other.variant, "probability": None, "differs": False,
                "note": "the other variant was fitted to other evidence: not compared"}
    alt = answer(patient, other, ci=ci, pretest=pretest, causes=causes, leave_out=leave_out, seed=seed,
                 shapley=False, next_tests=False, rests_on=False)
    diff = alt.probability["mean"] - this
    return {"variant": other.variant, "probability": alt.probability, "difference": diff,
            "threshold": threshold, "differs": bool(abs(diff) > threshold)}
