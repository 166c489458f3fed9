"""The conjugate posterior of the ``independent`` variant (DESIGN §4).

With trees of Betas and weighted (power-prior) counts, each node's posterior is a Beta:

    a_post = a_prior + sum_i w_i x_i,   b_post = b_prior + sum_i w_i (n_i - x_i)

over cohort entries on that node and, with weight ``w_case``, every case finding whose path passes
through it. The pretest block (lineage and remission shares, rates) is not conjugate; it is
independent of the nodes a posteriori, so its exact posterior is computed by importance sampling
from its prior (numpy) with the stratum likelihood as weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from model import design as D
from model import likelihood as LK
from model import prior, variants
from model import structure as S
from model.evidence import Evidence


@dataclasses.dataclass(frozen=True)
class ExactPosterior:
    """Beta parameters of every (component, node) and importance-sampled pretest draws."""

    a: np.ndarray  # (component, node)
    b: np.ndarray
    pretest: dict[str, np.ndarray]  # prior draws of the pretest parameters (sample, ...)
    weights: np.ndarray  # normalised importance weights of those draws

    @property
    def theta_mean(self) -> np.ndarray:
        return self.a / (self.a + self.b)

    @property
    def theta_sd(self) -> np.ndarray:
        s = self.a + self.b
        return np.sqrt(self.a * self.b / (s * s * (s + 1)))

    @property
    def ess(self) -> float:
        """Effective sample size of the importance weights."""
        return float(1.0 / np.sum(self.weights ** 2))

    def pretest_mean(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean of a pretest parameter and its Monte Carlo standard error."""
        x = self.pretest[name]
        w = self.weights.reshape(-1, *([1] * (x.ndim - 1)))
        m = np.sum(w * x, axis=0)
        se = np.sqrt(np.sum(w ** 2 * (x - m) ** 2, axis=0))
        return m, se


def node_counts(d: D.Design) -> tuple[np.ndarray, np.ndarray]:
    """Posterior Beta parameters (component, node) from a design of the independent variant."""
    if d.variant.is_mixture:
        raise ValueError("the conjugate posterior exists for the independent variant only")
    a, b = d.prior_a.copy(), d.prior_b.copy()
    for lvl, of, mem, x, n, w in zip(d.entry_level, d.entry_of, d.entry_members, d.entry_x, d.entry_n, d.entry_w, strict=True):
        item, success = _group(lvl)
        _, of_levels = _group(of)
        node = S.find_node(item, success, of_levels)
        k = int(np.flatnonzero(mem)[0])
        a[k, node] += w * x
        b[k, node] += w * (n - x)
    for mask, case_w in zip(d.obs_mask, d.obs_case.T @ np.full(len(d.case_ids), d.w_case), strict=True):
        item, levels = _group(mask)
        for node, success in S.group_path(item, levels):
            if success:
                a[0, node] += case_w
            else:
                b[0, node] += case_w
    return a, b


def _group(mask: np.ndarray) -> tuple[str, tuple[str, ...]]:
    keys = [S.LEVEL_KEYS[j] for j in np.flatnonzero(mask)]
    return keys[0][0], tuple(lv for _, lv in keys)


def posterior(evidence: Evidence, *, n_importance: int = 200_000, seed: int = 1,
              w_case: float | None = None) -> ExactPosterior:
    """The exact posterior of the independent variant for ``evidence``."""
    d = D.build(evidence, variants.get("independent", evidence.forms), w_case=w_case)
    a, b = node_counts(d)
    rng = np.random.default_rng(seed)
    pre = {k: v for k, v in prior.draws(d, n_importance, rng).items() if k != "theta"}
    # The stratum likelihood depends on the pretest block only; theta enters case_loglik's
    # findings part, which is constant here, so it is evaluated at the node means and removed.
    theta = np.broadcast_to(a / (a + b), (n_importance, *a.shape))
    params = {**pre, "theta": theta}
    ll = LK.stratum_entry_loglik(LK.NUMPY, params, d).sum(axis=-1)
    log_l, _, _ = LK.strata(LK.NUMPY, params)
    stratum_case = np.log(LK.stratum_sum(np.exp(log_l), d.case_strata))  # (sample, case)
    ll = ll + d.w_case * (stratum_case * (1 - d.case_condition)).sum(axis=-1)
    w = np.exp(ll - ll.max())
    return ExactPosterior(a, b, pre, w / w.sum())
