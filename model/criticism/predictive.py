"""Predictive checks: the case library (events on cases' findings) and the cohort counts.

*Case library* (:func:`predictive_checks`). A *statistic* is an event on one case's findings (a level
or group of levels of a presentation finding, "every LP negative", the CSF profile given the first
LP's result, or a conjunction of two of those). Its observed value is the number of library cases,
among those where the event is determined (every finding it involves known, not in the case's
``proven_by`` and not re-tabulated by a review), for which it holds. Every library case is a case of
infiltration, conditioned on its context (DESIGN §3: cases inform the findings given the form, not
the rate model). For every draw s and case i the model gives q_is = P(event | infiltration, case i) (a published
case's findings read through the selection model where the model has one),
the mixture over the case's allowed forms with weights P(form | case context) = sum_lineage
P(lineage | case context, infiltration) omega[lineage, form] (subtype variant). The predictive count
is a Poisson-binomial sum, replicated once per draw (T_rep,s = sum_i Bernoulli(q_is)). We report its
mean, a 90% interval and the predictive p-values P(T_rep >= T_obs), P(T_rep <= T_obs) and the
two-sided 2 min(...) (capped at 1). With prior draws the same numbers are the *prior* predictive
check (labelled prior-only).

*Cohort counts* (:func:`cohort_checks`): x_rep ~ Binomial(n, rate_s) for each entry, with the rate
of its cause (and form) as the fit uses it (:func:`palsy.model.likelihood.entry_rate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from palsy.model import design as D
from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import structure as S
from palsy.model.evidence import Evidence

from .common import CI

ALL_NEGATIVE = "all_negative"
#: Presentation findings whose levels are statistics (the csf and its profile are handled apart).
STAT_FINDINGS = tuple(n for n in S.TREE_FINDINGS)


@dataclasses.dataclass(frozen=True)
class Statistic:
    """An event on a case's findings: a conjunction of ``parts`` (finding, levels)."""

    name: str
    parts: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def kind(self) -> str:
        return "pair" if len(self.parts) > 1 else "single"


def _event(finding: str, levels: str | Sequence[str]) -> tuple[str, tuple[str, ...]]:
    if isinstance(levels, str):
        levels = S.expand(finding, levels) if finding != "csf" else (levels,)
    return finding, tuple(levels)


def default_statistics() -> list[Statistic]:
    """Every level of every presentation finding, the CSF profile (given the first LP's result), and
    pairs that conditional independence given the form could get wrong."""
    out = []
    for name in STAT_FINDINGS:
        levels = F.LEVELS[name]
        for lv in levels if len(levels) > 2 else levels[1:]:  # a binary finding: its second level
            out.append(Statistic(f"{name} = {lv}", (_event(name, lv),)))
    out.append(Statistic("mri = beyond_facial", (_event("mri", "beyond_facial"),)))
    out.append(Statistic("csf: every LP negative", (_event("csf", ALL_NEGATIVE),)))
    for lv in ("normal", "abnormal"):
        out.append(Statistic(f"csf_profile = {lv} (given the first LP)", (_event("csf_profile", lv),)))
    pairs = [
        (("laterality", "bilateral"), ("other_cranial_nerves", "one_or_more")),
        (("laterality", "bilateral"), ("peripheral_nerves", "one_or_more")),
        (("other_cranial_nerves", "one_or_more"), ("peripheral_nerves", "one_or_more")),
        (("laterality", "bilateral"), ("mri", "beyond_facial")),
        (("other_cranial_nerves", "one_or_more"), ("mri", "beyond_facial")),
        (("eighth_nerve", "involved"), ("otoscopy", "abnormal")),
        (("otoscopy", "abnormal"), ("mri", "otomastoid_inflammation")),
        (("onset", "progressive"), ("laterality", "bilateral")),
        (("peripheral_nerves", "one_or_more"), ("csf", ALL_NEGATIVE)),
    ] + [(("csf", ALL_NEGATIVE), ("mri", lv)) for lv in F.LEVELS["mri"]]
    for a, b in pairs:
        out.append(Statistic(f"{a[0]} = {a[1]} & {b[0]} = {b[1]}", (_event(*a), _event(*b))))
    return out


