"""Evidence -> numeric design arrays for one variant (counts, weights, masks): pure numpy.

These arrays are what the PyMC model holds as ``pm.Data`` and what the conjugate posterior and the
per-case log-likelihoods are computed from.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from palsy.model import rates as R
from palsy.model import structure as S
from palsy.model.evidence import Case, Evidence
from palsy.model.variants import INFILTRATION, Variant


@dataclasses.dataclass(frozen=True)
class Design:
    """Numeric arrays of one variant's likelihood and priors (names say the dims)."""

    variant: Variant
    rates: R.RateArrays
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
    # cases (all infiltration): observation masks (obs, level), incidence (case, obs),
    # allowed infiltration components (case, infiltration component)
    case_ids: tuple[str, ...]
    obs_mask: np.ndarray
    obs_case: np.ndarray
    case_forms: np.ndarray
    case_lineage: np.ndarray  # (case, lineage) P(lineage | case context, infiltration), prior mean
    w_case: float
    lineage_weight: np.ndarray  # (lineage,) P(lineage | infiltration), the rate model's prior mean
    # evidence synthesis (DESIGN §3); all off in the plain configuration of the conjugate check
    synthesis: bool
    re_groups: tuple[str, ...]  # quantities with two or more count entries
    re_member: np.ndarray  # (entry, study) 0/1: each entry of a pooled quantity has its own study effect
    re_node_mask: np.ndarray  # (component, node) 0/1: nodes whose answers use a new setting's predictive
    tau_sigma: float
    sel_mask: np.ndarray  # (node,) 0/1: striking features whose odds a published case inflates
    gamma_mu: float
    gamma_sigma: float
    form_alpha: np.ndarray  # (lineage, form) Dirichlet of omega; empty for the independent variant

    @property
    def infiltration_components(self) -> tuple[int, ...]:
        return self.variant.infiltration_components

    @property
    def csf_nodes(self) -> tuple[int, ...]:
        """The LP-positive node of each method (the orderings' nodes)."""
        return tuple(S.find_node(S.csf_item(m), ("positive",), ("negative", "positive")) for m in ("cytology", "flow"))

    @property
    def infiltration_select(self) -> np.ndarray:
        """(infiltration component, component) 0/1: picks infiltration's components."""
        sel = np.zeros((len(self.infiltration_components), len(self.variant.components)))
        sel[np.arange(len(sel)), list(self.infiltration_components)] = 1.0
        return sel

    def data(self) -> dict[str, np.ndarray]:
        """The arrays a refit may change (counts, weights and the Beta priors of the nodes, so that an
        expert judgment can be removed or replaced by an exact refit): the ``pm.Data`` of the model."""
        return {
            "entry_x": self.entry_x, "entry_n": self.entry_n, "entry_w": self.entry_w,
            "case_w": np.full(len(self.case_ids), self.w_case),
            "prior_a": self.prior_a, "prior_b": self.prior_b,
        }

    def structure(self) -> dict[str, np.ndarray]:
        """The arrays that lay the evidence out (masks, memberships, each case's context) and the
        priors' hyperparameters that the model reads. The model holds them in ``pm.Data`` as well, so
        that an edit of ``priors/`` which keeps their shapes (see :func:`for_sampler`) changes the
        compiled sampler's arguments, not its program. A refit does not change them."""
        out = {"entry_level": self.entry_level, "entry_of": self.entry_of, "entry_members": self.entry_members,
               "obs_mask": self.obs_mask, "obs_case": self.obs_case}
        if self.variant.is_mixture:
            out.update(case_forms=self.case_forms, case_lineage=self.case_lineage,
                       lineage_weight=self.lineage_weight, form_alpha=self.form_alpha)
        if self.synthesis:
            out.update(sel_mask=self.sel_mask, gamma_mu=np.asarray(self.gamma_mu),
                       gamma_sigma=np.asarray(self.gamma_sigma))
            if len(self.re_groups):
                out.update(re_member=self.re_member, tau_sigma=np.asarray(self.tau_sigma))
        return out


