"""PyMC 6 models of both variants (DESIGN §4), with named dims and counts/weights in ``pm.Data``.

``independent(evidence)`` and ``subtype(evidence)`` return a ``pm.Model``. The formulas are those of
:mod:`model.likelihood`, evaluated with PyTensor.
"""

from __future__ import annotations

import dataclasses
import types

import pymc as pm
import pytensor.tensor as pt

from model import design as D
from model import likelihood as LK
from model import structure as S
from model import variants
from model.evidence import Evidence
from model.prior import PARAMETERS  # noqa: F401  (re-exported)

PT = types.SimpleNamespace(
    exp=pt.exp, log=pt.log, log1p=pt.log1p, logsumexp=pt.logsumexp,
    concatenate=pt.concatenate, ones_like=pt.ones_like,
)



def from_design(d: D.Design) -> pm.Model:
    """The PyMC model of a :class:`~model.design.Design`."""
    v = d.variant
    coords = {
        "component": list(v.components), "node": list(S.NODE_NAMES), "lineage": list(S.LINEAGES),
        "remission": list(S.REMISSIONS), "remission_multiplied": list(S.MULTIPLIED_REMISSIONS),
        "entry": list(d.entry_ids), "stratum_entry": list(d.sentry_ids), "case": list(d.case_ids),
    }
    if v.is_mixture:
        coords["form"] = list(v.l_components)
    with pm.Model(coords=coords) as model:
        data = {name: pm.Data(name, value, dims=_dims(name)) for name, value in d.data().items()}
        p = {
            "theta": pm.Beta("theta", alpha=d.prior_a, beta=d.prior_b, dims=("component", "node")),
            "lineage_share": pm.Dirichlet("lineage_share", a=d.lineage_alpha, dims="lineage"),
            "remission_share": pm.Dirichlet("remission_share", a=d.remission_alpha, dims=("lineage", "remission")),
            "relapse_hazard": pm.LogNormal("relapse_hazard", mu=d.hazard_mu, sigma=d.hazard_sigma, dims="lineage"),
            "remission_multiplier": pm.LogNormal("remission_multiplier", mu=d.multiplier_mu,
                                                 sigma=d.multiplier_sigma, dims="remission_multiplied"),
            "p_facial": pm.Beta("p_facial", alpha=d.p_facial_ab[0], beta=d.p_facial_ab[1]),
            "bell_incidence": pm.LogNormal("bell_incidence", mu=d.bell_mu, sigma=d.bell_sigma),
        }
        if v.is_mixture:
            p["omega"] = pm.Dirichlet("omega", a=d.form_alpha, dims=("lineage", "form"))
        dd = dataclasses.replace(d, **{k: data[k] for k in data if k != "case_w"})
        pm.Potential("cohort_loglik", LK.entry_loglik(PT, p, dd).sum())
        pm.Potential("stratum_loglik", LK.stratum_entry_loglik(PT, p, dd).sum())
        pm.Potential("case_loglik", (data["case_w"] * LK.case_loglik(PT, p, dd)).sum())
    return model


def _dims(name: str) -> str:
    return {"entry": "entry", "sentry": "stratum_entry", "case": "case"}[name.split("_")[0]]


def independent(evidence: Evidence, *, w_case: float | None = None, weights_one: bool = False) -> pm.Model:
    """The conditionally independent variant."""
    v = variants.get("independent", evidence.forms)
    return from_design(D.build(evidence, v, w_case=w_case, weights_one=weights_one))


def subtype(evidence: Evidence, *, w_case: float | None = None, weights_one: bool = False) -> pm.Model:
    """The subtype (mixture of forms) variant."""
    v = variants.get("subtype", evidence.forms)
    return from_design(D.build(evidence, v, w_case=w_case, weights_one=weights_one))


def model(variant: str, evidence: Evidence, **kwargs) -> pm.Model:
    """The model of ``variant`` by name."""
    return {"independent": independent, "subtype": subtype}[variant](evidence, **kwargs)