def case_facts(evidence: Evidence) -> list[dict[str, Any]]:
    """Per case, the findings that enter its likelihood (as :func:`palsy.model.design.case_observations`
    decides): level sets of tree findings, ``csf`` as a tuple of (result, method) and
    ``csf_profile`` as (first LP's result, level set)."""
    tabulated = {(cid, e.finding) for e in evidence.entries for cid in e.tabulates_cases}
    out = []
    for case in evidence.cases:
        skip = set(case.proven_by) | {f for (cid, f) in tabulated if cid == case.id}
        facts: dict[str, Any] = {}
        for name in S.TREE_FINDINGS:
            value = case.values.get(name)
            if value is not None and name not in skip:
                facts[name] = frozenset(S.expand(name, value))
        # the LPs only where the fit uses them (DESIGN §3: cases may not inform CSF sensitivity)
        items = {S.LEVEL_KEYS[int(np.flatnonzero(m)[0])][0] for m in D.case_observations(case, skip=skip)}
        if case.csf and "csf" not in skip and items & {S.csf_item(m) for m in F.CSF_METHODS}:
            facts["csf"] = tuple(case.csf)
        profile = case.values.get("csf_profile")
        if profile is not None and case.csf and "csf_profile" not in skip:
            facts["csf_profile"] = (case.csf[0][0], frozenset(S.expand("csf_profile", profile)))
        out.append(facts)
    return out


def _observed(facts: dict[str, Any], part: tuple[str, tuple[str, ...]]) -> bool | None:
    finding, levels = part
    if finding not in facts:
        return None
    if finding == "csf":
        return all(r == "negative" for r, _ in facts["csf"])
    known = facts[finding][1] if finding == "csf_profile" else facts[finding]
    ev = set(levels)
    if known <= ev:
        return True
    if not known & ev:
        return False
    return None


def _case_theta(params: dict[str, np.ndarray], d: D.Design) -> np.ndarray:
    """Theta as a published case sees it (selection of striking features), or theta itself."""
    f = getattr(LK, "case_theta", None)
    return np.asarray(f(LK.NUMPY, params, d)) if f is not None else params["theta"]


class _Probabilities:
    """Per-draw probability tables of infiltration's components used by the predictive checks."""

    def __init__(self, params: dict[str, np.ndarray], d: D.Design) -> None:
        inf = list(d.infiltration_components)
        # published cases are drawn from the node probabilities seen through the selection model
        self.level_p = np.exp(LK.level_logp(LK.NUMPY, _case_theta(params, d)))[:, inf]  # (S, Ki, level)
        self.n, self.ki = self.level_p.shape[0], len(inf)
        self.omega = params.get("omega") if d.variant.is_mixture else None
        self.d = d

    def form_weights(self, i: int) -> np.ndarray:
        """P(form | infiltration, case i's context) restricted to its coded form, unnormalised (S, Ki)."""
        if self.omega is None:
            return np.ones((self.n, self.ki))
        return (self.d.case_lineage[i] @ self.omega) * self.d.case_forms[i]

    def part(self, facts: dict[str, Any], part: tuple[str, tuple[str, ...]]) -> np.ndarray:
        """P(part | infiltration component) per draw (S, Ki)."""
        finding, levels = part
        if finding == "csf":
            p = np.ones((self.n, self.ki))
            for _, method in facts["csf"]:
                p = p * self.level_p[:, :, S.LEVEL_INDEX[(S.csf_item(method), "negative")]]
            return p
        item = S.profile_item(facts["csf_profile"][0]) if finding == "csf_profile" else finding
        idx = [S.LEVEL_INDEX[(item, lv)] for lv in levels]
        return self.level_p[:, :, idx].sum(axis=-1)


def _p_values(rep: np.ndarray, obs: float) -> dict[str, float]:
    p_up, p_lo = float(np.mean(rep >= obs)), float(np.mean(rep <= obs))
    return {"p_upper": p_up, "p_lower": p_lo, "p_value": min(1.0, 2 * min(p_up, p_lo))}


