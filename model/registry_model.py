"""The PyMC part of a fit with a hospital registry (docs/registry.md): the rate block as random variables
and the registry's likelihood.

Without a registry the rate block (patient-time shares and rate factors) has no likelihood and is drawn
exactly from its prior after sampling (:func:`palsy.model.fit.rate_block`). A registry is the first data
that informs it, so with one the block joins the model with the same priors as
:func:`palsy.model.rates.sample_prior` (a Dirichlet per parent cell of each context finding's share; each
log-normal factor as log r = mu + sigma z, z standard normal, truncated where the factor has a lower
bound; a Beta per Beta factor), and the registry's log-likelihood
(:func:`palsy.model.registry_likelihood.total`) is a potential. Each site's effect on each cause's log rate
is sigma_site z_site,c with sigma_site half-normal (its scale from ``priors/registry.yaml``).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from palsy.model import lp as LP
from palsy.model import rates as R
from palsy.model import registry_likelihood as RL

#: The model's parameters that exist only with a registry (besides the rate block's), as the draws keep them.
SITE_PARAMETERS = ("registry_site_sd", "registry_site_z")


def sampled(context: tuple[str, ...]) -> tuple[str, ...]:
    """The parameters NUTS samples with a registry besides :data:`palsy.model.prior.SAMPLED` (the rate block
    as the answer reads it, and the site effects)."""
    return (*R.rate_parameters(context), *SITE_PARAMETERS)


def add(ops, p: dict, d, data: dict) -> None:
    """Add the rate block, the site effects and the registry's potential to the model being built.

    Parameters
    ----------
    ops : namespace
        The PyTensor operations of :mod:`palsy.model.build`.
    p : dict
        The model's parameters so far (``theta``, ``omega``, ...); the rate block and the site effects
        are added to it.
    d : Design
        The design (its ``rates`` and ``structure``; its ``registry`` for the static shapes).
    data : dict
        The registry's arrays as ``pm.Data`` (names with :data:`palsy.model.registry_likelihood.PREFIX`).
    """
    r = d.rates
    for f in r.context:
        p[R.share_name(f)] = pm.Dirichlet(R.share_name(f), a=r.share_alpha[f])
    n = len(r.lognormal_mu)
    if n:
        cut = r.lognormal_lower > 0
        z = pt.zeros(n)
        free, trunc = np.flatnonzero(~cut), np.flatnonzero(cut)
        if len(free):
            z = pt.set_subtensor(z[free], pm.Normal("rate_lognormal_z", 0.0, 1.0, shape=len(free)))
        if len(trunc):
            lower = (np.log(r.lognormal_lower[trunc]) - r.lognormal_mu[trunc]) / r.lognormal_sigma[trunc]
            z = pt.set_subtensor(z[trunc], pm.TruncatedNormal("rate_lognormal_zt", 0.0, 1.0, lower=lower,
                                                              shape=len(trunc)))
        p["rate_lognormal"] = pm.Deterministic("rate_lognormal", pt.exp(r.lognormal_mu + r.lognormal_sigma * z))
    else:
        p["rate_lognormal"] = pt.zeros(0)
    p["rate_beta"] = pm.Beta("rate_beta", alpha=r.beta_a, beta=r.beta_b) if len(r.beta_a) else pt.zeros(0)
    a = {k[len(RL.PREFIX):]: v for k, v in data.items()}
    n_sites = d.registry.arrays["site"].shape[1]
    p["registry_site_sd"] = pm.HalfNormal("registry_site_sd", sigma=a["site_sigma"])
    p["registry_site_z"] = pm.Normal("registry_site_z", 0.0, 1.0, shape=(n_sites, len(d.registry.causes)))
    pm.Potential("registry_loglik", RL.total(ops, p, a, r, d.structure, LP.Index.of(d.structure)))
