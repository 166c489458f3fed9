"""Evidence -> numeric design arrays for one variant (counts, weights, masks): pure numpy.

These arrays are what the PyMC model holds as ``pm.Data`` and what the conjugate posterior and the
per-case log-likelihoods are computed from.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from palsy.model import lp as LP
from palsy.model import rates as R
from palsy.model import structure as ST
from palsy.model.evidence import Case, Entry, Evidence
from palsy.model.variants import INFILTRATION, Variant


@dataclasses.dataclass(frozen=True)
class Design:
    """Numeric arrays of one variant's likelihood and priors (names say the dims)."""

    variant: Variant
    rates: R.RateArrays
    structure: ST.Structure
    lp_index: LP.Index
    # theta (component * node) = assembly @ free parameters; the priors are per free parameter
    assembly: np.ndarray
    free_names: tuple[str, ...]
    prior_a: np.ndarray  # (free,)
    prior_b: np.ndarray
    # cohort entries: kind (entry, 3: tree, lp, node); tree masks (entry, level); the LP patterns each LP entry
    # counts and their denominator (entry, 4) and whether its population had contamination (entry,); the node of a node entry
    # (entry, node); members (entry, component)
    entry_ids: tuple[str, ...]
    entry_kind: np.ndarray
    entry_level: np.ndarray
    entry_of: np.ndarray
    entry_pattern: np.ndarray
    entry_pattern_of: np.ndarray
    entry_kappa: np.ndarray
    entry_node: np.ndarray
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
    # evidence synthesis (docs/design.md §3); all off in the plain configuration of the conjugate check
    synthesis: bool
    re_groups: tuple[str, ...]  # quantities with two or more count entries
    re_member: np.ndarray  # (entry, study) 0/1: each entry of a pooled quantity has its own study effect
    re_free_mask: np.ndarray  # (free,) 0/1: free parameters whose answers use a new setting's predictive
    tau_sigma: float
    sel_mask: np.ndarray  # (tree node,) 0/1: striking features whose odds a published case inflates
    gamma_mu: float
    gamma_sigma: float
    form_alpha: np.ndarray  # (lineage, form) Dirichlet of omega; empty for the independent variant
    # a hospital registry's likelihood (model.registry_likelihood.RegistryDesign, padded); None: no registry
    registry: object | None = None

    @property
    def infiltration_components(self) -> tuple[int, ...]:
        return self.variant.infiltration_components

    @property
    def theta_shape(self) -> tuple[int, int]:
        return len(self.variant.components), len(self.structure.nodes)

    @property
    def infiltration_select(self) -> np.ndarray:
        """(infiltration component, component) 0/1: picks infiltration's components."""
        sel = np.zeros((len(self.infiltration_components), len(self.variant.components)))
        sel[np.arange(len(sel)), list(self.infiltration_components)] = 1.0
        return sel

    def theta(self, free: np.ndarray) -> np.ndarray:
        """theta (..., component, node) from free node parameters (..., free)."""
        from palsy.model import likelihood as LK

        return LK.theta_from_free(LK.NUMPY, free, self.assembly, self.theta_shape)

    def data(self) -> dict[str, np.ndarray]:
        """The arrays a refit may change (counts, weights and the Beta priors of the free nodes, so that
        an expert judgment can be removed or replaced by an exact refit): the ``pm.Data`` of the model."""
        return {
            "entry_x": self.entry_x, "entry_n": self.entry_n, "entry_w": self.entry_w,
            "case_w": np.full(len(self.case_ids), self.w_case),
            "prior_a": self.prior_a, "prior_b": self.prior_b,
        }

    def layout(self) -> dict[str, np.ndarray]:
        """The arrays that lay the evidence out (masks, kinds, memberships, each case's context) and the
        priors' hyperparameters that the model reads. The model holds them in ``pm.Data`` as well, so
        that an edit of ``priors/`` which keeps their shapes (see :func:`for_sampler`) changes the
        compiled sampler's arguments, not its program. A refit does not change them."""
        out = {"entry_kind": self.entry_kind, "entry_level": self.entry_level, "entry_of": self.entry_of,
               "entry_pattern": self.entry_pattern, "entry_pattern_of": self.entry_pattern_of,
               "entry_kappa": self.entry_kappa, "entry_node": self.entry_node,
               "entry_members": self.entry_members, "obs_mask": self.obs_mask, "obs_case": self.obs_case}
        if self.variant.is_mixture:
            out.update(case_forms=self.case_forms, case_lineage=self.case_lineage,
                       lineage_weight=self.lineage_weight, form_alpha=self.form_alpha)
        if self.synthesis:
            out.update(sel_mask=self.sel_mask, gamma_mu=np.asarray(self.gamma_mu),
                       gamma_sigma=np.asarray(self.gamma_sigma))
            if len(self.re_groups):
                out.update(re_member=self.re_member, tau_sigma=np.asarray(self.tau_sigma))
        if self.registry is not None:  # its arrays, named registry_* (model.registry_likelihood)
            out.update(self.registry.layout())
        return out


