"""PyMC 6 models of both variants (docs/design.md §4), with named dims and counts/weights in ``pm.Data``.

``model(variant, evidence)`` returns a ``pm.Model``. The formulas are those of
:mod:`palsy.model.likelihood`, evaluated with PyTensor. NUTS samples the free Beta node parameters
``theta_free`` (``theta``, the (component, node) array the formulas read, is assembled from them:
shared nodes repeat one parameter, structural zeros stay 0) and the forms' weights ``omega``; the rate
block (patient-time shares and rates) has no likelihood and is drawn exactly from its prior
(:func:`palsy.model.rates.sample_prior`), which keeps the compiled graph small.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from palsy.model import design as D
from palsy.model import likelihood as LK
from palsy.model.evidence import Evidence

PT = types.SimpleNamespace(
    exp=pt.exp, log=pt.log, log1p=pt.log1p, logsumexp=pt.logsumexp,
    concatenate=pt.concatenate, ones_like=pt.ones_like, where=pt.where, stack=pt.stack,
    flat=lambda x, k: x.reshape((*x.shape[:x.ndim - k], -1)),
    unflat=lambda x, shape: x.reshape((*x.shape[:-1], *shape)),
)


def from_design(d: D.Design) -> pm.Model:
    """The PyMC model of a :class:`~palsy.model.design.Design`."""
    v = d.variant
    st = d.structure
    coords = {
        "component": list(v.components), "node": list(st.node_names), "free_node": list(d.free_names),
        "lineage": list(st.levels_of("lineage")),
        "entry": list(d.entry_ids), "case": list(d.case_ids),
        # each study effect is named by its entry (re_member's column order)
        "study": [d.entry_ids[int(np.flatnonzero(d.re_member[:, j])[0])] for j in range(d.re_member.shape[1])],
    }
    if v.is_mixture:
        coords["form"] = list(v.forms)
    with pm.Model(coords=coords) as model:
        data = {name: pm.Data(name, value, dims=_dims(name)) for name, value in d.data().items()}
        layout = {name: pm.Data(name, value) for name, value in d.layout().items()}
        registry = {k: layout.pop(k) for k in list(layout) if k.startswith("registry_")}
        dd = dataclasses.replace(d, **layout, **{k: data[k] for k in data if k not in ("case_w", "prior_a", "prior_b")})
        free = pm.Beta("theta_free", alpha=data["prior_a"], beta=data["prior_b"], dims="free_node")
        p = {"theta_free": free,
             "theta": pm.Deterministic("theta", LK.theta_from_free(PT, free, d.assembly, d.theta_shape),
                                       dims=("component", "node"))}
        if v.is_mixture:
            p["omega"] = pm.Dirichlet("omega", a=dd.form_alpha, dims=("lineage", "form"))
        if d.synthesis:
            if len(d.re_groups):
                p["tau"] = pm.HalfNormal("tau", sigma=dd.tau_sigma)
                p["re_z"] = pm.Normal("re_z", 0.0, 1.0, dims="study")
            p["gamma"] = pm.Normal("gamma", mu=dd.gamma_mu, sigma=dd.gamma_sigma)
        if len(d.entry_ids):
            pm.Potential("cohort_loglik", LK.entry_loglik(PT, p, dd).sum())
        if len(d.case_ids):
            pm.Potential("case_loglik", (data["case_w"] * LK.case_loglik(PT, p, dd)).sum())
        if d.registry is not None:  # a hospital registry: the rate block is sampled, informed by its rows
            from palsy.model import registry_model

            registry_model.add(PT, p, dd, registry)
    return model


def _dims(name: str) -> str:
    return {"entry": "entry", "case": "case", "prior": "free_node"}[name.split("_")[0]]


def model(variant: str, evidence: Evidence, *, w_case: float | None = None, weights_one: bool = False) -> pm.Model:
    """The model of ``variant`` by name (``w_case`` and ``weights_one`` as in :func:`palsy.model.design.build`)."""
    return from_design(D.build(evidence, evidence.variant(variant), w_case=w_case, weights_one=weights_one))