def build(evidence: Evidence, variant: Variant, *, w_case: float | None = None,
          weights_one: bool = False, synthesis: bool = True) -> Design:
    """Arrays of ``variant`` for ``evidence``.

    Parameters
    ----------
    w_case : float, optional
        Overrides ``model.yaml``'s case weight (sensitivity runs).
    weights_one : bool
        Sets every likelihood weight to 1 (simulation-based calibration: a power prior is not
        generative). Priors, including those built from counts, are unchanged.
    synthesis : bool
        Random effects, the case-selection model and the clinical orderings (DESIGN §3). False gives
        the plain configuration whose independent variant has a conjugate posterior.
    """
    K = len(variant.components)
    base = evidence.settings["base_prior"]
    prior_a = np.full((K, len(S.NODES)), float(base["a"]))
    prior_b = np.full((K, len(S.NODES)), float(base["b"]))

    def members(e_cause: str, e_form: str | None) -> np.ndarray:
        m = np.zeros(K)
        m[list(variant.components_of(e_cause, e_form))] = 1
        return m

    tree = []
    for e in evidence.entries:
        if e.kind == "expert_judgment":
            if e.form is not None and not variant.is_mixture:
                continue  # a form's judgment does not speak for infiltration as a whole
            node = S.find_node(e.item, e.level, e.of)
            for k in np.flatnonzero(members(e.cause, e.form)):
                prior_a[k, node], prior_b[k, node] = e.beta
        else:
            tree.append(e)

    w = (lambda e: 1.0) if weights_one else (lambda e: e.weight)
    entry_level = np.array([S.group_mask(e.item, e.level) for e in tree]).reshape(len(tree), S.N_LEVELS)
    entry_of = np.array([S.group_mask(e.item, e.of) for e in tree]).reshape(len(tree), S.N_LEVELS)

    # Which (case, finding) pairs a review entry already counts.
    tabulated = {(cid, e.finding) for e in evidence.entries for cid in e.tabulates_cases}
    inf = variant.infiltration_components
    obs, obs_case, case_forms, case_strata = [], [], [], []
    for c_idx, case in enumerate(evidence.cases):
        skip = {f for (cid, f) in tabulated if cid == case.id}
        for mask in case_observations(case, skip=skip):
            obs.append(mask)
            obs_case.append(c_idx)
        fm = np.ones(len(inf))
        if variant.is_mixture and case.form is not None:
            fm = np.array([variant.components[k] == case.form for k in inf], float)
        case_forms.append(fm)
        case_strata.append(case_stratum_mask(case, skip=skip))
    inc = np.zeros((len(evidence.cases), len(obs)))
    inc[obs_case, np.arange(len(obs))] = 1.0

    r = R.arrays(evidence.rates, variant.components, variant.component_causes,
                 variant.forms if variant.is_mixture else ())
    key = (evidence.hash, evidence.causes)
    if key not in _STRATA_PRIOR:  # a Monte Carlo of the rate prior: once per evidence (refits reuse it)
        _STRATA_PRIOR[key] = infiltration_strata_prior(r, evidence.causes)
    p_strata = _STRATA_PRIOR[key]
    lin = S.level_indicator("lineage")  # (stratum, lineage)
    cs = np.array(case_strata).reshape(len(evidence.cases), S.N_STRATA) * p_strata
    case_lineage = (cs @ lin) / (cs @ lin).sum(axis=1, keepdims=True).clip(1e-300)
    fp = evidence.settings["form_prior"]
    syn = evidence.settings["synthesis"]
    groups: dict[tuple, list[int]] = {}
    for j, e in enumerate(tree):
        groups.setdefault((e.item, e.level, e.of, e.cause, e.form), []).append(j)
    re_keys = [k for k, js in groups.items() if len(js) >= 2] if synthesis else []
    studies = [j for key in re_keys for j in groups[key]]
    re_member = np.zeros((len(tree), len(studies)))
    re_member[studies, np.arange(len(studies))] = 1.0
    re_node_mask = np.zeros((K, len(S.NODES)))
    for key in re_keys:
        item, level, of, cause, form = key
        re_node_mask[list(variant.components_of(cause, form)), S.find_node(item, level, of)] = 1.0
    sel_mask = np.zeros(len(S.NODES))
    if synthesis:
        for nd in syn["selection"]["nodes"]:
            lv = tuple(nd["level"]) if isinstance(nd["level"], list) else (nd["level"],)
            sel_mask[S.find_node(nd["finding"], lv, S.ITEMS[nd["finding"]])] = 1.0
    return Design(
        variant=variant, rates=r, prior_a=prior_a, prior_b=prior_b,
        entry_ids=tuple(e.id for e in tree), entry_level=entry_level, entry_of=entry_of,
        entry_members=np.array([members(e.cause, e.form) for e in tree]).reshape(len(tree), K),
        entry_x=np.array([e.x for e in tree]), entry_n=np.array([e.n for e in tree]),
        entry_w=np.array([w(e) for e in tree]),
        case_ids=tuple(c.id for c in evidence.cases),
        obs_mask=np.array(obs).reshape(len(obs), S.N_LEVELS), obs_case=inc,
        case_forms=np.array(case_forms).reshape(len(evidence.cases), len(inf)),
        case_lineage=case_lineage.reshape(len(evidence.cases), len(S.LINEAGES)),
        w_case=1.0 if weights_one else float(evidence.w_case if w_case is None else w_case),
        lineage_weight=p_strata @ lin,
        synthesis=synthesis,
        re_groups=tuple(f"{c}{'/' + f if f else ''} {S.Node(i, lv, of).name}" for i, lv, of, c, f in re_keys),
        re_member=re_member, re_node_mask=re_node_mask, tau_sigma=float(syn["random_effects"]["tau_sigma"]),
        sel_mask=sel_mask, gamma_mu=float(syn["selection"]["gamma_prior"]["mu"]),
        gamma_sigma=float(syn["selection"]["gamma_prior"]["sigma"]),
        form_alpha=(np.array([[fp[lv][f] for f in variant.forms] for lv in S.LINEAGES], float)
                    if variant.is_mixture else np.zeros((len(S.LINEAGES), 0))),
    )


