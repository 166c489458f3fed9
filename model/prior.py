"""The model's priors in numpy: draws and log densities (the same priors as :mod:`model.build`).

Used by the conjugate posterior, the exported ``log_prior`` group, prior predictive checks, the
implied-rate checks and simulation-based calibration.
"""

from __future__ import annotations

import numpy as np

from model import design as D
from model import rates as R

#: Parameters NUTS samples (the rate block is drawn from its prior: :data:`model.rates.RATE_PARAMETERS`).
SAMPLED = ("theta", "omega")
#: Every parameter the draws store, in order.
PARAMETERS = (*SAMPLED, *R.RATE_PARAMETERS)


def draws(d: D.Design, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw ``n`` parameter sets from the model's priors (those of :mod:`model.build`), in numpy.

    Cohort counts and cases are likelihood, not prior: they are not in these draws.
    """
    K, N = d.prior_a.shape
    out = {"theta": np.clip(rng.beta(d.prior_a, d.prior_b, size=(n, K, N)), 1e-12, 1 - 1e-12)}
    if d.variant.is_mixture:  # omega (lineage, form): one Dirichlet per lineage
        out["omega"] = np.stack([rng.dirichlet(a, n) for a in d.form_alpha], axis=1)
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
    out = {"theta": beta_lpdf(params["theta"], d.prior_a, d.prior_b)}
    if "omega" in params:
        out["omega"] = _dirichlet_lpdf(params["omega"], d.form_alpha)
    return out
