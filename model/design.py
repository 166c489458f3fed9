"""Evidence -> numeric design arrays for one variant (counts, weights, masks): pure numpy.

These arrays are what the PyMC model holds as ``pm.Data`` and what the conjugate posterior and the
per-case log-likelihoods are computed from.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from model import structure as S
from model.evidence import Case, Evidence
from model.variants import Variant

Z90 = 1.6448536269514722  # standard normal 95% quantile: a 90% interval is median */ factor90


@dataclasses.dataclass(frozen=True)
class Design:
    """Numeric arrays of one variant's likelihood and priors (names say the dims)."""

    variant: Variant
    # priors of the Beta nodes: (component, node)
    prior_a: np.ndarray
    prior_b: np.ndarray
    # cohort entries on tree items: masks (entry, level), members (entry, component)
    entry_ids: tuple[str, ...]
    entry_level: np.ndarray
    entry_of: np.ndarray
    entry_members: np.ndarray
    entry_x: np.ndarray
    entry_n: np.ndarray
    entry_w: np.ndarray
    # cohort entries on lineage/remission under L: masks (entry, 12 strata)
    sentry_ids: tuple[str, ...]
    sentry_level: np.ndarray
    sentry_of: np.ndarray
    sentry_x: np.ndarray
    sentry_n: np.ndarray
    sentry_w: np.ndarray
    # cases: observation masks (obs, level), incidence (case, obs), allowed L components
    case_ids: tuple[str, ...]
    obs_mask: np.ndarray
    obs_case: np.ndarray
    case_forms: np.ndarray  # (case, L component) 0/1
    case_strata: np.ndarray  # (case, 12) compatible strata; all ones when not informative
    case_condition: np.ndarray  # (case,) 1 = outside the population: conditioned on its lineage
    w_case: float
    # pretest priors
    lineage_alpha: np.ndarray  # (4,)
    remission_alpha: np.ndarray  # (4, 3)
    hazard_mu: np.ndarray  # (4,)
    hazard_sigma: np.ndarray
    multiplier_mu: np.ndarray  # (2,)
    multiplier_sigma: np.ndarray
    p_facial_ab: tuple[float, float]
    bell_mu: float
    bell_sigma: float
    form_alpha: np.ndarray  # (lineage, form) Dirichlet of omega; empty for the independent variant

    def data(self) -> dict[str, np.ndarray]:
        """The arrays a refit may change (counts and weights): the ``pm.Data`` of the model."""
        return {
            "entry_x": self.entry_x, "entry_n": self.entry_n, "entry_w": self.entry_w,
            "sentry_x": self.sentry_x, "sentry_n": self.sentry_n, "sentry_w": self.sentry_w,
            "case_w": np.full(len(self.case_ids), self.w_case),
        }


def _lognormal(block: dict) -> tuple[float, float]:
    return math.log(block["median"]), math.log(block["factor90"]) / Z90