def padded_size(n: int) -> int:
    """The size a dim of ``n`` rows is padded to: the next power of two above ``n`` (0 stays 0)."""
    return 0 if n == 0 else 1 << n.bit_length()


def for_sampler(d: Design) -> Design:
    """``d`` laid out for the compiled sampler: the same likelihood, with shapes that most edits of
    ``priors/`` keep.

    The compiled sampler's program depends on the shapes of the model's arrays, not on their values
    (:meth:`Design.structure`). Here each case's observations are merged into the distinct masks of the
    library (``obs_case`` then counts how many of each mask a case has), and the cohort entries, the
    cases and the distinct masks are padded to :func:`padded_size` with rows that add nothing: zero
    counts and weights (:func:`sampler_data`), no observations. Adding a case, or an entry to a quantity
    that no other entry measures, then changes data only, until a count passes a power of two. The
    study effects (free parameters) are not padded.
    """
    masks, inverse = np.unique(d.obs_mask, axis=0, return_inverse=True)
    counts = d.obs_case @ np.eye(len(masks))[inverse.reshape(-1)] if len(masks) else d.obs_case[:, :0]
    n_obs, n_case, n_entry = (padded_size(len(masks)), padded_size(len(d.case_ids)),
                              padded_size(len(d.entry_ids)))

    def pad(a: np.ndarray, n: int, fill: np.ndarray | float, axis: int = 0) -> np.ndarray:
        extra = n - a.shape[axis]
        block = np.broadcast_to(fill, (*a.shape[:axis], extra, *a.shape[axis + 1:]))
        return np.concatenate([a, block], axis=axis)

    def first_or_zero(a: np.ndarray) -> np.ndarray:
        return a[0] if len(a) else np.zeros(a.shape[1:])

    counts = pad(pad(counts, n_obs, 0.0, axis=1), n_case, 0.0)
    return dataclasses.replace(
        d,
        # a padded entry repeats the first entry's masks (a rate strictly inside (0, 1)) with no count
        entry_ids=d.entry_ids + tuple(f"(padding {j})" for j in range(n_entry - len(d.entry_ids))),
        entry_level=pad(d.entry_level, n_entry, first_or_zero(d.entry_level)),
        entry_of=pad(d.entry_of, n_entry, first_or_zero(d.entry_of)),
        entry_members=pad(d.entry_members, n_entry, first_or_zero(d.entry_members)),
        entry_x=pad(d.entry_x, n_entry, 0.0), entry_n=pad(d.entry_n, n_entry, 0.0),
        entry_w=pad(d.entry_w, n_entry, 0.0), re_member=pad(d.re_member, n_entry, 0.0),
        case_ids=d.case_ids + tuple(f"(padding {j})" for j in range(n_case - len(d.case_ids))),
        obs_mask=pad(masks, n_obs, first_or_zero(masks)), obs_case=counts,
        # a padded case observes nothing, may be any form and has the lineages' prior weights
        case_forms=pad(d.case_forms, n_case, 1.0),
        case_lineage=pad(d.case_lineage, n_case, d.lineage_weight),
    )


