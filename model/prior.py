"""The model's priors in numpy: draws and log densities (the same priors as :mod:`model.build`).

Used by the conjugate posterior (importance sampling from the pretest priors), the exported
``log_prior`` group, prior predictive checks and simulation-based calibration.
"""

from __future__ import annotations

import math

import numpy as np

from model import design as D

#: Free parameters, in the order the draws store them.
PARAMETERS = ("theta", "lineage_share", "remission_share", "relapse_hazard", "remission_multiplier",
              "p_facial", "bell_incidence", "omega")


def draws(d: D.Design, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw ``n`` parameter sets from the model's priors (those of :mod:`model.build`), in numpy.

    The priors are the base Betas (with expert-judgment Betas where given), the Dirichlet and
    log-normal pretest priors and, for the subtype variant, the form weights' Dirichlet. Cohort
    counts and cases are likelihood, not prior: they are not in these draws.
    """
    K, N = d.prior_a.shape
    out = {
        "theta": rng.beta(d.prior_a, d.prior_b, size=(n, K, N)),
        "lineage_share": rng.dirichlet(d.lineage_alpha, n),
        "remission_share": np.stack([rng.dirichlet(a, n) for a in d.remission_alpha], axis=1),
        "relapse_hazard": np.exp(rng.normal(d.hazard_mu, d.hazard_sigma, (n, len(d.hazard_mu)))),
        "remission_multiplier": np.exp(rng.normal(d.multiplier_mu, d.multiplier_sigma, (n, len(d.multiplier_mu)))),
        "p_facial": rng.beta(d.p_facial_ab[0], d.p_facial_ab[1], n),
        "bell_incidence": np.exp(rng.normal(d.bell_mu, d.bell_sigma, n)),
    }
    if d.variant.is_mixture:  # omega (lineage, form): one Dirichlet per lineage
        out["omega"] = np.stack([rng.dirichlet(a, n) for a in d.form_alpha], axis=1)
    # keep theta strictly inside (0, 1): a Beta(1, 49) draw can underflow to 0 in float64 only rarely,
    # but log(0) would poison every downstream sum
    out["theta"] = np.clip(out["theta"], 1e-12, 1 - 1e-12)
    return out


def beta_lpdf(x: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    from scipy.special import betaln

    return (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - betaln(a, b)


def _dirichlet_lpdf(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return ((alpha - 1) * np.log(x)).sum(-1) + gammaln(alpha.sum(-1)) - gammaln(alpha).sum(-1)


def _lognormal_lpdf(x: np.ndarray, mu: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    lx = np.log(x)
    return -lx - np.log(sigma) - 0.5 * math.log(2 * math.pi) - 0.5 * ((lx - mu) / sigma) ** 2


def log_density(params: dict[str, np.ndarray], d: D.Design) -> dict[str, np.ndarray]:
    """Log prior density of each parameter (constrained space, as :func:`pm.stats.compute_log_prior`).

    Returns arrays with the leading sample dim and the parameter's own dims, except the Dirichlets,
    whose density is one number per simplex (``remission_share`` and ``omega``: one per lineage).
    """
    out = {
        "theta": beta_lpdf(params["theta"], d.prior_a, d.prior_b),
        "lineage_share": _dirichlet_lpdf(params["lineage_share"], d.lineage_alpha),
        "remission_share": _dirichlet_lpdf(params["remission_share"], d.remission_alpha),
        "relapse_hazard": _lognormal_lpdf(params["relapse_hazard"], d.hazard_mu, d.hazard_sigma),
        "remission_multiplier": _lognormal_lpdf(params["remission_multiplier"], d.multiplier_mu, d.multiplier_sigma),
        "p_facial": beta_lpdf(params["p_facial"], *d.p_facial_ab),
        "bell_incidence": _lognormal_lpdf(params["bell_incidence"], d.bell_mu, d.bell_sigma),
    }
    if "omega" in params:
        out["omega"] = _dirichlet_lpdf(params["omega"], d.form_alpha)
    return out
