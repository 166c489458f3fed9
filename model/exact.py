"""The conjugate posterior of the ``independent`` variant's tree nodes (docs/design.md §4).

NUTS samples one free parameter per (component, node) of a ``component`` node, one per ``shared`` node
and one per infiltration component of an ``infiltration`` node (``theta_free``;
:meth:`palsy.model.structure.Structure.free_parameters`). In the plain configuration (no random
effects, case selection: docs/design.md §4 keeps it so that the sampler is checked against a closed
form) the likelihood factorises over the free parameters, and each free parameter of a *tree* node has
a Beta posterior:

    a_post = a_prior + sum_i w_i x_i,   b_post = b_prior + sum_i w_i (n_i - x_i)

over the cohort entries on that node (an entry on a shared node, ``cause`` None, counts once for the
shared parameter) and, with weight ``w_case``, every case finding whose path passes through the node
(cases are all infiltration, its one component in this variant).

**What is not covered.** The free parameters of the CSF model's nodes (``csf: detectable``,
``detects:...``, ``artefact:...``, ``contamination``, ``traumatic``: :mod:`palsy.model.lp`) are not
conjugate: an LP entry counts a set of result patterns whose probability mixes several of them
(artefacts, detectable cells, what each method sees), so their posterior is not a Beta.
:func:`node_counts` returns NaN for them and the check compares the tree nodes' free parameters only.
The tree and LP parameters are a posteriori independent in this configuration (no entry or case
involves both), so the check of the tree part is exact whatever the LP part does.

The rate block (patient-time shares and rates) has no likelihood: its posterior is its prior, drawn
exactly by :func:`palsy.model.rates.sample_prior`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from palsy.model import design as D
from palsy.model.evidence import Evidence


@dataclasses.dataclass(frozen=True)
class ExactPosterior:
    """Beta parameters of every free node parameter (``theta_free``); NaN where not conjugate (the CSF
    model's nodes)."""

    a: np.ndarray  # (free,)
    b: np.ndarray
    names: tuple[str, ...]
    conjugate: np.ndarray  # (free,) bool: a tree node's free parameter

    @property
    def theta_mean(self) -> np.ndarray:
        return self.a / (self.a + self.b)

    @property
    def theta_sd(self) -> np.ndarray:
        s = self.a + self.b
        return np.sqrt(self.a * self.b / (s * s * (s + 1)))


def _group(d: D.Design, mask: np.ndarray) -> tuple[str, tuple[str, ...]]:
    keys = [d.structure.level_keys[j] for j in np.flatnonzero(mask)]
    return keys[0][0], tuple(lv for _, lv in keys)


def node_counts(d: D.Design) -> tuple[np.ndarray, np.ndarray]:
    """Posterior Beta parameters (free,) from a design of the independent variant's plain
    configuration; NaN for the free parameters of the CSF model's nodes (not conjugate).

    Raises
    ------
    ValueError
        For the subtype variant or a design with the evidence synthesis (random effects, selection),
        whose posteriors are not Betas; or a tree entry that is not one node of its tree.
    """
    if d.variant.is_mixture or d.synthesis:
        raise ValueError("the conjugate posterior exists for the independent variant's plain configuration "
                         "only (no random effects or selection)")
    st = d.structure
    free = st.free_parameters(d.variant.components, d.infiltration_components)
    index = {f: i for i, f in enumerate(free)}
    tree = np.array([j < st.n_tree_nodes for _, j in free])
    a, b = d.prior_a.astype(float).copy(), d.prior_b.astype(float).copy()
    for j, kind in enumerate(d.entry_kind):
        if kind[0] != 1:  # an LP or CSF-node entry: not conjugate, not counted here
            continue
        item, success = _group(d, d.entry_level[j])
        _, of_levels = _group(d, d.entry_of[j])
        node = st.find_node(item, success, of_levels)
        if node is None:
            raise ValueError(f"entry {d.entry_ids[j]}: {item} {success} | {of_levels} is not one node of its tree")
        members = np.flatnonzero(d.entry_members[j])
        key = (None, node) if st.nodes[node].sharing == "shared" else (int(members[0]), node)
        w, x, n = d.entry_w[j], d.entry_x[j], d.entry_n[j]
        a[index[key]] += w * x
        b[index[key]] += w * (n - x)
    inf = d.infiltration_components[0]
    for mask, case_w in zip(d.obs_mask, d.obs_case.T @ np.full(len(d.case_ids), d.w_case), strict=True):
        item, levels = _group(d, mask)
        for node, success in st.group_path(item, levels):
            key = (None, node) if st.nodes[node].sharing == "shared" else (inf, node)
            if success:
                a[index[key]] += case_w
            else:
                b[index[key]] += case_w
    a[~tree], b[~tree] = np.nan, np.nan
    return a, b


def posterior(evidence: Evidence, *, w_case: float | None = None) -> ExactPosterior:
    """The exact posterior of the independent variant's tree-node free parameters for ``evidence``
    (plain configuration); NaN for the CSF model's nodes."""
    d = D.build(evidence, evidence.variant("independent"), w_case=w_case, synthesis=False)
    a, b = node_counts(d)
    return ExactPosterior(a, b, d.free_names, np.isfinite(a))
