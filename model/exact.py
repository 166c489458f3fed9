"""The conjugate posterior of the ``independent`` variant (DESIGN §4).

With trees of Betas and weighted (power-prior) counts, each node's posterior is a Beta:

    a_post = a_prior + sum_i w_i x_i,   b_post = b_prior + sum_i w_i (n_i - x_i)

over cohort entries on that node and, with weight ``w_case``, every case finding whose path passes
through it, in the plain configuration (no random effects, case selection or orderings: DESIGN §4
keeps this closed form so that the sampler is still checked against it). The rate block
(patient-time shares and rates) has no likelihood: its posterior is its prior, drawn exactly by
:func:`palsy.model.rates.sample_prior`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from palsy.model import design as D
from palsy.model import structure as S
from palsy.model.evidence import Evidence


@dataclasses.dataclass(frozen=True)
class ExactPosterior:
    """Beta parameters of every (component, node)."""

    a: np.ndarray  # (component, node)
    b: np.ndarray

    @property
    def theta_mean(self) -> np.ndarray:
        return self.a / (self.a + self.b)

    @property
    def theta_sd(self) -> np.ndarray:
        s = self.a + self.b
        return np.sqrt(self.a * self.b / (s * s * (s + 1)))


def node_counts(d: D.Design) -> tuple[np.ndarray, np.ndarray]:
    """Posterior Beta parameters (component, node) from a design of the independent variant."""
    if d.variant.is_mixture or d.synthesis:
        raise ValueError("the conjugate posterior exists for the independent variant's plain configuration "
                         "only (no random effects, selection or orderings)")
    a, b = d.prior_a.copy(), d.prior_b.copy()
    for lvl, of, mem, x, n, w in zip(d.entry_level, d.entry_of, d.entry_members, d.entry_x, d.entry_n, d.entry_w, strict=True):
        item, success = _group(lvl)
        _, of_levels = _group(of)
        node = S.find_node(item, success, of_levels)
        k = int(np.flatnonzero(mem)[0])
        a[k, node] += w * x
        b[k, node] += w * (n - x)
    inf = d.infiltration_components[0]
    for mask, case_w in zip(d.obs_mask, d.obs_case.T @ np.full(len(d.case_ids), d.w_case), strict=True):
        item, levels = _group(mask)
        for node, success in S.group_path(item, levels):
            if success:
                a[inf, node] += case_w
            else:
                b[inf, node] += case_w
    return a, b


def _group(mask: np.ndarray) -> tuple[str, tuple[str, ...]]:
    keys = [S.LEVEL_KEYS[j] for j in np.flatnonzero(mask)]
    return keys[0][0], tuple(lv for _, lv in keys)


def posterior(evidence: Evidence, *, w_case: float | None = None) -> ExactPosterior:
    """The exact posterior of the independent variant's nodes for ``evidence`` (plain configuration)."""
    d = D.build(evidence, evidence.variant("independent"), w_case=w_case, synthesis=False)
    return ExactPosterior(*node_counts(d))
