"""Predictive checks: the case library (events on cases' findings) and the cohort counts.

*Case library* (:func:`predictive_checks`). A *statistic* is an event on one case's findings (a level
or group of levels of a presentation or imaging finding, the CSF profile given the first LP's class, or
a conjunction of two of those). Its observed value is the number of library cases, among those where
the event is determined (every finding it involves known, not in the case's ``proven_by`` and not
re-tabulated by a review), for which it holds. Every library case is a case of infiltration,
conditioned on its context (docs/design.md §3: cases inform the findings given the form, not the rate
model). Cases carry no LP result in the likelihood (they do not inform CSF sensitivity: the LP that
proved a case is left out, so only negative LPs would remain), so no statistic is on the LPs
themselves; the profile of the first LP enters given that LP's class, as in the fit. For every draw s
and case i the model gives q_is = P(event | infiltration, case i) (a published case's findings read
through the selection model where the model has one), the mixture over the case's allowed forms with
weights P(form | case context) = sum_lineage P(lineage | case context, infiltration) omega[lineage,
form] (subtype variant). The predictive count is a Poisson-binomial sum, replicated once per draw
(T_rep,s = sum_i Bernoulli(q_is)). We report its mean, a 90% interval and the predictive p-values
P(T_rep >= T_obs), P(T_rep <= T_obs) and the two-sided 2 min(...) (capped at 1). With prior draws the
same numbers are the *prior* predictive check (labelled prior-only).

*Cohort counts* (:func:`cohort_checks`): x_rep ~ Binomial(n, rate_s) for each entry, with the rate
of its cause (and form) as the fit uses it (:func:`palsy.model.likelihood.entry_rate`), tree, LP and
CSF-node entries alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from palsy.model import design as D
from palsy.model import likelihood as LK
from palsy.model import structure as ST
from palsy.model.evidence import Evidence

from .common import CI

PROFILE = "csf_profile"  # the statistics' name of the first LP's profile (the schema's profile finding)
#: Pairs of (finding, level) events that conditional independence given the form could get wrong;
#: a pair naming a finding or level the schema does not have is skipped.
PAIRS = (
    (("laterality", "bilateral"), ("other_cranial_nerves", "one_or_more")),
    (("laterality", "bilateral"), ("peripheral_nerves", "one_or_more")),
    (("other_cranial_nerves", "one_or_more"), ("peripheral_nerves", "one_or_more")),
    (("laterality", "bilateral"), ("mri", "beyond_facial")),
    (("other_cranial_nerves", "one_or_more"), ("mri", "beyond_facial")),
    (("eighth_nerve", "involved"), ("otoscopy", "abnormal")),
    (("otoscopy", "abnormal"), ("mri", "otomastoid_inflammation")),
    (("otalgia", "present"), ("otoscopy", "abnormal")),
    (("otalgia", "present"), ("mri", "otomastoid_inflammation")),
    (("onset", "progressive"), ("laterality", "bilateral")),
    (("peripheral_nerves", "one_or_more"), ("mri", "beyond_facial")),
)


@dataclasses.dataclass(frozen=True)
class Statistic:
    """An event on a case's findings: a conjunction of ``parts`` (finding, levels)."""

    name: str
    parts: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def kind(self) -> str:
        return "pair" if len(self.parts) > 1 else "single"


