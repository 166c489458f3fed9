"""Every number of the statistician's report (``palsy check``) in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model import design as D
from model import findings as F
from model.draws import Draws
from model.evidence import Evidence
from model.prior import draws as prior_draws

from . import implied as I
from .loo import compare_variants
from .parameters import psense, scalar_table
from .predictive import cohort_checks, predictive_checks
from .sensitivity import answer_sensitivity


def run_all(evidence: Evidence, posteriors: dict[str, Draws], patients: Sequence[F.Patient], *,
            sensitivity_variant: str | None = None, refit: bool = True, refit_settings=None,
            prior_n: int = 4000, seed: int = 1) -> dict[str, Any]:
    """Every number of the statistician's report (DESIGN §6).

    Parameters
    ----------
    posteriors : dict
        Variant name -> fitted posterior draws on ``evidence``.
    sensitivity_variant : str, optional
        The variant whose answers are tested for sensitivity (default: the first given).
    refit : bool
        Refit for ``w_case`` and unreliable source removals (else PSIS only).

    Returns
    -------
    dict
        JSON-ready results per variant (``diagnostics``, ``scalars`` with prior and posterior summaries
        of the sampled parameters, ``ppc_posterior``, ``ppc_prior`` (prior-only), ``cohorts``,
        ``psense``), ``loo``, ``sensitivity`` and ``rates`` (the rate model's implied quantities
        beside their targets); plus ``_arrays`` (not JSON: draws for figures).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"evidence_hash": evidence.hash, "causes": list(evidence.causes), "variants": {},
                           "_arrays": {}}
    fits = {}
    for name, dr in posteriors.items():
        d = D.build(evidence, evidence.variant(name))
        fits[name] = (dr, d)
        prior = prior_draws(d, prior_n, rng)
        out["variants"][name] = {
            "draws": dr.n, "chains": int(dr.meta["settings"]["chains"]), "settings": dr.meta["settings"],
            "components": list(d.variant.components), "component_causes": list(d.variant.component_causes),
            "diagnostics": dr.meta.get("diagnostics"),
            "scalars": scalar_table(dr, d, prior),
            "ppc_posterior": predictive_checks(dr.params, d, evidence, seed=seed),
            "ppc_prior": predictive_checks(prior, d, evidence, seed=seed),
            "cohorts": cohort_checks(dr.params, d, evidence, seed=seed),
            "psense": psense(dr, d),
        }
        out["_arrays"][name] = {"posterior": dr.params, "prior": prior, "chains": int(dr.meta["settings"]["chains"]),
                                "design": d}
    out["loo"] = compare_variants(fits) if len(fits) > 1 else None
    sv = sensitivity_variant or next(iter(posteriors))
    out["sensitivity"] = answer_sensitivity(evidence, sv, posteriors[sv], patients, refit=refit,
                                            refit_settings=refit_settings) if patients else None
    # the rate block of the fitted draws is exact prior draws: the implied quantities the answers use
    out["rates"] = {"variant": sv, **I.implied(evidence.rates, posteriors[sv].params)}
    return out