def sampler_data(d: Design, padded: Design, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``data`` (arrays of :meth:`Design.data` for ``d``) padded to the shapes of ``padded``
    (:func:`for_sampler`): the padded entries and cases have zero counts and weights."""
    out = dict(data)
    for name in ("entry_x", "entry_n", "entry_w"):
        out[name] = np.concatenate([data[name], np.zeros(len(padded.entry_ids) - len(d.entry_ids))])
    out["case_w"] = np.concatenate([data["case_w"], np.zeros(len(padded.case_ids) - len(d.case_ids))])
    return out


PRIOR_MEAN_DRAWS = 20_000  # Monte Carlo draws of the rate model's prior mean (fixed seed: deterministic)
_STRATA_PRIOR: dict[tuple, np.ndarray] = {}


def infiltration_strata_prior(r: R.RateArrays, causes: tuple[str, ...]) -> np.ndarray:
    """P(stratum | infiltration) under the rate model's prior, averaged (stratum,).

    The fit conditions each case on its context; where a case's lineage is not stated, this prior
    mean weighs the lineages for the forms' weights (omega depends on the lineage).
    """
    from palsy.model import likelihood as LK

    p = R.sample_prior(r, PRIOR_MEAN_DRAWS, np.random.default_rng(0))
    _, log_sc = LK.cause_strata(LK.NUMPY, p, r)
    return np.exp(log_sc[:, causes.index(INFILTRATION)]).mean(axis=0)


def case_observations(case: Case, skip: set[str] = frozenset()) -> list[np.ndarray]:
    """Level masks of a case's known tree findings that enter its likelihood.

    Findings in ``proven_by`` (and those a review already tabulates) are left out, and so are the
    LPs' results. The CSF profile enters given the first LP's result (modelled jointly with it), also
    when that LP proved the case: the profile is not what proved it.
    """
    out = []
    for name in S.TREE_FINDINGS:
        value = case.values.get(name)
        if value is None or name in case.proven_by or name in skip:
            continue
        out.append(S.group_mask(name, S.expand(name, value)))
    # Cases do not inform CSF sensitivity: the LP that proved a case is left out, so only negative LPs
    # would remain (DESIGN §3). The profile given the first result is not sensitivity: it stays.
    profile = case.values.get("csf_profile")
    if profile is not None and case.csf and "csf_profile" not in case.proven_by and "csf_profile" not in skip:
        out.append(S.group_mask(S.profile_item(case.csf[0][0]), S.expand("csf_profile", profile)))
    return out


def case_stratum_mask(case: Case, skip: set[str] = frozenset()) -> np.ndarray:
    """Strata compatible with a case's stated context (its lineage weighs the forms)."""
    values = {name: case.values.get(name) for name in S.CONTEXT
              if name not in case.proven_by and name not in skip}
    return S.stratum_mask(values)
