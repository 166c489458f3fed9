"""Every number of the statistician's report (``palsy check``) in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from palsy.model import cache as C
from palsy.model import design as D
from palsy.model import findings as F
from palsy.model.draws import Draws
from palsy.model.evidence import Evidence
from palsy.model.prior import draws as prior_draws

from . import implied as I
from . import synthesis as Y
from . import validation as V
from .loo import compare_variants
from .parameters import psense, scalar_table
from .predictive import cohort_checks, predictive_checks
from .sensitivity import answer_sensitivity


def run_all(evidence: Evidence, posteriors: dict[str, Draws], patients: Sequence[F.Patient], *,
            sensitivity_variant: str | None = None, refit: bool = True, refit_settings=None,
            prior_n: int = 4000, seed: int = 1, plain: Draws | None = None,
            quick: tuple[int, int] | None = None, validation_path=None,
            loo_refits: int | None = None) -> dict[str, Any]:
    """Every number of the statistician's report (DESIGN §6).

    Parameters
    ----------
    posteriors : dict
        Variant name -> fitted posterior draws on ``evidence``.
    sensitivity_variant : str, optional
        The variant whose answers are tested for sensitivity (default: the first given).
    refit : bool
        Refit for ``w_case`` and unreliable source removals (else PSIS only).
    plain : Draws, optional
        The plain configuration's fit (no random effects, selection or orderings) of the independent
        variant: the selection section's likelihood ratios "without selection".
    quick : (int, int), optional
        Refit only this many expert judgments and references in the answer sensitivity
        (:func:`~palsy.model.criticism.sensitivity.answer_sensitivity`).
    validation_path : path, optional
        ``priors/validation.yaml``: the validation split scored on the sensitivity variant.
    loo_refits : int, optional
        At most this many exact refits for the leave-one-study-out checks of the sensitivity variant
        (None: every unreliable PSIS one); other variants use PSIS only.

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
            "lp_profile_ordering": dr.meta.get("lp_profile_ordering"),
            "dropped_draws": dr.meta.get("dropped_draws", 0),
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
    rs = refit_settings or C.Settings(draws=500, tune=500, chains=2)

    def refitter(variant: str):
        def go(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            from palsy.model import fit

            dt, _ = fit.sample(variant, evidence, rs, data=data)
            return fit.flat_params(dt)
        return go

    for name, (dr, d) in fits.items():
        can = refit and name == sv
        out["variants"][name]["heterogeneity"] = Y.heterogeneity(
            dr.params, d, evidence, refit=refitter(name) if can else None,
            max_refits=loo_refits if can else 0, seed=seed)
        out["variants"][name]["selection"] = Y.selection(
            dr.params, d, plain=plain.params if plain is not None and name == "independent" else None,
            plain_design=D.build(evidence, evidence.variant(name), synthesis=False) if plain is not None else None)
        for key in ("heterogeneity", "selection"):  # draws for the figures, not JSON
            for k in [k for k in out["variants"][name][key] if k.startswith("_")]:
                out["_arrays"][name][k] = out["variants"][name][key].pop(k)
    out["sensitivity"] = answer_sensitivity(evidence, sv, posteriors[sv], patients, refit=refit,
                                            refit_settings=rs, quick=quick) if patients else None
    out["validation"] = ({"variant": sv, **V.score(V.load(validation_path), posteriors[sv])}
                         if validation_path is not None else None)
    # the rate block of the fitted draws is exact prior draws: the implied quantities the answers use
    out["rates"] = {"variant": sv, **I.implied(evidence.rates, posteriors[sv].params)}
    return out