def judgment_targets(e: Entry, st: ST.Structure, variant: Variant) -> list[tuple[int | None, int]]:
    """The free parameters (component or None when shared, node) an entry's quantity names: those an
    expert judgment sets the prior of, and those a pooled quantity's new-setting predictive varies."""
    if e.quantity == "node":
        node = st.lp_node[e.lp_node]
    elif e.quantity == "lp":
        node = st.lp_node[lp_entry_node(e, st)]
    else:
        node = st.find_node(e.item, e.level, e.of)
    share = st.nodes[node].sharing
    if share == "shared":
        return [(None, node)]
    ks = variant.components_of(e.cause, e.form)
    if share == "infiltration":
        ks = tuple(k for k in ks if k in variant.infiltration_components)
    return [(k, node) for k in ks]


def judgments(evidence: Evidence, st: ST.Structure, variant: Variant) -> dict[tuple[int | None, int], Entry]:
    """The expert judgment that sets each free parameter's prior (:func:`judgment_targets`), where one does.

    A form's own judgment wins over one for infiltration as a whole (``form`` null), which sets the forms that
    have none of their own; in a variant whose infiltration is one component (``independent``) a form's judgment
    speaks for no parameter (it does not speak for infiltration as a whole), so there the whole's judgment sets
    it. Among judgments of the same standing the file's order decides (the evidence allows one per node).
    """
    out: dict[tuple[int | None, int], Entry] = {}
    for e in sorted((e for e in evidence.entries if e.kind == "expert_judgment"), key=lambda e: e.form is not None):
        if e.form is not None and not variant.is_mixture:
            continue
        for target in judgment_targets(e, st, variant):
            out[target] = e
    return out