def predictive_checks(params: dict[str, np.ndarray], d: D.Design, evidence: Evidence, *,
                      statistics: Iterable[Statistic] | None = None, seed: int = 1,
                      ci: float = CI) -> list[dict[str, Any]]:
    """Predictive check of each statistic against the case library (see the module docstring).

    Parameters
    ----------
    params : dict of ndarray
        Parameter draws (posterior draws, or :func:`palsy.model.prior.draws` for the prior predictive check).
    d : Design
        The variant's design (its case order, forms and case contexts).
    evidence : Evidence
        The evidence ``d`` was built from (the cases' findings).

    Returns
    -------
    list of dict
        One row per statistic: cases (where determined), observed count, predictive mean, interval,
        and the p-values ``p_upper`` = P(T_rep >= T_obs), ``p_lower`` and ``p_value`` (two-sided).
    """
    rng = np.random.default_rng(seed)
    tables = _Probabilities(params, d)
    facts = case_facts(evidence)
    rows = []
    for stat in statistics or default_statistics():
        qs, ys = [], []
        for i, f in enumerate(facts):
            obs = [_observed(f, part) for part in stat.parts]
            if any(o is None for o in obs):
                continue
            prob = np.ones((tables.n, tables.ki))
            for part in stat.parts:
                prob = prob * tables.part(f, part)
            w = tables.form_weights(i)
            qs.append((prob * w).sum(axis=1) / w.sum(axis=1))
            ys.append(all(obs))
        row: dict[str, Any] = {"statistic": stat.name, "kind": stat.kind, "cases": len(ys)}
        if not ys:
            rows.append({**row, "observed": None, "mean": None, "lower": None, "upper": None,
                         "p_upper": None, "p_lower": None, "p_value": None})
            continue
        q = np.stack(qs, axis=1)  # (S, cases)
        t_obs = int(np.sum(ys))
        t_rep = (rng.random(q.shape) < q).sum(axis=1)
        lo, hi = np.quantile(t_rep, [(1 - ci) / 2, (1 + ci) / 2])
        rows.append({**row, "observed": t_obs, "mean": float(q.sum(axis=1).mean()), "lower": float(lo),
                     "upper": float(hi), **_p_values(t_rep, t_obs)})
    return rows


def entry_labels(d: D.Design, evidence: Evidence | None = None) -> list[dict[str, Any]]:
    """The cause (and form, if the entry names one) of every cohort entry of ``d``."""
    by_id = {e.id: e for e in evidence.entries} if evidence is not None else {}
    out = []
    for j, eid in enumerate(d.entry_ids):
        comps = np.flatnonzero(d.entry_members[j])
        cause = d.variant.component_causes[comps[0]] if len(comps) else None
        e = by_id.get(eid)
        out.append({"cause": e.cause if e else cause, "form": e.form if e else None,
                    "members": [d.variant.components[k] for k in comps]})
    return out


def cohort_checks(params: dict[str, np.ndarray], d: D.Design, evidence: Evidence | None = None, *,
                  seed: int = 1, ci: float = CI) -> list[dict[str, Any]]:
    """Predictive check of each cohort entry: x_rep ~ Binomial(n, rate_s) against the observed x.

    The fit down-weights an entry by its weight; the replicate uses the entry's full n (what the
    cohort reported), so a low-weight entry that disagrees with the rest shows up here. Each row
    names the entry's cause, form and member components.
    """
    rng = np.random.default_rng(seed)
    if not len(d.entry_ids):
        return []
    rate = np.asarray(LK.entry_rate(LK.NUMPY, params, d)).reshape(-1, len(d.entry_ids))
    rows = []
    for j, (eid, lab) in enumerate(zip(d.entry_ids, entry_labels(d, evidence), strict=True)):
        nn = int(round(float(d.entry_n[j])))
        rep = rng.binomial(nn, np.clip(rate[:, j], 0, 1))
        lo, hi = np.quantile(rep, [(1 - ci) / 2, (1 + ci) / 2])
        rows.append({"entry": eid, **lab, "x": float(d.entry_x[j]), "n": float(d.entry_n[j]),
                     "weight": float(d.entry_w[j]), "rate_mean": float(rate[:, j].mean()),
                     "mean": float(rep.mean()), "lower": float(lo), "upper": float(hi),
                     **_p_values(rep, d.entry_x[j])})
    return rows
