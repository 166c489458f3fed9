"""The model's priors in numpy: draws and log densities (the same priors as :mod:`palsy.model.build`).

Used by the conjugate posterior, the exported ``log_prior`` group, prior predictive checks, the
implied-rate checks and simulation-based calibration.
"""

from __future__ import annotations

import numpy as np

from palsy.model import design as D
from palsy.model import rates as R

#: Parameters NUTS samples (the rate block is drawn from its prior: :func:`palsy.model.rates.rate_parameters`).
SAMPLED = ("theta_free", "omega", "tau", "re_z", "gamma")


def draws(d: D.Design, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw ``n`` parameter sets from the model's priors (those of :mod:`palsy.model.build`), in numpy.

    Cohort counts and cases are likelihood, not prior: they are not in these draws. ``theta`` is
    assembled from ``theta_free`` (shared nodes repeat one value, structural zeros stay 0).
    """
    out = {"theta_free": np.clip(rng.beta(d.prior_a, d.prior_b, size=(n, len(d.prior_a))), 1e-12, 1 - 1e-12)}
    out["theta"] = d.theta(out["theta_free"])
    if d.variant.is_mixture:  # omega (lineage, form): one Dirichlet per lineage
        out["omega"] = np.stack([rng.dirichlet(a, n) for a in d.form_alpha], axis=1)
    if d.synthesis:
        if d.re_member.shape[1]:
            out["tau"] = np.abs(rng.normal(0.0, d.tau_sigma, n))
            out["re_z"] = rng.normal(0.0, 1.0, (n, d.re_member.shape[1]))
        out["gamma"] = rng.normal(d.gamma_mu, d.gamma_sigma, n)
    out.update(R.sample_prior(d.rates, n, rng))
    return out


def beta_lpdf(x: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    from scipy.special import betaln

    return (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - betaln(a, b)


def _dirichlet_lpdf(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return ((alpha - 1) * np.log(x)).sum(-1) + gammaln(alpha.sum(-1)) - gammaln(alpha).sum(-1)


def log_density(params: dict[str, np.ndarray], d: D.Design) -> dict[str, np.ndarray]:
    """Log prior density of each sampled parameter (constrained space, as :func:`pm.stats.compute_log_prior`).

    ``omega``'s density is one number per simplex (one per lineage).
    """
    out = {"theta_free": beta_lpdf(params["theta_free"], d.prior_a, d.prior_b)}
    if "omega" in params:
        out["omega"] = _dirichlet_lpdf(params["omega"], d.form_alpha)
    if "tau" in params:
        out["tau"] = _normal_lpdf(params["tau"], 0.0, d.tau_sigma) + np.log(2.0)  # half-normal
        out["re_z"] = _normal_lpdf(params["re_z"], 0.0, 1.0)
    if "gamma" in params:
        out["gamma"] = _normal_lpdf(params["gamma"], d.gamma_mu, d.gamma_sigma)
    return out


def _normal_lpdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