def lp_entry_node(e: Entry, st: ST.Structure) -> str:
    """The node of the CSF model an LP entry's rate mostly measures (its pooled studies' new-setting
    predictive varies that node): what a method sees of present cells for a conditional pattern set,
    else the form's ``detectable`` (an artefact rate under any other cause)."""
    first, second = st.methods
    level, of = e.level[0], e.of[0]
    if (level, of) == (f"{second}_positive", "any_positive"):
        return f"detects:{second}"
    if (level, of) == ("all_positive", f"{second}_positive"):
        return f"detects:{first}|{second}"
    if e.cause == INFILTRATION:
        return "detectable"
    return f"artefact:{first if level == f'{first}_positive' else second}"


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
        Random effects and the case-selection model (docs/design.md §3). False gives the plain
        configuration whose independent variant has a conjugate posterior.
    """
    st = evidence.structure
    ix = LP.Index.of(st)
    K = len(variant.components)
    inf_components = variant.infiltration_components
    free = st.free_parameters(variant.components, inf_components)
    free_index = {f: i for i, f in enumerate(free)}
    base = evidence.settings["base_prior"]
    prior_a = np.full(len(free), float(base["a"]))
    prior_b = np.full(len(free), float(base["b"]))

    def members(e_cause: str | None, e_form: str | None) -> np.ndarray:
        m = np.zeros(K)
        if e_cause is None:  # a shared node: any component reads it (all, equally)
            m[:] = 1
        else:
            m[list(variant.components_of(e_cause, e_form))] = 1
        return m

    for target, e in judgments(evidence, st, variant).items():
        prior_a[free_index[target]], prior_b[free_index[target]] = e.beta
    tree = [e for e in evidence.entries if e.kind != "expert_judgment"]

    w = (lambda e: 1.0) if weights_one else (lambda e: e.weight)
    kinds = ("tree", "lp", "node")
    entry_kind = np.array([[float(e.quantity == q) for q in kinds] for e in tree]).reshape(len(tree), 3)

    def tree_mask(e: Entry, levels: tuple[str, ...]) -> np.ndarray:
        return st.group_mask(e.item, levels) if e.quantity == "tree" else np.zeros(st.n_levels)

    # a non-tree entry's tree masks are the first level of the first item, of all its levels: a finite
    # tree rate that its kind multiplies by 0
    first = st.tree_findings[0]
    filler_level, filler_of = st.group_mask(first, st.items[first][:1]), st.group_mask(first, st.items[first])
    entry_level = np.array([tree_mask(e, e.level) if e.quantity == "tree" else filler_level
                            for e in tree]).reshape(len(tree), st.n_levels)
    entry_of = np.array([tree_mask(e, e.of) if e.quantity == "tree" else filler_of
                         for e in tree]).reshape(len(tree), st.n_levels)
    sets = LP.pattern_sets(ix.methods)
    entry_pattern = np.array([sets[e.level[0]] if e.quantity == "lp" else sets["all"]
                              for e in tree]).reshape(len(tree), LP.N_PATTERNS)
    entry_pattern_of = np.array([sets[e.of[0]] if e.quantity == "lp" else sets["all"]
                                 for e in tree]).reshape(len(tree), LP.N_PATTERNS)
    entry_kappa = np.array([float(e.contaminated) for e in tree])
    entry_node = np.zeros((len(tree), len(st.nodes)))
    for j, e in enumerate(tree):
        if e.quantity == "node":
            entry_node[j, st.lp_node[e.lp_node]] = 1.0

    # Which (case, finding) pairs a review entry already counts.
    tabulated = {(cid, e.finding) for e in evidence.entries for cid in e.tabulates_cases}
    obs, obs_case, case_forms, case_strata = [], [], [], []
    for c_idx, case in enumerate(evidence.cases):
        skip = {f for (cid, f) in tabulated if cid == case.id}
        for mask in case_observations(case, st, skip=skip):
            obs.append(mask)
            obs_case.append(c_idx)
        fm = np.ones(len(inf_components))
        if variant.is_mixture and case.form is not None:
            fm = np.array([variant.components[k] == case.form for k in inf_components], float)
        case_forms.append(fm)
        case_strata.append(case_stratum_mask(case, st, skip=skip))
    inc = np.zeros((len(evidence.cases), len(obs)))
    inc[obs_case, np.arange(len(obs))] = 1.0

    r = R.arrays(evidence.rates, variant.components, variant.component_causes,
                 variant.forms if variant.is_mixture else ())
    key = (evidence.hash, evidence.causes)
    if key not in _STRATA_PRIOR:  # a Monte Carlo of the rate prior: once per evidence (refits reuse it)
        _STRATA_PRIOR[key] = infiltration_strata_prior(r, evidence.causes)
    p_strata = _STRATA_PRIOR[key]
    lin = st.level_indicator("lineage")  # (stratum, lineage)
    n_lin = lin.shape[1]
    cs = np.array(case_strata).reshape(len(evidence.cases), st.n_strata) * p_strata
    case_lineage = (cs @ lin) / (cs @ lin).sum(axis=1, keepdims=True).clip(1e-300)
    fp = evidence.settings["form_prior"]
    syn = evidence.settings["synthesis"]
    groups: dict[tuple, list[int]] = {}
    for j, e in enumerate(tree):
        groups.setdefault((e.quantity, e.item, e.level, e.of, e.cause, e.form, e.method, e.lp_node, e.contaminated),
                          []).append(j)
    re_keys = [k for k, js in groups.items() if len(js) >= 2] if synthesis else []
    studies = [j for key in re_keys for j in groups[key]]
    re_member = np.zeros((len(tree), len(studies)))
    re_member[studies, np.arange(len(studies))] = 1.0
    re_free_mask = np.zeros(len(free))
    for key in re_keys:
        for target in judgment_targets(tree[groups[key][0]], st, variant):
            re_free_mask[free_index[target]] = 1.0
    sel_mask = np.zeros(st.n_tree_nodes)
    if synthesis:
        for nd in syn["selection"]["nodes"]:
            lv = tuple(nd["level"]) if isinstance(nd["level"], list) else (nd["level"],)
            sel_mask[st.find_node(nd["finding"], lv, st.items[nd["finding"]])] = 1.0
    return Design(
        variant=variant, rates=r, structure=st, lp_index=ix,
        assembly=st.assembly(variant.components, inf_components),
        free_names=st.free_names(variant.components, inf_components), prior_a=prior_a, prior_b=prior_b,
        entry_ids=tuple(e.id for e in tree), entry_kind=entry_kind, entry_level=entry_level, entry_of=entry_of,
        entry_pattern=entry_pattern, entry_pattern_of=entry_pattern_of, entry_kappa=entry_kappa, entry_node=entry_node,
        entry_members=np.array([members(e.cause, e.form) for e in tree]).reshape(len(tree), K),
        entry_x=np.array([e.x for e in tree]), entry_n=np.array([e.n for e in tree]),
        entry_w=np.array([w(e) for e in tree]),
        case_ids=tuple(c.id for c in evidence.cases),
        obs_mask=np.array(obs).reshape(len(obs), st.n_levels), obs_case=inc,
        case_forms=np.array(case_forms).reshape(len(evidence.cases), len(inf_components)),
        case_lineage=case_lineage.reshape(len(evidence.cases), n_lin),
        w_case=1.0 if weights_one else float(evidence.w_case if w_case is None else w_case),
        lineage_weight=p_strata @ lin,
        synthesis=synthesis,
        re_groups=tuple(_group_name(tree[groups[k][0]], st) for k in re_keys),
        re_member=re_member, re_free_mask=re_free_mask, tau_sigma=float(syn["random_effects"]["tau_sigma"]),
        sel_mask=sel_mask, gamma_mu=float(syn["selection"]["gamma_prior"]["mu"]),
        gamma_sigma=float(syn["selection"]["gamma_prior"]["sigma"]),
        form_alpha=(np.array([[fp[lv][f] for f in variant.forms] for lv in st.levels_of("lineage")], float)
                    if variant.is_mixture else np.zeros((n_lin, 0))),
    )


def _group_name(e: Entry, st: ST.Structure) -> str:
    """A pooled quantity's name: 'infiltration/leptomeningeal csf: cytology positive'."""
    who = f"{e.cause or 'all causes'}{'/' + e.form if e.form else ''}"
    if e.quantity == "node":
        return f"{who} {e.item}: {e.lp_node}"
    if e.quantity == "lp":
        of = "" if e.of[0] == "all" else f" | {e.of[0]}"
        return f"{who} {e.item}: {e.level[0]}{of}{' (contaminated)' if e.contaminated else ''}"
    return f"{who} {ST.Node(e.item, e.level, e.of, st.items[e.item]).name}"


