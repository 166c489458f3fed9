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

from . import heavy
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
            loo_refits: int | None = None, runner: heavy.Runner | None = None,
            source_patients: Sequence[str] | None = None) -> dict[str, Any]:
    """Every number of the statistician's report (docs/design.md §6).

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
    runner : heavy.Runner, optional
        Where the refits run: serially in this process (default) or as Dask tasks.
    source_patients : sequence of str, optional
        The ids of the source patients among ``patients`` (what each answer rests on is shown for them;
        default: every patient).

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
    # every failing predictive check explained; a statistic one variant misses and the other does not, said so
    from . import predictive as P

    for name, (_, d) in fits.items():
        for row in out["variants"][name]["ppc_posterior"]:
            row["explanation"] = (P.explain(row, d, evidence)
                                  if row["p_value"] is not None and row["p_value"] < P.P_FAIL else None)
    for name in fits:
        for row in out["variants"][name]["ppc_posterior"]:
            if not row["explanation"]:
                continue
            others = [o for o in fits if o != name and next(
                (r for r in out["variants"][o]["ppc_posterior"] if r["statistic"] == row["statistic"]
                 and r["p_value"] is not None and r["p_value"] >= P.P_FAIL), None)]
            if others:
                row["explanation"] += (f" The {', '.join(others)} variant reproduces it (p >= {P.P_FAIL}): the "
                                       f"misfit is the {name} variant's own structure, not the data alone.")
    out["loo"] = compare_variants(fits) if len(fits) > 1 else None
    sv = sensitivity_variant or next(iter(posteriors))
    # refits compare posteriors within their Monte Carlo error and apply no ESS bar: every transition kept
    rs = refit_settings or C.Settings(draws=500, tune=500, chains=2, thin=1)

    run = runner or heavy.Runner(heavy.SERIAL)

    def refitter(variant: str):
        def go(datas: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
            outs = run.map(heavy.refit, [((evidence, variant, rs, data), {}) for data in datas])
            return [o["params"] for o in outs]
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
                                            refit_settings=rs, quick=quick, runner=run) if patients else None
    out["runner"] = run.describe
    out["validation"] = ({"variant": sv, **V.score(V.load(validation_path), posteriors[sv])}
                         if validation_path is not None else None)
    # the rate block of the fitted draws is exact prior draws: the implied quantities the answers use
    out["rates"] = {"variant": sv, **I.implied(evidence.rates, posteriors[sv].params)}
    # what each patient's answer rests on (the sensitivity variant), and both variants side by side
    from palsy.model import rests_on as RO

    prov = RO.provenance(evidence, fits[sv][1])
    from . import references as REF

    out["references"] = REF.table(evidence.references, evidence.directory)
    shown = [p for p in patients if source_patients is None or p.id in source_patients]
    out["rests_on"] = {"variant": sv, "patients": {p.id: rests_on_record(p, posteriors[sv], prov) for p in shown}}
    out["variant_comparison"] = compare_answers(posteriors, patients, out["loo"]) if len(posteriors) > 1 else None
    return out


def rests_on_record(patient: F.Patient, draws: Draws, prov: dict[str, Any]) -> dict[str, Any]:
    """:func:`palsy.model.rests_on.decompose` of one patient's answer (the model's own answer, the
    patient's own library case left out), with its one-line sentence."""
    from palsy.model import answer as A
    from palsy.model import game as G
    from palsy.model import rests_on as RO
    from palsy.model.psis import psis_weights

    from .sensitivity import tables_of

    t = tables_of(draws)
    game = G.Game(t, G.players(patient), patient, A.active_causes(t.causes, None), t.log_prior,
                  np.zeros_like(t.level_lp[:, :, 0]))
    idx = draws.case_index(patient.id)
    w = psis_weights(-draws.case_loglik[idx])[0] if idx is not None else None
    res = RO.decompose(game, prov, weights=w)
    return {"rows": res["rows"], "blocks": res["blocks"], "probability": res["probability"],
            "variance": res["variance"], "mcse": res["mcse"], "ess": res["ess"], "method": res["method"],
            "draws": res["draws"], "independence": res["independence"], "sentence": RO.sentence(res["rows"])}


def compare_answers(posteriors: dict[str, Draws], patients: Sequence[F.Patient],
                    loo: dict[str, Any] | None) -> dict[str, Any]:
    """Each patient's mean P(infiltration) under every variant, the variants' stacking weights (LOO), and
    where two variants differ by more than ``variants.differ_by`` of ``priors/model.yaml``."""
    from palsy.model import rests_on as RO

    weights = {r["model"]: r.get("weight") for r in (loo or {}).get("compare", [])}
    threshold = RO.variant_threshold(next(iter(posteriors.values())))
    rows = {}
    for p in patients:
        probs = {}
        for name, dr in posteriors.items():
            from .sensitivity import tables_of

            v = RO.variant_probability(dr, p, tables=tables_of(dr))
            probs[name] = v["probability"]
        means = [x["mean"] for x in probs.values()]
        rows[p.id] = {"probability": probs, "spread": max(means) - min(means),
                      "differ": bool(max(means) - min(means) > threshold)}
    return {"stacking_weights": weights, "threshold": threshold, "patients": rows,
            "differ": [pid for pid, r in rows.items() if r["differ"]]}