def build(evidence: Evidence, variant: Variant, *, w_case: float | None = None,
          weights_one: bool = False) -> Design:
    """Arrays of ``variant`` for ``evidence``.

    Parameters
    ----------
    w_case : float, optional
        Overrides ``model.yaml``'s case weight (sensitivity runs).
    weights_one : bool
        Sets every likelihood weight to 1 (simulation-based calibration: a power prior is not
        generative). Priors, including those built from counts, are unchanged.
    """
    comps = variant.components
    K = len(comps)
    lcomp = variant.l_components
    base = evidence.settings["base_prior"]
    prior_a = np.full((K, len(S.NODES)), float(base["a"]))
    prior_b = np.full((K, len(S.NODES)), float(base["b"]))

    def members(e_hyp: str, e_form: str | None) -> np.ndarray:
        m = np.zeros(K)
        if e_hyp == "B":
            m[-1] = 1
        elif e_form is None or not variant.is_mixture:
            m[:-1] = 1
        else:
            m[lcomp.index(e_form)] = 1
        return m

    tree, strat = [], []
    for e in evidence.entries:
        if e.kind == "expert_judgment":
            if e.form is not None and not variant.is_mixture:
                continue  # a form's judgment does not speak for L as a whole
            node = S.find_node(e.item, e.level, e.of)
            for k in np.flatnonzero(members(e.hypothesis, e.form)):
                prior_a[k, node], prior_b[k, node] = e.beta
        elif e.finding in ("lineage", "remission"):
            strat.append(e)
        else:
            tree.append(e)

    w = (lambda e: 1.0) if weights_one else (lambda e: e.weight)
    entry_level = np.array([S.group_mask(e.item, e.level) for e in tree]).reshape(len(tree), S.N_LEVELS)
    entry_of = np.array([S.group_mask(e.item, e.of) for e in tree]).reshape(len(tree), S.N_LEVELS)

    def smask(e, group):
        lin = group if e.finding == "lineage" else None
        rem = group if e.finding == "remission" else None
        m = np.zeros((len(S.LINEAGES), len(S.REMISSIONS)))
        for g in group:
            m = np.maximum(m, S.stratum_mask(g if lin else None, g if rem else None))
        return m.ravel()

    # Which (case, finding) pairs a review entry already counts.
    tabulated = {(cid, e.finding) for e in evidence.entries for cid in e.tabulates_cases}
    obs, obs_case, case_forms, case_strata = [], [], [], []
    for c_idx, case in enumerate(evidence.cases):
        for mask in case_observations(case, skip={f for (cid, f) in tabulated if cid == case.id}):
            obs.append(mask)
            obs_case.append(c_idx)
        fm = np.ones(len(lcomp))
        if variant.is_mixture and case.form is not None:
            fm = (np.array(lcomp) == case.form).astype(float)
        case_forms.append(fm)
        case_strata.append(case_stratum_mask(case, skip={f for (cid, f) in tabulated if cid == case.id}))
    inc = np.zeros((len(evidence.cases), len(obs)))
    inc[obs_case, np.arange(len(obs))] = 1.0

    pt = evidence.pretest
    counts = pt["lineage_share"]["counts"]
    # The lineage shares' Dirichlet is a prior built from counts, not a likelihood: weights_one
    # (which concerns the power-prior weights of likelihood terms) leaves it as stated.
    lw = float(pt["lineage_share"]["weight"])
    lineage_alpha = np.array([1.0 + lw * counts[lv] for lv in S.LINEAGES])
    remission_alpha = np.array([
        [pt["remission_share"][lv]["concentration"] * pt["remission_share"][lv]["mean"][r] for r in S.REMISSIONS]
        for lv in S.LINEAGES
    ])
    hz = [_lognormal(pt["relapse_hazard"][lv]) for lv in S.LINEAGES]
    mu_ = [_lognormal(pt["remission_multiplier"][r]) for r in S.MULTIPLIED_REMISSIONS]
    bell = _lognormal(pt["bell_incidence"])
    pf = pt["p_facial_given_relapse"]["beta"]
    fp = evidence.settings["form_prior"]
    return Design(
        variant=variant, prior_a=prior_a, prior_b=prior_b,
        entry_ids=tuple(e.id for e in tree), entry_level=entry_level, entry_of=entry_of,
        entry_members=np.array([members(e.hypothesis, e.form) for e in tree]).reshape(len(tree), K),
        entry_x=np.array([e.x for e in tree]), entry_n=np.array([e.n for e in tree]),
        entry_w=np.array([w(e) for e in tree]),
        sentry_ids=tuple(e.id for e in strat),
        sentry_level=np.array([smask(e, e.level) for e in strat]).reshape(len(strat), 12),
        sentry_of=np.array([smask(e, e.of) for e in strat]).reshape(len(strat), 12),
        sentry_x=np.array([e.x for e in strat]), sentry_n=np.array([e.n for e in strat]),
        sentry_w=np.array([w(e) for e in strat]),
        case_ids=tuple(c.id for c in evidence.cases),
        obs_mask=np.array(obs).reshape(len(obs), S.N_LEVELS), obs_case=inc,
        case_forms=np.array(case_forms).reshape(len(evidence.cases), len(lcomp)),
        case_strata=np.array(case_strata).reshape(len(evidence.cases), 12),
        case_condition=np.array([0.0 if c.in_population else 1.0 for c in evidence.cases]),
        w_case=1.0 if weights_one else float(evidence.w_case if w_case is None else w_case),
        lineage_alpha=lineage_alpha, remission_alpha=remission_alpha,
        hazard_mu=np.array([h[0] for h in hz]), hazard_sigma=np.array([h[1] for h in hz]),
        multiplier_mu=np.array([m[0] for m in mu_]), multiplier_sigma=np.array([m[1] for m in mu_]),
        p_facial_ab=(float(pf["a"]), float(pf["b"])), bell_mu=bell[0], bell_sigma=bell[1],
        form_alpha=(np.array([[fp[lin][f] for f in variant.l_components] for lin in S.LINEAGES], float)
                    if variant.is_mixture else np.zeros((len(S.LINEAGES), 0))),
    )


def case_observations(case: Case, skip: set[str] = frozenset()) -> list[np.ndarray]:
    """Level masks of a case's known tree findings that enter its likelihood.

    Findings in ``proven_by`` (and those a review already tabulates) are left out.
    """
    out = []
    for name in S.TREE_FINDINGS:
        value = case.values.get(name)
        if value is None or name in case.proven_by or name in skip:
            continue
        out.append(S.group_mask(name, S.expand(name, value)))
    if case.csf and "csf" not in case.proven_by and "csf" not in skip:
        for result, method in case.csf:
            out.append(S.group_mask(S.csf_item(method), (result,)))
    return out


def case_stratum_mask(case: Case, skip: set[str] = frozenset()) -> np.ndarray:
    """Compatible (lineage, remission) strata of a case. A case outside the population keeps its
    lineage (it informs the forms' weights given the lineage) but not its remission."""
    lin = None if "lineage" in case.proven_by or "lineage" in skip else case.values.get("lineage")
    rem = None if "remission" in case.proven_by or "remission" in skip else case.values.get("remission")
    if not case.in_population:
        rem = None
    return S.stratum_mask(lin, rem).ravel()