def _event(st: ST.Structure, finding: str, levels: str | tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    if isinstance(levels, str):
        levels = st.expand(finding, levels)
    return finding, tuple(levels)


def default_statistics(st: ST.Structure) -> list[Statistic]:
    """Every level of every tree finding (a binary finding: its second level), the partly known MRI
    group, the CSF profile (given the first LP's class), and the pairs of :data:`PAIRS`."""
    sc = st.schema
    out = []
    for name in st.tree_findings:
        levels = sc.levels[name]
        for lv in levels if len(levels) > 2 else levels[1:]:
            out.append(Statistic(f"{name} = {lv}", (_event(st, name, lv),)))
    for name, groups in sc.partial.items():
        if name in st.tree_findings:
            for g in groups:
                out.append(Statistic(f"{name} = {g}", (_event(st, name, g),)))
    for lv in sc.levels[sc.profile]:
        out.append(Statistic(f"{PROFILE} = {lv} (given the first LP)", (_event(st, sc.profile, lv),)))
    def ok(f: str, lv: str) -> bool:
        return f in st.tree_findings and (lv in sc.levels[f] or lv in sc.partial.get(f, {}))

    for a, b in PAIRS:
        if ok(*a) and ok(*b):
            out.append(Statistic(f"{a[0]} = {a[1]} & {b[0]} = {b[1]}", (_event(st, *a), _event(st, *b))))
    return out


def case_facts(evidence: Evidence) -> list[dict[str, Any]]:
    """Per case, the findings that enter its likelihood (as :func:`palsy.model.design.case_observations`
    decides): level sets of tree findings and the profile as (its item given the first LP's class,
    level set)."""
    st = evidence.structure
    tabulated = {(cid, e.finding) for e in evidence.entries for cid in e.tabulates_cases}
    out = []
    for case in evidence.cases:
        skip = {f for (cid, f) in tabulated if cid == case.id}
        facts: dict[str, Any] = {}
        for mask in D.case_observations(case, st, skip=skip):
            keys = [st.level_keys[j] for j in np.flatnonzero(mask)]
            item = keys[0][0]
            levels = frozenset(lv for _, lv in keys)
            if item in st.tree_findings:
                facts[item] = levels
            else:  # the profile given the first LP's class
                facts[st.profile_finding] = (item, levels)
        out.append(facts)
    return out


def _observed(facts: dict[str, Any], part: tuple[str, tuple[str, ...]], profile: str) -> bool | None:
    finding, levels = part
    if finding not in facts:
        return None
    known = facts[finding][1] if finding == profile else facts[finding]
    ev = set(levels)
    if known <= ev:
        return True
    if not known & ev:
        return False
    return None


class _Probabilities:
    """Per-draw probability tables of infiltration's components used by the predictive checks."""

    def __init__(self, params: dict[str, np.ndarray], d: D.Design) -> None:
        inf = list(d.infiltration_components)
        st = d.structure
        # published cases are drawn from the node probabilities seen through the selection model
        theta = np.asarray(LK.case_theta(LK.NUMPY, params, d))
        self.level_p = np.exp(LK.level_logp(LK.NUMPY, theta, st))[:, inf]  # (S, Ki, level)
        self.n, self.ki = self.level_p.shape[0], len(inf)
        self.omega = params.get("omega") if d.variant.is_mixture else None
        self.d, self.st = d, st

    def form_weights(self, i: int) -> np.ndarray:
        """P(form | infiltration, case i's context) restricted to its coded form, unnormalised (S, Ki)."""
        if self.omega is None:
            return np.ones((self.n, self.ki))
        return (self.d.case_lineage[i] @ self.omega) * self.d.case_forms[i]

    def part(self, facts: dict[str, Any], part: tuple[str, tuple[str, ...]]) -> np.ndarray:
        """P(part | infiltration component) per draw (S, Ki)."""
        finding, levels = part
        item = facts[finding][0] if finding == self.st.profile_finding else finding
        idx = [self.st.level_index[(item, lv)] for lv in levels]
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
    profile = d.structure.profile_finding
    rows = []
    for stat in statistics or default_statistics(d.structure):
        qs, ys, holds, per_form = [], [], [], []
        for i, f in enumerate(facts):
            obs = [_observed(f, part, profile) for part in stat.parts]
            if any(o is None for o in obs):
                continue
            prob = np.ones((tables.n, tables.ki))
            for part in stat.parts:
                prob = prob * tables.part(f, part)
            w = tables.form_weights(i)
            qs.append((prob * w).sum(axis=1) / w.sum(axis=1))
            ys.append(all(obs))
            per_form.append(prob.mean(axis=0))
            if all(obs):
                holds.append(d.case_ids[i])
        row: dict[str, Any] = {"statistic": stat.name, "kind": stat.kind, "cases": len(ys), "holds_in": holds,
                               "parts": [[f, list(lv)] for f, lv in stat.parts],
                               "by_form": ({d.variant.components[k]: float(np.mean([x[j] for x in per_form]))
                                            for j, k in enumerate(d.infiltration_components)} if per_form else {})}
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


def explain(row: dict[str, Any], d: D.Design, evidence: Evidence | None = None) -> str:
    """One paragraph on a failed predictive check (p < 0.05): what was seen against what was predicted, in
    which cases, and which part of the model can produce the gap (publication selection the selection
    model does not cover; conditional independence given the form for a pair; form-specific judgments
    under the subtype variant; or a rate the library does not bear out)."""
    st = d.structure
    direction = "more often" if row["p_upper"] < row["p_lower"] else "less often"
    cases = {c.id: c for c in evidence.cases} if evidence is not None else {}

    def label(cid: str) -> str:
        c = cases.get(cid)
        return f"{cid} (coded {c.form})" if c is not None and c.form else cid

    shown = ", ".join(label(c) for c in row["holds_in"][:6]) + (" and others" if len(row["holds_in"]) > 6 else "")
    text = (f"{row['statistic']}: seen in {row['observed']} of {row['cases']} library cases where determined "
            f"({shown or 'none'}), against {row['mean']:.2g} predicted (90% {row['lower']:g}-{row['upper']:g}, "
            f"p = {row['p_value']:.2g}): the case library shows it {direction} than the model expects.")
    selected = {(st.nodes[k].item, lv) for k in np.flatnonzero(d.sel_mask) for lv in st.nodes[k].success}
    parts = [(f, tuple(lv)) for f, lv in row["parts"]]
    inside = [all((f, lv) in selected for lv in lvs) for f, lvs in parts]
    if direction == "more often" and not all(inside):
        names = ", ".join(f"{f} = {'/'.join(lvs)}" for (f, lvs), ok in zip(parts, inside, strict=True) if not ok)
        text += (f" {names} is not a striking feature of the selection model (gamma inflates only "
                 f"{', '.join(sorted({f'{i}: {lv}' for i, lv in selected}))}), yet case reports are published "
                 "for what misled or taught: a leukaemic infiltrate that looked like the mimic is such a report. "
                 "Where publication favours a feature the model does not know about, the library's excess is read "
                 "as infiltration's own frequency, and where a prior holds that frequency low it shows as this misfit.")
    elif direction == "more often":
        text += (" Every part is a striking feature the selection model inflates: publication favours it even more "
                 "than gamma's posterior allows.")
    else:
        text += (" The model's frequency comes from cohort counts or judgments that the library's cases do not bear "
                 "out (or case reports leave the finding out when it is absent).")
    if row["kind"] == "pair":
        text += (" A pair: the model takes the two findings as independent given the form, so that they are seen "
                 f"together {direction} than that allows points to a dependence the forms do not carry.")
    if d.variant.is_mixture and row.get("by_form"):
        forms = ", ".join(f"{k} {v:.2g}" for k, v in row["by_form"].items())
        text += (f" Under the subtype variant each form has its own frequency (posterior mean P(event | form), over "
                 f"these cases: {forms}); a case coded to a form whose judgment makes the event rare weighs heavily.")
    return text


def entry_labels(d: D.Design, evidence: Evidence | None = None) -> list[dict[str, Any]]:
    """The cause (and form, if the entry names one) of every cohort entry of ``d``."""
    by_id = {e.id: e for e in evidence.entries} if evidence is not None else {}
    out = []
    for j, eid in enumerate(d.entry_ids):
        comps = np.flatnonzero(d.entry_members[j])
        shared = len(comps) == len(d.variant.components) > 1
        cause = None if shared else (d.variant.component_causes[comps[0]] if len(comps) else None)
        e = by_id.get(eid)
        out.append({"cause": e.cause if e else cause, "form": e.form if e else None,
                    "quantity": e.quantity if e else None,
                    "members": [d.variant.components[k] for k in comps]})
    return out


def cohort_checks(params: dict[str, np.ndarray], d: D.Design, evidence: Evidence | None = None, *,
                  seed: int = 1, ci: float = CI) -> list[dict[str, Any]]:
    """Predictive check of each cohort entry: x_rep ~ Binomial(n, rate_s) against the observed x.

    The fit down-weights an entry by its weight; the replicate uses the entry's full n (what the
    cohort reported), so a low-weight entry that disagrees with the rest shows up here. Each row
    names the entry's cause (None for a node shared by every cause), form, quantity (tree, lp or node)
    and member components.
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
        row = {"entry": eid, **lab, "x": float(d.entry_x[j]), "n": float(d.entry_n[j]),
               "weight": float(d.entry_w[j]), "rate_mean": float(rate[:, j].mean()),
               "mean": float(rep.mean()), "lower": float(lo), "upper": float(hi),
               **_p_values(rep, d.entry_x[j])}
        row["explanation"] = explain_entry(row, d, j) if row["p_value"] < P_FAIL else None
        rows.append(row)
    return rows


P_FAIL = 0.05


def explain_entry(row: dict[str, Any], d: D.Design, j: int) -> str:
    """One sentence on a cohort count its own fit does not reproduce (p < 0.05)."""
    direction = "higher" if row["p_upper"] < row["p_lower"] else "lower"
    pooled = bool(d.re_member.shape[1] and d.re_member[j].any())
    why = ("its quantity is pooled with other studies under a shared spread tau: the fitted centre and the "
           "study's own effect together still miss it, so this study's setting differs more than tau allows "
           "(the leave-one-study-out check of the heterogeneity section tests it against the others)"
           if pooled else
           f"it is the only entry on its quantity, fitted at weight {row['weight']:g}: the replicate uses the full "
           f"n = {row['n']:g}, so the prior (an expert judgment or the base prior) and the other evidence on the "
           "same node pull the rate away from what this study counted")
    return (f"{row['entry']} ({row['cause'] or 'all causes'}{'/' + row['form'] if row['form'] else ''}) counts "
            f"{row['x']:g}/{row['n']:g}, {direction} than the model's rate {100 * row['rate_mean']:.2g}% predicts "
            f"(90% {row['lower']:g}-{row['upper']:g} of {row['n']:g}, p = {row['p_value']:.2g}): {why}.")