def padded_size(n: int) -> int:
    """The size a dim of ``n`` rows is padded to: the next power of two above ``n`` (0 stays 0)."""
    return 0 if n == 0 else 1 << n.bit_length()


def for_sampler(d: Design) -> Design:
    """``d`` laid out for the compiled sampler: the same likelihood, with shapes that most edits of
    ``priors/`` keep.

    The compiled sampler's program depends on the shapes of the model's arrays, not on their values
    (:meth:`Design.layout`). Here each case's observations are merged into the distinct masks of the
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
        entry_kind=pad(d.entry_kind, n_entry, first_or_zero(d.entry_kind)),
        entry_level=pad(d.entry_level, n_entry, first_or_zero(d.entry_level)),
        entry_of=pad(d.entry_of, n_entry, first_or_zero(d.entry_of)),
        entry_pattern=pad(d.entry_pattern, n_entry, first_or_zero(d.entry_pattern)),
        entry_pattern_of=pad(d.entry_pattern_of, n_entry, first_or_zero(d.entry_pattern_of)),
        entry_kappa=pad(d.entry_kappa, n_entry, first_or_zero(d.entry_kappa)),
        entry_node=pad(d.entry_node, n_entry, first_or_zero(d.entry_node)),
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


def case_observations(case: Case, st: ST.Structure, skip: set[str] = frozenset()) -> list[np.ndarray]:
    """Level masks of a case's known tree findings that enter its likelihood.

    Findings in ``proven_by`` (and those a review already tabulates) are left out, and so are the
    LPs' results. The CSF profile enters given the first LP's class (modelled jointly with it), also
    when that LP proved the case: the profile is not what proved it.
    """
    out = []
    for name in st.tree_findings:
        value = case.values.get(name)
        if value is None or name in case.proven_by or name in skip:
            continue
        out.append(st.group_mask(name, st.expand(name, value)))
    # Cases do not inform CSF sensitivity: the LP that proved a case is left out, so only negative LPs
    # would remain (docs/design.md §3). The profile given the first LP's class is not sensitivity: it stays.
    name = st.profile_finding
    profile = case.values.get(name)
    if profile is not None and case.csf and name not in case.proven_by and name not in skip:
        out.append(st.group_mask(st.profile_item(case.csf[0][0]), st.expand(name, profile)))
    return out


def case_stratum_mask(case: Case, st: ST.Structure, skip: set[str] = frozenset()) -> np.ndarray:
    """Strata compatible with a case's stated context (its lineage weighs the forms)."""
    values = {name: case.values.get(name) for name in st.context
              if name not in case.proven_by and name not in skip}
    return st.stratum_mask(values)
